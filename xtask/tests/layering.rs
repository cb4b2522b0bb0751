//! The layering rule and the code map, kept by tests so they survive the next
//! contributor. The ranks below are the layering diagram of `ARCHITECTURE.md` (the only
//! one) as code: a file may name (with `use crate::…` or an inline `crate::…` path) files
//! in its own folder and in folders below its own, never above; `net` and `store` never
//! name each other. And no two files name each other, even through others: the import
//! graph has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// How high each folder sits; a file may only name what sits lower (or its own folder).
fn rank(folder: &str) -> Option<u8> {
    Some(match folder {
        "cli" => 8,
        "commands" => 7,
        "ui" => 6,
        // Beside the fetch pipeline, not in it: `mirror`'s uploads and `doctor`'s probes.
        "publish.rs" | "probe.rs" => 5,
        "engine" => 4,
        "net" | "store" => 3,
        "error" => 2,
        "source.rs" | "places.rs" => 1,
        "text.rs" => 0,
        _ => return None,
    })
}

#[test]
fn no_folder_imports_one_above_it_and_no_files_import_each_other_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = rust_files(&src);
    assert!(files.len() > 20, "found the sources: {files:?}");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let rel = rel_name(&src, file);
        let text = std::fs::read_to_string(file).unwrap();
        let targets: BTreeSet<String> = crate_paths(&code_of(&text))
            .iter()
            .filter_map(|p| resolve(&src, p))
            .filter(|t| *t != rel)
            .collect();
        let from = top(&rel);
        for target in &targets {
            let to = top(target);
            if rel == "lib.rs" || rel == "main.rs" || from == to {
                continue;
            }
            let (Some(a), Some(b)) = (rank(&from), rank(&to)) else {
                violations.push(format!("{rel} names {target}: a folder the rule does not know"));
                continue;
            };
            if b >= a {
                violations.push(format!("{rel} ({from}) names {target} ({to}), which is not below it"));
            }
        }
        graph.insert(rel, targets);
    }
    assert!(violations.is_empty(), "layering broken:\n{}", violations.join("\n"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" → "));
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    // A file that grows past this holds more than one idea: give the next one a room.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = rust_files(&src)
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).unwrap().lines().count();
            (lines > 600).then(|| format!("{} ({lines} lines)", rel_name(&src, file)))
        })
        .collect();
    assert!(long.is_empty(), "over 600 lines: {}", long.join(", "));
}

#[test]
fn every_source_file_is_in_the_code_map_and_every_file_it_maps_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("../ARCHITECTURE.md")).unwrap();
    let src = root.join("src");
    let files: BTreeSet<String> = rust_files(&src).iter().map(|f| rel_name(&src, f)).collect();
    let mapped = mapped_files(&map, "## Code map");
    let missing: Vec<&String> = files.difference(&mapped).collect();
    assert!(missing.is_empty(), "files missing from ARCHITECTURE.md's code map: {missing:?}");
    let gone: Vec<&String> = mapped.difference(&files).collect();
    assert!(gone.is_empty(), "ARCHITECTURE.md maps files that do not exist: {gone:?}");
}

#[test]
fn every_end_to_end_module_is_in_the_test_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("../ARCHITECTURE.md")).unwrap();
    let e2e = root.join("../tests/tests/e2e");
    let files: BTreeSet<String> = rust_files(&e2e)
        .iter()
        .map(|f| format!("e2e/{}", rel_name(&e2e, f)))
        .filter(|name| name != "e2e/main.rs")
        .collect();
    let mapped = mapped_files(&map, "## Tests");
    assert_eq!(files, mapped, "ARCHITECTURE.md's test map and tests/tests/e2e differ");
}

#[test]
fn the_life_of_one_fetch_counts_the_types_it_names() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("../ARCHITECTURE.md")).unwrap();
    let life = map.split("## The life of one fetch").nth(1).unwrap_or("");
    let life = life.split("\n## ").next().unwrap_or(life);
    let named: BTreeSet<&str> =
        life.split("**`").skip(1).filter_map(|rest| rest.split("`**").next()).collect();
    let stated = format!("That is {} types", named.len());
    assert!(life.contains(&stated), "the life of one fetch names {} types: {named:?}", named.len());
}

#[test]
fn the_engine_names_no_flag_and_only_the_retry_state_calls_backoff() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        let rel = rel_name(&src, &file);
        let code = code_of(&std::fs::read_to_string(&file).unwrap());
        if rel.starts_with("engine/")
            && let Some(flag) = spelled_flag(&code)
        {
            found.push(format!("{rel} spells {flag}"));
        }
        if rel != "engine/retry.rs" && code.contains("backoff(") {
            found.push(format!("{rel} calls backoff("));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The files a section of the map names: each list item's first `` `path.rs` ``.
fn mapped_files(map: &str, heading: &str) -> BTreeSet<String> {
    let section = map.split(heading).nth(1).unwrap_or("");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("- `"))
        .filter_map(|rest| rest.split('`').next())
        .filter(|path| path.ends_with(".rs"))
        .map(str::to_owned)
        .collect()
}

/// The first `--flag` spelled in a string of `code`, if any (comments are already gone).
fn spelled_flag(code: &str) -> Option<String> {
    code.split('"').skip(1).step_by(2).find_map(|text| {
        let at = text.find("--")?;
        let name: String =
            text[at + 2..].chars().take_while(|c| c.is_ascii_lowercase() || *c == '-').collect();
        (name.len() > 1).then(|| format!("--{name}"))
    })
}

#[test]
fn the_checker_sees_a_violation_and_a_cycle() {
    assert_eq!(spelled_flag("let a = \"x\"; f(\"use --max-size N\")").as_deref(), Some("--max-size"));
    assert_eq!(spelled_flag("let a = 1 -- 2; \"a -- b\""), None);
    let map = "## Code map\n- `a/b.rs`: x\n- `c.rs`: y\n## Life\n- `d.rs`: z\n";
    assert_eq!(mapped_files(map, "## Code map"), BTreeSet::from(["a/b.rs".to_owned(), "c.rs".to_owned()]));
    // The rule's own parts, on made-up input: a test that cannot fail guards nothing.
    let paths =
        crate_paths("use crate::engine::{plan::{self, Step}, check};\nlet x = crate::ui::json::print(1);");
    assert_eq!(paths, ["engine::plan", "engine::plan::Step", "engine::check", "ui::json::print"]);
    assert!(rank("engine") < rank("ui") && rank("net") == rank("store"));
    let mut graph = BTreeMap::new();
    graph.insert("a.rs".to_owned(), BTreeSet::from(["b.rs".to_owned()]));
    graph.insert("b.rs".to_owned(), BTreeSet::from(["a.rs".to_owned()]));
    assert_eq!(find_cycle(&graph).unwrap(), ["a.rs", "b.rs", "a.rs"]);
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn rel_name(src: &Path, file: &Path) -> String {
    file.strip_prefix(src).unwrap().to_string_lossy().replace('\\', "/")
}

/// The folder of a file (`engine/plan.rs` → `engine`), or the file at the root.
fn top(rel: &str) -> String {
    rel.split('/').next().unwrap_or(rel).to_owned()
}

/// The code of a file: comments dropped, tests cut off (they may use anything).
fn code_of(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// Every `crate::…` path, `use` groups expanded, without the `crate::`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let end = path_end(rest);
        expand("", &rest[..end], &mut out);
        rest = &rest[end..];
    }
    out
}

/// Where a path (with any nested `{…}` groups) ends.
fn path_end(text: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            c if depth == 0 && !(c.is_alphanumeric() || c == '_' || c == ':') => return i,
            _ => {}
        }
    }
    text.len()
}

fn expand(prefix: &str, path: &str, out: &mut Vec<String>) {
    let Some(open) = path.find('{') else {
        let full = format!("{prefix}{}", path.trim().trim_end_matches("::"));
        let full = full.split(" as ").next().unwrap_or(&full).trim().to_owned();
        if !full.is_empty() && !full.ends_with("::self") {
            out.push(full);
        } else if let Some(module) = full.strip_suffix("::self") {
            out.push(module.to_owned());
        }
        return;
    };
    let head = format!("{prefix}{}", &path[..open]);
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in inner.char_indices().chain([(inner.len(), ',')]) {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                let item = inner[start..i].trim();
                if !item.is_empty() {
                    expand(&head, item, out);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
}

/// The source file a path names: the longest prefix that is a module file.
fn resolve(src: &Path, path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split("::").collect();
    for n in (1..=segments.len()).rev() {
        let base = segments[..n].join("/");
        for candidate in [format!("{base}.rs"), format!("{base}/mod.rs")] {
            if src.join(&candidate).is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
