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
//! These rules are part of the contract. They follow what the two reference implementations
//! the conformance table in `tests/conformance.json` uses, croniter and cronsim, agree on
//! (cronsim's fixed-time test after Debian cron, with croniter's exception for an hour field
//! covering all 24 hours). The table checks the crate against an independent brute-force
//! reference of these rules and records where either package differs (`tests/README.md`).
//!
//! 1. **Wall clock.** Fire times are evaluated on the local wall clock of the job's IANA time
//!    zone ([`chrono_tz::Tz`]); results are UTC instants. Candidates are whole local minutes, and
//!    `next_after(after)` returns the first fire time *strictly* after `after` (an `after` of
//!    `10:00:30` gives `10:01` at the earliest; an `after` of exactly `10:00` never gives `10:00`).
//! 2. **Fixed-time jobs.** A job is *fixed-time* when neither its minute nor its hour field
//!    starts with `*` and its hour field does not list all 24 hours: `30 2 * * *`,
//!    `0,30 1-3 * * *`, `0 1/2 * * *` are; `*/15 2 * * *`, `0 * * * *`, `*/15 1-3 * * *`,
//!    `0 */2 * * *` and `0 0-23 * * *` are not. See [`CronExpr::is_fixed_time`]. Rules 3 and 4
//!    treat the two kinds differently.
//! 3. **Spring-forward gap.** Wall-clock times that do not exist (02:00–02:59 on the day New
//!    York's clocks jump from 02:00 to 03:00):
//!    * a fixed-time job with a time in the gap fires once, at the transition instant itself
//!      (03:00 local). All its times in the gap collapse into that one fire, and a job never
//!      fires twice at the same instant (`0,30 2 * * *` fires once at 03:00 that day, and so
//!      does `0 2,3 * * *`);
//!    * any other job skips the missing times: `*/15 2 * * *` does not fire that day, and
//!      `30 * * * *` fires at 01:30 and then 03:30, with no extra fire at the jump.
//! 4. **Fall-back overlap.** Wall-clock times that occur twice (01:00–01:59 on the day New York
//!    sets its clocks back):
//!    * a fixed-time job fires once, in the first pass (the earlier instant, still on daylight
//!      time): `30 1 * * *` fires at 01:30 EDT only;
//!    * any other job fires in both passes, as every real hour goes by: `0 * * * *`,
//!      `*/15 1-3 * * *` (minute field starting with `*`, hours a range) and `0 0-23 * * *` fire
//!      in the first and again in the second 01:00–01:59.
//! 5. **Zones without DST** (UTC, `Asia/Kolkata`, …) are plain: every matching wall-clock minute
//!    fires exactly once.
//!
//! Rules 3 and 4 apply equally to offset changes that are not DST (a zone changing its standard
//! offset) and to shifts that are not a whole hour (`Australia/Lord_Howe` moves by 30 minutes).
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
//! // 2025-11-02: 01:30 happens twice in New York; a fixed-time job fires in the first pass only.
//! let after = Utc.with_ymd_and_hms(2025, 11, 2, 0, 0, 0).unwrap();
//! let fires: Vec<_> = expr.iter_after(after, tz).take(2).map(|t| t.to_rfc3339()).collect();
//! assert_eq!(fires, ["2025-11-02T05:30:00+00:00", "2025-11-03T06:30:00+00:00"]);
//!
//! // Its minute field starts with `*`: not fixed-time, so it fires in both passes.
//! let expr: CronExpr = "*/30 1-3 * * *".parse()?;
//! let fires: Vec<_> = expr.iter_after(after, tz).take(4).map(|t| t.to_rfc3339()).collect();
//! assert_eq!(
//!     fires,
//!     [
//!         "2025-11-02T05:00:00+00:00", // 01:00 EDT
//!         "2025-11-02T05:30:00+00:00", // 01:30 EDT
//!         "2025-11-02T06:00:00+00:00", // 01:00 EST
//!         "2025-11-02T06:30:00+00:00", // 01:30 EST
//!     ]
//! );
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
