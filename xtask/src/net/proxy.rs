//! Which proxy a request goes through, read from the environment as curl reads it:
//! `http_proxy` for http URLs (the lowercase name only: a CGI server can set
//! `HTTP_PROXY` from a request header), `HTTPS_PROXY`/`https_proxy` for https,
//! `ALL_PROXY` as the fallback, and `NO_PROXY` host, suffix and `*` matches. Kept by
//! hand because ureq reads only one proxy for every scheme and no `NO_PROXY`.

use std::collections::HashMap;
use std::fmt;

use crate::source::redact_url;

/// A proxy's URL, which may hold `user:password@`: shown redacted, exposed only to
/// connect.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct ProxyUrl(String);

impl ProxyUrl {
    pub(crate) fn new(url: impl Into<String>) -> ProxyUrl {
        ProxyUrl(url.into())
    }

    /// The whole URL, credentials included: for connecting and nothing else.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is a SOCKS proxy (`socks4://`, `socks5h://`, …).
    pub(crate) fn is_socks(&self) -> bool {
        self.0.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("socks"))
    }

    /// Whether requests go to it in absolute form (`http://`), not through a tunnel.
    pub(crate) fn is_plain_http(&self) -> bool {
        self.0.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("http://"))
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProxyUrl({self})")
    }
}

/// Where proxies and no-proxy rules come from (the process environment, or a test's map).
#[derive(Clone, Debug, Default)]
pub(crate) struct ProxyEnv {
    vars: HashMap<String, String>,
}

impl ProxyEnv {
    pub(crate) fn from_process() -> ProxyEnv {
        let names =
            ["http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"];
        let vars = names
            .iter()
            .filter_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()).map(|v| ((*n).to_owned(), v)))
            .collect();
        ProxyEnv { vars }
    }

    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> ProxyEnv {
        ProxyEnv { vars: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect() }
    }

    fn get(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| self.vars.get(*n)).map(String::as_str)
    }

    /// The proxy for a request to `scheme://host`, if any.
    pub(crate) fn proxy_for(&self, scheme: &str, host: &str) -> Option<ProxyUrl> {
        if self.bypasses(host) {
            return None;
        }
        let specific = match scheme.to_ascii_lowercase().as_str() {
            // curl reads only the lowercase http_proxy: HTTP_PROXY can be set by a web
            // server's CGI environment from a request header.
            "http" => self.get(&["http_proxy"]),
            "https" => self.get(&["https_proxy", "HTTPS_PROXY"]),
            _ => None,
        };
        let proxy = specific.or_else(|| self.get(&["all_proxy", "ALL_PROXY"]))?;
        Some(ProxyUrl::new(if proxy.contains("://") { proxy.to_owned() } else { format!("http://{proxy}") }))
    }

    fn bypasses(&self, host: &str) -> bool {
        let Some(list) = self.get(&["no_proxy", "NO_PROXY"]) else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        list.split([',', ' ']).map(str::trim).filter(|e| !e.is_empty()).any(|entry| {
            if entry == "*" {
                return true;
            }
            if let Some(net) = entry.split_once('/') {
                return in_cidr(&host, net);
            }
            let entry = entry.trim_start_matches("*.").trim_start_matches('.').to_ascii_lowercase();
            let entry = entry
                .rsplit_once(':')
                .filter(|(_, port)| port.parse::<u16>().is_ok())
                .map_or(entry.as_str(), |(h, _)| h);
            host == entry || host.ends_with(&format!(".{entry}"))
        })
    }
}

/// Whether `host` is an IP address inside the `address/prefix` block (as curl 7.86+ reads
/// `NO_PROXY=127.0.0.0/8,::1/128`).
fn in_cidr(host: &str, (network, prefix): (&str, &str)) -> bool {
    use std::net::IpAddr;
    let (Ok(host), Ok(network), Ok(prefix)) = (
        host.parse::<IpAddr>(),
        network.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>(),
        prefix.parse::<u32>(),
    ) else {
        return false;
    };
    let (host, network, bits) = match (host, network) {
        (IpAddr::V4(h), IpAddr::V4(n)) => (u128::from(h.to_bits()), u128::from(n.to_bits()), 32),
        (IpAddr::V6(h), IpAddr::V6(n)) => (h.to_bits(), n.to_bits(), 128),
        _ => return false,
    };
    if prefix > bits {
        return false;
    }
    let shift = bits - prefix;
    prefix == 0 || host >> shift == network >> shift
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_chosen_per_scheme_like_curl() {
        let env = ProxyEnv::from_pairs(&[
            ("http_proxy", "http://p1:3128"),
            ("HTTPS_PROXY", "p2:8080"),
            ("ALL_PROXY", "socks5://p3:1080"),
        ]);
        assert_eq!(env.proxy_for("http", "a.example").as_ref().map(ProxyUrl::expose), Some("http://p1:3128"));
        assert_eq!(
            env.proxy_for("https", "a.example").as_ref().map(ProxyUrl::expose),
            Some("http://p2:8080")
        );
        let upper_http_only = ProxyEnv::from_pairs(&[("HTTP_PROXY", "http://evil:1")]);
        assert_eq!(upper_http_only.proxy_for("http", "a"), None, "uppercase HTTP_PROXY is ignored");
        let all = ProxyEnv::from_pairs(&[("all_proxy", "http://p3:1")]);
        assert_eq!(all.proxy_for("https", "a").as_ref().map(ProxyUrl::expose), Some("http://p3:1"));
    }

    #[test]
    fn no_proxy_matches_hosts_suffixes_and_star() {
        let env = ProxyEnv::from_pairs(&[
            ("https_proxy", "http://p:1"),
            ("NO_PROXY", "internal.example, .corp,127.0.0.1:8080"),
        ]);
        assert_eq!(env.proxy_for("https", "internal.example"), None);
        assert_eq!(env.proxy_for("https", "a.internal.example"), None);
        assert_eq!(env.proxy_for("https", "x.corp"), None);
        assert_eq!(env.proxy_for("https", "127.0.0.1"), None);
        assert!(env.proxy_for("https", "notinternal.example").is_some());
        assert!(env.proxy_for("https", "huggingface.co").is_some());
        let cidr = ProxyEnv::from_pairs(&[
            ("http_proxy", "http://p:1"),
            ("NO_PROXY", "127.0.0.0/8, ::1/128,10.1.0.0/16"),
        ]);
        assert_eq!(cidr.proxy_for("http", "127.9.8.7"), None, "inside 127.0.0.0/8");
        assert_eq!(cidr.proxy_for("http", "[::1]"), None);
        assert_eq!(cidr.proxy_for("http", "10.1.200.3"), None);
        assert!(cidr.proxy_for("http", "10.2.0.1").is_some());
        assert!(cidr.proxy_for("http", "128.0.0.1").is_some());
        assert!(cidr.proxy_for("http", "localhost").is_some(), "a name is not an address");
        let star = ProxyEnv::from_pairs(&[("https_proxy", "http://p:1"), ("no_proxy", "*")]);
        assert_eq!(star.proxy_for("https", "anything"), None);
    }
}
