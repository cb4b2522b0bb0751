//! Test harness for `cargo xtask models`: a loopback server with fault injection, a
//! sandbox folder per test, and a runner for the real binary.
//!
//! Nothing here leaves the machine: every URL a test pins points at a [`Server`] on
//! 127.0.0.1 that the test started, and the tool runs with every proxy variable removed
//! so a developer's `HTTPS_PROXY` cannot capture loopback traffic.

pub mod daemons;
pub mod dns;
pub mod server;
pub mod tls;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use server::{Reply, Request, Server};

/// A run that takes longer than this is killed and fails its test instead of hanging CI.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// Variables that would make a run depend on the developer's machine.
const HOST_VARS: &[&str] = &[
    // Set by `cargo test` for this process; the tool would take it for its workspace.
    "CARGO_MANIFEST_DIR",
    "CURL_CA_BUNDLE",
    "NETRC",
    "XTASK_MODELS_MIRRORS",
    "XTASK_MODELS_OFFLINE",
    "XTASK_MODELS_MANIFEST",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HF_TOKEN",
    "HF_HOME",
    "HF_TOKEN_PATH",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    // The S3 settings, as the AWS CLI reads them: a test sets the ones it needs.
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CA_BUNDLE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
];

/// Deterministic bytes that look like nothing in particular (no HTML, no LFS pointer):
/// an xorshift stream, generated in pieces of any size (the benchmark writes files of a
/// gigabyte from it without holding them).
pub struct Payload {
    state: u64,
    /// Bytes of the current word not handed out yet.
    pending: ([u8; 8], usize),
}

impl Payload {
    pub fn new(seed: u64) -> Payload {
        Payload { state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1, pending: ([0; 8], 8) }
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            if self.pending.1 == 8 {
                let x = &mut self.state;
                *x ^= *x << 13;
                *x ^= *x >> 7;
                *x ^= *x << 17;
                self.pending = (x.to_le_bytes(), 0);
            }
            *byte = self.pending.0[self.pending.1];
            self.pending.1 += 1;
        }
    }
}

/// `len` bytes of [`Payload`] for `seed`.
/// Says that `test` did not run, and why, where `cargo test` shows it whatever passes:
/// straight to the process's stderr, which the test harness does not capture (it
/// captures only `eprintln!`). `.ci/run` counts these lines in its closing one.
pub fn skipped(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why} ********");
}

pub fn payload(len: usize, seed: u64) -> Arc<Vec<u8>> {
    let mut out = vec![0u8; len];
    Payload::new(seed).fill(&mut out);
    Arc::new(out)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    xtask::hex(&Sha256::digest(bytes))
}

/// One `[[model]]` entry for a test manifest.
#[derive(Clone, Debug)]
pub struct Pin {
    pub name: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub urls: Vec<String>,
    pub group: Option<String>,
    pub optional: bool,
}

impl Pin {
    /// A pin that matches `data` exactly.
    pub fn new(name: &str, path: &str, data: &[u8], urls: &[String]) -> Pin {
        Pin {
            name: name.to_owned(),
            path: path.to_owned(),
            size: data.len() as u64,
            sha256: sha256_hex(data),
            urls: urls.to_vec(),
            group: None,
            optional: false,
        }
    }

    pub fn to_toml(&self) -> String {
        let urls: Vec<String> = self.urls.iter().map(|u| format!("{u:?}")).collect();
        let mut out = format!(
            "[[model]]\nname = {:?}\npath = {:?}\nsize = {}\nsha256 = {:?}\nurls = [{}]\n",
            self.name,
            self.path,
            self.size,
            self.sha256,
            urls.join(", ")
        );
        if let Some(group) = &self.group {
            out.push_str(&format!("group = {group:?}\n"));
        }
        if self.optional {
            out.push_str("optional = true\n");
        }
        out
    }
}

/// What one run of the tool printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Asserts the exit code, showing everything the tool printed when it differs.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Everything printed, for assertions that do not care about the stream.
    pub fn output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// A private folder holding a manifest and a checkpoints directory; removed on drop.
pub struct Sandbox {
    pub dir: PathBuf,
    pub manifest: PathBuf,
    pub checkpoints: PathBuf,
    /// The shared cache this sandbox uses (never the developer's own).
    pub cache: PathBuf,
    tool: PathBuf,
    env: Vec<(String, String)>,
}

impl Sandbox {
    /// `tool` is the binary under test (`env!("CARGO_BIN_EXE_xtask-under-test")`).
    pub fn new(tool: &str) -> Sandbox {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("xtask-e2e-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create sandbox");
        let cache = dir.join("cache");
        // Its own cache, and no netrc: a developer's `default` entry must not reach a test.
        // No AWS files either: ~/.aws of whoever runs the tests must not reach a test.
        let env = vec![
            ("XTASK_MODELS_CACHE_DIR".to_owned(), cache.display().to_string()),
            ("NETRC".to_owned(), dir.join("no-netrc").display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".to_owned(), dir.join("no-aws-credentials").display().to_string()),
            ("AWS_CONFIG_FILE".to_owned(), dir.join("no-aws-config").display().to_string()),
        ];
        Sandbox {
            manifest: dir.join("models.toml"),
            checkpoints: dir.join("checkpoints"),
            cache,
            dir,
            tool: PathBuf::from(tool),
            env,
        }
    }

    pub fn write_manifest(&self, pins: &[Pin]) {
        let text: Vec<String> = pins.iter().map(Pin::to_toml).collect();
        std::fs::write(&self.manifest, text.join("\n")).expect("write manifest");
    }

    /// Where the tool runs: a folder of its own, so the sandbox's manifest is never the
    /// tool's default (`models.toml` in the current folder) and every message names it.
    pub fn cwd(&self) -> PathBuf {
        let cwd = self.dir.join("cwd");
        std::fs::create_dir_all(&cwd).expect("create the working folder");
        cwd
    }

    /// Where a model path lands.
    pub fn file(&self, rel: &str) -> PathBuf {
        self.checkpoints.join(rel)
    }

    /// Runs `models <args>` against this sandbox's manifest and checkpoints directory.
    pub fn models(&self, args: &[&str]) -> Run {
        self.run_raw(&self.models_args(args))
    }

    /// `models <args> --manifest M --checkpoints-dir C`, the location options before a
    /// `--` (which hands the rest to another program).
    fn models_args(&self, args: &[&str]) -> Vec<String> {
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let mut full: Vec<String> = vec!["models".into()];
        full.extend(args[..split].iter().map(|a| (*a).to_owned()));
        full.push("--manifest".into());
        full.push(self.manifest.display().to_string());
        full.push("--checkpoints-dir".into());
        full.push(self.checkpoints.display().to_string());
        full.extend(args[split..].iter().map(|a| (*a).to_owned()));
        full
    }

    /// `models <args>` in a private mount namespace whose `/etc/resolv.conf` is
    /// `resolv_conf` (see [`crate::dns`]): only this run resolves through it.
    pub fn models_resolving_with(&self, resolv_conf: &Path, args: &[&str]) -> Run {
        let script = "mount --bind \"$1\" /etc/resolv.conf && shift && exec \"$@\"";
        let mut full: Vec<String> = ["--mount", "--", "sh", "-c", script, "sh"].map(String::from).to_vec();
        full.push(resolv_conf.display().to_string());
        full.push(self.tool.display().to_string());
        full.extend(self.models_args(args));
        run_tool(Path::new("unshare"), &full, &self.cwd(), &self.env)
    }

    /// Starts `models <args>` in the background (for kills and races).
    pub fn spawn_models(&self, args: &[&str]) -> std::process::Child {
        let mut command = Command::new(&self.tool);
        command.args(self.models_args(args));
        command.current_dir(self.cwd()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for var in HOST_VARS {
            command.env_remove(var);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        command.spawn().expect("start the tool")
    }

    /// Starts `models <args>` in the background with its output going to files, so a
    /// test can watch what it says while it runs.
    pub fn spawn_logged(&self, args: &[&str]) -> Logged {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::SeqCst);
        let (out, err) = (self.dir.join(format!("run-{n}.out")), self.dir.join(format!("run-{n}.err")));
        let mut command = Command::new(&self.tool);
        command.args(self.models_args(args));
        command.current_dir(self.cwd());
        for var in HOST_VARS {
            command.env_remove(var);
        }
        for (name, value) in &self.env {
            command.env(name, value);
        }
        Logged::spawn(command, out, err)
    }

    /// Where a download of `sha256` into this sandbox's cache collects its bytes.
    pub fn cache_partial(&self, sha256: &str) -> PathBuf {
        self.cache.join("partial").join(format!("{sha256}.part"))
    }

    /// Runs the tool with exactly these arguments, from the sandbox folder.
    pub fn run_raw(&self, args: &[String]) -> Run {
        run_tool(&self.tool, args, &self.cwd(), &self.env)
    }

    /// Sets an environment variable for every later run.
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.retain(|(n, _)| n != name);
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Another checkout sharing this sandbox's cache (its own manifest and checkpoints).
    pub fn sibling(&self) -> Sandbox {
        let mut other = Sandbox::new(self.tool.to_str().unwrap_or_default());
        other.env = self.env.clone();
        other
    }

    /// Every file below the sandbox whose name says it is a partial download.
    pub fn partials(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.to_string_lossy().contains(".part") {
                    out.push(path);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir, &mut out);
        out
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = make_writable(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Tests may make folders read-only; give write access back so they can be removed.
fn make_writable(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755))?;
            make_writable(&entry.path())?;
        }
    }
    Ok(())
}

/// A run of the tool in the background whose output goes to files.
pub struct Logged {
    child: std::process::Child,
    out: PathBuf,
    err: PathBuf,
}

impl Logged {
    /// Starts `command` with no input and its output going to the files `out` and `err`.
    pub fn spawn(mut command: Command, out: PathBuf, err: PathBuf) -> Logged {
        command.stdin(Stdio::null());
        command.stdout(std::fs::File::create(&out).expect("create the log"));
        command.stderr(std::fs::File::create(&err).expect("create the log"));
        Logged { child: command.spawn().expect("start the tool"), out, err }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Waits for it to end; after `limit` (generous: only a hang reaches it) it is
    /// killed, and the test fails naming `what` hung.
    pub fn finish_within(mut self, limit: Duration, what: &str) -> Run {
        let started = std::time::Instant::now();
        while self.child.try_wait().expect("wait for the tool").is_none() {
            if started.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("{what} still running after {limit:?}: it hangs\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.finish()
    }

    pub fn finish(mut self) -> Run {
        let status = self.child.wait().expect("wait for the tool");
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        Run { code: status.code().unwrap_or(-1), stdout: read(&self.out), stderr: read(&self.err) }
    }
}

/// Runs git in `dir` with a fixed identity. Hooks it runs start the tool, which must not
/// take this test's package (`CARGO_MANIFEST_DIR`) for its workspace.
pub fn git(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .expect("git runs")
}

/// Bytes a split download's sidecar (`*.part-ranges`) records as done: after its header
/// line, one `start next end` line per piece.
pub fn pieces_done(sidecar: &str) -> u64 {
    sidecar
        .lines()
        .skip(1)
        .filter_map(|line| {
            let n: Vec<u64> = line.split(' ').filter_map(|x| x.parse().ok()).collect();
            Some(n.get(1)?.saturating_sub(*n.first()?))
        })
        .sum()
}

/// Polls `done` every few milliseconds until it holds; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Collects a finished child's output. Both pipes are read at once, on their own
/// threads: a child that fills one pipe while the other is being read cannot deadlock.
pub fn finish(mut child: std::process::Child) -> Run {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = child.wait().expect("wait for the tool");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Like [`finish`], for a child that must end within `limit` (a build, say): one that
/// does not is killed and the test fails saying so, instead of hanging the suite. A
/// bound on a hang, not a measurement: nothing is asserted about how long it took.
pub fn finish_within(mut child: std::process::Child, limit: Duration, what: &str) -> Run {
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Reads a pipe to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

pub fn run_tool(tool: &Path, args: &[String], cwd: &Path, env: &[(String, String)]) -> Run {
    let mut command = Command::new(tool);
    command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in HOST_VARS {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("start the tool");
    finish_within(child, RUN_LIMIT, &format!("the tool ({args:?})"))
}

/// A test's world in a few lines: a loopback [`Server`], a [`Sandbox`], and the models
/// pinned in its manifest (rewritten as each one is added). Derefs to the sandbox.
///
/// ```ignore
/// let sc = scenario();
/// let data = sc.model("m", "sub/m.bin", payload(300_000, 7));   // served at /m
/// sc.serve("/m", vec![Reply::status(503), Reply::Body(data)]);  // or script it
/// sc.models(&["fetch"]).expect(0);
/// ```
pub struct Scenario {
    pub server: Server,
    pub sb: Sandbox,
    pins: std::cell::RefCell<Vec<Pin>>,
}

impl Scenario {
    pub fn new(tool: &str) -> Scenario {
        Scenario { server: Server::start(), sb: Sandbox::new(tool), pins: Default::default() }
    }

    /// Scripts what `path` answers on the server, in order (the last reply repeats).
    pub fn serve(&self, path: &str, replies: Vec<Reply>) -> &Scenario {
        self.server.script(path, replies);
        self
    }

    /// Serves `data` at `/<name>` and pins it as `name` at `path`; returns the data.
    pub fn model(&self, name: &str, path: &str, data: Arc<Vec<u8>>) -> Arc<Vec<u8>> {
        let route = format!("/{name}");
        self.serve(&route, vec![Reply::Body(data.clone())]);
        self.pin(name, path, &data, &[&route]);
        data
    }

    /// Pins `data` as `name` at `path`, from `sources`: server paths (`/a`) or full URLs.
    pub fn pin(&self, name: &str, path: &str, data: &[u8], sources: &[&str]) -> &Scenario {
        let urls: Vec<String> = sources.iter().map(|s| self.url(s)).collect();
        self.add(Pin::new(name, path, data, &urls))
    }

    /// Adds a pin as given (a wrong size, a group, optional) and rewrites the manifest.
    pub fn add(&self, pin: Pin) -> &Scenario {
        let mut pins = self.pins.borrow_mut();
        pins.push(pin);
        self.sb.write_manifest(&pins);
        self
    }

    /// The pins so far, as written.
    pub fn pins(&self) -> Vec<Pin> {
        self.pins.borrow().clone()
    }

    /// A server path as a URL; a full URL as it is.
    pub fn url(&self, source: &str) -> String {
        if source.contains("://") { source.to_owned() } else { self.server.url(source) }
    }
}

impl std::ops::Deref for Scenario {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        &self.sb
    }
}

impl std::ops::DerefMut for Scenario {
    fn deref_mut(&mut self) -> &mut Sandbox {
        &mut self.sb
    }
}
