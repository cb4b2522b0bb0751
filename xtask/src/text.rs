//! Numbers and words for messages: byte counts, rates, shell quoting. A leaf that every layer may use, since every layer tells the user
//! something.

use std::time::Duration;

/// `1.5 GiB`, `312.0 KiB`, `12 B`.
pub(crate) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `45.2 MiB/s`.
pub(crate) fn rate(bytes: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(1e-3);
    format!("{}/s", human_bytes((bytes as f64 / secs) as u64))
}

/// Text a server (or anything outside the tool) controls, as it may be shown on a
/// terminal, in the log or in JSON: control characters (terminal escapes that set a
/// window title or clear the screen, line breaks that forge log lines) become spaces,
/// runs of white space one space, and at most `max` characters are kept, with `…` when
/// cut. Every such string shown goes through here: S3 codes and messages, page titles,
/// Drive's messages, a proxy's answer, header values.
pub(crate) fn server_text(text: &str, max: usize) -> String {
    let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let joined = words.join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let mut cut: String = joined.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `text` as one word of the shell a user on this platform pastes into: POSIX `sh` off
/// Windows; on Windows both cmd.exe and PowerShell ([`windows_quote`]).
pub(crate) fn shell_quote(text: &str) -> String {
    if cfg!(windows) { windows_quote(text) } else { posix_quote(text) }
}

/// One word for cmd.exe and PowerShell alike: unchanged when it is plain, else in double
/// quotes (both know them; neither knows single quotes the same way), a `"` doubled.
pub(crate) fn windows_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "\\/._-+=:,@".contains(c)) {
        text.to_owned()
    } else {
        format!("\"{}\"", text.replace('"', "\"\""))
    }
}

/// `text` as one POSIX shell word: unchanged when it is plain, else single-quoted.
pub(crate) fn posix_quote(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@".contains(c)) {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_picks_a_readable_unit() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(725_066_984), "691.5 MiB");
        assert_eq!(human_bytes(3 << 30), "3.0 GiB");
    }

    #[test]
    fn rate_divides_by_elapsed_time() {
        assert_eq!(rate(10 << 20, Duration::from_secs(2)), "5.0 MiB/s");
    }

    #[test]
    fn server_text_loses_its_escapes_and_line_breaks_and_is_bounded() {
        assert_eq!(
            server_text("\u{1b}]0;pwned\u{7}\u{1b}[2JAccess\r\nDenied", 80),
            "]0;pwned [2JAccess Denied"
        );
        assert!(!server_text("a\u{1b}b", 10).contains('\u{1b}'));
        let long = server_text(&"X".repeat(5000), 64);
        assert_eq!(long.chars().count(), 64);
        assert!(long.ends_with('…'));
        assert_eq!(server_text("  plain  text ", 64), "plain text");
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(posix_quote("/a/b.toml"), "/a/b.toml");
        assert_eq!(posix_quote("m'$(touch x)'.toml"), r"'m'\''$(touch x)'\''.toml'");
        assert_eq!(posix_quote(""), "''");
        assert_eq!(windows_quote(r"C:\ck"), r"C:\ck", "plain: as it is");
        assert_eq!(windows_quote(r"Z:\tmp\my models.toml"), r#""Z:\tmp\my models.toml""#);
        assert_eq!(windows_quote(r#"a"b"#), r#""a""b""#);
        assert_eq!(windows_quote(""), r#""""#);
    }
}
