//! The tool against real servers and proxies this test starts on loopback ports, with
//! configs it writes: nginx (plain, TLS with a private CA, `limit_rate`, ETag resume,
//! keep-alive), Apache, busybox httpd (every piece labelled HTML), squid and tinyproxy with their stock access rules (http and https URLs
//! through each, basic authentication, NO_PROXY forms). A server that is not installed
//! fails the test under CI=true and prints a skip line elsewhere; each server is stopped
//! by its PID when the test ends.

use std::path::Path;
use std::time::Duration;

use tests::daemons::{Busybox, ForwardProxy, Nginx, NginxConfig, squid, tinyproxy};
use tests::tls::Pki;
use tests::{Pin, Sandbox, payload, sha256_hex, wait_until};

use crate::{FAST, sandbox};

/// A folder of files nginx serves: `name` → bytes.
fn served(sb: &Sandbox, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let root = sb.dir.join("www");
    for (name, data) in files {
        std::fs::create_dir_all(root.join(name).parent().unwrap()).unwrap();
        std::fs::write(root.join(name), data).unwrap();
    }
    root
}

/// A number for each nginx this process starts: its folder's name.
fn next_instance() -> usize {
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    STARTED.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

fn nginx(sb: &Sandbox, root: &Path, config: &NginxConfig<'_>, test: &str) -> Option<Nginx> {
    Nginx::start(root, &sb.dir.join(format!("nginx-{}", next_instance())), config, test)
}

fn fetch(sb: &Sandbox, extra: &[&str]) -> tests::Run {
    let mut args = vec!["fetch"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    sb.models(&args)
}

#[test]
fn nginx_serves_a_fetch_and_a_killed_fetch_resumes_with_its_etag() {
    let mut sb = sandbox();
    let data = payload(3 << 20, 700);
    let root = served(&sb, &[("m.bin", &data)]);
    let slow = NginxConfig { limit_rate: Some("1m"), ..NginxConfig::default() };
    let Some(server) = nginx(&sb, &root, &slow, "nginx resume") else { return };
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[server.url("/m.bin")])]);
    sb.set_env("XTASK_MODELS_CACHE_DIR", sb.dir.join("cache").to_str().unwrap());
    let partial = sb.dir.join("cache/partial").join(format!("{}.part", sha256_hex(&data)));
    let mut child = sb.spawn_models(&["fetch"]);
    wait_until(Duration::from_secs(30), "a megabyte on disk", || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 1 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    fetch(&sb, &[]).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    let log = server.access_log();
    let resumed = log.lines().rfind(|l| l.contains("GET /m.bin")).unwrap_or_default().to_owned();
    let fields: Vec<&str> = resumed.split(' ').collect();
    assert_eq!(fields[4], "206", "a range answer: {log}");
    let (range, if_range) = fields[5].split_once('|').unwrap();
    assert!(range.starts_with("bytes=") && range.ends_with('-'), "{log}");
    // nginx writes the quotes of the ETag as \x22 in its log.
    assert!(if_range.starts_with("\\x22") && if_range.len() > 8, "nginx's ETag went back as If-Range: {log}");
    let sent: u64 = fields[6].parse().unwrap();
    assert!(sent < data.len() as u64, "only the rest was sent: {log}");
}

#[test]
fn nginx_over_tls_with_a_private_ca_is_trusted_only_through_ssl_cert_file() {
    let mut sb = sandbox();
    let data = payload(200_000, 701);
    let root = served(&sb, &[("m.bin", &data)]);
    let pki = Pki::create(&sb.dir.join("pki"));
    let tls = NginxConfig { tls: Some(&pki), ..NginxConfig::default() };
    let Some(server) = nginx(&sb, &root, &tls, "nginx tls") else { return };
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[server.url("/m.bin")])]);
    let run = fetch(&sb, &["--retries", "0"]);
    run.expect(1);
    assert!(run.stderr.contains("(tls)"), "an unknown CA is refused: {}", run.stderr);
    sb.set_env("SSL_CERT_FILE", pki.ca_pem.to_str().unwrap());
    fetch(&sb, &[]).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
}

#[test]
fn connections_to_nginx_are_reused_across_files_and_redirect_hops() {
    let sb = sandbox();
    let files: Vec<(String, std::sync::Arc<Vec<u8>>)> =
        (0..40).map(|i| (format!("f{i}.bin"), payload(20_000, 710 + i))).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), d.as_slice())).collect();
    let root = served(&sb, &refs);
    let redirect =
        NginxConfig { extra: "location = /moved { return 302 /f0.bin; }", ..NginxConfig::default() };
    let Some(server) = nginx(&sb, &root, &redirect, "nginx keep-alive") else { return };
    let mut pins: Vec<Pin> =
        files.iter().map(|(n, d)| Pin::new(n, n, d, &[server.url(&format!("/{n}"))])).collect();
    pins.push(Pin::new("moved", "moved.bin", &files[0].1, &[server.url("/moved")]));
    sb.write_manifest(&pins);
    fetch(&sb, &["--jobs", "8", "--no-cache"]).expect(0);
    let log = server.access_log();
    let connections: std::collections::BTreeSet<&str> =
        log.lines().filter_map(|l| l.split(' ').next()).collect();
    // One connection per job at most, whatever the number of files and hops.
    assert!(
        connections.len() <= 8,
        "{} connections for {} requests:\n{log}",
        connections.len(),
        log.lines().count()
    );
    let lines: Vec<&str> = log.lines().collect();
    let moved = lines.iter().position(|l| l.contains("GET /moved 302")).expect("the redirect was asked");
    let hop = lines[moved..].iter().find(|l| l.contains("GET /f0.bin")).expect("the hop was followed");
    let requests_on_it: u32 = hop.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(requests_on_it > 1, "the hop after the 302 went over a kept connection, not a new one:\n{log}");
}

#[test]
fn a_split_download_asks_for_its_next_pieces_over_the_connections_it_has() {
    // The first request (`bytes=0-`) crawls at 64 KiB/s; every other piece is unthrottled.
    // With four connections the three fast ones end their pieces while the slow one has
    // megabytes left, and take halves of it: each of those requests must go over the
    // connection that just finished a piece, not a new one (a TCP and TLS handshake each,
    // on a CDN).
    let sb = sandbox();
    let data = payload(40 << 20, 731);
    let root = served(&sb, &[("big.bin", &data)]);
    let slow_start = NginxConfig {
        extra: "if ($http_range = \"bytes=0-\") { set $limit_rate 64k; }",
        ..NginxConfig::default()
    };
    let Some(server) = nginx(&sb, &root, &slow_start, "nginx keep-alive across pieces") else { return };
    sb.write_manifest(&[Pin::new("big", "big.bin", &data, &[server.url("/big.bin")])]);
    fetch(&sb, &["--no-cache", "--connections", "4"]).expect(0);
    assert_eq!(std::fs::read(sb.file("big.bin")).unwrap(), *data);
    let log = server.access_log();
    let gets: Vec<&str> = log.lines().filter(|l| l.contains(" GET /big.bin 206 ")).collect();
    let connections: std::collections::BTreeSet<&str> =
        gets.iter().filter_map(|l| l.split(' ').next()).collect();
    assert!(gets.len() > 4, "the fast connections took more pieces:\n{log}");
    assert!(connections.len() <= 4, "{} connections for {} pieces:\n{log}", connections.len(), gets.len());
    let reused = gets.iter().filter(|l| l.split(' ').nth(1) != Some("1")).count();
    assert_eq!(reused, gets.len() - connections.len(), "every later piece on a kept connection:\n{log}");
}

#[test]
fn through_a_proxy_the_default_is_one_stream_and_a_squid_set_for_big_files_caches_a_split_one() {
    // squid with `range_offset_limit -1` (common for caching big downloads) and the file
    // over what it may cache fetches the whole file from the origin for every range asked
    // of it: the default must not split there. The origin caps each connection, which
    // without a proxy makes the default split.
    let test = "through_a_proxy_the_default_is_one_stream_and_a_squid_set_for_big_files_caches_a_split_one";
    let mut sb = sandbox();
    let data = payload(40 << 20, 741);
    let root = served(&sb, &[("big.bin", &data)]);
    let capped = NginxConfig { limit_rate: Some("16m"), ..NginxConfig::default() };
    let Some(origin) = nginx(&sb, &root, &capped, test) else { return };
    let Some(plain) =
        tests::daemons::squid_with(&sb.dir.join("squid"), 443, None, "range_offset_limit -1", test)
    else {
        return;
    };
    sb.write_manifest(&[Pin::new("big", "big.bin", &data, &[origin.url("/big.bin")])]);
    sb.set_env("NO_PROXY", "");
    sb.set_env("http_proxy", &plain.url(false));
    let log = sb.dir.join("attempts.log");
    fetch(&sb, &["--no-cache", "--log-file", log.to_str().unwrap()]).expect(0);
    assert_eq!(std::fs::read(sb.file("big.bin")).unwrap(), *data);
    let told = std::fs::read_to_string(&log).unwrap();
    // (The line may also say how much the hasher read back, which depends on the load.)
    let line = told.lines().find(|l| l.contains("connections 1: through a proxy")).unwrap_or_default();
    assert!(line.ends_with("(--connections N splits there too)"), "{told}");
    let sent = |log: &str| -> (usize, u64) {
        let gets: Vec<&str> = log.lines().filter(|l| l.contains(" GET /big.bin ")).collect();
        (gets.len(), gets.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum())
    };
    assert_eq!(sent(&origin.access_log()), (1, data.len() as u64), "one stream, once from the origin");

    // Set as the README says (an object size limit above the file, caching on), a split
    // download asked for by the user is fetched from the origin about once, then cached.
    let big_files = "range_offset_limit -1\nmaximum_object_size 1 GB\ncache_mem 256 MB\nmaximum_object_size_in_memory 1 GB\ncache allow all";
    let Some(caching) = tests::daemons::squid_with(&sb.dir.join("squid-big"), 443, None, big_files, test)
    else {
        return;
    };
    sb.set_env("http_proxy", &caching.url(false));
    let before = origin.access_log();
    for round in 0..2 {
        std::fs::remove_dir_all(&sb.checkpoints).ok();
        fetch(&sb, &["--no-cache", "--connections", "4"]).expect(0);
        assert_eq!(std::fs::read(sb.file("big.bin")).unwrap(), *data, "round {round}");
    }
    let after = origin.access_log();
    let (_, from_origin) = sent(&after[before.len()..]);
    assert!(
        from_origin <= data.len() as u64 * 3 / 2,
        "{from_origin} bytes from the origin for two split fetches of {}:\n{}",
        data.len(),
        &after[before.len()..]
    );
}

/// A proxy matrix: http and https URLs, through `proxy`, to nginx on loopback.
fn through(proxy: &ForwardProxy, sb: &mut Sandbox, http: &Nginx, https: &Nginx, data: &[u8], ca: &Path) {
    sb.set_env("SSL_CERT_FILE", ca.to_str().unwrap());
    let url = proxy.url(true);
    sb.set_env("http_proxy", &url);
    sb.set_env("HTTPS_PROXY", &url);
    for (name, server) in [("plain", http), ("secure", https)] {
        std::fs::remove_dir_all(&sb.checkpoints).ok();
        std::fs::remove_dir_all(&sb.cache).ok();
        sb.write_manifest(&[Pin::new(name, &format!("{name}.bin"), data, &[server.url("/m.bin")])]);
        let run = fetch(sb, &["--retries", "0"]);
        run.expect(0);
        assert_eq!(std::fs::read(sb.file(&format!("{name}.bin"))).unwrap(), data);
    }
}

/// Starts a proxy in a folder, letting https through to a port, with optional basic auth.
type StartProxy = fn(&Path, u16, Option<(&str, &str)>, &str) -> Option<ForwardProxy>;

fn proxy_matrix(make: StartProxy, log: &str, test: &str) {
    let mut sb = sandbox();
    let data = payload(100_000, 720);
    let root = served(&sb, &[("m.bin", &data)]);
    let pki = Pki::create(&sb.dir.join("pki"));
    let Some(http) = nginx(&sb, &root, &NginxConfig::default(), test) else { return };
    let tls = NginxConfig { tls: Some(&pki), ..NginxConfig::default() };
    let Some(https) = nginx(&sb, &root, &tls, test) else { return };
    let Some(open) = make(&sb.dir.join("open-proxy"), https.daemon.port, None, test) else { return };
    through(&open, &mut sb, &http, &https, &data, &pki.ca_pem);
    let seen = open.log(log);
    assert!(
        seen.contains(&format!("http://127.0.0.1:{}/m.bin", http.daemon.port)),
        "the http URL reached the proxy in absolute form:\n{seen}"
    );

    // NO_PROXY by name and by CIDR block: the proxy sees nothing more.
    let before = open.log(log).lines().count();
    for no_proxy in ["127.0.0.1", "127.0.0.0/8"] {
        sb.set_env("NO_PROXY", no_proxy);
        std::fs::remove_dir_all(&sb.checkpoints).ok();
        std::fs::remove_dir_all(&sb.cache).ok();
        fetch(&sb, &["--retries", "0"]).expect(0);
    }
    sb.set_env("NO_PROXY", "");
    assert_eq!(open.log(log).lines().count(), before, "NO_PROXY bypassed the proxy");

    // With basic authentication: refused without credentials, named as the proxy's doing.
    let Some(guarded) = make(&sb.dir.join("auth-proxy"), https.daemon.port, Some(("alice", "s3cret")), test)
    else {
        return;
    };
    through(&guarded, &mut sb, &http, &https, &data, &pki.ca_pem);
    for scheme_proxy in ["http_proxy", "HTTPS_PROXY"] {
        sb.set_env(scheme_proxy, &guarded.url(false));
    }
    for server in [&http, &https] {
        std::fs::remove_dir_all(&sb.checkpoints).ok();
        std::fs::remove_dir_all(&sb.cache).ok();
        sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[server.url("/m.bin")])]);
        let run = fetch(&sb, &["--retries", "0"]);
        run.expect(1);
        assert!(run.stderr.contains("(proxy-refused)") && run.stderr.contains("407"), "{}", run.stderr);
        assert!(!run.output().contains("s3cret"), "{}", run.output());
    }
}

#[test]
fn squid_with_its_stock_rules_carries_http_and_https_with_and_without_authentication() {
    proxy_matrix(squid, "access.log", "squid interop");
}

#[test]
fn tinyproxy_with_its_stock_rules_carries_http_and_https_with_and_without_authentication() {
    proxy_matrix(tinyproxy, "tinyproxy.log", "tinyproxy interop");
}

#[test]
fn apache_with_file_etag_none_resumes_a_killed_split_download_piece_by_piece() {
    // `FileETag None`, a common hardening line: only Last-Modified. The sidecar used to
    // keep the date's first word, so every piece after a kill came back whole (200).
    let test = "apache_with_file_etag_none_resumes_a_killed_split_download_piece_by_piece";
    let sb = sandbox();
    let data = payload(40 << 20, 870);
    let root = served(&sb, &[("big.bin", &data)]);
    // An hour old: a Last-Modified within the last second is one Apache itself treats as
    // weak (and answers a dated If-Range with the whole file), not the case here.
    let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(root.join("big.bin"))
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    // 2 MiB/s a connection: the fetch cannot end before the kill, whatever the machine.
    let extra =
        "FileETag None\n<Location />\n  SetOutputFilter RATE_LIMIT\n  SetEnv rate-limit 2048\n</Location>";
    let Some(apache) = tests::daemons::Apache::start(&root, &sb.dir.join("apache"), extra, test) else {
        return;
    };
    sb.write_manifest(&[Pin::new("big", "big.bin", &data, &[apache.url("/big.bin")])]);
    let sidecar = sb.file(&format!("big.bin.{}.part-ranges", &sha256_hex(&data)[..12]));
    let mut child = sb.spawn_models(&["fetch", "--no-cache", "--backoff-ms", "1"]);
    wait_until(Duration::from_secs(120), "4 MiB recorded in the sidecar", || {
        std::fs::read_to_string(&sidecar).is_ok_and(|t| tests::pieces_done(&t) >= 4 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let before = apache.access_log().lines().count();
    let run = fetch(&sb, &["--no-cache"]);
    run.expect(0);
    assert_eq!(std::fs::read(sb.file("big.bin")).unwrap(), *data);
    assert!(!run.stderr.contains("changed on the server"), "{}", run.stderr);
    let log = apache.access_log();
    let again: Vec<&str> = log.lines().skip(before).collect();
    assert!(!again.is_empty(), "{log}");
    assert!(
        again.iter().all(|l| l.contains(" 206 ")),
        "every piece answered as a piece:\n{}",
        again.join("\n")
    );
    // (The killed run's own requests may end, and be logged, after the kill: its probe
    // asked `bytes=0-` with no If-Range.)
    let pieces: Vec<&&str> = again.iter().filter(|l| !l.contains("bytes=0-|-")).collect();
    assert!(!pieces.is_empty());
    assert!(
        pieces.iter().all(|l| l.contains(" GMT ")),
        "with the whole date as If-Range:\n{}",
        again.join("\n")
    );
}

#[test]
fn apache_with_a_weak_etag_gets_one_stream_and_nothing_is_thrown_away() {
    // Apache gives a weak ETag for a file modified within the last second (here: dated
    // in the future), and rightly answers a dated If-Range with the whole file. Splitting
    // used to end in "the file changed on the server" and a second download.
    let test = "apache_with_a_weak_etag_gets_one_stream_and_nothing_is_thrown_away";
    let sb = sandbox();
    let data = payload(40 << 20, 871);
    let root = served(&sb, &[("big.bin", &data)]);
    let tomorrow = std::time::SystemTime::now() + Duration::from_secs(86_400);
    std::fs::File::options().write(true).open(root.join("big.bin")).unwrap().set_modified(tomorrow).unwrap();
    let Some(apache) = tests::daemons::Apache::start(&root, &sb.dir.join("apache"), "", test) else { return };
    sb.write_manifest(&[Pin::new("big", "big.bin", &data, &[apache.url("/big.bin")])]);
    let run = fetch(&sb, &["--no-cache"]);
    run.expect(0);
    assert_eq!(std::fs::read(sb.file("big.bin")).unwrap(), *data);
    assert!(!run.stderr.contains("changed on the server"), "{}", run.stderr);
    let log = apache.access_log();
    assert_eq!(log.lines().count(), 1, "one request, one stream:\n{log}");
}

#[test]
fn busybox_httpd_labelling_every_piece_html_serves_a_split_fetch_and_a_resume() {
    // busybox httpd (NAS boxes, routers, small containers) answers a range with
    // `Content-type: text/html` for a file type it does not know, and ignores If-Range:
    // the bytes decide what an answer is, not its label.
    let test = "busybox_httpd_labelling_every_piece_html_serves_a_split_fetch_and_a_resume";
    let mut sb = sandbox();
    let data = payload(40 << 20, 742);
    let root = served(&sb, &[("m.pth", &data)]);
    let Some(server) = Busybox::start(&root, &sb.dir.join("busybox"), test) else { return };
    sb.write_manifest(&[Pin::new("m", "m.pth", &data, &[server.url("/m.pth")])]);
    sb.set_env("XTASK_MODELS_CACHE_DIR", sb.dir.join("cache").to_str().unwrap());
    let run = fetch(&sb, &["--connections", "4", "--json"]);
    run.expect(0);
    assert!(!run.stderr.contains("HTML"), "{}", run.stderr);
    assert_eq!(std::fs::read(sb.file("m.pth")).unwrap(), *data);
    let json: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(json["models"][0]["connections"], 4, "split in four: {}", run.stdout);

    // A fetch killed half-way resumes from busybox's text/html 206.
    std::fs::remove_file(sb.file("m.pth")).unwrap();
    let cache = sb.dir.join("cache");
    std::fs::remove_dir_all(&cache).unwrap();
    let partial = cache.join("partial").join(format!("{}.part", sha256_hex(&data)));
    let mut child = sb.spawn_models(&["fetch", "--connections", "1", "--limit-rate", "4M"]);
    wait_until(Duration::from_secs(60), "a megabyte on disk", || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() >= 1 << 20)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let run = fetch(&sb, &["--connections", "1"]);
    run.expect(0);
    assert!(run.stderr.contains("resuming at"), "{}", run.stderr);
    assert_eq!(std::fs::read(sb.file("m.pth")).unwrap(), *data);
}
