//! `models status`: one row per model, instantly.
//!
//! Status never hashes: it reads sizes, stamps and partial downloads, so it answers in
//! milliseconds however large the files. A file of the right size without a valid stamp
//! is `unverified` (run `verify` to hash it); a stamp whose sha256 differs from the pin
//! says `wrong-hash` without reading a byte.

use std::process::ExitCode;

use camino::Utf8Path;

use crate::cache::Cache;
use crate::cli::Context;
use crate::install;
use crate::json::{self, Json};
use crate::manifest::Model;
use crate::plan::{self, Selection};
use crate::progress::human_bytes;
use crate::stamp::{Fingerprint, Stamps};

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

pub fn run(
    cx: &Context,
    selection: &Selection,
    cache: Option<&Cache>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let models = plan::select(&cx.manifest, selection)?;
    let stamps = Stamps::load(&cx.checkpoints);
    let rows: Vec<(&Model, State)> = models.iter().map(|&m| (m, state_of(cx, m, &stamps, cache))).collect();
    let needed: u64 = rows.iter().map(|(m, _)| m.size).sum();
    let present: u64 = rows.iter().filter(|(_, s)| *s == State::OkStamped).map(|(m, _)| m.size).sum();
    let ok = rows.iter().filter(|(_, s)| *s == State::OkStamped).count();
    if json {
        print_json(&rows, ok, present, needed);
    } else {
        print_table(cx, &rows, ok, present, needed);
    }
    Ok(ExitCode::SUCCESS)
}

fn state_of(cx: &Context, model: &Model, stamps: &Stamps, cache: Option<&Cache>) -> State {
    let dest = plan::destination(&cx.checkpoints, model);
    let Ok(meta) = std::fs::metadata(&dest) else {
        return partial_bytes(model, &dest, cache).map_or(State::Missing, |bytes| State::Partial { bytes });
    };
    if !meta.is_file() {
        return State::NotAFile;
    }
    if meta.len() != model.size {
        return State::WrongSize { actual: meta.len() };
    }
    match stamps.get(model.path.as_str()) {
        Some(stamp) if stamp.fingerprint == Fingerprint::of(&meta) && stamp.sha256 == model.sha256 => {
            State::OkStamped
        }
        Some(stamp) if stamp.fingerprint == Fingerprint::of(&meta) => State::WrongHash,
        _ => State::Unverified,
    }
}

/// Bytes already downloaded towards a missing model, beside it or in the cache.
fn partial_bytes(model: &Model, dest: &Utf8Path, cache: Option<&Cache>) -> Option<u64> {
    let beside = install::partial_path(dest, model);
    let in_cache = cache.map(|c| c.partial(&model.sha256));
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
            let percent = (bytes * 100).checked_div(model.size).unwrap_or(0);
            format!("partial {percent}%")
        }
        State::WrongSize { actual } => format!("wrong size ({actual} B)"),
        other => other.label().replace('-', " "),
    }
}

fn print_table(cx: &Context, rows: &[(&Model, State)], ok: usize, present: u64, needed: u64) {
    let name_width = rows.iter().map(|(m, _)| m.name.len()).max().unwrap_or(4).max(4);
    let group_width =
        rows.iter().map(|(m, _)| m.group.as_deref().unwrap_or("-").len()).max().unwrap_or(5).max(5);
    cx.say(&format!(
        "{:<name_width$}  {:<group_width$}  {:>10}  {:<16}  PATH",
        "NAME", "GROUP", "SIZE", "STATE"
    ));
    for (model, state) in rows {
        cx.say(&format!(
            "{:<name_width$}  {:<group_width$}  {:>10}  {:<16}  {}",
            model.name,
            model.group.as_deref().unwrap_or("-"),
            human_bytes(model.size),
            describe(model, state),
            model.path
        ));
    }
    cx.say(&format!(
        "{ok} of {} ok; {} of {} present and verified",
        rows.len(),
        human_bytes(present),
        human_bytes(needed)
    ));
}

fn print_json(rows: &[(&Model, State)], ok: usize, present: u64, needed: u64) {
    let models = rows
        .iter()
        .map(|(model, state)| {
            let mut fields = json::model_fields(model);
            fields.push(("state", Json::str(state.label())));
            if let State::Partial { bytes } = state {
                fields.push(("partial_bytes", Json::Int(*bytes)));
            }
            if let State::WrongSize { actual } = state {
                fields.push(("actual_size", Json::Int(*actual)));
            }
            Json::Object(fields)
        })
        .collect();
    let summary = Json::Object(vec![
        ("models", Json::Int(rows.len() as u64)),
        ("ok", Json::Int(ok as u64)),
        ("bytes_present", Json::Int(present)),
        ("bytes_needed", Json::Int(needed)),
    ]);
    let doc = Json::Object(vec![
        ("command", Json::str("status")),
        ("models", Json::Array(models)),
        ("summary", summary),
    ]);
    println!("{}", doc.render());
}
