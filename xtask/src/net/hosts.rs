//! What the tool knows about the hosts models live on.
//!
//! Google Drive: every share-link form becomes the direct download form, and the pages
//! Drive answers with instead of large files are recognised by their content: the "can't
//! scan this file for viruses" form (its action and hidden inputs make the real link), a
//! legacy `confirm=` link, a `"downloadUrl"` value, or a quota/permission message.
//! Hugging Face: `resolve` URLs are asked first with a HEAD, and the `X-Linked-Size` and
//! `X-Linked-Etag` headers (from any host that sends them) reveal a stale pin before a
//! byte is downloaded.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::{Class, Fault};
use crate::text::server_text;

/// The direct-download form of a Google Drive link, if `url` is one.
pub(crate) fn normalize_drive_url(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let (host, path) = rest.split_once('/')?;
    if !matches!(
        host.to_ascii_lowercase().as_str(),
        "drive.google.com" | "docs.google.com" | "drive.usercontent.google.com"
    ) {
        return None;
    }
    let id = if let Some(after) = path.strip_prefix("file/d/") {
        after.split(['/', '?', '#']).next().map(str::to_owned)
    } else {
        let (_, query) = path.split_once('?')?;
        query_value(query, "id")
    }?;
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return None;
    }
    Some(format!("https://drive.google.com/uc?export=download&id={id}"))
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == key).then(|| v.to_owned())
    })
}

/// What to do with an HTML page that came instead of a file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PageVerdict {
    /// An interstitial: request this URL next (with the cookies the page set).
    FollowUp(String),
    /// A quota or permission page: this fault, quoting the page.
    Refused(Fault),
    /// Some other page.
    Unknown,
}

/// Reads a page that came instead of a file, looking for Drive's known answers.
pub(crate) fn judge_page(html: &str, page_url: &str) -> PageVerdict {
    if let Some(message) = element_text_with_class(html, "uc-error-subcaption") {
        let lower = message.to_ascii_lowercase();
        let class = if lower.contains("quota") || lower.contains("too many users") {
            Class::RateLimited
        } else {
            Class::Forbidden
        };
        let detail = format!(
            "Google Drive refused: \"{message}\" (wait a day for the quota to reset, use another URL, or ask the owner to share it as \"Anyone with the link\")"
        );
        return PageVerdict::Refused(Fault::new(class, detail).with_status(403));
    }
    if let Some(url) = download_form_url(html, page_url) {
        return PageVerdict::FollowUp(url);
    }
    if let Some(url) = confirm_link(html, page_url) {
        return PageVerdict::FollowUp(url);
    }
    if let Some(url) = download_url_value(html) {
        return PageVerdict::FollowUp(url);
    }
    PageVerdict::Unknown
}

/// `reference` resolved against the page's URL (a page that cannot be parsed keeps the
/// reference as it is; following it is then refused as any bad URL is).
fn join(page_url: &str, reference: &str) -> String {
    url::Url::parse(page_url)
        .and_then(|base| base.join(reference))
        .map_or_else(|_| reference.to_owned(), String::from)
}

/// `<form id="download-form" action="...">` with its hidden inputs as the query.
fn download_form_url(html: &str, page_url: &str) -> Option<String> {
    let start = html.find("id=\"download-form\"").or_else(|| html.find("id='download-form'"))?;
    let form_start = html[..start].rfind("<form")?;
    let form_end = html[form_start..].find("</form>").map_or(html.len(), |e| form_start + e);
    let form = &html[form_start..form_end];
    let tag_end = form.find('>')?;
    let action = attribute(&form[..tag_end], "action")?;
    let mut params = Vec::new();
    let mut rest = &form[tag_end..];
    while let Some(at) = rest.find("<input") {
        let tag_len = rest[at..].find('>').map_or(rest.len() - at, |e| e + 1);
        let tag = &rest[at..at + tag_len];
        if attribute(tag, "type").is_some_and(|t| t.eq_ignore_ascii_case("hidden"))
            && let Some(name) = attribute(tag, "name")
        {
            let value = attribute(tag, "value").unwrap_or_default();
            params.push(format!("{}={}", encode(&name), encode(&value)));
        }
        rest = &rest[at + tag_len..];
    }
    let base = join(page_url, &unescape_html(&action));
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(if params.is_empty() { base } else { format!("{base}{sep}{}", params.join("&")) })
}

/// A legacy interstitial: a link whose query carries `confirm=`.
fn confirm_link(html: &str, page_url: &str) -> Option<String> {
    let mut rest = html;
    while let Some(at) = rest.find("href=\"") {
        let value_start = at + 6;
        let value_end = rest[value_start..].find('"')? + value_start;
        let href = unescape_html(&rest[value_start..value_end]);
        if href.contains("confirm=") && (href.contains("export=download") || href.contains("/uc?")) {
            return Some(join(page_url, &href));
        }
        rest = &rest[value_end..];
    }
    None
}

/// `"downloadUrl":"https:\/\/...\u003d..."` in a page's script.
fn download_url_value(html: &str) -> Option<String> {
    let at = html.find("\"downloadUrl\":\"")? + "\"downloadUrl\":\"".len();
    let end = html[at..].find('"')? + at;
    let raw = &html[at..end];
    let url = raw.replace("\\u003d", "=").replace("\\u0026", "&").replace("\\/", "/");
    url.starts_with("http").then_some(url)
}

/// The text inside the first element whose class list includes `class`.
fn element_text_with_class(html: &str, class: &str) -> Option<String> {
    let mut rest = html;
    while let Some(at) = rest.find("class=\"") {
        let value_start = at + 7;
        let value_end = rest[value_start..].find('"')? + value_start;
        if rest[value_start..value_end].split_whitespace().any(|c| c == class) {
            let open_end = rest[value_end..].find('>')? + value_end + 1;
            let close = rest[open_end..].find("</")? + open_end;
            let text = server_text(&strip_tags(&rest[open_end..close]), 200);
            return (!text.is_empty()).then_some(text);
        }
        rest = &rest[value_end..];
    }
    None
}

fn strip_tags(text: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape_html(&out).split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of `name="..."` (or single-quoted) inside one tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    for quote in ['"', '\''] {
        let needle = format!(" {name}={quote}");
        if let Some(at) = tag.find(&needle) {
            let start = at + needle.len();
            let end = tag[start..].find(quote)? + start;
            return Some(unescape_html(&tag[start..end]));
        }
    }
    None
}

fn unescape_html(text: &str) -> String {
    text.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// A form value as a query component: everything but RFC 3986's unreserved characters
/// is percent-encoded.
fn encode(text: &str) -> String {
    const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');
    utf8_percent_encode(text, UNRESERVED).to_string()
}

/// Whether `url` is a Hugging Face style `resolve` URL, which deserves a HEAD first.
pub(crate) fn is_resolve_url(url: &str) -> bool {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    path.split(['?', '#']).next().unwrap_or("").contains("/resolve/")
}

/// A stale pin revealed by `X-Linked-Size` / `X-Linked-Etag` (the LFS file's sha256).
pub(crate) fn check_linked(headers: &ureq::http::HeaderMap, size: u64, sha256: &str) -> Result<(), Fault> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let linked_size = header("x-linked-size").and_then(|v| v.parse::<u64>().ok());
    let linked_sha = header("x-linked-etag")
        .map(|v| v.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()));
    let size_differs = linked_size.is_some_and(|s| s != size);
    let sha_differs = linked_sha.as_deref().is_some_and(|s| s != sha256);
    if !size_differs && !sha_differs {
        return Ok(());
    }
    let shown_size = linked_size.map_or_else(|| format!("{size} (as pinned)"), |s| s.to_string());
    let shown_sha = linked_sha.unwrap_or_else(|| format!("{sha256} (as pinned)"));
    Err(Fault::new(
        Class::StalePin,
        format!(
            "the pin is stale: upstream now has size {shown_size}, sha256 {shown_sha}; nothing was downloaded"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "1gwWh45pF7aelNP_P78uDJL8Sycep-K7j";

    #[test]
    fn every_drive_link_form_becomes_the_direct_form() {
        let direct = format!("https://drive.google.com/uc?export=download&id={ID}");
        for link in [
            format!("https://drive.google.com/file/d/{ID}/view?usp=sharing"),
            format!("https://drive.google.com/file/d/{ID}"),
            format!("https://drive.google.com/open?id={ID}"),
            format!("https://drive.google.com/uc?id={ID}"),
            format!("https://drive.google.com/uc?export=download&id={ID}"),
            format!("https://docs.google.com/uc?export=download&id={ID}&confirm=t"),
        ] {
            assert_eq!(normalize_drive_url(&link).as_deref(), Some(direct.as_str()), "{link}");
        }
        assert_eq!(normalize_drive_url("https://github.com/a/b/releases/download/v1/x"), None);
        assert_eq!(normalize_drive_url("https://drive.google.com/drive/folders"), None);
    }

    #[test]
    fn the_virus_scan_form_becomes_the_real_link() {
        let page = r#"<html><body><form id="download-form" action="https://drive.usercontent.google.com/download" method="get">
            <input type="submit" value="Download anyway"/>
            <input type="hidden" name="id" value="ABC">
            <input type="hidden" name="export" value="download">
            <input type="hidden" name="confirm" value="t">
            <input type="hidden" name="uuid" value="a b&amp;c"></form></body></html>"#;
        assert_eq!(
            judge_page(page, "https://drive.google.com/uc?export=download&id=ABC"),
            PageVerdict::FollowUp(
                "https://drive.usercontent.google.com/download?id=ABC&export=download&confirm=t&uuid=a%20b%26c".into()
            )
        );
    }

    #[test]
    fn legacy_confirm_links_and_download_urls_are_followed() {
        let page = r#"<a id="uc-download-link" href="/uc?export=download&amp;confirm=x1Y2&amp;id=ABC">Download anyway</a>"#;
        assert_eq!(
            judge_page(page, "https://drive.google.com/uc?export=download&id=ABC"),
            PageVerdict::FollowUp("https://drive.google.com/uc?export=download&confirm=x1Y2&id=ABC".into())
        );
        let page = r#"<script>var x = {"downloadUrl":"https:\/\/drive.usercontent.google.com\/download?id\u003dABC\u0026confirm\u003dt"};</script>"#;
        assert_eq!(
            judge_page(page, "https://drive.google.com/x"),
            PageVerdict::FollowUp("https://drive.usercontent.google.com/download?id=ABC&confirm=t".into())
        );
    }

    #[test]
    fn a_quota_page_is_refused_with_its_message() {
        let page = r#"<div class="uc-main"><p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try again later.</p></div>"#;
        let PageVerdict::Refused(fault) = judge_page(page, "https://drive.google.com/x") else { panic!() };
        assert_eq!(fault.class, Class::RateLimited);
        assert!(fault.detail.contains("Too many users have viewed"), "{}", fault.detail);
        assert!(fault.detail.contains("Anyone with the link"));
        let page = r#"<p class="uc-error-subcaption">You need access</p>"#;
        let PageVerdict::Refused(fault) = judge_page(page, "https://drive.google.com/x") else { panic!() };
        assert_eq!(fault.class, Class::Forbidden);
        assert_eq!(judge_page("<html><title>Sign in</title></html>", "https://x/"), PageVerdict::Unknown);
    }

    #[test]
    fn linked_headers_reveal_a_stale_pin() {
        let sha = "a".repeat(64);
        let mut headers = ureq::http::HeaderMap::new();
        assert!(check_linked(&headers, 10, &sha).is_ok());
        headers.insert("x-linked-size", "10".parse().unwrap());
        headers.insert("x-linked-etag", format!("\"{sha}\"").parse().unwrap());
        assert!(check_linked(&headers, 10, &sha).is_ok());
        headers.insert("x-linked-size", "11".parse().unwrap());
        let fault = check_linked(&headers, 10, &sha).unwrap_err();
        assert_eq!(fault.class, Class::StalePin);
        assert!(fault.detail.contains("upstream now has size 11"), "{}", fault.detail);
        headers.insert("x-linked-size", "10".parse().unwrap());
        headers.insert("x-linked-etag", format!("\"{}\"", "b".repeat(64)).parse().unwrap());
        assert!(check_linked(&headers, 10, &sha).is_err());
        assert!(is_resolve_url("https://huggingface.co/org/repo/resolve/main/f.bin?download=true"));
        assert!(!is_resolve_url("https://github.com/o/r/releases/download/v1/f"));
    }
}
