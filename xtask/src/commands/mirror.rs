//! `models mirror DIR`: export verified files into a content-addressed mirror.
//!
//! The layout is `DIR/sha256/<hex>`, the same one `--mirror` reads, so a CI job can warm
//! a shared directory (or a web server's root) that every later job fetches from, with
//! no dependence on the original hosts. Files are hard-linked where possible.

use camino::Utf8Path;

use crate::commands::{Context, Report};
use crate::engine::check::LocalState;
use crate::engine::plan::{self, Selection, Trust};
use crate::error::Result;
use crate::store::cache::{Cache, Entry};
use crate::store::fs::{Placed, link_or_copy};

pub fn run(
    cx: &Context,
    selection: &Selection,
    dir: &Utf8Path,
    cache: Option<&Cache>,
    jobs: usize,
) -> Result<Report> {
    let models = plan::select(&cx.manifest, selection)?;
    let _folder = cx.share_checkpoints()?;
    let steps = plan::survey(&models, &cx.checkpoints, Trust::Stamps, jobs);
    let mut failed = 0;
    for step in &steps {
        let model = step.model;
        let source = if matches!(step.state, LocalState::Ok | LocalState::Stamped) {
            Some(step.dest.clone())
        } else {
            cache
                .filter(|c| c.check(model.size, &model.sha256) == Entry::Good)
                .map(|c| c.entry(&model.sha256))
        };
        let Some(source) = source else {
            failed += 1;
            cx.reporter.error(&format!(
                "error: {} is not present and verified, so it cannot be exported; run `{}` first",
                model.name,
                cx.command_for("fetch", &model.name)
            ));
            continue;
        };
        let target = dir.join("sha256").join(&model.sha256);
        match link_or_copy(&source, &target) {
            Ok((placed, _)) => {
                let how = if placed == Placed::HardLink { "hard link" } else { "copy" };
                cx.say(&format!("exported {} to {target} ({how})", model.name));
            }
            Err(e) => {
                failed += 1;
                cx.reporter.error(&format!("error: cannot export {} to {target}: {e}", model.name));
            }
        }
    }
    cx.say(&format!("exported {} of {} to {dir}", steps.len() - failed, steps.len()));
    Ok(Report { ok: steps.len() - failed, failed })
}
