//! The rules one value of a manifest must keep: paths that stay inside the checkpoints
//! folder and clear of the tool's own files, URLs a model may be fetched from, and the
//! spelling help for a key that is not known.

use crate::source::{BadSource, Kind, Source};
use crate::store::partial::RESERVED_ENDINGS;

/// The longest file name a path may end in, in bytes: filesystems allow 255, and the
/// tool's temp files add a suffix of up to 24 (`.<pin>.part`, `.<pid>.link.part`).
pub(super) const MAX_FILE_NAME: usize = 255 - 24;

/// Names the tool keeps its own files under, in the checkpoints folder: the lock
/// folder, the stamps file, and the endings of partial downloads and temp files.
const RESERVED_DIR: &str = ".locks";
const RESERVED_FILE: &str = ".models-state";

/// Why a manifest path could escape or clash with the checkpoints directory, if it could.
pub(crate) fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.contains('\0') {
        return Some("contains a NUL byte");
    }
    if path.contains('\\') {
        return Some("contains a backslash");
    }
    if path.starts_with('/') || path.starts_with('~') {
        return Some("is absolute");
    }
    let bytes = path.as_bytes();
    if bytes.len() >= 2 && bytes[1] == b':' && bytes[0].is_ascii_alphabetic() {
        return Some("starts with a drive letter");
    }
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts {
        match *part {
            ".." => return Some("contains `..`, which would leave the checkpoints directory"),
            "." => return Some("contains a `.` component"),
            "" => return Some("contains an empty component (`//` or a trailing `/`)"),
            _ => {}
        }
        if part.chars().any(char::is_control) {
            return Some("contains a control character");
        }
        if part.len() > 255 {
            return Some("has a component longer than 255 bytes, which no common filesystem holds");
        }
    }
    if parts[0] == RESERVED_DIR {
        return Some("is inside `.locks`, the folder where the tool keeps its lock files");
    }
    if path == RESERVED_FILE {
        return Some("is `.models-state`, the file where the tool keeps its stamps");
    }
    let file_name = parts.last().copied().unwrap_or(path);
    if RESERVED_ENDINGS.iter().any(|ending| file_name.ends_with(ending)) {
        return Some(
            "ends like the tool's temp files (`.part`, `.part-validator`, `.tmp`), which `clean` removes",
        );
    }
    if file_name.len() > MAX_FILE_NAME {
        return Some(
            "ends in a file name longer than 231 bytes: with the temp suffix the tool adds it would pass the filesystem's 255",
        );
    }
    None
}

/// Why a manifest path could not exist on Windows, if it could not, checked on every
/// platform so a manifest committed on Linux still works for Windows users: a reserved
/// device name with any extension (`CON`, `aux.bin`, `COM1`…`COM9`, `LPT1`…`LPT9`), a
/// component ending in a dot or a space, or a character Windows does not allow in a name.
pub(crate) fn windows_problem(path: &str) -> Option<String> {
    const DEVICES: &[&str] = &["CON", "PRN", "AUX", "NUL"];
    for part in path.split('/') {
        let stem = part.split('.').next().unwrap_or(part).trim_end().to_ascii_uppercase();
        let numbered = |prefix: &str| {
            stem.strip_prefix(prefix)
                .is_some_and(|n| n.len() == 1 && n.bytes().all(|b| (b'1'..=b'9').contains(&b)))
        };
        if DEVICES.contains(&stem.as_str()) || numbered("COM") || numbered("LPT") {
            return Some(format!("has {part:?}, a reserved device name on Windows (whatever its extension)"));
        }
        if part.ends_with('.') || part.ends_with(' ') {
            return Some(format!("has {part:?}, which ends in a dot or a space: Windows drops them"));
        }
        if let Some(c) = part.chars().find(|c| "<>:\"|?*".contains(*c)) {
            return Some(format!("has {c:?} in {part:?}, a character Windows does not allow in a name"));
        }
    }
    None
}

/// A model's URL: http(s) or `file://` (an S3 object is a mirror's, never a pin's).
pub(crate) fn model_url(text: &str) -> Result<Source, BadSource> {
    let source = Source::parse(text)?;
    match source.kind() {
        Kind::Http | Kind::File => Ok(source),
        Kind::S3 => Err(BadSource { shown: source.to_string(), why: "uses an unsupported scheme" }),
    }
}

/// The closest known key, when one is close enough to be what the user meant.
pub(super) fn unknown_key_help(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(&key.to_ascii_lowercase(), k), *k))
        .min()
        .filter(|(d, _)| *d <= 2 || key.len() > 3 && *d <= key.len() / 2);
    let list = known.join(", ");
    match best {
        Some((_, k)) => format!("did you mean `{k}`? Known keys: {list}"),
        None => format!("known keys: {list}"),
    }
}

/// Levenshtein distance; keys are short, so the quadratic table is fine.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_windows_cannot_hold_are_named() {
        for bad in [
            "aux.bin",
            "gfpgan/CON",
            "nul.tar.gz",
            "COM1.pth",
            "lpt9",
            "dir./a.bin",
            "a.bin ",
            "a:b.bin",
            "what?.pth",
            "x|y",
            "a<b",
        ] {
            assert!(windows_problem(bad).is_some(), "{bad}");
        }
        for good in
            ["auxiliary.bin", "COM10.bin", "console/a.bin", "gfpgan/weights/GFPGANv1.4.pth", "a.b.c", "LPT0"]
        {
            assert_eq!(windows_problem(good), None, "{good}");
        }
    }

    #[test]
    fn edit_distance_matches_hand_counts() {
        assert_eq!(edit_distance("sha265", "sha256"), 2);
        assert_eq!(edit_distance("url", "urls"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
