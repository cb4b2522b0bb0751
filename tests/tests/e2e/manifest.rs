//! Manifest errors reach the user with file, line, column and fix, and exit code 2.

use tests::{Pin, payload};

use crate::sandbox;

fn good_pin() -> Pin {
    Pin::new("m", "m.bin", &payload(10, 1), &["https://example.invalid/m.bin".to_owned()])
}

/// Writes `text` as the manifest and returns what `verify` says about it.
fn errors_for(text: &str) -> tests::Run {
    let sb = sandbox();
    std::fs::write(&sb.manifest, text).unwrap();
    let run = sb.models(&["verify"]);
    run.expect(2);
    run
}

#[test]
fn each_manifest_error_names_file_line_and_fix() {
    let base = good_pin().to_toml();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            base.replace("sha256 =", "sha265 ="),
            "models.toml:5:1: unknown key `sha265` in [[model]]",
            "did you mean `sha256`?",
        ),
        (base.replace("size = 10", "size = 0"), "models.toml:4:8: `size` is 0", "must be > 0"),
        (
            base.replace("name = \"m\"\n", ""),
            "models.toml:1:1: [[model]] is missing the required key `name`",
            "add `name = ...`",
        ),
        (
            base.replacen("sha256 = \"", "sha256 = \"x", 1),
            "models.toml:5:10: `sha256` must be 64 hex digits",
            "sha256sum",
        ),
        (
            base.replace("[\"https://example.invalid/m.bin\"]", "[]"),
            "models.toml:6:8: `urls` is empty",
            "at least one URL",
        ),
        (
            base.replace("https://example", "ftp://example"),
            "models.toml:6:9: URL \"ftp://example.invalid/m.bin\" uses an unsupported scheme",
            "https://",
        ),
        (
            base.replace("\"m.bin\"", "\"../m.bin\""),
            "models.toml:3:8: path \"../m.bin\" contains `..`",
            "relative path",
        ),
        (
            base.replace("\"m.bin\"", "\"/etc/m.bin\""),
            "models.toml:3:8: path \"/etc/m.bin\" is absolute",
            "relative path",
        ),
        (
            base.replace("\"m.bin\"", "\"a\\\\m.bin\""),
            "path \"a\\\\m.bin\" contains a backslash",
            "'/' separators",
        ),
        (
            format!("{base}\n{}", base.replace("\"m.bin\"", "\"n.bin\"")),
            "models.toml:9:8: duplicate name \"m\" (first used on line 2)",
            "unique name",
        ),
        (
            format!("{base}\n{}", base.replace("name = \"m\"", "name = \"n\"")),
            "models.toml:10:8: duplicate path \"m.bin\" (first used on line 3)",
            "own path",
        ),
        ("[[model]\n".to_owned(), "models.toml:1:", "not valid TOML"),
    ];
    for (text, location, fix) in cases {
        let run = errors_for(&text);
        assert!(run.stderr.contains(location), "want {location:?} in:\n{}\nfor:\n{text}", run.stderr);
        assert!(run.stderr.contains(fix), "want {fix:?} in:\n{}", run.stderr);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    }
}

#[test]
fn a_missing_manifest_is_a_usage_error() {
    let sb = sandbox();
    let run = sb.models(&["fetch"]);
    run.expect(2);
    assert!(run.stderr.contains("cannot read the manifest"), "{}", run.stderr);
    assert!(run.stderr.contains("--manifest"), "{}", run.stderr);
}

#[test]
fn bad_command_lines_exit_2_and_help_exits_0() {
    let sb = sandbox();
    sb.write_manifest(&[good_pin()]);
    sb.models(&["fetch", "--timeout", "0"]).expect(2);
    sb.models(&["fetch", "--bogus"]).expect(2);
    let help = sb.run_raw(&["models".into(), "fetch".into(), "--help".into()]);
    help.expect(0);
    assert!(help.stdout.contains("Examples:"), "{}", help.stdout);
    for sub in ["verify", "clean"] {
        let help = sb.run_raw(&["models".into(), sub.into(), "--help".into()]);
        help.expect(0);
        assert!(help.stdout.contains("Examples:"), "{sub}: {}", help.stdout);
    }
}

#[test]
fn the_shipped_manifest_is_valid_and_pins_the_sadtalker_files() {
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models.toml");
    let path = camino::Utf8PathBuf::try_from(manifest).unwrap();
    let m = xtask::Manifest::load(&path).unwrap();
    let default: Vec<&str> = m.models.iter().filter(|m| !m.optional).map(|m| m.path.as_str()).collect();
    assert_eq!(default.len(), 8, "{default:?}");
    assert!(default.contains(&"SadTalker_V0.0.2_256.safetensors"));
    assert!(default.contains(&"gfpgan/weights/GFPGANv1.4.pth"));
    let legacy = m.models.iter().filter(|m| m.optional).count();
    assert_eq!(legacy, 17);
    assert!(m.models.iter().filter(|m| m.optional).all(|m| m.group.as_deref() == Some("legacy")));
    assert!(m.models.iter().all(|m| m.urls.iter().all(|u| u.expose().starts_with("https://"))));
}

#[test]
fn a_manifest_windows_users_could_not_fetch_is_refused_on_every_platform() {
    // Checked here, on Linux, so it is never committed: the pre-commit hook runs
    // `verify --manifest-only`, and so does every command.
    for (path, says) in [
        ("aux.bin", "reserved device name"),
        ("gfpgan/CON/x.pth", "reserved device name"),
        ("weights./x.pth", "ends in a dot or a space"),
        ("what?.pth", "does not allow"),
    ] {
        let sb = sandbox();
        let pin = Pin::new("m", path, &payload(10, 1), &["https://example.invalid/m.bin".to_owned()]);
        sb.write_manifest(&[pin]);
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        let line = run.stderr.lines().next().unwrap_or_default();
        assert!(line.contains(&format!("{}:", sb.manifest.display())), "file:line:col: {line}");
        assert!(line.contains(says) && line.contains("Windows"), "{path}: {}", run.stderr);
    }
    let sb = sandbox();
    let url = ["https://example.invalid/m.bin".to_owned()];
    sb.write_manifest(&[
        Pin::new("a", "Model.bin", &payload(10, 1), &url),
        Pin::new("b", "model.bin", &payload(10, 2), &url),
    ]);
    let run = sb.models(&["verify", "--manifest-only"]);
    run.expect(2);
    assert!(run.stderr.contains("only in case"), "{}", run.stderr);
}
