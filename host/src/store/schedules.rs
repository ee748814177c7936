//! A job's schedule as the `jobs` table keeps it: whether it is enabled, its next fire
//! (`next_run_at`) and its last, and the schedule itself (set at registration, replaced
//! through the API). What the scheduler
//! reads and writes; the same on SQLite and PostgreSQL.

use super::rows::{execute, fetch_one, fetch_optional_as, scalars, RowExt};
use super::sql::{stmt, Param, Stmt};
use super::Database;
use chrono::{DateTime, Utc};
use codeai_ir::{FieldType, Schedule};
use std::collections::HashSet;

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

/// The schedule and timezone a job fires on (its `jobs` row's); `None` for a job not stored.
pub async fn stored(
    db: &Database,
    job_id: &str,
) -> Result<Option<(Schedule, String)>, sqlx::Error> {
    let sql = "SELECT schedule_kind, cron, interval_ms, run_at, timezone FROM jobs WHERE id = ?";
    let row = fetch_one(db, &stmt(sql, vec![id(job_id)])).await?;
    Ok(row.map(|r| {
        let kind = r.text("schedule_kind");
        let schedule = from_columns(
            kind.as_deref(),
            r.text("cron"),
            r.int("interval_ms"),
            r.time("run_at"),
        );
        (schedule, r.text("timezone").unwrap_or_else(|| "UTC".into()))
    }))
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

/// A move of a job's next fire: from `fired` (now its last) to `next`.
#[derive(Debug, Clone)]
pub struct Advance<'a> {
    pub job_id: &'a str,
    pub fired: DateTime<Utc>,
    pub next: Option<DateTime<Utc>>,
}

/// Moves each job's next fire on, only where the job is enabled and its stored next fire is
/// still the one fired (compare-and-set: one scheduler wins a fire, and none fires a job another
/// process paused), in one statement. Returns, for each, whether it moved.
pub async fn advance(db: &Database, moves: &[Advance<'_>]) -> Result<Vec<bool>, sqlx::Error> {
    if moves.is_empty() {
        return Ok(Vec::new());
    }
    // `VALUES` names its columns column1… on both databases.
    let mut s = Stmt::default();
    s.sql("UPDATE jobs SET next_run_at = v.column3, last_run_at = v.column2 FROM (VALUES ");
    for (i, m) in moves.iter().enumerate() {
        s.sql(if i == 0 { "(" } else { ", (" });
        s.bind(id(m.job_id));
        s.sql(", ");
        s.bind(Param::DateTime(m.fired));
        s.sql(", ");
        s.bind(opt_time(m.next));
        s.sql(")");
    }
    s.sql(
        ") AS v WHERE jobs.id = v.column1 AND jobs.next_run_at = v.column2 AND jobs.enabled \
           RETURNING jobs.id",
    );
    let moved: HashSet<String> = scalars::<String>(db, &s).await?.into_iter().collect();
    Ok(moves.iter().map(|m| moved.contains(m.job_id)).collect())
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
