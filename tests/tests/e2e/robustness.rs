//! Hostile or absurd input ends in a clear error or is ignored: never a panic, never a hang. Found by hostile rounds: each test is named for
//! the promise it keeps, and each failed before its fix.

use std::time::{Duration, Instant};

use tests::{Pin, Reply, payload, sha256_hex};

use crate::{FAST, sandbox, scenario};

fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = base.to_vec();
    all.extend_from_slice(extra);
    all
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
    // The reading end is closed before the tool starts: its first write meets a closed
    // pipe, whatever the timing (a `| head -1` might read everything before it exits).
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let piped = std::process::Command::new(tool)
        .args(["models", "status", "--manifest", &m, "--checkpoints-dir", &c])
        .stdout(writer)
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&piped.stderr);
    assert!(!err.contains("panicked") && !err.contains("standard output"), "ends quietly: {err}");
    assert_eq!(piped.status.code(), Some(0), "a reader that left is no failure: {err}");

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
