//! `--log-file`: an appended, timestamped record of every download attempt.
//!
//! One line per attempt, `key=value` pairs, so a CI log can be grepped for `class=` or
//! `decision=`. URLs pass through [`redact_url`] first: the log is the kind of file that
//! gets attached to bug reports, so credentials must never reach it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use camino::Utf8Path;

use crate::engine::events::{Attempted, Ranged};
use crate::error::Origin;

pub(crate) struct AttemptLog {
    file: Mutex<File>,
}

impl AttemptLog {
    pub(crate) fn open(path: &Utf8Path) -> io::Result<AttemptLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AttemptLog { file: Mutex::new(file) })
    }

    /// Appends one line for `a`, an attempt at `model`.
    pub(crate) fn record(&self, model: &str, a: &Attempted<'_>) {
        let status = a.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let line = format!(
            "{} model={model} url={:#} attempt={} status={status} resumed_from={} bytes={} duration={:.3}s class={} decision={}\n",
            utc_timestamp(SystemTime::now()),
            a.origin,
            a.attempt,
            a.resumed_from,
            a.bytes,
            a.duration.as_secs_f64(),
            a.fault.map_or("ok", |f| f.class.as_str()),
            a.decision.map_or("done", |d| d.as_str()),
        );
        self.append(line);
    }

    /// Appends one line for a request for one range of a split file.
    pub(crate) fn record_range(&self, model: &str, origin: &Origin, r: &Ranged) {
        // A range that arrived came in a 206; a failed one has the status it failed with.
        let status = r.fault.as_ref().map_or(Some(206), |f| f.status);
        let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        self.append(format!(
            "{} model={model} url={:#} range={}-{} status={status} bytes={} class={}\n",
            utc_timestamp(SystemTime::now()),
            origin,
            r.start,
            r.end,
            r.bytes,
            r.fault.as_ref().map_or("ok", |f| f.class.as_str()),
        ));
    }

    /// Appends how many connections a split file used and why.
    pub(crate) fn record_connections(&self, model: &str, story: &str) {
        self.append(format!("{} model={model} {story}\n", utc_timestamp(SystemTime::now())));
    }

    /// Appends one line naming a source that sent bytes other than the pinned file's.
    pub(crate) fn record_differed(&self, model: &str, origin: &Origin, at: u64) {
        self.append(format!(
            "{} model={model} url={:#} class=wrong-bytes first_wrong_byte={at}\n",
            utc_timestamp(SystemTime::now()),
            origin,
        ));
    }

    /// Appends a failed model's manual-download block, each line as a `#` comment, so
    /// the log keeps what a `--verbose` run would have printed.
    pub(crate) fn record_block(&self, model: &str, block: &str) {
        let stamp = utc_timestamp(SystemTime::now());
        let mut text = format!("{stamp} model={model} failed; manual download:\n");
        for line in block.lines() {
            text.push_str(&format!("# {line}\n"));
        }
        self.append(text);
    }

    fn append(&self, line: String) {
        // One write per line keeps lines whole even when several processes append.
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// `2026-11-25T14:43:24.123Z`, computed without a date crate.
pub(crate) fn utc_timestamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm. Only ever
/// given today's date, from the clock: no input a server controls reaches it.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_iso_8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_081_804_123);
        assert_eq!(utc_timestamp(t), "2025-11-25T14:43:24.123Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn lines_are_appended_with_every_field() {
        let temp = tempfile::tempdir().unwrap();
        let path = camino::Utf8PathBuf::try_from(temp.path().join("log/attempts.log")).unwrap();
        let origin = Origin::Url(crate::source::Source::parse("https://u:p@h/f?token=t").unwrap());
        let fault = crate::error::Fault::new(crate::error::Class::ServerBusy, "HTTP 503");
        for attempt in 1..=2 {
            AttemptLog::open(&path).unwrap().record(
                "m",
                &Attempted {
                    origin: &origin,
                    attempt,
                    status: Some(503),
                    bytes: 10,
                    resumed_from: 0,
                    duration: Duration::from_millis(1500),
                    fault: Some(&fault),
                    decision: Some(crate::error::Then::Retry),
                },
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("model=m url=https://***@h/f?token=*** attempt=2 status=503 resumed_from=0 bytes=10 duration=1.500s class=server-error decision=retry"), "{text}");
        assert!(!text.contains("u:p"));
    }
}
