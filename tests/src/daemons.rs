//! Real servers started by a test on loopback ports, with configs the test writes: nginx
//! (plain, TLS with a private CA, `limit_rate`), squid and tinyproxy. Each one is owned
//! by the value that started it and stopped by its PID when that value drops.
//!
//! A server program that is not installed fails the test under `CI=true` (CI installs
//! them: `.ci/run`); elsewhere the test prints one loud skip line and passes.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tls::Pki;

/// The program's path, or `None` after the skip line (a panic under `CI=true`).
pub fn require(program: &str, test: &str) -> Option<PathBuf> {
    if let Some(path) = find_program(program) {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{program} is not installed, and CI=true: `.ci/run` installs it");
    eprintln!("SKIPPED {test}: {program} is not installed (`.ci/run` installs it) ********");
    None
}

/// `program` on PATH or in the sbin folders, where Debian puts servers.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

/// A server process this test started; killed by PID and reaped on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts `command` and waits until `port` accepts connections.
    pub fn spawn(mut command: Command, port: u16, dir: &Path, what: &str) -> Daemon {
        let log = std::fs::File::create(dir.join(format!("{what}.out"))).expect("create the log");
        let err = log.try_clone().expect("clone the log");
        command.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut daemon = Daemon { child, port, dir: dir.to_owned() };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let out = std::fs::read_to_string(dir.join(format!("{what}.out"))).unwrap_or_default();
                panic!("{what} exited with {status} before listening on {port}:\n{out}");
            }
            assert!(started.elapsed() < Duration::from_secs(20), "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx serving a folder, configured by the test.
pub struct Nginx {
    pub daemon: Daemon,
    /// `https` when started with TLS.
    scheme: &'static str,
}

/// How an nginx instance serves its folder.
#[derive(Default)]
pub struct NginxConfig<'a> {
    /// TLS with this private CA's server certificate.
    pub tls: Option<&'a Pki>,
    /// `limit_rate` per connection, as nginx writes it (`16m`).
    pub limit_rate: Option<&'a str>,
}

impl Nginx {
    /// Serves `root` on a fresh loopback port; `None` (after the skip line) when nginx is
    /// not installed.
    pub fn start(root: &Path, dir: &Path, config: &NginxConfig<'_>, test: &str) -> Option<Nginx> {
        let program = require("nginx", test)?;
        std::fs::create_dir_all(dir).expect("create the nginx folder");
        let port = free_port();
        let (listen, scheme) = match config.tls {
            Some(pki) => (
                format!(
                    "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {};",
                    pki.cert_pem.display(),
                    pki.key_pem.display()
                ),
                "https",
            ),
            None => (format!("listen 127.0.0.1:{port};"), "http"),
        };
        let limit = config.limit_rate.map(|r| format!("limit_rate {r};")).unwrap_or_default();
        let d = dir.display();
        let conf = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
             fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
             sendfile on;\n    default_type application/octet-stream;\n    \
             server {{\n        {listen}\n        server_name localhost;\n        root {};\n        {limit}\n    }}\n}}\n",
            root.display()
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let mut command = Command::new(program);
        command.arg("-e").arg(dir.join("error.log")).arg("-p").arg(dir).arg("-c").arg(&conf_path);
        let daemon = Daemon::spawn(command, port, dir, "nginx");
        Some(Nginx { daemon, scheme })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://127.0.0.1:{}{path}", self.scheme, self.daemon.port)
    }

    /// The access log so far: one line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.join("access.log")).unwrap_or_default()
    }
}
