//! What a download is asked to do (a [`Job`] with its [`Expect`]ation), and what it
//! comes to ([`Fetched`] or [`Failed`]).

use std::time::Duration;

pub(crate) use crate::engine::events::Listener;
use crate::engine::manifest::Model;
use crate::error::{Fault, Origin, Site, Tried};
use crate::store::partial::Partial;

/// What the bytes must turn out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expect<'m> {
    /// The pin: exactly this size and sha256, or nothing is installed.
    Pinned { size: u64, sha256: &'m str },
    /// `--skip-checks`: whatever arrives is installed unchecked, cut at the pinned size.
    Unchecked { size: u64 },
    /// `add`: size and sha256 are learned from the bytes, up to `max_size` of them.
    Unknown { max_size: u64 },
}

impl<'m> Expect<'m> {
    /// The pin of `model`, or no checks with `skip_checks`.
    pub(crate) fn of(model: &'m Model, skip_checks: bool) -> Expect<'m> {
        if skip_checks {
            Expect::Unchecked { size: model.size }
        } else {
            Expect::Pinned { size: model.size, sha256: &model.sha256 }
        }
    }

    /// The size the bytes will have, when known before they arrive.
    pub(crate) fn size(&self) -> Option<u64> {
        match *self {
            Expect::Pinned { size, .. } | Expect::Unchecked { size } => Some(size),
            Expect::Unknown { .. } => None,
        }
    }

    /// The most bytes a body may bring before it is refused as too large (an unchecked
    /// download is cut at its size instead, in the sink).
    pub(super) fn ceiling(&self) -> Option<u64> {
        match *self {
            Expect::Pinned { size, .. } => Some(size),
            Expect::Unchecked { .. } => None,
            Expect::Unknown { max_size } => Some(max_size),
        }
    }

    pub(super) fn pinned(&self) -> Option<(u64, &'m str)> {
        match *self {
            Expect::Pinned { size, sha256 } => Some((size, sha256)),
            _ => None,
        }
    }
}

/// One download: the sources to try, and where bytes collect.
#[derive(Clone, Debug)]
pub(crate) struct Job<'m> {
    pub expect: Expect<'m>,
    /// Mirrors and URLs, in the order to try.
    pub sources: Vec<Origin>,
    pub partial: Partial,
}

/// A model that arrived and matched its pin: the checked partial, open, for the caller
/// to place ([`crate::engine::install`]).
#[derive(Debug)]
pub(crate) struct Fetched {
    pub origin: Origin,
    /// The partial whose bytes were checked, open: what is placed is what was hashed.
    pub file: std::fs::File,
    /// The sha256 of the bytes (the pin's, unless checks were skipped).
    pub sha256: String,
    pub size: u64,
    /// Bytes received over all attempts (a resumed prefix is not counted again).
    pub bytes: u64,
    pub attempts: u32,
    /// The most connections the file had open at once (1: one stream).
    pub connections: usize,
    pub elapsed: Duration,
    /// The sources tried before the one that served the file, with their last fault.
    pub passed: Vec<Tried>,
    /// Sources that sent bytes differing from the pinned file's (found by the audit of a
    /// blended download, which fetched those bytes again from another source).
    pub wrong_sources: Vec<WrongSource>,
}

/// A source that sent bytes differing from the pinned file's, first at `first_wrong_byte`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WrongSource {
    pub origin: Origin,
    pub first_wrong_byte: u64,
}

/// Every source of a model failed; the last fault of each source tried, in order.
#[derive(Debug)]
pub(crate) struct Failed {
    pub tried: Vec<Tried>,
}

impl Failed {
    pub(crate) fn at(site: Site, fault: Fault) -> Failed {
        Failed { tried: vec![Tried { site, fault }] }
    }
}
