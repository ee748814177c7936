//! `GET /events`: the events jobs emitted (`emit:` steps, `on_complete` / `on_fail`), newest
//! first, filtered by `type` (the event's name), `job` (the emitting job's name) and `since` (an
//! RFC 3339 instant), paged with `cursor`. A tenant's token lists its tenant's events only; the
//! admin's lists every tenant's.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, QueryParams};
use super::page::{requested_page, Listing};
use super::ApiState;
use crate::store::events::{self as store, EventFilter};
use crate::store::rows::{JsonRow, RowExt};
use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// An emitted event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventInfo {
    pub id: String,
    pub tenant: String,
    /// The event's name, as declared (`JobCompleted`, `InventorySynced`, …).
    #[serde(rename = "type")]
    #[schema(rename = "type")]
    pub event_type: String,
    /// The job that emitted it.
    pub job: Option<String>,
    /// The execution that emitted it.
    pub execution_id: Option<String>,
    /// What the job put in it (a JSON object).
    pub data: Value,
    pub created_at: String,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// Only events of this name, e.g. `JobCompleted`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// Only events emitted by the job of this name.
    pub job: Option<String>,
    /// Only events emitted at or after this instant (RFC 3339, e.g. `2026-01-12T00:00:00Z`).
    pub since: Option<String>,
    /// At most this many (1–500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// From a previous page's `next_cursor` (with the same filters).
    pub cursor: Option<String>,
}

fn event(r: &JsonRow) -> EventInfo {
    EventInfo {
        id: r.text("id").unwrap_or_default(),
        tenant: r.text("tenant_id").unwrap_or_default(),
        event_type: r.text("name").unwrap_or_default(),
        job: r.text("job"),
        execution_id: r.text("execution_id"),
        data: r.json("payload").unwrap_or(Value::Null),
        created_at: r.text("created_at").unwrap_or_default(),
    }
}

/// A filter given, or `None` for an absent or empty one.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// List emitted events, newest first.
#[utoipa::path(get, path = "/events", tag = "events", params(EventParams),
    responses((status = 200, body = Listing<EventInfo>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<EventParams>,
) -> Result<Json<Listing<EventInfo>>, ApiError> {
    let page = requested_page(params.cursor.as_deref(), params.limit, 100)?;
    let since = given(&params.since)
        .map(|s| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_query",
                        format!("since `{s}` is not an RFC 3339 instant: {e}"),
                    )
                })
        })
        .transpose()?;
    let filter = EventFilter {
        name: given(&params.event_type),
        job: given(&params.job),
        since,
    };
    let rows = store::list(&state.db, auth.scope(), &filter, &page).await?;
    Ok(Json(Listing::of(rows, page.limit, "created_at", event)))
}
