//! `models clean`: the tool's own temp files and the models it installed that the
//! manifest dropped go; listed models, anything it did not make, and anything outside stay.

use tests::{Pin, payload};

use crate::three_models;
use crate::{sandbox, scenario};

/// A checkpoints folder with a listed model, a partial download, a model the tool
/// verified (so stamped) that the manifest has since dropped, and a file it never made.
fn populated() -> tests::Sandbox {
    let sb = sandbox();
    let data = payload(100, 1);
    let old = b"old model";
    let nowhere = ["http://127.0.0.1:9/x".to_owned()];
    let kept = Pin::new("kept", "sub/kept.bin", &data, &nowhere);
    sb.write_manifest(&[kept.clone(), Pin::new("old", "stray/dir/old.pth", old, &nowhere)]);
    std::fs::create_dir_all(sb.file("sub")).unwrap();
    std::fs::create_dir_all(sb.file("stray/dir")).unwrap();
    std::fs::write(sb.file("sub/kept.bin"), &*data).unwrap();
    std::fs::write(sb.file("stray/dir/old.pth"), old).unwrap();
    sb.models(&["verify"]).expect(0);
    sb.write_manifest(&[kept]);
    std::fs::write(sb.file("sub/kept.bin.0123456789ab.part"), b"half").unwrap();
    std::fs::write(sb.file(".gitignore"), b"*\n").unwrap();
    std::fs::write(sb.file("notes.txt"), b"mine").unwrap();
    sb
}

#[test]
fn dry_run_lists_and_removes_nothing() {
    let sb = populated();
    let run = sb.models(&["clean", "--dry-run"]);
    run.expect(0);
    assert!(
        run.stdout.contains(
            "would remove stray/dir/old.pth (9 B, installed by the tool, no longer in the manifest)"
        ),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("would remove sub/kept.bin.0123456789ab.part (4 B, partial download)"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains("kept.bin ("), "{}", run.stdout);
    assert!(run.stdout.contains("would remove 2 file(s)"), "{}", run.stdout);
    assert!(run.stdout.contains("left alone notes.txt (not made by this tool"), "{}", run.stdout);
    assert!(sb.file("stray/dir/old.pth").exists() && sb.file("sub/kept.bin.0123456789ab.part").exists());
}

#[test]
fn clean_removes_partials_and_unlisted_files_but_keeps_models_and_gitignore() {
    let sb = populated();
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert!(run.stdout.contains("removed 2 file(s)"), "{}", run.stdout);
    assert!(sb.file("sub/kept.bin").exists());
    assert!(sb.file(".gitignore").exists());
    assert!(!sb.file("sub/kept.bin.0123456789ab.part").exists());
    assert!(!sb.file("stray").exists(), "emptied folders go too");
    assert_eq!(std::fs::read(sb.file("notes.txt")).unwrap(), b"mine", "not the tool's: kept");
}

#[test]
fn clean_all_removes_the_models_too_only_with_a_word_that_says_so() {
    let sb = populated();
    let asked = sb.models(&["clean", "--all"]);
    asked.expect(2);
    assert!(asked.stderr.contains("add --yes") && sb.file("sub/kept.bin").exists(), "{}", asked.stderr);
    sb.models(&["clean", "--all", "--yes"]).expect(0);
    assert!(!sb.file("sub/kept.bin").exists());
    assert!(sb.file(".gitignore").exists());
}

#[test]
fn clean_never_follows_a_symlink_out_of_the_checkpoints_dir() {
    let sb = populated();
    let outside = sb.dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious.bin"), b"mine").unwrap();
    std::os::unix::fs::symlink(&outside, sb.file("link-to-outside")).unwrap();
    std::os::unix::fs::symlink(outside.join("precious.bin"), sb.file("file-link")).unwrap();
    let run = sb.models(&["clean", "--all", "--yes"]);
    run.expect(0);
    assert_eq!(std::fs::read(outside.join("precious.bin")).unwrap(), b"mine");
    assert!(std::fs::symlink_metadata(sb.file("link-to-outside")).is_ok(), "links are left alone");
    assert!(run.stderr.contains("left alone link-to-outside"), "{}", run.stderr);
}

#[test]
fn clean_refuses_a_project_directory() {
    let sb = populated();
    std::fs::create_dir_all(sb.file(".git")).unwrap();
    let run = sb.models(&["clean"]);
    run.expect(2);
    assert!(run.stderr.contains("refusing to clean"), "{}", run.stderr);
    assert!(sb.file("stray/dir/old.pth").exists());
}

#[test]
fn a_part_file_another_program_saved_beside_a_model_is_the_users() {
    // Promise: clean takes only the names the tool makes, beside models it knows; a
    // browser's download in progress in the same folder is left alone.
    let sb = sandbox();
    let data = payload(100, 2);
    let pin =
        Pin::new("gfpgan", "gfpgan/weights/GFPGANv1.4.pth", &data, &["http://127.0.0.1:9/g".to_owned()]);
    sb.write_manifest(std::slice::from_ref(&pin));
    std::fs::create_dir_all(sb.file("gfpgan/weights")).unwrap();
    let ours = format!("gfpgan/weights/GFPGANv1.4.pth.{}.part", &pin.sha256[..12]);
    let files = [
        ours.clone(),
        format!("{ours}-validator"),
        "gfpgan/weights/GFPGANv1.4.pth.part".to_owned(),
        "gfpgan/weights/other.pth.0123456789ab.part".to_owned(),
    ];
    for file in &files {
        std::fs::write(sb.file(file), b"bytes").unwrap();
    }
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert!(!sb.file(&files[0]).exists() && !sb.file(&files[1]).exists(), "the tool's own: {}", run.stdout);
    assert!(sb.file(&files[2]).exists(), "a browser's .part is the user's: {}", run.stdout);
    assert!(sb.file(&files[3]).exists(), "beside no model the tool knows: {}", run.stdout);
    assert!(run.stdout.contains("removed 2 file(s)"), "{}", run.stdout);
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

#[test]
fn a_file_the_user_put_where_a_dropped_model_was_is_the_users() {
    let sb = populated();
    // The user replaces the dropped model's file with work of their own, same size.
    let path = sb.file("stray/dir/old.pth");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"my model").unwrap();
    let run = sb.models(&["clean"]);
    run.expect(0);
    assert_eq!(std::fs::read(&path).unwrap(), b"my model", "{}", run.stdout);
    assert!(run.stdout.contains("left alone stray/dir/old.pth (not made by this tool"), "{}", run.stdout);
    assert!(run.stdout.contains("removed 1 file(s)"), "only the partial: {}", run.stdout);
}

#[test]
fn a_dropped_model_hard_linked_from_the_cache_still_goes_after_its_entry_is_pruned() {
    let sc = scenario();
    let pins = three_models(&sc.server);
    sc.write_manifest(&pins);
    sc.models(&["fetch"]).expect(0);
    sc.write_manifest(&pins[..2]);
    // Pruning the entry drops the checkout file's link count and moves its ctime: the
    // file is still the one the tool placed.
    let run = sc.models(&["clean", "--cache"]);
    run.expect(0);
    assert!(run.stdout.contains("removed dir/m2.bin"), "{}", run.stdout);
    assert!(!sc.file("dir/m2.bin").exists() && sc.file("dir/m0.bin").exists());
}

#[test]
fn clean_cache_keeps_an_entry_another_checkout_still_links() {
    let server = tests::Server::start();
    let pins = three_models(&server);
    let first = sandbox();
    first.write_manifest(&pins);
    first.models(&["fetch"]).expect(0);
    let second = first.sibling();
    second.write_manifest(&pins[..1]);
    second.models(&["fetch"]).expect(0);
    // The first project drops m0, which the second still uses.
    first.write_manifest(&pins[1..]);
    let run = first.models(&["clean", "--cache"]);
    run.expect(0);
    let entry = first.cache.join("sha256").join(&pins[0].sha256);
    assert!(run.stdout.contains(&format!("kept cache entry {}", pins[0].sha256)), "{}", run.stdout);
    assert!(entry.exists(), "the second checkout's entry stays");
    assert!(!first.file("dir/m0.bin").exists(), "the first checkout's own file goes");
    // Once no checkout links it, it goes.
    second.write_manifest(&pins[1..]);
    second.models(&["clean", "--cache"]).expect(0);
    assert!(!entry.exists());
}
