//! Queue status, alerts, outbox, Prometheus metrics, health, OpenAPI and the JSON answers for
//! unknown routes.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, QueryParams};
use super::page::{requested_page, Listing};
use super::ApiState;
use crate::store::alerts::{self as alert_store, Showing};
use crate::store::executions as execution_store;
use crate::store::rows::{JsonRow, RowExt};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use utoipa::{IntoParams, OpenApi, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueStatus {
    pub name: String,
    /// Runnable now.
    pub pending: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
    /// Waiting for their time: a later fire, or a retry's delay.
    pub scheduled: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerStatus {
    pub total: u64,
    pub active: u64,
    pub idle: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueuesStatus {
    pub queues: Vec<QueueStatus>,
    pub workers: WorkerStatus,
}

/// Queue statistics: tasks per state of each queue (a tenant's token counts its own tasks),
/// and the worker slots.
#[utoipa::path(get, path = "/queues/status", tag = "queues",
    responses((status = 200, body = QueuesStatus), (status = 401, body = ErrorBody)))]
pub(super) async fn queues_status(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
) -> Result<Json<QueuesStatus>, ApiError> {
    let counts = state.queue.counts(Utc::now(), auth.scope()).await?;
    let (total, active) = crate::cluster::slots(&state.queue, &state.pool).await?;
    Ok(Json(QueuesStatus {
        queues: counts
            .into_iter()
            .map(|(name, c)| QueueStatus {
                name,
                pending: c.pending,
                active: c.active,
                completed: c.completed,
                failed: c.failed,
                scheduled: c.scheduled,
            })
            .collect(),
        workers: WorkerStatus {
            total: total as u64,
            active: active as u64,
            idle: total.saturating_sub(active) as u64,
        },
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AlertInfo {
    pub id: String,
    /// `job_failed`, `queue_backlog`, `long_running` or `worker_starvation`.
    pub kind: String,
    /// What it is about: a job, a queue, an execution, or `workers`.
    pub subject: String,
    pub message: String,
    /// `active` or `resolved`.
    pub status: String,
    /// Null for host-wide alerts (only the admin sees those).
    pub tenant: Option<String>,
    /// `slack`, `outbox`, or why delivery failed.
    pub delivery: Option<String>,
    pub started_at: String,
    pub last_seen_at: String,
    pub resolved_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertParams {
    /// `active` (default), `resolved` or `all`.
    pub status: Option<String>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

/// The host's alerts (3+ consecutive failures, backlog, long running, no idle worker).
#[utoipa::path(get, path = "/alerts", tag = "monitoring", params(AlertParams),
    responses((status = 200, body = Listing<AlertInfo>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn alerts(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<AlertParams>,
) -> Result<Json<Listing<AlertInfo>>, ApiError> {
    let showing = match params.status.as_deref().unwrap_or("active") {
        "all" => Showing::All,
        "active" => Showing::Active,
        "resolved" => Showing::Resolved,
        other => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("status `{other}`: expected active, resolved or all"),
            ))
        }
    };
    let page = requested_page(params.cursor.as_deref(), params.limit, 100)?;
    let rows = alert_store::list(&state.db, showing, auth.scope(), &page).await?;
    Ok(Json(Listing::of(
        rows,
        page.limit,
        "started_at",
        alert_info,
    )))
}

fn alert_info(r: &JsonRow) -> AlertInfo {
    AlertInfo {
        id: r.text("id").unwrap_or_default(),
        kind: r.text("kind").unwrap_or_default(),
        subject: r.text("subject").unwrap_or_default(),
        message: r.text("message").unwrap_or_default(),
        status: r.text("status").unwrap_or_default(),
        tenant: r.text("tenant_id"),
        delivery: r.text("delivery"),
        started_at: r.text("started_at").unwrap_or_default(),
        last_seen_at: r.text("last_seen_at").unwrap_or_default(),
        resolved_at: r.text("resolved_at"),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OutboxMessage {
    pub id: String,
    pub tenant: String,
    pub job: Option<String>,
    pub execution_id: Option<String>,
    /// `email` or `slack`.
    pub kind: String,
    /// Email: the recipients (a JSON array); Slack: the channel.
    pub recipient: Value,
    pub subject: Option<String>,
    pub body: String,
    /// `[{id, name}]` of attached reports.
    pub attachments: Value,
    /// `held`.
    pub status: String,
    /// Why it is held.
    pub reason: Option<String>,
    pub created_at: String,
}

/// Mail and Slack messages held because no SMTP server or Slack webhook is configured.
#[utoipa::path(get, path = "/outbox", tag = "monitoring", params(super::jobs::ListParams),
    responses((status = 200, body = Listing<OutboxMessage>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn outbox(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<super::jobs::ListParams>,
) -> Result<Json<Listing<OutboxMessage>>, ApiError> {
    let page = requested_page(params.cursor.as_deref(), params.limit, 100)?;
    let rows = crate::store::platform::outbox(&state.db, auth.scope(), &page).await?;
    Ok(Json(Listing::of(
        rows,
        page.limit,
        "created_at",
        outbox_message,
    )))
}

fn outbox_message(r: &JsonRow) -> OutboxMessage {
    OutboxMessage {
        id: r.text("id").unwrap_or_default(),
        tenant: r.text("tenant_id").unwrap_or_default(),
        job: r.text("job"),
        execution_id: r.text("execution_id"),
        kind: r.text("kind").unwrap_or_default(),
        recipient: r
            .json("recipient")
            .filter(Value::is_array)
            .unwrap_or_else(|| Value::String(r.text("recipient").unwrap_or_default())),
        subject: r.text("subject"),
        body: r.text("body").unwrap_or_default(),
        attachments: r.json("attachments").unwrap_or(Value::Array(vec![])),
        status: r.text("status").unwrap_or_default(),
        reason: r.text("reason"),
        created_at: r.text("created_at").unwrap_or_default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

/// Requests answered by this process, by method, route and status. Every label comes from a
/// closed set, so a client cannot make series by sending made-up methods or paths: the method
/// is one of [`method_label`]'s, the route is a template of the router (`/jobs/{id}`) or
/// `unmatched`, the status one of the few this API answers.
#[derive(Default)]
pub(crate) struct HttpMetrics(Mutex<BTreeMap<(&'static str, String, u16), u64>>);

/// The method as a label: the methods this API knows, every other one `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

pub(super) async fn count_requests(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Response {
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    *state
        .metrics
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry((method, route, status))
        .or_default() += 1;
    response
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus metrics: executions by job/status/queue, the duration histogram, retries, queue
/// depth, worker utilisation, active alerts, HTTP requests. The execution figures are totals the
/// database keeps as executions are written, so every process of a deployment reports the same
/// and a scrape costs the same whatever the history (admin token).
#[utoipa::path(get, path = "/metrics", tag = "monitoring",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn metrics(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
) -> Result<Response, ApiError> {
    if !auth.is_admin() {
        return Err(ApiError::not_found("route", "/metrics"));
    }
    let db = &state.db;
    let mut out = String::new();

    out.push_str("# HELP job_executions_total Executions by job, final status and queue.\n");
    out.push_str("# TYPE job_executions_total counter\n");
    for (job, status, queue, n) in execution_store::counts_by_job(db).await? {
        let _ = writeln!(
            out,
            "job_executions_total{{job=\"{}\",status=\"{}\",queue=\"{}\"}} {n}",
            label(&job),
            label(&status),
            label(&queue),
        );
    }

    out.push_str(
        "# HELP job_execution_duration_seconds Wall time of finished executions, by job and job type.\n",
    );
    out.push_str("# TYPE job_execution_duration_seconds histogram\n");
    let bounds = execution_store::DURATION_BOUNDS_MS;
    for d in execution_store::durations(db, &bounds).await? {
        let job = label(&d.job);
        let kind = label(&d.job_type);
        for (ms, n) in bounds.iter().zip(&d.at_most) {
            let b = *ms as f64 / 1000.0;
            let _ = writeln!(
                out,
                "job_execution_duration_seconds_bucket{{job=\"{job}\",job_type=\"{kind}\",le=\"{b}\"}} {n}"
            );
        }
        let n = d.count;
        let _ = writeln!(
            out,
            "job_execution_duration_seconds_bucket{{job=\"{job}\",job_type=\"{kind}\",le=\"+Inf\"}} {n}"
        );
        let total = d.total_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "job_execution_duration_seconds_sum{{job=\"{job}\",job_type=\"{kind}\"}} {total}"
        );
        let _ = writeln!(
            out,
            "job_execution_duration_seconds_count{{job=\"{job}\",job_type=\"{kind}\"}} {n}"
        );
    }

    out.push_str("# HELP job_retries_total Retry attempts (attempts after the first), by job.\n");
    out.push_str("# TYPE job_retries_total counter\n");
    for (job, n) in execution_store::retries_by_job(db).await? {
        let _ = writeln!(out, "job_retries_total{{job=\"{}\"}} {n}", label(&job));
    }

    out.push_str("# HELP queue_depth Tasks per queue and state.\n");
    out.push_str("# TYPE queue_depth gauge\n");
    for (queue, c) in state.queue.counts(Utc::now(), None).await? {
        let q = label(&queue);
        for (st, n) in [
            ("pending", c.pending),
            ("scheduled", c.scheduled),
            ("active", c.active),
        ] {
            let _ = writeln!(out, "queue_depth{{queue=\"{q}\",state=\"{st}\"}} {n}");
        }
    }

    let (total, active) = crate::cluster::slots(&state.queue, &state.pool).await?;
    out.push_str(
        "# HELP workers_total Worker slots of every live worker process.\n# TYPE workers_total gauge\n",
    );
    let _ = writeln!(out, "workers_total {total}");
    out.push_str(
        "# HELP workers_active Worker slots running an execution.\n# TYPE workers_active gauge\n",
    );
    let _ = writeln!(out, "workers_active {active}");
    out.push_str("# HELP workers_idle Worker slots free.\n# TYPE workers_idle gauge\n");
    let _ = writeln!(out, "workers_idle {}", total.saturating_sub(active));
    out.push_str(
        "# HELP worker_utilization Busy slots / all slots.\n# TYPE worker_utilization gauge\n",
    );
    let _ = writeln!(
        out,
        "worker_utilization {}",
        if total == 0 {
            0.0
        } else {
            active as f64 / total as f64
        }
    );

    out.push_str("# HELP alerts_active Active alerts by kind.\n# TYPE alerts_active gauge\n");
    for (kind, n) in alert_store::active_by_kind(db).await? {
        let _ = writeln!(out, "alerts_active{{kind=\"{}\"}} {n}", label(&kind));
    }

    out.push_str(
        "# HELP http_requests_total Requests answered by this process, by method, route and status.\n",
    );
    out.push_str("# TYPE http_requests_total counter\n");
    let requests: Vec<((&str, String, u16), u64)> = state
        .metrics
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    for ((method, route, status), n) in requests {
        let _ = writeln!(
            out,
            "http_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
            label(&route)
        );
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` or `ready`.
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "monitoring",
    responses((status = 200, body = Health)), security(()))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The process can reach its database.
#[utoipa::path(get, path = "/readyz", tag = "monitoring",
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)),
    security(()))]
pub(super) async fn readyz(State(state): State<Arc<ApiState>>) -> Result<Json<Health>, ApiError> {
    let ok = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await;
    match ok {
        Ok(Ok(_)) => Ok(Json(Health {
            status: "ready".into(),
        })),
        _ => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the database does not answer",
        )),
    }
}

pub(super) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

pub(super) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "CodeAI Jobs", description = "Scheduled jobs compiled to WebAssembly: jobs, executions, reports, queues."),
    paths(
        super::jobs::list, super::jobs::get_job, super::jobs::run, super::jobs::pause,
        super::jobs::resume, super::jobs::schedule, super::upload::upload,
        super::upload::delete_job, super::executions::list, super::executions::get_execution,
        super::executions::cancel, super::executions::retry, super::executions::search,
        super::executions::retry_many, super::executions::cancel_many, super::reports::list,
        super::reports::get_report, super::reports::download, super::reports::file,
        queues_status, alerts, outbox, metrics, healthz, readyz, super::dashboard::me,
        super::dashboard::throughput, super::dashboard::schedule_preview,
        super::secrets::put_secret, super::secrets::list_secrets, super::secrets::delete_secret,
        super::events::list,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub(super) struct ApiDoc;

/// The OpenAPI document.
pub(super) async fn openapi_json() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let doc = DOC.get_or_init(|| super::openapi().to_pretty_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], doc.clone()).into_response()
}
