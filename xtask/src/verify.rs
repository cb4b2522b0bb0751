//! `models verify`: prove that what is on disk matches the pins.
//!
//! Every selected file is hashed in full (several files at once with `--jobs`) and
//! reported as ok, missing, wrong size or wrong hash, with the command that repairs it.
//! Nothing is changed on disk.

use std::process::ExitCode;

use crate::check::LocalState;
use crate::cli::Context;
use crate::error;
use crate::lock::{self, Mode};
use crate::plan::{self, Selection};

pub fn run(
    cx: &Context,
    selection: &Selection,
    skip_checks: bool,
    jobs: usize,
) -> anyhow::Result<ExitCode> {
    if skip_checks {
        cx.reporter
            .error("warning: --skip-checks: only presence is checked, not sizes or sha256");
    }
    let models = plan::select(&cx.manifest, selection)?;
    let (_folder, _) = lock::acquire(
        &lock::folder_lock(&cx.checkpoints),
        Mode::Shared,
        &cx.reporter,
        &format!("waiting for `clean` to finish with {}", cx.checkpoints),
    )?;
    let steps = plan::survey(&models, &cx.checkpoints, skip_checks, jobs);
    let width = steps.iter().map(|s| s.model.name.len()).max().unwrap_or(0);
    let mut bad = 0;
    for step in &steps {
        let name = format!("{:<width$}", step.model.name);
        let (label, detail) = match &step.state {
            LocalState::Ok | LocalState::Unchecked => {
                if !cx.reporter.is_quiet() {
                    let label = if step.state == LocalState::Ok {
                        "ok"
                    } else {
                        "present"
                    };
                    cx.say(&format!("{label:<10} {name}  {}", step.dest));
                }
                continue;
            }
            LocalState::Missing => ("missing", step.dest.to_string()),
            LocalState::NotAFile => ("not a file", format!("{} is not a regular file", step.dest)),
            LocalState::WrongSize { actual } => (
                "wrong size",
                format!(
                    "{}: {actual} bytes, expected {}",
                    step.dest, step.model.size
                ),
            ),
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
    cx.say(&format!(
        "verified {}: ok {}, failed {bad}",
        steps.len(),
        steps.len() - bad
    ));
    Ok(error::exit_code(bad > 0))
}
