//! The tool where Python users are: installed by pip (`pip install .`, maturin builds the
//! `model-pins` command) into a fresh virtualenv under the target folder, and run by the
//! pre-commit framework from a repository that has no Cargo workspace. The real `pip`,
//! `maturin` and `pre-commit`; a missing one fails under `CI=true` and skips elsewhere.
//! maturin comes from the wheel `.ci/run` downloads (pinned), with no package index.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use tests::{Pin, Reply, Server, payload};

/// This repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// Where builds for these tests go, kept between runs: a second install builds nothing.
fn build_dir() -> PathBuf {
    repo().join("target/pip-build")
}

/// Held by each test for its whole run: two maturin builds at once in one target folder
/// remove each other's output (`target/pip-build/maturin/model-pins`). One after the
/// other, the second finds the first's build.
fn one_build_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    BUILD.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The folder holding the maturin wheel `.ci/run` downloads; every pip these tests run
/// (the pre-commit framework's too) installs from it, with no package index. `None`
/// after the skip line.
fn wheelhouse(test: &str) -> Option<PathBuf> {
    let dir = repo().join("target/wheelhouse");
    let has_maturin = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("maturin-"));
    if has_maturin {
        return Some(dir);
    }
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    assert!(!ci, "no maturin wheel in {}, and CI=true: `.ci/run` downloads it", dir.display());
    tests::skipped(test, "no maturin wheel in target/wheelhouse (`.ci/run` downloads it)");
    None
}

/// A fresh virtualenv at `dir`, or `None` after the skip line.
fn venv(dir: &Path, test: &str) -> Option<PathBuf> {
    let python = tests::daemons::require("python3", test)?;
    let made = Command::new(python).args(["-m", "venv"]).arg(dir).output().expect("python3 runs");
    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if !made.status.success() {
        assert!(!ci, "python3 -m venv failed, and CI=true: {}", String::from_utf8_lossy(&made.stderr));
        tests::skipped(test, "python3 cannot make a virtualenv (python3-venv is missing)");
        return None;
    }
    Some(dir.join("bin"))
}

/// Runs `program ARGS` in `cwd`, with the build folder shared and the rest of the
/// environment as a user's.
fn run(program: &Path, args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).stdin(Stdio::null());
    command.env("CARGO_TARGET_DIR", build_dir()).envs(pip_offline());
    for var in
        ["CARGO_MANIFEST_DIR", "XTASK_MODELS_MANIFEST", "XTASK_MODELS_CACHE_DIR", "VIRTUAL_ENV", "PIP_USER"]
    {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("the program runs")
}

/// What makes every pip install maturin from the wheelhouse, never from an index.
fn pip_offline() -> [(&'static str, PathBuf); 2] {
    [("PIP_FIND_LINKS", repo().join("target/wheelhouse")), ("PIP_NO_INDEX", PathBuf::from("1"))]
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A Python project with one pinned model served by `server`, not fetched yet.
fn python_project(dir: &Path, server: &Server, data: &[u8]) -> PathBuf {
    let project = dir.join("project");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(project.join("inference.py"), "print('hi')\n").unwrap();
    std::fs::write(
        project.join("models.toml"),
        Pin::new("m", "weights/m.bin", data, &[server.url("/m")]).to_toml(),
    )
    .unwrap();
    project
}

#[test]
fn pip_installs_the_model_pins_command_and_it_fetches_with_no_rust_in_sight() {
    let test = "pip_installs_the_model_pins_command";
    let _build = one_build_at_a_time();
    let Some(_) = wheelhouse(test) else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(bin) = venv(&dir.path().join("venv"), test) else { return };
    let installed = run(
        &bin.join("pip"),
        &["install", "-q", "--disable-pip-version-check", repo().to_str().unwrap()],
        dir.path(),
        &[],
    );
    assert!(installed.status.success(), "pip install: {}", text(&installed));
    let tool = bin.join("model-pins");
    assert!(tool.is_file(), "pip put model-pins in the virtualenv");

    let server = Server::start();
    let data = payload(5000, 580);
    server.script("/m", vec![Reply::Body(data.clone())]);
    let project = python_project(dir.path(), &server, &data);
    let cache = ("XTASK_MODELS_CACHE_DIR", dir.path().join("cache").display().to_string());
    let path = ("PATH", format!("{}:/usr/bin:/bin", bin.display()));
    // From a subfolder, by its name: the nearest models.toml up; the repair spelled the same.
    let missing =
        run(Path::new("model-pins"), &["verify"], &project.join("src"), &[path.clone(), cache.clone()]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(text(&missing).contains("repair: model-pins fetch --model m\n"), "{}", text(&missing));
    let fetched = run(Path::new("model-pins"), &["fetch"], &project.join("src"), &[path.clone(), cache]);
    assert!(fetched.status.success(), "{}", text(&fetched));
    assert_eq!(std::fs::read(project.join("checkpoints/weights/m.bin")).unwrap(), *data);
    let help = run(Path::new("model-pins"), &["--help"], &project, &[path]);
    assert!(text(&help).contains("Usage: model-pins <COMMAND>"), "{}", text(&help));
}

/// The pre-commit framework `.ci/run` installs (pinned), else one on PATH.
fn pre_commit(test: &str) -> Option<PathBuf> {
    let venv = repo().join("target/pre-commit-venv/bin/pre-commit");
    if venv.is_file() {
        return Some(venv);
    }
    tests::daemons::require("pre-commit", test)
}

#[test]
fn the_pre_commit_framework_runs_the_hooks_where_there_is_no_cargo_and_hook_install_steps_aside() {
    let test = "pre_commit_framework";
    let Some(pre_commit) = pre_commit(test) else { return };
    let Some(_) = wheelhouse(test) else { return };
    let _build = one_build_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let data = payload(5000, 581);
    server.script("/m", vec![Reply::Body(data.clone())]);
    let project = python_project(dir.path(), &server, &data);
    std::fs::write(project.join(".gitignore"), "checkpoints/\n").unwrap();
    let tool = Path::new(crate::TOOL);
    let cache = ("XTASK_MODELS_CACHE_DIR", dir.path().join("cache").display().to_string());
    let fetched = run(tool, &["models", "fetch"], &project, std::slice::from_ref(&cache));
    assert!(fetched.status.success(), "{}", text(&fetched));
    // This repository, at the commit under test, as the hooks' source.
    let head = tests::git(&repo(), &["rev-parse", "HEAD"]);
    let head = String::from_utf8_lossy(&head.stdout).trim().to_owned();
    let config = format!(
        "repos:\n  - repo: {}\n    rev: {head}\n    hooks:\n      - id: models-manifest\n      - id: models-verify\n",
        repo().display()
    );
    std::fs::write(project.join(".pre-commit-config.yaml"), config).unwrap();
    assert!(tests::git(&project, &["init", "-q"]).status.success());
    let home = ("PRE_COMMIT_HOME", dir.path().join("pre-commit-home").display().to_string());
    let installed = run(&pre_commit, &["install"], &project, std::slice::from_ref(&home));
    assert!(installed.status.success(), "{}", text(&installed));
    let framework_hook = std::fs::read(project.join(".git/hooks/pre-commit")).unwrap();

    let env = [home.clone(), cache.clone()];
    assert!(tests::git(&project, &["add", "."]).status.success());
    let good = commit(&project, "models in place", &env);
    assert!(good.status.success(), "the hooks pass: {}", text(&good));
    assert!(
        text(&good).contains("verify model checkpoints") && text(&good).contains("Passed"),
        "{}",
        text(&good)
    );
    // A checkpoint edited: the commit is refused.
    let file = project.join("checkpoints/weights/m.bin");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let bad = commit(&project, "a corrupt model", &env);
    assert!(!bad.status.success(), "{}", text(&bad));
    assert!(text(&bad).contains("Failed"), "{}", text(&bad));

    // The tool's own `hook install` does not append after the framework's `exec`: it
    // says what to add to the config, and leaves the hook as it was.
    let ours = run(tool, &["models", "hook", "install"], &project, &[]);
    assert_eq!(ours.status.code(), Some(2), "{}", text(&ours));
    assert!(
        text(&ours).contains("pre-commit framework's") && text(&ours).contains("- repo: local"),
        "{}",
        text(&ours)
    );
    assert_eq!(std::fs::read(project.join(".git/hooks/pre-commit")).unwrap(), framework_hook);
    let doctor = run(tool, &["models", "doctor"], &project, &[cache]);
    assert!(
        text(&doctor).contains("the pre-commit framework's models-verify hook verifies the models"),
        "{}",
        text(&doctor)
    );
}

/// `git commit` with the hooks running, as a user's commit runs them.
fn commit(project: &Path, message: &str, env: &[(&str, String)]) -> Output {
    let mut command = Command::new("git");
    command
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            message,
        ])
        .current_dir(project)
        .env("CARGO_TARGET_DIR", build_dir())
        .envs(pip_offline())
        .env_remove("CARGO_MANIFEST_DIR");
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}
