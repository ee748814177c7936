//! Timestamps as the language sees them: RFC 3339 strings carrying the job timezone's offset.

use crate::host::Instant;
use chrono::{DateTime, FixedOffset, SecondsFormat};

/// `2026-01-12T06:00:00-05:00` (milliseconds shown only when there are some).
pub fn format(at: Instant) -> String {
    let offset = FixedOffset::east_opt(at.utc_offset_seconds)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"));
    match DateTime::from_timestamp_millis(at.unix_ms) {
        Some(t) => {
            let t = t.with_timezone(&offset);
            let secs = if at.unix_ms.rem_euclid(1000) == 0 {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Millis
            };
            t.to_rfc3339_opts(secs, true)
        }
        None => "1970-01-01T00:00:00Z".to_string(),
    }
}

/// Parses an RFC 3339 timestamp; `None` if the text is not one.
pub fn parse(text: &str) -> Option<Instant> {
    // Cheap rejection first: most strings compared in jobs are not timestamps.
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let t = DateTime::parse_from_rfc3339(text).ok()?;
    Some(Instant {
        unix_ms: t.timestamp_millis(),
        utc_offset_seconds: t.offset().local_minus_utc(),
    })
}

/// Formats a timestamp with a strftime pattern (default `%Y-%m-%d`), in its own offset.
pub fn format_with(at: Instant, pattern: &str) -> Option<String> {
    use std::fmt::Write as _;
    let offset = FixedOffset::east_opt(at.utc_offset_seconds)?;
    let t = DateTime::from_timestamp_millis(at.unix_ms)?.with_timezone(&offset);
    let mut out = String::new();
    // An invalid pattern makes `write!` fail instead of panicking.
    write!(out, "{}", t.format(pattern)).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_offset() {
        let at = Instant {
            unix_ms: 1_768_215_600_000,
            utc_offset_seconds: -5 * 3600,
        };
        let text = format(at);
        assert_eq!(text, "2026-01-12T06:00:00-05:00");
        assert_eq!(parse(&text), Some(at));
        assert_eq!(parse("2026-01-12"), None);
        assert_eq!(parse("not a time at all, no"), None);
    }

    #[test]
    fn milliseconds_are_kept() {
        let at = Instant {
            unix_ms: 1_768_215_600_123,
            utc_offset_seconds: 0,
        };
        assert_eq!(format(at), "2026-01-12T11:00:00.123Z");
        assert_eq!(format_with(at, "%Y/%m/%d").as_deref(), Some("2026/01/12"));
        assert_eq!(format_with(at, "%Q"), None);
    }
}
