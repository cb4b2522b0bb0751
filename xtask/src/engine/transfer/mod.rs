//! Move one model's bytes from its sources into its partial, and check them: the
//! result is a checked file, which [`crate::engine::install`] places.
//!
//! Each source is tried in order. What a fault leads to is its class's
//! [`policy`](crate::error::Class::policy), within one
//! [`RetryState`](crate::engine::retry::RetryState): a transient one earns the same
//! source another attempt after an exponential, jittered backoff or the server's
//! `Retry-After`; a permanent one moves on to the next source at once; a local one (disk
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
use crate::engine::retry::{Limiter, Next, RetryState};
use crate::engine::slots::HostSlots;
use crate::error::{Class, Fault, Origin, Site, Then, Tried};
use crate::net::auth::Credentials;
use crate::net::client::Net;
use crate::net::proxy::ProxyEnv;

use crate::engine::settings::Settings;
use attempt::Wire;
pub(crate) use job::{Expect, Failed, Fetched, Job, Listener};
use sink::Checked;

pub(crate) struct Downloader<'s> {
    /// What every attempt sends and receives through.
    wire: Wire<'s>,
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
    then: Then,
}

impl<'s> Downloader<'s> {
    /// A downloader for up to `settings.jobs` files at once (the connection pool is sized
    /// to it).
    pub(crate) fn new(settings: &'s Settings) -> Downloader<'s> {
        let jobs = settings.jobs.max(1);
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
        events(Event::Downloading { size: job.expect.size().unwrap_or(0) });
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
                Err(Left { fault, then }) => {
                    events(Event::GaveUp { origin, fault: &fault });
                    tried.push(Tried { site: Site::Source(origin.clone()), fault });
                    if then == Then::GiveUp {
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
        let host = origin.url().host();
        if let Some(fault) = host.as_ref().and_then(|h| self.unreachable_fault(h)) {
            return FromSource {
                received,
                blend_failed,
                result: Err(Left { fault, then: Then::NextSource }),
            };
        }
        let settings = &self.wire.settings;
        let mut retry = RetryState::new(settings.backoff, settings.retries);
        // Split over several connections until pieces once hash wrong: then the file is
        // fetched again on one stream, so a server that garbles ranges still serves it.
        let mut split = true;
        loop {
            let attempt = retry.attempt();
            let started = Instant::now();
            let extras =
                if blend && !blend_failed && split { self.other_sources(job, origin) } else { Vec::new() };
            let attempt::Outcome { stats, result } = self.wire.attempt(job, origin, events, split, &extras);
            received += stats.received;
            retry.moved(stats.received);
            let mut attempted = Attempted {
                origin,
                attempt,
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
                    let result = Ok(Served { attempts: attempt, connections, checked });
                    return FromSource { received, blend_failed, result };
                }
                Err(fault) => fault,
            };
            // Pieces that hashed wrong, or came encoded or as pages: the server garbles
            // ranges, so the file comes again as one stream, checked as a whole.
            let garbled = matches!(fault.class, Class::HashMismatch | Class::Encoded | Class::HtmlPage);
            // A source the audit found sending wrong bytes is not asked again in this run,
            // not even as one stream, and nothing is blended with it again.
            let garbled_pieces = stats.segmented && garbled && split && !stats.source_bad;
            split &= !garbled_pieces;
            blend_failed |= (garbled_pieces && stats.blended) || stats.source_bad;
            let next = if garbled_pieces { retry.once_more(&fault) } else { retry.next(&fault) };
            attempted.status = fault.status.or(attempted.status);
            attempted.fault = Some(&fault);
            attempted.decision = Some(next.then());
            events(Event::Attempted(&attempted));
            let Next::Retry(wait) = next else {
                let unreached = fault.class.policy().trips_breaker && received == 0 && fault.status.is_none();
                // The breaker books the host that failed: a redirect's dead target must not
                // stop the next model on its healthy origin.
                if let (true, Some(failed)) = (unreached, fault.host.clone().or_else(|| host.clone())) {
                    self.unreachable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(failed, fault.clone());
                }
                return FromSource { received, blend_failed, result: Err(Left { fault, then: next.then() }) };
            };
            events(Event::Retrying { origin, fault: fault.clone(), wait });
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
        let remote = |o: &Origin| o.url().is_remote();
        let reached = |o: &Origin| o.url().host().is_none_or(|h| self.unreachable_fault(&h).is_none());
        job.sources
            .iter()
            .filter(|o| *o != origin && o.kind() == origin.kind() && remote(o) && reached(o))
            .collect()
    }
}
