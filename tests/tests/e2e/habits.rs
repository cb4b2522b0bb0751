//! Coming from the old scripts: `download_correct_models.py`'s flags and habits work, and
//! every miss says what to type instead.

use tests::{Reply, payload};

use crate::{FAST, scenario};

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
fn validate_only_is_verify_and_no_deps_is_a_note() {
    let sc = scenario();
    sc.model("m", "m.bin", payload(1000, 602));
    let run = sc.models(&["fetch", "--validate-only"]);
    run.expect(1);
    assert!(run.stderr.contains("--validate-only is `cargo xtask models verify`"), "{}", run.stderr);
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
