//! The git pre-commit hook, the pre-commit framework's hook file, and the CI workflow's
//! cache of checkpoints.

use std::path::Path;

use tests::git;

use crate::{sandbox, stamped};

#[test]
fn the_pre_commit_hook_refuses_a_corrupt_model_and_uninstalls_cleanly() {
    let (sb, data) = stamped();
    assert!(git(&sb.dir, &["init", "-q"]).status.success());
    let hooks = sb.dir.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho their-check\n").unwrap();
    // The hook runs the tool as it was run to install it (here: its path).
    sb.models(&["hook", "install"]).expect(0);
    sb.models(&["hook", "install"]).expect(0);
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
    assert!(text.contains("entry: model-pins verify --quiet"));
    assert!(text.contains("entry: model-pins verify --manifest-only --quiet"));
    assert_eq!(text.matches("language: python").count(), 2, "pip installs model-pins for each");
}

#[test]
fn the_ci_workflow_is_yaml_that_caches_on_the_manifest_and_fetches() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/models-cache.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let doc = &docs[0];
    assert!(!doc["on"].is_badvalue());
    let steps = doc["jobs"]["fetch-models"]["steps"].as_vec().expect("steps");
    let uses: Vec<&str> = steps.iter().filter_map(|s| s["uses"].as_str()).collect();
    assert!(uses.iter().any(|u| u.starts_with("actions/cache/restore@")), "{uses:?}");
    assert!(uses.iter().any(|u| u.starts_with("actions/cache/save@")), "{uses:?}");
    let keys: Vec<&str> = steps.iter().filter_map(|s| s["with"]["key"].as_str()).collect();
    assert!(keys.iter().all(|k| k.contains("hashFiles('models.toml')")) && keys.len() == 3, "{keys:?}");
    let runs: Vec<&str> = steps.iter().filter_map(|s| s["run"].as_str()).collect();
    assert!(runs.iter().any(|r| r.starts_with("cargo xtask models fetch")), "{runs:?}");
}

#[test]
fn the_ci_cache_cannot_freeze_half_filled() {
    // The exact key is saved once per manifest: only a successful run may write it; a
    // failed fetch's progress is saved only when it grew, under a key holding its size,
    // which the next run restores from.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/models-cache.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let steps = docs[0]["jobs"]["fetch-models"]["steps"].as_vec().expect("steps");
    let saves: Vec<_> = steps
        .iter()
        .filter(|s| s["uses"].as_str().is_some_and(|u| u.starts_with("actions/cache/save@")))
        .collect();
    let exact = "models-${{ hashFiles('models.toml') }}";
    for save in &saves {
        let (key, condition) = (save["with"]["key"].as_str().unwrap(), save["if"].as_str().unwrap_or(""));
        assert!(!condition.contains("always()"), "{key} is saved even when the fetch failed: {condition}");
        if key == exact {
            assert!(
                condition.contains("success()"),
                "the exact key only after a complete fetch: {condition}"
            );
        } else {
            // Progress only: after the fetch itself failed, and only when it grew.
            assert!(key == format!("{exact}-partial-${{{{ steps.after.outputs.bytes }}}}"), "{key}");
            assert!(
                condition.contains("failure()") && condition.contains("steps.fetch.outcome == 'failure'"),
                "{condition}"
            );
            assert!(
                condition
                    .contains("fromJSON(steps.after.outputs.bytes) > fromJSON(steps.before.outputs.bytes)"),
                "{condition}"
            );
        }
    }
    assert_eq!(saves.len(), 2, "one save for success, one for failure");
    let restore = steps.iter().find(|s| s["id"].as_str() == Some("restore")).expect("the restore step");
    let fallbacks = restore["with"]["restore-keys"].as_str().unwrap_or("");
    assert!(fallbacks.lines().next().is_some_and(|l| l.trim() == format!("{exact}-partial-")), "{fallbacks}");
}

#[test]
fn outside_a_git_repository_doctor_and_hook_install_say_so_in_their_own_words() {
    let sb = sandbox();
    sb.write_manifest(&[]);
    let doctor = sb.models(&["doctor"]);
    assert!(!doctor.stderr.contains("fatal:"), "git's own words leaked: {}", doctor.stderr);
    let install = sb.models(&["hook", "install"]);
    install.expect(2);
    assert!(install.stderr.contains("is not inside a git repository"), "{}", install.stderr);
    assert!(!install.stderr.contains("fatal:"), "{}", install.stderr);
}

#[test]
fn a_tag_releases_a_binary_and_a_wheel_per_platform_with_their_checksums() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows/release.yml");
    let text = std::fs::read_to_string(path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("valid YAML");
    let doc = &docs[0];
    let tags: Vec<&str> =
        doc["on"]["push"]["tags"].as_vec().unwrap().iter().filter_map(|t| t.as_str()).collect();
    assert_eq!(tags, ["v*"]);
    let targets: Vec<&str> = doc["jobs"]["binaries"]["strategy"]["matrix"]["include"]
        .as_vec()
        .unwrap()
        .iter()
        .filter_map(|row| row["target"].as_str())
        .collect();
    for target in [
        "x86_64-unknown-linux-gnu",
        "aarch64-unknown-linux-gnu",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
    ] {
        assert!(targets.contains(&target), "{target}: {targets:?}");
    }
    // The Windows binary is the target the Windows lane proves under wine.
    assert!(targets.contains(&"x86_64-pc-windows-gnu"), "{targets:?}");
    assert!(text.contains("cargo build --release --locked -p model-pins"), "the binary is model-pins");
    assert!(text.contains("PyO3/maturin-action") && text.contains("--locked"), "wheels from pyproject.toml");
    let release = doc["jobs"]["release"]["steps"].as_vec().unwrap();
    let run = |name: &str| {
        release.iter().find(|s| s["name"].as_str() == Some(name)).and_then(|s| s["run"].as_str())
    };
    assert_eq!(run("SHA256SUMS"), Some("sha256sum * > SHA256SUMS"));
    assert!(run("Attach everything to the release").is_some_and(|r| r.contains("out/*")));
}
