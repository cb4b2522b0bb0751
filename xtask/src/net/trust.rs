//! Which certificate authorities https trusts: the platform's, plus those the user names.
//!
//! One gathering decides both what the agent trusts and what `models doctor` says, so
//! the two cannot disagree. The platform's part:
//! - Linux and the BSDs: the distribution's CA bundle, a complete set its administrator
//!   curates; Mozilla's roots only when there is none.
//! - Windows: the certificate store (where a company's TLS-inspecting CA is installed, by
//!   group policy or by the proxy's installer) plus Mozilla's roots, because Windows
//!   fetches public roots on first use and a read of the store may not hold them yet.
//! - macOS: the keychain's trusted roots plus Mozilla's.
//!
//! Then `SSL_CERT_FILE`, `AWS_CA_BUNDLE` and `SSL_CERT_DIR` add theirs: added to, never
//! instead of, so a bundle set for another tool (conda sets `SSL_CERT_FILE` on Windows)
//! does not hide the store's CA. A variable naming something that cannot be read, or
//! that holds no certificate, is an error: silently trusting less than asked would end in
//! a confusing certificate failure later.

use std::path::{Path, PathBuf};

use ureq::tls::{Certificate, PemItem, RootCerts};

use crate::error::{Class, Fault};

/// Where distributions keep their CA bundle; the first that exists is used.
#[cfg(not(any(windows, target_os = "macos")))]
const PLATFORM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The variables that add CA certificates, in the order they are read. `AWS_CA_BUNDLE` is
/// what the AWS CLI reads for an S3 endpoint behind a private CA.
const NAMED: [&str; 3] = ["SSL_CERT_FILE", "AWS_CA_BUNDLE", "SSL_CERT_DIR"];

/// One place certificates come from, and what reading it gave.
pub(crate) struct Part {
    /// What it is, as `doctor` shows it: `Windows certificate store`, `SSL_CERT_FILE=…`.
    pub(crate) what: String,
    /// The certificates, or why there are none (a sentence with what to do).
    found: Result<Vec<Certificate<'static>>, String>,
    /// A variable the user set: its failure stops https instead of being shown only.
    named: bool,
}

impl Part {
    /// How many certificates it gave, or why it gave none.
    pub(crate) fn count(&self) -> Result<usize, &str> {
        self.found.as_ref().map(Vec::len).map_err(String::as_str)
    }
}

/// Everything https trusts on this machine, in the order it was gathered.
pub(crate) struct Trust {
    pub(crate) parts: Vec<Part>,
}

impl Trust {
    /// Reads the platform's certificates and every variable that is set.
    pub(crate) fn gather() -> Trust {
        let mut parts = platform();
        let platform_found = parts.iter().any(|p| p.count().is_ok_and(|n| n > 0));
        if !platform_found || cfg!(any(windows, target_os = "macos")) {
            parts.push(mozilla());
        }
        for name in NAMED {
            let Some(value) = std::env::var_os(name).filter(|v| !v.is_empty()) else { continue };
            parts.push(named(name, &value));
        }
        Trust { parts }
    }

    /// The roots an https agent is given: every certificate gathered, or the first
    /// variable that could not be used, as the error.
    pub(crate) fn roots(&self) -> Result<RootCerts, Fault> {
        if let Some(broken) = self.parts.iter().find(|p| p.named && p.found.is_err()) {
            let why = broken.count().err().unwrap_or_default();
            return Err(Fault::new(Class::Tls, format!("{} {why}", broken.what)));
        }
        let certs = self.parts.iter().filter_map(|p| p.found.as_ref().ok()).flatten().cloned();
        Ok(RootCerts::from(certs))
    }
}

fn mozilla() -> Part {
    let certs = webpki_root_certs::TLS_SERVER_ROOT_CERTS.iter().map(|c| Certificate::from_der(c).to_owned());
    Part { what: "Mozilla's roots, built in".to_owned(), found: Ok(certs.collect()), named: false }
}

/// `SSL_CERT_FILE=path` (a PEM file) or `SSL_CERT_DIR=dir[:dir…]` (folders of them).
fn named(name: &str, value: &std::ffi::OsStr) -> Part {
    let what = format!("{name}={}", Path::new(value).display());
    let fix = "point it at a PEM file of CA certificates, or unset it";
    let files: Result<Vec<PathBuf>, String> = if name == "SSL_CERT_DIR" {
        std::env::split_paths(value)
            .map(|dir| {
                let entries = std::fs::read_dir(&dir)
                    .map_err(|e| format!("cannot be read ({}: {e}); {fix}", dir.display()))?;
                Ok(entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect::<Vec<_>>())
            })
            .collect::<Result<Vec<_>, String>>()
            .map(|dirs| dirs.concat())
    } else {
        Ok(vec![PathBuf::from(value)])
    };
    let found = files.and_then(|files| {
        let mut certs = Vec::new();
        for file in &files {
            match std::fs::read(file) {
                Ok(pem) => certs.extend(pem_certificates(&pem)),
                // One unreadable file among a folder's is skipped, as OpenSSL does; the
                // file a variable names is itself the error.
                Err(e) if name != "SSL_CERT_DIR" => return Err(format!("cannot be read ({e}); {fix}")),
                Err(_) => {}
            }
        }
        if certs.is_empty() {
            return Err(format!("holds no PEM certificate (-----BEGIN CERTIFICATE-----); {fix}"));
        }
        Ok(certs)
    });
    Part { what, found, named: true }
}

fn pem_certificates(pem: &[u8]) -> impl Iterator<Item = Certificate<'static>> + '_ {
    ureq::tls::parse_pem(pem).flatten().filter_map(|item| match item {
        PemItem::Certificate(cert) => Some(cert.to_owned()),
        _ => None,
    })
}

#[cfg(not(any(windows, target_os = "macos")))]
fn platform() -> Vec<Part> {
    let Some(bundle) = PLATFORM_BUNDLES.iter().find(|p| Path::new(p).is_file()) else {
        return Vec::new();
    };
    let found = match std::fs::read(bundle) {
        Ok(pem) => Ok(pem_certificates(&pem).collect()),
        Err(e) => Err(format!("cannot be read ({e}); Mozilla's roots are used instead")),
    };
    vec![Part { what: format!("platform bundle {bundle}"), found, named: false }]
}

/// The current user's `ROOT` store, which also shows the machine's and the enterprise's
/// roots (group policy puts a company CA there). Kept as rustls would use them: valid
/// now and allowed for server authentication.
#[cfg(windows)]
fn platform() -> Vec<Part> {
    use schannel::cert_context::ValidUses;
    const SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
    let found = schannel::cert_store::CertStore::open_current_user("ROOT")
        .map(|store| {
            let usable = |cert: &schannel::cert_context::CertContext| {
                let for_servers = match cert.valid_uses() {
                    Ok(ValidUses::All) => true,
                    Ok(ValidUses::Oids(oids)) => oids.iter().any(|o| o == SERVER_AUTH),
                    Err(_) => false,
                };
                for_servers && cert.is_time_valid().unwrap_or(false)
            };
            let certs = store.certs().filter(usable);
            certs.map(|cert| Certificate::from_der(cert.to_der()).to_owned()).collect()
        })
        .map_err(|e| format!("cannot be opened ({e}); Mozilla's roots are used"));
    vec![Part { what: "Windows certificate store (ROOT)".to_owned(), found, named: false }]
}

/// The keychain's trusted roots. The library that reads them reads `SSL_CERT_FILE` or
/// `SSL_CERT_DIR` instead when either is set, so then the keychain is not read, and
/// `doctor` says so rather than claim it.
#[cfg(target_os = "macos")]
fn platform() -> Vec<Part> {
    let replaced =
        ["SSL_CERT_FILE", "SSL_CERT_DIR"].iter().any(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()));
    if replaced {
        let what = "macOS keychain: not read while SSL_CERT_FILE or SSL_CERT_DIR is set";
        return vec![Part { what: what.to_owned(), found: Ok(Vec::new()), named: false }];
    }
    let loaded = rustls_native_certs::load_native_certs();
    let certs: Vec<Certificate<'static>> =
        loaded.certs.iter().map(|c| Certificate::from_der(c).to_owned()).collect();
    let found = match loaded.errors.first() {
        Some(e) if certs.is_empty() => Err(format!("cannot be read ({e}); Mozilla's roots are used")),
        _ => Ok(certs),
    };
    vec![Part { what: "macOS keychain".to_owned(), found, named: false }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_certificates_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap();
        let part = named("SSL_CERT_FILE", file.as_os_str());
        let why = part.count().unwrap_err();
        assert!(why.starts_with("holds no PEM certificate"), "{why}");
        assert!(why.contains("or unset it"), "{why}");
    }

    #[test]
    fn mozillas_roots_are_certificates_rustls_can_parse() {
        let part = mozilla();
        assert!(part.count().unwrap() > 100, "Mozilla ships well over a hundred roots");
    }
}
