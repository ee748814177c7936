//! The web dashboard and the few read-only endpoints written for it.
//!
//! The dashboard is a static page (`host/dashboard/`: one HTML file, one script, one stylesheet)
//! compiled into the binary and served under `/ui/`. It holds no secret and asks the server for
//! nothing the public API does not give: the visitor pastes a token, the page keeps it in the
//! browser and calls the API with `Authorization: Bearer`, so an admin sees everything and a
//! tenant only its own jobs.
//!
//! Endpoints it needs beyond the spec's, documented in the OpenAPI like the others:
//! `GET /me` (whom the token speaks for), `GET /stats/throughput` (finished executions per
//! minute, for the overview's chart) and `GET /schedule/preview` (a cron expression's next fire
//! times in a timezone, for the schedule editor's live preview).

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, QueryParams};
use super::ApiState;
use crate::store::ExecutionStatus;
use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use chrono::{DateTime, Duration, DurationRound, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

// ---------------------------------------------------------------------------------------------
// Static assets
// ---------------------------------------------------------------------------------------------

const INDEX_HTML: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../dashboard/app.css");
const FAVICON: &str = include_str!("../../dashboard/favicon.svg");

/// Only the page's own files and API; no inline script, nothing from elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files that change with the binary: revalidate, never serve a stale one.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `/` → the dashboard.
pub(super) async fn root() -> Redirect {
    Redirect::temporary("/ui/")
}

pub(super) async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

pub(super) async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub(super) async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

pub(super) async fn favicon() -> Response {
    asset("image/svg+xml", FAVICON)
}

// ---------------------------------------------------------------------------------------------
// GET /me
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `admin` or `tenant`.
    pub role: String,
    /// The tenant a tenant token speaks for; absent for the admin.
    pub tenant: Option<String>,
}

/// Whom the token speaks for.
#[utoipa::path(get, path = "/me", tag = "monitoring",
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub(super) async fn me(auth: Auth) -> Json<Me> {
    Json(Me {
        role: if auth.is_admin() { "admin" } else { "tenant" }.to_string(),
        tenant: auth.scope().map(str::to_string),
    })
}

// ---------------------------------------------------------------------------------------------
// GET /stats/throughput
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThroughputParams {
    /// How far back, in minutes (1–1440, default 60).
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ThroughputBucket {
    /// The minute's start (UTC, RFC 3339).
    pub at: String,
    /// Executions that ended `completed` or `skipped` in that minute.
    pub completed: u64,
    /// Executions that ended in a failure (`failed`, `timed_out`, `fuel_exhausted`,
    /// `memory_exceeded`, `trapped`) in that minute.
    pub failed: u64,
    /// Executions cancelled in that minute.
    pub cancelled: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Throughput {
    pub bucket_seconds: u32,
    /// One bucket per minute, oldest first, the current minute last (empty minutes included).
    pub data: Vec<ThroughputBucket>,
}

/// Finished executions per minute over the last hour (or `minutes`), for a chart. A tenant's
/// token counts its own.
#[utoipa::path(get, path = "/stats/throughput", tag = "monitoring", params(ThroughputParams),
    responses((status = 200, body = Throughput), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn throughput(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<ThroughputParams>,
) -> Result<Json<Throughput>, ApiError> {
    let minutes = match params.minutes {
        None => 60,
        Some(n) if (1..=1440).contains(&n) => n,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("minutes {n} is outside 1..=1440"),
            ))
        }
    };
    let now = Utc::now();
    let this_minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    let from = this_minute - Duration::minutes(minutes - 1);
    let rows = crate::store::executions::finished_by_minute(&state.db, from, auth.scope()).await?;
    let mut by_minute: HashMap<String, ThroughputBucket> = HashMap::new();
    for (minute, status, n) in rows {
        let n = n.max(0) as u64;
        let bucket = by_minute.entry(minute).or_default();
        match status.parse::<ExecutionStatus>() {
            Ok(s) if s.is_success() => bucket.completed += n,
            Ok(ExecutionStatus::Cancelled) => bucket.cancelled += n,
            Ok(s) if s.is_failure() => bucket.failed += n,
            // Still running or waiting for a retry: not finished.
            _ => {}
        }
    }
    let data = (0..minutes)
        .map(|i| {
            let at: DateTime<Utc> = from + Duration::minutes(i);
            let key = at.format("%Y-%m-%dT%H:%M").to_string();
            let mut bucket = by_minute.remove(&key).unwrap_or_default();
            bucket.at = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            bucket
        })
        .collect();
    Ok(Json(Throughput {
        bucket_seconds: 60,
        data,
    }))
}

// ---------------------------------------------------------------------------------------------
// GET /schedule/preview
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PreviewParams {
    /// A cron expression (5 fields).
    pub cron_expression: String,
    /// An IANA timezone (default UTC).
    pub timezone: Option<String>,
    /// How many fire times (1–50, default 5).
    #[param(minimum = 1, maximum = 50)]
    pub count: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FireTime {
    /// UTC, RFC 3339.
    pub at: String,
    /// The same instant in the schedule's timezone, RFC 3339 with its offset.
    pub local: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SchedulePreview {
    pub cron_expression: String,
    pub timezone: String,
    /// Whether the expression and the zone can be used; when not, `error` says why and `next`
    /// is empty.
    pub valid: bool,
    /// Why the schedule cannot be used (what `PUT /jobs/{id}/schedule` would answer with 422).
    pub error: Option<String>,
    /// The expression in words: `at 06:00 every day`.
    pub description: Option<String>,
    pub next: Vec<FireTime>,
}

/// The next fire times of a cron expression in a timezone, without changing anything: what
/// `PUT /jobs/{id}/schedule` would do. A schedule being typed is often not valid yet, so an
/// invalid expression or zone is a 200 with `valid: false` and the reason, not an error.
#[utoipa::path(get, path = "/schedule/preview", tag = "jobs", params(PreviewParams),
    responses((status = 200, body = SchedulePreview), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn schedule_preview(
    _auth: Auth,
    QueryParams(params): QueryParams<PreviewParams>,
) -> Result<Json<SchedulePreview>, ApiError> {
    let count = match params.count {
        None => 5,
        Some(n) if (1..=50).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("count {n} is outside 1..=50"),
            ))
        }
    };
    let timezone = params
        .timezone
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| "UTC".to_string());
    let parsed = timezone
        .parse::<Tz>()
        .map_err(|_| format!("`{timezone}` is not an IANA timezone"))
        .and_then(|tz| {
            codeai_cron::CronExpr::parse(&params.cron_expression)
                .map(|expr| (tz, expr))
                .map_err(|e| format!("`{}`: {e}", params.cron_expression))
        });
    let mut preview = SchedulePreview {
        cron_expression: params.cron_expression.clone(),
        timezone,
        valid: false,
        error: None,
        description: None,
        next: vec![],
    };
    match parsed {
        Ok((tz, expr)) => {
            preview.valid = true;
            preview.description = Some(expr.describe());
            preview.next = expr
                .iter_after(Utc::now(), tz)
                .take(count)
                .map(|at| FireTime {
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    local: at
                        .with_timezone(&tz)
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
                })
                .collect();
        }
        Err(e) => preview.error = Some(e),
    }
    Ok(Json(preview))
}
