//! `models mirror DIR|s3://BUCKET/PREFIX`: export verified files into a content-addressed
//! mirror.
//!
//! The layout is `DIR/sha256/<hex>`, the same one `--mirror` reads, so a CI job can warm
//! a shared directory (or a web server's root, or a bucket) that every later job fetches
//! from, with no dependence on the original hosts. Files are hard-linked where possible;
//! to a bucket they are uploaded (see `publish`).

use camino::Utf8Path;

use crate::commands::{Context, Report};
use crate::engine::check::LocalState;
use crate::engine::install;
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection, Trust};
use crate::error::{Error, Result};
use crate::publish::{Published, Publisher, Start, UPLOADS_DIR};
use crate::source::Source;
use crate::store::cache::{Cache, Entry};
use std::fs;

use crate::store::fs::{LinkMode, Placed};
use crate::store::lock::{self, Mode};
use crate::store::stamp::{Fingerprint, Stamp, Stamps};

/// Where the files go: a folder, or a bucket and prefix (with how to upload).
pub(crate) enum Target<'a> {
    Folder(&'a Utf8Path),
    Bucket { url: &'a Source, force: bool, limit_rate: Option<u64> },
}

pub(crate) fn run(
    cx: &Context,
    selection: &Selection,
    target: &Target<'_>,
    cache: Option<&Cache>,
    jobs: usize,
) -> Result<Report> {
    let models = cx.select(selection)?;
    let _folder = cx.share_checkpoints()?;
    let steps = plan::survey(&models, &cx.checkpoints, Trust::Stamps, jobs);
    let records = cx.checkpoints.join(UPLOADS_DIR);
    let publisher = match target {
        Target::Bucket { force, limit_rate, .. } => Some(Publisher::new(&records, jobs, *force, *limit_rate)),
        Target::Folder(_) => None,
    };
    if let (Some(publisher), Target::Bucket { url, .. }) = (&publisher, target) {
        let store = publisher
            .describe_store()
            .map_err(|fault| Error::Usage(format!("{fault}\n  hint: {}", fault.class.hint())))?;
        cx.say(&format!("publishing to {url} at {store}"));
    }
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
        let dir = match (target, &publisher) {
            (Target::Folder(dir), _) => *dir,
            (Target::Bucket { url, .. }, Some(publisher)) => {
                failed += usize::from(!upload(cx, publisher, &source, url, model));
                continue;
            }
            // A bucket target always has its publisher, made above.
            (Target::Bucket { .. }, None) => continue,
        };
        let target = dir.join("sha256").join(&model.sha256);
        match install::sealed(&source, &target, LinkMode::Auto) {
            Ok((placed, _)) => {
                if placed == Placed::HardLink {
                    restamp_after_link(cx, cache, model, &step.dest);
                }
                let how = placed.as_str();
                cx.say(&format!("exported {} to {target} ({how})", model.name));
            }
            Err(e) => {
                failed += 1;
                cx.reporter.error(&format!("error: cannot export {} to {target}: {e}", model.name));
            }
        }
    }
    let place = match target {
        Target::Folder(dir) => dir.to_string(),
        Target::Bucket { url, .. } => url.to_string(),
    };
    cx.say(&format!("exported {} of {} to {place}", steps.len() - failed, steps.len()));
    Ok(Report { ok: steps.len() - failed, failed })
}

/// A hard link into the mirror moved the shared inode's ctime and link count. The records
/// that vouched for it (the cache entry's stamp, the checkout's) are brought up to date,
/// each under its lock and only where nothing else changed (the same inode, size and
/// mtime): otherwise the next `verify` and `fetch` would hash the whole file again.
fn restamp_after_link(cx: &Context, cache: Option<&Cache>, model: &Model, dest: &Utf8Path) {
    if let Some(cache) = cache
        && let Ok((_held, _)) = lock::acquire(&cache.lock(&model.sha256), Mode::Exclusive, || {})
        && let (Some(was), Ok(meta)) =
            (cache.recorded(&model.sha256), fs::metadata(cache.entry(&model.sha256)))
        && was.only_links_moved(&Fingerprint::of(&meta))
    {
        cache.restamp(&model.sha256);
    }
    let rel = model.path.to_string();
    let Ok((_held, _)) =
        lock::acquire(&lock::path_lock(&cx.checkpoints, &model.path), Mode::Exclusive, || {})
    else {
        return;
    };
    let (Some(stamp), Ok(meta)) =
        (Stamps::load(&cx.checkpoints).get(&rel).cloned(), fs::symlink_metadata(dest))
    else {
        return;
    };
    let now = Fingerprint::of(&meta);
    if meta.is_file() && !stamp.vouches_for(&now) && stamp.fingerprint.only_links_moved(&now) {
        let _ = Stamps::record(&cx.checkpoints, vec![(rel, Stamp { fingerprint: now, ..stamp })]);
    }
}

/// Publishes one model's verified file to the bucket; says how, or why not.
fn upload(
    cx: &Context,
    publisher: &Publisher<'_>,
    source: &Utf8Path,
    prefix: &Source,
    model: &Model,
) -> bool {
    let url = prefix.mirror_entry(&model.sha256);
    match publisher.publish(source, &url, model.size, &model.sha256) {
        Ok(published) => {
            let how = match published {
                Published::Present => "already there with the right size and sha256; skipped".to_owned(),
                Published::Whole => "uploaded".to_owned(),
                Published::Parts { parts, start: Start::Fresh } => format!("uploaded in {parts} parts"),
                Published::Parts { parts, start: Start::Continued { had } } => {
                    format!("uploaded in {parts} parts, continuing an unfinished upload that had {had}")
                }
                Published::Parts { parts, start: Start::Restarted } => format!(
                    "uploaded in {parts} parts, restarted: the store no longer knew the unfinished upload"
                ),
            };
            cx.say(&format!("{}: {url} {how}", model.name));
            true
        }
        Err(fault) => {
            cx.reporter.error(&format!(
                "error: cannot publish {} to {url}: {fault}\n  hint: {}",
                model.name,
                fault.class.hint()
            ));
            false
        }
    }
}
