//! `models fetch`: make every selected model present and verified.
//!
//! The plan says which models are missing or wrong; those are provided on `--jobs`
//! threads. Each model is locked first, so concurrent processes take turns and the
//! second finds the file present. With the shared cache, bytes go into a
//! content-addressed entry (locked too, so several checkouts download each file once)
//! and the checkout gets a hard link; without it, into a temp file beside the
//! destination. A model that cannot be provided gets a manual-download block with
//! everything needed to place the file by hand, and the others still proceed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};

use crate::attempt_log::redact_url;
use crate::cache::{Cache, Entry};
use crate::check::{self, LocalState};
use crate::cli::Context;
use crate::error::{self, Class, Fault};
use crate::install::{self, Placed};
use crate::json::{self, Json};
use crate::lock::{self, Mode};
use crate::manifest::Model;
use crate::plan::{self, Selection, Step, Trust};
use crate::progress::{human_bytes, rate};
use crate::stamp::Stamps;
use crate::transfer::{Downloader, Failed, Fetched, Job, Settings};
use crate::workers;

#[derive(Clone, Debug)]
pub struct Options {
    pub settings: Settings,
    /// Models provided at once.
    pub jobs: usize,
    /// `None` with `--no-cache` (and always with `--skip-checks`, so unchecked bytes
    /// never enter a store named by content).
    pub cache: Option<Cache>,
    pub mirrors: Vec<String>,
    pub offline: bool,
}

/// How one model ended up.
enum Outcome {
    Downloaded(Fetched),
    /// From the cache, with no network request.
    FromCache(Placed),
    /// Another process provided it while this one waited.
    Present,
    /// The last fault of each source tried.
    Failed(Vec<(String, Fault)>),
}

pub fn run(cx: &Context, selection: &Selection, options: Options) -> anyhow::Result<ExitCode> {
    if options.settings.skip_checks {
        cx.reporter.error(
            "warning: --skip-checks: sizes and sha256 are NOT checked; files may be incomplete or wrong",
        );
    }
    let models = plan::select(&cx.manifest, selection)?;
    let _folder = lock::share_folder(&cx.checkpoints, &cx.reporter)?;
    let _cache_folder = match &options.cache {
        Some(cache) => Some(lock::share_folder(&cache.root, &cx.reporter)?),
        None => None,
    };
    let trust = if options.settings.skip_checks { Trust::Presence } else { Trust::Stamps };
    let steps = plan::survey(&models, &cx.checkpoints, trust, options.jobs);
    let (present, missing): (Vec<_>, Vec<_>) = steps.into_iter().partition(|s| s.state.is_present());
    for step in &present {
        cx.reporter.note(&format!("{}: present at {}", step.model.name, step.dest));
    }
    let needed = bytes_to_download(&missing, options.cache.as_ref());
    let download_dir = options.cache.as_ref().map_or(cx.checkpoints.as_path(), |c| c.root.as_path());
    let space = if options.offline { Ok(()) } else { plan::check_free_space(download_dir, needed) };
    let started = Instant::now();
    let outcomes = match space {
        Ok(()) => {
            let downloader = Downloader::new(options.settings.clone(), &cx.reporter, cx.log.as_ref());
            cx.reporter.start_total(needed);
            let outcomes =
                workers::map(&missing, options.jobs, |step| provide(cx, &options, &downloader, step));
            cx.reporter.finish_total();
            outcomes
        }
        Err(message) => {
            cx.reporter.error(&format!("error: {message}"));
            let fault = Fault::new(Class::NoSpace, message);
            missing.iter().map(|_| Outcome::Failed(vec![("(disk)".to_owned(), fault.clone())])).collect()
        }
    };
    let mut totals = Totals { present: present.len(), elapsed: started.elapsed(), ..Totals::default() };
    let mut fresh = Vec::new();
    for (step, outcome) in missing.iter().zip(&outcomes) {
        match outcome {
            Outcome::Downloaded(fetched) => {
                totals.fetched += 1;
                totals.bytes += fetched.bytes;
            }
            Outcome::FromCache(_) => totals.from_cache += 1,
            Outcome::Present => totals.present += 1,
            Outcome::Failed(_) => totals.failed += 1,
        }
        let installed = matches!(outcome, Outcome::Downloaded(_) | Outcome::FromCache(_));
        if installed && !options.settings.skip_checks {
            fresh.extend(
                check::stamp_installed(step.model, &step.dest).map(|s| (step.model.path.to_string(), s)),
            );
        }
    }
    // Stamps only make the next run faster; failing to write them is no error.
    let _ = Stamps::record(&cx.checkpoints, fresh);
    print_summary(cx, &totals, &options.settings);
    if cx.json {
        println!("{}", json_report(&present, &missing, &outcomes, &totals).render());
    }
    Ok(error::exit_code(totals.failed > 0))
}

/// The `--json` document: one record per selected model, then the summary.
fn json_report(present: &[Step<'_>], missing: &[Step<'_>], outcomes: &[Outcome], totals: &Totals) -> Json {
    let mut records: Vec<Json> = present
        .iter()
        .map(|step| {
            let mut fields = json::model_fields(step.model);
            fields.push(("state", Json::str("present")));
            fields.push(("checked", Json::str(step.state.label())));
            Json::Object(fields)
        })
        .collect();
    for (step, outcome) in missing.iter().zip(outcomes) {
        let mut fields = json::model_fields(step.model);
        match outcome {
            Outcome::Downloaded(f) => {
                fields.push(("state", Json::str("fetched")));
                fields.push(("url", Json::str(redact_url(&f.url))));
                fields.push(("attempts", Json::Int(u64::from(f.attempts))));
                fields.push(("bytes", Json::Int(f.bytes)));
                fields.push(("seconds", Json::Float(f.elapsed.as_secs_f64())));
            }
            Outcome::FromCache(placed) => {
                fields.push(("state", Json::str("from-cache")));
                let how = if *placed == Placed::HardLink { "hard-link" } else { "copy" };
                fields.push(("placed_by", Json::str(how)));
            }
            Outcome::Present => fields.push(("state", Json::str("present"))),
            Outcome::Failed(tried) => {
                fields.push(("state", Json::str("failed")));
                if let Some((_, fault)) = tried.last() {
                    fields.push(("error", fault_json(fault)));
                }
                let tried = tried
                    .iter()
                    .map(|(url, fault)| {
                        Json::Object(vec![("url", Json::str(redact_url(url))), ("error", fault_json(fault))])
                    })
                    .collect();
                fields.push(("tried", Json::Array(tried)));
            }
        }
        records.push(Json::Object(fields));
    }
    let summary = Json::Object(vec![
        ("fetched", Json::Int(totals.fetched as u64)),
        ("from_cache", Json::Int(totals.from_cache as u64)),
        ("present", Json::Int(totals.present as u64)),
        ("failed", Json::Int(totals.failed as u64)),
        ("bytes", Json::Int(totals.bytes)),
        ("seconds", Json::Float(totals.elapsed.as_secs_f64())),
    ]);
    Json::Object(vec![
        ("command", Json::str("fetch")),
        ("models", Json::Array(records)),
        ("summary", summary),
    ])
}

fn fault_json(fault: &Fault) -> Json {
    Json::Object(vec![
        ("class", Json::str(fault.class.as_str())),
        ("message", Json::str(&fault.detail)),
        ("hint", Json::str(fault.class.hint())),
        ("status", fault.status.map_or(Json::Null, |s| Json::Int(u64::from(s)))),
    ])
}

/// What still has to come over the network (cache hits cost nothing).
fn bytes_to_download(missing: &[Step<'_>], cache: Option<&Cache>) -> u64 {
    missing
        .iter()
        .filter(|s| cache.is_none_or(|c| !c.entry(&s.model.sha256).exists()))
        .map(|s| s.model.size)
        .sum()
}

/// Provides one model under its lock: from the cache, or by downloading it.
fn provide(cx: &Context, options: &Options, downloader: &Downloader<'_>, step: &Step<'_>) -> Outcome {
    let model = step.model;
    let locked = lock::acquire(
        &lock::model_lock(&cx.checkpoints, &model.name),
        Mode::Exclusive,
        &cx.reporter,
        &format!("{}: waiting for another fetch of {}", model.name, model.name),
    );
    let _model_lock = match locked {
        Ok((held, waited)) => {
            // The survey is stale if another process held the lock, or created the file
            // since: look again before downloading anything.
            let changed = waited || (step.state == LocalState::Missing && step.dest.exists());
            if changed && check::inspect(model, &step.dest, options.settings.skip_checks, None).0.is_present()
            {
                cx.reporter.note(&format!("{}: present (another process fetched it)", model.name));
                return Outcome::Present;
            }
            held
        }
        Err(e) => return fail(cx, model, &step.dest, vec![lock_failure(&e)]),
    };
    let result = match &options.cache {
        Some(cache) => through_cache(cx, options, downloader, cache, step),
        None => {
            let job = job(model, options, install::partial_path(&step.dest, model), step.dest.clone());
            download(cx, downloader, &job, options.offline).map(Outcome::Downloaded)
        }
    };
    match result {
        Ok(outcome) => {
            report_success(cx, model, &step.dest, &outcome);
            outcome
        }
        Err(failed) => fail(cx, model, &step.dest, failed.tried),
    }
}

fn through_cache(
    cx: &Context,
    options: &Options,
    downloader: &Downloader<'_>,
    cache: &Cache,
    step: &Step<'_>,
) -> Result<Outcome, Failed> {
    let model = step.model;
    let local =
        |e: &std::io::Error, what: &str| Failed { tried: vec![(what.to_owned(), Fault::local(what, e))] };
    let (_entry_lock, _) = lock::acquire(
        &cache.lock(&model.sha256),
        Mode::Exclusive,
        &cx.reporter,
        &format!("{}: waiting for another process downloading it into the cache", model.name),
    )
    .map_err(|e| Failed { tried: vec![lock_failure(&e)] })?;
    let entry = cache.entry(&model.sha256);
    let downloaded = match cache.check(model) {
        Entry::Good => None,
        found => {
            if let Entry::Removed { reason } = found {
                cx.reporter.warn(&format!(
                    "{}: the cache entry {entry} was corrupt ({reason}); removed it, fetching again",
                    model.name
                ));
            }
            let job = job(model, options, cache.partial(&model.sha256), entry.clone());
            let fetched = download(cx, downloader, &job, options.offline)?;
            cache.seal(&model.sha256).map_err(|e| local(&e, entry.as_str()))?;
            Some(fetched)
        }
    };
    let placed = install::link_or_copy(&entry, &step.dest).map_err(|e| local(&e, step.dest.as_str()))?;
    Ok(match downloaded {
        Some(fetched) => Outcome::Downloaded(fetched),
        None => Outcome::FromCache(placed),
    })
}

/// A download of `model` from its sources (mirrors first), collecting in `partial`.
fn job<'m>(model: &'m Model, options: &Options, partial: Utf8PathBuf, target: Utf8PathBuf) -> Job<'m> {
    Job { model, sources: plan::sources(model, &options.mirrors, options.offline), partial, target }
}

fn download(
    cx: &Context,
    downloader: &Downloader<'_>,
    job: &Job<'_>,
    offline: bool,
) -> Result<Fetched, Failed> {
    if job.sources.is_empty() && offline {
        let fetch = cx.command_for("fetch", &job.model.name);
        let detail = format!(
            "offline, and no local source (cache, file:// URL or directory mirror) has it; `{fetch}` without --offline fetches it"
        );
        let fault = Fault::new(Class::Offline, detail);
        return Err(Failed { tried: vec![("(offline)".to_owned(), fault)] });
    }
    let mut progress = cx.reporter.transfer(&job.model.name, job.model.size);
    downloader.fetch(job, &mut progress)
}

fn lock_failure(e: &std::io::Error) -> (String, Fault) {
    ("(lock)".to_owned(), Fault::local("cannot take the lock", e))
}

fn report_success(cx: &Context, model: &Model, dest: &Utf8Path, outcome: &Outcome) {
    let message = match outcome {
        Outcome::Downloaded(f) => format!(
            "{}: fetched {} in {:.1}s ({}) to {dest}",
            model.name,
            human_bytes(f.bytes),
            f.elapsed.as_secs_f64(),
            rate(f.bytes, f.elapsed)
        ),
        Outcome::FromCache(Placed::HardLink) => {
            format!("{}: linked from the cache to {dest}", model.name)
        }
        Outcome::FromCache(Placed::Copy) => {
            format!("{}: copied from the cache to {dest}", model.name)
        }
        Outcome::Present | Outcome::Failed(_) => return,
    };
    cx.reporter.note(&message);
}

fn fail(cx: &Context, model: &Model, dest: &Utf8Path, tried: Vec<(String, Fault)>) -> Outcome {
    cx.reporter.error(&manual_download_block(cx, model, dest, &tried));
    Outcome::Failed(tried)
}

#[derive(Default)]
struct Totals {
    fetched: usize,
    from_cache: usize,
    present: usize,
    failed: usize,
    bytes: u64,
    elapsed: Duration,
}

fn print_summary(cx: &Context, t: &Totals, settings: &Settings) {
    let mut line = format!(
        "fetched {} ({} in {:.1}s, {}), from cache {}, present {}, failed {}",
        t.fetched,
        human_bytes(t.bytes),
        t.elapsed.as_secs_f64(),
        rate(t.bytes, t.elapsed),
        t.from_cache,
        t.present,
        t.failed
    );
    if settings.skip_checks {
        line.push_str(" (checks skipped)");
    }
    cx.say(&line);
}

/// Everything a user needs to put the file in place without this tool.
fn manual_download_block(cx: &Context, model: &Model, dest: &Utf8Path, tried: &[(String, Fault)]) -> String {
    let mut out = format!("error: could not fetch {} ({})\n  tried:\n", model.name, model.path);
    for (i, (url, fault)) in tried.iter().enumerate() {
        out.push_str(&format!(
            "    {}. {}\n       {fault}\n       hint: {}\n",
            i + 1,
            crate::attempt_log::redact_url(url),
            fault.class.hint()
        ));
    }
    if tried.last().is_some_and(|(_, f)| f.class.is_local()) {
        out.push_str("    (the remaining URLs were not tried: the fault above is local)\n");
    }
    out.push_str("  to install it by hand, download it from one of:\n");
    for url in &model.urls {
        out.push_str(&format!("    {}\n", crate::attempt_log::redact_url(url)));
    }
    out.push_str(&format!(
        "  and save it as:\n    {dest}\n  \
         expected size:   {} bytes ({})\n  expected sha256: {}\n  then check it with:\n    {}",
        model.size,
        human_bytes(model.size),
        model.sha256,
        cx.command_for("verify", &model.name)
    ));
    out
}
