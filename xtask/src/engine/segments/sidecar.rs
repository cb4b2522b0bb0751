//! The sidecar of a split download (`.part-ranges`): what each piece completed, so a run
//! killed with `kill -9` resumes only what is missing. Its head names the source (by a
//! hash), the size and the validator, kept whole (a Last-Modified date has spaces); a
//! sidecar that does not fit the partial beside it is worthless and is never trusted
//! without the final hash.

use crate::store::partial::Partial;

use crate::engine::segments::pieces::Piece;
use crate::store::fs::write_atomically;

/// The pieces a killed run left, if the sidecar is for this URL, validator and size.
pub(crate) fn load_sidecar(partial: &Partial, url_key: &str, size: u64) -> Option<(String, Vec<Piece>)> {
    let text = std::fs::read_to_string(partial.ranges()).ok()?;
    let mut lines = text.lines();
    // The validator is the rest of the line: a date is several words.
    let mut head = lines.next()?.splitn(4, ' ');
    let (Some("xtask-ranges-1"), Some(key), Some(total), Some(validator)) =
        (head.next(), head.next(), head.next(), head.next())
    else {
        return None;
    };
    if key != url_key || total.parse::<u64>().ok()? != size {
        return None;
    }
    let mut pieces = Vec::new();
    for line in lines {
        let mut numbers = line.split(' ').map(str::parse::<u64>);
        let (Some(Ok(start)), Some(Ok(next)), Some(Ok(end))) =
            (numbers.next(), numbers.next(), numbers.next())
        else {
            return None;
        };
        if !(start <= next && next <= end && end <= size) {
            return None;
        }
        pieces.push(Piece { next, ..Piece::new(start, end) });
    }
    // The pieces must tile the file exactly, or they describe some other download.
    let mut sorted = pieces.clone();
    sorted.sort_by_key(|p| p.start);
    let tiles = sorted.windows(2).all(|w| w[0].end == w[1].start)
        && sorted.first().is_some_and(|p| p.start == 0)
        && sorted.last().is_some_and(|p| p.end == size);
    tiles.then(|| (validator.to_owned(), pieces))
}

/// Records the pieces for a resume after a kill (atomically: old or new, never a mix).
pub(crate) fn write_sidecar(partial: &Partial, url_key: &str, size: u64, validator: &str, pieces: &[Piece]) {
    let mut text = format!("xtask-ranges-1 {url_key} {size} {validator}\n");
    for p in pieces {
        text.push_str(&format!("{} {} {}\n", p.start, p.next, p.end));
    }
    // Only an aid to resuming after a kill: failing to keep it costs a re-download.
    let _ = write_atomically(&partial.ranges(), text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::segments::pieces::split;

    #[test]
    fn a_sidecar_is_trusted_only_for_its_url_size_and_a_tiling() {
        let dir = tempfile::tempdir().unwrap();
        let dir = camino::Utf8PathBuf::try_from(dir.path().to_owned()).unwrap();
        let partial = Partial::beside(&dir.join("f"), "0123456789ab");
        let mut pieces = split(10 << 20, 3);
        pieces[1].next += 1000;
        write_sidecar(&partial, "key", 10 << 20, "\"etag\"", &pieces);
        let (validator, loaded) = load_sidecar(&partial, "key", 10 << 20).unwrap();
        assert_eq!(validator, "\"etag\"");
        assert_eq!(loaded, pieces);
        assert!(load_sidecar(&partial, "other", 10 << 20).is_none());
        assert!(load_sidecar(&partial, "key", 11 << 20).is_none());
        let date = "Tue, 15 Nov 1994 08:12:31 GMT";
        write_sidecar(&partial, "key", 10 << 20, date, &pieces);
        assert_eq!(load_sidecar(&partial, "key", 10 << 20).unwrap().0, date, "a date is kept whole");
        std::fs::write(partial.ranges(), "xtask-ranges-1 key 10485760 v\n0 0 5\n").unwrap();
        assert!(load_sidecar(&partial, "key", 10 << 20).is_none(), "pieces that do not tile");
    }
}
