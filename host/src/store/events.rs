//! Reading the events jobs emitted (`emit:` steps and `on_complete` / `on_fail`; written by
//! [`super::platform::insert_event`]): newest first, of one tenant or all, filtered by name,
//! job and time.

use super::page::{and_tenant, newest_first, IdColumn, Page};
use super::rows::JsonRow;
use super::sql::{Param, Stmt};
use super::Database;
use chrono::{DateTime, Utc};

const SELECT: &str =
    "SELECT id, tenant_id, job, execution_id, name, payload, created_at FROM events";

/// Which events a list holds: all of them when every field is `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventFilter<'a> {
    /// The event's name (`JobCompleted`, `InventorySynced`, …).
    pub name: Option<&'a str>,
    /// The name of the job that emitted it.
    pub job: Option<&'a str>,
    /// Emitted at or after this instant.
    pub since: Option<DateTime<Utc>>,
}

/// Events newest first, of the tenant `scope` (all when `None`), that pass `filter`.
pub async fn list(
    db: &Database,
    scope: Option<&str>,
    filter: &EventFilter<'_>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = Stmt::default();
    s.sql(format!("{SELECT} WHERE 1 = 1"));
    and_tenant(&mut s, "tenant_id", scope);
    if let Some(name) = filter.name {
        s.sql(" AND name = ");
        s.bind(Param::Text(name.into()));
    }
    if let Some(job) = filter.job {
        s.sql(" AND job = ");
        s.bind(Param::Text(job.into()));
    }
    if let Some(since) = filter.since {
        s.sql(" AND created_at >= ");
        s.bind(Param::DateTime(since));
    }
    newest_first(db, s, "created_at", IdColumn::Text, page).await
}

/// An event not yet handed to the jobs that run on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Undispatched {
    pub id: String,
    pub tenant: String,
    pub name: String,
    /// JSON text: the event's data.
    pub payload: String,
    /// The execution that emitted it, if one did.
    pub execution_id: Option<String>,
}

/// The oldest events not dispatched yet, at most `per_tenant` of each tenant (one tenant's
/// backlog does not hold back the others') and `limit` in all.
pub async fn undispatched(
    db: &Database,
    per_tenant: i64,
    limit: i64,
) -> Result<Vec<Undispatched>, sqlx::Error> {
    let rows: Vec<(String, String, String, String, Option<String>)> = super::rows::fetch_as(
        db,
        &super::sql::stmt(
            "SELECT id, tenant_id, name, payload, execution_id FROM ( \
                SELECT id, tenant_id, name, payload, execution_id, created_at, \
                       ROW_NUMBER() OVER (PARTITION BY tenant_id ORDER BY created_at, id) AS nth \
                FROM events WHERE dispatched_at IS NULL) e \
             WHERE nth <= ? ORDER BY created_at, id LIMIT ?",
            vec![Param::Int(per_tenant), Param::Int(limit)],
        ),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, tenant, name, payload, execution_id)| Undispatched {
            id,
            tenant,
            name,
            payload,
            execution_id,
        })
        .collect())
}

/// How many triggered executions led to an event emitted by `execution`: one more than the
/// event that set `execution` off, 0 when nothing did.
pub async fn depth_after(db: &Database, execution: Option<&str>) -> Result<i64, sqlx::Error> {
    let Some(execution) = execution else {
        return Ok(0);
    };
    let id = uuid::Uuid::parse_str(execution).map_or(Param::Text(execution.into()), Param::Uuid);
    let rows: Vec<(i64,)> = super::rows::fetch_as(
        db,
        &super::sql::stmt(
            "SELECT e.depth FROM job_executions x JOIN events e ON e.id = x.event_id \
             WHERE x.id = ?",
            vec![id],
        ),
    )
    .await?;
    Ok(rows.first().map_or(0, |(d,)| d + 1))
}

/// Marks an event dispatched at `depth`.
pub async fn dispatched(
    db: &Database,
    id: &str,
    depth: i64,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    super::rows::execute(
        db,
        &super::sql::stmt(
            "UPDATE events SET dispatched_at = ?, depth = ? WHERE id = ?",
            vec![
                Param::DateTime(at),
                Param::Int(depth),
                Param::Text(id.into()),
            ],
        ),
    )
    .await
    .map(drop)
}

/// How many executions a tenant has pending (a delayed one too), retrying or running.
pub async fn open_runs(db: &Database, tenant: &str) -> Result<i64, sqlx::Error> {
    use super::ExecutionStatus;
    let open = ExecutionStatus::sql_list(&[
        ExecutionStatus::Pending,
        ExecutionStatus::Retrying,
        ExecutionStatus::Running,
    ]);
    let rows: Vec<(i64,)> = super::rows::fetch_as(
        db,
        &super::sql::stmt(
            &format!(
                "SELECT COUNT(*) FROM job_executions WHERE tenant_id = ? AND status IN ({open})"
            ),
            vec![Param::Text(tenant.into())],
        ),
    )
    .await?;
    Ok(rows.first().map_or(0, |(n,)| *n))
}
