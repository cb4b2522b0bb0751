//! `models fetch`: make every selected model present and verified.
//!
//! The plan says which models are missing or wrong; each of those goes through the
//! downloader, one after another. A model that cannot be fetched gets a manual-download
//! block with everything needed to place the file by hand, and the others still proceed.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::Context;
use crate::error::{self, UsageError};
use crate::manifest::Model;
use crate::plan::{self, Selection};
use crate::progress::{human_bytes, rate};
use crate::transfer::{Downloader, Failed, Settings};

pub fn run(
    cx: &Context,
    selection: &Selection,
    settings: Settings,
) -> Result<ExitCode, UsageError> {
    if settings.skip_checks {
        cx.reporter.error(
            "warning: --skip-checks: sizes and sha256 are NOT checked; files may be incomplete or wrong",
        );
    }
    let models = plan::select(&cx.manifest, selection)?;
    let steps = plan::survey(&models, &cx.checkpoints, settings.skip_checks);
    let (present, missing): (Vec<_>, Vec<_>) =
        steps.into_iter().partition(|s| s.state.is_present());
    for step in &present {
        cx.reporter
            .note(&format!("{}: present at {}", step.model.name, step.dest));
    }

    let needed: u64 = missing.iter().map(|s| s.model.size).sum();
    if let Err(message) = plan::check_free_space(&cx.checkpoints, needed) {
        cx.reporter.error(&format!("error: {message}"));
        print_summary(
            cx,
            &Totals {
                present: present.len(),
                failed: missing.len(),
                ..Totals::default()
            },
            &settings,
        );
        return Ok(error::exit_code(true));
    }

    let downloader = Downloader::new(settings.clone(), &cx.reporter, cx.log.as_ref());
    let mut totals = Totals {
        present: present.len(),
        ..Totals::default()
    };
    let started = Instant::now();
    for step in &missing {
        match downloader.fetch(step.model, &step.dest) {
            Ok(fetched) => {
                totals.fetched += 1;
                totals.bytes += fetched.bytes;
                cx.reporter.note(&format!(
                    "{}: fetched {} in {:.1}s ({}) to {}",
                    step.model.name,
                    human_bytes(fetched.bytes),
                    fetched.elapsed.as_secs_f64(),
                    rate(fetched.bytes, fetched.elapsed),
                    step.dest
                ));
            }
            Err(failed) => {
                totals.failed += 1;
                cx.reporter
                    .error(&manual_download_block(cx, step.model, &step.dest, &failed));
            }
        }
    }
    totals.elapsed = started.elapsed();
    print_summary(cx, &totals, &settings);
    Ok(error::exit_code(totals.failed > 0))
}

#[derive(Default)]
struct Totals {
    fetched: usize,
    present: usize,
    failed: usize,
    bytes: u64,
    elapsed: Duration,
}

fn print_summary(cx: &Context, t: &Totals, settings: &Settings) {
    let mut line = format!(
        "fetched {} ({} in {:.1}s, {}), present {}, failed {}",
        t.fetched,
        human_bytes(t.bytes),
        t.elapsed.as_secs_f64(),
        rate(t.bytes, t.elapsed),
        t.present,
        t.failed
    );
    if settings.skip_checks {
        line.push_str(" (checks skipped)");
    }
    cx.say(&line);
}

/// Everything a user needs to put the file in place without this tool.
fn manual_download_block(
    cx: &Context,
    model: &Model,
    dest: &camino::Utf8Path,
    failed: &Failed,
) -> String {
    let mut out = format!(
        "error: could not fetch {} ({})\n  tried:\n",
        model.name, model.path
    );
    for (i, (url, fault)) in failed.tried.iter().enumerate() {
        out.push_str(&format!(
            "    {}. {}\n       {fault}\n       hint: {}\n",
            i + 1,
            crate::attempt_log::redact_url(url),
            fault.class.hint()
        ));
    }
    let untried = model.urls.len() - failed.tried.len();
    if untried > 0 {
        out.push_str(&format!(
            "    ({untried} more URL(s) not tried: the fault above is local)\n"
        ));
    }
    out.push_str(&format!(
        "  to install it by hand, download it from one of the URLs above and save it as:\n    {dest}\n  \
         expected size:   {} bytes ({})\n  expected sha256: {}\n  then check it with:\n    {}",
        model.size,
        human_bytes(model.size),
        model.sha256,
        cx.command_for("verify", &model.name)
    ));
    out
}
