//! `models verify`: prove that what is on disk matches the pins.
//!
//! Every selected file is reported as ok, missing, wrong size or wrong hash, with the
//! command that repairs it. A file unchanged since it was last hashed and matched is
//! trusted by its stamp (see [`crate::stamp`]), so an untouched folder verifies in
//! milliseconds; everything else, or everything with `--full`, is hashed (several files
//! at once with `--jobs`). Nothing on disk changes but the stamps.

use std::process::ExitCode;

use crate::check::LocalState;
use crate::cli::Context;
use crate::error;
use crate::json::{self, Json};
use crate::lock;
use crate::plan::{self, Selection, Step, Trust};

pub fn run(cx: &Context, selection: &Selection, trust: Trust, jobs: usize) -> anyhow::Result<ExitCode> {
    if trust == Trust::Presence {
        cx.reporter.error("warning: --skip-checks: only presence is checked, not sizes or sha256");
    }
    let models = plan::select(&cx.manifest, selection)?;
    let _folder = lock::share_folder(&cx.checkpoints, &cx.reporter)?;
    let steps = plan::survey(&models, &cx.checkpoints, trust, jobs);
    let width = steps.iter().map(|s| s.model.name.len()).max().unwrap_or(0);
    let mut bad = 0;
    for step in &steps {
        let name = format!("{:<width$}", step.model.name);
        let (label, detail) = match &step.state {
            LocalState::Ok | LocalState::Stamped | LocalState::Unchecked => {
                if !cx.reporter.is_quiet() {
                    let label = match step.state {
                        LocalState::Ok => "ok",
                        LocalState::Stamped => "ok (stamp)",
                        _ => "present",
                    };
                    cx.say(&format!("{label:<10} {name}  {}", step.dest));
                }
                continue;
            }
            LocalState::Missing => ("missing", step.dest.to_string()),
            LocalState::NotAFile => ("not a file", format!("{} is not a regular file", step.dest)),
            LocalState::WrongSize { actual } => {
                ("wrong size", format!("{}: {actual} bytes, expected {}", step.dest, step.model.size))
            }
            LocalState::WrongHash { actual } => (
                "wrong hash",
                format!(
                    "{}\n           expected sha256 {}\n           actual   sha256 {actual}",
                    step.dest, step.model.sha256
                ),
            ),
            LocalState::Unreadable { error } => ("unreadable", format!("{}: {error}", step.dest)),
        };
        bad += 1;
        cx.say(&format!(
            "{label:<10} {name}  {detail}\n           repair: {}",
            cx.command_for("fetch", &step.model.name)
        ));
    }
    cx.say(&format!("verified {}: ok {}, failed {bad}", steps.len(), steps.len() - bad));
    if cx.json {
        println!("{}", json_report(&steps, bad).render());
    }
    Ok(error::exit_code(bad > 0))
}

fn json_report(steps: &[Step<'_>], bad: usize) -> Json {
    let records = steps
        .iter()
        .map(|step| {
            let mut fields = json::model_fields(step.model);
            fields.push(("state", Json::str(step.state.label())));
            match &step.state {
                LocalState::WrongSize { actual } => fields.push(("actual_size", Json::Int(*actual))),
                LocalState::WrongHash { actual } => fields.push(("actual_sha256", Json::str(actual))),
                LocalState::Unreadable { error } => fields.push(("error", Json::str(error))),
                _ => {}
            }
            Json::Object(fields)
        })
        .collect();
    let summary = Json::Object(vec![
        ("verified", Json::Int(steps.len() as u64)),
        ("ok", Json::Int((steps.len() - bad) as u64)),
        ("failed", Json::Int(bad as u64)),
    ]);
    Json::Object(vec![
        ("command", Json::str("verify")),
        ("models", Json::Array(records)),
        ("summary", summary),
    ])
}
