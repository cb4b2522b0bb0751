//! `models verify`: every state a file can be in, the stamps that keep it instant and
//! what makes them rehash, and the command that repairs it.

use serde_json::Value;
use tests::daemons::Mount;
use tests::{Pin, payload, sha256_hex};

use crate::stamped;
use crate::{FAST, TOOL, sandbox, scenario};

#[test]
fn verify_reports_ok_missing_wrong_size_and_wrong_hash_with_repairs() {
    let sb = sandbox();
    let (a, b, c, d) = (payload(100, 1), payload(200, 2), payload(300, 3), payload(400, 4));
    let url = vec!["http://127.0.0.1:9/unused".to_owned()];
    sb.write_manifest(&[
        Pin::new("good", "good.bin", &a, &url),
        Pin::new("absent", "absent.bin", &b, &url),
        Pin::new("short", "short.bin", &c, &url),
        Pin::new("flipped", "flipped.bin", &d, &url),
    ]);
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    std::fs::write(sb.file("good.bin"), &*a).unwrap();
    std::fs::write(sb.file("short.bin"), &c[..10]).unwrap();
    let mut corrupt = d.to_vec();
    corrupt[7] ^= 1;
    std::fs::write(sb.file("flipped.bin"), &corrupt).unwrap();

    let run = sb.models(&["verify"]);
    run.expect(1);
    let out = &run.stdout;
    assert!(out.contains("ok") && out.contains("good"), "{out}");
    assert!(out.contains("missing    absent "), "{out}");
    assert!(out.contains("wrong size short") && out.contains("10 bytes, expected 300"), "{out}");
    assert!(out.contains("wrong hash flipped "), "{out}");
    assert!(out.contains(&format!("expected sha256 {}", sha256_hex(&d))), "{out}");
    assert!(out.contains(&format!("actual   sha256 {}", sha256_hex(&corrupt))), "{out}");
    // The repair is typed as the tool was run, and works from where it ran.
    assert!(out.contains(&format!("repair: {TOOL} models fetch --model flipped\n")), "{out}");
    assert!(out.contains("verified 4: ok 1, failed 3"), "{out}");

    // The good file alone passes.
    sb.models(&["verify", "--model", "good"]).expect(0);
    // Verify never changes anything.
    assert_eq!(std::fs::read(sb.file("flipped.bin")).unwrap(), corrupt);
}

#[test]
fn verify_quiet_prints_only_problems_and_the_summary() {
    let sb = sandbox();
    let a = payload(100, 1);
    sb.write_manifest(&[Pin::new("good", "good.bin", &a, &["http://127.0.0.1:9/x".to_owned()])]);
    std::fs::create_dir_all(&sb.checkpoints).unwrap();
    std::fs::write(sb.file("good.bin"), &*a).unwrap();
    let run = sb.models(&["verify", "--quiet"]);
    run.expect(0);
    assert_eq!(run.stdout.trim(), "verified 1: ok 1, failed 0");
}

#[test]
fn verify_and_run_work_on_a_read_only_checkpoints_folder() {
    let sc = scenario();
    let Some(mount) = Mount::tmpfs(&sc.checkpoints, "4m", "read-only checkpoints") else { return };
    let data = sc.model("m", "m.bin", payload(20_000, 509));
    sc.models(&["fetch"]).expect(0);
    mount.read_only();
    let run = sc.models(&["verify"]);
    run.expect(0);
    assert!(run.stderr.contains("read-only"), "said once: {}", run.stderr);
    let run = sc.models(&["verify", "--json"]);
    run.expect(0);
    let doc: Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert_eq!(doc["summary"]["ok"], 1);
    let script = "wc -c < \"$MODELS_CHECKPOINTS_DIR/m.bin\"";
    let run = sc.models(&["run", "--", "sh", "-c", script]);
    run.expect(0);
    assert_eq!(run.stdout.trim(), data.len().to_string());
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
fn validate_only_is_verify_and_no_deps_is_a_note() {
    let sc = scenario();
    sc.model("m", "m.bin", payload(1000, 602));
    let run = sc.models(&["fetch", "--validate-only"]);
    run.expect(1);
    assert!(run.stderr.contains(&format!("--validate-only is `{TOOL} models verify`")), "{}", run.stderr);
    assert_eq!(sc.server.requests().len(), 0, "nothing downloaded");
    assert!(!sc.file("m.bin").exists());
    let run = sc.models(&["fetch", "--skip-checks", "--validate-only"]);
    run.expect(1);
    assert!(run.stderr.contains("verify --skip-checks"), "{}", run.stderr);
    let mut args = vec!["fetch", "--no-deps"];
    args.extend(FAST);
    let run = sc.models(&args);
    run.expect(0);
    assert!(run.stderr.contains("--no-deps: this tool has no runtime dependencies"), "{}", run.stderr);
    sc.models(&["fetch", "--validate-only"]).expect(0);
    let run = sc.models(&["fecth"]);
    run.expect(2);
    assert!(run.stderr.contains("similar subcommand exists: 'fetch'"), "{}", run.stderr);
    let run = sc.models(&["fetch", "--valdate-only"]);
    run.expect(2);
    assert!(run.stderr.contains("similar argument exists: '--validate-only'"), "{}", run.stderr);
}
