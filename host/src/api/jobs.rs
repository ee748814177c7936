//! `/jobs`: list, details, run, pause, resume, reschedule.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, JsonBody, OptionalJsonBody, PathParams, QueryParams};
use super::page::{decode_cursor, page_limit, Listing};
use super::ApiState;
use crate::scheduler::ScheduleError;
use crate::store::jobs::{self as store, JobColumns};
use crate::store::rows::{JsonRow, RowExt};
use crate::store::ExecutionStatus;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use codeai_ir::{Manifest, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// A job's schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleInfo {
    /// `cron`, `every`, `once` or `manual`.
    pub kind: String,
    pub cron: Option<String>,
    pub every_ms: Option<i64>,
    pub run_at: Option<String>,
    /// In words: `0 6 * * * (at 06:00 every day)`, `every 5m`.
    pub description: String,
}

/// A job, as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    pub id: String,
    pub name: String,
    pub tenant: String,
    /// The version new executions run.
    pub version: i64,
    pub description: Option<String>,
    pub job_type: String,
    /// The cron expression of a cron job (null for intervals, one-time and manual jobs).
    pub cron_expression: Option<String>,
    pub schedule: ScheduleInfo,
    pub timezone: String,
    pub queue: String,
    pub timeout_ms: i64,
    pub is_enabled: bool,
    pub next_run_at: Option<String>,
    pub last_run_at: Option<String>,
    /// The status of the latest finished execution: `completed`, `failed`, `skipped`, …
    pub last_run_status: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RetryInfo {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// `fixed`, `exponential` or `custom`.
    pub backoff: String,
    /// The delay before each retry, in milliseconds (the first few for exponential backoff).
    pub delays_ms: Vec<u64>,
    pub description: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    pub version: i64,
    pub sha256: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobStats {
    /// Finished executions counted (completed + failed kinds + skipped).
    pub finished: i64,
    pub completed: i64,
    pub failed: i64,
    pub skipped: i64,
    /// completed / (completed + failed), null before any.
    pub success_rate: Option<f64>,
}

/// A job with its policies, versions and statistics.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobSummary,
    pub retry: RetryInfo,
    /// `skip`, `queue` or `allow`.
    pub overlap: String,
    /// The event whose every occurrence runs the job (`trigger: on(E)`), if any.
    pub trigger: Option<String>,
    pub capabilities: Vec<String>,
    pub entities: Vec<String>,
    pub integrations: Vec<String>,
    pub versions: Vec<VersionInfo>,
    pub stats: JobStats,
}

/// A run's body: anything but these fields is refused (a job's input sent without its `input`
/// wrapper would otherwise be dropped unseen).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The job's input, a JSON object (default `{}`).
    #[serde(default)]
    pub input: Option<Value>,
    /// Start it later: seconds (a number) or a duration (`"90s"`, `"10m"`, `"2h"`, `"1d"`), at
    /// most 366 days. Not with `run_at`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "10m")]
    pub delay: Option<Value>,
    /// Start it not before this RFC 3339 instant (one past runs now), at most 366 days ahead.
    #[serde(default)]
    pub run_at: Option<String>,
}

/// The execution a run request made.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    /// The execution's id.
    pub id: String,
    pub job_id: String,
    /// The execution's id (the same as `id`).
    pub execution_id: String,
    /// `pending`.
    pub status: String,
    pub scheduled_at: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ScheduleRequest {
    /// A 5-field cron expression or macro (`"0 7 * * *"`, `"@daily"`), read on `timezone`'s
    /// wall clock.
    pub cron_expression: Option<String>,
    /// An interval as the DSL writes one (`"10m"`, `"1h"`, `"90s"`; at least 1s).
    pub every: Option<String>,
    /// One run at this RFC 3339 instant (in the future), then none.
    pub run_at: Option<String>,
    /// An IANA timezone (default: the job's current one).
    pub timezone: Option<String>,
}

impl ScheduleRequest {
    /// The schedule asked for: exactly one of `cron_expression`, `every` and `run_at`.
    fn schedule(&self, now: chrono::DateTime<Utc>) -> Result<Schedule, String> {
        fn given(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(str::trim).filter(|v| !v.is_empty())
        }
        match (
            given(&self.cron_expression),
            given(&self.every),
            given(&self.run_at),
        ) {
            (Some(cron), None, None) => Ok(Schedule::Cron {
                expression: cron.to_string(),
            }),
            (None, Some(every), None) => {
                let every =
                    crate::describe::parse_duration(every).map_err(|e| format!("`every`: {e}"))?;
                if every.as_millis() < u128::from(codeai_ir::limits::MIN_INTERVAL_MS) {
                    return Err("`every` must be at least 1s".into());
                }
                Ok(Schedule::Interval {
                    every_ms: every.as_millis() as u64,
                })
            }
            (None, None, Some(at)) => {
                let t = chrono::DateTime::parse_from_rfc3339(at)
                    .map_err(|e| format!("`run_at` `{at}` is not an RFC 3339 instant: {e}"))?;
                if t <= now {
                    return Err(format!("`run_at` {at} is not in the future"));
                }
                Ok(Schedule::Once { at: at.to_string() })
            }
            _ => Err("give exactly one of `cron_expression`, `every` and `run_at`".into()),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

pub(super) fn schedule_of(row: &JsonRow) -> Schedule {
    match row.text("schedule_kind").as_deref() {
        Some("cron") => Schedule::Cron {
            expression: row.text("cron").unwrap_or_default(),
        },
        Some("every") => Schedule::Interval {
            every_ms: row.int("interval_ms").unwrap_or(0).max(0) as u64,
        },
        Some("once") => Schedule::Once {
            at: row.text("run_at").unwrap_or_default(),
        },
        _ => Schedule::Manual,
    }
}

fn summary(row: &JsonRow) -> JobSummary {
    let schedule = schedule_of(row);
    // The scheduler stores a fire as the job's last when it enqueues it, up to
    // `scheduler::LOOKAHEAD` ahead of its instant: until that instant it is the next run, not
    // the last.
    let is_enabled = row.flag("enabled");
    let (fired, ahead) = match row.text("last_run_at") {
        Some(t) if DateTime::parse_from_rfc3339(&t).is_ok_and(|t| t > Utc::now()) => {
            (None, is_enabled.then_some(t))
        }
        t => (t, None),
    };
    let last_run_at = match (row.text("last_started_at"), fired) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    JobSummary {
        id: row.text("id").unwrap_or_default(),
        name: row.text("name").unwrap_or_default(),
        tenant: row.text("tenant_id").unwrap_or_default(),
        version: row.int("version").unwrap_or(1),
        description: row.text("description"),
        job_type: row.text("job_type").unwrap_or_default(),
        cron_expression: match &schedule {
            Schedule::Cron { expression } => Some(expression.clone()),
            _ => None,
        },
        schedule: ScheduleInfo {
            kind: row.text("schedule_kind").unwrap_or_else(|| "manual".into()),
            cron: row.text("cron"),
            every_ms: row.int("interval_ms"),
            run_at: row.text("run_at"),
            description: crate::describe::schedule_described(&schedule),
        },
        timezone: row.text("timezone").unwrap_or_else(|| "UTC".into()),
        queue: row.text("queue").unwrap_or_default(),
        timeout_ms: row.int("timeout_ms").unwrap_or(0),
        is_enabled,
        next_run_at: ahead.or_else(|| row.text("next_run_at")),
        last_run_at,
        last_run_status: row.text("last_run_status"),
        created_at: row.text("created_at").unwrap_or_default(),
        updated_at: row.text("updated_at").unwrap_or_default(),
    }
}

/// The job `id` (a uuid or a name) as the caller may see it, with every listed column.
pub(super) async fn find_job(state: &ApiState, auth: &Auth, id: &str) -> Result<JsonRow, ApiError> {
    find_job_with(state, auth, id, JobColumns::Listed).await
}

/// The job `id` with only its own columns (no statistics): for the operations on it.
pub(super) async fn find_job_row(
    state: &ApiState,
    auth: &Auth,
    id: &str,
) -> Result<JsonRow, ApiError> {
    find_job_with(state, auth, id, JobColumns::Identity).await
}

async fn find_job_with(
    state: &ApiState,
    auth: &Auth,
    id: &str,
    columns: JobColumns,
) -> Result<JsonRow, ApiError> {
    store::find(&state.db, id, auth.scope(), columns)
        .await?
        .ok_or_else(|| ApiError::not_found("job", id))
}

/// List all jobs.
#[utoipa::path(get, path = "/jobs", tag = "jobs", params(ListParams),
    responses((status = 200, body = Listing<JobSummary>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<Listing<JobSummary>>, ApiError> {
    let limit = page_limit(params.limit, 100)?;
    let after = params
        .cursor
        .as_deref()
        .map(|c| decode_cursor(c, 2))
        .transpose()?;
    let after = after.as_ref().map(|c| (c[0].as_str(), c[1].as_str()));
    let rows = store::list(&state.db, auth.scope(), after, limit + 1).await?;
    Ok(Json(Listing::of(rows, limit, "name", summary)))
}

async fn manifest_of(state: &ApiState, job_id: &str, version: i64) -> Result<Manifest, ApiError> {
    let text = store::manifest(&state.db, job_id, version)
        .await?
        .ok_or_else(|| ApiError::internal(format!("job {job_id} has no version {version}")))?;
    serde_json::from_str(&text)
        .map_err(|e| ApiError::internal(format!("stored manifest of {job_id}: {e}")))
}

fn retry_info(policy: &codeai_ir::RetryPolicy) -> RetryInfo {
    use codeai_ir::Backoff;
    let shown = policy.max_retries.min(10);
    RetryInfo {
        max_retries: policy.max_retries,
        backoff: match &policy.backoff {
            Backoff::Fixed { .. } => "fixed",
            Backoff::Exponential { .. } => "exponential",
            Backoff::Custom { .. } => "custom",
        }
        .to_string(),
        delays_ms: (1..=shown)
            .map(|n| {
                u64::try_from(crate::queue::retry_delay(&policy.backoff, n).as_millis())
                    .unwrap_or(u64::MAX)
            })
            .collect(),
        description: crate::describe::retry(policy),
    }
}

async fn detail(state: &ApiState, row: &JsonRow) -> Result<JobDetail, ApiError> {
    let job = summary(row);
    let manifest = manifest_of(state, &job.id, job.version).await?;
    let versions = store::versions(&state.db, &job.id)
        .await?
        .iter()
        .map(|r| VersionInfo {
            version: r.int("version").unwrap_or(0),
            sha256: r.text("sha256").unwrap_or_default(),
            created_at: r.text("created_at").unwrap_or_default(),
        })
        .collect();
    let counts = crate::store::executions::status_counts(&state.db, &job.tenant, &job.id).await?;
    let (mut completed, mut failed, mut skipped) = (0, 0, 0);
    for (status, n) in counts {
        match status.parse().ok() {
            Some(ExecutionStatus::Completed) => completed += n,
            Some(ExecutionStatus::Skipped) => skipped += n,
            Some(s) if s.is_failure() => failed += n,
            _ => {}
        }
    }
    Ok(JobDetail {
        retry: retry_info(&manifest.retry),
        overlap: manifest.overlap.to_string(),
        trigger: manifest.trigger.clone(),
        capabilities: manifest.capabilities.clone(),
        entities: manifest.entities.iter().map(|e| e.name.clone()).collect(),
        integrations: manifest
            .integrations
            .iter()
            .map(|i| i.name.clone())
            .collect(),
        versions,
        stats: JobStats {
            finished: completed + failed + skipped,
            completed,
            failed,
            skipped,
            success_rate: (completed + failed > 0)
                .then(|| completed as f64 / (completed + failed) as f64),
        },
        job,
    })
}

/// Get job details.
#[utoipa::path(get, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    responses((status = 200, body = JobDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn get_job(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<Json<JobDetail>, ApiError> {
    let row = find_job(&state, &auth, &id).await?;
    Ok(Json(detail(&state, &row).await?))
}

/// Trigger a job now or later, with an input; idempotent with an `Idempotency-Key`.
#[utoipa::path(post, path = "/jobs/{id}/run", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name"),
        ("Idempotency-Key" = Option<String>, Header, description = "1–255 visible ASCII \
            characters: a request with a key used for this job within 24 hours answers the \
            first request's execution (header `Idempotent-Replayed: true`) and runs nothing"),
        ("traceparent" = Option<String>, Header, description = "A W3C trace context: the \
            parent of the execution's span when the host exports traces")),
    request_body(content = RunRequest, content_type = "application/json"),
    responses((status = 202, body = RunResponse), (status = 401, body = ErrorBody),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody, description = "\
            `invalid_input`: the input does not fit the job's `input:` declaration (a required \
            field missing, a value of the wrong type, a date or date-time that does not parse, an \
            undeclared key; the message names the field and the reason), and nothing is run; \
            `invalid_body`: an `input` that is not an object, a bad `delay` or `run_at`; \
            `idempotency_key_reused`")))]
pub(super) async fn run(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
    headers: axum::http::HeaderMap,
    OptionalJsonBody(body): OptionalJsonBody<RunRequest>,
) -> Result<axum::response::Response, ApiError> {
    let row = find_job_with(&state, &auth, &id, JobColumns::Run).await?;
    let job_id = row.text("id").unwrap_or_default();
    let input = match body.input {
        None | Some(Value::Null) => Value::Object(Default::default()),
        Some(v @ Value::Object(_)) => v,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                "`input` must be a JSON object",
            ))
        }
    };
    super::run::check_input(row.text("manifest").as_deref(), &input)?;
    let now = Utc::now();
    let asked = super::run::RunAsked {
        tenant: &row.text("tenant_id").unwrap_or_default(),
        job_id: &job_id,
        input: &input.to_string(),
        run_after: super::run::run_after(body.delay.as_ref(), body.run_at.as_deref(), now)?,
        key: super::run::idempotency_key(&headers)?,
        traceparent: super::run::traceparent(&headers),
        now,
    };
    super::run::start(&state, asked)
        .await?
        .ok_or_else(|| ApiError::not_found("job", &id))
}

async fn reload(state: &ApiState, auth: &Auth, job_id: &str) -> Result<Json<JobDetail>, ApiError> {
    let row = find_job(state, auth, job_id).await?;
    Ok(Json(detail(state, &row).await?))
}

/// Pauses or resumes the job `id`; the job as it is then.
async fn set_paused(
    state: &ApiState,
    auth: &Auth,
    id: &str,
    paused: bool,
) -> Result<Json<JobDetail>, ApiError> {
    let row = find_job_row(state, auth, id).await?;
    let job_id = row.text("id").unwrap_or_default();
    if paused {
        state.jobs().pause(&job_id, Utc::now()).await?;
    } else {
        state.jobs().resume(&job_id, Utc::now()).await?;
    }
    reload(state, auth, &job_id).await
}

/// Pause a job: it does not fire until resumed (running executions go on).
#[utoipa::path(post, path = "/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    responses((status = 200, body = JobDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn pause(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<Json<JobDetail>, ApiError> {
    set_paused(&state, &auth, &id, true).await
}

/// Resume a job: its next fire is computed from now (missed fires do not run).
#[utoipa::path(post, path = "/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    responses((status = 200, body = JobDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn resume(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<Json<JobDetail>, ApiError> {
    set_paused(&state, &auth, &id, false).await
}

fn invalid_schedule(message: String) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_schedule",
        message,
    )
}

/// Update a job's schedule: a cron expression (with its timezone), an interval or one run at
/// an instant. It holds until a new version of the job brings a schedule of its own different
/// from the one the version before it brought.
#[utoipa::path(put, path = "/jobs/{id}/schedule", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    request_body(content = ScheduleRequest, content_type = "application/json"),
    responses((status = 200, body = JobDetail), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub(super) async fn schedule(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ScheduleRequest>,
) -> Result<Json<JobDetail>, ApiError> {
    let row = find_job_row(&state, &auth, &id).await?;
    let job_id = row.text("id").unwrap_or_default();
    let timezone = body
        .timezone
        .clone()
        .unwrap_or_else(|| row.text("timezone").unwrap_or_else(|| "UTC".into()));
    let now = Utc::now();
    let schedule = body.schedule(now).map_err(invalid_schedule)?;
    state
        .jobs()
        .reschedule(&job_id, &schedule, &timezone, now)
        .await
        .map_err(|e| match e.downcast::<ScheduleError>() {
            Ok(invalid) => invalid_schedule(invalid.to_string()),
            Err(e) => e.into(),
        })?;
    reload(&state, &auth, &job_id).await
}
