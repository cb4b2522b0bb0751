//! Values from the command line and the environment, parsed with the errors a user reads.

use std::time::Duration;

use camino::Utf8PathBuf;

use crate::commands::absolute;
use crate::engine::plan;
use crate::error::Result;
use crate::store::cache::Cache;
use crate::store::fs::LinkMode;
use crate::ui::progress::Reporter;

/// `--connections`: `auto` (`None`) or a count from 1 to 64.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConnectionCount(pub(super) Option<usize>);

pub(super) fn parse_connections(text: &str) -> Result<ConnectionCount, String> {
    if text == "auto" {
        return Ok(ConnectionCount(None));
    }
    match text.parse::<usize>() {
        Ok(n @ 1..=64) => Ok(ConnectionCount(Some(n))),
        _ => Err("expected `auto` or a number from 1 to 64".to_owned()),
    }
}

pub(super) fn parse_secs(text: &str) -> Result<f64, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        return Err("must be more than 0 and at most 86400 seconds".to_owned());
    }
    Ok(secs)
}

pub(super) fn parse_seconds(text: &str) -> Result<Duration, String> {
    parse_secs(text).map(Duration::from_secs_f64)
}

pub(super) use crate::commands::fetch::parse_switch;

/// A link mode; an empty variable counts as unset (auto).
pub(super) fn parse_link_mode(text: &str) -> Result<LinkMode, String> {
    if text.is_empty() {
        return Ok(LinkMode::Auto);
    }
    LinkMode::parse(text).ok_or_else(|| {
        format!("{text:?} is not a link mode (from --link-mode or {LINK_MODE_ENV}); use auto, clone, hardlink or copy")
    })
}

/// The link mode of every fetch on this machine, unless `--link-mode` says otherwise.
pub(super) const LINK_MODE_ENV: &str = "XTASK_MODELS_LINK_MODE";

/// Space- or comma-separated mirrors for every fetch on this machine.
pub(super) const MIRRORS_ENV: &str = "XTASK_MODELS_MIRRORS";
pub(super) use crate::commands::fetch::OFFLINE_ENV;

/// The `--mirror` values, then the environment's, each parsed (a bad one stops the run).
pub(super) fn mirrors(given: Vec<String>) -> Result<Vec<crate::source::Source>> {
    given.iter().cloned().chain(env_list(MIRRORS_ENV)).map(|m| plan::parse_mirror(&m)).collect()
}

fn env_list(name: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_default();
    value.split([' ', ',', '\n']).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// The cache at `dir`, else the default one; none (with a warning) when no home is known.
pub(super) fn cache_at(dir: Option<Utf8PathBuf>, reporter: &Reporter) -> Option<Cache> {
    let root = dir.or_else(Cache::default_root);
    if root.is_none() {
        reporter.warn(
            "no cache directory (none of XDG_CACHE_HOME, HOME, or on Windows LOCALAPPDATA and USERPROFILE, is set); downloading without the cache",
        );
    }
    let root = absolute(&root?).ok()?;
    Some(Cache { root })
}

/// A path from the command line. Windows allows no `"` in a name: one there is the end of
/// `"C:\my folder\"` (as PowerShell 5.1 completes a folder), whose `\"` the command line
/// rules read as an escaped quote, so the quote and every option after it became part of
/// the path. Said as it happened, with how to type it.
pub(super) fn path_arg(text: &str) -> Result<Utf8PathBuf, String> {
    if cfg!(windows) && text.contains('"') {
        let meant = text.split('"').next().unwrap_or(text).trim_end_matches('\\');
        return Err(format!(
            "the path holds a `\"`, so what followed it on the command line became part of the path: \
             on Windows a `\\` right before a closing quote escapes the quote. Type the path without \
             the trailing backslash (\"{meant}\") or with it doubled (\"{meant}\\\\\")"
        ));
    }
    Ok(Utf8PathBuf::from(text))
}
