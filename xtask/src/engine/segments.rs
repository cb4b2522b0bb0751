//! One large file over several connections, hashed in the same pass.
//!
//! Many hosts cap what one connection gets, so a big file is split into pieces fetched
//! at once with `Range` requests and written in place (positioned writes into the temp
//! file). A connection that finishes its piece takes the unowned work, or splits the
//! piece with the most left and takes its second half, so no slow piece holds up the end.
//! sha256 is sequential: a hashing thread follows the write frontier (the contiguous
//! prefix done so far), reading back from the page cache what was just written, so the
//! digest is nearly done when the last byte lands and the file is never read twice.
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

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

use crate::engine::retry::{Limiter, backoff};
use crate::error::{Class, Fault};
use crate::net::client::{Method, Net, parse_content_range, read_fault, status_fault};
use crate::net::url::host;
use crate::store::fs::write_atomically;
use crate::store::hash::{HASH_BUFFER, hex};

/// Files smaller than this go over one connection: splitting costs a request per piece,
/// and below this size one loopback or LAN connection already ends in well under a second.
pub const SEGMENT_THRESHOLD: u64 = 32 << 20;
/// A piece is split only when both halves get at least this much.
const MIN_SPLIT: u64 = 2 << 20;
/// How often the sidecar is rewritten while bytes flow.
const SIDECAR_EVERY: Duration = Duration::from_millis(250);

/// One piece of the file: `[start, end)`, done up to `next`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub start: u64,
    pub next: u64,
    pub end: u64,
    owner: Option<usize>,
    /// The source whose bytes are on disk here, to be compared with what comes (an audit).
    audit: Option<usize>,
}

impl Piece {
    fn new(start: u64, end: u64) -> Piece {
        Piece { start, next: start, end, owner: None, audit: None }
    }

    /// `[start, end)` done already.
    pub fn done(start: u64, end: u64) -> Piece {
        Piece { next: end, ..Piece::new(start, end) }
    }

    /// `[start, end)` to fetch again, comparing it with the bytes `source` left there.
    pub fn audit(start: u64, end: u64, source: usize) -> Piece {
        Piece { audit: Some(source), ..Piece::new(start, end) }
    }

    fn left(&self) -> u64 {
        self.end - self.next
    }
}

/// `size` split into `count` pieces of nearly equal length.
pub fn split(size: u64, count: usize) -> Vec<Piece> {
    let count = (count.max(1) as u64).min(size.div_ceil(MIN_SPLIT).max(1));
    (0..count).map(|i| Piece::new(size * i / count, size * (i + 1) / count)).collect()
}

/// The end of the contiguous done prefix: what may be hashed.
pub fn frontier(pieces: &[Piece]) -> u64 {
    let mut sorted: Vec<&Piece> = pieces.iter().collect();
    sorted.sort_by_key(|p| p.start);
    let mut frontier = 0;
    for piece in sorted {
        if piece.start > frontier {
            break;
        }
        frontier = piece.next;
        if piece.next < piece.end {
            break;
        }
    }
    frontier
}

/// Gives `worker` something to fetch: an unowned piece with work left, else the second
/// half of the owned piece with the most left (when both halves are worth a request).
fn claim(pieces: &mut Vec<Piece>, worker: usize) -> Option<usize> {
    if let Some(i) = pieces.iter().position(|p| p.owner.is_none() && p.left() > 0) {
        pieces[i].owner = Some(worker);
        return Some(i);
    }
    let (i, victim) =
        pieces.iter().enumerate().filter(|(_, p)| p.owner.is_some()).max_by_key(|(_, p)| p.left())?;
    if victim.left() < 2 * MIN_SPLIT {
        return None;
    }
    let mid = victim.next + victim.left() / 2;
    let end = victim.end;
    let audit = victim.audit;
    pieces[i].end = mid;
    pieces.push(Piece { start: mid, next: mid, end, owner: Some(worker), audit });
    Some(pieces.len() - 1)
}

/// Bytes `[start, end)` of the file, written from source `source` (an index into
/// [`Transfer::urls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub start: u64,
    pub end: u64,
    pub source: usize,
}

/// The pieces that fetch every span not from source 0 again from it, with an audit; the
/// rest (source 0's spans, and bytes of unknown source, from a resumed sidecar) is done.
pub fn audit_pieces(spans: &[Span], size: u64) -> Vec<Piece> {
    let mut others: Vec<&Span> = spans.iter().filter(|s| s.source != 0 && s.end > s.start).collect();
    others.sort_by_key(|s| s.start);
    let mut pieces = Vec::new();
    let mut at = 0;
    for span in others {
        if span.start > at {
            pieces.push(Piece::done(at, span.start));
        }
        let start = span.start.max(at);
        if span.end > start {
            pieces.push(Piece::audit(start, span.end, span.source));
            at = span.end;
        }
    }
    if at < size {
        pieces.push(Piece::done(at, size));
    }
    pieces
}

/// What the workers, the hashing thread and the caller share.
struct Board {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    pieces: Vec<Piece>,
    /// The fault that ends the transfer, once there is one.
    fault: Option<Fault>,
    /// The last reason a worker gave up its connection (when all do, it is the fault).
    last_refusal: Option<Fault>,
    workers: usize,
    /// Which source wrote which bytes.
    spans: Vec<Span>,
    /// Per source: its validator (source 0's is known; the others' are learnt from their
    /// first answer), and whether it turned out not to serve this file.
    validators: Vec<Option<String>>,
    dead: Vec<bool>,
    /// Sources whose bytes differed from the audit's, with the first such byte.
    differed: Vec<(usize, u64)>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A worker that panicked cannot leave the board half-updated: each update is a
        // single assignment. Carry on with what it holds.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn fail(&self, fault: Fault) {
        let mut state = self.lock();
        state.fault.get_or_insert(fault);
        self.changed.notify_all();
    }
}

/// Where the pieces are recorded for a resume after a kill.
pub fn sidecar_path(partial: &Utf8Path) -> Utf8PathBuf {
    partial.with_extension("part-ranges")
}

/// The pieces a killed run left, if the sidecar is for this URL, validator and size.
pub fn load_sidecar(partial: &Utf8Path, url_key: &str, size: u64) -> Option<(String, Vec<Piece>)> {
    let text = std::fs::read_to_string(sidecar_path(partial)).ok()?;
    let mut lines = text.lines();
    let mut head = lines.next()?.split(' ');
    let (Some("xtask-ranges-1"), Some(key), Some(total), Some(validator)) =
        (head.next(), head.next(), head.next(), head.next())
    else {
        return None;
    };
    if key != url_key || total.parse::<u64>().ok()? != size {
        return None;
    }
    let mut pieces = Vec::new();
    for line in lines {
        let mut numbers = line.split(' ').map(str::parse::<u64>);
        let (Some(Ok(start)), Some(Ok(next)), Some(Ok(end))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return None;
        };
        if !(start <= next && next <= end && end <= size) {
            return None;
        }
        pieces.push(Piece { next, ..Piece::new(start, end) });
    }
    // The pieces must tile the file exactly, or they describe some other download.
    let mut sorted = pieces.clone();
    sorted.sort_by_key(|p| p.start);
    let tiles = sorted.windows(2).all(|w| w[0].end == w[1].start)
        && sorted.first().is_some_and(|p| p.start == 0)
        && sorted.last().is_some_and(|p| p.end == size);
    tiles.then(|| (validator.to_owned(), pieces))
}

/// Records the pieces for a resume after a kill (atomically: old or new, never a mix).
pub fn write_sidecar(partial: &Utf8Path, url_key: &str, size: u64, validator: &str, pieces: &[Piece]) {
    let mut text = format!("xtask-ranges-1 {url_key} {size} {validator}\n");
    for p in pieces {
        text.push_str(&format!("{} {} {}\n", p.start, p.next, p.end));
    }
    // Only an aid to resuming after a kill: failing to keep it costs a re-download.
    let _ = write_atomically(&sidecar_path(partial), text.as_bytes());
}

/// What a segmented transfer needs from its caller.
pub struct Transfer<'a> {
    pub net: &'a Net,
    /// Where pieces come from. The first is the URL the file was probed at, whose
    /// validator is known; the others serve the same pinned bytes, maybe.
    pub urls: &'a [&'a str],
    /// The first URL's key in the sidecar (a hash: a signed URL's token stays off disk).
    pub url_key: &'a str,
    pub partial: &'a Utf8Path,
    pub size: u64,
    /// ETag or Last-Modified of the file, sent as `If-Range` by every piece.
    pub validator: &'a str,
    pub connections: usize,
    pub retries: u32,
    pub backoff: Duration,
    /// Lets a worker beyond the first open a connection to a host (the per-host ceiling).
    pub admit: &'a (dyn Fn(&str) -> bool + Sync),
    pub release: &'a (dyn Fn(&str) + Sync),
    /// The shared `--limit-rate` cap, if any.
    pub limiter: Option<&'a Limiter>,
}

/// What the transfer did: bytes that came over the network, the file's digest, which
/// source wrote which bytes, and the sources an audit found wrong (with the first byte).
pub struct Done {
    pub received: u64,
    pub sha256: String,
    pub spans: Vec<Span>,
    pub differed: Vec<(usize, u64)>,
}

/// Messages from the workers to the caller's thread, which owns the event listener.
pub enum Note {
    Bytes(u64),
    /// A piece's request failed; the worker retries, or leaves the piece to others.
    Retrying {
        source: usize,
        fault: Fault,
        wait: Duration,
    },
    /// One request for a range ended, well or not (for the attempt log).
    Range(Ranged),
}

/// One request for `[start, end)` of the file from a source, as the log records it.
#[derive(Debug)]
pub struct Ranged {
    pub source: usize,
    pub start: u64,
    pub end: u64,
    /// Bytes written from this request.
    pub bytes: u64,
    pub fault: Option<Fault>,
}

/// Fetches the pieces of `file` (the pre-sized temp file) that are not done yet, the
/// first one's body already open in `first` when this is a fresh start. `notes` is
/// called on the caller's thread with progress. Returns the digest of the whole file.
pub fn run(
    t: &Transfer<'_>,
    file: &File,
    pieces: Vec<Piece>,
    first: Option<Box<dyn Read + Send>>,
    notes: &mut dyn FnMut(Note),
) -> Result<Done, Fault> {
    let mut pieces = pieces;
    if first.is_some() {
        // The open body is the file from byte 0: it belongs to the first piece and to no
        // other, whichever worker thread happens to start first.
        if let Some(piece) = pieces.iter_mut().find(|p| p.start == 0) {
            piece.owner = Some(0);
        }
    }
    let sources = t.urls.len().max(1);
    let mut validators = vec![None; sources];
    validators[0] = Some(t.validator.to_owned());
    let board = Board {
        state: Mutex::new(State {
            pieces,
            fault: None,
            last_refusal: None,
            workers: 0,
            spans: Vec::new(),
            validators,
            dead: vec![false; sources],
            differed: Vec::new(),
        }),
        changed: Condvar::new(),
    };
    let hosts: Vec<String> = t.urls.iter().map(|u| host(u).unwrap_or_default()).collect();
    let (tx, rx) = mpsc::channel::<Note>();
    let mut received = 0u64;
    let digest = std::thread::scope(|scope| {
        let hasher = scope.spawn(|| follow_frontier(&board, file, t.size));
        let mut first = first;
        for worker in 0..t.connections.max(1) {
            // Connections take turns over the sources; the first is the probe's, always
            // allowed, and every other one needs room under its host's ceiling.
            let source = worker % sources;
            if worker > 0 && !(t.admit)(&hosts[source]) {
                continue;
            }
            board.lock().workers += 1;
            let tx = tx.clone();
            let body = first.take();
            let (board, hosts) = (&board, &hosts);
            scope.spawn(move || {
                let held = Connection { t, file, board, worker, source, hosts, tx: &tx }.work(body);
                if worker > 0
                    && let Some(source) = held
                {
                    (t.release)(&hosts[source]);
                }
                let mut state = board.lock();
                state.workers -= 1;
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
        drop(tx);
        let mut last_sidecar = Instant::now();
        loop {
            match rx.recv_timeout(SIDECAR_EVERY) {
                Ok(Note::Bytes(n)) => {
                    received += n;
                    notes(Note::Bytes(n));
                }
                Ok(note) => notes(note),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if last_sidecar.elapsed() >= SIDECAR_EVERY {
                last_sidecar = Instant::now();
                let pieces = board.lock().pieces.clone();
                write_sidecar(t.partial, t.url_key, t.size, t.validator, &pieces);
            }
        }
        // Every worker is done: the hasher ends at the full size or at the fault.
        board.changed.notify_all();
        hasher
            .join()
            .unwrap_or_else(|_| Err(Fault::new(Class::LocalIo, "the hashing thread stopped unexpectedly")))
    });
    let state = board.into_inner_state();
    if let Some(fault) = state.fault {
        // Keep what is contiguous and proven by position; the rest goes, and so does the
        // sidecar: the next attempt resumes the prefix like any single stream.
        let _ = file.set_len(frontier(&state.pieces));
        let _ = std::fs::remove_file(sidecar_path(t.partial));
        return Err(fault);
    }
    Ok(Done { received, sha256: digest?, spans: state.spans, differed: state.differed })
}

impl Board {
    fn into_inner_state(self) -> State {
        self.state.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The hashing thread: waits for the frontier to move, hashes up to it from the file.
fn follow_frontier(board: &Board, file: &File, size: u64) -> Result<String, Fault> {
    let mut hasher = Sha256::new();
    let mut hashed = 0u64;
    let mut buf = vec![0u8; HASH_BUFFER];
    while hashed < size {
        let until = {
            let mut state = board.lock();
            loop {
                if state.fault.is_some() {
                    return Err(Fault::new(Class::Truncated, "stopped"));
                }
                let frontier = frontier(&state.pieces);
                if frontier > hashed {
                    break frontier;
                }
                if state.workers == 0 && frontier < size {
                    return Err(Fault::new(Class::Truncated, "the pieces ended early"));
                }
                state = board
                    .changed
                    .wait_timeout(state, Duration::from_millis(200))
                    .map_or_else(|e| e.into_inner().0, |r| r.0);
            }
        };
        while hashed < until {
            let want = (until - hashed).min(HASH_BUFFER as u64) as usize;
            read_exact_at(file, &mut buf[..want], hashed)
                .map_err(|e| Fault::new(Class::LocalIo, format!("reading back the partial download: {e}")))?;
            hasher.update(&buf[..want]);
            hashed += want as u64;
        }
    }
    Ok(hex(&hasher.finalize()))
}

/// One connection's thread: the transfer it serves and the source it fetches from.
struct Connection<'c, 't> {
    t: &'c Transfer<'t>,
    file: &'c File,
    board: &'c Board,
    worker: usize,
    source: usize,
    hosts: &'c [String],
    tx: &'c mpsc::Sender<Note>,
}

impl Connection<'_, '_> {
    /// Fetches pieces until none is left to claim. Returns the source whose host slot it
    /// still holds (none when it gave its slot back and found no other).
    fn work(mut self, mut body: Option<Box<dyn Read + Send>>) -> Option<usize> {
        let (t, board) = (self.t, self.board);
        let mut failures = 0u32;
        'claims: loop {
            let claimed = {
                let mut state = board.lock();
                if state.fault.is_some() {
                    return Some(self.source);
                }
                match body {
                    // The open body fills the piece from byte 0, set aside for this worker.
                    Some(_) => state.pieces.iter().position(|p| p.start == 0 && p.owner == Some(self.worker)),
                    None => claim(&mut state.pieces, self.worker),
                }
            };
            let Some(i) = claimed else { return Some(self.source) };
            loop {
                let (next, end) = {
                    let state = board.lock();
                    if state.fault.is_some() {
                        return Some(self.source);
                    }
                    (state.pieces[i].next, state.pieces[i].end)
                };
                if next >= end {
                    break;
                }
                let reader = match body.take() {
                    Some(reader) => Ok(reader),
                    None => self.open_piece(next, end),
                };
                let outcome = match reader.and_then(|mut reader| self.pump(i, &mut *reader)) {
                    // Another source gets no second chance: the first one takes over.
                    Err(Step::Transient(fault)) if self.source != 0 => Err(Step::Refused(fault)),
                    outcome => outcome,
                };
                let written = board.lock().pieces[i].next - next;
                if written > 0 {
                    let span = Span { start: next, end: next + written, source: self.source };
                    board.lock().spans.push(span);
                }
                let fault = match &outcome {
                    Ok(_) => None,
                    Err(Step::Transient(f) | Step::Refused(f) | Step::Fatal(f)) => Some(f.clone()),
                };
                let ranged = Ranged { source: self.source, start: next, end, bytes: written, fault };
                let _ = self.tx.send(Note::Range(ranged));
                match outcome {
                    Ok(moved) if moved >= MIN_SPLIT => failures = 0,
                    Ok(_) => {}
                    Err(Step::Refused(fault)) => {
                        // This connection is not welcome here: leave the piece to the
                        // others, and go on from the first source if this was another.
                        let mut state = board.lock();
                        state.pieces[i].owner = None;
                        if self.source != 0 {
                            state.dead[self.source] = true;
                        }
                        state.last_refusal = Some(fault);
                        board.changed.notify_all();
                        drop(state);
                        if self.source == 0 || !self.move_to_first_source() {
                            return (self.source == 0).then_some(0);
                        }
                        failures = 0;
                        // The piece is no longer this connection's (another may hold it
                        // already): claim afresh, from the first source.
                        continue 'claims;
                    }
                    Err(Step::Fatal(fault)) => {
                        board.fail(fault);
                        return Some(self.source);
                    }
                    Err(Step::Transient(fault)) => {
                        failures += 1;
                        if failures > t.retries {
                            board.fail(fault);
                            return Some(self.source);
                        }
                        let wait = fault.retry_after.unwrap_or_else(|| backoff(t.backoff, failures));
                        let _ = self.tx.send(Note::Retrying { source: self.source, fault, wait });
                        std::thread::sleep(wait);
                    }
                }
            }
            board.lock().pieces[i].owner = None;
        }
    }

    /// Gives this connection's slot at its source's host back and takes one at the first
    /// source's host (the probe's, which serves the file). False when there is no room.
    fn move_to_first_source(&mut self) -> bool {
        (self.t.release)(&self.hosts[self.source]);
        if self.worker > 0 && !(self.t.admit)(&self.hosts[0]) {
            return false;
        }
        self.source = 0;
        true
    }

    /// Asks this connection's source for `[next, end)`.
    fn open_piece(&self, next: u64, end: u64) -> Result<Box<dyn Read + Send>, Step> {
        let (t, source) = (self.t, self.source);
        let validator = self.board.lock().validators[source].clone();
        let mut headers = vec![("Range", format!("bytes={next}-{}", end - 1))];
        if let Some(validator) = &validator {
            headers.push(("If-Range", validator.clone()));
        }
        let url = t.urls[source];
        let answer = t.net.request(Method::Get, url, &headers, &[], &|_| Ok(())).map_err(classify)?;
        let response = answer.response;
        let status = response.status().as_u16();
        let validator_now = response
            .headers()
            .get("etag")
            .or_else(|| response.headers().get("last-modified"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == 200 {
            // Either no range support here, or the file changed: the validator decides.
            let fault = Fault::new(Class::StalePartial, "the server sent the whole file to a range request")
                .with_status(200);
            return Err(if source != 0 || validator_now == validator {
                Step::Refused(fault)
            } else {
                Step::Fatal(Fault {
                    detail: "the file changed on the server while its pieces were fetched; starting over"
                        .into(),
                    ..fault
                })
            });
        }
        if status != 206 {
            let fault = status_fault(status);
            // Another source without this file only loses its connections.
            return Err(if source == 0 { classify(fault) } else { Step::Refused(fault) });
        }
        let range = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_content_range);
        if range.map(|(first, _)| first) != Some(next) {
            return Err(Step::Refused(Fault::new(
                Class::HttpStatus,
                "the server answered a different range",
            )));
        }
        if range.and_then(|(_, total)| total).is_some_and(|total| total != t.size) {
            return Err(Step::Refused(Fault::new(
                Class::SizeMismatch,
                format!("{} serves a file of another size", crate::text::redact_url(url)),
            )));
        }
        if validator.is_none() {
            self.board.lock().validators[source] = validator_now;
        }
        Ok(Box::new(response.into_body().into_reader()))
    }

    /// Copies the body into the piece's place until the piece's (possibly shrinking) end.
    /// A piece under audit is compared with the bytes already there before they are
    /// overwritten; the first difference names the source that wrote them.
    fn pump(&self, i: usize, reader: &mut dyn Read) -> Result<u64, Step> {
        let (t, board, file) = (self.t, self.board, self.file);
        // Small per connection: sixteen of them must stay within the memory goal.
        let mut buf = vec![0u8; 64 << 10];
        let mut before = Vec::new();
        let mut moved = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => {
                    let state = board.lock();
                    let piece = state.pieces[i];
                    return if piece.next >= piece.end {
                        Ok(moved)
                    } else {
                        Err(Step::Transient(Fault::new(
                            Class::Truncated,
                            format!("a piece ended at byte {} of {}", piece.next, piece.end),
                        )))
                    };
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let piece = board.lock().pieces[i];
                    return Err(Step::Transient(read_fault(&e, piece.next - piece.start)));
                }
            };
            let (at, take, audit) = {
                let state = board.lock();
                let piece = state.pieces[i];
                (piece.next, (n as u64).min(piece.end.saturating_sub(piece.next)) as usize, piece.audit)
            };
            if take > 0 {
                if let Some(suspect) = audit {
                    before.resize(take, 0);
                    read_exact_at(file, &mut before, at)
                        .map_err(|e| Step::Fatal(Fault::local(t.partial, &e)))?;
                    if let Some(k) = before.iter().zip(&buf[..take]).position(|(a, b)| a != b) {
                        let mut state = board.lock();
                        if !state.differed.iter().any(|(s, _)| *s == suspect) {
                            state.differed.push((suspect, at + k as u64));
                        }
                    }
                }
                write_all_at(file, &buf[..take], at).map_err(|e| Step::Fatal(Fault::local(t.partial, &e)))?;
                let mut state = board.lock();
                state.pieces[i].next = at + take as u64;
                board.changed.notify_all();
                drop(state);
                moved += take as u64;
                let _ = self.tx.send(Note::Bytes(take as u64));
                if let Some(limiter) = t.limiter {
                    limiter.take(take as u64);
                }
            }
            let piece_done = {
                let state = board.lock();
                state.pieces[i].next >= state.pieces[i].end
            };
            if take < n || piece_done {
                // The piece is done (or was split and its first half is): drop the rest.
                return Ok(moved);
            }
        }
    }
}

/// How a piece's request went wrong.
enum Step {
    /// Worth another try on this connection (a timeout, a reset).
    Transient(Fault),
    /// This connection should stop; the others go on (429, 503, 403, a 200 to a range).
    Refused(Fault),
    /// The whole transfer stops (a changed file, a full disk).
    Fatal(Fault),
}

/// Which faults end only this connection, retry it, or end everything.
fn classify(fault: Fault) -> Step {
    match fault.status {
        Some(429 | 503 | 403) => Step::Refused(fault),
        _ if fault.class.is_transient() => Step::Transient(fault),
        _ => Step::Fatal(fault),
    }
}

#[cfg(unix)]
fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(not(unix))]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_tile_the_file_and_the_frontier_stops_at_the_first_gap() {
        let pieces = split(100 << 20, 4);
        assert_eq!(pieces.len(), 4);
        assert_eq!((pieces[0].start, pieces[3].end), (0, 100 << 20));
        assert!(pieces.windows(2).all(|w| w[0].end == w[1].start));
        let mut pieces = pieces;
        pieces[0].next = pieces[0].end;
        pieces[1].next = pieces[1].start + 5;
        pieces[2].next = pieces[2].end;
        assert_eq!(frontier(&pieces), pieces[1].start + 5);
        assert_eq!(split(3 << 20, 16).len(), 2, "no piece smaller than it is worth");
    }

    #[test]
    fn a_finished_worker_takes_half_of_the_slowest_piece() {
        let mut pieces = split(64 << 20, 2);
        assert_eq!(claim(&mut pieces, 0), Some(0));
        assert_eq!(claim(&mut pieces, 1), Some(1));
        pieces[1].next = pieces[1].end;
        pieces[1].owner = None;
        let stolen = claim(&mut pieces, 1).unwrap();
        assert_eq!(stolen, 2);
        assert_eq!(pieces[0].end, 16 << 20, "the slow piece keeps its first half");
        assert_eq!((pieces[2].start, pieces[2].end), (16 << 20, 32 << 20));
        pieces[0].next = pieces[0].end - MIN_SPLIT;
        pieces[2].next = pieces[2].end;
        assert_eq!(claim(&mut pieces, 1), None, "too little left to split");
    }

    #[test]
    fn the_open_first_body_goes_to_the_piece_at_byte_zero_whoever_claims_first() {
        let mut pieces = split(64 << 20, 4);
        pieces[0].owner = Some(0);
        assert_eq!(claim(&mut pieces, 3), Some(1), "another worker never takes the first piece");
    }

    #[test]
    fn an_audit_fetches_again_only_the_other_sources_spans() {
        let spans = [
            Span { start: 0, end: 10, source: 0 },
            Span { start: 30, end: 40, source: 1 },
            Span { start: 10, end: 30, source: 2 },
            Span { start: 40, end: 90, source: 0 },
        ];
        let pieces = audit_pieces(&spans, 100);
        let shape: Vec<_> = pieces.iter().map(|p| (p.start, p.next, p.end, p.audit)).collect();
        assert_eq!(
            shape,
            [(0, 10, 10, None), (10, 10, 30, Some(2)), (30, 30, 40, Some(1)), (40, 100, 100, None)],
            "bytes of unknown source (90..100, from a sidecar) count as the first source's"
        );
        assert_eq!(frontier(&pieces), 10);
    }

    #[test]
    fn a_sidecar_is_trusted_only_for_its_url_size_and_a_tiling() {
        let dir = tempfile::tempdir().unwrap();
        let partial = Utf8PathBuf::try_from(dir.path().join("f.part")).unwrap();
        let mut pieces = split(10 << 20, 3);
        pieces[1].next += 1000;
        write_sidecar(&partial, "key", 10 << 20, "\"etag\"", &pieces);
        let (validator, loaded) = load_sidecar(&partial, "key", 10 << 20).unwrap();
        assert_eq!(validator, "\"etag\"");
        assert_eq!(loaded, pieces);
        assert!(load_sidecar(&partial, "other", 10 << 20).is_none());
        assert!(load_sidecar(&partial, "key", 11 << 20).is_none());
        std::fs::write(sidecar_path(&partial), "xtask-ranges-1 key 10485760 v\n0 0 5\n").unwrap();
        assert!(load_sidecar(&partial, "key", 10 << 20).is_none(), "pieces that do not tile");
    }
}
