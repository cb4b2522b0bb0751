//! Hostile conditions: kills at random moments, races between processes, a full disk,
//! unwritable folders, malformed manifests by the thousand, and hostile HTTP answers.
//! Each test says which promise it guards; all are bounded in time.

use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use tests::{Pin, Reply, Server, finish, payload, sha256_hex};

use crate::{sandbox, scenario};

/// A small deterministic generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
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
fn concurrent_fetches_a_clean_and_a_verify_do_not_corrupt_anything() {
    // Promise: any mix of processes on one folder is safe; each file is transferred once.
    let sc = scenario();
    sc.server.set_latency(Duration::from_millis(30));
    let mut pins = Vec::new();
    for i in 0..3u64 {
        let data = payload(300_000, 210 + i);
        let path = format!("/r{i}");
        sc.serve(&path, vec![Reply::Body(data.clone())]);
        pins.push(Pin::new(&format!("r{i}"), &format!("r{i}.bin"), &data, &[sc.server.url(&path)]));
    }
    sc.write_manifest(&pins);
    let mut children: Vec<_> = (0..4).map(|_| sc.spawn_models(&["fetch", "--jobs", "2"])).collect();
    children.push(sc.spawn_models(&["clean"]));
    children.push(sc.spawn_models(&["verify"]));
    let runs: Vec<_> = children.into_iter().map(finish).collect();
    for run in &runs[..5] {
        run.expect(0);
    }
    let verify = &runs[5];
    let all_ok = verify.stdout.contains("failed 0");
    assert_eq!(verify.code, if all_ok { 0 } else { 1 }, "verify's exit code matches its report");
    for i in 0..3 {
        assert_eq!(sc.server.hits(&format!("/r{i}")), 1, "r{i} transferred once");
    }
    sc.models(&["verify", "--full"]).expect(0);
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

/// A valid manifest to mutate.
fn seed_manifest() -> String {
    let pin = Pin::new(
        "m",
        "dir/m.bin",
        b"abc",
        &["https://example.invalid/m".to_owned(), "file:///tmp/m".to_owned()],
    );
    let mut text = pin.to_toml();
    text.push_str("group = \"g\"\n");
    text
}

const TRICKS: &[&str] = &[
    "a/../../x",
    "C:\\x",
    "\\\\?\\x",
    "\0",
    "~",
    "~/x",
    "/etc/passwd",
    "..",
    ".",
    "",
    " ",
    "\u{202e}",
    "é",
    "💥",
    "99999999999999999999999",
    "-1",
    "1e309",
    "nan",
    "0x10",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'''",
    "\\u0000",
    "[[model]]",
    "=",
    "\n",
    "\r\n",
    "\t",
    "#",
    "true",
    "inf",
];

#[test]
fn thousands_of_malformed_manifests_never_panic_and_always_explain() {
    // Promise: whatever bytes models.toml holds, loading it returns models or problems.
    let seed = seed_manifest();
    let mut rng = Rng(0xbad5eed);
    let file = camino::Utf8Path::new("models.toml");
    for case in 0..4000 {
        let text = match case % 4 {
            0 => {
                let mut bytes = seed.clone().into_bytes();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => {
                let at = seed
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(rng.below(seed.chars().count() as u64) as usize)
                    .unwrap_or(0);
                let trick = TRICKS[rng.below(TRICKS.len() as u64) as usize];
                format!("{}{trick}{}", &seed[..at], &seed[at..])
            }
            2 => {
                let trick = TRICKS[rng.below(TRICKS.len() as u64) as usize];
                seed.replace("dir/m.bin", trick)
            }
            _ => {
                (0..rng.below(200)).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('x')).collect()
            }
        };
        let result = std::panic::catch_unwind(|| xtask::Manifest::parse(&text, file));
        let Ok(result) = result else { panic!("the loader panicked on case {case}:\n{text:?}") };
        if let Err(err) = result {
            assert!(!err.problems.is_empty(), "case {case}: an error without a problem");
            for p in &err.problems {
                assert!(p.line >= 1 && p.column >= 1 && !p.message.is_empty(), "case {case}: {p:?}");
            }
        }
    }
}

#[test]
fn deep_nesting_and_huge_numbers_are_refused_not_crashed_on() {
    // Promise: pathological manifests end in exit 2 with a message, never a crash.
    let sb = sandbox();
    for text in [
        format!("x = {}{}\n", "[".repeat(5000), "]".repeat(5000)),
        format!("x = {}1{}\n", "{a=".repeat(3000), "}".repeat(3000)),
        "[[model]]\nname = \"m\"\npath = \"m\"\nsize = 99999999999999999999999999\nsha256 = \"00\"\nurls = []\n".to_owned(),
        "[[model]]\nname = \"m\"\npath = \"a/../../x\"\nsize = 1\nsha256 = \"00\"\nurls = [\"https://x/\"]\n".to_owned(),
    ] {
        std::fs::write(&sb.manifest, &text).unwrap();
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
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
fn the_benchmark_harness_runs_every_case_in_quick_mode() {
    // Promise: `cargo xtask bench` cannot rot unnoticed.
    let sb = sandbox();
    let out = sb.dir.join("BENCHMARKS.md");
    let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_bench"));
    let args = ["--tool", env!("CARGO_BIN_EXE_xtask-under-test"), "--quick", "--out", out.to_str().unwrap()];
    let run = tests::run_tool(bench, &args.map(String::from), workspace, &[]);
    run.expect(0);
    let table = std::fs::read_to_string(&out).unwrap();
    for case in [
        "1. cold fetch",
        "2. peak memory",
        "3. full verify",
        "4. re-verify",
        "5. resume",
        "6. ",
        "7. start-up",
        "8. install",
    ] {
        assert!(table.contains(&format!("| {case}")), "{case} missing:\n{table}");
    }
    assert!(table.contains("| 10. one 40.0 MiB file, each connection capped"), "{table}");
    let https = table.contains("| 9. fetch of one") || table.contains("nginx is not installed");
    assert!(https, "the https case ran or said why not:\n{table}");
    assert_eq!(run.stdout.trim(), table.trim());
}

#[test]
fn cargo_xtask_bench_hands_its_arguments_and_its_own_binary_to_the_bench_program() {
    // Promise: `cargo xtask bench --quick` still runs the benchmark, which now lives in
    // the tests package: the tool asks cargo (here a stand-in that records) to run it.
    let mut sb = sandbox();
    let record = sb.dir.join("cargo-args");
    let fake = sb.dir.join("fake-cargo");
    std::fs::write(&fake, format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", record.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.set_env("CARGO", fake.to_str().unwrap());
    sb.run_raw(&["bench".into(), "--quick".into(), "--runs".into(), "2".into()]).expect(0);
    let args = std::fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(&args[..7], ["run", "--quiet", "--package", "tests", "--bin", "bench", "--"], "{args:?}");
    assert_eq!(args[7], "--tool");
    assert_eq!(args[8], env!("CARGO_BIN_EXE_xtask-under-test"));
    assert_eq!(&args[9..], ["--quick", "--runs", "2"]);
}
