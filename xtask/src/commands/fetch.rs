//! `models fetch`: make every selected model present and verified.
//!
//! The plan says which models are missing or wrong; the engine's provide stage
//! ([`crate::engine::provide`]) provides those on `--jobs` threads, and this command
//! reports: each model as it ends, then the failures by cause and the summary. A model
//! that cannot be provided gets a manual-download block with everything needed to place
//! the file by hand, and the others still proceed.

use std::time::{Duration, Instant};

use camino::Utf8Path;

use crate::commands::{Context, Report, describe};
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection, Step, Trust};
pub(crate) use crate::engine::provide::Options;
use crate::engine::provide::{Notice, Outcome, Provided, Provider, Watch};
use crate::engine::transfer::{Downloader, Failed, Fetched, Listener};
use crate::engine::workers;
use crate::error::{Class, Fault, Origin, Result, Tried};
use crate::store::fs::{Placed, same_filesystem};
use crate::store::lock;
use crate::store::partial::Partial;
use crate::store::stamp::Stamps;
use crate::text::{human_bytes, rate};
use crate::ui::json::{
    self, Document, FaultRecord, FetchState, FetchSummary, Record, TriedRecord, WrongSourceRecord,
};
use crate::ui::out;

pub(crate) fn run(cx: &Context, selection: &Selection, options: Options) -> Result<Report> {
    if options.skip_checks {
        cx.reporter.error(
            "warning: --skip-checks: sizes and sha256 are NOT checked; files may be incomplete or wrong",
        );
    }
    let models = cx.select(selection)?;
    let _folder = cx.share_checkpoints()?;
    let _cache_folder = match &options.cache {
        Some(cache) => {
            let waiting = format!("waiting for `clean` to finish with {}", cache.root);
            Some(lock::share_folder(&cache.root, cx.on_wait(&waiting))?)
        }
        None => None,
    };
    let trust = if options.skip_checks { Trust::Presence } else { Trust::Stamps };
    let steps = plan::survey(&models, &cx.checkpoints, trust, options.jobs);
    let (present, missing): (Vec<_>, Vec<_>) = steps.into_iter().partition(|s| s.state.is_present());
    for step in &present {
        cx.reporter.note(&format!("{}: present at {}", step.model.name, step.dest));
    }
    let needs = space_needed(cx, &options, &missing);
    let needed = needs.first().map_or(0, |need| need.bytes);
    let space = if options.offline { Ok(()) } else { plan::check_free_space(&needs) };
    let started = Instant::now();
    let provided: Vec<Provided<'_>> = match space {
        Ok(()) => {
            let downloader = Downloader::new(options.settings.clone(), options.jobs);
            let provider = Provider {
                checkpoints: &cx.checkpoints,
                options: &options,
                downloader: &downloader,
                watch: cx,
            };
            cx.reporter.start_total(needed);
            let provided = workers::map(&missing, options.jobs, |step| {
                let provided = provider.provide(step);
                report_one(cx, &provided);
                provided
            });
            cx.reporter.finish_total();
            provided
        }
        Err(short) => {
            let message = shortfall(cx, &short);
            cx.reporter.error(&format!("error: {message}"));
            let tried = Tried { origin: Origin::Disk(short.dir), fault: Fault::new(Class::NoSpace, message) };
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
    let mut totals = Totals { present: present.len(), elapsed: started.elapsed(), ..Totals::default() };
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
    // Each stamp was taken under the model's lock from the very file installed; writing
    // them only makes the next run faster, so failing to is no error.
    let fresh = provided.iter().filter_map(|p| Some((p.model.path.to_string(), p.stamp.clone()?)));
    let _ = Stamps::record(&cx.checkpoints, fresh.collect());
    report_fallbacks(cx, &provided);
    report_failures(cx, &provided);
    print_summary(cx, &totals, options.skip_checks);
    if cx.json {
        out::json(&json_report(&present, &provided, &totals));
    }
    Ok(Report { ok: totals.fetched + totals.from_cache + totals.present, failed: totals.failed })
}

/// The `--json` document: one record per selected model, then the summary.
fn json_report<'a>(
    present: &'a [Step<'_>],
    provided: &[Provided<'a>],
    totals: &Totals,
) -> Document<'a, FetchState, FetchSummary> {
    let mut models: Vec<Record<'a, FetchState>> = present
        .iter()
        .map(|step| {
            Record::new(step.model, &step.dest, FetchState::Present { checked: Some(step.state.label()) })
        })
        .collect();
    for Provided { model, dest, outcome, .. } in provided {
        let state = match outcome {
            Outcome::Downloaded(f) => FetchState::Fetched {
                url: f.origin.url().map(ToString::to_string),
                attempts: f.attempts,
                connections: f.connections,
                bytes: f.bytes,
                seconds: json::seconds(f.elapsed),
                wrong_sources: f
                    .wrong_sources
                    .iter()
                    .map(|w| WrongSourceRecord {
                        url: w.origin.url().map(ToString::to_string),
                        origin: w.origin.kind(),
                        first_wrong_byte: w.first_wrong_byte,
                    })
                    .collect(),
            },
            Outcome::FromCache(placed) => FetchState::FromCache { placed_by: placed.as_str() },
            Outcome::Present => FetchState::Present { checked: None },
            Outcome::Failed(tried) => FetchState::Failed {
                error: tried.last().map(|t| FaultRecord::from(&t.fault)),
                tried: tried.iter().map(TriedRecord::from).collect(),
            },
        };
        models.push(Record::new(model, dest, state));
    }
    let summary = FetchSummary {
        fetched: totals.fetched,
        from_cache: totals.from_cache,
        present: totals.present,
        failed: totals.failed,
        bytes: totals.bytes,
        seconds: json::seconds(totals.elapsed),
    };
    Document { command: "fetch", models, summary }
}

/// The bytes each filesystem must still take: everything that comes over the network
/// lands in the download folder (the cache, or the checkpoints folder without it), less
/// what partial downloads already hold; a cache on another filesystem than the
/// checkpoints also means a copy of each file there, since a hard link cannot cross.
/// The download folder comes first.
fn space_needed(cx: &Context, options: &Options, missing: &[Step<'_>]) -> Vec<plan::SpaceNeed> {
    let remaining = |size: u64, partial: &Utf8Path| {
        let have = std::fs::metadata(partial).map_or(0, |m| m.len());
        if have <= size { size - have } else { size }
    };
    let Some(cache) = &options.cache else {
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

fn report_success(cx: &Context, model: &Model, dest: &Utf8Path, outcome: &Outcome) {
    let message = match outcome {
        Outcome::Downloaded(f) => format!(
            "{}: fetched {} in {:.1}s ({}) to {dest}",
            model.name,
            human_bytes(f.bytes),
            f.elapsed.as_secs_f64(),
            rate(f.bytes, f.elapsed)
        ),
        Outcome::FromCache(Placed::Clone) => {
            format!("{}: cloned from the cache to {dest}", model.name)
        }
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

/// A model that could not be provided: its block goes to the log now, and to the
/// screen now with `--verbose`; otherwise [`report_failures`] sums up at the end.
fn fail(cx: &Context, model: &Model, dest: &Utf8Path, tried: &[Tried]) {
    if cx.log.is_none() && !cx.verbose {
        return;
    }
    let block = manual_download_block(cx, model, dest, tried);
    if let Some(log) = &cx.log {
        log.record_block(&model.name, &block);
    }
    if cx.verbose {
        cx.reporter.error(&block);
    }
}

/// The provide stage's word, shown as this command shows everything.
impl Watch for Context {
    fn notice(&self, model: &Model, notice: Notice<'_>) {
        let name = &model.name;
        match notice {
            Notice::WaitingForModel => {
                self.reporter.note(&format!("{name}: waiting for another fetch of {name}"))
            }
            Notice::WaitingForCache => self
                .reporter
                .note(&format!("{name}: waiting for another process downloading it into the cache")),
            Notice::PresentAfterWait => {
                self.reporter.note(&format!("{name}: present (another process fetched it)"))
            }
            Notice::CorruptEntryRemoved { entry, reason } => self.reporter.warn(&format!(
                "{name}: the cache entry {entry} was corrupt ({reason}); removed it, fetching again"
            )),
        }
    }

    fn download(
        &self,
        model: &Model,
        size: u64,
        fetch: &mut dyn FnMut(&mut Listener<'_>) -> Result<Fetched, Failed>,
    ) -> Result<Fetched, Failed> {
        let mut progress = self.reporter.transfer(&model.name, size);
        fetch(&mut self.listener(&model.name, &mut progress))
    }
}

/// What one model came to, said as soon as it is known (on its worker thread).
fn report_one(cx: &Context, provided: &Provided<'_>) {
    match &provided.outcome {
        Outcome::Failed(tried) => fail(cx, provided.model, &provided.dest, tried),
        outcome => report_success(cx, provided.model, &provided.dest, outcome),
    }
}

/// Faults that will not heal by waiting: the URL needs fixing in the manifest.
fn is_permanent(class: Class) -> bool {
    class.policy().blames_manifest
}

/// A model that arrived from a later source after a permanent fault on an earlier one:
/// say so, naming the URL, before the last good URL dies too.
fn report_fallbacks(cx: &Context, provided: &[Provided<'_>]) {
    for Provided { model, outcome, .. } in provided {
        let Outcome::Downloaded(fetched) = outcome else { continue };
        for Tried { origin, fault } in fetched.passed.iter().filter(|t| is_permanent(t.fault.class)) {
            cx.reporter.warn(&format!(
                "{}: came from {}, because {} failed: {fault}; fix or drop that URL in {}",
                model.name,
                describe(&fetched.origin),
                describe(origin),
                cx.manifest_path
            ));
        }
    }
}

/// After the run, the failures: their causes first, each said once with the hosts it
/// hit, then one line per failed model. One failure gets its full block instead; with
/// `--verbose` the blocks were printed as they happened.
fn report_failures(cx: &Context, provided: &[Provided<'_>]) {
    let failed: Vec<(&Provided<'_>, &[Tried])> = provided
        .iter()
        .filter_map(|p| match &p.outcome {
            Outcome::Failed(tried) => Some((p, tried.as_slice())),
            _ => None,
        })
        .collect();
    if failed.is_empty() {
        return;
    }
    if let [(step, tried)] = failed.as_slice()
        && !cx.verbose
    {
        cx.reporter.error(&manual_download_block(cx, step.model, &step.dest, tried));
        return;
    }
    let mut text = match failed.len() {
        1 => "error: 1 model could not be fetched".to_owned(),
        n => format!("error: {n} models could not be fetched"),
    };
    for cause in causes(failed.iter().flat_map(|(_, tried)| tried.iter())) {
        text.push_str(&format!("\n  {cause}"));
    }
    if !cx.verbose {
        text.push_str("\n  failed:");
        for (step, tried) in &failed {
            let model = step.model;
            let class = tried.last().map_or("unknown", |t| t.fault.class.as_str());
            text.push_str(&format!(
                "\n    {} -> {} ({}, sha256 {}…): {class}",
                model.name,
                step.dest,
                human_bytes(model.size),
                model.sha256.get(..12).unwrap_or(&model.sha256)
            ));
        }
        text.push_str(
            "\n  each model's URLs and how to place it by hand: run again with --verbose (also in --json and --log-file)",
        );
    }
    cx.reporter.error(&text);
}

/// The causes behind `tried`, one line each with the hosts (or places) it hit and what
/// to do, in the order they first happened.
fn causes<'t>(tried: impl Iterator<Item = &'t Tried>) -> Vec<String> {
    let mut groups: Vec<(Class, Vec<String>, usize)> = Vec::new();
    for Tried { origin, fault } in tried {
        let place = match (&fault.host, origin.url(), origin.path()) {
            // Where it happened: a redirect's or a form's target, an S3 endpoint.
            (Some(host), _, _) => host.clone(),
            (None, Some(url), _) => url.host().unwrap_or_else(|| url.to_string()),
            (None, None, Some(path)) => path.to_string(),
            (None, None, None) => origin.kind().to_owned(),
        };
        match groups.iter_mut().find(|(class, ..)| *class == fault.class) {
            Some((_, places, count)) => {
                *count += 1;
                if !places.contains(&place) {
                    places.push(place);
                }
            }
            None => groups.push((fault.class, vec![place], 1)),
        }
    }
    groups
        .into_iter()
        .map(|(class, places, count)| {
            let (list, plural) = (places.join(", "), places.len() > 1);
            let headline = match class {
                Class::HostNotFound => {
                    format!("no network: {list} {}", if plural { "do not resolve" } else { "does not resolve" })
                }
                Class::Connection => format!("cannot connect to {list}"),
                Class::Timeout => format!("{list} stopped answering (timeout)"),
                Class::Tls => format!("the secure connection to {list} fails"),
                Class::ProxyRefused => format!("the proxy refuses requests to {list}"),
                Class::NotFound if count == 1 => format!("1 URL is gone (404 or 410) at {list}"),
                Class::NotFound => format!("{count} URLs are gone (404 or 410) at {list}"),
                Class::Forbidden => format!("{list} {} access (401 or 403)", if plural { "refuse" } else { "refuses" }),
                Class::Offline => "offline: no local source (the cache, file:// URLs, directory mirrors) has them".to_owned(),
                other => format!("{other} at {list}"),
            };
            let hint = match class {
                Class::HostNotFound => "check the network connection and DNS; behind a proxy, set HTTPS_PROXY; or fetch from a mirror (--mirror) or from local sources only (--offline)",
                other => other.hint(),
            };
            format!("{headline}\n    -> {hint}")
        })
        .collect()
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

fn print_summary(cx: &Context, t: &Totals, skip_checks: bool) {
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
    if skip_checks {
        line.push_str(" (checks skipped)");
    }
    cx.say(&line);
}

/// Everything a user needs to put the file in place without this tool.
fn manual_download_block(cx: &Context, model: &Model, dest: &Utf8Path, tried: &[Tried]) -> String {
    let mut out = format!("error: could not fetch {} ({})\n  tried:\n", model.name, model.shown_path());
    for (i, Tried { origin, fault }) in tried.iter().enumerate() {
        out.push_str(&format!(
            "    {}. {}\n       {fault}\n       hint: {}\n",
            i + 1,
            describe(origin),
            fault.class.hint()
        ));
    }
    if tried.last().is_some_and(|t| t.fault.class.is_local()) {
        out.push_str("    (the remaining URLs were not tried: the fault above is local)\n");
    }
    out.push_str("  to install it by hand, download it from one of:\n");
    for url in &model.urls {
        out.push_str(&format!("    {url}\n"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Source;

    #[test]
    fn an_offline_machine_is_told_once_which_hosts_do_not_resolve() {
        let dns = |url: &str| Tried {
            origin: Origin::Url(Source::parse(url).unwrap()),
            fault: Fault::new(Class::HostNotFound, "could not resolve the host name"),
        };
        let tried = [
            dns("https://github.com/a"),
            dns("https://huggingface.co/b"),
            dns("https://github.com/c"),
            Tried {
                origin: Origin::Url(Source::parse("https://x.org/d").unwrap()),
                fault: Fault::new(Class::NotFound, "HTTP 404"),
            },
        ];
        let causes = causes(tried.iter());
        assert_eq!(causes.len(), 2);
        assert!(
            causes[0].starts_with("no network: github.com, huggingface.co do not resolve\n"),
            "{}",
            causes[0]
        );
        assert!(causes[0].contains("HTTPS_PROXY") && causes[0].contains("--offline"), "{}", causes[0]);
        assert!(causes[1].starts_with("1 URL is gone (404 or 410) at x.org"), "{}", causes[1]);
    }
}
