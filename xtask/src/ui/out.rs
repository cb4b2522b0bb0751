//! Standard output, the one channel results go to. A reader that went away (`| head -1`)
//! ends nothing: writes are dropped quietly. Any other failure (a full disk behind
//! `> file`) is kept, and the command line reports it at the end with exit code 1,
//! instead of a panic or a silently truncated result.

use std::io::{self, Write};
use std::sync::Mutex;

/// The first write to stdout that failed for a reason other than a closed pipe.
static FAILED: Mutex<Option<io::Error>> = Mutex::new(None);

/// Writes one line to stdout.
pub(crate) fn line(text: &str) {
    let mut out = io::stdout().lock();
    let written = writeln!(out, "{text}").and_then(|()| out.flush());
    remember(written);
}

/// Writes `document` as one JSON line to stdout.
pub(crate) fn json<T: serde::Serialize>(document: &T) {
    let mut out = io::stdout().lock();
    let written = serde_json::to_writer(&mut out, document)
        .map_err(io::Error::other)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush());
    remember(written);
}

fn remember(written: io::Result<()>) {
    let Err(e) = written else { return };
    if e.kind() == io::ErrorKind::BrokenPipe {
        return;
    }
    if let Ok(mut failed) = FAILED.lock()
        && failed.is_none()
    {
        *failed = Some(e);
    }
}

/// The stdout failure to report, if any (taken once).
pub(crate) fn take_failure() -> Option<io::Error> {
    FAILED.lock().ok().and_then(|mut failed| failed.take())
}
