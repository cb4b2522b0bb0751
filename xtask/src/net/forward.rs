//! Plain-http requests through a forward proxy, sent the way curl sends them: to the
//! proxy, with the target in absolute form (`GET http://host/path HTTP/1.1`, RFC 9112
//! §3.2.2). ureq 3 tunnels every proxied request with CONNECT, and stock proxies refuse
//! that for anything but port 443 (squid: `http_access deny CONNECT !SSL_ports`;
//! tinyproxy: `ConnectPort 443`), so an http mirror behind a corporate proxy needs this.
//! https keeps CONNECT, through ureq.
//!
//! One request per connection (`Connection: close`), a response head of at most 64 KiB,
//! and a body framed by Content-Length, chunked encoding or the end of the connection;
//! the answer is handed back as the same `Response<Body>` ureq gives, so nothing past
//! here knows which path a request took.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine as _;
use ureq::Body;
use ureq::http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::error::{Class, Fault};
use crate::net::proxy::ProxyUrl;
use crate::source::{Source, percent_decode};

/// Response heads longer than this are refused: a header flood, not an answer.
const MAX_HEAD: usize = 64 << 10;
/// Header lines read at most.
const MAX_HEADERS: usize = 128;

/// A parsed `http://[user:password@]host[:port]` proxy URL.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Proxy {
    host: String,
    port: u16,
    /// `Proxy-Authorization` value, from the URL's userinfo.
    authorization: Option<String>,
}

impl Proxy {
    /// Parses a proxy URL; only plain-http proxies use this path.
    pub(crate) fn parse(proxy: &ProxyUrl) -> Result<Proxy, Fault> {
        let bad = |why: &str| Fault::new(Class::BadUrl, format!("proxy {proxy} {why}"));
        let url = proxy.expose();
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("HTTP://"))
            .ok_or_else(|| bad("is not an http:// proxy"))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                (h, p.parse::<u16>().map_err(|_| bad("has a port that is not a number"))?)
            }
            _ => (hostport, 1080),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let authorization = userinfo.map(|u| {
            let (user, password) = u.split_once(':').unwrap_or((u, ""));
            let decode = |t: &str| percent_decode(t).unwrap_or_else(|| t.to_owned());
            let pair = format!("{}:{}", decode(user), decode(password));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        Ok(Proxy { host: host.to_owned(), port, authorization })
    }
}

/// What to send: the method, the absolute URL and the headers.
pub(crate) struct Outgoing<'a> {
    pub method: &'a str,
    pub url: &'a Source,
    pub headers: &'a [(String, String)],
    pub timeout: Duration,
    /// The request body, its length already in `headers` (`Content-Length`).
    pub body: Option<&'a mut dyn Read>,
}

/// Informational answers skipped before one gives up on the real one.
const MAX_INFORMATIONAL: usize = 16;

/// Sends one request through `proxy` and returns its answer, the body still unread.
pub(crate) fn send(proxy: &Proxy, request: Outgoing<'_>) -> Result<Response<Body>, Fault> {
    let stream = connect(proxy, request.timeout)?;
    let io = |e: io::Error| proxy_io_fault(proxy, &e);
    stream.set_read_timeout(Some(request.timeout)).map_err(io)?;
    stream.set_write_timeout(Some(request.timeout)).map_err(io)?;
    let head = request_head(proxy, &request)?;
    (&stream).write_all(head.as_bytes()).map_err(io)?;
    // A proxy that stops reading a body early may have answered why: read that answer
    // before reporting the broken write.
    let sent = request.body.map_or(Ok(0), |body| io::copy(body, &mut &stream));
    let mut reader = BufReader::new(stream);
    let mut head = match (read_head(&mut reader), sent) {
        (Ok(head), _) if !head.is_empty() => head,
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(io(e)),
        (Ok(head), Ok(_)) => head,
    };
    let mut informational = 0;
    let (status, headers) = loop {
        let (status, headers) = parse_head(&head)?;
        // 1xx answers (103 Early Hints, 102 Processing) come before the real one and are
        // not it (RFC 9110 §15.2); 101 is never asked for. A few, not an endless stream.
        if !status.is_informational() || status == StatusCode::SWITCHING_PROTOCOLS {
            break (status, headers);
        }
        informational += 1;
        if informational > MAX_INFORMATIONAL {
            let detail = format!("the proxy sent more than {MAX_INFORMATIONAL} informational (1xx) answers");
            return Err(Fault::new(Class::BadResponse, detail));
        }
        head = read_head(&mut reader).map_err(io)?;
    };
    let body = body_reader(reader, request.method, status, &headers)?;
    let mut builder = Response::builder().status(status);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    builder
        .body(Body::builder().reader(body))
        .map_err(|e| Fault::new(Class::BadResponse, format!("the proxy's answer cannot be used: {e}")))
}

fn connect(proxy: &Proxy, timeout: Duration) -> Result<TcpStream, Fault> {
    let shown = format!("{}:{}", proxy.host, proxy.port);
    let addrs = (proxy.host.as_str(), proxy.port).to_socket_addrs().map_err(|e| {
        Fault::new(Class::HostNotFound, format!("could not resolve the proxy host {shown}: {e}"))
    })?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(|| "no address".to_owned(), |e| e.to_string());
    Err(Fault::new(Class::Connection, format!("could not connect to the proxy {shown}: {why}")))
}

fn request_head(proxy: &Proxy, request: &Outgoing<'_>) -> Result<String, Fault> {
    let (target, authority) = absolute_target(request.url.expose())
        .ok_or_else(|| Fault::new(Class::BadUrl, format!("bad URL {}", request.url)))?;
    let mut head = format!("{} {target} HTTP/1.1\r\nHost: {authority}\r\n", request.method);
    for (name, value) in request.headers {
        if value.contains(['\r', '\n']) {
            return Err(Fault::new(Class::BadUrl, format!("a {name} header value holds a line break")));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(auth) = &proxy.authorization {
        head.push_str(&format!("Proxy-Authorization: {auth}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    Ok(head)
}

/// The URL as a request target (no userinfo, no fragment) and its authority.
fn absolute_target(url: &str) -> Option<(String, String)> {
    let rest = url.get(7..).filter(|_| url.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://")))?;
    let rest = rest.split('#').next()?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    if authority.is_empty() || authority.contains(char::is_whitespace) || path.contains(char::is_whitespace) {
        return None;
    }
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Some((format!("http://{authority}{path}"), authority.to_owned()))
}

/// The response head, up to and including the blank line.
fn read_head(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let n = reader.by_ref().take((MAX_HEAD - head.len()) as u64).read_until(b'\n', &mut head)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the proxy closed the connection"));
        }
        let line = &head[before..];
        if line == b"\r\n" || line == b"\n" {
            return Ok(head);
        }
        if head.len() >= MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a response head over 64 KiB"));
        }
    }
}

fn parse_head(head: &[u8]) -> Result<(StatusCode, Vec<(HeaderName, HeaderValue)>), Fault> {
    let malformed =
        |why: String| Fault::new(Class::BadResponse, format!("the proxy's answer is not valid HTTP: {why}"));
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(malformed("the head is incomplete".into())),
        Err(e) => return Err(malformed(e.to_string())),
    }
    let code = parsed.code.ok_or_else(|| malformed("no status".into()))?;
    let status = StatusCode::from_u16(code).map_err(|e| malformed(e.to_string()))?;
    let mut headers = Vec::new();
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).map_err(|e| malformed(e.to_string()))?;
        let value = HeaderValue::from_bytes(header.value).map_err(|e| malformed(e.to_string()))?;
        headers.push((name, value));
    }
    Ok((status, headers))
}

/// The body as the head frames it.
fn body_reader(
    reader: BufReader<TcpStream>,
    method: &str,
    status: StatusCode,
    headers: &[(HeaderName, HeaderValue)],
) -> Result<Box<dyn Read + Send + Sync>, Fault> {
    let header =
        |name: &str| headers.iter().find(|(n, _)| n.as_str() == name).and_then(|(_, v)| v.to_str().ok());
    let no_body = method == "HEAD" || status.is_informational() || matches!(status.as_u16(), 204 | 304);
    if no_body {
        return Ok(Box::new(io::empty()));
    }
    if header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked")) {
        return Ok(Box::new(Chunked { inner: reader, left: 0, done: false }));
    }
    match header("content-length") {
        Some(len) => {
            let len: u64 = len.trim().parse().map_err(|_| {
                Fault::new(
                    Class::BadResponse,
                    format!("the proxy's answer has a bad Content-Length: {len:?}"),
                )
            })?;
            Ok(Box::new(Exact { inner: reader.take(len), left: len }))
        }
        None => Ok(Box::new(reader)),
    }
}

/// A Content-Length body: ending early is an error, as ureq reports it.
struct Exact<R> {
    inner: io::Take<R>,
    left: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the body ended before its Content-Length",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `Transfer-Encoding: chunked` body (RFC 9112 §7.1), extensions and trailers skipped.
struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    fn line(&mut self) -> io::Result<String> {
        let mut line = Vec::new();
        (&mut self.inner).take(4096).read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "a broken chunk header"));
        }
        Ok(String::from_utf8_lossy(&line).trim().to_owned())
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let line = self.line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, format!("a bad chunk size {size:?}"))
            })?;
            if self.left == 0 {
                while !self.line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the body ended inside a chunk"));
        }
        self.left -= n as u64;
        if self.left == 0 {
            self.line()?;
        }
        Ok(n)
    }
}

fn proxy_io_fault(proxy: &Proxy, e: &io::Error) -> Fault {
    let through = format!("through the proxy {}:{}", proxy.host, proxy.port);
    match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
            Fault::new(Class::Timeout, format!("timed out {through}: {e}"))
        }
        io::ErrorKind::InvalidData => {
            Fault::new(Class::BadResponse, format!("a malformed answer {through}: {e}"))
        }
        _ => Fault::new(Class::Connection, format!("the connection failed {through}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_give_host_port_and_credentials() {
        let p = Proxy::parse(&ProxyUrl::new("http://al%40ce:pw@proxy.corp:3128/")).unwrap();
        assert_eq!((p.host.as_str(), p.port), ("proxy.corp", 3128));
        let expected = base64::engine::general_purpose::STANDARD.encode("al@ce:pw");
        assert_eq!(p.authorization, Some(format!("Basic {expected}")));
        assert_eq!(Proxy::parse(&ProxyUrl::new("http://[::1]:8080")).unwrap().host, "::1");
        assert_eq!(Proxy::parse(&ProxyUrl::new("http://p")).unwrap().port, 1080);
        assert!(Proxy::parse(&ProxyUrl::new("socks5://p:1")).is_err());
        assert!(Proxy::parse(&ProxyUrl::new("http://p:x")).is_err());
    }

    #[test]
    fn targets_are_absolute_without_userinfo_or_fragment() {
        assert_eq!(
            absolute_target("http://u:p@h.example:8080/a/b?c=d#frag"),
            Some(("http://h.example:8080/a/b?c=d".into(), "h.example:8080".into()))
        );
        assert_eq!(absolute_target("http://h"), Some(("http://h/".into(), "h".into())));
        assert_eq!(absolute_target("https://h/x"), None);
        assert_eq!(absolute_target("http://h/a b"), None);
    }

    #[test]
    fn chunked_bodies_decode_and_a_cut_one_is_an_error() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n";
        let mut body = Chunked { inner: &wire[..], left: 0, done: false };
        let mut out = String::new();
        body.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let mut cut = Chunked { inner: &b"5\r\nhel"[..], left: 0, done: false };
        assert!(cut.read_to_string(&mut String::new()).is_err());
        let mut short = Exact { inner: (&b"abc"[..]).take(5), left: 5 };
        assert_eq!(short.read_to_end(&mut Vec::new()).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
