//! `models hook install|uninstall`: a git pre-commit hook that runs the fast verify.
//!
//! The hook checks models.toml alone when it is staged, then verifies the models with
//! stamps (milliseconds when nothing changed). It lives between two marker lines, so an
//! existing hook keeps its own lines, installing twice changes nothing, and uninstall
//! removes exactly what install wrote.

use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::commands::{Context, Report};
use crate::error::{Error, IoContext, Result};
use crate::store::fs::write_atomically;
use crate::text::posix_quote;

const BEGIN: &str = "# >>> cargo xtask models hook >>>";
const END: &str = "# <<< cargo xtask models hook <<<";

/// Where git runs hooks from for the repository holding `dir` (honours core.hooksPath),
/// and that repository's top folder.
fn hooks_dir(dir: &Utf8Path) -> Result<(Utf8PathBuf, Utf8PathBuf)> {
    let not_a_repo = || Error::usage(format!("{dir} is not inside a git repository; the hook is a git hook"));
    let sh = Shell::new().map_err(|_| not_a_repo())?;
    sh.change_dir(dir);
    let top =
        cmd!(sh, "git rev-parse --show-toplevel").quiet().ignore_stderr().read().map_err(|_| not_a_repo())?;
    let hooks = cmd!(sh, "git rev-parse --git-path hooks")
        .quiet()
        .ignore_stderr()
        .read()
        .map_err(|_| not_a_repo())?;
    let hooks = Utf8PathBuf::from(hooks);
    let hooks = if hooks.is_absolute() { hooks } else { dir.join(hooks) };
    Ok((hooks, Utf8PathBuf::from(top)))
}

/// Whether the hook block is in the pre-commit hook of the repository holding the
/// manifest (where `hook install` puts it); `None` outside a git repository.
pub(crate) fn installed(cx: &Context) -> Option<bool> {
    let (hooks, _) = hooks_dir(cx.manifest_path.parent().unwrap_or(Utf8Path::new("."))).ok()?;
    let text = std::fs::read_to_string(hooks.join("pre-commit")).unwrap_or_default();
    Some(text.contains(BEGIN))
}

/// The lines between the markers. `command` runs the tool (`cargo xtask` by default).
fn block(cx: &Context, command: &str, manifest_in_repo: &str) -> String {
    // git runs hooks with sh, Git for Windows too: every path reaches it as one POSIX
    // word (a Windows path's backslashes kept), never as code.
    let args = cx.location_args_quoted(posix_quote);
    let manifest_in_repo = posix_quote(manifest_in_repo);
    format!(
        "{BEGIN}\n\
         # Added by `cargo xtask models hook install`; `cargo xtask models hook uninstall` removes it.\n\
         if git diff --cached --name-only | grep -qxF -- {manifest_in_repo}; then\n  \
           {command} models verify --manifest-only --quiet{args} || exit 1\n\
         fi\n\
         {command} models verify --quiet{args} || exit 1\n\
         {END}\n"
    )
}

pub(crate) fn install(cx: &Context, command: &str) -> Result<Report> {
    let dir = cx.manifest_path.parent().unwrap_or(Utf8Path::new("."));
    let (hooks, top) = hooks_dir(dir)?;
    let manifest_in_repo =
        cx.manifest_path.strip_prefix(&top).map_or_else(|_| cx.manifest_path.to_string(), |p| p.to_string());
    let path = hooks.join("pre-commit");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let ours = block(cx, command, &manifest_in_repo);
    // Installing again replaces our block; anyone else's lines stay as they were.
    let base = remove_block(&existing).unwrap_or(existing);
    let base = base.trim_end();
    let text = if base.is_empty() || base == "#!/bin/sh" {
        format!("#!/bin/sh\n{ours}")
    } else {
        format!("{base}\n{ours}")
    };
    write_atomically(&path, text.as_bytes()).at("write the hook", &path)?;
    make_executable(&path).at("make executable", &path)?;
    cx.say(&format!("installed the pre-commit hook in {path}"));
    Ok(Report::default())
}

pub(crate) fn uninstall(cx: &Context) -> Result<Report> {
    let dir = cx.manifest_path.parent().unwrap_or(Utf8Path::new("."));
    let (hooks, _) = hooks_dir(dir)?;
    let path = hooks.join("pre-commit");
    let existing = std::fs::read_to_string(&path).unwrap_or_default();
    let Some(rest) = remove_block(&existing) else {
        cx.say(&format!("no hook of ours in {path}; nothing to remove"));
        return Ok(Report::default());
    };
    if rest.trim().is_empty() || rest.trim() == "#!/bin/sh" {
        std::fs::remove_file(&path).at("remove the hook", &path)?;
    } else {
        write_atomically(&path, rest.as_bytes()).at("write the hook", &path)?;
        make_executable(&path).at("make executable", &path)?;
    }
    cx.say(&format!("removed the pre-commit hook from {path}"));
    Ok(Report::default())
}

/// The hook text without our block, or `None` when our block is not in it.
fn remove_block(text: &str) -> Option<String> {
    let start = text.find(BEGIN)?;
    let end = text[start..].find(END)? + start + END.len();
    let end = if text[end..].starts_with('\n') { end + 1 } else { end };
    Some(format!("{}{}", &text[..start], &text[end..]))
}

fn make_executable(path: &Utf8Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removing_the_block_keeps_every_other_line() {
        let theirs = "#!/bin/sh\necho lint\n";
        let with = format!("{theirs}{BEGIN}\nours\n{END}\nexit 0\n");
        assert_eq!(remove_block(&with).unwrap(), format!("{theirs}exit 0\n"));
        assert_eq!(remove_block(theirs), None);
    }
}
