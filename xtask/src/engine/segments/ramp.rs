//! How many connections a split file uses when the user did not say (`--connections
//! auto`): it starts where the host settled before (one stream, for the first file) and
//! adds connections while they add speed.
//!
//! Each step is measured over a window that opens only once every connection of the step
//! is receiving (a new connection over a long link needs its handshakes first) and lasts
//! at least [`WINDOW`] and [`WINDOW_BYTES`] per connection (a server pacing each
//! connection sends in bursts: nginx's `limit_rate` writes up to 2 MiB, then sleeps).
//! Where one connection already fills the link (an uncapped server, a link capped in
//! total), the second adds too little: it is closed, and the file goes on as one stream
//! having opened two. Where each connection is capped (CDNs, `limit_rate`), the second
//! nearly doubles the rate: the count then goes to the host's ceiling at once, or doubles
//! when the gain was clear but not near that; it holds at the ceiling, or at the first
//! step that gained too little (whose extra connections are closed). A refusal (429, 503, 403) on
//! an extra connection ends the ramp where it stands, minus the refused.
//!
//! This is pure bookkeeping, fed the bytes and the open count, so its decisions are
//! tested without a clock or a network.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// The least a step is measured over: each window costs the connections it does not yet
/// have, so it is short, and long enough for a connection paced in 2 MiB bursts at
/// 16 MiB/s (nginx's `limit_rate`) to show its pace (`cargo xtask bench --only defaults`).
pub(super) const WINDOW: Duration = Duration::from_millis(150);
/// The least each connection of a step moves before the step is judged.
const WINDOW_BYTES: u64 = 2 << 20;
/// The most a step is measured over, whatever has moved: a slow link decides too.
const WINDOW_MAX: Duration = Duration::from_secs(3);
/// A step that raised the rate by less than this (25 %) added nothing worth its
/// connections.
const CLEAR_GAIN: f64 = 1.25;
/// The first extra connection must do better (50 %): splitting has costs of its own (the
/// hasher reads back what the pieces wrote, the server serves more requests), and on an
/// uncapped loopback link a second connection gains ~35 % over a window while the
/// whole fetch ends later (`cargo xtask bench --only defaults`, case 12b).
const FIRST_GAIN: f64 = 1.5;
/// A step that gained this share of what its connections would add if each were capped
/// alike was near-linear: each connection has a cap of its own, so the next step goes
/// straight to the ceiling (as aria2c `-x16` starts), still measured and undone if it
/// gains too little.
const NEAR_LINEAR: f64 = 0.6;

/// What the ramp asks of the transfer after a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ask {
    /// Nothing changes.
    Keep,
    /// Open connections until this many are open.
    Grow(usize),
    /// Close connections until this many are open.
    Shrink(usize),
}

/// Why the count stopped where it did, for the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Held {
    /// Still ramping (the file ended first).
    Ramping,
    /// The last step gained too little; its connections were closed.
    NoGain,
    /// The host's ceiling (`--connections` over all files, or lowered by refusals).
    Ceiling,
    /// A connection was refused (429, 503, 403).
    Refused,
    /// What was left was too little to share out.
    Ending,
}

/// One file's ramp: the steps taken, and the window being measured.
#[derive(Debug)]
pub(super) struct Ramp {
    ceiling: usize,
    /// Connections the current step wants open.
    target: usize,
    /// Rate per step, in bytes per second: `(connections, rate)`.
    steps: Vec<(usize, f64)>,
    /// The window of the current step, once all its connections receive.
    window: Option<(Instant, u64)>,
    held: Held,
}

impl Ramp {
    /// A ramp starting at `start` connections, never beyond `ceiling`.
    pub(super) fn new(start: usize, ceiling: usize) -> Ramp {
        let ceiling = ceiling.max(1);
        let target = start.clamp(1, ceiling);
        let held = if target >= ceiling { Held::Ceiling } else { Held::Ramping };
        Ramp { ceiling, target, steps: Vec::new(), window: None, held }
    }

    /// Connections wanted now.
    #[cfg(test)]
    fn target(&self) -> usize {
        self.target
    }

    /// What a later file from the same host starts with: where the count held, or, when
    /// the file ended while ramping, the count its last measured step led to (each step
    /// is taken only after the one before gained). `None` when nothing was measured.
    pub(super) fn settled(&self) -> Option<usize> {
        (self.held != Held::Ramping || !self.steps.is_empty()).then_some(self.target)
    }

    /// A look at the transfer: `moved` bytes so far in all, `receiving` connections with
    /// bytes flowing, `left` bytes not yet claimed by anyone or in flight.
    pub(super) fn look(&mut self, now: Instant, moved: u64, receiving: usize, left: u64) -> Ask {
        if self.held != Held::Ramping {
            return Ask::Keep;
        }
        let Some((since, from)) = self.window else {
            // The first bytes of a stream come in a burst (socket buffers, slow start, a
            // pacing server's first chunk): the first window opens past them.
            let past_burst = !self.steps.is_empty() || moved >= WINDOW_BYTES;
            if receiving >= self.target && past_burst {
                self.window = Some((now, moved));
            }
            return Ask::Keep;
        };
        let (elapsed, bytes) = (now.saturating_duration_since(since), moved.saturating_sub(from));
        let enough = elapsed >= WINDOW && bytes >= WINDOW_BYTES * self.target as u64;
        if !(enough || elapsed >= WINDOW_MAX) {
            return Ask::Keep;
        }
        let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
        self.steps.push((self.target, rate));
        self.window = None;
        self.next_step(rate, left)
    }

    fn next_step(&mut self, rate: f64, left: u64) -> Ask {
        let n = self.target;
        let grow_by = match self.steps.iter().rev().nth(1) {
            // The first step measured: one more connection (the second, for a host's
            // first file) or twice the count an earlier file settled at is the question.
            None => 2.0,
            Some(&(before, rate_before)) => {
                let gain = rate / rate_before.max(1.0);
                let clear = if before == 1 { FIRST_GAIN } else { CLEAR_GAIN };
                if gain < clear {
                    // Not worth its connections: back to the count before.
                    self.held = Held::NoGain;
                    self.target = before;
                    return Ask::Shrink(before);
                }
                let ideal = n as f64 / before as f64;
                if gain - 1.0 >= NEAR_LINEAR * (ideal - 1.0) { self.ceiling as f64 / n as f64 } else { 2.0 }
            }
        };
        if n >= self.ceiling {
            self.held = Held::Ceiling;
            return Ask::Keep;
        }
        // Each new connection should get a piece worth its request and its window.
        let affordable = n.saturating_add((left / (2 * WINDOW_BYTES)) as usize);
        let next = ((n as f64 * grow_by).round() as usize).max(n + 1).min(affordable);
        if next <= n {
            self.held = Held::Ending;
            return Ask::Keep;
        }
        // At the ceiling it is measured once more: kept if it gained, undone if not.
        let next = next.min(self.ceiling);
        self.target = next;
        Ask::Grow(next)
    }

    /// After a [`Ask::Grow`]: how many connections could be opened (the host's ceiling
    /// over all files may leave fewer): fewer than asked ends the ramp there.
    pub(super) fn opened(&mut self, open: usize) {
        if open < self.target {
            self.target = open.max(1);
            self.held = Held::Ceiling;
        }
    }

    /// A connection was refused by the host (429, 503, 403): the ramp ends with one
    /// fewer than were open.
    pub(super) fn refused(&mut self, open: usize) {
        self.target = open.saturating_sub(1).max(1);
        self.held = Held::Refused;
    }

    /// What happened, as the log says it: each count the ramp went through, with the
    /// rate measured at each (the last count may not have been measured):
    /// `connections 1→2→8→16 (rate 12→25→99 MiB/s): held at 16, the host's ceiling`.
    pub(super) fn story(&self) -> String {
        let mut text = String::from("connections ");
        let mut counts: Vec<String> = self.steps.iter().map(|(n, _)| n.to_string()).collect();
        if self.steps.last().is_some_and(|(n, _)| *n != self.target) {
            counts.push(self.target.to_string());
        }
        let rates: Vec<String> =
            self.steps.iter().map(|(_, r)| format!("{:.0}", r / (1 << 20) as f64)).collect();
        if counts.is_empty() {
            let _ = write!(text, "{}", self.target);
        } else {
            let _ = write!(text, "{} (rate {} MiB/s)", counts.join("→"), rates.join("→"));
        }
        let why = match self.held {
            Held::Ramping => "the file ended while ramping",
            Held::NoGain => "no gain from more",
            Held::Ceiling => "the host's ceiling",
            Held::Refused => "a connection was refused",
            Held::Ending => "too little left to share",
        };
        let _ = write!(text, ": held at {}, {why}", self.target);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// Runs `ramp` against a link where `n` connections move `rate(n)` MiB/s, looking
    /// every 50 ms for `seconds`, and returns each ask that changed something.
    fn drive(ramp: &mut Ramp, rate: impl Fn(usize) -> f64, seconds: f64) -> Vec<Ask> {
        let start = Instant::now();
        let (mut moved, mut open, mut asks) = (0.0f64, ramp.target(), Vec::new());
        let tick = Duration::from_millis(50);
        for i in 1..=(seconds / tick.as_secs_f64()) as u32 {
            moved += rate(open) * MIB as f64 * tick.as_secs_f64();
            let ask = ramp.look(start + tick * i, moved as u64, open, 1 << 40);
            match ask {
                Ask::Keep => {}
                Ask::Grow(n) | Ask::Shrink(n) => {
                    open = n;
                    asks.push(ask);
                }
            }
        }
        asks
    }

    #[test]
    fn a_link_capped_per_connection_grows_fast_to_the_ceiling() {
        let mut ramp = Ramp::new(1, 16);
        let asks = drive(&mut ramp, |n| 16.0 * n as f64, 5.0);
        assert_eq!(asks, [Ask::Grow(2), Ask::Grow(16)]);
        assert_eq!(ramp.settled(), Some(16));
        let story = ramp.story();
        assert!(story.starts_with("connections 1→2→16 (rate 16→32→256 MiB/s)"), "{story}");
        assert!(story.ends_with("held at 16, the host's ceiling"), "{story}");
    }

    #[test]
    fn a_link_one_stream_fills_opens_two_and_goes_back_to_one() {
        let mut ramp = Ramp::new(1, 16);
        let asks = drive(&mut ramp, |_| 64.0, 5.0);
        assert_eq!(asks, [Ask::Grow(2), Ask::Shrink(1)]);
        assert_eq!(ramp.settled(), Some(1));
        assert!(ramp.story().starts_with("connections 1→2→1 (rate 64→64 MiB/s)"), "{}", ramp.story());
        assert!(ramp.story().ends_with("held at 1, no gain from more"), "{}", ramp.story());
    }

    #[test]
    fn a_link_that_saturates_past_two_goes_back_to_two() {
        let mut ramp = Ramp::new(1, 16);
        // 20 MiB/s per connection, 45 in all: sixteen gain too little over two.
        let asks = drive(&mut ramp, |n| (20.0 * n as f64).min(45.0), 8.0);
        assert_eq!(asks, [Ask::Grow(2), Ask::Grow(16), Ask::Shrink(2)]);
        assert_eq!(ramp.settled(), Some(2));
    }

    #[test]
    fn a_second_connection_that_gains_only_a_third_is_closed() {
        let mut ramp = Ramp::new(1, 16);
        // An uncapped loopback link: more connections move a little more while the CPU
        // has room, never enough to pay for splitting.
        let asks = drive(&mut ramp, |n| 450.0 * (1.0 + 0.35 * (n as f64 - 1.0).min(1.0)), 5.0);
        assert_eq!(asks, [Ask::Grow(2), Ask::Shrink(1)]);
    }

    #[test]
    fn a_clear_but_not_linear_gain_doubles() {
        let mut ramp = Ramp::new(1, 16);
        // 1.5× from the second connection (not near 2×), then 1.3× from two more.
        let rates = [0.0, 10.0, 15.0, 0.0, 19.5];
        let asks = drive(&mut ramp, |n| if n < rates.len() { rates[n] } else { 21.0 }, 5.0);
        assert_eq!(asks[..3], [Ask::Grow(2), Ask::Grow(4), Ask::Grow(8)]);
    }

    #[test]
    fn a_ramp_waits_until_every_connection_of_a_step_receives() {
        let mut ramp = Ramp::new(1, 16);
        let t0 = Instant::now();
        assert_eq!(ramp.look(t0, 0, 1, 1 << 40), Ask::Keep);
        assert_eq!(ramp.look(t0, 2 * MIB, 1, 1 << 40), Ask::Keep, "past the first burst: the window opens");
        assert_eq!(ramp.look(t0 + Duration::from_secs(1), 66 * MIB, 1, 1 << 40), Ask::Grow(2));
        // The second connection is still connecting: no window yet, whatever the time.
        assert_eq!(ramp.look(t0 + Duration::from_secs(2), 128 * MIB, 1, 1 << 40), Ask::Keep);
        assert_eq!(ramp.look(t0 + Duration::from_secs(9), 512 * MIB, 1, 1 << 40), Ask::Keep);
        assert_eq!(ramp.look(t0 + Duration::from_secs(10), 576 * MIB, 2, 1 << 40), Ask::Keep);
        let ask = ramp.look(t0 + Duration::from_secs(11), 576 * MIB + 128 * MIB, 2, 1 << 40);
        assert_eq!(ask, Ask::Grow(16), "twice the rate: near-linear, so the ceiling");
    }

    #[test]
    fn a_later_file_starts_where_the_host_settled_and_a_refusal_ends_the_ramp() {
        let mut ramp = Ramp::new(8, 16);
        assert_eq!(ramp.target(), 8);
        ramp.refused(8);
        assert_eq!(ramp.settled(), Some(7));
        let at_ceiling = Ramp::new(16, 16);
        assert_eq!(at_ceiling.settled(), Some(16), "nothing to ramp");
    }

    #[test]
    fn a_step_opens_no_more_connections_than_what_is_left_can_feed() {
        let mut ramp = Ramp::new(2, 16);
        let t0 = Instant::now();
        ramp.look(t0, 2 * MIB, 2, 1 << 40);
        assert_eq!(ramp.look(t0 + Duration::from_secs(1), 66 * MIB, 2, 1 << 40), Ask::Grow(4));
        ramp.look(t0 + Duration::from_secs(1), 64 * MIB, 4, 1 << 40);
        // Twice the rate again (near-linear: the ceiling), but only 16 MiB are left: four
        // pieces' worth.
        let ask = ramp.look(t0 + Duration::from_secs(2), 64 * MIB + 128 * MIB, 4, 16 * MIB);
        assert_eq!(ask, Ask::Grow(8));
    }

    #[test]
    fn a_file_that_ends_while_ramping_leaves_its_count_to_the_next_and_one_never_measured_leaves_none() {
        let mut ramp = Ramp::new(1, 16);
        assert_eq!(ramp.settled(), None, "nothing measured yet");
        let asks = drive(&mut ramp, |n| 16.0 * n as f64, 0.35);
        assert_eq!(asks, [Ask::Grow(2)]);
        assert_eq!(ramp.settled(), Some(2));
    }

    #[test]
    fn too_little_left_is_not_shared_out() {
        let mut ramp = Ramp::new(1, 16);
        let t0 = Instant::now();
        ramp.look(t0, 2 * MIB, 1, 6 * MIB);
        let ask = ramp.look(t0 + Duration::from_secs(1), 64 * MIB, 1, 2 * MIB);
        assert_eq!(ask, Ask::Keep);
        assert_eq!(ramp.settled(), Some(1));
    }
}
