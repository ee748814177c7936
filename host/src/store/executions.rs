//! Reading execution records: a job's history, one execution with its attempts, counts by
//! status, the dashboard's throughput and the figures `/metrics` and the alerts are made of.
//! What writes them is the recorder ([`super::recorder`]) and the lifecycle
//! ([`crate::domain::executions`]).

use super::page::{and_tenant, by_id, newest_first, IdColumn, Page};
use super::rows::{fetch_all, fetch_as, JsonRow, RowExt as _};
use super::sql::{stmt, Param};
use super::{Database, ExecutionStatus};
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use uuid::Uuid;

/// The columns of an execution as listed.
const COLUMNS: &str = "id, tenant_id, job_id, job_name, job_version, status, trigger, queue, \
    attempt, max_attempts, scheduled_at, started_at, finished_at, duration_ms, fuel_used, error, \
    step, created_at";

/// A job's executions, newest first (with `status` only those).
pub async fn of_job(
    db: &Database,
    tenant: &str,
    job_id: &str,
    status: Option<&str>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = stmt(
        &format!("SELECT {COLUMNS} FROM job_executions WHERE tenant_id = ? AND job_id = ?"),
        vec![Param::Text(tenant.into()), Param::Text(job_id.into())],
    );
    if let Some(status) = status {
        s.sql(" AND status = ");
        s.bind(Param::Text(status.into()));
    }
    newest_first(db, s, "created_at", IdColumn::Uuid, page).await
}

/// The execution `id` with its input, output, log and calls, if the tenant `scope` (all when
/// `None`) has it.
pub async fn get(
    db: &Database,
    id: Uuid,
    scope: Option<&str>,
) -> Result<Option<JsonRow>, sqlx::Error> {
    let select = format!("SELECT {COLUMNS}, input, output, log, calls FROM job_executions");
    by_id(db, &select, id, scope).await
}

/// The attempts of an execution that were retried (each has a row of its own), in order.
pub async fn attempts(db: &Database, id: Uuid, tenant: &str) -> Result<Vec<JsonRow>, sqlx::Error> {
    fetch_all(
        db,
        &stmt(
            "SELECT attempt, status, error, started_at, finished_at, duration_ms, fuel_used \
             FROM execution_attempts WHERE execution_id = ? AND tenant_id = ? ORDER BY attempt",
            vec![Param::Text(id.to_string()), Param::Text(tenant.into())],
        ),
    )
    .await
}

/// How many executions of a job are in each state.
pub async fn status_counts(
    db: &Database,
    tenant: &str,
    job_id: &str,
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    fetch_as(
        db,
        &stmt(
            "SELECT status, COUNT(*) AS n FROM job_executions WHERE tenant_id = ? AND job_id = ? \
             GROUP BY status",
            vec![Param::Text(tenant.into()), Param::Text(job_id.into())],
        ),
    )
    .await
}

/// Executions finished since `from`, by the minute they finished in (`YYYY-MM-DDTHH:MM`, UTC)
/// and status: `(minute, status, count)`.
pub async fn finished_by_minute(
    db: &Database,
    from: DateTime<Utc>,
    scope: Option<&str>,
) -> Result<Vec<(String, String, i64)>, sqlx::Error> {
    let minute = match db {
        Database::Sqlite(_) => "substr(finished_at, 1, 16)",
        Database::Postgres(_) => {
            "to_char(date_trunc('minute', finished_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD\"T\"HH24:MI')"
        }
    };
    let mut s = stmt("SELECT ", vec![]);
    s.sql(minute);
    s.sql(" AS minute, status, COUNT(*) AS n FROM job_executions WHERE finished_at >= ");
    s.bind(Param::DateTime(from));
    and_tenant(&mut s, "tenant_id", scope);
    s.sql(" GROUP BY 1, 2");
    fetch_as(db, &s).await
}

/// Executions by job, status and queue: `(job, status, queue, count)`.
pub async fn counts_by_job(
    db: &Database,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    fetch_as(
        db,
        &stmt(
            "SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), COUNT(*) AS n \
             FROM job_executions GROUP BY job_name, status, queue ORDER BY job_name, status, queue",
            vec![],
        ),
    )
    .await
}

/// The wall time of a job's finished executions, counted into buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    pub job: String,
    pub job_type: String,
    /// Executions that took at most each bucket's bound, in the order of the bounds given.
    pub at_most: Vec<i64>,
    pub count: i64,
    pub total_ms: i64,
}

/// The durations of finished executions by job, counted into buckets of at most each of
/// `bounds_ms`.
pub async fn durations(db: &Database, bounds_ms: &[i64]) -> Result<Vec<Durations>, sqlx::Error> {
    let mut sql = String::from("SELECT e.job_name, MAX(j.job_type) AS job_type");
    for (i, ms) in bounds_ms.iter().enumerate() {
        let _ = write!(
            sql,
            ", SUM(CASE WHEN e.duration_ms <= {ms} THEN 1 ELSE 0 END) AS b{i}"
        );
    }
    sql.push_str(
        ", COUNT(*) AS n, SUM(e.duration_ms) AS total FROM job_executions e \
         LEFT JOIN jobs j ON j.id = e.job_id WHERE e.duration_ms IS NOT NULL \
         AND e.started_at IS NOT NULL GROUP BY e.job_name ORDER BY e.job_name",
    );
    Ok(fetch_all(db, &stmt(&sql, vec![]))
        .await?
        .iter()
        .map(|r| Durations {
            job: r.text("job_name").unwrap_or_default(),
            job_type: r.text("job_type").unwrap_or_default(),
            at_most: (0..bounds_ms.len())
                .map(|i| r.int(&format!("b{i}")).unwrap_or(0))
                .collect(),
            count: r.int("n").unwrap_or(0),
            total_ms: r.int("total").unwrap_or(0),
        })
        .collect())
}

/// Attempts after the first, by job: `(job, retries)`.
pub async fn retries_by_job(db: &Database) -> Result<Vec<(String, i64)>, sqlx::Error> {
    // SUM is NUMERIC on PostgreSQL: read through the JSON row, which takes either.
    Ok(fetch_all(
        db,
        &stmt(
            "SELECT job_name, SUM(attempt - 1) AS n FROM job_executions WHERE attempt > 1 \
             GROUP BY job_name ORDER BY job_name",
            vec![],
        ),
    )
    .await?
    .iter()
    .map(|r| {
        (
            r.text("job_name").unwrap_or_default(),
            r.int("n").unwrap_or(0),
        )
    })
    .collect())
}

/// The last `n` executions of each job that completed or failed, newest first per job.
pub async fn last_finished(db: &Database, n: i64) -> Result<Vec<JsonRow>, sqlx::Error> {
    fetch_all(
        db,
        &stmt(
            &format!(
                "SELECT tenant_id, job_id, job_name, status, error, created_at FROM (SELECT \
                 tenant_id, job_id, job_name, status, error, created_at, ROW_NUMBER() OVER \
                 (PARTITION BY job_id ORDER BY created_at DESC) AS rn FROM job_executions \
                 WHERE status IN ({})) t WHERE rn <= ? ORDER BY job_id, created_at DESC",
                ExecutionStatus::sql_list_of(|s| s == ExecutionStatus::Completed || s.is_failure())
            ),
            vec![Param::Int(n)],
        ),
    )
    .await
}

/// The running executions with when they started and their job's timeout.
pub async fn running(db: &Database) -> Result<Vec<JsonRow>, sqlx::Error> {
    fetch_all(
        db,
        &stmt(
            "SELECT e.id, e.tenant_id, e.job_name, e.started_at, j.timeout_ms \
             FROM job_executions e JOIN jobs j ON j.id = e.job_id \
             WHERE e.status = ? AND e.started_at IS NOT NULL",
            vec![Param::Text(ExecutionStatus::Running.to_string())],
        ),
    )
    .await
}
