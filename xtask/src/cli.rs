//! The command line: `cargo xtask models fetch|verify|clean`.
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
use crate::plan::Selection;
use crate::progress::Reporter;
use crate::transfer::Settings;
use crate::{clean, fetch, mirror, plan, project_root, verify};

#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    about = "Project tasks."
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Provision the pinned model checkpoints listed in models.toml.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
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

Exit codes: 0 all ok, 1 some model missing or wrong, 2 usage or manifest error.";

const CLEAN_EXAMPLES: &str = "\
Examples:
  cargo xtask models clean --dry-run             # list what would go
  cargo xtask models clean                       # remove partial and unlisted files
  cargo xtask models clean --all                 # remove the model files as well
  cargo xtask models clean --cache --dry-run     # list cache entries not pinned here

Exit codes: 0 done, 1 some file could not be removed, 2 usage or manifest error.";

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
        /// Seconds allowed for connecting and for any stall between reads (not a total limit).
        #[arg(long, value_name = "SECS", default_value = "60", value_parser = parse_seconds)]
        timeout: Duration,
        /// Further attempts per URL after a transient fault (timeouts, resets, 429, 5xx).
        #[arg(long, value_name = "N", default_value_t = 3)]
        retries: u32,
        /// First retry delay in milliseconds; doubles per retry (tests shorten it).
        #[arg(long, value_name = "MS", default_value_t = 500, hide = true)]
        backoff_ms: u64,
        /// Install without size and sha256 checks, and count any file present as present.
        #[arg(long)]
        skip_checks: bool,
        #[command(flatten)]
        jobs: JobsArgs,
        #[command(flatten)]
        sources: SourceArgs,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Hash every selected model and report ok, missing, wrong size or wrong hash.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify {
        #[command(flatten)]
        select: SelectArgs,
        /// Check presence only.
        #[arg(long)]
        skip_checks: bool,
        #[command(flatten)]
        jobs: JobsArgs,
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
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
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
    /// The options a follow-up command needs to act on the same files.
    location_args: String,
}

impl Context {
    fn new(common: &CommonArgs) -> anyhow::Result<Context> {
        let root = project_root();
        let default_manifest = root.join("models.toml");
        let default_checkpoints = root.join("checkpoints");
        let manifest_path = absolute(common.manifest.as_deref().unwrap_or(&default_manifest))?;
        let checkpoints = absolute(
            common
                .checkpoints_dir
                .as_deref()
                .unwrap_or(&default_checkpoints),
        )?;
        let manifest = Manifest::load(&manifest_path)?;
        let log = match &common.log_file {
            Some(path) => Some(AttemptLog::open(path).map_err(|e| {
                UsageError(format!(
                    "cannot open the log file {path}: {e}; choose another `--log-file`"
                ))
            })?),
            None => None,
        };
        let mut location_args = String::new();
        if manifest_path != default_manifest {
            location_args.push_str(&format!(
                " --manifest {}",
                shell_quote(manifest_path.as_str())
            ));
        }
        if checkpoints != default_checkpoints {
            location_args.push_str(&format!(
                " --checkpoints-dir {}",
                shell_quote(checkpoints.as_str())
            ));
        }
        Ok(Context {
            manifest,
            manifest_path,
            checkpoints,
            reporter: Reporter::for_stderr(common.quiet),
            log,
            location_args,
        })
    }

    /// A results line, on stdout.
    pub fn say(&self, line: &str) {
        println!("{line}");
    }

    /// The command that runs `subcommand` on one model of this same manifest and folder.
    pub fn command_for(&self, subcommand: &str, model: &str) -> String {
        format!(
            "cargo xtask models {subcommand} --model {model}{}",
            self.location_args
        )
    }
}

fn absolute(path: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    let abs = std::path::absolute(path)?;
    Ok(Utf8PathBuf::try_from(abs)?)
}

fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c))
    {
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
    let Task::Models { command } = cli.task;
    match command {
        ModelsCommand::Fetch {
            select,
            timeout,
            retries,
            backoff_ms,
            skip_checks,
            jobs,
            sources,
            common,
        } => {
            let cx = Context::new(&common)?;
            let settings = Settings {
                timeout,
                retries,
                backoff: Duration::from_millis(backoff_ms),
                skip_checks,
                ..Settings::default()
            };
            let mut mirrors = sources.mirror;
            mirrors.extend(env_list(MIRRORS_ENV));
            for mirror in &mirrors {
                plan::check_mirror(mirror)?;
            }
            // Unchecked bytes must never enter a store named by their pinned hash.
            let cache = if sources.no_cache || skip_checks {
                None
            } else {
                cache_at(sources.cache_dir, &cx.reporter)
            };
            let offline = sources.offline || env_flag(OFFLINE_ENV);
            let options = fetch::Options {
                settings,
                jobs: jobs.jobs.into(),
                cache,
                mirrors,
                offline,
            };
            fetch::run(&cx, &select.into(), options)
        }
        ModelsCommand::Verify {
            select,
            skip_checks,
            jobs,
            common,
        } => {
            let cx = Context::new(&common)?;
            verify::run(&cx, &select.into(), skip_checks, jobs.jobs.into())
        }
        ModelsCommand::Clean {
            dry_run,
            all,
            cache,
            cache_dir,
            common,
        } => {
            let cx = Context::new(&common)?;
            let cache = if cache {
                cache_at(cache_dir, &cx.reporter)
            } else {
                None
            };
            clean::run(
                &cx,
                &clean::Options {
                    dry_run,
                    all,
                    cache,
                },
            )
        }
        ModelsCommand::Mirror {
            dir,
            select,
            jobs,
            cache_dir,
            common,
        } => {
            let cx = Context::new(&common)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            let dir = absolute(&dir)?;
            mirror::run(&cx, &select.into(), &dir, cache.as_ref(), jobs.jobs.into())
        }
    }
}

/// Space- or comma-separated mirrors for every fetch on this machine.
pub const MIRRORS_ENV: &str = "XTASK_MODELS_MIRRORS";
/// `1` (or `true`, `yes`) makes every fetch offline.
pub const OFFLINE_ENV: &str = "XTASK_MODELS_OFFLINE";

fn env_list(name: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_default();
    value
        .split([' ', ',', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn env_flag(name: &str) -> bool {
    let value = std::env::var(name).unwrap_or_default().to_ascii_lowercase();
    matches!(value.as_str(), "1" | "true" | "yes" | "on")
}

/// The cache at `dir`, else the default one; none (with a warning) when no home is known.
fn cache_at(dir: Option<Utf8PathBuf>, reporter: &Reporter) -> Option<Cache> {
    let root = dir.or_else(Cache::default_root);
    if root.is_none() {
        reporter.warn("no cache directory (neither HOME nor XDG_CACHE_HOME is set); downloading without the cache");
    }
    let root = absolute(&root?).ok()?;
    Some(Cache { root })
}

impl From<SelectArgs> for Selection {
    fn from(args: SelectArgs) -> Selection {
        Selection {
            models: args.models,
            groups: args.groups,
            all: args.all,
        }
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
