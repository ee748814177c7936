//! Reading execution records: a job's history, one execution with its attempts, counts by
//! status, the dashboard's throughput and the figures `/metrics` and the alerts are made of.
//! What writes them is the recorder ([`super::recorder`]) and the lifecycle
//! ([`crate::domain::executions`]).

use super::page::{and_tenant, by_id, newest_first, IdColumn, Page};
use super::rows::{fetch_all, fetch_as, JsonRow};
use super::sql::{stmt, Param};
use super::{Database, ExecutionStatus};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The columns of an execution as listed.
const COLUMNS: &str = "id, tenant_id, job_id, job_name, job_version, status, trigger, event_id, \
    queue, attempt, max_attempts, scheduled_at, started_at, finished_at, duration_ms, fuel_used, error, \
    step, created_at";

/// Which executions a search or a bulk action takes: every condition given holds.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Filter {
    pub job_id: Option<String>,
    /// Any of these states (all when empty).
    pub statuses: Vec<ExecutionStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Whose error contains this text, case-insensitively.
    pub error: Option<String>,
}

/// The executions of the tenant `scope` (all when `None`) that `filter` takes, newest first.
pub async fn search(
    db: &Database,
    scope: Option<&str>,
    filter: &Filter,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = stmt(
        &format!("SELECT {COLUMNS} FROM job_executions WHERE 1 = 1"),
        vec![],
    );
    and_tenant(&mut s, "tenant_id", scope);
    if let Some(job_id) = &filter.job_id {
        s.sql(" AND job_id = ");
        s.bind(Param::Text(job_id.clone()));
    }
    if !filter.statuses.is_empty() {
        s.sql(format!(
            " AND status IN ({})",
            ExecutionStatus::sql_list(&filter.statuses)
        ));
    }
    if let Some(since) = filter.since {
        s.sql(" AND created_at >= ");
        s.bind(Param::DateTime(since));
    }
    if let Some(until) = filter.until {
        s.sql(" AND created_at < ");
        s.bind(Param::DateTime(until));
    }
    if let Some(text) = filter.error.as_deref().filter(|t| !t.is_empty()) {
        // A substring, not a pattern: LIKE's wildcards in it match themselves.
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        s.sql(" AND LOWER(error) LIKE ");
        s.bind(Param::Text(format!("%{escaped}%")));
        s.sql(" ESCAPE '\\'");
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

/// The W3C trace context the run request of execution `id` carried, if any.
pub async fn traceparent(db: &Database, id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let rows: Vec<(Option<String>,)> = super::rows::fetch_as(
        db,
        &stmt(
            "SELECT traceparent FROM job_executions WHERE id = ?",
            vec![Param::Uuid(id)],
        ),
    )
    .await?;
    Ok(rows.into_iter().next().and_then(|(t,)| t))
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

/// Executions by job, status and queue, each counted under its current status:
/// `(job, status, queue, n)`. Read from the totals kept as executions are written
/// (`metric_executions`, kept by triggers: migration 0011), so its cost does not grow with the
/// history.
pub async fn counts_by_job(
    db: &Database,
) -> Result<Vec<(String, String, String, i64)>, sqlx::Error> {
    let sql = "SELECT job_name, status, queue, CAST(SUM(n) AS BIGINT) FROM metric_executions \
               GROUP BY job_name, status, queue HAVING SUM(n) > 0 \
               ORDER BY job_name, status, queue";
    fetch_as(db, &stmt(sql, vec![])).await
}

/// The bounds of the duration histogram's buckets, in milliseconds. Migration 0011's
/// `metric_durations` counts each finished execution under the smallest bound at least its
/// duration (0 beyond the last), so these are the bounds a scrape can report.
pub const DURATION_BOUNDS_MS: [i64; 14] = [
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000,
];

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
/// `bounds_ms` (each one of [`DURATION_BOUNDS_MS`]: the totals are kept per bucket). Read from
/// the kept totals (`metric_durations`).
pub async fn durations(db: &Database, bounds_ms: &[i64]) -> Result<Vec<Durations>, sqlx::Error> {
    let sql = "SELECT d.job_name, COALESCE(MAX(j.job_type), ''), d.le_ms, \
               CAST(SUM(d.n) AS BIGINT), CAST(SUM(d.total_ms) AS BIGINT) \
               FROM metric_durations d LEFT JOIN jobs j ON j.id = d.job_id \
               GROUP BY d.job_name, d.le_ms ORDER BY d.job_name, d.le_ms";
    let rows: Vec<(String, String, i64, i64, i64)> = fetch_as(db, &stmt(sql, vec![])).await?;
    let mut out: Vec<Durations> = Vec::new();
    for (job, job_type, le_ms, n, total_ms) in rows {
        if out.last().is_none_or(|d| d.job != job) {
            out.push(Durations {
                job,
                job_type: String::new(),
                at_most: vec![0; bounds_ms.len()],
                count: 0,
                total_ms: 0,
            });
        }
        let d = out.last_mut().expect("pushed above");
        // MAX(job_type) over the job's rows, as the query it replaced.
        d.job_type = d.job_type.clone().max(job_type);
        d.count += n;
        d.total_ms += total_ms;
        // `le_ms` 0: beyond the last bound, in no bucket but +Inf.
        for (bound, at_most) in bounds_ms.iter().zip(&mut d.at_most) {
            if le_ms != 0 && le_ms <= *bound {
                *at_most += n;
            }
        }
    }
    out.retain(|d| d.count > 0);
    Ok(out)
}

/// Attempts after the first, by job: `(job, retries)`. Read from the kept totals.
pub async fn retries_by_job(db: &Database) -> Result<Vec<(String, i64)>, sqlx::Error> {
    let sql = "SELECT job_name, CAST(SUM(retries) AS BIGINT) FROM metric_executions \
               GROUP BY job_name HAVING SUM(retries) > 0 ORDER BY job_name";
    fetch_as(db, &stmt(sql, vec![])).await
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

/// Each scheduled execution's id, the fire it was due at and when it started, for `codeai bench
/// fire`.
pub async fn scheduled_starts(
    db: &Database,
) -> Result<Vec<(String, DateTime<Utc>, DateTime<Utc>)>, sqlx::Error> {
    let sql = "SELECT CAST(id AS TEXT), scheduled_at, started_at FROM job_executions \
               WHERE trigger = 'schedule' AND scheduled_at IS NOT NULL AND started_at IS NOT NULL";
    fetch_as(db, &stmt(sql, vec![])).await
}

/// When each execution of a job started and how long it ran (ms), for `codeai bench`.
pub async fn starts_and_durations(
    db: &Database,
    job_id: &str,
) -> Result<Vec<(DateTime<Utc>, i64)>, sqlx::Error> {
    let sql = "SELECT started_at, COALESCE(duration_ms, 0) FROM job_executions \
               WHERE job_id = ? AND started_at IS NOT NULL";
    fetch_as(db, &stmt(sql, vec![Param::Text(job_id.into())])).await
}
