//! One attempt on one source: continue the temp file (or a split download's pieces)
//! from where it stands, then check it whole. A large pinned file from a server that
//! takes ranges is split over several connections ([`crate::engine::segments`]);
//! anything else is one stream into the [`Sink`].

use std::fs::File;
use std::io::{self, Seek, SeekFrom};

use crate::engine::check::BackgroundHasher;
use crate::engine::events::Event;
use crate::engine::retry::Limiter;
use crate::engine::segments::{self, Piece};
use crate::engine::settings::Settings;
use crate::engine::slots::HostSlots;
use crate::engine::transfer::audit::Audit;
use crate::engine::transfer::job::{Expect, Job, Listener};
use crate::engine::transfer::open::{self, Opened};
use crate::engine::transfer::resume::{read_validator, rehash_prefix, write_validator};
use crate::engine::transfer::sink::{Checked, Sink};
use crate::error::{Class, Facts, Fault, Origin};
use crate::net::client::Net;
use crate::source::Source;

/// What one attempt did, for the log and the retry budget.
#[derive(Default)]
pub(super) struct Stats {
    pub resumed_from: u64,
    pub received: u64,
    pub status: Option<u16>,
    /// The attempt split the file over several connections.
    pub segmented: bool,
    /// Its pieces came from more than one source.
    pub blended: bool,
    /// The most connections open at once (0 when it did not split).
    pub connections: usize,
    /// The audit of a blend found this attempt's own source sending other bytes than the
    /// rest: it is not asked again in this run, not even as one stream.
    pub source_bad: bool,
}

/// An attempt's stats, and the checked temp file or the fault that ended it.
pub(super) struct Outcome {
    pub stats: Stats,
    pub result: Result<Checked, Fault>,
}

/// A file that may be split: pinned, and large enough.
#[derive(Clone, Copy)]
struct Pin<'p> {
    size: u64,
    sha256: &'p str,
}

/// Where a split transfer starts: the validator all pieces must share, the pieces (fresh,
/// or from a killed run's sidecar), and the first piece's open body, if any.
struct Start<'x> {
    validator: String,
    pieces: Vec<Piece>,
    first: Option<Box<dyn io::Read + Send>>,
    /// Other sources of the same bytes that pieces may come from.
    extras: &'x [&'x Origin],
}

/// What every attempt sends and receives through: the client, the settings, the
/// per-host ceiling and the shared rate cap.
pub(super) struct Wire<'s> {
    pub net: Net,
    pub settings: &'s Settings,
    /// Extra connections open per host right now (beyond each file's first).
    pub slots: HostSlots,
    /// The shared cap of `--limit-rate`, when given.
    pub limiter: Option<Limiter>,
}

impl Wire<'_> {
    /// One attempt: continue the temp file from `origin`, then check it whole.
    pub(super) fn attempt(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        events: &mut Listener<'_>,
        split: bool,
        extras: &[&Origin],
    ) -> Outcome {
        let mut stats = Stats::default();
        let result = self.try_attempt(job, origin, events, &mut stats, split, extras);
        Outcome { stats, result }
    }

    fn try_attempt(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        events: &mut Listener<'_>,
        stats: &mut Stats,
        split: bool,
        extras: &[&Origin],
    ) -> Result<Checked, Fault> {
        let url = origin.url();
        let local = |e: io::Error| Fault::local(job.partial.path(), &e);
        // Nothing is made in the folder before a source has answered with the file (a 404
        // leaves no litter); a partial that is there already is opened to resume it.
        let mut file = match job.partial.exists() {
            true => Some(job.partial.open().map_err(local)?),
            false => None,
        };
        let mut have = match &file {
            Some(file) => file.metadata().map_err(local)?.len(),
            None => 0,
        };
        let empty = |file: &Option<File>| file.as_ref().map_or(Ok(()), |f| f.set_len(0)).map_err(local);
        let too_long = job.expect.ceiling().is_some_and(|ceiling| have > ceiling);
        // Without a pin, only the validator ties a partial to this URL: bytes from
        // elsewhere (another URL given to an earlier `add`) must not be resumed.
        let unproven =
            matches!(job.expect, Expect::Unknown { .. }) && read_validator(&job.partial, url).is_none();
        if have > 0 && (too_long || unproven) {
            empty(&file)?;
            have = 0;
        }
        let pin = self.splittable(job, url).filter(|_| split);
        if job.partial.ranges().exists() {
            // A partial with pieces: resumed piece by piece, or (for another URL, size or
            // an unreadable record) worthless, since it has holes.
            let resumed = pin.and_then(|pin| {
                segments::load_sidecar(&job.partial, &url.disk_key(), pin.size).map(|found| (pin, found))
            });
            match resumed {
                // A split partial is pre-sized: any other length is not the file the
                // record describes (removed or cut by hand), whatever the record says.
                Some((pin, _)) if have != pin.size => {
                    events(Event::RecordDropped { why: "the partial beside it is not the size it recorded" });
                    empty(&file)?;
                    let _ = std::fs::remove_file(job.partial.ranges());
                    have = 0;
                }
                Some((pin, (validator, pieces))) => {
                    // The partial is there: its size is the pin's, and the pin is not 0.
                    let file =
                        file.ok_or_else(|| Fault::new(Class::LocalIo, "the partial download vanished"))?;
                    let start = Start { validator, pieces, first: None, extras };
                    return self.segmented(job, origin, pin, &file, start, events, stats);
                }
                None => {
                    empty(&file)?;
                    let _ = std::fs::remove_file(job.partial.ranges());
                    have = 0;
                }
            }
        }
        let mut hasher = BackgroundHasher::start();
        if let (true, Some(file)) = (have > 0, file.as_mut()) {
            rehash_prefix(file, have, &hasher).map_err(local)?;
        }
        if have > 0
            && job.expect.pinned().is_some_and(|(size, _)| size == have)
            && let Some(done) = file.take()
        {
            // A complete download whose install was interrupted: no request needed.
            return Sink::new(job, done, hasher, have, events).finish_or_discard(have);
        }
        let validator = if have > 0 { read_validator(&job.partial, url) } else { None };
        let probe = pin.is_some() && have == 0;
        let opened = open::open(&self.net, job.expect, url, have, validator.as_deref(), probe)?;
        stats.status = opened.status;
        let mut file = match file {
            Some(file) => file,
            None => job.partial.open().map_err(local)?,
        };
        if let (Some(pin), Some(206), Some(validator)) =
            (pin.filter(|_| probe), opened.status, &opened.validator)
            && opened.total == Some(pin.size)
        {
            // Ranges work and the file is large: split it over several connections.
            write_validator(&job.partial, url, Some(validator));
            // `auto` starts as one piece: each connection the ramp adds takes half of
            // the piece with the most left.
            let pieces = segments::split(pin.size, self.settings.connections.unwrap_or(1));
            // The sidecar exists before the file has holes: a kill at any moment leaves
            // a partial that a rerun reads piece by piece, never as one long prefix.
            segments::write_sidecar(&job.partial, &url.disk_key(), pin.size, validator, &pieces);
            file.set_len(pin.size).map_err(local)?;
            let start = Start { validator: validator.clone(), pieces, first: Some(opened.body), extras };
            return self.segmented(job, origin, pin, &file, start, events, stats);
        }
        if opened.start != have {
            // The server sent the whole file (no range support, or it changed): restart.
            file.set_len(0).map_err(local)?;
            hasher = BackgroundHasher::start();
            have = 0;
        }
        if have == 0 {
            write_validator(&job.partial, url, opened.validator.as_deref());
        }
        file.seek(SeekFrom::Start(have)).map_err(local)?;
        stats.resumed_from = have;
        events(Event::Started { origin, position: have });
        let Opened { mut body, content_type, declared, .. } = opened;
        let mut sink = Sink::new(job, file, hasher, have, events);
        sink.content_type = content_type;
        sink.declared = declared;
        sink.limiter = self.limiter.as_ref();
        let pumped = sink.pump(&mut *body);
        stats.received = sink.written - have;
        if let Err(fault) = pumped {
            if matches!(fault.class, Class::Oversize | Class::HtmlPage | Class::LfsPointer) {
                job.partial.discard();
            }
            return Err(fault);
        }
        sink.finish_or_discard(have)
    }

    /// How many connections a split file from `url` uses: `--connections N`, or the ramp
    /// from where its host settled for an earlier file, under its ceiling.
    fn connections(&self, url: &Source) -> segments::Connections {
        let host = url.host().unwrap_or_default();
        match self.settings.connections {
            Some(n) => segments::Connections::Fixed(n),
            // A caching proxy may fetch the whole file from the origin for every range
            // asked of it (squid with `range_offset_limit -1` and the file over its
            // object size limit: 20 GB for a 256 MiB file, measured): splitting through a
            // proxy is for the user to ask for, knowing how theirs is set.
            None if self.net.proxied(url) => segments::Connections::ThroughProxy,
            None => segments::Connections::Auto {
                start: self.slots.start(&host),
                ceiling: self.slots.file_ceiling(&host),
            },
        }
    }

    /// The pin, when `job` from `url` may be split over several connections: a large
    /// pinned file from an http(s) server or S3, with more than one connection allowed.
    fn splittable<'j>(&self, job: &Job<'j>, url: &Source) -> Option<Pin<'j>> {
        let (size, sha256) = job.expect.pinned()?;
        let worth =
            url.is_remote() && size >= segments::SEGMENT_THRESHOLD && self.settings.connections != Some(1);
        worth.then_some(Pin { size, sha256 })
    }

    /// Fetches `job` piece by piece into `file` (pre-sized), then checks the digest.
    #[allow(clippy::too_many_arguments)] // One attempt's parts, each named; a struct would only rename them.
    fn segmented(
        &self,
        job: &Job<'_>,
        origin: &Origin,
        pin: Pin<'_>,
        file: &File,
        start: Start<'_>,
        events: &mut Listener<'_>,
        stats: &mut Stats,
    ) -> Result<Checked, Fault> {
        let Start { validator, pieces, first, extras } = start;
        let Pin { size, sha256 } = pin;
        let origins: Vec<&Origin> = std::iter::once(origin).chain(extras.iter().copied()).collect();
        let urls: Vec<&Source> = origins.iter().map(|o| o.url()).collect();
        stats.resumed_from = segments::frontier(&pieces);
        stats.status = Some(206);
        stats.segmented = true;
        events(Event::Started { origin, position: pieces.iter().map(|p| p.next - p.start).sum() });
        let key = urls[0].disk_key();
        let transfer = segments::Transfer {
            net: &self.net,
            urls: &urls,
            origins: &origins,
            url_key: &key,
            partial: &job.partial,
            size,
            validator: Some(&validator),
            record: true,
            side: None,
            connections: self.connections(urls[0]),
            settings: self.settings,
            slots: &self.slots,
            limiter: self.limiter.as_ref(),
        };
        // Counted as they come, so an attempt that fails still tells what it moved.
        let received = std::cell::Cell::new(0u64);
        let connections = std::cell::Cell::new(0usize);
        let mut counted = |event: Event<'_>| {
            match &event {
                Event::Bytes(n) => received.set(received.get() + n),
                Event::Connections { most, .. } => connections.set(connections.get().max(*most)),
                _ => {}
            }
            events(event)
        };
        // Bytes already done come from an earlier run whose sources are not known: they
        // are never credited to the first source, so an audit fetches them again too.
        let kept: Vec<segments::Span> = pieces
            .iter()
            .filter(|p| p.next > p.start)
            .map(|p| segments::Span { start: p.start, end: p.next, source: segments::KEPT })
            .collect();
        let done = segments::run(&transfer, file, pieces, first, &mut counted);
        stats.received = received.get();
        stats.connections = connections.get();
        let mut done = done?;
        done.spans.extend(kept);
        let handle = || file.try_clone().map_err(|e| Fault::local(job.partial.path(), &e));
        if done.sha256 == sha256 {
            return Ok(Checked { file: handle()?, sha256: done.sha256, size, wrong_sources: Vec::new() });
        }
        stats.blended = done.spans.iter().any(|span| span.source != 0 && span.source != segments::KEPT);
        let kept_any = done.spans.iter().any(|span| span.source == segments::KEPT);
        if stats.blended || kept_any {
            let audit = Audit { partial: &job.partial, origins: &origins, urls: &urls, size, sha256, file };
            let audited = audit.run(&transfer, &done.spans, &mut counted);
            stats.received = received.get();
            stats.source_bad = audited.first_source_bad;
            for (origin, at) in &audited.named {
                match origin {
                    Some(sent) => {
                        events(Event::Differed { origin: sent, at: *at, first: audited.fixed_from })
                    }
                    None => events(Event::KeptDiffered { at: *at, first: audited.fixed_from }),
                }
            }
            return audited.result;
        }
        job.partial.discard();
        Err(Fault::of(Class::HashMismatch, Facts::Hash { computed: done.sha256, pinned: sha256.to_owned() }))
    }
}
