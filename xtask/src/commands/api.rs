//! The library's calls for another workspace's xtask or a test: fetch or verify the
//! models of a manifest into a folder, without going through the command line.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

pub use crate::commands::Report;
use crate::commands::{Context, Defaults, Location, fetch as fetch_command, verify as verify_command};
use crate::engine::plan::{self, Selection, Trust};
use crate::engine::transfer::Settings;
use crate::error::Result;
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
    /// Print only errors and the summary.
    pub quiet: bool,
}

impl Default for FetchOptions {
    fn default() -> FetchOptions {
        let settings = Settings::default();
        FetchOptions {
            jobs: crate::engine::workers::DEFAULT_JOBS,
            cache_dir: Cache::default_root(),
            mirrors: Vec::new(),
            offline: false,
            timeout: settings.timeout,
            retries: settings.retries,
            quiet: false,
        }
    }
}

/// Makes every non-optional model of `manifest` present and verified in `checkpoints`.
pub fn fetch(manifest: &Utf8Path, checkpoints: &Utf8Path, options: &FetchOptions) -> Result<Report> {
    let cx = context(manifest, checkpoints, options.quiet)?;
    let settings = Settings { timeout: options.timeout, retries: options.retries, ..Settings::default() };
    let mirrors = options.mirrors.iter().map(|m| plan::parse_mirror(m)).collect::<Result<Vec<_>>>()?;
    let fetch_options = fetch_command::Options {
        settings,
        skip_checks: false,
        jobs: options.jobs.max(1),
        cache: options.cache_dir.clone().map(|root| Cache { root }),
        mirrors,
        offline: options.offline,
        link_mode: crate::store::fs::LinkMode::Auto,
    };
    fetch_command::run(&cx, &Selection::default(), fetch_options)
}

/// Checks every non-optional model of `manifest` in `checkpoints`: by stamps, or by
/// hashing everything with `full`.
pub fn verify(manifest: &Utf8Path, checkpoints: &Utf8Path, full: bool) -> Result<Report> {
    let cx = context(manifest, checkpoints, true)?;
    let trust = if full { Trust::Hash } else { Trust::Stamps };
    verify_command::run(&cx, &Selection::default(), trust, 4)
}

fn context(manifest: &Utf8Path, checkpoints: &Utf8Path, quiet: bool) -> Result<Context> {
    let location = Location {
        manifest: Some(manifest.to_owned()),
        checkpoints: Some(checkpoints.to_owned()),
        quiet,
        ..Location::default()
    };
    Context::open(&Defaults::at(manifest.parent().unwrap_or(Utf8Path::new("."))), &location)
}
