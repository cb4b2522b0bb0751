//! What every command works with: the checked manifest, the checkpoints folder, where
//! output goes, and the defaults of the workspace it runs in.

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::events::{Event, Wait};
use crate::engine::manifest::{Manifest, Model};
use crate::engine::plan::{self, Selection};
use crate::error::{EXIT_MODEL_FAILED, EXIT_OK, Error, IoContext, Result};
use crate::store::lock::{self, Held};
use crate::text::shell_quote;
use crate::ui::attempt_log::AttemptLog;
use crate::ui::out;
use crate::ui::progress::{Mode, Reporter, Transfer};

/// Where a workspace keeps its pins and files, and how its users run the tool.
#[derive(Clone, Debug)]
pub struct Defaults {
    /// The manifest when `--manifest` is not given.
    pub manifest: Utf8PathBuf,
    /// The checkpoints folder when `--checkpoints-dir` is not given.
    pub checkpoints: Utf8PathBuf,
}

/// Names the manifest for tools that run elsewhere (an IDE, a job runner, a hook in
/// another folder); `checkpoints/` is then beside it. `--manifest` still wins.
pub(crate) const MANIFEST_ENV: &str = "XTASK_MODELS_MANIFEST";

impl Defaults {
    /// Where this run's pins are, as cargo finds `Cargo.toml`: `$XTASK_MODELS_MANIFEST`,
    /// else the nearest `models.toml` from the current folder up, else the root of the
    /// cargo workspace this runs in (where `add` creates one); `checkpoints/` beside it.
    pub fn from_workspace() -> Defaults {
        if let Some(manifest) = std::env::var(MANIFEST_ENV).ok().filter(|v| !v.is_empty()) {
            let manifest = absolute(Utf8Path::new(&manifest)).unwrap_or_else(|_| Utf8PathBuf::from(manifest));
            let root = manifest.parent().map(Utf8Path::to_owned).unwrap_or_default();
            return Defaults { checkpoints: root.join("checkpoints"), manifest };
        }
        let here = std::env::current_dir().ok().and_then(|d| Utf8PathBuf::try_from(d).ok());
        let found =
            here.as_deref().and_then(|here| here.ancestors().find(|d| d.join("models.toml").is_file()));
        Defaults::at(&found.map_or_else(workspace_root, Utf8Path::to_owned))
    }

    /// `models.toml` and `checkpoints/` in `root`.
    pub fn at(root: &Utf8Path) -> Defaults {
        Defaults { manifest: root.join("models.toml"), checkpoints: root.join("checkpoints") }
    }
}

/// The root of the cargo workspace this runs in, found at run time: from the package
/// cargo ran (`CARGO_MANIFEST_DIR` is set by `cargo run` for the process too), else from
/// the current folder, the nearest ancestor whose Cargo.toml has a `[workspace]` table.
/// Nothing is baked in at compile time, so a checkout moved together with its `target/`
/// works on its own files.
pub(super) fn workspace_root() -> Utf8PathBuf {
    let start = std::env::var("CARGO_MANIFEST_DIR")
        .ok()
        .map(Utf8PathBuf::from)
        .or_else(|| std::env::current_dir().ok().and_then(|d| Utf8PathBuf::try_from(d).ok()))
        .unwrap_or_else(|| Utf8PathBuf::from("."));
    let is_workspace = |dir: &Utf8Path| {
        std::fs::read_to_string(dir.join("Cargo.toml"))
            .is_ok_and(|text| text.lines().any(|line| line.trim() == "[workspace]"))
    };
    start.ancestors().find(|dir| is_workspace(dir)).unwrap_or(&start).to_owned()
}

/// How this process was run, for commands it suggests: `cargo xtask models` through
/// cargo (the alias, or another workspace's xtask), else the program as it was typed
/// (its name when PATH found it, its path otherwise), quoted for the shell in use.
pub(crate) fn invocation() -> String {
    if STANDALONE.get().is_some() { program().to_owned() } else { format!("{} models", program()) }
}

/// Set by `model-pins`, whose subcommands are at the top: `model-pins fetch`.
static STANDALONE: std::sync::OnceLock<()> = std::sync::OnceLock::new();

/// This process is `model-pins`: suggestions have no `models` word.
pub(crate) fn set_standalone() {
    let _ = STANDALONE.set(());
}

/// The program part of [`invocation`]: `cargo xtask`, or this binary as it was typed.
pub(crate) fn program() -> &'static str {
    static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        if STANDALONE.get().is_none() && std::env::var_os("CARGO_MANIFEST_DIR").is_some() {
            return "cargo xtask".to_owned();
        }
        let typed = std::env::args().next().unwrap_or_else(|| "xtask".to_owned());
        let program = if typed.contains(['/', '\\']) { typed } else { program_name(&typed) };
        shell_quote(&program)
    })
}

/// A program's name as PATH finds it: `xtask.exe` is typed `xtask`.
fn program_name(typed: &str) -> String {
    typed.strip_suffix(".exe").unwrap_or(typed).to_owned()
}

/// The options every command takes that say which files it works on.
#[derive(Clone, Debug, Default)]
pub(crate) struct Location {
    pub manifest: Option<Utf8PathBuf>,
    pub checkpoints: Option<Utf8PathBuf>,
    pub log_file: Option<Utf8PathBuf>,
    pub quiet: bool,
    /// `--verbose`: every source given up on, and full manual-download blocks.
    pub verbose: bool,
    /// `--json`: stdout carries one JSON document, so result lines go to stderr.
    pub json: bool,
    /// Stdout belongs to someone else (the command `models run` starts): the tool's own
    /// lines all go to stderr.
    pub stdout_taken: bool,
    /// Print nothing at all, results included: a library call, whose caller gets events
    /// and values instead.
    pub silent: bool,
}

/// What every subcommand works with.
pub(crate) struct Context {
    pub manifest: Manifest,
    pub manifest_path: Utf8PathBuf,
    pub checkpoints: Utf8PathBuf,
    pub reporter: Reporter,
    pub log: Option<AttemptLog>,
    pub json: bool,
    pub verbose: bool,
    stdout_taken: bool,
    /// The options a follow-up command needs to act on the same files, unquoted:
    /// `--manifest` and `--checkpoints-dir` where they differ from the defaults.
    location: Vec<(&'static str, Utf8PathBuf)>,
}

impl Context {
    /// Reads and checks the manifest and opens the log, from `location` over `defaults`.
    pub(crate) fn open(defaults: &Defaults, location: &Location) -> Result<Context> {
        let manifest_path = absolute(location.manifest.as_deref().unwrap_or(&defaults.manifest))?;
        // A manifest named on the command line keeps its files beside it.
        let beside = location.manifest.as_ref().map(|_| match manifest_path.parent() {
            Some(dir) => dir.join("checkpoints"),
            None => defaults.checkpoints.clone(),
        });
        let checkpoints = match (&location.checkpoints, beside) {
            (Some(dir), _) => absolute(dir)?,
            (None, Some(beside)) => beside,
            (None, None) => absolute(&defaults.checkpoints)?,
        };
        let manifest = Manifest::load(&manifest_path).map_err(|mut e| {
            // Only an unreadable file comes without help: say how to name another.
            for problem in e.problems.iter_mut().filter(|p| p.help.is_empty()) {
                problem.help = "pass the right file with `--manifest PATH`".to_owned();
            }
            e
        })?;
        let log = match &location.log_file {
            Some(path) => Some(AttemptLog::open(path).map_err(|e| {
                Error::usage(format!("cannot open the log file {path}: {e}; choose another `--log-file`"))
            })?),
            None => None,
        };
        // What a suggested command needs to act on the same files from where this ran.
        let mut moved = Vec::new();
        if manifest_path != absolute(&defaults.manifest)? {
            moved.push(("--manifest", manifest_path.clone()));
        }
        let implied = manifest_path.parent().map(|dir| dir.join("checkpoints"));
        let implied_by_manifest = !moved.is_empty() && implied.as_ref() == Some(&checkpoints);
        if checkpoints != absolute(&defaults.checkpoints)? && !implied_by_manifest {
            moved.push(("--checkpoints-dir", checkpoints.clone()));
        }
        Ok(Context {
            manifest,
            manifest_path,
            checkpoints,
            reporter: match location.silent {
                true => Reporter::new(Mode::Silent),
                false => Reporter::for_stderr(location.quiet),
            },
            log,
            json: location.json,
            verbose: location.verbose,
            stdout_taken: location.stdout_taken,
            location: moved,
        })
    }

    /// A results line: on stdout, or on stderr when stdout carries `--json` or belongs to
    /// the command `models run` starts. A reader that went away (`| head`) is no reason
    /// to fail.
    pub(crate) fn say(&self, line: &str) {
        if self.reporter.is_silent() {
            return;
        }
        if self.json || self.stdout_taken {
            self.reporter.error(line);
        } else {
            out::line(line);
        }
    }

    /// ` --manifest X --checkpoints-dir Y` where these differ from the defaults.
    pub(crate) fn location_args(&self) -> String {
        self.location_args_quoted(shell_quote)
    }

    /// The same, each path quoted by `quote` (a `sh` script's words on Windows too).
    pub(crate) fn location_args_quoted(&self, quote: fn(&str) -> String) -> String {
        self.location.iter().map(|(flag, path)| format!(" {flag} {}", quote(path.as_str()))).collect()
    }

    /// The command that runs `subcommand` on one model of this same manifest and folder.
    /// The models `selection` names in this manifest; an unknown name is told with the
    /// command that lists them.
    pub(crate) fn select(&self, selection: &Selection) -> Result<Vec<&Model>> {
        plan::select(&self.manifest, selection).map_err(|e| match e {
            Error::Usage(m) if m.ends_with(plan::NO_SUCH_MODEL) => {
                Error::Usage(format!("{m}; `{}` lists every model", self.command("status --all")))
            }
            e => e,
        })
    }

    pub(crate) fn command_for(&self, subcommand: &str, model: &str) -> String {
        self.command(&format!("{subcommand} --model {model}"))
    }

    /// `words` as a command that works where this ran: the tool as it was invoked, the
    /// subcommand, and the options that name these same files.
    pub(crate) fn command(&self, words: &str) -> String {
        format!("{} {words}{}", invocation(), self.location_args())
    }

    /// Shares the checkpoints folder with other processes (see `lock::share_folder`); on
    /// a read-only folder, says once that nothing will be written there.
    pub(crate) fn share_checkpoints(&self) -> Result<Option<Held>> {
        let waiting = format!("waiting for `clean` to finish with {}", self.checkpoints);
        let held = lock::share_folder(&self.checkpoints, self.on_wait(&waiting))?;
        if held.is_none() {
            self.reporter.note(&format!(
                "note: {} is read-only: checked files are not stamped, so the next run hashes them again",
                self.checkpoints
            ));
        }
        Ok(held)
    }

    /// Says once that this process waits for another one holding a lock.
    pub(crate) fn on_wait<'a>(&'a self, message: &'a str) -> impl FnOnce() + 'a {
        move || self.reporter.note(message)
    }

    /// The listener that shows what happens to one model: its waits, its download's
    /// progress (a bar from the moment it starts), its retries, and each attempt in the
    /// `--log-file`.
    pub(crate) fn listener<'a>(&'a self, name: &'a str) -> impl FnMut(Event<'_>) + 'a {
        let mut progress: Option<Transfer<'a>> = None;
        move |event| {
            match event {
            Event::Waiting(Wait::Model) => {
                self.reporter.note(&format!("{name}: waiting for another fetch of {name}"))
            }
            Event::Waiting(Wait::Cache) => self
                .reporter
                .note(&format!("{name}: waiting for another process downloading it into the cache")),
            Event::PresentAfterWait => {
                self.reporter.note(&format!("{name}: present (another process fetched it)"))
            }
            Event::EntryRemoved { entry, reason } => self.reporter.warn(&format!(
                "{name}: the cache entry {entry} was corrupt ({reason}); removed it, fetching again"
            )),
            Event::EntryMovedAside { entry, kind, to } => self.reporter.warn(&format!(
                "{name}: the cache entry {entry} is a {kind}, not a file the tool sealed; moved it aside to {to}, fetching again"
            )),
            Event::Downloading { size } => progress = Some(self.reporter.transfer(name, size)),
            Event::Started { origin, position } => progress
                .get_or_insert_with(|| self.reporter.transfer(name, 0))
                .restart(position, &origin.to_string()),
            Event::Bytes(n) => {
                if let Some(progress) = progress.as_mut() {
                    progress.advance(n)
                }
            }
            Event::Attempted(attempted) => {
                if let Some(log) = &self.log {
                    log.record(name, attempted);
                }
            }
            Event::Retrying { origin, fault, wait } => self.reporter.warn(&format!(
                "{name}: {fault} from {}; retrying in {:.1}s",
                origin,
                wait.as_secs_f64()
            )),
            // Said as it happens only with --verbose: otherwise a failed model's sources
            // are summarised by cause at the end, and a model that arrived from a later
            // source gets one warning about the earlier one's permanent fault.
            Event::GaveUp { origin, fault } => {
                if self.verbose {
                    self.reporter.note(&format!("{name}: gave up on {}: {fault}", origin))
                }
            }
            Event::Range { origin, ranged } => {
                if let Some(log) = &self.log {
                    log.record_range(name, origin, &ranged);
                }
            }
            Event::Connections { story, proxied, .. } => {
                let hint = if proxied { " (--connections N splits there too)" } else { "" };
                let story = &format!("{story}{hint}");
                if let Some(log) = &self.log {
                    log.record_connections(name, story);
                }
                if self.verbose {
                    self.reporter.note(&format!("{name}: {story}"));
                }
            }
            Event::Differed { origin, at, first } => {
                let message = format!(
                    "{name}: {} sent bytes that differ from the pinned file (first at byte {at}); \
                     they were fetched again from {}. Check that source, or drop it from the manifest",
                    origin, first
                );
                if let Some(log) = &self.log {
                    log.record_differed(name, origin, at);
                }
                self.reporter.warn(&message);
            }
            Event::KeptDiffered { at, first } => self.reporter.warn(&format!(
                "{name}: bytes kept from an earlier, interrupted run differed from the pinned file \
                 (first at byte {at}); they were fetched again from {}",
                first
            )),
            Event::RecordDropped { why } => self.reporter.note(&format!(
                "note: {name}: the record of an earlier partial download was dropped ({why}); starting over"
            )),
            // The bar goes as the download ends; the model's line follows.
            Event::Finished => progress = None,
        }
        }
    }
}

/// An origin as a user reads it: the redacted URL, or the local place.
/// How a command over several models ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Models that ended as asked (present, verified, exported).
    pub ok: usize,
    /// Models that could not be fetched, verified or exported.
    pub failed: usize,
}

impl Report {
    /// 0 when nothing failed, else 1.
    pub fn exit_code(&self) -> u8 {
        if self.failed > 0 { EXIT_MODEL_FAILED } else { EXIT_OK }
    }
}

/// `path` made absolute against the current folder.
pub(crate) fn absolute(path: &Utf8Path) -> Result<Utf8PathBuf> {
    let abs = std::path::absolute(path).at("resolve", path)?;
    Utf8PathBuf::try_from(abs).map_err(|e| Error::usage(format!("{path} is not valid UTF-8: {e}")))
}
