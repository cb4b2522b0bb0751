//! `--connections auto`, the default: a split file adds connections while they add
//! speed, and none that don't. The servers pace their answers (per connection, or in
//! total over all of them) with wide margins, so each test asserts counts and the story
//! the log tells, never a time.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tests::{Reply, payload};

use crate::{FAST, scenario};

const MIB: usize = 1 << 20;

/// Each connection at 12.5 MiB/s (64 KiB every 5 ms), as CDNs cap a connection.
fn capped_per_connection(body: &Arc<Vec<u8>>) -> Reply {
    Reply::Slow { body: body.clone(), chunk: 64 << 10, pause: Duration::from_millis(5) }
}

fn fetch_logged(sc: &tests::Scenario, extra: &[&str]) -> (tests::Run, String) {
    let log = sc.file("attempts.log");
    let mut args = vec!["fetch", "--no-cache", "--json", "--log-file", log.to_str().unwrap()];
    args.extend_from_slice(FAST);
    args.extend_from_slice(extra);
    let run = sc.models(&args);
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    (run, log)
}

/// The `connections` of each model's JSON record, by name.
fn connections(run: &tests::Run) -> Vec<(String, u64)> {
    let doc: serde_json::Value = serde_json::from_str(&run.stdout).expect("one JSON document");
    let models = doc["models"].as_array().unwrap();
    models
        .iter()
        .map(|m| (m["name"].as_str().unwrap().to_owned(), m["connections"].as_u64().unwrap()))
        .collect()
}

fn story(log: &str, model: &str) -> String {
    let prefix = format!("model={model} connections ");
    let line = log.lines().find(|l| l.contains(&prefix)).unwrap_or_else(|| panic!("no story in:\n{log}"));
    line[line.find("connections ").unwrap()..].to_owned()
}

#[test]
fn auto_adds_connections_while_each_adds_speed_on_a_server_that_caps_each_one() {
    let sc = scenario();
    let data = payload(96 * MIB, 900);
    sc.serve("/big", vec![capped_per_connection(&data)]);
    sc.pin("big", "big.bin", &data, &["/big"]);
    let (run, log) = fetch_logged(&sc, &[]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    let told = story(&log, "big");
    // One stream, then two (about twice the rate: each connection is capped), then more.
    assert!(told.starts_with("connections 1→2→"), "{told}");
    let used = connections(&run)[0].1;
    assert!(used >= 8, "JSON says {used}: {told}");
    assert!(sc.server.most_concurrent() >= 8, "{told}");
    assert_eq!(sc.server.gets()[0].range.as_deref(), Some("bytes=0-"), "it starts as one stream");
}

#[test]
fn auto_opens_two_at_most_where_one_fills_a_link_capped_in_total() {
    let sc = scenario();
    let data = payload(48 * MIB, 901);
    // 64 KiB every 2 ms over all connections: ~31 MiB/s, however many there are.
    let pacer = Arc::new(Mutex::new(Instant::now()));
    let shared =
        Reply::Shared { body: data.clone(), chunk: 64 << 10, pause: Duration::from_millis(2), pacer };
    sc.serve("/big", vec![shared]);
    sc.pin("big", "big.bin", &data, &["/big"]);
    let (run, log) = fetch_logged(&sc, &[]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    let told = story(&log, "big");
    assert!(told.starts_with("connections 1→2→1 (rate "), "{told}");
    assert!(told.contains("): held at 1, no gain from more"), "{told}");
    assert_eq!(connections(&run)[0].1, 2, "the second was opened, found to add nothing, and closed");
    // A request the client closed counts at the server until it notices: one of slack.
    assert!(sc.server.most_concurrent() <= 3, "{}", sc.server.most_concurrent());
}

#[test]
fn a_refusal_on_an_extra_connection_ends_the_ramp_and_is_told_with_verbose() {
    let sc = scenario();
    let data = payload(96 * MIB, 902);
    let capped = capped_per_connection(&data);
    // The first two are served; the ramp then asks for six more, and the host refuses
    // three of them as a `limit_conn` does.
    let busy = Reply::status(503);
    let replies = vec![capped.clone(), capped.clone(), busy.clone(), busy.clone(), busy, capped];
    sc.serve("/big", replies);
    sc.pin("big", "big.bin", &data, &["/big"]);
    let (run, log) = fetch_logged(&sc, &["--verbose"]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    let told = story(&log, "big");
    assert!(told.contains("3 refused by the host (HTTP 503), closed"), "{told}");
    assert!(told.contains("a connection was refused"), "{told}");
    assert!(run.stderr.contains("big: connections 1→2→"), "--verbose tells it: {}", run.stderr);
}

#[test]
fn the_pieces_of_a_blend_ramp_over_every_source() {
    let sc = scenario();
    let data = payload(64 * MIB, 903);
    sc.serve("/one", vec![capped_per_connection(&data)]);
    sc.serve("/two", vec![capped_per_connection(&data)]);
    sc.pin("big", "big.bin", &data, &["/one", "/two"]);
    let (run, log) = fetch_logged(&sc, &[]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    let gets = sc.server.gets();
    let from = |path: &str| gets.iter().filter(|r| r.path == path).count();
    assert!(from("/one") >= 2 && from("/two") >= 2, "both sources served pieces: {gets:?}");
    assert!(story(&log, "big").starts_with("connections 1→2→"), "{log}");
}

#[test]
fn files_fetched_at_once_share_the_hosts_ceiling_and_each_gets_more_than_one() {
    let sc = scenario();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let data = payload(64 * MIB, 904 + i as u64);
        sc.serve(&format!("/{name}"), vec![capped_per_connection(&data)]);
        sc.pin(name, &format!("{name}.bin"), &data, &[&format!("/{name}")]);
    }
    let (run, _log) = fetch_logged(&sc, &["--jobs", "2"]);
    run.expect(0);
    let used = connections(&run);
    assert!(used.iter().all(|(_, n)| *n >= 2), "neither starves the other: {used:?}");
    // Sixteen extra connections to the host at most, plus each file's first; one of
    // slack per file for a request the server has not yet seen closed.
    assert!(sc.server.most_concurrent() <= 16 + 2 + 2, "{}", sc.server.most_concurrent());
}

#[test]
fn a_later_file_from_the_same_host_starts_where_the_first_settled() {
    let sc = scenario();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let data = payload(64 * MIB, 910 + i as u64);
        sc.serve(&format!("/{name}"), vec![capped_per_connection(&data)]);
        sc.pin(name, &format!("{name}.bin"), &data, &[&format!("/{name}")]);
    }
    let (run, log) = fetch_logged(&sc, &["--jobs", "1"]);
    run.expect(0);
    let first = story(&log, "a");
    let settled = first.rsplit_once("held at ").and_then(|(_, rest)| rest.split(',').next()).unwrap();
    assert!(settled.parse::<u64>().unwrap() > 1, "the first file grew: {first}");
    let second = story(&log, "b");
    assert!(second.starts_with(&format!("connections {settled}")), "{second} after {first}");
}
