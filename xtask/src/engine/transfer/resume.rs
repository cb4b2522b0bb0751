//! The files beside a partial download that let a later attempt (or a run after a kill)
//! resume it: the validator (`.part-validator`: the source's key and its ETag or
//! Last-Modified, for `If-Range`) and, for a split download, the sidecar of pieces
//! (`.part-ranges`, in [`crate::engine::segments`]). Each names its source by a hash
//! ([`Source::disk_key`]), so a signed URL's token never sits on disk. They are only
//! aids: failing to keep one costs a re-download, never a wrong file.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

use crate::engine::check::BackgroundHasher;
use crate::source::Source;
use crate::store::fs::write_atomically;
use crate::store::hash::HASH_BUFFER;
use crate::store::partial::Partial;

/// The validator kept for `source`'s partial download, if it is for that source.
pub(super) fn read_validator(partial: &Partial, source: &Source) -> Option<String> {
    let text = std::fs::read_to_string(partial.validator()).ok()?;
    let (for_source, validator) = text.split_once('\n')?;
    (for_source == source.disk_key()).then(|| validator.trim().to_owned()).filter(|v| !v.is_empty())
}

/// Keeps (or, with `None`, forgets) the validator of `source`'s partial download.
pub(super) fn write_validator(partial: &Partial, source: &Source, validator: Option<&str>) {
    let path = partial.validator();
    match validator {
        Some(v) => {
            let _ = write_atomically(&path, format!("{}\n{v}\n", source.disk_key()).as_bytes());
        }
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Feeds the bytes already on disk through the hasher, so a resume checks the whole file.
pub(super) fn rehash_prefix(file: &mut File, len: u64, hasher: &BackgroundHasher) -> io::Result<()> {
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
