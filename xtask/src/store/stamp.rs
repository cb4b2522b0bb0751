//! Stamps: proof that a file was hashed and matched, valid while its metadata is unchanged.
//!
//! Whenever the tool hashes a file and finds it matching its pin, it records the file's
//! fingerprint (size, modification and change times in ns, inode, device) with the
//! sha256 it matched. A later run trusts a file whose fingerprint is unchanged and whose
//! stamped sha256 is still the pin, so an unchanged checkpoints folder verifies in
//! milliseconds. An edit, a touch, a replacement by rename or a changed pin each break
//! the match and force a full hash. The stamps of a checkpoints folder live in one state
//! file, rewritten atomically under a lock so concurrent processes never lose a stamp;
//! a missing or unreadable state file only means "hash everything".

use std::collections::BTreeMap;
use std::fs::Metadata;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{IoContext, Result};
use crate::store::fs::{Placed, write_atomically};
use crate::store::lock::{self, LOCK_DIR, Mode};

/// The state file inside a checkpoints folder.
pub(crate) const STATE_FILE: &str = ".models-state";

/// What is compared: everything, ctime included (an in-place edit that restores the
/// mtime still moves the ctime). The tool's own hard links move the ctime of a shared
/// inode too; those it records (see [`Stamp::linked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub len: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
    pub inode: u64,
    pub device: u64,
    /// Hard links to the inode (0: not recorded, an older state file).
    pub links: u64,
}

impl Fingerprint {
    pub(crate) fn of(meta: &Metadata) -> Fingerprint {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let ns = |secs: i64, nsec: i64| i128::from(secs) * 1_000_000_000 + i128::from(nsec);
            Fingerprint {
                len: meta.len(),
                mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
                ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
                inode: meta.ino(),
                device: meta.dev(),
                links: meta.nlink(),
            }
        }
        #[cfg(not(unix))]
        {
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            Fingerprint { len: meta.len(), mtime_ns, ctime_ns: 0, inode: 0, device: 0, links: 0 }
        }
    }

    /// Whether the file now (`now`) is the one stamped: same size, mtime, ctime, inode,
    /// device and link count (an older stamp without a link count compares the rest).
    /// No change excuses another: a new link is vouched for only by the tool's own record
    /// of it ([`Stamp::vouches_for`]).
    pub(crate) fn matches(&self, now: &Fingerprint) -> bool {
        self.len == now.len
            && self.mtime_ns == now.mtime_ns
            && self.ctime_ns == now.ctime_ns
            && self.inode == now.inode
            && self.device == now.device
            && (self.links == 0 || self.links == now.links)
    }

    /// Whether `now` is the same file with the same bytes as far as the metadata tells
    /// (inode, device, size, mtime), its ctime and link count aside: what links made to
    /// it or removed (a cache entry pruned, a mirror linked) move, and nothing else.
    pub(crate) fn only_links_moved(&self, now: &Fingerprint) -> bool {
        (self.inode, self.device, self.len, self.mtime_ns) == (now.inode, now.device, now.len, now.mtime_ns)
    }

    /// `len mtime_ns ctime_ns inode device links`, on one line.
    pub(crate) fn encode(&self) -> String {
        let Fingerprint { len, mtime_ns, ctime_ns, inode, device, links } = self;
        format!("{len} {mtime_ns} {ctime_ns} {inode} {device} {links}")
    }

    pub(crate) fn decode(text: &str) -> Option<Fingerprint> {
        let mut parts = text.split_whitespace();
        let fingerprint = Fingerprint {
            len: parts.next()?.parse().ok()?,
            mtime_ns: parts.next()?.parse().ok()?,
            ctime_ns: parts.next()?.parse().ok()?,
            inode: parts.next()?.parse().ok()?,
            device: parts.next()?.parse().ok()?,
            // Older state files have five fields.
            links: parts.next().map_or(Some(0), |n| n.parse().ok())?,
        };
        parts.next().is_none().then_some(fingerprint)
    }
}

/// One recorded match: the sha256 a file had when it had this fingerprint, and how it
/// reached the checkout when it came from the cache (what `status` shows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub sha256: String,
    pub fingerprint: Fingerprint,
    pub placed: Option<Placed>,
    /// For a hard link to a cache entry: the entry's stamp file. The tool rewrites it
    /// under the entry's lock after each link it makes (and after each check of the
    /// entry), with the fingerprint that results; so when this checkout's file has moved
    /// only by such links, its current state is exactly what that record says.
    pub linked: Option<Utf8PathBuf>,
}

impl Stamp {
    /// Whether this stamp vouches for a file whose metadata is `now`: unchanged since the
    /// stamp, or changed only by a link the tool made to the same cache entry (its record
    /// holds exactly `now`). Any other change (an edit, even one that restores the mtime,
    /// a `chmod`, a link made by hand) means a rehash.
    pub(crate) fn vouches_for(&self, now: &Fingerprint) -> bool {
        if self.fingerprint.matches(now) {
            return true;
        }
        let same_file = self.fingerprint.inode == now.inode && self.fingerprint.device == now.device;
        let recorded = self.linked.as_ref().and_then(|path| std::fs::read_to_string(path).ok());
        same_file
            && recorded.and_then(|text| Fingerprint::decode(&text)).is_some_and(|r| r == *now && r.links != 0)
    }
}

impl Stamp {
    /// Whether the file now at the stamped path (`now`) is still the one the tool placed
    /// there, for `clean` to remove it: vouched for, or the same inode with the same size
    /// and mtime, whose ctime and link count moved only as links to it came and went (a
    /// cache entry pruned, another checkout linked). A file put there since (another
    /// inode, other bytes, another mtime) is the user's.
    pub(crate) fn describes(&self, now: &Fingerprint) -> bool {
        self.vouches_for(now) || self.fingerprint.only_links_moved(now)
    }
}

/// The stamps of one checkpoints folder, keyed by manifest path.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stamps {
    entries: BTreeMap<String, Stamp>,
}

impl Stamps {
    /// Reads the state file; anything missing or malformed is simply not trusted.
    pub(crate) fn load(checkpoints: &Utf8Path) -> Stamps {
        let text = std::fs::read_to_string(checkpoints.join(STATE_FILE)).unwrap_or_default();
        Stamps { entries: parse(&text) }
    }

    pub(crate) fn get(&self, rel: &str) -> Option<&Stamp> {
        self.entries.get(rel)
    }

    /// Adds `fresh` stamps to the state file. The file is re-read under its lock and
    /// rewritten atomically, so stamps written meanwhile by other processes survive.
    pub(crate) fn record(checkpoints: &Utf8Path, fresh: Vec<(String, Stamp)>) -> Result<()> {
        if fresh.is_empty() {
            return Ok(());
        }
        let lock_path = checkpoints.join(LOCK_DIR).join("state.lock");
        // Writers hold it for microseconds: waiting needs no message.
        let (_held, _) = lock::acquire(&lock_path, Mode::Exclusive, || {})?;
        let path = checkpoints.join(STATE_FILE);
        let mut entries = parse(&std::fs::read_to_string(&path).unwrap_or_default());
        for (rel, mut stamp) in fresh {
            // A rehash of the same file (same inode) keeps how it was placed.
            if let Some(old) =
                entries.get(&rel).filter(|old| old.fingerprint.inode == stamp.fingerprint.inode)
            {
                stamp.placed = stamp.placed.or(old.placed);
                stamp.linked = stamp.linked.or_else(|| old.linked.clone());
            }
            entries.insert(rel, stamp);
        }
        write_atomically(&path, render(&entries).as_bytes()).at("write the stamps file", &path)
    }
}

fn parse(text: &str) -> BTreeMap<String, Stamp> {
    let mut entries = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut fields = line.splitn(3, '\t');
        let (Some(sha256), Some(fingerprint), Some(rel)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // `linked=…` and `placed=…` after the fingerprint are optional (older state files
        // have neither).
        let (fingerprint, linked) = match fingerprint.rsplit_once(" linked=") {
            Some((fingerprint, linked)) => (fingerprint, Some(Utf8PathBuf::from(linked))),
            None => (fingerprint, None),
        };
        let (fingerprint, placed) = match fingerprint.rsplit_once(" placed=") {
            Some((fingerprint, placed)) => (fingerprint, Placed::parse(placed)),
            None => (fingerprint, None),
        };
        if let Some(fingerprint) = Fingerprint::decode(fingerprint) {
            entries.insert(rel.to_owned(), Stamp { sha256: sha256.to_owned(), fingerprint, placed, linked });
        }
    }
    entries
}

fn render(entries: &BTreeMap<String, Stamp>) -> String {
    let mut out =
        String::from("# Written by `cargo xtask models`: files hashed and found matching. Safe to delete.\n");
    for (rel, stamp) in entries {
        let placed = stamp.placed.map_or_else(String::new, |p| format!(" placed={}", p.as_str()));
        // A path with a tab or a line break cannot be a field here: such a stamp goes
        // without its link record (a relinked file is then hashed again, no more).
        let linked = stamp
            .linked
            .as_ref()
            .filter(|p| !p.as_str().contains(['\t', '\n', '\r']))
            .map_or_else(String::new, |p| format!(" linked={p}"));
        out.push_str(&format!("{}\t{}{placed}{linked}\t{rel}\n", stamp.sha256, stamp.fingerprint.encode()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use camino::Utf8PathBuf;

    #[test]
    fn fingerprints_round_trip_and_reject_garbage() {
        let f = Fingerprint { len: 5, mtime_ns: -3, ctime_ns: 4, inode: 7, device: 9, links: 2 };
        assert_eq!(Fingerprint::decode(&f.encode()), Some(f));
        assert_eq!(Fingerprint::decode("1 2 3 4"), None);
        assert_eq!(Fingerprint::decode("1 2 3 4 5 6 7"), None);
        assert_eq!(Fingerprint::decode("1 2 3 4 5").map(|f| f.links), Some(0), "older state files");
        assert_eq!(Fingerprint::decode("a b c d e"), None);
    }

    #[test]
    fn only_a_link_the_tool_recorded_excuses_a_moved_ctime() {
        let temp = tempfile::tempdir().unwrap();
        let record = Utf8PathBuf::try_from(temp.path().join("entry-stamp")).unwrap();
        let fingerprint = Fingerprint { len: 1, mtime_ns: 2, ctime_ns: 3, inode: 4, device: 5, links: 2 };
        let stamp = Stamp {
            sha256: "ab".into(),
            fingerprint,
            placed: Some(Placed::HardLink),
            linked: Some(record.clone()),
        };
        assert!(stamp.vouches_for(&fingerprint), "unchanged");
        let relinked = Fingerprint { ctime_ns: 9, links: 3, ..fingerprint };
        assert!(!stamp.vouches_for(&relinked), "a link nobody recorded (`ln`, `cp -al`)");
        std::fs::write(&record, relinked.encode()).unwrap();
        assert!(stamp.vouches_for(&relinked), "another checkout's link, which the tool recorded");
        let edited = Fingerprint { ctime_ns: 11, links: 3, ..fingerprint };
        assert!(!stamp.vouches_for(&edited), "an edit after that link, mtime restored");
        assert!(!fingerprint.matches(&Fingerprint { ctime_ns: 9, ..fingerprint }), "an edit alone");
        let legacy = Fingerprint { links: 0, ..fingerprint };
        assert!(legacy.matches(&fingerprint), "an older stamp without a link count");
    }

    #[test]
    fn the_state_file_round_trips_and_skips_bad_lines() {
        let stamp = Stamp {
            sha256: "ab".repeat(32),
            fingerprint: Fingerprint { len: 1, mtime_ns: 2, ctime_ns: 3, inode: 4, device: 5, links: 1 },
            placed: None,
            linked: None,
        };
        let mut entries = BTreeMap::new();
        entries.insert("dir/with space.bin".to_owned(), stamp.clone());
        entries.insert("cloned.bin".to_owned(), Stamp { placed: Some(Placed::Clone), ..stamp.clone() });
        let linked = Some(Utf8PathBuf::from("/cache dir/stamps/ab"));
        entries.insert(
            "linked.bin".to_owned(),
            Stamp { placed: Some(Placed::HardLink), linked, ..stamp.clone() },
        );
        let text = format!("{}garbage line\n\tonly tabs\t\n", render(&entries));
        assert_eq!(parse(&text), entries);
    }

    #[test]
    fn concurrent_records_keep_every_stamp() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        let fingerprint = Fingerprint { len: 1, mtime_ns: 2, ctime_ns: 3, inode: 4, device: 5, links: 1 };
        std::thread::scope(|scope| {
            for i in 0..8 {
                let dir = &dir;
                scope.spawn(move || {
                    let stamp = Stamp { sha256: format!("{i}"), fingerprint, placed: None, linked: None };
                    Stamps::record(dir, vec![(format!("file-{i}"), stamp)]).unwrap();
                });
            }
        });
        assert_eq!(Stamps::load(&dir).entries.len(), 8);
    }
}
