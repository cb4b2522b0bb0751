//! `models init [DIR]`: adopt the tool into another repository (a Python project such as
//! SadTalker), touching none of its files.
//!
//! It writes a Cargo workspace of one package beside the project's own files: the root
//! `Cargo.toml`, `xtask/` (the README's three-line `main.rs` over this tool's library),
//! `.cargo/config.toml`'s `xtask` alias, a commented `models.toml`, and `checkpoints/`
//! that git ignores by a `.gitignore` of its own. Any of these that exists already is
//! refused by name (`models.toml` and `checkpoints/` are kept as they are), and nothing
//! is written then. Afterwards `cargo xtask models …` works there.

use camino::{Utf8Path, Utf8PathBuf};

use crate::commands::Report;
use crate::error::{Error, IoContext, Result};
use crate::store::fs::write_atomically;
use crate::text::shell_quote;

/// The package the new workspace's alias runs (not `xtask`: that is the library's name).
const PACKAGE: &str = "project-xtask";

/// Where the adopted workspace gets this tool from.
pub(crate) enum ToolSource {
    /// A checkout of this repository (its root, holding `xtask/`).
    Path(Utf8PathBuf),
    /// A git URL of this repository.
    Git(String),
}

/// The files `init` writes into `dir`, each with its text.
fn files(dir: &Utf8Path, tool: &ToolSource) -> Vec<(Utf8PathBuf, String)> {
    let dependency = match tool {
        ToolSource::Path(root) => format!("xtask = {{ path = {:?} }}", root.join("xtask").as_str()),
        ToolSource::Git(url) => format!("xtask = {{ git = {url:?}, package = \"xtask\" }}"),
    };
    vec![
        (dir.join("Cargo.toml"), "# The model-checkpoint tool's workspace (`cargo xtask models`); the project's own\n# code is not part of it.\n[workspace]\nresolver = \"3\"\nmembers = [\"xtask\"]\n".to_owned()),
        (dir.join("xtask/Cargo.toml"), format!("[package]\nname = \"{PACKAGE}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n[dependencies]\n{dependency}\n")),
        (dir.join("xtask/src/main.rs"), "//! `cargo xtask models …` for this project: its `models.toml`, its `checkpoints/`.\n\nfn main() -> std::process::ExitCode {\n    xtask::run_models(std::env::args_os(), &xtask::Defaults::from_workspace())\n}\n".to_owned()),
        // The build's output stays inside xtask/, which ignores it: the project's own
        // .gitignore is not touched.
        (dir.join("xtask/.gitignore"), "target/\n".to_owned()),
        (dir.join(".cargo/config.toml"), format!("[alias]\nxtask = \"run --quiet --package {PACKAGE} --\"\n\n[build]\ntarget-dir = \"xtask/target\"\n")),
    ]
}

/// The commented manifest a new project starts from.
const MANIFEST: &str = "# The model files this project needs, pinned: `cargo xtask models add URL` appends one\n# (size and sha256 computed from the download); `cargo xtask models fetch` gets them all.\n#\n# [[model]]\n# name = \"gfpgan-1.4\"\n# path = \"gfpgan/weights/GFPGANv1.4.pth\"\n# size = 348632874\n# sha256 = \"e2cd4703ab14f4d01fd1383a8a8b266f9a5833dacee8e6a79d3bf21a1b6be5ad\"\n# urls = [\"https://github.com/TencentARC/GFPGAN/releases/download/v1.3.0/GFPGANv1.4.pth\"]\n";

pub(crate) fn run(dir: &Utf8Path, tool: &ToolSource, say: &dyn Fn(&str)) -> Result<Report> {
    if let ToolSource::Path(root) = tool
        && !root.join("xtask/Cargo.toml").is_file()
    {
        return Err(Error::usage(format!(
            "{root} is not a checkout of this tool: it has no xtask/Cargo.toml"
        )));
    }
    let files = files(dir, tool);
    let taken: Vec<&Utf8PathBuf> = files.iter().map(|(path, _)| path).filter(|p| p.exists()).collect();
    if let Some(first) = taken.first() {
        return Err(Error::usage(format!(
            "{first} exists already: `init` writes only files that are not there, and changed nothing. \
             To adopt the tool by hand, see the README's \"Adopting it in another workspace\""
        )));
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).at("create the folder", parent)?;
        }
        write_atomically(path, text.as_bytes()).at("write", path)?;
        say(&format!("wrote {path}"));
    }
    // The versions this tool was tested with, when it is a checkout at hand.
    if let ToolSource::Path(root) = tool
        && std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).is_ok()
    {
        say(&format!("wrote {} (the versions {root} builds with)", dir.join("Cargo.lock")));
    }
    let manifest = dir.join("models.toml");
    if manifest.exists() {
        say(&format!("kept {manifest}"));
    } else {
        write_atomically(&manifest, MANIFEST.as_bytes()).at("write", &manifest)?;
        say(&format!("wrote {manifest}"));
    }
    let ignore = dir.join("checkpoints/.gitignore");
    if !ignore.exists() {
        std::fs::create_dir_all(dir.join("checkpoints")).at("create the folder", dir)?;
        write_atomically(
            &ignore,
            b"# Model files: fetched by `cargo xtask models fetch`, never committed.\n*\n",
        )
        .at("write", &ignore)?;
        say(&format!("wrote {ignore}"));
    }
    say(&format!(
        "next: in {}, `cargo xtask models add URL` pins a file, `cargo xtask models fetch` gets them all",
        shell_quote(dir.as_str())
    ));
    Ok(Report::default())
}
