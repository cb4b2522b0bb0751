//! Where the bytes of one single-stream attempt go: checked, into the temp file and the
//! progress report, then handed to the hashing thread, in one pass ([`Sink::accept`]).
//! The first bytes are sniffed for web pages and LFS pointers, the transfer stops the
//! moment the body outgrows the pin, and only bytes whose size and hash match are kept.

use std::fs::File;
use std::io::{self, Read, Write};

use crate::engine::check::page_fault;
use crate::engine::check::{self, BackgroundHasher, SNIFF_LEN};
use crate::engine::events::Event;
use crate::engine::retry::Limiter;
use crate::engine::transfer::job::{Expect, Job, Listener, WrongSource};
use crate::error::{Class, Facts, Fault};
use crate::net::client::fill;
use crate::net::faults::read_fault;
use crate::net::headers::is_html_type;

/// A temp file whose bytes matched what they must be: ready to install.
pub(super) struct Checked {
    pub file: File,
    pub sha256: String,
    pub size: u64,
    /// Sources an audit found sending other bytes than the pinned file's.
    pub wrong_sources: Vec<WrongSource>,
}

/// Temp file, progress and hasher, fed together. It borrows the job for what the bytes
/// must be and where they go.
pub(super) struct Sink<'s, 'e, 'l> {
    job: &'s Job<'s>,
    file: File,
    hasher: BackgroundHasher,
    /// Bytes in the temp file, resumed prefix included.
    pub written: u64,
    /// Where this body starts in the file.
    start: u64,
    /// The first bytes of the file, for sniffing; unused when resuming mid-file.
    prefix: Vec<u8>,
    sniffed: bool,
    /// A resumed body labelled HTML: its first bytes decide whether it is a page.
    suspect: bool,
    pub content_type: Option<String>,
    /// Bytes the body says it holds (from `start`).
    pub declared: Option<u64>,
    events: &'e mut Listener<'l>,
    /// The shared `--limit-rate` cap, if any.
    pub limiter: Option<&'s Limiter>,
}

impl<'s, 'e, 'l> Sink<'s, 'e, 'l> {
    pub(super) fn new(
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
            suspect: false,
            content_type: None,
            declared: None,
            events,
            limiter: None,
        }
    }

    pub(super) fn pump(&mut self, body: &mut dyn Read) -> Result<(), Fault> {
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
        if self.suspect {
            self.suspect = false;
            let head = &chunk[..chunk.len().min(SNIFF_LEN)];
            if check::sniff(head) == Some(Class::HtmlPage) {
                return Err(page_fault(head, "instead of the rest of the file"));
            }
        }
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
        let partial = self.job.partial.path();
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
        match check::sniff(&self.prefix) {
            Some(Class::LfsPointer) => {
                Err(Fault::new(Class::LfsPointer, "received a Git LFS pointer instead of the file"))
            }
            Some(_) => Err(page_fault(&self.prefix, "instead of the file")),
            None => self.judge_length(),
        }
    }

    /// A resumed body has no file header to sniff; its length still tells, and one
    /// labelled HTML has its first bytes looked at ([`Sink::accept`]): busybox httpd
    /// labels the rest of any file it does not know `text/html`.
    fn judge_resumed(&mut self) -> Result<(), Fault> {
        self.suspect = is_html_type(self.content_type.as_deref());
        self.judge_length()
    }

    /// What the headers promise, against the pin (or the ceiling), before the bulk arrives.
    fn judge_length(&self) -> Result<(), Fault> {
        let Some(declared) = self.declared else {
            return Ok(());
        };
        let offered = self.start.saturating_add(declared);
        match self.job.expect {
            Expect::Pinned { size, .. } => match offered.cmp(&size) {
                std::cmp::Ordering::Greater => {
                    Err(Fault::of(Class::Oversize, Facts::Offers { offered, pinned: size }))
                }
                std::cmp::Ordering::Less => {
                    Err(Fault::of(Class::SizeMismatch, Facts::Offers { offered, pinned: size }))
                }
                std::cmp::Ordering::Equal => Ok(()),
            },
            Expect::Unknown { max_size } if offered > max_size => Err(Fault::new(
                Class::Oversize,
                format!("the server offers {offered} bytes, more than the allowed {max_size}"),
            )),
            _ => Ok(()),
        }
    }

    /// The body ended: size and hash decide whether the file may be installed. Bytes that
    /// hash wrong are discarded; a resumed file that does so gets one fresh start.
    pub(super) fn finish_or_discard(self, resumed_from: u64) -> Result<Checked, Fault> {
        let written = self.written;
        let Some((size, sha256)) = self.job.expect.pinned() else {
            let unknown = matches!(self.job.expect, Expect::Unknown { .. });
            if let Some(declared) = self.declared.filter(|_| unknown)
                && self.start.saturating_add(declared) > written
            {
                let expected = self.start.saturating_add(declared);
                return Err(Fault::of(Class::Truncated, Facts::Ended { received: written, expected }));
            }
            return Ok(Checked {
                sha256: self.hasher.finish()?,
                file: self.file,
                size: written,
                wrong_sources: Vec::new(),
            });
        };
        if written < size {
            return Err(Fault::of(Class::Truncated, Facts::Ended { received: written, expected: size }));
        }
        let actual = self.hasher.finish()?;
        if actual == sha256 {
            return Ok(Checked { file: self.file, sha256: actual, size: written, wrong_sources: Vec::new() });
        }
        self.job.partial.discard();
        if resumed_from > 0 {
            return Err(Fault::new(
                Class::StalePartial,
                format!("the file resumed at byte {resumed_from} hashed to {actual}; starting over"),
            ));
        }
        Err(Fault::of(Class::HashMismatch, Facts::Hash { computed: actual, pinned: sha256.to_owned() }))
    }
}
