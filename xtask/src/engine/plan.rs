//! Which models, where they go, and what each one needs.
//!
//! A plan is the selected models with their destinations and what is on disk there now.
//! Building it touches no network; fetch then downloads exactly the models whose state
//! is not present, after checking that they fit on the disk.

use camino::{Utf8Path, Utf8PathBuf};

use crate::engine::check::{self, LocalState};
use crate::engine::manifest::{Manifest, Model, edit_distance};
use crate::engine::workers;
use crate::error::{Error, Origin};
use crate::source::{BadSource, Kind, Source};
use crate::store::fs::free_space;
use crate::store::stamp::Stamps;

/// What the user asked for on the command line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Selection {
    pub models: Vec<String>,
    pub groups: Vec<String>,
    /// Every model, optional ones included.
    pub all: bool,
}

/// Picks models in manifest order. Without names or groups: every non-optional model,
/// or every model with `all`. Names and groups select exactly what they name; a model
/// may also be named by its file name or its path (`GFPGANv1.4.pth`,
/// `gfpgan/weights/GFPGANv1.4.pth`), as the scripts this tool replaces took it.
pub(crate) fn select<'m>(manifest: &'m Manifest, selection: &Selection) -> Result<Vec<&'m Model>, Error> {
    let mut named = Vec::with_capacity(selection.models.len());
    for asked in &selection.models {
        // A glob (`'sadtalker-*'`) names every model whose name it matches, at least one.
        if asked.contains(['*', '?']) {
            let matched: Vec<&str> = manifest
                .models
                .iter()
                .filter(|m| glob_matches(asked, &m.name))
                .map(|m| m.name.as_str())
                .collect();
            if matched.is_empty() {
                return Err(Error::Usage(format!("no model name matches {asked:?}{NO_SUCH_MODEL}")));
            }
            named.extend(matched);
            continue;
        }
        named.push(resolve_model(manifest, asked)?.name.as_str());
    }
    for group in &selection.groups {
        if !manifest.models.iter().any(|m| m.group.as_deref() == Some(group)) {
            let mut known: Vec<&str> = manifest.models.iter().filter_map(|m| m.group.as_deref()).collect();
            known.sort_unstable();
            known.dedup();
            let close = closest(group, known.iter().map(|g| (*g, *g)));
            let hint = match close.as_slice() {
                [] => format!("known groups: {}", known.join(", ")),
                close => format!(
                    "did you mean {}?",
                    close.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" or ")
                ),
            };
            return Err(Error::Usage(format!("no group named {group:?} in the manifest; {hint}")));
        }
    }
    let explicit = !selection.models.is_empty() || !selection.groups.is_empty();
    let picked = manifest.models.iter().filter(|m| {
        if explicit {
            named.contains(&m.name.as_str()) || m.group.as_ref().is_some_and(|g| selection.groups.contains(g))
        } else {
            selection.all || !m.optional
        }
    });
    Ok(picked.collect())
}

/// Whether `name` matches the shell-style `pattern`: `*` any run of characters, `?` one.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // The classic two-pointer match with one backtrack point for the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(at) = star {
            i = at + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

/// The model `asked` names: by name, by path (a leading `./` or `checkpoints/` aside), or
/// by the file name of exactly one model.
fn resolve_model<'m>(manifest: &'m Manifest, asked: &str) -> Result<&'m Model, Error> {
    if let Some(model) = manifest.find(asked) {
        return Ok(model);
    }
    let path = asked.replace('\\', "/");
    let path = path.trim_start_matches("./");
    let path = path.strip_prefix("checkpoints/").unwrap_or(path);
    if let Some(model) = manifest.models.iter().find(|m| m.path.as_str() == path) {
        return Ok(model);
    }
    let by_file: Vec<&Model> = manifest.models.iter().filter(|m| m.path.file_name() == Some(path)).collect();
    match by_file.as_slice() {
        [model] => return Ok(model),
        [] => {}
        several => {
            let which: Vec<String> = several.iter().map(|m| format!("{} ({})", m.name, m.path)).collect();
            return Err(Error::Usage(format!(
                "{asked:?} is the file name of {} models: {}; name one of them",
                several.len(),
                which.join(", ")
            )));
        }
    }
    let candidates = manifest.models.iter().flat_map(|m| {
        [(m.name.as_str(), m.name.as_str()), (m.path.file_name().unwrap_or(""), m.name.as_str())]
    });
    let close = closest(asked, candidates);
    let hint = match close.as_slice() {
        [] => return Err(Error::Usage(format!("no model named {asked:?} in the manifest{NO_SUCH_MODEL}"))),
        close => {
            let which: Vec<String> = close
                .iter()
                .filter_map(|name| manifest.find(name))
                .map(|m| format!("`{}` ({})", m.name, m.path))
                .collect();
            format!("did you mean {}?", which.join(" or "))
        }
    };
    Err(Error::Usage(format!("no model named {asked:?} in the manifest{NO_SUCH_MODEL}; {hint}")))
}

/// How the error for a model nothing resembles ends: the command layer adds the
/// command that lists them.
pub(crate) const NO_SUCH_MODEL: &str = ", nor a model with that file";

/// The (up to three) values whose keys are closest to `asked`, when close enough to be
/// what was meant: case aside, a few edits, or one containing the other.
fn closest<'k>(asked: &str, candidates: impl Iterator<Item = (&'k str, &'k str)>) -> Vec<&'k str> {
    let asked = asked.to_ascii_lowercase();
    let mut scored: Vec<(usize, &str)> = candidates
        .filter(|(key, _)| !key.is_empty())
        .filter_map(|(key, value)| {
            let key = key.to_ascii_lowercase();
            let distance = edit_distance(&asked, &key);
            let shorter = asked.len().min(key.len());
            let contains = shorter >= 3 && (key.contains(&asked) || asked.contains(&key));
            let close = contains || distance * 3 <= asked.len().max(key.len());
            close.then_some((if contains { 0 } else { distance }, value))
        })
        .collect();
    scored.sort();
    let mut out: Vec<&str> = Vec::new();
    for (_, value) in scored {
        if !out.contains(&value) && out.len() < 3 {
            out.push(value);
        }
    }
    out
}

/// One selected model, where it goes, and what is there now.
pub(crate) struct Step<'m> {
    pub model: &'m Model,
    pub dest: Utf8PathBuf,
    pub state: LocalState,
}

/// How much to trust what is on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trust {
    /// Presence only (`--skip-checks`).
    Presence,
    /// Unchanged stamped files are trusted; the rest is hashed.
    Stamps,
    /// Everything is hashed (`verify --full`).
    Hash,
}

pub(crate) fn destination(checkpoints: &Utf8Path, model: &Model) -> Utf8PathBuf {
    // Component by component: the manifest's `/` becomes the platform's separator, so a
    // path is printed, logged and written to JSON as the platform writes it.
    let mut dest = checkpoints.to_owned();
    dest.extend(model.path.as_str().split('/'));
    dest
}

/// Inspects every selected model's destination, hashing on up to `jobs` threads what
/// `trust` does not let through, and records stamps for the files that hashed right.
pub(crate) fn survey<'m>(
    models: &[&'m Model],
    checkpoints: &Utf8Path,
    trust: Trust,
    jobs: usize,
) -> Vec<Step<'m>> {
    let stamps = (trust == Trust::Stamps).then(|| Stamps::load(checkpoints));
    let inspected = workers::map(models, jobs, |&model| {
        let dest = destination(checkpoints, model);
        let (state, fresh) = check::inspect(model, &dest, trust == Trust::Presence, stamps.as_ref());
        (Step { model, dest, state }, fresh.map(|stamp| (model.path.to_string(), stamp)))
    });
    let (steps, fresh): (Vec<_>, Vec<_>) = inspected.into_iter().unzip();
    // Stamps only save time later; a read-only folder just goes without.
    let _ = Stamps::record(checkpoints, fresh.into_iter().flatten().collect());
    steps
}

/// Where a model can come from, in the order to try: each mirror (addressed by content,
/// `<mirror>/sha256/<hex>`), then the model's own URLs. Offline, only local sources
/// remain: `file://` URLs and directory mirrors.
pub(crate) fn sources(model: &Model, mirrors: &[Source], offline: bool) -> Vec<Origin> {
    let mirrored = mirrors.iter().map(|mirror| Origin::Mirror(mirror.mirror_entry(&model.sha256)));
    mirrored
        .chain(model.urls.iter().cloned().map(Origin::Url))
        .filter(|origin| !offline || origin.url().kind() == Kind::File)
        .collect()
}

/// Parses a `--mirror` value (or the environment's) before anything runs: an http(s),
/// `file://` or `s3://` URL, or a directory path.
pub(crate) fn parse_mirror(mirror: &str) -> Result<Source, Error> {
    let unsupported = |bad: BadSource| {
        Error::Usage(format!(
            "mirror {:?} {}; use an http(s)://, s3:// or file:// URL or a directory path",
            bad.shown, bad.why
        ))
    };
    Source::mirror(mirror).map_err(unsupported)
}

/// Bytes that must still fit in one folder's filesystem.
#[derive(Clone, Debug)]
pub(crate) struct SpaceNeed {
    pub dir: Utf8PathBuf,
    pub bytes: u64,
}

/// A folder whose filesystem cannot hold what is still to come there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Shortfall {
    pub dir: Utf8PathBuf,
    pub needed: u64,
    pub available: u64,
}

/// Refuses a download that cannot fit, before a byte is written: each folder's
/// filesystem against the bytes still to come there. A filesystem that cannot say is
/// taken at its word: the download itself will report a full disk.
pub(crate) fn check_free_space(needs: &[SpaceNeed]) -> Result<(), Shortfall> {
    for SpaceNeed { dir, bytes: needed } in needs {
        let available = free_space(dir).unwrap_or(u64::MAX);
        if *needed > available {
            return Err(Shortfall { dir: dir.clone(), needed: *needed, available });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_as_a_shell_does() {
        assert!(glob_matches("sadtalker-*", "sadtalker-256"));
        assert!(glob_matches("*-1.4", "gfpgan-1.4"));
        assert!(glob_matches("mapping-00?09", "mapping-00109"));
        assert!(glob_matches("*", "anything"));
        assert!(glob_matches("a*b*c", "a-b-b-c"));
        assert!(!glob_matches("sadtalker-*", "gfpgan-1.4"));
        assert!(!glob_matches("mapping-00?09", "mapping-00229"));
        assert!(!glob_matches("a*b", "a-b-c"));
    }

    fn manifest() -> Manifest {
        let model = |name: &str, group: Option<&str>, optional: bool| Model {
            name: name.into(),
            path: format!("{name}.bin").into(),
            size: 1,
            sha256: "0".repeat(64),
            urls: vec![Source::parse("http://x/").unwrap()],
            group: group.map(Into::into),
            optional,
        };
        Manifest {
            models: vec![
                model("a", Some("core"), false),
                model("b", Some("core"), false),
                model("c", Some("legacy"), true),
                model("d", None, false),
            ],
        }
    }

    fn names(selection: Selection) -> Vec<String> {
        let m = manifest();
        select(&m, &selection).unwrap().iter().map(|m| m.name.clone()).collect()
    }

    #[test]
    fn the_default_selection_skips_optional_models() {
        assert_eq!(names(Selection::default()), ["a", "b", "d"]);
        assert_eq!(names(Selection { all: true, ..Selection::default() }), ["a", "b", "c", "d"]);
    }

    #[test]
    fn names_and_groups_select_exactly_those_in_manifest_order() {
        let s = Selection { models: vec!["d".into()], groups: vec!["legacy".into()], all: false };
        assert_eq!(names(s), ["c", "d"]);
    }

    #[test]
    fn unknown_names_suggest_the_closest_and_groups_list_the_known_ones() {
        let m = manifest();
        let err = select(&m, &Selection { models: vec!["zz".into()], ..Selection::default() }).unwrap_err();
        assert!(err.to_string().ends_with(NO_SUCH_MODEL), "nothing close: {err}");
        let err = select(&m, &Selection { models: vec!["a.bn".into()], ..Selection::default() }).unwrap_err();
        assert!(err.to_string().contains("did you mean `a` (a.bin)?"), "{err}");
        let err = select(&m, &Selection { groups: vec!["zz".into()], ..Selection::default() }).unwrap_err();
        assert!(err.to_string().contains("known groups: core, legacy"), "{err}");
        let err = select(&m, &Selection { groups: vec!["cor".into()], ..Selection::default() }).unwrap_err();
        assert!(err.to_string().contains("did you mean `core`?"), "{err}");
    }

    #[test]
    fn a_model_is_named_by_its_file_name_or_path_when_exactly_one_has_it() {
        let mut m = manifest();
        m.models[1].path = "sub/b.bin".into();
        let by = |asked: &str| names_in(&m, Selection { models: vec![asked.into()], ..Selection::default() });
        assert_eq!(by("b.bin"), ["b"]);
        assert_eq!(by("sub/b.bin"), ["b"]);
        assert_eq!(by("./checkpoints/sub/b.bin"), ["b"]);
        m.models[2].path = "other/b.bin".into();
        let err =
            select(&m, &Selection { models: vec!["b.bin".into()], ..Selection::default() }).unwrap_err();
        assert!(err.to_string().contains("file name of 2 models: b (sub/b.bin), c (other/b.bin)"), "{err}");
        assert_eq!(err.exit_code(), 2);
    }

    fn names_in(m: &Manifest, selection: Selection) -> Vec<String> {
        select(m, &selection).unwrap().iter().map(|m| m.name.clone()).collect()
    }

    #[test]
    fn mirrors_come_first_and_offline_keeps_only_local_sources() {
        let mut m = manifest().models.remove(0);
        let parse = |t: &str| Source::parse(t).unwrap();
        m.urls = vec![parse("https://origin/a"), parse("file:///srv/a")];
        let mirrors: Vec<Source> =
            ["http://m1/", "/var/mirror", "file:///nfs/m"].iter().map(|t| parse_mirror(t).unwrap()).collect();
        let hex = "0".repeat(64);
        let shown: Vec<String> = sources(&m, &mirrors, false).iter().map(|o| o.url().to_string()).collect();
        let mut expected = vec![format!("http://m1/sha256/{hex}")];
        #[cfg(unix)]
        expected.push(format!("file:///var/mirror/sha256/{hex}"));
        #[cfg(not(unix))]
        expected.push(mirrors[1].to_string() + &format!("sha256/{hex}"));
        expected.extend([
            format!("file:///nfs/m/sha256/{hex}"),
            "https://origin/a".into(),
            "file:///srv/a".into(),
        ]);
        assert_eq!(shown, expected);
        assert!(matches!(sources(&m, &mirrors, false)[0], Origin::Mirror(_)));
        assert_eq!(sources(&m, &mirrors, true).len(), 3);
        assert!(parse_mirror("ftp://x").is_err());
        assert!(parse_mirror("relative/dir").is_ok());
        assert!(parse_mirror("s3://models/team").is_ok());
        assert!(parse_mirror("s3:///team").is_err(), "no bucket");
    }

    #[test]
    fn free_space_is_refused_with_both_numbers() {
        let dir = Utf8PathBuf::try_from(std::env::temp_dir()).unwrap().join("no/such/dir/yet");
        let need = |bytes| [SpaceNeed { dir: dir.clone(), bytes }];
        assert!(check_free_space(&need(1)).is_ok());
        let short = check_free_space(&need(u64::MAX)).unwrap_err();
        assert_eq!((short.dir, short.needed), (dir, u64::MAX));
        assert!(short.available < u64::MAX);
    }
}
