//! The `clock` interface: instants and calendar periods in a job's timezone.
//!
//! Periods are local calendar units: a day runs from local midnight to the next local midnight
//! (23 or 25 hours long across a DST change), weeks start on Monday (ISO 8601), labels are
//! `2026-01-12`, `2026-W02`, `2026-01` and `2026`. When a DST change skips local midnight, the
//! day starts at the first instant that exists.

use super::JobCaps;
use crate::wasm::clock::{self as wclock, CalendarPeriod, Instant, PeriodUnit};
use chrono::{
    DateTime, Datelike, Days, Months, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc,
};
use chrono_tz::Tz;

/// `at` as a WIT instant with the offset of `tz` at that moment.
pub fn instant(tz: Tz, at: DateTime<Utc>) -> Instant {
    Instant {
        unix_ms: at.timestamp_millis(),
        utc_offset_seconds: tz
            .offset_from_utc_datetime(&at.naive_utc())
            .fix()
            .local_minus_utc(),
    }
}

/// The first instant of local `time` in `tz`, or of the first local time after it that exists.
pub fn local_start(tz: Tz, time: NaiveDateTime) -> DateTime<Utc> {
    let mut t = time;
    // A gap is at most a few hours; step in 15 minutes (offsets are multiples of 15 minutes).
    for _ in 0..(4 * 24) {
        if let Some(at) = tz.from_local_datetime(&t).earliest() {
            return at.with_timezone(&Utc);
        }
        t += chrono::Duration::minutes(15);
    }
    Utc.from_utc_datetime(&time)
}

fn start_of(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    local_start(tz, date.and_time(NaiveTime::MIN))
}

/// The first day of the period of `unit` that contains `date`.
fn period_first_day(unit: PeriodUnit, date: NaiveDate) -> NaiveDate {
    match unit {
        PeriodUnit::Day => date,
        PeriodUnit::Week => date - Days::new(u64::from(date.weekday().num_days_from_monday())),
        PeriodUnit::Month => date.with_day(1).unwrap_or(date),
        PeriodUnit::Year => NaiveDate::from_ymd_opt(date.year(), 1, 1).unwrap_or(date),
    }
}

/// `date` moved by `amount` whole units (months clamp to the month's last day).
fn add_units(unit: PeriodUnit, date: NaiveDate, amount: i32) -> Option<NaiveDate> {
    let n = amount.unsigned_abs();
    match (unit, amount >= 0) {
        (PeriodUnit::Day, true) => date.checked_add_days(Days::new(n.into())),
        (PeriodUnit::Day, false) => date.checked_sub_days(Days::new(n.into())),
        (PeriodUnit::Week, true) => date.checked_add_days(Days::new(7 * u64::from(n))),
        (PeriodUnit::Week, false) => date.checked_sub_days(Days::new(7 * u64::from(n))),
        (PeriodUnit::Month, true) => date.checked_add_months(Months::new(n)),
        (PeriodUnit::Month, false) => date.checked_sub_months(Months::new(n)),
        (PeriodUnit::Year, true) => date.checked_add_months(Months::new(n.saturating_mul(12))),
        (PeriodUnit::Year, false) => date.checked_sub_months(Months::new(n.saturating_mul(12))),
    }
}

fn label(unit: PeriodUnit, first: NaiveDate) -> String {
    match unit {
        PeriodUnit::Day => first.format("%Y-%m-%d").to_string(),
        PeriodUnit::Week => {
            let week = first.iso_week();
            format!("{}-W{:02}", week.year(), week.week())
        }
        PeriodUnit::Month => first.format("%Y-%m").to_string(),
        PeriodUnit::Year => first.format("%Y").to_string(),
    }
}

/// The period `offset` units away from the one containing `now`, in `tz`.
pub fn period(tz: Tz, now: DateTime<Utc>, unit: PeriodUnit, offset: i32) -> CalendarPeriod {
    let today = now.with_timezone(&tz).date_naive();
    let current = period_first_day(unit, today);
    let first = add_units(unit, current, offset)
        .map(|d| period_first_day(unit, d))
        .unwrap_or(current);
    let next = add_units(unit, first, 1).unwrap_or(first);
    CalendarPeriod {
        start: instant(tz, start_of(tz, first)),
        end: instant(tz, start_of(tz, next)),
        label: label(unit, first),
    }
}

/// Shifts `at_ms` by `amount` calendar units in `tz`, keeping the local time of day (moved to
/// the first existing instant if that time does not exist on the new day).
pub fn shift(tz: Tz, at_ms: i64, unit: PeriodUnit, amount: i32) -> Instant {
    let at = DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    let local = at.with_timezone(&tz).naive_local();
    let moved = add_units(unit, local.date(), amount)
        .map(|d| local_start(tz, d.and_time(local.time())))
        .unwrap_or(at);
    instant(tz, moved)
}

impl wclock::Host for JobCaps {
    async fn now(&mut self) -> wclock::Instant {
        instant(self.tz, self.clock_now())
    }

    async fn timezone(&mut self) -> String {
        self.tz.name().to_string()
    }

    async fn period(&mut self, unit: wclock::PeriodUnit, offset: i32) -> wclock::CalendarPeriod {
        period(self.tz, self.clock_now(), unit, offset)
    }

    async fn shift(&mut self, at: i64, unit: wclock::PeriodUnit, amount: i32) -> wclock::Instant {
        shift(self.tz, at, unit, amount)
    }

    async fn local(&mut self, at: i64) -> wclock::Instant {
        instant(
            self.tz,
            DateTime::from_timestamp_millis(at).unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn ms(s: &str) -> i64 {
        utc(s).timestamp_millis()
    }

    #[test]
    fn yesterday_in_new_york() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 06:00 in New York on 2026-01-13 is 11:00 UTC.
        let p = period(tz, utc("2026-01-13T11:00:00Z"), PeriodUnit::Day, -1);
        assert_eq!(p.label, "2026-01-12");
        assert_eq!(p.start.unix_ms, ms("2026-01-12T05:00:00Z"));
        assert_eq!(p.end.unix_ms, ms("2026-01-13T05:00:00Z"));
        assert_eq!(p.start.utc_offset_seconds, -5 * 3600);
    }

    #[test]
    fn a_dst_day_is_23_hours_long() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let p = period(tz, utc("2026-03-09T12:00:00Z"), PeriodUnit::Day, -1);
        assert_eq!(p.label, "2026-03-08");
        assert_eq!(p.end.unix_ms - p.start.unix_ms, 23 * 3_600_000);
        assert_eq!(p.end.utc_offset_seconds, -4 * 3600);
    }

    #[test]
    fn weeks_start_on_monday_and_months_clamp() {
        let tz = Tz::UTC;
        // 2026-01-14 is a Wednesday: last week is Monday 2026-01-05 .. Monday 2026-01-12.
        let p = period(tz, utc("2026-01-14T09:00:00Z"), PeriodUnit::Week, -1);
        assert_eq!(p.label, "2026-W02");
        assert_eq!(p.start.unix_ms, ms("2026-01-05T00:00:00Z"));
        assert_eq!(p.end.unix_ms, ms("2026-01-12T00:00:00Z"));
        let p = period(tz, utc("2026-03-31T09:00:00Z"), PeriodUnit::Month, -1);
        assert_eq!(p.label, "2026-02");
        assert_eq!(p.end.unix_ms, ms("2026-03-01T00:00:00Z"));
        let back = shift(tz, ms("2026-03-31T10:00:00Z"), PeriodUnit::Month, -1);
        assert_eq!(back.unix_ms, ms("2026-02-28T10:00:00Z"));
        let y = period(tz, utc("2026-06-01T00:00:00Z"), PeriodUnit::Year, 0);
        assert_eq!(y.label, "2026");
    }

    #[test]
    fn shifting_into_a_gap_lands_after_it() {
        let tz: Tz = "America/New_York".parse().unwrap();
        // 02:30 local on 2026-03-07 (EST) shifted one day: 02:30 does not exist on 03-08.
        let at = shift(tz, ms("2026-03-07T07:30:00Z"), PeriodUnit::Day, 1);
        assert_eq!(at.unix_ms, ms("2026-03-08T07:00:00Z"));
        assert_eq!(at.utc_offset_seconds, -4 * 3600);
    }
}
