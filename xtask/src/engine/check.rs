//! Is this the file the pin describes?
//!
//! Two questions live here. For bytes on disk: does the file have the pinned size and
//! sha256 ([`inspect`])? For bytes arriving over the network: do the first bytes look
//! like a web page or a Git LFS pointer instead of a model ([`sniff`])? A downloaded
//! file is only ever installed after [`crate::engine::transfer`] has compared its streamed hash
//! with the pin, so nothing here is on the download's hot path except the sniff.

use std::io;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use camino::Utf8Path;
use sha2::{Digest, Sha256};

use crate::engine::manifest::Model;
use crate::error::{Class, Fault};
use crate::store::hash::{HASH_BUFFER, hash_reader, hex};
use crate::store::stamp::{Fingerprint, Stamp, Stamps};
use crate::text::server_text;

/// What a model's destination holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LocalState {
    /// Size and sha256 match the pin (hashed just now).
    Ok,
    /// Unchanged since it was hashed and matched (its stamp vouches for it).
    Stamped,
    /// `--skip-checks`: a file is there; nothing about it was checked.
    Unchecked,
    Missing,
    /// Something other than a regular file sits at the path (a directory, a device).
    NotAFile,
    WrongSize {
        actual: u64,
    },
    WrongHash {
        actual: String,
    },
    /// The file exists but could not be read.
    Unreadable {
        error: String,
    },
}

impl LocalState {
    /// The state's name in `--json` output and `status`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            LocalState::Ok => "ok",
            LocalState::Stamped => "ok-stamped",
            LocalState::Unchecked => "unverified",
            LocalState::Missing => "missing",
            LocalState::NotAFile => "not-a-file",
            LocalState::WrongSize { .. } => "wrong-size",
            LocalState::WrongHash { .. } => "wrong-hash",
            LocalState::Unreadable { .. } => "unreadable",
        }
    }

    pub(crate) fn is_present(&self) -> bool {
        matches!(self, LocalState::Ok | LocalState::Stamped | LocalState::Unchecked)
    }
}

/// What a destination's metadata alone says, before any byte is read: the one check
/// `verify` (which then hashes what it must) and `status` (which never hashes) share.
#[derive(Debug)]
pub(crate) enum Glance {
    Missing,
    NotAFile,
    Unreadable {
        error: String,
    },
    WrongSize {
        actual: u64,
    },
    /// A stamp vouches for this very file as the pin.
    Stamped,
    /// A stamp for this very file says its sha256 is not the pin's.
    StampedOther,
    /// The right size, no stamp for it: only hashing can tell.
    Unproven,
}

/// Looks at `dest` without reading it.
pub(crate) fn glance(model: &Model, dest: &Utf8Path, stamps: Option<&Stamps>) -> Glance {
    let meta = match std::fs::metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Glance::Missing,
        Err(err) => return Glance::Unreadable { error: err.to_string() },
    };
    if !meta.is_file() {
        return Glance::NotAFile;
    }
    if meta.len() != model.size {
        return Glance::WrongSize { actual: meta.len() };
    }
    let stamp = stamps.and_then(|s| s.get(model.path.as_str()));
    match stamp {
        Some(stamp) if stamp.vouches_for(&Fingerprint::of(&meta)) && stamp.sha256 == model.sha256 => {
            Glance::Stamped
        }
        Some(stamp) if stamp.vouches_for(&Fingerprint::of(&meta)) => Glance::StampedOther,
        _ => Glance::Unproven,
    }
}

/// Looks at a model's destination: presence only with `skip_checks`; else size, then
/// the stamp (when `stamps` are trusted), then a full hash. A hash that matched on a
/// file that stayed unchanged meanwhile also yields the stamp to record.
pub(crate) fn inspect(
    model: &Model,
    dest: &Utf8Path,
    skip_checks: bool,
    stamps: Option<&Stamps>,
) -> (LocalState, Option<Stamp>) {
    if skip_checks {
        return match std::fs::metadata(dest) {
            Ok(meta) if meta.is_file() => (LocalState::Unchecked, None),
            Ok(_) => (LocalState::NotAFile, None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => (LocalState::Missing, None),
            Err(err) => (LocalState::Unreadable { error: err.to_string() }, None),
        };
    }
    match glance(model, dest, stamps) {
        Glance::Missing => return (LocalState::Missing, None),
        Glance::NotAFile => return (LocalState::NotAFile, None),
        Glance::Unreadable { error } => return (LocalState::Unreadable { error }, None),
        Glance::WrongSize { actual } => return (LocalState::WrongSize { actual }, None),
        Glance::Stamped => return (LocalState::Stamped, None),
        // A stamp that says "wrong" is not trusted either: the file is hashed again.
        Glance::StampedOther | Glance::Unproven => {}
    }
    match hash_open(dest) {
        Ok((actual, stamp)) if actual == model.sha256 => (LocalState::Ok, stamp),
        Ok((actual, _)) => (LocalState::WrongHash { actual }, None),
        Err(err) => (LocalState::Unreadable { error: err.to_string() }, None),
    }
}

/// Hashes the file at `path` through one open handle, and fingerprints that same handle
/// before and after: the stamp (when the file did not change while it was read) is of
/// exactly the bytes hashed, even if the path is swapped meanwhile.
fn hash_open(path: &Utf8Path) -> io::Result<(String, Option<Stamp>)> {
    let file = std::fs::File::open(path)?;
    let before = Fingerprint::of(&file.metadata()?);
    let sha256 = hash_reader(&file)?;
    let after = Fingerprint::of(&file.metadata()?);
    let stamp = (after == before).then(|| Stamp {
        sha256: sha256.clone(),
        fingerprint: before,
        placed: None,
        linked: None,
    });
    Ok((sha256, stamp))
}

/// The stamp of a file just installed from bytes that were checked on the way in, read
/// from the open file itself: it describes exactly the bytes that were hashed.
pub(crate) fn stamp_of(sha256: &str, file: &std::fs::File) -> Option<Stamp> {
    let meta = file.metadata().ok()?;
    Some(Stamp { sha256: sha256.to_owned(), fingerprint: Fingerprint::of(&meta), placed: None, linked: None })
}

/// Buffers in flight between a download and its [`BackgroundHasher`]: enough to keep
/// both cores busy, small enough to keep memory flat (4 MiB) whatever the file size.
const HASH_QUEUE: usize = 4;

/// Hashes on a second core while the caller receives and writes, so a download costs
/// about as much as the slower of the two instead of their sum. Buffers go round a
/// fixed pool: the caller fills one, hands it over with [`hash`](Self::hash), and gets
/// it back from [`buffer`](Self::buffer) once hashed, so nothing is copied or allocated
/// per chunk.
pub(crate) struct BackgroundHasher {
    work: Option<SyncSender<(Vec<u8>, usize)>>,
    free: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Sha256>>,
}

impl BackgroundHasher {
    pub(crate) fn start() -> BackgroundHasher {
        let (work, queue) = sync_channel::<(Vec<u8>, usize)>(HASH_QUEUE);
        let (give_back, free) = sync_channel(HASH_QUEUE);
        for _ in 0..HASH_QUEUE {
            let _ = give_back.send(vec![0u8; HASH_BUFFER]);
        }
        let thread = std::thread::spawn(move || {
            let mut hasher = Sha256::new();
            for (buf, len) in queue {
                hasher.update(&buf[..len]);
                // The caller may have stopped taking buffers; that is fine.
                let _ = give_back.try_send(buf);
            }
            hasher
        });
        BackgroundHasher { work: Some(work), free, thread: Some(thread) }
    }

    /// An empty buffer of [`HASH_BUFFER`] bytes, once one is free.
    pub(crate) fn buffer(&self) -> Vec<u8> {
        self.free.recv().unwrap_or_else(|_| vec![0u8; HASH_BUFFER])
    }

    /// Queues `buf[..len]` for hashing, in order.
    pub(crate) fn hash(&self, buf: Vec<u8>, len: usize) {
        if let Some(work) = &self.work {
            let _ = work.send((buf, len));
        }
    }

    /// Waits for the queue to drain and returns the digest as lowercase hex. A hashing
    /// thread that died is an error: its digest would describe bytes nobody hashed.
    pub(crate) fn finish(mut self) -> Result<String, Fault> {
        self.work = None;
        let died =
            || Fault::new(Class::LocalIo, "the hashing thread stopped unexpectedly; nothing was installed");
        let thread = self.thread.take().ok_or_else(died)?;
        let hasher = thread.join().map_err(|_| died())?;
        Ok(hex(&hasher.finalize()))
    }
}

impl Drop for BackgroundHasher {
    fn drop(&mut self) {
        // Closing the queue ends the thread; join so no thread outlives the transfer.
        self.work = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How many leading bytes [`sniff`] wants to see before it decides.
pub(crate) const SNIFF_LEN: usize = 512;

/// Recognises the two classic wrong answers from their first bytes: an HTML page (login,
/// consent, quota or error page) and a Git LFS pointer. Model formats (pickle, zip,
/// safetensors, MATLAB, numbers in text) never start like either. The bytes decide, not
/// the `Content-Type`: busybox httpd labels every file it does not know `text/html`, and
/// a tokenizer's vocabulary may well start with `<unk>`.
pub(crate) fn sniff(prefix: &[u8]) -> Option<Class> {
    if prefix.starts_with(b"version https://git-lfs.github.com/spec/") {
        return Some(Class::LfsPointer);
    }
    let start = prefix.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(prefix.len());
    let text = &prefix[start..];
    if text.first() != Some(&b'<') {
        return None;
    }
    let lower: Vec<u8> = text.iter().take(64).map(u8::to_ascii_lowercase).collect();
    const TAGS: &[&[u8]] = &[
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<body",
        b"<title",
        b"<meta",
        b"<script",
        b"<!--",
        b"<div",
        b"<form",
        b"<h1",
        b"<h2",
        b"<p>",
        b"<center",
        b"<table",
    ];
    TAGS.iter().any(|tag| lower.starts_with(tag)).then_some(Class::HtmlPage)
}

/// "received an HTML page titled …": the one wording for a page where bytes belong.
pub(crate) fn page_fault(prefix: &[u8], instead_of: &str) -> Fault {
    let what = html_title(prefix)
        .map_or_else(|| "an HTML page".to_owned(), |t| format!("an HTML page titled {t:?}"));
    Fault::new(Class::HtmlPage, format!("received {what} {instead_of}"))
}

/// The text of `<title>` in the first bytes of a page, to tell the user which page it was.
pub(crate) fn html_title(prefix: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(prefix);
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = server_text(&text[open_end..close], 80);
    (!title.is_empty()).then_some(title)
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

    #[test]
    fn sniff_finds_pages_and_pointers_but_not_models() {
        assert_eq!(sniff(b"\n  <!DOCTYPE html><html>"), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<HTML><body>quota"), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<div>quota exceeded</div>"), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<unk>\t0\n<s>\t0\n"), None, "a tokenizer's vocabulary, however labelled");
        let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n";
        assert_eq!(sniff(pointer), Some(Class::LfsPointer));
        assert_eq!(sniff(b"PK\x03\x04zip"), None);
        assert_eq!(sniff(b"\x80\x02}q\x00pickle"), None);
        assert_eq!(sniff(b"MATLAB 5.0 MAT-file"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn the_background_hasher_matches_a_direct_hash_across_buffers() {
        let data: Vec<u8> = (0..3 * HASH_BUFFER + 12_345).map(|i| (i % 251) as u8).collect();
        let hasher = BackgroundHasher::start();
        for chunk in data.chunks(HASH_BUFFER - 7) {
            let mut buf = hasher.buffer();
            buf[..chunk.len()].copy_from_slice(chunk);
            hasher.hash(buf, chunk.len());
        }
        assert_eq!(hasher.finish().unwrap(), hex(&Sha256::digest(&data)));
        // Dropped unfinished, it still ends its thread.
        drop(BackgroundHasher::start());
    }

    #[test]
    fn a_hashing_thread_that_dies_is_an_error_not_an_empty_digest() {
        let hasher = BackgroundHasher::start();
        // A length past the buffer makes the hashing thread panic on the slice.
        hasher.hash(vec![0u8; 4], 10);
        let err = hasher.finish().unwrap_err();
        assert_eq!(err.class, Class::LocalIo);
        assert!(err.detail.contains("hashing thread"), "{}", err.detail);
    }

    #[test]
    fn a_stamp_describes_the_file_that_was_hashed_not_what_the_path_holds_later() {
        let temp = tempfile::tempdir().unwrap();
        let dir = camino::Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        let path = dir.join("x.bin");
        std::fs::write(&path, b"pinned bytes").unwrap();
        let sha256 = hex(&Sha256::digest(b"pinned bytes"));
        let model = Model {
            name: "x".into(),
            path: "x.bin".into(),
            size: 12,
            sha256: sha256.clone(),
            urls: vec![],
            group: None,
            optional: false,
        };
        // The file is installed and its stamp taken from the open file...
        let installed = std::fs::File::open(&path).unwrap();
        let stamp = stamp_of(&sha256, &installed).unwrap();
        // ...while another process puts different bytes of the same size at the path.
        std::fs::write(dir.join("other"), b"other bytes!").unwrap();
        std::fs::rename(dir.join("other"), &path).unwrap();
        Stamps::record(&dir, vec![("x.bin".into(), stamp)]).unwrap();
        let stamps = Stamps::load(&dir);
        assert!(
            !matches!(glance(&model, &path, Some(&stamps)), Glance::Stamped),
            "the stamp vouches for nothing there"
        );
        let (state, _) = inspect(&model, &path, false, Some(&stamps));
        assert!(matches!(state, LocalState::WrongHash { .. }), "{state:?}");
    }
}
