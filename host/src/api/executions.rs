//! `/jobs/{id}/executions` and `/executions/{id}`: history, details, cancel and retry.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, PathParams, QueryParams};
use super::jobs::find_job_row;
use super::page::{requested_page, Listing};
use super::ApiState;
use crate::domain::executions::{CancelOutcome, ExecutionStatus, Lifecycle};
use crate::store::executions as store;
use crate::store::rows::{JsonRow, RowExt};
use crate::store::sql::datetime_text;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// An execution, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionSummary {
    pub id: String,
    pub job_id: String,
    pub job_name: Option<String>,
    /// The job version it ran (executions keep theirs when a job is replaced).
    pub job_version: Option<i64>,
    /// pending, running, retrying, completed, skipped, failed, timed_out, cancelled,
    /// fuel_exhausted, memory_exceeded, trapped.
    pub status: String,
    /// `schedule`, `manual` or `retry`.
    pub trigger: Option<String>,
    pub queue: Option<String>,
    /// Attempts started.
    pub attempt: i64,
    pub max_attempts: i64,
    pub scheduled_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub fuel_used: Option<i64>,
    /// Why it did not complete (or why it was skipped).
    pub error: Option<String>,
    /// The step an error belongs to.
    pub step: Option<String>,
    pub created_at: Option<String>,
}

/// One attempt of an execution.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptInfo {
    pub attempt: i64,
    pub status: String,
    pub error: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_ms: i64,
    pub fuel_used: i64,
}

/// An execution with its input, output, log, capability calls and attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub execution: ExecutionSummary,
    pub input: Value,
    pub output: Value,
    /// The job's log lines of the latest attempt.
    pub log: Value,
    /// The capability calls of the latest attempt, with their start and duration.
    pub calls: Value,
    pub attempts: Vec<AttemptInfo>,
}

/// What a cancel or retry did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExecutionAction {
    pub id: String,
    /// `cancelled`, `cancelling` (it stops within milliseconds) or `pending` (retry queued).
    pub status: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExecutionParams {
    /// Only executions with this status.
    pub status: Option<String>,
    /// At most this many (1–500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

fn summary(r: &JsonRow) -> ExecutionSummary {
    ExecutionSummary {
        id: r.text("id").unwrap_or_default(),
        job_id: r.text("job_id").unwrap_or_default(),
        job_name: r.text("job_name"),
        job_version: r.int("job_version"),
        status: r.text("status").unwrap_or_default(),
        trigger: r.text("trigger"),
        queue: r.text("queue"),
        attempt: r.int("attempt").unwrap_or(0),
        max_attempts: r.int("max_attempts").unwrap_or(1),
        scheduled_at: r.text("scheduled_at"),
        started_at: r.text("started_at"),
        finished_at: r.text("finished_at"),
        duration_ms: r.int("duration_ms"),
        fuel_used: r.int("fuel_used"),
        error: r.text("error"),
        step: r.text("step"),
        created_at: r.text("created_at"),
    }
}

/// List a job's executions, newest first.
#[utoipa::path(get, path = "/jobs/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "The job's uuid or name"), ExecutionParams),
    responses((status = 200, body = Listing<ExecutionSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<ExecutionParams>,
) -> Result<Json<Listing<ExecutionSummary>>, ApiError> {
    let job = find_job_row(&state, &auth, &id).await?;
    let page = requested_page(params.cursor.as_deref(), params.limit, 50)?;
    let status = params.status.as_deref().filter(|s| !s.is_empty());
    let rows = store::of_job(
        &state.db,
        &job.text("tenant_id").unwrap_or_default(),
        &job.text("id").unwrap_or_default(),
        status,
        &page,
    )
    .await?;
    Ok(Json(Listing::of(rows, page.limit, "created_at", summary)))
}

/// The execution record (or the queued task of one that has no record yet), as the caller
/// may see it.
async fn find(state: &ApiState, auth: &Auth, id: &str) -> Result<(Uuid, JsonRow), ApiError> {
    let uuid = Uuid::parse_str(id).map_err(|_| ApiError::not_found("execution", id))?;
    if let Some(row) = store::get(&state.db, uuid, auth.scope()).await? {
        return Ok((uuid, row));
    }
    // Queued by the scheduler and not started: the task is all there is.
    let info = state
        .queue
        .task_info(uuid)
        .await?
        .filter(|i| auth.scope().is_none_or(|t| t == i.tenant))
        .ok_or_else(|| ApiError::not_found("execution", id))?;
    let status = match (info.state.as_str(), info.outcome.as_deref()) {
        ("pending", _) => ExecutionStatus::Pending.to_string(),
        ("active", _) => ExecutionStatus::Running.to_string(),
        (_, Some(outcome)) => outcome.to_string(),
        (other, None) => other.to_string(),
    };
    let time = |t: Option<chrono::DateTime<Utc>>| {
        t.map_or(Value::Null, |t| Value::String(datetime_text(&t)))
    };
    let mut row = JsonRow::new();
    row.insert("id".into(), Value::String(uuid.to_string()));
    row.insert("tenant_id".into(), Value::String(info.tenant));
    row.insert("job_id".into(), Value::String(info.job_id));
    row.insert("job_name".into(), Value::String(info.job_name));
    row.insert(
        "job_version".into(),
        info.job_version.map_or(Value::Null, Value::from),
    );
    row.insert("trigger".into(), Value::String(info.trigger));
    row.insert("queue".into(), Value::String(info.queue));
    row.insert("attempt".into(), Value::from(info.attempt));
    row.insert("max_attempts".into(), Value::from(info.max_attempts));
    row.insert("input".into(), Value::String(info.input));
    row.insert(
        "error".into(),
        info.last_error.map_or(Value::Null, Value::String),
    );
    row.insert("created_at".into(), time(info.created_at));
    row.insert("scheduled_at".into(), time(info.run_after));
    row.insert("status".into(), Value::String(status));
    Ok((uuid, row))
}

/// Get an execution: attempts, log, timings, fuel used.
#[utoipa::path(get, path = "/executions/{id}", tag = "executions",
    params(("id" = String, Path, description = "The execution's uuid")),
    responses((status = 200, body = ExecutionDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn get_execution(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<Json<ExecutionDetail>, ApiError> {
    let (uuid, row) = find(&state, &auth, &id).await?;
    // Attempts that were retried have rows of their own; the last one is the execution row.
    let tenant = row.text("tenant_id").unwrap_or_default();
    let mut attempts: Vec<AttemptInfo> = store::attempts(&state.db, uuid, &tenant)
        .await?
        .iter()
        .map(|r| AttemptInfo {
            attempt: r.int("attempt").unwrap_or(0),
            status: r.text("status").unwrap_or_default(),
            error: r.text("error"),
            started_at: r.text("started_at").unwrap_or_default(),
            finished_at: r.text("finished_at").unwrap_or_default(),
            duration_ms: r.int("duration_ms").unwrap_or(0),
            fuel_used: r.int("fuel_used").unwrap_or(0),
        })
        .collect();
    if let Some(last) = last_attempt(&row) {
        // Rows written before the last attempt moved into the execution row repeat it.
        if !attempts.iter().any(|a| a.attempt == last.attempt) {
            attempts.push(last);
        }
    }
    Ok(Json(ExecutionDetail {
        execution: summary(&row),
        input: row
            .json("input")
            .unwrap_or(Value::Object(Default::default())),
        output: row.json("output").unwrap_or(Value::Null),
        log: row.json("log").unwrap_or(Value::Array(vec![])),
        calls: row.json("calls").unwrap_or(Value::Array(vec![])),
        attempts,
    }))
}

/// The attempt an execution row holds, when it has ended (not running, queued or retrying).
fn last_attempt(row: &JsonRow) -> Option<AttemptInfo> {
    let status = row.text("status")?;
    let attempt = row.int("attempt").filter(|a| *a >= 1)?;
    if !status
        .parse::<ExecutionStatus>()
        .is_ok_and(ExecutionStatus::is_final)
    {
        return None;
    }
    Some(AttemptInfo {
        attempt,
        error: row.text("error"),
        started_at: row.text("started_at")?,
        finished_at: row.text("finished_at")?,
        duration_ms: row.int("duration_ms").unwrap_or(0),
        fuel_used: row.int("fuel_used").unwrap_or(0),
        status,
    })
}

/// Cancel a pending or running execution.
#[utoipa::path(post, path = "/executions/{id}/cancel", tag = "executions",
    params(("id" = String, Path, description = "The execution's uuid")),
    responses((status = 202, body = ExecutionAction), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn cancel(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<ExecutionAction>), ApiError> {
    let (uuid, tenant, shown) = find_for_action(&state, &auth, &id).await?;
    let status = match lifecycle(&state).cancel(&tenant, uuid, &shown).await? {
        CancelOutcome::Cancelled => ExecutionStatus::Cancelled.as_str(),
        CancelOutcome::Stopping => "cancelling",
    };
    Ok(accepted(uuid, status))
}

/// Retry a failed (or cancelled) execution: it runs again as the same execution.
#[utoipa::path(post, path = "/executions/{id}/retry", tag = "executions",
    params(("id" = String, Path, description = "The execution's uuid")),
    responses((status = 202, body = ExecutionAction), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn retry(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<(StatusCode, Json<ExecutionAction>), ApiError> {
    let (uuid, tenant, shown) = find_for_action(&state, &auth, &id).await?;
    lifecycle(&state).retry(&tenant, uuid, &shown).await?;
    Ok(accepted(uuid, ExecutionStatus::Pending.as_str()))
}

/// The execution `id` an action is asked of: its id, tenant and the status it shows.
async fn find_for_action(
    state: &ApiState,
    auth: &Auth,
    id: &str,
) -> Result<(Uuid, String, String), ApiError> {
    let (uuid, row) = find(state, auth, id).await?;
    let tenant = row.text("tenant_id").unwrap_or_default();
    let shown = row.text("status").unwrap_or_default();
    Ok((uuid, tenant, shown))
}

fn accepted(id: Uuid, status: &str) -> (StatusCode, Json<ExecutionAction>) {
    (
        StatusCode::ACCEPTED,
        Json(ExecutionAction {
            id: id.to_string(),
            status: status.into(),
        }),
    )
}

fn lifecycle(state: &ApiState) -> Lifecycle<'_> {
    Lifecycle {
        db: &state.db,
        queue: &state.queue,
        pool: &state.pool,
    }
}
