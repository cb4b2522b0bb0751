//! Manifest and command-line errors reach the user with file, line, column and fix, and
//! exit code 2, never a panic, for thousands of malformed manifests too.

use tests::{Pin, payload};

use crate::Rng;
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

#[test]
fn a_huge_retries_count_is_a_usage_error_not_a_panic() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let run = sb.models(&["fetch", "--retries", "4294967295"]);
    run.expect(2);
    assert!(run.stderr.contains("--retries"), "{}", run.stderr);
}

#[test]
fn sizes_that_would_overflow_are_refused_by_the_manifest_check_never_a_panic() {
    let sb = sandbox();
    let mut a = Pin::new("a", "a.bin", b"x", &["https://example.invalid/a".into()]);
    a.size = u64::MAX;
    let mut b = Pin::new("b", "b.bin", b"x", &["https://example.invalid/b".into()]);
    b.size = u64::MAX;
    sb.write_manifest(&[a, b]);
    for command in [&["verify", "--manifest-only"][..], &["status"], &["fetch"]] {
        let run = sb.models(command);
        run.expect(2);
        assert!(run.stderr.contains("more than any checkpoint"), "{command:?}: {}", run.stderr);
    }
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

/// A valid manifest to mutate.
fn seed_manifest() -> String {
    let pin = Pin::new(
        "m",
        "dir/m.bin",
        b"abc",
        &["https://example.invalid/m".to_owned(), "file:///tmp/m".to_owned()],
    );
    let mut text = pin.to_toml();
    text.push_str("group = \"g\"\n");
    text
}

const TRICKS: &[&str] = &[
    "a/../../x",
    "C:\\x",
    "\\\\?\\x",
    "\0",
    "~",
    "~/x",
    "/etc/passwd",
    "..",
    ".",
    "",
    " ",
    "\u{202e}",
    "é",
    "💥",
    "99999999999999999999999",
    "-1",
    "1e309",
    "nan",
    "0x10",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'''",
    "\\u0000",
    "[[model]]",
    "=",
    "\n",
    "\r\n",
    "\t",
    "#",
    "true",
    "inf",
];

#[test]
fn thousands_of_malformed_manifests_never_panic_and_always_explain() {
    // Promise: whatever bytes models.toml holds, loading it returns models or problems.
    let seed = seed_manifest();
    let mut rng = Rng(0xbad5eed);
    let file = camino::Utf8Path::new("models.toml");
    for case in 0..4000 {
        let text = match case % 4 {
            0 => {
                let mut bytes = seed.clone().into_bytes();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.below(256) as u8;
                }
                String::from_utf8_lossy(&bytes).into_owned()
            }
            1 => {
                let at = seed
                    .char_indices()
                    .map(|(i, _)| i)
                    .nth(rng.below(seed.chars().count() as u64) as usize)
                    .unwrap_or(0);
                let trick = TRICKS[rng.below(TRICKS.len() as u64) as usize];
                format!("{}{trick}{}", &seed[..at], &seed[at..])
            }
            2 => {
                let trick = TRICKS[rng.below(TRICKS.len() as u64) as usize];
                seed.replace("dir/m.bin", trick)
            }
            _ => {
                (0..rng.below(200)).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('x')).collect()
            }
        };
        let result = std::panic::catch_unwind(|| xtask::Manifest::parse(&text, file));
        let Ok(result) = result else { panic!("the loader panicked on case {case}:\n{text:?}") };
        if let Err(err) = result {
            assert!(!err.problems.is_empty(), "case {case}: an error without a problem");
            for p in &err.problems {
                assert!(p.line >= 1 && p.column >= 1 && !p.message.is_empty(), "case {case}: {p:?}");
            }
        }
    }
}

#[test]
fn deep_nesting_and_huge_numbers_are_refused_not_crashed_on() {
    // Promise: pathological manifests end in exit 2 with a message, never a crash.
    let sb = sandbox();
    for text in [
        format!("x = {}{}\n", "[".repeat(5000), "]".repeat(5000)),
        format!("x = {}1{}\n", "{a=".repeat(3000), "}".repeat(3000)),
        "[[model]]\nname = \"m\"\npath = \"m\"\nsize = 99999999999999999999999999\nsha256 = \"00\"\nurls = []\n".to_owned(),
        "[[model]]\nname = \"m\"\npath = \"a/../../x\"\nsize = 1\nsha256 = \"00\"\nurls = [\"https://x/\"]\n".to_owned(),
    ] {
        std::fs::write(&sb.manifest, &text).unwrap();
        let run = sb.models(&["verify", "--manifest-only"]);
        run.expect(2);
        assert!(run.stderr.starts_with("error: "), "{}", run.stderr);
    }
}

#[test]
fn each_commands_help_speaks_of_that_command_only() {
    let sb = sandbox();
    let verify = sb.models(&["verify", "--help"]);
    verify.expect(0);
    for foreign in ["--connections", "--log-file", "--verbose", "server"] {
        assert!(!verify.stdout.contains(foreign), "verify --help offers {foreign}: {}", verify.stdout);
    }
    assert!(verify.stdout.contains("How many files to hash at once"), "{}", verify.stdout);
    for command in ["status", "clean", "doctor"] {
        let help = sb.models(&[command, "--help"]);
        assert!(!help.stdout.contains("--log-file"), "{command} logs no download: {}", help.stdout);
    }
    let fetch = sb.models(&["fetch", "--help"]);
    assert!(
        fetch.stdout.contains("--log-file") && fetch.stdout.contains("--connections"),
        "{}",
        fetch.stdout
    );
    sb.models(&["verify", "--log-file", "x.log"]).expect(2);
}
