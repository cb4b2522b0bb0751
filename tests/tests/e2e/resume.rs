//! Resuming: across runs (even after kill -9 at random moments), within a run, on a
//! nearly full disk, and every answer a server can give to a range request.

use std::time::{Duration, Instant};

use tests::daemons::Mount;
use tests::server::etag_of;
use tests::{Pin, Reply, Server, payload, sha256_hex, wait_until};

use crate::Rng;
use crate::{FAST, TOOL, args_with, sandbox, scenario};

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
fn kill_9_at_twenty_random_moments_never_leaves_a_wrong_file_and_resumes() {
    // Promise: whenever the tool dies, every destination holds the pinned bytes or nothing,
    // and the next run continues partial transfers instead of starting over.
    let sc = scenario();
    let mut pins = Vec::new();
    for i in 0..3u64 {
        let data = payload(2 << 20, 200 + i);
        let path = format!("/f{i}");
        // 64 steps of 40 ms: no run can finish a file in less than 2.5 s, ten times the
        // longest wait before a kill, however fast or loaded the machine is.
        let slow = Reply::Slow { body: data.clone(), chunk: 32 << 10, pause: Duration::from_millis(40) };
        sc.serve(&path, vec![slow]);
        pins.push((Pin::new(&format!("f{i}"), &format!("f{i}.bin"), &data, &[sc.server.url(&path)]), data));
    }
    sc.write_manifest(&pins.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    let mut rng = Rng(0x5eed);
    let partials: Vec<_> = pins.iter().map(|(p, _)| sc.cache_partial(&p.sha256)).collect();
    for _ in 0..20 {
        let mut child = sc.spawn_models(&["fetch", "--jobs", "3", "--quiet"]);
        // Kill once some bytes are on disk (or the run ended), at a random moment after.
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10)
            && !partials.iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
            && child.try_wait().ok().flatten().is_none()
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        std::thread::sleep(Duration::from_millis(rng.below(250)));
        let _ = child.kill();
        let _ = child.wait();
        for (pin, data) in &pins {
            if let Ok(bytes) = std::fs::read(sc.file(&pin.path)) {
                assert!(bytes == **data, "{} holds wrong bytes after a kill", pin.path);
            }
        }
    }
    sc.models(&["fetch"]).expect(0);
    sc.models(&["verify", "--full"]).expect(0);
    let resumed = sc.server.requests().iter().filter(|r| r.range.is_some()).count();
    let log: Vec<_> =
        sc.server.requests().iter().map(|r| (r.path.clone(), r.range.clone(), r.body_bytes)).collect();
    assert!(resumed > 0, "partial transfers resumed rather than restarted: {log:?}");
}

#[test]
fn ctrl_c_says_the_partials_are_kept_and_the_same_command_resumes_them() {
    let sc = scenario();
    let data = payload(400_000, 596);
    // The first answer sends part of the file, then holds the connection open.
    sc.serve("/m", vec![Reply::Stall { body: data.clone(), after: 150_000 }, Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/m"]);
    let fetch = sc.spawn_logged(&["fetch", "--no-cache"]);
    wait_until(Duration::from_secs(60), "bytes in the partial", || {
        sc.partials().iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    // SAFETY: the pid is our own child's, still running (it waits on the stalled body).
    unsafe { libc::kill(fetch.pid() as libc::pid_t, libc::SIGINT) };
    let run = fetch.finish();
    assert_eq!(run.code, 130, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "interrupted: partial downloads are kept; `{TOOL} models fetch` resumes them"
        )),
        "{}",
        run.stderr
    );
    assert!(!sc.partials().is_empty(), "the partial stays");
    sc.models(&["fetch", "--no-cache"]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}
