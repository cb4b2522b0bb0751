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
use crate::engine::settings::Settings;
use crate::error::{EXIT_MODEL_FAILED, Error, Result};

/// The variable CMD finds the checkpoints directory in.
pub(crate) const CHECKPOINTS_ENV: &str = "MODELS_CHECKPOINTS_DIR";

/// Runs `command` once the selected models are in place; returns the exit code to end
/// with: the command's own, or 1 when a model is missing (the command never started),
/// or 127 / 126 when it cannot be started, as shells say.
pub(crate) fn run(
    cx: &Context,
    selection: &Selection,
    settings: &Settings,
    command: &[String],
) -> Result<u8> {
    let Some((program, args)) = command.split_first() else {
        return Err(Error::usage("give the command to run after `--`"));
    };
    if fetch::run(cx, selection, settings)?.failed > 0 {
        cx.reporter.error(&format!("error: not starting `{program}`: the models above are missing"));
        return Ok(EXIT_MODEL_FAILED);
    }
    // Catch the signals before the command exists: one sent right after it starts must
    // reach it, not end this process (handlers are reset in the child at exec).
    catch_signals();
    let child = Command::new(program).args(args).env(CHECKPOINTS_ENV, cx.checkpoints.as_str()).spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            cx.reporter.error(&format!("error: cannot start `{program}`: {e}"));
            return Ok(if e.kind() == io::ErrorKind::NotFound { 127 } else { 126 });
        }
    };
    let status =
        supervise(&mut child).map_err(|e| Error::usage(format!("cannot wait for `{program}`: {e}")))?;
    Ok(exit_byte(status))
}

/// Ends this process with the command's whole exit code. On Windows a code is 32 bits
/// (`exit 256`, an access violation's 0xC0000005) and `ExitCode` holds a byte: 256 would
/// read as success to `&&` and `if errorlevel 1`. What was printed is flushed first;
/// nothing else is left to do (the run is over, its locks went with `fetch`).
fn exit_whole(code: i32) -> ! {
    use std::io::Write;
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    std::process::exit(code)
}

/// A signal caught while the command runs, to be passed on (0: none).
#[cfg(unix)]
static PENDING: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// From now on SIGTERM, SIGINT and SIGHUP are noted for the command instead of ending
/// this process.
#[cfg(unix)]
fn catch_signals() {
    extern "C" fn note(signal: libc::c_int) {
        PENDING.store(signal, std::sync::atomic::Ordering::SeqCst);
    }
    let handler = note as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: `note` only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(signal, handler) };
    }
}

/// From now on Ctrl-C and Ctrl-Break do not end this process: in a console they reach
/// every process attached to it, so the command gets its own and decides; this process
/// waits for it and passes its exit code on, rather than die first and orphan it.
#[cfg(windows)]
fn catch_signals() {
    type Handler = unsafe extern "system" fn(u32) -> i32;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn SetConsoleCtrlHandler(handler: Option<Handler>, add: i32) -> i32;
    }
    /// CTRL_C_EVENT (0) and CTRL_BREAK_EVENT (1) are handled, by doing nothing; closing
    /// the console, logging off and shutting down end the process as they always do.
    unsafe extern "system" fn outlive(event: u32) -> i32 {
        i32::from(event <= 1)
    }
    // A handler, not `SetConsoleCtrlHandler(NULL, TRUE)`: that flag is inherited, and
    // the command would not hear Ctrl-C either.
    // SAFETY: `outlive` touches nothing and is a function that lives as long as the process.
    unsafe { SetConsoleCtrlHandler(Some(outlive), 1) };
}

#[cfg(not(any(unix, windows)))]
fn catch_signals() {}

/// Waits for the child, passing on SIGTERM, SIGINT and SIGHUP sent to this process, as a
/// supervisor does: stopping the wrapper stops the command, and nothing is orphaned.
#[cfg(unix)]
fn supervise(child: &mut std::process::Child) -> io::Result<std::process::ExitStatus> {
    use std::sync::atomic::Ordering;
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let signal = PENDING.swap(0, Ordering::SeqCst);
        if signal != 0 {
            // SAFETY: `pid` is our own child, not yet reaped, so it names no other process.
            unsafe { libc::kill(pid, signal) };
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[cfg(not(unix))]
fn supervise(child: &mut std::process::Child) -> io::Result<std::process::ExitStatus> {
    child.wait()
}

/// The child's exit code; a child killed by a signal reports 128 + the signal, as shells do.
fn exit_byte(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        if cfg!(windows) && !(0..=255).contains(&code) {
            exit_whole(code);
        }
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
