//! Publishing verified files to an S3 mirror, at `PREFIX/sha256/<hex>`: the layout every
//! `--mirror` reads.
//!
//! An object already there with the file's size is left alone (content-addressed: the
//! name is the hash). A small file goes up in one PUT. A large one goes up as a
//! multipart upload whose parts are sent in parallel, each read from its place in the
//! file. An upload that fails is aborted, so no orphaned parts are left behind to be
//! billed for. An upload cut short by a kill leaves a small record (object, size, part
//! size, upload id; no secret) under the records folder. The next run asks the store
//! which parts it has and sends only the others ("continuing"), or starts over when the
//! store no longer knows the upload ("restarting"). The object's size is read back
//! before a file counts as published. The store does not check payload hashes here, so
//! the sha256 stays the guard of every later fetch.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::retry::{Limiter, Next, RetryState};
use crate::error::{Class, Fault};
use crate::net::auth::Credentials;
use crate::net::client::{Method, Net, Payload, s3_error};
use crate::net::faults::parse_content_range;
use crate::net::proxy::ProxyEnv;
use crate::net::s3::{self, Op};
use crate::source::Source;
use crate::store::fs::write_atomically;
use crate::store::hash::hash_reader;

/// The folder, in the checkpoints folder, of the records of unfinished uploads (`clean`
/// leaves it alone: without its record an upload would be orphaned, not continued).
pub(crate) const UPLOADS_DIR: &str = ".uploads";
/// Files at least this large go up as a multipart upload.
pub(crate) const MULTIPART_THRESHOLD: u64 = 64 << 20;
/// The smallest part used (S3 allows 5 MiB); larger for files over 160 GiB, which would
/// need more than S3's 10,000 parts.
const MIN_PART: u64 = 16 << 20;
/// S3's largest part.
const MAX_PART: u64 = 5 << 30;
/// How many parts a large file is cut into: each part is a request and an object the
/// store assembles at the end, and on SeaweedFS 16 MiB parts of 1 GiB (64 of them) ran
/// at 0.82× one PUT's speed, 64 MiB parts (16) at 0.96× (`cargo xtask bench --only s3`,
/// three rounds side by side).
const PARTS: u64 = 16;
const MAX_PARTS: u64 = 10_000;
/// Tries per request on a transient fault (a reset, a 503 SlowDown).
const TRIES: u32 = 4;

/// Uploads files to a bucket.
pub(crate) struct Publisher<'a> {
    net: Net,
    /// Where records of unfinished uploads are kept.
    records: &'a Utf8Path,
    /// Parts sent at once.
    parallel: usize,
    /// Upload even when the object is there with the right size.
    force: bool,
    backoff: Duration,
    /// `--limit-rate`: bytes per second over all parts.
    limiter: Option<Limiter>,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Published {
    /// The object was there with the right size and its sha256 recorded as the pin's.
    Present,
    /// Uploaded in one request.
    Whole,
    /// Uploaded in `parts` parts.
    Parts { parts: u16, start: Start },
}

/// An object in the store, as a publish sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Object {
    pub size: u64,
    /// The sha256 recorded with it by a publish (`x-amz-meta-sha256`), when any.
    pub sha256: Option<String>,
}

/// How a multipart upload began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Start {
    Fresh,
    /// An earlier run's upload, of which the store had `had` parts already.
    Continued {
        had: u16,
    },
    /// An earlier run's upload the store no longer knew: started over.
    Restarted,
}

impl<'a> Publisher<'a> {
    /// A publisher sending `parallel` parts at once, keeping records in `records`, at
    /// most `limit_rate` bytes per second in all.
    pub(crate) fn new(
        records: &'a Utf8Path,
        parallel: usize,
        force: bool,
        limit_rate: Option<u64>,
    ) -> Publisher<'a> {
        let net =
            Net::new(Duration::from_secs(60), ProxyEnv::from_process(), Credentials::default(), parallel);
        let limiter = limit_rate.map(Limiter::new);
        Publisher { net, records, parallel, force, backoff: Duration::from_millis(500), limiter }
    }

    /// Where uploads go and as whom, for the first line of output; a fault when the AWS
    /// settings cannot be used at all.
    pub(crate) fn describe_store(&self) -> Result<String, Fault> {
        let store = self.net.store()?;
        Ok(format!("{} (credentials: {})", store.endpoint(), store.found))
    }

    /// Publishes `path` (`size` bytes, `sha256`) as the object `url` (`s3://BUCKET/KEY`),
    /// with its sha256 recorded in the object's metadata. An object already there is
    /// skipped only when it has the size and the recorded sha256: one of the same size
    /// without it (an older publish, someone else's upload) is no proof, and goes up again.
    pub(crate) fn publish(
        &self,
        path: &Utf8Path,
        url: &Source,
        size: u64,
        sha256: &str,
    ) -> Result<Published, Fault> {
        if !self.force
            && let Some(object) = self.object_of(url)?
            && object.size == size
            && object.sha256.as_deref() == Some(sha256)
        {
            return Ok(Published::Present);
        }
        let published = if size < MULTIPART_THRESHOLD {
            self.retried(|| self.put_whole(path, url, size, sha256))?;
            Published::Whole
        } else {
            self.multipart(path, url, size, sha256)?
        };
        match self.object_of(url)? {
            Some(object) if object.size == size => Ok(published),
            found => Err(Fault::new(
                Class::SizeMismatch,
                format!(
                    "after the upload the store reports {} instead of {size} bytes",
                    found.map_or_else(|| "no object".to_owned(), |o| format!("{} bytes", o.size))
                ),
            )),
        }
    }

    /// The object's size and recorded sha256, or `None` when there is no such object. A
    /// one-byte range read, not a HEAD: errors then come with the XML body that says what
    /// is wrong.
    pub(crate) fn object_of(&self, url: &Source) -> Result<Option<Object>, Fault> {
        let headers = [("Range", "bytes=0-0".to_owned())];
        let answer = match self.net.request(Method::Get, url, &headers, &[], &|_| Ok(())) {
            Ok(answer) => answer,
            Err(fault) if fault.class == Class::NotFound => return Ok(None),
            Err(fault) => return Err(fault),
        };
        let response = answer.response;
        let status = response.status().as_u16();
        let header =
            |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let size = match status {
            206 => header("content-range").and_then(|v| parse_content_range(&v)).and_then(|(_, total)| total),
            200 => header("content-length").and_then(|v| v.parse().ok()),
            // A range past the end of an empty object.
            416 => Some(0),
            _ => None,
        };
        let sha256 = header(s3::SHA256_META)
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        let _ = std::io::copy(&mut response.into_body().into_reader().take(64), &mut std::io::sink());
        let size = size.ok_or_else(|| {
            Fault::new(Class::BadResponse, format!("the store did not say how large {url} is"))
        })?;
        Ok(Some(Object { size, sha256 }))
    }

    /// Sends one signed request, turning an error answer into its S3 fault.
    fn send(
        &self,
        url: &Source,
        op: Op<'_>,
        body: Payload<'_>,
    ) -> Result<ureq::http::Response<ureq::Body>, Fault> {
        let store = self.net.store()?;
        let signed = store.sign(url, op)?;
        let headers: Vec<(&str, String)> = signed.headers.iter().map(|(n, v)| (*n, v.clone())).collect();
        let response = match &signed.body {
            Some(text) => self.net.exchange(signed.method, &signed.url, &headers, Payload::Text(text))?,
            None => self.net.exchange(signed.method, &signed.url, &headers, body)?,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        Err(s3_error(response, !store.signed()))
    }

    /// The body of a successful answer (an S3 XML document; short).
    fn send_for_text(&self, url: &Source, op: Op<'_>) -> Result<String, Fault> {
        let response = self.send(url, op, Payload::Empty)?;
        let mut text = String::new();
        response
            .into_body()
            .into_reader()
            .take(8 << 20)
            .read_to_string(&mut text)
            .map_err(|e| Fault::new(Class::Truncated, format!("reading the store's answer: {e}")))?;
        Ok(text)
    }

    fn put_whole(&self, path: &Utf8Path, url: &Source, size: u64, sha256: &str) -> Result<(), Fault> {
        let file = File::open(path).map_err(|e| Fault::local(path, &e))?;
        let reader = &mut Paced { inner: file.take(size), limiter: self.limiter.as_ref() };
        self.send(url, Op::Put { sha256 }, Payload::Reader { reader, len: size }).map(drop)
    }

    /// `f` again after a transient fault, with backoff, up to [`TRIES`] times.
    fn retried<T>(&self, mut f: impl FnMut() -> Result<T, Fault>) -> Result<T, Fault> {
        let mut retry = RetryState::new(self.backoff, TRIES - 1);
        loop {
            retry.attempt();
            let fault = match f() {
                Err(fault) => fault,
                done => return done,
            };
            match retry.next(&fault) {
                Next::Retry(wait) => std::thread::sleep(wait),
                Next::Source | Next::GiveUp => return Err(fault),
            }
        }
    }

    fn multipart(&self, path: &Utf8Path, url: &Source, size: u64, sha256: &str) -> Result<Published, Fault> {
        let part_size = part_size(size);
        let count = u16::try_from(size.div_ceil(part_size))
            .map_err(|_| Fault::new(Class::LocalIo, "the file needs more parts than S3 allows"))?;
        let record = record_path(self.records, url);
        let earlier = read_record(&record, url, size, part_size);
        let (upload_id, had, start) = match earlier {
            Some(upload_id) => match self.listed_parts(url, &upload_id) {
                Ok(parts) => {
                    let had = parts.len() as u16;
                    (upload_id, parts, Start::Continued { had })
                }
                Err(fault) if fault.class == Class::NotFound => {
                    (self.create(url, sha256)?, Vec::new(), Start::Restarted)
                }
                Err(fault) => return Err(fault),
            },
            None => (self.create(url, sha256)?, Vec::new(), Start::Fresh),
        };
        write_record(&record, url, size, part_size, &upload_id);
        let mut etags: Vec<Option<String>> = vec![None; usize::from(count)];
        for (number, etag, length) in had {
            let expected = part_len(size, part_size, number);
            if (1..=count).contains(&number) && length == expected {
                etags[usize::from(number - 1)] = Some(etag);
            }
        }
        let upload = Upload { path, url, id: &upload_id, size, part_size };
        let sent = self.send_parts(&upload, etags);
        let completed = sent.and_then(|etags| {
            let text = self
                .retried(|| self.send_for_text(url, Op::Complete { upload_id: &upload_id, etags: &etags }))?;
            // CompleteMultipartUpload may answer 200 and still fail, in its body.
            match s3::element(&text, "Code") {
                Some(code) => Err(s3::error_fault(200, &text, false, Class::HttpStatus)).map_err(|f| Fault {
                    detail: format!("completing the upload: {} ({code})", f.detail),
                    ..f
                }),
                None => Ok(()),
            }
        });
        if let Err(fault) = completed {
            // No orphaned upload: its parts would be billed and never used.
            let _ = self.send(url, Op::Abort { upload_id: &upload_id }, Payload::Empty);
            let _ = std::fs::remove_file(&record);
            return Err(fault);
        }
        let _ = std::fs::remove_file(&record);
        Ok(Published::Parts { parts: count, start })
    }

    fn create(&self, url: &Source, sha256: &str) -> Result<String, Fault> {
        let text = self.retried(|| self.send_for_text(url, Op::Create { sha256 }))?;
        s3::upload_id(&text)
    }

    fn listed_parts(&self, url: &Source, upload_id: &str) -> Result<Vec<s3::Part>, Fault> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let text = self.retried(|| self.send_for_text(url, Op::ListParts { upload_id, after }))?;
            let (parts, next) = s3::parts(&text)?;
            all.extend(parts);
            match next {
                Some(marker) if marker > after => after = marker,
                _ => return Ok(all),
            }
        }
    }

    /// Sends the parts with no ETag yet, `parallel` at a time; all ETags, in order.
    fn send_parts(&self, upload: &Upload<'_>, etags: Vec<Option<String>>) -> Result<Vec<String>, Fault> {
        let missing: Vec<u16> =
            etags.iter().enumerate().filter(|(_, e)| e.is_none()).map(|(i, _)| i as u16 + 1).collect();
        let etags = Mutex::new(etags);
        let next = AtomicU16::new(0);
        let stop = AtomicBool::new(false);
        let first_fault: Mutex<Option<Fault>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.parallel.clamp(1, missing.len().max(1)) {
                scope.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(&number) = missing.get(usize::from(next.fetch_add(1, Ordering::Relaxed)))
                        else {
                            return;
                        };
                        let sent = self.retried(|| self.send_part(upload, number));
                        match sent {
                            Ok(etag) => {
                                let mut etags =
                                    etags.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                                etags[usize::from(number - 1)] = Some(etag);
                            }
                            Err(fault) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut first =
                                    first_fault.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                                first.get_or_insert(fault);
                                return;
                            }
                        }
                    }
                });
            }
        });
        if let Some(fault) = first_fault.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner) {
            return Err(fault);
        }
        let etags = etags.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        etags
            .into_iter()
            .collect::<Option<Vec<String>>>()
            .ok_or_else(|| Fault::new(Class::HttpStatus, "a part was not acknowledged by the store"))
    }

    fn send_part(&self, upload: &Upload<'_>, number: u16) -> Result<String, Fault> {
        let Upload { path, url, id: upload_id, size, part_size } = *upload;
        let len = part_len(size, part_size, number);
        let mut file = File::open(path).map_err(|e| Fault::local(path, &e))?;
        file.seek(SeekFrom::Start(u64::from(number - 1) * part_size)).map_err(|e| Fault::local(path, &e))?;
        let reader = &mut Paced { inner: file.take(len), limiter: self.limiter.as_ref() };
        let response =
            self.send(url, Op::UploadPart { upload_id, number }, Payload::Reader { reader, len })?;
        response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Fault::new(Class::BadResponse, format!("the store gave part {number} no ETag")))
    }
}

/// One multipart upload under way: the file, its object, the upload's id, and how the
/// file is cut into parts.
#[derive(Clone, Copy)]
struct Upload<'a> {
    path: &'a Utf8Path,
    url: &'a Source,
    id: &'a str,
    size: u64,
    part_size: u64,
}

/// A reader that keeps to the shared `--limit-rate` schedule.
struct Paced<'l, R> {
    inner: R,
    limiter: Option<&'l Limiter>,
}

impl<R: Read> Read for Paced<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(limiter) = self.limiter {
            limiter.take(n as u64);
        }
        Ok(n)
    }
}

/// About [`PARTS`] parts, of at least [`MIN_PART`] and at most [`MAX_PART`], and no
/// more than S3's 10,000 of them; whole MiB.
fn part_size(size: u64) -> u64 {
    let wanted = size.div_ceil(PARTS).clamp(MIN_PART, MAX_PART);
    wanted.max(size.div_ceil(MAX_PARTS)).next_multiple_of(1 << 20)
}

/// The length of part `number` (from 1).
fn part_len(size: u64, part_size: u64, number: u16) -> u64 {
    let start = u64::from(number.saturating_sub(1)) * part_size;
    size.saturating_sub(start).min(part_size)
}

/// Where the record of an unfinished upload of `url` is kept: named by a hash of the
/// object, so any bucket and key make a plain file name.
fn record_path(records: &Utf8Path, url: &Source) -> Utf8PathBuf {
    // Hashing bytes in memory cannot fail; an empty name would only share one record.
    let digest = hash_reader(url.expose().as_bytes()).unwrap_or_default();
    records.join(format!("{}.upload", digest.get(..16).unwrap_or("upload")))
}

/// The upload id an earlier run recorded for this object, size and part size.
fn read_record(record: &Utf8Path, url: &Source, size: u64, part_size: u64) -> Option<String> {
    let text = std::fs::read_to_string(record).ok()?;
    let lines: Vec<&str> = text.lines().collect();
    let expected = ["xtask-upload-1", url.expose(), &size.to_string(), &part_size.to_string()];
    match lines.as_slice() {
        [head @ .., id] if head == expected && !id.is_empty() => Some((*id).to_owned()),
        _ => None,
    }
}

/// Records an upload before its first part goes up, so a killed run can continue it.
fn write_record(record: &Utf8Path, url: &Source, size: u64, part_size: u64, upload_id: &str) {
    if let Some(parent) = record.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let text = format!("xtask-upload-1\n{}\n{size}\n{part_size}\n{upload_id}\n", url.expose());
    // Only an aid to continuing after a kill: without it the next run starts over.
    let _ = write_atomically(record, text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_about_sixteen_of_at_least_16_mib_and_at_most_ten_thousand() {
        assert_eq!(part_size(100 << 20), MIN_PART, "a small file: the smallest parts");
        assert_eq!(part_size(1 << 30), 64 << 20, "1 GiB: 16 parts");
        assert_eq!(part_size(725_066_984) % (1 << 20), 0, "whole MiB");
        assert_eq!((725_066_984u64).div_ceil(part_size(725_066_984)), 16);
        let huge = 400u64 << 30;
        assert!(huge.div_ceil(part_size(huge)) <= MAX_PARTS);
        assert!(part_size(huge) <= MAX_PART);
        assert!((60_000u64 << 30).div_ceil(part_size(60_000 << 30)) <= MAX_PARTS, "past 5 GiB × 16");
        assert_eq!(part_len(40 << 20, MIN_PART, 3), 8 << 20, "the last part is the rest");
        assert_eq!(part_len(40 << 20, MIN_PART, 1), MIN_PART);
    }

    #[test]
    fn a_record_is_used_only_for_its_object_size_and_part_size() {
        let dir = tempfile::tempdir().unwrap();
        let records = Utf8PathBuf::try_from(dir.path().to_path_buf()).unwrap();
        let record = record_path(&records, &Source::parse("s3://bkt/k").unwrap());
        write_record(&record, &Source::parse("s3://bkt/k").unwrap(), 100 << 20, MIN_PART, "upload-1");
        assert_eq!(
            read_record(&record, &Source::parse("s3://bkt/k").unwrap(), 100 << 20, MIN_PART).as_deref(),
            Some("upload-1")
        );
        assert_eq!(read_record(&record, &Source::parse("s3://bkt/k").unwrap(), 101 << 20, MIN_PART), None);
        assert_eq!(
            read_record(&record, &Source::parse("s3://bkt/other").unwrap(), 100 << 20, MIN_PART),
            None
        );
        assert_ne!(record_path(&records, &Source::parse("s3://bkt/other").unwrap()), record);
    }
}
