//! `models doctor`: what stands between the machine and the models, told without
//! downloading anything; `--urls` finds dead and stale links.

use tests::{Pin, Reply, payload, sha256_hex};

use crate::{sandbox, scenario};

#[test]
fn doctor_names_what_is_in_the_way_and_hides_proxy_credentials() {
    let mut sb = sandbox();
    let data = payload(1000, 700);
    sb.write_manifest(&[Pin::new("m", "m.bin", &data, &["https://models.example/m.bin".into()])]);
    let run = sb.models(&["doctor"]);
    run.expect(0);
    assert!(run.stdout.contains("ok   proxy        none: every host is reached directly"), "{}", run.stdout);
    assert!(run.stdout.ends_with("doctor: all well\n"), "{}", run.stdout);

    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    let partial = sb.file(&format!("m.bin.{}.part", &sha256_hex(&data)[..12]));
    std::fs::write(&partial, &data[..400]).unwrap();
    sb.set_env("HTTPS_PROXY", "http://alice:PW@127.0.0.1:3128");
    sb.set_env("SSL_CERT_FILE", "/nonexistent/ca.pem");
    let run = sb.models(&["doctor"]);
    run.expect(1);
    assert!(
        run.stdout.contains("https://models.example through http://***@127.0.0.1:3128"),
        "{}",
        run.stdout
    );
    assert!(!run.output().contains("PW"), "no proxy password: {}", run.output());
    assert!(
        run.stdout.contains("FAIL certificates SSL_CERT_FILE=/nonexistent/ca.pem cannot be read"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 partial download(s), 400 B"), "{}", run.stdout);
    assert!(run.stdout.ends_with("doctor: 1 problem\n"), "{}", run.stdout);
    assert!(partial.exists(), "doctor changes nothing");

    // A fetch holding a cache entry's lock is seen; a link loop in the folder is not
    // followed (the walk would never end).
    let lock_path = sb.cache.join(".locks").join(format!("{}.lock", sha256_hex(&data)));
    std::fs::create_dir_all(lock_path.parent().unwrap()).unwrap();
    let lock_file = std::fs::File::create(&lock_path).unwrap();
    lock_file.lock().unwrap();
    std::os::unix::fs::symlink(&sb.checkpoints, sb.checkpoints.join("loop")).unwrap();
    let run = sb.models(&["doctor"]);
    assert!(run.stdout.contains("1 held right now (a fetch or clean is running)"), "{}", run.stdout);
    drop(lock_file);
}

#[test]
fn doctor_urls_finds_dead_and_stale_links_without_downloading_a_file() {
    let sc = scenario();
    let (a, b, c) = (payload(100_000, 701), payload(100_000, 702), payload(100_000, 703));
    sc.serve("/ok", vec![Reply::Body(a.clone())]);
    sc.serve("/gone", vec![Reply::status(404)]);
    sc.serve("/stale", vec![Reply::Body(payload(99_000, 704))]);
    // HEAD refused, then the one-byte GET served.
    sc.serve("/nohead", vec![Reply::status(405), Reply::Body(b.clone())]);
    sc.serve("/c", vec![Reply::Body(c.clone())]);
    sc.pin("a", "a.bin", &a, &["/ok", "/gone"]);
    sc.pin("b", "b.bin", &b, &["/stale", "/nohead"]);
    sc.pin("c", "c.bin", &c, &["/c"]);
    let run = sc.models(&["doctor", "--urls"]);
    run.expect(1);
    let line = |path: &str| {
        let url = sc.url(path);
        run.stdout.lines().find(|l| l.contains(&format!(" {url}:"))).unwrap_or_default().to_owned()
    };
    assert!(line("/ok").starts_with("ok   serves       a "), "{}", run.stdout);
    assert!(
        line("/gone").starts_with("FAIL dead         a ") && line("/gone").contains("(not-found)"),
        "{}",
        run.stdout
    );
    assert!(
        line("/stale").starts_with("FAIL stale        b ") && line("/stale").contains("99000 bytes"),
        "{}",
        run.stdout
    );
    assert!(line("/nohead").starts_with("ok   serves       b "), "{}", run.stdout);
    assert!(run.stdout.ends_with("doctor: 2 problems\n"), "{}", run.stdout);
    let sent: u64 = sc.server.requests().iter().map(|r| r.body_bytes).sum();
    assert!(sent <= 1, "no file was downloaded: {sent} body bytes");
    assert!(
        sc.server.requests().iter().all(|r| r.method == "HEAD" || r.range.as_deref() == Some("bytes=0-0"))
    );

    let json = sc.models(&["doctor", "--urls", "--json"]);
    json.expect(1);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["command"], "doctor");
    assert_eq!(doc["summary"]["problems"], 2);
    let states: Vec<&str> =
        doc["urls"].as_array().unwrap().iter().map(|u| u["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["serves", "dead", "stale", "serves", "serves"]);
    let mut keys: Vec<&str> = doc["urls"][1].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["error", "model", "size", "state", "status", "url"], "the documented shape");

    // A selection whose URLs all serve their pins is all well.
    let good = sc.models(&["doctor", "--urls", "--model", "c"]);
    good.expect(0);
    assert!(good.stdout.ends_with("doctor: all well\n"), "{}", good.stdout);
}

#[test]
fn doctor_urls_calls_a_host_it_cannot_reach_unreachable_not_dead() {
    // Offline (or behind a wall), no URL answers: that says nothing about the URLs.
    let sc = scenario();
    let data = payload(1000, 705);
    let closed = tests::daemons::DeadPort::hold();
    sc.serve("/gone", vec![Reply::status(404)]);
    sc.pin("m", "m.bin", &data, &[&format!("{}/m.bin", closed.url()), "/gone"]);
    let run = sc.models(&["doctor", "--urls"]);
    run.expect(1);
    let line = |needle: &str| run.stdout.lines().find(|l| l.contains(needle)).unwrap_or_default().to_owned();
    assert!(line(&closed.url()).starts_with("FAIL unreachable  m "), "{}", run.stdout);
    assert!(line("/gone").starts_with("FAIL dead         m "), "{}", run.stdout);
}
