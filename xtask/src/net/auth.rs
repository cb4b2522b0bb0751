//! Credentials: which secret, if any, a request to a given URL may carry.
//!
//! Two sources, read once per run: a netrc file (`NETRC`, default `~/.netrc`, as curl and
//! Bazel read it) for any host, and the Hugging Face token (`HF_TOKEN`, else the token
//! file huggingface_hub writes) for huggingface.co itself. The decision is made for each
//! request separately, so a credential only ever goes to the origin it belongs to: a
//! redirect to another host (a CDN), or to the same host on another port or scheme
//! (curl's CVE-2022-27776), carries none of it. Nothing is sent over plain http
//! except to a loopback address, which browsers also treat as secure. Secrets never
//! leave this module except as the header value handed to the request.

use std::net::IpAddr;

use base64::Engine as _;

use crate::places;

/// Hosts that get the Hugging Face token: exactly these, not their CDN subdomains.
const HF_HOSTS: &[&str] = &["huggingface.co", "hf.co"];

/// An origin in the web's sense: where a request goes (scheme, host, port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub scheme: String,
    /// Lowercase.
    pub host: String,
    /// The URL's port, or the scheme's default.
    pub port: u16,
}

impl Endpoint {
    pub(crate) fn new(scheme: &str, host: &str, port: Option<u16>) -> Endpoint {
        let scheme = scheme.to_ascii_lowercase();
        let port = port.unwrap_or(if scheme == "https" { 443 } else { 80 });
        Endpoint { scheme, host: host.to_ascii_lowercase(), port }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Credentials {
    netrc: Vec<NetrcEntry>,
    hf_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct NetrcEntry {
    /// `None` for the `default` entry.
    machine: Option<String>,
    login: String,
    password: String,
}

impl Credentials {
    /// Reads the netrc file and the Hugging Face token from their usual places.
    pub(crate) fn from_environment() -> Credentials {
        let var = places::process_env;
        let netrc = places::netrc_candidates(&var, places::WINDOWS)
            .iter()
            .find_map(|p| places::read_small(p))
            .map(|t| parse_netrc(&t))
            .unwrap_or_default();
        let token_file = places::hf_token_file(&var, places::WINDOWS);
        let hf_token = var("HF_TOKEN")
            .or_else(|| token_file.and_then(|p| places::read_small(&p)))
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Credentials { netrc, hf_token }
    }

    /// The `Authorization` value for a request to `at`, if one may be sent. `origin` is
    /// where the manifest (or mirror) pointed: netrc's `default` entry goes only there
    /// (same scheme, host and port), never where a redirect leads; the Hugging Face token
    /// only to the Hub itself over https on its port; a host with its own `machine` entry
    /// gets that entry wherever it comes up, as netrc names hosts, not ports.
    pub(crate) fn authorization(&self, at: &Endpoint, origin: &Endpoint) -> Option<String> {
        if !may_carry_secrets(&at.scheme, &at.host) {
            return None;
        }
        let host = at.host.as_str();
        if HF_HOSTS.contains(&host)
            && at.scheme == "https"
            && at.port == 443
            && let Some(token) = &self.hf_token
        {
            return Some(format!("Bearer {token}"));
        }
        let entry = self
            .netrc
            .iter()
            .find(|e| e.machine.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(host)))
            .or_else(|| self.netrc.iter().find(|e| e.machine.is_none()).filter(|_| at == origin))?;
        let pair = format!("{}:{}", entry.login, entry.password);
        Some(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
    }
}

/// Secrets go over https, or over plain http only to this machine.
pub(crate) fn may_carry_secrets(scheme: &str, host: &str) -> bool {
    scheme.eq_ignore_ascii_case("https") || is_loopback(host)
}

pub(crate) fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost") || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The netrc format: whitespace-separated tokens, `machine NAME` or `default` starting an
/// entry, `login` and `password` inside it; `macdef` bodies (up to a blank line) skipped.
fn parse_netrc(text: &str) -> Vec<NetrcEntry> {
    let mut entries = Vec::new();
    let mut current: Option<NetrcEntry> = None;
    let mut lines = text.lines();
    let mut tokens: Vec<String> = Vec::new();
    while let Some(line) = lines.next() {
        let line_tokens: Vec<&str> = line.split_whitespace().collect();
        if line_tokens.first() == Some(&"macdef") {
            // A macro body runs until an empty line; none of it is credentials.
            for body in lines.by_ref() {
                if body.trim().is_empty() {
                    break;
                }
            }
            continue;
        }
        tokens.extend(line_tokens.into_iter().take_while(|t| !t.starts_with('#')).map(str::to_owned));
    }
    let mut it = tokens.into_iter();
    while let Some(token) = it.next() {
        match token.as_str() {
            "machine" | "default" => {
                entries.extend(current.take());
                let machine = if token == "machine" { it.next() } else { None };
                current = Some(NetrcEntry { machine, login: String::new(), password: String::new() });
            }
            "login" => {
                if let (Some(entry), Some(value)) = (current.as_mut(), it.next()) {
                    entry.login = value;
                }
            }
            "password" => {
                if let (Some(entry), Some(value)) = (current.as_mut(), it.next()) {
                    entry.password = value;
                }
            }
            "account" => {
                it.next();
            }
            _ => {}
        }
    }
    entries.extend(current);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn creds() -> Credentials {
        Credentials {
            netrc: parse_netrc(
                "machine 127.0.0.1 login alice password s3cret\n\
                 macdef init\ncd /\n\n\
                 machine files.example.com login bob password pw # comment\n\
                 default login anon password guest\n",
            ),
            hf_token: Some("hf_abc".into()),
        }
    }

    #[test]
    fn netrc_entries_and_default_are_parsed() {
        let c = creds();
        assert_eq!(c.netrc.len(), 3);
        assert_eq!(c.netrc[1].login, "bob");
        assert_eq!(c.netrc[2].machine, None);
    }

    fn at(scheme: &str, host: &str) -> Endpoint {
        Endpoint::new(scheme, host, None)
    }

    #[test]
    fn credentials_go_only_to_their_host_and_only_securely() {
        let c = creds();
        let direct = |scheme: &str, host: &str| c.authorization(&at(scheme, host), &at(scheme, host));
        assert_eq!(direct("http", "127.0.0.1"), Some(format!("Basic {}", base64(b"alice:s3cret"))));
        assert_eq!(direct("https", "files.example.com"), Some(format!("Basic {}", base64(b"bob:pw"))));
        assert_eq!(direct("http", "files.example.com"), None, "never over plain http");
        assert_eq!(direct("https", "other.example"), Some(format!("Basic {}", base64(b"anon:guest"))));
        assert_eq!(direct("https", "huggingface.co"), Some("Bearer hf_abc".into()));
        let no_default = Credentials { netrc: parse_netrc("machine a login x password y"), hf_token: None };
        assert_eq!(no_default.authorization(&at("https", "b"), &at("https", "b")), None);
    }

    #[test]
    fn netrc_default_credentials_never_follow_a_redirect_to_another_host() {
        let c = creds();
        assert_eq!(
            c.authorization(&at("https", "cdn-lfs.huggingface.co"), &at("https", "huggingface.co")),
            None,
            "neither the HF token nor netrc's default reach the CDN"
        );
        let other_port = Endpoint::new("https", "other.example", Some(8443));
        assert_eq!(
            c.authorization(&other_port, &at("https", "other.example")),
            None,
            "netrc's default stays on its origin's port"
        );
        let hub_elsewhere = Endpoint::new("https", "huggingface.co", Some(8443));
        assert_ne!(
            c.authorization(&hub_elsewhere, &hub_elsewhere),
            Some("Bearer hf_abc".into()),
            "the token goes to the Hub's port only"
        );
        assert_eq!(
            c.authorization(&at("https", "files.example.com"), &at("https", "other.example")),
            Some(format!("Basic {}", base64(b"bob:pw"))),
            "a host with its own machine entry gets it wherever it comes up"
        );
    }

    #[test]
    fn loopback_is_recognised() {
        for host in ["localhost", "127.0.0.1", "127.9.9.9", "[::1]", "::1"] {
            assert!(is_loopback(host), "{host}");
        }
        for host in ["10.0.0.1", "example.com", "localhost.evil.com"] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
