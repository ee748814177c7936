//! Cron expressions and job schedules for CodeAI Jobs.
//!
//! [`CronExpr`] parses the classic five-field syntax (`minute hour day-of-month month
//! day-of-week`, Vixie cron flavour, with `@daily`-style macros) and computes fire times with
//! [`CronExpr::next_after`] / [`CronExpr::iter_after`]; [`CronExpr::describe`] renders it in
//! English and its `Display` prints a normalized expression. [`Schedule`] adds fixed intervals
//! ([`Schedule::Every`], anchored to the Unix epoch) and one-off runs ([`Schedule::Once`]).
//!
//! # Time zones and daylight saving time
//!
//! These rules are part of the contract; the conformance table in `tests/conformance.json`
//! checks them against an independent reference.
//!
//! 1. **Wall clock.** Fire times are evaluated on the local wall clock of the job's IANA time
//!    zone ([`chrono_tz::Tz`]); results are UTC instants. Candidates are whole local minutes, and
//!    `next_after(after)` returns the first fire time *strictly* after `after` (an `after` of
//!    `10:00:30` gives `10:01` at the earliest; an `after` of exactly `10:00` never gives `10:00`).
//! 2. **Spring-forward gap.** A wall-clock time that does not exist (e.g. 02:30 on the day New
//!    York's clocks jump from 02:00 to 03:00) fires once, at the first valid instant after the
//!    gap: the transition instant itself (03:00 local). All fire times of that day falling in the
//!    gap (e.g. `*/15 2 * * *`) collapse into that one fire, and a job never fires twice at the
//!    same instant (`0 2,3 * * *` fires once at 03:00 that day).
//! 3. **Fall-back overlap.** Wall-clock times that occur twice (01:00–01:59 on the day New York
//!    sets its clocks back) fire:
//!    * once, in the first pass (the earlier instant, still on daylight time), when the hour
//!      field is *fixed*: a number, a list or a range without a step (`1`, `1,2`, `1-3`);
//!    * in both passes, as every real hour goes by, when the hour field is *wildcard-like*: its
//!      text is `*` or contains a `/` step (`*`, `*/2`, `1-5/2`, `3/4`).
//!      See [`CronExpr::hour_is_wildcard`].
//! 4. **Zones without DST** (UTC, `Asia/Kolkata`, …) are plain: every matching wall-clock minute
//!    fires exactly once.
//!
//! Rules 2 and 3 apply equally to offset changes that are not DST (a zone changing its standard
//! offset).
//!
//! # Search bound
//!
//! The search skips whole months, days and hours using the fields' value sets; it never walks
//! minute by minute. Expressions that can never fire (`0 0 30 2 *`, `0 0 31 4 *`) are recognised
//! when parsed, and [`CronExpr::next_after`] returns `None` for them at once. Otherwise the
//! search looks at most [`SEARCH_HORIZON_DAYS`] (about 50 years) past `after`, enough for any
//! leap-day schedule.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use codeai_cron::CronExpr;
//!
//! let expr: CronExpr = "30 1 * * *".parse()?;
//! let tz = chrono_tz::America::New_York;
//! // 2025-11-02: 01:30 happens twice in New York; a fixed hour fires on the first pass only.
//! let after = Utc.with_ymd_and_hms(2025, 11, 2, 0, 0, 0).unwrap();
//! let fires: Vec<_> = expr.iter_after(after, tz).take(2).map(|t| t.to_rfc3339()).collect();
//! assert_eq!(fires, ["2025-11-02T05:30:00+00:00", "2025-11-03T06:30:00+00:00"]);
//! # Ok::<(), codeai_cron::CronError>(())
//! ```

mod describe;
mod error;
mod expr;
mod next;
mod schedule;

pub use chrono_tz::Tz;
pub use error::{CronError, CronErrorKind, CronField};
pub use expr::{CronExpr, MACROS};
pub use next::{FireTimes, SEARCH_HORIZON_DAYS};
pub use schedule::{Schedule, ScheduleIter};
