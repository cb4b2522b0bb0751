//! The command line: `cargo xtask models fetch|verify|status|clean|mirror|add|run|hook`.
//!
//! Parsing, defaults and exit codes live here; each subcommand's work lives in its own
//! module. Relative paths on the command line are taken from the current directory, and
//! the defaults from the workspace root, so the tool works from any subdirectory.

use std::process::ExitCode;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use clap::{Args, Parser, Subcommand};

use crate::attempt_log::AttemptLog;
use crate::cache::Cache;
use crate::error::{EXIT_MODEL_FAILED, EXIT_USAGE, UsageError};
use crate::manifest::{Manifest, ManifestError};
use crate::plan::{Selection, Trust};
use crate::progress::Reporter;
use crate::transfer::Settings;
use crate::{add, bench, clean, fetch, hook, mirror, plan, project_root, run, status, verify};

#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Project tasks.")]
struct Cli {
    #[command(subcommand)]
    task: Task,
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
    /// Measure fetch and verify against curl, sha256sum and openssl; write BENCHMARKS.md.
    Bench {
        /// Tiny sizes and one round: checks that the harness works, in seconds.
        #[arg(long)]
        quick: bool,
        /// Measured rounds per case (after one warm-up).
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Where the table goes [default: BENCHMARKS.md at the workspace root].
        #[arg(long, value_name = "FILE")]
        out: Option<Utf8PathBuf>,
    },
}

const FETCH_EXAMPLES: &str = "\
Examples:
  cargo xtask models fetch                       # every non-optional model
  cargo xtask models fetch --group gfpgan        # one group
  cargo xtask models fetch --model sadtalker-256 --timeout 120
  cargo xtask models fetch --all --log-file fetch.log
  cargo xtask models fetch --jobs 8 --mirror https://models.internal/
  cargo xtask models fetch --offline             # cache and local mirrors only

Exit codes: 0 all present, 1 some model could not be fetched, 2 usage or manifest error.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  cargo xtask models verify                      # hash every non-optional model
  cargo xtask models verify --model gfpgan-1.4
  cargo xtask models verify --all --quiet        # only problems and the summary
  cargo xtask models verify --full               # hash everything, ignore stamps
  cargo xtask models verify --manifest-only      # check models.toml alone (pre-commit)

Exit codes: 0 all ok, 1 some model missing or wrong, 2 usage or manifest error.";

const CLEAN_EXAMPLES: &str = "\
Examples:
  cargo xtask models clean --dry-run             # list what would go
  cargo xtask models clean                       # remove partial and unlisted files
  cargo xtask models clean --all                 # remove the model files as well
  cargo xtask models clean --cache --dry-run     # list cache entries not pinned here

Exit codes: 0 done, 1 some file could not be removed, 2 usage or manifest error.";

const STATUS_EXAMPLES: &str = "\
Examples:
  cargo xtask models status                      # every non-optional model
  cargo xtask models status --all --json         # for scripts

States: ok-stamped, unverified (right size, not hashed since it changed: run verify),
missing, partial N%, wrong size, wrong hash, not a file.";

const ADD_EXAMPLES: &str = "\
Examples:
  cargo xtask models add https://host/releases/v1/model.pth --group extra
  cargo xtask models add https://a/model.pth --url https://b/model.pth --name my-model
  cargo xtask models add https://a/model.pth --sha256 <hex> --dry-run

Exit codes: 0 pinned, 1 download failed or --sha256 differs, 2 usage error or duplicate.";

const RUN_EXAMPLES: &str = "\
Examples:
  cargo xtask models run -- python inference.py --driven_audio a.wav --source_image face.png
  cargo xtask models run --group gfpgan -- python inference.py --enhancer gfpgan

The command finds the checkpoints directory in $MODELS_CHECKPOINTS_DIR. It starts only
when every selected model is present and verified; its exit code becomes this one's.";

const HOOK_EXAMPLES: &str = "\
Examples:
  cargo xtask models hook install                # check models.toml and the models on commit
  cargo xtask models hook uninstall              # remove exactly what install wrote

The hook runs `cargo xtask models verify --manifest-only` when models.toml is staged, then
`cargo xtask models verify --quiet`, which trusts unchanged files by their stamps.";

const MIRROR_EXAMPLES: &str = "\
Examples:
  cargo xtask models mirror /srv/models-mirror           # export the default set
  cargo xtask models mirror /mnt/ci-cache --all
  cargo xtask models fetch --mirror /mnt/ci-cache        # later jobs read it first

Exit codes: 0 all exported, 1 some model was not present and verified, 2 usage error.";

#[derive(Subcommand, Debug)]
enum ModelsCommand {
    /// Download every selected model that is missing or wrong, verified, atomically.
    #[command(after_help = FETCH_EXAMPLES)]
    Fetch {
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        transfer: TransferArgs,
        /// Install without size and sha256 checks, and count any file present as present.
        #[arg(long)]
        skip_checks: bool,
        #[command(flatten)]
        jobs: JobsArgs,
        #[command(flatten)]
        sources: SourceArgs,
        /// Print one JSON document on stdout (schema in the README).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Report every selected model as ok, missing, wrong size or wrong hash.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify {
        #[command(flatten)]
        select: SelectArgs,
        /// Check presence only.
        #[arg(long, conflicts_with = "full")]
        skip_checks: bool,
        /// Hash every file, even those whose stamp says they are unchanged.
        #[arg(long)]
        full: bool,
        /// Check models.toml alone (schema, duplicates, hashes, paths, URLs); touch no files.
        #[arg(long, conflicts_with_all = ["skip_checks", "full", "models", "groups", "all"])]
        manifest_only: bool,
        #[command(flatten)]
        jobs: JobsArgs,
        /// Print one JSON document on stdout (schema in the README).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// One row per model, from sizes and stamps alone: instant, never hashes.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        #[command(flatten)]
        select: SelectArgs,
        /// Also look for partial downloads in this cache [default: as for fetch].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<Utf8PathBuf>,
        /// Print one JSON document on stdout (schema in the README).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Remove partial downloads and files the manifest does not list.
    #[command(after_help = CLEAN_EXAMPLES)]
    Clean {
        /// List what would be removed, remove nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also remove the model files the manifest lists.
        #[arg(long)]
        all: bool,
        /// Also prune the shared cache of entries this manifest does not pin.
        #[arg(long)]
        cache: bool,
        /// The cache to prune [default: $XTASK_MODELS_CACHE_DIR, else ~/.cache/xtask-models].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<Utf8PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Export verified models into DIR/sha256/<hex>, the layout `--mirror` reads.
    #[command(after_help = MIRROR_EXAMPLES)]
    Mirror {
        /// The mirror directory to fill.
        dir: Utf8PathBuf,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        jobs: JobsArgs,
        /// Take files from this cache too [default: as for fetch].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<Utf8PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Download a file, compute its size and sha256, and append its pin to models.toml.
    #[command(after_help = ADD_EXAMPLES)]
    Add {
        /// Where to download it from.
        url: String,
        /// A further URL for the same file, tried in order (repeatable).
        #[arg(long = "url", value_name = "URL")]
        more_urls: Vec<String>,
        /// The model's name [default: the URL's file name without its extension].
        #[arg(long)]
        name: Option<String>,
        /// Where it goes, relative to the checkpoints directory [default: the URL's file name].
        #[arg(long)]
        path: Option<String>,
        #[arg(long, value_name = "G")]
        group: Option<String>,
        /// Fetch it only when selected.
        #[arg(long)]
        optional: bool,
        /// Refuse the download unless it has this sha256.
        #[arg(long, value_name = "HEX")]
        sha256: Option<String>,
        /// Print the entry instead of writing it to models.toml.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Make sure the selected models are present and verified, then run a command.
    #[command(after_help = RUN_EXAMPLES)]
    Run {
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        transfer: TransferArgs,
        #[command(flatten)]
        jobs: JobsArgs,
        #[command(flatten)]
        sources: SourceArgs,
        #[command(flatten)]
        common: CommonArgs,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Install or remove a git pre-commit hook that runs the fast verify.
    #[command(after_help = HOOK_EXAMPLES)]
    Hook {
        #[command(subcommand)]
        action: HookAction,
    },
}

#[derive(Subcommand, Debug)]
enum HookAction {
    /// Write the hook (keeping any lines of an existing pre-commit hook).
    Install {
        /// How the hook runs this tool.
        #[arg(long, default_value = "cargo xtask", hide = true)]
        command: String,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Remove exactly what `install` wrote.
    Uninstall {
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(Args, Debug)]
struct TransferArgs {
    /// Seconds allowed for connecting and for any stall between reads (not a total limit).
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
    timeout: Duration,
    /// Further attempts per URL after a transient fault (timeouts, resets, 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = 3)]
    retries: u32,
    /// First retry delay in milliseconds; doubles per retry (tests shorten it).
    #[arg(long, value_name = "MS", default_value_t = 500, hide = true)]
    backoff_ms: u64,
}

impl TransferArgs {
    fn settings(&self, skip_checks: bool) -> Settings {
        Settings {
            timeout: self.timeout,
            retries: self.retries,
            backoff: Duration::from_millis(self.backoff_ms),
            skip_checks,
            ..Settings::default()
        }
    }
}

#[derive(Args, Debug)]
struct JobsArgs {
    /// How many files to work on at once (1: one after another).
    #[arg(long, short, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
}

#[derive(Args, Debug)]
struct SourceArgs {
    /// The shared download cache [default: $XTASK_MODELS_CACHE_DIR, else
    /// $XDG_CACHE_HOME/xtask-models, else ~/.cache/xtask-models].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<Utf8PathBuf>,
    /// Download straight into the checkpoints directory, without the shared cache.
    #[arg(long, conflicts_with = "cache_dir")]
    no_cache: bool,
    /// Try this mirror first (repeatable): an http(s):// or file:// URL or a directory
    /// holding sha256/<hex> files. Also read from $XTASK_MODELS_MIRRORS (space-separated).
    #[arg(long, value_name = "URL")]
    mirror: Vec<String>,
    /// Make no network request: use only the cache, file:// URLs and directory mirrors.
    /// Also set by XTASK_MODELS_OFFLINE=1.
    #[arg(long)]
    offline: bool,
}

#[derive(Args, Debug)]
struct SelectArgs {
    /// Select this model (repeatable). Without --model/--group: every non-optional model.
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// Select every model of this group (repeatable).
    #[arg(long = "group", value_name = "G")]
    groups: Vec<String>,
    /// Select every model, optional ones included.
    #[arg(long, conflicts_with_all = ["models", "groups"])]
    all: bool,
}

#[derive(Args, Debug)]
struct CommonArgs {
    /// The manifest [default: models.toml at the workspace root].
    #[arg(long, value_name = "PATH")]
    manifest: Option<Utf8PathBuf>,
    /// Where model files live [default: checkpoints/ at the workspace root].
    #[arg(long, value_name = "DIR")]
    checkpoints_dir: Option<Utf8PathBuf>,
    /// Append a timestamped record of every download attempt to FILE.
    #[arg(long, value_name = "FILE")]
    log_file: Option<Utf8PathBuf>,
    /// Print only errors and the final summary.
    #[arg(long, short)]
    quiet: bool,
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err("must be more than 0 and at most 86400 seconds".to_owned());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What every subcommand works with: the checked manifest, the checkpoints directory and
/// where output goes.
pub struct Context {
    pub manifest: Manifest,
    pub manifest_path: Utf8PathBuf,
    pub checkpoints: Utf8PathBuf,
    pub reporter: Reporter,
    pub log: Option<AttemptLog>,
    /// `--json`: stdout carries one JSON document, so result lines go to stderr.
    pub json: bool,
    /// The options a follow-up command needs to act on the same files.
    location_args: String,
}

impl Context {
    fn new(common: &CommonArgs) -> anyhow::Result<Context> {
        Context::with_json(common, false)
    }

    fn with_json(common: &CommonArgs, json: bool) -> anyhow::Result<Context> {
        let root = project_root();
        let default_manifest = root.join("models.toml");
        let default_checkpoints = root.join("checkpoints");
        let manifest_path = absolute(common.manifest.as_deref().unwrap_or(&default_manifest))?;
        let checkpoints = absolute(common.checkpoints_dir.as_deref().unwrap_or(&default_checkpoints))?;
        let manifest = Manifest::load(&manifest_path)?;
        let log = match &common.log_file {
            Some(path) => Some(AttemptLog::open(path).map_err(|e| {
                UsageError(format!("cannot open the log file {path}: {e}; choose another `--log-file`"))
            })?),
            None => None,
        };
        let mut location_args = String::new();
        if manifest_path != default_manifest {
            location_args.push_str(&format!(" --manifest {}", shell_quote(manifest_path.as_str())));
        }
        if checkpoints != default_checkpoints {
            location_args.push_str(&format!(" --checkpoints-dir {}", shell_quote(checkpoints.as_str())));
        }
        Ok(Context {
            manifest,
            manifest_path,
            checkpoints,
            reporter: Reporter::for_stderr(common.quiet),
            log,
            json,
            location_args,
        })
    }

    /// A results line: on stdout, or on stderr when stdout carries `--json`.
    pub fn say(&self, line: &str) {
        if self.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }

    /// ` --manifest X --checkpoints-dir Y` where these differ from the defaults.
    pub fn location_args(&self) -> &str {
        &self.location_args
    }

    /// The command that runs `subcommand` on one model of this same manifest and folder.
    pub fn command_for(&self, subcommand: &str, model: &str) -> String {
        format!("cargo xtask models {subcommand} --model {model}{}", self.location_args)
    }
}

fn absolute(path: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let abs = std::path::absolute(path)?;
    Ok(Utf8PathBuf::try_from(abs)?)
}

fn shell_quote(text: &str) -> String {
    if text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Runs the command line in `args` (the program name first) and returns the exit code.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

pub fn main() -> ExitCode {
    run(std::env::args_os())
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let command = match cli.task {
        Task::Models { command } => command,
        Task::Bench { quick, runs, out } => {
            let out = match out {
                Some(out) => absolute(&out)?,
                None => project_root().join("BENCHMARKS.md"),
            };
            let runs = if quick { 1 } else { runs };
            return bench::run(&bench::Options { quick, runs, out });
        }
    };
    match command {
        ModelsCommand::Fetch { select, transfer, skip_checks, jobs, sources, json, common } => {
            let cx = Context::with_json(&common, json)?;
            let options = fetch_options(&cx, transfer.settings(skip_checks), &jobs, sources)?;
            fetch::run(&cx, &select.into(), options)
        }
        ModelsCommand::Run { select, transfer, jobs, sources, common, command } => {
            let cx = Context::new(&common)?;
            let options = fetch_options(&cx, transfer.settings(false), &jobs, sources)?;
            run::run(&cx, &select.into(), options, &command)
        }
        ModelsCommand::Verify { select, skip_checks, full, manifest_only, jobs, json, common } => {
            let cx = Context::with_json(&common, json)?;
            if manifest_only {
                let optional = cx.manifest.models.iter().filter(|m| m.optional).count();
                let count = cx.manifest.models.len();
                cx.say(&format!("{}: ok, {count} models ({optional} optional)", cx.manifest_path));
                return Ok(ExitCode::SUCCESS);
            }
            let trust = match (skip_checks, full) {
                (true, _) => Trust::Presence,
                (false, true) => Trust::Hash,
                (false, false) => Trust::Stamps,
            };
            verify::run(&cx, &select.into(), trust, jobs.jobs.into())
        }
        ModelsCommand::Status { select, cache_dir, json, common } => {
            let cx = Context::with_json(&common, json)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            status::run(&cx, &select.into(), cache.as_ref(), json)
        }
        ModelsCommand::Clean { dry_run, all, cache, cache_dir, common } => {
            let cx = Context::new(&common)?;
            let cache = if cache { cache_at(cache_dir, &cx.reporter) } else { None };
            clean::run(&cx, &clean::Options { dry_run, all, cache })
        }
        ModelsCommand::Mirror { dir, select, jobs, cache_dir, common } => {
            let cx = Context::new(&common)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            let dir = absolute(&dir)?;
            mirror::run(&cx, &select.into(), &dir, cache.as_ref(), jobs.jobs.into())
        }
        ModelsCommand::Add {
            url,
            more_urls,
            name,
            path,
            group,
            optional,
            sha256,
            dry_run,
            transfer,
            common,
        } => {
            let cx = Context::new(&common)?;
            let mut urls = vec![url];
            urls.extend(more_urls);
            let request = add::Request { urls, name, path, group, optional, sha256, dry_run };
            add::run(&cx, request, transfer.settings(false))
        }
        ModelsCommand::Hook { action: HookAction::Install { command, common } } => {
            hook::install(&Context::new(&common)?, &command)
        }
        ModelsCommand::Hook { action: HookAction::Uninstall { common } } => {
            hook::uninstall(&Context::new(&common)?)
        }
    }
}

/// Fetch options from the command line and the environment.
fn fetch_options(
    cx: &Context,
    settings: Settings,
    jobs: &JobsArgs,
    sources: SourceArgs,
) -> anyhow::Result<fetch::Options> {
    let mut mirrors = sources.mirror;
    mirrors.extend(env_list(MIRRORS_ENV));
    for mirror in &mirrors {
        plan::check_mirror(mirror)?;
    }
    // Unchecked bytes must never enter a store named by their pinned hash.
    let cache = if sources.no_cache || settings.skip_checks {
        None
    } else {
        cache_at(sources.cache_dir, &cx.reporter)
    };
    let offline = sources.offline || env_flag(OFFLINE_ENV);
    Ok(fetch::Options { settings, jobs: jobs.jobs.into(), cache, mirrors, offline })
}

/// Space- or comma-separated mirrors for every fetch on this machine.
pub const MIRRORS_ENV: &str = "XTASK_MODELS_MIRRORS";
/// `1` (or `true`, `yes`) makes every fetch offline.
pub const OFFLINE_ENV: &str = "XTASK_MODELS_OFFLINE";

fn env_list(name: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_default();
    value.split([' ', ',', '\n']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn env_flag(name: &str) -> bool {
    let value = std::env::var(name).unwrap_or_default().to_ascii_lowercase();
    matches!(value.as_str(), "1" | "true" | "yes" | "on")
}

/// The cache at `dir`, else the default one; none (with a warning) when no home is known.
fn cache_at(dir: Option<Utf8PathBuf>, reporter: &Reporter) -> Option<Cache> {
    let root = dir.or_else(Cache::default_root);
    if root.is_none() {
        reporter.warn(
            "no cache directory (neither HOME nor XDG_CACHE_HOME is set); downloading without the cache",
        );
    }
    let root = absolute(&root?).ok()?;
    Some(Cache { root })
}

impl From<SelectArgs> for Selection {
    fn from(args: SelectArgs) -> Selection {
        Selection { models: args.models, groups: args.groups, all: args.all }
    }
}

/// Prints an error that ended the command and picks its exit code.
fn report(err: &anyhow::Error) -> ExitCode {
    if let Some(manifest) = err.downcast_ref::<ManifestError>() {
        for line in manifest.to_string().lines() {
            if line.starts_with("  ") {
                eprintln!("{line}");
            } else {
                eprintln!("error: {line}");
            }
        }
        return ExitCode::from(EXIT_USAGE);
    }
    eprintln!("error: {err:#}");
    if err.downcast_ref::<UsageError>().is_some() {
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::from(EXIT_MODEL_FAILED)
}
