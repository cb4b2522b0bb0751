//! One large file over several connections, hashed in the same pass.
//!
//! Many hosts cap what one connection gets, so a big file is split into pieces fetched
//! at once with `Range` requests and written in place (positioned writes into the temp
//! file). A connection that finishes its piece takes the unowned work, or splits the
//! piece with the most left and takes its second half, so no slow piece holds up the end.
//! sha256 is sequential: a hashing thread follows the write frontier (the contiguous
//! prefix done so far), taking the frontier's bytes from memory as they are written and
//! reading back from the page cache only what landed ahead of it, so the digest is nearly
//! done when the last byte lands and the file is never read twice.
//!
//! What each piece completed is kept in a small sidecar beside the partial (rewritten
//! atomically a few times a second), so a run killed with `kill -9` resumes only what is
//! missing; the sidecar is never trusted without the final hash, and it names the URL
//! and the validator (ETag or Last-Modified) it was made with: a changed file (a 200 to
//! an `If-Range` request) discards it all. A connection refused with 429, 503 or 403, or
//! answered with 200 to a range, only lowers the connection count: its piece is left for
//! the others. Any other fault ends the transfer with the contiguous prefix kept, so the
//! next attempt resumes as a single stream does.
//!
//! Pieces may come from several sources at once (the model's other URLs and mirrors, as
//! aria2 does with a Metalink): each connection is given one, and one that does not serve
//! the pinned file (a 404, a 200 to a range, another length) moves to the first source.
//! Which source wrote which bytes is recorded as spans. When the digest of a blended file
//! is wrong, the caller fetches the other sources' spans again from the first one with
//! each piece marked for audit: the bytes already there are compared with what comes,
//! which names the source that sent wrong bytes without a second full download.

//!
//! Rooms: [`pieces`] (the work and who owns it), [`connection`] (one connection's loop),
//! [`ramp`] (how many connections, when the user did not say), [`hashing`] (the digest
//! that follows the frontier), [`sidecar`] (the record a kill leaves). This file runs them.

mod connection;
mod hashing;
mod pieces;
mod ramp;
mod sidecar;

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::engine::events::{Event, Listener};
use crate::engine::retry::Limiter;
use crate::engine::settings::Settings;
use crate::engine::slots::HostSlots;
use crate::error::{Class, Fault, Origin};
use crate::net::client::Net;
use crate::source::Source;
use crate::store::partial::Partial;
use crate::text::human_bytes;
use connection::Connection;
pub(crate) use pieces::{KEPT, Piece, Span, audit_pieces, audit_pieces_of, frontier, split};
use ramp::{Ask, Ramp};
pub(crate) use sidecar::{load_sidecar, write_sidecar};

/// Files smaller than this go over one connection: splitting costs a request per piece,
/// and below this size one loopback or LAN connection already ends in well under a second.
pub(crate) const SEGMENT_THRESHOLD: u64 = 32 << 20;
/// A piece is split only when both halves get at least this much.
const MIN_SPLIT: u64 = 2 << 20;
/// How often the sidecar is rewritten while bytes flow.
const SIDECAR_EVERY: Duration = Duration::from_millis(250);
/// How often the caller's thread looks at the transfer (the ramp, the workers): often
/// enough that a ramp step waits little on it (at 50 ms, the 64 MiB/s total-capped bench
/// case took 2.11 s against 2.05 s when every note was a look), rarely enough that the
/// board's lock stays the connections'.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How many connections a split file uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Connections {
    /// As many as add speed ([`ramp`]), from `start` (where the host settled for an
    /// earlier file; 1 for the first), up to `ceiling`.
    Auto { start: usize, ceiling: usize },
    /// Exactly this many from the start (`--connections N`).
    Fixed(usize),
    /// One, whatever the link does: the host is reached through a proxy, which may
    /// fetch the whole file from the origin for every range asked of it.
    ThroughProxy,
}

impl Connections {
    /// How many to open at once.
    fn initial(self) -> usize {
        match self {
            Connections::Auto { start, .. } => start.max(1),
            Connections::Fixed(n) => n.max(1),
            Connections::ThroughProxy => 1,
        }
    }
}

/// What the workers, the hashing thread and the caller share: the state under one lock,
/// and each source with what is known of it.
struct Board<'s> {
    state: Mutex<State>,
    changed: Condvar,
    sources: Vec<Peer<'s>>,
    /// Bytes written by every connection: the caller reads it on its clock (a note per
    /// write would wake it thousands of times a second).
    moved: AtomicU64,
}

struct State {
    pieces: Vec<Piece>,
    /// The fault that ends the transfer, once there is one.
    fault: Option<Fault>,
    /// The last reason a worker gave up its connection (when all do, it is the fault).
    last_refusal: Option<Fault>,
    workers: usize,
    /// The most workers at once.
    most: usize,
    /// Workers whose bytes flow (they have written since they started).
    receiving: usize,
    /// Connections asked to close (the ramp found they added nothing): the next extra
    /// connections to finish a read leave their pieces to the others and end.
    retire: usize,
    /// Connections shed because the host refused them (429, 503, 403), with the last
    /// refusal's status.
    refusals: usize,
    refused_with: Option<u16>,
    /// Connections on the first source: a refusal never sheds the last of them.
    serving_first: usize,
    /// Which source wrote which bytes.
    spans: Vec<Span>,
    /// Sources whose bytes differed from the audit's, with the first such byte.
    differed: Vec<(usize, u64)>,
    /// Ranges whose bytes are in the side file (an audit that does not overwrite).
    substituted: Vec<(u64, u64)>,
    /// The frontier's bytes on their way to the hashing thread.
    hashing: hashing::Frontier,
}

/// One source of the file, as the connections share it.
struct Peer<'s> {
    url: &'s Source,
    /// Its host, the key of the per-host ceiling.
    host: String,
    /// Its validator: the first source's is known from the probe; another's is learnt
    /// from its first answer, and every later piece from it must carry the same.
    validator: Mutex<Option<String>>,
}

impl Peer<'_> {
    fn validator(&self) -> Option<String> {
        self.validator.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn learn(&self, validator: Option<String>) {
        *self.validator.lock().unwrap_or_else(PoisonError::into_inner) = validator;
    }
}

impl Board<'_> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // What runs under this lock is plain field updates and pushes, with no I/O and
        // nothing that can panic halfway; a panic elsewhere on a worker cannot leave the
        // state half-updated, so carry on with what it holds.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn fail(&self, fault: Fault) {
        let mut state = self.lock();
        state.fault.get_or_insert(fault);
        self.changed.notify_all();
    }
}

/// What a segmented transfer needs from its caller.
#[derive(Clone, Copy)]
pub(crate) struct Transfer<'a> {
    pub net: &'a Net,
    /// Where pieces come from. The first is the URL the file was probed at, whose
    /// validator is known; the others serve the same pinned bytes, maybe.
    pub urls: &'a [&'a Source],
    /// The same sources as origins, as events name them (`origins[i]` is `urls[i]`'s).
    pub origins: &'a [&'a Origin],
    /// The first URL's key in the sidecar (a hash: a signed URL's token stays off disk).
    pub url_key: &'a str,
    pub partial: &'a Partial,
    pub size: u64,
    /// ETag or Last-Modified of the file, sent as `If-Range` by every piece; `None`: the
    /// first source's is learnt from its first answer (an audit against another source).
    pub validator: Option<&'a str>,
    /// Whether the sidecar records this run's pieces (not an audit's: the file's own
    /// pieces are all done by then).
    pub record: bool,
    /// An audit that must not overwrite what is there: where the incoming bytes differ,
    /// they go to this file at the same offsets instead, and the digest is of the file
    /// with them in place ([`Done::substituted`]).
    pub side: Option<&'a File>,
    pub connections: Connections,
    /// The run's settings (the retry budget and its backoff).
    pub settings: &'a Settings,
    /// The per-host ceiling a connection beyond the first takes a slot under.
    pub slots: &'a HostSlots,
    /// The shared `--limit-rate` cap, if any.
    pub limiter: Option<&'a Limiter>,
}

/// What the transfer did: the file's digest, which source wrote which bytes, and the
/// sources an audit found wrong (with the first byte). The bytes that came over the
/// network are counted by the caller from the events, so a failed transfer has them too.
pub(crate) struct Done {
    pub sha256: String,
    pub spans: Vec<Span>,
    pub differed: Vec<(usize, u64)>,
    /// With a side file: the ranges `[start, end)` whose bytes there replace the file's.
    pub substituted: Vec<(u64, u64)>,
}

/// Fetches the pieces of `file` (the pre-sized temp file) that are not done yet, the
/// first one's body already open in `first` when this is a fresh start. `events` is
/// called on the caller's thread with what the connections report. Returns the digest of
/// the whole file.
pub(crate) fn run(
    t: &Transfer<'_>,
    file: &File,
    pieces: Vec<Piece>,
    first: Option<Box<dyn Read + Send>>,
    events: &mut Listener<'_>,
) -> Result<Done, Fault> {
    let mut pieces = pieces;
    if first.is_some() {
        // The open body is the file from byte 0: it belongs to the first piece and to no
        // other, whichever worker thread happens to start first.
        if let Some(piece) = pieces.iter_mut().find(|p| p.start == 0) {
            piece.owner = Some(0);
            piece.since = Some((Instant::now(), piece.next));
        }
    }
    let sources: Vec<Peer<'_>> = t
        .urls
        .iter()
        .enumerate()
        .map(|(i, url)| Peer {
            url,
            host: url.host().unwrap_or_default(),
            validator: Mutex::new(t.validator.filter(|_| i == 0).map(str::to_owned)),
        })
        .collect();
    let board = Board::new(pieces, sources);
    let (tx, rx) = mpsc::channel::<Event<'_>>();
    let mut ramp = match t.connections {
        Connections::Auto { start, ceiling } => Some(Ramp::new(start, ceiling)),
        Connections::Fixed(_) | Connections::ThroughProxy => None,
    };
    let digest = std::thread::scope(|scope| {
        let hasher = scope.spawn(|| hashing::follow_frontier(&board, file, t.side, t.size));
        let mut first = first;
        let mut next_worker = 0;
        // Opens connections until `want` are at work (or every source's host is full);
        // returns how many are.
        let mut open_up_to = |want: usize| {
            let count = board.sources.len().max(1);
            let mut tries = 0;
            while board.lock().workers < want && tries < want.saturating_mul(count) {
                tries += 1;
                let worker = next_worker;
                next_worker += 1;
                // Connections take turns over the sources; the first is the probe's,
                // always allowed, and every other one needs room under its host's
                // ceiling (a full host's turn goes to the next source).
                let source = worker % count;
                let slot = match worker {
                    0 => None,
                    _ => match t.slots.take(&board.sources[source].host) {
                        Some(slot) => Some(slot),
                        None => continue,
                    },
                };
                {
                    let mut state = board.lock();
                    state.workers += 1;
                    state.most = state.most.max(state.workers);
                    state.serving_first += usize::from(source == 0);
                }
                let tx = tx.clone();
                let body = first.take();
                let board = &board;
                scope.spawn(move || {
                    // The connection's slot goes back when it is dropped, on every way out.
                    let connection =
                        Connection { t, file, board, worker, source, slot, tx: &tx, streamed: false.into() };
                    let streamed = connection.work(body);
                    let mut state = board.lock();
                    state.workers -= 1;
                    state.receiving -= usize::from(streamed);
                    if state.workers == 0 && state.fault.is_none() && frontier(&state.pieces) < t.size {
                        // Every connection was refused before the file was done.
                        let refusal = state.last_refusal.take().unwrap_or_else(|| {
                            Fault::new(
                                Class::HttpStatus,
                                "every connection was refused before the file was complete",
                            )
                        });
                        state.fault = Some(refusal);
                    }
                    board.changed.notify_all();
                });
            }
            board.lock().workers
        };
        let opened = open_up_to(t.connections.initial());
        if let Some(ramp) = ramp.as_mut() {
            ramp.opened(opened);
        }
        let (mut last_look, mut last_sidecar) = (Instant::now(), Instant::now());
        let (mut told, mut refusals_seen) = (0u64, 0usize);
        // The bytes written since the last look go out before any note that followed
        // them (a range's end after its bytes).
        let mut tell_moved = |events: &mut Listener<'_>| {
            let moved = board.moved.load(Ordering::Relaxed);
            if moved > told {
                events(Event::Bytes(moved - told));
                told = moved;
            }
            moved
        };
        loop {
            match rx.recv_timeout(LOOK_EVERY) {
                Ok(event) => {
                    tell_moved(events);
                    events(event);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // The board is looked at on a clock, not per note, to keep its lock for the
            // connections.
            if last_look.elapsed() < LOOK_EVERY {
                continue;
            }
            last_look = Instant::now();
            let moved = tell_moved(events);
            let (workers, receiving, left, refusals) = {
                let state = board.lock();
                let left = state.pieces.iter().map(Piece::left).sum::<u64>();
                (state.workers, state.receiving, left, state.refusals)
            };
            if workers == 0 {
                // Every worker is done; what they said before ending is in the channel.
                while let Ok(event) = rx.try_recv() {
                    tell_moved(events);
                    events(event);
                }
                break;
            }
            if let Some(ramp) = ramp.as_mut() {
                if refusals > refusals_seen {
                    refusals_seen = refusals;
                    ramp.refused(workers + 1);
                }
                match ramp.look(Instant::now(), moved, receiving, left) {
                    Ask::Keep => {}
                    Ask::Grow(n) => ramp.opened(open_up_to(n)),
                    Ask::Shrink(n) => board.lock().retire = workers.saturating_sub(n),
                }
            }
            if let (true, Some(validator)) = (t.record, t.validator)
                && last_sidecar.elapsed() >= SIDECAR_EVERY
            {
                last_sidecar = Instant::now();
                let pieces = board.lock().pieces.clone();
                write_sidecar(t.partial, t.url_key, t.size, validator, &pieces);
            }
        }
        tell_moved(events);
        // Every worker is done: the hasher ends at the full size or at the fault.
        board.changed.notify_all();
        hasher
            .join()
            .unwrap_or_else(|_| Err(Fault::new(Class::LocalIo, "the hashing thread stopped unexpectedly")))
    });
    let (most, refusals, refused_with) = {
        let state = board.lock();
        (state.most, state.refusals, state.refused_with)
    };
    let mut story = match &ramp {
        Some(ramp) => {
            if let Some(settled) = ramp.settled() {
                t.slots.settle(&board.sources[0].host, settled);
            }
            ramp.story()
        }
        None => match t.connections {
            Connections::ThroughProxy => "connections 1: through a proxy".to_owned(),
            _ => format!("connections {most} (as asked)"),
        },
    };
    if refusals > 0 {
        let status = refused_with.map(|s| format!(" (HTTP {s})")).unwrap_or_default();
        story.push_str(&format!("; {refusals} refused by the host{status}, closed"));
    }
    if let Ok(hashed) = &digest
        && hashed.read_back > 0
    {
        // Bytes that landed ahead of the frontier: what splitting cost the hasher.
        story.push_str(&format!("; {} read back to hash", human_bytes(hashed.read_back)));
    }
    events(Event::Connections { most, story, proxied: t.connections == Connections::ThroughProxy });
    let state = board.into_inner_state();
    if let Some(fault) = state.fault {
        if fault.class == Class::StalePartial {
            // The file changed on the server: its pieces are of two versions. Keep the
            // prefix for the next attempt's `If-Range`, which will start it over.
            let _ = file.set_len(frontier(&state.pieces));
            let _ = std::fs::remove_file(t.partial.ranges());
        } else {
            // Anything else (an outage, a full disk) keeps every completed piece, as a
            // kill does: the next attempt, or run, fetches only what is missing.
            if let (true, Some(validator)) = (t.record, t.validator) {
                write_sidecar(t.partial, t.url_key, t.size, validator, &state.pieces);
            }
        }
        return Err(fault);
    }
    Ok(Done {
        sha256: digest?.sha256,
        spans: state.spans,
        differed: state.differed,
        substituted: state.substituted,
    })
}

impl<'s> Board<'s> {
    fn new(pieces: Vec<Piece>, sources: Vec<Peer<'s>>) -> Board<'s> {
        let state = State {
            pieces,
            fault: None,
            last_refusal: None,
            workers: 0,
            most: 0,
            receiving: 0,
            retire: 0,
            refusals: 0,
            refused_with: None,
            serving_first: 0,
            spans: Vec::new(),
            differed: Vec::new(),
            substituted: Vec::new(),
            hashing: hashing::Frontier::default(),
        };
        Board { state: Mutex::new(state), changed: Condvar::new(), sources, moved: AtomicU64::new(0) }
    }

    fn into_inner_state(self) -> State {
        self.state.into_inner().unwrap_or_else(PoisonError::into_inner)
    }
}
