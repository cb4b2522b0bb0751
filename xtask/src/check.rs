//! Stage 4: is this the file the pin describes?
//!
//! Two questions live here. For bytes on disk: does the file have the pinned size and
//! sha256 ([`inspect`])? For bytes arriving over the network: do the first bytes look
//! like a web page or a Git LFS pointer instead of a model ([`sniff`])? A downloaded
//! file is only ever installed after [`crate::transfer`] has compared its streamed hash
//! with the pin, so nothing here is on the download's hot path except the sniff.

use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use camino::Utf8Path;
use sha2::{Digest, Sha256};

use crate::error::Class;
use crate::manifest::Model;
use crate::stamp::{Fingerprint, Stamp, Stamps};

/// Large reads keep hashing at memory speed; 1 MiB is past the point of diminishing returns.
pub const HASH_BUFFER: usize = 1 << 20;

/// What a model's destination holds now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalState {
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
    pub fn label(&self) -> &'static str {
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

    pub fn is_present(&self) -> bool {
        matches!(self, LocalState::Ok | LocalState::Stamped | LocalState::Unchecked)
    }
}

/// Looks at a model's destination: presence only with `skip_checks`; else size, then
/// the stamp (when `stamps` are trusted), then a full hash. A hash that matched on a
/// file that stayed unchanged meanwhile also yields the stamp to record.
pub fn inspect(
    model: &Model,
    dest: &Utf8Path,
    skip_checks: bool,
    stamps: Option<&Stamps>,
) -> (LocalState, Option<Stamp>) {
    let meta = match std::fs::metadata(dest) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return (LocalState::Missing, None),
        Err(err) => {
            return (LocalState::Unreadable { error: err.to_string() }, None);
        }
    };
    if !meta.is_file() {
        return (LocalState::NotAFile, None);
    }
    if skip_checks {
        return (LocalState::Unchecked, None);
    }
    if meta.len() != model.size {
        return (LocalState::WrongSize { actual: meta.len() }, None);
    }
    if stamps.is_some_and(|s| s.vouches(model.path.as_str(), &model.sha256, &meta)) {
        return (LocalState::Stamped, None);
    }
    let before = Fingerprint::of(&meta);
    match hash_file(dest) {
        Ok(actual) if actual == model.sha256 => {
            let after = std::fs::metadata(dest).map(|m| Fingerprint::of(&m)).ok();
            let stamp = (after == Some(before)).then_some(Stamp { sha256: actual, fingerprint: before });
            (LocalState::Ok, stamp)
        }
        Ok(actual) => (LocalState::WrongHash { actual }, None),
        Err(err) => (LocalState::Unreadable { error: err.to_string() }, None),
    }
}

/// The stamp of a file just installed from bytes that were checked on the way in.
pub fn stamp_installed(model: &Model, dest: &Utf8Path) -> Option<Stamp> {
    let meta = std::fs::metadata(dest).ok()?;
    Some(Stamp { sha256: model.sha256.clone(), fingerprint: Fingerprint::of(&meta) })
}

/// The sha256 of a whole file, as lowercase hex.
pub fn hash_file(path: &Utf8Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; HASH_BUFFER];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Buffers in flight between a download and its [`BackgroundHasher`]: enough to keep
/// both cores busy, small enough to keep memory flat (4 MiB) whatever the file size.
const HASH_QUEUE: usize = 4;

/// Hashes on a second core while the caller receives and writes, so a download costs
/// about as much as the slower of the two instead of their sum. Buffers go round a
/// fixed pool: the caller fills one, hands it over with [`hash`](Self::hash), and gets
/// it back from [`buffer`](Self::buffer) once hashed, so nothing is copied or allocated
/// per chunk.
pub struct BackgroundHasher {
    work: Option<SyncSender<(Vec<u8>, usize)>>,
    free: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Sha256>>,
}

impl BackgroundHasher {
    pub fn start() -> BackgroundHasher {
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
    pub fn buffer(&self) -> Vec<u8> {
        self.free.recv().unwrap_or_else(|_| vec![0u8; HASH_BUFFER])
    }

    /// Queues `buf[..len]` for hashing, in order.
    pub fn hash(&self, buf: Vec<u8>, len: usize) {
        if let Some(work) = &self.work {
            let _ = work.send((buf, len));
        }
    }

    /// Waits for the queue to drain and returns the digest as lowercase hex.
    pub fn finish(mut self) -> String {
        self.work = None;
        let hasher = self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default();
        hex(&hasher.finalize())
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

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// How many leading bytes [`sniff`] wants to see before it decides.
pub const SNIFF_LEN: usize = 512;

/// Recognises the two classic wrong answers from their first bytes: an HTML page (login,
/// consent, quota or error page) and a Git LFS pointer. Model formats (pickle, zip,
/// safetensors, MATLAB, numbers in text) never start like either.
pub fn sniff(prefix: &[u8], content_type: Option<&str>) -> Option<Class> {
    if prefix.starts_with(b"version https://git-lfs.github.com/spec/") {
        return Some(Class::LfsPointer);
    }
    let start = prefix.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(prefix.len());
    let text = &prefix[start..];
    if text.first() != Some(&b'<') {
        return None;
    }
    let says_html =
        content_type.is_some_and(|ct| ct.to_ascii_lowercase().trim_start().starts_with("text/html"));
    let lower: Vec<u8> = text.iter().take(64).map(u8::to_ascii_lowercase).collect();
    const TAGS: &[&[u8]] =
        &[b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta", b"<script", b"<!--"];
    let looks_html = TAGS.iter().any(|tag| lower.starts_with(tag));
    (looks_html || says_html).then_some(Class::HtmlPage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_finds_pages_and_pointers_but_not_models() {
        assert_eq!(sniff(b"\n  <!DOCTYPE html><html>", None), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<HTML><body>quota", None), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<div>", Some("text/html; charset=utf-8")), Some(Class::HtmlPage));
        assert_eq!(sniff(b"<div>", Some("application/octet-stream")), None);
        let pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 12\n";
        assert_eq!(sniff(pointer, None), Some(Class::LfsPointer));
        assert_eq!(sniff(b"PK\x03\x04zip", Some("text/html")), None);
        assert_eq!(sniff(b"\x80\x02}q\x00pickle", None), None);
        assert_eq!(sniff(b"MATLAB 5.0 MAT-file", None), None);
        assert_eq!(sniff(b"", None), None);
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
        assert_eq!(hasher.finish(), hex(&Sha256::digest(&data)));
        // Dropped unfinished, it still ends its thread.
        drop(BackgroundHasher::start());
    }

    #[test]
    fn hex_is_lowercase_and_complete() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn hash_file_matches_the_known_digest_of_abc() {
        let dir = std::env::temp_dir().join(format!("xtask-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = camino::Utf8PathBuf::try_from(dir.join("abc")).unwrap();
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            hash_file(&path).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
