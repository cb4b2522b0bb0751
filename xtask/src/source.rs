//! Where bytes come from, parsed once: a [`Source`] is an http(s) URL, a local file (a
//! `file://` URL or a folder mirror's entry) or an object in an S3 store. Its `Display`
//! and `Debug` are always redacted (as uv's `DisplaySafeUrl`), so a token, a password
//! or a signed query cannot reach a message, a log, the JSON or a file on disk by a
//! forgotten call; the one way to the raw text is [`Source::expose`], for the wire.
//!
//! Adding a scheme is one new variant of [`Kind`]: every `match` on it asks for a case.
//! A leaf below `error` (whose `Origin` holds sources); it names only `text`.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use percent_encoding::percent_decode_str;
use url::Url;

/// What kind of place a [`Source`] is; each is fetched its own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `http://` or `https://`: GET with ranges, redirects, proxies.
    Http,
    /// `file://` (a manifest's local URL, or a folder mirror's entry): read from disk.
    File,
    /// `s3://BUCKET/KEY`: an object, signed into an http(s) request just before it is sent.
    S3,
}

/// A place bytes can be read from. Compared and hashed by its full text.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Source {
    url: Url,
    kind: Kind,
}

/// Why a text is not a usable source, with the text already redacted for the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadSource {
    /// The text as it may be shown (credentials and signed values hidden).
    pub shown: String,
    pub why: &'static str,
}

impl fmt::Display for BadSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "URL {:?} {}", self.shown, self.why)
    }
}

impl std::error::Error for BadSource {}

impl Source {
    /// Parses an http(s), `file://` or `s3://` URL, refusing what cannot be fetched.
    pub fn parse(text: &str) -> Result<Source, BadSource> {
        let bad = |why| BadSource { shown: redact_url(text), why };
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(bad("has no scheme"));
        };
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space or control characters"));
        }
        let kind = match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => Kind::Http,
            "file" => Kind::File,
            "s3" => Kind::S3,
            _ => return Err(bad("uses an unsupported scheme")),
        };
        if kind == Kind::S3 {
            // Checked before the URL parser, which would only say "not a valid URL".
            match rest.split(['/', '?', '#']).next().unwrap_or("") {
                "" => return Err(bad("names no bucket; write s3://BUCKET/PREFIX")),
                bucket if !is_bucket_name(bucket) => return Err(bad(NOT_A_BUCKET)),
                _ => {}
            }
        }
        let url = Url::parse(text).map_err(|_| bad("is not a valid URL"))?;
        match kind {
            Kind::Http => {
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                if authority.rsplit('@').next().unwrap_or("").is_empty() || url.host_str().is_none() {
                    return Err(bad("has no host"));
                }
            }
            Kind::File => {
                if local_path(&url, rest).is_none() {
                    return Err(bad("is not an absolute file:// path"));
                }
            }
            Kind::S3 => {
                if url.host_str().is_none_or(|bucket| !is_bucket_name(bucket)) {
                    return Err(bad(NOT_A_BUCKET));
                }
                // `..` would be resolved by the parser, and a key prefix must never
                // climb out of itself: refuse `.`, `..` and empty names instead.
                let path = rest.split_once('/').map_or("", |(_, p)| p);
                if path.split('/').any(|s| s == "." || s == "..") || path.contains("//") {
                    return Err(bad("has an empty, `.` or `..` name in its key"));
                }
            }
        }
        Ok(Source { url, kind })
    }

    /// The entry `sha256/<hex>` below this mirror's root (the layout `mirror` writes).
    pub fn mirror_entry(&self, sha256: &str) -> Source {
        let mut entry = self.clone();
        // Every kind parsed here has a hierarchical path (a host, or file's empty one).
        if let Ok(mut segments) = entry.url.path_segments_mut() {
            segments.pop_if_empty().push("sha256").push(sha256);
        }
        entry
    }

    /// A mirror's root: an http(s), `file://` or `s3://` URL, or a folder path (made
    /// absolute from the current directory).
    pub fn mirror(mirror: &str) -> Result<Source, BadSource> {
        if mirror.contains("://") {
            return Source::parse(mirror);
        }
        let bad = |why| BadSource { shown: mirror.to_owned(), why };
        let dir = std::path::absolute(mirror).map_err(|_| bad("is not a usable folder path"))?;
        let url = Url::from_directory_path(&dir).map_err(|()| bad("is not a usable folder path"))?;
        Ok(Source { url, kind: Kind::File })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The whole text, credentials and signatures included: for the request on the
    /// wire and nothing else. Everything shown goes through `Display`.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// Whether bytes come over the network (http(s), or S3 signed into http(s)).
    pub fn is_remote(&self) -> bool {
        match self.kind {
            Kind::Http | Kind::S3 => true,
            Kind::File => false,
        }
    }

    /// `https`, `http`, `file`, `s3`.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// The host with its port when one is given, lowercased: the key of per-host limits
    /// and the name a fault is booked on. For S3, the bucket.
    pub fn host(&self) -> Option<String> {
        let host = self.url.host_str().filter(|h| !h.is_empty())?;
        Some(match self.url.port() {
            Some(port) => format!("{host}:{port}").to_ascii_lowercase(),
            None => host.to_ascii_lowercase(),
        })
    }

    /// The host without its port, lowercased: what proxy rules match.
    pub fn bare_host(&self) -> Option<String> {
        self.url.host_str().filter(|h| !h.is_empty()).map(str::to_ascii_lowercase)
    }

    /// The local path of a `file://` source.
    pub fn file_path(&self) -> Option<Utf8PathBuf> {
        match self.kind {
            Kind::File => local_path(&self.url, self.url.as_str().split_once("://")?.1),
            Kind::Http | Kind::S3 => None,
        }
    }

    /// The bucket and key of an `s3://` source (the key may be empty: a bucket's root).
    pub fn s3_object(&self) -> Option<(&str, &str)> {
        match self.kind {
            Kind::S3 => Some((self.url.host_str()?, self.url.path().trim_start_matches('/'))),
            Kind::Http | Kind::File => None,
        }
    }

    /// `reference` (a `Location`, a form's action) resolved against this source.
    pub fn join(&self, reference: &str) -> Result<Source, BadSource> {
        let joined = self
            .url
            .join(reference)
            .map_err(|_| BadSource { shown: redact_url(reference), why: "is not a valid reference" })?;
        Source::parse(joined.as_str())
    }

    /// A key naming this source on disk (resume records) without its secrets: the
    /// sha256 of the whole text.
    pub fn disk_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.url.as_str().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The last path segment (a file name), percent-decoded.
    pub fn file_name(&self) -> Option<String> {
        let last = self.url.path_segments()?.next_back().filter(|s| !s.is_empty())?;
        percent_decode(last)
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.url.as_str()))
    }
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Source({self})")
    }
}

const NOT_A_BUCKET: &str = "names no valid bucket: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit";

/// A bucket name as S3 defines it (the rules every store accepts).
fn is_bucket_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && edge(name.chars().next())
        && edge(name.chars().last())
        && !name.contains("..")
}

/// Where a model's bytes are sought: one of its own URLs, or a mirror's copy. (Where a
/// fault happened, which may also be the disk, a lock or the cache, is
/// [`crate::error::Site`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// One of the model's own URLs in the manifest.
    Url(Source),
    /// A mirror's copy (`<mirror>/sha256/<hex>`).
    Mirror(Source),
}

impl Origin {
    /// The source behind this origin (its `Display` is redacted).
    pub fn url(&self) -> &Source {
        match self {
            Origin::Url(url) | Origin::Mirror(url) => url,
        }
    }

    /// The kind, in `--json` output: `url` or `mirror`.
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Url(_) => "url",
            Origin::Mirror(_) => "mirror",
        }
    }
}

/// The URL, redacted.
impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.url())
    }
}

/// A `file://` URL's absolute local path, with strict percent-decoding (a malformed
/// escape or bytes that are not UTF-8 refuse the URL).
fn local_path(url: &Url, rest: &str) -> Option<Utf8PathBuf> {
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') || !url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    percent_decode(url.path())?;
    let path = url.to_file_path().ok()?;
    Utf8PathBuf::from_path_buf(path).ok().filter(|p| Utf8Path::is_absolute(p))
}

/// `%XX` escapes decoded; `None` for a malformed escape or bytes that are not UTF-8.
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    // percent_decode_str passes a malformed escape through; a URL with one is refused.
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'%' && !bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
            return None;
        }
    }
    percent_decode_str(text).decode_utf8().ok().map(|s| s.into_owned())
}

/// Parts of a query key that mark a URL as signed or secret (matched in the decoded,
/// lowercased key): `X-Amz-Signature`, `X-Goog-Credential`, `client_secret`, `hf_token`,
/// `access_key`, `Policy`, `sig`, `password`... The tests' leak checks use this list.
pub const SECRET_MARKS: &[&str] =
    &["sig", "token", "secret", "credential", "key", "password", "passwd", "auth", "policy", "session"];

/// The URL as it may be printed, logged or written to JSON, on every channel alike:
/// userinfo (`user:password@`) always becomes `***@`, and when any query key looks like
/// a signature or a secret, every query value becomes `***` (a signed URL's other values
/// can still be replayed). Keys are percent-decoded before they are matched, so
/// `%74oken` is `token`. Only the types that hold URLs (this one, the proxy) call it,
/// from their `Display`.
pub(crate) fn redact_url(url: &str) -> String {
    let (before_fragment, fragment) = match url.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (url, None),
    };
    let (before_query, query) = match before_fragment.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (before_fragment, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        out.push_str(&redact_query(query));
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

fn redact_query(query: &str) -> String {
    let secret = query.split('&').any(|pair| {
        let key = pair.split('=').next().unwrap_or(pair);
        let key = percent_decode_str(&key.replace('+', " ")).decode_utf8_lossy().to_ascii_lowercase();
        SECRET_MARKS.iter().any(|mark| key.contains(mark))
    });
    if !secret {
        return query.to_owned();
    }
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) => format!("{k}=***"),
            None => pair.to_owned(),
        })
        .collect();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(text: &str) -> String {
        Source::parse(text).unwrap().to_string()
    }

    #[test]
    fn credentials_and_signed_query_values_are_hidden_in_display_and_debug() {
        let source = Source::parse("https://user:pw@host.example/a?x=1&token=abc&X-Amz-Signature=s").unwrap();
        assert_eq!(source.to_string(), "https://***@host.example/a?x=***&token=***&X-Amz-Signature=***");
        assert!(!format!("{source:?}").contains("pw") && !format!("{source:?}").contains("abc"));
        assert_eq!(shown("http://127.0.0.1:8/a/b"), "http://127.0.0.1:8/a/b");
        assert_eq!(shown("https://h/p@q"), "https://h/p@q");
        assert!(source.expose().contains("user:pw@"), "the wire gets the whole URL");
    }

    #[test]
    fn every_value_of_a_signed_or_secret_query_is_hidden_whatever_its_key_spelling() {
        for key in [
            "X-Goog-Signature",
            "X-Goog-Credential",
            "X-Amz-Credential",
            "private_token",
            "client_secret",
            "access_key",
            "hf_token",
            "Policy",
            "%74oken",
            "Signature",
        ] {
            let url = format!("https://cdn.example/f.bin?expires=1700000000&{key}=SECRETVALUE&a=b");
            let shown = shown(&url);
            assert!(!shown.contains("SECRETVALUE") && !shown.contains("1700000000"), "{key}: {shown}");
            assert!(shown.starts_with("https://cdn.example/f.bin?"), "{shown}");
        }
        assert_eq!(shown("https://h/f?download=true&x=1"), "https://h/f?download=true&x=1");
        assert_eq!(shown("https://alice:PW@h/f#frag"), "https://***@h/f#frag");
    }

    #[test]
    fn a_parse_error_shows_the_text_redacted() {
        let err = Source::parse("ftp://u:SECRET@h/x").unwrap_err();
        assert_eq!(err.why, "uses an unsupported scheme");
        assert!(!err.to_string().contains("SECRET"), "{err}");
        assert_eq!(Source::parse("https:///x").unwrap_err().why, "has no host");
        assert_eq!(Source::parse("example.com/x").unwrap_err().why, "has no scheme");
        assert_eq!(
            Source::parse("https://h/a b").unwrap_err().why,
            "contains white space or control characters"
        );
    }

    #[test]
    fn each_scheme_is_its_own_kind() {
        assert_eq!(Source::parse("HTTPS://Host.Example:8443/a").unwrap().kind(), Kind::Http);
        assert_eq!(
            Source::parse("https://Host.Example:8443/a").unwrap().host().unwrap(),
            "host.example:8443"
        );
        let object = Source::parse("s3://models/team/x.bin").unwrap();
        assert_eq!((object.kind(), object.s3_object()), (Kind::S3, Some(("models", "team/x.bin"))));
        assert!(object.is_remote());
        assert!(!Source::parse("file:///srv/a").unwrap().is_remote());
    }

    #[test]
    fn file_urls_become_paths() {
        let path = |text: &str| Source::parse(text).ok().and_then(|s| s.file_path());
        #[cfg(unix)]
        {
            assert_eq!(path("file:///tmp/a%20b.bin").unwrap(), "/tmp/a b.bin");
            assert_eq!(path("FILE://localhost/x").unwrap(), "/x");
        }
        assert_eq!(path("file://host/x"), None);
        assert_eq!(path("file://relative"), None);
        assert_eq!(path("https://x/y"), None);
        assert_eq!(path("file:///bad%zz"), None);
        assert_eq!(path("file:///bad%ff"), None, "not UTF-8");
    }

    #[test]
    fn s3_keys_never_climb_out_of_their_prefix() {
        for text in ["s3://models/team/../public", "s3://models/./x", "s3://models/a//b", "s3://../models/x"]
        {
            assert!(Source::parse(text).is_err(), "{text}");
        }
        assert!(Source::parse("s3://mo|dels/x").is_err(), "not a bucket name");
        assert_eq!(Source::parse("s3://models").unwrap().s3_object(), Some(("models", "")));
    }

    #[test]
    fn a_mirror_entry_is_the_content_address_below_the_mirror() {
        let hex = "ab".repeat(32);
        let entry = |m: &str| Source::mirror(m).unwrap().mirror_entry(&hex).expose().to_owned();
        assert_eq!(entry("http://m1/"), format!("http://m1/sha256/{hex}"));
        assert_eq!(entry("http://m1/base"), format!("http://m1/base/sha256/{hex}"));
        assert_eq!(entry("s3://bucket"), format!("s3://bucket/sha256/{hex}"));
        #[cfg(unix)]
        assert_eq!(entry("/var/mirror/"), format!("file:///var/mirror/sha256/{hex}"));
    }

    #[test]
    fn references_resolve_against_the_source() {
        let base = Source::parse("http://a/b/c/d;p?q").unwrap();
        for (reference, expected) in [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("../g", "http://a/b/g"),
            ("../../../g", "http://a/g"),
            ("g/../h", "http://a/b/c/h"),
            ("https://cdn/x", "https://cdn/x"),
        ] {
            assert_eq!(base.join(reference).unwrap().expose(), expected, "{reference:?}");
        }
        let h = Source::parse("https://h.example:8443/a/b").unwrap();
        assert_eq!(
            h.join("/dl?to=https://cdn/x").unwrap().expose(),
            "https://h.example:8443/dl?to=https://cdn/x"
        );
    }
}
