//! Stage 3: move one model's bytes from its sources to where they are checked.
//!
//! Each source is tried in order. A transient fault (see [`Class::is_transient`]) earns
//! the same source another attempt after an exponential, jittered backoff or the
//! server's `Retry-After`; a permanent one moves on to the next source at once; a local
//! one (disk full, permissions) gives the model up, since every source would fail alike.
//!
//! Attempts resume: bytes already in the temp file (from an earlier attempt, or a run
//! that was killed) are rehashed from disk and only the rest is requested, with
//! `Range` and, when the server gave a validator, `If-Range`, so a changed upstream file
//! is never spliced onto an old prefix. The retry budget is restored whenever an attempt
//! makes real progress, and a hard cap on attempts keeps a trickling server bounded.
//!
//! Bytes travel one path, [`Sink::accept`]: checked, into the temp file and the progress
//! report, then handed to the hashing thread, in one pass. The first bytes are sniffed
//! for web pages and LFS pointers, the transfer stops the moment the body outgrows the
//! pin, and only a file whose size and hash match is installed.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::PoisonError;
use std::time::{Duration, Instant, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use ureq::Body;
use ureq::http::{HeaderMap, Response};

use crate::engine::check::{self, BackgroundHasher, SNIFF_LEN};
use crate::engine::events::{Attempted, Event};
use crate::engine::install;
use crate::engine::manifest::Model;
use crate::engine::retry::{Limiter, backoff, parse_rate_limit, parse_retry_after};
use crate::engine::segments;
use crate::error::{Class, Decision, Fault, Origin, Tried};
use crate::net::auth::Credentials;
use crate::net::client::{Answer, Method, Net, check_follow, parse_content_range, read_fault, status_fault};
use crate::net::hosts::{self, PageVerdict};
use crate::net::proxy::ProxyEnv;
use crate::net::url::file_url_path;
use crate::store::fs::{open_regular, write_atomically};
use crate::store::hash::{HASH_BUFFER, hex};
use crate::store::stamp::Fingerprint;

/// An attempt that moved at least this many bytes restores the retry budget.
pub const REAL_PROGRESS: u64 = 1 << 20;
/// However much progress attempts make, one source gets at most this many times the
/// normal number of attempts, so a server that stalls every few megabytes still ends.
const ATTEMPT_CAP_FACTOR: u32 = 5;

/// Connections per large file when `--connections` is not given.
pub const DEFAULT_CONNECTIONS: usize = 8;
/// Connections to one host at most, whatever `--jobs` × `--connections` asks for.
pub const DEFAULT_HOST_CEILING: usize = 16;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Bounds connecting and any stall between reads, never a whole transfer.
    pub timeout: Duration,
    /// Further attempts per source after a transient fault.
    pub retries: u32,
    /// The first backoff; each later one doubles, up to [`crate::engine::retry::MAX_BACKOFF`].
    pub backoff: Duration,
    /// Read `HTTPS_PROXY` and friends; tests turn this off so loopback stays direct.
    pub proxy_from_env: bool,
    /// Connections one large file may use at once (1: one stream).
    pub connections: usize,
    /// Connections open to one host at most, over all files fetched at once.
    pub host_ceiling: usize,
    /// `--limit-rate`: bytes per second over everything downloaded at once.
    pub limit_rate: Option<u64>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            proxy_from_env: true,
            connections: DEFAULT_CONNECTIONS,
            host_ceiling: DEFAULT_HOST_CEILING,
            limit_rate: None,
        }
    }
}

/// What the bytes must turn out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect<'m> {
    /// The pin: exactly this size and sha256, or nothing is installed.
    Pinned { size: u64, sha256: &'m str },
    /// `--skip-checks`: whatever arrives is installed unchecked, cut at the pinned size.
    Unchecked { size: u64 },
    /// `add`: size and sha256 are learned from the bytes, up to `max_size` of them.
    Unknown { max_size: u64 },
}

impl<'m> Expect<'m> {
    /// The pin of `model`, or no checks with `skip_checks`.
    pub fn of(model: &'m Model, skip_checks: bool) -> Expect<'m> {
        if skip_checks {
            Expect::Unchecked { size: model.size }
        } else {
            Expect::Pinned { size: model.size, sha256: &model.sha256 }
        }
    }

    /// The size the bytes will have, when known before they arrive.
    pub fn size(&self) -> Option<u64> {
        match *self {
            Expect::Pinned { size, .. } | Expect::Unchecked { size } => Some(size),
            Expect::Unknown { .. } => None,
        }
    }

    /// The most bytes a body may bring before it is refused as too large (an unchecked
    /// download is cut at its size instead, in `Sink::accept`).
    fn ceiling(&self) -> Option<u64> {
        match *self {
            Expect::Pinned { size, .. } => Some(size),
            Expect::Unchecked { .. } => None,
            Expect::Unknown { max_size } => Some(max_size),
        }
    }

    fn pinned(&self) -> Option<(u64, &'m str)> {
        match *self {
            Expect::Pinned { size, sha256 } => Some((size, sha256)),
            _ => None,
        }
    }
}

/// One download: the sources to try, where bytes collect, and where the checked file is
/// renamed to (the destination, or a cache entry).
#[derive(Clone, Debug)]
pub struct Job<'m> {
    /// The model's name, for messages.
    pub name: &'m str,
    pub expect: Expect<'m>,
    /// Mirrors and URLs, in the order to try.
    pub sources: Vec<Origin>,
    pub partial: Utf8PathBuf,
    pub target: Utf8PathBuf,
}

/// A model that arrived, matched its pin and was installed.
#[derive(Debug)]
pub struct Fetched {
    pub origin: Origin,
    /// The sha256 of what was installed (the pin's, unless checks were skipped).
    pub sha256: String,
    /// The size of what was installed.
    pub size: u64,
    /// The installed file's fingerprint, read from the very file that was hashed and
    /// renamed into place (not from whatever is at the path later).
    pub fingerprint: Option<Fingerprint>,
    /// Bytes received over all attempts (a resumed prefix is not counted again).
    pub bytes: u64,
    pub attempts: u32,
    pub elapsed: Duration,
    /// The sources tried before the one that served the file, with their last fault.
    pub passed: Vec<Tried>,
}

/// Every source of a model failed; the last fault of each source tried, in order.
#[derive(Debug)]
pub struct Failed {
    pub tried: Vec<Tried>,
}

impl Failed {
    pub fn at(origin: Origin, fault: Fault) -> Failed {
        Failed { tried: vec![Tried { origin, fault }] }
    }
}

/// Where a segmented transfer starts: the validator all pieces must share, the pieces
/// (fresh, or from a killed run's sidecar), and the first piece's open body, if any.
struct Pieces<'x> {
    validator: String,
    pieces: Vec<segments::Piece>,
    first: Option<Box<dyn Read + Send>>,
    /// Other sources of the same bytes that pieces may come from.
    extras: &'x [&'x Origin],
}

/// A file put in place by one source.
struct Installed {
    sha256: String,
    size: u64,
    fingerprint: Option<Fingerprint>,
}

/// What one attempt did, for the log and the retry budget.
#[derive(Default)]
struct AttemptStats {
    resumed_from: u64,
    received: u64,
    status: Option<u16>,
    /// The attempt split the file over several connections.
    segmented: bool,
    /// Its pieces came from more than one source.
    blended: bool,
}

/// The listener a download reports to.
pub type Listener<'l> = dyn FnMut(Event<'_>) + 'l;

pub struct Downloader {
    net: Net,
    settings: Settings,
    /// Extra connections open per host right now (beyond each file's first).
    slots: std::sync::Mutex<std::collections::HashMap<String, usize>>,
    /// The shared cap of `--limit-rate`, when given.
    limiter: Option<Limiter>,
    /// Hosts that could not be resolved or reached in this run, with the fault: a
    /// per-run breaker, so an offline run does not wait on them again for every model.
    unreachable: std::sync::Mutex<std::collections::HashMap<String, Fault>>,
}

/// Interstitial pages (Drive's virus-scan warning) followed at most, per attempt.
const MAX_INTERSTITIALS: usize = 3;
/// An HTML answer is read up to this much to find out what it is.
const PAGE_LIMIT: usize = 1 << 20;

impl Downloader {
    /// A downloader for up to `jobs` files at once (the connection pool is sized to it).
    pub fn new(settings: Settings, jobs: usize) -> Downloader {
        let proxies = if settings.proxy_from_env { ProxyEnv::from_process() } else { ProxyEnv::default() };
        let pool = jobs.saturating_mul(settings.connections.max(1)).min(settings.host_ceiling.max(jobs));
        let net = Net::new(settings.timeout, proxies, Credentials::from_environment(), pool);
        let limiter = settings.limit_rate.map(Limiter::new);
        Downloader { net, settings, slots: Default::default(), limiter, unreachable: Default::default() }
    }

    /// Downloads `job` into `job.target`, trying each source in turn, reporting to `events`.
    pub fn fetch(&self, job: &Job<'_>, events: &mut Listener<'_>) -> Result<Fetched, Failed> {
        let started = Instant::now();
        let mut tried = Vec::new();
        let mut received = 0;
        // Pieces may come from several sources until a blend of them once hashes wrong.
        let mut blend = true;
        for origin in &job.sources {
            match self.fetch_from(job, origin, events, &mut received, &mut blend) {
                Ok((attempts, installed)) => {
                    let _ = std::fs::remove_file(install::validator_path(&job.partial));
                    let _ = std::fs::remove_file(segments::sidecar_path(&job.partial));
                    events(Event::Finished);
                    return Ok(Fetched {
                        origin: origin.clone(),
                        sha256: installed.sha256,
                        size: installed.size,
                        fingerprint: installed.fingerprint,
                        bytes: received,
                        attempts,
                        elapsed: started.elapsed(),
                        passed: tried,
                    });
                }
                Err((fault, decision)) => {
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

    /// Attempts one source until it succeeds, turns out permanent, or runs out of
    /// retries. Returns the number of attempts made and what was installed.
    fn fetch_from(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        events: &mut Listener<'_>,
        received: &mut u64,
        blend: &mut bool,
    ) -> Result<(u32, Installed), (Fault, Decision)> {
        let host = origin.url().and_then(crate::net::url::host);
        if let Some(fault) = host.as_ref().and_then(|h| self.unreachable_fault(h)) {
            return Err((fault, Decision::NextUrl));
        }
        let cap = (self.settings.retries.saturating_add(1)).saturating_mul(ATTEMPT_CAP_FACTOR);
        let (mut attempt, mut failures, mut from_here) = (0, 0u32, 0u64);
        // Split over several connections until pieces once hash wrong: then the file is
        // fetched again on one stream, so a server that garbles ranges still serves it.
        let mut split = true;
        loop {
            attempt += 1;
            let started = Instant::now();
            let mut stats = AttemptStats::default();
            let extras = if *blend && split { self.other_sources(job, origin) } else { Vec::new() };
            let result = self.attempt(job, origin, events, &mut stats, split, &extras).and_then(
                |(file, sha256, size)| {
                    install::install(&file, &job.partial, &job.target)
                        .map_err(|e| Fault::local(&job.target, &e))?;
                    // The open file is the installed one: its metadata cannot be another file's.
                    let fingerprint = file.metadata().ok().map(|m| Fingerprint::of(&m));
                    Ok(Installed { sha256, size, fingerprint })
                },
            );
            *received += stats.received;
            from_here += stats.received;
            if stats.received >= REAL_PROGRESS {
                failures = 0;
            }
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
                Ok(installed) => {
                    events(Event::Attempted(&attempted));
                    return Ok((attempt, installed));
                }
                Err(fault) => fault,
            };
            failures += 1;
            let garbled_pieces = stats.segmented && fault.class == Class::HashMismatch && split;
            split &= !garbled_pieces;
            *blend &= !(garbled_pieces && stats.blended);
            let decision = if fault.class.is_local() {
                Decision::GiveUp
            } else if garbled_pieces
                || fault.class.is_transient() && failures <= self.settings.retries && attempt < cap
            {
                Decision::Retry
            } else {
                Decision::NextUrl
            };
            attempted.status = fault.status.or(attempted.status);
            attempted.fault = Some(&fault);
            attempted.decision = Some(decision);
            events(Event::Attempted(&attempted));
            if decision != Decision::Retry {
                let unreached =
                    matches!(fault.class, Class::HostNotFound | Class::Connection) && from_here == 0;
                if let (true, Some(host)) = (unreached && fault.status.is_none(), &host) {
                    self.unreachable
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(host.clone(), fault.clone());
                }
                return Err((fault, decision));
            }
            let wait = fault.retry_after.unwrap_or_else(|| backoff(self.settings.backoff, failures));
            events(Event::Retrying { origin, fault: &fault, wait });
            std::thread::sleep(wait);
        }
    }

    /// One attempt: continue the temp file from the source, then check it whole.
    fn attempt(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        events: &mut Listener<'_>,
        stats: &mut AttemptStats,
        split: bool,
        extras: &[&Origin],
    ) -> Result<(File, String, u64), Fault> {
        let url = origin.url().ok_or_else(|| Fault::new(Class::BadUrl, "this origin has no URL"))?;
        let local = |e: io::Error| Fault::local(&job.partial, &e);
        let mut file = install::open_partial(&job.partial).map_err(local)?;
        let mut have = file.metadata().map_err(local)?.len();
        let too_long = job.expect.ceiling().is_some_and(|ceiling| have > ceiling);
        // Without a pin, only the validator ties a partial to this URL: bytes from
        // elsewhere (another URL given to an earlier `add`) must not be resumed.
        let unproven =
            matches!(job.expect, Expect::Unknown { .. }) && read_validator(&job.partial, url).is_none();
        if have > 0 && (too_long || unproven) {
            file.set_len(0).map_err(local)?;
            have = 0;
        }
        let segmentable = self.segmentable(job, url).filter(|_| split);
        if segments::sidecar_path(&job.partial).exists() {
            // A partial with pieces: resumed piece by piece, or (for another URL, size or
            // an unreadable record) worthless, since it has holes.
            match segmentable.and_then(|size| segments::load_sidecar(&job.partial, &url_key(url), size)) {
                Some((validator, pieces)) => {
                    let start = Pieces { validator, pieces, first: None, extras };
                    return self.segmented(job, origin, &file, start, events, stats);
                }
                None => {
                    file.set_len(0).map_err(local)?;
                    let _ = std::fs::remove_file(segments::sidecar_path(&job.partial));
                    have = 0;
                }
            }
        }
        let mut hasher = BackgroundHasher::start();
        if have > 0 {
            rehash_prefix(&mut file, have, &hasher).map_err(local)?;
        }
        if have > 0 && job.expect.pinned().is_some_and(|(size, _)| size == have) {
            // A complete download whose install was interrupted: no request needed.
            let sink = Sink::new(job, file, hasher, have, events);
            return sink.finish_or_discard(have);
        }
        let validator = if have > 0 { read_validator(&job.partial, url) } else { None };
        let probe = segmentable.is_some() && have == 0;
        let source = self.open(job, url, have, validator.as_deref(), probe)?;
        stats.status = source.status;
        if let (Some(size), Some(206), Some(validator)) =
            (segmentable.filter(|_| probe), source.status, &source.validator)
            && source.total == Some(size)
        {
            // Ranges work and the file is large: split it over several connections.
            write_validator(&job.partial, url, Some(validator));
            let pieces = segments::split(size, self.settings.connections);
            // The sidecar exists before the file has holes: a kill at any moment leaves
            // a partial that a rerun reads piece by piece, never as one long prefix.
            segments::write_sidecar(&job.partial, &url_key(url), size, validator, &pieces);
            file.set_len(size).map_err(local)?;
            let start = Pieces { validator: validator.clone(), pieces, first: Some(source.body), extras };
            return self.segmented(job, origin, &file, start, events, stats);
        }
        if source.start != have {
            // The server sent the whole file (no range support, or it changed): restart.
            file.set_len(0).map_err(local)?;
            hasher = BackgroundHasher::start();
            have = 0;
        }
        if have == 0 {
            write_validator(&job.partial, url, source.validator.as_deref());
        }
        file.seek(SeekFrom::Start(have)).map_err(local)?;
        stats.resumed_from = have;
        events(Event::Started { origin, position: have });
        let Source { mut body, content_type, declared, .. } = source;
        let mut sink = Sink::new(job, file, hasher, have, events);
        sink.content_type = content_type;
        sink.declared = declared;
        sink.limiter = self.limiter.as_ref();
        let pumped = sink.pump(&mut *body);
        stats.received = sink.written - have;
        if let Err(fault) = pumped {
            if matches!(fault.class, Class::Oversize | Class::HtmlPage | Class::LfsPointer) {
                install::discard_partial(&job.partial);
            }
            return Err(fault);
        }
        sink.finish_or_discard(have)
    }

    /// Opens `url` from byte `from` on. The answer says where its body really starts:
    /// at `from`, or at 0 when the server ignored or refused the range.
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
        let remote = |o: &Origin| o.url().is_some_and(crate::net::url::is_remote);
        let reached = |o: &Origin| {
            o.url().and_then(crate::net::url::host).is_none_or(|h| self.unreachable_fault(&h).is_none())
        };
        job.sources
            .iter()
            .filter(|o| *o != origin && o.kind() == origin.kind() && remote(o) && reached(o))
            .collect()
    }

    /// The pinned size, when `job` from `url` may be split over several connections: a
    /// large pinned file from an http(s) server or S3, with more than one connection allowed.
    fn segmentable(&self, job: &Job<'_>, url: &str) -> Option<u64> {
        let (size, _) = job.expect.pinned()?;
        let remote = crate::net::url::is_remote(url);
        (remote && size >= segments::SEGMENT_THRESHOLD && self.settings.connections > 1).then_some(size)
    }

    /// Fetches `job` piece by piece into `file` (pre-sized), then checks the digest.
    fn segmented(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        file: &File,
        start: Pieces<'_>,
        events: &mut Listener<'_>,
        stats: &mut AttemptStats,
    ) -> Result<(File, String, u64), Fault> {
        let Pieces { validator, pieces, first, extras } = start;
        let url = origin.url().ok_or_else(|| Fault::new(Class::BadUrl, "this origin has no URL"))?;
        let (size, sha256) = job.expect.pinned().ok_or_else(|| Fault::new(Class::LocalIo, "unpinned"))?;
        let origins: Vec<&Origin> = std::iter::once(origin).chain(extras.iter().copied()).collect();
        let urls: Vec<&str> = origins.iter().filter_map(|o| o.url()).collect();
        let admit = |host: &str| {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let open = slots.entry(host.to_owned()).or_default();
            let room = *open < self.settings.host_ceiling;
            *open += usize::from(room);
            room
        };
        let release = |host: &str| {
            let mut slots = self.slots.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(open) = slots.get_mut(host) {
                *open = open.saturating_sub(1);
            }
        };
        stats.resumed_from = segments::frontier(&pieces);
        stats.status = Some(206);
        stats.segmented = true;
        events(Event::Started { origin, position: pieces.iter().map(|p| p.next - p.start).sum() });
        let key = url_key(url);
        let mut transfer = segments::Transfer {
            net: &self.net,
            urls: &urls,
            url_key: &key,
            partial: &job.partial,
            size,
            validator: &validator,
            connections: self.settings.connections,
            retries: self.settings.retries,
            backoff: self.settings.backoff,
            admit: &admit,
            release: &release,
            limiter: self.limiter.as_ref(),
        };
        let mut notes = |note| match note {
            segments::Note::Bytes(n) => events(Event::Bytes(n)),
            segments::Note::Retrying { source, fault, wait } => {
                events(Event::Retrying { origin: origins[source], fault: &fault, wait })
            }
            segments::Note::Range(ranged) => {
                events(Event::Range { origin: origins[ranged.source], ranged: &ranged })
            }
        };
        stats.received = 0;
        let done = segments::run(&transfer, file, pieces, first, &mut notes)?;
        stats.received = done.received;
        let handle = file.try_clone().map_err(|e| Fault::local(&job.partial, &e))?;
        if done.sha256 == sha256 {
            return Ok((handle, done.sha256, size));
        }
        stats.blended = done.spans.iter().any(|span| span.source != 0);
        if stats.blended {
            // Fetch the other sources' bytes again from the first, comparing as they come:
            // whichever sent different bytes is named, and the file may yet be right.
            transfer.urls = &urls[..1];
            let pieces = segments::audit_pieces(&done.spans, size);
            let audited = segments::run(&transfer, file, pieces, None, &mut notes)?;
            stats.received += audited.received;
            if audited.sha256 == sha256 {
                for (source, at) in &audited.differed {
                    events(Event::Differed { origin: origins[*source], at: *at, first: origin });
                }
                return Ok((handle, audited.sha256, size));
            }
            if !audited.differed.is_empty() {
                // With the first source's bytes in place of the others' the file is still
                // wrong, and they differ: the first source is the one sending wrong bytes.
                install::discard_partial(&job.partial);
                let _ = std::fs::remove_file(segments::sidecar_path(&job.partial));
                let detail = format!(
                    "sha256 is {}, the pin is {sha256}; {} sends bytes that differ from the other sources'",
                    audited.sha256,
                    crate::text::redact_url(url)
                );
                return Err(Fault::new(Class::HashMismatch, detail));
            }
        }
        install::discard_partial(&job.partial);
        let _ = std::fs::remove_file(segments::sidecar_path(&job.partial));
        Err(Fault::new(Class::HashMismatch, format!("sha256 is {}, the pin is {sha256}", done.sha256)))
    }

    /// With `probe`, a fresh start asks for `bytes=0-`: a 206 tells that ranges work and
    /// gives the total size, and its body is the file from the start all the same.
    fn open(
        &self,
        job: &Job<'_>,
        url: &str,
        from: u64,
        validator: Option<&str>,
        probe: bool,
    ) -> Result<Source, Fault> {
        if let Some(path) = file_url_path(url) {
            return open_file(&path, from);
        }
        let url = hosts::normalize_drive_url(url).unwrap_or_else(|| url.to_owned());
        let check = |headers: &HeaderMap| match job.expect.pinned() {
            Some((size, sha256)) => hosts::check_linked(headers, size, sha256),
            None => Ok(()),
        };
        if from == 0 && hosts::is_resolve_url(&url) {
            // Ask before downloading: a stale pin shows in the headers of the first hop.
            match self.net.request(Method::Head, &url, &[], &[], &check) {
                Err(fault) if fault.class == Class::StalePin => return Err(fault),
                _ => {}
            }
        }
        let mut headers = Vec::new();
        if from > 0 || probe {
            headers.push(("Range", format!("bytes={from}-")));
            if let Some(validator) = validator {
                headers.push(("If-Range", validator.to_owned()));
            }
        }
        let mut answer = self.net.request(Method::Get, &url, &headers, &[], &check)?;
        for _ in 0..MAX_INTERSTITIALS {
            let status = answer.response.status().as_u16();
            let is_html = header(&answer.response, "content-type")
                .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/html"));
            if status != 200 || !is_html {
                break;
            }
            let Answer { response, url: page_url, cookies } = answer;
            let content_type = header(&response, "content-type");
            let validator = validator_of(&response);
            let mut body = response.into_body().into_reader();
            let mut page = Vec::new();
            let read = (&mut body).take(PAGE_LIMIT as u64).read_to_end(&mut page);
            if check::sniff(&page, content_type.as_deref()).is_none() || read.is_err() && page.is_empty() {
                // Labelled HTML but not a page after all: hand over what was read, then the rest.
                let body: Box<dyn Read + Send> = Box::new(io::Cursor::new(page).chain(body));
                return Ok(Source {
                    body,
                    start: 0,
                    status: Some(status),
                    total: None,
                    content_type,
                    declared: None,
                    validator,
                });
            }
            let text = String::from_utf8_lossy(&page);
            match hosts::judge_page(&text, &page_url) {
                PageVerdict::FollowUp(next) => {
                    check_follow(&page_url, &next)?;
                    answer = self.net.request(Method::Get, &next, &[], &cookies, &check)?;
                }
                PageVerdict::Refused(fault) => return Err(fault),
                PageVerdict::Unknown => {
                    let what = html_title(&page)
                        .map_or_else(|| "an HTML page".to_owned(), |t| format!("an HTML page titled {t:?}"));
                    return Err(Fault::new(Class::HtmlPage, format!("received {what} instead of the file")));
                }
            }
        }
        let response = answer.response;
        let status = response.status().as_u16();
        if let Some(encoding) = header(&response, "content-encoding")
            .filter(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
            .filter(|_| (200..300).contains(&status))
        {
            return Err(Fault::new(
                Class::Encoded,
                format!(
                    "the server sent the body with Content-Encoding: {encoding}, though the tool asked for identity"
                ),
            ));
        }
        let mut total = None;
        let start = match status {
            200 => 0,
            206 if from > 0 || probe => {
                let range = header(&response, "content-range").as_deref().and_then(parse_content_range);
                match range {
                    Some((first, whole)) if first == from => {
                        total = whole;
                        from
                    }
                    // A range we did not ask for, or none we can read: start over.
                    _ => return self.open(job, &url, 0, None, false),
                }
            }
            // The range is past the end: the partial is stale.
            416 if from > 0 => return self.open(job, &url, 0, None, false),
            _ => {
                let mut fault = status_fault(status);
                // Retry-After first; else the IETF RateLimit header (Hugging Face sends it).
                fault.retry_after = header(&response, "retry-after")
                    .and_then(|v| parse_retry_after(&v, SystemTime::now()))
                    .or_else(|| header(&response, "ratelimit").and_then(|v| parse_rate_limit(&v)));
                return Err(fault);
            }
        };
        let content_type = header(&response, "content-type");
        let declared = header(&response, "content-length").and_then(|v| v.trim().parse().ok());
        let validator = validator_of(&response);
        let body = Box::new(response.into_body().into_reader());
        Ok(Source { body, start, status: Some(status), total, content_type, declared, validator })
    }
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// What to send as `If-Range` when resuming: a strong ETag, else Last-Modified.
fn validator_of(response: &Response<Body>) -> Option<String> {
    header(response, "etag").filter(|e| !e.starts_with("W/")).or_else(|| header(response, "last-modified"))
}

/// An open body, where it starts in the file, and what its headers promised.
struct Source {
    body: Box<dyn Read + Send>,
    start: u64,
    /// The HTTP status it came with (none for a local file).
    status: Option<u16>,
    /// The whole file's size, from a 206's Content-Range.
    total: Option<u64>,
    content_type: Option<String>,
    /// Bytes this body says it holds (from `start`).
    declared: Option<u64>,
    /// The ETag or Last-Modified to send as `If-Range` when resuming.
    validator: Option<String>,
}

fn open_file(path: &Utf8Path, from: u64) -> Result<Source, Fault> {
    let mut file = open_regular(path).map_err(|e| {
        let class = match e.kind() {
            io::ErrorKind::NotFound => Class::NotFound,
            io::ErrorKind::PermissionDenied => Class::Forbidden,
            io::ErrorKind::IsADirectory | io::ErrorKind::InvalidInput => Class::BadUrl,
            _ => Class::LocalIo,
        };
        Fault::new(class, format!("cannot open {path}: {e}"))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if from > 0 && from <= len && file.seek(SeekFrom::Start(from)).is_ok() { from } else { 0 };
    Ok(Source {
        body: Box::new(file),
        start,
        status: None,
        total: None,
        content_type: None,
        declared: Some(len - start),
        validator: None,
    })
}

/// Feeds the bytes already on disk through the hasher, so a resume checks the whole file.
fn rehash_prefix(file: &mut File, len: u64, hasher: &BackgroundHasher) -> io::Result<()> {
    file.seek(SeekFrom::Start(0))?;
    let mut left = len;
    while left > 0 {
        let mut buf = hasher.buffer();
        let want = left.min(HASH_BUFFER as u64) as usize;
        file.read_exact(&mut buf[..want])?;
        hasher.hash(buf, want);
        left -= want as u64;
    }
    Ok(())
}

/// The validator file names its URL by hash: a signed URL's token must not sit on disk.
fn url_key(url: &str) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(url.as_bytes()))
}

fn read_validator(partial: &Utf8Path, url: &str) -> Option<String> {
    let text = std::fs::read_to_string(install::validator_path(partial)).ok()?;
    let (for_url, validator) = text.split_once('\n')?;
    (for_url == url_key(url)).then(|| validator.trim().to_owned()).filter(|v| !v.is_empty())
}

fn write_validator(partial: &Utf8Path, url: &str, validator: Option<&str>) {
    let path = install::validator_path(partial);
    match validator {
        // Only an aid to resuming: failing to keep it is not an error.
        Some(v) => {
            let _ = write_atomically(&path, format!("{}\n{v}\n", url_key(url)).as_bytes());
        }
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Where the bytes of one attempt go: temp file, progress and hasher, together. It
/// borrows the job for what the bytes must be and where they go.
struct Sink<'s, 'e, 'l> {
    job: &'s Job<'s>,
    file: File,
    hasher: BackgroundHasher,
    /// Bytes in the temp file, resumed prefix included.
    written: u64,
    /// Where this body starts in the file.
    start: u64,
    /// The first bytes of the file, for sniffing; unused when resuming mid-file.
    prefix: Vec<u8>,
    sniffed: bool,
    content_type: Option<String>,
    /// Bytes the body says it holds (from `start`).
    declared: Option<u64>,
    events: &'e mut Listener<'l>,
    /// The shared `--limit-rate` cap, if any.
    limiter: Option<&'s Limiter>,
}

impl<'s, 'e, 'l> Sink<'s, 'e, 'l> {
    fn new(
        job: &'s Job<'s>,
        file: File,
        hasher: BackgroundHasher,
        written: u64,
        events: &'e mut Listener<'l>,
    ) -> Self {
        Sink {
            job,
            file,
            hasher,
            written,
            start: written,
            prefix: Vec::with_capacity(SNIFF_LEN),
            sniffed: written > 0,
            content_type: None,
            declared: None,
            events,
            limiter: None,
        }
    }

    fn pump(&mut self, body: &mut dyn Read) -> Result<(), Fault> {
        if self.sniffed {
            self.judge_resumed()?;
        }
        loop {
            let mut buf = self.hasher.buffer();
            let (n, error) = fill(body, &mut buf);
            // Bytes that arrived before a fault are kept: a later attempt resumes after them.
            if n > 0 {
                let taken = self.accept(&buf[..n])?;
                self.hasher.hash(buf, taken);
                if taken < n {
                    // `--skip-checks` stops at the pinned size: the rest is not the file.
                    break;
                }
            }
            if let Some(e) = error {
                // What did arrive may already say more than the broken connection does.
                if !self.sniffed {
                    self.judge_prefix()?;
                }
                return Err(read_fault(&e, self.written));
            }
            if n == 0 {
                break;
            }
        }
        if !self.sniffed {
            self.judge_prefix()?;
        }
        Ok(())
    }

    /// Checks a chunk, then writes it and reports it; the caller hands what was taken to
    /// the hasher. Returns how much was taken: all of it, except past an unchecked
    /// download's pinned size.
    fn accept(&mut self, chunk: &[u8]) -> Result<usize, Fault> {
        if !self.sniffed {
            let take = chunk.len().min(SNIFF_LEN - self.prefix.len());
            self.prefix.extend_from_slice(&chunk[..take]);
            if self.prefix.len() == SNIFF_LEN {
                self.judge_prefix()?;
            }
        }
        if let Some(ceiling) = self.job.expect.ceiling()
            && self.written.saturating_add(chunk.len() as u64) > ceiling
        {
            let what = if self.job.expect.pinned().is_some() { "the pinned" } else { "the allowed" };
            return Err(Fault::new(
                Class::Oversize,
                format!("the body is larger than {what} {ceiling} bytes; stopped reading"),
            ));
        }
        let chunk = match self.job.expect {
            Expect::Unchecked { size } => {
                let room = size.saturating_sub(self.written);
                &chunk[..chunk.len().min(usize::try_from(room).unwrap_or(usize::MAX))]
            }
            _ => chunk,
        };
        self.file.write_all(chunk).map_err(|e| self.write_fault(&e))?;
        self.written += chunk.len() as u64;
        (self.events)(Event::Bytes(chunk.len() as u64));
        if let Some(limiter) = self.limiter {
            limiter.take(chunk.len() as u64);
        }
        Ok(chunk.len())
    }

    /// A failed write; a full disk says how far the download got and that it is kept.
    fn write_fault(&self, e: &io::Error) -> Fault {
        let partial = &self.job.partial;
        let mut fault = Fault::local(partial, e);
        if fault.class == Class::NoSpace {
            let of = self.job.expect.size().map_or_else(String::new, |size| format!(" of {size}"));
            fault.detail = format!(
                "no space to write {partial}: {e}, after {}{of} bytes (the partial download is kept; a later run resumes it)",
                self.written
            );
        }
        fault
    }

    /// Called once, when the first bytes are in: is this the file at all?
    fn judge_prefix(&mut self) -> Result<(), Fault> {
        self.sniffed = true;
        if let Some(class) = check::sniff(&self.prefix, self.content_type.as_deref()) {
            let what = match class {
                Class::LfsPointer => "a Git LFS pointer".to_owned(),
                _ => match html_title(&self.prefix) {
                    Some(title) => format!("an HTML page titled {title:?}"),
                    None => "an HTML page".to_owned(),
                },
            };
            return Err(Fault::new(class, format!("received {what} instead of the file")));
        }
        self.judge_length()
    }

    /// A resumed body has no file header to sniff; its type and length still tell.
    fn judge_resumed(&self) -> Result<(), Fault> {
        let html = self
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/html"));
        if html {
            return Err(Fault::new(Class::HtmlPage, "received an HTML page instead of the rest of the file"));
        }
        self.judge_length()
    }

    /// What the headers promise, against the pin (or the ceiling), before the bulk arrives.
    fn judge_length(&self) -> Result<(), Fault> {
        let Some(declared) = self.declared else {
            return Ok(());
        };
        let total = self.start.saturating_add(declared);
        match self.job.expect {
            Expect::Pinned { size, .. } => {
                let offers = format!("the server offers {total} bytes but the pin says {size}");
                match total.cmp(&size) {
                    std::cmp::Ordering::Greater => Err(Fault::new(Class::Oversize, offers)),
                    std::cmp::Ordering::Less => Err(Fault::new(Class::SizeMismatch, offers)),
                    std::cmp::Ordering::Equal => Ok(()),
                }
            }
            Expect::Unknown { max_size } if total > max_size => Err(Fault::new(
                Class::Oversize,
                format!("the server offers {total} bytes, more than the allowed {max_size} (`--max-size`)"),
            )),
            _ => Ok(()),
        }
    }

    /// The body ended: size and hash decide whether the file may be installed. Bytes that
    /// hash wrong are discarded; a resumed file that does so gets one fresh start.
    fn finish_or_discard(self, resumed_from: u64) -> Result<(File, String, u64), Fault> {
        let written = self.written;
        let Some((size, sha256)) = self.job.expect.pinned() else {
            let unknown = matches!(self.job.expect, Expect::Unknown { .. });
            if let Some(declared) = self.declared.filter(|_| unknown)
                && self.start.saturating_add(declared) > written
            {
                return Err(Fault::new(
                    Class::Truncated,
                    format!(
                        "the body ended after {written} of {} bytes",
                        self.start.saturating_add(declared)
                    ),
                ));
            }
            return Ok((self.file, self.hasher.finish()?, written));
        };
        if written < size {
            return Err(Fault::new(
                Class::Truncated,
                format!("the body ended after {written} of {size} bytes"),
            ));
        }
        let actual = self.hasher.finish()?;
        if actual == sha256 {
            return Ok((self.file, actual, written));
        }
        install::discard_partial(&self.job.partial);
        if resumed_from > 0 {
            return Err(Fault::new(
                Class::StalePartial,
                format!("the file resumed at byte {resumed_from} hashed to {actual}; starting over"),
            ));
        }
        Err(Fault::new(Class::HashMismatch, format!("sha256 is {actual}, the pin is {sha256}")))
    }
}

/// How long bytes may sit in a buffer before they go to disk and to the progress report:
/// on a slow link a 1 MiB buffer could take minutes to fill, and a kill would lose it.
const FILL_BUDGET: Duration = Duration::from_millis(100);

/// Reads until `buf` is full, [`FILL_BUDGET`] has passed with some bytes in, the body
/// ends, or a read fails (the count so far and the error). Big hand-offs on fast links
/// keep the hashing thread's overhead negligible.
fn fill(body: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let started = Instant::now();
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(read) => n += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
        if started.elapsed() >= FILL_BUDGET {
            break;
        }
    }
    (n, None)
}

/// The text of `<title>` in the first bytes of a page, to tell the user which page it was.
fn html_title(prefix: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(prefix);
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title: String = text[open_end..close].split_whitespace().collect::<Vec<_>>().join(" ");
    (!title.is_empty()).then(|| title.chars().take(80).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_titles_are_extracted_for_the_message() {
        assert_eq!(
            html_title(b"<html><head><TITLE>\n Google Drive -  Virus scan warning</title>").as_deref(),
            Some("Google Drive - Virus scan warning")
        );
        assert_eq!(html_title(b"<html><title></title>"), None);
        assert_eq!(html_title(b"<html><title>unterminated"), None);
    }
}
