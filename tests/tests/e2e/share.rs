//! Sharing one machine: concurrent processes, a cache shared by checkouts, mirrors,
//! offline mode and parallel jobs.

use std::time::Duration;

use tests::{Pin, Reply, Server, payload, wait_until};

use crate::{sandbox, scenario};

/// Three models on `server`, each at its own path; returns their pins.
fn three_models(server: &Server) -> Vec<Pin> {
    (0..3u64)
        .map(|i| {
            let data = payload(200_000 + i as usize * 1000, 40 + i);
            let path = format!("/m{i}");
            server.script(&path, vec![Reply::Body(data.clone())]);
            Pin::new(&format!("m{i}"), &format!("dir/m{i}.bin"), &data, &[server.url(&path)])
        })
        .collect()
}

/// Starts four fetches of the three models while the server holds every answer, waits
/// until each model has a holder downloading it and `waiters` lock waits have been
/// announced, then lets the answers go. An explicit signal, not a sleep, makes the race.
fn four_racing_fetches(
    sc: &tests::Scenario,
    args: &[&str],
    held: &[&str],
    waiters: usize,
) -> Vec<tests::Run> {
    sc.server.close_gate();
    let children: Vec<_> = (0..4).map(|_| sc.spawn_logged(args)).collect();
    wait_until(Duration::from_secs(60), "every model held and every other fetch waiting", || {
        let requested = held.iter().all(|p| sc.server.hits(p) >= 1);
        let waiting: usize =
            children.iter().map(|c| c.stderr().matches("waiting for another fetch of").count()).sum();
        requested && waiting >= waiters
    });
    sc.server.open();
    children.into_iter().map(|c| c.finish()).collect()
}

#[test]
fn four_concurrent_fetches_transfer_each_file_once() {
    let sc = scenario();
    sc.write_manifest(&three_models(&sc.server));
    // With two jobs each, every fetch starts on m0 and m1: one holds each, three wait.
    let runs = four_racing_fetches(&sc, &["fetch", "--jobs", "2"], &["/m0", "/m1"], 6);
    for run in &runs {
        run.expect(0);
    }
    for i in 0..3 {
        assert_eq!(sc.server.hits(&format!("/m{i}")), 1, "m{i} was downloaded once");
    }
    sc.models(&["verify"]).expect(0);
}

#[test]
fn concurrent_fetches_without_the_cache_also_download_once() {
    let sc = scenario();
    sc.write_manifest(&three_models(&sc.server));
    // Four jobs each: every fetch tries all three models at once; one holds each.
    let runs = four_racing_fetches(&sc, &["fetch", "--no-cache"], &["/m0", "/m1", "/m2"], 9);
    for run in &runs {
        run.expect(0);
    }
    for i in 0..3 {
        assert_eq!(sc.server.hits(&format!("/m{i}")), 1, "m{i} was downloaded once");
    }
    assert!(runs.iter().any(|r| r.stderr.contains("present (another process fetched it)")));
}

#[test]
fn a_second_checkout_gets_its_files_from_the_cache_with_no_request() {
    let server = Server::start();
    let pins = three_models(&server);
    let first = sandbox();
    first.write_manifest(&pins);
    first.models(&["fetch"]).expect(0);
    let second = first.sibling();
    second.write_manifest(&pins);
    let run = second.models(&["fetch"]);
    run.expect(0);
    assert!(run.stdout.contains("fetched 0") && run.stdout.contains("from cache 3"), "{}", run.stdout);
    assert_eq!(server.requests().len(), 3, "the second checkout made no request");
    assert!(run.stderr.contains("linked from the cache"), "{}", run.stderr);
    second.models(&["verify"]).expect(0);
}

#[test]
fn a_corrupt_cache_entry_is_removed_and_fetched_again() {
    let server = Server::start();
    let pins = three_models(&server);
    let first = sandbox();
    first.write_manifest(&pins[..1]);
    first.models(&["fetch"]).expect(0);
    let entry = first.cache.join("sha256").join(&pins[0].sha256);
    std::fs::write(&entry, payload(pins[0].size as usize, 77).as_slice()).unwrap();

    let second = first.sibling();
    second.write_manifest(&pins[..1]);
    let run = second.models(&["fetch"]);
    run.expect(0);
    assert!(run.stderr.contains("was corrupt"), "{}", run.stderr);
    assert_eq!(server.hits("/m0"), 2);
    second.models(&["verify"]).expect(0);
}

#[test]
fn mirrors_are_tried_before_the_models_own_urls() {
    let origin = Server::start();
    let mirror = Server::start();
    let pins = three_models(&origin);
    let data = payload(200_000, 40);
    mirror.script(&format!("/pool/sha256/{}", pins[0].sha256), vec![Reply::Body(data)]);
    let sb = sandbox();
    sb.write_manifest(&pins[..1]);
    sb.models(&["fetch", "--mirror", &mirror.url("/pool/")]).expect(0);
    assert_eq!(origin.hits("/m0"), 0);
    assert_eq!(mirror.requests().len(), 1);
}

#[test]
fn an_exported_mirror_serves_a_checkout_when_the_origin_is_down() {
    let origin = Server::start();
    let pins = three_models(&origin);
    let sb = sandbox();
    sb.write_manifest(&pins);
    sb.models(&["fetch"]).expect(0);
    let dir = sb.dir.join("mirror");
    let dir_arg = dir.display().to_string();
    let run = sb.models(&["mirror", &dir_arg]);
    run.expect(0);
    assert!(run.stdout.contains("exported 3 of 3"), "{}", run.stdout);
    drop(origin);

    let mut other = sandbox();
    other.write_manifest(&pins);
    other.set_env("XTASK_MODELS_MIRRORS", &dir_arg);
    let run = other.models(&["fetch"]);
    run.expect(0);
    assert!(run.stdout.contains("fetched 3"), "{}", run.stdout);
    other.models(&["verify"]).expect(0);
}

#[test]
fn offline_mode_uses_only_local_sources() {
    let server = Server::start();
    let pins = three_models(&server);
    let first = sandbox();
    first.write_manifest(&pins);
    first.models(&["fetch"]).expect(0);

    let mut second = first.sibling();
    second.write_manifest(&pins);
    second.set_env("XTASK_MODELS_OFFLINE", "1");
    second.models(&["fetch"]).expect(0);
    assert_eq!(server.requests().len(), 3, "offline made no request");

    let fresh = sandbox();
    fresh.write_manifest(&pins);
    let run = fresh.models(&["fetch", "--offline"]);
    run.expect(1);
    assert!(run.stderr.contains("run without --offline"), "{}", run.stderr);
    let run = fresh.models(&["fetch", "--offline", "--verbose"]);
    assert!(run.stderr.contains("`cargo xtask models fetch --model m0 --manifest"), "{}", run.stderr);
    assert_eq!(server.requests().len(), 3, "offline made no request");
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
fn clean_cache_prunes_entries_the_manifest_no_longer_pins() {
    let sc = scenario();
    let pins = three_models(&sc.server);
    sc.write_manifest(&pins);
    sc.models(&["fetch"]).expect(0);
    sc.write_manifest(&pins[..2]);
    let run = sc.models(&["clean", "--cache", "--dry-run"]);
    run.expect(0);
    assert!(run.stdout.contains(&format!("would remove cache entry {}", pins[2].sha256)), "{}", run.stdout);
    assert!(!run.stdout.contains(&pins[0].sha256), "{}", run.stdout);
    sc.models(&["clean", "--cache"]).expect(0);
    assert!(!sc.cache.join("sha256").join(&pins[2].sha256).exists());
    assert!(sc.cache.join("sha256").join(&pins[0].sha256).exists());
}
