//! HTTP requests the way curl makes them: proxies, certificates, redirects, credentials.
//!
//! Proxies are chosen per request ([`super::proxy`]): https goes through a CONNECT tunnel
//! (ureq), plain http in absolute form ([`super::forward`]). Certificates: the
//! platform's plus those the user names ([`super::trust`]). Redirects are followed here, not inside the HTTP library, so each hop
//! gets its own decision: at most 10 hops, a loop is reported as a loop, only http and
//! https are followed and https never falls back to plain http (the same rule
//! [`check_follow`] applies to interstitial pages), credentials are chosen per host
//! ([`super::auth`]), and `X-Linked-*` headers are checked on every hop before anything
//! is downloaded. A redirect's short body is read to its end so the connection goes back
//! to the pool instead of being dropped.

use std::collections::HashMap;
use std::io::{self, Read};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ureq::http::{HeaderMap, Response};
use ureq::tls::{RootCerts, TlsConfig};
use ureq::{Agent, Body};

use crate::error::{Class, Fault};
use crate::net::auth::{Credentials, Endpoint};
use crate::net::cookie::Cookie;
use crate::net::faults::{call_fault, proxy_refused, status_fault, with_proxy_hint};
use crate::net::forward::{self, Outgoing, Proxy};
use crate::net::proxy::{ProxyEnv, ProxyUrl};
use crate::net::s3::{Op, Store, error_fault};
use crate::net::trust::Trust;
use crate::source::{Kind, Source};

/// ureq's read buffer (its default), which also bounds a response's head.
const INPUT_BUFFER: usize = 128 * 1024;
/// Redirects followed at most, as browsers and curl do.
pub(crate) const MAX_REDIRECTS: usize = 10;
/// A redirect body longer than this is not worth reading to keep the connection.
const DRAIN_LIMIT: u64 = 64 << 10;

/// How long bytes may sit in a buffer before they go to disk and to the progress report:
/// on a slow link a large buffer could take minutes to fill, and a kill would lose it.
const FILL_BUDGET: Duration = Duration::from_millis(100);

const USER_AGENT: &str = concat!("xtask-models/", env!("CARGO_PKG_VERSION"));

/// One answer, after redirects: the response, the URL that gave it, and the cookies the
/// hops set (for a follow-up request such as Drive's confirmation).
pub(crate) struct Answer {
    pub response: Response<Body>,
    pub url: Source,
    pub cookies: Vec<Cookie>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// What a request sends: nothing, a small text (an XML document), or `len` bytes read
/// from a reader (a file or a part of one).
pub(crate) enum Payload<'a> {
    Empty,
    Text(&'a str),
    Reader { reader: &'a mut dyn Read, len: u64 },
}

/// Whether a request may go from `from` (a page or a redirecting answer) on to `next`:
/// only http(s), and never from https down to plain http, where the file could be
/// altered on the way. Every follow-up obeys it: redirects, forms, confirm links.
pub(crate) fn check_follow(from: &Source, next: &Source) -> Result<(), Fault> {
    if next.kind() != Kind::Http {
        return Err(Fault::new(
            Class::Redirect,
            format!("{from} sent the download on to {next}; only http and https are followed"),
        ));
    }
    if from.scheme() == "https" && next.scheme() == "http" {
        return Err(Fault::new(
            Class::InsecureRedirect,
            format!("{from} sent the download to plain http ({next}); refused"),
        ));
    }
    Ok(())
}

/// A follow-up's target (a `Location`, a form's action, a confirm link) as a source,
/// resolved against the URL that named it.
pub(crate) fn follow_up(from: &Source, reference: &str) -> Result<Source, Fault> {
    from.join(reference)
        .map_err(|e| Fault::new(Class::Redirect, format!("{from} sent the download on to {e}")))
}

pub(crate) struct Net {
    timeout: Duration,
    proxies: ProxyEnv,
    credentials: Credentials,
    /// Connections kept for reuse per host: as many as files are fetched at once.
    pool: usize,
    roots: OnceLock<Result<RootCerts, Fault>>,
    /// Keyed by proxy and by whether the agent must verify TLS (http needs no CA bundle).
    agents: Mutex<HashMap<(Option<ProxyUrl>, bool), Agent>>,
    /// The S3 store of `s3://` URLs, read from the environment on first use.
    store: OnceLock<Result<Store, Fault>>,
}

impl Net {
    pub(crate) fn new(timeout: Duration, proxies: ProxyEnv, credentials: Credentials, pool: usize) -> Net {
        let agents = Mutex::new(HashMap::new());
        let (roots, store) = (OnceLock::new(), OnceLock::new());
        Net { timeout, proxies, credentials, pool: pool.max(1), roots, agents, store }
    }

    /// The S3 store `s3://` URLs are in, as the environment describes it.
    pub(crate) fn store(&self) -> Result<&Store, Fault> {
        self.store.get_or_init(Store::from_env).as_ref().map_err(Clone::clone)
    }

    /// One request with a body and no redirects, to a URL already signed or public: the
    /// S3 side's requests. Direct, or through an https proxy's tunnel.
    pub(crate) fn exchange(
        &self,
        method: &str,
        url: &Source,
        headers: &[(&str, String)],
        body: Payload<'_>,
    ) -> Result<Response<Body>, Fault> {
        let Endpoint { scheme, host, .. } = endpoint(url)?;
        let proxy = self.proxies.proxy_for(&scheme, &host);
        // Only the S3 side sends through here: a fault is the endpoint's, not the bucket's.
        let endpoint = url.host().unwrap_or_default();
        if let Some(p) = proxy.as_ref().filter(|p| scheme == "http" && p.is_plain_http()) {
            // Plain http goes to an http proxy in absolute form, body and all, as every
            // other plain-http request does: a stock proxy refuses CONNECT but to 443.
            return self
                .forward_with_body(method, url, p, headers, body)
                .map_err(|f| f.at(endpoint, Some("the S3 endpoint")));
        }
        let agent = self.agent(proxy.as_ref(), scheme == "https")?;
        let mut request = ureq::http::Request::builder().method(method).uri(url.expose());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let bad = |e: ureq::http::Error| Fault::new(Class::BadUrl, format!("bad request: {e}"));
        // Each arm sends its own: the bodies' lifetimes differ and cannot share one type.
        let sent = match body {
            Payload::Empty => agent.run(request.body(ureq::SendBody::none()).map_err(bad)?),
            Payload::Text(text) => {
                let mut bytes = text.as_bytes();
                let request = request.header("Content-Length", text.len().to_string());
                agent.run(request.body(ureq::SendBody::from_reader(&mut bytes)).map_err(bad)?)
            }
            // A length up front: S3 refuses chunked uploads of unknown size.
            Payload::Reader { reader, len } => {
                let request = request.header("Content-Length", len.to_string());
                agent.run(request.body(ureq::SendBody::from_reader(reader)).map_err(bad)?)
            }
        };
        sent.map_err(|e| {
            with_proxy_hint(call_fault(&e), proxy.as_ref()).at(endpoint, Some("the S3 endpoint"))
        })
    }

    /// [`Net::exchange`] through a plain-http proxy, in absolute form.
    fn forward_with_body(
        &self,
        method: &str,
        url: &Source,
        proxy: &ProxyUrl,
        headers: &[(&str, String)],
        body: Payload<'_>,
    ) -> Result<Response<Body>, Fault> {
        let mut all: Vec<(String, String)> =
            headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
        all.push(("User-Agent".into(), USER_AGENT.into()));
        all.push(("Accept-Encoding".into(), "identity".into()));
        let mut text: &[u8] = match &body {
            Payload::Text(t) => t.as_bytes(),
            Payload::Empty | Payload::Reader { .. } => b"",
        };
        let body: Option<&mut dyn Read> = match body {
            Payload::Empty => {
                if !matches!(method, "GET" | "HEAD") {
                    all.push(("Content-Length".into(), "0".into()));
                }
                None
            }
            Payload::Text(_) => {
                all.push(("Content-Length".into(), text.len().to_string()));
                Some(&mut text)
            }
            Payload::Reader { reader, len } => {
                all.push(("Content-Length".into(), len.to_string()));
                Some(reader)
            }
        };
        let outgoing = Outgoing { method, url, headers: &all, timeout: self.timeout, body };
        forward::send(&Proxy::parse(proxy)?, outgoing).map_err(|f| with_proxy_hint(f, Some(proxy)))
    }

    /// A GET or HEAD of `s3://BUCKET/KEY`: signed just now, sent once. An error answer's
    /// XML body is read for its S3 code (a wrong secret, an unknown key, a missing
    /// bucket, a skewed clock each have their own class).
    /// Whether requests for `url` go through a proxy (an s3:// URL's, to its endpoint).
    pub(crate) fn proxied(&self, url: &Source) -> bool {
        let target = match url.kind() {
            Kind::S3 => match self.store().and_then(|store| store.sign(url, Op::Head)) {
                Ok(signed) => signed.url,
                Err(_) => return false,
            },
            Kind::Http => url.clone(),
            Kind::File => return false,
        };
        endpoint(&target).is_ok_and(|e| self.proxies.proxy_for(&e.scheme, &e.host).is_some())
    }

    fn s3_request(
        &self,
        method: Method,
        url: &Source,
        headers: &[(&str, String)],
        check: &dyn Fn(&HeaderMap) -> Result<(), Fault>,
    ) -> Result<Answer, Fault> {
        let store = self.store()?;
        let op = if method == Method::Head { Op::Head } else { Op::Get };
        let signed = store.sign(url, op)?;
        let response = self.exchange(signed.method, &signed.url, headers, Payload::Empty)?;
        let status = response.status().as_u16();
        // 416 is left to the caller, as from any server: a range past the end.
        if status >= 300 && status != 416 {
            return Err(s3_error(response, !store.signed()));
        }
        check(response.headers())?;
        Ok(Answer { response, url: url.clone(), cookies: Vec::new() })
    }

    /// One agent per proxy and scheme, built on first use; only https ones read the CA
    /// bundle, so loopback and plain-http runs skip that work.
    fn agent(&self, proxy: Option<&ProxyUrl>, tls: bool) -> Result<Agent, Fault> {
        let key = (proxy.cloned(), tls);
        let mut agents =
            self.agents.lock().map_err(|_| Fault::new(Class::Connection, "internal lock poisoned"))?;
        if let Some(agent) = agents.get(&key) {
            return Ok(agent.clone());
        }
        let proxy = match proxy {
            // ureq speaks SOCKS only when built with it, and panics otherwise.
            Some(p) if p.is_socks() => {
                let detail = format!(
                    "the proxy {p} (from ALL_PROXY, https_proxy or http_proxy) is a SOCKS proxy, which this tool does not speak: name an HTTP proxy (http://host:port) there, or list this host in NO_PROXY"
                );
                return Err(Fault::new(Class::ProxyRefused, detail));
            }
            Some(p) => Some(
                ureq::Proxy::new(p.expose())
                    .map_err(|e| Fault::new(Class::BadUrl, format!("proxy {p} is not usable: {e}")))?,
            ),
            None => None,
        };
        let tls_config = if tls {
            let roots = self.roots.get_or_init(|| Trust::gather().roots()).clone()?;
            TlsConfig::builder().root_certs(roots).build()
        } else {
            TlsConfig::default()
        };
        let t = Some(self.timeout);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            // ureq 3.5 consumes a 1xx answer (103 Early Hints) but then measures the
            // whole read buffer, body bytes included, against the header limit, and fails
            // a good answer as "response header is too big". With the limit at the
            // buffer's size that cannot happen; a head larger than the buffer (a header
            // flood) still ends the request, as a read that makes no progress.
            .input_buffer_size(INPUT_BUFFER)
            .max_response_header_size(INPUT_BUFFER)
            .proxy(proxy)
            .tls_config(tls_config)
            .timeout_resolve(t)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_recv_response(t)
            .timeout_per_read(t)
            // An upload stalls when the store stops reading (a full disk): the same
            // allowance as a stalled download, or a part would wait forever.
            .timeout_per_write(t)
            // Redirects are followed in `request`, one decision per hop.
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(USER_AGENT)
            // Raw bytes only: a compressed stream would break size checks and offsets.
            .accept_encoding("identity")
            .max_idle_connections_per_host(self.pool)
            .max_idle_connections(self.pool * 4)
            .build()
            .into();
        agents.insert(key, agent.clone());
        Ok(agent)
    }

    /// Requests `url`, following redirects; `check` sees every hop's headers first (a
    /// stale pin ends the request before anything is downloaded).
    pub(crate) fn request(
        &self,
        method: Method,
        url: &Source,
        headers: &[(&str, String)],
        cookies: &[Cookie],
        check: &dyn Fn(&HeaderMap) -> Result<(), Fault>,
    ) -> Result<Answer, Fault> {
        match url.kind() {
            Kind::S3 => return self.s3_request(method, url, headers, check),
            Kind::File => {
                return Err(Fault::new(Class::BadUrl, format!("{url} is read from disk, not requested")));
            }
            Kind::Http => {}
        }
        let mut url = url.clone();
        let origin_endpoint = endpoint(&url)?;
        let origin = url.host().unwrap_or_default();
        let mut seen = vec![url.clone()];
        let mut cookies = cookies.to_vec();
        for _ in 0..=MAX_REDIRECTS {
            let here = endpoint(&url)?;
            let (scheme, host) = (here.scheme.clone(), here.host.clone());
            let mut all: Vec<(String, String)> =
                headers.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect();
            if let Some(auth) = self.credentials.authorization(&here, &origin_endpoint) {
                all.push(("Authorization".into(), auth));
            }
            let sendable: Vec<&str> =
                cookies.iter().filter(|c| c.goes_to(&host)).map(|c| c.pair.as_str()).collect();
            if !sendable.is_empty() {
                all.push(("Cookie".into(), sendable.join("; ")));
            }
            let proxy = self.proxies.proxy_for(&scheme, &host);
            let hop = url.host().unwrap_or_default();
            let how = (hop != origin).then(|| format!("reached by a redirect from {origin}"));
            let response = self
                .send(method, &url, proxy.as_ref(), &all)
                .map_err(|f| f.at(hop.clone(), how.as_deref()))?;
            if proxy.is_some() && response.status().as_u16() == 407 {
                return Err(proxy_refused(407, proxy.as_ref()));
            }
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
            drain(response);
            let next = follow_up(&url, &location)?;
            check_follow(&url, &next)?;
            if seen.contains(&next) {
                let hops: Vec<String> = seen.iter().map(ToString::to_string).collect();
                return Err(Fault::new(
                    Class::Redirect,
                    format!("redirect loop: {} -> {next}", hops.join(" -> ")),
                ));
            }
            seen.push(next.clone());
            url = next;
        }
        Err(Fault::new(
            Class::Redirect,
            format!("more than {MAX_REDIRECTS} redirects, starting at {}", seen[0]),
        ))
    }

    /// One hop: through ureq (direct, or a CONNECT tunnel for https), or in absolute form
    /// to a plain-http proxy for an http URL.
    fn send(
        &self,
        method: Method,
        url: &Source,
        proxy: Option<&ProxyUrl>,
        headers: &[(String, String)],
    ) -> Result<Response<Body>, Fault> {
        let plain = url.scheme() == "http";
        if let Some(p) = proxy.filter(|p| plain && p.is_plain_http()) {
            let mut all = headers.to_vec();
            all.push(("User-Agent".into(), USER_AGENT.into()));
            all.push(("Accept-Encoding".into(), "identity".into()));
            let outgoing =
                Outgoing { method: method.as_str(), url, headers: &all, timeout: self.timeout, body: None };
            return forward::send(&Proxy::parse(p)?, outgoing).map_err(|f| with_proxy_hint(f, Some(p)));
        }
        let agent = self.agent(proxy, url.scheme() == "https")?;
        let mut request = match method {
            Method::Get => agent.get(url.expose()),
            Method::Head => agent.head(url.expose()),
        };
        for (name, value) in headers {
            request = request.header(name.as_str(), value);
        }
        request.call().map_err(|e| with_proxy_hint(call_fault(&e), proxy))
    }
}

/// The fault of an S3 error answer, from its (short) XML body.
pub(crate) fn s3_error(response: Response<Body>, anonymous: bool) -> Fault {
    let status = response.status().as_u16();
    let mut text = String::new();
    let _ = response.into_body().into_reader().take(DRAIN_LIMIT).read_to_string(&mut text);
    let mut fault = error_fault(status, &text, anonymous, status_fault(status).class);
    fault.retry_after = None;
    fault
}

/// Reads a redirect's short body to its end, so ureq can pool the connection.
fn drain(response: Response<Body>) {
    let mut body = response.into_body().into_reader().take(DRAIN_LIMIT);
    let _ = std::io::copy(&mut body, &mut std::io::sink());
}

/// The scheme and the bare host (no port) of an http(s) URL: what proxies are chosen by.
fn endpoint(url: &Source) -> Result<Endpoint, Fault> {
    let uri: ureq::http::Uri =
        url.expose().parse().map_err(|e| Fault::new(Class::BadUrl, format!("bad URL {url}: {e}")))?;
    let host = uri.host().ok_or_else(|| Fault::new(Class::BadUrl, format!("no host in {url}")))?;
    Ok(Endpoint::new(uri.scheme_str().unwrap_or("http"), host, uri.port_u16()))
}

/// Reads `body` until `buf` is full, [`FILL_BUDGET`] has passed with some bytes in, the
/// body ends, or a read fails (the count so far and the error: bytes that came before a
/// fault are the caller's to keep). Big hand-offs on fast links keep the cost per byte of
/// what follows each read (a write, a lock, the hashing thread's turn) negligible.
pub(crate) fn fill(body: &mut dyn Read, buf: &mut [u8]) -> (usize, Option<io::Error>) {
    let started = Instant::now();
    let mut n = 0;
    while n < buf.len() {
        match body.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(read) => n += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return (n, Some(e)),
        }
        if started.elapsed() >= FILL_BUDGET {
            break;
        }
    }
    (n, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_the_peer_stops_reading_ends_in_a_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Source::parse(&format!("http://{}/bucket/key", listener.local_addr().unwrap())).unwrap();
        // The peer takes the connection and reads nothing: the socket buffers fill.
        let (held, release) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let stream = listener.accept().map(|(s, _)| s);
            let _ = release.recv();
            drop(stream);
        });
        let net = Net::new(Duration::from_millis(200), ProxyEnv::default(), Credentials::default(), 1);
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut zeros = std::io::repeat(0).take(256 << 20);
            let sent = net.exchange("PUT", &url, &[], Payload::Reader { reader: &mut zeros, len: 256 << 20 });
            let _ = done.send(sent.map(|_| ()).map_err(|f| f.class));
        });
        // (A generous guard, so a regression fails here instead of hanging the suite.)
        let outcome = outcome.recv_timeout(Duration::from_secs(60)).expect("the upload never gave up");
        assert_eq!(outcome, Err(Class::Timeout));
        let _ = held.send(());
        peer.join().unwrap();
    }

    #[test]
    fn follow_ups_stay_on_http_or_https_and_never_go_down_to_plain_http() {
        let follow = |a: &str, b: &str| check_follow(&Source::parse(a).unwrap(), &Source::parse(b).unwrap());
        assert!(follow("http://a/x", "https://b/y").is_ok());
        assert!(follow("http://a/x", "http://b/y").is_ok());
        assert_eq!(follow("https://a/x", "http://b/y").unwrap_err().class, Class::InsecureRedirect);
        let fault = follow("https://a/x", "file:///etc/passwd").unwrap_err();
        assert_eq!(fault.class, Class::Redirect);
        assert!(fault.detail.contains("only http and https are followed"), "{}", fault.detail);
    }
}
