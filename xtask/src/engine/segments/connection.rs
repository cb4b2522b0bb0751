//! One connection of a split download: claims a piece, asks its source for the range,
//! writes what comes in place (comparing it first when the piece is under audit), and
//! claims again until no work is left. Who may open it is the per-host ceiling's
//! business ([`crate::engine::slots`]): a connection beyond the file's first holds a
//! [`Slot`] for its source's host, given back when it moves or ends.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::engine::check::{self, SNIFF_LEN, page_fault};
use crate::engine::events::{Event, Ranged};
use crate::engine::retry::{Next, RetryState};
use crate::engine::segments::pieces::{CHUNK, Pace, Span, claim};
use crate::engine::segments::{Board, MIN_SPLIT, Transfer, hashing};
use crate::engine::slots::Slot;
use crate::error::{Class, Fault, Then};
use crate::net::client::{Method, fill};
use crate::net::faults::{parse_content_range, read_fault, status_fault};
use crate::net::headers::{header, if_range_validator, is_html_type, refused_encoding};
use crate::store::fs::{read_exact_at, write_all_at};

/// One connection's thread: the transfer it serves and the source it fetches from.
/// How often a connection with nothing to take looks again at the others' pace.
const WAIT_FOR_WORK: Duration = Duration::from_millis(250);

pub(super) struct Connection<'c, 't> {
    pub t: &'c Transfer<'t>,
    pub file: &'c File,
    pub board: &'c Board<'t>,
    pub worker: usize,
    pub source: usize,
    /// The host slot of an extra connection; the first needs none (the probe's).
    pub slot: Option<Slot<'c>>,
    pub tx: &'c mpsc::Sender<Event<'t>>,
    /// Whether bytes have flowed on this connection (it counts as receiving).
    pub streamed: Cell<bool>,
}

impl Connection<'_, '_> {
    /// Fetches pieces until none is left to claim, or this connection is shed or
    /// retired. Says whether bytes ever flowed on it.
    pub(super) fn work(mut self, body: Option<Box<dyn Read + Send>>) -> bool {
        self.claim_and_fetch(body);
        self.streamed.get()
    }

    fn claim_and_fetch(&mut self, mut body: Option<Box<dyn Read + Send>>) {
        let (t, board) = (self.t, self.board);
        let mut retry = RetryState::new(t.settings.backoff, t.settings.retries);
        // How fast this connection went on its last piece: what a slower one is judged by.
        let mut pace: Pace = None;
        'claims: loop {
            let claimed = {
                let mut state = board.lock();
                loop {
                    if state.fault.is_some() {
                        return;
                    }
                    let claimed = match body {
                        // The open body fills the piece from byte 0, set aside for this worker.
                        Some(_) => {
                            state.pieces.iter().position(|p| p.start == 0 && p.owner == Some(self.worker))
                        }
                        None => claim(&mut state.pieces, self.worker, Instant::now(), pace),
                    };
                    // Nothing to take now, but another connection is still at work: stay by
                    // while it may turn out far behind (then take over what it has left).
                    let others_at_work = state.pieces.iter().any(|p| p.left() > 0 && p.owner.is_some());
                    if claimed.is_some() || body.is_some() || pace.is_none() || !others_at_work {
                        break claimed;
                    }
                    state = board
                        .changed
                        .wait_timeout(state, WAIT_FOR_WORK)
                        .map_or_else(|e| e.into_inner().0, |r| r.0);
                }
            };
            let Some(i) = claimed else { return };
            let (claimed_at, claimed_from) = (Instant::now(), board.lock().pieces[i].next);
            loop {
                let (next, end) = {
                    let state = board.lock();
                    if state.fault.is_some() {
                        return;
                    }
                    (state.pieces[i].next, state.pieces[i].end)
                };
                if next >= end {
                    break;
                }
                // Where the request's body ends: the first one asked for the whole file.
                let (reader, asked_end) = match body.take() {
                    Some(reader) => (Ok(reader), t.size),
                    None => (self.open_piece(next, end), end),
                };
                let outcome = match reader.and_then(|mut reader| self.pump(i, &mut *reader, asked_end)) {
                    // Another source gets no second chance: the first one takes over.
                    Err(Step::Transient(fault)) if self.source != 0 => Err(Step::Refused(fault)),
                    Err(Step::Shed(fault)) if self.source != 0 => Err(Step::Refused(fault)),
                    // The last connection is not shed: it acts on the fault as one stream would.
                    Err(Step::Shed(fault)) if self.shed(fault.status) => Err(Step::Refused(fault)),
                    Err(Step::Shed(fault)) => Err(as_last(fault)),
                    Err(Step::Refused(fault)) if self.source == 0 => {
                        let mut state = board.lock();
                        state.serving_first = state.serving_first.saturating_sub(1);
                        Err(Step::Refused(fault))
                    }
                    outcome => outcome,
                };
                let written = board.lock().pieces[i].next - next;
                if written > 0 {
                    let span = Span { start: next, end: next + written, source: self.source };
                    board.lock().spans.push(span);
                }
                let fault = match &outcome {
                    Ok(_) | Err(Step::Retired) => None,
                    Err(Step::Transient(f) | Step::Shed(f) | Step::Refused(f) | Step::Fatal(f)) => {
                        Some(f.clone())
                    }
                };
                let ranged = Ranged { start: next, end, bytes: written, fault };
                let _ = self.tx.send(Event::Range { origin: t.origins[self.source], ranged });
                match outcome {
                    Ok(moved) if moved >= MIN_SPLIT => retry.reset(),
                    Ok(_) => {}
                    Err(Step::Retired) => {
                        // It added no speed: its piece goes to the others.
                        let mut state = board.lock();
                        state.pieces[i].owner = None;
                        if self.source == 0 {
                            state.serving_first = state.serving_first.saturating_sub(1);
                        }
                        board.changed.notify_all();
                        return;
                    }
                    // (A shed was turned into a refusal above; both leave the same way.)
                    Err(Step::Refused(fault) | Step::Shed(fault)) => {
                        // This connection is not welcome here: leave the piece to the
                        // others, and go on from the first source if this was another.
                        let mut state = board.lock();
                        state.pieces[i].owner = None;
                        state.last_refusal = Some(fault);
                        board.changed.notify_all();
                        drop(state);
                        if self.source == 0 || !self.move_to_first_source() {
                            return;
                        }
                        retry.reset();
                        // The piece is no longer this connection's (another may hold it
                        // already): claim afresh, from the first source.
                        continue 'claims;
                    }
                    Err(Step::Fatal(fault)) => {
                        board.fail(fault);
                        return;
                    }
                    Err(Step::Transient(fault)) => {
                        let Next::Retry(wait) = retry.next(&fault) else {
                            board.fail(fault);
                            return;
                        };
                        let _ = self.tx.send(Event::Retrying { origin: t.origins[self.source], fault, wait });
                        std::thread::sleep(wait);
                    }
                }
            }
            let mut state = board.lock();
            state.pieces[i].owner = None;
            let moved = state.pieces[i].next.saturating_sub(claimed_from);
            let seconds = claimed_at.elapsed().as_secs_f64();
            if moved > 0 && seconds > 0.0 {
                pace = Some(moved as f64 / seconds);
            }
            board.changed.notify_all();
        }
    }

    /// Gives this connection's slot at its source's host back and takes one at the first
    /// source's host (the probe's, which serves the file). False when there is no room.
    fn move_to_first_source(&mut self) -> bool {
        self.slot = None;
        if self.worker > 0 {
            self.slot = self.t.slots.take(&self.board.sources[0].host);
            if self.slot.is_none() {
                return false;
            }
        }
        self.source = 0;
        self.board.lock().serving_first += 1;
        true
    }

    /// Gives this connection up for good, unless it is the last one on the first source:
    /// the count drops, never to zero.
    fn shed(&self, status: Option<u16>) -> bool {
        let mut state = self.board.lock();
        if state.serving_first <= 1 {
            return false;
        }
        state.serving_first -= 1;
        state.refusals += 1;
        state.refused_with = status;
        // The host said how many of us it takes: no more than that for the rest of the run.
        self.t.slots.lower(&self.board.sources[self.source].host);
        true
    }

    /// Asks this connection's source for `[next, end)`.
    fn open_piece(&self, next: u64, end: u64) -> Result<Box<dyn Read + Send>, Step> {
        let (t, source) = (self.t, self.source);
        let peer = &self.board.sources[source];
        let validator = peer.validator();
        let mut headers = vec![("Range", format!("bytes={next}-{}", end - 1))];
        if let Some(validator) = &validator {
            headers.push(("If-Range", validator.clone()));
        }
        let url = peer.url;
        let answer = t.net.request(Method::Get, url, &headers, &[], &|_| Ok(())).map_err(classify)?;
        let response = answer.response;
        let status = response.status().as_u16();
        // The same rule as the request's: a weak tag never counts as a validator.
        let validator_now = if_range_validator(response.headers());
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
        let range = header(response.headers(), "content-range").as_deref().and_then(parse_content_range);
        if range.map(|(first, _)| first) != Some(next) {
            return Err(Step::Refused(Fault::new(
                Class::HttpStatus,
                "the server answered a different range",
            )));
        }
        if range.and_then(|(_, total)| total).is_some_and(|total| total != t.size) {
            return Err(Step::Refused(Fault::new(
                Class::SizeMismatch,
                format!("{url} serves a file of another size"),
            )));
        }
        // Every piece gets the first answer's checks: its bytes are the file's only if
        // they come as they are, and not as a page.
        if let Some(encoding) = refused_encoding(response.headers()) {
            return Err(Step::Refused(Fault::new(
                Class::Encoded,
                format!("a piece came with Content-Encoding: {encoding}, though the tool asked for identity"),
            )));
        }
        let labelled_html = is_html_type(header(response.headers(), "content-type").as_deref());
        let mut body: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        if labelled_html {
            // The bytes decide: busybox httpd labels every piece of a file it does not
            // know `text/html`.
            let mut head = Vec::with_capacity(SNIFF_LEN);
            let read = (&mut body).take(SNIFF_LEN as u64).read_to_end(&mut head);
            if check::sniff(&head) == Some(Class::HtmlPage) {
                return Err(Step::Refused(page_fault(&head, "instead of a piece of the file")));
            }
            if let Err(e) = read {
                return Err(Step::Transient(read_fault(&e, head.len() as u64)));
            }
            body = Box::new(std::io::Cursor::new(head).chain(body));
        }
        if validator.is_none() {
            peer.learn(validator_now);
        }
        Ok(body)
    }

    /// Copies the body into the piece's place until the piece's (possibly shrinking) end,
    /// [`CHUNK`] at a time. A piece under audit is compared with the bytes already there
    /// before they are overwritten; the first difference names the source that wrote them.
    /// Bytes written at the frontier go to the hashing thread as they are.
    fn pump(&self, i: usize, reader: &mut dyn Read, asked_end: u64) -> Result<u64, Step> {
        let (t, board, file) = (self.t, self.board, self.file);
        // Small per connection: sixteen of them must stay within the memory goal.
        let mut buf = vec![0u8; CHUNK as usize];
        let mut before = Vec::new();
        let mut moved = 0u64;
        let mut left = board.lock().pieces[i].left();
        loop {
            // Never more than the piece has left: what is read past it would be dropped.
            let want = left.min(CHUNK) as usize;
            let (n, error) = fill(reader, &mut buf[..want]);
            if n == 0 {
                let piece = board.lock().pieces[i];
                return match error {
                    Some(e) => Err(Step::Transient(read_fault(&e, piece.next - piece.start))),
                    None if piece.next >= piece.end => Ok(moved),
                    None => Err(Step::Transient(Fault::new(
                        Class::Truncated,
                        format!("a piece ended at byte {} of {}", piece.next, piece.end),
                    ))),
                };
            }
            let (at, take, audit) = {
                let mut state = board.lock();
                let piece = &mut state.pieces[i];
                let take = (n as u64).min(piece.end.saturating_sub(piece.next));
                // A takeover leaves these bytes to this connection ([`Piece::writing`]).
                piece.writing = piece.next + take;
                (piece.next, take as usize, piece.audit)
            };
            let mut retiring = false;
            if take > 0 {
                let differs = match audit {
                    Some(suspect) => self.compare(&mut before, &buf[..take], at, suspect)?,
                    None => false,
                };
                let local = |e: io::Error| Step::Fatal(Fault::local(t.partial.path(), &e));
                match (t.side, audit) {
                    // An audit that keeps what is there: what differs goes to the side.
                    (Some(side), Some(_)) if differs => {
                        write_all_at(side, &buf[..take], at).map_err(local)?
                    }
                    (Some(_), Some(_)) => {}
                    _ => write_all_at(file, &buf[..take], at).map_err(local)?,
                }
                let mut state = board.lock();
                if differs && t.side.is_some() {
                    state.substituted.push((at, at + take as u64));
                }
                if !self.streamed.replace(true) {
                    state.receiving += 1;
                }
                // Asked to close: this read's bytes are written; the rest is the others'.
                retiring = state.retire > 0 && self.slot.is_some();
                state.retire -= usize::from(retiring);
                // Never past the end: another connection may have taken the rest meanwhile.
                let piece = &mut state.pieces[i];
                piece.next = (at + take as u64).min(piece.end).max(piece.next);
                piece.writing = 0;
                left = piece.left();
                // What comes in at the frontier is hashed from this buffer, not read back
                // (whichever bytes the digest wants, incoming ones: an audit's side file
                // holds exactly those where they differ).
                let woken = match state.hashing.offer(at, &mut buf, take) {
                    hashing::Offer::Taken { wake } => wake,
                    hashing::Offer::Declined => false,
                };
                // The others wait for a piece's end, not for each write.
                if woken || left == 0 {
                    board.changed.notify_all();
                }
                drop(state);
                if buf.is_empty() {
                    // The buffer went to the hashing thread and no spare was back yet.
                    buf = vec![0u8; CHUNK as usize];
                }
                moved += take as u64;
                board.moved.fetch_add(take as u64, Ordering::Relaxed);
                if let Some(limiter) = t.limiter {
                    limiter.take(take as u64);
                }
            }
            if retiring {
                return Err(Step::Retired);
            }
            if let Some(e) = error {
                let piece = board.lock().pieces[i];
                return Err(Step::Transient(read_fault(&e, piece.next - piece.start)));
            }
            if take < n || left == 0 {
                if take == n && at + take as u64 == asked_end {
                    // The body is all read: one more read sees its end, so the connection
                    // goes back to the pool for this host's next piece (no new handshake).
                    let _ = reader.read(&mut [0u8; 1]);
                }
                // The piece is done (or was split and its first half is): drop the rest.
                return Ok(moved);
            }
        }
    }

    /// Compares `incoming`, for `at`, with what source `suspect` left there; records the
    /// first difference against it. Says whether they differ.
    fn compare(&self, before: &mut Vec<u8>, incoming: &[u8], at: u64, suspect: usize) -> Result<bool, Step> {
        before.resize(incoming.len(), 0);
        read_exact_at(self.file, before, at)
            .map_err(|e| Step::Fatal(Fault::local(self.t.partial.path(), &e)))?;
        let Some(k) = before.iter().zip(incoming).position(|(a, b)| a != b) else {
            return Ok(false);
        };
        let mut state = self.board.lock();
        if !state.differed.iter().any(|(s, _)| *s == suspect) {
            state.differed.push((suspect, at + k as u64));
        }
        Ok(true)
    }
}

/// How a piece's request went wrong.
pub(super) enum Step {
    /// Worth another try on this connection (a timeout, a reset).
    Transient(Fault),
    /// A refusal by policy (429, 503, 403): the connection count drops by this one,
    /// unless it is the last.
    Shed(Fault),
    /// This connection cannot be used here (a 200 to a range, another range or size, or
    /// another source failing): it stops; the others go on.
    Refused(Fault),
    /// The whole transfer stops (a changed file, a full disk).
    Fatal(Fault),
    /// The ramp closed this connection: it added no speed.
    Retired,
}

/// Which faults end only this connection, retry it, or end everything: the class's
/// policy ([`crate::error::Class::policy`]).
fn classify(fault: Fault) -> Step {
    let policy = fault.class.policy();
    match policy.then {
        _ if policy.sheds_connection => Step::Shed(fault),
        Then::Retry => Step::Transient(fault),
        Then::NextSource | Then::GiveUp => Step::Fatal(fault),
    }
}

/// A refusal met by the last connection: what one stream does with it.
fn as_last(fault: Fault) -> Step {
    match fault.class.policy().then {
        Then::Retry => Step::Transient(fault),
        Then::NextSource | Then::GiveUp => Step::Fatal(fault),
    }
}
