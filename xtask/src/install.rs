//! Stage 5: put a checked file at its destination, atomically.
//!
//! Bytes are written to a temp file beside the destination (same directory, so the same
//! filesystem) and only a file whose size and sha256 matched is fsynced and renamed over
//! the destination. A crash at any moment leaves either the old destination or the new
//! one, never a mix; the directory is fsynced too so the rename itself survives a crash.

use std::fs::{self, File, OpenOptions};
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::manifest::Model;

/// Every temp file ends with this, so `clean` can tell a partial download from a stray file.
pub const PARTIAL_SUFFIX: &str = ".part";

/// Where a model's bytes collect while they download. The pin's hash is part of the name
/// so that bytes for an old pin are never taken for bytes of the new one.
pub fn partial_path(dest: &Utf8Path, model: &Model) -> Utf8PathBuf {
    let file_name = dest.file_name().unwrap_or("download");
    dest.with_file_name(format!("{file_name}.{}{PARTIAL_SUFFIX}", &model.sha256[..12]))
}

pub fn is_partial_name(name: &str) -> bool {
    name.ends_with(PARTIAL_SUFFIX) || name.ends_with(".part-validator")
}

/// Opens the temp file, keeping what an earlier attempt left in it for a resume, and
/// creating the folders it needs.
pub fn open_partial(path: &Utf8Path) -> io::Result<File> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)
}

/// Where the validator (ETag or Last-Modified) of a partial download is kept, so a resume
/// can ask the server whether the file is still the same (`If-Range`).
pub fn validator_path(partial: &Utf8Path) -> Utf8PathBuf {
    partial.with_extension("part-validator")
}

/// Removes a partial download and its validator: its bytes are known to be bad.
pub fn discard_partial(partial: &Utf8Path) {
    let _ = fs::remove_file(partial);
    let _ = fs::remove_file(validator_path(partial));
}

/// Makes a checked temp file the destination: fsync, rename over, fsync the folder.
pub fn install(file: &File, partial: &Utf8Path, dest: &Utf8Path) -> io::Result<()> {
    file.sync_all()?;
    prepare_destination(dest)?;
    fs::rename(partial, dest)?;
    sync_parent(dest);
    Ok(())
}

/// Refuses a directory in the way (it is the user's) and creates the folders `dest` needs.
fn prepare_destination(dest: &Utf8Path) -> io::Result<()> {
    if dest.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("{dest} is a directory; move it away so the file can be installed"),
        ));
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    Ok(())
}

/// How a file got to its destination from elsewhere on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    HardLink,
    Copy,
}

/// Puts a verified file (a cache entry, a mirror file) at `dest` atomically: a hard link
/// when both are on one filesystem, otherwise a synced copy; then a rename over `dest`.
pub fn link_or_copy(src: &Utf8Path, dest: &Utf8Path) -> io::Result<Placed> {
    prepare_destination(dest)?;
    let file_name = dest.file_name().unwrap_or("file");
    let temp = dest.with_file_name(format!("{file_name}.{}.link{PARTIAL_SUFFIX}", std::process::id()));
    let _ = fs::remove_file(&temp);
    let placed = match fs::hard_link(src, &temp) {
        Ok(()) => Placed::HardLink,
        Err(_) => {
            fs::copy(src, &temp)?;
            File::open(&temp)?.sync_all()?;
            Placed::Copy
        }
    };
    if let Err(e) = fs::rename(&temp, dest) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_parent(dest);
    Ok(placed)
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never
/// a mix (temp file, fsync, rename).
pub fn write_atomically(path: &Utf8Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file_name = path.file_name().unwrap_or("file");
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut file = File::create(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    if let Err(e) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}

/// Persists a rename on filesystems that need the directory itself synced. Some
/// filesystems refuse fsync on a directory; the rename is done either way.
fn sync_parent(path: &Utf8Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_str().is_empty() => parent,
        _ => Utf8Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
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
        let dir = Utf8PathBuf::try_from(std::env::temp_dir())
            .unwrap()
            .join(format!("xtask-install-{}", std::process::id()));
        let dest = dir.join("sub/m.bin");
        let partial = partial_path(&dest, &model());
        let file = open_partial(&partial).unwrap();
        std::fs::write(&partial, b"new").unwrap();
        std::fs::write(&dest, b"old").unwrap();
        install(&file, &partial, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!partial.exists());
        let copy = dir.join("other/m.bin");
        assert_eq!(link_or_copy(&dest, &copy).unwrap(), Placed::HardLink);
        assert_eq!(std::fs::read(&copy).unwrap(), b"new");
        write_atomically(&dir.join("state"), b"one").unwrap();
        write_atomically(&dir.join("state"), b"two").unwrap();
        assert_eq!(std::fs::read(dir.join("state")).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
