//! `POST /jobs` (upload a compiled `.wasm` job) and `DELETE /jobs/{id}`.
//!
//! An upload is checked before anything is stored, and refused with the reason
//! ([`check_component`]): not a component, no or an invalid manifest, an IR version this host
//! does not run, imports outside the `codeai:host` interfaces, a component that does not fit
//! the `job` world, too large. A valid upload registers the job for the caller's tenant, or
//! adds a version when the job exists (executions keep the version they ran).

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, P, Q};
use super::jobs::find_job_row;
use super::ApiState;
use crate::runtime::RuntimeError;
use crate::store::rows::{execute, RowExt};
use crate::store::sql::{stmt, Param};
use crate::store::{self, platform as pstore};
use crate::wasm::ManifestError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The interfaces a job may import (`codeai:host/<name>@<version>`).
const ALLOWED_INTERFACES: &[&str] = &[
    "types", "data", "http", "email", "slack", "report", "events", "state", "log", "clock",
];

#[derive(Debug, Serialize, ToSchema)]
pub struct Uploaded {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub version: i64,
    /// False when the same component was uploaded already (nothing changed).
    pub new_version: bool,
    pub next_run_at: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadParams {
    /// The tenant to register for (admin token only; default `default`).
    pub tenant: Option<String>,
}

/// Why an upload is refused: `(code, message)`.
pub type Refusal = (&'static str, String);

/// Checks what can be checked without compiling: the manifest and the imports.
pub fn check_component(bytes: &[u8]) -> Result<codeai_ir::Manifest, Refusal> {
    let manifest = crate::wasm::read_manifest(bytes).map_err(|e| match e {
        ManifestError::NotAComponent => ("not_a_component", e.to_string()),
        ManifestError::Malformed(_) => ("malformed_component", e.to_string()),
        ManifestError::Invalid(m) if m.contains("IR version") => ("wrong_ir_version", m),
        other => ("invalid_manifest", other.to_string()),
    })?;
    if manifest.name.trim().is_empty() {
        return Err(("invalid_manifest", "the manifest names no job".into()));
    }
    let mut outside = Vec::new();
    let mut depth = 0usize;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| ("malformed_component", e.to_string()))?;
        match payload {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) => depth = depth.saturating_sub(1),
            wasmparser::Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let import = import.map_err(|e| ("malformed_component", e.to_string()))?;
                    // Type imports name types of the allowed interfaces; they carry no code.
                    if matches!(import.ty, wasmparser::ComponentTypeRef::Type(_)) {
                        continue;
                    }
                    let name = import.name.name;
                    let allowed = name
                        .strip_prefix("codeai:host/")
                        .map(|rest| rest.split('@').next().unwrap_or(rest))
                        .is_some_and(|iface| ALLOWED_INTERFACES.contains(&iface));
                    if !allowed {
                        outside.push(name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    if !outside.is_empty() {
        return Err((
            "imports_not_allowed",
            format!(
                "the component imports {} outside the allowed `codeai:host` interfaces",
                outside
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(manifest)
}

fn refused((code, message): Refusal) -> ApiError {
    ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
}

/// Upload a compiled job (`codeai build` output): registers it, or adds a version.
#[utoipa::path(post, path = "/jobs", tag = "jobs", params(UploadParams),
    request_body(description = "A job component built by `codeai build`",
        content((Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, body = Uploaded, description = "A new job or a new version"),
        (status = 200, body = Uploaded, description = "The same component was there already"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn upload(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    Q(params): Q<UploadParams>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/wasm")
        && !content_type.starts_with("application/octet-stream")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the component as `Content-Type: application/wasm`",
        ));
    }
    let bytes = body.map_err(|e| {
        let mut err: ApiError = e.into();
        if err.status == StatusCode::PAYLOAD_TOO_LARGE {
            err.message = format!(
                "the component is larger than this server accepts ({} bytes; \
                 CODEAI_MAX_UPLOAD_BYTES)",
                state.config.max_upload
            );
        }
        err
    })?;
    if bytes.len() > state.config.max_upload {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the component is {} bytes; this server accepts {} (CODEAI_MAX_UPLOAD_BYTES)",
                bytes.len(),
                state.config.max_upload
            ),
        ));
    }
    let tenant = match (auth.scope(), params.tenant) {
        (Some(t), None) => t.to_string(),
        (Some(t), Some(asked)) if asked == t => asked,
        (Some(_), Some(asked)) => return Err(ApiError::not_found("tenant", &asked)),
        (None, asked) => {
            let asked = asked.unwrap_or_else(|| pstore::DEFAULT_TENANT.to_string());
            if store::tenants::tenant(&state.db, &asked).await?.is_none() {
                return Err(ApiError::not_found("tenant", &asked));
            }
            asked
        }
    };
    let declared = check_component(&bytes).map_err(refused)?;
    state
        .queue
        .check_job(&tenant, &declared)
        .map_err(|e| refused(("unknown_queue", e.to_string())))?;
    // Compiling takes a while: off the async threads.
    let executor = state.executor.clone();
    let owned = bytes.clone();
    let job = tokio::task::spawn_blocking(move || executor.runtime().prepare(&owned))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| match e {
            RuntimeError::Link(_) => refused(("wrong_world", e.to_string())),
            RuntimeError::Manifest(m) => refused(("invalid_manifest", m.to_string())),
            other => ApiError::internal(other),
        })?;
    let manifest = job.manifest_arc();
    if let Err(e) = crate::scheduler::fires_of(&manifest.schedule, &manifest.timezone) {
        return Err(refused(("invalid_manifest", e.to_string())));
    }
    store::entities::create_entity_tables(&state.db, &manifest.entities)
        .await
        .map_err(|e| refused(("invalid_manifest", e.to_string())))?;
    let reg = crate::app::register_prepared(
        &state.db,
        &state.scheduler,
        &tenant,
        &job,
        &bytes,
        Utc::now(),
    )
    .await?;
    tracing::info!(job = %manifest.name, %tenant, version = reg.version, "job uploaded");
    Ok((
        if reg.new_version {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(Uploaded {
            id: reg.job_id,
            name: manifest.name.clone(),
            tenant,
            version: reg.version,
            new_version: reg.new_version,
            next_run_at: reg
                .next_run_at
                .map(|t| crate::store::sql::datetime_text(&t)),
        }),
    ))
}

/// Delete a job: it stops firing, its queued runs are cancelled; past executions and reports
/// stay.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub(super) async fn delete_job(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    P(id): P<String>,
) -> Result<StatusCode, ApiError> {
    let row = find_job_row(&state, &auth, &id).await?;
    let job_id = row.text("id").unwrap_or_default();
    state.scheduler.remove(&job_id);
    let now = Utc::now();
    state.queue.cancel_job(&job_id).await?;
    execute(
        &state.db,
        &stmt(
            "UPDATE job_executions SET status = 'cancelled', error = 'job deleted', finished_at = ? \
             WHERE job_id = ? AND status = 'pending'",
            vec![Param::DateTime(now), Param::Text(job_id.clone())],
        ),
    )
    .await?;
    execute(
        &state.db,
        &stmt(
            "DELETE FROM job_versions WHERE job_id = ?",
            vec![Param::Text(job_id.clone())],
        ),
    )
    .await?;
    execute(
        &state.db,
        &stmt("DELETE FROM jobs WHERE id = ?", vec![Param::Text(job_id)]),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
