//! Unit tests of the public API: parsing and its errors, printing, describing, DST rules on
//! hand-checked examples, and `Schedule`.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use codeai_cron::{CronErrorKind, CronExpr, CronField, Schedule, Tz};

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid UTC time")
}

fn expr(text: &str) -> CronExpr {
    CronExpr::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn error(text: &str) -> String {
    match CronExpr::parse(text) {
        Ok(e) => panic!("{text:?} should not parse, got {e}"),
        Err(e) => e.to_string(),
    }
}

fn fires(text: &str, tz: Tz, after: DateTime<Utc>, n: usize) -> Vec<String> {
    expr(text)
        .iter_after(after, tz)
        .take(n)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .collect()
}

const NY: Tz = chrono_tz::America::New_York;

#[test]
fn parse_error_messages() {
    let cases = [
        ("61 * * * *", "minute field: 61 is out of range 0-59 (at column 0)"),
        ("0 24 * * *", "hour field: 24 is out of range 0-23 (at column 2)"),
        ("0 0 0 * *", "day-of-month field: 0 is out of range 1-31 (at column 4)"),
        ("0 0 * 13 *", "month field: 13 is out of range 1-12 (at column 6)"),
        ("0 0 * * 8", "day-of-week field: 8 is out of range 0-7 (at column 8)"),
        ("0 0 1-40 * *", "day-of-month field: 40 is out of range 1-31 (at column 6)"),
        ("0 0 * * 99999999999", "day-of-week field: 99999999999 is out of range 0-7 (at column 8)"),
        ("*/0 * * * *", "minute field: step `*/0` must be at least 1 (at column 2)"),
        ("0 1-5/0 * * *", "hour field: step `1-5/0` must be at least 1 (at column 6)"),
        ("*/x * * * *", "minute field: invalid step in `*/x` (at column 2)"),
        ("1/2/3 * * * *", "minute field: invalid step in `1/2/3` (at column 2)"),
        ("0 1,,2 * * *", "hour field: empty list item (at column 4)"),
        ("0 1, * * *", "hour field: empty list item (at column 4)"),
        ("0 5-3 * * *", "hour field: range `5-3` is reversed (its start is after its end) (at column 2)"),
        ("0 0 * * SAT-SUN", "day-of-week field: range `SAT-SUN` is reversed (its start is after its end) (at column 8)"),
        ("x * * * *", "minute field: `x` is not a number (at column 0)"),
        ("0 0 * FOO *", "month field: unknown name `FOO` (expected JAN-DEC) (at column 6)"),
        ("0 0 * * MONDAY", "day-of-week field: unknown name `MONDAY` (expected SUN-SAT) (at column 8)"),
        ("0 0 * * MON-FUN", "day-of-week field: unknown name `FUN` (expected SUN-SAT) (at column 12)"),
        ("0 0 * * JAN", "day-of-week field: unknown name `JAN` (expected SUN-SAT) (at column 8)"),
        ("0 MON * * *", "hour field: `MON` is not a number (at column 2)"),
        ("  0 0 * * 1-", "day-of-week field: `` is not a number (at column 12)"),
        ("", "empty expression"),
        ("   ", "empty expression"),
        (
            "0 0 * *",
            "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found 4",
        ),
        (
            "0 0 * * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found 6 (at column 10)",
        ),
        (
            "@reboot",
            "unknown macro `@reboot` (expected @hourly, @daily, @midnight, @weekly, @monthly, @yearly or @annually) (at column 0)",
        ),
        (
            "@daily 0",
            "expected 5 fields (minute hour day-of-month month day-of-week) or a macro such as @daily, found 2 (at column 7)",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(error(text), message, "for {text:?}");
    }
}

#[test]
fn parse_error_accessors() {
    let err = CronExpr::parse("0 0 * * 1 ").and(CronExpr::parse("5 4 31 2-14 *"));
    let err = err.expect_err("month 14 is out of range");
    assert_eq!(err.field(), Some(CronField::Month));
    assert_eq!(err.column(), Some(9));
    assert_eq!(
        err.kind(),
        &CronErrorKind::OutOfRange {
            token: "14".into(),
            min: 1,
            max: 12
        }
    );
    assert!(matches!(
        CronExpr::parse("a b").map_err(|e| e.kind().clone()),
        Err(CronErrorKind::FieldCount { found: 2 })
    ));
}

/// `message()` and `span()`: the sentence and byte range the DSL checker's diagnostics show.
#[test]
fn parse_error_messages_and_spans() {
    use CronField::*;
    let cases: &[(&str, &str, Option<CronField>, std::ops::Range<usize>)] = &[
        (
            "0 24 * * *",
            "hour 24 is out of range 0-23",
            Some(Hour),
            2..4,
        ),
        (
            "60 * * * *",
            "minute 60 is out of range 0-59",
            Some(Minute),
            0..2,
        ),
        (
            "0 0 0 * *",
            "day of month 0 is out of range 1-31",
            Some(DayOfMonth),
            4..5,
        ),
        (
            "0 0 * 13 *",
            "month 13 is out of range 1-12",
            Some(Month),
            6..8,
        ),
        (
            "0 0 * * 8",
            "day of week 8 is out of range 0-6",
            Some(DayOfWeek),
            8..9,
        ),
        (
            "*/0 * * * *",
            "minute step must be at least 1",
            Some(Minute),
            2..3,
        ),
        (
            "0 1-5/0 * * *",
            "hour step must be at least 1",
            Some(Hour),
            6..7,
        ),
        ("0 6 * * * *", "expected 5 fields, found 6", None, 10..11),
        (
            "0 6 * * * * *  ",
            "expected 5 fields, found 7",
            None,
            10..13,
        ),
        ("0 6 * *", "expected 5 fields, found 4", None, 0..7),
        ("", "expected 5 fields, found 0", None, 0..0),
        ("  ", "expected 5 fields, found 0", None, 0..2),
        ("0 x * * *", "hour `x` is not a number", Some(Hour), 2..3),
        (
            "0 0 * FOO *",
            "month `FOO` is not a number (or a month name JAN-DEC)",
            Some(Month),
            6..9,
        ),
        (
            "0 0 * * MON-FUN",
            "day of week `FUN` is not a number (or a day name SUN-SAT)",
            Some(DayOfWeek),
            12..15,
        ),
        (
            "0 5-2 * * *",
            "hour range 5-2 is reversed (start after end)",
            Some(Hour),
            2..5,
        ),
        (
            "0 1,,2 * * *",
            "hour list has an empty element",
            Some(Hour),
            4..4,
        ),
        (
            "0 1-30 * * *",
            "hour 30 is out of range 0-23",
            Some(Hour),
            4..6,
        ),
        (
            "0 */x * * *",
            "hour step `x` is not a number",
            Some(Hour),
            4..5,
        ),
        (
            "1/2/3 * * * *",
            "minute step `2/3` is not a number",
            Some(Minute),
            2..5,
        ),
        (
            "0 0 L * *",
            "day of month `L` is not a number",
            Some(DayOfMonth),
            4..5,
        ),
        (
            "0 0 * * 1-",
            "day of week is missing a number (or a day name SUN-SAT)",
            Some(DayOfWeek),
            10..10,
        ),
        ("@reboot", "unknown cron macro `@reboot`", None, 0..7),
        (" @reboot ", "unknown cron macro `@reboot`", None, 1..8),
        ("@daily 0 1", "expected 5 fields, found 3", None, 7..10),
    ];
    for (text, message, field, span) in cases {
        let e = CronExpr::parse(text).expect_err(text);
        assert_eq!(&e.message(), message, "for {text:?}");
        assert_eq!(&e.field(), field, "for {text:?}");
        assert_eq!(&e.span(), span, "for {text:?}");
        // Errors about the whole expression (empty, too few fields) have no column.
        let whole = message.ends_with("found 0") || message.ends_with("found 4");
        assert_eq!(e.column(), (!whole).then_some(span.start), "for {text:?}");
    }
}

#[test]
fn macros_are_listed_with_their_expansions() {
    let names: Vec<&str> = codeai_cron::MACROS.iter().map(|(m, _)| *m).collect();
    assert_eq!(
        names,
        [
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually"
        ]
    );
    for (name, expansion) in codeai_cron::MACROS {
        assert_eq!(expr(name), expr(expansion), "{name}");
        assert_eq!(expr(&name.to_uppercase()), expr(expansion), "{name}");
    }
}

#[test]
fn a_start_with_a_step_runs_to_the_end_of_the_field() {
    let minutes = |text: &str| -> Vec<u32> {
        let e = expr(text);
        (0..60)
            .filter(|m| {
                let at = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
                    .unwrap()
                    .and_hms_opt(0, *m, 0)
                    .unwrap();
                e.matches_local(at)
            })
            .collect()
    };
    assert_eq!(minutes("5/20 0 * * *"), [5, 25, 45]);
    assert_eq!(minutes("0,30 0 * * *"), [0, 30]);
    assert_eq!(minutes("50-59/4 0 * * *"), [50, 54, 58]);
}

#[test]
fn parse_and_normalize() {
    let cases = [
        ("0 6 * * *", "0 6 * * *"),
        ("  00   06\t* *  * ", "0 6 * * *"),
        ("0 9-17 * * MON-FRI", "0 9-17 * * 1-5"),
        ("0 12 * jan,Jul sun", "0 12 * 1,7 0"),
        ("*/15 1-5/2 1/10 */3 7", "*/15 1-5/2 1/10 */3 7"),
        ("@hourly", "0 * * * *"),
        ("@DAILY", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ];
    for (text, normalized) in cases {
        let parsed = expr(text);
        assert_eq!(parsed.to_string(), normalized, "for {text:?}");
        assert_eq!(expr(normalized), parsed, "round trip of {text:?}");
        let via_from_str: CronExpr = text.parse().expect("FromStr");
        assert_eq!(via_from_str, parsed);
    }
}

#[test]
fn semantic_equality() {
    assert_eq!(expr("5 4 * * 7"), expr("5 4 * * 0"));
    assert_eq!(expr("5 4 * * sun"), expr("5 4 * * 0"));
    assert_eq!(expr("0 0 * * 1-5"), expr("0 0 * * mon,tue,wed,thu,fri"));
    assert_eq!(expr("@daily"), expr("0 0 * * *"));
    assert_eq!(expr("0 0 * * 5-7"), expr("0 0 * * 0,5,6"));
    // A restricted day field changes the rules even when it lists every value.
    assert_ne!(expr("0 0 * * *"), expr("0 0 * * 0-6"));
    // So does being fixed-time (the DST rules): a minute or hour field starting with `*` ...
    assert_ne!(expr("*/30 2 * * *"), expr("0,30 2 * * *"));
    assert_ne!(expr("0 */2 * * *"), expr("0 0-22/2 * * *"));
    // ... while an hour field listing all 24 hours is not fixed-time, whatever its text.
    assert_eq!(expr("0 0-23 * * *"), expr("0 * * * *"));
    assert_eq!(expr("0 0-23/1 * * *"), expr("0 * * * *"));
    assert_eq!(expr("0 0-11,12-23 * * *"), expr("0 * * * *"));
}

#[test]
fn field_flags() {
    assert!(expr("0 * * * *").hour_is_wildcard());
    assert!(expr("0 */2 * * *").hour_is_wildcard());
    assert!(expr("0 1-5/2 * * *").hour_is_wildcard());
    assert!(expr("0 3/4 * * *").hour_is_wildcard());
    assert!(!expr("0 1 * * *").hour_is_wildcard());
    assert!(!expr("0 1,2 * * *").hour_is_wildcard());
    assert!(!expr("0 1-3 * * *").hour_is_wildcard());
    for fixed in [
        "30 2 * * *",
        "0,30 1-3 * * *",
        "0 1/2 * * *",
        "0 1-5/2 * * *",
        "0-59 2 * * *",
        "0 0-22 * * *",
        "@daily",
    ] {
        assert!(expr(fixed).is_fixed_time(), "{fixed}");
    }
    for other in [
        "*/15 2 * * *",
        "* 2 * * *",
        "*/15 1-3 * * *",
        "0 * * * *",
        "0 */2 * * *",
        "0 0-23 * * *",
        "0 0/1 * * *",
        "0 0-11,12-23 * * *",
        "@hourly",
    ] {
        assert!(!expr(other).is_fixed_time(), "{other}");
    }
    assert!(expr("0 0 1 * 5").day_of_month_restricted());
    assert!(!expr("0 0 */2 * 5").day_of_month_restricted());
    assert!(expr("0 0 */2 * 5").day_of_week_restricted());
}

#[test]
fn describe_examples() {
    let cases = [
        ("0 6 * * *", "at 06:00 every day"),
        ("0 8 * * 1", "at 08:00 on Monday"),
        ("*/5 * * * *", "every 5 minutes"),
        ("0 * * * *", "at minute 0 past every hour"),
        ("0 7 1 * *", "at 07:00 on day 1 of the month"),
        ("* * * * *", "every minute"),
        ("@hourly", "at minute 0 past every hour"),
        ("@daily", "at 00:00 every day"),
        ("@weekly", "at 00:00 on Sunday"),
        ("@yearly", "at 00:00 on day 1 of the month in January"),
        ("0 4 * * 0", "at 04:00 on Sunday"),
        ("5 4 * * 7", "at 04:05 on Sunday"),
        (
            "0 9-17 * * MON-FRI",
            "at minute 0 past hours 9-17 on Monday through Friday",
        ),
        (
            "0 0 1,15 * 5",
            "at 00:00 on days 1 and 15 of the month or on Friday",
        ),
        (
            "0 0 13 * */7",
            "at 00:00 on day 13 of the month if it is a Sunday",
        ),
        (
            "0 12 * JAN,JUL SUN",
            "at 12:00 on Sunday in January and July",
        ),
        ("0 6,18 * * *", "at 06:00 and 18:00 every day"),
        ("0 */2 * * *", "at minute 0 past every 2 hours"),
        ("*/15 2 * * *", "every 15 minutes between 02:00 and 02:59"),
        ("30 1 1 1 *", "at 01:30 on day 1 of the month in January"),
        (
            "0,30 9 * * sat,sun",
            "at minutes 0 and 30 between 09:00 and 09:59 on Saturday and Sunday",
        ),
        ("0 0 29 2 *", "at 00:00 on day 29 of the month in February"),
    ];
    for (text, description) in cases {
        assert_eq!(expr(text).describe(), description, "for {text:?}");
    }
}

#[test]
fn never_matching_expression_returns_none() {
    let start = std::time::Instant::now();
    for text in [
        "0 0 30 2 *",
        "0 0 31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 30,31 feb *",
        "0 0 30 2 */7",
    ] {
        let e = expr(text);
        assert!(!e.can_fire(), "{text}");
        assert_eq!(e.next_after(utc(2026, 1, 1, 0, 0, 0), NY), None, "{text}");
        assert_eq!(e.iter_after(utc(2026, 1, 1, 0, 0, 0), NY).count(), 0);
    }
    for text in ["0 0 31 1-3 *", "0 0 29 2 *", "0 0 31 2 1", "0 0 */31 2 *"] {
        assert!(expr(text).can_fire(), "{text}");
    }
    // With both day fields restricted, the day-of-week alternative still fires.
    assert!(expr("0 0 30 2 1")
        .next_after(utc(2026, 1, 1, 0, 0, 0), NY)
        .is_some());
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
}

#[test]
fn sparse_expressions_within_the_horizon() {
    // 2100 is not a leap year: 2096-02-29 is followed by 2104-02-29.
    let tz = chrono_tz::UTC;
    let next = expr("0 0 29 2 *").next_after(utc(2096, 3, 1, 0, 0, 0), tz);
    assert_eq!(next, Some(utc(2104, 2, 29, 0, 0, 0)));
    // The 29th of February that is a Sunday (both fields must match as the weekday starts
    // with `*`): 2004, 2032, 2060, 2088, 2128.
    let sunday_leap = expr("0 0 29 2 */7");
    assert_eq!(
        sunday_leap.next_after(utc(2033, 1, 1, 0, 0, 0), tz),
        Some(utc(2060, 2, 29, 0, 0, 0))
    );
    assert_eq!(
        sunday_leap.next_after(utc(2089, 1, 1, 0, 0, 0), tz),
        Some(utc(2128, 2, 29, 0, 0, 0))
    );
}

#[test]
fn strictly_after_whole_minutes() {
    let e = expr("* * * * *");
    let tz = chrono_tz::UTC;
    assert_eq!(
        e.next_after(utc(2026, 1, 1, 10, 0, 0), tz),
        Some(utc(2026, 1, 1, 10, 1, 0))
    );
    let half = utc(2026, 1, 1, 10, 0, 0) + chrono::TimeDelta::milliseconds(500);
    assert_eq!(e.next_after(half, tz), Some(utc(2026, 1, 1, 10, 1, 0)));
    assert_eq!(
        e.next_after(utc(2026, 1, 1, 10, 0, 59), tz),
        Some(utc(2026, 1, 1, 10, 1, 0))
    );
    assert_eq!(
        e.next_after(utc(2026, 1, 1, 9, 59, 59), tz),
        Some(utc(2026, 1, 1, 10, 0, 0))
    );
}

#[test]
fn vixie_either_day_rule() {
    // 2026-05: Fridays are 1, 8, 15, 22, 29; the 1st and 15th are also listed.
    let got = fires("0 0 1,15 * 5", chrono_tz::UTC, utc(2026, 4, 30, 0, 0, 0), 6);
    assert_eq!(
        got,
        [
            "2026-05-01T00:00:00Z",
            "2026-05-08T00:00:00Z",
            "2026-05-15T00:00:00Z",
            "2026-05-22T00:00:00Z",
            "2026-05-29T00:00:00Z",
            "2026-06-01T00:00:00Z"
        ]
    );
    // A day-of-month starting with `*` is unrestricted: both must match (odd days that are
    // Mondays).
    let got = fires("0 0 */2 * 1", chrono_tz::UTC, utc(2026, 5, 31, 0, 0, 0), 3);
    assert_eq!(
        got,
        [
            "2026-06-01T00:00:00Z",
            "2026-06-15T00:00:00Z",
            "2026-06-29T00:00:00Z"
        ]
    );
}

#[test]
fn dst_gap_fixed_time_collapses_others_skip() {
    let after = utc(2025, 3, 9, 0, 0, 0); // New York jumps 02:00 EST -> 03:00 EDT at 07:00Z
    assert_eq!(
        fires("30 2 * * *", NY, after, 2),
        ["2025-03-09T07:00:00Z", "2025-03-10T06:30:00Z"]
    );
    assert_eq!(
        fires("0,30 2 * * *", NY, after, 2),
        ["2025-03-09T07:00:00Z", "2025-03-10T06:00:00Z"]
    );
    // Not fixed-time (minute field starts with `*`): the missing 02:xx are skipped.
    assert_eq!(
        fires("*/15 2 * * *", NY, after, 2),
        ["2025-03-10T06:00:00Z", "2025-03-10T06:15:00Z"]
    );
    // Hour `*`, or all 24 hours listed: 01:30 EST, then 03:30 EDT, nothing at the jump.
    for text in ["30 * * * *", "30 0-23 * * *"] {
        assert_eq!(
            fires(text, NY, utc(2025, 3, 9, 6, 0, 0), 2),
            ["2025-03-09T06:30:00Z", "2025-03-09T07:30:00Z"],
            "{text}"
        );
    }
    assert_eq!(
        fires("0 2,3 * * *", NY, after, 3),
        [
            "2025-03-09T07:00:00Z",
            "2025-03-10T06:00:00Z",
            "2025-03-10T07:00:00Z"
        ]
    );
    // Strictly after the transition instant: no second fire at it.
    assert_eq!(
        fires("30 2 * * *", NY, utc(2025, 3, 9, 7, 0, 0), 1),
        ["2025-03-10T06:30:00Z"]
    );
    // The minute before the jump: the gap's fire is due at the jump.
    assert_eq!(
        fires("30 2 * * *", NY, utc(2025, 3, 9, 6, 59, 0), 1),
        ["2025-03-09T07:00:00Z"]
    );
}

#[test]
fn dst_overlap_fixed_time_once_others_twice() {
    let after = utc(2025, 11, 2, 4, 0, 0); // New York repeats 01:00-01:59 (05:00Z-06:59Z)
    assert_eq!(
        fires("30 1 * * *", NY, after, 2),
        ["2025-11-02T05:30:00Z", "2025-11-03T06:30:00Z"]
    );
    assert_eq!(
        fires("0,30 1-2 * * *", NY, after, 4),
        [
            "2025-11-02T05:00:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-02T07:00:00Z",
            "2025-11-02T07:30:00Z"
        ]
    );
    assert_eq!(
        fires("30 * * * *", NY, after, 4),
        [
            "2025-11-02T04:30:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-02T06:30:00Z",
            "2025-11-02T07:30:00Z"
        ]
    );
    // `1/1` (01-23) neither starts with `*` nor lists all 24 hours: fixed-time.
    assert_eq!(
        fires("30 1/1 * * *", NY, after, 3),
        [
            "2025-11-02T05:30:00Z",
            "2025-11-02T07:30:00Z",
            "2025-11-02T08:30:00Z"
        ]
    );
    // All 24 hours listed: not fixed-time, both passes.
    assert_eq!(
        fires("30 0-23 * * *", NY, after, 3),
        [
            "2025-11-02T04:30:00Z",
            "2025-11-02T05:30:00Z",
            "2025-11-02T06:30:00Z"
        ]
    );
    // A minute field starting with `*` and a range of hours: both passes.
    assert_eq!(
        fires("*/20 1-3 * * *", NY, after, 7),
        [
            "2025-11-02T05:00:00Z",
            "2025-11-02T05:20:00Z",
            "2025-11-02T05:40:00Z",
            "2025-11-02T06:00:00Z",
            "2025-11-02T06:20:00Z",
            "2025-11-02T06:40:00Z",
            "2025-11-02T07:00:00Z"
        ]
    );
    // Starting inside the first pass, a `*` hour still sees the whole second pass.
    assert_eq!(
        fires("0,55 * * * *", NY, utc(2025, 11, 2, 5, 50, 0), 3),
        [
            "2025-11-02T05:55:00Z",
            "2025-11-02T06:00:00Z",
            "2025-11-02T06:55:00Z"
        ]
    );
    // Starting inside the second pass, a fixed hour waits for the next day.
    assert_eq!(
        fires("45 1 * * *", NY, utc(2025, 11, 2, 6, 10, 0), 1),
        ["2025-11-03T06:45:00Z"]
    );
}

#[test]
fn fire_times_strictly_increase_through_dst_years() {
    let zones = [
        chrono_tz::America::New_York,
        chrono_tz::Europe::London,
        chrono_tz::Australia::Sydney,
        chrono_tz::Pacific::Auckland,
        chrono_tz::Australia::Lord_Howe,
        chrono_tz::Asia::Kolkata,
    ];
    for text in [
        "*/10 * * * *",
        "*/20 1-3 * * *",
        "0 2 * * *",
        "30 1,2 * * *",
        "0 */3 * * *",
    ] {
        let e = expr(text);
        for tz in zones {
            let mut prev = utc(2025, 1, 1, 0, 0, 0);
            for t in e
                .iter_after(prev, tz)
                .take_while(|t| *t < utc(2026, 1, 1, 0, 0, 0))
            {
                assert!(t > prev, "{text} in {tz}: {t} after {prev}");
                assert_eq!(t.timestamp() % 60, 0, "whole minutes");
                prev = t;
            }
        }
    }
}

#[test]
fn non_dst_zones_are_plain() {
    let kolkata = chrono_tz::Asia::Kolkata; // UTC+05:30
    assert_eq!(
        fires("0 6 * * *", kolkata, utc(2026, 3, 29, 0, 0, 0), 2),
        ["2026-03-29T00:30:00Z", "2026-03-30T00:30:00Z"]
    );
    let count = expr("*/30 * * * *")
        .iter_after(utc(2026, 1, 1, 0, 0, 0), chrono_tz::UTC)
        .take_while(|t| *t <= utc(2027, 1, 1, 0, 0, 0))
        .count();
    assert_eq!(count, 365 * 48);
}

#[test]
fn schedule_every_is_anchored_to_the_epoch() {
    let five = Schedule::Every(Duration::from_secs(300));
    assert_eq!(
        five.next_after(utc(2026, 1, 1, 10, 2, 13)),
        Some(utc(2026, 1, 1, 10, 5, 0))
    );
    assert_eq!(
        five.next_after(utc(2026, 1, 1, 10, 5, 0)),
        Some(utc(2026, 1, 1, 10, 10, 0))
    );
    let times: Vec<_> = five
        .iter_after(utc(2026, 1, 1, 23, 54, 59))
        .take(3)
        .collect();
    assert_eq!(
        times,
        [
            utc(2026, 1, 1, 23, 55, 0),
            utc(2026, 1, 2, 0, 0, 0),
            utc(2026, 1, 2, 0, 5, 0)
        ]
    );
    let half = Schedule::Every(Duration::from_millis(500));
    let after = utc(2026, 1, 1, 0, 0, 0) + chrono::TimeDelta::milliseconds(499);
    assert_eq!(
        half.next_after(after),
        Some(utc(2026, 1, 1, 0, 0, 0) + chrono::TimeDelta::milliseconds(500))
    );
    // 7 hours since the epoch: 1970-01-01T00:00Z, 07:00, 14:00, 21:00, 04:00, ...
    let seven = Schedule::Every(Duration::from_secs(7 * 3600));
    assert_eq!(
        seven.next_after(utc(1970, 1, 1, 22, 0, 0)),
        Some(utc(1970, 1, 2, 4, 0, 0))
    );
    assert_eq!(
        seven.next_after(utc(1969, 12, 31, 23, 0, 0)),
        Some(utc(1970, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        Schedule::Every(Duration::ZERO).next_after(utc(2026, 1, 1, 0, 0, 0)),
        None
    );
    assert_eq!(
        Schedule::Every(Duration::MAX).next_after(utc(2026, 1, 1, 0, 0, 0)),
        None
    );
}

#[test]
fn schedule_once_and_cron() {
    let at = utc(2026, 6, 1, 12, 0, 0);
    let once = Schedule::Once(at);
    assert_eq!(once.next_after(utc(2026, 6, 1, 11, 59, 59)), Some(at));
    assert_eq!(once.next_after(at), None);
    assert_eq!(once.next_after(utc(2027, 1, 1, 0, 0, 0)), None);
    assert_eq!(
        once.iter_after(utc(2020, 1, 1, 0, 0, 0))
            .collect::<Vec<_>>(),
        [at]
    );

    let cron = Schedule::Cron {
        expr: expr("0 8 * * 1"),
        tz: chrono_tz::Europe::Berlin,
    };
    // 2026-03-30 is a Monday, already on CEST (UTC+2).
    assert_eq!(
        cron.next_after(utc(2026, 3, 27, 0, 0, 0)),
        Some(utc(2026, 3, 30, 6, 0, 0))
    );
    assert_eq!(cron.to_string(), "cron \"0 8 * * 1\" in Europe/Berlin");
    assert_eq!(
        Schedule::Every(Duration::from_secs(300)).to_string(),
        "every 300s"
    );
}

#[test]
fn far_future_and_past_do_not_panic() {
    let e = expr("0 0 1 1 *");
    assert_eq!(e.next_after(DateTime::<Utc>::MAX_UTC, NY), None);
    // Whatever the answer near the edges of chrono's range, it must not panic.
    let _ = e.next_after(DateTime::<Utc>::MIN_UTC, chrono_tz::UTC);
    let _ = Schedule::Every(Duration::from_secs(1)).next_after(DateTime::<Utc>::MAX_UTC);
    assert_eq!(
        e.next_after(utc(1900, 1, 1, 0, 0, 0), chrono_tz::UTC),
        Some(utc(1900, 1, 1, 0, 0, 0) + chrono::TimeDelta::days(365))
    );
}
