//! The pieces of a split file: which bytes are done, which connection owns which piece,
//! how a finished connection takes work from the slowest, and which source wrote what.

use std::time::{Duration, Instant};

use crate::engine::segments::MIN_SPLIT;

/// What a connection reads and writes at once. 256 KiB: at 64 KiB the locks, writes and
/// wake-ups per byte doubled the system time of a split 1 GiB. A takeover of a slow
/// connection waits for none of it ([`Piece::writing`]).
pub(crate) const CHUNK: u64 = 256 << 10;

/// A connection is judged slow only after it has been on its piece this long.
const PACE_WINDOW: Duration = Duration::from_secs(1);
/// A connection this many times slower than one that is free is far behind: the free one
/// takes over what it has left (as aria2's lowest-speed limit, but against its peers).
const FAR_BEHIND: f64 = 4.0;

/// One piece of the file: `[start, end)`, done up to `next`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub start: u64,
    pub next: u64,
    pub end: u64,
    pub(super) owner: Option<usize>,
    /// The source whose bytes are on disk here, to be compared with what comes (an audit).
    pub(super) audit: Option<usize>,
    /// When its owner took it, and where it stood then: its owner's pace.
    pub(super) since: Option<(Instant, u64)>,
    /// Where the write its owner is making now ends (0: none). A takeover starts past it,
    /// so no byte is written twice, and no earlier: what the owner has only read, not
    /// written, is dropped when it finds its piece ended.
    pub(super) writing: u64,
}

impl Piece {
    pub(super) fn new(start: u64, end: u64) -> Piece {
        Piece { start, next: start, end, owner: None, audit: None, since: None, writing: 0 }
    }

    /// `[start, end)` done already.
    pub(crate) fn done(start: u64, end: u64) -> Piece {
        Piece { next: end, ..Piece::new(start, end) }
    }

    /// `[start, end)` to fetch again, comparing it with the bytes `source` left there.
    pub(crate) fn audit(start: u64, end: u64, source: usize) -> Piece {
        Piece { audit: Some(source), ..Piece::new(start, end) }
    }

    pub(super) fn left(&self) -> u64 {
        self.end - self.next
    }
}

/// `size` split into `count` pieces of nearly equal length.
pub(crate) fn split(size: u64, count: usize) -> Vec<Piece> {
    let count = (count.max(1) as u64).min(size.div_ceil(MIN_SPLIT).max(1));
    (0..count).map(|i| Piece::new(size * i / count, size * (i + 1) / count)).collect()
}

/// The end of the contiguous done prefix: what may be hashed.
pub(crate) fn frontier(pieces: &[Piece]) -> u64 {
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

/// How fast a connection that asks for work went on its last piece (bytes per second),
/// when it knows.
pub(super) type Pace = Option<f64>;

/// Gives `worker` something to fetch: an unowned piece with work left, else the second
/// half of the owned piece with the most left (when both halves are worth a request),
/// else, when that piece's owner is far behind `pace`, all it has left: the slow
/// connection stops at the next byte it would write. `None`: nothing to take now.
pub(super) fn claim(pieces: &mut Vec<Piece>, worker: usize, now: Instant, pace: Pace) -> Option<usize> {
    if let Some(i) = pieces.iter().position(|p| p.owner.is_none() && p.left() > 0) {
        pieces[i].owner = Some(worker);
        pieces[i].since = Some((now, pieces[i].next));
        return Some(i);
    }
    let (i, victim) = pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| p.owner.is_some_and(|o| o != worker) && p.left() > 0)
        .max_by_key(|(_, p)| p.left())?;
    // Past the bytes the owner is writing right now: no byte is written twice.
    let busy = victim.next.max(victim.writing);
    let from = if victim.left() >= 2 * MIN_SPLIT {
        (victim.next + victim.left() / 2).max(busy)
    } else if far_behind(victim, now, pace) && victim.end > busy {
        busy
    } else {
        return None;
    };
    let (end, audit) = (victim.end, victim.audit);
    pieces[i].end = from;
    let since = Some((now, from));
    pieces.push(Piece { start: from, next: from, end, owner: Some(worker), audit, since, writing: 0 });
    Some(pieces.len() - 1)
}

/// Whether `piece`'s owner, measured over at least [`PACE_WINDOW`], goes [`FAR_BEHIND`]
/// times slower than `pace`.
fn far_behind(piece: &Piece, now: Instant, pace: Pace) -> bool {
    let (Some(pace), Some((since, from))) = (pace, piece.since) else { return false };
    let elapsed = now.saturating_duration_since(since);
    if elapsed < PACE_WINDOW {
        return false;
    }
    let its_pace = piece.next.saturating_sub(from) as f64 / elapsed.as_secs_f64();
    its_pace * FAR_BEHIND < pace
}

/// Bytes `[start, end)` of the file, written from source `source` (an index into
/// [`Transfer::urls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: u64,
    pub end: u64,
    pub source: usize,
}

/// The source of bytes kept from an earlier, interrupted run: not known, so never credited
/// to the first source (an audit fetches them again too).
pub(crate) const KEPT: usize = usize::MAX;

/// The pieces that fetch every span not from source 0 again from it, with an audit: the
/// other sources' and the bytes kept from an interrupted run ([`KEPT`]); the rest (source
/// 0's spans in this run) is done.
pub(crate) fn audit_pieces(spans: &[Span], size: u64) -> Vec<Piece> {
    audit_pieces_of(spans, size, |source| source != 0)
}

/// The pieces that fetch again, with an audit, every span whose source `pick` picks; the
/// rest is done.
pub(crate) fn audit_pieces_of(spans: &[Span], size: u64, pick: impl Fn(usize) -> bool) -> Vec<Piece> {
    let mut others: Vec<&Span> = spans.iter().filter(|s| pick(s.source) && s.end > s.start).collect();
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
        assert_eq!(claim(&mut pieces, 0, Instant::now(), None), Some(0));
        assert_eq!(claim(&mut pieces, 1, Instant::now(), None), Some(1));
        pieces[1].next = pieces[1].end;
        pieces[1].owner = None;
        let stolen = claim(&mut pieces, 1, Instant::now(), None).unwrap();
        assert_eq!(stolen, 2);
        assert_eq!(pieces[0].end, 16 << 20, "the slow piece keeps its first half");
        assert_eq!((pieces[2].start, pieces[2].end), (16 << 20, 32 << 20));
        pieces[0].next = pieces[0].end - MIN_SPLIT;
        pieces[2].next = pieces[2].end;
        assert_eq!(claim(&mut pieces, 1, Instant::now(), None), None, "too little left to split");
    }

    #[test]
    fn a_connection_far_behind_gives_up_what_it_has_left_to_a_free_one() {
        let t0 = Instant::now();
        let mut pieces = split(8 << 20, 2);
        assert_eq!(claim(&mut pieces, 0, t0, None), Some(0));
        assert_eq!(claim(&mut pieces, 1, t0, None), Some(1));
        // Worker 1 finished its half; worker 0 moved 100 KB in 2 s, 3.9 MiB left.
        pieces[1].next = pieces[1].end;
        pieces[1].owner = None;
        pieces[0].next = 100_000;
        let later = t0 + Duration::from_secs(2);
        assert_eq!(claim(&mut pieces, 1, later, None), None, "no pace known: no judgement");
        assert_eq!(
            claim(&mut pieces, 1, t0 + Duration::from_millis(500), Some(50e6)),
            None,
            "too soon to judge"
        );
        pieces[0].writing = 100_000 + 5000;
        let taken = claim(&mut pieces, 1, later, Some(50e6)).expect("far behind: taken over");
        assert_eq!((pieces[taken].start, pieces[taken].end), (105_000, 4 << 20));
        assert_eq!(pieces[0].end, 105_000, "the slow one ends with the write it is making");
        let mut idle = split(8 << 20, 2);
        claim(&mut idle, 0, t0, None);
        claim(&mut idle, 1, t0, None);
        idle[1].next = idle[1].end;
        idle[1].owner = None;
        idle[0].next = 100_000;
        let taken = claim(&mut idle, 1, later, Some(50e6)).expect("far behind: taken over");
        assert_eq!(idle[taken].start, 100_000, "nothing being written: all it has left");
        assert_eq!(idle[0].end, idle[0].next, "the slow one is done: what it reads next is dropped");
        let mut even = split(8 << 20, 2);
        claim(&mut even, 0, t0, None);
        claim(&mut even, 1, t0, None);
        even[1].next = even[1].end;
        even[1].owner = None;
        even[0].next = 3 << 20;
        assert_eq!(claim(&mut even, 1, later, Some(2e6)), None, "keeping pace: left alone");
    }

    #[test]
    fn the_open_first_body_goes_to_the_piece_at_byte_zero_whoever_claims_first() {
        let mut pieces = split(64 << 20, 4);
        pieces[0].owner = Some(0);
        assert_eq!(
            claim(&mut pieces, 3, Instant::now(), None),
            Some(1),
            "another worker never takes the first piece"
        );
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
            "the first source's spans are done"
        );
        let kept = [Span { start: 0, end: 50, source: KEPT }, Span { start: 50, end: 100, source: 0 }];
        let shape: Vec<_> = audit_pieces(&kept, 100).iter().map(|p| (p.start, p.end, p.audit)).collect();
        assert_eq!(shape, [(0, 50, Some(KEPT)), (50, 100, None)], "kept bytes are never the first source's");
        assert_eq!(frontier(&pieces), 10);
    }
}
