//! Stage 5: put a checked file at its destination, atomically.
//!
//! Bytes are written to a temp file beside the destination (same directory, so the same
//! filesystem) and only a file whose size and sha256 matched is fsynced and renamed over
//! the destination. A crash at any moment leaves either the old destination or the new
//! one, never a mix; the directory is fsynced too so the rename itself survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::manifest::Model;
use crate::store::fs::{PARTIAL_SUFFIX, clear_read_only, prepare_destination, rename_when_free, sync_parent};

/// Where a model's bytes collect while they download. The pin's hash is part of the name
/// so that bytes for an old pin are never taken for bytes of the new one.
pub(crate) fn partial_path(dest: &Utf8Path, model: &Model) -> Utf8PathBuf {
    let file_name = dest.file_name().unwrap_or("download");
    let pin = model.sha256.get(..12).unwrap_or("unpinned");
    dest.with_file_name(format!("{file_name}.{pin}{PARTIAL_SUFFIX}"))
}

/// Whether a file name is one of the tool's temp files: a partial download, its
/// validator, or a state file being replaced (`.<name>.<pid>.tmp`).
pub(crate) fn is_partial_name(name: &str) -> bool {
    let file_name = name.rsplit('/').next().unwrap_or(name);
    let half_written = file_name.starts_with('.')
        && file_name
            .strip_suffix(".tmp")
            .and_then(|stem| stem.rsplit_once('.'))
            .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    let ours = [PARTIAL_SUFFIX, ".part-validator", ".part-ranges", ".part-audit"];
    ours.iter().any(|ending| name.ends_with(ending)) || half_written
}

/// Opens the temp file, keeping what an earlier attempt left in it for a resume, and
/// creating the folders it needs.
pub(crate) fn open_partial(path: &Utf8Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// Where the validator (ETag or Last-Modified) of a partial download is kept, so a resume
/// can ask the server whether the file is still the same (`If-Range`).
pub(crate) fn validator_path(partial: &Utf8Path) -> Utf8PathBuf {
    partial.with_extension("part-validator")
}

/// Removes a partial download and its validator: its bytes are known to be bad.
pub(crate) fn discard_partial(partial: &Utf8Path) {
    let _ = fs::remove_file(partial);
    let _ = fs::remove_file(validator_path(partial));
}

/// Makes a checked temp file the destination: fsync, rename over, fsync the folder.
pub(crate) fn install(file: &File, partial: &Utf8Path, dest: &Utf8Path) -> io::Result<()> {
    file.sync_all()?;
    prepare_destination(dest)?;
    // A file placed from the cache is read-only: Windows will not rename over it so.
    if dest.is_file() {
        clear_read_only(dest)?;
    }
    // Windows refuses while another program has the old file open: a short wait, then a
    // fault that says so; the checked partial stays and the next run installs it as is.
    rename_when_free(partial, dest)?;
    sync_parent(dest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model {
            name: "m".into(),
            path: "a/m.bin".into(),
            size: 1,
            sha256: "0123456789abcdef".repeat(4),
            urls: vec![],
            group: None,
            optional: false,
        }
    }

    #[test]
    fn the_partial_sits_beside_the_destination_and_names_the_pin() {
        let p = partial_path(Utf8Path::new("/c/a/m.bin"), &model());
        assert_eq!(p, "/c/a/m.bin.0123456789ab.part");
        assert!(is_partial_name(p.file_name().unwrap()));
    }

    #[test]
    fn install_replaces_the_destination_and_consumes_the_partial() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let dest = dir.join("sub/m.bin");
        let partial = partial_path(&dest, &model());
        let file = open_partial(&partial).unwrap();
        std::fs::write(&partial, b"new").unwrap();
        std::fs::write(&dest, b"old").unwrap();
        install(&file, &partial, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!partial.exists());
    }
}
