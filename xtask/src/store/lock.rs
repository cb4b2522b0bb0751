//! Locks that make any number of `fetch`, `verify` and `clean` processes safe together.
//!
//! All locks are advisory `flock`-style locks on small files (std's `File::lock`), so
//! they vanish with the process holding them, even after `kill -9`. Three kinds:
//! - the folder lock: shared by fetch and verify, exclusive for clean, so clean never
//!   deletes a file another process is writing;
//! - one lock per model in a checkpoints folder: two fetches of the same model take
//!   turns, and the second finds the file present;
//! - one lock per cache entry: checkouts sharing a cache download each file once.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, IoContext, Result};

/// The folder inside a checkpoints directory (or the cache) that holds lock files.
pub(crate) const LOCK_DIR: &str = ".locks";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct Held {
    _file: File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Shared,
    Exclusive,
}

/// Takes the lock at `path`, calling `on_wait` once if another process holds it (to say
/// so). Also tells whether it had to wait: after a wait, whatever the lock guards may
/// have changed and must be looked at again.
pub(crate) fn acquire(path: &Utf8Path, mode: Mode, on_wait: impl FnOnce()) -> Result<(Held, bool)> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).at("create the lock folder", parent)?;
    }
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .at("open the lock file", path)?;
    let attempt = match mode {
        Mode::Shared => file.try_lock_shared(),
        Mode::Exclusive => file.try_lock(),
    };
    match attempt {
        Ok(()) => return Ok((Held { _file: file }, false)),
        Err(TryLockError::Error(e)) => return Err(Error::io("lock", path, e)),
        Err(TryLockError::WouldBlock) => on_wait(),
    }
    let locked: io::Result<()> = match mode {
        Mode::Shared => file.lock_shared(),
        Mode::Exclusive => file.lock(),
    };
    locked.at("lock", path)?;
    Ok((Held { _file: file }, true))
}

/// Shares a checkpoints folder (or cache) with other fetch and verify processes; `clean`
/// waits until every sharer is done. On a read-only filesystem (a container's `:ro`
/// mount) nothing can change the folder, `clean` included: `None`, and no lock needed.
pub(crate) fn share_folder(root: &Utf8Path, on_wait: impl FnOnce()) -> Result<Option<Held>> {
    match acquire(&folder_lock(root), Mode::Shared, on_wait) {
        Ok((held, _)) => Ok(Some(held)),
        Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::ReadOnlyFilesystem => Ok(None),
        Err(e) => Err(e),
    }
}

/// The folder-wide lock of a checkpoints directory or cache.
/// Whether some process holds the lock at `path` right now (a lock file nobody holds is
/// harmless: it is only a name to lock).
pub(crate) fn is_held(path: &Utf8Path) -> bool {
    let Ok(file) = OpenOptions::new().read(true).write(true).open(path) else { return false };
    matches!(file.try_lock(), Err(TryLockError::WouldBlock))
}

pub(crate) fn folder_lock(root: &Utf8Path) -> Utf8PathBuf {
    root.join(LOCK_DIR).join("folder.lock")
}

/// The lock of one destination in a checkpoints directory, keyed by its path (not the
/// model's name): two manifests pinning different files at one path take turns too.
pub(crate) fn path_lock(root: &Utf8Path, rel: &Utf8Path) -> Utf8PathBuf {
    use sha2::{Digest, Sha256};
    let key = crate::store::hash::hex(&Sha256::digest(rel.as_str().as_bytes()));
    root.join(LOCK_DIR).join(format!("path-{}.lock", &key[..16]))
}

/// The lock of a manifest file, for the processes that write it (`add`): in the lock
/// folder of `root` (the checkpoints folder), keyed by the manifest's absolute path. Not
/// the manifest itself: on Windows a locked file cannot be read by others.
pub(crate) fn manifest_lock(root: &Utf8Path, manifest: &Utf8Path) -> Utf8PathBuf {
    use sha2::{Digest, Sha256};
    let key = crate::store::hash::hex(&Sha256::digest(manifest.as_str().as_bytes()));
    root.join(LOCK_DIR).join(format!("manifest-{}.lock", &key[..16]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether someone holds the lock at `path` right now.
    #[test]
    fn shared_locks_coexist_and_exclusive_ones_do_not() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        let path = folder_lock(&dir);
        let (a, _) = acquire(&path, Mode::Shared, || {}).unwrap();
        let (b, waited) = acquire(&path, Mode::Shared, || panic!("shared locks never wait")).unwrap();
        assert!(!waited);
        assert!(is_held(&path));
        drop((a, b));
        assert!(!is_held(&path));
        let lock = path_lock(&dir, Utf8Path::new("a/m.bin"));
        let (held, waited) = acquire(&lock, Mode::Exclusive, || {}).unwrap();
        assert!(!waited);
        assert!(is_held(&lock));
        drop(held);
    }

    #[test]
    fn a_file_where_the_lock_folder_belongs_is_named_in_the_error() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        fs::write(dir.join(LOCK_DIR), b"in the way").unwrap();
        let err = acquire(&folder_lock(&dir), Mode::Shared, || {}).unwrap_err().to_string();
        assert!(err.contains(dir.join(LOCK_DIR).as_str()), "{err}");
        assert!(err.contains("create the lock folder"), "{err}");
    }
}
