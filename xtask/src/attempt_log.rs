//! `--log-file`: an appended, timestamped record of every download attempt.
//!
//! One line per attempt, `key=value` pairs, so a CI log can be grepped for `class=` or
//! `decision=`. URLs pass through [`redact_url`] first: the log is the kind of file that
//! gets attached to bug reports, so credentials must never reach it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camino::Utf8Path;

pub struct AttemptLog {
    file: Mutex<File>,
}

/// One attempt, as the log records it.
pub struct Attempt<'a> {
    pub model: &'a str,
    pub url: &'a str,
    pub attempt: u32,
    pub status: Option<u16>,
    pub bytes: u64,
    /// Where the attempt resumed in the file; 0 for a fresh start.
    pub resumed_from: u64,
    pub duration: Duration,
    /// `None` when the attempt succeeded.
    pub class: Option<&'a str>,
    pub decision: &'a str,
}

impl AttemptLog {
    pub fn open(path: &Utf8Path) -> io::Result<AttemptLog> {
        if let Some(parent) = path.parent().filter(|p| !p.as_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(AttemptLog { file: Mutex::new(file) })
    }

    pub fn record(&self, a: &Attempt<'_>) {
        let status = a.status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let line = format!(
            "{} model={} url={} attempt={} status={status} resumed_from={} bytes={} duration={:.3}s class={} decision={}\n",
            utc_timestamp(SystemTime::now()),
            a.model,
            redact_url(a.url),
            a.attempt,
            a.resumed_from,
            a.bytes,
            a.duration.as_secs_f64(),
            a.class.unwrap_or("ok"),
            a.decision,
        );
        // One write per line keeps lines whole even when several processes append.
        if let Ok(mut file) = self.file.lock() {
            let _ = file.write_all(line.as_bytes());
        }
    }
}

/// Query parameters whose values are secrets on the hosts models live on (signed CDN
/// links, API tokens).
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "key",
    "api_key",
    "apikey",
    "password",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "googleaccessid",
];

/// The URL with any `user:password@` and secret query values replaced by `***`.
pub fn redact_url(url: &str) -> String {
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut out = match before_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => before_query.to_owned(),
            }
        }
        None => before_query.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => {
                    format!("{k}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// `2026-11-25T14:43:24.123Z`, computed without a date crate.
pub fn utc_timestamp(time: SystemTime) -> String {
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

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

/// The inverse of [`civil_from_days`].
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_signed_query_values_are_hidden() {
        assert_eq!(
            redact_url("https://user:pw@host.example/a?x=1&token=abc&X-Amz-Signature=s"),
            "https://***@host.example/a?x=1&token=***&X-Amz-Signature=***"
        );
        assert_eq!(redact_url("http://127.0.0.1:8/a/b"), "http://127.0.0.1:8/a/b");
        assert_eq!(redact_url("https://h/p@q"), "https://h/p@q");
    }

    #[test]
    fn timestamps_are_utc_iso_8601() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_081_804_123);
        assert_eq!(utc_timestamp(t), "2025-11-25T14:43:24.123Z");
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1, 0, 59, 60, 10_957, 20_000, 30_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn lines_are_appended_with_every_field() {
        let path = std::env::temp_dir().join(format!("xtask-log-{}.log", std::process::id()));
        let path = camino::Utf8PathBuf::try_from(path).unwrap();
        let _ = std::fs::remove_file(&path);
        for attempt in 1..=2 {
            AttemptLog::open(&path).unwrap().record(&Attempt {
                model: "m",
                url: "https://u:p@h/f?token=t",
                attempt,
                status: Some(503),
                bytes: 10,
                resumed_from: 0,
                duration: Duration::from_millis(1500),
                class: Some("server-error"),
                decision: "retry",
            });
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("model=m url=https://***@h/f?token=*** attempt=2 status=503 resumed_from=0 bytes=10 duration=1.500s class=server-error decision=retry"), "{text}");
        assert!(!text.contains("u:p"));
        std::fs::remove_file(&path).unwrap();
    }
}
