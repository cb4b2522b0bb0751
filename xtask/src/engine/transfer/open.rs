//! Opening a source for reading from byte `from`: a local file, or an http(s) or S3
//! answer whose headers are judged before any body byte is taken. Google-Drive-style
//! interstitial pages are followed, a Hugging Face `resolve` URL is asked with HEAD
//! first (a stale pin shows in its headers), an encoded body is refused, and a range the
//! server did not honour restarts the request from byte 0.

use std::io::{self, Read, Seek, SeekFrom};
use std::time::SystemTime;

use camino::Utf8Path;
use ureq::http::HeaderMap;

use crate::engine::check::{self, page_fault};
use crate::engine::retry::{parse_rate_limit, parse_retry_after};
use crate::engine::transfer::job::Expect;
use crate::error::{Class, Fault};
use crate::net::client::{Answer, Method, Net, check_follow, follow_up};
use crate::net::faults::{parse_content_range, status_fault};
use crate::net::headers::{header, if_range_validator, is_html_type, refused_encoding};
use crate::net::hosts::{self, PageVerdict};
use crate::source::Source;
use crate::store::fs::open_regular;

/// Interstitial pages (Drive's virus-scan warning) followed at most, per attempt.
const MAX_INTERSTITIALS: usize = 3;
/// An HTML answer is read up to this much to find out what it is.
const PAGE_LIMIT: usize = 1 << 20;

/// An open body, where it starts in the file, and what its headers promised.
pub(super) struct Opened {
    pub body: Box<dyn Read + Send>,
    pub start: u64,
    /// The HTTP status it came with (none for a local file).
    pub status: Option<u16>,
    /// The whole file's size, from a 206's Content-Range.
    pub total: Option<u64>,
    pub content_type: Option<String>,
    /// Bytes this body says it holds (from `start`).
    pub declared: Option<u64>,
    /// What to send as `If-Range` when resuming ([`if_range_validator`]).
    pub validator: Option<String>,
}

/// What one request for a range turned into.
enum Asked {
    Opened(Opened),
    /// The range was not honoured as asked (another range, or past the end): the
    /// partial is stale, ask for the whole file.
    StartOver,
}

/// Opens `source` from byte `from` on. The answer says where its body really starts: at
/// `from`, or at 0 when the server ignored or refused the range. With `probe`, a fresh
/// start asks for `bytes=0-`: a 206 tells that ranges work and gives the total size, and
/// its body is the file from the start all the same.
pub(super) fn open(
    net: &Net,
    expect: Expect<'_>,
    source: &Source,
    from: u64,
    validator: Option<&str>,
    probe: bool,
) -> Result<Opened, Fault> {
    if let Some(path) = source.file_path() {
        return open_file(&path, from);
    }
    let drive = hosts::normalize_drive_url(source.expose()).and_then(|u| Source::parse(&u).ok());
    let url = drive.as_ref().unwrap_or(source);
    match ask(net, expect, url, from, validator, probe)? {
        Asked::Opened(opened) => Ok(opened),
        Asked::StartOver => match ask(net, expect, url, 0, None, false)? {
            Asked::Opened(opened) => Ok(opened),
            Asked::StartOver => {
                Err(Fault::new(Class::BadResponse, "the server answered a whole-file request with a range"))
            }
        },
    }
}

/// One request (and the interstitial pages in front of the file), its answer judged.
fn ask(
    net: &Net,
    expect: Expect<'_>,
    url: &Source,
    from: u64,
    validator: Option<&str>,
    probe: bool,
) -> Result<Asked, Fault> {
    let check = |headers: &HeaderMap| match expect.pinned() {
        Some((size, sha256)) => hosts::check_linked(headers, size, sha256),
        None => Ok(()),
    };
    if from == 0 && hosts::is_resolve_url(url.expose()) {
        // Ask before downloading: a stale pin shows in the headers of the first hop.
        if let Err(fault) = net.request(Method::Head, url, &[], &[], &check)
            && fault.class == Class::StalePin
        {
            return Err(fault);
        }
    }
    let mut headers = Vec::new();
    if from > 0 || probe {
        headers.push(("Range", format!("bytes={from}-")));
        if let Some(validator) = validator {
            headers.push(("If-Range", validator.to_owned()));
        }
    }
    let answer = net.request(Method::Get, url, &headers, &[], &check)?;
    let answer = match through_interstitials(net, answer, &check)? {
        Through::File(answer) => answer,
        Through::Labelled(opened) => return Ok(Asked::Opened(opened)),
    };
    let response = answer.response;
    let status = response.status().as_u16();
    if let Some(encoding) = refused_encoding(response.headers()).filter(|_| (200..300).contains(&status)) {
        return Err(Fault::new(
            Class::Encoded,
            format!(
                "the server sent the body with Content-Encoding: {encoding}, though the tool asked for identity"
            ),
        ));
    }
    let mut total = None;
    let start = match status {
        200 => 0,
        206 if from > 0 || probe => {
            let range = header(response.headers(), "content-range");
            match range.as_deref().and_then(parse_content_range) {
                Some((first, whole)) if first == from => {
                    total = whole;
                    from
                }
                // A range we did not ask for, or none we can read: start over.
                _ => return Ok(Asked::StartOver),
            }
        }
        // The range is past the end: the partial is stale.
        416 if from > 0 => return Ok(Asked::StartOver),
        _ => return Err(refusal(status, response.headers())),
    };
    let headers = response.headers();
    let content_type = header(headers, "content-type");
    let declared = header(headers, "content-length").and_then(|v| v.trim().parse().ok());
    let validator = if_range_validator(headers);
    let body = Box::new(response.into_body().into_reader());
    Ok(Asked::Opened(Opened { body, start, status: Some(status), total, content_type, declared, validator }))
}

/// The fault of a status that does not bring the file, with how long it asks us to wait.
fn refusal(status: u16, headers: &HeaderMap) -> Fault {
    let mut fault = status_fault(status);
    // Retry-After first; else the IETF RateLimit header (Hugging Face sends it).
    fault.retry_after = header(headers, "retry-after")
        .and_then(|v| parse_retry_after(&v, SystemTime::now()))
        .or_else(|| header(headers, "ratelimit").and_then(|v| parse_rate_limit(&v)));
    fault
}

/// Past the pages in front of a file: the answer that brings it, or a body labelled
/// HTML that turned out not to be a page (handed on as read so far, then the rest).
enum Through {
    File(Answer),
    Labelled(Opened),
}

fn through_interstitials(
    net: &Net,
    mut answer: Answer,
    check: &dyn Fn(&HeaderMap) -> Result<(), Fault>,
) -> Result<Through, Fault> {
    for _ in 0..MAX_INTERSTITIALS {
        let status = answer.response.status().as_u16();
        let content_type = header(answer.response.headers(), "content-type");
        if status != 200 || !is_html_type(content_type.as_deref()) {
            break;
        }
        let Answer { response, url: page_url, cookies } = answer;
        let validator = if_range_validator(response.headers());
        let mut body = response.into_body().into_reader();
        let mut page = Vec::new();
        let read = (&mut body).take(PAGE_LIMIT as u64).read_to_end(&mut page);
        if check::sniff(&page).is_none() || read.is_err() && page.is_empty() {
            let body: Box<dyn Read + Send> = Box::new(io::Cursor::new(page).chain(body));
            let opened = Opened {
                body,
                start: 0,
                status: Some(status),
                total: None,
                content_type,
                declared: None,
                validator,
            };
            return Ok(Through::Labelled(opened));
        }
        let text = String::from_utf8_lossy(&page);
        match hosts::judge_page(&text, page_url.expose()) {
            PageVerdict::FollowUp(next) => {
                let next = follow_up(&page_url, &next)?;
                check_follow(&page_url, &next)?;
                let how = format!("reached by a download form on {}", page_url.host().unwrap_or_default());
                answer = net.request(Method::Get, &next, &[], &cookies, check).map_err(|fault| {
                    match fault.host {
                        // Booked on the form's target, and said how it was reached.
                        Some(host) => Fault { host: None, ..fault }.at(host, Some(&how)),
                        None => fault,
                    }
                })?;
            }
            PageVerdict::Refused(fault) => return Err(fault),
            PageVerdict::Unknown => return Err(page_fault(&page, "instead of the file")),
        }
    }
    Ok(Through::File(answer))
}

fn open_file(path: &Utf8Path, from: u64) -> Result<Opened, Fault> {
    let mut file = open_regular(path).map_err(|e| {
        let class = match e.kind() {
            io::ErrorKind::NotFound => Class::NotFound,
            io::ErrorKind::PermissionDenied => Class::Forbidden,
            io::ErrorKind::IsADirectory | io::ErrorKind::InvalidInput => Class::BadUrl,
            _ => Class::LocalIo,
        };
        Fault::new(class, format!("cannot open {path}: {e}"))
    })?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if from > 0 && from <= len && file.seek(SeekFrom::Start(from)).is_ok() { from } else { 0 };
    Ok(Opened {
        body: Box::new(file),
        start,
        status: None,
        total: None,
        content_type: None,
        declared: Some(len - start),
        validator: None,
    })
}
