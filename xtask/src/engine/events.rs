//! What providing a model reports while it runs, as rustup's download crate does: the
//! engine emits [`Event`]s to one callback per model and knows no UI. The command line's
//! bars, `--log-file` and warnings are one listener; a library caller's closure is another.
//!
//! Every part of the engine speaks this one vocabulary: the provide stage (locks, the
//! cache), the single stream, and the connections of a split download, whose threads
//! send their events to the caller's thread over a channel, each naming its source.

use std::time::Duration;

use camino::Utf8Path;

use crate::error::{Fault, Origin, Then};

/// The callback one model's events go to.
pub(crate) type Listener<'l> = dyn FnMut(Event<'_>) + 'l;

/// One thing that happened while one model was provided.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Another process holds what this one needs; waiting for it.
    Waiting(Wait),
    /// Another process provided the model while this one waited.
    PresentAfterWait,
    /// The shared cache's entry for the model was corrupt and was removed; it is fetched
    /// again.
    EntryRemoved { entry: &'a Utf8Path, reason: &'a str },
    /// The shared cache's entry for the model was not a regular file (`kind`: a symbolic
    /// link, a folder, a FIFO, a device): never followed or read, it was moved aside to
    /// `to`, and the file is fetched again.
    EntryMovedAside { entry: &'a Utf8Path, kind: &'static str, to: &'a Utf8Path },
    /// A download of `size` bytes begins (0: the size is not known yet).
    Downloading { size: u64 },
    /// An attempt on `origin` starts receiving; `position` bytes are already on disk (0:
    /// from the start, more: a resume).
    Started { origin: &'a Origin, position: u64 },
    /// This many more bytes were written to the temp file.
    Bytes(u64),
    /// An attempt ended, well or not.
    Attempted(&'a Attempted<'a>),
    /// A transient fault: the same origin is tried again after `wait`. (Owned: a split
    /// download's connection sends it from its own thread.)
    Retrying { origin: &'a Origin, fault: Fault, wait: Duration },
    /// The origin failed for good; the next one, if any, is tried.
    GaveUp { origin: &'a Origin, fault: &'a Fault },
    /// One request of a split download for a range of the file ended.
    Range { origin: &'a Origin, ranged: Ranged },
    /// A split download ended: the most connections it used at once, and how it came to
    /// that count (`connections 1→2→8 (rate 16→32→121 MiB/s): held at 8, …`); `proxied`
    /// when a proxy kept it at one by default.
    Connections { most: usize, story: String, proxied: bool },
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
    /// The download is complete and checked.
    Finished,
}

/// What another process holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// The lock of the model's destination: another fetch of the same model.
    Model,
    /// The lock of the model's cache entry: another process downloading it into the cache.
    Cache,
}

/// One attempt, as the attempt log records it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Attempted<'a> {
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

/// One request for `[start, end)` of the file, as the log records it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Ranged {
    pub start: u64,
    pub end: u64,
    /// Bytes written from this request.
    pub bytes: u64,
    pub fault: Option<Fault>,
}
