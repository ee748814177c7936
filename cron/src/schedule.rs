//! Job schedules: a cron expression in a time zone, a fixed interval, or a single instant.

use std::fmt;
use std::iter::FusedIterator;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::expr::CronExpr;

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// A cron expression evaluated on the wall clock of an IANA time zone, with the crate's DST
    /// rules.
    Cron {
        /// The expression.
        expr: CronExpr,
        /// The zone whose wall clock the expression is read on.
        tz: Tz,
    },
    /// Every fixed interval, anchored to the Unix epoch: fires at the multiples of the interval
    /// since 1970-01-01T00:00:00Z, so every 5 minutes fires at :00, :05, :10, … A zero interval
    /// never fires.
    Every(Duration),
    /// Once, at the given instant.
    Once(DateTime<Utc>),
}

impl Schedule {
    /// The first fire time strictly after `after`, or `None` when there is none.
    ///
    /// ```
    /// use std::time::Duration;
    /// use chrono::{TimeZone, Utc};
    /// use codeai_cron::Schedule;
    /// let every = Schedule::Every(Duration::from_secs(300));
    /// let after = Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap();
    /// assert_eq!(every.next_after(after), Some(Utc.with_ymd_and_hms(2026, 1, 1, 10, 10, 0).unwrap()));
    /// ```
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron { expr, tz } => expr.next_after(after, *tz),
            Schedule::Every(interval) => next_multiple(*interval, after),
            Schedule::Once(at) => (*at > after).then_some(*at),
        }
    }

    /// The successive fire times strictly after `after`.
    pub fn iter_after(&self, after: DateTime<Utc>) -> ScheduleIter<'_> {
        ScheduleIter {
            schedule: self,
            cursor: Some(after),
        }
    }
}

/// `cron "0 6 * * *" in Europe/Berlin`, `every 300s`, `once at 2026-01-01T00:00:00+00:00`.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Cron { expr, tz } => write!(f, "cron \"{expr}\" in {}", tz.name()),
            Schedule::Every(interval) => write!(f, "every {interval:?}"),
            Schedule::Once(at) => write!(f, "once at {}", at.to_rfc3339()),
        }
    }
}

/// The smallest multiple of `interval` since the Unix epoch that is strictly after `after`.
fn next_multiple(interval: Duration, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    const NANOS: i128 = 1_000_000_000;
    let step = i128::try_from(interval.as_nanos()).ok()?;
    if step == 0 {
        return None;
    }
    let now = i128::from(after.timestamp()) * NANOS + i128::from(after.timestamp_subsec_nanos());
    let next = now.div_euclid(step).checked_add(1)?.checked_mul(step)?;
    let secs = i64::try_from(next.div_euclid(NANOS)).ok()?;
    let nanos = u32::try_from(next.rem_euclid(NANOS)).ok()?;
    DateTime::from_timestamp(secs, nanos)
}

/// The successive fire times of a [`Schedule`], from [`Schedule::iter_after`].
#[derive(Debug, Clone)]
pub struct ScheduleIter<'a> {
    schedule: &'a Schedule,
    cursor: Option<DateTime<Utc>>,
}

impl Iterator for ScheduleIter<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.schedule.next_after(self.cursor?);
        self.cursor = next;
        next
    }
}

impl FusedIterator for ScheduleIter<'_> {}
