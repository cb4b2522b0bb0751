//! `models fetch`: make every selected model present and verified.
//!
//! The plan says which models are missing or wrong; the engine's provide stage
//! ([`crate::engine::provide`]) provides those on `--jobs` threads, and this command
//! reports: each model as it ends, then the failures by cause and the summary. A model
//! that cannot be provided gets a manual-download block with everything needed to place
//! the file by hand, and the others still proceed.

use std::time::{Duration, Instant};

use camino::Utf8Path;

use crate::commands::{Context, Report};
use crate::engine::events::Listener;
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection, Step, Trust};
use crate::engine::provide::{Outcome, Provided, Provider};
use crate::engine::settings::Settings;
use crate::engine::transfer::Downloader;
use crate::engine::workers;
use crate::error::{Class, Fault, Result, Site, Tried};
use crate::store::fs::same_filesystem;
use crate::store::lock;
use crate::store::partial::Partial;
use crate::store::stamp::Stamps;
use crate::text::human_bytes;
use crate::ui::out;

mod interrupt;
mod report;

/// `1` (or `true`, `yes`) makes every fetch offline, as `--offline` does.
pub(crate) const OFFLINE_ENV: &str = "XTASK_MODELS_OFFLINE";

/// A switch a variable may set: 1, true, yes, on; or 0, false, no, off, empty (unset).
pub(crate) fn parse_switch(text: &str) -> std::result::Result<bool, String> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "" | "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(format!("{text:?} is not a switch (from --offline or {OFFLINE_ENV}); use 1 or 0")),
    }
}
use report::{Totals, json_report, print_summary, report_failures, report_fallbacks, report_one};

pub(crate) fn run(cx: &Context, selection: &Selection, settings: &Settings) -> Result<Report> {
    if settings.skip_checks {
        cx.reporter.error(
            "warning: --skip-checks: sizes and sha256 are NOT checked; files may be incomplete or wrong",
        );
    }
    let models = cx.select(selection)?;
    interrupt::explain_on_interrupt(&cx.command("fetch"));
    let Provision { present, provided, elapsed } = provision(cx, &models, settings, cx)?;
    let mut totals = Totals { present: present.len(), elapsed, ..Totals::default() };
    for Provided { outcome, .. } in &provided {
        match outcome {
            Outcome::Downloaded(fetched) => {
                totals.fetched += 1;
                totals.bytes += fetched.bytes;
            }
            Outcome::FromCache(_) => totals.from_cache += 1,
            Outcome::Present => totals.present += 1,
            Outcome::Failed(_) => totals.failed += 1,
        }
    }
    report_fallbacks(cx, &provided);
    report_failures(cx, &provided);
    print_summary(cx, &totals, settings.skip_checks);
    if cx.json {
        out::json(&json_report(&present, &provided, &totals));
    }
    Ok(Report { ok: totals.fetched + totals.from_cache + totals.present, failed: totals.failed })
}

/// Who hears a fetch while it runs: the command line (bars, lines, the log) or a library
/// caller's callback. Either way the engine's [`Event`](crate::engine::events::Event)s.
pub(crate) trait Watch: Sync {
    /// The listener for one model's events, on the worker that provides it.
    fn listener<'w>(&'w self, model: &'w Model) -> Box<Listener<'w>>;
    /// `provided` has ended, on the worker that provided it.
    fn ended(&self, provided: &Provided<'_>);
}

/// What a fetch of several models found and did.
pub(crate) struct Provision<'m> {
    /// Present and stamped before anything was done.
    pub(crate) present: Vec<Step<'m>>,
    /// One for each model that was not, in the order given.
    pub(crate) provided: Vec<Provided<'m>>,
    pub(crate) elapsed: Duration,
}

/// Provides every model of `models` not yet present, on `settings.jobs` threads, and
/// records the stamps of what it placed. `cx` holds the folder and the words for what
/// only the command line sees (locks waited on, a shortfall of space).
pub(crate) fn provision<'m>(
    cx: &Context,
    models: &[&'m Model],
    settings: &Settings,
    watch: &dyn Watch,
) -> Result<Provision<'m>> {
    let _folder = cx.share_checkpoints()?;
    let _cache_folder = match &settings.cache {
        Some(cache) => {
            let waiting = format!("waiting for `clean` to finish with {}", cache.root);
            Some(lock::share_folder(&cache.root, cx.on_wait(&waiting))?)
        }
        None => None,
    };
    let trust = if settings.skip_checks { Trust::Presence } else { Trust::Stamps };
    let steps = plan::survey(models, &cx.checkpoints, trust, settings.jobs);
    let (present, missing): (Vec<_>, Vec<_>) = steps.into_iter().partition(|s| s.state.is_present());
    // A model already in place is news only when something else happens too, or asked.
    if cx.verbose || present.len() < models.len() {
        for step in &present {
            cx.reporter.note(&format!("{}: present at {}", step.model.name, step.dest));
        }
    }
    let needs = space_needed(cx, settings, &missing);
    let needed = needs.first().map_or(0, |need| need.bytes);
    let space = if settings.offline { Ok(()) } else { plan::check_free_space(&needs) };
    let started = Instant::now();
    let provided: Vec<Provided<'_>> = match space {
        Ok(()) => {
            let downloader = Downloader::new(settings);
            let provider = Provider { checkpoints: &cx.checkpoints, settings, downloader: &downloader };
            cx.reporter.start_total(needed);
            let provided = workers::map(&missing, settings.jobs, |step| {
                let provided = provider.provide(step, &mut *watch.listener(step.model));
                watch.ended(&provided);
                provided
            });
            cx.reporter.finish_total();
            provided
        }
        Err(short) => {
            let message = shortfall(cx, &short);
            cx.reporter.error(&format!("error: {message}"));
            let tried = Tried { site: Site::Disk(short.dir), fault: Fault::new(Class::NoSpace, message) };
            let failed = || Outcome::Failed(vec![tried.clone()]);
            let provided = missing.iter().map(|step| Provided {
                model: step.model,
                dest: step.dest.clone(),
                outcome: failed(),
                stamp: None,
            });
            provided.collect()
        }
    };
    // Each stamp was taken under the model's lock from the very file installed; writing
    // them only makes the next run faster, so failing to is no error.
    let fresh = provided.iter().filter_map(|p| Some((p.model.path.to_string(), p.stamp.clone()?)));
    let _ = Stamps::record(&cx.checkpoints, fresh.collect());
    Ok(Provision { present, provided, elapsed: started.elapsed() })
}

/// The bytes each filesystem must still take: everything that comes over the network
/// lands in the download folder (the cache, or the checkpoints folder without it), less
/// what partial downloads already hold; a cache on another filesystem than the
/// checkpoints also means a copy of each file there, since a hard link cannot cross.
/// The download folder comes first.
fn space_needed(cx: &Context, settings: &Settings, missing: &[Step<'_>]) -> Vec<plan::SpaceNeed> {
    let remaining = |size: u64, partial: &Utf8Path| {
        let have = std::fs::metadata(partial).map_or(0, |m| m.len());
        if have <= size { size - have } else { size }
    };
    let Some(cache) = &settings.cache else {
        let bytes = missing.iter().fold(0u64, |sum, s| {
            sum.saturating_add(remaining(s.model.size, Partial::beside(&s.dest, &s.model.sha256).path()))
        });
        return vec![plan::SpaceNeed { dir: cx.checkpoints.clone(), bytes }];
    };
    let to_download = missing.iter().filter(|s| !cache.entry(&s.model.sha256).exists());
    let bytes = to_download.fold(0u64, |sum, s| {
        sum.saturating_add(remaining(s.model.size, cache.partial(&s.model.sha256).path()))
    });
    let mut needs = vec![plan::SpaceNeed { dir: cache.root.clone(), bytes }];
    if !same_filesystem(&cache.root, &cx.checkpoints) {
        let copies = missing.iter().fold(0u64, |sum, s| sum.saturating_add(s.model.size));
        needs.push(plan::SpaceNeed { dir: cx.checkpoints.clone(), bytes: copies });
    }
    needs
}

/// What a folder short of space means, and the option that moves that folder.
fn shortfall(cx: &Context, short: &plan::Shortfall) -> String {
    let plan::Shortfall { dir, needed, available } = short;
    let flag = if *dir == cx.checkpoints { "--checkpoints-dir" } else { "--cache-dir" };
    format!(
        "not enough free space for the download in {dir}: needed {} ({needed} bytes), available {} ({available} bytes)\n  \
         hint: free {} on that disk, or choose another disk with `{flag} DIR`, or fetch fewer models with `--model NAME`",
        human_bytes(*needed),
        human_bytes(*available),
        human_bytes(needed - available),
    )
}

/// The command line hears a fetch as bars, lines and the log, and says each model's end
/// as it comes.
impl Watch for Context {
    fn listener<'w>(&'w self, model: &'w Model) -> Box<Listener<'w>> {
        Box::new(Context::listener(self, &model.name))
    }

    fn ended(&self, provided: &Provided<'_>) {
        report_one(self, provided);
    }
}
