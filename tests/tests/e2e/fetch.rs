//! `models fetch` as a whole: selection, idempotence, jobs, the manual block, logs,
//! output, and sources or folders that are not what they seem.

use std::time::{Duration, Instant};

use tests::{Pin, Reply, Server, payload, sha256_hex};

use crate::three_models;
use crate::{FAST, TOOL, sandbox, scenario};

#[test]
fn a_second_fetch_downloads_nothing() {
    let sc = scenario();
    let (a, b) = (payload(70_000, 1), payload(90_000, 2));
    sc.serve("/a", vec![Reply::Body(a.clone())]);
    sc.serve("/b", vec![Reply::Body(b.clone())]);
    sc.pin("a", "a.bin", &a, &["/a"]);
    sc.pin("b", "nested/deeper/b.bin", &b, &["/b"]);
    let first = sc.models(&["fetch"]);
    first.expect(0);
    assert!(first.stdout.contains("fetched 2"), "{}", first.stdout);
    assert_eq!(std::fs::read(sc.file("nested/deeper/b.bin")).unwrap(), *b);
    let second = sc.models(&["fetch"]);
    second.expect(0);
    assert_eq!(sc.server.requests().len(), 2, "the second run made no request");
    // Nothing to do is said in one line.
    assert_eq!(
        second.stdout, "nothing to do: all selected models are present and verified (2 in all)\n",
        "{}",
        second.stderr
    );
    assert_eq!(second.stderr, "", "no line per present model");
}

#[test]
fn a_hash_mismatch_on_every_url_prints_the_manual_block_and_installs_nothing() {
    let sc = scenario();
    let data = payload(50_000, 3);
    let wrong = payload(50_000, 4);
    sc.serve("/one", vec![Reply::Body(wrong.clone())]);
    sc.serve("/two", vec![Reply::Body(wrong)]);
    sc.pin("m", "w/m.bin", &data, &["/one", "/two"]);
    let run = sc.models(&["fetch"]);
    run.expect(1);
    let err = &run.stderr;
    assert!(err.contains("error: could not fetch m (w/m.bin)"), "{err}");
    assert!(err.contains(&format!("1. {}", sc.server.url("/one"))), "{err}");
    assert!(err.contains(&format!("2. {}", sc.server.url("/two"))), "{err}");
    assert!(err.contains(&sc.file("w/m.bin").display().to_string()), "{err}");
    assert!(err.contains("expected size:   50000 bytes"), "{err}");
    assert!(err.contains(&format!("expected sha256: {}", sha256_hex(&data))), "{err}");
    assert!(err.contains(&format!("{TOOL} models verify --model m")), "{err}");
    assert!(!sc.file("w/m.bin").exists(), "nothing at the destination");
    assert_eq!(sc.partials(), Vec::<std::path::PathBuf>::new(), "bad bytes are not kept");
    assert!(run.stdout.contains("failed 1"), "{}", run.stdout);
}

#[test]
fn one_failing_model_does_not_stop_the_others() {
    let sc = scenario();
    let good = payload(10_000, 5);
    sc.serve("/good", vec![Reply::Body(good.clone())]);
    sc.pin("bad", "bad.bin", &payload(10_000, 55), &["/missing"]);
    sc.pin("good", "good.bin", &good, &["/good"]);
    let run = sc.models(&["fetch"]);
    run.expect(1);
    assert!(sc.file("good.bin").exists());
    assert!(run.stdout.contains("fetched 1") && run.stdout.contains("failed 1"), "{}", run.stdout);
}

#[test]
fn a_wrong_file_at_the_destination_is_replaced() {
    let sc = scenario();
    let data = payload(20_000, 6);
    sc.serve("/f", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    std::fs::write(sc.file("m.bin"), b"stale bytes").unwrap();
    sc.models(&["fetch"]).expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
}

#[test]
fn selection_defaults_skip_optional_models_and_groups_select() {
    let sc = scenario();
    let data: Vec<_> = (0..3).map(|seed| payload(1000, 90 + seed)).collect();
    for (p, data) in ["/core", "/extra", "/old"].iter().zip(&data) {
        sc.serve(p, vec![Reply::Body(data.clone())]);
    }
    let mut core = Pin::new("core", "core.bin", &data[0], &[sc.server.url("/core")]);
    core.group = Some("main".into());
    let mut extra = Pin::new("extra", "extra.bin", &data[1], &[sc.server.url("/extra")]);
    extra.group = Some("main".into());
    let mut old = Pin::new("old", "old.bin", &data[2], &[sc.server.url("/old")]);
    old.group = Some("legacy".into());
    old.optional = true;
    sc.write_manifest(&[core, extra, old]);
    sc.models(&["fetch"]).expect(0);
    assert!(sc.file("core.bin").exists() && sc.file("extra.bin").exists());
    assert!(!sc.file("old.bin").exists(), "optional models wait for a selection");
    sc.models(&["fetch", "--group", "legacy"]).expect(0);
    assert!(sc.file("old.bin").exists());
    sc.models(&["fetch", "--all"]).expect(0);
    assert_eq!(sc.server.requests().len(), 3);

    let run = sc.models(&["fetch", "--model", "nope"]);
    run.expect(2);
    assert!(run.stderr.contains("no model named \"nope\""), "{}", run.stderr);
    let run = sc.models(&["fetch", "--model", "cor"]);
    run.expect(2);
    assert!(run.stderr.contains("did you mean `core` (core.bin)?"), "the closest, not all: {}", run.stderr);
    assert!(!run.stderr.contains("old"), "{}", run.stderr);
    let run = sc.models(&["fetch", "--all", "--model", "core"]);
    run.expect(2);
}

#[test]
fn the_log_file_records_every_attempt_without_credentials() {
    let sc = scenario();
    let data = payload(10_000, 10);
    sc.serve("/f", vec![Reply::status(503), Reply::Body(data.clone())]);
    let secret_url = sc.server.url("/f?token=hunter2").replace("http://", "http://user:pa55@");
    sc.serve("/f?token=hunter2", vec![Reply::status(503), Reply::Body(data.clone())]);
    sc.write_manifest(&[Pin::new("m", "m.bin", &data, &[sc.server.url("/404"), secret_url])]);
    let log = sc.dir.join("logs/fetch.log");
    let log_arg = log.display().to_string();
    let mut args = vec!["fetch", "--log-file", &log_arg];
    args.extend_from_slice(FAST);
    sc.models(&args).expect(0);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].contains("status=404") && lines[0].contains("class=not-found decision=next-url"),
        "{text}"
    );
    assert!(lines[1].contains("attempt=1 status=503") && lines[1].contains("decision=retry"), "{text}");
    assert!(
        lines[2].contains("attempt=2 status=200 resumed_from=0 bytes=10000")
            && lines[2].contains("decision=done"),
        "{text}"
    );
    assert!(lines.iter().all(|l| l.len() > 24 && l.as_bytes()[10] == b'T'), "timestamped: {text}");
    assert!(!text.contains("hunter2") && !text.contains("pa55"), "{text}");
}

#[test]
fn skip_checks_installs_mismatched_bytes_and_says_so_loudly_but_stops_at_the_pinned_size() {
    let sc = scenario();
    let pinned = payload(1000, 11);
    sc.serve("/f", vec![Reply::Body(payload(1500, 12))]);
    sc.pin("m", "m.bin", &pinned, &["/f"]);
    let run = sc.models(&["fetch", "--skip-checks", "--quiet"]);
    run.expect(0);
    assert!(run.stderr.contains("NOT checked"), "{}", run.stderr);
    assert!(run.stdout.contains("checks skipped"), "{}", run.stdout);
    let installed = std::fs::read(sc.file("m.bin")).unwrap();
    assert_eq!(installed, payload(1500, 12)[..1000], "cut at the pin's 1000 bytes, not the body's 1500");
    // Without --skip-checks the same file is wrong and verify says so.
    sc.models(&["verify"]).expect(1);
    sc.models(&["verify", "--skip-checks"]).expect(0);
}

#[test]
fn a_download_that_cannot_fit_is_refused_before_any_request() {
    let sc = scenario();
    let mut pin = Pin::new("huge", "huge.bin", b"x", &[sc.server.url("/huge")]);
    pin.size = 1 << 49;
    sc.write_manifest(&[pin]);
    let run = sc.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("not enough free space"), "{}", run.stderr);
    assert!(run.stderr.contains(&format!("({} bytes)", 1u64 << 49)), "{}", run.stderr);
    assert!(
        run.stderr.contains("another disk with `--cache-dir DIR`"),
        "the cache is what fills: {}",
        run.stderr
    );
    let direct = sc.models(&["fetch", "--no-cache"]);
    direct.expect(1);
    assert!(direct.stderr.contains("another disk with `--checkpoints-dir DIR`"), "{}", direct.stderr);
    assert!(sc.server.requests().is_empty());
}

#[test]
fn a_directory_at_the_destination_is_a_clear_local_error_and_is_kept() {
    let sc = scenario();
    let data = payload(1000, 13);
    sc.serve("/a", vec![Reply::Body(data.clone())]);
    sc.serve("/b", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/a", "/b"]);
    std::fs::create_dir_all(sc.file("m.bin")).unwrap();
    std::fs::write(sc.file("m.bin/keep.txt"), b"mine").unwrap();
    let run = sc.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("is a directory"), "{}", run.stderr);
    assert_eq!(sc.server.hits("/b"), 0, "a local fault is not retried on other URLs");
    assert_eq!(std::fs::read(sc.file("m.bin/keep.txt")).unwrap(), b"mine");
}

#[test]
fn progress_lines_appear_off_a_terminal_and_quiet_hides_them() {
    let sc = scenario();
    let data = payload(5000, 14);
    sc.serve("/f", vec![Reply::Body(data.clone())]);
    sc.pin("m", "m.bin", &data, &["/f"]);
    let run = sc.models(&["fetch"]);
    run.expect(0);
    assert!(
        run.stderr.contains(&format!("m: downloading 4.9 KiB from {}", sc.server.url("/f"))),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("m: fetched 4.9 KiB"), "{}", run.stderr);
    assert!(!run.stderr.contains('\x1b'), "no terminal codes in a log");

    std::fs::remove_file(sc.file("m.bin")).unwrap();
    let run = sc.models(&["fetch", "--quiet", "--no-cache"]);
    run.expect(0);
    assert_eq!(run.stderr, "");
    assert!(run.stdout.starts_with("fetched 1 (4.9 KiB in "), "{}", run.stdout);
}

#[test]
fn file_urls_are_a_source_like_any_other() {
    let sb = sandbox();
    let data = payload(40_000, 15);
    let source = sb.dir.join("source dir/m.bin");
    std::fs::create_dir_all(source.parent().unwrap()).unwrap();
    std::fs::write(&source, &*data).unwrap();
    let url = format!("file://{}", source.display()).replace(' ', "%20");
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &[url])]);
    sb.models(&["fetch"]).expect(0);
    assert_eq!(std::fs::read(sb.file("m.bin")).unwrap(), *data);
}

#[test]
fn credentials_in_urls_never_reach_errors_or_json() {
    let sc = scenario();
    let secret = sc.server.url("/private?token=hunter2&sig=abc").replace("http://", "http://user:pa55@");
    sc.serve("/private?token=hunter2&sig=abc", vec![Reply::status(403)]);
    sc.write_manifest(&[Pin::new("m", "m.bin", &payload(10, 16), &[secret])]);
    let run = sc.models(&["fetch", "--json"]);
    run.expect(1);
    let all = run.output();
    assert!(all.contains("HTTP 403"), "{all}");
    for needle in ["hunter2", "pa55", "sig=abc"] {
        assert!(!all.contains(needle), "{needle} leaked:\n{all}");
    }
    assert!(all.contains("token=***"), "{all}");
}

#[test]
fn a_terminal_gets_a_live_bar_per_file_and_a_total() {
    // `script` gives the tool a pseudo-terminal, as a developer's shell would.
    let sc = scenario();
    let data = payload(3 << 20, 17);
    let slow =
        Reply::Slow { body: data.clone(), chunk: 256 << 10, pause: std::time::Duration::from_millis(40) };
    sc.serve("/f", vec![slow]);
    sc.pin("model-on-a-tty", "m.bin", &data, &["/f"]);
    let command = format!(
        "stty cols 80; {} models fetch --manifest {} --checkpoints-dir {}",
        env!("CARGO_BIN_EXE_xtask-under-test"),
        sc.manifest.display(),
        sc.checkpoints.display()
    );
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .env("XTASK_MODELS_CACHE_DIR", &sc.cache)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script runs");
    let screen = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(screen.contains('\x1b'), "terminal control codes redraw the bars: {screen:?}");
    assert!(screen.contains("model-on-a-tty"), "a bar named after the file: {screen:?}");
    assert!(screen.contains("total"), "a total bar: {screen:?}");
    assert!(screen.contains("MiB/s"), "the rate: {screen:?}");
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data);
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
fn a_model_is_selected_by_its_file_name_or_path_and_two_with_that_file_name_are_listed() {
    let sc = scenario();
    let data = payload(1000, 600);
    sc.serve("/g", vec![Reply::Body(data.clone())]);
    sc.pin("gfpgan-1.4", "gfpgan/weights/GFPGANv1.4.pth", &data, &["/g"]);
    sc.model("other", "other.bin", payload(1000, 601));
    let mut args = vec!["fetch", "--model", "GFPGANv1.4.pth"];
    args.extend(FAST);
    sc.models(&args).expect(0);
    assert_eq!(std::fs::read(sc.file("gfpgan/weights/GFPGANv1.4.pth")).unwrap(), *data);
    assert!(!sc.file("other.bin").exists(), "only the model named by its file");
    sc.models(&["verify", "--model", "gfpgan/weights/GFPGANv1.4.pth"]).expect(0);
    sc.pin("gfpgan-copy", "elsewhere/GFPGANv1.4.pth", &data, &["/g"]);
    let run = sc.models(&["verify", "--model", "GFPGANv1.4.pth"]);
    run.expect(2);
    assert!(run.stderr.contains("gfpgan-1.4 (gfpgan/weights/GFPGANv1.4.pth)"), "{}", run.stderr);
    assert!(run.stderr.contains("gfpgan-copy (elsewhere/GFPGANv1.4.pth)"), "{}", run.stderr);
    let run = sc.models(&["verify", "--model", "GFPGANv1.3.pth"]);
    run.expect(2);
    assert!(run.stderr.contains("did you mean `gfpgan-1.4`"), "the closest, with its file: {}", run.stderr);
    assert!(!run.stderr.contains("`other`"), "not every name: {}", run.stderr);
}

#[test]
fn an_existing_checkpoints_folder_is_adopted_and_only_its_corrupt_file_is_fetched() {
    let sc = scenario();
    let (good, bad) = (payload(200_000, 603), payload(200_000, 604));
    sc.model("good", "good.bin", good.clone());
    sc.model("bad", "sub/bad.bin", bad.clone());
    // What the old script left: one right file, one with other bytes of the same size.
    std::fs::create_dir_all(sc.file("sub")).unwrap();
    std::fs::write(sc.file("good.bin"), &*good).unwrap();
    std::fs::write(sc.file("sub/bad.bin"), vec![0u8; bad.len()]).unwrap();
    let mut args = vec!["fetch", "--no-cache"];
    args.extend(FAST);
    let run = sc.models(&args);
    run.expect(0);
    let asked: Vec<String> = sc.server.gets().iter().map(|r| r.path.clone()).collect();
    assert_eq!(asked, ["/bad"], "only the corrupt file is fetched: {asked:?}");
    assert_eq!(std::fs::read(sc.file("sub/bad.bin")).unwrap(), *bad);
    assert_eq!(std::fs::read(sc.file("good.bin")).unwrap(), *good);
    let run = sc.models(&["verify", "--json"]);
    run.expect(0);
    assert!(run.stdout.contains("ok-stamped"), "hashed once, then stamped: {}", run.stdout);
}

#[test]
fn jobs_download_files_concurrently_and_one_job_does_not() {
    let server = Server::start();
    server.set_latency(Duration::from_millis(150));
    let pins = three_models(&server);
    let sb = sandbox();
    sb.write_manifest(&pins);
    sb.models(&["fetch", "--jobs", "1", "--no-cache"]).expect(0);
    assert_eq!(server.most_concurrent(), 1);

    let server = Server::start();
    server.set_latency(Duration::from_millis(150));
    let pins = three_models(&server);
    let sb = sandbox();
    sb.write_manifest(&pins);
    sb.models(&["fetch", "--jobs", "3"]).expect(0);
    assert!(server.most_concurrent() >= 2, "{}", server.most_concurrent());
}

#[test]
fn a_model_glob_selects_every_model_whose_name_it_matches() {
    let sc = scenario();
    sc.model("sadtalker-256", "a.bin", payload(100, 590));
    sc.model("sadtalker-512", "b.bin", payload(100, 591));
    sc.model("gfpgan-1.4", "c.bin", payload(100, 592));
    sc.models(&["fetch", "--model", "sadtalker-*"]).expect(0);
    assert!(sc.file("a.bin").exists() && sc.file("b.bin").exists() && !sc.file("c.bin").exists());
    let none = sc.models(&["fetch", "--model", "wav2lip-*"]);
    none.expect(2);
    assert!(none.stderr.contains("no model name matches \"wav2lip-*\""), "{}", none.stderr);
}
