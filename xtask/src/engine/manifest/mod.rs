//! Read `models.toml` into checked [`Model`]s.
//!
//! The manifest is walked by hand over toml's spanned tree rather than through serde, so
//! every problem can name the file, the line, the column and the fix, and all problems
//! are reported at once instead of one per run. Nothing past this module has to doubt a
//! model: names and paths are unique, paths stay inside the checkpoints directory, and
//! every pin is well formed.

use std::collections::HashMap;
use std::ops::Range;

use camino::{Utf8Path, Utf8PathBuf};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::error::{ManifestError, Problem};
use crate::source::Source;

mod rules;

pub(crate) use rules::{edit_distance, line_column, model_url, path_problem};
use rules::{unknown_key_help, windows_problem};

/// The largest `size` a pin may have: 1 PiB is past any checkpoint, and keeps every sum
/// of sizes far from overflowing.
pub(crate) const MAX_SIZE: u64 = 1 << 50;

/// Keys a `[[model]]` table may hold, in the order the docs list them.
pub(crate) const MODEL_KEYS: &[&str] = &["name", "path", "size", "sha256", "urls", "group", "optional"];
const TOP_LEVEL_KEYS: &[&str] = &["model"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    /// Relative to the checkpoints directory, '/'-separated, never escaping it.
    pub path: Utf8PathBuf,
    pub size: u64,
    /// 64 lowercase hex digits.
    pub sha256: String,
    pub urls: Vec<Source>,
    pub group: Option<String>,
    pub optional: bool,
}

impl Model {
    /// The path as this platform writes it (`sub\m.pth` on Windows), for what is shown;
    /// `path` itself stays as the manifest and the records write it.
    pub(crate) fn shown_path(&self) -> String {
        self.path.as_str().replace('/', std::path::MAIN_SEPARATOR_STR)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub models: Vec<Model>,
}

impl Manifest {
    pub fn load(file: &Utf8Path) -> Result<Manifest, ManifestError> {
        let one = |line, column, message: String, help: &str| ManifestError {
            file: file.to_owned(),
            problems: vec![Problem { line, column, message, help: help.to_owned() }],
        };
        let bytes = std::fs::read(file).map_err(|err| {
            one(
                1,
                1,
                format!("cannot read the manifest: {err}"),
                // The command layer says how to name another manifest.
                "",
            )
        })?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => {
                let good = err.utf8_error().valid_up_to();
                let prefix = String::from_utf8_lossy(&err.as_bytes()[..good]).into_owned();
                let (line, column) = line_column(&prefix, good);
                let message =
                    format!("the manifest is not valid UTF-8 (byte {good} cannot start a character)");
                return Err(one(line, column, message, "save models.toml as UTF-8"));
            }
        };
        Manifest::parse(&text, file)
    }

    /// Parses and validates manifest text; `file` is only used in messages.
    pub fn parse(text: &str, file: &Utf8Path) -> Result<Manifest, ManifestError> {
        let mut checker = Checker { text, problems: Vec::new() };
        let manifest = checker.manifest();
        if checker.problems.is_empty() {
            return Ok(manifest);
        }
        Err(ManifestError { file: file.to_owned(), problems: checker.problems })
    }

    pub fn find(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }
}

struct Checker<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl<'t> Checker<'t> {
    fn report(&mut self, span: Range<usize>, message: impl Into<String>, help: impl Into<String>) {
        let (line, column) = line_column(self.text, span.start);
        self.problems.push(Problem { line, column, message: message.into(), help: help.into() });
    }

    fn manifest(&mut self) -> Manifest {
        let root = match DeTable::parse(self.text) {
            Ok(root) => root,
            Err(err) => {
                let span = err.span().unwrap_or(0..0);
                let message = format!("not valid TOML: {}", err.message().trim_end());
                self.report(span, message, "fix the syntax; see the example in docs/manifest.md");
                return Manifest::default();
            }
        };
        let mut manifest = Manifest::default();
        for (key, value) in root.get_ref() {
            if key.get_ref() != "model" {
                let help = unknown_key_help(key.get_ref(), TOP_LEVEL_KEYS);
                self.report(key.span(), format!("unknown top-level key `{}`", key.get_ref()), help);
                continue;
            }
            let DeValue::Array(entries) = value.get_ref() else {
                self.report(
                    value.span(),
                    "`model` must be an array of tables",
                    "write each model as a `[[model]]` table",
                );
                continue;
            };
            for entry in entries.iter() {
                if let Some(model) = self.model(entry) {
                    manifest.models.push(model);
                }
            }
        }
        if let Some(DeValue::Array(entries)) = root.get_ref().get("model").map(|v| v.get_ref()) {
            self.check_unique(&manifest, entries);
        }
        manifest
    }

    fn model(&mut self, entry: &Spanned<DeValue<'_>>) -> Option<Model> {
        let DeValue::Table(table) = entry.get_ref() else {
            self.report(entry.span(), "each `model` entry must be a table", "write it as `[[model]]`");
            return None;
        };
        let header = entry.span();
        for key in table.keys() {
            if !MODEL_KEYS.contains(&key.get_ref().as_ref()) {
                let help = unknown_key_help(key.get_ref(), MODEL_KEYS);
                self.report(key.span(), format!("unknown key `{}` in [[model]]", key.get_ref()), help);
            }
        }
        let name =
            self.string(table, "name", &header, true).and_then(|(v, span)| self.name("model", v, span));
        let path = self.string(table, "path", &header, true).and_then(|(v, span)| self.path(v, span));
        let size = self.size(table, &header);
        let sha256 = self.string(table, "sha256", &header, true).and_then(|(v, span)| self.sha256(v, span));
        let urls = self.urls(table, &header);
        let group = match self.string(table, "group", &header, false) {
            Some((v, span)) => Some(self.name("group", v, span)?),
            None => None,
        };
        let optional = self.optional(table);
        Some(Model {
            name: name?,
            path: path?,
            size: size?,
            sha256: sha256?,
            urls: urls?,
            group,
            optional: optional?,
        })
    }

    /// A string value; a missing required key is reported at the table header.
    fn string(
        &mut self,
        table: &DeTable<'_>,
        key: &str,
        header: &Range<usize>,
        required: bool,
    ) -> Option<(String, Range<usize>)> {
        let Some(value) = table.get(key) else {
            if required {
                self.report(
                    header.clone(),
                    format!("[[model]] is missing the required key `{key}`"),
                    format!("add `{key} = ...`; every model needs {}", required_keys()),
                );
            }
            return None;
        };
        match value.get_ref() {
            DeValue::String(s) => Some((s.to_string(), value.span())),
            other => {
                self.report(
                    value.span(),
                    format!("`{key}` must be a string, not {}", other.type_str()),
                    format!("quote it: {key} = \"...\""),
                );
                None
            }
        }
    }

    /// A model's or a group's name (`what`), if it uses only the allowed characters.
    fn name(&mut self, what: &str, name: String, span: Range<usize>) -> Option<String> {
        if name.is_empty() || !name.chars().all(is_name_char) {
            self.report(
                span,
                format!("{what} name {name:?} is not allowed"),
                "use only letters, digits, '.', '_' and '-'",
            );
            return None;
        }
        Some(name)
    }

    fn path(&mut self, path: String, span: Range<usize>) -> Option<Utf8PathBuf> {
        if let (None, Some(why)) = (path_problem(&path), windows_problem(&path)) {
            self.report(
                span,
                format!("path {path:?} {why}: Windows users of this manifest could not fetch it"),
                "rename it to a name every platform can hold",
            );
            return None;
        }
        match path_problem(&path) {
            None => Some(Utf8PathBuf::from(path)),
            Some(why) => {
                self.report(
                    span,
                    format!("path {path:?} {why}"),
                    "use a relative path inside the checkpoints directory with '/' separators, e.g. \"gfpgan/weights/GFPGANv1.4.pth\"",
                );
                None
            }
        }
    }

    fn size(&mut self, table: &DeTable<'_>, header: &Range<usize>) -> Option<u64> {
        let Some(value) = table.get("size") else {
            self.report(
                header.clone(),
                "[[model]] is missing the required key `size`",
                "add `size = BYTES` (the exact file size, e.g. from `stat -c %s FILE`)",
            );
            return None;
        };
        let parsed = match value.get_ref() {
            DeValue::Integer(int) => u64::from_str_radix(&int.as_str().replace('_', ""), int.radix()).ok(),
            _ => None,
        };
        match parsed {
            Some(0) => {
                self.report(value.span(), "`size` is 0", "pin the real size in bytes; it must be > 0");
                None
            }
            Some(size) if size > MAX_SIZE => {
                self.report(
                    value.span(),
                    format!("`size` is {size} bytes, more than any checkpoint (at most {MAX_SIZE}, 1 PiB)"),
                    "pin the real size in bytes",
                );
                None
            }
            Some(size) => Some(size),
            None => {
                self.report(
                    value.span(),
                    format!("`size` must be a positive whole number of bytes, not {}", value_text(value)),
                    "write the exact size in bytes, e.g. size = 725066984",
                );
                None
            }
        }
    }

    fn sha256(&mut self, hex: String, span: Range<usize>) -> Option<String> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            self.report(
                span,
                format!("`sha256` must be 64 hex digits, found {} characters", hex.chars().count()),
                "paste the output of `sha256sum FILE` (the first column)",
            );
            return None;
        }
        Some(hex.to_ascii_lowercase())
    }

    fn urls(&mut self, table: &DeTable<'_>, header: &Range<usize>) -> Option<Vec<Source>> {
        let Some(value) = table.get("urls") else {
            self.report(
                header.clone(),
                "[[model]] is missing the required key `urls`",
                "add `urls = [\"https://...\"]`: one or more sources, tried in order",
            );
            return None;
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.report(
                value.span(),
                "`urls` must be an array of strings",
                "write urls = [\"https://...\"], even for a single URL",
            );
            return None;
        };
        if items.is_empty() {
            self.report(value.span(), "`urls` is empty", "list at least one URL to download from");
            return None;
        }
        let mut urls = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            let DeValue::String(url) = item.get_ref() else {
                self.report(item.span(), "each URL must be a string", "quote it");
                ok = false;
                continue;
            };
            match model_url(url) {
                Ok(source) => urls.push(source),
                Err(bad) => {
                    self.report(item.span(), bad.to_string(), "use an https://, http:// or file:// URL");
                    ok = false;
                }
            }
        }
        ok.then_some(urls)
    }

    fn optional(&mut self, table: &DeTable<'_>) -> Option<bool> {
        let Some(value) = table.get("optional") else {
            return Some(false);
        };
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.report(
                    value.span(),
                    format!("`optional` must be true or false, not {}", value_text(value)),
                    "write optional = true (fetched only when selected) or leave it out",
                );
                None
            }
        }
    }

    /// Duplicate names and paths, and paths that would need a file to also be a folder.
    fn check_unique(&mut self, manifest: &Manifest, entries: &DeArray<'_>) {
        for (key, help) in [
            ("name", "give every model a unique name"),
            ("path", "two models cannot share a file; give each its own path"),
        ] {
            let mut first_lines: HashMap<&str, usize> = HashMap::new();
            for value in entries.iter().filter_map(|e| e.get_ref().as_table()?.get(key)) {
                let Some(text) = value.get_ref().as_str() else {
                    continue;
                };
                let (line, _) = line_column(self.text, value.span().start);
                match first_lines.get(text) {
                    Some(first) => self.report(
                        value.span(),
                        format!("duplicate {key} {text:?} (first used on line {first})"),
                        help,
                    ),
                    None => {
                        first_lines.insert(text, line);
                    }
                }
            }
        }
        // Two paths that differ only in case are one file on Windows and on macOS's
        // default disk: the second would overwrite the first there.
        let mut folded: HashMap<String, (&str, usize)> = HashMap::new();
        for value in entries.iter().filter_map(|e| e.get_ref().as_table()?.get("path")) {
            let Some(text) = value.get_ref().as_str() else { continue };
            let (line, _) = line_column(self.text, value.span().start);
            match folded.get(&text.to_lowercase()) {
                Some((first, first_line)) if *first != text => self.report(
                    value.span(),
                    format!(
                        "path {text:?} differs from {first:?} (line {first_line}) only in case: on Windows and on macOS's default disk they are one file"
                    ),
                    "give the two models paths that differ in more than case",
                ),
                Some(_) => {}
                None => {
                    folded.insert(text.to_lowercase(), (text, line));
                }
            }
        }
        for outer in &manifest.models {
            for inner in &manifest.models {
                let rest = inner.path.as_str().strip_prefix(outer.path.as_str());
                if !rest.is_some_and(|rest| rest.starts_with('/')) {
                    continue;
                }
                let span = entries
                    .iter()
                    .filter_map(|e| e.get_ref().as_table()?.get("path"))
                    .find(|v| v.get_ref().as_str() == Some(inner.path.as_str()))
                    .map_or(0..0, |v| v.span());
                self.report(
                    span,
                    format!("path {:?} lies inside {:?}, which is a file", inner.path, outer.path),
                    "a path cannot be both a file and a folder; rename one of them",
                );
            }
        }
    }
}

fn required_keys() -> String {
    "name, path, size, sha256 and urls".to_owned()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

fn value_text(value: &Spanned<DeValue<'_>>) -> String {
    match value.get_ref() {
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::String(s) => format!("{s:?}"),
        DeValue::Boolean(b) => b.to_string(),
        other => other.type_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[model]]
name = "a"
path = "dir/a.bin"
size = 3
sha256 = "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
urls = ["https://example.invalid/a.bin", "file:///tmp/a.bin"]
group = "g"

[[model]]
name = "b"
path = "b.bin"
size = 1_000
sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
urls = ["http://127.0.0.1:1/b"]
optional = true
"#;

    fn problems(text: &str) -> Vec<Problem> {
        Manifest::parse(text, Utf8Path::new("m.toml")).unwrap_err().problems
    }

    fn replace_in_good(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "{from}");
        GOOD.replacen(from, to, 1)
    }

    #[test]
    fn a_good_manifest_parses_with_normalised_hashes() {
        let m = Manifest::parse(GOOD, Utf8Path::new("m.toml")).unwrap();
        assert_eq!(m.models.len(), 2);
        assert_eq!(m.models[0].sha256, m.models[1].sha256);
        assert_eq!(m.models[0].group.as_deref(), Some("g"));
        assert_eq!(m.models[1].size, 1000);
        assert!(m.models[1].optional && !m.models[0].optional);
    }

    #[test]
    fn an_unknown_key_names_its_line_and_the_nearest_key() {
        let p = problems(&replace_in_good("sha256 = \"BA", "sha265 = \"BA"));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].line, p[0].column), (6, 1));
        assert!(p[0].message.contains("sha265"));
        assert!(p[0].help.contains("did you mean `sha256`"));
        assert!(p[1].message.contains("missing the required key `sha256`"));
        assert_eq!(p[1].line, 2);
    }

    #[test]
    fn every_field_problem_is_reported_at_once() {
        let text = replace_in_good("size = 3", "size = 0")
            .replace("urls = [\"http://127.0.0.1:1/b\"]", "urls = []")
            .replace("name = \"b\"", "name = \"b c\"");
        let p = problems(&text);
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![5, 11, 15], "{p:?}");
    }

    #[test]
    fn bad_hashes_sizes_and_urls_are_refused() {
        for (from, to, needle) in [
            ("\"ba7816", "\"zz7816", "64 hex digits"),
            ("size = 1_000", "size = -5", "positive whole number"),
            ("size = 1_000", "size = \"1000\"", "positive whole number"),
            ("\"http://127.0.0.1:1/b\"", "\"ftp://x/b\"", "unsupported scheme"),
            ("\"http://127.0.0.1:1/b\"", "\"127.0.0.1/b\"", "no scheme"),
            ("\"http://127.0.0.1:1/b\"", "\"https:///b\"", "no host"),
            ("\"http://127.0.0.1:1/b\"", "\"file://relative/b\"", "absolute file://"),
            ("optional = true", "optional = \"yes\"", "true or false"),
        ] {
            let p = problems(&replace_in_good(from, to));
            assert!(p.iter().any(|p| p.message.contains(needle)), "{to}: {p:?}");
        }
    }

    #[test]
    fn paths_that_escape_the_checkpoints_dir_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/./b", "a\\\\b", "C:/x", "~/x", "a//b", "a/", ""] {
            let p = problems(&replace_in_good("b.bin", bad));
            assert!(p.iter().any(|p| p.message.starts_with("path")), "{bad}: {p:?}");
        }
    }

    #[test]
    fn paths_windows_cannot_hold_are_errors_with_their_position() {
        let p = problems(&replace_in_good("path = \"b.bin\"", "path = \"aux.bin\""));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, 12);
        assert!(p[0].message.contains("reserved device name") && p[0].message.contains("Windows"), "{p:?}");
        let p = problems(&replace_in_good("path = \"b.bin\"", "path = \"DIR/A.BIN\""));
        assert!(p.iter().any(|p| p.message.contains("only in case")), "{p:?}");
    }

    #[test]
    fn duplicates_point_at_the_second_use_and_name_the_first() {
        let p = problems(&replace_in_good("name = \"b\"", "name = \"a\""));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, 11);
        assert!(p[0].message.contains("first used on line 3"), "{p:?}");
        let p = problems(&replace_in_good("path = \"b.bin\"", "path = \"dir/a.bin\""));
        assert!(p[0].message.contains("duplicate path"));
        let p = problems(&replace_in_good("path = \"b.bin\"", "path = \"dir/a.bin/b\""));
        assert!(p[0].message.contains("lies inside"), "{p:?}");
    }

    #[test]
    fn syntax_errors_and_stray_keys_have_positions() {
        let p = problems("[[model]\nname = 1");
        assert_eq!(p[0].line, 1);
        assert!(p[0].message.starts_with("not valid TOML"));
        let p = problems("modle = 3\n");
        assert!(p[0].help.contains("did you mean `model`"), "{p:?}");
        let p = problems("model = 3\n");
        assert!(p[0].message.contains("array of tables"));
    }

    #[test]
    fn an_empty_manifest_is_valid() {
        assert!(Manifest::parse("# nothing pinned yet\n", Utf8Path::new("m")).unwrap().models.is_empty());
    }

    #[test]
    fn line_column_counts_characters() {
        assert_eq!(line_column("ab\ncdé", 6), (2, 4));
        assert_eq!(line_column("x", 99), (1, 2));
    }
}
