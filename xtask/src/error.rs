//! What can go wrong, and what the user is told about it.
//!
//! Every fault a download or a check can meet is a [`Fault`]: a [`Class`] that decides
//! whether to retry, move to the next URL or give up, plus the detail of this occurrence.
//! The hint a user reads comes from the class, so a newcomer looking for "what happens
//! on a 403" finds it here by name. Manifest and command-line mistakes are a
//! [`UsageError`] instead: they exit with code 2 before anything is downloaded.

use std::fmt;
use std::process::ExitCode;

/// Exit code when every selected model is in place.
pub const EXIT_OK: u8 = 0;
/// Exit code when some model could not be fetched or failed verification.
pub const EXIT_MODEL_FAILED: u8 = 1;
/// Exit code for a bad command line or manifest.
pub const EXIT_USAGE: u8 = 2;

pub fn exit_code(failed: bool) -> ExitCode {
    ExitCode::from(if failed { EXIT_MODEL_FAILED } else { EXIT_OK })
}

/// The kinds of fault, each with its own retry policy and hint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// 404 or 410, or a `file://` source that does not exist.
    NotFound,
    /// 401 or 403.
    Forbidden,
    /// 429.
    RateLimited,
    /// 408, 500, 502, 503, 504: worth another try.
    ServerBusy,
    /// Any other status we cannot use (other 4xx, 501, 505, an unexpected 2xx/3xx).
    HttpStatus,
    /// Connecting, or waiting for the next byte, took longer than `--timeout`.
    Timeout,
    /// Refused or reset connections, proxies.
    Connection,
    /// The host name does not resolve: offline, a typo, or DNS that needs a proxy. Not
    /// retried: a resolver that fails now fails the same way a second later.
    HostNotFound,
    /// Certificate or handshake failures.
    Tls,
    /// The body ended before the promised length.
    Truncated,
    /// An HTML page arrived where a binary file was expected.
    HtmlPage,
    /// A Git LFS pointer arrived instead of the file it points to.
    LfsPointer,
    /// The body is longer than the pinned size.
    Oversize,
    /// The source offers a different number of bytes than the pin.
    SizeMismatch,
    /// The bytes arrived but their sha256 differs from the pin.
    HashMismatch,
    /// A resumed download hashed wrong: its old prefix was discarded; start over.
    StalePartial,
    /// `--offline`, and no local source has the file.
    Offline,
    /// Too many redirects, or a redirect loop.
    Redirect,
    /// An https URL redirected to plain http.
    InsecureRedirect,
    /// The host says the file changed: its size or sha256 differ from the pin.
    StalePin,
    /// The URL itself cannot be used.
    BadUrl,
    /// Reading or writing local files failed (permissions, a directory in the way).
    LocalIo,
    /// The disk is full.
    NoSpace,
}

/// What to do after a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Retry,
    NextUrl,
    GiveUp,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Retry => "retry",
            Decision::NextUrl => "next-url",
            Decision::GiveUp => "give-up",
        }
    }
}

impl Class {
    /// Stable kebab-case name, used in the attempt log.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::NotFound => "not-found",
            Class::Forbidden => "forbidden",
            Class::RateLimited => "rate-limited",
            Class::ServerBusy => "server-error",
            Class::HttpStatus => "http-status",
            Class::Timeout => "timeout",
            Class::Connection => "connection",
            Class::HostNotFound => "host-not-found",
            Class::Tls => "tls",
            Class::Truncated => "truncated",
            Class::HtmlPage => "html-page",
            Class::LfsPointer => "lfs-pointer",
            Class::Oversize => "oversize",
            Class::SizeMismatch => "size-mismatch",
            Class::HashMismatch => "hash-mismatch",
            Class::StalePartial => "stale-partial",
            Class::Offline => "offline",
            Class::Redirect => "redirect",
            Class::InsecureRedirect => "insecure-redirect",
            Class::StalePin => "stale-pin",
            Class::BadUrl => "bad-url",
            Class::LocalIo => "local-io",
            Class::NoSpace => "no-space",
        }
    }

    /// Transient faults may go away on their own: the same URL is tried again.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            Class::RateLimited
                | Class::ServerBusy
                | Class::Timeout
                | Class::Connection
                | Class::Truncated
                | Class::StalePartial
        )
    }

    /// Local faults would fail the same way for every URL, so the model is given up.
    pub fn is_local(self) -> bool {
        matches!(self, Class::LocalIo | Class::NoSpace)
    }

    /// What the user can do about it.
    pub fn hint(self) -> &'static str {
        match self {
            Class::NotFound => {
                "the URL is outdated: look for a newer release or mirror and update `urls` in models.toml"
            }
            Class::Forbidden => {
                "the file is gated or private, or a Google Drive quota was hit: a token or login may be needed, or try again later"
            }
            Class::RateLimited => "the server is rate limiting: wait a while and run the command again",
            Class::ServerBusy => "the server is having trouble: run the command again later",
            Class::HttpStatus => "the server answered with a status this tool cannot use",
            Class::Timeout => {
                "the server stopped sending: check the connection, or allow longer stalls with `--timeout SECS`"
            }
            Class::Connection => {
                "could not reach the server: check the network connection, DNS and any proxy settings (HTTPS_PROXY)"
            }
            Class::HostNotFound => {
                "the host name does not resolve: check the network connection and DNS; where only a proxy reaches the internet, set HTTPS_PROXY"
            }
            Class::Tls => {
                "the secure connection failed: check the system clock; behind a TLS-inspecting proxy, set SSL_CERT_FILE (or SSL_CERT_DIR) to your organisation's CA certificates"
            }
            Class::Truncated => "the connection dropped mid-file: run the command again",
            Class::HtmlPage => {
                "the server sent a web page (a login, consent or interstitial page) instead of the file: open the URL in a browser"
            }
            Class::LfsPointer => {
                "the server sent a Git LFS pointer, not the file: use the LFS download URL, or run `git lfs pull` in the source repository"
            }
            Class::Oversize | Class::SizeMismatch | Class::HashMismatch => {
                "the bytes differ from the pin: the upstream file changed or was corrupted in transit; if upstream really changed, update the pin in models.toml"
            }
            Class::StalePartial => {
                "the partial download from an earlier attempt did not match; it was discarded and the download starts over"
            }
            Class::Offline => {
                "offline mode allows only local sources (the cache, file:// URLs, directory mirrors): run without --offline to download it"
            }
            Class::InsecureRedirect => {
                "the server sent an https download to plain http, where it could be altered: use another URL or mirror"
            }
            Class::StalePin => {
                "upstream has a different file now: if that is intended, update size and sha256 in models.toml (`cargo xtask models add` computes them)"
            }
            Class::Redirect => "the server redirected too often (a loop?): try another URL",
            Class::BadUrl => "fix the URL in models.toml",
            Class::LocalIo => {
                "check that the checkpoints directory is writable and that nothing else occupies the destination path"
            }
            Class::NoSpace => "free some disk space, or choose another disk with `--checkpoints-dir`",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed attempt: what kind of fault, and what exactly happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    pub class: Class,
    pub detail: String,
    /// The HTTP status, when there was a response.
    pub status: Option<u16>,
    /// How long the server asked us to wait (`Retry-After`), already capped.
    pub retry_after: Option<std::time::Duration>,
}

impl Fault {
    pub fn new(class: Class, detail: impl Into<String>) -> Fault {
        Fault { class, detail: detail.into(), status: None, retry_after: None }
    }

    pub fn with_status(mut self, status: u16) -> Fault {
        self.status = Some(status);
        self
    }

    /// A local I/O error; a full disk gets its own class so the hint fits.
    pub fn local(context: &str, err: &std::io::Error) -> Fault {
        use std::io::ErrorKind;
        // A file-size limit (RLIMIT_FSIZE, quota) stops the download just like a full disk.
        let class = if matches!(err.kind(), ErrorKind::StorageFull | ErrorKind::FileTooLarge) {
            Class::NoSpace
        } else {
            Class::LocalIo
        };
        Fault::new(class, format!("{context}: {err}"))
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.class)
    }
}

impl std::error::Error for Fault {}

/// A mistake in the command line or the manifest: exit code 2, nothing downloaded.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}
