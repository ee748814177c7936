//! `/reports`: rendered reports and signed, expiring download links.
//!
//! A link is `/files/reports/{id}?expires=<unix seconds>&signature=<hex HMAC-SHA256>` over
//! `"{id}:{expires}"` with the host's signing key (kept in `settings`, made at first start, so
//! every process of a deployment accepts the links of the others). It needs no token and
//! serves the file until `expires`.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, PathParams, QueryParams};
use super::jobs::ListParams;
use super::page::{requested_page, Listing};
use super::ApiState;
use crate::store::reports as store;
use crate::store::rows::{JsonRow, RowExt};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportInfo {
    pub id: String,
    /// The job that rendered it.
    pub job: String,
    pub execution_id: Option<String>,
    /// `pdf`, `csv` or `html`.
    pub format: String,
    pub size: i64,
    pub name: Option<String>,
    pub created_at: String,
    /// After this the report is gone.
    pub expires_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DownloadLink {
    /// Serves the file, without a token, until `expires_at`.
    pub download_url: String,
    pub expires_at: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FileParams {
    /// Unix seconds, from the download link.
    pub expires: Option<i64>,
    /// From the download link.
    pub signature: Option<String>,
}

fn info(r: &JsonRow) -> ReportInfo {
    ReportInfo {
        id: r.text("id").unwrap_or_default(),
        job: r.text("job").unwrap_or_default(),
        execution_id: r.text("execution_id"),
        format: r.text("format").unwrap_or_default(),
        size: r.int("size").unwrap_or(0),
        name: r.text("name"),
        created_at: r.text("created_at").unwrap_or_default(),
        expires_at: r.text("expires_at"),
    }
}

fn sign(key: &[u8], id: &str, expires: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}:{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn verify(key: &[u8], id: &str, expires: i64, signature: &str) -> bool {
    let Ok(given) = hex::decode(signature) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{id}:{expires}").as_bytes());
    mac.verify_slice(&given).is_ok()
}

/// List reports, newest first.
#[utoipa::path(get, path = "/reports", tag = "reports", params(ListParams),
    responses((status = 200, body = Listing<ReportInfo>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody)))]
pub(super) async fn list(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<Listing<ReportInfo>>, ApiError> {
    let page = requested_page(params.cursor.as_deref(), params.limit, 100)?;
    let rows = store::list(&state.db, auth.scope(), &page).await?;
    Ok(Json(Listing::of(rows, page.limit, "created_at", info)))
}

async fn find(state: &ApiState, auth: &Auth, id: &str) -> Result<JsonRow, ApiError> {
    let uuid = Uuid::parse_str(id).map_err(|_| ApiError::not_found("report", id))?;
    store::get(&state.db, uuid, auth.scope())
        .await?
        .ok_or_else(|| ApiError::not_found("report", id))
}

/// Get a report's details.
#[utoipa::path(get, path = "/reports/{id}", tag = "reports",
    params(("id" = String, Path, description = "The report's uuid")),
    responses((status = 200, body = ReportInfo), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn get_report(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<Json<ReportInfo>, ApiError> {
    Ok(Json(info(&find(&state, &auth, &id).await?)))
}

/// Get a download URL for a report; it expires.
#[utoipa::path(get, path = "/reports/{id}/download", tag = "reports",
    params(("id" = String, Path, description = "The report's uuid")),
    responses((status = 200, body = DownloadLink), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 410, body = ErrorBody)))]
pub(super) async fn download(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    headers: HeaderMap,
    PathParams(id): PathParams<String>,
) -> Result<Json<DownloadLink>, ApiError> {
    let row = find(&state, &auth, &id).await?;
    let now = Utc::now();
    if row.time("expires_at").is_some_and(|t| t <= now) {
        return Err(ApiError::new(
            StatusCode::GONE,
            "expired",
            "the report has expired and is no longer kept",
        ));
    }
    let ttl = chrono::Duration::from_std(state.config.download_ttl).unwrap_or_default();
    let mut expires_at = now + ttl;
    if let Some(end) = row.time("expires_at") {
        expires_at = expires_at.min(end);
    }
    let expires = expires_at.timestamp();
    let report_id = row.text("id").unwrap_or_default();
    let base = match &state.config.public_url {
        Some(url) => url.clone(),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    Ok(Json(DownloadLink {
        download_url: format!(
            "{base}/files/reports/{report_id}?expires={expires}&signature={}",
            sign(&state.signing_key, &report_id, expires)
        ),
        expires_at: crate::store::sql::datetime_text(
            &chrono::DateTime::from_timestamp(expires, 0).unwrap_or(expires_at),
        ),
    }))
}

fn forbidden(code: &'static str, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// The file behind a signed download link.
#[utoipa::path(get, path = "/files/reports/{id}", tag = "reports",
    params(("id" = String, Path, description = "The report's uuid"), FileParams),
    responses((status = 200, description = "The report file", content_type = "application/octet-stream"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(()))]
pub(super) async fn file(
    State(state): State<Arc<ApiState>>,
    PathParams(id): PathParams<String>,
    QueryParams(params): QueryParams<FileParams>,
) -> Result<Response, ApiError> {
    let (Some(expires), Some(signature)) = (params.expires, params.signature.as_deref()) else {
        return Err(forbidden("bad_signature", "the link is incomplete"));
    };
    if !verify(&state.signing_key, &id, expires, signature) {
        return Err(forbidden(
            "bad_signature",
            "the link's signature does not match",
        ));
    }
    if Utc::now().timestamp() >= expires {
        return Err(forbidden(
            "link_expired",
            "the download link has expired; ask for a new one",
        ));
    }
    let uuid = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("report", &id))?;
    let row = store::get(&state.db, uuid, None)
        .await?
        .ok_or_else(|| ApiError::not_found("report", &id))?;
    // The file's path is computed from the report's identity under the report directory,
    // never taken from the row.
    let format = row.text("format").unwrap_or_default();
    let path = crate::store::platform::report_path(
        &state.executor.services().config().report_dir,
        &row.text("tenant_id").unwrap_or_default(),
        uuid,
        &format,
    )
    .ok_or_else(|| ApiError::not_found("report file", &id))?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found("report file", &id))?;
    let content_type = match format.as_str() {
        "pdf" => "application/pdf",
        "csv" => "text/csv; charset=utf-8",
        "html" => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    };
    let name = row
        .text("name")
        .unwrap_or_else(|| format!("report.{format}"))
        .replace(['"', '\\', '\r', '\n'], "_");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
            (header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        bytes,
    )
        .into_response())
}
