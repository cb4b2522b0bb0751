//! `models status`: one row per model, instantly.
//!
//! Status never hashes: it reads sizes, stamps and partial downloads, so it answers in
//! milliseconds however large the files. A file of the right size without a valid stamp
//! is `unverified` (run `verify` to hash it); a stamp whose sha256 differs from the pin
//! says `wrong-hash` without reading a byte.

use camino::Utf8Path;

use crate::commands::{Context, Report};
use crate::engine::check::{Glance, glance};
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection};
use crate::error::Result;
use crate::store::cache::Cache;
use crate::store::fs::Placed;
use crate::store::partial::Partial;
use crate::store::stamp::Stamps;
use crate::text::human_bytes;
use crate::ui::json::{Document, Record, StatusState, StatusSummary};
use crate::ui::out;

/// What status can tell about a model without reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    OkStamped,
    Unverified,
    Missing,
    Partial { bytes: u64 },
    WrongSize { actual: u64 },
    WrongHash,
    NotAFile,
}

impl State {
    fn label(&self) -> &'static str {
        match self {
            State::OkStamped => "ok-stamped",
            State::Unverified => "unverified",
            State::Missing => "missing",
            State::Partial { .. } => "partial",
            State::WrongSize { .. } => "wrong-size",
            State::WrongHash => "wrong-hash",
            State::NotAFile => "not-a-file",
        }
    }
}

pub(crate) fn run(cx: &Context, selection: &Selection, cache: Option<&Cache>) -> Result<Report> {
    let models = cx.select(selection)?;
    let stamps = Stamps::load(&cx.checkpoints);
    let rows: Vec<(&Model, State)> = models.iter().map(|&m| (m, state_of(cx, m, &stamps, cache))).collect();
    // How each verified file reached the checkout, from its stamp (a clone cannot be
    // told from a copy by looking at the file).
    let placed = |model: &Model, state: &State| {
        let stamp = stamps.get(model.path.as_str()).filter(|_| *state == State::OkStamped);
        stamp.and_then(|s| s.placed).map(Placed::as_str)
    };
    let needed = rows.iter().fold(0u64, |sum, (m, _)| sum.saturating_add(m.size));
    let present = rows
        .iter()
        .filter(|(_, s)| *s == State::OkStamped)
        .fold(0u64, |sum, (m, _)| sum.saturating_add(m.size));
    let ok = rows.iter().filter(|(_, s)| *s == State::OkStamped).count();
    let rows: Vec<(&Model, State, Option<&'static str>)> = rows
        .into_iter()
        .map(|(m, s)| {
            let p = placed(m, &s);
            (m, s, p)
        })
        .collect();
    if cx.json {
        out::json(&json_report(&rows, &cx.checkpoints, ok, present, needed));
    } else {
        print_table(cx, &rows, ok, present, needed);
    }
    // Status reports; it never fails a model.
    Ok(Report { ok: rows.len(), failed: 0 })
}

/// The metadata check verify makes too, read without hashing.
fn state_of(cx: &Context, model: &Model, stamps: &Stamps, cache: Option<&Cache>) -> State {
    let dest = plan::destination(&cx.checkpoints, model);
    match glance(model, &dest, Some(stamps)) {
        Glance::Missing | Glance::Unreadable { .. } => {
            partial_bytes(model, &dest, cache).map_or(State::Missing, |bytes| State::Partial { bytes })
        }
        Glance::NotAFile => State::NotAFile,
        Glance::WrongSize { actual } => State::WrongSize { actual },
        Glance::Stamped => State::OkStamped,
        Glance::StampedOther => State::WrongHash,
        Glance::Unproven => State::Unverified,
    }
}

/// Bytes already downloaded towards a missing model, beside it or in the cache.
fn partial_bytes(model: &Model, dest: &Utf8Path, cache: Option<&Cache>) -> Option<u64> {
    let beside = Partial::beside(dest, &model.sha256).path().to_owned();
    let in_cache = cache.map(|c| c.partial(&model.sha256).path().to_owned());
    [Some(beside), in_cache]
        .into_iter()
        .flatten()
        .filter_map(|p| std::fs::metadata(p).ok().map(|m| m.len()))
        .max()
        .filter(|&bytes| bytes > 0)
}

fn describe(model: &Model, state: &State) -> String {
    match state {
        State::Partial { bytes } => {
            let percent = (u128::from(*bytes) * 100).checked_div(u128::from(model.size)).unwrap_or(0);
            format!("partial {percent}%")
        }
        State::WrongSize { actual } => format!("wrong size ({actual} B)"),
        other => other.label().replace('-', " "),
    }
}

fn print_table(cx: &Context, rows: &[(&Model, State, Option<&str>)], ok: usize, present: u64, needed: u64) {
    let name_width = rows.iter().map(|(m, ..)| m.name.len()).max().unwrap_or(4).max(4);
    let group_width =
        rows.iter().map(|(m, ..)| m.group.as_deref().unwrap_or("-").len()).max().unwrap_or(5).max(5);
    cx.say(&format!(
        "{:<name_width$}  {:<group_width$}  {:>10}  {:<16}  {:<9}  PATH",
        "NAME", "GROUP", "SIZE", "STATE", "PLACED"
    ));
    for (model, state, placed) in rows {
        cx.say(&format!(
            "{:<name_width$}  {:<group_width$}  {:>10}  {:<16}  {:<9}  {}",
            model.name,
            model.group.as_deref().unwrap_or("-"),
            human_bytes(model.size),
            describe(model, state),
            placed.unwrap_or("-"),
            model.shown_path()
        ));
    }
    cx.say(&format!(
        "{ok} of {} ok; {} of {} present and verified",
        rows.len(),
        human_bytes(present),
        human_bytes(needed)
    ));
}

fn json_report<'a>(
    rows: &[(&'a Model, State, Option<&'static str>)],
    checkpoints: &Utf8Path,
    ok: usize,
    present: u64,
    needed: u64,
) -> Document<'a, StatusState, StatusSummary> {
    let models = rows
        .iter()
        .map(|(model, state, placed)| {
            let mut record =
                StatusState { state: state.label(), partial_bytes: None, actual_size: None, placed: *placed };
            match state {
                State::Partial { bytes } => record.partial_bytes = Some(*bytes),
                State::WrongSize { actual } => record.actual_size = Some(*actual),
                _ => {}
            }
            Record::new(model, &plan::destination(checkpoints, model), record)
        })
        .collect();
    let summary = StatusSummary { models: rows.len(), ok, bytes_present: present, bytes_needed: needed };
    Document { command: "status", models, summary }
}
