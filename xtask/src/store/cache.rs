//! The shared, content-addressed cache: one copy of each pinned file per machine.
//!
//! Entries live at `<cache>/sha256/<hex>`, named by content, so any number of checkouts,
//! worktrees and manifests share them; checkouts get their files by hard link (or a copy
//! across filesystems). An entry is verified before it is used: a stamp written right
//! after hashing lets an untouched entry through without reading it again, and anything
//! else is hashed in full. Entries are made read-only, since every checkout that links
//! one shares its bytes.
//!
//! The cache trusts only regular files: an entry that is a symbolic link, a folder, a
//! FIFO or a device (on a cache shared between users, anyone may have put it there) is
//! never followed, hashed through or linked. It is moved aside, by name, into
//! `<cache>/aside/`, and the file is fetched again.

use std::fs;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::places;
use crate::store::fs::open_regular;
use crate::store::fs::write_atomically;
use crate::store::hash::hash_reader;
use crate::store::lock::LOCK_DIR;
use crate::store::partial::Partial;
use crate::store::stamp::Fingerprint;

/// Overrides the default cache folder; `--cache-dir` overrides this.
pub(crate) const CACHE_ENV: &str = "XTASK_MODELS_CACHE_DIR";

#[derive(Clone, Debug)]
pub(crate) struct Cache {
    pub root: Utf8PathBuf,
}

/// What the cache holds for a pin.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Missing,
    /// Present and known to match the pin.
    Good,
    /// Present but wrong; it has been removed.
    Removed {
        reason: String,
    },
    /// Not a regular file (`kind`): moved aside, untouched, to `to`.
    MovedAside {
        kind: &'static str,
        to: Utf8PathBuf,
    },
    /// Its bytes hash to the pin's sha256 but their count is not the pin's size: the pin
    /// is wrong, not the entry, which is kept.
    PinSizeWrong {
        actual: u64,
    },
}

impl Cache {
    /// `$XTASK_MODELS_CACHE_DIR`, else `$XDG_CACHE_HOME/xtask-models`, else
    /// `~/.cache/xtask-models`.
    pub(crate) fn default_root() -> Option<Utf8PathBuf> {
        if let Some(dir) = places::process_env(CACHE_ENV) {
            return Some(Utf8PathBuf::from(dir));
        }
        places::cache_root(&places::process_env, places::WINDOWS)
    }

    pub(crate) fn entry(&self, sha256: &str) -> Utf8PathBuf {
        self.root.join("sha256").join(sha256)
    }

    /// Where a download into the cache collects its bytes.
    pub(crate) fn partial(&self, sha256: &str) -> Partial {
        Partial::in_cache(&self.root.join("partial"), sha256)
    }

    pub(crate) fn lock(&self, sha256: &str) -> Utf8PathBuf {
        self.root.join(LOCK_DIR).join(format!("{sha256}.lock"))
    }

    fn stamp(&self, sha256: &str) -> Utf8PathBuf {
        self.root.join("stamps").join(sha256)
    }

    /// Looks at the entry for the pin (`size`, `sha256`), hashing it unless its stamp
    /// vouches for it. A wrong entry is removed so it cannot be linked anywhere.
    pub(crate) fn check(&self, size: u64, sha256: &str) -> Entry {
        let path = self.entry(sha256);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return Entry::Missing;
        };
        if !meta.is_file() {
            return self.move_aside(sha256, &meta);
        }
        // All of it, ctime too: only the tool's own links move it without a rehash, and
        // each of those rewrites this stamp (`restamp`).
        let now = Fingerprint::of(&meta);
        let stamped = self.recorded(sha256);
        if stamped == Some(now) && now.len == size {
            return Entry::Good;
        }
        // Opened without blocking and checked again: what was a file a moment ago may
        // have been swapped for a FIFO.
        let reason = match open_regular(&path).and_then(hash_reader) {
            // The hash names the entry: a size that disagrees is a typo in the pin.
            Ok(actual) if actual == sha256 && meta.len() != size => {
                return Entry::PinSizeWrong { actual: meta.len() };
            }
            // Sealed again: a kill between the rename and the seal left it writable and
            // unstamped, and it is shared by every checkout that links it.
            Ok(actual) if actual == sha256 => {
                if self.seal(sha256).is_err() {
                    self.write_stamp(sha256, &now);
                }
                return Entry::Good;
            }
            Ok(actual) => format!("its sha256 is {actual}"),
            Err(e) => format!("it cannot be read: {e}"),
        };
        self.remove(sha256);
        Entry::Removed { reason }
    }

    /// Moves an entry that is not a regular file out of the way, into `<cache>/aside/`
    /// under its own name and this moment; if even that fails, it is `Removed` in words
    /// only for what it is, and the fetch fails at placing, naming it.
    fn move_aside(&self, sha256: &str, meta: &fs::Metadata) -> Entry {
        let kind = kind_of(meta);
        let aside = self.root.join("aside");
        let stamp =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let to = aside.join(format!("{sha256}.{stamp}"));
        let moved = fs::create_dir_all(&aside).and_then(|()| fs::rename(self.entry(sha256), &to));
        let _ = fs::remove_file(self.stamp(sha256));
        match moved {
            Ok(()) => Entry::MovedAside { kind, to },
            Err(e) => {
                Entry::Removed { reason: format!("it is a {kind}, and it could not be moved aside: {e}") }
            }
        }
    }

    /// Marks a freshly verified entry: read-only, and stamped so the next use is free.
    pub(crate) fn seal(&self, sha256: &str) -> io::Result<()> {
        let path = self.entry(sha256);
        let mut perms = fs::metadata(&path)?.permissions();
        perms.set_readonly(true);
        fs::set_permissions(&path, perms)?;
        let meta = fs::metadata(&path)?;
        self.write_stamp(sha256, &Fingerprint::of(&meta));
        Ok(())
    }

    /// The fingerprint the entry's stamp file records, if any.
    pub(crate) fn recorded(&self, sha256: &str) -> Option<Fingerprint> {
        fs::read_to_string(self.stamp(sha256)).ok().and_then(|t| Fingerprint::decode(&t))
    }

    /// Records the entry's state after the tool linked it into a checkout (called under
    /// the entry's lock, right after a check found it good). Returns the stamp file, for
    /// the checkout's own stamp to point at; `None` when it cannot be written.
    pub(crate) fn restamp(&self, sha256: &str) -> Option<Utf8PathBuf> {
        let meta = fs::metadata(self.entry(sha256)).ok()?;
        let path = self.stamp(sha256);
        write_atomically(&path, Fingerprint::of(&meta).encode().as_bytes()).ok()?;
        Some(path)
    }

    fn write_stamp(&self, sha256: &str, fingerprint: &Fingerprint) {
        let path = self.stamp(sha256);
        // A stamp only saves time: failing to write one is never an error.
        let _ = write_atomically(&path, fingerprint.encode().as_bytes());
    }

    pub(crate) fn remove(&self, sha256: &str) {
        let _ = fs::remove_file(self.stamp(sha256));
        let _ = fs::remove_file(self.entry(sha256));
    }

    /// Every entry (its sha256) with its size, sorted.
    pub(crate) fn entries(&self) -> io::Result<Vec<(String, u64)>> {
        let files = regular_files(&self.root.join("sha256"))?;
        Ok(files.into_iter().filter_map(|(path, size)| Some((path.file_name()?.to_owned(), size))).collect())
    }

    /// Partial downloads in the cache, with their sizes.
    pub(crate) fn partials(&self) -> io::Result<Vec<(Utf8PathBuf, u64)>> {
        regular_files(&self.root.join("partial"))
    }
}

/// What a file that is not a regular one is, in words.
fn kind_of(meta: &fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return "symbolic link";
    }
    if kind.is_dir() {
        return "folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
    }
    "device or socket"
}

/// The regular files directly in `dir` (none if it does not exist), sorted, with sizes.
fn regular_files(dir: &Utf8Path) -> io::Result<Vec<(Utf8PathBuf, u64)>> {
    let read = match dir.read_dir_utf8() {
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry?;
        let meta = fs::symlink_metadata(entry.path())?;
        if meta.is_file() {
            out.push((entry.path().to_owned(), meta.len()));
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_found_good_by_hashing_is_sealed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache { root: Utf8PathBuf::try_from(dir.path().to_owned()).unwrap() };
        let data = b"a model".to_vec();
        let sha256 = crate::store::hash::hash_reader(&data[..]).unwrap();
        let entry = cache.entry(&sha256);
        fs::create_dir_all(entry.parent().unwrap()).unwrap();
        // As a kill between the rename and the seal leaves it: writable, no stamp.
        fs::write(&entry, &data).unwrap();
        assert_eq!(cache.check(data.len() as u64, &sha256), Entry::Good);
        assert!(fs::metadata(&entry).unwrap().permissions().readonly(), "sealed");
        assert!(cache.recorded(&sha256).is_some(), "stamped");
        assert_eq!(cache.check(data.len() as u64, &sha256), Entry::Good, "and found good by its stamp");
    }
}
