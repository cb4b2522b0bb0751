//! URLs as this tool needs them: `file://` paths, references resolved against a base
//! (RFC 3986 §5). The redacted form every printed URL takes is [`crate::text::redact_url`].
//!
//! A full URL crate would bring IDNA tables and more compile time than these three jobs
//! are worth; each is small, and tested against the RFC's own examples.

use camino::Utf8PathBuf;
use percent_encoding::percent_decode_str;

/// The local path of a `file://` URL (`file:///abs/path` or `file://localhost/abs/path`),
/// percent-decoded.
pub fn file_url_path(url: &str) -> Option<Utf8PathBuf> {
    let scheme = url.get(..7)?;
    if !scheme.eq_ignore_ascii_case("file://") {
        return None;
    }
    let rest = &url[7..];
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    percent_decode(rest).map(Utf8PathBuf::from)
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

/// The scheme of `url` (before `:`), when it has a valid one.
pub fn scheme(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// Whether `url` is fetched over the network by HTTP: http, https, or an S3 object
/// (`s3://`, signed into an http(s) request).
pub fn is_remote(url: &str) -> bool {
    scheme(url).is_some_and(|s| ["http", "https", "s3"].iter().any(|r| s.eq_ignore_ascii_case(r)))
}

/// The host of an http(s) URL, lowercased (the key of per-host limits).
pub fn host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    Some(host.to_ascii_lowercase())
}

/// `reference` resolved against `base`, as RFC 3986 §5.2 says: absolute references stay,
/// network-path, absolute-path, relative-path and query-only references take what they
/// lack from the base, and `.`/`..` segments are removed.
pub fn resolve(base: &str, reference: &str) -> String {
    if scheme(reference).is_some() {
        let (scheme, rest) = reference.split_once(':').unwrap_or((reference, ""));
        let (authority, path, tail) = split_hier(rest);
        return format!("{scheme}:{authority}{}{tail}", remove_dot_segments(path));
    }
    let Some((base_scheme, base_rest)) = base.split_once(':') else {
        return reference.to_owned();
    };
    let (base_authority, base_path, base_tail) = split_hier(base_rest);
    let base_query = base_tail.split('#').next().unwrap_or("");
    if reference.starts_with("//") {
        let (authority, path, tail) = split_hier(reference);
        return format!("{base_scheme}:{authority}{}{tail}", remove_dot_segments(path));
    }
    let (ref_path, ref_tail) = match reference.find(['?', '#']) {
        Some(i) => reference.split_at(i),
        None => (reference, ""),
    };
    if ref_path.is_empty() {
        // Only a query and/or a fragment: keep the base path (and its query, if none given).
        let keeps_query = ref_tail.is_empty() || ref_tail.starts_with('#');
        let tail = if keeps_query { format!("{base_query}{ref_tail}") } else { ref_tail.to_owned() };
        return format!("{base_scheme}:{base_authority}{base_path}{tail}");
    }
    let merged = if ref_path.starts_with('/') {
        ref_path.to_owned()
    } else if !base_authority.is_empty() && base_path.is_empty() {
        format!("/{ref_path}")
    } else {
        let dir = base_path.rfind('/').map_or("", |i| &base_path[..=i]);
        format!("{dir}{ref_path}")
    };
    format!("{base_scheme}:{base_authority}{}{ref_tail}", remove_dot_segments(&merged))
}

/// `//authority/path?query#fragment` → (`//authority`, `/path`, `?query#fragment`).
fn split_hier(rest: &str) -> (&str, &str, &str) {
    let (authority, after) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?', '#']).map_or(rest.len(), |i| i + 2);
            rest.split_at(end)
        }
        None => ("", rest),
    };
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    let (path, tail) = after.split_at(path_end);
    (authority, path, tail)
}

/// RFC 3986 §5.2.4.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > usize::from(absolute) {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if absolute && !joined.starts_with('/') { format!("/{joined}") } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_become_paths() {
        assert_eq!(file_url_path("file:///tmp/a%20b.bin").unwrap(), "/tmp/a b.bin");
        assert_eq!(file_url_path("FILE://localhost/x").unwrap(), "/x");
        assert_eq!(file_url_path("file://host/x"), None);
        assert_eq!(file_url_path("file://relative"), None);
        assert_eq!(file_url_path("https://x/y"), None);
        assert_eq!(file_url_path("file:///bad%zz"), None);
        assert_eq!(file_url_path("file:///bad%ff"), None, "not UTF-8");
    }

    #[test]
    fn references_resolve_as_rfc_3986_section_5_4_says() {
        let base = "http://a/b/c/d;p?q";
        for (reference, expected) in [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
        ] {
            assert_eq!(resolve(base, reference), expected, "{reference:?}");
        }
    }

    #[test]
    fn a_relative_location_whose_query_holds_a_url_stays_relative() {
        assert_eq!(
            resolve("https://h.example:8443/a/b", "/dl?to=https://cdn/x"),
            "https://h.example:8443/dl?to=https://cdn/x"
        );
        assert_eq!(resolve("http://h", "x"), "http://h/x");
    }
}
