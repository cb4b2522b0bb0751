//! Stage 3: move one model's bytes from its sources to where they are checked.
//!
//! Each source is tried in order. What a fault leads to is its class's
//! [`policy`](crate::error::Class::policy): a transient one earns the same source another
//! attempt after an exponential, jittered backoff or the server's `Retry-After`
//! ([`decide`]); a permanent one moves on to the next source at once; a local one (disk
//! full, permissions) gives the model up, since every source would fail alike.
//!
//! The rooms: this file holds the attempt loop over sources; [`attempt`] is one attempt
//! (one stream, or split over several connections by [`crate::engine::segments`]);
//! [`open`] opens a source and judges its answer's headers; [`sink`] takes a stream's
//! bytes into the temp file and the hasher; [`resume`] keeps the records that let a
//! later attempt resume.
//!
//! Attempts resume: bytes already in the temp file (from an earlier attempt, or a run
//! that was killed) are rehashed from disk and only the rest is requested, with `Range`
//! and, when the server gave a validator, `If-Range`, so a changed upstream file is never
//! spliced onto an old prefix. The retry budget is restored whenever an attempt makes
//! real progress, and a hard cap on attempts keeps a trickling server bounded.

mod attempt;
mod audit;
mod job;
mod open;
mod resume;
mod sink;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::engine::events::{Attempted, Event};
use crate::engine::retry::{Limiter, backoff};
use crate::engine::slots::HostSlots;
use crate::error::{Class, Decision, Fault, Origin, Then, Tried};
use crate::net::auth::Credentials;
use crate::net::client::Net;
use crate::net::proxy::ProxyEnv;

use attempt::Wire;
pub(crate) use job::{
    DEFAULT_BACKOFF_MS, DEFAULT_RETRIES, DEFAULT_TIMEOUT_SECS, Expect, Failed, Fetched, Job, Listener,
    Settings,
};
pub(crate) use sink::Checked;

/// An attempt that moved at least this many bytes restores the retry budget.
pub(crate) const REAL_PROGRESS: u64 = 1 << 20;
/// However much progress attempts make, one source gets at most this many times the
/// normal number of attempts, so a server that stalls every few megabytes still ends.
const ATTEMPT_CAP_FACTOR: u32 = 5;

pub(crate) struct Downloader {
    /// What every attempt sends and receives through.
    wire: Wire,
    /// Hosts that could not be resolved or reached in this run, with the fault: a
    /// per-run breaker, so an offline run does not wait on them again for every model.
    unreachable: Mutex<HashMap<String, Fault>>,
}

/// What trying one source came to.
struct FromSource {
    /// Bytes that came over the network in all its attempts.
    received: u64,
    /// A blend of several sources hashed wrong: the next sources are fetched alone.
    blend_failed: bool,
    result: Result<Served, Left>,
}

/// The source served the file: in this many attempts, checked.
struct Served {
    attempts: u32,
    /// The most connections the last attempt had open at once (1: one stream).
    connections: usize,
    checked: Checked,
}

/// The source was left: its last fault, and whether the model goes on to the next.
struct Left {
    fault: Fault,
    decision: Decision,
}

/// Where an attempt stands in its source's retry budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Budget {
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Failures since the last attempt that made real progress, this one included.
    pub failures: u32,
    /// `--retries`.
    pub retries: u32,
}

/// What follows a failed attempt: the fault's policy, within the budget. Pieces that
/// hashed wrong (`garbled_pieces`) are fetched again on one stream from the same source.
pub(crate) fn decide(class: Class, garbled_pieces: bool, budget: Budget) -> Decision {
    let cap = budget.retries.saturating_add(1).saturating_mul(ATTEMPT_CAP_FACTOR);
    match class.policy().then {
        Then::StopModel => Decision::GiveUp,
        _ if garbled_pieces => Decision::Retry,
        Then::Retry if budget.failures <= budget.retries && budget.attempt < cap => Decision::Retry,
        Then::Retry | Then::NextSource => Decision::NextUrl,
    }
}

impl Downloader {
    /// A downloader for up to `jobs` files at once (the connection pool is sized to it).
    pub(crate) fn new(settings: Settings, jobs: usize) -> Downloader {
        let proxies = if settings.proxy_from_env { ProxyEnv::from_process() } else { ProxyEnv::default() };
        let per_file = settings.connections.unwrap_or(settings.host_ceiling).max(1);
        let pool = jobs.saturating_mul(per_file).min(settings.host_ceiling.max(jobs));
        let net = Net::new(settings.timeout, proxies, Credentials::from_environment(), pool);
        let limiter = settings.limit_rate.map(Limiter::new);
        let slots = HostSlots::new(settings.host_ceiling);
        Downloader { wire: Wire { net, settings, slots, limiter }, unreachable: Mutex::default() }
    }

    /// Downloads `job` into its partial and checks it, trying each source in turn,
    /// reporting to `events`. The checked file is the caller's to place.
    pub(crate) fn fetch(&self, job: &Job<'_>, events: &mut Listener<'_>) -> Result<Fetched, Failed> {
        let started = Instant::now();
        let mut tried = Vec::new();
        let mut received = 0;
        // Pieces may come from several sources until a blend of them once hashes wrong.
        let mut blend = true;
        for origin in &job.sources {
            let from = self.fetch_from(job, origin, events, blend);
            received += from.received;
            blend &= !from.blend_failed;
            match from.result {
                Ok(Served { attempts, connections, checked }) => {
                    events(Event::Finished);
                    return Ok(Fetched {
                        origin: origin.clone(),
                        file: checked.file,
                        sha256: checked.sha256,
                        size: checked.size,
                        bytes: received,
                        attempts,
                        connections,
                        elapsed: started.elapsed(),
                        passed: tried,
                        wrong_sources: checked.wrong_sources,
                    });
                }
                Err(Left { fault, decision }) => {
                    events(Event::GaveUp { origin, fault: &fault });
                    tried.push(Tried { origin: origin.clone(), fault });
                    if decision == Decision::GiveUp {
                        break;
                    }
                }
            }
        }
        // The temp file stays for a later resume: bytes known to be bad were discarded
        // by the attempt that found out.
        Err(Failed { tried })
    }

    /// Attempts one source until it succeeds, turns out permanent, or runs out of retries.
    fn fetch_from(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        events: &mut Listener<'_>,
        blend: bool,
    ) -> FromSource {
        let (mut received, mut blend_failed) = (0, false);
        let host = origin.url().and_then(|url| url.host());
        if let Some(fault) = host.as_ref().and_then(|h| self.unreachable_fault(h)) {
            return FromSource {
                received,
                blend_failed,
                result: Err(Left { fault, decision: Decision::NextUrl }),
            };
        }
        let mut budget = Budget { attempt: 0, failures: 0, retries: self.wire.settings.retries };
        // Split over several connections until pieces once hash wrong: then the file is
        // fetched again on one stream, so a server that garbles ranges still serves it.
        let mut split = true;
        loop {
            budget.attempt += 1;
            let started = Instant::now();
            let extras =
                if blend && !blend_failed && split { self.other_sources(job, origin) } else { Vec::new() };
            let attempt::Outcome { stats, result } = self.wire.attempt(job, origin, events, split, &extras);
            received += stats.received;
            if stats.received >= REAL_PROGRESS {
                budget.failures = 0;
            }
            let mut attempted = Attempted {
                origin,
                attempt: budget.attempt,
                status: stats.status,
                bytes: stats.received,
                resumed_from: stats.resumed_from,
                duration: started.elapsed(),
                fault: None,
                decision: None,
            };
            let fault = match result {
                Ok(checked) => {
                    events(Event::Attempted(&attempted));
                    let connections = stats.connections.max(1);
                    let result = Ok(Served { attempts: budget.attempt, connections, checked });
                    return FromSource { received, blend_failed, result };
                }
                Err(fault) => fault,
            };
            budget.failures += 1;
            // Pieces that hashed wrong, or came encoded or as pages: the server garbles
            // ranges, so the file comes again as one stream, checked as a whole.
            let garbled = matches!(fault.class, Class::HashMismatch | Class::Encoded | Class::HtmlPage);
            // A source the audit found sending wrong bytes is not asked again in this run,
            // not even as one stream, and nothing is blended with it again.
            let garbled_pieces = stats.segmented && garbled && split && !stats.source_bad;
            split &= !garbled_pieces;
            blend_failed |= (garbled_pieces && stats.blended) || stats.source_bad;
            let decision = decide(fault.class, garbled_pieces, budget);
            attempted.status = fault.status.or(attempted.status);
            attempted.fault = Some(&fault);
            attempted.decision = Some(decision);
            events(Event::Attempted(&attempted));
            if decision != Decision::Retry {
                let unreached = fault.class.policy().trips_breaker && received == 0 && fault.status.is_none();
                // The breaker books the host that failed: a redirect's dead target must not
                // stop the next model on its healthy origin.
                if let (true, Some(failed)) = (unreached, fault.host.clone().or_else(|| host.clone())) {
                    self.unreachable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(failed, fault.clone());
                }
                return FromSource { received, blend_failed, result: Err(Left { fault, decision }) };
            }
            let wait =
                fault.retry_after.unwrap_or_else(|| backoff(self.wire.settings.backoff, budget.failures));
            events(Event::Retrying { origin, fault: &fault, wait });
            std::thread::sleep(wait);
        }
    }

    /// The fault a host already gave in this run, if it could not be resolved or reached,
    /// as it stands for the next model: not tried again.
    fn unreachable_fault(&self, host: &str) -> Option<Fault> {
        let known = self.unreachable.lock().unwrap_or_else(PoisonError::into_inner);
        let fault = known.get(host)?;
        let detail = format!("{} (earlier in this run; not tried again)", fault.detail);
        Some(Fault { detail, ..fault.clone() })
    }

    /// The other sources of `job` that pieces may come from while `origin` is fetched:
    /// the other mirrors of a mirror, the other URLs of a URL (a mirror is there to spare
    /// the models' own hosts), each over http(s) or S3 on a host reached so far in this run.
    fn other_sources<'j>(&self, job: &'j Job<'_>, origin: &Origin) -> Vec<&'j Origin> {
        let remote = |o: &Origin| o.url().is_some_and(|url| url.is_remote());
        let reached = |o: &Origin| {
            o.url().and_then(|url| url.host()).is_none_or(|h| self.unreachable_fault(&h).is_none())
        };
        job.sources
            .iter()
            .filter(|o| *o != origin && o.kind() == origin.kind() && remote(o) && reached(o))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(attempt: u32, failures: u32) -> Budget {
        Budget { attempt, failures, retries: 3 }
    }

    #[test]
    fn a_transient_fault_is_retried_within_the_budget_then_the_next_source_is_tried() {
        assert_eq!(decide(Class::Timeout, false, budget(1, 1)), Decision::Retry);
        assert_eq!(decide(Class::Timeout, false, budget(3, 3)), Decision::Retry);
        assert_eq!(decide(Class::Timeout, false, budget(4, 4)), Decision::NextUrl, "retries spent");
        assert_eq!(decide(Class::ServerBusy, false, budget(20, 1)), Decision::NextUrl, "the hard cap");
        assert_eq!(decide(Class::ServerBusy, false, budget(19, 1)), Decision::Retry);
    }

    #[test]
    fn a_permanent_fault_moves_on_and_a_local_one_stops_the_model() {
        assert_eq!(decide(Class::NotFound, false, budget(1, 1)), Decision::NextUrl);
        assert_eq!(decide(Class::HostNotFound, false, budget(1, 1)), Decision::NextUrl);
        assert_eq!(decide(Class::NoSpace, false, budget(1, 1)), Decision::GiveUp);
        assert_eq!(decide(Class::LocalIo, true, budget(1, 1)), Decision::GiveUp, "even for garbled pieces");
    }

    #[test]
    fn garbled_pieces_get_one_more_attempt_on_one_stream_whatever_the_budget() {
        assert_eq!(decide(Class::HashMismatch, true, budget(9, 9)), Decision::Retry);
        assert_eq!(decide(Class::HashMismatch, false, budget(1, 1)), Decision::NextUrl);
    }
}
