//! The shared cache: concurrent processes transfer each file once; a checkout gets a
//! verified entry as a clone where the filesystem can (its own file), else a hard link,
//! else a copy, and `status` says which; an edit through a link, a corrupt entry or a
//! mistyped pin never wins; offline mode uses only local sources.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tests::daemons::Mount;
use tests::{Pin, Reply, Sandbox, Scenario, Server, finish, payload, sha256_hex, wait_until};

use crate::three_models;
use crate::{TOOL, sandbox, scenario};

#[test]
fn a_size_typo_in_a_pin_is_a_pin_error_and_keeps_the_good_cache_entry() {
    let sc = scenario();
    let data = sc.model("m", "m.bin", payload(6000, 506));
    sc.models(&["fetch"]).expect(0);
    let other = sc.sibling();
    let mut typo = Pin::new("m", "m.bin", &data, &[sc.url("/m")]);
    typo.size += 1;
    other.write_manifest(&[typo]);
    let run = other.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("(bad-pin)") && run.stderr.contains("fix `size`"), "{}", run.stderr);
    let entry = sc.cache.join("sha256").join(sha256_hex(&data));
    assert_eq!(std::fs::read(entry).unwrap(), *data, "the entry is kept");
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
    assert!(run.stderr.contains(&format!("`{TOOL} models fetch --model m0` without")), "{}", run.stderr);
    assert_eq!(server.requests().len(), 3, "offline made no request");
    // Made offline by the variable, the hints name the variable, not a flag never typed.
    let mut by_variable = sandbox();
    by_variable.write_manifest(&pins);
    by_variable.set_env("XTASK_MODELS_OFFLINE", "1");
    let run = by_variable.models(&["fetch"]);
    run.expect(1);
    assert!(run.stderr.contains("XTASK_MODELS_OFFLINE turned --offline on: unset it"), "{}", run.stderr);
}

/// A scenario with two models served, fetched once through the shared cache.
fn two_models(sc: &Scenario) -> (Vec<u8>, Vec<u8>) {
    let a = sc.model("a", "a.bin", payload(300_000, 800)).to_vec();
    let b = sc.model("b", "b.bin", payload(200_000, 801)).to_vec();
    (a, b)
}

fn placed(sb: &Sandbox) -> Vec<String> {
    let run = sb.models(&["status", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    doc["models"].as_array().unwrap().iter().map(|m| m["placed"].as_str().unwrap_or("-").to_owned()).collect()
}

fn cache_entry(sb: &Sandbox, data: &[u8]) -> std::path::PathBuf {
    sb.cache.join("sha256").join(tests::sha256_hex(data))
}

fn inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().ino()
}

#[test]
fn a_second_checkout_linking_the_same_entries_leaves_the_first_ones_stamps_valid() {
    let sc = scenario();
    let (a, _) = two_models(&sc);
    sc.models(&["fetch", "--link-mode", "hardlink"]).expect(0);
    assert_eq!(inode(&sc.file("a.bin")), inode(&cache_entry(&sc, &a)), "a hard link is the cache's inode");
    assert_eq!(placed(&sc), ["hard-link", "hard-link"]);

    let second = sc.sibling();
    std::fs::copy(&sc.manifest, &second.manifest).unwrap();
    second.models(&["fetch", "--link-mode", "hardlink"]).expect(0);
    assert_eq!(inode(&second.file("a.bin")), inode(&sc.file("a.bin")), "both checkouts share the inode");
    // The new link changed the shared inode's ctime: the first checkout's stamps hold.
    let run = sc.models(&["verify", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    let states: Vec<&str> =
        doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["ok-stamped", "ok-stamped"], "no rehash after another checkout linked: {doc}");
}

#[test]
fn copy_mode_gives_each_checkout_its_own_file_and_auto_never_copies_on_one_filesystem() {
    let mut sc = scenario();
    let (a, _) = two_models(&sc);
    sc.set_env("XTASK_MODELS_LINK_MODE", "copy");
    let run = sc.models(&["fetch"]);
    run.expect(0);
    assert_ne!(inode(&sc.file("a.bin")), inode(&cache_entry(&sc, &a)), "a copy is a file of its own");
    assert_eq!(placed(&sc), ["copy", "copy"]);
    let status = sc.models(&["status"]);
    assert!(status.stdout.lines().next().unwrap().contains("PLACED"), "{}", status.stdout);

    let mut other = sc.sibling();
    std::fs::copy(&sc.manifest, &other.manifest).unwrap();
    other.set_env("XTASK_MODELS_LINK_MODE", "");
    other.models(&["fetch"]).expect(0);
    let how = placed(&other);
    assert!(how.iter().all(|p| p == "clone" || p == "hard-link"), "auto links or clones: {how:?}");

    // An explicit clone never falls back to a hard link: a clone where the filesystem
    // can, else a copy.
    let cloned = sc.sibling();
    std::fs::copy(&sc.manifest, &cloned.manifest).unwrap();
    cloned.models(&["fetch", "--link-mode", "clone"]).expect(0);
    let how = placed(&cloned);
    assert!(how.iter().all(|p| p == "clone" || p == "copy"), "clone or copy: {how:?}");
    assert_ne!(inode(&cloned.file("a.bin")), inode(&cache_entry(&sc, &a)));

    other.set_env("XTASK_MODELS_LINK_MODE", "symlink");
    let run = other.models(&["fetch"]);
    run.expect(2);
    assert!(
        run.stderr.contains("\"symlink\" is not a link mode (from --link-mode or XTASK_MODELS_LINK_MODE)"),
        "{}",
        run.stderr
    );
}

#[test]
fn on_a_filesystem_with_reflinks_checkouts_get_clones_that_cannot_corrupt_each_other() {
    let sb = tests::Sandbox::new(env!("CARGO_BIN_EXE_xtask-under-test"));
    let Some(mount) = Mount::xfs_image(&sb.dir.join("xfs"), "clones_on_xfs") else { return };
    let root = mount.path();
    let server = tests::Server::start();
    let data = payload(400_000, 802);
    server.script("/a", vec![tests::Reply::Body(data.clone())]);
    let pin = Pin::new("a", "a.bin", &data, &[server.url("/a")]);
    let manifest = root.join("models.toml");
    std::fs::write(&manifest, pin.to_toml()).unwrap();
    let cache = root.join("cache");
    let fetch_into = |checkout: &str| {
        let args: Vec<String> = [
            "models",
            "fetch",
            "--manifest",
            manifest.to_str().unwrap(),
            "--checkpoints-dir",
            root.join(checkout).to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec();
        sb.run_raw(&args)
    };
    fetch_into("one").expect(0);
    fetch_into("two").expect(0);
    let (one, two) = (root.join("one/a.bin"), root.join("two/a.bin"));
    let entry = cache.join("sha256").join(tests::sha256_hex(&data));
    assert_ne!(inode(&one), inode(&entry), "a clone is its own file");
    assert_ne!(inode(&one), inode(&two));
    let status: Vec<String> = [
        "models",
        "status",
        "--json",
        "--manifest",
        manifest.to_str().unwrap(),
        "--checkpoints-dir",
        root.join("one").to_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let doc: Value = serde_json::from_str(&sb.run_raw(&status).stdout).unwrap();
    assert_eq!(doc["models"][0]["placed"], "clone", "{doc}");
    // A write into one checkout's file (root ignores the read-only mode) stays there.
    let mut perms = std::fs::metadata(&one).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(&one, perms).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(&one).unwrap();
    std::io::Write::write_all(&mut file, b"scribble").unwrap();
    drop(file);
    assert_eq!(std::fs::read(&entry).unwrap(), *data, "the cache entry is untouched");
    assert_eq!(std::fs::read(&two).unwrap(), *data, "the other checkout is untouched");
    drop(mount);
}

/// Writes `byte` at the start of `path` in place (through a write bit it adds), then puts
/// the mtime back: an edit only the ctime still shows.
fn edit_in_place_keeping_the_mtime(path: &Path, byte: u8) {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::PermissionsExt;
    let mtime = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&[byte]).unwrap();
    file.set_modified(mtime).unwrap();
}

fn states(sb: &Sandbox) -> Vec<String> {
    let run = sb.models(&["verify", "--json"]);
    let doc: Value = serde_json::from_str(&run.stdout).unwrap();
    doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn an_edit_through_a_hard_linked_checkout_is_never_vouched_for_by_the_cache() {
    // The cache's own record left ctime out: an entry edited through a checkout (mtime
    // restored) stayed "good", and a new checkout got the edited file, stamped.
    let sc = scenario();
    let (a, _) = two_models(&sc);
    sc.models(&["fetch", "--link-mode", "hardlink"]).expect(0);
    edit_in_place_keeping_the_mtime(&sc.file("a.bin"), !a[0]);
    let second = sc.sibling();
    std::fs::copy(&sc.manifest, &second.manifest).unwrap();
    let run = second.models(&["fetch", "--link-mode", "hardlink"]);
    run.expect(0);
    assert_eq!(std::fs::read(second.file("a.bin")).unwrap(), a, "the new checkout gets the pinned bytes");
    assert!(run.stderr.contains("was corrupt"), "the edited entry was found out: {}", run.stderr);
    assert_eq!(states(&second), ["ok-stamped", "ok-stamped"]);
}

#[test]
fn a_link_made_by_hand_does_not_excuse_an_edit_that_restores_the_mtime() {
    // A moved ctime was excused whenever the link count had moved: one more hard link
    // (`ln`, `cp -al`) and an in-place edit passed as ok (stamp).
    let sc = scenario();
    let (a, _) = two_models(&sc);
    sc.models(&["fetch", "--link-mode", "hardlink"]).expect(0);
    std::fs::hard_link(sc.file("a.bin"), sc.dir.join("by-hand.bin")).unwrap();
    edit_in_place_keeping_the_mtime(&sc.file("a.bin"), !a[0]);
    assert_eq!(states(&sc), ["wrong-hash", "ok-stamped"]);
    // And a link by hand alone costs a rehash, nothing more: the bytes are still right.
    let other = scenario();
    let (b, _) = two_models(&other);
    other.models(&["fetch", "--link-mode", "hardlink"]).expect(0);
    std::fs::hard_link(other.file("a.bin"), other.dir.join("by-hand.bin")).unwrap();
    assert_eq!(states(&other), ["ok", "ok-stamped"]);
    assert_eq!(std::fs::read(other.file("a.bin")).unwrap(), b);
}

/// A sandbox whose cache entry for its one model is not a file but what `make` puts there.
fn entry_that_is_not_a_file(make: impl FnOnce(&Path)) -> (Scenario, Vec<u8>, std::path::PathBuf) {
    let sc = scenario();
    let data = sc.model("m", "m.bin", payload(20_000, 540));
    let entry = sc.cache.join("sha256").join(sha256_hex(&data));
    std::fs::create_dir_all(entry.parent().unwrap()).unwrap();
    make(&entry);
    (sc, data.to_vec(), entry)
}

/// What `<cache>/aside/` holds.
fn aside(sc: &Scenario) -> Vec<std::fs::Metadata> {
    let Ok(read) = std::fs::read_dir(sc.cache.join("aside")) else { return Vec::new() };
    read.map(|e| std::fs::symlink_metadata(e.unwrap().path()).unwrap()).collect()
}

#[test]
fn a_fifo_as_a_cache_entry_is_moved_aside_and_never_waited_on() {
    let (sc, data, entry) = entry_that_is_not_a_file(|entry| {
        assert!(std::process::Command::new("mkfifo").arg(entry).status().unwrap().success());
    });
    // Nothing ever writes to the FIFO: a fetch or doctor that opened it would hang.
    let hang = Duration::from_secs(120);
    let run = sc.spawn_logged(&["fetch"]).finish_within(hang, "fetch");
    run.expect(0);
    assert!(run.stderr.contains("is a FIFO, not a file the tool sealed; moved it aside"), "{}", run.stderr);
    assert!(std::fs::symlink_metadata(&entry).unwrap().is_file(), "a sealed file took its place");
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), data);
    let moved = aside(&sc);
    assert!(moved.len() == 1 && moved[0].file_type().is_fifo(), "the FIFO is kept, aside");
    std::fs::remove_file(&entry).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&entry).status().unwrap().success());
    std::fs::remove_file(sc.file("m.bin")).unwrap();
    let doctor = sc.spawn_logged(&["doctor"]).finish_within(hang, "doctor");
    assert!(!doctor.stderr.contains("panicked"), "{}", doctor.stderr);
}

#[test]
fn a_symlink_as_a_cache_entry_is_never_followed_or_linked_into_a_checkout() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("someone-elses.bin");
    let (sc, data, entry) = entry_that_is_not_a_file(|entry| {
        std::os::unix::fs::symlink(&target, entry).unwrap();
    });
    // The link points at the very bytes of the pin: still not a file the tool sealed.
    std::fs::write(&target, &data).unwrap();
    let run = sc.models(&["fetch"]);
    run.expect(0);
    assert!(
        run.stderr.contains("is a symbolic link, not a file the tool sealed; moved it aside"),
        "{}",
        run.stderr
    );
    let placed = std::fs::symlink_metadata(sc.file("m.bin")).unwrap();
    assert!(placed.is_file(), "the checkout holds a file, not a link out of it");
    assert_eq!(sc.server.hits("/m"), 1, "fetched again, not through the link");
    assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
    // Someone edits the old target and rewrites the cache's stamp file: nothing vouches.
    std::fs::write(&target, payload(20_000, 541).as_slice()).unwrap();
    sc.models(&["verify", "--full"]).expect(0);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        payload(20_000, 541).as_slice(),
        "the link's target untouched"
    );
}

#[test]
fn a_folder_as_a_cache_entry_is_moved_aside_and_the_next_run_is_quiet() {
    let (sc, data, entry) = entry_that_is_not_a_file(|entry| {
        std::fs::create_dir_all(entry.join("inside")).unwrap();
    });
    let run = sc.models(&["fetch"]);
    run.expect(0);
    assert!(run.stderr.contains("is a folder, not a file the tool sealed; moved it aside"), "{}", run.stderr);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), data);
    assert!(std::fs::symlink_metadata(&entry).unwrap().is_file());
    let moved = aside(&sc);
    assert!(moved.len() == 1 && moved[0].is_dir(), "the folder is kept, aside");
    std::fs::remove_file(sc.file("m.bin")).unwrap();
    let again = sc.models(&["fetch"]);
    again.expect(0);
    assert!(!again.stderr.contains("aside") && !again.stderr.contains("corrupt"), "{}", again.stderr);
    assert_eq!(sc.server.hits("/m"), 1, "the second checkout came from the cache");
}
