//! The command line: `cargo xtask models fetch|verify|status|clean|mirror|add|run|hook`,
//! and `cargo xtask bench`.
//!
//! Parsing, defaults and exit codes live here; each subcommand's work lives in its own
//! module under `commands`. Relative paths on the command line are taken from the
//! current directory, and the defaults from the workspace root, so the tool works from
//! any subdirectory.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand};

pub use crate::commands::Defaults;
use crate::commands::{
    Context, Location, absolute, add, clean, doctor, fetch, hook, mirror, run as run_command, status, verify,
};
use crate::engine::plan::{self, Selection, Trust};
use crate::engine::transfer::{
    DEFAULT_BACKOFF_MS, DEFAULT_CONNECTIONS, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS, Settings,
};
use crate::error::{EXIT_MODEL_FAILED, EXIT_USAGE, Error, Result};
use crate::store::fs::LinkMode;
use crate::ui::out;

mod help;
mod parse;

use help::{
    ADD_EXAMPLES, CLEAN_EXAMPLES, DOCTOR_EXAMPLES, FETCH_EXAMPLES, HOOK_EXAMPLES, MIRROR_EXAMPLES,
    RUN_EXAMPLES, STATUS_EXAMPLES, VERIFY_EXAMPLES,
};
use parse::{
    LINK_MODE_ENV, OFFLINE_ENV, cache_at, mirrors, parse_link_mode, parse_seconds, parse_secs, parse_switch,
};

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
    /// What stands between this machine and the models: proxies, certificates, free
    /// space, the cache, partial downloads, locks, the hook; with --urls, whether every URL
    /// still serves its pin (asked without downloading).
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor {
        #[command(flatten)]
        select: SelectArgs,
        /// Ask every URL of the selection (and each mirror) whether it still serves its
        /// pin: HEAD, or a one-byte range where HEAD is refused. Nothing is downloaded.
        #[arg(long)]
        urls: bool,
        /// A mirror to check too (repeatable), as `fetch --mirror` takes it.
        #[arg(long, value_name = "DIR|URL")]
        mirror: Vec<String>,
        /// The cache to look at [default: as for fetch].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<Utf8PathBuf>,
        /// URLs asked at once.
        #[arg(long, short, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
        jobs: u16,
        /// Give up on a URL that does not answer within this many seconds.
        #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
        timeout: Duration,
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
        /// Also remove files this tool did not make (refused where a .git is inside).
        #[arg(long)]
        unknown: bool,
        /// Also prune the shared cache of entries this manifest does not pin.
        #[arg(long)]
        cache: bool,
        /// The cache to prune [default: $XTASK_MODELS_CACHE_DIR, else ~/.cache/xtask-models].
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<Utf8PathBuf>,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// Export verified models into DIR/sha256/<hex> (a folder or s3://BUCKET/PREFIX), the
    /// layout `--mirror` reads.
    #[command(after_help = MIRROR_EXAMPLES)]
    Mirror {
        /// The mirror to fill: a directory, or s3://BUCKET/PREFIX in an S3-compatible store.
        dir: Utf8PathBuf,
        /// Upload to the bucket even what is there already with the right size.
        #[arg(long)]
        force: bool,
        /// Cap the total upload rate to a bucket: 500K, 10M (bytes per second; K = 1024).
        #[arg(long, value_name = "RATE", value_parser = crate::engine::retry::parse_rate)]
        limit_rate: Option<u64>,
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
        /// Print the entry instead of writing it to models.toml; the file is not kept.
        #[arg(long)]
        dry_run: bool,
        /// Stop a download that grows past this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = add::DEFAULT_MAX_SIZE)]
        max_size: u64,
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
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_SECS as f64, value_parser = parse_secs)]
    timeout: f64,
    /// Further attempts per URL after a transient fault (timeouts, resets, 429, 5xx).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRIES, value_parser = clap::value_parser!(u32).range(0..=100))]
    retries: u32,
    /// First retry delay in milliseconds; doubles per retry (tests shorten it).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_BACKOFF_MS, hide = true)]
    backoff_ms: u64,
    /// Connections one large file (32 MiB or more, from a server that takes ranges) is
    /// fetched over. Raise it where each connection is capped (CDNs, university
    /// mirrors); 1 turns splitting off. One host gets 16 connections at most, over all
    /// `--jobs`.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONNECTIONS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// Cap the total download rate, over all files and connections: 500K, 10M, 1.5M
    /// (bytes per second; K = 1024). Be polite on a shared link.
    #[arg(long, value_name = "RATE", value_parser = crate::engine::retry::parse_rate)]
    limit_rate: Option<u64>,
}

impl TransferArgs {
    fn settings(&self) -> Settings {
        Settings {
            timeout: Duration::from_secs_f64(self.timeout),
            retries: self.retries,
            backoff: Duration::from_millis(self.backoff_ms),
            connections: self.connections.into(),
            limit_rate: self.limit_rate,
            ..Settings::default()
        }
    }
}

#[derive(Args, Debug)]
struct JobsArgs {
    /// How many files to work on at once (1: one after another). Raise it for many small
    /// files behind a slow or distant server; large files use `--connections` instead.
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
    #[arg(long, env = OFFLINE_ENV, num_args = 0, default_missing_value = "1", value_parser = parse_switch)]
    offline: bool,
    /// How files reach the checkout from the cache. clone: a copy-on-write reflink (btrfs,
    /// XFS), its own file; hardlink: the cache's own inode, so a write through one
    /// checkout changes the cache and every other checkout; copy: a full copy. auto:
    /// clone, else hardlink, else copy. Where the filesystem cannot do what is asked, a copy.
    #[arg(long, value_name = "MODE", env = LINK_MODE_ENV, default_value = "auto", value_parser = parse_link_mode)]
    link_mode: LinkMode,
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
    /// Print every source given up on as it happens, and each failed model's full
    /// manual-download instructions (a run with several failures otherwise groups them
    /// by cause, one line per model).
    #[arg(long, short, conflicts_with = "quiet")]
    verbose: bool,
}

impl CommonArgs {
    fn location(&self, json: bool) -> Location {
        Location {
            manifest: self.manifest.clone(),
            checkpoints: self.checkpoints_dir.clone(),
            log_file: self.log_file.clone(),
            quiet: self.quiet,
            verbose: self.verbose,
            json,
            stdout_taken: false,
        }
    }
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

/// Runs the command line in `args` (the program name first) with `defaults` for the
/// manifest and the checkpoints folder: what another workspace's xtask calls.
pub fn run_models<I, T>(args: I, defaults: &Defaults) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let code = match dispatch(cli, defaults) {
        Ok(code) => ExitCode::from(code),
        Err(err) => report(&err),
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

fn dispatch(cli: Cli, defaults: &Defaults) -> Result<u8> {
    let command = match cli.task {
        Task::Models { command } => command,
        Task::Bench { args } => return bench(&args),
    };
    let open = |common: &CommonArgs, json: bool| Context::open(defaults, &common.location(json));
    match command {
        ModelsCommand::Fetch { select, transfer, skip_checks, jobs, sources, json, common } => {
            let cx = open(&common, json)?;
            let options = fetch_options(&cx, transfer.settings(), skip_checks, &jobs, sources)?;
            Ok(fetch::run(&cx, &select.into(), options)?.exit_code())
        }
        ModelsCommand::Run { select, transfer, jobs, sources, common, command } => {
            // The command's output is the run's output: the tool's own goes to stderr.
            let location = Location { stdout_taken: true, ..common.location(false) };
            let cx = Context::open(defaults, &location)?;
            let options = fetch_options(&cx, transfer.settings(), false, &jobs, sources)?;
            run_command::run(&cx, &select.into(), options, &command)
        }
        ModelsCommand::Verify { select, skip_checks, full, manifest_only, jobs, json, common } => {
            let cx = open(&common, json)?;
            if manifest_only {
                let optional = cx.manifest.models.iter().filter(|m| m.optional).count();
                let count = cx.manifest.models.len();
                cx.say(&format!("{}: ok, {count} models ({optional} optional)", cx.manifest_path));
                return Ok(0);
            }
            let trust = match (skip_checks, full) {
                (true, _) => Trust::Presence,
                (false, true) => Trust::Hash,
                (false, false) => Trust::Stamps,
            };
            Ok(verify::run(&cx, &select.into(), trust, jobs.jobs.into())?.exit_code())
        }
        ModelsCommand::Doctor { select, urls, mirror, cache_dir, jobs, timeout, json, common } => {
            let cx = open(&common, json)?;
            let mirrors = mirrors(mirror)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            let options = doctor::Options { urls, cache, mirrors, jobs: jobs.into(), timeout };
            Ok(doctor::run(&cx, &select.into(), &options)?.exit_code())
        }
        ModelsCommand::Status { select, cache_dir, json, common } => {
            let cx = open(&common, json)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            Ok(status::run(&cx, &select.into(), cache.as_ref())?.exit_code())
        }
        ModelsCommand::Clean { dry_run, all, unknown, cache, cache_dir, common } => {
            let cx = open(&common, false)?;
            let cache = if cache { cache_at(cache_dir, &cx.reporter) } else { None };
            Ok(clean::run(&cx, &clean::Options { dry_run, all, unknown, cache })?.exit_code())
        }
        ModelsCommand::Mirror { dir, force, limit_rate, select, jobs, cache_dir, common } => {
            let cx = open(&common, false)?;
            let cache = cache_at(cache_dir, &cx.reporter);
            let jobs = jobs.jobs.into();
            if dir.as_str().contains("://") {
                let url = plan::parse_mirror(dir.as_str())?;
                if url.kind() != crate::source::Kind::S3 {
                    return Err(Error::Usage(format!(
                        "{url} cannot be written to: export to a directory or to s3://BUCKET/PREFIX"
                    )));
                }
                let target = mirror::Target::Bucket { url: &url, force, limit_rate };
                return Ok(mirror::run(&cx, &select.into(), &target, cache.as_ref(), jobs)?.exit_code());
            }
            if force || limit_rate.is_some() {
                return Err(Error::Usage("--force and --limit-rate are for s3:// mirrors only".into()));
            }
            let dir = absolute(&dir)?;
            Ok(mirror::run(&cx, &select.into(), &mirror::Target::Folder(&dir), cache.as_ref(), jobs)?
                .exit_code())
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
            max_size,
            transfer,
            common,
        } => {
            let cx = open(&common, false)?;
            let mut urls = vec![url];
            urls.extend(more_urls);
            let request = add::Request { urls, name, path, group, optional, sha256, dry_run, max_size };
            Ok(add::run(&cx, request, transfer.settings())?.exit_code())
        }
        ModelsCommand::Hook { action: HookAction::Install { command, common } } => {
            Ok(hook::install(&open(&common, false)?, &command)?.exit_code())
        }
        ModelsCommand::Hook { action: HookAction::Uninstall { common } } => {
            Ok(hook::uninstall(&open(&common, false)?)?.exit_code())
        }
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

/// Fetch options from the command line and the environment.
fn fetch_options(
    cx: &Context,
    settings: Settings,
    skip_checks: bool,
    jobs: &JobsArgs,
    sources: SourceArgs,
) -> Result<fetch::Options> {
    let mirrors = mirrors(sources.mirror)?;
    // Unchecked bytes must never enter a store named by their pinned hash.
    let cache =
        if sources.no_cache || skip_checks { None } else { cache_at(sources.cache_dir, &cx.reporter) };
    let (offline, link_mode) = (sources.offline, sources.link_mode);
    Ok(fetch::Options { settings, skip_checks, jobs: jobs.jobs.into(), cache, mirrors, offline, link_mode })
}

impl From<SelectArgs> for Selection {
    fn from(args: SelectArgs) -> Selection {
        Selection { models: args.models, groups: args.groups, all: args.all }
    }
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
