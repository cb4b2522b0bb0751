//! `models add URL`: pin a new model from its URL.
//!
//! The file comes through the normal download path (retries, resume, sniffing, progress),
//! its size and sha256 are computed in the same pass (or checked against `--sha256`),
//! it is installed, and a `[[model]]` entry is appended to models.toml as text,
//! so every existing comment, blank line and ordering stays byte for byte. Mistakes
//! (a duplicate name or path, a bad path or URL) are refused before any download.
//!
//! Several `add`s may run at once on one manifest: each holds its destination's lock
//! for the whole run, and writes the manifest under the manifest's lock, to the text as
//! it is then (read again inside), so no entry is lost. The file is placed only where
//! nothing is: a file that appeared at the destination during the download is left as
//! it is, and nothing is pinned.

use std::fs;

use camino::{Utf8Path, Utf8PathBuf};

use crate::commands::{Context, Report};
use crate::engine::check;
use crate::engine::install;
use crate::engine::manifest::{self, Manifest, Model};
use crate::engine::settings::Settings;
use crate::engine::transfer::{Downloader, Expect, Job};
use crate::error::{Class, Error, IoContext, Origin, Result};
use crate::source::Source;
use crate::store::fs::{check_inside, free_space, write_atomically};
use crate::store::lock::{self, Mode};
use crate::store::partial::Partial;
use crate::store::stamp::Stamps;

/// What the first `add` of a project writes before appending its entry.
pub(crate) const NEW_MANIFEST: &str =
    "# The model files this project needs, pinned. `add URL` appends one; `fetch` gets them all.\n";

/// `--max-size` when not given: larger than any checkpoint, small enough that an endless
/// body cannot fill a disk unnoticed.
pub(crate) const DEFAULT_MAX_SIZE: u64 = 64 << 30;

#[derive(Clone, Debug, Default)]
pub(crate) struct Request {
    pub urls: Vec<String>,
    pub name: Option<String>,
    pub path: Option<String>,
    pub group: Option<String>,
    pub optional: bool,
    pub sha256: Option<String>,
    pub dry_run: bool,
    /// The most bytes the download may bring.
    pub max_size: u64,
}

/// What `add` will write to the manifest, before the file's size and hash are known.
struct Entry {
    name: String,
    path: Utf8PathBuf,
    urls: Vec<Source>,
    group: Option<String>,
    optional: bool,
}

pub(crate) fn run(cx: &Context, request: Request, settings: &Settings) -> Result<Report> {
    let entry = plan_entry(cx, &request)?;
    let dest = cx.checkpoints.join(&entry.path);
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(Error::usage(format!(
            "{dest} already exists and is not the tool's: move it away, or choose another --path"
        )));
    }
    check_inside(&cx.checkpoints, &dest).at("write inside", &cx.checkpoints)?;
    // A dry run works in a folder of its own and leaves the checkpoints folder as it was;
    // a real one holds the folder lock like fetch, so `clean` leaves its partial alone.
    let scratch = request.dry_run.then(|| Scratch::new(&entry.name)).transpose()?;
    let _folder = match &scratch {
        Some(_) => None,
        None => cx.share_checkpoints()?,
    };
    // Another `add` of the same path waits, then finds the path pinned.
    let _path = match &scratch {
        Some(_) => None,
        None => {
            let waiting = format!("waiting for another `add` of {}", entry.path);
            let lock_path = lock::path_lock(&cx.checkpoints, &entry.path);
            Some(lock::acquire(&lock_path, Mode::Exclusive, cx.on_wait(&waiting))?)
        }
    };
    let work_dir =
        scratch.as_ref().map_or_else(|| dest.parent().unwrap_or(&cx.checkpoints).to_owned(), |s| s.0.clone());
    // Bytes collect in a partial and reach `dest` only once pinned: nothing a user had
    // is touched, whatever happens.
    let file_name = entry.path.file_name().unwrap_or("model");
    // However large the file, it must fit where it is written.
    let free = free_space(&work_dir).unwrap_or(u64::MAX);
    let job = Job {
        expect: Expect::Unknown { max_size: request.max_size.min(free) },
        sources: entry.urls.iter().cloned().map(Origin::Url).collect(),
        partial: Partial::for_add(&work_dir, file_name),
    };
    let downloader = Downloader::new(settings);
    let fetched = match downloader.fetch(&job, &mut cx.listener(&entry.name)) {
        Ok(fetched) => fetched,
        Err(failed) => {
            for tried in &failed.tried {
                // Without a pin, too large is add's own ceiling, which the user may raise.
                let hint = match tried.fault.class {
                    Class::Oversize => {
                        "the file is larger than `--max-size` (or the free space) allows: raise `--max-size` if it is meant to be this large"
                    }
                    class => class.hint(),
                };
                cx.reporter.error(&format!("error: {}: {}\n  hint: {hint}", &tried.site, tried.fault));
            }
            return Ok(Report { ok: 0, failed: 1 });
        }
    };
    if let Some(expected) = &request.sha256
        && fetched.sha256 != expected.to_ascii_lowercase()
    {
        job.partial.discard();
        cx.reporter.error(&format!(
            "error: the download's sha256 is {}, not the {expected} given with --sha256; nothing was pinned",
            fetched.sha256
        ));
        return Ok(Report { ok: 0, failed: 1 });
    }
    let model = Model {
        name: entry.name,
        path: entry.path,
        size: fetched.size,
        sha256: fetched.sha256.clone(),
        urls: entry.urls,
        group: entry.group,
        optional: entry.optional,
    };
    let text = entry_text(&model);
    if scratch.is_some() {
        cx.say(text.trim_end());
        return Ok(Report { ok: 1, failed: 0 });
    }
    let pinned = pin_and_place(cx, &model, &text, || {
        install::checked_new(&fetched.file, &job.partial, &dest).at("install the file at", &dest)
    });
    if let Err(e) = pinned {
        job.partial.discard();
        return Err(e);
    }
    // The stamp comes from the file just renamed, open: it cannot describe another one.
    let stamp = check::stamp_of(&model.sha256, &fetched.file).map(|s| (model.path.to_string(), s));
    let _ = Stamps::record(&cx.checkpoints, stamp.into_iter().collect());
    cx.say(&format!(
        "pinned {} ({} bytes, sha256 {}) in {} and installed it at {dest}",
        model.name, model.size, model.sha256, cx.manifest_path
    ));
    Ok(Report { ok: 1, failed: 0 })
}

/// A private folder for a dry run's download, removed when the run ends.
struct Scratch(Utf8PathBuf);

impl Scratch {
    fn new(name: &str) -> Result<Scratch> {
        let base = Utf8PathBuf::try_from(std::env::temp_dir())
            .map_err(|e| Error::usage(format!("the temp folder's path is not UTF-8: {e}")))?;
        let dir = base.join(format!("xtask-add-{name}-{}", std::process::id()));
        fs::create_dir_all(&dir).at("create the folder", &dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The entry to pin, with size and hash still unknown; refused if it cannot be added.
fn plan_entry(cx: &Context, request: &Request) -> Result<Entry> {
    let mut urls = Vec::with_capacity(request.urls.len());
    for url in &request.urls {
        urls.push(manifest::model_url(url).map_err(|bad| Error::usage(bad.to_string()))?);
    }
    let first = urls.first().ok_or_else(|| Error::usage("give the URL to download"))?;
    let file_name = url_file_name(first);
    let path = match (&request.path, &file_name) {
        (Some(path), _) => path.clone(),
        (None, Some(name)) => name.clone(),
        (None, None) => {
            return Err(Error::usage(format!("cannot tell a file name from {first}; give --path")));
        }
    };
    if let Some(why) = manifest::path_problem(&path) {
        return Err(Error::usage(format!("path {path:?} {why}")));
    }
    let name = request.name.clone().unwrap_or_else(|| default_name(&path));
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return Err(Error::usage(format!(
            "model name {name:?} is not allowed; use letters, digits, '.', '_', '-'"
        )));
    }
    if let Some(hex) = &request.sha256
        && (hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(Error::usage("--sha256 must be 64 hex digits"));
    }
    taken(cx, &cx.manifest, &name, &path)?;
    Ok(Entry {
        name,
        path: Utf8PathBuf::from(path),
        urls,
        group: request.group.clone(),
        optional: request.optional,
    })
}

/// The last path segment of a URL, percent-decoded.
fn url_file_name(url: &Source) -> Option<String> {
    if let Some(path) = url.file_path() {
        return path.file_name().map(str::to_owned);
    }
    url.file_name().filter(|name| name != "." && name != "..")
}

/// `SadTalker_V0.0.2_256.safetensors` → `SadTalker_V0.0.2_256`, with other characters
/// made into `-`.
fn default_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
    let stem = if stem.is_empty() { file } else { stem };
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '-' }).collect()
}

/// The `[[model]]` entry for `model`, keys in the documented order. Strings are written
/// by the toml crate, so any character in a name, path or URL is escaped correctly.
fn entry_text(model: &Model) -> String {
    let string = |text: &str| toml::Value::String(text.to_owned()).to_string();
    let urls: Vec<String> = model.urls.iter().map(|u| string(u.expose())).collect();
    let mut out = format!(
        "[[model]]\nname = {}\npath = {}\nsize = {}\nsha256 = {}\nurls = [{}]\n",
        string(&model.name),
        string(model.path.as_str()),
        model.size,
        string(&model.sha256),
        urls.join(", ")
    );
    if let Some(group) = &model.group {
        out.push_str(&format!("group = {}\n", string(group)));
    }
    if model.optional {
        out.push_str("optional = true\n");
    }
    out
}

/// Appends the entry to the manifest after its last byte, so the existing text
/// (comments, blank lines, order, a trailing comment) stays exactly as it was; the result
/// is parsed again before it is written.
/// Appends `text` (the entry of `model`) to the manifest and places the file with
/// `place`, under the manifest's lock: the manifest is read again inside it, so an entry
/// another `add` wrote meanwhile stays, and a name or path it took first is refused.
/// When the file cannot be placed (something appeared at its destination), the manifest
/// goes back to what it was.
fn pin_and_place(cx: &Context, model: &Model, text: &str, place: impl FnOnce() -> Result<()>) -> Result<()> {
    let manifest = &cx.manifest_path;
    let waiting = format!("waiting for another process writing {manifest}");
    let lock_path = lock::manifest_lock(&cx.checkpoints, manifest);
    let (_held, _) = lock::acquire(&lock_path, Mode::Exclusive, cx.on_wait(&waiting))?;
    let before = fs::read_to_string(manifest).at("read", manifest)?;
    if let Ok(current) = Manifest::parse(&before, manifest) {
        taken(cx, &current, &model.name, model.path.as_str())?;
    }
    let dest = cx.checkpoints.join(&model.path);
    if fs::symlink_metadata(&dest).is_ok() {
        return Err(appeared(&dest));
    }
    append_entry(manifest, &before, text)?;
    match place() {
        Ok(()) => Ok(()),
        Err(e) => {
            // Only this process writes the manifest while it holds the lock.
            write_atomically(manifest, before.as_bytes()).at("restore", manifest)?;
            match e {
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(appeared(&dest))
                }
                e => Err(e),
            }
        }
    }
}

/// A file appeared at `dest` while `add` downloaded.
fn appeared(dest: &Utf8Path) -> Error {
    Error::usage(format!(
        "{dest} appeared while the file was downloading, and is not the tool's: it was left as it is, and nothing was pinned; move it away, or choose another --path"
    ))
}

/// Refuses a name or a path `manifest` already has.
fn taken(cx: &Context, manifest: &Manifest, name: &str, path: &str) -> Result<()> {
    if manifest.find(name).is_some() {
        return Err(Error::usage(format!(
            "{} already has a model named {name:?}; choose another --name",
            cx.manifest_path
        )));
    }
    if manifest.models.iter().any(|m| m.path == path) {
        return Err(Error::usage(format!(
            "{} already pins the path {path:?}; choose another --path",
            cx.manifest_path
        )));
    }
    Ok(())
}

/// Appends `entry` to `text` (the manifest as read under its lock) and writes it whole.
fn append_entry(manifest: &Utf8Path, text: &str, entry: &str) -> Result<()> {
    let separator = match text {
        "" => "",
        t if t.ends_with("\n\n") => "",
        t if t.ends_with('\n') => "\n",
        _ => "\n\n",
    };
    let new_text = format!("{text}{separator}{entry}");
    if let Err(err) = Manifest::parse(&new_text, manifest) {
        return Err(Error::usage(format!("the entry cannot be appended to {manifest}:\n{err}")));
    }
    write_atomically(manifest, new_text.as_bytes()).at("write", manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths_default_from_the_url() {
        assert_eq!(
            url_file_name(&Source::parse("https://h/a/b/GFPGANv1.4.pth?download=true").unwrap()).as_deref(),
            Some("GFPGANv1.4.pth")
        );
        assert_eq!(
            url_file_name(&Source::parse("https://h/a/my%20file.bin").unwrap()).as_deref(),
            Some("my file.bin")
        );
        assert_eq!(url_file_name(&Source::parse("https://h/").unwrap()), None);
        assert_eq!(url_file_name(&Source::parse("file:///tmp/x.bin").unwrap()).as_deref(), Some("x.bin"));
        assert_eq!(default_name("SadTalker_V0.0.2_256.safetensors"), "SadTalker_V0.0.2_256");
        assert_eq!(default_name("my file.bin"), "my-file");
        assert_eq!(default_name(".hidden"), ".hidden");
    }

    #[test]
    fn appending_keeps_the_existing_text_byte_for_byte() {
        let temp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::try_from(temp.path().to_owned()).unwrap();
        let path = dir.join("models.toml");
        let original = format!(
            "# header comment\n\n[[model]]   # trailing\nname = \"a\"  # why\npath = \"a.bin\"\nsize = 1\nsha256 = \"{}\"\nurls = [ \"https://h/a\" ]\n# last words",
            "1".repeat(64)
        );
        std::fs::write(&path, &original).unwrap();
        let model = Model {
            name: "b".into(),
            path: "b.bin".into(),
            size: 2,
            sha256: "2".repeat(64),
            urls: vec![Source::parse("https://h/b").unwrap()],
            group: Some("g".into()),
            optional: true,
        };
        append_entry(&path, &original, &entry_text(&model)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let entry = format!(
            "[[model]]\nname = \"b\"\npath = \"b.bin\"\nsize = 2\nsha256 = \"{}\"\nurls = [\"https://h/b\"]\ngroup = \"g\"\noptional = true\n",
            "2".repeat(64)
        );
        assert_eq!(text, format!("{original}\n\n{entry}"));
    }
}
