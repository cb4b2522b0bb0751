//! The one settings bundle of the engine: how a run provides models, from the wire
//! (timeouts, retries, connections, rate) to the run (jobs, cache, mirrors, offline,
//! checks, link mode). Built once by `cli/` or the library and borrowed by every stage.

use std::time::Duration;

use crate::engine::workers::DEFAULT_JOBS;
use crate::source::Source;
use crate::store::cache::Cache;
use crate::store::fs::LinkMode;

/// Connections to one host at most, whatever `--jobs` × `--connections` asks for.
pub(crate) const DEFAULT_HOST_CEILING: usize = 16;
/// Seconds allowed for connecting and for any stall between reads.
pub(crate) const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Further attempts per source after a transient fault.
pub(crate) const DEFAULT_RETRIES: u32 = 3;
/// The first backoff, in milliseconds.
pub(crate) const DEFAULT_BACKOFF_MS: u64 = 500;

/// How models are provided: one bundle, built once from the command line (or the
/// library's `FetchOptions`) and borrowed by every stage.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Bounds connecting and any stall between reads, never a whole transfer.
    pub timeout: Duration,
    /// Further attempts per source after a transient fault.
    pub retries: u32,
    /// The first backoff; each later one doubles, up to [`crate::engine::retry::MAX_BACKOFF`].
    pub backoff: Duration,
    /// Read `HTTPS_PROXY` and friends; tests turn this off so loopback stays direct.
    pub proxy_from_env: bool,
    /// Connections one large file uses at once (1: one stream); `None` (`auto`, the
    /// default): as many as add speed ([`crate::engine::segments::Connections::Auto`]).
    pub connections: Option<usize>,
    /// Connections open to one host at most, over all files fetched at once.
    pub host_ceiling: usize,
    /// `--limit-rate`: bytes per second over everything downloaded at once.
    pub limit_rate: Option<u64>,
    /// Models provided at once.
    pub jobs: usize,
    /// Install without size and sha256 checks, and count any file present as present.
    pub skip_checks: bool,
    /// `None` with `--no-cache` (and always with `--skip-checks`, so unchecked bytes
    /// never enter a store named by content).
    pub cache: Option<Cache>,
    /// Mirrors tried before the models' own URLs.
    pub mirrors: Vec<Source>,
    /// Only local sources: the cache, `file://` URLs and directory mirrors.
    pub offline: bool,
    /// How files reach the checkout from the cache.
    pub link_mode: LinkMode,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECS),
            retries: DEFAULT_RETRIES,
            backoff: Duration::from_millis(DEFAULT_BACKOFF_MS),
            proxy_from_env: true,
            connections: None,
            host_ceiling: DEFAULT_HOST_CEILING,
            limit_rate: None,
            jobs: DEFAULT_JOBS,
            skip_checks: false,
            cache: None,
            mirrors: Vec::new(),
            offline: false,
            link_mode: LinkMode::Auto,
        }
    }
}
