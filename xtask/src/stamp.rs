//! File fingerprints: cheap metadata that changes whenever a file's bytes could have.
//!
//! A file whose fingerprint equals the one recorded right after it was hashed still
//! holds the bytes that were hashed, so it need not be read again. Size, modification
//! time (ns), inode and device catch edits, truncation, replacement by rename and copies.

use std::fs::Metadata;

/// What is compared. `ctime` is left out of cache stamps on purpose: hard-linking a cache
/// entry into a checkout changes it without touching a byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub len: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    pub device: u64,
}

impl Fingerprint {
    pub fn of(meta: &Metadata) -> Fingerprint {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Fingerprint {
                len: meta.len(),
                mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Fingerprint {
                len: meta.len(),
                mtime_ns,
                inode: 0,
                device: 0,
            }
        }
    }

    /// `len mtime_ns inode device`, one line.
    pub fn encode(&self) -> String {
        format!(
            "{} {} {} {}",
            self.len, self.mtime_ns, self.inode, self.device
        )
    }

    pub fn decode(text: &str) -> Option<Fingerprint> {
        let mut parts = text.split_whitespace();
        let fingerprint = Fingerprint {
            len: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            inode: parts.next()?.parse().ok()?,
            device: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_round_trip_and_reject_garbage() {
        let f = Fingerprint {
            len: 5,
            mtime_ns: -3,
            inode: 7,
            device: 9,
        };
        assert_eq!(Fingerprint::decode(&f.encode()), Some(f));
        assert_eq!(Fingerprint::decode("1 2 3"), None);
        assert_eq!(Fingerprint::decode("1 2 3 4 5"), None);
        assert_eq!(Fingerprint::decode("a b c d"), None);
    }
}
