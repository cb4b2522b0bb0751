//! What `models doctor` asks of the network and the machine, without downloading a file:
//! whether each URL still serves its pin, which proxy each host goes through, and which
//! CA certificates are trusted.
//!
//! A URL is asked with HEAD (redirects followed, `X-Linked-*` checked on every hop). A
//! server that refuses HEAD (405, 403, 501, …) is asked for one byte, `Range: bytes=0-0`,
//! whose `Content-Range` total is the file's size. Either way no body is read.

use std::time::Duration;

use crate::error::{Class, Fault};
use crate::net::auth::Credentials;
use crate::net::client::{Method, Net};
use crate::net::faults::parse_content_range;
use crate::net::headers::is_html_type;
use crate::net::proxy::ProxyEnv;
use crate::net::{hosts, trust};
use crate::source::{Kind, Source};

/// What a URL turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It answers with the pinned size (and any `X-Linked-*` agrees).
    Serves,
    /// It answers, but without saying the size (a page in front, chunked): alive.
    Unsized,
    /// It answers with another size, or its `X-Linked-*` headers contradict the pin.
    Stale(Fault),
    /// It answers, but not with the file: 404, 410, 403, a page.
    Dead(Fault),
    /// It could not be asked from here: no name resolution, a refused or timed-out
    /// connection, a proxy in the way. Said as such: offline, every URL is not `dead`.
    Unreachable(Fault),
}

impl Verdict {
    /// `serves`, `alive`, `stale`, `dead` or `unreachable`.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Verdict::Serves => "serves",
            Verdict::Unsized => "alive",
            Verdict::Stale(_) => "stale",
            Verdict::Dead(_) => "dead",
            Verdict::Unreachable(_) => "unreachable",
        }
    }

    pub(crate) fn fault(&self) -> Option<&Fault> {
        match self {
            Verdict::Stale(fault) | Verdict::Dead(fault) | Verdict::Unreachable(fault) => Some(fault),
            Verdict::Serves | Verdict::Unsized => None,
        }
    }
}

/// One probed URL: what it said and how large it says the file is.
#[derive(Clone, Debug)]
pub(crate) struct Probed {
    pub verdict: Verdict,
    pub status: Option<u16>,
    pub size: Option<u64>,
}

/// Probes URLs with the same client rules as a fetch (proxies, certificates, tokens).
pub(crate) struct Prober {
    net: Net,
}

impl Prober {
    pub(crate) fn new(timeout: Duration, parallel: usize) -> Prober {
        Prober { net: Net::new(timeout, ProxyEnv::from_process(), Credentials::from_environment(), parallel) }
    }

    /// Whether `url` serves `size` bytes with this `sha256`, asked without a download.
    pub(crate) fn probe(&self, url: &Source, size: u64, sha256: &str) -> Probed {
        if let Some(path) = url.file_path() {
            return probe_file(&path, size);
        }
        let drive = hosts::normalize_drive_url(url.expose()).and_then(|u| Source::parse(&u).ok());
        let url = drive.as_ref().unwrap_or(url);
        let check = |headers: &ureq::http::HeaderMap| hosts::check_linked(headers, size, sha256);
        let head = self.net.request(Method::Head, url, &[], &[], &check);
        let head_status = match &head {
            Ok(answer) => Some(answer.response.status().as_u16()),
            Err(fault) => fault.status,
        };
        let answer = match head {
            Ok(answer) if answer.response.status().is_success() => answer,
            // No answer at all (DNS, refused, TLS), or a stale pin in the headers.
            Err(fault) if fault.status.is_none() || fault.class == Class::StalePin => {
                return dead_or_stale(fault);
            }
            _ if matches!(head_status, Some(404 | 410)) => {
                let status = head_status.unwrap_or(404);
                return Probed {
                    verdict: Verdict::Dead(crate::net::faults::status_fault(status)),
                    status: Some(status),
                    size: None,
                };
            }
            // Some servers refuse HEAD (405, 403, 501) but serve GET: ask for one byte.
            _ => {
                let range = [("Range", "bytes=0-0".to_owned())];
                match self.net.request(Method::Get, url, &range, &[], &check) {
                    Ok(answer) => answer,
                    Err(fault) => return dead_or_stale(fault),
                }
            }
        };
        let response = answer.response;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok());
        let said = match status {
            206 => header("content-range").and_then(parse_content_range).and_then(|(_, total)| total),
            200 | 203 => header("content-length").and_then(|v| v.trim().parse().ok()),
            _ => {
                return Probed {
                    verdict: Verdict::Dead(crate::net::faults::status_fault(status)),
                    status: Some(status),
                    size: None,
                };
            }
        };
        let html = is_html_type(header("content-type"));
        // The body is never read: dropping the answer closes its connection.
        drop(response);
        let verdict = match said {
            _ if html => Verdict::Unsized,
            Some(found) if found == size => Verdict::Serves,
            Some(found) => Verdict::Stale(Fault::new(
                Class::StalePin,
                format!("{url} serves {found} bytes; the pin says {size}"),
            )),
            None => Verdict::Unsized,
        };
        Probed { verdict, status: Some(status), size: said }
    }
}

fn dead_or_stale(fault: Fault) -> Probed {
    let status = fault.status;
    let verdict = match fault.class {
        Class::StalePin => Verdict::Stale(fault),
        // No answer came: the URL may be fine, this machine could not ask it. (A name
        // that does not exist, NXDOMAIN, is an answer: that URL is dead.)
        Class::Connection | Class::DnsTemporary | Class::Timeout if status.is_none() => {
            Verdict::Unreachable(fault)
        }
        _ => Verdict::Dead(fault),
    };
    Probed { verdict, status, size: None }
}

fn probe_file(path: &camino::Utf8Path, size: u64) -> Probed {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == size => {
            Probed { verdict: Verdict::Serves, status: None, size: Some(meta.len()) }
        }
        Ok(meta) => Probed {
            verdict: Verdict::Stale(Fault::new(
                Class::SizeMismatch,
                format!("{path} has {} bytes; the pin says {size}", meta.len()),
            )),
            status: None,
            size: Some(meta.len()),
        },
        Err(e) => Probed { verdict: Verdict::Dead(Fault::local(path, &e)), status: None, size: None },
    }
}

/// The proxy each of these URLs' hosts goes through (redacted), or `None` for direct.
pub(crate) fn proxies_for<'u>(urls: impl Iterator<Item = &'u Source>) -> Vec<(String, Option<String>)> {
    let env = ProxyEnv::from_process();
    let mut seen: Vec<(String, Option<String>)> = Vec::new();
    for url in urls.filter(|u| u.kind() == Kind::Http) {
        let (Some(host), Some(bare)) = (url.host(), url.bare_host()) else { continue };
        let name = format!("{}://{host}", url.scheme());
        if seen.iter().any(|(n, _)| *n == name) {
            continue;
        }
        // The proxy rules match the host without its port.
        let proxy = env.proxy_for(url.scheme(), &bare).map(|p| p.to_string());
        seen.push((name, proxy));
    }
    seen
}

/// Where the CA certificates trusted for https come from, each with how many it gave
/// or why it gave none: exactly what an https agent is built with.
pub(crate) fn ca_sources() -> Vec<(String, Result<usize, String>)> {
    let trust = trust::Trust::gather();
    trust.parts.iter().map(|p| (p.what.clone(), p.count().map_err(str::to_owned))).collect()
}
