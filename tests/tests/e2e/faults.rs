//! Each fault class: what the tool does about it and what the user is told, from a
//! compressed body or a header flood to a full disk.

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use tests::{Pin, Reply, Scenario, Server, finish, payload, sha256_hex};

use crate::{FAST, STALL_TIMEOUT, args_with, sandbox, scenario};

const SIZE: usize = 300_000;

/// Runs `fetch` of one model whose URLs are `paths` on the scenario's server.
fn fetch_one(sc: &Scenario, paths: &[&str], extra: &[&str]) -> tests::Run {
    sc.pin("m", "sub/m.bin", &payload(SIZE, 7), paths);
    let mut args = vec!["fetch"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    sc.models(&args)
}

fn installed_correctly(sb: &tests::Sandbox) -> bool {
    std::fs::read(sb.file("sub/m.bin")).is_ok_and(|bytes| bytes == *payload(SIZE, 7))
}

#[test]
fn a_404_moves_to_the_next_url_at_once() {
    let sc = scenario();
    sc.serve("/gone", vec![Reply::status(404)]);
    sc.serve("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/gone", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/gone"), 1, "a 404 is permanent: no retry");
    let agent = sc.server.requests()[0].user_agent.clone().unwrap_or_default();
    assert!(agent.starts_with("xtask-models/"), "the User-Agent names the tool: {agent}");
    assert!(run.stderr.is_empty() || !run.stderr.contains("retrying"), "{}", run.stderr);
}

#[test]
fn a_url_that_only_answers_404_leaves_nothing_in_the_checkpoints_folder() {
    // Nothing is made there before a source answers with the file: not an empty
    // partial, not the model's folder.
    let sc = scenario();
    sc.serve("/gone", vec![Reply::status(404)]);
    let run = fetch_one(&sc, &["/gone"], &["--no-cache"]);
    run.expect(1);
    assert!(sc.partials().is_empty(), "no litter: {:?}", sc.partials());
    assert!(!sc.file("sub").exists(), "not even the folder the model would go in");
}

#[test]
fn a_transient_503_is_retried_on_the_same_url() {
    let sc = scenario();
    sc.serve("/f", vec![Reply::status(503), Reply::status(503), Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/f"), 3);
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let sc = scenario();
    sc.serve("/f", vec![Reply::status_with(429, "Retry-After", "1"), Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    let requests = sc.server.requests();
    assert_eq!(requests.len(), 2);
    // The backoff is 1 ms here, so only Retry-After explains a wait of about a second.
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(900), "waited only {waited:?}");
    assert!(run.stderr.contains("retrying in 1.0s"), "{}", run.stderr);
}

#[test]
fn retries_are_bounded_then_the_next_url_is_tried() {
    let sc = scenario();
    sc.serve("/busy", vec![Reply::status(500)]);
    sc.serve("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/busy", "/ok"], &["--retries", "2"]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/busy"), 3, "one attempt plus two retries");
}

#[test]
fn a_stalled_body_is_cut_by_timeout_and_retried() {
    let sc = scenario();
    let data = payload(SIZE, 7);
    sc.serve("/f", vec![Reply::Stall { body: data.clone(), after: 1000 }, Reply::Body(data)]);
    let run = fetch_one(&sc, &["/f"], &["--timeout", STALL_TIMEOUT]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/f"), 2);
    assert!(run.stderr.contains("(timeout)"), "{}", run.stderr);
}

#[test]
fn a_server_that_always_stalls_ends_with_a_timeout_hint() {
    let sc = scenario();
    sc.serve("/f", vec![Reply::Stall { body: payload(SIZE, 7), after: 10 }]);
    let run = fetch_one(&sc, &["/f"], &["--timeout", STALL_TIMEOUT, "--retries", "1"]);
    run.expect(1);
    assert!(run.stderr.contains("--timeout SECS"), "{}", run.stderr);
    assert!(!sc.file("sub/m.bin").exists());
}

#[test]
fn a_truncated_body_is_retried() {
    let sc = scenario();
    let data = payload(SIZE, 7);
    sc.serve("/f", vec![Reply::Truncate { body: data.clone(), after: 5000 }, Reply::Body(data)]);
    let run = fetch_one(&sc, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/f"), 2);
    assert!(run.stderr.contains("(truncated)"), "{}", run.stderr);
}

#[test]
fn a_reset_connection_is_retried() {
    let sc = scenario();
    let data = payload(SIZE, 7);
    sc.serve("/f", vec![Reply::Reset { body: data.clone(), after: 5000 }, Reply::Body(data)]);
    let run = fetch_one(&sc, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/f"), 2);
}

#[test]
fn corrupted_bytes_fail_the_hash_and_move_on_without_retry() {
    let sc = scenario();
    let mut bad = payload(SIZE, 7).to_vec();
    bad[SIZE / 2] ^= 0xff;
    sc.serve("/bad", vec![Reply::Body(bad.into())]);
    sc.serve("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/bad", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert_eq!(sc.server.hits("/bad"), 1, "a hash mismatch is permanent for that URL");
}

#[test]
fn an_html_page_is_not_saved_as_the_model() {
    let sc = scenario();
    let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>";
    sc.serve("/page", vec![Reply::Html(page.into())]);
    let run = fetch_one(&sc, &["/page"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("HTML page titled \"Sign in\""), "{}", run.stderr);
    assert!(run.stderr.contains("interstitial"), "the hint explains: {}", run.stderr);
    assert_eq!(sc.server.hits("/page"), 1);
    assert!(!sc.file("sub/m.bin").exists());
}

#[test]
fn a_git_lfs_pointer_is_recognised() {
    let sc = scenario();
    let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 300000\n";
    sc.serve("/p", vec![Reply::Body(pointer.as_bytes().to_vec().into())]);
    let run = fetch_one(&sc, &["/p"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("Git LFS pointer"), "{}", run.stderr);
    assert!(run.stderr.contains("git lfs pull"), "{}", run.stderr);
}

#[test]
fn an_oversize_body_is_stopped_and_refused() {
    let sc = scenario();
    let mut big = payload(SIZE, 7).to_vec();
    big.extend_from_slice(&[0u8; 4096]);
    sc.serve("/big", vec![Reply::Body(big.into())]);
    sc.serve("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/big", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));
    assert!(run.stderr.is_empty() || !run.stderr.contains("retrying"));
    assert_eq!(sc.server.hits("/big"), 1);
}

#[test]
fn a_body_without_length_is_cut_off_at_the_pin() {
    let sc = scenario();
    let mut big = payload(SIZE, 7).to_vec();
    big.extend_from_slice(&payload(1 << 20, 8));
    sc.serve("/unsized", vec![Reply::Unsized(big.into())]);
    let run = fetch_one(&sc, &["/unsized"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("larger than the pinned 300000 bytes; stopped reading"), "{}", run.stderr);
    assert!(!sc.file("sub/m.bin").exists());
}

#[test]
fn a_file_source_of_the_wrong_size_is_refused_before_reading() {
    let sb = sandbox();
    let data = payload(SIZE, 7);
    let source = sb.dir.join("grown.bin");
    let mut grown = data.to_vec();
    grown.extend_from_slice(&payload(1 << 20, 8));
    std::fs::write(&source, grown).unwrap();
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[format!("file://{}", source.display())])]);
    let run = sb.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("offers 1348576 bytes but the pin says 300000"), "{}", run.stderr);
}

#[test]
fn forbidden_and_other_statuses_get_their_hints() {
    let sc = scenario();
    sc.serve("/403", vec![Reply::status(403)]);
    sc.serve("/501", vec![Reply::status(501)]);
    let run = fetch_one(&sc, &["/403", "/501"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("HTTP 403"), "{}", run.stderr);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
    assert!(run.stderr.contains("HTTP 501"), "{}", run.stderr);
    assert_eq!((sc.server.hits("/403"), sc.server.hits("/501")), (1, 1));
}

#[test]
fn redirects_are_followed_and_loops_are_reported() {
    let sc = scenario();
    sc.serve("/moved", vec![Reply::Redirect(sc.server.url("/real"))]);
    sc.serve("/real", vec![Reply::Body(payload(SIZE, 7))]);
    let run = fetch_one(&sc, &["/moved"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sc));

    let sc = scenario();
    sc.serve("/a", vec![Reply::Redirect(sc.server.url("/b"))]);
    sc.serve("/b", vec![Reply::Redirect(sc.server.url("/a"))]);
    let run = fetch_one(&sc, &["/a"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("redirect loop"), "{}", run.stderr);
}

#[test]
fn a_refused_connection_is_a_connection_fault() {
    // Bind, learn the port, close: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = sandbox();
    let data = payload(100, 1);
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[format!("http://127.0.0.1:{port}/x")])]);
    let run = sb.models(&["fetch", "--retries", "1", "--backoff-ms", "1"]);
    run.expect(1);
    assert!(run.stderr.contains("(connection)"), "{}", run.stderr);
    assert!(run.stderr.contains("proxy"), "the hint mentions proxies: {}", run.stderr);
}

#[test]
fn a_host_that_cannot_be_reached_is_not_tried_again_for_every_model() {
    // A per-run breaker: an offline run must not wait on the same dead host for each model.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sb = sandbox();
    let pins: Vec<Pin> = (0..6)
        .map(|i| {
            Pin::new(
                &format!("m{i}"),
                &format!("m{i}.bin"),
                &payload(100, i),
                &[format!("http://127.0.0.1:{port}/m{i}")],
            )
        })
        .collect();
    sb.write_manifest(&pins);
    let log = sb.dir.join("attempts.log");
    let run = sb.models(&[
        "fetch",
        "--jobs",
        "1",
        "--retries",
        "2",
        "--backoff-ms",
        "1",
        "--log-file",
        log.to_str().unwrap(),
    ]);
    run.expect(1);
    let attempts = std::fs::read_to_string(&log).unwrap();
    let tries = attempts.lines().filter(|l| l.contains(" attempt=")).count();
    assert_eq!(tries, 3, "only the first model tried it (1 + 2 retries):\n{attempts}");
    assert_eq!(
        attempts.matches("(earlier in this run; not tried again)").count(),
        5,
        "each later model's block says why:\n{attempts}"
    );
    assert_eq!(
        run.stderr.matches("cannot connect to 127.0.0.1").count(),
        1,
        "the cause, once:\n{}",
        run.stderr
    );
}

#[test]
fn a_folder_in_the_way_of_the_destination_is_the_disks_fault_with_the_cache_on_or_off() {
    // Promise: a fault at placing a file that came whole is booked on the disk, never on
    // the server that sent it; with or without the cache, the same record.
    for cache in [false, true] {
        let sc = scenario();
        sc.serve("/f", vec![Reply::Body(payload(SIZE, 7))]);
        sc.pin("m", "sub/m.bin", &payload(SIZE, 7), &["/f"]);
        // A folder, not empty, where the file goes: no rename can replace it.
        std::fs::create_dir_all(sc.file("sub/m.bin/kept")).unwrap();
        let mut args = vec!["fetch", "--json"];
        args.extend_from_slice(FAST);
        if !cache {
            args.push("--no-cache");
        }
        let run = sc.models(&args);
        run.expect(1);
        let doc: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        let tried = &doc["models"][0]["tried"];
        assert_eq!(tried.as_array().map(Vec::len), Some(1), "cache {cache}: {doc}");
        assert_eq!(tried[0]["origin"], "disk", "cache {cache}: the disk's fault, not the server's: {doc}");
        assert!(tried[0]["path"].as_str().is_some_and(|p| p.ends_with("m.bin")), "cache {cache}: {doc}");
        assert_eq!(tried[0]["error"]["class"], "local-io", "cache {cache}: {doc}");
        assert_eq!(sc.server.hits("/f"), 1, "cache {cache}: the file came once, and was not asked again");
        assert!(sc.file("sub/m.bin/kept").is_dir(), "cache {cache}: the folder stays");
    }
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
    sb.write_manifest(&[Pin::new("w", "w.bin", b"x", &["http://127.0.0.1:9/w".to_owned()])]);
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(sb.checkpoints.join(std::ffi::OsStr::from_bytes(b"bad-\xff.bin")), b"x").unwrap();
    std::fs::write(sb.checkpoints.join("w.bin.0123456789ab.part"), b"x").unwrap();
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert!(run.stdout.contains("removed 1 file(s)"), "{}", run.stdout);
}

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
fn a_full_disk_is_a_clear_error_keeps_the_partial_and_a_later_run_completes() {
    // Promise: running out of space names the numbers, installs nothing, loses nothing.
    let sc = scenario();
    let data = payload(600_000, 220);
    sc.serve("/big", vec![Reply::Body(data.clone())]);
    sc.pin("big", "big.bin", &data, &["/big"]);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_xtask-under-test"));
    command
        .args(["models", "fetch", "--manifest"])
        .arg(&sc.manifest)
        .arg("--checkpoints-dir")
        .arg(&sc.checkpoints)
        .env("XTASK_MODELS_CACHE_DIR", &sc.cache)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: only async-signal-safe calls (setrlimit, signal) run between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 200_000, rlim_max: 200_000 };
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = finish(command.spawn().unwrap());
    run.expect(1);
    assert!(run.stderr.contains("no space to write"), "{}", run.stderr);
    assert!(
        run.stderr.contains("after 196608 of 600000 bytes") || run.stderr.contains("of 600000 bytes"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("free some space on the disk"), "{}", run.stderr);
    assert!(!sc.file("big.bin").exists(), "nothing installed");
    let partial = sc.cache_partial(&sha256_hex(&data));
    assert!(std::fs::metadata(&partial).is_ok_and(|m| m.len() > 0), "the partial is kept");

    sc.models(&["fetch"]).expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    let requests = sc.server.requests();
    assert!(requests.last().unwrap().range.is_some(), "the later run resumed");
}

#[test]
fn an_unwritable_checkpoints_dir_is_a_clear_error_and_loses_nothing() {
    // Promise: a folder the tool cannot write gets a local-I/O error and exit 1.
    let server = Server::start();
    let data = payload(10_000, 230);
    server.script("/f", vec![Reply::Body(data.clone())]);
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "sub/m.bin", &data, &[server.url("/f")])]);
    // A file where the folder should be: unwritable for everyone, root included.
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    std::fs::write(sb.file("sub"), b"a file the user keeps").unwrap();
    let run = sb.models(&["fetch", "--no-cache"]);
    run.expect(1);
    assert!(run.stderr.contains("local-io") || run.stderr.contains("Not a directory"), "{}", run.stderr);
    assert!(run.stderr.contains("writable"), "the hint says what to check: {}", run.stderr);
    assert_eq!(std::fs::read(sb.file("sub")).unwrap(), b"a file the user keeps");

    // With real permissions, where they apply (not as root).
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let sb = sandbox();
        sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[server.url("/f")])]);
        std::fs::create_dir_all(&sb.checkpoints).unwrap();
        std::fs::set_permissions(&sb.checkpoints, std::fs::Permissions::from_mode(0o555)).unwrap();
        let run = sb.models(&["fetch", "--no-cache"]);
        run.expect(1);
        assert!(run.stderr.contains("Permission denied"), "{}", run.stderr);
    }
}

/// Fetches one 1000-byte model whose only URL answers `reply`; returns the run and its time.
fn fetch_against(reply: Reply, extra: &[&str]) -> (tests::Run, Duration) {
    let server = Server::start();
    server.script("/h", vec![reply]);
    let sb = sandbox();
    let data = payload(1000, 240);
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[server.url("/h")])]);
    let mut args = vec!["fetch", "--timeout", "2", "--backoff-ms", "1"];
    args.extend_from_slice(extra);
    let started = Instant::now();
    let run = sb.models(&args);
    let took = started.elapsed();
    assert!(!sb.file("m.bin").exists(), "nothing installed");
    (run, took)
}

#[test]
fn hostile_http_answers_end_quickly_with_clear_errors() {
    // Promise: absurd headers cost bounded time and get a classified error.
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "huge Content-Length",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\nConnection: close\r\n\r\nabc".to_vec()),
            "",
        ),
        (
            "Content-Length past the pin",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\nConnection: close\r\n\r\nabc".to_vec()),
            "offers 18446744073709551615 bytes",
        ),
        (
            "negative Content-Range on a 200",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Range: bytes -5--1/-3\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".to_vec()),
            "offers 3 bytes",
        ),
        ("Retry-After of a year", Reply::status_with(429, "Retry-After", "31536000"), "rate-limited"),
        ("garbage status line", Reply::Raw(b"HTTP/9 ??? nonsense\r\n\r\n".to_vec()), "(bad-response)"),
    ];
    for (what, reply, needle) in cases {
        let (run, took) = fetch_against(reply, &["--retries", "0"]);
        run.expect(1);
        assert!(took < Duration::from_secs(20), "{what}: took {took:?}");
        assert!(run.stderr.contains(needle), "{what}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{what}: {}", run.stderr);
    }
}

#[test]
fn a_header_flood_is_cut_off() {
    // Promise: a server sending endless headers cannot hold the tool or its memory.
    let mut flood = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20_000 {
        flood.extend_from_slice(format!("X-Flood-{i}: {}\r\n", "y".repeat(40)).as_bytes());
    }
    flood.extend_from_slice(b"Content-Length: 3\r\n\r\nabc");
    let (run, took) = fetch_against(Reply::Raw(flood), &["--retries", "0"]);
    run.expect(1);
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn a_range_answer_with_an_absurd_content_range_is_not_spliced() {
    // Promise: a 206 whose Content-Range makes no sense restarts cleanly.
    let sc = scenario();
    let data = payload(50_000, 250);
    let absurd = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 99999999999-1/7\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc";
    sc.serve("/f", vec![Reply::Raw(absurd.to_vec()), Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    let partial = sc.cache_partial(&sha256_hex(&data));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &data[..1000]).unwrap();
    sc.models(&["fetch", "--backoff-ms", "1"]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}

#[test]
fn an_early_hints_answer_before_the_file_is_skipped() {
    // Promise: informational answers (103 Early Hints, as CDNs send) come before the real
    // one and are not it.
    let data = payload(1 << 20, 520);
    let mut raw = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n".to_vec();
    raw.extend_from_slice(b"HTTP/1.1 102 Processing\r\n\r\n");
    raw.extend_from_slice(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", data.len()).as_bytes());
    raw.extend_from_slice(&data);
    let sc = scenario();
    sc.serve("/m.bin", vec![Reply::Raw(raw.clone())]);
    sc.pin("m", "m.bin", &data, &["/m.bin"]);
    sc.models(&args_with(&["fetch", "--retries", "0"], FAST)).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
    // The same through a forward proxy (plain http goes to it in absolute form): this
    // server plays both.
    let proxy = tests::Server::start();
    proxy.script("http://models.invalid/m.bin", vec![Reply::Raw(raw)]);
    let mut sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &["http://models.invalid/m.bin".into()])]);
    sb.set_env("http_proxy", &proxy.url(""));
    sb.set_env("NO_PROXY", "");
    let run = sb.models(&args_with(&["fetch", "--retries", "0"], FAST));
    run.expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
}
