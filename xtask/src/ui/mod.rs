//! What the user sees: [`progress`] bars and lines, [`json`] records for `--json`, and
//! the [`attempt_log`] of `--log-file`, and [`out`], standard output itself. Each one listens to the engine's events or reads
//! its results; none of them changes anything.

pub(crate) mod attempt_log;
pub(crate) mod json;
pub(crate) mod out;
pub(crate) mod progress;
