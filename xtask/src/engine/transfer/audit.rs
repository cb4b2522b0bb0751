//! The audit of a blended download whose digest is wrong: which source sent the wrong
//! bytes, found without a second full download and without throwing away what the
//! others sent.
//!
//! First the other sources' spans (and bytes kept from an interrupted run, whose source
//! is not known) are fetched again from the first source and compared as they come.
//! Where they differ, the first source's bytes go to a side file (`*.part-audit`, sparse)
//! and nothing is overwritten; the digest is of the file with them in place. If it is the
//! pin's, the others were wrong: the side bytes are moved in. If not, and they differed,
//! the first source is the one sending wrong bytes: the file still holds what the others
//! sent, so only the first source's own spans come again, from the next source, compared
//! as they come. The whole-file hash decides every time.

use std::fs::{File, OpenOptions};

use camino::Utf8PathBuf;

use crate::engine::events::Listener;
use crate::engine::segments::{self, KEPT};
use crate::engine::transfer::job::WrongSource;
use crate::engine::transfer::sink::Checked;
use crate::error::{Class, Facts, Fault, Origin};
use crate::source::Source;
use crate::store::fs::{read_exact_at, write_all_at};
use crate::store::hash::HASH_BUFFER;
use crate::store::partial::Partial;

/// What the audit has to work with.
pub(super) struct Audit<'a> {
    pub partial: &'a Partial,
    /// The sources of the blend, the first first, as the spans number them.
    pub origins: &'a [&'a Origin],
    pub urls: &'a [&'a Source],
    pub size: u64,
    pub sha256: &'a str,
    pub file: &'a File,
}

/// What the audit found.
pub(super) struct Audited<'a> {
    pub result: Result<Checked, Fault>,
    /// Sources found sending other bytes (`None`: bytes kept from an interrupted run),
    /// with the first such byte; said only when the file then hashed right.
    pub named: Vec<(Option<&'a Origin>, u64)>,
    /// The source whose bytes fixed the file.
    pub fixed_from: &'a Origin,
    /// The first source was found sending wrong bytes: not to be asked again.
    pub first_source_bad: bool,
}

/// The side file beside a partial, removed whatever happens.
struct Side {
    path: Utf8PathBuf,
    file: File,
}

impl Drop for Side {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl<'a> Audit<'a> {
    pub(super) fn run(
        &self,
        transfer: &segments::Transfer<'_>,
        spans: &[segments::Span],
        events: &mut Listener<'_>,
    ) -> Audited<'a> {
        let first = self.origins[0];
        let mut audited = Audited {
            result: Err(self.wrong(None)),
            named: Vec::new(),
            fixed_from: first,
            first_source_bad: false,
        };
        let side = match self.side() {
            Ok(side) => side,
            Err(fault) => {
                audited.result = Err(fault);
                return audited;
            }
        };
        let first_only = segments::Transfer {
            urls: &self.urls[..1],
            origins: &self.origins[..1],
            record: false,
            side: Some(&side.file),
            ..*transfer
        };
        let pieces = segments::audit_pieces(spans, self.size);
        let checked = match segments::run(&first_only, self.file, pieces, None, events) {
            Ok(checked) => checked,
            Err(fault) => {
                audited.result = Err(fault);
                return audited;
            }
        };
        if checked.sha256 == self.sha256 {
            // The first source's bytes are the file's: the others sent wrong ones.
            audited.result = self.move_in(&side, &checked.substituted).and_then(|()| {
                let wrong = checked.differed.iter().filter_map(|&(source, at)| {
                    let origin = self.origins.get(source)?;
                    Some(WrongSource { origin: (*origin).clone(), first_wrong_byte: at })
                });
                self.checked(wrong.collect())
            });
            audited.named = self.name(&checked.differed, |source| self.origins.get(source).copied());
            return audited;
        }
        drop(side);
        let others_differ = checked.differed.iter().any(|&(source, _)| source != KEPT);
        if !others_differ || self.urls.len() < 2 {
            self.partial.discard();
            audited.first_source_bad = others_differ;
            audited.result = Err(self.wrong(Some(&checked.sha256).filter(|_| others_differ)));
            return audited;
        }
        // The first source sends wrong bytes. What the others sent is still in the file:
        // fetch only the first source's spans (and kept bytes) again, from the next one.
        audited.first_source_bad = true;
        let others = segments::Transfer {
            urls: &self.urls[1..],
            origins: &self.origins[1..],
            validator: None,
            record: false,
            ..*transfer
        };
        let pieces = segments::audit_pieces_of(spans, self.size, |source| source == 0 || source == KEPT);
        match segments::run(&others, self.file, pieces, None, events) {
            Ok(again) if again.sha256 == self.sha256 => {
                audited.fixed_from = self.origins[1];
                audited.named = self.name(&again.differed, |source| (source == 0).then_some(first));
                let wrong = again.differed.iter().filter(|(source, _)| *source == 0);
                let wrong = wrong.map(|&(_, at)| WrongSource { origin: first.clone(), first_wrong_byte: at });
                audited.result = self.checked(wrong.collect());
            }
            Ok(again) => {
                self.partial.discard();
                audited.result = Err(self.wrong(Some(&again.sha256)));
            }
            Err(fault) => audited.result = Err(fault),
        }
        audited
    }

    /// A sparse file the size of the partial, beside it.
    fn side(&self) -> Result<Side, Fault> {
        let path = self.partial.audit();
        let local = |e: std::io::Error| Fault::local(&path, &e);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(local)?;
        file.set_len(self.size).map_err(local)?;
        Ok(Side { path, file })
    }

    /// Copies the side file's ranges into the partial, and makes them durable with it.
    fn move_in(&self, side: &Side, ranges: &[(u64, u64)]) -> Result<(), Fault> {
        let local = |e: std::io::Error| Fault::local(self.partial.path(), &e);
        let mut buf = vec![0u8; HASH_BUFFER];
        for &(start, end) in ranges {
            let mut at = start;
            while at < end {
                let want = (end - at).min(buf.len() as u64) as usize;
                read_exact_at(&side.file, &mut buf[..want], at).map_err(local)?;
                write_all_at(self.file, &buf[..want], at).map_err(local)?;
                at += want as u64;
            }
        }
        Ok(())
    }

    /// The partial, checked, with the sources found sending wrong bytes.
    fn checked(&self, wrong_sources: Vec<WrongSource>) -> Result<Checked, Fault> {
        let file = self.file.try_clone().map_err(|e| Fault::local(self.partial.path(), &e))?;
        Ok(Checked { file, sha256: self.sha256.to_owned(), size: self.size, wrong_sources })
    }

    fn name(
        &self,
        differed: &[(usize, u64)],
        who: impl Fn(usize) -> Option<&'a Origin>,
    ) -> Vec<(Option<&'a Origin>, u64)> {
        differed.iter().map(|&(source, at)| (who(source), at)).collect()
    }

    /// The digest is wrong; with `computed`, the first source is the one sending other bytes.
    fn wrong(&self, computed: Option<&String>) -> Fault {
        let hash =
            Facts::Hash { computed: computed.cloned().unwrap_or_default(), pinned: self.sha256.to_owned() };
        let mut fault = Fault::of(Class::HashMismatch, hash);
        if computed.is_some() {
            fault.detail =
                format!("{}; {} sends bytes that differ from the other sources'", fault.detail, self.urls[0]);
        }
        fault
    }
}
