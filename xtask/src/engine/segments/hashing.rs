//! The digest of a split file, made while the frontier (the contiguous prefix done) moves.
//!
//! sha256 is sequential and the pieces land out of order. The connection writing at the
//! frontier hands its buffer over as it is ([`Frontier::offer`]), so those bytes are
//! hashed from memory and never read again: with one connection (what `auto` holds at on
//! a fast link) that is every byte. What passed the frontier some other way (pieces done
//! ahead of it, a resumed run's, a buffer the queue had no room for) is read back from
//! the file, which the page cache still holds. Each byte is hashed once and in order: the
//! buffers handed over and the ranges read back are both claimed under the board's lock,
//! each where the last claim ended ([`Frontier::cursor`]).

use std::collections::VecDeque;
use std::fs::File;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::engine::segments::{Board, frontier};
use crate::error::{Class, Fault};
use crate::store::fs::read_exact_at;
use crate::store::hash::{HASH_BUFFER, hex};

/// Buffers handed over and not hashed yet, at most: with 256 KiB chunks, 2 MiB. A hasher
/// slower than the link (no SHA-NI) makes the frontier's writer fall back to read-back
/// instead of growing memory.
const QUEUED: usize = 8;

/// The hashing thread's side of the board.
#[derive(Default)]
pub(super) struct Frontier {
    /// Where the next claim starts: every byte below is hashed, queued, or being read back.
    cursor: u64,
    queue: VecDeque<Handed>,
    /// Buffers the hashing thread is done with, for the connections to fill again.
    spare: Vec<Vec<u8>>,
    /// The hashing thread waits for the frontier to move: a write there must wake it.
    idle: bool,
}

/// `buf[..len]`, the file's bytes at `at`.
struct Handed {
    at: u64,
    buf: Vec<u8>,
    len: usize,
}

impl Frontier {
    /// Takes `buf[..len]`, just written at `at`, when those are the next bytes to hash and
    /// the queue has room; `buf` is then a spare buffer, or empty (for the caller to
    /// allocate outside the lock). Says whether it took them, and whether the hashing
    /// thread must be woken for them.
    pub(super) fn offer(&mut self, at: u64, buf: &mut Vec<u8>, len: usize) -> Offer {
        if at != self.cursor || self.queue.len() >= QUEUED {
            return Offer::Declined;
        }
        let replacement = self.spare.pop().unwrap_or_default();
        let full = std::mem::replace(buf, replacement);
        self.queue.push_back(Handed { at, buf: full, len });
        self.cursor = at + len as u64;
        Offer::Taken { wake: self.idle }
    }
}

pub(super) enum Offer {
    Taken { wake: bool },
    Declined,
}

/// What the hashing thread does next.
enum Work {
    Handed(Handed),
    /// Read `[from, until)` back from the file, with the side file's bytes in these ranges.
    ReadBack {
        from: u64,
        until: u64,
        substituted: Vec<(u64, u64)>,
    },
}

/// The digest of the whole file, and how much of it had to be read back from the file.
pub(super) struct Hashed {
    pub sha256: String,
    pub read_back: u64,
}

/// The hashing thread: hashes what is handed over and reads back the rest, up to the
/// frontier, until `size` (with the side file's bytes in the ranges an audit put there).
pub(super) fn follow_frontier(
    board: &Board<'_>,
    file: &File,
    side: Option<&File>,
    size: u64,
) -> Result<Hashed, Fault> {
    let mut hasher = Sha256::new();
    let (mut hashed, mut read) = (0u64, 0u64);
    // Allocated on the first read-back: a run hashed all from memory never needs it.
    let mut buf = Vec::new();
    let mut done_with = None;
    while hashed < size {
        match next_work(board, done_with.take(), size)? {
            Work::Handed(handed) => {
                // Claims are made in order, each where the last ended: these are next.
                debug_assert_eq!(handed.at, hashed, "a buffer handed over out of order");
                hasher.update(&handed.buf[..handed.len]);
                hashed += handed.len as u64;
                done_with = Some(handed.buf);
            }
            Work::ReadBack { from, until, substituted } => {
                debug_assert_eq!(from, hashed, "a read-back claimed out of order");
                buf.resize(HASH_BUFFER, 0);
                read_back(&mut hasher, &mut buf, (file, side), (from, until), &substituted)?;
                read += until - from;
                hashed = until;
            }
        }
    }
    Ok(Hashed { sha256: hex(&hasher.finalize()), read_back: read })
}

/// Waits for work: a buffer handed over, else the frontier past the last claim. Gives the
/// buffer hashed last back to the spares.
fn next_work(board: &Board<'_>, done_with: Option<Vec<u8>>, size: u64) -> Result<Work, Fault> {
    let mut state = board.lock();
    if let Some(buf) = done_with
        && state.hashing.spare.len() < QUEUED
    {
        state.hashing.spare.push(buf);
    }
    loop {
        if state.fault.is_some() {
            return Err(Fault::new(Class::Truncated, "stopped"));
        }
        if let Some(handed) = state.hashing.queue.pop_front() {
            return Ok(Work::Handed(handed));
        }
        let frontier = frontier(&state.pieces);
        let from = state.hashing.cursor;
        if frontier > from {
            state.hashing.cursor = frontier;
            // Every range below the frontier is recorded before it moves past it.
            return Ok(Work::ReadBack { from, until: frontier, substituted: state.substituted.clone() });
        }
        if state.workers == 0 && frontier < size {
            return Err(Fault::new(Class::Truncated, "the pieces ended early"));
        }
        state.hashing.idle = true;
        state = board
            .changed
            .wait_timeout(state, Duration::from_millis(200))
            .map_or_else(|e| e.into_inner().0, |r| r.0);
        state.hashing.idle = false;
    }
}

/// Hashes `[from, until)` of `file`, read back through `buf`, with `side`'s bytes in the
/// `substituted` ranges.
fn read_back(
    hasher: &mut Sha256,
    buf: &mut [u8],
    (file, side): (&File, Option<&File>),
    (from, until): (u64, u64),
    substituted: &[(u64, u64)],
) -> Result<(), Fault> {
    let read_back =
        |e: std::io::Error| Fault::new(Class::LocalIo, format!("reading back the partial download: {e}"));
    let mut at = from;
    while at < until {
        let want = (until - at).min(buf.len() as u64) as usize;
        read_exact_at(file, &mut buf[..want], at).map_err(read_back)?;
        if let Some(side) = side {
            let end = at + want as u64;
            for &(start, stop) in substituted.iter().filter(|(start, stop)| *start < end && at < *stop) {
                let (from, to) = (start.max(at), stop.min(end));
                let slice = &mut buf[(from - at) as usize..(to - at) as usize];
                read_exact_at(side, slice, from).map_err(read_back)?;
            }
        }
        hasher.update(&buf[..want]);
        at += want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::segments::{Board, Piece};
    use crate::store::fs::write_all_at;

    #[test]
    fn the_frontiers_bytes_are_hashed_from_memory_and_only_what_landed_ahead_is_read_back() {
        let (size, chunk) = (8000usize, 1000usize);
        let data: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
        let file = tempfile::tempfile().unwrap();
        file.set_len(size as u64).unwrap();
        let board = Board::new(vec![Piece::new(0, 4000), Piece::new(4000, 8000)], Vec::new());
        board.lock().workers = 1;
        let hashed = std::thread::scope(|scope| {
            let hasher = scope.spawn(|| follow_frontier(&board, &file, None, size as u64));
            // The second piece lands first, ahead of the frontier: it must be read back.
            write_all_at(&file, &data[4000..], 4000).unwrap();
            board.lock().pieces[1].next = 8000;
            // The first comes chunk by chunk at the frontier, each buffer handed over.
            for at in (0..4000).step_by(chunk) {
                write_all_at(&file, &data[at..at + chunk], at as u64).unwrap();
                let mut buf = data[at..at + chunk].to_vec();
                let mut state = board.lock();
                state.pieces[0].next = (at + chunk) as u64;
                let offer = state.hashing.offer(at as u64, &mut buf, chunk);
                assert!(matches!(offer, Offer::Taken { .. }), "the frontier's buffer at {at} is taken");
                board.changed.notify_all();
            }
            board.lock().workers = 0;
            board.changed.notify_all();
            hasher.join().unwrap().unwrap()
        });
        assert_eq!(hashed.sha256, hex(&Sha256::digest(&data)), "every byte once, in order");
        assert_eq!(hashed.read_back, 4000, "only the piece written ahead is read back");
    }

    #[test]
    fn a_buffer_off_the_frontier_or_past_a_full_queue_is_declined_and_kept() {
        let mut frontier = Frontier::default();
        let mut buf = vec![1u8; 10];
        assert!(matches!(frontier.offer(0, &mut buf, 10), Offer::Taken { wake: false }));
        assert!(buf.is_empty(), "no spare yet: the caller allocates a new one");
        let mut ahead = vec![2u8; 10];
        assert!(matches!(frontier.offer(20, &mut ahead, 10), Offer::Declined), "not where hashing is");
        assert_eq!(ahead.len(), 10, "a declined buffer stays the caller's");
        for k in 1..QUEUED as u64 {
            let mut next = vec![3u8; 10];
            assert!(matches!(frontier.offer(k * 10, &mut next, 10), Offer::Taken { .. }));
        }
        let mut more = vec![4u8; 10];
        let at = QUEUED as u64 * 10;
        assert!(matches!(frontier.offer(at, &mut more, 10), Offer::Declined), "the queue is full");
        frontier.idle = true;
        frontier.queue.clear();
        assert!(
            matches!(frontier.offer(at, &mut more, 10), Offer::Taken { wake: true }),
            "an idle hasher is woken"
        );
    }
}
