//! A name server the test controls, for the resolver's faults: it answers every query
//! with SERVFAIL (what a resolver says when it cannot answer for now: `EAI_AGAIN`, a
//! "temporary failure in name resolution") until the test tells it to answer, then
//! resolves every name to 127.0.0.1. The tool under test is pointed at it by running in
//! a private mount namespace whose `/etc/resolv.conf` names it ([`Sandbox::models_resolving_with`]):
//! nothing outside that one process sees it. Needs root (port 53, `unshare --mount`).

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The loopback address it listens on (port 53, as resolv.conf cannot name a port).
const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 77);

pub struct FlakyDns {
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// Queries answered so far.
    pub queries: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl FlakyDns {
    /// Starts failing; `None` (after the skip line) where it cannot run: not root. Under
    /// `CI=true` that fails the test instead.
    pub fn start(test: &str) -> Option<FlakyDns> {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root || crate::daemons::find_program("unshare").is_none() {
            assert!(!ci, "{test} needs root and unshare, and CI=true");
            crate::skipped(test, "needs root and unshare (a private mount namespace)");
            return None;
        }
        let socket = UdpSocket::bind((ADDRESS, 53)).unwrap_or_else(|e| panic!("bind {ADDRESS}:53: {e}"));
        socket.set_read_timeout(Some(Duration::from_millis(50))).expect("a read timeout");
        let (failing, stop, queries) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
        );
        let (f, s, q) = (failing.clone(), stop.clone(), queries.clone());
        let thread = std::thread::spawn(move || serve(&socket, &f, &s, &q));
        Some(FlakyDns { failing, stop, queries, thread: Some(thread) })
    }

    /// From now on, every name resolves to 127.0.0.1.
    pub fn answer(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }

    /// A resolv.conf naming this server alone, asked once per query, written in `dir`.
    pub fn resolv_conf(&self, dir: &Path) -> PathBuf {
        let path = dir.join("resolv.conf");
        std::fs::write(&path, format!("nameserver {ADDRESS}\noptions attempts:1 timeout:2\n"))
            .expect("write resolv.conf");
        path
    }
}

impl Drop for FlakyDns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(socket: &UdpSocket, failing: &AtomicBool, stop: &AtomicBool, queries: &AtomicUsize) {
    let mut buf = [0u8; 512];
    while !stop.load(Ordering::SeqCst) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else { continue };
        if let Some(reply) = reply(&buf[..n], failing.load(Ordering::SeqCst)) {
            queries.fetch_add(1, Ordering::SeqCst);
            let _ = socket.send_to(&reply, from);
        }
    }
}

/// The answer to one query: SERVFAIL while failing; else 127.0.0.1 for an A question
/// and no records (NOERROR) for any other.
fn reply(query: &[u8], failing: bool) -> Option<Vec<u8>> {
    if query.len() < 12 {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut at = 12;
    while *query.get(at)? != 0 {
        at += usize::from(query[at]) + 1;
    }
    let question = query.get(12..at + 5)?;
    let qtype = u16::from_be_bytes([query[at + 1], query[at + 2]]);
    let answers = u16::from(!failing && qtype == 1);
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&query[..2]);
    let rcode = if failing { 2 } else { 0 };
    out.extend_from_slice(&[0x81, 0x80 | rcode, 0, 1]);
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(question);
    if answers == 1 {
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(out)
}
