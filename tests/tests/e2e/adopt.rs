//! Another workspace adopting the tool, and a checkout that moved: the workspace's files
//! are found at run time, never where the binary was built.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tests::{Pin, Run, payload};

/// This repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The `main.rs` the README shows for an adopting xtask.
fn readme_main() -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme.split("## Adopting it in another workspace").nth(1).expect("the README section");
    let block = section.split("```rust\n").nth(1).expect("a rust block").split("```").next().unwrap();
    block.to_owned()
}

/// A scratch workspace whose xtask is the README's `main.rs` over this repository's
/// library, with a one-model manifest.
fn scratch_workspace(root: &Path) {
    let xtask = repo().join("xtask");
    std::fs::create_dir_all(root.join("xtask/src")).unwrap();
    std::fs::create_dir_all(root.join(".cargo")).unwrap();
    std::fs::write(root.join("Cargo.toml"), "[workspace]\nresolver = \"3\"\nmembers = [\"xtask\"]\n")
        .unwrap();
    std::fs::write(
        root.join("xtask/Cargo.toml"),
        format!(
            "[package]\nname = \"scratch-xtask\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nxtask = {{ path = {:?} }}\n",
            xtask.display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(root.join("xtask/src/main.rs"), readme_main()).unwrap();
    std::fs::write(
        root.join(".cargo/config.toml"),
        "[alias]\nxtask = \"run --quiet --package scratch-xtask --\"\n",
    )
    .unwrap();
    // The same versions as this repository: resolved offline, from what is built here.
    std::fs::copy(repo().join("Cargo.lock"), root.join("Cargo.lock")).unwrap();
    let data = payload(100, 1);
    let pin =
        Pin::new("scratch-model", "scratch.bin", &data, &["https://example.invalid/scratch.bin".into()]);
    std::fs::write(root.join("models.toml"), pin.to_toml()).unwrap();
}

/// How long the scratch workspace's build may take before the test gives up on it.
const BUILD_LIMIT: Duration = Duration::from_secs(15 * 60);

/// `cargo xtask ARGS` in `dir`, building into a target folder kept between runs.
fn cargo_xtask(dir: &Path, args: &[&str]) -> Run {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let child = Command::new(cargo)
        .arg("xtask")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", repo().join("target/adopt-test"))
        .env("CARGO_NET_OFFLINE", "true")
        .env_remove("CARGO_MANIFEST_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo runs");
    // A cold build of the scratch workspace takes about a minute on 2 cores; a build that
    // hangs (a lock held by a stuck cargo, say) fails the test instead of the whole run.
    tests::finish_within(child, BUILD_LIMIT, "the scratch workspace's `cargo xtask`")
}

#[test]
fn another_workspace_adopts_the_tool_with_the_readme_lines_and_a_moved_checkout_reads_its_own_files() {
    let temp = tempfile::tempdir().unwrap();
    let first = temp.path().join("first");
    scratch_workspace(&first);
    let run = cargo_xtask(&first, &["models", "verify", "--manifest-only"]);
    run.expect(0);
    let manifest = first.join("models.toml");
    assert!(run.stdout.contains(&format!("{}: ok, 1 models", manifest.display())), "{}", run.stdout);

    // The checkout moves (a CI cache restored elsewhere, `mv` of a repository). Its
    // built binary, run from there without cargo, reads the files where they are now.
    let moved = temp.path().join("moved");
    std::fs::rename(&first, &moved).unwrap();
    let binary = repo().join("target/adopt-test/debug/scratch-xtask");
    let run =
        tests::run_tool(&binary, &["models".into(), "verify".into(), "--manifest-only".into()], &moved, &[]);
    run.expect(0);
    assert!(run.stdout.contains(&format!("{}: ok", moved.join("models.toml").display())), "{}", run.stdout);
    // From a subfolder too: the root is the nearest folder with a [workspace] Cargo.toml.
    let run = tests::run_tool(&binary, &["models".into(), "status".into()], &moved.join("xtask/src"), &[]);
    run.expect(0);
    assert!(run.stdout.contains("scratch-model") && run.stdout.contains("missing"), "{}", run.stdout);
    // And through cargo, which passes the package folder at run time.
    let run = cargo_xtask(&moved, &["models", "verify", "--manifest-only"]);
    run.expect(0);
    assert!(run.stdout.contains(&format!("{}: ok", moved.join("models.toml").display())), "{}", run.stdout);
}

#[test]
fn init_adopts_the_tool_into_a_python_project_touching_none_of_its_files() {
    let temp = tempfile::tempdir().unwrap();
    let project = temp.path().join("SadTalker");
    std::fs::create_dir_all(project.join("src")).unwrap();
    let theirs = [("inference.py", "print('hi')\n"), (".gitignore", "*.pyc\n"), ("src/app.py", "x = 1\n")];
    for (name, text) in theirs {
        std::fs::write(project.join(name), text).unwrap();
    }
    assert!(tests::git(&project, &["init", "-q"]).status.success());
    let tool = env!("CARGO_BIN_EXE_xtask-under-test");
    let repo_root = repo().display().to_string();
    let args = ["models", "init", ".", "--tool-path", &repo_root].map(str::to_owned);
    let run = tests::run_tool(Path::new(tool), &args, &project, &[]);
    run.expect(0);
    assert!(run.stdout.contains("next: in"), "{}", run.stdout);
    for (name, text) in theirs {
        assert_eq!(std::fs::read_to_string(project.join(name)).unwrap(), text, "{name} untouched");
    }
    // Again: everything it would write is there, so it refuses and changes nothing.
    let again = tests::run_tool(Path::new(tool), &args, &project, &[]);
    again.expect(2);
    assert!(
        again.stderr.contains("exists already") && again.stderr.contains("changed nothing"),
        "{}",
        again.stderr
    );

    // `cargo xtask models …` works there: a pin, a fetch, the file in checkpoints/.
    let data = payload(2000, 560);
    let model = temp.path().join("m.bin");
    std::fs::write(&model, &*data).unwrap();
    let url = format!("file://{}", model.display());
    let run = cargo_xtask(&project, &["models", "add", &url, "--path", "gfpgan/weights/m.bin"]);
    run.expect(0);
    std::fs::remove_file(project.join("checkpoints/gfpgan/weights/m.bin")).unwrap();
    cargo_xtask(&project, &["models", "fetch", "--no-cache"]).expect(0);
    assert_eq!(std::fs::read(project.join("checkpoints/gfpgan/weights/m.bin")).unwrap(), *data);
    // git sees the tool's files, and neither the models nor the build.
    let status = tests::git(&project, &["status", "--porcelain", "--untracked-files=all"]);
    let listed = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(listed.contains("models.toml") && listed.contains("xtask/src/main.rs"), "{listed}");
    assert!(!listed.contains("checkpoints/") && !listed.contains("target/"), "{listed}");
}
