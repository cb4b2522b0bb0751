//! Cookies for one run's follow-up requests (Drive's download confirmation), scoped as
//! RFC 6265 says by Domain only: a cookie goes back to the host that set it, or to every
//! host under its `Domain`. Kept by hand: a cookie-store crate would bring dates and
//! public-suffix lists for a job that needs neither.

/// A cookie a server set, and the hosts it may go back to (RFC 6265: the setting host
/// only, or every host under its `Domain`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub pair: String,
    domain: String,
    host_only: bool,
}

impl Cookie {
    pub(crate) fn parse(header: &str, host: &str) -> Option<Cookie> {
        let mut parts = header.split(';');
        let pair = parts.next()?.trim();
        if !pair.contains('=') {
            return None;
        }
        let domain = parts.filter_map(|p| p.trim().split_once('=')).find_map(|(k, v)| {
            k.trim()
                .eq_ignore_ascii_case("domain")
                .then(|| v.trim().trim_start_matches('.').to_ascii_lowercase())
        });
        let host = host.to_ascii_lowercase();
        match domain {
            // A server may only set cookies for itself or a domain it belongs to.
            Some(d) if host == d || host.ends_with(&format!(".{d}")) => {
                Some(Cookie { pair: pair.to_owned(), domain: d, host_only: false })
            }
            Some(_) => None,
            None => Some(Cookie { pair: pair.to_owned(), domain: host, host_only: true }),
        }
    }

    pub(crate) fn goes_to(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        host == self.domain || !self.host_only && host.ends_with(&format!(".{}", self.domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_go_back_only_where_they_belong() {
        let own = Cookie::parse("download_warning=tok; Path=/; HttpOnly", "drive.google.com").unwrap();
        assert!(own.goes_to("drive.google.com") && !own.goes_to("drive.usercontent.google.com"));
        let shared = Cookie::parse("NID=1; Domain=.google.com; Secure", "drive.google.com").unwrap();
        assert!(shared.goes_to("drive.usercontent.google.com") && !shared.goes_to("evil.com"));
        assert_eq!(Cookie::parse("x=1; Domain=other.com", "drive.google.com"), None, "not its domain");
        assert_eq!(Cookie::parse("garbage", "h"), None);
        assert!(!own.goes_to("127.0.0.1"));
    }
}
