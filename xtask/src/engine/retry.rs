//! When to try again, and how long to wait first: one [`RetryState`] for every loop
//! that retries (a source's attempts, a split download's connections, publishing).
//!
//! What a fault asks for is its class's [`policy`](crate::error::Class::policy); the
//! state grants a retry within its budget and says how long to wait. Backoff doubles
//! from a base with jitter, so many clients that failed together do not come back
//! together; a server's `Retry-After` (seconds or an HTTP date) wins when it is given.
//! Both are capped, so no answer can make the tool wait unreasonably.

use std::time::{Duration, Instant, SystemTime};

use crate::error::{Fault, Then};

/// An attempt that moved at least this many bytes restores the retry budget.
pub(crate) const REAL_PROGRESS: u64 = 1 << 20;
/// However much progress attempts make, one budget allows at most this many times the
/// normal number of attempts, so a server that stalls every few megabytes still ends.
const ATTEMPT_CAP_FACTOR: u32 = 5;

/// What follows a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The same source again, after this wait.
    Retry(Duration),
    /// This source is done: the next one.
    Source,
    /// The model is done: every source would fail alike.
    GiveUp,
}

impl Next {
    /// The choice without its wait, as the log and `--json` name it.
    pub(crate) fn then(self) -> Then {
        match self {
            Next::Retry(_) => Then::Retry,
            Next::Source => Then::NextSource,
            Next::GiveUp => Then::GiveUp,
        }
    }
}

/// One loop's retry budget: `retries` further attempts after transient faults, restored
/// whenever an attempt makes real progress, under a hard cap on attempts.
#[derive(Clone, Debug)]
pub(crate) struct RetryState {
    base: Duration,
    retries: u32,
    /// Attempts started, from 1.
    attempts: u32,
    /// Failures since the last attempt that made real progress.
    failures: u32,
}

impl RetryState {
    pub(crate) fn new(base: Duration, retries: u32) -> RetryState {
        RetryState { base, retries, attempts: 0, failures: 0 }
    }

    /// Starts an attempt; returns its number, from 1.
    pub(crate) fn attempt(&mut self) -> u32 {
        self.attempts += 1;
        self.attempts
    }

    /// An attempt that moved `bytes` restores the budget when they are real progress.
    pub(crate) fn moved(&mut self, bytes: u64) {
        if bytes >= REAL_PROGRESS {
            self.failures = 0;
        }
    }

    /// Starts the budget over (a connection that moved to another source).
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
    }

    /// What follows `fault`: its class's policy, within the budget.
    pub(crate) fn next(&mut self, fault: &Fault) -> Next {
        self.failures += 1;
        let cap = self.retries.saturating_add(1).saturating_mul(ATTEMPT_CAP_FACTOR);
        match fault.class.policy().then {
            Then::GiveUp => Next::GiveUp,
            Then::Retry if self.failures <= self.retries && self.attempts < cap => {
                Next::Retry(self.wait(fault))
            }
            Then::Retry | Then::NextSource => Next::Source,
        }
    }

    /// One more attempt whatever the budget, unless the fault gives the model up: pieces
    /// that hashed wrong are fetched again on one stream from the same source.
    pub(crate) fn once_more(&mut self, fault: &Fault) -> Next {
        self.failures += 1;
        match fault.class.policy().then {
            Then::GiveUp => Next::GiveUp,
            Then::Retry | Then::NextSource => Next::Retry(self.wait(fault)),
        }
    }

    /// The server's `Retry-After`, or the backoff for this many failures.
    fn wait(&self, fault: &Fault) -> Duration {
        fault.retry_after.unwrap_or_else(|| backoff(self.base, self.failures))
    }
}

/// Backoff never waits longer than this between attempts...
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// ...and a server's `Retry-After` is honoured up to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The delay before attempt `attempt + 1`: doubling from `base`, capped, with jitter so
/// that many clients do not come back in lock step.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = doubled.min(MAX_BACKOFF);
    // Somewhere in [50 %, 100 %] of the capped delay.
    let jitter = 0.5 + 0.5 * random_unit();
    capped.mul_f64(jitter)
}

/// A number in [0, 1) from the standard library's per-process random hash keys.
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let bits = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`]. A value
/// that is neither, or a date no clock can reach, is ignored (normal backoff applies).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The wait an IETF `RateLimit` header asks for (draft-ietf-httpapi-ratelimit-headers,
/// as Hugging Face sends it: `"resolvers";r=0;t=87`): `t` seconds when no requests
/// remain (`r=0`) in any of its policies, capped like `Retry-After`.
pub(crate) fn parse_rate_limit(value: &str) -> Option<Duration> {
    value
        .split(',')
        .filter_map(|item| {
            let params: Vec<(&str, &str)> = item
                .split(';')
                .filter_map(|p| p.trim().split_once('='))
                .map(|(k, v)| (k.trim(), v.trim()))
                .collect();
            let remaining = params.iter().find(|(k, _)| *k == "r")?.1.parse::<u64>().ok()?;
            let reset = params.iter().find(|(k, _)| *k == "t")?.1.parse::<u64>().ok()?;
            (remaining == 0).then(|| Duration::from_secs(reset).min(MAX_RETRY_AFTER))
        })
        .max()
}

/// A cap on the bytes per second of everything this process downloads (`--limit-rate`),
/// shared by every connection: whoever is ahead of the schedule waits.
#[derive(Debug)]
pub(crate) struct Limiter {
    bytes_per_second: f64,
    schedule: std::sync::Mutex<Schedule>,
}

/// Idle time banked at most: after a pause (a `Retry-After` wait, a slow server) the
/// bytes may come this much ahead of the rate, and no more.
const MAX_BURST: Duration = Duration::from_secs(1);

/// When bytes are due: counted from `start` at the rate.
#[derive(Clone, Copy, Debug)]
struct Schedule {
    start: Instant,
    booked: u64,
}

impl Schedule {
    /// Books `bytes` received at `now` and returns when the rate allows them to have come.
    fn book(&mut self, now: Instant, bytes: u64, rate: f64) -> Instant {
        let caught_up = self.start + Duration::from_secs_f64(self.booked as f64 / rate);
        if caught_up + MAX_BURST < now {
            // Idle since: bank one second of it, not all of it.
            *self = Schedule { start: now.checked_sub(MAX_BURST).unwrap_or(now), booked: 0 };
        }
        self.booked += bytes;
        self.start + Duration::from_secs_f64(self.booked as f64 / rate)
    }
}

impl Limiter {
    pub(crate) fn new(bytes_per_second: u64) -> Limiter {
        Limiter {
            bytes_per_second: bytes_per_second.max(1) as f64,
            schedule: std::sync::Mutex::new(Schedule { start: Instant::now(), booked: 0 }),
        }
    }

    /// Counts `bytes` just received and sleeps until the schedule allows them.
    pub(crate) fn take(&self, bytes: u64) {
        let now = Instant::now();
        let due = {
            let mut schedule = self.schedule.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            schedule.book(now, bytes, self.bytes_per_second)
        };
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

/// `500K`, `10M`, `1.5M`, `2G` or plain bytes, per second (K = 1024, as aria2 and curl).
pub(crate) fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let scale: f64 = match unit.to_ascii_uppercase().trim_end_matches("/S").trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => {
            return Err(format!(
                "{text:?} is not a rate: use bytes, or a number with K, M or G (per second)"
            ));
        }
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a rate: use e.g. 500K or 10M"))?;
    let rate = value * scale;
    if !(rate.is_finite() && rate >= 1024.0) {
        return Err("the rate must be at least 1K (1024 bytes per second)".to_owned());
    }
    Ok(rate.min(u64::MAX as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::error::Class;

    fn after(state: &mut RetryState, class: Class) -> Then {
        state.attempt();
        state.next(&Fault::new(class, "x")).then()
    }

    #[test]
    fn a_transient_fault_is_retried_within_the_budget_then_the_next_source_is_tried() {
        let mut state = RetryState::new(Duration::ZERO, 3);
        let thens: Vec<Then> = (0..4).map(|_| after(&mut state, Class::Timeout)).collect();
        assert_eq!(thens, [Then::Retry, Then::Retry, Then::Retry, Then::NextSource], "retries spent");
        // Progress restores the budget, up to the hard cap of 20 attempts.
        let mut state = RetryState::new(Duration::ZERO, 3);
        for _ in 0..19 {
            assert_eq!(after(&mut state, Class::ServerBusy), Then::Retry);
            state.moved(REAL_PROGRESS);
        }
        assert_eq!(after(&mut state, Class::ServerBusy), Then::NextSource, "the hard cap");
    }

    #[test]
    fn a_permanent_fault_moves_on_and_a_local_one_gives_the_model_up() {
        let mut state = RetryState::new(Duration::ZERO, 3);
        assert_eq!(after(&mut state, Class::NotFound), Then::NextSource);
        assert_eq!(after(&mut state, Class::HostNotFound), Then::NextSource);
        assert_eq!(after(&mut state, Class::NoSpace), Then::GiveUp);
        assert_eq!(
            state.once_more(&Fault::new(Class::LocalIo, "x")),
            Next::GiveUp,
            "even for garbled pieces"
        );
    }

    #[test]
    fn garbled_pieces_get_one_more_attempt_whatever_the_budget_and_retry_after_wins() {
        let mut state = RetryState::new(Duration::from_secs(1), 0);
        state.attempt();
        let fault =
            Fault { retry_after: Some(Duration::from_secs(7)), ..Fault::new(Class::HashMismatch, "x") };
        assert_eq!(state.once_more(&fault), Next::Retry(Duration::from_secs(7)));
        assert_eq!(state.next(&fault), Next::Source);
    }

    #[test]
    fn limit_rate_banks_at_most_a_second_of_idle_time() {
        const MIB: u64 = 1 << 20;
        let rate = MIB as f64;
        let t0 = Instant::now();
        let mut schedule = Schedule { start: t0, booked: 0 };
        assert_eq!(schedule.book(t0, MIB, rate), t0 + Duration::from_secs(1), "on schedule");
        // A 16 s wait (a Retry-After), then 16 MiB at once: only one second is banked.
        let after = t0 + Duration::from_secs(17);
        let due = schedule.book(after, 16 * MIB, rate);
        assert_eq!(due, after + Duration::from_secs(15), "16 MiB at 1 MiB/s, less the one banked second");
        // Bytes that keep up are never held back more than the rate says.
        let later = due + Duration::from_millis(500);
        assert_eq!(schedule.book(later, MIB / 2, rate), due + Duration::from_millis(500));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("31536000", now), Some(MAX_RETRY_AFTER));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn an_absurd_retry_after_is_ignored_or_capped_never_a_panic() {
        let now = SystemTime::now();
        assert_eq!(parse_retry_after("Sun, 06 Nov 400000000000 08:49:37 GMT", now), None);
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("99999999999999999999999", now), None);
        assert_eq!(parse_retry_after(&u64::MAX.to_string(), now), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for attempt in 1..=3 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
        assert!(backoff(base, 40) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn rate_limit_headers_say_how_long_to_wait_when_nothing_remains() {
        assert_eq!(parse_rate_limit("\"resolvers\";r=0;t=87"), Some(Duration::from_secs(60)), "capped");
        assert_eq!(parse_rate_limit("\"api\";r=0;t=5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_rate_limit("\"api\";r=10;t=5"), None, "requests remain");
        assert_eq!(parse_rate_limit("\"a\";r=5;t=1, \"b\";r=0;t=3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_rate_limit("nonsense"), None);
    }

    #[test]
    fn rates_read_like_aria2_and_curl_write_them() {
        assert_eq!(parse_rate("500K"), Ok(500 * 1024));
        assert_eq!(parse_rate("1.5M"), Ok(1_572_864));
        assert_eq!(parse_rate("2g"), Ok(2 << 30));
        assert_eq!(parse_rate("4096"), Ok(4096));
        assert!(parse_rate("10x").is_err() && parse_rate("0").is_err() && parse_rate("-1M").is_err());
    }
}
