//! The library's calls for another workspace's xtask or a test: fetch or verify the
//! models of a manifest into a folder, without going through the command line. They
//! print nothing: [`fetch`] hands each model's [`Event`]s to a callback, as hf-hub's
//! `Progress` and rustup's download events do, and returns one [`ModelResult`] per model.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

pub use crate::commands::Report;
use crate::commands::fetch::{Provision, Watch};
use crate::commands::{Context, Defaults, Location, fetch as fetch_command, verify as verify_command};
use crate::engine::events::Listener;
pub use crate::engine::events::{Attempted, Event, Ranged, Wait};
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection, Trust};
use crate::engine::provide::{Outcome, Provided};
use crate::engine::settings::Settings;
use crate::error::Result;
use crate::error::{Origin, Tried};
use crate::store::cache::Cache;

/// How [`fetch`] behaves; the defaults are the command line's.
#[derive(Clone, Debug)]
pub struct FetchOptions {
    /// Models provided at once.
    pub jobs: usize,
    /// The shared cache; `None` downloads straight into the folder.
    pub cache_dir: Option<Utf8PathBuf>,
    /// Mirrors tried before the models' own URLs.
    pub mirrors: Vec<String>,
    /// Make no network request.
    pub offline: bool,
    /// Allowed for connecting and for any stall between reads.
    pub timeout: Duration,
    /// Further attempts per URL after a transient fault.
    pub retries: u32,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        let settings = Settings::default();
        FetchOptions {
            jobs: settings.jobs,
            cache_dir: Cache::default_root(),
            mirrors: Vec::new(),
            offline: false,
            timeout: settings.timeout,
            retries: settings.retries,
        }
    }
}

/// How one model of a [`fetch`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct ModelResult {
    /// The model's name in the manifest.
    pub name: String,
    /// Where its file is (or would have been).
    pub path: Utf8PathBuf,
    pub ended: Ended,
}

/// The end of one model's fetch.
#[derive(Debug)]
#[non_exhaustive]
pub enum Ended {
    /// Already present and verified, or provided meanwhile by another process.
    Present,
    /// Placed from the shared cache, with no request.
    FromCache,
    /// Downloaded and checked; `bytes` came over the network from `origin` (the last of
    /// its sources tried).
    Downloaded { origin: Origin, bytes: u64 },
    /// Not provided: the last fault of each origin tried.
    Failed(Vec<Tried>),
}

impl ModelResult {
    /// Whether the model is now present and verified.
    pub fn is_ok(&self) -> bool {
        !matches!(self.ended, Ended::Failed(_))
    }
}

/// Makes every non-optional model of `manifest` present and verified in `checkpoints`,
/// printing nothing: `on_event` hears each model's events as they happen (on the worker
/// threads, hence `Sync`), and the result says how each model ended, in manifest order.
/// An `Err` is a manifest or folder that cannot be used; a model that could not be
/// fetched is an [`Ended::Failed`].
pub fn fetch(
    manifest: &Utf8Path,
    checkpoints: &Utf8Path,
    options: &FetchOptions,
    on_event: &(dyn Fn(&Model, &Event<'_>) + Sync),
) -> Result<Vec<ModelResult>> {
    let cx = context(manifest, checkpoints)?;
    let settings = Settings {
        timeout: options.timeout,
        retries: options.retries,
        jobs: options.jobs.max(1),
        cache: options.cache_dir.clone().map(|root| Cache { root }),
        mirrors: options.mirrors.iter().map(|m| plan::parse_mirror(m)).collect::<Result<Vec<_>>>()?,
        offline: options.offline,
        ..Settings::default()
    };
    let models = cx.select(&Selection::default())?;
    let Provision { present, provided, .. } =
        fetch_command::provision(&cx, &models, &settings, &Callback(on_event))?;
    let mut results: Vec<ModelResult> = present
        .iter()
        .map(|step| ModelResult {
            name: step.model.name.clone(),
            path: step.dest.clone(),
            ended: Ended::Present,
        })
        .chain(provided.into_iter().map(ModelResult::from))
        .collect();
    let order = |name: &str| models.iter().position(|m| m.name == name);
    results.sort_by_key(|result| order(&result.name));
    Ok(results)
}

impl From<Provided<'_>> for ModelResult {
    fn from(provided: Provided<'_>) -> ModelResult {
        let ended = match provided.outcome {
            Outcome::Present => Ended::Present,
            Outcome::FromCache(_) => Ended::FromCache,
            Outcome::Downloaded(fetched) => {
                Ended::Downloaded { origin: fetched.origin, bytes: fetched.bytes }
            }
            Outcome::Failed(tried) => Ended::Failed(tried),
        };
        ModelResult { name: provided.model.name.clone(), path: provided.dest, ended }
    }
}

/// A library caller's callback, heard as the command line hears a fetch.
struct Callback<'f>(&'f (dyn Fn(&Model, &Event<'_>) + Sync));

impl Watch for Callback<'_> {
    fn listener<'w>(&'w self, model: &'w Model) -> Box<Listener<'w>> {
        Box::new(move |event| (self.0)(model, &event))
    }

    fn ended(&self, _: &Provided<'_>) {}
}

/// Checks every non-optional model of `manifest` in `checkpoints`: by stamps, or by
/// hashing everything with `full`.
pub fn verify(manifest: &Utf8Path, checkpoints: &Utf8Path, full: bool) -> Result<Report> {
    let cx = context(manifest, checkpoints)?;
    let trust = if full { Trust::Hash } else { Trust::Stamps };
    verify_command::run(&cx, &Selection::default(), trust, 4)
}

/// A context that prints nothing, for `manifest` and `checkpoints`.
fn context(manifest: &Utf8Path, checkpoints: &Utf8Path) -> Result<Context> {
    let location = Location {
        manifest: Some(manifest.to_owned()),
        checkpoints: Some(checkpoints.to_owned()),
        silent: true,
        ..Location::default()
    };
    Context::open(&Defaults::at(manifest.parent().unwrap_or(Utf8Path::new("."))), &location)
}
