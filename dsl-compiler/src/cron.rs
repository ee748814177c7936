//! Five-field cron expressions: the parser the checker validates `schedule: "…"` with, and the
//! matcher the scheduler computes fire times with.
//!
//! The syntax is the classic Vixie cron one: `minute hour day-of-month month day-of-week`, each
//! field a comma-separated list of `*`, `n`, `a-b`, `*/s`, `a-b/s` or `a/s` (from `a` to the end);
//! months also as `JAN`–`DEC` and days as `SUN`–`SAT` (any case); Sunday is 0 or 7. The macros
//! `@hourly`, `@daily`, `@midnight`, `@weekly`, `@monthly`, `@yearly` and `@annually` stand for
//! their usual expansions. As in Vixie cron, when both the day of month and the day of week are
//! restricted (the field does not start with `*`), a day matches if EITHER matches.
//!
//! Parse errors name the field and the reason ("hour 24 is out of range 0-23") and carry the
//! byte range of the offending text inside the expression, so callers can point at it.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

/// A parsed cron expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    /// Minutes 0–59 at which the expression fires.
    pub minutes: BTreeSet<u32>,
    /// Hours 0–23.
    pub hours: BTreeSet<u32>,
    /// Days of the month 1–31.
    pub days_of_month: BTreeSet<u32>,
    /// Months 1–12.
    pub months: BTreeSet<u32>,
    /// Days of the week 0–6, Sunday = 0 (a written 7 is stored as 0).
    pub days_of_week: BTreeSet<u32>,
    /// Whether the day-of-month field was restricted (did not start with `*`).
    pub dom_restricted: bool,
    /// Whether the day-of-week field was restricted (did not start with `*`).
    pub dow_restricted: bool,
}

/// The five fields of an expression, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CronField {
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    const ALL: [CronField; 5] = [
        CronField::Minute,
        CronField::Hour,
        CronField::DayOfMonth,
        CronField::Month,
        CronField::DayOfWeek,
    ];

    /// The field's name as used in messages: `minute`, `hour`, `day of month`, `month`, `day of week`.
    pub fn name(self) -> &'static str {
        match self {
            CronField::Minute => "minute",
            CronField::Hour => "hour",
            CronField::DayOfMonth => "day of month",
            CronField::Month => "month",
            CronField::DayOfWeek => "day of week",
        }
    }

    /// The accepted numeric range (day of week accepts 7 for Sunday).
    fn bounds(self) -> (u32, u32) {
        match self {
            CronField::Minute => (0, 59),
            CronField::Hour => (0, 23),
            CronField::DayOfMonth => (1, 31),
            CronField::Month => (1, 12),
            CronField::DayOfWeek => (0, 7),
        }
    }

    /// The range shown in messages (day of week is documented as 0-6, 7 being an alias).
    fn shown_bounds(self) -> (u32, u32) {
        match self {
            CronField::DayOfWeek => (0, 6),
            f => f.bounds(),
        }
    }

    fn names(self) -> &'static [&'static str] {
        match self {
            CronField::Month => &MONTHS,
            CronField::DayOfWeek => &DAYS,
            _ => &[],
        }
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The macros and what they expand to.
pub const MACROS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// Why an expression is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CronError {
    /// The field at fault, if the error belongs to one.
    pub field: Option<CronField>,
    /// What is wrong: "hour 24 is out of range 0-23".
    pub message: String,
    /// Byte range of the offending text within the expression.
    pub span: Range<usize>,
}

impl CronError {
    fn new(field: Option<CronField>, span: Range<usize>, message: impl Into<String>) -> CronError {
        CronError {
            field,
            message: message.into(),
            span,
        }
    }
}

/// Parses a cron expression (five fields or a macro).
pub fn parse(expr: &str) -> Result<CronExpr, CronError> {
    let trimmed = expr.trim();
    if trimmed.starts_with('@') {
        let start = expr.len() - expr.trim_start().len();
        let span = start..start + trimmed.len();
        let expansion = MACROS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
            .map(|(_, e)| *e)
            .ok_or_else(|| {
                CronError::new(
                    None,
                    span.clone(),
                    format!("unknown cron macro `{trimmed}`"),
                )
            })?;
        return parse(expansion).map_err(|mut e| {
            e.span = span;
            e
        });
    }

    // Split into fields, remembering each one's byte offset.
    let mut fields: Vec<(usize, &str)> = Vec::new();
    let mut start = None;
    for (i, c) in expr.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                fields.push((s, &expr[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        fields.push((s, &expr[s..]));
    }
    if fields.len() != 5 {
        let span = match fields.get(5) {
            Some(&(s, _)) => s..expr.trim_end().len(),
            None => 0..expr.len(),
        };
        return Err(CronError::new(
            None,
            span,
            format!("expected 5 fields, found {}", fields.len()),
        ));
    }

    let mut sets: Vec<BTreeSet<u32>> = Vec::with_capacity(5);
    for (field, &(offset, text)) in CronField::ALL.iter().zip(&fields) {
        sets.push(parse_field(*field, text, offset)?);
    }
    let mut days_of_week = sets.pop().unwrap_or_default();
    if days_of_week.remove(&7) {
        days_of_week.insert(0);
    }
    let months = sets.pop().unwrap_or_default();
    let days_of_month = sets.pop().unwrap_or_default();
    let hours = sets.pop().unwrap_or_default();
    let minutes = sets.pop().unwrap_or_default();
    Ok(CronExpr {
        minutes,
        hours,
        days_of_month,
        months,
        days_of_week,
        dom_restricted: !fields[2].1.starts_with('*'),
        dow_restricted: !fields[4].1.starts_with('*'),
    })
}

/// Parses one field (`text` starts at byte `offset` of the expression).
fn parse_field(field: CronField, text: &str, offset: usize) -> Result<BTreeSet<u32>, CronError> {
    let (min, max) = field.bounds();
    let mut set = BTreeSet::new();
    let mut pos = offset;
    for element in text.split(',') {
        let span = pos..pos + element.len();
        pos += element.len() + 1;
        if element.is_empty() {
            return Err(CronError::new(
                Some(field),
                span,
                format!("{} list has an empty element", field.name()),
            ));
        }
        let (range_text, step) = match element.split_once('/') {
            Some((r, s)) => {
                let step_span = span.start + r.len() + 1..span.end;
                let step: u32 = s.parse().map_err(|_| {
                    CronError::new(
                        Some(field),
                        step_span.clone(),
                        format!("{} step `{s}` is not a number", field.name()),
                    )
                })?;
                if step == 0 {
                    return Err(CronError::new(
                        Some(field),
                        step_span,
                        format!("{} step must be at least 1", field.name()),
                    ));
                }
                (r, Some(step))
            }
            None => (element, None),
        };
        let range_span = span.start..span.start + range_text.len();
        let (lo, hi) = if range_text == "*" {
            (
                min,
                max.min(if field == CronField::DayOfWeek {
                    6
                } else {
                    max
                }),
            )
        } else if let Some((a, b)) = range_text.split_once('-') {
            let a_span = range_span.start..range_span.start + a.len();
            let b_span = a_span.end + 1..range_span.end;
            let lo = parse_value(field, a, a_span)?;
            let hi = parse_value(field, b, b_span)?;
            if lo > hi {
                return Err(CronError::new(
                    Some(field),
                    range_span,
                    format!(
                        "{} range {range_text} is reversed (start after end)",
                        field.name()
                    ),
                ));
            }
            (lo, hi)
        } else {
            let v = parse_value(field, range_text, range_span)?;
            // `a/s` runs from `a` to the end of the field's range.
            match step {
                Some(_) => (
                    v,
                    if field == CronField::DayOfWeek {
                        6
                    } else {
                        max
                    },
                ),
                None => (v, v),
            }
        };
        let step = step.unwrap_or(1) as usize;
        set.extend((lo..=hi).step_by(step));
    }
    Ok(set)
}

fn parse_value(field: CronField, text: &str, span: Range<usize>) -> Result<u32, CronError> {
    let (min, max) = field.bounds();
    if let Some(i) = field
        .names()
        .iter()
        .position(|n| n.eq_ignore_ascii_case(text))
    {
        return Ok(if field == CronField::Month {
            i as u32 + 1
        } else {
            i as u32
        });
    }
    let value: u32 = match text.parse() {
        Ok(v) if text.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => {
            let what = match field {
                CronField::Month => " (or a month name JAN-DEC)",
                CronField::DayOfWeek => " (or a day name SUN-SAT)",
                _ => "",
            };
            let message = if text.is_empty() {
                format!("{} is missing a number{what}", field.name())
            } else {
                format!("{} `{text}` is not a number{what}", field.name())
            };
            return Err(CronError::new(Some(field), span, message));
        }
    };
    if value < min || value > max {
        let (lo, hi) = field.shown_bounds();
        return Err(CronError::new(
            Some(field),
            span,
            format!("{} {value} is out of range {lo}-{hi}", field.name()),
        ));
    }
    Ok(value)
}

impl CronExpr {
    /// Whether the expression fires at this local date and time (seconds are ignored).
    pub fn matches(&self, at: NaiveDateTime) -> bool {
        self.minutes.contains(&at.minute())
            && self.hours.contains(&at.hour())
            && self.matches_date(at.date())
    }

    /// Whether the expression fires on this local date (at some time).
    pub fn matches_date(&self, date: NaiveDate) -> bool {
        if !self.months.contains(&date.month()) {
            return false;
        }
        let dom = self.days_of_month.contains(&date.day());
        let dow = self
            .days_of_week
            .contains(&date.weekday().num_days_from_sunday());
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first local time strictly after `after` (to the minute) at which the expression
    /// fires, or `None` if it never fires (like `0 0 30 2 *`). Time zones and daylight-saving
    /// gaps are the caller's business: this works on wall-clock time.
    pub fn next_after(&self, after: NaiveDateTime) -> Option<NaiveDateTime> {
        let start =
            after
                .date()
                .and_time(NaiveTime::from_hms_opt(after.hour(), after.minute(), 0)?)
                + Duration::minutes(1);
        let mut date = start.date();
        // Every combination of day of month and weekday repeats within 28 years.
        let last = date + Duration::days(366 * 28);
        while date <= last {
            if self.matches_date(date) {
                for &h in &self.hours {
                    for &m in &self.minutes {
                        let t = date.and_time(NaiveTime::from_hms_opt(h, m, 0)?);
                        if t >= start {
                            return Some(t);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    /// Whether some date matches (false for expressions like `0 0 31 4 *`).
    pub fn can_fire(&self) -> bool {
        if self.dow_restricted && !self.dom_restricted {
            return true;
        }
        if self.dom_restricted && self.dow_restricted {
            return true;
        }
        // Days of the month in a leap year.
        const DAYS_IN: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        self.months.iter().any(|&m| {
            self.days_of_month
                .iter()
                .any(|&d| d <= DAYS_IN[m as usize - 1])
        })
    }

    /// A short English description: "at 06:00 every day", "every 15 minutes",
    /// "at 08:00 on Monday", "at minute 0 of every hour".
    pub fn describe(&self) -> String {
        let all_minutes = self.minutes.len() == 60;
        let all_hours = self.hours.len() == 24;
        let single = |s: &BTreeSet<u32>| (s.len() == 1).then(|| *s.iter().next().unwrap_or(&0));
        let mut out = if all_minutes && all_hours {
            "every minute".to_string()
        } else if let (Some(step), true) = (even_step(&self.minutes, 60), all_hours) {
            format!("every {step} minutes")
        } else if let (Some(m), true) = (single(&self.minutes), all_hours) {
            format!("at minute {m} of every hour")
        } else if let (Some(m), Some(step)) = (single(&self.minutes), even_step(&self.hours, 24)) {
            format!("at minute {m} of every {step} hours")
        } else if let (Some(m), true) = (single(&self.minutes), self.hours.len() <= 4) {
            let times: Vec<String> = self
                .hours
                .iter()
                .map(|h| format!("{h:02}:{m:02}"))
                .collect();
            format!("at {}", join_and(&times))
        } else {
            let minutes = if all_minutes {
                "every minute".to_string()
            } else {
                format!("at minutes {}", join_numbers(&self.minutes))
            };
            if all_hours {
                format!("{minutes} of every hour")
            } else {
                format!("{minutes} past hours {}", join_numbers(&self.hours))
            }
        };
        let days = match (self.dom_restricted, self.dow_restricted) {
            (false, false) => None,
            (true, false) => Some(self.describe_dom()),
            (false, true) => Some(self.describe_dow()),
            (true, true) => Some(format!(
                "{} or {}",
                self.describe_dom(),
                self.describe_dow()
            )),
        };
        let months_restricted = self.months.len() < 12;
        match days {
            Some(d) => {
                out.push(' ');
                out.push_str(&d);
            }
            None if !months_restricted && out.starts_with("at ") && !out.contains("every") => {
                out.push_str(" every day")
            }
            None => {}
        }
        if months_restricted {
            let months: Vec<String> = self
                .months
                .iter()
                .map(|&m| MONTH_NAMES[m as usize - 1].to_string())
                .collect();
            out.push_str(" in ");
            out.push_str(&join_and(&months));
        }
        out
    }

    fn describe_dom(&self) -> String {
        if self.days_of_month.len() == 1 {
            format!("on day {} of the month", join_numbers(&self.days_of_month))
        } else {
            format!("on days {} of the month", join_numbers(&self.days_of_month))
        }
    }

    fn describe_dow(&self) -> String {
        let days: Vec<u32> = self.days_of_week.iter().copied().collect();
        let contiguous = days.windows(2).all(|w| w[1] == w[0] + 1);
        if days.len() >= 3 && contiguous {
            format!(
                "on {} through {}",
                DAY_NAMES[days[0] as usize],
                DAY_NAMES[days[days.len() - 1] as usize]
            )
        } else {
            let names: Vec<String> = days
                .iter()
                .map(|&d| DAY_NAMES[d as usize].to_string())
                .collect();
            format!("on {}", join_and(&names))
        }
    }
}

/// `Some(step)` if the set is `0, step, 2·step, …` covering a range of `modulus` with step > 1.
fn even_step(set: &BTreeSet<u32>, modulus: u32) -> Option<u32> {
    let values: Vec<u32> = set.iter().copied().collect();
    if values.len() < 2 || values[0] != 0 {
        return None;
    }
    let step = values[1];
    let expected: Vec<u32> = (0..modulus).step_by(step as usize).collect();
    (step > 1 && values == expected).then_some(step)
}

fn join_numbers(set: &BTreeSet<u32>) -> String {
    let items: Vec<String> = set.iter().map(u32::to_string).collect();
    join_and(&items)
}

/// `a`, `a and b`, `a, b and c`.
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[u32]) -> BTreeSet<u32> {
        values.iter().copied().collect()
    }

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
    }

    fn err(expr: &str) -> CronError {
        parse(expr).expect_err(expr)
    }

    #[test]
    fn parses_plain_values_and_stars() {
        let c = parse("0 6 * * *").unwrap();
        assert_eq!(c.minutes, set(&[0]));
        assert_eq!(c.hours, set(&[6]));
        assert_eq!(c.days_of_month.len(), 31);
        assert_eq!(c.months.len(), 12);
        assert_eq!(c.days_of_week, set(&[0, 1, 2, 3, 4, 5, 6]));
        assert!(!c.dom_restricted && !c.dow_restricted);
    }

    #[test]
    fn parses_ranges_steps_and_lists() {
        let c = parse("*/15 9-17/2 1,15 * 1-5").unwrap();
        assert_eq!(c.minutes, set(&[0, 15, 30, 45]));
        assert_eq!(c.hours, set(&[9, 11, 13, 15, 17]));
        assert_eq!(c.days_of_month, set(&[1, 15]));
        assert_eq!(c.days_of_week, set(&[1, 2, 3, 4, 5]));
        assert!(c.dom_restricted && c.dow_restricted);
        // `a/s` runs to the end of the range.
        assert_eq!(parse("5/20 * * * *").unwrap().minutes, set(&[5, 25, 45]));
        assert_eq!(parse("0,30 0 * * *").unwrap().minutes, set(&[0, 30]));
    }

    #[test]
    fn names_are_case_insensitive_and_sunday_is_0_or_7() {
        let c = parse("0 0 * jan-Mar,DEC mon,wed,FRI").unwrap();
        assert_eq!(c.months, set(&[1, 2, 3, 12]));
        assert_eq!(c.days_of_week, set(&[1, 3, 5]));
        assert_eq!(parse("0 0 * * 7").unwrap().days_of_week, set(&[0]));
        assert_eq!(parse("0 0 * * sun").unwrap().days_of_week, set(&[0]));
        assert_eq!(parse("0 0 * * 5-7").unwrap().days_of_week, set(&[0, 5, 6]));
    }

    #[test]
    fn macros_expand() {
        assert_eq!(parse("@hourly").unwrap(), parse("0 * * * *").unwrap());
        assert_eq!(parse("@daily").unwrap(), parse("0 0 * * *").unwrap());
        assert_eq!(parse("@midnight").unwrap(), parse("0 0 * * *").unwrap());
        assert_eq!(parse("@weekly").unwrap(), parse("0 0 * * 0").unwrap());
        assert_eq!(parse("@monthly").unwrap(), parse("0 0 1 * *").unwrap());
        assert_eq!(parse("@yearly").unwrap(), parse("0 0 1 1 *").unwrap());
        assert_eq!(parse("@ANNUALLY").unwrap(), parse("0 0 1 1 *").unwrap());
        let e = err("@reboot");
        assert_eq!(e.message, "unknown cron macro `@reboot`");
        assert_eq!(e.span, 0..7);
    }

    #[test]
    fn errors_name_the_field_and_point_at_the_text() {
        let cases: &[(&str, &str, Option<CronField>, Range<usize>)] = &[
            (
                "0 24 * * *",
                "hour 24 is out of range 0-23",
                Some(CronField::Hour),
                2..4,
            ),
            (
                "60 * * * *",
                "minute 60 is out of range 0-59",
                Some(CronField::Minute),
                0..2,
            ),
            (
                "0 0 0 * *",
                "day of month 0 is out of range 1-31",
                Some(CronField::DayOfMonth),
                4..5,
            ),
            (
                "0 0 * 13 *",
                "month 13 is out of range 1-12",
                Some(CronField::Month),
                6..8,
            ),
            (
                "0 0 * * 8",
                "day of week 8 is out of range 0-6",
                Some(CronField::DayOfWeek),
                8..9,
            ),
            (
                "*/0 * * * *",
                "minute step must be at least 1",
                Some(CronField::Minute),
                2..3,
            ),
            ("0 6 * * * *", "expected 5 fields, found 6", None, 10..11),
            ("0 6 * *", "expected 5 fields, found 4", None, 0..7),
            ("", "expected 5 fields, found 0", None, 0..0),
            (
                "0 x * * *",
                "hour `x` is not a number",
                Some(CronField::Hour),
                2..3,
            ),
            (
                "0 0 * FOO *",
                "month `FOO` is not a number (or a month name JAN-DEC)",
                Some(CronField::Month),
                6..9,
            ),
            (
                "0 5-2 * * *",
                "hour range 5-2 is reversed (start after end)",
                Some(CronField::Hour),
                2..5,
            ),
            (
                "0 1,,2 * * *",
                "hour list has an empty element",
                Some(CronField::Hour),
                4..4,
            ),
            (
                "0 1-30 * * *",
                "hour 30 is out of range 0-23",
                Some(CronField::Hour),
                4..6,
            ),
            (
                "0 */x * * *",
                "hour step `x` is not a number",
                Some(CronField::Hour),
                4..5,
            ),
            (
                "0 0 L * *",
                "day of month `L` is not a number",
                Some(CronField::DayOfMonth),
                4..5,
            ),
            (
                "0 0 * * 1-",
                "day of week is missing a number (or a day name SUN-SAT)",
                Some(CronField::DayOfWeek),
                10..10,
            ),
        ];
        for (expr, message, field, span) in cases {
            let e = err(expr);
            assert_eq!(&e.message, message, "{expr}");
            assert_eq!(e.to_string(), *message, "{expr}");
            assert_eq!(&e.field, field, "{expr}");
            assert_eq!(&e.span, span, "{expr}");
        }
    }

    #[test]
    fn star_with_step_is_not_a_restriction_of_days() {
        let c = parse("0 0 */2 * 1").unwrap();
        assert!(!c.dom_restricted);
        assert!(c.dow_restricted);
        // Not restricted by dom => both must match: only odd days that are Mondays.
        assert!(c.matches(at("2026-01-05 00:00"))); // Monday the 5th
        assert!(!c.matches(at("2026-01-12 00:00"))); // Monday the 12th
    }

    #[test]
    fn dom_and_dow_both_restricted_match_either() {
        let c = parse("0 0 1 * 1").unwrap();
        assert!(c.matches(at("2026-01-01 00:00"))); // Thursday the 1st
        assert!(c.matches(at("2026-01-05 00:00"))); // Monday
        assert!(!c.matches(at("2026-01-06 00:00")));
    }

    #[test]
    fn next_after_finds_the_next_fire() {
        let c = parse("0 6 * * *").unwrap();
        assert_eq!(
            c.next_after(at("2026-01-12 05:59")),
            Some(at("2026-01-12 06:00"))
        );
        assert_eq!(
            c.next_after(at("2026-01-12 06:00")),
            Some(at("2026-01-13 06:00"))
        );
        let monday = parse("0 8 * * 1").unwrap();
        assert_eq!(
            monday.next_after(at("2026-01-12 08:30")),
            Some(at("2026-01-19 08:00"))
        );
        let leap = parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-03-01 00:00")),
            Some(at("2028-02-29 00:00"))
        );
        let quarter = parse("*/15 * * * *").unwrap();
        assert_eq!(
            quarter.next_after(at("2026-01-12 10:07")),
            Some(at("2026-01-12 10:15"))
        );
        assert_eq!(
            quarter.next_after(at("2026-12-31 23:50")),
            Some(at("2027-01-01 00:00"))
        );
    }

    #[test]
    fn impossible_dates_never_fire() {
        let c = parse("0 0 30 2 *").unwrap();
        assert!(!c.can_fire());
        assert_eq!(c.next_after(at("2026-01-01 00:00")), None);
        assert!(parse("0 0 31 1-3 *").unwrap().can_fire());
        assert!(parse("0 0 29 2 *").unwrap().can_fire());
        assert!(parse("0 0 31 2 1").unwrap().can_fire());
    }

    #[test]
    fn describes_common_patterns() {
        for (expr, text) in [
            ("0 6 * * *", "at 06:00 every day"),
            ("0 8 * * 1", "at 08:00 on Monday"),
            ("0 * * * *", "at minute 0 of every hour"),
            ("*/15 * * * *", "every 15 minutes"),
            ("* * * * *", "every minute"),
            ("0 7 1 * *", "at 07:00 on day 1 of the month"),
            ("0 9 * * 1-5", "at 09:00 on Monday through Friday"),
            ("0 4 * * 0", "at 04:00 on Sunday"),
            ("0 */4 * * *", "at minute 0 of every 4 hours"),
            ("30 9,18 * * *", "at 09:30 and 18:30 every day"),
            ("0 0 1 1 *", "at 00:00 on day 1 of the month in January"),
            ("0 12 * * sat,sun", "at 12:00 on Sunday and Saturday"),
            ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
            (
                "5,10 1-12 * * *",
                "at minutes 5 and 10 past hours 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 12 every day",
            ),
        ] {
            assert_eq!(parse(expr).unwrap().describe(), text, "{expr}");
        }
    }
}
