//! What `fetch` says: each model as it ends, the fallbacks and failures by cause, the
//! manual-download block, the summary and the `--json` document. Facts from the engine
//! (a [`Provided`] with its [`Outcome`], the [`Tried`] origins) become words here.

use std::time::Duration;

use camino::Utf8Path;

use crate::commands::Context;
use crate::engine::manifest::Model;
use crate::engine::plan::Step;
use crate::engine::provide::{Outcome, Provided};
use crate::error::{Class, Origin, Tried};
use crate::store::fs::Placed;
use crate::text::{human_bytes, rate};
use crate::ui::json::{
    self, Document, FaultRecord, FetchState, FetchSummary, Record, TriedRecord, WrongSourceRecord,
};

/// The `--json` document: one record per selected model, then the summary.
pub(super) fn json_report<'a>(
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
                url: Some(f.origin.url().to_string()),
                attempts: f.attempts,
                connections: f.connections,
                bytes: f.bytes,
                seconds: json::seconds(f.elapsed),
                wrong_sources: f
                    .wrong_sources
                    .iter()
                    .map(|w| WrongSourceRecord {
                        url: Some(w.origin.url().to_string()),
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

/// What one model came to, said as soon as it is known (on its worker thread).
pub(super) fn report_one(cx: &Context, provided: &Provided<'_>) {
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
pub(super) fn report_fallbacks(cx: &Context, provided: &[Provided<'_>]) {
    for Provided { model, outcome, .. } in provided {
        let Outcome::Downloaded(fetched) = outcome else { continue };
        for Tried { site, fault } in fetched.passed.iter().filter(|t| is_permanent(t.fault.class)) {
            cx.reporter.warn(&format!(
                "{}: came from {}, because {} failed: {fault}; fix or drop that URL in {}",
                model.name, &fetched.origin, site, cx.manifest_path
            ));
        }
    }
}

/// After the run, the failures: their causes first, each said once with the hosts it
/// hit, then one line per failed model. One failure gets its full block instead; with
/// `--verbose` the blocks were printed as they happened.
pub(super) fn report_failures(cx: &Context, provided: &[Provided<'_>]) {
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
    for Tried { site, fault } in tried {
        let place = match (&fault.host, site.origin().map(Origin::url), site.path()) {
            // Where it happened: a redirect's or a form's target, an S3 endpoint.
            (Some(host), _, _) => host.clone(),
            (None, Some(url), _) => url.host().unwrap_or_else(|| url.to_string()),
            (None, None, Some(path)) => path.to_string(),
            (None, None, None) => site.kind().to_owned(),
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
                Class::Offline if offline_by_variable() => {
                    "XTASK_MODELS_OFFLINE turned --offline on: unset it (or set it to 0) to download them"
                }
                other => other.hint(),
            };
            format!("{headline}\n    -> {hint}")
        })
        .collect()
}

#[derive(Default)]
pub(super) struct Totals {
    pub(super) fetched: usize,
    pub(super) from_cache: usize,
    pub(super) present: usize,
    pub(super) failed: usize,
    pub(super) bytes: u64,
    pub(super) elapsed: Duration,
}

pub(super) fn print_summary(cx: &Context, t: &Totals, skip_checks: bool) {
    if t.fetched + t.from_cache + t.failed == 0 && !skip_checks {
        let what = if t.present == 1 { "the 1 selected model is" } else { "all selected models are" };
        cx.say(&format!("nothing to do: {what} present and verified ({} in all)", t.present));
        return;
    }
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

/// How to fetch a model this offline run could not: without `--offline`, or, when the
/// variable turned it on, without the variable (a flag the user never typed is no hint).
fn offline_hint(cx: &Context, model: &str) -> String {
    let command = cx.command_for("fetch", model);
    match offline_by_variable() {
        true => format!(
            "{} turned --offline on: with it unset (or 0), `{command}` fetches it",
            super::OFFLINE_ENV
        ),
        false => format!("`{command}` without --offline fetches it"),
    }
}

/// Whether the variable, not the flag, made this run offline (the flag may be there too).
fn offline_by_variable() -> bool {
    std::env::var(super::OFFLINE_ENV).is_ok_and(|v| super::parse_switch(&v) == Ok(true))
}

/// Everything a user needs to put the file in place without this tool.
fn manual_download_block(cx: &Context, model: &Model, dest: &Utf8Path, tried: &[Tried]) -> String {
    let mut out = format!("error: could not fetch {} ({})\n  tried:\n", model.name, model.shown_path());
    for (i, Tried { site, fault }) in tried.iter().enumerate() {
        let hint = match fault.class {
            // The command that fetches this one model, as it was run here.
            Class::Offline => offline_hint(cx, &model.name),
            class => class.hint().to_owned(),
        };
        out.push_str(&format!("    {}. {}\n       {fault}\n       hint: {hint}\n", i + 1, site));
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
    use crate::error::{Fault, Site};
    use crate::source::Source;

    #[test]
    fn an_offline_machine_is_told_once_which_hosts_do_not_resolve() {
        let dns = |url: &str| Tried {
            site: Site::Source(Origin::Url(Source::parse(url).unwrap())),
            fault: Fault::new(Class::HostNotFound, "could not resolve the host name"),
        };
        let tried = [
            dns("https://github.com/a"),
            dns("https://huggingface.co/b"),
            dns("https://github.com/c"),
            Tried {
                site: Site::Source(Origin::Url(Source::parse("https://x.org/d").unwrap())),
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
