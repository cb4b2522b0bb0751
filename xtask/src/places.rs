//! Where a user's own files live, on this platform: the home folder, this tool's cache,
//! the netrc file, the AWS shared files and the Hugging Face token. Each is a pure
//! function of an environment lookup and the platform, so the Windows rules are tested
//! on every machine:
//!
//! | what | Unix | Windows |
//! |---|---|---|
//! | home | `HOME` | `HOME` if set (as curl and git read it), else `USERPROFILE` |
//! | cache | `XDG_CACHE_HOME/xtask-models`, else `~/.cache/xtask-models` | `%LOCALAPPDATA%\xtask-models\cache` (as uv and pip) |
//! | netrc | `NETRC`, else `~/.netrc` | `NETRC`, else `.netrc` then `_netrc` in `%HOME%`, then in `%USERPROFILE%` (as curl) |
//! | AWS | `~/.aws/credentials`, `~/.aws/config` | `%USERPROFILE%\.aws\…` |
//! | HF home | `HF_HOME`, else `XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (as huggingface_hub) | the same, from the home above |
//! | HF token | `HF_TOKEN_PATH`, else `<HF home>/token` | the same |
//!
//! The files a user keeps (netrc, a token) are read by [`read_small`]: bounded, and never
//! waiting on a FIFO.
//!
//! A leaf: it names nothing else in the crate.

use camino::Utf8PathBuf;

/// Reads one environment variable (empty counts as unset).
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// This process's environment, empty values as unset.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether the Windows rules apply here.
pub(crate) const WINDOWS: bool = cfg!(windows);

/// The user's home folder.
pub(crate) fn home(env: Lookup<'_>, windows: bool) -> Option<Utf8PathBuf> {
    let home = env("HOME");
    let home = if windows { home.or_else(|| env("USERPROFILE")) } else { home };
    home.map(Utf8PathBuf::from)
}

/// Where this tool's shared cache lives unless told otherwise.
pub(crate) fn cache_root(env: Lookup<'_>, windows: bool) -> Option<Utf8PathBuf> {
    const TOOL_DIR: &str = "xtask-models";
    if windows && let Some(local) = env("LOCALAPPDATA") {
        return Some(Utf8PathBuf::from(local).join(TOOL_DIR).join("cache"));
    }
    if let Some(dir) = env("XDG_CACHE_HOME") {
        return Some(Utf8PathBuf::from(dir).join(TOOL_DIR));
    }
    home(env, windows).map(|home| home.join(".cache").join(TOOL_DIR))
}

/// The netrc files to read, the first that exists wins.
pub(crate) fn netrc_candidates(env: Lookup<'_>, windows: bool) -> Vec<Utf8PathBuf> {
    if let Some(path) = env("NETRC") {
        return vec![Utf8PathBuf::from(path)];
    }
    if !windows {
        return home(env, windows).map(|h| h.join(".netrc")).into_iter().collect();
    }
    let folders = [env("HOME"), env("USERPROFILE")].into_iter().flatten().map(Utf8PathBuf::from);
    folders.flat_map(|dir| [dir.join(".netrc"), dir.join("_netrc")]).collect()
}

/// The AWS shared credentials and config files, as the AWS CLI finds them.
pub(crate) fn aws_files(env: Lookup<'_>, windows: bool) -> (Utf8PathBuf, Utf8PathBuf) {
    let aws = home(env, windows).unwrap_or_default().join(".aws");
    let credentials =
        env("AWS_SHARED_CREDENTIALS_FILE").map_or_else(|| aws.join("credentials"), Utf8PathBuf::from);
    let config = env("AWS_CONFIG_FILE").map_or_else(|| aws.join("config"), Utf8PathBuf::from);
    (credentials, config)
}

/// The Hugging Face token file, as huggingface_hub finds it.
pub(crate) fn hf_token_file(env: Lookup<'_>, windows: bool) -> Option<Utf8PathBuf> {
    env("HF_TOKEN_PATH").map(Utf8PathBuf::from).or_else(|| hf_home(env, windows).map(|h| h.join("token")))
}

/// huggingface_hub's own folder, decided as it decides (`constants.HF_HOME`).
pub(crate) fn hf_home(env: Lookup<'_>, windows: bool) -> Option<Utf8PathBuf> {
    env("HF_HOME")
        .map(Utf8PathBuf::from)
        .or_else(|| env("XDG_CACHE_HOME").map(|dir| Utf8PathBuf::from(dir).join("huggingface")))
        .or_else(|| home(env, windows).map(|h| h.join(".cache").join("huggingface")))
}

/// The most a netrc or token file may hold; anything larger is not one (`/dev/zero`).
pub(crate) const SMALL_FILE: u64 = 1 << 20;

/// Reads a small file the user keeps (netrc, a token): `None` when it is absent,
/// unreadable, not a regular file (opened without blocking, so a FIFO never waits for a
/// writer) or larger than [`SMALL_FILE`].
pub(crate) fn read_small(path: &camino::Utf8Path) -> Option<String> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(SMALL_FILE + 1).read_to_string(&mut text).ok()?;
    (text.len() as u64 <= SMALL_FILE).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    #[test]
    fn windows_has_no_home_variable_and_its_caches_live_in_localappdata() {
        let windows = env(&[("USERPROFILE", r"C:\Users\me"), ("LOCALAPPDATA", r"C:\Users\me\AppData\Local")]);
        assert_eq!(home(&windows, true).unwrap(), r"C:\Users\me");
        assert_eq!(home(&windows, false), None, "no HOME off Windows: no home");
        let cache = cache_root(&windows, true).unwrap();
        assert!(
            cache.as_str().starts_with(r"C:\Users\me\AppData\Local")
                && cache.as_str().contains("xtask-models")
        );
        let unix = env(&[("HOME", "/home/me")]);
        assert_eq!(cache_root(&unix, false).unwrap(), "/home/me/.cache/xtask-models");
        let xdg = env(&[("HOME", "/home/me"), ("XDG_CACHE_HOME", "/tmp/xdg")]);
        assert_eq!(cache_root(&xdg, false).unwrap(), "/tmp/xdg/xtask-models");
    }

    #[test]
    fn netrc_is_looked_for_as_curl_does() {
        let windows = env(&[("USERPROFILE", r"C:\Users\me")]);
        let found: Vec<String> = netrc_candidates(&windows, true).iter().map(ToString::to_string).collect();
        assert_eq!(found.len(), 2);
        assert!(found[0].ends_with(".netrc") && found[1].ends_with("_netrc"), "{found:?}");
        let both = env(&[("HOME", r"D:\h"), ("USERPROFILE", r"C:\Users\me")]);
        assert_eq!(netrc_candidates(&both, true).len(), 4, "%HOME% first, then %USERPROFILE%");
        let named = env(&[("NETRC", "/etc/n"), ("HOME", "/home/me")]);
        assert_eq!(netrc_candidates(&named, false), [Utf8PathBuf::from("/etc/n")]);
        assert_eq!(
            netrc_candidates(&env(&[("HOME", "/home/me")]), false),
            [Utf8PathBuf::from("/home/me/.netrc")]
        );
    }

    #[test]
    fn aws_files_and_the_hf_token_follow_the_home() {
        let windows = env(&[("USERPROFILE", r"C:\Users\me")]);
        let (credentials, config) = aws_files(&windows, true);
        assert!(
            credentials.as_str().starts_with(r"C:\Users\me") && credentials.as_str().ends_with("credentials")
        );
        assert!(config.as_str().ends_with("config"));
        assert!(hf_token_file(&windows, true).unwrap().as_str().starts_with(r"C:\Users\me"));
        let hf = env(&[("HF_HOME", "/hf"), ("HOME", "/home/me")]);
        assert_eq!(hf_token_file(&hf, false).unwrap(), "/hf/token");
    }

    #[test]
    fn the_hf_token_is_found_where_huggingface_hub_looks() {
        let xdg = env(&[("XDG_CACHE_HOME", "/xdg"), ("HOME", "/home/me")]);
        assert_eq!(hf_token_file(&xdg, false).unwrap(), "/xdg/huggingface/token");
        let home_only = env(&[("HOME", "/home/me")]);
        assert_eq!(hf_token_file(&home_only, false).unwrap(), "/home/me/.cache/huggingface/token");
        let path = env(&[("HF_TOKEN_PATH", "/t/tok"), ("HF_HOME", "/hf"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(hf_token_file(&path, false).unwrap(), "/t/tok");
        let home_wins = env(&[("HF_HOME", "/hf"), ("XDG_CACHE_HOME", "/xdg")]);
        assert_eq!(hf_token_file(&home_wins, false).unwrap(), "/hf/token");
    }

    #[test]
    fn small_files_are_read_whole_and_anything_else_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
        std::fs::write(dir.join("netrc"), "machine h login a password b\n").unwrap();
        assert_eq!(read_small(&dir.join("netrc")).as_deref(), Some("machine h login a password b\n"));
        let big = dir.join("big");
        std::fs::File::create(&big).unwrap().set_len(SMALL_FILE + 1).unwrap();
        assert_eq!(read_small(&big), None, "larger than any netrc");
        assert_eq!(read_small(dir), None, "a folder");
        assert_eq!(read_small(&dir.join("absent")), None);
        #[cfg(unix)]
        {
            assert_eq!(read_small(camino::Utf8Path::new("/dev/zero")), None, "a device");
            let fifo = dir.join("fifo");
            assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
            assert_eq!(read_small(&fifo), None, "a FIFO, without waiting for a writer");
        }
    }
}
