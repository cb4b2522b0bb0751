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

/// The stand-in for SadTalker's `inference.py`: it fails unless every file SadTalker's
/// `init_path` takes from `--checkpoint_dir` is there, and the face enhancer's and
/// facexlib's weights are under `gfpgan/weights/` of the working folder (from
/// ../shared/reference/sadtalker-checkpoints.md).
const INFERENCE_PY: &str = r#"import os, sys
args = sys.argv[1:]
d = args[args.index("--checkpoint_dir") + 1]
needed = [os.path.join(d, "SadTalker_V0.0.2_256.safetensors"), os.path.join(d, "mapping_00229-model.pth.tar"),
          os.path.join(d, "mapping_00109-model.pth.tar"), "gfpgan/weights/GFPGANv1.4.pth",
          "gfpgan/weights/detection_Resnet50_Final.pth", "gfpgan/weights/parsing_parsenet.pth",
          "gfpgan/weights/alignment_WFLW_4HG.pth"]
missing = [p for p in needed if not os.path.isfile(p)]
if missing:
    sys.exit("missing: " + ", ".join(missing))
if os.environ.get("MODELS_CHECKPOINTS_DIR") != os.path.abspath(d):
    sys.exit("MODELS_CHECKPOINTS_DIR is " + str(os.environ.get("MODELS_CHECKPOINTS_DIR")))
print("inference ran with every checkpoint in place")
"#;

#[test]
fn the_readme_recipe_runs_sadtalker_from_its_checkout_as_written() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let marker = "<!-- recipe: sadtalker-sh -->\n```sh\n";
    let start = readme.find(marker).expect("the README's recipe") + marker.len();
    let recipe = readme[start..].split("\n```").next().unwrap();
    // THIS: a checkout of the tool whose manifest pins the shipped defaults at their
    // paths, served on loopback (small files); its built binary is the one under test.
    let dir = tempfile::tempdir().unwrap();
    let this = dir.path().join("this");
    let server = tests::Server::start();
    let mut pins = Vec::new();
    for (i, (name, path)) in shipped_defaults().into_iter().enumerate() {
        let data = payload(1000 + i, 570 + i as u64);
        server.script(&format!("/{name}"), vec![Reply::Body(data.clone())]);
        pins.push(tests::Pin::new(&name, &path, &data, &[server.url(&format!("/{name}"))]).to_toml());
    }
    std::fs::create_dir_all(this.join("target/debug")).unwrap();
    std::fs::write(this.join("models.toml"), pins.join("\n")).unwrap();
    std::os::unix::fs::symlink(crate::TOOL, this.join("target/debug/xtask")).unwrap();
    let sadtalker = dir.path().join("SadTalker");
    std::fs::create_dir_all(&sadtalker).unwrap();
    std::fs::write(sadtalker.join("inference.py"), INFERENCE_PY).unwrap();
    // `python` as SadTalker's users have it.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(tests::daemons::find_program("python3").expect("python3"), bin.join("python"))
        .unwrap();
    let script = recipe
        .replace("THIS=/path/to/this/repo", &format!("THIS='{}'", this.display()))
        .replace("cd /path/to/SadTalker", &format!("cd '{}'", sadtalker.display()));
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let ran = std::process::Command::new("sh")
        .args(["-e", "-c", &script])
        .env("PATH", path)
        .env("XTASK_MODELS_CACHE_DIR", dir.path().join("cache"))
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("XTASK_MODELS_MANIFEST")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    assert!(ran.status.success(), "{out}{err}");
    assert!(out.contains("inference ran with every checkpoint in place"), "{out}{err}");
}
