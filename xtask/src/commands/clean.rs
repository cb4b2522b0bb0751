//! `models clean`: remove partial downloads and files the manifest no longer lists.
//!
//! `clean` removes only what the tool made: its temp files (partial downloads, their
//! validators, half-written state files) and files it installed (recorded in its stamps)
//! that the manifest no longer lists. Anything else is listed as unknown and left alone,
//! so a mistyped `--checkpoints-dir` costs nothing; removing unknown files takes
//! `--unknown`, which still refuses a tree holding a `.git`. Only the checkpoints
//! directory is walked, and symlinks are never followed: a link is reported and left
//! alone, so nothing outside the directory can be touched. Every model
//! the manifest lists (optional ones included) is kept unless `--all` asks for a clean
//! slate, and so are `.gitignore` files, which keep downloads out of git. Clean holds the
//! folder's lock exclusively, so it never deletes a file a running fetch is writing.
//! `--cache` also prunes the shared cache of entries this manifest does not pin.

use std::collections::HashSet;
use std::fs;

use camino::{Utf8Path, Utf8PathBuf};

use crate::commands::{Context, Report};
use crate::engine::manifest::Manifest;
use crate::error::{Error, IoContext, Result, is_in_use};
use crate::places;
use crate::publish::UPLOADS_DIR;
use crate::store::cache::Cache;
use crate::store::fs::{files_below, remove_file};
use crate::store::lock::{self, LOCK_DIR, Mode};
use crate::store::partial::Partial;
use crate::store::stamp::{Fingerprint, STATE_FILE, Stamp, Stamps};
use crate::text::human_bytes;

#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    pub dry_run: bool,
    /// Remove the managed model files too.
    pub all: bool,
    /// Remove files the tool did not make, too.
    pub unknown: bool,
    /// Also prune this cache of entries the manifest does not pin, and of partials.
    pub cache: Option<Cache>,
}

/// Why a file is to be removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Partial,
    Unlisted,
    Managed,
    Unknown,
}

impl Reason {
    fn describe(self) -> &'static str {
        match self {
            Reason::Partial => "partial download",
            Reason::Unlisted => "installed by the tool, no longer in the manifest",
            Reason::Managed => "model file (--all)",
            Reason::Unknown => "not made by this tool (--unknown)",
        }
    }
}

/// Whether `stamp` still describes the file at `path` (never followed: a symlink there is
/// not the file the tool placed).
fn describes(stamp: &Stamp, path: &Utf8Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|meta| meta.is_file() && stamp.describes(&Fingerprint::of(&meta)))
}

pub(crate) fn run(cx: &Context, options: &Options) -> Result<Report> {
    let mut failures = 0;
    if let Some(cache) = &options.cache {
        failures += prune_cache(cx, cache, options.dry_run)?;
    }
    failures += clean_checkpoints(cx, options)?;
    Ok(Report { ok: 0, failed: failures })
}

fn clean_checkpoints(cx: &Context, options: &Options) -> Result<usize> {
    let root = &cx.checkpoints;
    refuse_unsafe_root(root)?;
    if !root.is_dir() {
        cx.say(&format!("nothing to clean: {root} does not exist"));
        return Ok(0);
    }
    // Exclusive: no fetch or verify is using the folder while files go.
    let waiting = format!("waiting for other fetch or verify processes using {root} to finish");
    let (_folder, _) = lock::acquire(&lock::folder_lock(root), Mode::Exclusive, cx.on_wait(&waiting))?;
    // Read again under the lock: an `add` that held the folder until now may have pinned
    // the very file this run would otherwise take for one the manifest dropped.
    let manifest = Manifest::load(&cx.manifest_path)?;
    let listed: HashSet<&str> = manifest.models.iter().map(|m| m.path.as_str()).collect();
    let stamps = Stamps::load(root);
    let (found, skipped) = files_below(root)?;
    let is_git = |p: &&Utf8PathBuf| p.components().any(|c| c.as_str() == ".git");
    if options.unknown
        && let Some(git) = found.iter().map(|(p, _)| p).chain(&skipped).find(is_git)
    {
        return Err(Error::usage(format!(
            "refusing `--unknown` in {root}: it holds a git repository ({}), not downloads",
            root.join(git)
        )));
    }
    let mut unknown = Vec::new();

    let verb = if options.dry_run { "would remove" } else { "removed" };
    let (mut count, mut bytes, mut failures) = (0usize, 0u64, 0usize);
    for (walked, size) in &found {
        let size = *size;
        // Stamps and the manifest record `/`; a walk on Windows yields `\`.
        let portable = portable(walked);
        let rel = &portable;
        if rel.starts_with(LOCK_DIR) || rel.starts_with(UPLOADS_DIR) || rel == STATE_FILE {
            continue;
        }
        let reason = if is_ours_beside(rel, &listed, &stamps) {
            Reason::Partial
        } else if listed.contains(rel.as_str()) {
            if !options.all {
                continue;
            }
            Reason::Managed
        } else if rel.file_name() == Some(".gitignore") {
            continue;
        } else if stamps.get(rel.as_str()).is_some_and(|stamp| describes(stamp, &root.join(walked))) {
            Reason::Unlisted
        } else if options.unknown {
            Reason::Unknown
        } else {
            unknown.push(walked);
            continue;
        };
        let path = root.join(walked);
        if !options.dry_run {
            if let Err(e) = remove_file(&path) {
                cx.reporter.error(&cannot_remove(&path, &e));
                failures += 1;
                continue;
            }
            remove_empty_parents(root, &path);
        }
        count += 1;
        bytes += size;
        cx.say(&format!("{verb} {walked} ({}, {})", human_bytes(size), reason.describe()));
    }
    for rel in skipped {
        cx.reporter.note(&format!("left alone {rel} (not a regular file, or a symlink)"));
    }
    for rel in &unknown {
        cx.say(&format!("left alone {rel} (not made by this tool; `--unknown` removes such files)"));
    }
    let mut summary = format!("{verb} {count} file(s), {}", human_bytes(bytes));
    if options.dry_run && count > 0 {
        summary.push_str("; run without --dry-run to delete them");
    }
    cx.say(&summary);
    Ok(failures)
}

/// Removes cache entries this manifest does not pin, and partial downloads, listing sizes.
fn prune_cache(cx: &Context, cache: &Cache, dry_run: bool) -> Result<usize> {
    if !cache.root.is_dir() {
        cx.say(&format!("nothing to prune: the cache {} does not exist", cache.root));
        return Ok(0);
    }
    let waiting = format!("waiting for fetches using the cache {} to finish", cache.root);
    let (_folder, _) = lock::acquire(&lock::folder_lock(&cache.root), Mode::Exclusive, cx.on_wait(&waiting))?;
    let pinned: HashSet<&str> = cx.manifest.models.iter().map(|m| m.sha256.as_str()).collect();
    let verb = if dry_run { "would remove" } else { "removed" };
    let (mut count, mut bytes, mut failures) = (0usize, 0u64, 0usize);
    let sha256_dir = cache.root.join("sha256");
    let ours = links_in(&cx.checkpoints);
    for (hex, size) in cache.entries().at("read the cache folder", &sha256_dir)? {
        if pinned.contains(hex.as_str()) {
            continue;
        }
        // Hard links from elsewhere: another checkout (another project) still uses it.
        let elsewhere = fs::symlink_metadata(cache.entry(&hex)).map_or(0, |meta| {
            let at = Fingerprint::of(&meta);
            let here = ours.get(&(at.device, at.inode)).copied().unwrap_or(0);
            at.links.saturating_sub(1 + here)
        });
        if elsewhere > 0 {
            cx.say(&format!(
                "kept cache entry {hex} ({}): not pinned here, but {elsewhere} checkout file(s) elsewhere link it",
                human_bytes(size)
            ));
            continue;
        }
        if !dry_run {
            cache.remove(&hex);
            if cache.entry(&hex).exists() {
                cx.reporter.error(&format!("error: cannot remove {}", cache.entry(&hex)));
                failures += 1;
                continue;
            }
        }
        count += 1;
        bytes += size;
        cx.say(&format!("{verb} cache entry {hex} ({}, not pinned here)", human_bytes(size)));
    }
    let partial_dir = cache.root.join("partial");
    for (path, size) in cache.partials().at("read the cache folder", &partial_dir)? {
        if !dry_run && let Err(e) = remove_file(&path) {
            cx.reporter.error(&cannot_remove(&path, &e));
            failures += 1;
            continue;
        }
        count += 1;
        bytes += size;
        cx.say(&format!("{verb} {path} ({}, partial download)", human_bytes(size)));
    }
    cx.say(&format!("{verb} {count} cache file(s), {}", human_bytes(bytes)));
    Ok(failures)
}

/// How many files under `root` share each inode (device, inode): the links this checkout
/// holds to cache entries. Empty where the platform does not say (Windows), so there
/// every entry not pinned here is pruned, as before.
fn links_in(root: &Utf8Path) -> std::collections::HashMap<(u64, u64), u64> {
    let mut links = std::collections::HashMap::new();
    let (files, _) = files_below(root).unwrap_or_default();
    for (rel, _) in files {
        if let Ok(meta) = fs::symlink_metadata(root.join(&rel)) {
            let at = Fingerprint::of(&meta);
            if at.links > 1 {
                *links.entry((at.device, at.inode)).or_insert(0) += 1;
            }
        }
    }
    links
}

/// The line for a file `clean` could not remove; the rest is cleaned all the same.
fn cannot_remove(path: &Utf8Path, err: &std::io::Error) -> String {
    let hint = if is_in_use(err) {
        "; another program has it open (SadTalker running, an editor): close it and run clean again (if nothing has it open, check its permissions)"
    } else {
        ""
    };
    format!("error: cannot remove {path}: {err}{hint}")
}

/// `rel` with `/` separators, as the manifest and the stamps write paths. Off Windows a
/// backslash is part of a name (the manifest refuses it in paths), and is kept.
fn portable(rel: &Utf8Path) -> Utf8PathBuf {
    if places::WINDOWS { Utf8PathBuf::from(rel.as_str().replace('\\', "/")) } else { rel.to_owned() }
}

/// A mistyped `--checkpoints-dir` must not turn `clean` into `rm -r` of a project or home.
fn refuse_unsafe_root(root: &Utf8Path) -> Result<()> {
    let home = places::home(&places::process_env, places::WINDOWS);
    let canonical = root.canonicalize_utf8().unwrap_or_else(|_| root.to_owned());
    let is_home = home.as_deref().is_some_and(|h| h.canonicalize_utf8().ok().as_deref() == Some(&canonical));
    let why = if canonical.parent().is_none() {
        Some("it is the filesystem root")
    } else if is_home {
        Some("it is your home directory")
    } else if canonical.join(".git").exists() || canonical.join("Cargo.toml").exists() {
        Some("it looks like a project directory (it holds .git or Cargo.toml)")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::Usage(format!(
            "refusing to clean {root}: {why}, not a checkpoints directory; check `--checkpoints-dir`"
        ))),
        None => Ok(()),
    }
}

/// Removes folders that removing `path` left empty, up to but not including `root`.
fn remove_empty_parents(root: &Utf8Path, path: &Utf8Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == root || !d.starts_with(root) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Whether `rel` is a name the tool makes beside a file it knows: a model the manifest
/// lists, a file it installed (stamped), or its own state file. A `.part` any other
/// program left (a browser's download in progress) is the user's.
fn is_ours_beside(rel: &Utf8Path, listed: &HashSet<&str>, stamps: &Stamps) -> bool {
    let Some(owner) = Partial::owner(rel.file_name().unwrap_or_default()) else {
        return false;
    };
    let beside = rel.with_file_name(owner);
    listed.contains(beside.as_str()) || stamps.get(beside.as_str()).is_some() || beside == STATE_FILE
}
