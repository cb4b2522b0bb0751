//! File primitives every writer shares: atomic replacement, placing a verified file by
//! clone, hard link or copy, and fsync of a folder so a rename survives a crash.
//!
//! Readers of a file written here see the old content or the new, never a mix: bytes go
//! to a temp file beside the target (same folder, so the same filesystem), are fsynced,
//! then renamed over it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{IoContext, Result, is_in_use};
use crate::store::partial::Partial;

/// How a file got to its destination from elsewhere on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// A copy-on-write clone (reflink): its own inode sharing the blocks, so a write to
    /// it never reaches the source or any other checkout.
    Clone,
    /// The same inode: a write through one path changes every path, the cache included.
    HardLink,
    Copy,
}

impl Placed {
    /// `clone`, `hard-link` or `copy`, as `--json` names it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Placed::Clone => "clone",
            Placed::HardLink => "hard-link",
            Placed::Copy => "copy",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Placed> {
        [Placed::Clone, Placed::HardLink, Placed::Copy].into_iter().find(|p| p.as_str() == text)
    }
}

/// `--link-mode`: how a verified file may reach a checkout. Each falls back to a copy
/// where the filesystem cannot do it; `Auto` tries a clone, then a hard link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum LinkMode {
    #[default]
    Auto,
    Clone,
    HardLink,
    Copy,
}

impl LinkMode {
    pub(crate) fn parse(text: &str) -> Option<LinkMode> {
        match text {
            "auto" => Some(LinkMode::Auto),
            "clone" => Some(LinkMode::Clone),
            "hardlink" | "hard-link" => Some(LinkMode::HardLink),
            "copy" => Some(LinkMode::Copy),
            _ => None,
        }
    }
}

/// Refuses a directory in the way (it is the user's) and creates the folders `dest` needs.
pub(crate) fn prepare_destination(dest: &Utf8Path) -> io::Result<()> {
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

/// Puts a verified file (a cache entry, a mirror file) at `dest` atomically, as `mode`
/// allows: a clone or a hard link where the filesystem can, otherwise a synced copy;
/// then a rename over `dest`. Returns how, and the placed file, open: its metadata is
/// that of exactly the file put there, whatever happens at the path afterwards.
pub(crate) fn link_or_copy(src: &Utf8Path, dest: &Utf8Path, mode: LinkMode) -> io::Result<(Placed, File)> {
    prepare_destination(dest)?;
    let temp = Partial::link_temp(dest);
    remove_own(&temp);
    let cloned = match mode {
        LinkMode::Auto | LinkMode::Clone => clone_file(src, &temp).ok().map(|file| (Placed::Clone, file)),
        LinkMode::HardLink | LinkMode::Copy => None,
    };
    let linked = match (cloned, mode) {
        (Some(cloned), _) => Some(cloned),
        (None, LinkMode::Auto | LinkMode::HardLink) => fs::hard_link(src, &temp)
            .ok()
            .and_then(|()| File::open(&temp).ok())
            .map(|file| (Placed::HardLink, file)),
        (None, _) => None,
    };
    let placed = match linked {
        Some(linked) => Ok(linked),
        None => {
            remove_own(&temp);
            fs::copy(src, &temp).and_then(|_| synced_copy(&temp)).map(|file| (Placed::Copy, file))
        }
    };
    // Over a read-only file (a hard link to an entry) Windows renames nothing.
    let replaceable = if dest.is_file() { clear_read_only(dest) } else { Ok(()) };
    let placed =
        placed.and_then(|placed| replaceable.and_then(|()| rename_when_free(&temp, dest)).map(|()| placed));
    if placed.is_err() {
        // Nothing half-copied stays behind (a full disk is the usual cause).
        remove_own(&temp);
    }
    let placed = placed?;
    sync_parent(dest);
    Ok(placed)
}

/// The copy at `temp` (with the cache entry's read-only attribute, which `fs::copy`
/// carries over), flushed to disk and open. Windows flushes a file only through a handle
/// that may write (`FlushFileBuffers`), which a read-only file refuses: the attribute is
/// cleared for the flush and set again. Elsewhere `fsync` needs no write access.
fn synced_copy(temp: &Utf8Path) -> io::Result<File> {
    if !cfg!(windows) {
        let file = File::open(temp)?;
        file.sync_all()?;
        return Ok(file);
    }
    let read_only = fs::metadata(temp)?.permissions().readonly();
    clear_read_only(temp)?;
    let file = fs::OpenOptions::new().read(true).write(true).open(temp)?;
    file.sync_all()?;
    if read_only {
        let mut permissions = file.metadata()?.permissions();
        permissions.set_readonly(true);
        fs::set_permissions(temp, permissions)?;
    }
    Ok(file)
}

/// Removes a temp file of the tool's, read-only or not (Windows deletes no read-only
/// file); a failure leaves it for `clean`.
fn remove_own(path: &Utf8Path) {
    let _ = clear_read_only(path);
    let _ = fs::remove_file(path);
}

/// A copy-on-write clone of `src` at `temp` (FICLONE: btrfs, XFS, bcachefs, overlayfs on
/// those), with `src`'s permissions. An error where the filesystem cannot clone.
#[cfg(target_os = "linux")]
fn clone_file(src: &Utf8Path, temp: &Utf8Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    let from = File::open(src)?;
    let to = fs::OpenOptions::new().write(true).create_new(true).open(temp)?;
    // SAFETY: both descriptors are open files owned by this function for the whole call;
    // FICLONE reads the source descriptor as its argument and changes nothing else.
    let done = unsafe { libc::ioctl(to.as_raw_fd(), libc::FICLONE, from.as_raw_fd()) };
    if done != 0 {
        let err = io::Error::last_os_error();
        drop(to);
        let _ = fs::remove_file(temp);
        return Err(err);
    }
    fs::set_permissions(temp, from.metadata()?.permissions())?;
    File::open(temp)
}

#[cfg(not(target_os = "linux"))]
fn clone_file(_src: &Utf8Path, _temp: &Utf8Path) -> io::Result<File> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "clones are made on Linux only"))
}

/// Whether two folders (or their nearest existing ancestors) sit on one filesystem, so a
/// hard link between them can work.
pub(crate) fn same_filesystem(a: &Utf8Path, b: &Utf8Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let device = |p: &Utf8Path| p.ancestors().find_map(|p| fs::metadata(p).ok()).map(|m| m.dev());
        device(a) == device(b)
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        true
    }
}

/// Opens a file to read it as a download source, refusing anything but a regular file
/// without blocking to find out: a FIFO would otherwise wait forever for a writer.
pub(crate) fn open_regular(path: &Utf8Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, format!("{path} is a folder, not a file")));
    }
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{path} is not a regular file (a FIFO, a socket or a device)"),
        ));
    }
    Ok(file)
}

/// Refuses a write at `path` that would leave `root` through a symbolic link inside it
/// (`root/sub -> /elsewhere`), naming the link. `root` itself may be a link; folders not
/// made yet are fine (they will be real folders).
pub(crate) fn check_inside(root: &Utf8Path, path: &Utf8Path) -> io::Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_owned();
    let folders = rel.parent().map(|p| p.components().collect::<Vec<_>>()).unwrap_or_default();
    for part in folders {
        at.push(part);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = fs::read_link(&at).map(|t| t.display().to_string()).unwrap_or_default();
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "{at} is a symbolic link (to {target}): the tool writes only inside the checkpoints folder; replace the link with a folder, or point --checkpoints-dir at the place itself"
                    ),
                ));
            }
            Ok(_) => {}
            Err(_) => return Ok(()),
        }
    }
    Ok(())
}

/// Replaces `path` with `bytes` so that readers see the old or the new content, never
/// a mix (temp file, fsync, rename).
pub(crate) fn write_atomically(path: &Utf8Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let temp = Partial::state_temp(path);
    let written = File::create(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|()| rename_when_free(&temp, path)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    Ok(())
}

/// The bytes free for this user on the filesystem that holds `path` (or, when it does
/// not exist yet, its closest ancestor that does); `None` where the filesystem cannot
/// say. The one probe of free space: fetch's check, add's ceiling and doctor use it.
pub(crate) fn free_space(path: &Utf8Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists()).unwrap_or(Utf8Path::new("."));
    fs4::available_space(existing.as_std_path()).ok()
}

/// Persists a rename on filesystems that need the directory itself synced. Some
/// filesystems refuse fsync on a directory; the rename is done either way.
pub(crate) fn sync_parent(path: &Utf8Path) {
    let parent = match path.parent() {
        Some(parent) if !parent.as_str().is_empty() => parent,
        _ => Utf8Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// A file found by [`files_below`]: its path relative to the root, and its size.
pub(crate) type Found = (Utf8PathBuf, u64);

/// Regular files below `root` (relative path, size), and everything else, left alone:
/// links (never followed, so a link loop cannot trap a walk), devices, and names that are
/// not UTF-8 (named as well as they can be). Sorted by name; an unreadable folder is an
/// error.
pub(crate) fn files_below(root: &Utf8Path) -> Result<(Vec<Found>, Vec<Utf8PathBuf>)> {
    let (mut files, mut skipped) = (Vec::new(), Vec::new());
    walk(root, root, &mut files, &mut skipped)?;
    Ok((files, skipped))
}

fn walk(
    root: &Utf8Path,
    dir: &Utf8Path,
    files: &mut Vec<Found>,
    skipped: &mut Vec<Utf8PathBuf>,
) -> Result<()> {
    let entries: io::Result<Vec<_>> = dir.as_std_path().read_dir().and_then(Iterator::collect);
    let mut entries = entries.at("read the folder", dir)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let Ok(name) = entry.file_name().into_string() else {
            skipped.push(
                dir.strip_prefix(root).unwrap_or(dir).join(entry.file_name().to_string_lossy().as_ref()),
            );
            continue;
        };
        let path = dir.join(name);
        let rel = path.strip_prefix(root).unwrap_or(&path).to_owned();
        // symlink_metadata: a link is judged as a link, never by what it points to.
        let meta = fs::symlink_metadata(&path).at("look at", &path)?;
        if meta.is_dir() {
            walk(root, &path, files, skipped)?;
        } else if meta.is_file() {
            files.push((rel, meta.len()));
        } else {
            skipped.push(rel);
        }
    }
    Ok(())
}

/// Removes the file at `path`. On Windows a read-only file (every file placed from the
/// cache is one: the cache's entries are read-only) cannot be removed or replaced as it
/// is: its read-only attribute is cleared first. Elsewhere a directory's permissions
/// decide, and the file's mode is left alone.
pub(crate) fn remove_file(path: &Utf8Path) -> io::Result<()> {
    let remove = || match fs::remove_file(path) {
        Err(e) if cfg!(windows) && e.kind() == io::ErrorKind::PermissionDenied => {
            clear_read_only(path)?;
            fs::remove_file(path)
        }
        result => result,
    };
    while_in_use(remove, is_in_use, IN_USE_WAITS, std::thread::sleep)
}

/// How long a replace or removal waits for another program to let go of a file: a virus
/// scan or an indexer holds it for a moment; a program using it (SadTalker running) holds
/// it for as long as it runs, so the wait is short and the error then says what to close.
const IN_USE_WAITS: &[Duration] = &[
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1500),
    Duration::from_millis(2000),
];

/// Renames `from` over `to`, waiting a little while Windows says another program has
/// `to` open (see [`is_in_use`]); anywhere else this is one `rename`.
pub(crate) fn rename_when_free(from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    while_in_use(|| fs::rename(from, to), is_in_use, IN_USE_WAITS, std::thread::sleep)
}

/// Runs `op`, and again after each of `waits` while its error is one `busy` knows; the
/// last error is returned. The predicate and the sleep are parameters so the schedule is
/// tested on every platform.
fn while_in_use<T>(
    mut op: impl FnMut() -> io::Result<T>,
    busy: impl Fn(&io::Error) -> bool,
    waits: &[Duration],
    mut sleep: impl FnMut(Duration),
) -> io::Result<T> {
    let mut waits = waits.iter();
    loop {
        match op() {
            Err(e) if busy(&e) => match waits.next() {
                Some(&wait) => sleep(wait),
                None => return Err(e),
            },
            result => return result,
        }
    }
}

/// Clears a Windows read-only attribute so the file can be replaced or removed (a no-op
/// off Windows, where the mode does not stop either).
pub(crate) fn clear_read_only(path: &Utf8Path) -> io::Result<()> {
    if !cfg!(windows) {
        return Ok(());
    }
    let mut permissions = fs::metadata(path)?.permissions();
    if permissions.readonly() {
        // Only the read-only attribute: nothing else of the file changes.
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        fs::set_permissions(path, permissions)?;
    }
    Ok(())
}

/// Writes all of `buf` at `offset`, leaving the file position alone (a split download's
/// pieces land in place from several threads).
#[cfg(unix)]
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(unix)]
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
pub(crate) fn write_all_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

#[cfg(not(unix))]
pub(crate) fn read_exact_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_read(file, buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
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
        let (placed, _) = link_or_copy(&src, &copy, LinkMode::Auto).unwrap();
        assert!(matches!(placed, Placed::Clone | Placed::HardLink), "{placed:?}");
        assert_eq!(fs::read(&copy).unwrap(), b"new");
        assert_eq!(link_or_copy(&src, &copy, LinkMode::Copy).unwrap().0, Placed::Copy);
        assert_eq!(link_or_copy(&src, &copy, LinkMode::HardLink).unwrap().0, Placed::HardLink);
        write_atomically(&dir.join("state"), b"one").unwrap();
        write_atomically(&dir.join("state"), b"two").unwrap();
        assert_eq!(fs::read(dir.join("state")).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 3, "no temp file is left: {names:?}");
        fs::create_dir_all(dir.join("a-dir")).unwrap();
        let err = link_or_copy(&src, &dir.join("a-dir"), LinkMode::Auto).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
    }

    #[test]
    fn a_file_in_use_is_tried_again_after_each_wait_and_then_its_error_returned() {
        let busy = |e: &io::Error| e.raw_os_error() == Some(32);
        let waits = [Duration::from_millis(1), Duration::from_millis(2), Duration::from_millis(3)];
        let (mut calls, mut slept) = (0, Vec::new());
        let freed = while_in_use(
            || {
                calls += 1;
                if calls < 3 { Err(io::Error::from_raw_os_error(32)) } else { Ok(calls) }
            },
            busy,
            &waits,
            |wait| slept.push(wait),
        );
        assert_eq!(freed.unwrap(), 3, "the third try found the file free");
        assert_eq!(slept, waits[..2], "one wait before each try again");
        let (mut calls, mut slept) = (0, Vec::new());
        let held: io::Result<()> = while_in_use(
            || {
                calls += 1;
                Err(io::Error::from_raw_os_error(32))
            },
            busy,
            &waits,
            |wait| slept.push(wait),
        );
        assert_eq!(held.unwrap_err().raw_os_error(), Some(32));
        assert_eq!((calls, slept.len()), (4, 3), "bounded: every wait once, then the error");
        let mut calls = 0;
        let other: io::Result<()> = while_in_use(
            || {
                calls += 1;
                Err(io::Error::from_raw_os_error(2))
            },
            busy,
            &waits,
            |_| panic!("no wait for an error that is not a file in use"),
        );
        assert_eq!((other.unwrap_err().raw_os_error(), calls), (Some(2), 1));
    }

    #[test]
    fn a_fifo_or_a_folder_is_refused_as_a_source_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        assert_eq!(open_regular(&fifo).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(open_regular(&dir).unwrap_err().kind(), io::ErrorKind::IsADirectory);
        fs::write(dir.join("f"), b"x").unwrap();
        assert!(open_regular(&dir.join("f")).is_ok());
    }

    #[test]
    fn a_link_inside_the_root_is_named_and_the_root_itself_may_be_a_link() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        let root = dir.join("root");
        fs::create_dir_all(root.join("real")).unwrap();
        fs::create_dir_all(dir.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(dir.join("elsewhere"), root.join("sub")).unwrap();
        let err = check_inside(&root, &root.join("sub/a.bin")).unwrap_err().to_string();
        assert!(err.contains(root.join("sub").as_str()) && err.contains("symbolic link"), "{err}");
        assert!(check_inside(&root, &root.join("real/new/a.bin")).is_ok());
        std::os::unix::fs::symlink(&root, dir.join("via-link")).unwrap();
        assert!(check_inside(&dir.join("via-link"), &dir.join("via-link/real/a.bin")).is_ok());
    }
}
