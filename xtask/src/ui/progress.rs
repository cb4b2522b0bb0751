//! What the user sees while work happens.
//!
//! On a terminal each transfer gets a live bar (bytes, rate, ETA) on stderr. Elsewhere
//! (CI logs, pipes) a bar would fill the log with control codes, so a transfer prints a
//! plain line when it starts, when it ends and at most every [`LINE_INTERVAL`] between.
//! `--quiet` keeps only errors; the caller prints the final summary itself.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::text::{human_bytes, rate};

/// How often a plain-line transfer reports while it runs.
pub(crate) const LINE_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Bars,
    Lines,
    Quiet,
    /// Nothing at all, errors included: the library's calls, whose caller gets events
    /// and results instead.
    Silent,
}

pub(crate) struct Reporter {
    mode: Mode,
    bars: Option<MultiProgress>,
    /// All bytes of this run, below the per-file bars.
    total: OnceLock<ProgressBar>,
}

impl Reporter {
    /// Bars on a terminal, plain lines elsewhere, errors only with `quiet`.
    pub(crate) fn for_stderr(quiet: bool) -> Reporter {
        let mode = match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Bars,
            (false, false) => Mode::Lines,
        };
        Reporter::new(mode)
    }

    pub(crate) fn new(mode: Mode) -> Reporter {
        let bars =
            (mode == Mode::Bars).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Reporter { mode, bars, total: OnceLock::new() }
    }

    /// Adds a bar for the whole run (terminal only) of `bytes` to download.
    pub(crate) fn start_total(&self, bytes: u64) {
        let Some(bars) = &self.bars else { return };
        let bar = bars.add(ProgressBar::new(bytes));
        bar.set_style(bar_style());
        bar.set_message("total");
        let _ = self.total.set(bar);
    }

    pub(crate) fn finish_total(&self) {
        if let Some(bar) = self.total.get() {
            bar.finish_and_clear();
        }
    }

    pub(crate) fn is_quiet(&self) -> bool {
        matches!(self.mode, Mode::Quiet | Mode::Silent)
    }

    /// Whether nothing at all is shown (the library's calls).
    pub(crate) fn is_silent(&self) -> bool {
        self.mode == Mode::Silent
    }

    /// Routine news (a model already present, a file installed); hidden by `--quiet`.
    pub(crate) fn note(&self, message: &str) {
        if !self.is_quiet() {
            self.println(message);
        }
    }

    /// Something went wrong but work goes on (a retry); hidden by `--quiet`.
    pub(crate) fn warn(&self, message: &str) {
        if !self.is_quiet() {
            self.println(&format!("warning: {message}"));
        }
    }

    /// Shown unless silent.
    pub(crate) fn error(&self, message: &str) {
        if !self.is_silent() {
            self.println(message);
        }
    }

    fn println(&self, message: &str) {
        match &self.bars {
            // Printed above the bars, so live bars are never torn by a message.
            Some(bars) => {
                let _ = bars.println(message);
            }
            None => {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{message}");
            }
        }
    }

    /// Starts reporting one file's transfer of `total` bytes.
    pub(crate) fn transfer(&self, name: &str, total: u64) -> Transfer<'_> {
        let bar = self.bars.as_ref().map(|bars| {
            let bar = bars.add(ProgressBar::new(total));
            bar.set_style(bar_style());
            bar.set_message(name.to_owned());
            bar
        });
        let now = Instant::now();
        Transfer { reporter: self, name: name.to_owned(), total, done: 0, bar, started: now, last_line: now }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(
        // 78 columns at most, so a bar fits an 80-column terminal without wrapping.
        "{msg:20!} [{bar:20}] {binary_bytes:>9}/{binary_total_bytes:<9} {binary_bytes_per_sec:>11} {eta:>3}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

/// Progress of one file. Bytes are counted as they are written, in the same pass that
/// hashes them.
pub(crate) struct Transfer<'r> {
    reporter: &'r Reporter,
    name: String,
    total: u64,
    done: u64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_line: Instant,
}

impl Transfer<'_> {
    /// A new attempt continues from `position` bytes (0: from the start).
    pub(crate) fn restart(&mut self, position: u64, source: &str) {
        if let Some(total) = self.reporter.total.get() {
            // Bytes thrown away by this restart no longer count towards the run.
            total.set_position(total.position().saturating_sub(self.done.saturating_sub(position)));
        }
        self.done = position;
        self.started = Instant::now();
        self.last_line = self.started;
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_position(position);
        } else if self.reporter.mode == Mode::Lines {
            // A total of 0 is a size not known yet (`add`): say so instead of "0 B".
            let of = if self.total > 0 { format!(" of {}", human_bytes(self.total)) } else { String::new() };
            let line = if position > 0 {
                format!("{}: resuming at {}{of} from {source}", self.name, human_bytes(position))
            } else if self.total > 0 {
                format!("{}: downloading {} from {source}", self.name, human_bytes(self.total))
            } else {
                format!("{}: downloading (size not known yet) from {source}", self.name)
            };
            self.reporter.println(&line);
        }
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(total) = self.reporter.total.get() {
            total.inc(bytes);
        }
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
            return;
        }
        if self.reporter.mode == Mode::Lines && self.last_line.elapsed() >= LINE_INTERVAL {
            self.last_line = Instant::now();
            let rate = rate(self.done, self.started.elapsed());
            let line = match (u128::from(self.done) * 100).checked_div(u128::from(self.total)) {
                Some(percent) => format!(
                    "{}: {percent}% ({} of {}) at {rate}",
                    self.name,
                    human_bytes(self.done),
                    human_bytes(self.total)
                ),
                None => format!("{}: {} so far at {rate}", self.name, human_bytes(self.done)),
            };
            self.reporter.println(&line);
        }
    }
}

impl Drop for Transfer<'_> {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
