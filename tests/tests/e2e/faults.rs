//! Each fault class: what the tool does about it and what the user is told.

use std::time::Duration;

use tests::{Pin, Reply, Server, payload};

use crate::{FAST, sandbox};

const SIZE: usize = 300_000;

/// Runs `fetch` of one model whose URLs are `paths` on `server`, with extra arguments.
fn fetch_one(server: &Server, paths: &[&str], extra: &[&str]) -> (tests::Sandbox, tests::Run) {
    let sb = sandbox();
    let data = payload(SIZE, 7);
    let urls: Vec<String> = paths.iter().map(|p| server.url(p)).collect();
    sb.write_manifest(&[Pin::new("m", "sub/m.bin", &data, &urls)]);
    let mut args = vec!["fetch"];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let run = sb.models(&args);
    (sb, run)
}

fn installed_correctly(sb: &tests::Sandbox) -> bool {
    std::fs::read(sb.file("sub/m.bin")).is_ok_and(|bytes| bytes == *payload(SIZE, 7))
}

#[test]
fn a_404_moves_to_the_next_url_at_once() {
    let server = Server::start();
    server.script("/gone", vec![Reply::status(404)]);
    server.script("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/gone", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/gone"), 1, "a 404 is permanent: no retry");
    let agent = server.requests()[0].user_agent.clone().unwrap_or_default();
    assert!(agent.starts_with("xtask-models/"), "the User-Agent names the tool: {agent}");
    assert!(run.stderr.is_empty() || !run.stderr.contains("retrying"), "{}", run.stderr);
}

#[test]
fn a_transient_503_is_retried_on_the_same_url() {
    let server = Server::start();
    server.script("/f", vec![Reply::status(503), Reply::status(503), Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/f"), 3);
    assert!(run.stderr.contains("HTTP 503"), "{}", run.stderr);
}

#[test]
fn retry_after_on_429_is_honoured() {
    let server = Server::start();
    server.script("/f", vec![Reply::status_with(429, "Retry-After", "1"), Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // The backoff is 1 ms here, so only Retry-After explains a wait of about a second.
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_millis(900), "waited only {waited:?}");
    assert!(run.stderr.contains("retrying in 1.0s"), "{}", run.stderr);
}

#[test]
fn retries_are_bounded_then_the_next_url_is_tried() {
    let server = Server::start();
    server.script("/busy", vec![Reply::status(500)]);
    server.script("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/busy", "/ok"], &["--retries", "2"]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/busy"), 3, "one attempt plus two retries");
}

#[test]
fn a_stalled_body_is_cut_by_timeout_and_retried() {
    let server = Server::start();
    let data = payload(SIZE, 7);
    server.script("/f", vec![Reply::Stall { body: data.clone(), after: 1000 }, Reply::Body(data)]);
    let (sb, run) = fetch_one(&server, &["/f"], &["--timeout", "0.5"]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/f"), 2);
    assert!(run.stderr.contains("(timeout)"), "{}", run.stderr);
}

#[test]
fn a_server_that_always_stalls_ends_with_a_timeout_hint() {
    let server = Server::start();
    server.script("/f", vec![Reply::Stall { body: payload(SIZE, 7), after: 10 }]);
    let (sb, run) = fetch_one(&server, &["/f"], &["--timeout", "0.3", "--retries", "1"]);
    run.expect(1);
    assert!(run.stderr.contains("--timeout SECS"), "{}", run.stderr);
    assert!(!sb.file("sub/m.bin").exists());
}

#[test]
fn a_truncated_body_is_retried() {
    let server = Server::start();
    let data = payload(SIZE, 7);
    server.script("/f", vec![Reply::Truncate { body: data.clone(), after: 5000 }, Reply::Body(data)]);
    let (sb, run) = fetch_one(&server, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/f"), 2);
    assert!(run.stderr.contains("(truncated)"), "{}", run.stderr);
}

#[test]
fn a_reset_connection_is_retried() {
    let server = Server::start();
    let data = payload(SIZE, 7);
    server.script("/f", vec![Reply::Reset { body: data.clone(), after: 5000 }, Reply::Body(data)]);
    let (sb, run) = fetch_one(&server, &["/f"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/f"), 2);
}

#[test]
fn corrupted_bytes_fail_the_hash_and_move_on_without_retry() {
    let server = Server::start();
    let mut bad = payload(SIZE, 7).to_vec();
    bad[SIZE / 2] ^= 0xff;
    server.script("/bad", vec![Reply::Body(bad.into())]);
    server.script("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/bad", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert_eq!(server.hits("/bad"), 1, "a hash mismatch is permanent for that URL");
}

#[test]
fn an_html_page_is_not_saved_as_the_model() {
    let server = Server::start();
    let page = "<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>";
    server.script("/page", vec![Reply::Html(page.into())]);
    let (sb, run) = fetch_one(&server, &["/page"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("HTML page titled \"Sign in\""), "{}", run.stderr);
    assert!(run.stderr.contains("interstitial"), "the hint explains: {}", run.stderr);
    assert_eq!(server.hits("/page"), 1);
    assert!(!sb.file("sub/m.bin").exists());
}

#[test]
fn a_git_lfs_pointer_is_recognised() {
    let server = Server::start();
    let pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 300000\n";
    server.script("/p", vec![Reply::Body(pointer.as_bytes().to_vec().into())]);
    let (_sb, run) = fetch_one(&server, &["/p"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("Git LFS pointer"), "{}", run.stderr);
    assert!(run.stderr.contains("git lfs pull"), "{}", run.stderr);
}

#[test]
fn an_oversize_body_is_stopped_and_refused() {
    let server = Server::start();
    let mut big = payload(SIZE, 7).to_vec();
    big.extend_from_slice(&[0u8; 4096]);
    server.script("/big", vec![Reply::Body(big.into())]);
    server.script("/ok", vec![Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/big", "/ok"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));
    assert!(run.stderr.is_empty() || !run.stderr.contains("retrying"));
    assert_eq!(server.hits("/big"), 1);
}

#[test]
fn a_body_without_length_is_cut_off_at_the_pin() {
    let server = Server::start();
    let mut big = payload(SIZE, 7).to_vec();
    big.extend_from_slice(&payload(1 << 20, 8));
    server.script("/unsized", vec![Reply::Unsized(big.into())]);
    let (sb, run) = fetch_one(&server, &["/unsized"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("larger than the pinned 300000 bytes; stopped reading"), "{}", run.stderr);
    assert!(!sb.file("sub/m.bin").exists());
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
    let server = Server::start();
    server.script("/403", vec![Reply::status(403)]);
    server.script("/501", vec![Reply::status(501)]);
    let (_sb, run) = fetch_one(&server, &["/403", "/501"], &[]);
    run.expect(1);
    assert!(run.stderr.contains("HTTP 403"), "{}", run.stderr);
    assert!(run.stderr.contains("token"), "{}", run.stderr);
    assert!(run.stderr.contains("HTTP 501"), "{}", run.stderr);
    assert_eq!((server.hits("/403"), server.hits("/501")), (1, 1));
}

#[test]
fn redirects_are_followed_and_loops_are_reported() {
    let server = Server::start();
    server.script("/moved", vec![Reply::Redirect(server.url("/real"))]);
    server.script("/real", vec![Reply::Body(payload(SIZE, 7))]);
    let (sb, run) = fetch_one(&server, &["/moved"], &[]);
    run.expect(0);
    assert!(installed_correctly(&sb));

    let server = Server::start();
    server.script("/a", vec![Reply::Redirect(server.url("/b"))]);
    server.script("/b", vec![Reply::Redirect(server.url("/a"))]);
    let (_sb, run) = fetch_one(&server, &["/a"], &[]);
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
