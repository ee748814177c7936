//! Reading jobs and their versions: what the API lists and shows, what the scheduler loads and
//! what a worker runs. Registering, replacing and deleting jobs is [`super::platform`]'s.

use super::page::and_tenant;
use super::rows::{fetch_all, fetch_as, fetch_one, scalar, JsonRow};
use super::sql::{stmt, Param};
use super::{Database, ExecutionStatus};
use chrono::{DateTime, Utc};
use codeai_ir::Schedule;
use std::sync::LazyLock;

/// Which columns of a job to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobColumns {
    /// Its own columns and the statistics a listing shows (last run status, last start).
    Listed,
    /// Its identity only: what the operations on it need.
    Identity,
    /// Its identity and its current version's manifest (`manifest`): what a run request checks
    /// its input against.
    Run,
}

impl JobColumns {
    fn sql(self) -> &'static str {
        match self {
            JobColumns::Listed => &LISTED,
            JobColumns::Identity => "j.id, j.tenant_id, j.name, j.version, j.queue, j.timezone",
            JobColumns::Run => {
                "j.id, j.tenant_id, j.name, j.version, j.queue, j.timezone, \
                 (SELECT v.manifest FROM job_versions v WHERE v.job_id = j.id \
                  AND v.version = j.version) AS manifest"
            }
        }
    }
}

static LISTED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "j.id, j.tenant_id, j.name, j.version, j.description, j.job_type, \
         j.schedule_kind, j.cron, j.interval_ms, j.run_at, j.timezone, j.queue, j.timeout_ms, \
         j.enabled, j.next_run_at, j.last_run_at, j.created_at, j.updated_at, \
         (SELECT e.status FROM job_executions e WHERE e.tenant_id = j.tenant_id \
          AND e.job_id = j.id AND e.status IN ({}) ORDER BY e.created_at DESC LIMIT 1) \
          AS last_run_status, \
         (SELECT MAX(e.started_at) FROM job_executions e WHERE e.tenant_id = j.tenant_id \
          AND e.job_id = j.id) AS last_started_at",
        ExecutionStatus::sql_list_of(ExecutionStatus::is_final)
    )
});

/// The job `id_or_name` (its uuid or its name) of the tenant `scope` (any when `None`). A name
/// found in several tenants gives the default tenant's first, then the oldest.
pub async fn find(
    db: &Database,
    id_or_name: &str,
    scope: Option<&str>,
    columns: JobColumns,
) -> Result<Option<JsonRow>, sqlx::Error> {
    let id = || Param::Text(id_or_name.into());
    let mut s = stmt(
        &format!(
            "SELECT {} FROM jobs j WHERE (j.id = ? OR j.name = ?)",
            columns.sql()
        ),
        vec![id(), id()],
    );
    and_tenant(&mut s, "j.tenant_id", scope);
    s.sql(" ORDER BY CASE WHEN j.id = ");
    s.bind(id());
    s.sql(" THEN 0 WHEN j.tenant_id = 'default' THEN 1 ELSE 2 END, j.created_at LIMIT 1");
    fetch_one(db, &s).await
}

/// Jobs by name (then id), of the tenant `scope` (all when `None`), after the job
/// `(name, id)`: at most `limit` rows.
pub async fn list(
    db: &Database,
    scope: Option<&str>,
    after: Option<(&str, &str)>,
    limit: i64,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let mut s = stmt(
        &format!(
            "SELECT {} FROM jobs j WHERE 1 = 1",
            JobColumns::Listed.sql()
        ),
        vec![],
    );
    and_tenant(&mut s, "j.tenant_id", scope);
    if let Some((name, id)) = after {
        s.sql(" AND (j.name > ");
        s.bind(Param::Text(name.into()));
        s.sql(" OR (j.name = ");
        s.bind(Param::Text(name.into()));
        s.sql(" AND j.id > ");
        s.bind(Param::Text(id.into()));
        s.sql("))");
    }
    s.sql(" ORDER BY j.name, j.id LIMIT ");
    s.bind(Param::Int(limit));
    fetch_all(db, &s).await
}

/// The manifest (JSON text) of a version of a job.
pub async fn manifest(
    db: &Database,
    job_id: &str,
    version: i64,
) -> Result<Option<String>, sqlx::Error> {
    scalar(db, &of_version("manifest", job_id, version)).await
}

/// The component (the `.wasm` bytes) of a version of a job, exactly as registered: a build's
/// stored part after the guest runtime it names, stored once (`platform::register_job`).
pub async fn component(
    db: &Database,
    job_id: &str,
    version: i64,
) -> Result<Option<Vec<u8>>, sqlx::Error> {
    let rows: Vec<(Vec<u8>, Option<Vec<u8>>)> = fetch_as(
        db,
        &stmt(
            "SELECT v.component, r.component FROM job_versions v \
             LEFT JOIN guest_runtimes r ON r.sha256 = v.runtime_sha256 \
             WHERE v.job_id = ? AND v.version = ?",
            vec![Param::Text(job_id.into()), Param::Int(version)],
        ),
    )
    .await?;
    Ok(rows
        .into_iter()
        .next()
        .map(|(stored, runtime)| match runtime {
            Some(mut whole) => {
                whole.extend_from_slice(&stored);
                whole
            }
            None => stored,
        }))
}

/// A version's component as a worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredComponent {
    /// A build stored apart from this host's guest runtime: its own (program and manifest)
    /// sections, without the runtime's bytes.
    OwnSections(Vec<u8>),
    /// Anything else, whole (as [`component`] reads it).
    Whole(Vec<u8>),
}

/// A version's component: a build on this host's runtime as its own sections only, anything
/// else whole; `None` when the version is not stored.
pub async fn stored_component(
    db: &Database,
    job_id: &str,
    version: i64,
) -> Result<Option<StoredComponent>, sqlx::Error> {
    let sql = "SELECT runtime_sha256, component FROM job_versions WHERE job_id = ? AND version = ?";
    let stmt = stmt(sql, vec![Param::Text(job_id.into()), Param::Int(version)]);
    let row: Option<(Option<String>, Vec<u8>)> = fetch_as(db, &stmt).await?.into_iter().next();
    Ok(match row {
        None => None,
        Some((None, whole)) => Some(StoredComponent::Whole(whole)),
        Some((Some(runtime), own)) if runtime == super::platform::runtime_hex()? => {
            Some(StoredComponent::OwnSections(own))
        }
        // Stored by a host of another runtime: put back together.
        Some(_) => component(db, job_id, version)
            .await?
            .map(StoredComponent::Whole),
    })
}

/// Reads the column `column` (one of this module's, never input) of a version of a job.
fn of_version(column: &str, job_id: &str, version: i64) -> super::sql::Stmt {
    stmt(
        &format!("SELECT {column} FROM job_versions WHERE job_id = ? AND version = ?"),
        vec![Param::Text(job_id.into()), Param::Int(version)],
    )
}

/// The versions a job keeps, newest first: `(version, sha256, created_at)`.
pub async fn versions(db: &Database, job_id: &str) -> Result<Vec<JsonRow>, sqlx::Error> {
    fetch_all(
        db,
        &stmt(
            "SELECT version, sha256, created_at FROM job_versions WHERE job_id = ? \
             ORDER BY version DESC",
            vec![Param::Text(job_id.into())],
        ),
    )
    .await
}

/// A job as the scheduler loads it: its current version, that version's manifest and the
/// schedule it fires on (the manifest's unless rescheduled since).
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub id: String,
    pub tenant_id: String,
    pub version: i64,
    pub enabled: bool,
    /// JSON text.
    pub manifest: String,
    pub schedule: Schedule,
    pub timezone: String,
}

/// Every job with its current version, the tenant `first`'s jobs first.
pub async fn current(db: &Database, first: &str) -> Result<Vec<Current>, sqlx::Error> {
    type Row = (
        String,
        String,
        i64,
        bool,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<String>,
    );
    let rows: Vec<Row> = fetch_as(
        db,
        &stmt(
            "SELECT j.id, j.tenant_id, j.version, j.enabled, v.manifest, j.schedule_kind, j.cron, \
             j.interval_ms, j.run_at, j.timezone FROM jobs j \
             JOIN job_versions v ON v.job_id = j.id AND v.version = j.version \
             ORDER BY CASE WHEN j.tenant_id = ? THEN 0 ELSE 1 END",
            vec![Param::Text(first.into())],
        ),
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, tenant_id, version, enabled, manifest, kind, cron, interval_ms, run_at, tz)| {
                Current {
                    id,
                    tenant_id,
                    version,
                    enabled,
                    manifest,
                    schedule: super::schedules::from_columns(
                        kind.as_deref(),
                        cron,
                        interval_ms,
                        run_at,
                    ),
                    timezone: tz.unwrap_or_else(|| "UTC".into()),
                }
            },
        )
        .collect())
}

/// The manifests (JSON text) of the current versions of a tenant's jobs.
pub async fn current_manifests(db: &Database, tenant: &str) -> Result<Vec<String>, sqlx::Error> {
    super::rows::scalars(
        db,
        &stmt(
            "SELECT v.manifest FROM jobs j \
             JOIN job_versions v ON v.job_id = j.id AND v.version = j.version \
             WHERE j.tenant_id = ?",
            vec![Param::Text(tenant.into())],
        ),
    )
    .await
}
