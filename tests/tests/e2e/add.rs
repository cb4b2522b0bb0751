//! `models add`: one entry appended with its comments kept, a given sha256 checked, nothing
//! of a user's resumed against, removed or overwritten, and a ceiling on what it reads.

use std::time::Duration;

use tests::{Reply, payload, sha256_hex, wait_until};

use crate::{FAST, args_with, scenario};

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

#[test]
fn add_never_resumes_a_partial_it_cannot_tie_to_the_same_url() {
    let sc = scenario();
    let (first, second) = (payload(400_000, 501), payload(400_000, 502));
    sc.serve("/one.bin", vec![Reply::Truncate { body: first, after: 150_000 }]);
    sc.serve("/two.bin", vec![Reply::Body(second.clone())]);
    std::fs::write(&sc.manifest, "").unwrap();
    let one = sc.url("/one.bin");
    let run = sc.models(&args_with(&["add", &one, "--path", "x.bin", "--retries", "0"], FAST));
    run.expect(1);
    assert!(!sc.partials().is_empty(), "the first add left its partial behind");
    let two = sc.url("/two.bin");
    sc.models(&args_with(&["add", &two, "--path", "x.bin"], FAST)).expect(0);
    let asked: Vec<_> = sc.server.gets().into_iter().filter(|r| r.path == "/two.bin").collect();
    assert_eq!(asked[0].range, None, "nothing of /one.bin is resumed against /two.bin");
    assert_eq!(std::fs::read(sc.file("x.bin")).unwrap(), *second);
    let manifest = std::fs::read_to_string(&sc.manifest).unwrap();
    assert!(manifest.contains(&sha256_hex(&second)), "the pin is the second file's: {manifest}");
}

#[test]
fn add_never_removes_or_overwrites_a_file_it_did_not_create_and_a_dry_run_touches_nothing() {
    let sc = scenario();
    let data = payload(3000, 503);
    sc.serve("/notes.bin", vec![Reply::Body(data)]);
    std::fs::write(&sc.manifest, "").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    std::fs::write(sc.file("notes.bin"), b"my notes").unwrap();
    let url = sc.url("/notes.bin");
    let run = sc.models(&["add", &url, "--sha256", &sha256_hex(b"wrong")]);
    run.expect(2);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    assert_eq!(std::fs::read(sc.file("notes.bin")).unwrap(), b"my notes");

    std::fs::remove_dir_all(&sc.checkpoints).unwrap();
    let run = sc.models(&["add", &url, "--path", "fresh.bin", "--dry-run"]);
    run.expect(0);
    assert!(run.stdout.contains("path = \"fresh.bin\""), "{}", run.stdout);
    assert!(!sc.checkpoints.exists(), "a dry run leaves the checkpoints folder as it was");
    let run = sc.models(&["add", &url, "--path", "fresh.bin", "--sha256", &sha256_hex(b"wrong")]);
    run.expect(1);
    assert!(!sc.file("fresh.bin").exists());
    assert!(sc.partials().is_empty(), "a refused download leaves nothing: {:?}", sc.partials());
    assert_eq!(std::fs::read_to_string(&sc.manifest).unwrap(), "");
}

#[test]
fn add_holds_the_folder_lock_so_clean_waits_for_it() {
    let sc = scenario();
    let data = payload(5000, 504);
    sc.serve("/m.bin", vec![Reply::Body(data.clone())]);
    std::fs::write(&sc.manifest, "").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    sc.server.close_gate();
    let add = sc.spawn_logged(&["add", &sc.url("/m.bin")]);
    wait_until(Duration::from_secs(30), "the add to ask for its file", || sc.server.hits("/m.bin") >= 1);
    let clean = sc.spawn_logged(&["clean"]);
    wait_until(Duration::from_secs(30), "clean to wait for the add", || {
        clean.stderr().contains("waiting for other fetch or verify processes")
    });
    sc.server.open();
    add.finish().expect(0);
    clean.finish().expect(0);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), *data, "clean left the add's file alone");
}

#[test]
fn add_appends_exactly_one_entry_and_keeps_comments() {
    let sc = scenario();
    let data = payload(12_345, 90);
    sc.serve("/files/new%20model.pth", vec![Reply::Body(data.clone())]);
    let original = format!(
        "# Pinned models.   (a comment with odd    spacing)\n\n[[model]]  # first\nname = \"old\" # inline\npath = \"old.bin\"\nsize = 1\nsha256 = \"{}\"\nurls = [\n  \"https://example.invalid/old\",  # why\n]\n\n# trailing comment\n",
        "0".repeat(64)
    );
    std::fs::write(&sc.manifest, &original).unwrap();
    let url = sc.server.url("/files/new%20model.pth");
    let run = sc.models(&["add", &url, "--group", "extra", "--url", "https://example.invalid/mirror.pth"]);
    run.expect(0);
    let text = std::fs::read_to_string(&sc.manifest).unwrap();
    let expected_entry = format!(
        "\n[[model]]\nname = \"new-model\"\npath = \"new model.pth\"\nsize = 12345\nsha256 = \"{}\"\nurls = [\"{url}\", \"https://example.invalid/mirror.pth\"]\ngroup = \"extra\"\n",
        sha256_hex(&data)
    );
    assert_eq!(text, format!("{original}{expected_entry}"));
    assert_eq!(std::fs::read(sc.file("new model.pth")).unwrap(), *data);
    sc.models(&["verify", "--model", "new-model"]).expect(0);

    // The same name or path again is refused before any download.
    let before = sc.server.requests().len();
    let run = sc.models(&["add", &url]);
    run.expect(2);
    assert!(run.stderr.contains("already has a model named \"new-model\""), "{}", run.stderr);
    let run = sc.models(&["add", &url, "--name", "other"]);
    run.expect(2);
    assert!(run.stderr.contains("already pins the path"), "{}", run.stderr);
    assert_eq!(sc.server.requests().len(), before);
}

#[test]
fn add_checks_a_given_sha256_and_dry_run_writes_nothing() {
    let sc = scenario();
    let data = payload(3000, 91);
    sc.serve("/x.bin", vec![Reply::Body(data.clone())]);
    std::fs::write(&sc.manifest, "").unwrap();
    let run = sc.models(&["add", &sc.server.url("/x.bin"), "--sha256", &sha256_hex(b"other")]);
    run.expect(1);
    assert!(run.stderr.contains("nothing was pinned"), "{}", run.stderr);
    assert!(!sc.file("x.bin").exists());
    let run = sc.models(&["add", &sc.server.url("/x.bin"), "--sha256", &sha256_hex(&data), "--dry-run"]);
    run.expect(0);
    assert!(run.stdout.contains("name = \"x\""), "{}", run.stdout);
    assert_eq!(std::fs::read_to_string(&sc.manifest).unwrap(), "");
}

#[test]
fn add_never_overwrites_a_file_that_appeared_during_its_download() {
    let sc = scenario();
    sc.serve("/m.bin", vec![Reply::Body(payload(5000, 505))]);
    std::fs::write(&sc.manifest, "").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    sc.server.close_gate();
    let add = sc.spawn_logged(&["add", &sc.url("/m.bin")]);
    wait_until(Duration::from_secs(30), "the add to ask for its file", || sc.server.hits("/m.bin") >= 1);
    // While the file downloads, another program saves the user's own file there.
    std::fs::write(sc.file("m.bin"), b"the user's file").unwrap();
    sc.server.open();
    let run = add.finish();
    run.expect(2);
    assert!(run.stderr.contains("appeared while the file was downloading"), "{}", run.stderr);
    assert_eq!(std::fs::read(sc.file("m.bin")).unwrap(), b"the user's file");
    assert_eq!(std::fs::read_to_string(&sc.manifest).unwrap(), "", "nothing was pinned");
    assert!(sc.partials().is_empty(), "{:?}", sc.partials());
}

#[test]
fn eight_adds_at_once_on_one_manifest_keep_all_eight_entries() {
    let sc = scenario();
    let files: Vec<_> = (0..8u64).map(|i| payload(3000 + i as usize, 510 + i)).collect();
    for (i, data) in files.iter().enumerate() {
        sc.serve(&format!("/m{i}.bin"), vec![Reply::Body(data.clone())]);
    }
    std::fs::write(&sc.manifest, "# models\n").unwrap();
    std::fs::create_dir_all(&sc.checkpoints).unwrap();
    // Every add is held at its download, then all are let go together.
    sc.server.close_gate();
    let urls: Vec<String> = (0..8).map(|i| sc.url(&format!("/m{i}.bin"))).collect();
    let adds: Vec<_> = urls.iter().map(|url| sc.spawn_logged(&["add", url])).collect();
    wait_until(Duration::from_secs(60), "every add to ask for its file", || {
        (0..8).all(|i| sc.server.hits(&format!("/m{i}.bin")) >= 1)
    });
    sc.server.open();
    for add in adds {
        add.finish().expect(0);
    }
    let manifest = std::fs::read_to_string(&sc.manifest).unwrap();
    assert!(manifest.starts_with("# models\n"), "{manifest}");
    for (i, data) in files.iter().enumerate() {
        assert!(manifest.contains(&format!("path = \"m{i}.bin\"")), "m{i} lost: {manifest}");
        assert!(manifest.contains(&sha256_hex(data)), "{manifest}");
        assert_eq!(std::fs::read(sc.file(&format!("m{i}.bin"))).unwrap(), **data);
    }
    assert_eq!(manifest.matches("[[model]]").count(), 8, "{manifest}");
    sc.models(&["verify"]).expect(0);
}

#[test]
fn the_first_add_of_a_project_makes_its_manifest_and_a_failed_one_leaves_none() {
    let sc = scenario();
    let data = payload(3000, 595);
    sc.serve("/m.bin", vec![Reply::Body(data.clone())]);
    let _ = std::fs::remove_file(&sc.manifest);
    // A dry run, then one that fails: neither leaves a manifest behind.
    sc.models(&["add", &sc.url("/m.bin"), "--dry-run"]).expect(0);
    assert!(!sc.manifest.exists(), "a dry run writes nothing");
    sc.models(&args_with(&["add", &sc.url("/gone.bin"), "--retries", "0"], FAST)).expect(1);
    assert!(!sc.manifest.exists(), "a failed add leaves no manifest");
    sc.models(&["add", &sc.url("/m.bin")]).expect(0);
    let text = std::fs::read_to_string(&sc.manifest).unwrap();
    assert!(text.starts_with("# The model files") && text.contains("path = \"m.bin\""), "{text}");
    sc.models(&["verify"]).expect(0);
}
