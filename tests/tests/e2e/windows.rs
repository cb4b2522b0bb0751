//! The Windows build of the tool, run under wine: what its users get. `.ci/run` cross-
//! builds `xtask.exe` for `x86_64-pc-windows-gnu` and prepares a wine prefix (with a shim
//! for `bcryptprimitives.dll`, which wine 8 lacks and Windows has); these tests run that
//! `.exe` against servers on loopback, with the environment a Windows machine has (no
//! `HOME`, no `XDG_*`). A missing toolchain fails them under `CI=true`; elsewhere each
//! prints one loud skip line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tests::{Pin, Run, Server, payload, sha256_hex};

/// The wine loader (Debian puts none on PATH) and the prepared prefix and `.exe`.
struct Wine {
    loader: PathBuf,
    prefix: PathBuf,
    exe: PathBuf,
    /// The lane's helpers, built from `.ci/windows`: `hold.exe` holds a file open as a
    /// running program does; `console.exe` presses Ctrl-C in a console; `trust.exe`
    /// puts a CA into the certificate store; `git.exe` answers `hook install`'s two
    /// questions (wine has no Git for Windows).
    helpers: PathBuf,
}

impl Wine {
    fn find(test: &str) -> Option<Wine> {
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/windows");
        let exe = std::env::var_os("XTASK_WINDOWS_EXE")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("x86_64-pc-windows-gnu/debug/xtask.exe"));
        let prefix = std::env::var_os("XTASK_WINEPREFIX")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("wineprefix"));
        let helpers = std::env::var_os("XTASK_WINDOWS_HELPERS")
            .map(PathBuf::from)
            .unwrap_or_else(|| target.join("shim"));
        let loader = PathBuf::from("/usr/lib/wine/wine64");
        let ready = exe.is_file()
            && helpers.join("hold.exe").is_file()
            && helpers.join("console.exe").is_file()
            && helpers.join("trust.exe").is_file()
            && helpers.join("git.exe").is_file()
            && loader.is_file()
            && prefix.join("drive_c/windows/system32/bcryptprimitives.dll").is_file();
        if !ready {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "{test}: the Windows lane is not built, and CI=true: `.ci/run` builds it");
            tests::skipped(test, "no Windows build under wine (`.ci/run` makes one)");
            return None;
        }
        Some(Wine { loader, prefix, exe, helpers })
    }

    /// The Windows user's profile folder, as a Linux path.
    fn profile(&self) -> PathBuf {
        self.prefix.join("drive_c/users/root")
    }

    /// `xtask.exe models ARGS` as a Windows user runs it.
    fn models(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.command(args, env);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        tests::finish_within(
            command.spawn().expect("start wine"),
            std::time::Duration::from_secs(300),
            "xtask.exe",
        )
    }

    /// `xtask.exe models ARGS` in the background, its output in `log.out` and `log.err`.
    fn spawn_logged(&self, args: &[&str], env: &[(&str, &str)], log: &Path) -> tests::Logged {
        let command = self.command(args, env);
        tests::Logged::spawn(command, log.with_extension("out"), log.with_extension("err"))
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = self.program(&self.exe, &["models"], env);
        command.args(args);
        command
    }

    /// A Windows `program ARGS` under wine, with the environment a Windows machine has.
    fn program(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(&self.loader);
        command.arg(program).args(args);
        command.env("WINEPREFIX", &self.prefix).env("WINEDEBUG", "-all");
        for var in [
            "HOME",
            "XDG_CACHE_HOME",
            "XDG_CONFIG_HOME",
            "CARGO_MANIFEST_DIR",
            "NETRC",
            "http_proxy",
            "HTTPS_PROXY",
            "https_proxy",
            "ALL_PROXY",
            "all_proxy",
            "XTASK_MODELS_MIRRORS",
            "XTASK_MODELS_CACHE_DIR",
            "SSL_CERT_FILE",
            "SSL_CERT_DIR",
            "AWS_CA_BUNDLE",
            "HF_TOKEN",
        ] {
            command.env_remove(var);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        command
    }
}

impl Wine {
    /// `console.exe status CMDLINE` (or `parent`, which also presses Ctrl-C): runs the
    /// raw Windows command line and prints `exit N`, its whole 32-bit exit code, which
    /// wine's own exit status (a byte) cannot carry.
    fn console(&self, mode: &str, cmdline: &str) -> Run {
        let mut command = self.program(&self.helpers.join("console.exe"), &[mode, cmdline], &[]);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        tests::finish_within(
            command.spawn().expect("start console.exe under wine"),
            std::time::Duration::from_secs(300),
            "console.exe",
        )
    }
}

/// A Windows program holding a file open (read and write shared, deletion not) until it
/// is dropped; it has said `held`, so the file is open when `hold` returns.
struct Held(std::process::Child);

impl Wine {
    fn hold(&self, path: &Path) -> Held {
        let mut command = self.program(&self.helpers.join("hold.exe"), &[&windows_path(path)], &[]);
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("start hold.exe under wine");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
        let held = Held(child);
        assert_eq!(line.trim(), "held", "hold.exe opened {}", path.display());
        held
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing its input lets it go; the kill is for a test that failed midway.
        drop(self.0.stdin.take());
        let started = std::time::Instant::now();
        while self.0.try_wait().ok().flatten().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(60) {
                let _ = self.0.kill();
                let _ = self.0.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// A Linux path as the `.exe` sees it: wine maps `/` to `Z:`.
fn windows_path(path: &Path) -> String {
    format!("Z:{}", path.display()).replace('/', "\\")
}

/// `args`, then `--manifest` and `--checkpoints-dir` as the `.exe` sees them.
fn located(args: &[&str], manifest: &Path, checkpoints: &Path) -> Vec<String> {
    let location = ["--manifest", &windows_path(manifest), "--checkpoints-dir", &windows_path(checkpoints)]
        .map(str::to_owned);
    args.iter().map(|a| (*a).to_owned()).chain(location).collect()
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A folder of its own for one test, with a manifest of `pins` served by `server`.
fn checkout(name: &str) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new().prefix(&format!("xtask-win-{name}-")).tempdir().unwrap();
    let manifest = dir.path().join("models.toml");
    let checkpoints = dir.path().join("ck");
    (dir, manifest, checkpoints)
}

fn write(manifest: &Path, pins: &[Pin]) {
    let text: String = pins.iter().map(Pin::to_toml).collect::<Vec<_>>().join("\n");
    std::fs::write(manifest, text).unwrap();
}

#[test]
fn fetch_verify_status_and_clean_work_on_windows_with_native_paths_and_the_cache_in_localappdata() {
    let test = "windows_fetch_verify_status_clean";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let (data, other) = (payload(300_000, 700), payload(200_000, 701));
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    server.script("/o", vec![tests::Reply::Body(other.clone())]);
    let (_dir, manifest, checkpoints) = checkout("basic");
    let pins = [
        Pin::new("m", "sub/m.bin", &data, &[server.url("/m")]),
        Pin::new("o", "sub/o.bin", &other, &[server.url("/o")]),
    ];
    write(&manifest, &pins);
    let at = |args: &[&str]| located(args, &manifest, &checkpoints);
    let run = wine.models(&refs(&at(&["fetch", "--json"])), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(checkpoints.join("sub/m.bin")).unwrap(), *data);
    let shown = format!("{}\\sub\\m.bin", windows_path(&checkpoints));
    assert!(run.stderr.contains(&shown), "native separators in output: {}", run.stderr);
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let record = doc["models"].as_array().unwrap().iter().find(|m| m["name"] == "m").unwrap();
    assert_eq!(record["file"], shown.as_str(), "native separators in JSON");
    assert_eq!(record["path"], "sub/m.bin", "the manifest's own path, portable");
    assert!(!run.stderr.contains("no cache directory"), "a cache without HOME: {}", run.stderr);
    let cache = wine.profile().join("AppData/Local/xtask-models/cache/sha256").join(sha256_hex(&data));
    assert!(cache.is_file(), "the cache lives in %LOCALAPPDATA%: {}", cache.display());
    let run = wine.models(&refs(&at(&["verify"])), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ok (stamp)"), "{}", run.stdout);
    let run = wine.models(&refs(&at(&["status"])), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let row = run.stdout.lines().find(|l| l.starts_with("m ")).unwrap_or_default();
    assert!(row.ends_with(" sub\\m.bin"), "the PATH column in native separators: {}", run.stdout);
    // A model dropped from the manifest, in a subfolder: clean knows it as its own.
    write(&manifest, &pins[..1]);
    let run = wine.models(&refs(&at(&["clean"])), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        !checkpoints.join("sub/o.bin").exists(),
        "the dropped model is removed: {}{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stdout.contains("not made by this tool"), "{}", run.stdout);
    assert!(checkpoints.join("sub/m.bin").exists());
}

#[test]
fn a_failure_on_windows_suggests_commands_that_paste_into_cmd_and_powershell() {
    let test = "windows_suggested_commands";
    let Some(wine) = Wine::find(test) else { return };
    let (_dir, manifest, checkpoints) = checkout("quote");
    let spaced = manifest.with_file_name("my models.toml");
    write(&spaced, &[Pin::new("m", "m.bin", &payload(10, 702), &["http://127.0.0.1:9/m".to_owned()])]);
    let run = wine.models(
        &["verify", "--manifest", &windows_path(&spaced), "--checkpoints-dir", &windows_path(&checkpoints)],
        &[],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    let quoted = format!("--manifest \"{}\"", windows_path(&spaced));
    assert!(
        run.stdout.contains(&quoted) || run.stderr.contains(&quoted),
        "double quotes: {}{}",
        run.stdout,
        run.stderr
    );
    assert!(!run.stdout.contains("'Z:") && !run.stderr.contains("'Z:"), "no single quotes: {}", run.stderr);
}

#[test]
fn netrc_is_read_from_the_windows_profile() {
    let test = "windows_netrc";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let data = payload(1000, 703);
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    let (_dir, manifest, checkpoints) = checkout("netrc");
    write(&manifest, &[Pin::new("m", "m.bin", &data, &[server.url("/m")])]);
    let netrc = wine.profile().join("_netrc");
    std::fs::write(&netrc, "machine 127.0.0.1 login alice password s3cret\n").unwrap();
    let run = wine.models(
        &[
            "fetch",
            "--no-cache",
            "--manifest",
            &windows_path(&manifest),
            "--checkpoints-dir",
            &windows_path(&checkpoints),
        ],
        &[],
    );
    let _ = std::fs::remove_file(&netrc);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let sent = server.requests()[0].authorization.clone().unwrap_or_default();
    assert!(sent.starts_with("Basic "), "the profile's _netrc was used: {sent:?}");
}

/// A CA in the Windows certificate store (the machine's ROOT store, as group policy or a
/// TLS-inspecting proxy's installer puts it there) until dropped.
struct Trusted<'a> {
    wine: &'a Wine,
    der: PathBuf,
}

impl Wine {
    fn trust(&self, ca_pem: &Path) -> Trusted<'_> {
        let der = ca_pem.with_extension("der");
        let converted = Command::new("openssl")
            .args(["x509", "-in"])
            .arg(ca_pem)
            .args(["-outform", "der", "-out"])
            .arg(&der)
            .status()
            .expect("the openssl program runs");
        assert!(converted.success());
        let out = self.trust_command("add", &der).output().expect("start trust.exe under wine");
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && said.trim() == "added", "trust.exe add: {said}");
        Trusted { wine: self, der }
    }

    /// `trust.exe add|remove CERT.der` under wine.
    fn trust_command(&self, what: &str, der: &Path) -> Command {
        let mut command = self.program(&self.helpers.join("trust.exe"), &[what, &windows_path(der)], &[]);
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for Trusted<'_> {
    fn drop(&mut self) {
        // No assertion here: a drop while a failed test unwinds must not panic again.
        let _ = self.wine.trust_command("remove", &self.der).output();
    }
}

fn hello(_path: &str) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".to_vec()
}

#[test]
fn a_ca_in_the_windows_certificate_store_is_trusted_and_ssl_cert_file_adds_to_it() {
    let test = "windows_certificate_store";
    let Some(wine) = Wine::find(test) else { return };
    let (dir, manifest, checkpoints) = checkout("trust");
    let company = tests::tls::Pki::create(&dir.path().join("company"));
    let server = tests::tls::TlsServer::start(&company, hello);
    let url = format!("https://127.0.0.1:{}/m.bin", server.port);
    write(&manifest, &[Pin::new("m", "m.bin", b"hello", &[url])]);
    let fetch = located(&["fetch", "--no-cache", "--retries", "0"], &manifest, &checkpoints);

    // Before the store holds the company's CA, its server is refused.
    let run = wine.models(&refs(&fetch), &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("(tls)"), "{}", run.stderr);
    assert!(server.paths().is_empty(), "no request over a refused handshake");

    // With it there, and SSL_CERT_FILE naming another bundle (as conda sets it), the
    // store is still trusted: the variable adds, it does not replace.
    let other = tests::tls::Pki::create(&dir.path().join("other"));
    let trusted = wine.trust(&company.ca_pem);
    let bundle = [("SSL_CERT_FILE", windows_path(&other.ca_pem))];
    let bundle: Vec<(&str, &str)> = bundle.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = wine.models(&refs(&fetch), &bundle);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(checkpoints.join("m.bin")).unwrap(), b"hello");

    // And doctor says what is trusted, as it is.
    let run = wine.models(&refs(&located(&["doctor"], &manifest, &checkpoints)), &bundle);
    drop(trusted);
    let lines: Vec<&str> = run.stdout.lines().filter(|l| l.contains(" certificates ")).collect();
    assert!(lines.iter().any(|l| l.starts_with("ok   certificates Windows certificate store")), "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("ok   certificates Mozilla's roots")), "{lines:?}");
    let named = format!("ok   certificates SSL_CERT_FILE={}: 1 certificate", windows_path(&other.ca_pem));
    assert!(lines.contains(&named.as_str()), "{lines:?}");
    assert!(!run.stdout.contains("/etc/ssl"), "no Linux bundle claimed on Windows: {}", run.stdout);
}

#[test]
fn a_file_held_open_by_another_program_fails_its_model_keeps_the_download_and_clean_goes_on() {
    let test = "windows_file_in_use";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let (old, new, other) = (payload(200_000, 704), payload(200_000, 705), payload(1000, 706));
    for (path, data) in [("/old", &old), ("/new", &new), ("/o", &other)] {
        server.script(path, vec![tests::Reply::Body(data.clone())]);
    }
    let (dir, manifest, checkpoints) = checkout("in-use");
    let cache = windows_path(&dir.path().join("cache"));
    let env = [("XTASK_MODELS_CACHE_DIR", cache.as_str())];
    let at = |args: &[&str]| located(args, &manifest, &checkpoints);
    let o = Pin::new("o", "sub/o.bin", &other, &[server.url("/o")]);
    write(&manifest, &[Pin::new("m", "sub/m.bin", &old, &[server.url("/old")]), o.clone()]);
    wine.models(&refs(&at(&["fetch"])), &env).expect(0);
    let installed = checkpoints.join("sub/m.bin");

    // The pin moves on while SadTalker has the old file open.
    write(&manifest, &[Pin::new("m", "sub/m.bin", &new, &[server.url("/new")]), o]);
    let held = wine.hold(&installed);
    let run = wine.models(&refs(&at(&["fetch"])), &env);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("(in-use)") && run.stderr.contains("close it"), "{}", run.stderr);
    assert_eq!(std::fs::read(&installed).unwrap(), *old, "the file in use is untouched");
    drop(held);
    let run = wine.models(&refs(&at(&["fetch"])), &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(&installed).unwrap(), *new);
    assert_eq!(server.hits("/new"), 1, "the checked download was kept and installed, not fetched again");

    // Neither model is listed any more; clean removes what it can and names what it cannot.
    write(&manifest, &[Pin::new("z", "z.bin", &payload(10, 707), &[server.url("/z")])]);
    let held = wine.hold(&installed);
    let run = wine.models(&refs(&at(&["clean"])), &env);
    drop(held);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cannot remove") && run.stderr.contains("close it"), "{}", run.stderr);
    assert!(installed.exists());
    assert!(!checkpoints.join("sub/o.bin").exists(), "clean went on: {}", run.stdout);
}

#[test]
fn two_fetches_of_one_model_on_windows_download_it_once_and_a_second_checkout_takes_it_from_the_cache() {
    let test = "windows_two_processes";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let data = payload(300_000, 708);
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    let (dir, manifest, checkpoints) = checkout("two");
    write(&manifest, &[Pin::new("m", "sub/m.bin", &data, &[server.url("/m")])]);
    let args = located(&["fetch"], &manifest, &checkpoints);
    let args = refs(&args);
    // A cache of this test's own: the prefix's %LOCALAPPDATA% outlives test runs.
    let cache = windows_path(&dir.path().join("cache"));
    let env = [("XTASK_MODELS_CACHE_DIR", cache.as_str())];
    // The server holds its answer until the second fetch says it waits for the first.
    server.close_gate();
    let first = wine.spawn_logged(&args, &env, &dir.path().join("first"));
    tests::wait_until(std::time::Duration::from_secs(120), "the first fetch asked", || {
        server.hits("/m") == 1
    });
    let second = wine.spawn_logged(&args, &env, &dir.path().join("second"));
    tests::wait_until(std::time::Duration::from_secs(120), "the second fetch waiting", || {
        second.stderr().contains("waiting for another fetch of m")
    });
    server.open();
    let (first, second) = (first.finish(), second.finish());
    first.expect(0);
    second.expect(0);
    assert_eq!(server.hits("/m"), 1, "the bytes came once");
    assert_eq!(std::fs::read(checkpoints.join("sub/m.bin")).unwrap(), *data);

    // Another clone of the project: the file comes from the shared cache.
    let (_other, manifest, checkpoints) = checkout("two-again");
    write(&manifest, &[Pin::new("m", "sub/m.bin", &data, &[server.url("/m")])]);
    let args = located(&["fetch"], &manifest, &checkpoints);
    let args = refs(&args);
    let run = wine.models(&args, &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("from cache 1"), "{}{}", run.stdout, run.stderr);
    assert_eq!(server.hits("/m"), 1, "no download for the second checkout");
    assert_eq!(std::fs::read(checkpoints.join("sub/m.bin")).unwrap(), *data);
}

#[test]
fn ctrl_c_in_a_windows_console_reaches_the_command_and_run_outlives_it_to_pass_its_exit_code_on() {
    let test = "windows_run_ctrl_c";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let (_dir, manifest, checkpoints) = checkout("ctrl-c");
    let data = payload(1000, 709);
    std::fs::create_dir_all(&checkpoints).unwrap();
    std::fs::write(checkpoints.join("m.bin"), &*data).unwrap();
    write(&manifest, &[Pin::new("m", "m.bin", &data, &[server.url("/m")])]);
    // console.exe starts `xtask.exe models run -- console.exe command` in a console,
    // presses Ctrl-C once the command has started, and reports the tool's exit code. The
    // command winds up for a second after its Ctrl-C and exits 7.
    let helper = windows_path(&wine.helpers.join("console.exe"));
    let cmdline = format!(
        "\"{}\" models run --manifest \"{}\" --checkpoints-dir \"{}\" -- \"{helper}\" command",
        windows_path(&wine.exe),
        windows_path(&manifest),
        windows_path(&checkpoints)
    );
    let run = wine.console("parent", &cmdline);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.stdout.trim(), "exit 7", "the command's own exit code, after it wound up: {}", run.stderr);
    assert_eq!(server.hits("/m"), 0, "the model was present");
}

#[test]
fn the_windows_build_refuses_a_manifest_with_a_reserved_device_name_naming_file_line_and_column() {
    let test = "windows_reserved_names";
    let Some(wine) = Wine::find(test) else { return };
    let (_dir, manifest, checkpoints) = checkout("reserved");
    write(
        &manifest,
        &[Pin::new("m", "sub/aux.bin", &payload(10, 710), &["https://example.invalid/m".to_owned()])],
    );
    let run = wine.models(&refs(&located(&["verify", "--manifest-only"], &manifest, &checkpoints)), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let line = run.stderr.lines().next().unwrap_or_default();
    let place = line.strip_prefix(&format!("error: {}:", windows_path(&manifest))).unwrap_or_default();
    let mut numbers = place.splitn(3, ':').take(2);
    assert!(numbers.all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())), "file:line:col: {line}");
    assert!(line.contains("reserved device name on Windows"), "{}", run.stderr);
}

#[test]
fn the_github_workflow_runs_the_unit_tests_on_windows_and_macos_and_the_suite_on_linux() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/ci.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML")[0];
    let jobs = &doc["jobs"];
    assert_eq!(jobs["linux"]["runs-on"].as_str(), Some("ubuntu-latest"));
    let oses: Vec<&str> = jobs["unit"]["strategy"]["matrix"]["os"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert_eq!(oses, ["windows-latest", "macos-latest"]);
    assert!(
        text.contains("cargo test -p xtask --locked") && text.contains("cargo test --workspace --locked")
    );
}

#[test]
fn a_copy_on_windows_installs_by_link_mode_or_across_drives_and_leaves_no_temp() {
    // Most Windows checkouts live on another drive than %LOCALAPPDATA% (SadTalker on D:):
    // every file is copied from the cache, whose entries are read-only.
    let test = "windows_copy";
    let Some(wine) = Wine::find(test) else { return };
    let server = Server::start();
    let data = payload(200_000, 709);
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    let leftovers = |dir: &Path| -> Vec<String> {
        let names = std::fs::read_dir(dir).into_iter().flatten().flatten();
        names.map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.contains(".part")).collect()
    };

    // `--link-mode copy`, the cache on the same drive.
    let (dir, manifest, checkpoints) = checkout("copy");
    write(&manifest, &[Pin::new("m", "m.bin", &data, &[server.url("/m")])]);
    let cache = windows_path(&dir.path().join("cache"));
    let env = [("XTASK_MODELS_CACHE_DIR", cache.as_str())];
    let args = located(&["fetch", "--link-mode", "copy"], &manifest, &checkpoints);
    let run = wine.models(&refs(&args), &env);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(std::fs::read(checkpoints.join("m.bin")).unwrap(), *data);
    assert_eq!(leftovers(&checkpoints), Vec::<String>::new());

    // The checkpoints on drive D:, another filesystem than the cache's (a tmpfs): no
    // hard link can cross, so `auto` copies.
    let d_root = dir.path().join("d-drive");
    std::fs::create_dir_all(&d_root).unwrap();
    let Some(_mount) = tests::daemons::Mount::tmpfs(&d_root, "8m", test) else { return };
    let drive = wine.prefix.join("dosdevices/d:");
    let _ = std::fs::remove_file(&drive);
    std::os::unix::fs::symlink(&d_root, &drive).unwrap();
    std::fs::write(&manifest, Pin::new("m", "m.bin", &data, &[server.url("/m")]).to_toml()).unwrap();
    let args =
        ["fetch", "--manifest", &windows_path(&manifest), "--checkpoints-dir", r"D:\sadtalker\checkpoints"];
    let run = wine.models(&args, &env);
    let _ = std::fs::remove_file(&drive);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("from cache 1"), "{}{}", run.stdout, run.stderr);
    let placed = d_root.join("sadtalker/checkpoints");
    assert_eq!(std::fs::read(placed.join("m.bin")).unwrap(), *data);
    assert_eq!(leftovers(&placed), Vec::<String>::new());
    assert_eq!(server.hits("/m"), 1, "the second came from the cache");
}

#[test]
fn a_hook_installed_on_windows_hands_sh_the_paths_whole() {
    // Git for Windows runs hooks with sh: a path in cmd.exe quoting lost its backslashes
    // there (`Z:\w\ck` became `Z:wck`) and every commit was refused.
    let test = "windows_hook";
    let Some(wine) = Wine::find(test) else { return };
    let (dir, manifest, _) = checkout("hook");
    std::fs::write(&manifest, "").unwrap();
    let checkpoints = dir.path().join("my ck");
    assert!(tests::git(dir.path(), &["init", "-q"]).status.success());
    // The command the hook runs prints each word it gets, one per line.
    let words = dir.path().join("words.sh");
    std::fs::write(&words, "#!/bin/sh\nprintf '[%s]\\n' \"$@\"\n").unwrap();
    assert!(Command::new("chmod").arg("+x").arg(&words).status().unwrap().success());
    let helpers = windows_path(&wine.helpers);
    let args =
        located(&["hook", "install", "--command", &words.display().to_string()], &manifest, &checkpoints);
    let run = wine.models(&refs(&args), &[("WINEPATH", helpers.as_str())]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let hook = dir.path().join(".git/hooks/pre-commit");
    let ran =
        Command::new("sh").arg(&hook).current_dir(dir.path()).env("PATH", "/usr/bin:/bin").output().unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(ran.status.success(), "{said}{}", String::from_utf8_lossy(&ran.stderr));
    assert!(said.contains(&format!("[{}]\n", windows_path(&checkpoints))), "{said}");
    assert!(said.contains(&format!("[{}]\n", windows_path(&manifest))), "{said}");
}

#[test]
fn run_on_windows_passes_the_whole_exit_code_on() {
    // Windows exit codes are 32 bits: `exit 256` must not read as success to `&&` and
    // `if errorlevel 1`, nor an access violation (0xC0000005) as 5.
    let test = "windows_run_exit_code";
    let Some(wine) = Wine::find(test) else { return };
    let (_dir, manifest, checkpoints) = checkout("exit-code");
    std::fs::write(&manifest, "").unwrap();
    std::fs::create_dir_all(&checkpoints).unwrap();
    let helper = windows_path(&wine.helpers.join("console.exe"));
    for code in ["256", "3221225477", "3", "0"] {
        let cmdline = format!(
            "\"{}\" models run --manifest \"{}\" --checkpoints-dir \"{}\" -- \"{helper}\" exit {code}",
            windows_path(&wine.exe),
            windows_path(&manifest),
            windows_path(&checkpoints)
        );
        let run = wine.console("status", &cmdline);
        assert_eq!(run.stdout.trim(), format!("exit {code}"), "{}", run.stderr);
    }
}

#[test]
fn a_path_whose_closing_quote_was_escaped_on_windows_is_explained_not_taken() {
    // PowerShell 5.1 completes a folder as `"C:\my folder\"`: the `\"` escapes the quote,
    // and the options after it become part of the path.
    let test = "windows_escaped_quote";
    let Some(wine) = Wine::find(test) else { return };
    let (dir, manifest, _) = checkout("quote");
    std::fs::write(&manifest, "").unwrap();
    let folder = dir.path().join("my folder");
    std::fs::create_dir_all(&folder).unwrap();
    let cmdline = format!(
        "\"{}\" models verify --manifest \"{}\" --checkpoints-dir \"{}\\\" --json",
        windows_path(&wine.exe),
        windows_path(&manifest),
        windows_path(&folder)
    );
    let run = wine.console("status", &cmdline);
    assert_eq!(run.stdout.lines().last(), Some("exit 2"), "a usage error: {}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("escapes the quote"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("(\"{}\")", windows_path(&folder))),
        "how to type it: {}",
        run.stderr
    );
}
