//! What went wrong on the wire, as a [`Fault`] of the right class: an error from the HTTP
//! library, an I/O error while a body was read, an HTTP status, a proxy's refusal. Every
//! request's failure is classed here, by one set of rules.

use std::io;

use crate::error::{Class, Fault};
use crate::net::proxy::ProxyUrl;
use crate::text::server_text;

pub(crate) fn with_proxy_hint(mut fault: Fault, proxy: Option<&ProxyUrl>) -> Fault {
    if let Some(proxy) = proxy
        && matches!(fault.class, Class::Connection | Class::Timeout | Class::Tls | Class::HostNotFound)
    {
        fault.detail = format!("{} (through the proxy {proxy})", fault.detail);
    }
    fault
}

/// A proxy that answered with a refusal instead of forwarding the request.
pub(crate) fn proxy_refused(status: u16, proxy: Option<&ProxyUrl>) -> Fault {
    let shown = proxy.map_or_else(|| "the proxy".to_owned(), |p| format!("the proxy {p}"));
    let why = match status {
        407 => "its credentials are missing or wrong",
        _ => "its rules do not allow this request",
    };
    Fault::new(Class::ProxyRefused, format!("{shown} refused with HTTP {status}: {why}")).with_status(status)
}

/// The fault behind a request that got no response.
pub(crate) fn call_fault(err: &ureq::Error) -> Fault {
    match err {
        ureq::Error::Timeout(which) => Fault::new(Class::Timeout, format!("timed out ({which})")),
        ureq::Error::HostNotFound => Fault::new(Class::HostNotFound, "could not resolve the host name"),
        ureq::Error::ConnectionFailed => Fault::new(Class::Connection, "could not connect"),
        ureq::Error::Io(e) => io_fault(e),
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => {
            Fault::new(Class::Tls, format!("TLS failed: {err}"))
        }
        ureq::Error::TooManyRedirects => Fault::new(Class::Redirect, "too many redirects (a redirect loop?)"),
        ureq::Error::BadUri(_) => Fault::new(Class::BadUrl, format!("bad URL: {err}")),
        ureq::Error::StatusCode(status) => status_fault(*status),
        ureq::Error::ConnectProxyFailed(why) => {
            // ureq says "proxy server responded 407/..." when the proxy answered at all.
            let status = why
                .strip_prefix("proxy server responded ")
                .and_then(|rest| rest.split('/').next())
                .and_then(|code| code.parse::<u16>().ok());
            match status {
                Some(status) => proxy_refused(status, None),
                None => Fault::new(
                    Class::Connection,
                    format!("the proxy did not answer: {}", server_text(why, 200)),
                ),
            }
        }
        ureq::Error::Protocol(_)
        | ureq::Error::BodyExceedsLimit(_)
        | ureq::Error::LargeResponseHeader(..) => {
            Fault::new(Class::BadResponse, format!("the answer is not valid HTTP: {err}"))
        }
        // ureq's words may quote the server's: cleaned and bounded too.
        other => Fault::new(Class::Connection, server_text(&other.to_string(), 300)),
    }
}

/// Connection-level I/O errors, told apart by what they say: the TLS layer and the
/// resolver report through plain I/O errors.
pub(crate) fn io_fault(e: &std::io::Error) -> Fault {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        return Fault::new(Class::Timeout, format!("connection timed out: {text}"));
    }
    if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
        return Fault::new(Class::Tls, format!("TLS failed: {text}"));
    }
    // A resolver that failed for now (SERVFAIL, EAI_AGAIN) is not a missing host.
    if lower.contains("temporary failure in name resolution") {
        return Fault::new(Class::DnsTemporary, format!("the name server could not answer for now: {text}"));
    }
    if lower.contains("lookup address")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        return Fault::new(Class::HostNotFound, format!("could not resolve the host name: {text}"));
    }
    if e.kind() == std::io::ErrorKind::InvalidData {
        return Fault::new(Class::BadResponse, format!("the answer is not valid HTTP: {text}"));
    }
    Fault::new(Class::Connection, format!("connection failed: {text}"))
}

/// `bytes 100-999/1000` → (100, Some(1000)); `bytes 100-999/*` → (100, None).
pub(crate) fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    if last < first {
        return None;
    }
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((first, total))
}

/// The fault behind a body that stopped flowing.
pub(crate) fn read_fault(e: &io::Error, received: u64) -> Fault {
    let inner = e.get_ref().and_then(|inner| inner.downcast_ref::<ureq::Error>());
    match inner {
        Some(ureq::Error::Timeout(_)) => {
            return Fault::new(
                Class::Timeout,
                format!("no data arrived within the timeout after {received} bytes"),
            );
        }
        Some(ureq::Error::Io(io)) => return read_fault(io, received),
        Some(other) => {
            return Fault::new(Class::Truncated, format!("transfer failed after {received} bytes: {other}"));
        }
        None => {}
    }
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Fault::new(Class::Timeout, format!("no data arrived within the timeout after {received} bytes"))
        }
        io::ErrorKind::InvalidData => {
            Fault::new(Class::BadResponse, format!("the body is not valid HTTP after {received} bytes: {e}"))
        }
        _ => Fault::new(Class::Truncated, format!("the connection broke after {received} bytes: {e}")),
    }
}

/// The fault an HTTP status stands for.
pub(crate) fn status_fault(status: u16) -> Fault {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resolver_that_fails_for_now_is_retried_and_a_missing_host_is_not() {
        let io = |text: &str| io_fault(&std::io::Error::other(text.to_owned()));
        let temporary = io("failed to lookup address information: Temporary failure in name resolution");
        assert_eq!(temporary.class, Class::DnsTemporary);
        assert!(temporary.class.is_transient());
        let missing = io("failed to lookup address information: Name or service not known");
        assert_eq!(missing.class, Class::HostNotFound);
        assert!(!missing.class.is_transient());
    }

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
    fn a_refused_connect_names_the_proxy_and_407_asks_for_credentials() {
        let fault = call_fault(&ureq::Error::ConnectProxyFailed(
            "proxy server responded 407/Proxy Authentication Required".into(),
        ));
        assert_eq!((fault.class, fault.status), (Class::ProxyRefused, Some(407)));
        assert!(fault.detail.contains("credentials"), "{}", fault.detail);
        let fault =
            call_fault(&ureq::Error::ConnectProxyFailed("proxy server responded 403/Forbidden".into()));
        assert_eq!(fault.class, Class::ProxyRefused);
    }
}
