//! The one fault table: each [`Class`] of fault with its [`Policy`] (retry, the next
//! source, or give up; shed a connection; trip the per-run breaker; blame the manifest)
//! and its hint; a [`Fault`] is one occurrence, met at a [`Site`], and a model that could
//! not be provided keeps what it [`Tried`].

use std::fmt;
use std::io;

use camino::Utf8Path;
use camino::Utf8PathBuf;

use super::{Error, is_in_use, is_no_space};
use crate::source::Origin;

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
    /// retried: a definite "no such host" is the same a second later.
    HostNotFound,
    /// The name server could not answer for now (SERVFAIL, `EAI_AGAIN`: "temporary
    /// failure in name resolution"): retried, as a second later it often can.
    DnsTemporary,
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
    /// Windows refused to replace or remove a file another program holds open.
    InUse,
    /// The answer is not valid HTTP (a broken head, a bad chunk, a bad length).
    BadResponse,
    /// A forward proxy refused the request (407, 403, 401 from the proxy).
    ProxyRefused,
    /// The body came compressed (`Content-Encoding`) although identity was asked for.
    Encoded,
    /// The pin contradicts a file whose sha256 matches it: its size is wrong.
    BadPin,
    /// S3 `SignatureDoesNotMatch`: the secret key is not the access key's.
    S3BadSecret,
    /// S3 `InvalidAccessKeyId`: the store does not know the access key.
    S3UnknownKey,
    /// S3 `AccessDenied`: known credentials, not allowed this request.
    S3Denied,
    /// S3 `NoSuchBucket`.
    S3NoSuchBucket,
    /// S3 `ExpiredToken`: the session token ran out.
    S3ExpiredToken,
    /// S3 `RequestTimeTooSkewed`: this machine's clock is too far from the store's.
    ClockSkew,
    /// The AWS settings cannot be used (a missing profile, half the key pair, a bad endpoint).
    S3Config,
}

/// How the tool answers one class of fault ([`Class::policy`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// What an attempt on one source does next.
    pub then: Then,
    /// A connection of a split download that meets it gives its connection up and leaves
    /// its piece to the others (the count drops), unless it is the last one, which acts
    /// on [`Policy::then`].
    pub sheds_connection: bool,
    /// Met before any byte arrived, it marks the host unreachable for the rest of the
    /// run (the per-run breaker): other models do not wait on it again.
    pub trips_breaker: bool,
    /// The URL itself is wrong: a model saved by a later source warns to fix it.
    pub blames_manifest: bool,
}

/// What follows a fault: what a class asks for ([`Policy::then`]), and what the retry
/// state decided within its budget ([`crate::engine::retry::RetryState`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Then {
    /// Try the same source again, after a backoff (within the retry budget).
    Retry,
    /// Give this source up and try the next one.
    NextSource,
    /// Give the model up: every source would fail the same way.
    GiveUp,
}

impl Then {
    /// Stable name, used in the attempt log and `--json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Then::Retry => "retry",
            Then::NextSource => "next-url",
            Then::GiveUp => "give-up",
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
            Class::DnsTemporary => "dns-temporary",
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
            Class::InUse => "in-use",
            Class::BadResponse => "bad-response",
            Class::ProxyRefused => "proxy-refused",
            Class::Encoded => "content-encoding",
            Class::BadPin => "bad-pin",
            Class::S3BadSecret => "s3-bad-secret",
            Class::S3UnknownKey => "s3-unknown-key",
            Class::S3Denied => "s3-access-denied",
            Class::S3NoSuchBucket => "s3-no-such-bucket",
            Class::S3ExpiredToken => "s3-expired-token",
            Class::ClockSkew => "clock-skew",
            Class::S3Config => "s3-config",
        }
    }

    /// What the tool does about this class of fault: the one place that decides it.
    /// No wildcard arm: a new class must say how it is handled.
    pub fn policy(self) -> Policy {
        use Then::{GiveUp, NextSource, Retry};
        let policy = |then, sheds_connection, trips_breaker, blames_manifest| Policy {
            then,
            sheds_connection,
            trips_breaker,
            blames_manifest,
        };
        match self {
            // The server is there but busy or refusing this many of us: fewer connections.
            Class::RateLimited | Class::ServerBusy => policy(Retry, true, false, false),
            Class::Timeout | Class::Truncated | Class::StalePartial => policy(Retry, false, false, false),
            // Nothing answered: the host is down or unreachable for this whole run.
            Class::Connection | Class::DnsTemporary => policy(Retry, false, true, false),
            // A definite "no such host" does not heal a second later.
            Class::HostNotFound => policy(NextSource, false, true, false),
            Class::Forbidden | Class::ProxyRefused => policy(NextSource, true, false, false),
            Class::S3BadSecret
            | Class::S3UnknownKey
            | Class::S3Denied
            | Class::S3ExpiredToken
            | Class::ClockSkew => policy(NextSource, true, false, false),
            // This URL serves something else than the pin: fix or drop it in models.toml.
            Class::NotFound
            | Class::StalePin
            | Class::HashMismatch
            | Class::SizeMismatch
            | Class::Oversize
            | Class::HtmlPage
            | Class::LfsPointer
            | Class::BadUrl
            | Class::InsecureRedirect => policy(NextSource, false, false, true),
            Class::HttpStatus
            | Class::Tls
            | Class::Offline
            | Class::Redirect
            | Class::BadResponse
            | Class::Encoded
            | Class::BadPin
            | Class::S3NoSuchBucket
            | Class::S3Config => policy(NextSource, false, false, false),
            // Every source would fail alike on this machine's disk.
            Class::LocalIo | Class::NoSpace | Class::InUse => policy(GiveUp, false, false, false),
        }
    }

    /// Transient faults may go away on their own: the same URL is tried again.
    pub fn is_transient(self) -> bool {
        self.policy().then == Then::Retry
    }

    /// Local faults would fail the same way for every URL, so the model is given up.
    pub fn is_local(self) -> bool {
        self.policy().then == Then::GiveUp
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
            Class::DnsTemporary => {
                "the name server could not answer for now: it was asked again; if this persists, check the DNS server (or the VPN) this machine uses"
            }
            Class::Tls => {
                "the secure connection failed: check the system clock; behind a TLS-inspecting proxy, set SSL_CERT_FILE (or SSL_CERT_DIR) to your organisation's CA certificates (the `models doctor` command lists what is trusted)"
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
                "upstream has a different file now: if that is intended, update size and sha256 in models.toml (the `models add` command computes them)"
            }
            Class::Redirect => "the server redirected too often (a loop?): try another URL",
            Class::BadUrl => {
                "the URL cannot be used: fix it in models.toml (or in --mirror / the proxy variables)"
            }
            Class::LocalIo => {
                "check that the checkpoints directory is writable and that nothing else occupies the destination path"
            }
            Class::NoSpace => "free some space on the disk named above (the checkpoints folder or the cache)",
            Class::InUse => {
                "another program has the file open (SadTalker running, an editor, a virus scan): close it and run the command again; the checked download is kept (beside the file, or in the cache) and installed then without downloading again (if nothing has it open, check that the folder is writable)"
            }
            Class::BadResponse => {
                "the server (or a proxy or middlebox between) answered with something that is not valid HTTP: try again later or another URL"
            }
            Class::ProxyRefused => {
                "the proxy refused the request: check the proxy's address and its rules; for 407, its user name and password (user:password@ in HTTPS_PROXY / http_proxy)"
            }
            Class::Encoded => {
                "the server compressed the file although the tool asked for it as is (Accept-Encoding: identity): use another URL or mirror"
            }
            Class::BadPin => {
                "the pin in models.toml contradicts itself: a file with its sha256 exists but has another size; fix `size` in models.toml"
            }
            Class::S3BadSecret => {
                "the store does not accept the secret key for this access key: check AWS_SECRET_ACCESS_KEY (or aws_secret_access_key in the AWS_PROFILE profile)"
            }
            Class::S3UnknownKey => {
                "the store does not know this access key: check AWS_ACCESS_KEY_ID or AWS_PROFILE, and that the key was made for this endpoint (AWS_ENDPOINT_URL)"
            }
            Class::S3Denied => {
                "the credentials may not do this: reading needs s3:GetObject on the prefix; publishing needs s3:PutObject, the multipart actions and s3:ListBucket (see docs/mirrors.md)"
            }
            Class::S3NoSuchBucket => {
                "the bucket does not exist at this endpoint: check the name in s3://BUCKET/…, AWS_REGION and AWS_ENDPOINT_URL"
            }
            Class::S3ExpiredToken => {
                "the session token has expired: get fresh credentials (`aws sso login`, or a new AWS_SESSION_TOKEN) and run again"
            }
            Class::ClockSkew => {
                "signed requests are valid only within 15 minutes of the store's time: set this machine's clock (enable NTP)"
            }
            Class::S3Config => {
                "fix the AWS settings: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY together, AWS_PROFILE naming a profile in ~/.aws/credentials or ~/.aws/config, AWS_ENDPOINT_URL an http(s) URL"
            }
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
    /// What was measured, when the fault is about sizes, hashes or bytes: kept as
    /// numbers for `--json` and the tests, rendered into `detail` once.
    pub facts: Option<Facts>,
    /// The host (with its port) the fault happened at, when a request got that far: the
    /// origin's own, or the one a redirect, a download form or an S3 endpoint led to.
    /// Faults are booked on it, and the per-run breaker records it.
    pub host: Option<String>,
}

/// The measured side of a fault about the bytes themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Facts {
    /// The source offers `offered` bytes; the pin says `pinned`.
    Offers { offered: u64, pinned: u64 },
    /// The body ended after `received` of `expected` bytes.
    Ended { received: u64, expected: u64 },
    /// The bytes hashed to `computed`; the pin is `pinned`.
    Hash { computed: String, pinned: String },
}

impl fmt::Display for Facts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Facts::Offers { offered, pinned } => {
                write!(f, "the server offers {offered} bytes but the pin says {pinned}")
            }
            Facts::Ended { received, expected } => {
                write!(f, "the body ended after {received} of {expected} bytes")
            }
            Facts::Hash { computed, pinned } => write!(f, "sha256 is {computed}, the pin is {pinned}"),
        }
    }
}

impl Fault {
    pub fn new(class: Class, detail: impl Into<String>) -> Fault {
        Fault { class, detail: detail.into(), status: None, retry_after: None, facts: None, host: None }
    }

    /// A fault described by what was measured; its detail is their rendering.
    pub fn of(class: Class, facts: Facts) -> Fault {
        Fault { facts: Some(facts.clone()), ..Fault::new(class, facts.to_string()) }
    }

    /// Booked on `host`; `how` says how it was reached when that was not asked for by
    /// name ("a redirect from github.com"), and becomes part of the detail.
    pub fn at(mut self, host: String, how: Option<&str>) -> Fault {
        if let Some(how) = how {
            self.detail = format!("{} at {host} ({how})", self.detail);
        }
        self.host = Some(host);
        self
    }

    pub fn with_status(mut self, status: u16) -> Fault {
        self.status = Some(status);
        self
    }

    /// A local I/O error at `path`; a full disk gets its own class so the hint fits.
    pub fn local(path: &Utf8Path, err: &io::Error) -> Fault {
        let class = match err {
            _ if is_no_space(err) => Class::NoSpace,
            _ if is_in_use(err) => Class::InUse,
            _ => Class::LocalIo,
        };
        Fault::new(class, format!("{path}: {err}"))
    }

    /// A fault that ended a command as a whole ([`Error`]), recorded against a model.
    pub fn from_error(err: &Error) -> Fault {
        let class = if err.is_no_space() { Class::NoSpace } else { Class::LocalIo };
        Fault::new(class, err.to_string())
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.class)
    }
}

impl std::error::Error for Fault {}

/// Where a fault happened: a source of the model's bytes, or a place on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Site {
    /// One of the model's sources.
    Source(Origin),
    /// The shared cache entry at this path.
    Cache(Utf8PathBuf),
    /// The local disk (no free space, an unwritable folder, something in the way).
    Disk(Utf8PathBuf),
    /// A lock file that could not be taken.
    Lock(Utf8PathBuf),
    /// `--offline` left no source to try.
    Offline,
}

impl Site {
    /// The source, when the fault was a source's.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Site::Source(origin) => Some(origin),
            _ => None,
        }
    }

    /// The kind, in `--json` output: `url`, `mirror`, `cache`, `disk`, `lock`, `offline`.
    pub fn kind(&self) -> &'static str {
        match self {
            Site::Source(origin) => origin.kind(),
            Site::Cache(_) => "cache",
            Site::Disk(_) => "disk",
            Site::Lock(_) => "lock",
            Site::Offline => "offline",
        }
    }

    /// The local path, when the site is one.
    pub fn path(&self) -> Option<&Utf8Path> {
        match self {
            Site::Cache(p) | Site::Disk(p) | Site::Lock(p) => Some(p),
            Site::Source(_) | Site::Offline => None,
        }
    }
}

impl From<Origin> for Site {
    fn from(origin: Origin) -> Site {
        Site::Source(origin)
    }
}

/// A source by its redacted URL; a local site by its kind and path (`disk /c/m.bin`),
/// or, in the alternate form the attempt log uses, with no space (`disk:/c/m.bin`).
impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sep = if f.alternate() { ":" } else { " " };
        match (self.origin(), self.path()) {
            (Some(origin), _) => write!(f, "{origin}"),
            (None, Some(path)) => write!(f, "{}{sep}{path}", self.kind()),
            (None, None) => f.write_str(self.kind()),
        }
    }
}

/// One place a model's provision met a fault, and the last fault there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tried {
    pub site: Site,
    pub fault: Fault,
}
