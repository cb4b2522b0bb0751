//! What no input, server or filesystem may do to a user's files: nothing lost, overwritten
//! or half-written, and nothing written where it does not belong. Found by hostile rounds: each test is named for
//! the promise it keeps, and each failed before its fix.

use std::time::Duration;

use serde_json::Value;
use tests::daemons::Mount;
use tests::{Pin, Reply, payload, sha256_hex, wait_until};

use crate::{FAST, sandbox, scenario};

fn args_with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut all = base.to_vec();
    all.extend_from_slice(extra);
    all
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
fn manifest_paths_that_collide_with_the_tools_own_files_are_refused_with_their_position() {
    for (path, why) in [
        (".models-state", "the file where the tool keeps its stamps"),
        ("weights.part", "the tool's temp files"),
        ("a/w.part-validator", "the tool's temp files"),
        (".locks/x.bin", "lock files"),
    ] {
        let sb = sandbox();
        let pin = Pin::new("m", path, b"x", &["https://example.invalid/m".into()]);
        sb.write_manifest(&[pin]);
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.contains("models.toml:3:8:"), "{path}: {}", run.stderr);
        assert!(run.stderr.contains(why), "{path}: {}", run.stderr);
    }
}

#[test]
fn a_file_name_the_filesystem_cannot_hold_with_its_temp_suffix_is_refused_by_the_manifest_check() {
    for (name, why) in [("a".repeat(240), "longer than 231"), ("b".repeat(300), "longer than 255")] {
        let sb = sandbox();
        sb.write_manifest(&[Pin::new(
            "m",
            &format!("dir/{name}"),
            b"x",
            &["https://example.invalid/m".into()],
        )]);
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.contains("models.toml:3:8:") && run.stderr.contains(why), "{}", run.stderr);
    }
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
fn clean_in_a_mistyped_folder_removes_nothing_and_unknown_refuses_a_tree_holding_git() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let src = sb.dir.join("src");
    for (file, text) in
        [("main.rs", "fn main() {}"), ("vendor/lib/.git/HEAD", "ref"), ("lib/data.bin", "data")]
    {
        std::fs::create_dir_all(src.join(file).parent().unwrap()).unwrap();
        std::fs::write(src.join(file), text).unwrap();
    }
    let base = [
        "models",
        "clean",
        "--manifest",
        sb.manifest.to_str().unwrap(),
        "--checkpoints-dir",
        src.to_str().unwrap(),
    ];
    let base: Vec<String> = base.iter().map(|a| a.to_string()).collect();
    let run = sb.run_raw(&base);
    run.expect(0);
    assert!(run.stdout.contains("left alone main.rs"), "{}", run.stdout);
    assert!(run.stdout.contains("removed 0 file(s)"), "{}", run.stdout);
    let mut unknown = base.clone();
    unknown.push("--unknown".into());
    let run = sb.run_raw(&unknown);
    run.expect(2);
    assert!(run.stderr.contains("refusing `--unknown`") && run.stderr.contains(".git"), "{}", run.stderr);
    for file in ["main.rs", "vendor/lib/.git/HEAD", "lib/data.bin"] {
        assert!(src.join(file).exists(), "{file} is still there");
    }
}

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
fn a_resume_needs_only_the_rest_to_fit_and_a_full_target_disk_leaves_nothing_behind() {
    let sc = scenario();
    let Some(_small) = Mount::tmpfs(&sc.checkpoints, "3m", "resume on a small disk") else { return };
    let data = sc.model("big", "big.bin", payload(3_040_870, 507));
    let partial = sc.file(&format!("big.bin.{}.part", &sha256_hex(&data)[..12]));
    std::fs::write(&partial, &data[..2_000_000]).unwrap();
    let run = sc.models(&["fetch", "--no-cache"]);
    run.expect(0);
    assert_eq!(std::fs::read(sc.file("big.bin")).unwrap(), *data);
    assert_eq!(sc.server.gets()[0].range.as_deref(), Some("bytes=2000000-"));
    std::fs::remove_file(sc.file("big.bin")).unwrap();

    // The cache (on the big disk) could take a 4 MiB file; the 3 MiB checkpoints disk,
    // which gets a copy, cannot: refused up front, naming it, with nothing left behind.
    let other = sc.sibling();
    let huge = payload(4 << 20, 508);
    sc.serve("/huge", vec![Reply::Body(huge.clone())]);
    let pin = Pin::new("huge", "huge.bin", &huge, &[sc.url("/huge")]);
    other.write_manifest(&[pin]);
    let args: Vec<String> =
        ["models", "fetch", "--manifest", other.manifest.to_str().unwrap(), "--checkpoints-dir"]
            .iter()
            .map(|a| a.to_string())
            .chain([sc.checkpoints.display().to_string()])
            .collect();
    let run = other.run_raw(&args);
    run.expect(1);
    assert!(
        run.stderr
            .contains(&format!("not enough free space for the download in {}", sc.checkpoints.display())),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("`--checkpoints-dir DIR`"), "{}", run.stderr);
    assert_eq!(sc.server.hits("/huge"), 0, "refused before any request");
    let left: Vec<_> = std::fs::read_dir(&sc.checkpoints).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "only the tool's own folder: {left:?}"
    );
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
