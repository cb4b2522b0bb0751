//! Real servers started by a test on loopback ports, with configs the test writes: nginx
//! (plain, TLS with a private CA, `limit_rate`), squid and tinyproxy. Each one is owned
//! by the value that started it and stopped by its PID when that value drops.
//!
//! A server program that is not installed fails the test under `CI=true` (CI installs
//! them: `.ci/run`); elsewhere the test prints one loud skip line and passes.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::tls::Pki;

/// The program's path, or `None` after the skip line (a panic under `CI=true`).
pub fn require(program: &str, test: &str) -> Option<PathBuf> {
    if let Some(path) = find_program(program) {
        return Some(path);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "{program} is not installed, and CI=true: `.ci/run` installs it");
    crate::skipped(test, &format!("{program} is not installed (`.ci/run` installs it)"));
    None
}

/// `program` on PATH or in the sbin folders, where Debian puts servers.
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs =
        std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.map(|dir| dir.join(program)).find(|p| p.is_file())
}

/// A loopback port for a server a test starts: one the kernel just gave out, and never
/// one this process has handed out before, so two servers of this run never race for the
/// same port. Someone else may still take it before the server binds it: [`Daemon::spawn`]
/// starts the server again on another port when it cannot listen on this one.
pub fn server_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("its address").port();
        if hand_out(port) {
            return port;
        }
    }
}

/// Ports handed to servers in this run, the gRPC twins of SeaweedFS's included.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// Marks `port` as a server's from now on; false when it was already.
fn hand_out(port: u16) -> bool {
    HANDED_OUT.lock().unwrap_or_else(PoisonError::into_inner).insert(port)
}

/// A loopback port that refuses every connection for as long as this value lives: a TCP
/// socket bound to it that never listens. Held by the test, the port cannot be taken by
/// a server another test starts meanwhile, as a port merely found free could.
pub struct DeadPort {
    fd: libc::c_int,
    pub port: u16,
}

impl DeadPort {
    pub fn hold() -> DeadPort {
        // SAFETY: plain socket calls on a descriptor this value owns; the address is a
        // properly sized sockaddr_in on the stack.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut addr: libc::sockaddr_in = std::mem::zeroed();
            addr.sin_family = libc::AF_INET as libc::sa_family_t;
            addr.sin_addr.s_addr = u32::from(std::net::Ipv4Addr::LOCALHOST).to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            let bound = libc::bind(fd, (&raw const addr).cast(), len);
            assert_eq!(bound, 0, "bind: {}", std::io::Error::last_os_error());
            let mut len = len;
            let named = libc::getsockname(fd, (&raw mut addr).cast(), &mut len);
            assert_eq!(named, 0, "getsockname: {}", std::io::Error::last_os_error());
            DeadPort { fd, port: u16::from_be(addr.sin_port) }
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DeadPort {
    fn drop(&mut self) {
        // SAFETY: the descriptor is this value's own, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// A server process this test started; stopped by PID and reaped on drop.
pub struct Daemon {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Ask it to stop (SIGTERM) before killing it: a server that keeps shared memory
    /// (squid) removes it only on a clean exit.
    graceful: bool,
}

impl Daemon {
    /// Starts the command `make` builds for a port from [`server_port`], and waits until
    /// that port accepts connections. A server that exits first (its port was taken in
    /// the meantime) is started again on another port, three times at most.
    pub fn spawn(dir: &Path, what: &str, make: impl FnMut(u16) -> Command) -> Daemon {
        Daemon::spawn_picking(dir, what, server_port, make)
    }

    /// [`Daemon::spawn`], with the ports picked by `pick`.
    fn spawn_picking(
        dir: &Path,
        what: &str,
        pick: fn() -> u16,
        mut make: impl FnMut(u16) -> Command,
    ) -> Daemon {
        let mut failures = Vec::new();
        for _ in 0..3 {
            let port = pick();
            match Daemon::try_spawn(make(port), port, dir, what) {
                Ok(daemon) => return daemon,
                Err(why) => failures.push(why),
            }
        }
        panic!("{what} could not start on three ports:\n{}", failures.join("\n"));
    }

    fn try_spawn(mut command: Command, port: u16, dir: &Path, what: &str) -> Result<Daemon, String> {
        let log = std::fs::File::create(dir.join(format!("{what}.out"))).expect("create the log");
        let err = log.try_clone().expect("clone the log");
        command.stdin(Stdio::null()).stdout(log).stderr(err);
        let child = command.spawn().unwrap_or_else(|e| panic!("start {what}: {e}"));
        let mut daemon = Daemon { child, port, dir: dir.to_owned(), graceful: false };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                let out = std::fs::read_to_string(dir.join(format!("{what}.out"))).unwrap_or_default();
                return Err(format!("{what} exited with {status} before listening on {port}:\n{out}"));
            }
            // A hang guard, not a measurement: weed on a loaded 2-core machine can take a while.
            assert!(started.elapsed() < Duration::from_secs(90), "{what} did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.graceful
            && let Ok(pid) = libc::pid_t::try_from(self.child.id())
        {
            // SAFETY: `pid` is this test's own child, not reaped yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Apache httpd serving a folder, configured by the test (the Debian binary, run in the
/// foreground with the test's own config: no service, no /etc/apache2).
pub struct Apache {
    pub daemon: Daemon,
}

impl Apache {
    /// Serves `root` on a fresh loopback port with the directives in `extra` (`FileETag
    /// None`, a rate limit); `None` (after the skip line) when apache2 is not installed.
    /// Its access log records each request's `Range` and `If-Range`.
    pub fn start(root: &Path, dir: &Path, extra: &str, test: &str) -> Option<Apache> {
        let program = require("apache2", test)?;
        std::fs::create_dir_all(dir).expect("create the apache folder");
        // It serves as `nobody`: the files must be readable by everyone.
        let _ = Command::new("chmod").arg("-R").arg("a+rX").arg(root).status();
        let daemon = Daemon::spawn(dir, "apache", |port| {
            let d = dir.display();
            let conf = format!(
                "ServerRoot /usr/lib/apache2\n\
                 LoadModule mpm_event_module modules/mod_mpm_event.so\n\
                 LoadModule authz_core_module modules/mod_authz_core.so\n\
                 LoadModule env_module modules/mod_env.so\n\
                 LoadModule ratelimit_module modules/mod_ratelimit.so\n\
                 ServerName localhost\nListen 127.0.0.1:{port}\nPidFile {d}/httpd.pid\nErrorLog {d}/error.log\n\
                 LogFormat \"%r %>s %{{Range}}i|%{{If-Range}}i %B\" probe\nCustomLog {d}/access.log probe\n\
                 User nobody\nGroup nogroup\nDocumentRoot {root}\n\
                 <Directory {root}>\n  Require all granted\n</Directory>\n{extra}\n",
                root = root.display()
            );
            let conf_path = dir.join("httpd.conf");
            std::fs::write(&conf_path, conf).expect("write httpd.conf");
            let mut command = Command::new(&program);
            command.arg("-X").arg("-f").arg(&conf_path);
            command
        });
        Some(Apache { daemon })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.daemon.port)
    }

    /// The access log so far: one line per request.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.join("access.log")).unwrap_or_default()
    }
}

/// busybox httpd serving a folder: the web server of many NAS boxes, routers and small
/// containers. It labels files it does not know `text/html` and ignores `If-Range`.
pub struct Busybox {
    pub daemon: Daemon,
}

impl Busybox {
    /// Serves `root` on a fresh loopback port; `None` (after the skip line) when busybox
    /// is not installed.
    pub fn start(root: &Path, dir: &Path, test: &str) -> Option<Busybox> {
        let program = require("busybox", test)?;
        std::fs::create_dir_all(dir).expect("create the busybox folder");
        let daemon = Daemon::spawn(dir, "busybox", |port| {
            let mut command = Command::new(&program);
            command
                .arg("httpd")
                .arg("-f")
                .arg("-vv")
                .arg("-p")
                .arg(format!("127.0.0.1:{port}"))
                .arg("-h")
                .arg(root);
            command
        });
        Some(Busybox { daemon })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.daemon.port)
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
    /// More directives for the server block (a `location` that redirects, say).
    pub extra: &'a str,
}

impl Nginx {
    /// Serves `root` on a fresh loopback port; `None` (after the skip line) when nginx is
    /// not installed.
    pub fn start(root: &Path, dir: &Path, config: &NginxConfig<'_>, test: &str) -> Option<Nginx> {
        let program = require("nginx", test)?;
        std::fs::create_dir_all(dir).expect("create the nginx folder");
        let scheme = if config.tls.is_some() { "https" } else { "http" };
        let listen = |port: u16| match config.tls {
            Some(pki) => format!(
                "listen 127.0.0.1:{port} ssl;\n        ssl_certificate {};\n        ssl_certificate_key {};",
                pki.cert_pem.display(),
                pki.key_pem.display()
            ),
            None => format!("listen 127.0.0.1:{port};"),
        };
        let limit = config.limit_rate.map(|r| format!("limit_rate {r};")).unwrap_or_default();
        let extra = config.extra;
        let daemon = Daemon::spawn(dir, "nginx", |port| {
            let d = dir.display();
            let conf = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n    log_format probe '$connection $connection_requests $request_method $uri $status $http_range|$http_if_range $body_bytes_sent';\n    \
                 access_log {d}/access.log probe;\n    keepalive_requests 10000;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n    \
                 fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
                 sendfile on;\n    default_type application/octet-stream;\n    \
                 server {{\n        {}\n        server_name localhost;\n        root {};\n        {limit}\n        {extra}\n    }}\n}}\n",
                listen(port),
                root.display()
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).expect("write nginx.conf");
            let mut command = Command::new(&program);
            command.arg("-e").arg(dir.join("error.log")).arg("-p").arg(dir).arg("-c").arg(&conf_path);
            command
        });
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

/// A small tmpfs mounted by the test (a full disk, a read-only mount), unmounted on drop.
/// Mounting needs root, as CI has; elsewhere the test prints its skip line.
pub struct Mount {
    dir: PathBuf,
}

impl Mount {
    pub fn tmpfs(dir: &Path, size: &str, test: &str) -> Option<Mount> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "cannot mount a tmpfs, and CI=true: CI runs as root");
            crate::skipped(test, "mounting a tmpfs needs root");
            return None;
        }
        Some(Mount { dir: dir.to_owned() })
    }

    /// An XFS filesystem with reflinks, in an image file in `dir`, loop-mounted at
    /// `dir/mnt`: where clones work. Needs root and `mkfs.xfs` (xfsprogs), as CI has.
    pub fn xfs_image(dir: &Path, test: &str) -> Option<Mount> {
        let mkfs = require("mkfs.xfs", test)?;
        std::fs::create_dir_all(dir).expect("create the image folder");
        let image = dir.join("xfs.img");
        let file = std::fs::File::create(&image).expect("create the image");
        // XFS wants 300 MiB at least; the image is sparse until written.
        file.set_len(320 << 20).expect("size the image");
        let made = Command::new(mkfs).args(["-q", "-m", "reflink=1"]).arg(&image).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfs.xfs");
        let mnt = dir.join("mnt");
        std::fs::create_dir_all(&mnt).expect("create the mount point");
        let ok = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mnt)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "cannot loop-mount an XFS image, and CI=true: CI runs as root");
            crate::skipped(test, "loop-mounting a filesystem image needs root");
            return None;
        }
        Some(Mount { dir: mnt })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Makes the mount read-only, as a container's `:ro` volume.
    pub fn read_only(&self) {
        let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(&self.dir).status();
        assert!(ok.is_ok_and(|s| s.success()), "remount read-only");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A forward proxy's listening port, as a URL, with credentials when it requires them.
pub struct ForwardProxy {
    pub daemon: Daemon,
    /// `user:password` when the proxy demands basic authentication.
    pub credentials: Option<(String, String)>,
}

impl ForwardProxy {
    /// `http://[user:password@]127.0.0.1:PORT`.
    pub fn url(&self, with_credentials: bool) -> String {
        match (&self.credentials, with_credentials) {
            (Some((user, password)), true) => {
                format!("http://{user}:{password}@127.0.0.1:{}", self.daemon.port)
            }
            _ => format!("http://127.0.0.1:{}", self.daemon.port),
        }
    }

    /// The proxy's own log so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.daemon.dir.join(name)).unwrap_or_default()
    }
}

/// A folder the proxy, which drops root for its own user, can write its logs in.
fn open_folder(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("create the proxy folder");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("open the folder");
}

/// squid with its stock access rules (`deny !Safe_ports`, `deny CONNECT !SSL_ports`,
/// `allow localhost`), no cache, and `ssl_port` counted among the SSL ports as an admin
/// would add an internal https host; with `auth`, basic authentication for that user.
pub fn squid(dir: &Path, ssl_port: u16, auth: Option<(&str, &str)>, test: &str) -> Option<ForwardProxy> {
    squid_with(dir, ssl_port, auth, "", test)
}

/// [`squid`] with `extra` lines ahead of its `cache deny all` (so `cache allow all` there
/// turns caching on): what an admin adds for big downloads, say.
pub fn squid_with(
    dir: &Path,
    ssl_port: u16,
    auth: Option<(&str, &str)>,
    extra: &str,
    test: &str,
) -> Option<ForwardProxy> {
    let program = require("squid", test)?;
    open_folder(dir);
    let d = dir.display();
    let mut auth_lines = String::new();
    if let Some((user, password)) = auth {
        let hash =
            Command::new("openssl").args(["passwd", "-apr1", password]).output().expect("openssl passwd");
        let hash = String::from_utf8_lossy(&hash.stdout).trim().to_owned();
        std::fs::write(dir.join("passwd"), format!("{user}:{hash}\n")).expect("write the password file");
        auth_lines = format!(
            "auth_param basic program /usr/lib/squid/basic_ncsa_auth {d}/passwd\n\
             auth_param basic realm test\nacl authenticated proxy_auth REQUIRED\nhttp_access deny !authenticated\n"
        );
    }
    let mut daemon = Daemon::spawn(dir, "squid", |port| {
        let conf = format!(
            "http_port 127.0.0.1:{port}\n\
             acl SSL_ports port 443 {ssl_port}\n\
             acl Safe_ports port 80 21 443 70 210 1025-65535 280 488 591 777\n\
             acl CONNECT method CONNECT\n\
             http_access deny !Safe_ports\n\
             http_access deny CONNECT !SSL_ports\n\
             {auth_lines}\
             http_access allow localhost\n\
             http_access deny all\n\
             {extra}\n\
             cache deny all\n\
             pid_filename {d}/squid.pid\n\
             access_log stdio:{d}/access.log\n\
             cache_log {d}/cache.log\n\
             cache_store_log none\n\
             coredump_dir {d}\n\
             shutdown_lifetime 0 seconds\n\
             memory_cache_shared off\n\
             collapsed_forwarding_shared_entries_limit 0\n"
        );
        let conf_path = dir.join("squid.conf");
        std::fs::write(&conf_path, conf).expect("write squid.conf");
        let mut command = Command::new(&program);
        command.arg("-N").arg("-f").arg(&conf_path);
        command
    });
    daemon.graceful = true;
    let credentials = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    Some(ForwardProxy { daemon, credentials })
}

/// tinyproxy with its stock rules (`Allow 127.0.0.1`, `ConnectPort 443`, `ConnectPort
/// 563`) plus `ssl_port`; with `auth`, `BasicAuth` for that user.
pub fn tinyproxy(dir: &Path, ssl_port: u16, auth: Option<(&str, &str)>, test: &str) -> Option<ForwardProxy> {
    let program = require("tinyproxy", test)?;
    open_folder(dir);
    let d = dir.display();
    let auth_line = auth.map(|(u, p)| format!("BasicAuth {u} {p}\n")).unwrap_or_default();
    let daemon = Daemon::spawn(dir, "tinyproxy", |port| {
        let conf = format!(
            "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 60\n\
             LogFile \"{d}/tinyproxy.log\"\nLogLevel Info\nPidFile \"{d}/tinyproxy.pid\"\nMaxClients 50\n\
             Allow 127.0.0.1\nConnectPort 443\nConnectPort 563\nConnectPort {ssl_port}\n{auth_line}"
        );
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let mut command = Command::new(&program);
        command.arg("-d").arg("-c").arg(&conf_path);
        command
    });
    let credentials = auth.map(|(u, p)| (u.to_owned(), p.to_owned()));
    Some(ForwardProxy { daemon, credentials })
}

/// SeaweedFS's S3 gateway (`weed mini`) on loopback ports, with one identity that may do
/// everything and anonymous read of `models/public/`, and the bucket `models`. Stopped by
/// PID with SIGKILL: its folder is thrown away (SIGTERM takes ~14 s).
pub struct Seaweed {
    pub daemon: Daemon,
    pub access_key: String,
    pub secret_key: String,
}

impl Seaweed {
    pub const BUCKET: &str = "models";

    /// Starts `weed mini` in `dir`; `None` (after the skip line) when it is not installed.
    pub fn start(dir: &Path, test: &str) -> Option<Seaweed> {
        let program = find_weed().or_else(|| require("weed", test))?;
        std::fs::create_dir_all(dir.join("data")).expect("create the SeaweedFS folder");
        let (access_key, secret_key) = ("AKIDLOOPBACKTEST".to_owned(), "loopback-secret-Key/42".to_owned());
        let config = format!(
            r#"{{"identities":[{{"name":"ci","credentials":[{{"accessKey":"{access_key}","secretKey":"{secret_key}"}}],"actions":["Admin","Read","List","Tagging","Write"]}},{{"name":"anonymous","actions":["Read:{}/public/*"]}}]}}"#,
            Seaweed::BUCKET
        );
        std::fs::write(dir.join("s3.json"), config).expect("write s3.json");
        let daemon = Daemon::spawn_picking(dir, "weed", paired_port, |s3| {
            // Each service also listens on its port + 10000 (gRPC): take ports whose pair is free.
            let [master, volume, filer] = [0; 3].map(|_| paired_port());
            let mut command = Command::new(&program);
            command.arg("mini").args([
                format!("-dir={}", dir.join("data").display()),
                "-ip=127.0.0.1".into(),
                "-ip.bind=127.0.0.1".into(),
                "-master.telemetry=false".into(),
                "-webdav=false".into(),
                "-admin.ui=false".into(),
                "-s3.port.iceberg=0".into(),
                "-s3.port.lance=0".into(),
                format!("-s3.port={s3}"),
                format!("-master.port={master}"),
                format!("-volume.port={volume}"),
                format!("-filer.port={filer}"),
                format!("-s3.config={}", dir.join("s3.json").display()),
                format!("-bucket={}", Seaweed::BUCKET),
            ]);
            command
        });
        let weed = Seaweed { daemon, access_key, secret_key };
        weed.wait_ready();
        Some(weed)
    }

    /// Waits until the bucket answers: an anonymous read of a missing public object says
    /// NoSuchKey (not NoSuchBucket, not a refused connection).
    fn wait_ready(&self) {
        let started = Instant::now();
        loop {
            let answer = raw_get(self.daemon.port, &format!("/{}/public/.ready", Seaweed::BUCKET));
            if answer.contains("NoSuchKey") {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(90), "SeaweedFS did not get ready: {answer}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.daemon.port)
    }

    /// The environment that points the tool at this store with the working credentials.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

/// moto's S3 server (`moto_server`), the S3 many teams test with: it keeps everything in
/// memory, checks no signature, and starts with no bucket (`start` makes [`Moto::BUCKET`]).
pub struct Moto {
    pub daemon: Daemon,
}

impl Moto {
    pub const BUCKET: &str = "models";

    /// Starts `moto_server`; `None` (after the skip line) when it is not installed.
    pub fn start(dir: &Path, test: &str) -> Option<Moto> {
        let program = find_in_venv("moto_server", "moto-venv").or_else(|| require("moto_server", test))?;
        std::fs::create_dir_all(dir).expect("create the moto folder");
        let daemon = Daemon::spawn(dir, "moto", |port| {
            let mut command = Command::new(&program);
            command.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
            command
        });
        let moto = Moto { daemon };
        let started = Instant::now();
        // The bucket, made by a plain PUT (moto checks no signature): also the readiness probe.
        while !raw_request(moto.daemon.port, "PUT", &format!("/{}", Moto::BUCKET)).starts_with("HTTP/1.1 200")
        {
            assert!(started.elapsed() < Duration::from_secs(90), "moto did not get ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(moto)
    }

    /// What moto answers to `GET path` (a listing of uploads, say), head and body.
    pub fn get(&self, path: &str) -> String {
        raw_request(self.daemon.port, "GET", path)
    }

    /// The environment that points the tool at this store.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.daemon.port)),
            ("AWS_ACCESS_KEY_ID", "AKIDMOTOTEST".into()),
            ("AWS_SECRET_ACCESS_KEY", "moto-secret".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

/// `program` in the virtualenv `.ci/run` makes under the target folder (the pinned
/// version), else on PATH.
fn find_in_venv(program: &str, venv: &str) -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join(venv).join("bin").join(program);
    path.is_file().then_some(path).or_else(|| find_program(program))
}

/// `weed` on PATH, or where `.ci/run` installs it (a virtualenv under the target folder).
pub fn find_weed() -> Option<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let venv = target.join("seaweedfs-venv/bin/weed");
    find_program("weed").or_else(|| venv.is_file().then_some(venv))
}

/// A free port whose neighbour 10000 above is free too.
fn paired_port() -> u16 {
    loop {
        let port = server_port();
        // The twin is handed out too: another server of this run taking it (a squid, an
        // nginx) once broke SeaweedFS's own traffic between its parts.
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() && hand_out(port + 10_000)
        {
            return port;
        }
    }
}

/// A plain GET on loopback, the whole answer as text (empty when nothing answered).
fn raw_get(port: u16, path: &str) -> String {
    raw_request(port, "GET", path)
}

/// A plain request with no body on loopback, the whole answer as text.
fn raw_request(port: u16, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return String::new() };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}
