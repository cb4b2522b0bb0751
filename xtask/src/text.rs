//! Numbers and words for messages: byte counts, rates, shell quoting, and the redacted
//! form of a URL. A leaf that every layer may use, since every layer tells the user
//! something.

use std::time::Duration;

use percent_encoding::percent_decode_str;

/// `1.5 GiB`, `312.0 KiB`, `12 B`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `45.2 MiB/s`.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

/// `text` as one POSIX shell word: unchanged when it is plain, else single-quoted.
pub fn shell_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Parts of a query key that mark a URL as signed or secret (matched in the decoded,
/// lowercased key): `X-Amz-Signature`, `X-Goog-Credential`, `client_secret`, `hf_token`,
/// `access_key`, `Policy`, `sig`, `password`...
const SECRET_MARKS: &[&str] =
    &["sig", "token", "secret", "credential", "key", "password", "passwd", "auth", "policy", "session"];

/// The URL as it may be printed, logged or written to JSON, on every channel alike:
/// userinfo (`user:password@`) always becomes `***@`, and when any query key looks like
/// a signature or a secret, every query value becomes `***` (a signed URL's other values
/// can still be replayed). Keys are percent-decoded before they are matched, so
/// `%74oken` is `token`.
pub fn redact_url(url: &str) -> String {
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

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(725_066_984), "691.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn rate_divides_by_elapsed_time() {
        assert_eq!(rate(10 << 20, Duration::from_secs(2)), "5.0 MiB/s");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(shell_quote("/a/b.toml"), "/a/b.toml");
        assert_eq!(shell_quote("m'$(touch x)'.toml"), r"'m'\''$(touch x)'\''.toml'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn credentials_and_signed_query_values_are_hidden() {
        assert_eq!(
            redact_url("https://user:pw@host.example/a?x=1&token=abc&X-Amz-Signature=s"),
            "https://***@host.example/a?x=***&token=***&X-Amz-Signature=***"
        );
        assert_eq!(redact_url("http://127.0.0.1:8/a/b"), "http://127.0.0.1:8/a/b");
        assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
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
            let shown = redact_url(&url);
            assert!(!shown.contains("SECRETVALUE") && !shown.contains("1700000000"), "{key}: {shown}");
            assert!(shown.starts_with("https://cdn.example/f.bin?"), "{shown}");
        }
        assert_eq!(redact_url("https://h/f?download=true&x=1"), "https://h/f?download=true&x=1");
        assert_eq!(redact_url("https://alice:PW@h/f#frag"), "https://***@h/f#frag");
    }
}
