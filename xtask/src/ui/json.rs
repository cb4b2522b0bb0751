//! `--json` output: one document on stdout, typed records written by serde_json.
//!
//! docs/json.md's schema is the contract: every command's document is `{"command",
//! "models": [...], "summary": {...}}`, every model record starts with `name`, `path`,
//! `file`, `group`, `size`, `sha256` and `state`, and the state decides the other fields. A test
//! parses each command's output into that shape.

use std::time::Duration;

use camino::Utf8Path;
use serde::Serialize;

use crate::engine::check::LocalState;
use crate::engine::manifest::Model;
use crate::error::{Facts, Fault, Tried};

/// One command's whole output.
#[derive(Serialize)]
pub(crate) struct Document<'a, S: Serialize, M: Serialize> {
    pub command: &'static str,
    pub models: Vec<Record<'a, S>>,
    pub summary: M,
}

/// One model, and what became of it.
#[derive(Serialize)]
pub(crate) struct Record<'a, S: Serialize> {
    pub name: &'a str,
    /// As the manifest writes it, with `/`: the same on every platform.
    pub path: &'a str,
    /// Where it is on this machine, with the platform's separators.
    pub file: String,
    pub group: Option<&'a str>,
    pub size: u64,
    pub sha256: &'a str,
    #[serde(flatten)]
    pub state: S,
}

impl<'a, S: Serialize> Record<'a, S> {
    pub(crate) fn new(model: &'a Model, file: &Utf8Path, state: S) -> Record<'a, S> {
        Record {
            name: &model.name,
            path: model.path.as_str(),
            file: file.to_string(),
            group: model.group.as_deref(),
            size: model.size,
            sha256: &model.sha256,
            state,
        }
    }
}

/// Seconds, to the millisecond.
pub(crate) fn seconds(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1000.0).round() / 1000.0
}

/// A fault as `--json` shows it: its class, what happened, and the hint.
#[derive(Serialize)]
pub(crate) struct FaultRecord {
    pub class: &'static str,
    pub message: String,
    pub hint: &'static str,
    pub status: Option<u16>,
    /// What was measured (sizes, the computed sha256, the first wrong byte), by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facts: Option<FactsRecord>,
}

/// [`Facts`] as `--json` writes them.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub(crate) enum FactsRecord {
    Offers { offered: u64, pinned: u64 },
    Ended { received: u64, expected: u64 },
    Hash { computed: String, pinned: String },
}

impl From<&Facts> for FactsRecord {
    fn from(facts: &Facts) -> FactsRecord {
        match facts.clone() {
            Facts::Offers { offered, pinned } => FactsRecord::Offers { offered, pinned },
            Facts::Ended { received, expected } => FactsRecord::Ended { received, expected },
            Facts::Hash { computed, pinned } => FactsRecord::Hash { computed, pinned },
        }
    }
}

impl From<&Fault> for FaultRecord {
    fn from(fault: &Fault) -> FaultRecord {
        FaultRecord {
            class: fault.class.as_str(),
            message: fault.detail.clone(),
            hint: fault.class.hint(),
            status: fault.status,
            facts: fault.facts.as_ref().map(FactsRecord::from),
        }
    }
}

/// One origin a failed model tried: a URL (redacted), or a local place.
#[derive(Serialize)]
pub(crate) struct TriedRecord {
    /// The URL, redacted; `null` for a local origin.
    pub url: Option<String>,
    /// `url`, `mirror`, `cache`, `disk`, `lock` or `offline`.
    pub origin: &'static str,
    /// The local path, for `cache`, `disk` and `lock`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub error: FaultRecord,
}

impl From<&Tried> for TriedRecord {
    fn from(tried: &Tried) -> TriedRecord {
        TriedRecord {
            url: tried.site.origin().map(|origin| origin.url().to_string()),
            origin: tried.site.kind(),
            path: tried.site.path().map(ToString::to_string),
            error: FaultRecord::from(&tried.fault),
        }
    }
}

/// A source the audit of a blended download found sending other bytes.
#[derive(Serialize)]
pub(crate) struct WrongSourceRecord {
    /// Redacted.
    pub url: Option<String>,
    /// `url` or `mirror`.
    pub origin: &'static str,
    pub first_wrong_byte: u64,
}

/// What `fetch` did with a model.
#[derive(Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub(crate) enum FetchState {
    Fetched {
        url: Option<String>,
        attempts: u32,
        /// The most connections open at once (1: one stream).
        connections: usize,
        bytes: u64,
        seconds: f64,
        /// Sources that sent other bytes than the pinned file's (the audit's verdict):
        /// their bytes were fetched again from another source. Absent when none did.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        wrong_sources: Vec<WrongSourceRecord>,
    },
    FromCache {
        placed_by: &'static str,
    },
    Present {
        /// How it was found present (`ok`, `ok-stamped`, `unverified`); absent when
        /// another process provided it meanwhile.
        #[serde(skip_serializing_if = "Option::is_none")]
        checked: Option<&'static str>,
    },
    Failed {
        error: Option<FaultRecord>,
        tried: Vec<TriedRecord>,
    },
}

#[derive(Serialize)]
pub(crate) struct FetchSummary {
    pub fetched: usize,
    pub from_cache: usize,
    pub present: usize,
    pub failed: usize,
    pub bytes: u64,
    pub seconds: f64,
}

/// What `verify` found.
#[derive(Serialize)]
pub(crate) struct VerifyState {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&LocalState> for VerifyState {
    fn from(state: &LocalState) -> VerifyState {
        let mut record =
            VerifyState { state: state.label(), actual_size: None, actual_sha256: None, error: None };
        match state {
            LocalState::WrongSize { actual } => record.actual_size = Some(*actual),
            LocalState::WrongHash { actual } => record.actual_sha256 = Some(actual.clone()),
            LocalState::Unreadable { error } => record.error = Some(error.clone()),
            _ => {}
        }
        record
    }
}

#[derive(Serialize)]
pub(crate) struct VerifySummary {
    pub verified: usize,
    pub ok: usize,
    pub failed: usize,
}

/// What `status` can tell without reading a file.
#[derive(Serialize)]
pub(crate) struct StatusState {
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    /// How a verified file reached the checkout from the cache: clone, hard-link, copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placed: Option<&'static str>,
}

#[derive(Serialize)]
pub(crate) struct StatusSummary {
    pub models: usize,
    pub ok: usize,
    pub bytes_present: u64,
    pub bytes_needed: u64,
}
