//! `/jobs/{id}/executions` and `/executions/{id}`: history, details, cancel and retry.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, JsonBody, PathParams, QueryParams};
use super::jobs::find_job_row;
use super::page::{requested_page, Listing};
use super::ApiState;
use crate::domain::executions::{CancelOutcome, ExecutionStatus, Lifecycle, Refused};
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
    /// `schedule`, `manual`, `event` (a `trigger: on(E)` job) or `retry`.
    pub trigger: Option<String>,
    /// The event that set it off (`trigger` `event`).
    pub event_id: Option<String>,
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

/// Which executions a search (`GET /executions`, as query parameters) or a bulk retry or
/// cancel (`POST /executions/retry|cancel`, as a JSON body) takes, newest first: every condition
/// given holds.
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExecutionQuery {
    /// The job's uuid or name.
    pub job: Option<String>,
    /// Only executions in these states, comma-separated (`failed,timed_out`). A bulk action
    /// takes, by default, every state it applies to: the failed kinds and `cancelled` for
    /// retry; `pending`, `retrying` and `running` for cancel.
    pub status: Option<String>,
    /// Created at or after this RFC 3339 instant.
    pub since: Option<String>,
    /// Created before this RFC 3339 instant.
    pub until: Option<String>,
    /// Only executions whose error contains this text (case-insensitive).
    pub error: Option<String>,
    /// At most this many (1–500; default 50 for a search, 100 for a bulk action).
    #[param(minimum = 1, maximum = 500)]
    #[schema(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// A search's next page: a previous page's `next_cursor` (a bulk action always starts
    /// from the newest).
    pub cursor: Option<String>,
}

/// An execution a bulk action left as it was, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkRefusal {
    pub id: String,
    pub reason: String,
}

/// What a bulk retry or cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkOutcome {
    /// Executions the filter took (at most `limit`).
    pub matched: usize,
    /// Those retried (now `pending`) or cancelled (`cancelled`, or `cancelling` while they stop).
    pub done: Vec<ExecutionAction>,
    /// Those that could not be moved.
    pub refused: Vec<BulkRefusal>,
    /// More executions match than `limit` took: the same request again takes the next ones
    /// (refused ones still match).
    pub more: bool,
}

/// The filter `query` describes (its job, states, time range and error text), within the
/// states `applies` (when `status` is absent, those states).
async fn filter_of(
    state: &ApiState,
    auth: &Auth,
    query: &ExecutionQuery,
    applies: &[ExecutionStatus],
) -> Result<store::Filter, ApiError> {
    let invalid = |message: String| ApiError::bad_request("invalid_filter", message);
    let job_id = match query
        .job
        .as_deref()
        .map(str::trim)
        .filter(|j| !j.is_empty())
    {
        Some(job) => Some(
            find_job_row(state, auth, job)
                .await?
                .text("id")
                .unwrap_or_default(),
        ),
        None => None,
    };
    let mut statuses = Vec::new();
    for word in query
        .status
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
    {
        if word.is_empty() {
            continue;
        }
        let s: ExecutionStatus = word
            .parse()
            .map_err(|_| invalid(format!("`{word}` is not an execution status")))?;
        if !applies.contains(&s) {
            return Err(invalid(format!(
                "this action does not apply to `{word}` executions"
            )));
        }
        statuses.push(s);
    }
    if statuses.is_empty() && applies.len() < ExecutionStatus::ALL.len() {
        statuses = applies.to_vec();
    }
    let instant = |name: &str, text: Option<&str>| -> Result<_, ApiError> {
        text.map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                chrono::DateTime::parse_from_rfc3339(t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| invalid(format!("`{name}` `{t}` is not an RFC 3339 instant: {e}")))
            })
            .transpose()
    };
    Ok(store::Filter {
        job_id,
        statuses,
        since: instant("since", query.since.as_deref())?,
        until: instant("until", query.until.as_deref())?,
        error: query.error.clone().filter(|e| !e.is_empty()),
    })
}

fn summary(r: &JsonRow) -> ExecutionSummary {
    ExecutionSummary {
        id: r.text("id").unwrap_or_default(),
        job_id: r.text("job_id").unwrap_or_default(),
        job_name: r.text("job_name"),
        job_version: r.int("job_version"),
        status: r.text("status").unwrap_or_default(),
        trigger: r.text("trigger"),
        event_id: r.text("event_id"),
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

/// List a job's executions, newest first (filtered as `GET /executions` is; the path names
/// the job).
#[utoipa::path(get, path = "/jobs/{id}/executions", tag = "executions",
    params(("id" = String, Path, description = "The job's uuid or name"), ExecutionQuery),
    responses((status = 200, body = Listing<ExecutionSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
    QueryParams(query): QueryParams<ExecutionQuery>,
) -> Result<Json<Listing<ExecutionSummary>>, ApiError> {
    // The path names the job.
    let query = ExecutionQuery {
        job: Some(id),
        ..query
    };
    let page = requested_page(query.cursor.as_deref(), query.limit, 50)?;
    let filter = filter_of(&state, &auth, &query, &ExecutionStatus::ALL).await?;
    let rows = store::search(&state.db, auth.scope(), &filter, &page).await?;
    Ok(Json(Listing::of(rows, page.limit, "created_at", summary)))
}

/// Search the executions of every job (the caller's, for a tenant), newest first.
#[utoipa::path(get, path = "/executions", tag = "executions",
    params(ExecutionQuery),
    responses((status = 200, body = Listing<ExecutionSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn search(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(query): QueryParams<ExecutionQuery>,
) -> Result<Json<Listing<ExecutionSummary>>, ApiError> {
    let page = requested_page(query.cursor.as_deref(), query.limit, 50)?;
    let filter = filter_of(&state, &auth, &query, &ExecutionStatus::ALL).await?;
    let rows = store::search(&state.db, auth.scope(), &filter, &page).await?;
    Ok(Json(Listing::of(rows, page.limit, "created_at", summary)))
}

/// A bulk action's part: what it does to one execution.
enum Bulk {
    Retry,
    Cancel,
}

impl Bulk {
    /// The states it applies to.
    fn applies(&self) -> Vec<ExecutionStatus> {
        match self {
            Bulk::Retry => ExecutionStatus::ALL
                .into_iter()
                .filter(|s| s.is_final() && !s.is_success())
                .collect(),
            Bulk::Cancel => ExecutionStatus::ALL
                .into_iter()
                .filter(|s| !s.is_final())
                .collect(),
        }
    }

    async fn run(
        self,
        state: &ApiState,
        auth: &Auth,
        query: ExecutionQuery,
    ) -> Result<Json<BulkOutcome>, ApiError> {
        if query.cursor.is_some() {
            return Err(ApiError::bad_request(
                "invalid_filter",
                "a bulk action takes no cursor: it starts from the newest each time",
            ));
        }
        let limit = super::page::page_limit(query.limit, 100)?;
        let filter = filter_of(state, auth, &query, &self.applies()).await?;
        let page = crate::store::page::Page { after: None, limit };
        let mut rows = store::search(&state.db, auth.scope(), &filter, &page).await?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let mut outcome = BulkOutcome {
            matched: rows.len(),
            done: Vec::new(),
            refused: Vec::new(),
            more,
        };
        let lifecycle = lifecycle(state);
        for row in rows {
            let id = row.text("id").unwrap_or_default();
            let Ok(uuid) = Uuid::parse_str(&id) else {
                continue;
            };
            let tenant = row.text("tenant_id").unwrap_or_default();
            let shown = row.text("status").unwrap_or_default();
            let result = match self {
                Bulk::Retry => lifecycle
                    .retry(&tenant, uuid, &shown)
                    .await
                    .map(|()| ExecutionStatus::Pending.as_str()),
                Bulk::Cancel => lifecycle
                    .cancel(&tenant, uuid, &shown)
                    .await
                    .map(|o| match o {
                        CancelOutcome::Cancelled => ExecutionStatus::Cancelled.as_str(),
                        CancelOutcome::Stopping => "cancelling",
                    }),
            };
            match result {
                Ok(status) => outcome.done.push(ExecutionAction {
                    id,
                    status: status.into(),
                }),
                Err(Refused::Store(e)) => return Err(e.into()),
                Err(refused) => outcome.refused.push(BulkRefusal {
                    id,
                    reason: refused.to_string(),
                }),
            }
        }
        Ok(Json(outcome))
    }
}

/// Retry the failed (and cancelled) executions a filter takes, newest first, at most `limit`
/// of them: each runs again as the same execution.
#[utoipa::path(post, path = "/executions/retry", tag = "executions",
    request_body(content = ExecutionQuery, content_type = "application/json"),
    responses((status = 200, body = BulkOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn retry_many(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    JsonBody(query): JsonBody<ExecutionQuery>,
) -> Result<Json<BulkOutcome>, ApiError> {
    Bulk::Retry.run(&state, &auth, query).await
}

/// Cancel the pending, retrying and running executions a filter takes, newest first, at most
/// `limit` of them.
#[utoipa::path(post, path = "/executions/cancel", tag = "executions",
    request_body(content = ExecutionQuery, content_type = "application/json"),
    responses((status = 200, body = BulkOutcome), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub(super) async fn cancel_many(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    JsonBody(query): JsonBody<ExecutionQuery>,
) -> Result<Json<BulkOutcome>, ApiError> {
    Bulk::Cancel.run(&state, &auth, query).await
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
        .filter(|i| auth.scope().is_none_or(|t| t == i.task.tenant))
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
    let task = info.task;
    row.insert("tenant_id".into(), Value::String(task.tenant));
    row.insert("job_id".into(), Value::String(task.job_id));
    row.insert("job_name".into(), Value::String(task.job_name));
    row.insert(
        "job_version".into(),
        task.job_version.map_or(Value::Null, Value::from),
    );
    row.insert("trigger".into(), Value::String(task.trigger));
    row.insert("queue".into(), Value::String(task.queue));
    row.insert("attempt".into(), Value::from(task.attempt));
    row.insert("max_attempts".into(), Value::from(task.max_attempts));
    row.insert("input".into(), Value::String(task.input));
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
        (status = 404, body = ErrorBody)))]
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
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
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
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
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
