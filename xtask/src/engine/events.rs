//! What a download reports while it runs, as rustup's download crate does: the engine
//! emits [`Event`]s to a callback and knows no UI. Progress bars, `--log-file` and the
//! retry warnings are listeners in the command layer.

use std::time::Duration;

pub(crate) use crate::engine::segments::Ranged;
use crate::error::{Fault, Origin, Then};

/// One thing that happened to one model's download.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// An attempt on `origin` starts receiving; `position` bytes are already on disk (0:
    /// from the start, more: a resume).
    Started { origin: &'a Origin, position: u64 },
    /// This many more bytes were written to the temp file.
    Bytes(u64),
    /// An attempt ended, well or not.
    Attempted(&'a Attempted<'a>),
    /// A transient fault: the same origin is tried again after `wait`.
    Retrying { origin: &'a Origin, fault: &'a Fault, wait: Duration },
    /// The origin failed for good; the next one, if any, is tried.
    GaveUp { origin: &'a Origin, fault: &'a Fault },
    /// One request for a range of a file split over several connections ended.
    Range { origin: &'a Origin, ranged: &'a Ranged },
    /// A split transfer ended: how many connections it used and why (`connections
    /// 1→2→8 (rate 16→32→121 MiB/s): held at 8, …`).
    Connections { story: &'a str, proxied: bool },
    /// `origin` sent bytes that differ from those `first` sent for the same range,
    /// first at byte `at`, and the file then hashed right: `origin` is the bad source.
    Differed { origin: &'a Origin, at: u64, first: &'a Origin },
    /// Bytes kept from an earlier, interrupted run differed from the pinned file (first at
    /// `at`) and were fetched again from `first`; who sent them is not known.
    KeptDiffered { at: u64, first: &'a Origin },
    /// A resume record beside the partial download did not match what is on disk (the
    /// partial was removed or cut by hand, say): it was dropped, and the download starts
    /// over. Never an error: the record was only an aid.
    RecordDropped { why: &'static str },
    /// The file is in place.
    Finished,
}

/// One attempt, as the attempt log records it.
#[derive(Debug)]
pub(crate) struct Attempted<'a> {
    pub origin: &'a Origin,
    pub attempt: u32,
    /// The HTTP status of the answer the body came from, when there was one.
    pub status: Option<u16>,
    pub bytes: u64,
    /// Where the attempt resumed in the file; 0 for a fresh start.
    pub resumed_from: u64,
    pub duration: Duration,
    /// `None` when the attempt succeeded.
    pub fault: Option<&'a Fault>,
    /// What comes next; `None` when the attempt succeeded.
    pub decision: Option<Then>,
}
