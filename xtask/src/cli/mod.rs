//! The command line: `cargo xtask models fetch|verify|status|clean|mirror|add|run|hook`,
//! and `cargo xtask bench`.
//!
//! Parsing, defaults and exit codes live here; each subcommand's work lives in its own
//! module under `commands`. Relative paths on the command line are taken from the
//! current directory, and the defaults from the workspace root, so the tool works from
//! any subdirectory.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use crate::commands::Defaults;
use crate::error::{EXIT_MODEL_FAILED, EXIT_USAGE, Error, Result};
use crate::ui::out;

mod flags;
mod help;
mod parse;

use flags::{Add, Clean, Doctor, Fetch, Hook, Init, Mirror, Run, Status, Verify};
use help::{
    ADD_EXAMPLES, CLEAN_EXAMPLES, DOCTOR_EXAMPLES, FETCH_EXAMPLES, HOOK_EXAMPLES, INIT_EXAMPLES,
    MIRROR_EXAMPLES, RUN_EXAMPLES, STATUS_EXAMPLES, VERIFY_EXAMPLES,
};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Project tasks.")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// `model-pins`: the same subcommands, at the top.
#[derive(Parser, Debug)]
#[command(
    name = "model-pins",
    version,
    about = "Provision the pinned model checkpoints listed in models.toml."
)]
struct Pins {
    #[command(subcommand)]
    command: ModelsCommand,
}

// Parsed once per process: the size of the biggest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Task {
    /// Provision the pinned model checkpoints listed in models.toml.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Measure fetch and verify against curl, aria2c, sha256sum and openssl; write
    /// BENCHMARKS.md (runs the bench program of the `tests` package: `--help` there).
    #[command(disable_help_flag = true)]
    Bench {
        /// Passed on to the bench (`--quick`, `--runs N`, `--out FILE`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Download every selected model that is missing or wrong, verified, atomically.
    #[command(after_help = FETCH_EXAMPLES)]
    Fetch(Fetch),
    /// Report every selected model as ok, missing, wrong size or wrong hash.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Verify),
    /// One row per model, from sizes and stamps alone: instant, never hashes.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(Status),
    /// What stands between this machine and the models: proxies, certificates, free
    /// space, the cache, partial downloads, locks, the hook; with --urls, whether every URL
    /// still serves its pin (asked without downloading).
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(Doctor),
    /// Remove partial downloads and files the manifest does not list.
    #[command(after_help = CLEAN_EXAMPLES)]
    Clean(Clean),
    /// Export verified models into DIR/sha256/<hex> (a folder or s3://BUCKET/PREFIX), the
    /// layout `--mirror` reads.
    #[command(after_help = MIRROR_EXAMPLES)]
    Mirror(Mirror),
    /// Adopt the tool into another repository (a Python project, say): a Cargo workspace
    /// of one xtask package, the `cargo xtask` alias, a commented models.toml and an
    /// ignored checkpoints/, touching none of the repository's files.
    #[command(after_help = INIT_EXAMPLES)]
    Init(Init),
    /// Download a file, compute its size and sha256, and append its pin to models.toml.
    #[command(after_help = ADD_EXAMPLES)]
    Add(Add),
    /// Make sure the selected models are present and verified, then run a command.
    #[command(after_help = RUN_EXAMPLES)]
    Run(Run),
    /// Install or remove a git pre-commit hook that runs the fast verify.
    #[command(after_help = HOOK_EXAMPLES)]
    Hook(Hook),
}

/// Runs this workspace's command line in `args` (the program name first) and returns
/// the exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    run_models(args, &Defaults::from_workspace())
}

/// Runs `model-pins ARGS`: the `models` subcommands at the top (`model-pins fetch`), with
/// the manifest found as `cargo xtask models` finds it. Suggestions it prints are typed
/// the same way.
pub fn run_pins<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    crate::commands::set_standalone();
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let parsed = Pins::try_parse_from(&args).map(|pins| Task::Models { command: pins.command });
    execute(parsed, wants_json(&args), &Defaults::from_workspace())
}

/// Runs the command line in `args` (the program name first) with `defaults` for the
/// manifest and the checkpoints folder: what another workspace's xtask calls.
pub fn run_models<I, T>(args: I, defaults: &Defaults) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let parsed = Cli::try_parse_from(&args).map(|cli| cli.task);
    execute(parsed, wants_json(&args), defaults)
}

/// Runs a parsed command line (or says why it could not be parsed), with the exit code
/// the command's outcome stands for.
fn execute(parsed: std::result::Result<Task, clap::Error>, json: bool, defaults: &Defaults) -> ExitCode {
    let task = match parsed {
        Ok(task) => task,
        Err(err) => {
            let _ = err.print();
            if !err.use_stderr() {
                return ExitCode::from(0);
            }
            if json {
                let message = err.render().to_string();
                out::json(&error_document(
                    "usage",
                    message.trim_start_matches("error: ").trim(),
                    EXIT_USAGE,
                    &[],
                ));
            }
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let code = match dispatch(task, defaults) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if json {
                out::json(&error_json(&err));
            }
            report(&err)
        }
    };
    match out::take_failure() {
        Some(e) => {
            eprintln!("error: cannot write the results to standard output: {e}");
            ExitCode::from(EXIT_MODEL_FAILED)
        }
        None => code,
    }
}

pub fn main() -> ExitCode {
    limit_malloc_arenas();
    run(std::env::args_os())
}

/// glibc gives every thread that allocates an arena of its own; sixteen download
/// threads then hold memory no one uses again. Two arenas serve them as well.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn dispatch(task: Task, defaults: &Defaults) -> Result<u8> {
    let command = match task {
        Task::Models { command } => command,
        Task::Bench { args } => return bench(&args),
    };
    match command {
        ModelsCommand::Fetch(cmd) => cmd.run(defaults),
        ModelsCommand::Verify(cmd) => cmd.run(defaults),
        ModelsCommand::Status(cmd) => cmd.run(defaults),
        ModelsCommand::Doctor(cmd) => cmd.run(defaults),
        ModelsCommand::Clean(cmd) => cmd.run(defaults),
        ModelsCommand::Mirror(cmd) => cmd.run(defaults),
        ModelsCommand::Add(cmd) => cmd.run(defaults),
        ModelsCommand::Init(cmd) => cmd.run(),
        ModelsCommand::Run(cmd) => cmd.run(defaults),
        ModelsCommand::Hook(cmd) => cmd.run(defaults),
    }
}

/// `cargo xtask bench`: the benchmark lives in the `tests` package, beside the servers it
/// shares with the tests, so it is built only when asked for. It measures this binary.
fn bench(args: &[String]) -> Result<u8> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let tool = std::env::current_exe().map_err(|e| Error::usage(format!("cannot find this program: {e}")))?;
    let root = crate::commands::Defaults::from_workspace().manifest;
    let root = root.parent().map(ToOwned::to_owned).unwrap_or_default();
    let status = std::process::Command::new(cargo)
        .args(["run", "--quiet", "--package", "tests", "--bin", "bench", "--"])
        .arg("--tool")
        .arg(tool)
        .args(args)
        .current_dir(&root)
        .status()
        .map_err(|e| Error::usage(format!("cannot run cargo for the bench: {e}")))?;
    Ok(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1))
}

/// Whether the command line asks for `--json` (before a `--`, after which the words are
/// `run`'s command's): an error that ends it early is then one JSON document on stdout
/// too, so a script reading stdout never finds it empty.
fn wants_json(args: &[OsString]) -> bool {
    args.iter().skip(1).take_while(|a| *a != "--").any(|a| a == "--json")
}

/// The document for an error that ended a `--json` command: `{"error": {"kind", "message",
/// "exit_code", "problems"}}` (`problems`: each manifest problem with its position).
fn error_json(err: &Error) -> serde_json::Value {
    match err {
        Error::Manifest(manifest) => {
            let problems: Vec<serde_json::Value> = manifest
                .problems
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "file": manifest.file.as_str(), "line": p.line, "column": p.column,
                        "message": p.message, "help": p.help,
                    })
                })
                .collect();
            error_document("manifest", &format!("{} has errors", manifest.file), err.exit_code(), &problems)
        }
        Error::Usage(message) => error_document("usage", message, err.exit_code(), &[]),
        other => error_document("io", &other.to_string(), other.exit_code(), &[]),
    }
}

fn error_document(
    kind: &str,
    message: &str,
    exit_code: u8,
    problems: &[serde_json::Value],
) -> serde_json::Value {
    serde_json::json!({ "error": { "kind": kind, "message": message, "exit_code": exit_code, "problems": problems } })
}

/// Prints an error that ended the command; its variant picks the exit code.
fn report(err: &Error) -> ExitCode {
    match err {
        Error::Manifest(manifest) => {
            for line in manifest.to_string().lines() {
                if line.starts_with("  ") {
                    eprintln!("{line}");
                } else {
                    eprintln!("error: {line}");
                }
            }
        }
        other => eprintln!("error: {other}"),
    }
    ExitCode::from(err.exit_code())
}
