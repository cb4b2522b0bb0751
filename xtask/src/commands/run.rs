//! `models run -- CMD ARGS...`: make sure the models are there, then run the program.
//!
//! The replacement for wrapper scripts that download on the fly: the selected models are
//! fetched through the normal path (instant when they are present and stamped), and only
//! when every one of them is in place does CMD start, with the checkpoints directory in
//! `MODELS_CHECKPOINTS_DIR`. CMD's exit code becomes ours. If a model cannot be
//! provided, CMD never starts and the manual-download block says what to do.

use std::io;
use std::process::Command;

use crate::commands::{Context, fetch};
use crate::engine::plan::Selection;
use crate::error::{EXIT_MODEL_FAILED, Error, Result};

/// The variable CMD finds the checkpoints directory in.
pub const CHECKPOINTS_ENV: &str = "MODELS_CHECKPOINTS_DIR";

/// Runs `command` once the selected models are in place; returns the exit code to end
/// with: the command's own, or 1 when a model is missing (the command never started),
/// or 127 / 126 when it cannot be started, as shells say.
pub fn run(cx: &Context, selection: &Selection, options: fetch::Options, command: &[String]) -> Result<u8> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::usage("give the command to run after `--`"));
    };
    if fetch::run(cx, selection, options)?.failed > 0 {
        cx.reporter.error(&format!("error: not starting `{program}`: the models above are missing"));
        return Ok(EXIT_MODEL_FAILED);
    }
    let status = Command::new(program).args(args).env(CHECKPOINTS_ENV, cx.checkpoints.as_str()).status();
    match status {
        Ok(status) => Ok(exit_byte(status)),
        Err(e) => {
            cx.reporter.error(&format!("error: cannot start `{program}`: {e}"));
            Ok(if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 })
        }
    }
}

/// The child's exit code; a child killed by a signal reports 128 + the signal, as shells do.
fn exit_byte(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(1);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return u8::try_from(128 + signal).unwrap_or(1);
        }
    }
    1
}
