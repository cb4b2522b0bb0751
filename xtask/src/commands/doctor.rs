//! `models doctor`: what stands between this machine and the models, told before anyone
//! waits for gigabytes.
//!
//! Without network: the proxy each host goes through, the CA certificates trusted, free
//! space against what is missing, the cache, partial downloads and held locks, the git
//! hook. With `--urls`, every URL of the selection (and each mirror's object) is asked
//! whether it still serves its pin, by HEAD or a one-byte range, never downloading the
//! file: dead links are what stops most first runs, and a nightly job running this
//! finds them before a user does.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::commands::hook::{self, Installed};
use crate::commands::{Context, Report};
use crate::engine::check::{Glance, glance};
use crate::engine::manifest::Model;
use crate::engine::plan::{self, Selection};
use crate::engine::workers;
use crate::error::Result;
use crate::probe::{self, Probed, Prober};
use crate::source::Source;
use crate::store::cache::Cache;
use crate::store::fs::{self, files_below};
use crate::store::lock::{self, LOCK_DIR};
use crate::store::partial::Partial;
use crate::store::stamp::Stamps;
use crate::text::human_bytes;
use crate::ui::json::FaultRecord;
use crate::ui::out;

pub(crate) struct Options {
    /// Probe every URL of the selection.
    pub urls: bool,
    pub cache: Option<Cache>,
    pub mirrors: Vec<Source>,
    pub jobs: usize,
    pub timeout: Duration,
}

/// One thing looked at, and whether it is well.
#[derive(Serialize)]
struct Finding {
    topic: &'static str,
    ok: bool,
    detail: String,
}

/// One probed URL, as `--json` shows it.
#[derive(Serialize)]
struct UrlRecord<'a> {
    model: &'a str,
    url: String,
    state: &'static str,
    status: Option<u16>,
    size: Option<u64>,
    error: Option<FaultRecord>,
}

#[derive(Serialize)]
struct Summary {
    problems: usize,
}

#[derive(Serialize)]
struct DoctorDocument<'a> {
    command: &'static str,
    findings: Vec<Finding>,
    urls: Vec<UrlRecord<'a>>,
    summary: Summary,
}

pub(crate) fn run(cx: &Context, selection: &Selection, options: &Options) -> Result<Report> {
    let models = cx.select(selection)?;
    let mut findings = Vec::new();
    proxies(&models, &options.mirrors, &mut findings);
    certificates(&mut findings);
    space(cx, &models, options.cache.as_ref(), &mut findings);
    leftovers(cx, options.cache.as_ref(), &mut findings);
    let detail = match hook::installed(cx) {
        Installed::Hook => "the pre-commit hook verifies the models".to_owned(),
        Installed::Framework => {
            "the pre-commit framework's models-verify hook verifies the models".to_owned()
        }
        Installed::No { why } => format!("{why}; `{}` adds one", cx.command("hook install")),
        Installed::NoRepository => "not in a git repository: no hook".to_owned(),
    };
    findings.push(Finding { topic: "hook", ok: true, detail });
    let urls = if options.urls { probe_urls(&models, options) } else { Vec::new() };
    let problems =
        findings.iter().filter(|f| !f.ok).count() + urls.iter().filter(|u| u.error.is_some()).count();
    if cx.json {
        out::json(&DoctorDocument { command: "doctor", findings, urls, summary: Summary { problems } });
    } else {
        print(cx, &findings, &urls, problems, options.urls);
    }
    Ok(Report { ok: usize::from(problems == 0), failed: problems })
}

fn print(cx: &Context, findings: &[Finding], urls: &[UrlRecord<'_>], problems: usize, probed: bool) {
    for f in findings {
        cx.say(&format!("{} {:<12} {}", if f.ok { "ok  " } else { "FAIL" }, f.topic, f.detail));
    }
    for u in urls {
        let how = match (&u.error, u.size) {
            (Some(error), _) => format!("{} ({})", error.message, error.class),
            (None, Some(size)) => format!("{size} bytes"),
            (None, None) => "answers; does not say its size".to_owned(),
        };
        let mark = if u.error.is_some() { "FAIL" } else { "ok  " };
        cx.say(&format!("{mark} {:<12} {} {}: {how}", u.state, u.model, u.url));
    }
    if !probed {
        cx.say("(run with --urls to ask every URL whether it still serves its pin)");
    }
    cx.say(&match problems {
        0 => "doctor: all well".to_owned(),
        1 => "doctor: 1 problem".to_owned(),
        n => format!("doctor: {n} problems"),
    });
}

/// The proxy each host of the selection goes through.
fn proxies(models: &[&Model], mirrors: &[Source], findings: &mut Vec<Finding>) {
    let urls = models.iter().flat_map(|m| m.urls.iter()).chain(mirrors.iter());
    let routes = probe::proxies_for(urls);
    if routes.iter().all(|(_, proxy)| proxy.is_none()) {
        let detail = "none: every host is reached directly".to_owned();
        findings.push(Finding { topic: "proxy", ok: true, detail });
        return;
    }
    for (host, proxy) in routes {
        let detail = match proxy {
            Some(proxy) => format!("{host} through {proxy}"),
            None => format!("{host} directly (NO_PROXY)"),
        };
        findings.push(Finding { topic: "proxy", ok: true, detail });
    }
}

fn certificates(findings: &mut Vec<Finding>) {
    for (source, found) in probe::ca_sources() {
        let (ok, detail) = match found {
            Ok(1) => (true, format!("{source}: 1 certificate")),
            Ok(n) => (true, format!("{source}: {n} certificates")),
            Err(why) => (false, format!("{source} {why}")),
        };
        findings.push(Finding { topic: "certificates", ok, detail });
    }
}

/// Free space on each filesystem against what the missing models need there.
fn space(cx: &Context, models: &[&Model], cache: Option<&Cache>, findings: &mut Vec<Finding>) {
    let stamps = Stamps::load(&cx.checkpoints);
    let missing: Vec<&Model> = models
        .iter()
        .copied()
        .filter(|m| {
            !matches!(
                glance(m, &plan::destination(&cx.checkpoints, m), Some(&stamps)),
                Glance::Stamped | Glance::Unproven
            )
        })
        .collect();
    let need: u64 = missing.iter().map(|m| m.size).sum();
    findings.push(free_space("space", &cx.checkpoints, need, missing.len()));
    if let Some(cache) = cache {
        let uncached: Vec<&&Model> = missing
            .iter()
            .filter(|m| cache.check(m.size, &m.sha256) != crate::store::cache::Entry::Good)
            .collect();
        let need = uncached.iter().map(|m| m.size).sum();
        findings.push(free_space("cache space", &cache.root, need, uncached.len()));
        let entries = cache.entries().unwrap_or_default();
        let bytes: u64 = entries.iter().map(|(_, size)| size).sum();
        let detail = format!("{}: {} entries, {}", cache.root, entries.len(), human_bytes(bytes));
        findings.push(Finding { topic: "cache", ok: true, detail });
    }
}

fn free_space(topic: &'static str, dir: &Utf8Path, need: u64, count: usize) -> Finding {
    let Some(free) = fs::free_space(dir) else {
        return Finding {
            topic,
            ok: true,
            detail: format!("{dir}: the filesystem does not say its free space"),
        };
    };
    let ok = need <= free;
    let detail = format!(
        "{dir}: {} free; {count} missing model(s) need {}{}",
        human_bytes(free),
        human_bytes(need),
        if ok { "" } else { ": free some space, or choose another disk (--checkpoints-dir / --cache-dir)" }
    );
    Finding { topic, ok, detail }
}

/// Partial downloads, and locks some process holds right now.
fn leftovers(cx: &Context, cache: Option<&Cache>, findings: &mut Vec<Finding>) {
    let mut partials: Vec<(Utf8PathBuf, u64)> = Vec::new();
    let mut locks = Vec::new();
    // Best effort: what cannot be read is simply not counted.
    let (files, _) = files_below(&cx.checkpoints).unwrap_or_default();
    for (rel, size) in files {
        let path = cx.checkpoints.join(&rel);
        if rel.components().any(|c| c.as_str() == LOCK_DIR) {
            locks.push(path);
        } else if Partial::owner(rel.file_name().unwrap_or_default()).is_some() {
            partials.push((path, size));
        }
    }
    if let Some(cache) = cache {
        partials.extend(cache.partials().unwrap_or_default());
        let lock_dir = cache.root.join(LOCK_DIR);
        let (files, _) = files_below(&lock_dir).unwrap_or_default();
        locks.extend(files.into_iter().map(|(rel, _)| lock_dir.join(rel)));
    }
    let bytes: u64 = partials.iter().map(|(_, size)| size).sum();
    let detail = match partials.len() {
        0 => "none".to_owned(),
        n => format!(
            "{n} partial download(s), {}: the next fetch resumes them; `{}` removes them",
            human_bytes(bytes),
            cx.command("clean")
        ),
    };
    findings.push(Finding { topic: "partials", ok: true, detail });
    let held: Vec<&Utf8PathBuf> = locks.iter().filter(|path| lock::is_held(path)).collect();
    let detail = match held.as_slice() {
        [] => format!("{} lock file(s), none held: no fetch or clean is running", locks.len()),
        [first, ..] => {
            format!("{} held right now (a fetch or clean is running), {first} among them", held.len())
        }
    };
    findings.push(Finding { topic: "locks", ok: true, detail });
}

/// Every URL of the selection (mirrors' objects first), asked in parallel.
fn probe_urls<'m>(models: &[&'m Model], options: &Options) -> Vec<UrlRecord<'m>> {
    let prober = Prober::new(options.timeout, options.jobs);
    let asks: Vec<(&'m Model, Source)> = models
        .iter()
        .flat_map(|&m| {
            let sources = plan::sources(m, &options.mirrors, false);
            sources.into_iter().map(move |o| (m, o.url().clone()))
        })
        .collect();
    // Each record carries its model and URL: nothing is matched up by position later.
    workers::map(&asks, options.jobs, |(model, url)| {
        let p: Probed = prober.probe(url, model.size, &model.sha256);
        UrlRecord {
            model: &model.name,
            url: url.to_string(),
            state: p.verdict.label(),
            status: p.status,
            size: p.size,
            error: p.verdict.fault().map(FaultRecord::from),
        }
    })
}
