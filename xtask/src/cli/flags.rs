//! Each subcommand's flags, and the one call that runs it (`cmd.run(defaults)`), as
//! rust-analyzer's xtask does: parsing and defaults here, the work in `commands`.

use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{Args, Subcommand};

use crate::cli::parse::{
    ConnectionCount, LINK_MODE_ENV, OFFLINE_ENV, cache_at, mirrors, parse_connections, parse_link_mode,
    parse_seconds, parse_secs, parse_switch, path_arg,
};
use crate::commands::{
    Context, Defaults, Location, absolute, add, clean, doctor, fetch, hook, init, mirror, run as run_command,
    status, verify,
};
use crate::engine::plan::{self, Selection, Trust};
use crate::engine::settings::{DEFAULT_BACKOFF_MS, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS, Settings};
use crate::engine::workers::DEFAULT_JOBS;
use crate::error::{Error, Result};
use crate::source::Kind;
use crate::store::fs::LinkMode;

#[derive(Args, Debug)]
pub(super) struct Fetch {
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
    /// Print one JSON document on stdout (schema in docs/json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    output: DownloadArgs,
    // Last: its help heading then holds these two alone.
    #[command(flatten)]
    old: OldScriptArgs,
}

/// Flags of `download_correct_models.py`, understood so its users' habits still work.
#[derive(Args, Debug)]
#[command(next_help_heading = "For users of download_correct_models.py")]
struct OldScriptArgs {
    /// Check the models without downloading anything: this is `cargo xtask models verify`,
    /// which runs instead (with --skip-checks: presence only).
    #[arg(long)]
    validate_only: bool,
    /// Accepted and ignored: this tool has no runtime dependencies to install.
    #[arg(long)]
    no_deps: bool,
}

#[derive(Args, Debug)]
pub(super) struct Verify {
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
    /// How many files to hash at once (1: one after another).
    #[arg(long, short, value_name = "N", default_value_t = DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Print one JSON document on stdout (schema in docs/json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(super) struct Status {
    #[command(flatten)]
    select: SelectArgs,
    /// Also look for partial downloads in this cache [default: as for fetch].
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
    cache_dir: Option<Utf8PathBuf>,
    /// Print one JSON document on stdout (schema in docs/json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(super) struct Doctor {
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
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
    cache_dir: Option<Utf8PathBuf>,
    /// URLs asked at once.
    #[arg(long, short, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// Give up on a URL that does not answer within this many seconds.
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = parse_seconds)]
    timeout: Duration,
    /// Print one JSON document on stdout (schema in docs/json.md).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(super) struct Clean {
    /// List what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also remove the model files the manifest lists (with --yes, which says so).
    #[arg(long)]
    all: bool,
    /// Yes, remove the models themselves too: what --all asks for.
    #[arg(long, requires = "all")]
    yes: bool,
    /// Also remove files this tool did not make (refused where a .git is inside).
    #[arg(long)]
    unknown: bool,
    /// Also prune the shared cache of entries this manifest does not pin.
    #[arg(long)]
    cache: bool,
    /// The cache to prune [default: $XTASK_MODELS_CACHE_DIR, else ~/.cache/xtask-models].
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
    cache_dir: Option<Utf8PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(super) struct Mirror {
    /// The mirror to fill: a directory, or s3://BUCKET/PREFIX in an S3-compatible store.
    #[arg(value_parser = path_arg)]
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
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
    cache_dir: Option<Utf8PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
pub(super) struct Add {
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
    #[command(flatten)]
    output: DownloadArgs,
}

#[derive(Args, Debug)]
pub(super) struct Run {
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
    #[command(flatten)]
    output: DownloadArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub(super) struct Init {
    /// The repository to adopt the tool into [default: the current folder].
    #[arg(value_parser = path_arg)]
    dir: Option<Utf8PathBuf>,
    /// A checkout of this tool to depend on [default: the one this program was built
    /// from, when it is still there].
    #[arg(long, value_name = "PATH", value_parser = path_arg, conflicts_with = "tool_git")]
    tool_path: Option<Utf8PathBuf>,
    /// This tool's git repository to depend on instead of a checkout.
    #[arg(long, value_name = "URL")]
    tool_git: Option<String>,
}

impl Init {
    pub(super) fn run(self) -> Result<u8> {
        let dir = absolute(self.dir.as_deref().unwrap_or(camino::Utf8Path::new(".")))?;
        let tool = match (self.tool_path, self.tool_git) {
            (Some(path), _) => init::ToolSource::Path(absolute(&path)?),
            (None, Some(url)) => init::ToolSource::Git(url),
            (None, None) => init::ToolSource::Path(built_from().ok_or_else(|| {
                Error::usage("say where the adopted workspace gets this tool: --tool-path PATH (a checkout) or --tool-git URL")
            })?),
        };
        let say = |line: &str| crate::ui::out::line(line);
        Ok(init::run(&dir, &tool, &say)?.exit_code())
    }
}

/// The checkout this program was built from, while it is still there.
fn built_from() -> Option<Utf8PathBuf> {
    let package = camino::Utf8Path::new(option_env!("CARGO_MANIFEST_DIR")?);
    let root = package.parent()?;
    root.join("xtask/Cargo.toml").is_file().then(|| root.to_owned())
}

#[derive(Args, Debug)]
pub(super) struct Hook {
    #[command(subcommand)]
    action: HookAction,
}

#[derive(Subcommand, Debug)]
enum HookAction {
    /// Write the hook (keeping any lines of an existing pre-commit hook).
    Install {
        /// How the hook runs this tool's `models` commands [default: as it was run now].
        #[arg(long, hide = true)]
        command: Option<String>,
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
    /// fetched over. `auto`: one stream, and more while they add speed (where each
    /// connection is capped: CDNs, university mirrors), up to the host's ceiling; one
    /// stream through a proxy (see docs/fetch.md for squid). A number fixes the count (1
    /// turns splitting off). One host gets 16 connections at most, over all `--jobs`.
    #[arg(long, value_name = "N|auto", default_value = "auto", value_parser = parse_connections)]
    connections: ConnectionCount,
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
            connections: self.connections.0,
            limit_rate: self.limit_rate,
            ..Settings::default()
        }
    }
}

#[derive(Args, Debug)]
struct JobsArgs {
    /// How many files to work on at once (1: one after another). Raise it for many small
    /// files behind a slow or distant server; large files use `--connections` instead.
    #[arg(long, short, value_name = "N", default_value_t = DEFAULT_JOBS as u16, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
}

#[derive(Args, Debug)]
struct SourceArgs {
    /// The shared download cache [default: $XTASK_MODELS_CACHE_DIR, else
    /// $XDG_CACHE_HOME/xtask-models, else ~/.cache/xtask-models].
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
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
    /// Select this model (repeatable): its name, its path, its file name, or a glob of
    /// names (`'sadtalker-*'`). Without --model/--group: every non-optional model.
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
    /// The manifest [default: $XTASK_MODELS_MANIFEST, else the nearest models.toml from
    /// here up].
    #[arg(long, value_name = "PATH", value_parser = path_arg)]
    manifest: Option<Utf8PathBuf>,
    /// Where model files live [default: checkpoints/ beside the manifest].
    #[arg(long, value_name = "DIR", value_parser = path_arg)]
    checkpoints_dir: Option<Utf8PathBuf>,
    /// Print only errors and the final summary.
    #[arg(long, short)]
    quiet: bool,
}

/// What a command that downloads can say about its downloads.
#[derive(Args, Debug)]
struct DownloadArgs {
    /// Append a timestamped record of every download attempt to FILE.
    #[arg(long, value_name = "FILE", value_parser = path_arg)]
    log_file: Option<Utf8PathBuf>,
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
            quiet: self.quiet,
            json,
            ..Location::default()
        }
    }

    /// The location of a command that downloads, with what it says about downloads.
    fn downloading(&self, json: bool, output: &DownloadArgs) -> Location {
        Location { log_file: output.log_file.clone(), verbose: output.verbose, ..self.location(json) }
    }
}

/// The settings of a fetch from the command line and the environment.
fn fetch_settings(
    cx: &Context,
    settings: Settings,
    skip_checks: bool,
    jobs: &JobsArgs,
    sources: SourceArgs,
) -> Result<Settings> {
    let mirrors = mirrors(sources.mirror)?;
    // Unchecked bytes must never enter a store named by their pinned hash.
    let cache =
        if sources.no_cache || skip_checks { None } else { cache_at(sources.cache_dir, &cx.reporter) };
    let (offline, link_mode) = (sources.offline, sources.link_mode);
    Ok(Settings { skip_checks, jobs: jobs.jobs.into(), cache, mirrors, offline, link_mode, ..settings })
}

impl From<SelectArgs> for Selection {
    fn from(args: SelectArgs) -> Selection {
        Selection { models: args.models, groups: args.groups, all: args.all }
    }
}

impl Fetch {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.downloading(self.json, &self.output))?;
        if self.old.no_deps {
            cx.reporter
                .note("note: --no-deps: this tool has no runtime dependencies to install; nothing to skip");
        }
        if self.old.validate_only {
            let presence = self.skip_checks;
            let verify = if presence { "verify --skip-checks" } else { "verify" };
            cx.reporter.note(&format!(
                "note: --validate-only is `{}`: checking, downloading nothing",
                cx.command(verify)
            ));
            let trust = if presence { Trust::Presence } else { Trust::Stamps };
            return Ok(verify::run(&cx, &self.select.into(), trust, self.jobs.jobs.into())?.exit_code());
        }
        let settings =
            fetch_settings(&cx, self.transfer.settings(), self.skip_checks, &self.jobs, self.sources)?;
        Ok(fetch::run(&cx, &self.select.into(), &settings)?.exit_code())
    }
}

impl Run {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        // The command's output is the run's output: the tool's own goes to stderr.
        let location = Location { stdout_taken: true, ..self.common.downloading(false, &self.output) };
        let cx = Context::open(defaults, &location)?;
        let settings = fetch_settings(&cx, self.transfer.settings(), false, &self.jobs, self.sources)?;
        run_command::run(&cx, &self.select.into(), &settings, &self.command)
    }
}

impl Verify {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.location(self.json))?;
        if self.manifest_only {
            let optional = cx.manifest.models.iter().filter(|m| m.optional).count();
            let count = cx.manifest.models.len();
            cx.say(&format!("{}: ok, {count} models ({optional} optional)", cx.manifest_path));
            return Ok(0);
        }
        let trust = match (self.skip_checks, self.full) {
            (true, _) => Trust::Presence,
            (false, true) => Trust::Hash,
            (false, false) => Trust::Stamps,
        };
        Ok(verify::run(&cx, &self.select.into(), trust, self.jobs.into())?.exit_code())
    }
}

impl Doctor {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.location(self.json))?;
        let mirrors = mirrors(self.mirror)?;
        let cache = cache_at(self.cache_dir, &cx.reporter);
        let options = doctor::Options {
            urls: self.urls,
            cache,
            mirrors,
            jobs: self.jobs.into(),
            timeout: self.timeout,
        };
        Ok(doctor::run(&cx, &self.select.into(), &options)?.exit_code())
    }
}

impl Status {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.location(self.json))?;
        let cache = cache_at(self.cache_dir, &cx.reporter);
        Ok(status::run(&cx, &self.select.into(), cache.as_ref())?.exit_code())
    }
}

impl Clean {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.location(false))?;
        // Deleting the models themselves takes a word that says so (a dry run only lists).
        if self.all && !self.yes && !self.dry_run {
            return Err(Error::usage(format!(
                "--all removes the model files themselves too (gigabytes to download again): \
                 add --yes to do that, or see what would go with `{}`",
                cx.command("clean --all --dry-run")
            )));
        }
        let cache = if self.cache { cache_at(self.cache_dir, &cx.reporter) } else { None };
        let options = clean::Options { dry_run: self.dry_run, all: self.all, unknown: self.unknown, cache };
        Ok(clean::run(&cx, &options)?.exit_code())
    }
}

impl Mirror {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let cx = Context::open(defaults, &self.common.location(false))?;
        let cache = cache_at(self.cache_dir, &cx.reporter);
        let (jobs, selection) = (self.jobs.jobs.into(), self.select.into());
        let dir = self.dir;
        if dir.as_str().contains("://") {
            let url = plan::parse_mirror(dir.as_str())?;
            if url.kind() != Kind::S3 {
                return Err(Error::Usage(format!(
                    "{url} cannot be written to: export to a directory or to s3://BUCKET/PREFIX"
                )));
            }
            let target = mirror::Target::Bucket { url: &url, force: self.force, limit_rate: self.limit_rate };
            return Ok(mirror::run(&cx, &selection, &target, cache.as_ref(), jobs)?.exit_code());
        }
        if self.force || self.limit_rate.is_some() {
            return Err(Error::Usage("--force and --limit-rate are for s3:// mirrors only".into()));
        }
        let dir = absolute(&dir)?;
        Ok(mirror::run(&cx, &selection, &mirror::Target::Folder(&dir), cache.as_ref(), jobs)?.exit_code())
    }
}

impl Add {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        let location = self.common.downloading(false, &self.output);
        // The first `add` of a project makes its manifest (only where none is; a dry run
        // or a failure removes it again, when it is still just what was written here).
        let manifest = absolute(location.manifest.as_deref().unwrap_or(&defaults.manifest))?;
        let made = !manifest.exists();
        let dry_run = self.dry_run;
        if made {
            crate::store::fs::write_atomically(&manifest, add::NEW_MANIFEST.as_bytes())
                .map_err(|e| Error::io("create the manifest", &manifest, e))?;
        }
        let result = self.add(defaults, &location);
        let pinned = matches!(result, Ok(0)) && !dry_run;
        if made && !pinned && std::fs::read_to_string(&manifest).is_ok_and(|t| t == add::NEW_MANIFEST) {
            let _ = std::fs::remove_file(&manifest);
        }
        result
    }

    fn add(self, defaults: &Defaults, location: &Location) -> Result<u8> {
        let cx = Context::open(defaults, location)?;
        let mut urls = vec![self.url];
        urls.extend(self.more_urls);
        let request = add::Request {
            urls,
            name: self.name,
            path: self.path,
            group: self.group,
            optional: self.optional,
            sha256: self.sha256,
            dry_run: self.dry_run,
            max_size: self.max_size,
        };
        Ok(add::run(&cx, request, &Settings { jobs: 1, ..self.transfer.settings() })?.exit_code())
    }
}

impl Hook {
    pub(super) fn run(self, defaults: &Defaults) -> Result<u8> {
        match self.action {
            HookAction::Install { command, common } => {
                let command = command.unwrap_or_else(crate::commands::invocation);
                Ok(hook::install(&Context::open(defaults, &common.location(false))?, &command)?.exit_code())
            }
            HookAction::Uninstall { common } => {
                Ok(hook::uninstall(&Context::open(defaults, &common.location(false))?)?.exit_code())
            }
        }
    }
}
