//! `models run -- CMD ARGS...`: make sure the models are there, then run the program.
//!
//! The replacement for wrapper scripts that download on the fly: the selected models are
//! fetched through the normal path (instant when they are present and stamped), and only
//! when every one of them is in place does CMD start, with the checkpoints directory in
//! `MODELS_CHECKPOINTS_DIR`. CMD's exit code becomes ours. If a model cannot be
//! provided, CMD never starts and the manual-download block says what to do.

use std::process::{Command, ExitCode};

use crate::cli::Context;
use crate::fetch;
use crate::plan::Selection;

/// The variable CMD finds the checkpoints directory in.
pub const CHECKPOINTS_ENV: &str = "MODELS_CHECKPOINTS_DIR";

pub fn run(
    cx: &Context,
    selection: &Selection,
    options: fetch::Options,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let Some((program, args)) = command.split_first() else {
        return Err(crate::error::UsageError("give the command to run after `--`".to_owned()).into());
    };
    if fetch::run(cx, selection, options)? != ExitCode::SUCCESS {
        cx.reporter.error(&format!("error: not starting `{program}`: the models above are missing"));
        return Ok(crate::error::exit_code(true));
    }
    let status = Command::new(program)
        .args(args)
        .env(CHECKPOINTS_ENV, cx.checkpoints.as_str())
        .status()
        .map_err(|e| crate::error::UsageError(format!("cannot start `{program}`: {e}")))?;
    Ok(ExitCode::from(exit_byte(status)))
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
