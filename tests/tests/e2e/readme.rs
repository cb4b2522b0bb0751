//! The README's screens (and the reference's tables) are what the tool really prints: a test runs the same
//! fetches and compares, numbers, URLs and the checkpoints folder's location aside.

use std::path::{Path, PathBuf};

use tests::{Reply, payload};

use crate::{sandbox, scenario};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// The fenced block after `<!-- screen: NAME -->` in the README.
fn readme_screen(name: &str) -> String {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let marker = format!("<!-- screen: {name} -->\n```text\n");
    let start =
        readme.find(&marker).unwrap_or_else(|| panic!("the README has no screen {name}")) + marker.len();
    readme[start..].split("\n```").next().unwrap().to_owned()
}

/// Lines as compared: URLs, numbers, units and the folder holding `checkpoints/` aside,
/// in sorted order (models are fetched in parallel).
fn normalized(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .map(|line| {
            let words: Vec<String> = line
                .split(' ')
                .map(|word| {
                    let word = if word.contains("://") {
                        "URL".to_owned()
                    } else if let Some(at) = word.find("checkpoints/") {
                        word[at..].to_owned()
                    } else {
                        word.to_owned()
                    };
                    let word = ["KiB", "MiB", "GiB", "TiB"].iter().fold(word, |w, unit| w.replace(unit, "B"));
                    let mut out = String::new();
                    for c in word.chars() {
                        let digit = c.is_ascii_digit() || (c == '.' && out.ends_with('#'));
                        if !digit {
                            out.push(c);
                        } else if !out.ends_with('#') {
                            out.push('#');
                        }
                    }
                    out
                })
                .collect();
            words.join(" ")
        })
        .collect();
    lines.sort();
    lines
}

/// The default models of the shipped manifest: name and path.
fn shipped_defaults() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("models.toml")).unwrap();
    let value = |block: &str, key: &str| {
        let line = block.lines().find(|l| l.trim_start().starts_with(&format!("{key} =")))?;
        Some(line.split_once('=')?.1.trim().trim_matches('"').to_owned())
    };
    text.split("\n[[model]]\n")
        .skip(1)
        .filter(|block| value(block, "optional").as_deref() != Some("true"))
        .map(|block| (value(block, "name").unwrap(), value(block, "path").unwrap()))
        .collect()
}

#[test]
fn the_readme_shows_what_a_first_fetch_prints() {
    let sc = scenario();
    for (i, (name, path)) in shipped_defaults().iter().enumerate() {
        let data = payload(1000 + i, 900 + i as u64);
        sc.serve(&format!("/{name}"), vec![Reply::Body(data.clone())]);
        sc.pin(name, path, &data, &[&format!("/{name}")]);
    }
    let run = sc.models(&["fetch"]);
    run.expect(0);
    let screen = readme_screen("fetch-success");
    assert_eq!(
        normalized(&run.output()),
        normalized(&screen),
        "the README's success screen is current:\n{}",
        run.output()
    );
}

#[test]
fn the_readme_shows_what_a_fetch_without_network_prints() {
    let mut sb = sandbox();
    std::fs::copy(repo().join("models.toml"), &sb.manifest).unwrap();
    // No network, on loopback: every request goes to a proxy nobody listens on.
    let dead = tests::daemons::DeadPort::hold();
    let proxy = dead.url();
    sb.set_env("HTTPS_PROXY", &proxy);
    let run = sb.models(&["fetch", "--retries", "0"]);
    run.expect(1);
    let screen = readme_screen("fetch-failure");
    assert_eq!(
        normalized(&run.output()),
        normalized(&screen),
        "the README's failure screen is current:\n{}",
        run.output()
    );
}

#[test]
fn every_command_of_the_old_scripts_table_is_one_the_tool_takes() {
    let page = std::fs::read_to_string(repo().join("docs/manifest.md")).unwrap();
    let table = page.split("<!-- table: old-scripts -->").nth(1).expect("the table is in docs/manifest.md");
    let lines = table.lines().skip_while(|l| !l.starts_with('|'));
    // Past the header and its rule.
    let rows: Vec<&str> = lines.skip(2).take_while(|l| l.starts_with('|')).collect();
    assert!(rows.len() >= 10, "{rows:?}");
    let sb = sandbox();
    for row in rows {
        let here = row.split('|').nth(2).unwrap();
        let command = here.split('`').nth(1).unwrap_or_else(|| panic!("a command in {row}"));
        let words: Vec<&str> = command.strip_prefix("cargo xtask ").expect(command).split(' ').collect();
        // `--help` before any `--`, which hands the rest to another program.
        let split = words.iter().position(|w| *w == "--").unwrap_or(words.len());
        let mut args: Vec<String> = words[..split].iter().map(|w| (*w).to_owned()).collect();
        args.push("--help".into());
        let run = sb.run_raw(&args);
        assert_eq!(run.code, 0, "`{command}` is a command the tool takes: {}", run.stderr);
    }
}

#[test]
fn a_test_whose_part_is_missing_says_so_in_the_default_output() {
    // The README promises one loud SKIPPED line where `cargo test` shows it, not only
    // under `--nocapture`: the Windows tests, told their build is elsewhere, skip.
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["windows::run_on_windows_passes_the_whole_exit_code_on", "--exact"])
        .env("XTASK_WINDOWS_EXE", "/nonexistent/xtask.exe")
        .env_remove("CI")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
    assert!(child.status.success(), "{out}{err}");
    assert!(out.contains("1 passed"), "{out}");
    assert!(err.contains("SKIPPED windows_run_exit_code: no Windows build under wine"), "{out}{err}");
}
