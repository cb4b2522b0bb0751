//! S3-compatible object stores (AWS S3, R2, GCS's S3 API, MinIO, Ceph, SeaweedFS).
//!
//! An object is named `s3://BUCKET/KEY` everywhere in the tool: in messages, the attempt
//! log and the resume records, which therefore never hold a signature. Only when a
//! request is sent is that name turned into a presigned SigV4 URL (rusty-s3 signs; it
//! does no I/O), so every request of a long split download is signed afresh and the
//! HTTP side (pooling, proxies, ranges, stall timeouts) stays the one in `client`.
//!
//! Endpoint, region and credentials are read as the AWS CLI and SDKs read them, so a
//! machine already set up for `aws s3` needs nothing more. With no credentials at all
//! requests go unsigned: a public bucket can be read anonymously.

use std::collections::HashMap;
use std::time::Duration;

use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, GetObject, HeadObject, ListParts,
    PutObject, S3Action, UploadPart,
};
use rusty_s3::{Bucket, Credentials, UrlStyle};

use crate::error::{Class, Fault};
use crate::places;
use crate::source::Source;
use crate::text::server_text;

/// How long a presigned URL stays valid. Each request is signed just before it is sent,
/// so this bounds only how late a request may start after signing, with room for a
/// machine whose clock is a little off.
const SIGNED_FOR: Duration = Duration::from_secs(3600);

/// What a request to an object is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<'a> {
    /// Read the object (with a `Range` header, part of it).
    Get,
    /// Its size and validators, without the body.
    Head,
    /// Write the object in one request, recording its sha256 with it.
    Put { sha256: &'a str },
    /// Start a multipart upload (of an object with this sha256); the answer names it.
    Create { sha256: &'a str },
    /// Upload part `number` (from 1) of an upload.
    UploadPart { upload_id: &'a str, number: u16 },
    /// Finish an upload from its parts' ETags, in order.
    Complete { upload_id: &'a str, etags: &'a [String] },
    /// Drop an unfinished upload and its parts.
    Abort { upload_id: &'a str },
    /// The parts an unfinished upload already has, from part number `after` on.
    ListParts { upload_id: &'a str, after: u16 },
}

/// A request ready to send: method, the presigned URL, and the body an action needs.
pub(crate) struct Signed {
    pub method: &'static str,
    /// Presigned: its query is the signature, and `Source` keeps it out of messages.
    pub url: Source,
    pub body: Option<String>,
    /// Headers the signature covers: they must be sent exactly so.
    pub headers: Vec<(&'static str, String)>,
}

/// The user metadata a published object carries its sha256 in, so a later publish can
/// tell a right object from a wrong one of the same size (`x-amz-meta-sha256`).
pub(crate) const SHA256_META: &str = "x-amz-meta-sha256";

/// A URL from the settings as it may be shown (a gateway's `user:password@` hidden).
fn shown(text: &str) -> String {
    Source::parse(text).map_or_else(|bad| bad.shown, |source| source.to_string())
}

/// Where the store is and who we are to it.
pub(crate) struct Store {
    endpoint: url::Url,
    style: UrlStyle,
    region: String,
    credentials: Option<Credentials>,
    /// Where the credentials came from, for messages (never their values).
    pub found: String,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials stay out of every debug print.
        f.debug_struct("Store")
            .field("endpoint", &self.endpoint.as_str())
            .field("found", &self.found)
            .finish()
    }
}

impl Store {
    /// The store as this process's environment describes it.
    pub(crate) fn from_env() -> Result<Store, Fault> {
        Store::from_lookup(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// The store as `env` describes it, following the AWS CLI: credentials from
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else from the
    /// profile (`AWS_PROFILE`, else `default`) in the shared credentials and config files;
    /// region from `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile, else us-east-1;
    /// endpoint from `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
    /// `endpoint_url`, else AWS itself. A custom endpoint is addressed path-style (the
    /// bucket in the path), AWS virtual-host style, unless the profile's
    /// `s3 = addressing_style` says otherwise.
    pub(crate) fn from_lookup(env: &dyn Fn(&str) -> Option<String>) -> Result<Store, Fault> {
        let named = env("AWS_PROFILE");
        let profile = named.clone().unwrap_or_else(|| "default".to_owned());
        let (credentials_file, config_file) = places::aws_files(env, places::WINDOWS);
        let (credentials_file, config_file) = (credentials_file.to_string(), config_file.to_string());
        let from_credentials = read_profile(&credentials_file, &profile, false)?;
        let from_config = read_profile(&config_file, &profile, true)?;
        if let Some(name) = &named
            && from_credentials.is_none()
            && from_config.is_none()
        {
            return Err(Fault::new(
                Class::S3Config,
                format!(
                    "AWS_PROFILE={name}, but neither {credentials_file} nor {config_file} has that profile"
                ),
            ));
        }
        let (from_credentials, from_config) =
            (from_credentials.unwrap_or_default(), from_config.unwrap_or_default());
        let setting = |key: &str| from_credentials.get(key).or_else(|| from_config.get(key)).cloned();

        let (credentials, found) = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(key), Some(secret)) => {
                let credentials = match env("AWS_SESSION_TOKEN") {
                    Some(token) => Credentials::new_with_token(key, secret, token),
                    None => Credentials::new(key, secret),
                };
                (Some(credentials), "AWS_ACCESS_KEY_ID".to_owned())
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Fault::new(
                    Class::S3Config,
                    "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both, or neither",
                ));
            }
            (None, None) => match (setting("aws_access_key_id"), setting("aws_secret_access_key")) {
                (Some(key), Some(secret)) => {
                    let credentials = match setting("aws_session_token") {
                        Some(token) => Credentials::new_with_token(key, secret, token),
                        None => Credentials::new(key, secret),
                    };
                    (Some(credentials), format!("profile {profile}"))
                }
                _ => (None, "no credentials (anonymous)".to_owned()),
            },
        };
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or_else(|| setting("region"))
            .unwrap_or_else(|| "us-east-1".to_owned());
        let custom = env("AWS_ENDPOINT_URL_S3")
            .or_else(|| env("AWS_ENDPOINT_URL"))
            .or_else(|| setting("endpoint_url"));
        let endpoint_text = custom.clone().unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let shown = shown(&endpoint_text);
        let endpoint: url::Url = endpoint_text.parse().map_err(|e| {
            Fault::new(Class::S3Config, format!("the S3 endpoint {shown:?} is not a URL: {e}"))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") || endpoint.host_str().is_none() {
            return Err(Fault::new(
                Class::S3Config,
                format!("the S3 endpoint {shown:?} must be an http(s) URL with a host"),
            ));
        }
        let style = match setting("s3.addressing_style").as_deref() {
            Some("path") => UrlStyle::Path,
            Some("virtual") => UrlStyle::VirtualHost,
            _ if custom.is_some() => UrlStyle::Path,
            _ => UrlStyle::VirtualHost,
        };
        Ok(Store { endpoint, style, region, credentials, found })
    }

    /// Whether requests are signed (else they are anonymous).
    pub(crate) fn signed(&self) -> bool {
        self.credentials.is_some()
    }

    /// The endpoint requests go to, for messages: redacted, as every URL shown is.
    pub(crate) fn endpoint(&self) -> String {
        shown(self.endpoint.as_str())
    }

    fn bucket(&self, name: &str) -> Result<Bucket, Fault> {
        Bucket::new(self.endpoint.clone(), self.style, name.to_owned(), self.region.clone())
            .map_err(|e| Fault::new(Class::BadUrl, format!("bucket {name:?} cannot be addressed: {e}")))
    }

    /// The request for `op` on `url` (`s3://BUCKET/KEY`), signed now.
    pub(crate) fn sign(&self, url: &Source, op: Op<'_>) -> Result<Signed, Fault> {
        let (bucket, key) = url
            .s3_object()
            .filter(|(_, key)| !key.is_empty())
            .ok_or_else(|| Fault::new(Class::BadUrl, format!("{url} is not an s3://BUCKET/KEY URL")))?;
        let bucket = self.bucket(bucket)?;
        let credentials = self.credentials.as_ref();
        let mut headers = Vec::new();
        let (method, url, body) = match op {
            Op::Get => ("GET", GetObject::new(&bucket, credentials, key).sign(SIGNED_FOR), None),
            Op::Head => ("HEAD", HeadObject::new(&bucket, credentials, key).sign(SIGNED_FOR), None),
            Op::Put { sha256 } => {
                let mut action = PutObject::new(&bucket, credentials, key);
                action.headers_mut().insert(SHA256_META, sha256.to_owned());
                headers.push((SHA256_META, sha256.to_owned()));
                ("PUT", action.sign(SIGNED_FOR), None)
            }
            Op::Create { sha256 } => {
                headers.push((SHA256_META, sha256.to_owned()));
                ("POST", create_multipart_url(&bucket, credentials, key, sha256)?, None)
            }
            Op::UploadPart { upload_id, number } => {
                ("PUT", UploadPart::new(&bucket, credentials, key, number, upload_id).sign(SIGNED_FOR), None)
            }
            Op::Complete { upload_id, etags } => {
                let action = CompleteMultipartUpload::new(
                    &bucket,
                    credentials,
                    key,
                    upload_id,
                    etags.iter().map(String::as_str),
                );
                let url = action.sign(SIGNED_FOR);
                ("POST", url, Some(action.body()))
            }
            Op::Abort { upload_id } => (
                "DELETE",
                AbortMultipartUpload::new(&bucket, credentials, key, upload_id).sign(SIGNED_FOR),
                None,
            ),
            Op::ListParts { upload_id, after } => {
                let mut action = ListParts::new(&bucket, credentials, key, upload_id);
                if after > 0 {
                    action.set_part_number_marker(after);
                }
                ("GET", action.sign(SIGNED_FOR), None)
            }
        };
        let url = Source::parse(url.as_str())
            .map_err(|e| Fault::new(Class::S3Config, format!("the signed {e}")))?;
        Ok(Signed { method, url, body, headers })
    }
}

/// The URL that starts a multipart upload, signed: `POST /KEY?uploads`, as S3 documents it.
/// rusty-s3's `CreateMultipartUpload` sends `?uploads=1`, which moto cannot route (HTTP
/// 500, after it made the upload: an orphan on every try); `uploads=` is what SDKs send.
fn create_multipart_url(
    bucket: &Bucket,
    credentials: Option<&Credentials>,
    key: &str,
    sha256: &str,
) -> Result<url::Url, Fault> {
    let url = bucket
        .object_url(key)
        .map_err(|e| Fault::new(Class::BadUrl, format!("the object {key:?} cannot be addressed: {e}")))?;
    let query = std::iter::once(("uploads", ""));
    let Some(credentials) = credentials else {
        let mut url = url;
        url.query_pairs_mut().append_pair("uploads", "");
        return Ok(url);
    };
    Ok(rusty_s3::signing::sign(
        &jiff::Timestamp::now(),
        rusty_s3::Method::Post,
        url,
        credentials.key(),
        credentials.secret(),
        credentials.token(),
        bucket.region(),
        SIGNED_FOR.as_secs(),
        query,
        std::iter::once((SHA256_META, sha256)),
    ))
}

/// The settings of `[profile]` (`[profile NAME]` in the config file, but `[default]`),
/// with `s3 =` sub-settings as `s3.KEY`. `None` when the file or the profile is absent;
/// an unreadable file that exists is an error.
fn read_profile(path: &str, profile: &str, config: bool) -> Result<Option<HashMap<String, String>>, Fault> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Fault::new(Class::S3Config, format!("cannot read {path}: {e}"))),
    };
    let wanted =
        if config && profile != "default" { format!("profile {profile}") } else { profile.to_owned() };
    let mut settings: Option<HashMap<String, String>> = None;
    let mut inside = false;
    let mut nested: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(section) = trimmed.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            inside = section.trim() == wanted;
            nested = None;
            if inside {
                settings.get_or_insert_with(HashMap::new);
            }
            continue;
        }
        let (Some(map), true) = (settings.as_mut(), inside) else { continue };
        let Some((key, value)) = trimmed.split_once('=') else { continue };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_owned());
        let indented = line.starts_with([' ', '\t']);
        match (&nested, indented) {
            (Some(parent), true) => {
                map.insert(format!("{parent}.{key}"), value);
            }
            _ if value.is_empty() => nested = Some(key),
            _ => {
                nested = None;
                map.insert(key, value);
            }
        }
    }
    Ok(settings)
}

/// The fault an S3 error answer stands for, read from its XML body (`<Code>`,
/// `<Message>`, and for clock skew `<RequestTime>` / `<ServerTime>`). `anonymous` tells
/// that the request was not signed (no credentials were found); `generic` is the class
/// of the bare status, for codes with no class of their own.
pub(crate) fn error_fault(status: u16, body: &str, anonymous: bool, generic: Class) -> Fault {
    // Both are the server's words: cleaned and bounded before anything shows them.
    let code = element(body, "Code").map(|c| server_text(&c, 64)).unwrap_or_default();
    let message = element(body, "Message").map(|m| server_text(&m, 200)).unwrap_or_default();
    let said = if code.is_empty() {
        format!("HTTP {status}")
    } else if message.is_empty() {
        format!("HTTP {status} {code}")
    } else {
        format!("HTTP {status} {code}: {message}")
    };
    let class = match code.as_str() {
        "SignatureDoesNotMatch" => Class::S3BadSecret,
        "InvalidAccessKeyId" => Class::S3UnknownKey,
        "AccessDenied" | "AllAccessDisabled" => Class::S3Denied,
        "NoSuchBucket" => Class::S3NoSuchBucket,
        "ExpiredToken" | "TokenRefreshRequired" | "InvalidToken" => Class::S3ExpiredToken,
        "RequestTimeTooSkewed" => Class::ClockSkew,
        "NoSuchKey" => Class::NotFound,
        _ => generic,
    };
    let detail = match class {
        Class::ClockSkew => match skew(body) {
            Some(seconds) => {
                format!("{said} (this machine's clock is {} the store's)", describe_skew(seconds))
            }
            None => said,
        },
        Class::S3Denied | Class::Forbidden if anonymous => {
            format!("{said} (the request was anonymous: no AWS credentials were found)")
        }
        _ => said,
    };
    Fault::new(class, detail).with_status(status)
}

/// The upload id in the answer to [`Op::Create`].
pub(crate) fn upload_id(xml: &str) -> Result<String, Fault> {
    CreateMultipartUpload::parse_response(xml).map(|r| r.upload_id().to_owned()).map_err(|e| {
        Fault::new(Class::BadResponse, format!("the store's answer to starting an upload is not S3 XML: {e}"))
    })
}

/// One part the store already has: number, ETag, size.
pub(crate) type Part = (u16, String, u64);

/// The parts in an answer to [`Op::ListParts`], and the marker of the next page.
pub(crate) fn parts(xml: &str) -> Result<(Vec<Part>, Option<u16>), Fault> {
    let listed = ListParts::parse_response(xml).map_err(|e| {
        Fault::new(Class::BadResponse, format!("the store's list of parts is not S3 XML: {e}"))
    })?;
    let parts = listed.parts.into_iter().map(|p| (p.number, p.etag, p.size)).collect();
    Ok((parts, listed.next_part_number_marker))
}

/// The text of the first `<name>…</name>` in `xml` (the S3 error format is flat).
pub(crate) fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    Some(xml[start..end].trim().to_owned())
}

/// How far this machine's clock is ahead of the store's, in seconds (negative: behind).
fn skew(body: &str) -> Option<i64> {
    let ours = timestamp(&element(body, "RequestTime")?)?;
    let theirs = timestamp(&element(body, "ServerTime")?)?;
    Some(ours - theirs)
}

fn describe_skew(seconds: i64) -> String {
    let amount = seconds.unsigned_abs();
    let amount = if amount >= 120 { format!("{} min", amount / 60) } else { format!("{amount} s") };
    if seconds >= 0 { format!("{amount} ahead of") } else { format!("{amount} behind") }
}

/// Seconds since 1970 of `20261126T120000Z` or `2026-11-26T12:00:00Z` (fractions ignored).
fn timestamp(text: &str) -> Option<i64> {
    let digits: Vec<u32> = text.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() < 14 {
        return None;
    }
    let number =
        |from: usize, len: usize| digits[from..from + len].iter().fold(0i64, |n, d| n * 10 + i64::from(*d));
    let (year, month, day) = (number(0, 4), number(4, 2), number(6, 2));
    let (hour, minute, second) = (number(8, 2), number(10, 2), number(12, 2));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days since 1970-01-01 of a date; Howard Hinnant's algorithm.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn a_password_in_the_endpoint_is_never_shown() {
        let gateway = [("AWS_ENDPOINT_URL", "http://gw:PASSWORD@10.0.0.1:9000".to_owned())];
        let store = Store::from_lookup(&env(&gateway)).unwrap();
        assert_eq!(
            store.endpoint(),
            "http://***@10.0.0.1:9000/",
            "a password in the endpoint is never shown"
        );
        let bad = [("AWS_ENDPOINT_URL", "ftp://gw:PASSWORD@host".to_owned())];
        let fault = Store::from_lookup(&env(&bad)).unwrap_err();
        assert!(!fault.detail.contains("PASSWORD"), "{}", fault.detail);
    }

    #[test]
    fn credentials_come_from_the_environment_first_then_the_named_profile() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        let config = dir.path().join("config");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = DEF\naws_secret_access_key = defsecret\n\n[ci]\naws_access_key_id=CI\naws_secret_access_key=cisecret\n",
        )
        .unwrap();
        std::fs::write(
            &config,
            "[profile ci]\nregion = eu-west-3\nendpoint_url = http://127.0.0.1:9000\ns3 =\n  addressing_style = virtual\n",
        )
        .unwrap();
        let files = [
            ("AWS_SHARED_CREDENTIALS_FILE", credentials.display().to_string()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
        ];
        let store =
            Store::from_lookup(&env(&[files[0].clone(), files[1].clone(), ("AWS_PROFILE", "ci".into())]))
                .unwrap();
        assert_eq!(store.found, "profile ci");
        assert_eq!(store.region, "eu-west-3");
        assert_eq!(store.endpoint(), "http://127.0.0.1:9000/");
        assert!(matches!(store.style, UrlStyle::VirtualHost), "the profile's addressing_style wins");
        assert_eq!(store.credentials.as_ref().unwrap().key(), "CI");

        let store = Store::from_lookup(&env(&[
            files[0].clone(),
            ("AWS_ACCESS_KEY_ID", "ENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "envsecret".into()),
            ("AWS_ENDPOINT_URL", "http://localhost:1".into()),
        ]))
        .unwrap();
        assert_eq!(store.found, "AWS_ACCESS_KEY_ID");
        assert_eq!(store.region, "us-east-1");
        assert!(matches!(store.style, UrlStyle::Path), "a custom endpoint is path-style");
        assert!(store.credentials.as_ref().unwrap().token().is_none());

        let store = Store::from_lookup(&env(&[
            ("AWS_ACCESS_KEY_ID", "ENV".into()),
            ("AWS_SECRET_ACCESS_KEY", "envsecret".into()),
            ("AWS_SESSION_TOKEN", "session".into()),
            ("AWS_DEFAULT_REGION", "ap-south-1".into()),
            ("AWS_ENDPOINT_URL", "http://general:1".into()),
            ("AWS_ENDPOINT_URL_S3", "http://s3-only:2".into()),
        ]))
        .unwrap();
        assert_eq!(store.credentials.as_ref().unwrap().token(), Some("session"));
        assert_eq!(store.region, "ap-south-1", "AWS_DEFAULT_REGION when AWS_REGION is unset");
        assert_eq!(store.endpoint(), "http://s3-only:2/", "the S3 endpoint wins over the general one");
        let half = Store::from_lookup(&env(&[("AWS_ACCESS_KEY_ID", "ENV".into())])).unwrap_err();
        assert_eq!(half.class, Class::S3Config);
        assert!(!format!("{store:?}").contains("envsecret"), "no secret in debug output");

        let missing =
            Store::from_lookup(&env(&[files[0].clone(), ("AWS_PROFILE", "nope".into())])).unwrap_err();
        assert_eq!(missing.class, Class::S3Config);
        assert!(missing.detail.contains("nope"), "{}", missing.detail);
        let anonymous = Store::from_lookup(&env(&[("HOME", dir.path().display().to_string())])).unwrap();
        assert!(!anonymous.signed());
        assert_eq!(anonymous.endpoint(), "https://s3.us-east-1.amazonaws.com/");
    }

    #[test]
    fn s3_error_bodies_become_their_own_classes() {
        let body = |code: &str| {
            format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>m</Message></Error>")
        };
        let cases = [
            ("SignatureDoesNotMatch", Class::S3BadSecret),
            ("InvalidAccessKeyId", Class::S3UnknownKey),
            ("AccessDenied", Class::S3Denied),
            ("NoSuchBucket", Class::S3NoSuchBucket),
            ("ExpiredToken", Class::S3ExpiredToken),
            ("NoSuchKey", Class::NotFound),
            ("SlowDown", Class::ServerBusy),
        ];
        for (code, class) in cases {
            let status = if code == "SlowDown" { 503 } else { 403 };
            let generic = if status == 503 { Class::ServerBusy } else { Class::Forbidden };
            assert_eq!(error_fault(status, &body(code), false, generic).class, class, "{code}");
        }
        let skewed = "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time and the current time is too large.</Message><RequestTime>20261126T132000Z</RequestTime><ServerTime>2026-11-26T12:00:00Z</ServerTime></Error>";
        let fault = error_fault(403, skewed, false, Class::Forbidden);
        assert_eq!(fault.class, Class::ClockSkew);
        assert!(fault.detail.contains("80 min ahead of"), "{}", fault.detail);
        let denied = error_fault(403, &body("AccessDenied"), true, Class::Forbidden);
        assert!(denied.detail.contains("anonymous"), "{}", denied.detail);
        assert_eq!(
            error_fault(502, "<html>bad gateway</html>", false, Class::ServerBusy).class,
            Class::ServerBusy
        );
    }
}
