//! The files a download makes beside its destination, named in one place.
//!
//! A [`Partial`] is where a download's bytes collect (`<file>.<pin>.part` beside the
//! destination, `partial/<sha256>.part` in the cache, `<file>.add.part` for `add`) and
//! the records that sit beside it: the validator for `If-Range` (`.part-validator`), the
//! pieces of a split download (`.part-ranges`) and the audit's sparse copy
//! (`.part-audit`). Two short-lived names belong to the tool too: a link or copy on its
//! way into place (`<file>.<pid>.link.part`) and a state file being replaced
//! (`.<file>.<pid>.tmp`).
//!
//! [`Partial::owner`] is the one judge of which names are the tool's: exactly the names
//! above, never any `.part` (a browser's `GFPGANv1.4.pth.part` is the user's). `clean`,
//! the manifest's rules and the cache ask it.

use std::fs::{self, File, OpenOptions};
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

/// The ending of a file whose bytes are still arriving.
const SUFFIX: &str = ".part";
/// The endings of the records beside a partial, without their dot.
const VALIDATOR: &str = "part-validator";
const RANGES: &str = "part-ranges";
const AUDIT: &str = "part-audit";

/// Endings no model path may have: the manifest refuses them, so no model is ever named
/// like a file the tool makes (and removes).
pub(crate) const RESERVED_ENDINGS: &[&str] =
    &[".part", ".part-validator", ".part-ranges", ".part-audit", ".tmp"];

/// Where one download collects its bytes, with the records beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Partial {
    path: Utf8PathBuf,
}

impl Partial {
    /// Beside the destination. The pin's hash is part of the name so that bytes for an
    /// old pin are never taken for bytes of the new one.
    pub(crate) fn beside(dest: &Utf8Path, sha256: &str) -> Partial {
        let file_name = dest.file_name().unwrap_or("download");
        let pin = sha256.get(..12).unwrap_or("unpinned");
        Partial { path: dest.with_file_name(format!("{file_name}.{pin}{SUFFIX}")) }
    }

    /// In a folder of the shared cache, named by the content it will have.
    pub(crate) fn in_cache(dir: &Utf8Path, sha256: &str) -> Partial {
        Partial { path: dir.join(format!("{sha256}{SUFFIX}")) }
    }

    /// `add`'s download of a file whose pin is not known yet, in `dir`.
    pub(crate) fn for_add(dir: &Utf8Path, file_name: &str) -> Partial {
        Partial { path: dir.join(format!("{file_name}.add{SUFFIX}")) }
    }

    /// The file the bytes go into.
    pub(crate) fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// The validator (the source's key and its ETag or Last-Modified) for `If-Range`.
    pub(crate) fn validator(&self) -> Utf8PathBuf {
        self.path.with_extension(VALIDATOR)
    }

    /// The pieces of a split download, for a resume after a kill.
    pub(crate) fn ranges(&self) -> Utf8PathBuf {
        self.path.with_extension(RANGES)
    }

    /// The audit's sparse copy, when a blended download hashed wrong.
    pub(crate) fn audit(&self) -> Utf8PathBuf {
        self.path.with_extension(AUDIT)
    }

    pub(crate) fn exists(&self) -> bool {
        self.path.exists()
    }

    /// Opens the file, keeping what an earlier attempt left in it for a resume, and
    /// creating the folders it needs.
    pub(crate) fn open(&self) -> io::Result<File> {
        if let Some(parent) = self.path.parent() {
            fs::create_dir_all(parent)?;
        }
        OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&self.path)
    }

    /// Removes the bytes and every record: they are known to be bad, or worthless (a
    /// file with holes no record describes).
    pub(crate) fn discard(&self) {
        let _ = fs::remove_file(&self.path);
        self.forget();
    }

    /// Removes the records only: the bytes were placed (or are about to be), and no
    /// later run resumes them.
    pub(crate) fn forget(&self) {
        for record in [self.validator(), self.ranges(), self.audit()] {
            let _ = fs::remove_file(record);
        }
    }

    /// A link or copy of a checked file on its way to `dest`.
    pub(crate) fn link_temp(dest: &Utf8Path) -> Utf8PathBuf {
        let file_name = dest.file_name().unwrap_or("file");
        dest.with_file_name(format!("{file_name}.{}.link{SUFFIX}", std::process::id()))
    }

    /// A state file's replacement while it is written.
    pub(crate) fn state_temp(path: &Utf8Path) -> Utf8PathBuf {
        let file_name = path.file_name().unwrap_or("file");
        path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()))
    }

    /// The name of the file a name the tool makes sits beside (`m.bin` for
    /// `m.bin.0123456789ab.part`), or `None` when the tool never makes such a name.
    pub(crate) fn owner(file_name: &str) -> Option<&str> {
        if let Some(stem) = file_name.strip_prefix('.').and_then(|rest| rest.strip_suffix(".tmp")) {
            return strip_number(stem).filter(|s| !s.is_empty());
        }
        let (base, record) = match file_name.rsplit_once('.') {
            Some((base, "part")) => (base, false),
            Some((base, VALIDATOR | RANGES | AUDIT)) => (base, true),
            _ => return None,
        };
        let (owner, kind) = base.rsplit_once('.')?;
        let owned = match kind {
            _ if is_pin(kind) => Some(owner),
            "add" => Some(owner),
            // Links are never resumed: no records beside them.
            "link" if !record => strip_number(owner),
            _ => None,
        };
        owned.filter(|o| !o.is_empty())
    }
}

/// `name` without its `.<digits>` ending (a process id), if it has one.
fn strip_number(name: &str) -> Option<&str> {
    let (stem, digits) = name.rsplit_once('.')?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(stem)
}

/// The first 12 hex digits of a sha256, as [`Partial::beside`] writes them.
fn is_pin(text: &str) -> bool {
    text.len() == 12 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn every_name_a_download_makes_is_owned_by_the_file_it_sits_beside() {
        let partial = Partial::beside(Utf8Path::new("/c/a/m.bin"), SHA);
        assert_eq!(partial.path(), "/c/a/m.bin.0123456789ab.part");
        let names = [
            partial.path().to_owned(),
            partial.validator(),
            partial.ranges(),
            partial.audit(),
            Partial::for_add(Utf8Path::new("/c/a"), "m.bin").path().to_owned(),
            Partial::for_add(Utf8Path::new("/c/a"), "m.bin").validator(),
            Partial::link_temp(Utf8Path::new("/c/a/m.bin")),
            Partial::state_temp(Utf8Path::new("/c/a/m.bin")),
        ];
        for name in names {
            assert_eq!(Partial::owner(name.file_name().unwrap()), Some("m.bin"), "{name}");
        }
        assert_eq!(Partial::owner(&format!("{SHA}.part")), None, "the cache's partials are the cache's");
    }

    #[test]
    fn a_part_file_the_tool_did_not_name_is_not_the_tools() {
        for name in [
            "GFPGANv1.4.pth.part",
            "m.bin.part",
            "m.bin.0123456789AB.part",
            "m.bin.0123.part",
            "m.bin.part-validator",
            "m.bin.12.link.part-ranges",
            "m.bin.link.part",
            ".m.bin.tmp",
            "m.bin.12.tmp",
            ".0123456789ab.part",
            "notes.txt",
        ] {
            assert_eq!(Partial::owner(name), None, "{name}");
        }
    }

    #[test]
    fn discard_takes_the_bytes_and_the_records_and_forget_only_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let partial = Partial::beside(&dir.join("sub/m.bin"), SHA);
        partial.open().unwrap();
        for record in [partial.validator(), partial.ranges(), partial.audit()] {
            fs::write(record, b"r").unwrap();
        }
        partial.forget();
        assert!(partial.exists() && !partial.validator().exists() && !partial.ranges().exists());
        fs::write(partial.validator(), b"r").unwrap();
        partial.discard();
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 0);
    }
}
