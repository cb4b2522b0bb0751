//! HTTP requests the way curl makes them: proxies, certificates, redirects, credentials.
//!
//! Proxies are chosen per request ([`super::proxy`]). Certificates: the platform's CA
//! bundle plus `SSL_CERT_FILE` and `SSL_CERT_DIR`, so a corporate TLS-inspecting CA
//! works. Redirects are followed here, not inside the HTTP library, so each hop gets its
//! own decision: at most 10 hops, a loop is reported as a loop, https never falls back
//! to plain http, credentials are chosen per host ([`super::auth`]), and `X-Linked-*`
//! headers are checked on every hop before anything is downloaded.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ureq::http::{HeaderMap, Response};
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};
use ureq::{Agent, Body};

use crate::error::{Class, Fault};
use crate::net::auth::Credentials;
use crate::net::cookie::Cookie;
use crate::net::proxy::ProxyEnv;
use crate::net::url::resolve;
use crate::text::redact_url;

/// Redirects followed at most, as browsers and curl do.
pub const MAX_REDIRECTS: usize = 10;

/// Every CA certificate this machine trusts, plus `SSL_CERT_FILE` / `SSL_CERT_DIR`;
/// `None` when there is nothing beyond the bundled Mozilla roots.
fn platform_roots() -> Option<Vec<Certificate<'static>>> {
    const BUNDLES: &[&str] = &[
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/ca-bundle.pem",
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
        "/etc/ssl/cert.pem",
    ];
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    if let Some(bundle) = BUNDLES.iter().map(std::path::Path::new).find(|p| p.is_file()) {
        files.push(bundle.to_owned());
    }
    if let Ok(file) = std::env::var("SSL_CERT_FILE") {
        files.push(file.into());
    }
    if let Ok(dirs) = std::env::var("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&dirs) {
            let entries = std::fs::read_dir(dir).into_iter().flatten().flatten();
            files.extend(entries.map(|e| e.path()).filter(|p| p.is_file()));
        }
    }
    let mut certs = Vec::new();
    for file in files {
        let Ok(pem) = std::fs::read(&file) else {
            continue;
        };
        for item in ureq::tls::parse_pem(&pem).flatten() {
            if let PemItem::Certificate(cert) = item {
                certs.push(cert.to_owned());
            }
        }
    }
    (!certs.is_empty()).then_some(certs)
}

/// One answer, after redirects: the response, the URL that gave it, and the cookies the
/// hops set (for a follow-up request such as Drive's confirmation).
pub struct Answer {
    pub response: Response<Body>,
    pub url: String,
    pub cookies: Vec<Cookie>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

pub struct Net {
    timeout: Duration,
    proxies: ProxyEnv,
    credentials: Credentials,
    roots: OnceLock<RootCerts>,
    /// Keyed by proxy and by whether the agent must verify TLS (http needs no CA bundle).
    agents: Mutex<HashMap<(Option<String>, bool), Agent>>,
}

impl Net {
    pub fn new(timeout: Duration, proxies: ProxyEnv, credentials: Credentials) -> Net {
        Net { timeout, proxies, credentials, roots: OnceLock::new(), agents: Mutex::new(HashMap::new()) }
    }

    /// One agent per proxy and scheme, built on first use; only https ones read the CA
    /// bundle, so loopback and plain-http runs skip that work.
    fn agent(&self, proxy: Option<&str>, tls: bool) -> Result<Agent, Fault> {
        let key = (proxy.map(str::to_owned), tls);
        let mut agents =
            self.agents.lock().map_err(|_| Fault::new(Class::Connection, "internal lock poisoned"))?;
        if let Some(agent) = agents.get(&key) {
            return Ok(agent.clone());
        }
        let proxy = match proxy {
            Some(p) => Some(
                ureq::Proxy::new(p)
                    .map_err(|e| Fault::new(Class::Connection, format!("proxy {p} is not usable: {e}")))?,
            ),
            None => None,
        };
        let tls_config = if tls {
            let roots =
                self.roots.get_or_init(|| platform_roots().map_or(RootCerts::WebPki, RootCerts::from));
            TlsConfig::builder().root_certs(roots.clone()).build()
        } else {
            TlsConfig::default()
        };
        let t = Some(self.timeout);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .proxy(proxy)
            .tls_config(tls_config)
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            // Redirects are followed in `request`, one decision per hop.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("xtask-models/", env!("CARGO_PKG_VERSION")))
            // Raw bytes only: a compressed stream would break size checks and offsets.
            .accept_encoding("identity")
            .build()
            .into();
        agents.insert(key, agent.clone());
        Ok(agent)
    }

    /// Requests `url`, following redirects; `check` sees every hop's headers first (a
    /// stale pin ends the request before anything is downloaded).
    pub fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        cookies: &[Cookie],
        check: &dyn Fn(&HeaderMap) -> Result<(), Fault>,
    ) -> Result<Answer, Fault> {
        let mut url = url.to_owned();
        let mut seen = vec![url.clone()];
        let mut cookies = cookies.to_vec();
        for _ in 0..=MAX_REDIRECTS {
            let (scheme, host) = scheme_and_host(&url)?;
            let proxy = self.proxies.proxy_for(&scheme, &host);
            let agent = self.agent(proxy.as_deref(), scheme.eq_ignore_ascii_case("https"))?;
            let mut request = match method {
                Method::Get => agent.get(&url),
                Method::Head => agent.head(&url),
            };
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            if let Some(auth) = self.credentials.authorization(&scheme, &host) {
                request = request.header("Authorization", auth);
            }
            let sendable: Vec<&str> =
                cookies.iter().filter(|c| c.goes_to(&host)).map(|c| c.pair.as_str()).collect();
            if !sendable.is_empty() {
                request = request.header("Cookie", sendable.join("; "));
            }
            let response = request.call().map_err(|e| with_proxy_hint(call_fault(&e), proxy.as_deref()))?;
            check(response.headers())?;
            let set = response.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok());
            cookies.extend(set.filter_map(|header| Cookie::parse(header, &host)));
            let location =
                response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
            // A HEAD asks with redirects off: the first hop's headers are the answer.
            let follow = method == Method::Get && response.status().is_redirection();
            let Some(location) = location.filter(|_| follow) else {
                return Ok(Answer { response, url, cookies });
            };
            let next = resolve(&url, &location);
            if scheme.eq_ignore_ascii_case("https") && next.to_ascii_lowercase().starts_with("http://") {
                return Err(Fault::new(
                    Class::InsecureRedirect,
                    format!("{} redirected to plain http ({}); refused", redact_url(&url), redact_url(&next)),
                ));
            }
            if seen.contains(&next) {
                return Err(Fault::new(
                    Class::Redirect,
                    format!("redirect loop: {} -> {}", redacted(&seen).join(" -> "), redact_url(&next)),
                ));
            }
            seen.push(next.clone());
            url = next;
        }
        Err(Fault::new(
            Class::Redirect,
            format!("more than {MAX_REDIRECTS} redirects, starting at {}", redact_url(&seen[0])),
        ))
    }
}

/// URLs for messages: error text must never carry a credential.
fn redacted(urls: &[String]) -> Vec<String> {
    urls.iter().map(|u| redact_url(u)).collect()
}

fn scheme_and_host(url: &str) -> Result<(String, String), Fault> {
    let shown = redact_url(url);
    let uri: ureq::http::Uri =
        url.parse().map_err(|e| Fault::new(Class::BadUrl, format!("bad URL {shown}: {e}")))?;
    let scheme = uri.scheme_str().unwrap_or("http").to_owned();
    let host = uri.host().ok_or_else(|| Fault::new(Class::BadUrl, format!("no host in {shown}")))?.to_owned();
    Ok((scheme, host))
}

fn with_proxy_hint(mut fault: Fault, proxy: Option<&str>) -> Fault {
    if let Some(proxy) = proxy
        && matches!(fault.class, Class::Connection | Class::Timeout | Class::Tls)
    {
        fault.detail = format!("{} (through the proxy {})", fault.detail, redact_url(proxy));
    }
    fault
}

/// The fault behind a request that got no response.
pub fn call_fault(err: &ureq::Error) -> Fault {
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
        other => Fault::new(Class::Connection, other.to_string()),
    }
}

/// Connection-level I/O errors, told apart by what they say: the TLS layer and the
/// resolver report through plain I/O errors.
fn io_fault(e: &std::io::Error) -> Fault {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    if matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
        return Fault::new(Class::Timeout, format!("connection timed out: {text}"));
    }
    if lower.contains("certificate") || lower.contains("handshake") || lower.contains("tls") {
        return Fault::new(Class::Tls, format!("TLS failed: {text}"));
    }
    if lower.contains("lookup address")
        || lower.contains("name or service not known")
        || lower.contains("no such host")
    {
        return Fault::new(Class::HostNotFound, format!("could not resolve the host name: {text}"));
    }
    Fault::new(Class::Connection, format!("connection failed: {text}"))
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
}
