//! Ctrl-C during a fetch: the process ends at once, as a user expects, but not silently.
//! It says that nothing is lost (partial downloads stay beside their files or in the
//! cache, and are resumed) and which command goes on, then exits 130, as shells report an
//! interrupted command.

/// The line said on an interrupt, written once before the handler is installed: a
/// signal handler may only write bytes that already exist.
static MESSAGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();

/// From now on Ctrl-C (and SIGTERM) end this fetch with a line that says how to resume.
pub(super) fn explain_on_interrupt(command: &str) {
    let line = format!("\ninterrupted: partial downloads are kept; `{command}` resumes them\n");
    if MESSAGE.set(line.into_bytes()).is_ok() {
        install();
    }
}

/// Exit code of a command ended by Ctrl-C, as shells give it (128 + SIGINT).
const INTERRUPTED: i32 = 130;

#[cfg(unix)]
fn install() {
    extern "C" fn said(_: libc::c_int) {
        if let Some(line) = MESSAGE.get() {
            // SAFETY: write(2) and _exit(2) are async-signal-safe; the bytes exist until exit.
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(INTERRUPTED);
            }
        }
    }
    let handler = said as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `said` touches only a value set before it was installed, then exits.
        unsafe { libc::signal(signal, handler) };
    }
}

#[cfg(windows)]
fn install() {
    type Handler = unsafe extern "system" fn(u32) -> i32;
    #[link(name = "kernel32")]
    unsafe extern "system" {
        fn SetConsoleCtrlHandler(handler: Option<Handler>, add: i32) -> i32;
    }
    /// Windows runs console handlers on a thread of their own: plain writes are fine.
    unsafe extern "system" fn said(event: u32) -> i32 {
        if event > 1 {
            return 0;
        }
        if let Some(line) = MESSAGE.get() {
            use std::io::Write;
            let _ = std::io::stderr().write_all(line);
        }
        std::process::exit(INTERRUPTED)
    }
    // SAFETY: `said` is a function that lives as long as the process.
    unsafe { SetConsoleCtrlHandler(Some(said), 1) };
}

#[cfg(not(any(unix, windows)))]
fn install() {}
