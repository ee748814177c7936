//! A job's schedule as the `jobs` table keeps it: whether it is enabled, its next fire
//! (`next_run_at`) and its last, and the schedule itself (set at registration, replaced
//! through the API). What the scheduler
//! reads and writes; the same on SQLite and PostgreSQL.

use super::rows::{execute, fetch_optional_as};
use super::sql::{stmt, Param};
use super::Database;
use chrono::{DateTime, Utc};
use codeai_ir::{FieldType, Schedule};

fn id(job_id: &str) -> Param {
    Param::Text(job_id.to_string())
}

fn opt_time(t: Option<DateTime<Utc>>) -> Param {
    t.map_or(Param::Null(FieldType::Datetime), Param::DateTime)
}

/// Whether the job is enabled, and its stored next fire; `(true, None)` for a job not stored.
pub async fn state(
    db: &Database,
    job_id: &str,
) -> Result<(bool, Option<DateTime<Utc>>), sqlx::Error> {
    let row: Option<(bool, Option<DateTime<Utc>>)> = fetch_optional_as(
        db,
        &stmt(
            "SELECT enabled, next_run_at FROM jobs WHERE id = ?",
            vec![id(job_id)],
        ),
    )
    .await?;
    Ok(row.unwrap_or((true, None)))
}

/// Stores `next` as the job's next fire.
pub async fn set_next(
    db: &Database,
    job_id: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    let s = stmt(
        "UPDATE jobs SET next_run_at = ? WHERE id = ?",
        vec![opt_time(next), id(job_id)],
    );
    execute(db, &s).await.map(drop)
}

/// Moves the job's next fire from `fired` (now its last) to `next`, only if the stored next
/// fire is still `fired` (compare-and-set: one scheduler wins a fire). Returns whether it moved.
pub async fn advance(
    db: &Database,
    job_id: &str,
    fired: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let s = stmt(
        "UPDATE jobs SET next_run_at = ?, last_run_at = ? WHERE id = ? AND next_run_at = ?",
        vec![
            opt_time(next),
            Param::DateTime(fired),
            id(job_id),
            Param::DateTime(fired),
        ],
    );
    Ok(execute(db, &s).await? == 1)
}

/// Enables or disables (pauses) a job; with `next`, its next fire too.
pub async fn set_enabled(
    db: &Database,
    job_id: &str,
    enabled: bool,
    next: Option<Option<DateTime<Utc>>>,
) -> Result<(), sqlx::Error> {
    let s = match next {
        None => stmt(
            "UPDATE jobs SET enabled = ?, updated_at = ? WHERE id = ?",
            vec![
                Param::Bool(enabled),
                Param::DateTime(Utc::now()),
                id(job_id),
            ],
        ),
        Some(next) => stmt(
            "UPDATE jobs SET enabled = ?, next_run_at = ?, updated_at = ? WHERE id = ?",
            vec![
                Param::Bool(enabled),
                opt_time(next),
                Param::DateTime(Utc::now()),
                id(job_id),
            ],
        ),
    };
    execute(db, &s).await.map(drop)
}

/// A job's schedule as the `jobs` table's columns keep it (`schedule_kind`, `cron`,
/// `interval_ms`, `run_at`): `(kind, cron, interval_ms, run_at)`. The columns are the schedule the
/// job fires on: its manifest's at registration, the API's after a reschedule.
pub fn columns(
    schedule: &Schedule,
) -> (
    &'static str,
    Option<String>,
    Option<i64>,
    Option<DateTime<Utc>>,
) {
    match schedule {
        Schedule::Cron { expression } => ("cron", Some(expression.clone()), None, None),
        Schedule::Interval { every_ms } => ("every", None, Some(*every_ms as i64), None),
        Schedule::Once { at } => (
            "once",
            None,
            None,
            DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        ),
        Schedule::Manual => ("manual", None, None, None),
    }
}

/// The schedule the `jobs` columns hold (the inverse of [`columns`]).
pub fn from_columns(
    kind: Option<&str>,
    cron: Option<String>,
    interval_ms: Option<i64>,
    run_at: Option<DateTime<Utc>>,
) -> Schedule {
    match kind {
        Some("cron") => Schedule::Cron {
            expression: cron.unwrap_or_default(),
        },
        Some("every") => Schedule::Interval {
            every_ms: interval_ms.unwrap_or(0).max(0) as u64,
        },
        Some("once") => Schedule::Once {
            at: run_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
        },
        _ => Schedule::Manual,
    }
}

/// Replaces a job's schedule and timezone, and its next fire.
pub async fn set(
    db: &Database,
    job_id: &str,
    schedule: &Schedule,
    timezone: &str,
    next: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    let (kind, cron, interval_ms, run_at) = columns(schedule);
    let s = stmt(
        "UPDATE jobs SET schedule_kind = ?, cron = ?, interval_ms = ?, run_at = ?, timezone = ?, \
         next_run_at = ?, updated_at = ? WHERE id = ?",
        vec![
            Param::Text(kind.into()),
            cron.map_or(Param::Null(FieldType::String), Param::Text),
            interval_ms.map_or(Param::Null(FieldType::Int), Param::Int),
            opt_time(run_at),
            Param::Text(timezone.into()),
            opt_time(next),
            Param::DateTime(Utc::now()),
            id(job_id),
        ],
    );
    execute(db, &s).await.map(drop)
}
