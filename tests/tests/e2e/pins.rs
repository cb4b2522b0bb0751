//! Stamps, status, `add`, the pre-commit hook and `--json` output.

use serde_json::Value;
use tests::{Pin, Reply, Scenario, git, payload, sha256_hex};

use crate::{sandbox, scenario};

/// A scenario with one model fetched and verified once (so it is stamped).
fn stamped() -> (Scenario, Vec<u8>) {
    let sc = scenario();
    let data = sc.model("m", "m.bin", payload(100_000, 60));
    sc.models(&["fetch"]).expect(0);
    (sc, data.to_vec())
}

fn verify_line(sb: &tests::Sandbox, args: &[&str]) -> (i32, String) {
    let mut all = vec!["verify"];
    all.extend_from_slice(args);
    let run = sb.models(&all);
    let line = run.stdout.lines().find(|l| l.contains(" m ")).unwrap_or_default().to_owned();
    (run.code, line)
}

#[test]
fn an_unchanged_file_is_trusted_by_its_stamp_and_full_hashes_anyway() {
    let (sb, _) = stamped();
    assert!(verify_line(&sb, &[]).1.starts_with("ok (stamp)"));
    assert!(verify_line(&sb, &["--full"]).1.starts_with("ok  "), "--full hashes");
    assert!(verify_line(&sb, &[]).1.starts_with("ok (stamp)"));
}

#[test]
fn touching_a_file_forces_a_rehash() {
    let (sb, _) = stamped();
    let file = std::fs::File::options().write(true).open(sb.file("m.bin")).unwrap();
    file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5)).unwrap();
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 0);
    assert!(line.starts_with("ok  "), "hashed again, and fine: {line}");
    assert!(verify_line(&sb, &[]).1.starts_with("ok (stamp)"), "stamped anew");
}

#[test]
fn a_same_size_edit_is_caught() {
    let (sb, data) = stamped();
    let mut edited = data.clone();
    edited[500] ^= 0x40;
    // Break the hard link to the cache first, as an editor saving in place would not.
    std::fs::remove_file(sb.file("m.bin")).unwrap();
    std::fs::write(sb.file("m.bin"), &edited).unwrap();
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 1);
    assert!(line.starts_with("wrong hash"), "{line}");
}

#[test]
fn an_in_place_edit_that_keeps_size_and_mtime_is_caught_by_ctime() {
    let (sb, data) = stamped();
    let meta = std::fs::metadata(sb.file("m.bin")).unwrap();
    let mut edited = data.clone();
    edited[0] ^= 1;
    std::fs::write(sb.file("m.bin"), &edited).unwrap();
    // Put the old modification time back: only the change time still tells.
    let file = std::fs::File::options().write(true).open(sb.file("m.bin")).unwrap();
    file.set_modified(meta.modified().unwrap()).unwrap();
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 1, "{line}");
}

#[test]
fn a_file_replaced_by_rename_is_rehashed() {
    let (sb, data) = stamped();
    let other = sb.dir.join("copy.bin");
    std::fs::write(&other, &data).unwrap();
    std::fs::rename(&other, sb.file("m.bin")).unwrap();
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 0);
    assert!(line.starts_with("ok  "), "a new inode is hashed: {line}");
}

#[test]
fn a_changed_pin_is_not_vouched_for_by_an_old_stamp() {
    let (sb, data) = stamped();
    let server = &sb.server;
    let mut pin = Pin::new("m", "m.bin", &data, &[server.url("/m")]);
    pin.sha256 = sha256_hex(b"something else");
    sb.write_manifest(&[pin]);
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 1);
    assert!(line.starts_with("wrong hash"), "{line}");
}

#[test]
fn a_missing_or_garbled_state_file_only_means_hashing_everything() {
    let (sb, _) = stamped();
    std::fs::write(sb.file(".models-state"), "garbage\n\u{0}\u{1}").unwrap();
    let (code, line) = verify_line(&sb, &[]);
    assert_eq!(code, 0);
    assert!(line.starts_with("ok  "), "{line}");
    std::fs::remove_file(sb.file(".models-state")).unwrap();
    assert_eq!(verify_line(&sb, &[]).0, 0);
}

#[test]
fn manifest_only_checks_the_manifest_without_any_checkpoints() {
    let sb = sandbox();
    sb.write_manifest(&[Pin::new("m", "m.bin", b"x", &["https://example.invalid/m".to_owned()])]);
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(0);
    assert!(run.stdout.contains("ok, 1 models"), "{}", run.stdout);
    assert!(!sb.checkpoints.exists(), "no file access to checkpoints");
    std::fs::write(&sb.manifest, "[[model]]\nname = \"m\"\nsize = 0\n").unwrap();
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(run.stderr.contains("models.toml:3:8: `size` is 0"), "{}", run.stderr);
}

#[test]
fn status_is_instant_and_names_every_state() {
    let (sb, _) = stamped();
    let server = &sb.server;
    let others: Vec<_> = (0..4).map(|i| payload(1000, 70 + i)).collect();
    let mut pins = vec![Pin::new("m", "m.bin", &payload(100_000, 60), &[server.url("/m")])];
    for (i, data) in others.iter().enumerate() {
        let mut pin = Pin::new(&format!("o{i}"), &format!("o{i}.bin"), data, &[server.url("/x")]);
        pin.group = Some("extra".into());
        pins.push(pin);
    }
    sb.write_manifest(&pins);
    std::fs::write(sb.file("o1.bin"), &others[1][..10]).unwrap();
    std::fs::write(sb.file("o2.bin"), &*others[2]).unwrap();
    let partial = sb.cache_partial(&pins[4].sha256);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    std::fs::write(&partial, &others[3][..420]).unwrap();
    let run = sb.models(&["status"]);
    run.expect(0);
    let row = |name: &str| run.stdout.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    assert!(row("m ").contains("ok stamped"), "{}", run.stdout);
    assert!(row("o0").contains("missing"), "{}", run.stdout);
    assert!(row("o1").contains("wrong size"), "{}", run.stdout);
    assert!(row("o2").contains("unverified"), "{}", run.stdout);
    assert!(row("o3").contains("partial 42%"), "{}", run.stdout);
    assert!(row("o3").contains("extra"), "group column: {}", run.stdout);
    assert!(run.stdout.contains("1 of 5 ok"), "{}", run.stdout);
}

#[test]
fn json_documents_parse_and_match_the_human_output() {
    let (sb, _) = stamped();
    let server = &sb.server;
    let extra = payload(2000, 80);
    server.script("/e", vec![Reply::Body(extra.clone())]);
    sb.write_manifest(&[
        Pin::new("m", "m.bin", &payload(100_000, 60), &[server.url("/m")]),
        Pin::new("e", "e.bin", &extra, &[server.url("/e")]),
        Pin::new("gone", "gone.bin", &payload(10, 81), &[server.url("/404")]),
    ]);
    let run = sb.models(&["fetch", "--json", "--backoff-ms", "1"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("fetch --json is JSON");
    assert_eq!(doc["command"], "fetch");
    let states: Vec<&str> =
        doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["present", "fetched", "failed"]);
    let failed = &doc["models"][2];
    assert_eq!(failed["error"]["class"], "not-found");
    assert_eq!(failed["error"]["status"], 404);
    assert!(failed["error"]["hint"].as_str().unwrap().contains("outdated"));
    assert_eq!(doc["models"][1]["bytes"], 2000);
    assert_eq!(doc["models"][1]["attempts"], 1);
    assert_eq!(doc["summary"]["failed"], 1);
    assert!(run.stderr.contains("fetched 1"), "human summary moves to stderr: {}", run.stderr);

    let run = sb.models(&["verify", "--json"]);
    let doc: Value = serde_json::from_str(&run.stdout).expect("verify --json is JSON");
    assert_eq!(doc["summary"]["ok"], 2);
    assert_eq!(doc["models"][2]["state"], "missing");
    assert_eq!(doc["models"][0]["sha256"], sha256_hex(&payload(100_000, 60)));

    let run = sb.models(&["status", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("status --json is JSON");
    assert_eq!(doc["models"][0]["state"], "ok-stamped");
    assert_eq!(doc["summary"]["bytes_needed"], 100_000 + 2000 + 10);
    assert_eq!(doc["summary"]["bytes_present"], 102_000);
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
fn the_pre_commit_hook_refuses_a_corrupt_model_and_uninstalls_cleanly() {
    let (sb, data) = stamped();
    assert!(git(&sb.dir, &["init", "-q"]).status.success());
    let hooks = sb.dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho their-check\n").unwrap();
    let tool = env!("CARGO_BIN_EXE_xtask-under-test");
    sb.models(&["hook", "install", "--command", tool]).expect(0);
    sb.models(&["hook", "install", "--command", tool]).expect(0);
    let hook = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert_eq!(hook.matches(">>> cargo xtask models hook").count(), 1, "installing twice: {hook}");
    assert!(hook.starts_with("#!/bin/sh\necho their-check\n"), "{hook}");

    std::fs::write(sb.dir.join("README"), "x").unwrap();
    git(&sb.dir, &["add", "README", "models.toml"]);
    let ok = git(&sb.dir, &["commit", "-q", "-m", "valid"]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));

    let mut corrupt = data.clone();
    corrupt[1] ^= 1;
    std::fs::remove_file(sb.file("m.bin")).unwrap();
    std::fs::write(sb.file("m.bin"), &corrupt).unwrap();
    std::fs::write(sb.dir.join("README"), "y").unwrap();
    git(&sb.dir, &["add", "README"]);
    let refused = git(&sb.dir, &["commit", "-q", "-m", "corrupt"]);
    assert!(!refused.status.success(), "a corrupt model blocks the commit");
    let said =
        format!("{}{}", String::from_utf8_lossy(&refused.stdout), String::from_utf8_lossy(&refused.stderr));
    assert!(said.contains("wrong hash"), "{said}");

    sb.models(&["hook", "uninstall"]).expect(0);
    let hook = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert_eq!(hook, "#!/bin/sh\necho their-check\n", "only our lines went");
}

#[test]
fn the_pre_commit_framework_file_names_both_hooks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.pre-commit-hooks.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains("- id: models-verify") && text.contains("- id: models-manifest"));
    assert!(text.contains("entry: cargo xtask models verify --quiet"));
    assert!(text.contains("entry: cargo xtask models verify --manifest-only --quiet"));
}

/// The keys of a JSON object, sorted.
fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The README's contract for a model record: the common fields with their types, then
/// exactly the state's own fields.
fn assert_record(record: &Value, own: &[&str]) {
    assert!(record["name"].is_string() && record["path"].is_string() && record["sha256"].is_string());
    assert!(record["size"].is_u64() && (record["group"].is_string() || record["group"].is_null()));
    assert!(record["file"].as_str().is_some_and(|f| f.ends_with(record["path"].as_str().unwrap())));
    let mut expected = vec!["name", "path", "file", "group", "size", "sha256", "state"];
    expected.extend_from_slice(own);
    expected.sort_unstable();
    assert_eq!(keys(record), expected, "{record}");
}

#[test]
fn every_commands_json_has_the_documented_shape() {
    let sc = scenario();
    let present = sc.model("present", "present.bin", payload(3000, 400));
    sc.models(&["fetch"]).expect(0);
    let cached = payload(4000, 401);
    sc.serve("/cached", vec![Reply::Body(cached.clone())]);
    // Another checkout puts `cached` into the shared cache first.
    let other = sc.sibling();
    other.write_manifest(&[Pin::new("cached", "cached.bin", &cached, &[sc.url("/cached")])]);
    other.models(&["fetch"]).expect(0);
    sc.pin("cached", "cached.bin", &cached, &["/cached"]);
    sc.model("fetched", "fetched.bin", payload(5000, 402));
    sc.pin("failed", "failed.bin", &payload(10, 403), &["/404"]);

    let run = sc.models(&["fetch", "--json", "--backoff-ms", "1"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("fetch --json is one JSON document");
    assert_eq!(keys(&doc), ["command", "models", "summary"]);
    assert_eq!(doc["command"], "fetch");
    let by_state =
        |state: &str| doc["models"].as_array().unwrap().iter().find(|m| m["state"] == state).cloned();
    assert_record(&by_state("present").unwrap(), &["checked"]);
    assert_record(&by_state("from-cache").unwrap(), &["placed_by"]);
    let fetched = by_state("fetched").unwrap();
    assert_record(&fetched, &["url", "attempts", "connections", "bytes", "seconds"]);
    assert!(fetched["url"].is_string() && fetched["attempts"].is_u64() && fetched["seconds"].is_f64());
    assert_eq!(fetched["connections"], 1, "a small file is one stream");
    let failed = by_state("failed").unwrap();
    assert_record(&failed, &["error", "tried"]);
    assert_eq!(keys(&failed["error"]), ["class", "hint", "message", "status"]);
    let tried = &failed["tried"][0];
    assert_eq!(keys(tried), ["error", "origin", "url"]);
    assert_eq!(tried["origin"], "url");
    assert_eq!(keys(&doc["summary"]), ["bytes", "failed", "fetched", "from_cache", "present", "seconds"]);
    assert_eq!(doc["summary"]["fetched"], 1);
    assert_eq!(doc["summary"]["from_cache"], 1);

    std::fs::write(sc.file("fetched.bin"), b"short").unwrap();
    let mut wrong = present.to_vec();
    wrong[0] ^= 1;
    std::fs::write(sc.file("present.bin"), wrong).unwrap();
    let run = sc.models(&["verify", "--json"]);
    run.expect(1);
    let doc: Value = serde_json::from_str(&run.stdout).expect("verify --json is one JSON document");
    assert_eq!(doc["command"], "verify");
    let states: Vec<&str> =
        doc["models"].as_array().unwrap().iter().map(|m| m["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["wrong-hash", "ok-stamped", "wrong-size", "missing"]);
    assert_record(&doc["models"][0], &["actual_sha256"]);
    assert_record(&doc["models"][1], &[]);
    assert_record(&doc["models"][2], &["actual_size"]);
    assert_record(&doc["models"][3], &[]);
    assert_eq!(keys(&doc["summary"]), ["failed", "ok", "verified"]);

    let run = sc.models(&["status", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("status --json is one JSON document");
    assert_eq!(doc["command"], "status");
    for record in doc["models"].as_array().unwrap() {
        let own: &[&str] = match record["state"].as_str().unwrap() {
            "wrong-size" => &["actual_size"],
            "partial" => &["partial_bytes"],
            // A verified file that came from the cache says how it was placed.
            "ok-stamped" if record["placed"].is_string() => &["placed"],
            _ => &[],
        };
        assert_record(record, own);
    }
    assert_eq!(keys(&doc["summary"]), ["bytes_needed", "bytes_present", "models", "ok"]);
}
