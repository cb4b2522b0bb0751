//! What a hostile tester and real servers found: each test is named for the promise it
//! keeps, and each failed before the fix.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tests::daemons::Mount;
use tests::tls::{Pki, TlsServer};
use tests::{Pin, Reply, Server, payload, sha256_hex, wait_until};

use crate::{FAST, sandbox, scenario};

fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = base.to_vec();
    all.extend_from_slice(extra);
    all
}

// ---- Data safety -------------------------------------------------------------------

#[test]
fn add_never_resumes_a_partial_it_cannot_tie_to_the_same_url() {
    let sc = scenario();
    let (first, second) = (payload(400_000, 501), payload(400_000, 502));
    sc.serve("/one.bin", vec![Reply::Stall { body: first, after: 150_000 }]);
    sc.serve("/two.bin", vec![Reply::Body(second.clone())]);
    std::fs::write(&sc.manifest, "").unwrap();
    let one = sc.url("/one.bin");
    let run =
        sc.models(&args_with(&["add", &one, "--path", "x.bin", "--timeout", "0.5", "--retries", "0"], FAST));
    run.expect(1);
    assert!(!sc.partials().is_empty(), "the first add left its partial behind");
    let two = sc.url("/two.bin");
    sc.models(&args_with(&["add", &two, "--path", "x.bin"], FAST)).expect(0);
    let asked: Vec<_> = sc.server.gets().into_iter().filter(|r| r.path == "/two.bin").collect();
    assert_eq!(asked[0].range, None, "nothing of /one.bin is resumed against /two.bin");
    assert_eq!(std::fs::read(sc.file("x.bin")).unwrap(), *second);
    let manifest = std::fs::read_to_string(&sc.manifest).unwrap();
    assert!(manifest.contains(&sha256_hex(&second)), "the pin is the second file's: {manifest}");
}

#[test]
fn add_never_removes_or_overwrites_a_file_it_did_not_create_and_a_dry_run_touches_nothing() {
    let sc = scenario();
    let data = payload(3000, 503);
    sc.serve("/notes.bin", vec![Reply::Body(data)]);
    std::fs::write(&sc.manifest, "").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    std::fs::write(sc.file("notes.bin"), b"my notes").unwrap();
    let url = sc.url("/notes.bin");
    let run = sc.models(&["add", &url, "--sha256", &sha256_hex(b"wrong")]);
    run.expect(2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(sc.file("notes.bin")).unwrap(), b"my notes");

    std::fs::remove_dir_all(&sc.checkpoints).unwrap();
    let run = sc.models(&["add", &url, "--path", "fresh.bin", "--dry-run"]);
    run.expect(0);
    assert!(run.stdout.contains("path = \"fresh.bin\""), "{}", run.stdout);
    assert!(!sc.checkpoints.exists(), "a dry run leaves the checkpoints folder as it was");
    let run = sc.models(&["add", &url, "--path", "fresh.bin", "--sha256", &sha256_hex(b"wrong")]);
    run.expect(1);
    assert!(!sc.file("fresh.bin").exists());
    assert!(sc.partials().is_empty(), "a refused download leaves nothing: {:?}", sc.partials());
    assert_eq!(std::fs::read_to_string(&sc.manifest).unwrap(), "");
}

#[test]
fn add_holds_the_folder_lock_so_clean_waits_for_it() {
    let sc = scenario();
    let data = payload(5000, 504);
    sc.serve("/m.bin", vec![Reply::Body(data.clone())]);
    std::fs::write(&sc.manifest, "").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    sc.server.close_gate();
    let add = sc.spawn_logged(&["add", &sc.url("/m.bin")]);
    wait_until(Duration::from_secs(30), "the add to ask for its file", || sc.server.hits("/m.bin") >= 1);
    let clean = sc.spawn_logged(&["clean"]);
    wait_until(Duration::from_secs(30), "clean to wait for the add", || {
        clean.stderr().contains("waiting for other fetch or verify processes")
    });
    sc.server.open();
    add.finish().expect(0);
    clean.finish().expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data, "clean left the add's file alone");
}

#[test]
fn manifest_paths_that_collide_with_the_tools_own_files_are_refused_with_their_position() {
    for (path, why) in [
        (".models-state", "the file where the tool keeps its stamps"),
        ("weights.part", "the tool's temp files"),
        ("a/w.part-validator", "the tool's temp files"),
        (".locks/x.bin", "lock files"),
    ] {
        let sb = sandbox();
        let pin = Pin::new("m", path, b"x", &["https://example.invalid/m".into()]);
        sb.write_manifest(&[pin]);
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.contains("models.toml:3:8:"), "{path}: {}", run.stderr);
        assert!(run.stderr.contains(why), "{path}: {}", run.stderr);
    }
}

#[test]
fn a_file_name_the_filesystem_cannot_hold_with_its_temp_suffix_is_refused_by_the_manifest_check() {
    for (name, why) in [("a".repeat(240), "longer than 231"), ("b".repeat(300), "longer than 255")] {
        let sb = sandbox();
        sb.write_manifest(&[Pin::new(
            "m",
            &format!("dir/{name}"),
            b"x",
            &["https://example.invalid/m".into()],
        )]);
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.contains("models.toml:3:8:") && run.stderr.contains(why), "{}", run.stderr);
    }
}

#[test]
fn nothing_is_written_through_a_symlinked_subfolder_and_the_link_is_named() {
    let sc = scenario();
    let data = sc.model("a", "sub/a.bin", payload(4000, 505));
    let elsewhere = sc.dir.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    std::os::unix::fs::symlink(&elsewhere, sc.file("sub")).unwrap();
    let run = sc.models(&["fetch", "--no-cache"]);
    run.expect(1);
    assert!(
        run.stderr.contains(&format!("{} is a symbolic link", sc.file("sub").display())),
        "{}",
        run.stderr
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0, "no byte left the checkpoints folder");
    assert_eq!(sc.server.hits("/a"), 0, "refused before any request");

    // A checkpoints folder that is itself a link stays supported.
    let real = sc.dir.join("real");
    std::fs::create_dir_all(&real).unwrap();
    let linked = sc.dir.join("linked");
    std::os::unix::fs::symlink(&real, &linked).unwrap();
    let args = ["models", "fetch", "--manifest", sc.manifest.to_str().unwrap()];
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--checkpoints-dir".into(), linked.display().to_string()]);
    sc.run_raw(&args).expect(0);
    assert_eq!(std::fs::read(real.join("sub/a.bin")).unwrap(), *data);
}

#[test]
fn clean_in_a_mistyped_folder_removes_nothing_and_unknown_refuses_a_tree_holding_git() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let src = sb.dir.join("src");
    for (file, text) in
        [("main.rs", "fn main() {}"), ("vendor/lib/.git/HEAD", "ref"), ("lib/data.bin", "data")]
    {
        std::fs::create_dir_all(src.join(file).parent().unwrap()).unwrap();
        std::fs::write(src.join(file), text).unwrap();
    }
    let base = [
        "models",
        "clean",
        "--manifest",
        sb.manifest.to_str().unwrap(),
        "--checkpoints-dir",
        src.to_str().unwrap(),
    ];
    let base: Vec<String> = base.iter().map(|a| a.to_string()).collect();
    let run = sb.run_raw(&base);
    run.expect(0);
    assert!(run.stdout.contains("left alone main.rs"), "{}", run.stdout);
    assert!(run.stdout.contains("removed 0 file(s)"), "{}", run.stdout);
    let mut unknown = base.clone();
    unknown.push("--unknown".into());
    let run = sb.run_raw(&unknown);
    run.expect(2);
    assert!(run.stderr.contains("refusing `--unknown`") && run.stderr.contains(".git"), "{}", run.stderr);
    for file in ["main.rs", "vendor/lib/.git/HEAD", "lib/data.bin"] {
        assert!(src.join(file).exists(), "{file} is still there");
    }
}

#[test]
fn a_size_typo_in_a_pin_is_a_pin_error_and_keeps_the_good_cache_entry() {
    let sc = scenario();
    let data = sc.model("m", "m.bin", payload(6000, 506));
    sc.models(&["fetch"]).expect(0);
    let other = sc.sibling();
    let mut typo = Pin::new("m", "m.bin", &data, &[sc.url("/m")]);
    typo.size += 1;
    other.write_manifest(&[typo]);
    let run = other.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("(bad-pin)") && run.stderr.contains("fix `size`"), "{}", run.stderr);
    let entry = sc.cache.join("sha256").join(sha256_hex(&data));
    assert_eq!(std::fs::read(entry).unwrap(), *data, "the entry is kept");
}

#[test]
fn a_resume_needs_only_the_rest_to_fit_and_a_full_target_disk_leaves_nothing_behind() {
    let sc = scenario();
    let Some(_small) = Mount::tmpfs(&sc.checkpoints, "3m", "resume on a small disk") else { return };
    let data = sc.model("big", "big.bin", payload(3_040_870, 507));
    let partial = sc.file(&format!("big.bin.{}.part", &sha256_hex(&data)[..12]));
    std::fs::write(&partial, &data[..2_000_000]).unwrap();
    let run = sc.models(&["fetch", "--no-cache"]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    assert_eq!(sc.server.gets()[0].range.as_deref(), Some("bytes=2000000-"));
    std::fs::remove_file(sc.file("big.bin")).unwrap();

    // The cache (on the big disk) could take a 4 MiB file; the 3 MiB checkpoints disk,
    // which gets a copy, cannot: refused up front, naming it, with nothing left behind.
    let other = sc.sibling();
    let huge = payload(4 << 20, 508);
    sc.serve("/huge", vec![Reply::Body(huge.clone())]);
    let pin = Pin::new("huge", "huge.bin", &huge, &[sc.url("/huge")]);
    other.write_manifest(&[pin]);
    let args: Vec<String> =
        ["models", "fetch", "--manifest", other.manifest.to_str().unwrap(), "--checkpoints-dir"]
            .iter()
            .map(|a| a.to_string())
            .chain([sc.checkpoints.display().to_string()])
            .collect();
    let run = other.run_raw(&args);
    run.expect(1);
    assert!(
        run.stderr
            .contains(&format!("not enough free space for the download in {}", sc.checkpoints.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`--checkpoints-dir DIR`"), "{}", run.stderr);
    assert_eq!(sc.server.hits("/huge"), 0, "refused before any request");
    let left: Vec<_> = std::fs::read_dir(&sc.checkpoints).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "only the tool's own folder: {left:?}"
    );
}

#[test]
fn verify_and_run_work_on_a_read_only_checkpoints_folder() {
    let sc = scenario();
    let Some(mount) = Mount::tmpfs(&sc.checkpoints, "4m", "read-only checkpoints") else { return };
    let data = sc.model("m", "m.bin", payload(20_000, 509));
    sc.models(&["fetch"]).expect(0);
    mount.read_only();
    let run = sc.models(&["verify"]);
    run.expect(0);
    assert!(run.stderr.contains("read-only"), "said once: {}", run.stderr);
    let run = sc.models(&["verify", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["summary"]["ok"], 1);
    let script = "wc -c < \"$MODELS_CHECKPOINTS_DIR/m.bin\"";
    let run = sc.models(&["run", "--", "sh", "-c", script]);
    run.expect(0);
    assert_eq!(run.stdout.trim(), data.len().to_string());
}

// ---- Secrets -----------------------------------------------------------------------

const SECRET_KEYS: &[&str] = &[
    "X-Goog-Signature",
    "X-Goog-Credential",
    "X-Amz-Credential",
    "private_token",
    "client_secret",
    "access_key",
    "hf_token",
    "Policy",
    "%74oken",
];

#[test]
fn secret_query_values_and_userinfo_never_reach_stderr_json_or_the_log() {
    let sc = scenario();
    for (i, key) in SECRET_KEYS.iter().enumerate() {
        let path = format!("/s{i}?{key}=SECRET{i}&expires=1700000000");
        sc.serve(&path, vec![Reply::status(403)]);
        let url = sc.url(&path).replace("http://", "http://alice:PW@");
        sc.add(Pin::new(&format!("m{i}"), &format!("m{i}.bin"), &payload(10, i as u64), &[url]));
    }
    let log = sc.dir.join("fetch.log");
    // --verbose: every source given up on, and every block, goes to stderr too.
    let run = sc.models(&["fetch", "--json", "--verbose", "--log-file", log.to_str().unwrap()]);
    run.expect(1);
    let log = std::fs::read_to_string(&log).unwrap();
    for (channel, text) in [("stderr", &run.stderr), ("json", &run.stdout), ("log", &log)] {
        for needle in ["SECRET", "PW", "1700000000"] {
            assert!(!text.contains(needle), "{needle} in {channel}:\n{text}");
        }
        assert!(text.contains("***"), "{channel} shows where a secret was: {text}");
    }
}

#[test]
fn userinfo_never_reaches_manifest_proxy_or_mirror_errors() {
    let sb = sandbox();
    let bad = Pin::new("m", "m.bin", b"x", &["https://alice:PW@example.invalid/a b".into()]);
    sb.write_manifest(&[bad]);
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(!run.output().contains("PW") && run.output().contains("***@"), "{}", run.output());

    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://example.invalid/m".into()])]);
    let run = sb.models(&["fetch", "--mirror", "ftp://alice:PW@mirror.invalid/"]);
    run.expect(2);
    assert!(!run.output().contains("PW"), "{}", run.output());
    sb.set_env("XTASK_MODELS_MIRRORS", "ftp://alice:PW@mirror.invalid/");
    let run = sb.models(&["fetch"]);
    run.expect(2);
    assert!(!run.output().contains("PW"), "{}", run.output());

    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://example.invalid/m".into()])]);
    sb.set_env("HTTPS_PROXY", "socks9://alice:PW@proxy.invalid:1");
    let run = sb.models(&["fetch", "--retries", "0"]);
    run.expect(1);
    assert!(!run.output().contains("PW") && run.output().contains("proxy"), "{}", run.output());
}

#[test]
fn netrc_default_credentials_stay_on_the_host_the_manifest_names() {
    let mut sc = scenario();
    let data = payload(3000, 510);
    let cdn = sc.server.url_as_localhost("/cdn/m.bin");
    sc.serve("/private/m.bin", vec![Reply::Redirect(cdn)]);
    sc.serve("/cdn/m.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/private/m.bin"]);
    let netrc = sc.dir.join("netrc-default");
    std::fs::write(&netrc, "default login anon password guest\n").unwrap();
    sc.set_env("NETRC", netrc.to_str().unwrap());
    sc.models(&["fetch"]).expect(0);
    let gets = sc.server.gets();
    assert_eq!(
        gets[0].authorization.as_deref(),
        Some("Basic YW5vbjpndWVzdA=="),
        "anon:guest to the named host"
    );
    assert_eq!(gets[1].authorization, None, "not to the host a redirect leads to");
}

fn form_to_plain_http(_path: &str) -> Vec<u8> {
    let page = r#"<!DOCTYPE html><html><head><title>Virus scan warning</title></head><body>
        <form id="download-form" action="http://127.0.0.1:9/download" method="get">
        <input type="hidden" name="id" value="X"><input type="submit" value="Download anyway"></form></body></html>"#;
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
        page.len()
    )
    .into_bytes()
}

#[test]
fn an_https_page_whose_form_points_at_plain_http_is_refused_like_a_redirect() {
    let mut sb = sandbox();
    let pki = Pki::create(&sb.dir.join("pki"));
    let server = TlsServer::start(&pki, form_to_plain_http);
    let url = format!("https://127.0.0.1:{}/uc?export=download&id=X", server.port);
    sb.write_manifest(&[Pin::new("m", "m.bin", &payload(10, 511), &[url])]);
    sb.set_env("SSL_CERT_FILE", pki.ca_pem.to_str().unwrap());
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(
        run.stderr.contains("(insecure-redirect)") && run.stderr.contains("to plain http"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_manifest_name_with_shell_syntax_is_one_quoted_word_in_the_hook() {
    let sb = sandbox();
    let git = |args: &[&str]| tests::git(&sb.dir, args);
    assert!(git(&["init", "-q"]).status.success());
    let manifest = sb.dir.join("m'$(touch PWNED)'.toml");
    std::fs::write(&manifest, "# nothing pinned yet\n").unwrap();
    let tool = env!("CARGO_BIN_EXE_xtask-under-test");
    let install = ["models", "hook", "install", "--command", tool, "--manifest", manifest.to_str().unwrap()];
    let install: Vec<String> = install.iter().map(|a| a.to_string()).collect();
    sb.run_raw(&install).expect(0);
    assert!(git(&["add", "-A"]).status.success());
    let commit = git(&["commit", "-q", "-m", "x"]);
    assert!(commit.status.success(), "{}", String::from_utf8_lossy(&commit.stderr));
    assert!(!sb.dir.join("PWNED").exists(), "a file name is never run as code");
}

// ---- Panics and hangs ---------------------------------------------------------------

#[test]
fn an_absurd_retry_after_date_is_ignored_and_never_panics() {
    let sc = scenario();
    let data = payload(2000, 512);
    let far = Reply::status_with(429, "Retry-After", "Sun, 06 Nov 400000000000 08:49:37 GMT");
    sc.serve("/m", vec![far, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let log = sc.dir.join("log");
    let run = sc.models(&args_with(&["fetch", "--log-file", log.to_str().unwrap()], FAST));
    run.expect(0);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
}

#[test]
fn a_huge_retries_count_is_a_usage_error_not_a_panic() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let run = sb.models(&["fetch", "--retries", "4294967295"]);
    run.expect(2);
    assert!(run.stderr.contains("--retries"), "{}", run.stderr);
}

#[test]
fn sizes_that_would_overflow_are_refused_by_the_manifest_check_never_a_panic() {
    let sb = sandbox();
    let mut a = Pin::new("a", "a.bin", b"x", &["https://example.invalid/a".into()]);
    a.size = u64::MAX;
    let mut b = Pin::new("b", "b.bin", b"x", &["https://example.invalid/b".into()]);
    b.size = u64::MAX;
    sb.write_manifest(&[a, b]);
    for command in [&["verify", "--manifest-only"][..], &["status"], &["fetch"]] {
        let run = sb.models(command);
        run.expect(2);
        assert!(run.stderr.contains("more than any checkpoint"), "{command:?}: {}", run.stderr);
    }
}

#[test]
fn a_closed_pipe_ends_quietly_and_a_full_stdout_is_an_error() {
    let sc = scenario();
    for i in 0..3 {
        sc.model(&format!("m{i}"), &format!("m{i}.bin"), payload(100, 520 + i));
    }
    let tool = env!("CARGO_BIN_EXE_xtask-under-test");
    let (m, c) = (sc.manifest.display().to_string(), sc.checkpoints.display().to_string());
    let piped = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{tool}' models status --manifest '{m}' --checkpoints-dir '{c}' | head -1; echo \"tool=${{PIPESTATUS:-done}}\""))
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(String::from_utf8_lossy(&piped.stdout).starts_with("NAME"), "the first line got through");

    let full = std::process::Command::new(tool)
        .args(["models", "status", "--manifest", &m, "--checkpoints-dir", &c])
        .stdout(std::fs::File::options().write(true).open("/dev/full").unwrap())
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write the results to standard output") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_fifo_as_a_source_is_refused_at_once_instead_of_hanging() {
    let sb = sandbox();
    let fifo = sb.dir.join("pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = payload(100, 530);
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[format!("file://{}", fifo.display())])]);
    let started = Instant::now();
    let run = sb.models(&["fetch", "--timeout", "2"]);
    run.expect(1);
    assert!(run.stderr.contains("not a regular file"), "{}", run.stderr);
    // A directory mirror whose entry is a FIFO: the same.
    let mirror = sb.dir.join("mirror");
    std::fs::create_dir_all(mirror.join("sha256")).unwrap();
    let entry = mirror.join("sha256").join(sha256_hex(&data));
    assert!(std::process::Command::new("mkfifo").arg(&entry).status().unwrap().success());
    let run = sb.models(&["fetch", "--timeout", "2", "--mirror", mirror.to_str().unwrap()]);
    run.expect(1);
    assert!(run.stderr.matches("not a regular file").count() >= 2, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
}

#[test]
fn add_stops_an_endless_body_at_its_ceiling_and_keeps_nothing() {
    let sc = scenario();
    sc.serve("/endless.bin", vec![Reply::Unsized(payload(3 << 20, 531))]);
    std::fs::write(&sc.manifest, "").unwrap();
    let run = sc.models(&args_with(&["add", &sc.url("/endless.bin"), "--max-size", "1000000"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("larger than the allowed 1000000 bytes"), "{}", run.stderr);
    assert!(sc.partials().is_empty(), "{:?}", sc.partials());
    assert!(run.stderr.contains("size not known yet"), "no '0 B' for an unknown size: {}", run.stderr);
}

// ---- Real servers and proxies (protocol edges; real nginx, squid, tinyproxy: interop) --

#[test]
fn no_proxy_takes_cidr_blocks_as_curl_does() {
    let mut sc = scenario();
    let data = sc.model("m", "m.bin", payload(500, 540));
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sc.set_env("http_proxy", &format!("http://127.0.0.1:{dead}"));
    sc.set_env("NO_PROXY", "10.0.0.0/8,127.0.0.0/8");
    sc.models(&["fetch"]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}

#[test]
fn a_proxy_that_refuses_is_named_and_407_asks_for_its_credentials() {
    let proxy = Server::start();
    proxy.script(
        "http://models.invalid/m.bin",
        vec![Reply::status_with(407, "Proxy-Authenticate", "Basic realm=\"p\"")],
    );
    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["http://models.invalid/m.bin".into()])]);
    sb.set_env("http_proxy", &proxy.url(""));
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("(proxy-refused)") && run.stderr.contains("credentials"), "{}", run.stderr);
    assert!(!run.stderr.contains("DNS"), "not a network hint: {}", run.stderr);
}

#[test]
fn a_ca_file_that_cannot_be_read_is_itself_the_error() {
    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://127.0.0.1:9/m".into()])]);
    sb.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    let run = sb.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("SSL_CERT_FILE=/nonexistent/ca.pem cannot be read"), "{}", run.stderr);
}

#[test]
fn a_compressed_body_names_its_encoding() {
    let sc = scenario();
    let data = payload(1000, 541);
    let gzip = Reply::Status {
        code: 200,
        headers: vec![("Content-Encoding".into(), "gzip".into())],
        body: "\u{1f}compressed".into(),
    };
    sc.serve("/m", vec![gzip]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let run = sc.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(
        run.stderr.contains("Content-Encoding: gzip") && run.stderr.contains("(content-encoding)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("corrupted"), "{}", run.stderr);
}

#[test]
fn the_attempt_log_records_the_status_a_resumed_body_came_with() {
    let sc = scenario();
    let data = payload(300_000, 542);
    sc.serve("/m", vec![Reply::Truncate { body: data.clone(), after: 100_000 }, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let log = sc.dir.join("log");
    sc.models(&args_with(&["fetch", "--log-file", log.to_str().unwrap()], FAST)).expect(0);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.contains("status=206 resumed_from=100000") && last.contains("decision=done"), "{text}");
}

#[test]
fn a_relative_redirect_whose_query_holds_a_url_stays_on_its_server() {
    let sc = scenario();
    let data = payload(1000, 543);
    sc.serve("/start", vec![Reply::Redirect("/dl?to=https://cdn.invalid/x".into())]);
    sc.serve("/dl?to=https://cdn.invalid/x", vec![Reply::Body(data.clone())]);
    sc.serve("/a/b/c", vec![Reply::Redirect("../../final.bin".into())]);
    sc.serve("/final.bin", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/start"]);
    sc.pin("n", "n.bin", &data, &["/a/b/c"]);
    sc.models(&args_with(&["fetch"], FAST)).expect(0);
}

#[test]
fn faults_are_classed_by_what_they_are() {
    // A redirect to a file: URL is the server's doing, not the manifest's.
    let sc = scenario();
    sc.serve("/to-file", vec![Reply::Redirect("file:///etc/passwd".into())]);
    sc.pin("m", "m.bin", b"x", &["/to-file"]);
    let run = sc.models(&args_with(&["fetch"], FAST));
    run.expect(1);
    assert!(run.stderr.contains("only http and https are followed"), "{}", run.stderr);
    assert!(!run.stderr.contains("fix it in models.toml"), "{}", run.stderr);

    // A file: URL naming a folder.
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &[format!("file://{}", sb.dir.display())])]);
    let run = sb.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("is a folder, not a file"), "{}", run.stderr);

    // Invalid UTF-8 in the manifest, at its place.
    let sb = sandbox();
    std::fs::write(&sb.manifest, b"# fine\n# also fine \xff here\n").unwrap();
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(run.stderr.contains("models.toml:2:13:") && run.stderr.contains("UTF-8"), "{}", run.stderr);

    // One file name that is not UTF-8 does not stop `clean`.
    let sb = sandbox();
    sb.write_manifest(&[]);
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(sb.checkpoints.join(std::ffi::OsStr::from_bytes(b"bad-\xff.bin")), b"x").unwrap();
    std::fs::write(sb.checkpoints.join("w.bin.0123456789ab.part"), b"x").unwrap();
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert!(run.stdout.contains("removed 1 file(s)"), "{}", run.stdout);
}

// ---- models run ---------------------------------------------------------------------

#[test]
fn run_leaves_stdout_to_the_command() {
    let sc = scenario();
    let text = "a model that is text, so stdout can be compared byte for byte\n".repeat(50);
    sc.model("m", "m.bin", std::sync::Arc::new(text.clone().into_bytes()));
    let run = sc.models(&["run", "--", "sh", "-c", "cat \"$MODELS_CHECKPOINTS_DIR/m.bin\""]);
    run.expect(0);
    assert_eq!(run.stdout, text, "`models run -- cat x > copy` makes an exact copy");
    assert!(run.stderr.contains("fetched 1"), "the summary goes to stderr: {}", run.stderr);
}

#[test]
fn run_passes_exit_codes_through_and_names_a_command_that_cannot_start() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    sb.models(&["run", "--", "sh", "-c", "exit 2"]).expect(2);
    let run = sb.models(&["run", "--", "no-such-command-here"]);
    run.expect(127);
    assert!(run.stderr.contains("cannot start `no-such-command-here`"), "{}", run.stderr);
    let script = sb.dir.join("not-executable.sh");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    sb.models(&["run", "--", script.to_str().unwrap()]).expect(126);
}

#[test]
fn a_signal_to_run_reaches_its_command_and_nothing_is_orphaned() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let marker = sb.dir.join("got-term");
    let pidfile = sb.dir.join("child.pid");
    let script = format!(
        "echo $$ > '{}'; trap 'echo term > \"{}\"; exit 3' TERM; while true; do sleep 0.05; done",
        pidfile.display(),
        marker.display()
    );
    let child = sb.spawn_logged(&["run", "--", "sh", "-c", &script]);
    wait_until(Duration::from_secs(30), "the command to start", || pidfile.exists());
    let tool_pid = child.pid();
    // SAFETY: sending a signal to the tool this test started.
    unsafe { libc::kill(tool_pid as libc::pid_t, libc::SIGTERM) };
    let run = child.finish();
    assert_eq!(run.code, 3, "the command's own code: {}", run.stderr);
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "term");
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(!Path::new(&format!("/proc/{pid}")).exists(), "the command is gone");
}
