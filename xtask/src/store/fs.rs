//! File primitives every writer shares: atomic replacement, placing a verified file by
//! hard link or copy, and fsync of a folder so a rename survives a crash.
//!
//! Readers of a file written here see the old content or the new, never a mix: bytes go
//! to a temp file beside the target (same folder, so the same filesystem), are fsynced,
//! then renamed over it.

use std::fs::{self, File};
use std::io::{self, Write};

use camino::Utf8Path;

/// Every temp file of a download ends with this, so `clean` can tell one from a stray file.
pub const PARTIAL_SUFFIX: &str = ".part";

/// How a file got to its destination from elsewhere on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placed {
    HardLink,
    Copy,
}

impl Placed {
    /// `hard-link` or `copy`, as `--json` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Placed::HardLink => "hard-link",
            Placed::Copy => "copy",
        }
    }
}

/// Refuses a directory in the way (it is the user's) and creates the folders `dest` needs.
pub fn prepare_destination(dest: &Utf8Path) -> io::Result<()> {
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

/// Puts a verified file (a cache entry, a mirror file) at `dest` atomically: a hard link
/// when both are on one filesystem, otherwise a synced copy; then a rename over `dest`.
pub fn link_or_copy(src: &Utf8Path, dest: &Utf8Path) -> io::Result<Placed> {
    prepare_destination(dest)?;
    let file_name = dest.file_name().unwrap_or("file");
    let temp = dest.with_file_name(format!("{file_name}.{}.link{PARTIAL_SUFFIX}", std::process::id()));
    let _ = fs::remove_file(&temp);
    let placed = match fs::hard_link(src, &temp) {
        Ok(()) => Placed::HardLink,
        Err(_) => match fs::copy(src, &temp).and_then(|_| File::open(&temp)?.sync_all()) {
            Ok(()) => Placed::Copy,
            Err(e) => {
                // Nothing half-copied stays behind (a full disk is the usual cause).
                let _ = fs::remove_file(&temp);
                return Err(e);
            }
        },
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
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file_name = path.file_name().unwrap_or("file");
    let temp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| fs::rename(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}

/// Persists a rename on filesystems that need the directory itself synced. Some
/// filesystems refuse fsync on a directory; the rename is done either way.
pub fn sync_parent(path: &Utf8Path) {
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
    use camino::Utf8PathBuf;

    #[test]
    fn links_copies_and_atomic_writes_replace_their_targets() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let src = dir.join("src.bin");
        fs::write(&src, b"new").unwrap();
        let copy = dir.join("other/m.bin");
        fs::create_dir_all(copy.parent().unwrap()).unwrap();
        fs::write(&copy, b"old").unwrap();
        assert_eq!(link_or_copy(&src, &copy).unwrap(), Placed::HardLink);
        assert_eq!(fs::read(&copy).unwrap(), b"new");
        write_atomically(&dir.join("state"), b"one").unwrap();
        write_atomically(&dir.join("state"), b"two").unwrap();
        assert_eq!(fs::read(dir.join("state")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temp file is left: {names:?}");
        fs::create_dir_all(dir.join("a-dir")).unwrap();
        let err = link_or_copy(&src, &dir.join("a-dir")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
    }
}
