//! Stage 3: move one model's bytes from its sources to its destination.
//!
//! Each URL is tried in order. A transient fault (see [`Class::is_transient`]) earns the
//! same URL another attempt after an exponential, jittered backoff or the server's
//! `Retry-After`; a permanent one moves on to the next URL at once; a local one (disk
//! full, permissions) gives the model up, since every URL would fail the same way.
//!
//! Bytes travel one path, [`Sink::accept`]: into the temp file, into the sha256 hasher
//! and into the progress report, in the same pass, so a file is read exactly once. The
//! first bytes are sniffed for web pages and LFS pointers, the transfer stops the moment
//! the body outgrows the pin, and only a file whose size and hash match is installed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};

use crate::attempt_log::{Attempt, AttemptLog, redact_url};
use crate::check::{self, BackgroundHasher, SNIFF_LEN};
use crate::error::{Class, Decision, Fault};
use crate::install;
use crate::manifest::Model;
use crate::progress::{Reporter, Transfer};

/// Backoff never waits longer than this between attempts...
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// ...and a server's `Retry-After` is honoured up to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct Settings {
    /// Bounds connecting and any stall between reads, never a whole transfer.
    pub timeout: Duration,
    /// Further attempts per URL after a transient fault.
    pub retries: u32,
    /// The first backoff; each later one doubles, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Install without comparing size and sha256 (development with dummy files).
    pub skip_checks: bool,
    /// Read `HTTPS_PROXY` and friends; tests turn this off so loopback stays direct.
    pub proxy_from_env: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            timeout: Duration::from_secs(60),
            retries: 3,
            backoff: Duration::from_millis(500),
            skip_checks: false,
            proxy_from_env: true,
        }
    }
}

/// A model that arrived, matched its pin and was installed.
#[derive(Debug)]
pub struct Fetched {
    pub url: String,
    pub bytes: u64,
    pub attempts: u32,
    pub elapsed: Duration,
}

/// Every source of a model failed; the last fault of each URL tried, in order.
#[derive(Debug)]
pub struct Failed {
    pub tried: Vec<(String, Fault)>,
}

pub struct Downloader<'a> {
    agent: ureq::Agent,
    settings: Settings,
    reporter: &'a Reporter,
    log: Option<&'a AttemptLog>,
}

impl<'a> Downloader<'a> {
    pub fn new(settings: Settings, reporter: &'a Reporter, log: Option<&'a AttemptLog>) -> Self {
        let t = Some(settings.timeout);
        let proxy = if settings.proxy_from_env {
            ureq::Proxy::try_from_env()
        } else {
            None
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy)
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            .max_redirects(10)
            .user_agent(concat!("xtask-models/", env!("CARGO_PKG_VERSION")))
            // Raw bytes only: a compressed stream would break size checks and offsets.
            .accept_encoding("identity")
            .build()
            .new_agent();
        Downloader {
            agent,
            settings,
            reporter,
            log,
        }
    }

    /// Downloads `model` to `dest`, trying each URL in turn.
    pub fn fetch(&self, model: &Model, dest: &Utf8Path) -> Result<Fetched, Failed> {
        let partial = install::partial_path(dest, model);
        let mut progress = self.reporter.transfer(&model.name, model.size);
        let mut tried = Vec::new();
        for url in &model.urls {
            match self.fetch_from(model, url, dest, &partial, &mut progress) {
                Ok(fetched) => return Ok(fetched),
                Err((fault, decision)) => {
                    tried.push((url.clone(), fault));
                    if decision == Decision::GiveUp {
                        break;
                    }
                }
            }
        }
        // A failed download leaves nothing behind that could be mistaken for the file.
        let _ = std::fs::remove_file(&partial);
        Err(Failed { tried })
    }

    /// Attempts one URL until it succeeds, turns out permanent, or runs out of retries.
    fn fetch_from(
        &self,
        model: &Model,
        url: &str,
        dest: &Utf8Path,
        partial: &Utf8Path,
        progress: &mut Transfer<'_>,
    ) -> Result<Fetched, (Fault, Decision)> {
        let first_start = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            progress.restart(0, &redact_url(url));
            let result = self
                .attempt(model, url, partial, progress)
                .and_then(|file| {
                    install::install(&file, partial, dest)
                        .map_err(|e| Fault::local(dest.as_str(), &e))
                });
            let decision = match &result {
                Ok(()) => None,
                Err(fault) => Some(self.decide(fault, attempt)),
            };
            self.record(
                model,
                url,
                attempt,
                &result,
                progress.done(),
                started.elapsed(),
                decision,
            );
            let fault = match result {
                Ok(()) => {
                    let elapsed = first_start.elapsed();
                    return Ok(Fetched {
                        url: url.to_owned(),
                        bytes: progress.done(),
                        attempts: attempt,
                        elapsed,
                    });
                }
                Err(fault) => fault,
            };
            let decision = decision.unwrap_or(Decision::NextUrl);
            if decision != Decision::Retry {
                return Err((fault, decision));
            }
            let wait = fault
                .retry_after
                .unwrap_or_else(|| backoff(self.settings.backoff, attempt));
            self.reporter.warn(&format!(
                "{}: {} from {}; retrying in {:.1}s (attempt {} of {})",
                model.name,
                fault,
                redact_url(url),
                wait.as_secs_f64(),
                attempt + 1,
                self.settings.retries + 1
            ));
            std::thread::sleep(wait);
        }
    }

    fn decide(&self, fault: &Fault, attempt: u32) -> Decision {
        if fault.class.is_local() {
            Decision::GiveUp
        } else if fault.class.is_transient() && attempt <= self.settings.retries {
            Decision::Retry
        } else {
            Decision::NextUrl
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        model: &Model,
        url: &str,
        attempt: u32,
        result: &Result<(), Fault>,
        bytes: u64,
        duration: Duration,
        decision: Option<Decision>,
    ) {
        let Some(log) = self.log else { return };
        let fault = result.as_ref().err();
        log.record(&Attempt {
            model: &model.name,
            url,
            attempt,
            status: fault.map_or(Some(200), |f| f.status),
            bytes,
            duration,
            class: fault.map(|f| f.class.as_str()),
            decision: decision.map_or("done", Decision::as_str),
        });
    }

    /// One attempt: open the source, stream it into a fresh temp file, check it.
    fn attempt(
        &self,
        model: &Model,
        url: &str,
        partial: &Utf8Path,
        progress: &mut Transfer<'_>,
    ) -> Result<File, Fault> {
        let Source {
            mut body,
            content_type,
            declared,
        } = self.open(url)?;
        let file =
            install::create_partial(partial).map_err(|e| Fault::local(partial.as_str(), &e))?;
        let mut sink = Sink {
            file,
            hasher: BackgroundHasher::start(),
            written: 0,
            prefix: Vec::with_capacity(SNIFF_LEN),
            content_type,
            declared,
            model,
            skip_checks: self.settings.skip_checks,
            partial,
            progress,
        };
        sink.pump(&mut *body)?;
        sink.finish()
    }

    fn open(&self, url: &str) -> Result<Source, Fault> {
        if let Some(path) = file_url_path(url) {
            return open_file(&path);
        }
        let response = self.agent.get(url).call().map_err(|e| call_fault(&e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if status != 200 {
            let mut fault = status_fault(status);
            fault.retry_after =
                header("retry-after").and_then(|v| parse_retry_after(&v, SystemTime::now()));
            return Err(fault);
        }
        let content_type = header("content-type");
        let declared = header("content-length").and_then(|v| v.trim().parse().ok());
        let body = Box::new(response.into_body().into_reader());
        Ok(Source {
            body,
            content_type,
            declared,
        })
    }
}

/// An open body and what its headers promised.
struct Source {
    body: Box<dyn Read>,
    content_type: Option<String>,
    declared: Option<u64>,
}

fn open_file(path: &Utf8Path) -> Result<Source, Fault> {
    let file = File::open(path).map_err(|e| {
        let class = match e.kind() {
            io::ErrorKind::NotFound => Class::NotFound,
            io::ErrorKind::PermissionDenied => Class::Forbidden,
            _ => Class::Connection,
        };
        Fault::new(class, format!("cannot open {path}: {e}"))
    })?;
    let declared = file.metadata().ok().map(|m| m.len());
    Ok(Source {
        body: Box::new(file),
        content_type: None,
        declared,
    })
}

/// Where the bytes of one attempt go: temp file, hasher and progress, together.
struct Sink<'s, 'p, 'r> {
    file: File,
    hasher: BackgroundHasher,
    written: u64,
    prefix: Vec<u8>,
    content_type: Option<String>,
    declared: Option<u64>,
    model: &'s Model,
    skip_checks: bool,
    partial: &'s Utf8Path,
    progress: &'p mut Transfer<'r>,
}

impl Sink<'_, '_, '_> {
    fn pump(&mut self, body: &mut dyn Read) -> Result<(), Fault> {
        loop {
            let mut buf = self.hasher.buffer();
            let (n, error) = fill(body, &mut buf);
            // Bytes that arrived before a fault are kept: they are as good as any.
            if n > 0 {
                self.accept(&buf[..n])?;
                self.hasher.hash(buf, n);
            }
            if let Some(e) = error {
                return Err(read_fault(&e, self.written));
            }
            if n == 0 {
                break;
            }
        }
        if self.prefix.len() < SNIFF_LEN {
            self.judge_prefix()?;
        }
        Ok(())
    }

    /// Checks a chunk, then writes it and reports it; the caller hands it to the hasher.
    fn accept(&mut self, chunk: &[u8]) -> Result<(), Fault> {
        if self.prefix.len() < SNIFF_LEN {
            let take = chunk.len().min(SNIFF_LEN - self.prefix.len());
            self.prefix.extend_from_slice(&chunk[..take]);
            if self.prefix.len() == SNIFF_LEN {
                self.judge_prefix()?;
            }
        }
        let size = self.model.size;
        if !self.skip_checks && self.written + chunk.len() as u64 > size {
            return Err(Fault::new(
                Class::Oversize,
                format!("the body is larger than the pinned {size} bytes; stopped reading"),
            ));
        }
        self.file
            .write_all(chunk)
            .map_err(|e| Fault::local(self.partial.as_str(), &e))?;
        self.written += chunk.len() as u64;
        self.progress.advance(chunk.len() as u64);
        Ok(())
    }

    /// Called once, when the first bytes are in: is this the file at all?
    fn judge_prefix(&self) -> Result<(), Fault> {
        if let Some(class) = check::sniff(&self.prefix, self.content_type.as_deref()) {
            let what = match class {
                Class::LfsPointer => "a Git LFS pointer".to_owned(),
                _ => match html_title(&self.prefix) {
                    Some(title) => format!("an HTML page titled {title:?}"),
                    None => "an HTML page".to_owned(),
                },
            };
            return Err(Fault::new(
                class,
                format!("received {what} instead of the file"),
            ));
        }
        let size = self.model.size;
        match self.declared {
            Some(declared) if !self.skip_checks && declared > size => Err(Fault::new(
                Class::Oversize,
                format!("the server offers {declared} bytes but the pin says {size}"),
            )),
            Some(declared) if !self.skip_checks && declared < size => Err(Fault::new(
                Class::SizeMismatch,
                format!("the server offers {declared} bytes but the pin says {size}"),
            )),
            _ => Ok(()),
        }
    }

    /// The body ended: size and hash decide whether the file may be installed.
    fn finish(self) -> Result<File, Fault> {
        if self.skip_checks {
            return Ok(self.file);
        }
        let size = self.model.size;
        if self.written < size {
            return Err(Fault::new(
                Class::Truncated,
                format!("the body ended after {} of {size} bytes", self.written),
            ));
        }
        let actual = self.hasher.finish();
        if actual != self.model.sha256 {
            return Err(Fault::new(
                Class::HashMismatch,
                format!("sha256 is {actual}, the pin is {}", self.model.sha256),
            ));
        }
        Ok(self.file)
    }
}

/// Reads until `buf` is full, the body ends (a short count) or a read fails (the count
/// so far and the error). Big hand-offs keep the hashing thread's overhead negligible.
fn fill(body: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(read) => n += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
    }
    (n, None)
}

/// The text of `<title>` in the first bytes of a page, to tell the user which page it was.
fn html_title(prefix: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(prefix);
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title: String = text[open_end..close]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then(|| title.chars().take(80).collect())
}

/// The fault an HTTP status stands for.
pub fn status_fault(status: u16) -> Fault {
    let (class, what) = match status {
        404 | 410 => (Class::NotFound, "not found"),
        401 | 403 => (Class::Forbidden, "access denied"),
        429 => (Class::RateLimited, "too many requests"),
        408 | 500 | 502 | 503 | 504 => (Class::ServerBusy, "server error"),
        500..=599 => (Class::HttpStatus, "server error"),
        300..=399 => (Class::Redirect, "redirect without a usable Location"),
        _ => (Class::HttpStatus, "unexpected status"),
    };
    Fault::new(class, format!("HTTP {status} ({what})")).with_status(status)
}

/// The fault behind a request that got no response.
fn call_fault(err: &ureq::Error) -> Fault {
    match err {
        ureq::Error::Timeout(which) => Fault::new(Class::Timeout, format!("timed out ({which})")),
        ureq::Error::HostNotFound => {
            Fault::new(Class::Connection, "could not resolve the host name")
        }
        ureq::Error::ConnectionFailed => Fault::new(Class::Connection, "could not connect"),
        ureq::Error::Io(e) => io_fault(e, "connection failed"),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            Fault::new(Class::Tls, format!("TLS failed: {err}"))
        }
        ureq::Error::TooManyRedirects => {
            Fault::new(Class::Redirect, "too many redirects (a redirect loop?)")
        }
        ureq::Error::BadUri(_) => Fault::new(Class::BadUrl, format!("bad URL: {err}")),
        ureq::Error::StatusCode(status) => status_fault(*status),
        other => Fault::new(Class::Connection, other.to_string()),
    }
}

fn io_fault(e: &io::Error, context: &str) -> Fault {
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Fault::new(Class::Timeout, format!("{context}: {e}"))
        }
        _ => Fault::new(Class::Connection, format!("{context}: {e}")),
    }
}

/// The fault behind a body that stopped flowing.
fn read_fault(e: &io::Error, received: u64) -> Fault {
    let inner = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>());
    match inner {
        Some(ureq::Error::Timeout(_)) => {
            return Fault::new(
                Class::Timeout,
                format!("no data arrived within the timeout after {received} bytes"),
            );
        }
        Some(ureq::Error::Io(io)) => return read_fault(io, received),
        Some(other) => {
            return Fault::new(
                Class::Truncated,
                format!("transfer failed after {received} bytes: {other}"),
            );
        }
        None => {}
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Fault::new(
            Class::Timeout,
            format!("no data arrived within the timeout after {received} bytes"),
        ),
        _ => Fault::new(
            Class::Truncated,
            format!("the connection broke after {received} bytes: {e}"),
        ),
    }
}

/// The delay before attempt `attempt + 1`: doubling from `base`, capped, with jitter so
/// that many clients do not come back in lock step.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let doubled = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = doubled.min(MAX_BACKOFF);
    // Somewhere in [50 %, 100 %] of the capped delay.
    let jitter = 0.5 + 0.5 * random_unit();
    capped.mul_f64(jitter)
}

/// A number in [0, 1) from the standard library's per-process random hash keys.
fn random_unit() -> f64 {
    use std::hash::BuildHasher;
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    let bits = std::collections::hash_map::RandomState::new().hash_one(nanos);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// `Retry-After` as seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = parse_http_date(value)?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// An IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let day: u32 = day.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms.as_slice() else {
        return None;
    };
    let days = crate::attempt_log::days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// The local path of a `file://` URL (`file:///abs/path` or `file://localhost/abs/path`),
/// percent-decoded.
pub fn file_url_path(url: &str) -> Option<Utf8PathBuf> {
    let scheme = url.get(..7)?;
    if !scheme.eq_ignore_ascii_case("file://") {
        return None;
    }
    let rest = &url[7..];
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    percent_decode(rest).map(Utf8PathBuf::from)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_classes() {
        let class = |s| status_fault(s).class;
        assert_eq!(class(404), Class::NotFound);
        assert_eq!(class(410), Class::NotFound);
        assert_eq!(class(401), Class::Forbidden);
        assert_eq!(class(403), Class::Forbidden);
        assert_eq!(class(429), Class::RateLimited);
        for s in [408, 500, 502, 503, 504] {
            assert!(class(s).is_transient(), "{s}");
        }
        assert!(!class(501).is_transient());
        assert!(!class(400).is_transient());
        assert_eq!(status_fault(503).status, Some(503));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("31536000", now), Some(MAX_RETRY_AFTER));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_millis(500);
        for attempt in 1..=3 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(base, attempt);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF);
        assert!(backoff(base, 40) >= MAX_BACKOFF / 2);
    }

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(
            file_url_path("file:///tmp/a%20b.bin").unwrap(),
            "/tmp/a b.bin"
        );
        assert_eq!(file_url_path("FILE://localhost/x").unwrap(), "/x");
        assert_eq!(file_url_path("file://host/x"), None);
        assert_eq!(file_url_path("file://relative"), None);
        assert_eq!(file_url_path("https://x/y"), None);
        assert_eq!(file_url_path("file:///bad%zz"), None);
    }

    #[test]
    fn html_titles_are_extracted_for_the_message() {
        assert_eq!(
            html_title(b"<html><head><TITLE>\n Google Drive -  Virus scan warning</title>")
                .as_deref(),
            Some("Google Drive - Virus scan warning")
        );
        assert_eq!(html_title(b"<html><title></title>"), None);
        assert_eq!(html_title(b"<html><title>unterminated"), None);
    }
}
