//! Fire-time computation on a time zone's wall clock, with the DST rules of the crate docs.

use std::iter::FusedIterator;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::expr::CronExpr;

/// How far past `after` a fire time is searched for: 50 years (18,263 days). Expressions that can
/// never fire (such as `0 0 30 2 *`) are recognised when parsed and answer `None` at once; the
/// bound only matters for legal but very sparse ones (the 29th of February that is also a Sunday,
/// under the both-must-match rule, may be 40 years away).
pub const SEARCH_HORIZON_DAYS: i64 = 18_263;

/// Instants are handled as whole Unix seconds (every candidate is a whole minute, every tz
/// transition a whole second).
type Secs = i64;

/// Length of the windows in which the UTC offset is checked for a change.
const WINDOW: Secs = 86_400;
/// Wall-clock times before the start of the search that a later instant can still show, after
/// a clock is set back (DST or a zone moving west): more than any real backward jump.
const LOOKBACK: Secs = 2 * 86_400;
/// More than the largest UTC offset any zone has had (±15 h), so that `local - SLACK` is never
/// after the instant showing `local`.
const SLACK: Secs = 26 * 3_600;

fn offset_at(tz: Tz, t: Secs) -> Option<i32> {
    let utc = DateTime::from_timestamp(t, 0)?.naive_utc();
    Some(tz.offset_from_utc_datetime(&utc).fix().local_minus_utc())
}

fn naive(t: Secs) -> Option<NaiveDateTime> {
    Some(DateTime::from_timestamp(t, 0)?.naive_utc())
}

fn secs(n: NaiveDateTime) -> Secs {
    n.and_utc().timestamp()
}

/// The first instant in `(lo, hi]` whose offset is not `off`, given that `lo` has offset `off`
/// and `hi` has not.
fn find_transition(tz: Tz, mut lo: Secs, mut hi: Secs, off: i32) -> Option<Secs> {
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_at(tz, mid)? == off {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

impl CronExpr {
    /// The first fire time strictly after `after`, evaluating the expression on the wall clock
    /// of `tz` with the crate's DST rules. Candidates are whole minutes, so an `after` of
    /// `10:00:30` yields `10:01` at the earliest and an `after` of exactly `10:00` never yields
    /// `10:00` itself.
    ///
    /// Returns `None` when the expression can never fire, or fires only more than
    /// [`SEARCH_HORIZON_DAYS`] after `after`.
    ///
    /// ```
    /// use chrono::{TimeZone, Utc};
    /// use codeai_cron::CronExpr;
    /// let expr = CronExpr::parse("30 2 * * *")?;
    /// // 2025-03-09 02:30 does not exist in New York: the job fires when the clocks jump.
    /// let after = Utc.with_ymd_and_hms(2025, 3, 9, 0, 0, 0).unwrap();
    /// let next = expr.next_after(after, chrono_tz::America::New_York);
    /// assert_eq!(next, Some(Utc.with_ymd_and_hms(2025, 3, 9, 7, 0, 0).unwrap()));
    /// # Ok::<(), codeai_cron::CronError>(())
    /// ```
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        if !self.satisfiable {
            return None;
        }
        let start = after
            .timestamp()
            .div_euclid(60)
            .checked_mul(60)?
            .checked_add(60)?;
        let horizon = start.checked_add(SEARCH_HORIZON_DAYS * 86_400)?;
        let found = self.next_from_secs(start, horizon, tz)?;
        DateTime::from_timestamp(found, 0)
    }

    /// The successive fire times strictly after `after` (see [`CronExpr::next_after`]).
    pub fn iter_after(&self, after: DateTime<Utc>, tz: Tz) -> FireTimes<'_> {
        FireTimes {
            expr: self,
            tz,
            cursor: Some(after),
        }
    }

    /// The first fire instant `>= start` (a whole minute) and `< horizon`.
    fn next_from_secs(&self, start: Secs, horizon: Secs, tz: Tz) -> Option<Secs> {
        // Only fixed-time jobs fire for a wall-clock time that a forward jump skips, and they
        // fire in the first pass only of a repeated one; other jobs follow the real instants.
        let fixed = self.is_fixed_time();
        // `start` itself may be a forward jump (windows below only look at jumps after their
        // start): a fixed-time job's gap fire is then due at `start`.
        let (before, at) = (offset_at(tz, start - 1)?, offset_at(tz, start)?);
        if fixed && at > before {
            let gap_start = naive(start + i64::from(before))?;
            let gap_end = naive(start + i64::from(at))?;
            if self.next_local_match(gap_start, gap_end).is_some() {
                return Some(start);
            }
        }
        let mut u = start;
        while u < horizon {
            // Skip ahead to shortly before the first wall-clock match that an instant >= u can
            // show: every fire instant c >= u shows (or, in a gap, stands for) a matching
            // wall-clock time >= local(u) - LOOKBACK, and c >= that time - SLACK.
            let local_u = naive(u + i64::from(offset_at(tz, u)?))?;
            let local_limit = naive(secs(local_u) + (horizon - u) + SLACK)?;
            let first = self.next_local_match(naive(secs(local_u) - LOOKBACK)?, local_limit)?;
            u = u.max(secs(first) - SLACK);
            if u >= horizon {
                break;
            }

            // A window [u, end) in which the offset is constant.
            let off = offset_at(tz, u)?;
            let mut end = (u + WINDOW).min(horizon);
            let mut next_off = None;
            let end_off = offset_at(tz, end)?;
            if end_off != off {
                end = find_transition(tz, u, end, off)?;
                next_off = Some(offset_at(tz, end)?);
            }
            let off_secs = i64::from(off);

            // Wall-clock matches shown during the window, in order (monotone: constant offset).
            let mut from = naive(u + off_secs)?;
            let until = naive(end + off_secs)?;
            while let Some(local) = self.next_local_match(from, until) {
                let instant = secs(local) - off_secs;
                if !fixed || !self.is_second_pass(local, instant, tz) {
                    return Some(instant);
                }
                from = local + TimeDelta::minutes(1);
            }

            // At a forward jump, wall-clock times in [end + off, end + next_off) never show: if
            // one matches, a fixed-time job fires once at the jump itself (others skip them).
            if let Some(new_off) = next_off {
                if fixed && new_off > off {
                    let gap_end = naive(end + i64::from(new_off))?;
                    if self.next_local_match(until, gap_end).is_some() {
                        return Some(end);
                    }
                }
            }
            u = end;
        }
        None
    }

    /// Whether `instant` is the later of two instants showing the ambiguous wall-clock `local`.
    fn is_second_pass(&self, local: NaiveDateTime, instant: Secs, tz: Tz) -> bool {
        match tz.from_local_datetime(&local) {
            LocalResult::Ambiguous(earlier, _) => earlier.timestamp() != instant,
            _ => false,
        }
    }
}

/// The successive fire times of a [`CronExpr`], from [`CronExpr::iter_after`].
#[derive(Debug, Clone)]
pub struct FireTimes<'a> {
    expr: &'a CronExpr,
    tz: Tz,
    cursor: Option<DateTime<Utc>>,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<Self::Item> {
        let next = self.expr.next_after(self.cursor?, self.tz);
        self.cursor = next;
        next
    }
}

impl FusedIterator for FireTimes<'_> {}
