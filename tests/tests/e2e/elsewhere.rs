//! Users are elsewhere: the tool finds its manifest from any folder (as cargo finds
//! `Cargo.toml`), in a project with no Cargo workspace at all (SadTalker is Python), and
//! every command it suggests is typed as it was run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tests::{Pin, Run, Server, payload};

use crate::TOOL;

/// A Python-style project: `models.toml` pinning `m` (served by `server`) at its root,
/// and a deep source folder. Returns the project's root.
fn project(dir: &Path, server: &Server, data: &[u8]) -> PathBuf {
    let root = dir.join("SadTalker");
    std::fs::create_dir_all(root.join("src/face3d/models")).unwrap();
    std::fs::write(root.join("inference.py"), "# stand-in\n").unwrap();
    std::fs::write(root.join("models.toml"), Pin::new("m", "m.bin", data, &[server.url("/m")]).to_toml())
        .unwrap();
    root
}

/// The tool as `program` (a path, or a name PATH finds), in `cwd`, with `env`.
fn run(program: &str, args: &[&str], cwd: &Path, env: &[(&str, String)]) -> Run {
    let mut command = Command::new(program);
    command.args(args).current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for var in
        ["CARGO_MANIFEST_DIR", "XTASK_MODELS_MANIFEST", "XTASK_MODELS_CACHE_DIR", "NO_PROXY", "http_proxy"]
    {
        command.env_remove(var);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    tests::finish_within(command.spawn().unwrap(), std::time::Duration::from_secs(120), "the tool")
}

/// What `models run` hands its command as the checkpoints folder.
const PRINT_DIR: [&str; 4] = ["--", "sh", "-c", "printf %s \"$MODELS_CHECKPOINTS_DIR\""];

#[test]
fn a_project_without_cargo_is_found_from_any_subfolder_and_run_gets_its_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let data = payload(3000, 550);
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    let root = project(dir.path(), &server, &data);
    let deep = root.join("src/face3d/models");
    let cache = [("XTASK_MODELS_CACHE_DIR", dir.path().join("cache").display().to_string())];
    run(TOOL, &["models", "fetch"], &deep, &cache).expect(0);
    assert_eq!(std::fs::read(root.join("checkpoints/m.bin")).unwrap(), *data);
    let mut args = vec!["models", "run"];
    args.extend(PRINT_DIR);
    let printed = run(TOOL, &args, &deep, &cache);
    printed.expect(0);
    assert_eq!(printed.stdout, root.join("checkpoints").display().to_string());
}

#[test]
fn a_manifest_named_by_variable_or_flag_keeps_its_checkpoints_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let data = payload(3000, 551);
    server.script("/m", vec![tests::Reply::Body(data.clone())]);
    let root = project(dir.path(), &server, &data);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let cache = ("XTASK_MODELS_CACHE_DIR", dir.path().join("cache").display().to_string());
    let manifest = root.join("models.toml").display().to_string();
    let mut args = vec!["models", "run"];
    args.extend(PRINT_DIR);
    let by_variable =
        run(TOOL, &args, &elsewhere, &[cache.clone(), ("XTASK_MODELS_MANIFEST", manifest.clone())]);
    by_variable.expect(0);
    assert_eq!(by_variable.stdout, root.join("checkpoints").display().to_string());
    let mut args = vec!["models", "run", "--manifest", &manifest];
    args.extend(PRINT_DIR);
    let by_flag = run(TOOL, &args, &elsewhere, &[cache]);
    by_flag.expect(0);
    assert_eq!(by_flag.stdout, root.join("checkpoints").display().to_string());
}

#[test]
fn suggestions_spell_the_program_as_it_was_typed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start();
    let data = payload(3000, 552);
    let root = project(dir.path(), &server, &data);
    let bin = Path::new(TOOL).parent().unwrap().display().to_string();
    let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
    // By name, found on PATH: the repair is that name, and works from where it ran.
    let by_name = run("xtask-under-test", &["models", "verify"], &root, &[("PATH", path)]);
    by_name.expect(1);
    assert!(
        by_name.stdout.contains("repair: xtask-under-test models fetch --model m\n"),
        "{}",
        by_name.stdout
    );
    // By its path: the path, as typed.
    let by_path = run(TOOL, &["models", "verify"], &root, &[]);
    assert!(
        by_path.stdout.contains(&format!("repair: {TOOL} models fetch --model m\n")),
        "{}",
        by_path.stdout
    );
    // Through cargo (the alias sets CARGO_MANIFEST_DIR): `cargo xtask models`.
    let cargo = [("CARGO_MANIFEST_DIR", root.display().to_string())];
    let via_cargo = run(TOOL, &["models", "verify"], &root, &cargo);
    assert!(
        via_cargo.stdout.contains("repair: cargo xtask models fetch --model m\n"),
        "{}",
        via_cargo.stdout
    );
    // From a subfolder, the walk up finds the manifest again: nothing more to say. From
    // outside the project, the manifest named on the command line is named again.
    let sub = run(TOOL, &["models", "verify"], &root.join("src"), &[]);
    assert!(sub.stdout.contains(&format!("repair: {TOOL} models fetch --model m\n")), "{}", sub.stdout);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let manifest = root.join("models.toml").display().to_string();
    let named = run(TOOL, &["models", "verify", "--manifest", &manifest], &outside, &[]);
    assert!(
        named.stdout.contains(&format!("repair: {TOOL} models fetch --model m --manifest {manifest}\n")),
        "{}",
        named.stdout
    );
}
