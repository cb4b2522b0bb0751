//! `models verify`: every state a file can be in, and the command that repairs it.

use tests::{Pin, payload, sha256_hex};

use crate::sandbox;

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
    assert!(out.contains("repair: cargo xtask models fetch --model flipped --manifest"), "{out}");
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
