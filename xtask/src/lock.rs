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

use crate::progress::Reporter;

/// The folder inside a checkpoints directory (or the cache) that holds lock files.
pub const LOCK_DIR: &str = ".locks";

/// A held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct Held {
    _file: File,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
}

/// Takes the lock at `path`, saying `waiting` once if another process holds it. Also
/// tells whether it had to wait: after a wait, whatever the lock guards may have changed
/// and must be looked at again.
pub fn acquire(path: &Utf8Path, mode: Mode, reporter: &Reporter, waiting: &str) -> io::Result<(Held, bool)> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
    let attempt = match mode {
        Mode::Shared => file.try_lock_shared(),
        Mode::Exclusive => file.try_lock(),
    };
    match attempt {
        Ok(()) => return Ok((Held { _file: file }, false)),
        Err(TryLockError::Error(e)) => return Err(e),
        Err(TryLockError::WouldBlock) => reporter.note(waiting),
    }
    match mode {
        Mode::Shared => file.lock_shared()?,
        Mode::Exclusive => file.lock()?,
    }
    Ok((Held { _file: file }, true))
}

/// Shares a checkpoints folder (or cache) with other fetch and verify processes; `clean`
/// waits until every sharer is done.
pub fn share_folder(root: &Utf8Path, reporter: &Reporter) -> io::Result<Held> {
    let waiting = format!("waiting for `clean` to finish with {root}");
    acquire(&folder_lock(root), Mode::Shared, reporter, &waiting).map(|(held, _)| held)
}

/// The folder-wide lock of a checkpoints directory or cache.
pub fn folder_lock(root: &Utf8Path) -> Utf8PathBuf {
    root.join(LOCK_DIR).join("folder.lock")
}

/// The lock of one model in a checkpoints directory.
pub fn model_lock(root: &Utf8Path, name: &str) -> Utf8PathBuf {
    root.join(LOCK_DIR).join(format!("model-{name}.lock"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Mode as Output;

    /// Whether someone holds the lock at `path` right now.
    fn is_held(path: &Utf8Path) -> bool {
        let file = OpenOptions::new().read(true).write(true).open(path).unwrap();
        matches!(file.try_lock(), Err(TryLockError::WouldBlock))
    }

    #[test]
    fn shared_locks_coexist_and_exclusive_ones_do_not() {
        let dir = Utf8PathBuf::try_from(std::env::temp_dir())
            .unwrap()
            .join(format!("xtask-lock-{}", std::process::id()));
        let path = folder_lock(&dir);
        let quiet = Reporter::new(Output::Quiet);
        let (a, _) = acquire(&path, Mode::Shared, &quiet, "").unwrap();
        let (b, waited) = acquire(&path, Mode::Shared, &quiet, "").unwrap();
        assert!(!waited);
        assert!(is_held(&path));
        drop((a, b));
        assert!(!is_held(&path));
        let (held, waited) = acquire(&model_lock(&dir, "m"), Mode::Exclusive, &quiet, "").unwrap();
        assert!(!waited);
        assert!(is_held(&model_lock(&dir, "m")));
        drop(held);
        fs::remove_dir_all(&dir).unwrap();
    }
}
