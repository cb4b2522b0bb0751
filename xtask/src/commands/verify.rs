//! `models verify`: prove that what is on disk matches the pins.
//!
//! Every selected file is reported as ok, missing, wrong size or wrong hash, with the
//! command that repairs it. A file unchanged since it was last hashed and matched is
//! trusted by its stamp (see [`crate::store::stamp`]), so an untouched folder verifies in
//! milliseconds; everything else, or everything with `--full`, is hashed (several files
//! at once with `--jobs`). Nothing on disk changes but the stamps.

use crate::commands::{Context, Report};
use crate::engine::check::LocalState;
use crate::engine::plan::{self, Selection, Step, Trust};
use crate::error::Result;
use crate::ui::json::{Document, Record, VerifyState, VerifySummary};
use crate::ui::out;

pub(crate) fn run(cx: &Context, selection: &Selection, trust: Trust, jobs: usize) -> Result<Report> {
    if trust == Trust::Presence {
        cx.reporter.error("warning: --skip-checks: only presence is checked, not sizes or sha256");
    }
    let models = cx.select(selection)?;
    let _folder = cx.share_checkpoints()?;
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
        out::json(&json_report(&steps, bad));
    }
    Ok(Report { ok: steps.len() - bad, failed: bad })
}

fn json_report<'a>(steps: &'a [Step<'_>], bad: usize) -> Document<'a, VerifyState, VerifySummary> {
    let models = steps
        .iter()
        .map(|step| Record::new(step.model, &step.dest, VerifyState::from(&step.state)))
        .collect();
    let summary = VerifySummary { verified: steps.len(), ok: steps.len() - bad, failed: bad };
    Document { command: "verify", models, summary }
}
