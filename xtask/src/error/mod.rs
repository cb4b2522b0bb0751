//! What can go wrong, and what the user is told about it.
//!
//! Two levels. A download attempt meets a [`Fault`]: a [`Class`] that decides whether to
//! retry, move to the next source or give up, plus the detail of this occurrence; the
//! hint a user reads comes from the class, so a newcomer looking for "what happens on a
//! 403" finds it here by name (`fault.rs`, the one fault table). A model that could not
//! be provided keeps the last fault of each [`Site`] it met: each source it tried, or the
//! disk, a lock, the cache. Everything that ends a command is an [`Error`], whose variant
//! carries what the user needs (the path and the operation of a local fault, the
//! positions of manifest problems) and decides the exit code.
//!
//! This module sits below every layer but `source` (where an [`Origin`] is defined, beside
//! the `Source` it holds) and `text`.

use std::fmt;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

pub use crate::source::Origin;

mod fault;
pub use fault::{Class, Facts, Fault, Policy, Site, Then, Tried};

/// Exit code when every selected model is in place.
pub const EXIT_OK: u8 = 0;
/// Exit code when some model could not be fetched or failed verification.
pub const EXIT_MODEL_FAILED: u8 = 1;
/// Exit code for a bad command line or manifest.
pub const EXIT_USAGE: u8 = 2;

/// Everything wrong with a manifest, each problem with its position.
#[derive(Debug)]
pub struct ManifestError {
    pub file: Utf8PathBuf,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, p.message)?;
            if !p.help.is_empty() {
                write!(f, "\n  help: {}", p.help)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ManifestError {}

/// Everything that ends a command early. The variant decides the exit code and carries
/// what the message needs; no `io::Error` reaches a user without its path.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A mistake on the command line: exit 2, nothing done.
    #[error("{0}")]
    Usage(String),
    /// Problems in models.toml, each with file:line:column: exit 2.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// A local file operation failed.
    #[error("cannot {op} {path}: {source}\n  hint: {}", local_hint(source, path))]
    Io {
        /// What was being done, as a verb phrase: "create the folder", "read", "lock".
        op: &'static str,
        path: Utf8PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error::Usage(message.into())
    }

    /// Wraps `source` with the operation and the path it failed on.
    pub fn io(op: &'static str, path: impl Into<Utf8PathBuf>, source: io::Error) -> Error {
        Error::Io { op, path: path.into(), source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Manifest(_) => EXIT_USAGE,
            Error::Io { .. } => EXIT_MODEL_FAILED,
        }
    }

    /// Whether this is a full disk (or a file-size limit), which no retry can cure.
    pub fn is_no_space(&self) -> bool {
        matches!(self, Error::Io { source, .. } if is_no_space(source))
    }
}

/// A result whose error ends a command.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches an operation and a path to an I/O result: `fs::read(p).at("read", p)?`.
pub trait IoContext<T> {
    fn at(self, op: &'static str, path: impl AsRef<Utf8Path>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, op: &'static str, path: impl AsRef<Utf8Path>) -> Result<T> {
        self.map_err(|e| Error::io(op, path.as_ref(), e))
    }
}

fn is_no_space(err: &io::Error) -> bool {
    // A file-size limit (RLIMIT_FSIZE, quota) stops a write just like a full disk.
    matches!(err.kind(), io::ErrorKind::StorageFull | io::ErrorKind::FileTooLarge)
}

/// Whether Windows refused a rename or removal because another program has the file
/// open without sharing deletion: `ERROR_SHARING_VIOLATION` (32), `ERROR_LOCK_VIOLATION`
/// (33), or `ERROR_ACCESS_DENIED` (5), which is what a rename over an open file gets (the
/// read-only attribute, the other cause, is cleared before). Elsewhere an open file can be
/// replaced and removed, so nothing is in use.
pub(crate) fn is_in_use(err: &io::Error) -> bool {
    cfg!(windows) && matches!(err.raw_os_error(), Some(5 | 32 | 33))
}

/// What to do about a failed local operation, naming the place it failed at.
fn local_hint(err: &io::Error, path: &Utf8Path) -> String {
    match err.kind() {
        _ if is_no_space(err) => format!("the disk holding {path} is full: free some space there"),
        _ if is_in_use(err) => {
            format!(
                "another program has {path} open: close it (or wait for it to finish) and run the command again; if nothing has it open, check its permissions"
            )
        }
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            format!("{path} is not writable by this user: fix its permissions or choose another folder")
        }
        io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory => {
            format!("something else occupies {path} or a folder above it: move it away")
        }
        io::ErrorKind::IsADirectory => format!("{path} is a folder where a file belongs: move it away"),
        io::ErrorKind::NotFound => format!("{path} does not exist: check the path"),
        _ => "check the path and the filesystem".to_owned(),
    }
}
