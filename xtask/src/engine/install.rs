//! The one place a file is put at its destination, atomically: a checked download
//! renamed from its partial, or a sealed file (a cache entry) cloned, linked or copied.
//! `fetch`, `add` and `mirror` all go through [`checked`], [`checked_new`] or [`sealed`].
//!
//! Bytes are written beside the destination (same folder, so the same filesystem) and
//! only a checked file is fsynced and renamed over it. A crash at any moment leaves the
//! old destination or the new one, never a mix; the folder is fsynced too so the rename
//! itself survives a crash. A fault here is the disk's, never the source's: the caller
//! books it on [`crate::error::Site::Disk`].

use std::fs::File;
use std::io;

use camino::Utf8Path;

use crate::store::fs::{
    LinkMode, Placed, clear_read_only, link_or_copy, prepare_destination, rename_when_free, sync_parent,
};
use crate::store::partial::Partial;

/// Makes a checked download (`file`, open on `partial`) the file at `dest`; its records
/// are forgotten. `file` is then the placed file: its metadata is that of exactly the
/// file put there, whatever happens at the path afterwards.
pub(crate) fn checked(file: &File, partial: &Partial, dest: &Utf8Path) -> io::Result<()> {
    rename_into_place(file, partial.path(), dest)?;
    partial.forget();
    Ok(())
}

/// Like [`checked`], for a destination that must not exist (`add`'s): the file is placed
/// only where nothing is, atomically where the filesystem allows (a hard link, which
/// fails on any name already there, then the partial's name goes). Anything at `dest`
/// is left as it is, and the error is `AlreadyExists`.
pub(crate) fn checked_new(file: &File, partial: &Partial, dest: &Utf8Path) -> io::Result<()> {
    file.sync_all()?;
    prepare_destination(dest)?;
    match std::fs::hard_link(partial.path(), dest) {
        Ok(()) => {
            std::fs::remove_file(partial.path())?;
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        // No hard links here (FAT, some network shares): look, then rename. Only another
        // program writing that very name in the instant between could be overwritten.
        Err(_) => {
            if std::fs::symlink_metadata(dest).is_ok() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{dest} exists")));
            }
            rename_when_free(partial.path(), dest)?;
        }
    }
    sync_parent(dest);
    partial.forget();
    Ok(())
}

/// Puts a file the tool sealed (a cache entry, a verified checkpoint) at `dest` as `mode`
/// allows. Returns how, and the placed file, open.
pub(crate) fn sealed(path: &Utf8Path, dest: &Utf8Path, mode: LinkMode) -> io::Result<(Placed, File)> {
    link_or_copy(path, dest, mode)
}

/// fsync, rename over, fsync the folder.
fn rename_into_place(file: &File, partial: &Utf8Path, dest: &Utf8Path) -> io::Result<()> {
    file.sync_all()?;
    prepare_destination(dest)?;
    // A file placed from the cache is read-only: Windows will not rename over it so.
    if dest.is_file() {
        clear_read_only(dest)?;
    }
    // Windows refuses while another program has the old file open: a short wait, then a
    // fault that says so; the checked partial stays and the next run places it as is.
    rename_when_free(partial, dest)?;
    sync_parent(dest);
    Ok(())
}

#[cfg(test)]
mod tests {
    use camino::Utf8PathBuf;

    use super::*;

    #[test]
    fn a_checked_partial_replaces_the_destination_and_its_records_go() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let dest = dir.join("sub/m.bin");
        let partial = Partial::beside(&dest, &"0123456789abcdef".repeat(4));
        let file = partial.open().unwrap();
        std::fs::write(partial.path(), b"new").unwrap();
        std::fs::write(partial.validator(), b"v").unwrap();
        std::fs::write(&dest, b"old").unwrap();
        checked(&file, &partial, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"new");
        assert!(!partial.exists() && !partial.validator().exists());
    }

    #[test]
    fn a_new_file_never_replaces_one_that_appeared_and_the_checked_partial_stays() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let dest = dir.join("m.bin");
        let partial = Partial::for_add(&dir, "m.bin");
        let file = partial.open().unwrap();
        std::fs::write(partial.path(), b"downloaded").unwrap();
        std::fs::write(&dest, b"the user's").unwrap();
        let err = checked_new(&file, &partial, &dest).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&dest).unwrap(), b"the user's");
        assert!(partial.exists());
        std::fs::remove_file(&dest).unwrap();
        checked_new(&file, &partial, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"downloaded");
        assert!(!partial.exists());
    }

    #[test]
    fn a_folder_in_the_way_is_an_error_and_the_checked_partial_stays() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let dest = dir.join("m.bin");
        std::fs::create_dir_all(dest.join("kept")).unwrap();
        let partial = Partial::beside(&dest, &"0123456789abcdef".repeat(4));
        let file = partial.open().unwrap();
        assert!(checked(&file, &partial, &dest).is_err());
        assert!(partial.exists() && dest.join("kept").is_dir());
    }
}
