//! `models verify`: prove that what is on disk matches the pins.
//!
//! Every selected file is hashed in full and reported as ok, missing, wrong size or wrong
//! hash, with the command that repairs it. Nothing is changed on disk.

use std::process::ExitCode;

use crate::check::LocalState;
use crate::cli::Context;
use crate::error::{self, UsageError};
use crate::plan::{self, Selection};

pub fn run(cx: &Context, selection: &Selection, skip_checks: bool) -> Result<ExitCode, UsageError> {
    if skip_checks {
        cx.reporter
            .error("warning: --skip-checks: only presence is checked, not sizes or sha256");
    }
    let models = plan::select(&cx.manifest, selection)?;
    let steps = plan::survey(&models, &cx.checkpoints, skip_checks);
    let mut bad = 0;
    for step in &steps {
        let name = &step.model.name;
        let detail = match &step.state {
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
            LocalState::Missing => format!("missing    {name}  {}", step.dest),
            LocalState::NotAFile => {
                format!("not a file {name}  {} is not a regular file", step.dest)
            }
            LocalState::WrongSize { actual } => format!(
                "wrong size {name}  {}: {actual} bytes, expected {}",
                step.dest, step.model.size
            ),
            LocalState::WrongHash { actual } => format!(
                "wrong hash {name}  {}\n           expected sha256 {}\n           actual   sha256 {actual}",
                step.dest, step.model.sha256
            ),
            LocalState::Unreadable { error } => {
                format!("unreadable {name}  {}: {error}", step.dest)
            }
        };
        bad += 1;
        cx.say(&format!(
            "{detail}\n           repair: {}",
            cx.command_for("fetch", name)
        ));
    }
    cx.say(&format!(
        "verified {}: ok {}, failed {bad}",
        steps.len(),
        steps.len() - bad
    ));
    Ok(error::exit_code(bad > 0))
}
