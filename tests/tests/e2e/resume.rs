//! Resuming: across runs (even after kill -9), within a run, and every answer a server
//! can give to a range request.

use std::time::Duration;

use tests::server::etag_of;
use tests::{Pin, Reply, Server, payload, sha256_hex, wait_until};

use crate::{FAST, sandbox, scenario};

const MIB: usize = 1 << 20;

/// A sandbox pinning `data` at `/f` on `server`, with `prefix` bytes already downloaded
/// (as an interrupted run would have left them in the cache).
fn with_partial(server: &Server, data: &[u8], prefix: &[u8]) -> tests::Sandbox {
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", data, &[server.url("/f")])]);
    let partial = sb.cache_partial(&sha256_hex(data));
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, prefix).unwrap();
    sb
}

fn fetch(sb: &tests::Sandbox) -> tests::Run {
    let mut args = vec!["fetch"];
    args.extend_from_slice(FAST);
    sb.models(&args)
}

#[test]
fn a_fetch_killed_mid_file_resumes_with_only_the_missing_bytes() {
    let sc = scenario();
    let data = payload(8 * MIB, 21);
    sc.serve("/f", vec![Reply::Stall { body: data.clone(), after: 4 * MIB }, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    let child = sc.spawn_models(&["fetch", "--timeout", "60"]);
    let partial = sc.cache_partial(&sha256_hex(&data));
    wait_until(Duration::from_secs(60), "half the file on disk", || {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() >= (4 * MIB) as u64)
    });
    let mut child = child;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(!sc.file("m.bin").exists(), "a killed fetch installs nothing");

    fetch(&sc).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
    let requests = sc.server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=4194304-"));
    assert_eq!(requests[1].body_bytes, (4 * MIB) as u64, "only the rest was sent");
    assert!(sc.partials().is_empty(), "{:?}", sc.partials());
}

#[test]
fn a_206_continues_the_partial() {
    let server = Server::start();
    let data = payload(300_000, 22);
    server.script("/f", vec![Reply::Body(data.clone())]);
    let sb = with_partial(&server, &data, &data[..100_000]);
    let run = fetch(&sb);
    run.expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    assert_eq!(server.requests()[0].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(server.bytes_sent("/f"), 200_000);
    assert!(run.stderr.contains("resuming at 97.7 KiB"), "{}", run.stderr);
}

#[test]
fn a_200_to_a_range_request_restarts_from_zero() {
    let server = Server::start();
    let data = payload(300_000, 23);
    server.script("/f", vec![Reply::IgnoresRange(data.clone())]);
    let sb = with_partial(&server, &data, &data[..100_000]);
    fetch(&sb).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    assert_eq!(server.hits("/f"), 1);
    assert_eq!(server.bytes_sent("/f"), 300_000);
}

#[test]
fn a_416_discards_the_stale_partial_and_starts_over() {
    let server = Server::start();
    let data = payload(300_000, 24);
    server.script("/f", vec![Reply::status(416), Reply::Body(data.clone())]);
    let sb = with_partial(&server, &data, &data[..100_000]);
    fetch(&sb).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests[0].range.is_some() && requests[1].range.is_none());
}

#[test]
fn a_206_that_starts_elsewhere_is_not_spliced() {
    let server = Server::start();
    let data = payload(300_000, 25);
    server.script("/f", vec![Reply::WrongRange(data.clone()), Reply::Body(data.clone())]);
    let sb = with_partial(&server, &data, &data[..100_000]);
    fetch(&sb).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    assert_eq!(server.requests()[1].range, None);
}

#[test]
fn if_range_keeps_a_changed_upstream_file_from_being_spliced() {
    let sc = scenario();
    let old = payload(300_000, 26);
    let new = payload(300_000, 27);
    // The first answer is the old file, cut short; by the retry upstream has changed.
    sc.serve("/f", vec![Reply::Truncate { body: old.clone(), after: 100_000 }, Reply::Body(new.clone())]);
    sc.pin("m", "m.bin", &new, &["/f"]);
    fetch(&sc).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *new);
    let requests = sc.server.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=100000-"));
    assert_eq!(requests[1].if_range, Some(etag_of(&old)), "the validator of the first answer");
    assert_eq!(requests[1].body_bytes, 300_000, "the whole new file, not the tail");
}

#[test]
fn a_corrupt_partial_is_discarded_and_never_resumed_again() {
    let server = Server::start();
    let data = payload(300_000, 28);
    server.script("/f", vec![Reply::Body(data.clone())]);
    let sb = with_partial(&server, &data, &payload(100_000, 99));
    let run = fetch(&sb);
    run.expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "one resume that hashes wrong, one fresh download");
    assert_eq!(requests[1].range, None);
    assert!(run.stderr.contains("stale-partial"), "{}", run.stderr);
}

#[test]
fn a_partial_longer_than_the_pin_is_discarded() {
    let server = Server::start();
    let data = payload(300_000, 29);
    server.script("/f", vec![Reply::Body(data.clone())]);
    let sb = with_partial(&server, &data, &payload(400_000, 98));
    fetch(&sb).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
    assert_eq!(server.requests()[0].range, None);
}

#[test]
fn progress_within_a_run_resumes_and_restores_the_retry_budget() {
    let sc = scenario();
    let data = payload(5 * MIB, 30);
    // Each answer breaks off after 1.5 MiB (the server closes it early: no clock involved).
    let broken = Reply::Truncate { body: data.clone(), after: 3 * MIB / 2 };
    sc.serve("/f", vec![broken.clone(), broken.clone(), broken, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    // One retry only: without the reset after real progress this would give up.
    let run = sc.models(&["fetch", "--retries", "1", "--backoff-ms", "1"]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
    let ranges: Vec<_> = sc.server.requests().iter().map(|r| r.range.clone()).collect();
    assert_eq!(
        ranges,
        [None, Some("bytes=1572864-".into()), Some("bytes=3145728-".into()), Some("bytes=4718592-".into())]
    );
    assert_eq!(sc.server.bytes_sent("/f"), data.len() as u64, "every byte sent once");
}

#[test]
fn a_server_that_trickles_still_ends_in_bounded_attempts() {
    let sc = scenario();
    let data = payload(300_000, 31);
    // Every answer breaks off after 2000 bytes: progress, but not real progress.
    sc.serve("/f", vec![Reply::Truncate { body: data.clone(), after: 2000 }]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    let run = sc.models(&["fetch", "--retries", "2", "--backoff-ms", "1"]);
    run.expect(1);
    assert_eq!(sc.server.hits("/f"), 3, "a trickle is not real progress");
    assert!(run.stderr.contains("(truncated)"), "{}", run.stderr);
}
