//! The platform's own rows (see `migrations/`): registered jobs and their versions, execution
//! records, reports, events, the outbox and per-job state. Statements are built with
//! [`Stmt`], so each function works on SQLite and PostgreSQL alike.

use super::recorder::{FinishRow, Record, StartRow};
use super::sql::{stmt, Param, Stmt};
use super::{Database, ExecutionStatus};
use chrono::{DateTime, Utc};
use codeai_ir::{FieldType, Manifest};
use serde_json::Value;
use uuid::Uuid;

/// The tenant that owns everything when no other is named (created by the first migration).
pub const DEFAULT_TENANT: &str = "default";

use super::page::{newest_of, IdColumn, Page};
use super::rows::{execute, fetch_optional_as, JsonRow};
use std::path::{Path, PathBuf};

/// The first column of the first row, as text.
async fn fetch_text(db: &Database, s: &Stmt) -> Result<Option<String>, sqlx::Error> {
    Ok(super::rows::scalar::<Option<String>>(db, s)
        .await?
        .flatten())
}

fn text(s: impl Into<String>) -> Param {
    Param::Text(s.into())
}

fn opt_text(s: Option<impl Into<String>>) -> Param {
    s.map_or(Param::Null(FieldType::String), |s| Param::Text(s.into()))
}

fn opt_time(t: Option<DateTime<Utc>>) -> Param {
    t.map_or(Param::Null(FieldType::Datetime), Param::DateTime)
}

// ---------------------------------------------------------------------------------------------
// Jobs
// ---------------------------------------------------------------------------------------------

/// A job registered in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub job_id: String,
    pub version: i64,
    /// False when the same component was registered already (nothing changed).
    pub new_version: bool,
}

/// Registers a job component for a tenant: creates the job, or adds a version when the
/// component's bytes changed. The schedule columns follow the manifest, unless the new version
/// brings the same schedule as the version before it: then the job keeps the schedule it has
/// (one the API gave it holds).
pub async fn register_job(
    db: &Database,
    tenant: &str,
    manifest: &Manifest,
    component: &[u8],
    sha256: &str,
) -> Result<Registered, sqlx::Error> {
    let now = Utc::now();
    let existing = fetch_text(
        db,
        &stmt(
            "SELECT id FROM jobs WHERE tenant_id = ? AND name = ?",
            vec![text(tenant), text(&manifest.name)],
        ),
    )
    .await?;
    let (kind, cron, interval, run_at) = super::schedules::columns(&manifest.schedule);
    let timezone = if manifest.timezone.is_empty() {
        "UTC".to_string()
    } else {
        manifest.timezone.clone()
    };
    let manifest_json = serde_json::to_string(manifest).unwrap_or_else(|_| "{}".into());
    let (job_id, version, keep_schedule) = match existing {
        Some(job_id) => {
            let (version, latest, before) = latest_version(db, &job_id).await?;
            if latest.as_deref() == Some(sha256) {
                return Ok(Registered {
                    job_id,
                    version,
                    new_version: false,
                });
            }
            let keep = same_schedule(&before, manifest);
            (job_id, version + 1, keep)
        }
        None => (Uuid::new_v4().to_string(), 1, false),
    };
    // A new version that brings the schedule the one before it brought leaves the job's
    // schedule as it is: one the API gave it (`PUT /jobs/{id}/schedule`) holds.
    let schedule_update = if keep_schedule {
        ""
    } else {
        "schedule_kind = excluded.schedule_kind, cron = excluded.cron, \
         interval_ms = excluded.interval_ms, run_at = excluded.run_at, \
         timezone = excluded.timezone, "
    };
    let params = vec![
        text(&job_id),
        text(tenant),
        text(&manifest.name),
        Param::Int(version),
        opt_text(manifest.description.clone()),
        text(&manifest.job_type),
        text(kind),
        opt_text(cron),
        interval.map_or(Param::Null(FieldType::Int), Param::Int),
        opt_time(run_at),
        text(timezone),
        text(&manifest.queue),
        Param::Int(manifest.timeout_ms as i64),
        Param::DateTime(now),
        Param::DateTime(now),
    ];
    let upsert = format!(
        "INSERT INTO jobs (id, tenant_id, name, version, description, job_type, schedule_kind, \
         cron, interval_ms, run_at, timezone, queue, timeout_ms, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, \
         description = excluded.description, job_type = excluded.job_type, {schedule_update}\
         queue = excluded.queue, timeout_ms = excluded.timeout_ms, updated_at = excluded.updated_at"
    );
    execute(db, &stmt(&upsert, params)).await?;
    // A build keeps only what follows the guest runtime; the runtime is stored once.
    let (runtime, stored) = match split_runtime(component) {
        Some((runtime, rest)) => (Some(store_runtime(db, runtime).await?), rest),
        None => (None, component),
    };
    let version_row = stmt(
        "INSERT INTO job_versions (job_id, version, sha256, manifest, component, \
         runtime_sha256, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        vec![
            text(&job_id),
            Param::Int(version),
            text(sha256),
            text(&manifest_json),
            Param::Bytes(stored.to_vec()),
            opt_text(runtime),
            Param::DateTime(now),
        ],
    );
    let blob = execute(db, &version_row).await?;
    debug_assert_eq!(blob, 1);
    Ok(Registered {
        job_id,
        version,
        new_version: true,
    })
}

/// A component `codeai build` made, split into this compiler's guest runtime and what follows it
/// (its program and manifest sections); `None` for any other component (stored whole).
fn split_runtime(component: &[u8]) -> Option<(&'static [u8], &[u8])> {
    codeai_dsl::emit::split_build(component)?;
    let runtime = codeai_dsl::emit::runtime_component().ok()?;
    Some((runtime, &component[runtime.len()..]))
}

/// This host's guest runtime's SHA-256 in hex (computed once per process): its key in
/// `guest_runtimes` and `job_versions.runtime_sha256` (the artifact cache keys the runtime's
/// core module by that module's own SHA-256).
pub(crate) fn runtime_hex() -> Result<&'static str, sqlx::Error> {
    static HEX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let digest = codeai_dsl::emit::runtime_sha256()
        .map_err(|e| sqlx::Error::Protocol(format!("the guest runtime: {e}")))?;
    Ok(HEX.get_or_init(|| hex::encode(digest)))
}

/// Stores `runtime` once (the first version that needs it); its SHA-256, as hex.
async fn store_runtime(db: &Database, runtime: &'static [u8]) -> Result<String, sqlx::Error> {
    let hash = runtime_hex()?.to_string();
    let known = fetch_text(
        db,
        &stmt(
            "SELECT sha256 FROM guest_runtimes WHERE sha256 = ?",
            vec![text(&hash)],
        ),
    )
    .await?;
    if known.is_some() {
        return Ok(hash);
    }
    let insert = stmt(
        "INSERT INTO guest_runtimes (sha256, component, created_at) VALUES (?, ?, ?) \
         ON CONFLICT (sha256) DO NOTHING",
        vec![
            text(&hash),
            Param::Bytes(runtime.to_vec()),
            Param::DateTime(Utc::now()),
        ],
    );
    execute(db, &insert).await?;
    Ok(hash)
}

/// The latest version of a job (`(0, None, "")` before the first).
async fn latest_version(db: &Database, job_id: &str) -> Result<LatestVersion, sqlx::Error> {
    let s = stmt(
        "SELECT version, sha256, manifest FROM job_versions WHERE job_id = ? \
         ORDER BY version DESC LIMIT 1",
        vec![text(job_id)],
    );
    let latest = super::rows::fetch_optional_as::<LatestVersion>(db, &s).await?;
    Ok(latest.unwrap_or((0, None, String::new())))
}

/// The latest version of a job: its number, its component's hash and its manifest (JSON).
type LatestVersion = (i64, Option<String>, String);

/// Whether `manifest` brings the same schedule (and timezone) as the earlier version's
/// manifest `before` (JSON): then a schedule the API gave the job since is kept.
fn same_schedule(before: &str, manifest: &Manifest) -> bool {
    let Ok(before) = serde_json::from_str::<Value>(before) else {
        return false;
    };
    serde_json::to_value(&manifest.schedule).is_ok_and(|s| before.get("schedule") == Some(&s))
        && before.get("timezone").and_then(Value::as_str) == Some(manifest.timezone.as_str())
}

// ---------------------------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------------------------

/// The start of an execution record.
#[derive(Debug, Clone)]
pub struct NewExecution<'a> {
    pub id: Uuid,
    pub tenant: &'a str,
    pub job_id: &'a str,
    pub job_name: &'a str,
    pub job_version: Option<i64>,
    pub trigger: &'a str,
    pub queue: &'a str,
    pub input: &'a str,
    pub attempt: i64,
    pub max_attempts: i64,
    /// The schedule fire it is for.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

/// Records an execution as `running` (its first attempt creates the row, later ones update it).
pub async fn start_execution(db: &Database, e: &NewExecution<'_>) -> Result<(), sqlx::Error> {
    let record = Record::Start(e.row());
    super::recorder::write_records(db, &[&record]).await
}

impl NewExecution<'_> {
    /// The record the writer takes.
    pub(crate) fn row(&self) -> StartRow {
        StartRow {
            id: self.id,
            tenant: self.tenant.to_string(),
            job_id: self.job_id.to_string(),
            job_name: self.job_name.to_string(),
            job_version: self.job_version,
            trigger: self.trigger.to_string(),
            queue: self.queue.to_string(),
            input: self.input.to_string(),
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            scheduled_at: self.scheduled_at,
            started_at: self.started_at,
        }
    }
}

/// The statement that records an execution that is queued and has not started (a run now),
/// so it is listed at once; its first attempt turns it `running`. Written with its task
/// (see [`crate::domain::jobs`]), with the trace context the request carried and the event
/// that set it off, if any.
pub fn pending_execution(
    e: &NewExecution<'_>,
    traceparent: Option<&str>,
    event_id: Option<&str>,
) -> Stmt {
    let mut params = new_row(e, ExecutionStatus::Pending);
    params.extend([
        Param::Int(e.max_attempts),
        opt_time(e.scheduled_at),
        Param::DateTime(e.started_at),
        traceparent.map_or(Param::Null(FieldType::String), text),
        event_id.map_or(Param::Null(FieldType::String), text),
    ]);
    stmt(
        &format!(
            "INSERT INTO job_executions ({NEW_ROW}, attempt, max_attempts, scheduled_at, \
             created_at, traceparent, event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, \
             ?, ?) ON CONFLICT DO NOTHING"
        ),
        params,
    )
}

/// The columns every new execution row starts with ([`new_row`] gives their values).
const NEW_ROW: &str = "id, tenant_id, job_id, job_name, job_version, status, trigger, queue, input";

fn new_row(e: &NewExecution<'_>, status: ExecutionStatus) -> Vec<Param> {
    vec![
        Param::Uuid(e.id),
        text(e.tenant),
        text(e.job_id),
        text(e.job_name),
        e.job_version
            .map_or(Param::Null(FieldType::Int), Param::Int),
        text(status.as_str()),
        text(e.trigger),
        text(e.queue),
        text(e.input),
    ]
}

/// Records a schedule fire that did not run (a misfire, an overlap) as a `skipped` execution
/// with its reason (once: an execution of that id already recorded is left as it is).
pub async fn record_skipped_fire(
    db: &Database,
    e: &NewExecution<'_>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    let now = Utc::now();
    let mut params = new_row(e, ExecutionStatus::Skipped);
    params.extend([
        text(reason),
        opt_time(e.scheduled_at),
        Param::DateTime(now),
        Param::DateTime(now),
    ]);
    let s = stmt(
        &format!(
            "INSERT INTO job_executions ({NEW_ROW}, error, attempt, max_attempts, scheduled_at, \
             finished_at, duration_ms, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, \
             ?, ?, 0, ?) ON CONFLICT DO NOTHING"
        ),
        params,
    );
    execute(db, &s).await.map(drop)
}

/// Ends an execution that never ran with `status` and `error` (e.g. a run that could not be
/// queued).
pub async fn end_execution(
    db: &Database,
    tenant: &str,
    id: Uuid,
    status: ExecutionStatus,
    error: &str,
) -> Result<(), sqlx::Error> {
    let s = stmt(
        "UPDATE job_executions SET status = ?, error = ?, finished_at = ? \
         WHERE tenant_id = ? AND id = ?",
        vec![
            text(status.as_str()),
            text(error),
            Param::DateTime(Utc::now()),
            text(tenant),
            Param::Uuid(id),
        ],
    );
    execute(db, &s).await.map(drop)
}

/// Cancels the pending executions of a job, with `reason` as their error.
pub async fn cancel_pending_of_job(
    db: &Database,
    job_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let s = stmt(
        "UPDATE job_executions SET status = ?, error = ?, finished_at = ? \
         WHERE job_id = ? AND status = ?",
        vec![
            text(ExecutionStatus::Cancelled.as_str()),
            text(reason),
            Param::DateTime(now),
            text(job_id),
            text(ExecutionStatus::Pending.as_str()),
        ],
    );
    execute(db, &s).await
}

/// Removes a job's row and its versions, in one transaction (its executions stay).
pub async fn delete_job(db: &Database, job_id: &str) -> Result<(), sqlx::Error> {
    let stmts = [
        stmt(
            "DELETE FROM job_versions WHERE job_id = ?",
            vec![text(job_id)],
        ),
        stmt("DELETE FROM jobs WHERE id = ?", vec![text(job_id)]),
    ];
    super::rows::execute_all(db, &stmts).await.map(drop)
}

/// How an execution ended, for its record.
#[derive(Debug, Clone)]
pub struct FinishedExecution<'a> {
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub status: ExecutionStatus,
    pub output: Option<&'a str>,
    pub error: Option<&'a str>,
    pub step: Option<&'a str>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub fuel_used: i64,
    /// JSON array of log lines.
    pub log: Value,
    /// JSON array of capability calls.
    pub calls: Value,
    /// The execution's last attempt (no attempt row: see `FinishRow::last`).
    pub last: bool,
}

/// Completes an execution record (and records the attempt when it is retried).
pub async fn finish_execution(
    db: &Database,
    tenant: &str,
    id: Uuid,
    f: &FinishedExecution<'_>,
) -> Result<(), sqlx::Error> {
    let record = Record::Finish(f.row(tenant, id));
    super::recorder::write_records(db, &[&record]).await
}

impl FinishedExecution<'_> {
    /// The record the writer takes.
    pub(crate) fn row(&self, tenant: &str, id: Uuid) -> FinishRow {
        FinishRow {
            id,
            tenant: tenant.to_string(),
            attempt: self.attempt,
            started_at: self.started_at,
            status: self.status,
            output: self.output.map(str::to_string),
            error: self.error.map(str::to_string),
            step: self.step.map(str::to_string),
            finished_at: self.finished_at,
            duration_ms: self.duration_ms,
            fuel_used: self.fuel_used,
            log: self.log.to_string(),
            calls: self.calls.to_string(),
            last: self.last,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------

/// A `reports` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub id: Uuid,
    pub tenant: String,
    pub job: String,
    pub execution_id: Option<String>,
    pub format: String,
    pub size: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert_report(db: &Database, r: &ReportRow) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "INSERT INTO reports (id, tenant_id, job, execution_id, format, size, name, path, \
             created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            vec![
                Param::Uuid(r.id),
                text(&r.tenant),
                text(&r.job),
                opt_text(r.execution_id.clone()),
                text(&r.format),
                Param::Int(r.size),
                text(&r.name),
                // The file is found from the id ([`report_path`]), never from a row.
                Param::Null(FieldType::String),
                Param::DateTime(r.created_at),
                opt_time(r.expires_at),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Where the file of a report is: `<dir>/<tenant>/<id>.<format>`, computed from the report's
/// identity alone, never read from a row (a row is data a job might have written). `None` when
/// the format is not one the platform writes or the tenant id is not a tenant name, so the path
/// has no `..`, no separator and no other surprise.
pub fn report_path(dir: &Path, tenant: &str, id: Uuid, format: &str) -> Option<PathBuf> {
    let tenant_ok = !tenant.is_empty()
        && tenant.len() <= 64
        && tenant
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    let format_ok = matches!(format, "pdf" | "csv" | "html");
    (tenant_ok && format_ok).then(|| {
        dir.join(tenant)
            .join(format!("{}.{format}", id.hyphenated()))
    })
}

/// The name and format of a tenant's report.
pub async fn report_file(
    db: &Database,
    tenant: &str,
    id: Uuid,
) -> Result<Option<(String, String)>, sqlx::Error> {
    let sql = "SELECT COALESCE(name, ''), format FROM reports WHERE tenant_id = ? AND id = ?";
    fetch_optional_as(db, &stmt(sql, vec![text(tenant), Param::Uuid(id)])).await
}

/// Deletes a tenant's report: its file (at [`report_path`] under `dir`), then its row. True if
/// there was one.
pub async fn remove_report(
    db: &Database,
    dir: &Path,
    tenant: &str,
    id: Uuid,
) -> Result<bool, RemoveReportError> {
    let Some((_, format)) = report_file(db, tenant, id).await? else {
        return Ok(false);
    };
    if let Some(path) = report_path(dir, tenant, id, &format) {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(RemoveReportError::File(id, e)),
        }
    }
    let n = execute(
        db,
        &stmt(
            "DELETE FROM reports WHERE tenant_id = ? AND id = ?",
            vec![text(tenant), Param::Uuid(id)],
        ),
    )
    .await?;
    Ok(n > 0)
}

/// Why a report could not be removed.
#[derive(Debug, thiserror::Error)]
pub enum RemoveReportError {
    #[error("deleting the file of report {0}: {1}")]
    File(Uuid, std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

// ---------------------------------------------------------------------------------------------
// Events, outbox, state
// ---------------------------------------------------------------------------------------------

/// Stores an emitted event; returns its id.
pub async fn insert_event(
    db: &Database,
    tenant: &str,
    job: &str,
    execution_id: Option<Uuid>,
    name: &str,
    payload: &Value,
) -> Result<String, sqlx::Error> {
    let id = Uuid::new_v4().to_string();
    execute(
        db,
        &stmt(
            "INSERT INTO events (id, tenant_id, job, execution_id, name, payload, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            vec![
                text(&id),
                text(tenant),
                text(job),
                opt_text(execution_id.map(|u| u.to_string())),
                text(name),
                text(payload.to_string()),
                Param::DateTime(Utc::now()),
            ],
        ),
    )
    .await?;
    Ok(id)
}

/// A message held in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxItem<'a> {
    pub tenant: &'a str,
    pub job: &'a str,
    pub execution_id: Option<Uuid>,
    /// `email` or `slack`.
    pub kind: &'a str,
    /// Email: the recipients as a JSON array; Slack: the channel.
    pub recipient: String,
    pub subject: Option<String>,
    pub body: String,
    /// JSON array of `{id, name}`.
    pub attachments: Value,
    pub reason: &'a str,
}

/// Holds a message in the outbox; returns its id.
pub async fn insert_outbox(db: &Database, item: &OutboxItem<'_>) -> Result<String, sqlx::Error> {
    let id = Uuid::new_v4().to_string();
    execute(
        db,
        &stmt(
            "INSERT INTO outbox (id, tenant_id, job, execution_id, kind, recipient, subject, body, \
             attachments, status, reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'held', ?, ?)",
            vec![
                text(&id),
                text(item.tenant),
                text(item.job),
                opt_text(item.execution_id.map(|u| u.to_string())),
                text(item.kind),
                text(&item.recipient),
                opt_text(item.subject.clone()),
                text(&item.body),
                text(item.attachments.to_string()),
                text(item.reason),
                Param::DateTime(Utc::now()),
            ],
        ),
    )
    .await?;
    Ok(id)
}

/// A job's stored value under `key` (JSON text).
pub async fn state_get(
    db: &Database,
    tenant: &str,
    job: &str,
    key: &str,
) -> Result<Option<String>, sqlx::Error> {
    fetch_text(
        db,
        &stmt(
            "SELECT value FROM job_state WHERE tenant_id = ? AND job = ? AND key = ?",
            vec![text(tenant), text(job), text(key)],
        ),
    )
    .await
}

/// Stores a job's value under `key` (JSON text), replacing any earlier one.
pub async fn state_set(
    db: &Database,
    tenant: &str,
    job: &str,
    key: &str,
    value: &str,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "INSERT INTO job_state (tenant_id, job, key, value, updated_at) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (tenant_id, job, key) DO UPDATE SET value = excluded.value, \
             updated_at = excluded.updated_at",
            vec![
                text(tenant),
                text(job),
                text(key),
                text(value),
                Param::DateTime(Utc::now()),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Sets an execution's status, e.g. `retrying` with the time of the next attempt, or
/// `cancelled` with the time it ended. Only [`crate::domain::executions`] calls it.
pub async fn set_execution_status(
    db: &Database,
    tenant: &str,
    id: Uuid,
    status: ExecutionStatus,
    scheduled_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    execute(
        db,
        &stmt(
            "UPDATE job_executions SET status = ?, scheduled_at = COALESCE(?, scheduled_at), \
             finished_at = COALESCE(?, finished_at) WHERE tenant_id = ? AND id = ?",
            vec![
                text(status.as_str()),
                opt_time(scheduled_at),
                opt_time(finished_at),
                text(tenant),
                Param::Uuid(id),
            ],
        ),
    )
    .await?;
    Ok(())
}

/// Moves an execution of `tenant` from `from` to `to`; whether it was in `from` (a record in
/// another state, or none, is left as it is).
pub async fn move_execution_status(
    db: &Database,
    tenant: &str,
    id: Uuid,
    from: ExecutionStatus,
    to: ExecutionStatus,
) -> Result<bool, sqlx::Error> {
    let changed = execute(
        db,
        &stmt(
            "UPDATE job_executions SET status = ? WHERE tenant_id = ? AND id = ? AND status = ?",
            vec![
                text(to.as_str()),
                text(tenant),
                Param::Uuid(id),
                text(from.as_str()),
            ],
        ),
    )
    .await?;
    Ok(changed > 0)
}

/// Messages held in the outbox, newest first, of the tenant `scope` (all when `None`).
pub async fn outbox(
    db: &Database,
    scope: Option<&str>,
    page: &Page,
) -> Result<Vec<JsonRow>, sqlx::Error> {
    let select = "SELECT id, tenant_id, job, execution_id, kind, recipient, subject, body, \
         attachments, status, reason, created_at FROM outbox";
    newest_of(db, select, "created_at", IdColumn::Text, scope, page).await
}
