//! Each fault class: what the tool does about it and what the user is told.

use std::time::Duration;

use tests::{Pin, Reply, Scenario, payload};

use crate::{FAST, STALL_TIMEOUT, sandbox, scenario};

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
