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
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How a path answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 with the whole body and its Content-Length.
    Body(Arc<Vec<u8>>),
    /// 200 with no Content-Length: the body ends when the connection closes.
    Unsized(Arc<Vec<u8>>),
    /// 200 with these bytes, served as `text/html`.
    Html(String),
    /// Any status with extra headers and a small body.
    Status {
        code: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// 302 to another location.
    Redirect(String),
    /// Promises the whole body, sends `after` bytes, then closes cleanly.
    Truncate { body: Arc<Vec<u8>>, after: usize },
    /// Promises the whole body, sends `after` bytes, then resets the connection.
    Reset { body: Arc<Vec<u8>>, after: usize },
    /// Promises the whole body, sends `after` bytes, then goes silent until the client
    /// hangs up (or the server is dropped).
    Stall { body: Arc<Vec<u8>>, after: usize },
}

impl Reply {
    pub fn status(code: u16) -> Reply {
        Reply::Status {
            code,
            headers: Vec::new(),
            body: format!("status {code}\n"),
        }
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
    pub path: String,
    pub range: Option<String>,
    pub at: Instant,
}

#[derive(Default)]
struct State {
    scripts: HashMap<String, Vec<Reply>>,
    served: HashMap<String, usize>,
    log: Vec<Request>,
}

pub struct Server {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (s, st) = (s.clone(), st.clone());
                thread::spawn(move || serve(stream, &s, &st));
            }
        });
        Server { addr, state, stop }
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let Some((path, range)) = read_request(&stream) else {
        return;
    };
    let reply = {
        let mut state = state.lock().unwrap();
        state.log.push(Request {
            path: path.clone(),
            range,
            at: Instant::now(),
        });
        let n = *state.served.get(&path).unwrap_or(&0);
        state.served.insert(path.clone(), n + 1);
        match state.scripts.get(&path) {
            Some(replies) => replies[n.min(replies.len() - 1)].clone(),
            None => Reply::status(404),
        }
    };
    let _ = answer(&mut stream, reply, stop);
}

fn read_request(stream: &TcpStream) -> Option<(String, Option<String>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_owned();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("range")
        {
            range = Some(value.trim().to_owned());
        }
    }
    Some((path, range))
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

fn answer(stream: &mut TcpStream, reply: Reply, stop: &AtomicBool) -> std::io::Result<()> {
    let octets = "application/octet-stream".to_owned();
    match reply {
        Reply::Body(body) => {
            let len = body.len().to_string();
            stream.write_all(&head(
                200,
                &[("Content-Type", octets), ("Content-Length", len)],
            ))?;
            stream.write_all(&body)?;
        }
        Reply::Unsized(body) => {
            stream.write_all(&head(200, &[("Content-Type", octets)]))?;
            stream.write_all(&body)?;
        }
        Reply::Html(page) => {
            let len = page.len().to_string();
            let ct = "text/html; charset=utf-8".to_owned();
            stream.write_all(&head(200, &[("Content-Type", ct), ("Content-Length", len)]))?;
            stream.write_all(page.as_bytes())?;
        }
        Reply::Status {
            code,
            headers,
            body,
        } => {
            let mut all: Vec<(&str, String)> = headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.clone()))
                .collect();
            all.push(("Content-Length", body.len().to_string()));
            stream.write_all(&head(code, &all))?;
            stream.write_all(body.as_bytes())?;
        }
        Reply::Redirect(location) => {
            stream.write_all(&head(
                302,
                &[("Location", location), ("Content-Length", "0".into())],
            ))?;
        }
        Reply::Truncate { body, after } => {
            let len = body.len().to_string();
            stream.write_all(&head(
                200,
                &[("Content-Type", octets), ("Content-Length", len)],
            ))?;
            stream.write_all(&body[..after])?;
            stream.flush()?;
            stream.shutdown(Shutdown::Both)?;
        }
        Reply::Reset { body, after } => {
            let len = body.len().to_string();
            stream.write_all(&head(
                200,
                &[("Content-Type", octets), ("Content-Length", len)],
            ))?;
            stream.write_all(&body[..after])?;
            stream.flush()?;
            reset_on_close(stream);
        }
        Reply::Stall { body, after } => {
            let len = body.len().to_string();
            stream.write_all(&head(
                200,
                &[("Content-Type", octets), ("Content-Length", len)],
            ))?;
            stream.write_all(&body[..after])?;
            stream.flush()?;
            hold_until_client_leaves(stream, stop);
        }
    }
    stream.flush()
}

/// A zero linger time turns the close into a TCP reset (RST) instead of a clean FIN.
fn reset_on_close(stream: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
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
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}
