//! What response headers mean to a download, decided once for every request that reads
//! them (the first request, each piece of a split file, doctor's probes).
//!
//! The validator rule is RFC 9110 §13.1.5: `If-Range` carries a strong entity tag, or a
//! Last-Modified date only when the answer has no entity tag at all. A weak ETag cannot
//! be sent, and a date beside it would be one the server may rightly treat as weak (and
//! answer every piece with 200): such a server has no validator, and gets one stream.

use ureq::http::HeaderMap;

use crate::text::server_text;

/// The header's value as text, if present and readable.
pub(crate) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// What to send as `If-Range` to resume or split this answer's file, whole (a date has
/// spaces in it), or `None` when the answer gives nothing `If-Range` may carry.
pub(crate) fn if_range_validator(headers: &HeaderMap) -> Option<String> {
    match header(headers, "etag").map(|e| e.trim().to_owned()) {
        Some(etag) if etag.starts_with("W/") || etag.is_empty() => None,
        Some(etag) => Some(etag),
        None => header(headers, "last-modified").map(|d| d.trim().to_owned()).filter(|d| !d.is_empty()),
    }
}

/// Whether a `Content-Type` says the body is a web page.
pub(crate) fn is_html_type(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| ct.trim_start().to_ascii_lowercase().starts_with("text/html"))
}

/// The `Content-Encoding` of a body that came compressed though identity was asked for
/// (the server's words, cleaned and bounded for the message).
pub(crate) fn refused_encoding(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-encoding")
        .map(|e| server_text(&e, 40))
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn if_range_takes_a_strong_etag_else_a_whole_date_only_without_any_etag() {
        let date = "Tue, 15 Nov 1994 08:12:31 GMT";
        assert_eq!(
            if_range_validator(&headers(&[("etag", "\"abc\""), ("last-modified", date)])).unwrap(),
            "\"abc\""
        );
        assert_eq!(if_range_validator(&headers(&[("last-modified", date)])).unwrap(), date, "kept whole");
        assert_eq!(
            if_range_validator(&headers(&[("etag", "W/\"abc\""), ("last-modified", date)])),
            None,
            "a date beside a weak tag may be taken as weak: no validator"
        );
        assert_eq!(if_range_validator(&headers(&[])), None);
    }

    #[test]
    fn pages_and_encodings_are_told_by_their_headers() {
        assert!(is_html_type(Some(" Text/HTML; charset=utf-8")));
        assert!(!is_html_type(Some("application/octet-stream")) && !is_html_type(None));
        assert_eq!(refused_encoding(&headers(&[("content-encoding", "gzip")])).unwrap(), "gzip");
        assert_eq!(refused_encoding(&headers(&[("content-encoding", "identity")])), None);
    }
}
