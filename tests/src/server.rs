//! A small HTTP/1.1 server on 127.0.0.1 that misbehaves on request.
//!
//! Each path has a script: a list of [`Reply`]s served in order, the last one repeating.
//! Every request is logged (path, `Range`, time), so tests can assert how many requests
//! a run made and what it asked for. Connections are closed after each response, which
//! keeps the server simple and the request log exact.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a path answers one request. Replies that carry a file honour `Range: bytes=N-`
/// (206 with Content-Range) and send an ETag made from the bytes; an `If-Range` that
/// does not match it gets the whole file, as RFC 9110 says.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with the whole body and its Content-Length (206 and the rest for a range).
    Body(Arc<Vec<u8>>),
    /// Like `Body`, but ranges are ignored: always 200 and the whole file.
    IgnoresRange(Arc<Vec<u8>>),
    /// Ranges honoured, with a weak ETag and a Last-Modified date, as Apache answers for a
    /// file modified within the last second; an `If-Range` (a date, since a weak tag
    /// cannot be sent) is taken as not matching and answered with 200 and the whole file,
    /// as RFC 9110 allows.
    WeakTag(Arc<Vec<u8>>),
    /// Like `Slow` (with a zero pause, like `Body`), but the file's only validator is a
    /// Last-Modified date, as Apache sends with `FileETag None`: an `If-Range` must carry
    /// that date whole to be honoured.
    Dated { body: Arc<Vec<u8>>, chunk: usize, pause: Duration },
    /// Like `GarbledRanges`, but the garbled closed ranges say `Content-Encoding: gzip`:
    /// a middlebox that compresses pieces of a split download.
    EncodedRanges(Arc<Vec<u8>>),
    /// Like `Body`, but a closed range starting at byte `at` is answered with `status`: one
    /// piece of a split download that the server cannot serve (an outage there).
    FailsAt { body: Arc<Vec<u8>>, at: usize, status: u16 },
    /// `GarbledRanges` at the pace of `Slow`: a kill can land while its garbled pieces are
    /// on disk.
    SlowGarbled { body: Arc<Vec<u8>>, chunk: usize, pause: Duration },
    /// Like `Body`, but a closed range starting at byte `at` comes in `chunk`-byte steps
    /// with `pause` after each: one steadily slow connection among fast ones.
    SlowAt { body: Arc<Vec<u8>>, at: usize, chunk: usize, pause: Duration },
    /// Answers any range with 206 and a Content-Range that starts at 0.
    WrongRange(Arc<Vec<u8>>),
    /// Like `Body`, but a closed range (`bytes=N-M`) comes with one byte flipped: a
    /// server or middlebox that garbles pieces of a split download.
    GarbledRanges(Arc<Vec<u8>>),
    /// 200 with no Content-Length: the body ends when the connection closes.
    Unsized(Arc<Vec<u8>>),
    /// 200 with these bytes, served as `text/html`.
    Html(String),
    /// An HTML page with extra headers (a `Set-Cookie`, say).
    HtmlWith { page: String, headers: Vec<(String, String)> },
    /// Any status with extra headers and a small body.
    Status { code: u16, headers: Vec<(String, String)>, body: String },
    /// 302 to another location.
    Redirect(String),
    /// Promises the whole body, sends `after` bytes, then closes cleanly.
    Truncate { body: Arc<Vec<u8>>, after: usize },
    /// Promises the whole body, sends `after` bytes, then resets the connection.
    Reset { body: Arc<Vec<u8>>, after: usize },
    /// Promises the whole body, sends `after` bytes, then goes silent until the client
    /// hangs up (or the server is dropped).
    Stall { body: Arc<Vec<u8>>, after: usize },
    /// The whole body (range-aware), in `chunk`-byte steps with a pause after each: a
    /// slow link, so a test can interrupt a transfer anywhere.
    Slow { body: Arc<Vec<u8>>, chunk: usize, pause: Duration },
    /// Like `Slow`, but the pace is shared by every connection this reply answers: a link
    /// capped in total, where more connections only split the same rate.
    Shared { body: Arc<Vec<u8>>, chunk: usize, pause: Duration, pacer: Arc<Mutex<Instant>> },
    /// These exact bytes, head and all, then close: for hostile or broken answers.
    Raw(Vec<u8>),
    /// A file on disk (range-aware), copied by the kernel (sendfile) so the server is
    /// never the bottleneck; with `pace`, in 1 MiB steps with that pause after each, so
    /// a kill can land anywhere. For the benchmark's big files.
    File { path: std::path::PathBuf, pace: Option<Duration> },
}

impl Reply {
    pub fn status(code: u16) -> Reply {
        Reply::Status { code, headers: Vec::new(), body: format!("status {code}\n") }
    }

    pub fn status_with(code: u16, header: &str, value: &str) -> Reply {
        Reply::Status {
            code,
            headers: vec![(header.to_owned(), value.to_owned())],
            body: format!("status {code}\n"),
        }
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub cookie: Option<String>,
    pub user_agent: Option<String>,
    pub range: Option<String>,
    pub if_range: Option<String>,
    pub at: Instant,
    /// Body bytes sent in answer (known once the answer is done).
    pub body_bytes: u64,
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Vec<Reply>>,
    served: HashMap<String, usize>,
    log: Vec<Request>,
    latency: Duration,
    active: usize,
    most_active: usize,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    gate: Arc<Gate>,
}

/// Holds answers back until a test opens it: an explicit signal instead of a sleep.
#[derive(Default)]
struct Gate {
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self, stop: &AtomicBool) {
        let mut closed = self.closed.lock().unwrap();
        while *closed && !stop.load(Ordering::SeqCst) {
            closed = self.opened.wait_timeout(closed, Duration::from_millis(50)).unwrap().0;
        }
    }
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(Gate::default());
        let (s, st, g) = (state.clone(), stop.clone(), gate.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (s, st, g) = (s.clone(), st.clone(), g.clone());
                thread::spawn(move || serve(stream, &s, &st, &g));
            }
        });
        Server { addr, state, stop, gate }
    }

    /// From now on every answer waits (after its request is logged) until [`Server::open`].
    pub fn close_gate(&self) {
        *self.gate.closed.lock().unwrap() = true;
    }

    /// Lets every held answer go, and all later ones.
    pub fn open(&self) {
        *self.gate.closed.lock().unwrap() = false;
        self.gate.opened.notify_all();
    }

    /// Sets what `path` answers, in order; the last reply repeats.
    pub fn script(&self, path: &str, replies: Vec<Reply>) {
        assert!(!replies.is_empty());
        let mut state = self.state.lock().unwrap();
        state.scripts.insert(path.to_owned(), replies);
        state.served.remove(path);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The same server under another host name (a different host to a client).
    pub fn url_as_localhost(&self, path: &str) -> String {
        format!("http://localhost:{}{path}", self.addr.port())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// GET requests only (a HEAD asks, a GET downloads).
    pub fn gets(&self) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.method == "GET").collect()
    }

    /// Body bytes sent for `path`, over all requests.
    pub fn bytes_sent(&self, path: &str) -> u64 {
        self.requests().iter().filter(|r| r.path == path).map(|r| r.body_bytes).sum()
    }

    /// Waits this long before answering each request (a slow or distant server).
    pub fn set_latency(&self, latency: Duration) {
        self.state.lock().unwrap().latency = latency;
    }

    /// Requests being answered right now.
    pub fn active(&self) -> usize {
        self.state.lock().unwrap().active
    }

    /// The most requests that were being answered at the same moment.
    pub fn most_concurrent(&self) -> usize {
        self.state.lock().unwrap().most_active
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.open();
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool, gate: &Gate) {
    let Some(mut request) = read_request(&stream) else { return };
    if request.method == "CONNECT" {
        // Acting as a forward proxy: log the tunnel, then answer what comes through it
        // as if this were the origin.
        state.lock().unwrap().log.push(request);
        if stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").is_err() {
            return;
        }
        let Some(inner) = read_request(&stream) else { return };
        request = inner;
    }
    let (reply, index, latency) = {
        let mut state = state.lock().unwrap();
        state.active += 1;
        state.most_active = state.most_active.max(state.active);
        let path = request.path.clone();
        state.log.push(request.clone());
        let n = *state.served.get(&path).unwrap_or(&0);
        state.served.insert(path.clone(), n + 1);
        // A path scripted without a query answers every query (a presigned URL's).
        let bare = path.split('?').next().unwrap_or(&path);
        let reply = match state.scripts.get(&path).or_else(|| state.scripts.get(bare)) {
            Some(replies) => replies[n.min(replies.len() - 1)].clone(),
            None => Reply::status(404),
        };
        (reply, state.log.len() - 1, state.latency)
    };
    gate.wait(stop);
    if !latency.is_zero() {
        thread::sleep(latency);
    }
    // A HEAD gets the head a GET would get, and no body (RFC 9110).
    let head_only = request.method == "HEAD";
    let mut counter = Counting { inner: &mut stream, body: 0, head_only };
    let _ = answer(&mut counter, &request, reply, stop);
    let sent = counter.body;
    let mut state = state.lock().unwrap();
    state.active -= 1;
    state.log[index].body_bytes = sent;
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut request = Request {
        method,
        path,
        authorization: None,
        cookie: None,
        user_agent: None,
        range: None,
        if_range: None,
        at: Instant::now(),
        body_bytes: 0,
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        let Some((name, value)) = header.split_once(':') else { continue };
        let value = Some(value.trim().to_owned());
        match name.to_ascii_lowercase().as_str() {
            "range" => request.range = value,
            "if-range" => request.if_range = value,
            "authorization" => request.authorization = value,
            "cookie" => request.cookie = value,
            "user-agent" => request.user_agent = value,
            _ => {}
        }
    }
    Some(request)
}

/// Counts the body bytes written after the head, for the request log.
struct Counting<'a> {
    inner: &'a mut TcpStream,
    body: u64,
    /// The answer is to a HEAD: heads only.
    head_only: bool,
}

impl Counting<'_> {
    fn head(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(bytes)
    }

    fn body(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.head_only {
            return Ok(());
        }
        self.inner.write_all(bytes)?;
        self.body += bytes.len() as u64;
        Ok(())
    }
}

/// The ETag a file's bytes get: a quoted prefix of the sha256 of their length, first and
/// last 64 KiB. Cheap, since every ranged request of a split download asks for it, and
/// different for any two payloads the tests use.
pub fn etag_of(bytes: &[u8]) -> String {
    let edge = bytes.len().min(64 << 10);
    let mut sample = (bytes.len() as u64).to_le_bytes().to_vec();
    sample.extend_from_slice(&bytes[..edge]);
    sample.extend_from_slice(&bytes[bytes.len() - edge..]);
    format!("\"{}\"", &crate::sha256_hex(&sample)[..16])
}

/// The date every `Dated` reply gives as its Last-Modified.
pub const DATED: &str = "Tue, 01 Dec 2026 13:00:00 GMT";

/// The requested range, `[start, end)`, whatever `If-Range` says (the caller judges it).
fn range_of_any(request: &Request, body: &[u8]) -> Option<(usize, usize)> {
    let (first, last) = request.range.as_deref()?.strip_prefix("bytes=")?.split_once('-')?;
    let start: usize = first.parse().ok()?;
    let end = if last.is_empty() {
        body.len()
    } else {
        last.parse::<usize>().ok()?.saturating_add(1).min(body.len())
    };
    Some((start, end.max(start)))
}

/// The range to send, `[start, end)`, when the request has a usable one: `bytes=N-` or
/// `bytes=N-M` (M inclusive, as RFC 9110 says).
fn range_of(request: &Request, body: &[u8]) -> Option<(usize, usize)> {
    let stale = request.if_range.as_ref().is_some_and(|if_range| *if_range != etag_of(body));
    if stale { None } else { range_of_any(request, body) }
}

fn head(code: u16, headers: &[(&str, String)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {code} {}\r\nConnection: close\r\n", reason(code));
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        302 => "Found",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Sends the head of a file reply (200, or 206 for a range) and returns the part of the
/// body to send, `[start, end)`, or `None` after answering 416 for a range past the end.
fn file_head(
    out: &mut Counting<'_>,
    request: &Request,
    body: &[u8],
) -> std::io::Result<Option<(usize, usize)>> {
    let etag = etag_of(body);
    let octets = "application/octet-stream".to_owned();
    match range_of(request, body) {
        Some((start, _)) if start >= body.len() => {
            let range = format!("bytes */{}", body.len());
            out.head(&head(416, &[("Content-Range", range), ("Content-Length", "0".into())]))?;
            Ok(None)
        }
        Some((start, end)) => {
            let range = format!("bytes {start}-{}/{}", end - 1, body.len());
            let len = (end - start).to_string();
            out.head(&head(
                206,
                &[
                    ("Content-Type", octets),
                    ("Content-Length", len),
                    ("Content-Range", range),
                    ("ETag", etag),
                ],
            ))?;
            Ok(Some((start, end)))
        }
        None => {
            let len = body.len().to_string();
            out.head(&head(200, &[("Content-Type", octets), ("Content-Length", len), ("ETag", etag)]))?;
            Ok(Some((0, body.len())))
        }
    }
}

fn answer(out: &mut Counting<'_>, request: &Request, reply: Reply, stop: &AtomicBool) -> std::io::Result<()> {
    match reply {
        Reply::Body(body) => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                out.body(&body[start..end])?;
            }
        }
        Reply::SlowGarbled { body, chunk, pause } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                let mut slice = body[start..end].to_vec();
                let closed = request.range.as_deref().is_some_and(|r| !r.ends_with('-'));
                if closed && let Some(byte) = slice.first_mut() {
                    *byte ^= 0xff;
                }
                for piece in slice.chunks(chunk.max(1)) {
                    out.body(piece)?;
                    out.inner.flush()?;
                    thread::sleep(pause);
                }
            }
        }
        Reply::GarbledRanges(body) => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                let mut slice = body[start..end].to_vec();
                let closed = request.range.as_deref().is_some_and(|r| !r.ends_with('-'));
                if closed && let Some(byte) = slice.first_mut() {
                    *byte ^= 0xff;
                }
                out.body(&slice)?;
            }
        }
        Reply::Dated { body, chunk, pause } => {
            let date = ("Last-Modified", DATED.to_owned());
            let matches = request.if_range.as_deref().is_none_or(|v| v == DATED);
            let range = range_of_any(request, &body).filter(|_| matches);
            let (start, end) = match range {
                Some((start, end)) if start < body.len() => {
                    let content_range = format!("bytes {start}-{}/{}", end - 1, body.len());
                    let len = (end - start).to_string();
                    out.head(&head(206, &[("Content-Length", len), ("Content-Range", content_range), date]))?;
                    (start, end)
                }
                _ => {
                    out.head(&head(200, &[("Content-Length", body.len().to_string()), date]))?;
                    (0, body.len())
                }
            };
            for piece in body[start..end].chunks(chunk.max(1)) {
                out.body(piece)?;
                out.inner.flush()?;
                if !pause.is_zero() {
                    thread::sleep(pause);
                }
            }
        }
        Reply::SlowAt { body, at, chunk, pause } => {
            let closed = request.range.as_deref().is_some_and(|r| !r.ends_with('-'));
            let slow = closed && range_of(request, &body).is_some_and(|(start, _)| start == at);
            if let Some((start, end)) = file_head(out, request, &body)? {
                if slow {
                    for piece in body[start..end].chunks(chunk.max(1)) {
                        out.body(piece)?;
                        out.inner.flush()?;
                        thread::sleep(pause);
                    }
                } else {
                    out.body(&body[start..end])?;
                }
            }
        }
        Reply::FailsAt { body, at, status } => {
            let closed = request.range.as_deref().is_some_and(|r| !r.ends_with('-'));
            if closed && range_of(request, &body).is_some_and(|(start, _)| start == at) {
                out.head(&head(status, &[("Content-Length", "0".into())]))?;
            } else if let Some((start, end)) = file_head(out, request, &body)? {
                out.body(&body[start..end])?;
            }
        }
        Reply::EncodedRanges(body) => {
            let closed = request.range.as_deref().is_some_and(|r| !r.ends_with('-'));
            match range_of(request, &body).filter(|(start, _)| closed && *start < body.len()) {
                Some((start, end)) => {
                    let content_range = format!("bytes {start}-{}/{}", end - 1, body.len());
                    let headers = [
                        ("Content-Length", (end - start).to_string()),
                        ("Content-Range", content_range),
                        ("Content-Encoding", "gzip".to_owned()),
                        ("ETag", etag_of(&body)),
                    ];
                    out.head(&head(206, &headers))?;
                    let mut slice = body[start..end].to_vec();
                    slice[0] ^= 0xff;
                    out.body(&slice)?;
                }
                None => {
                    if let Some((start, end)) = file_head(out, request, &body)? {
                        out.body(&body[start..end])?;
                    }
                }
            }
        }
        Reply::WeakTag(body) => {
            let tag = ("ETag", format!("W/{}", etag_of(&body)));
            let date = ("Last-Modified", "Tue, 01 Dec 2026 13:00:00 GMT".to_owned());
            let range = range_of(request, &body).filter(|_| request.if_range.is_none());
            match range {
                Some((start, end)) if start < body.len() => {
                    let content_range = format!("bytes {start}-{}/{}", end - 1, body.len());
                    let len = (end - start).to_string();
                    out.head(&head(
                        206,
                        &[("Content-Length", len), ("Content-Range", content_range), tag, date],
                    ))?;
                    out.body(&body[start..end])?;
                }
                _ => {
                    out.head(&head(200, &[("Content-Length", body.len().to_string()), tag, date]))?;
                    out.body(&body)?;
                }
            }
        }
        Reply::IgnoresRange(body) => {
            let len = body.len().to_string();
            out.head(&head(200, &[("Content-Length", len)]))?;
            out.body(&body)?;
        }
        Reply::WrongRange(body) => {
            let range = format!("bytes 0-{}/{}", body.len() - 1, body.len());
            out.head(&head(206, &[("Content-Length", body.len().to_string()), ("Content-Range", range)]))?;
            out.body(&body)?;
        }
        Reply::Unsized(body) => {
            out.head(&head(200, &[("Content-Type", "application/octet-stream".into())]))?;
            out.body(&body)?;
        }
        Reply::HtmlWith { page, headers } => {
            let mut all: Vec<(&str, String)> = headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            all.push(("Content-Type", "text/html; charset=utf-8".into()));
            all.push(("Content-Length", page.len().to_string()));
            out.head(&head(200, &all))?;
            out.body(page.as_bytes())?;
        }
        Reply::Html(page) => {
            let ct = "text/html; charset=utf-8".to_owned();
            out.head(&head(200, &[("Content-Type", ct), ("Content-Length", page.len().to_string())]))?;
            out.body(page.as_bytes())?;
        }
        Reply::Status { code, headers, body } => {
            let mut all: Vec<(&str, String)> = headers.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
            all.push(("Content-Length", body.len().to_string()));
            out.head(&head(code, &all))?;
            out.body(body.as_bytes())?;
        }
        Reply::Redirect(location) => {
            out.head(&head(302, &[("Location", location), ("Content-Length", "0".into())]))?;
        }
        Reply::Truncate { body, after } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                out.body(&body[start..(start + after).min(end)])?;
                out.inner.flush()?;
                out.inner.shutdown(Shutdown::Both)?;
            }
        }
        Reply::Reset { body, after } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                out.body(&body[start..(start + after).min(end)])?;
                out.inner.flush()?;
                reset_on_close(out.inner);
            }
        }
        Reply::Slow { body, chunk, pause } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                for piece in body[start..end].chunks(chunk.max(1)) {
                    out.body(piece)?;
                    out.inner.flush()?;
                    thread::sleep(pause);
                }
            }
        }
        Reply::Shared { body, chunk, pause, pacer } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                for piece in body[start..end].chunks(chunk.max(1)) {
                    // Each chunk takes the next free slot of the one shared clock.
                    let slot = {
                        let mut next = pacer.lock().unwrap();
                        let slot = (*next).max(Instant::now());
                        *next = slot + pause;
                        slot
                    };
                    thread::sleep(slot.saturating_duration_since(Instant::now()));
                    out.body(piece)?;
                    out.inner.flush()?;
                }
            }
        }
        Reply::Raw(bytes) => {
            out.inner.write_all(&bytes)?;
        }
        Reply::File { path, pace } => send_file(out, request, &path, pace)?,
        Reply::Stall { body, after } => {
            if let Some((start, end)) = file_head(out, request, &body)? {
                out.body(&body[start..(start + after).min(end)])?;
                out.inner.flush()?;
                hold_until_client_leaves(out.inner, stop);
            }
        }
    }
    out.inner.flush()
}

/// Answers with a file from disk: 200, or 206 from a `Range: bytes=N-` start.
fn send_file(
    out: &mut Counting<'_>,
    request: &Request,
    path: &std::path::Path,
    pace: Option<Duration>,
) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut file) = std::fs::File::open(path) else {
        return out.head(&head(404, &[("Content-Length", "0".into())]));
    };
    let size = file.metadata()?.len();
    let asked = request.range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.split_once('-'));
    let from: u64 = asked.and_then(|(a, _)| a.parse().ok()).unwrap_or(0).min(size);
    let to: u64 = asked
        .and_then(|(_, b)| b.parse::<u64>().ok())
        .map_or(size, |b| b.saturating_add(1).min(size))
        .max(from);
    let len = (to - from).to_string();
    if asked.is_some() && from < size {
        let range = format!("bytes {from}-{}/{size}", to.saturating_sub(1));
        out.head(&head(
            206,
            &[("Content-Length", len), ("Content-Range", range), ("ETag", format!("\"{size}\""))],
        ))?;
    } else {
        out.head(&head(200, &[("Content-Length", len), ("ETag", format!("\"{size}\""))]))?;
    }
    file.seek(SeekFrom::Start(from))?;
    let mut file = file.take(to - from);
    let Some(pause) = pace else {
        // std::io::copy from a file to a socket is sendfile(2) on Linux: the kernel copies.
        out.body += std::io::copy(&mut file, out.inner)?;
        return Ok(());
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        out.body(&buf[..n])?;
        thread::sleep(pause);
    }
}

/// A zero linger time turns the close into a TCP reset (RST) instead of a clean FIN.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor is open for the duration of the call and `linger` is a
    // valid, correctly sized value for SO_LINGER.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&raw const linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Keeps a connection open and silent until the client closes it; bounded so a broken
/// test cannot leave the thread behind forever.
fn hold_until_client_leaves(stream: &mut TcpStream, stop: &AtomicBool) {
    use std::io::Read;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut buf = [0u8; 64];
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => return,
        }
    }
}
