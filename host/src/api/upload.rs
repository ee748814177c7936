//! `POST /jobs` (upload a compiled `.wasm` job) and `DELETE /jobs/{id}`.
//!
//! An upload is checked before anything is stored, and refused with the reason
//! ([`check_component`]): not a component, no or an invalid manifest, an IR version this host
//! does not run, imports outside the `codeai:host` interfaces, a component that does not fit
//! the `job` world, too large, an entity outside the tenant's namespace, a queue the operator
//! does not have, beyond the tenant's
//! quotas ([`crate::quotas`]). A valid upload registers the job for the caller's tenant, or adds
//! a version when the job exists (executions keep the version they ran) and prunes the versions
//! beyond those the tenant keeps. A refused upload leaves nothing: no row, no compiled artifact,
//! no `InstancePre`.

use super::auth::Auth;
use super::error::{ApiError, ErrorBody, PathParams, QueryParams};
use super::jobs::find_job_row;
use super::ApiState;
use crate::caps::JobCaps;
use crate::quotas::{self, Exceeded, QuotaError, Quotas};
use crate::runtime::compile::CompileError;
use crate::runtime::{PreparedJob, RuntimeError};
use crate::store::rows::RowExt;
use crate::store::{self};
use crate::wasm::ManifestError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

/// The interfaces a job may import (`codeai:host/<name>@<version>`).
const ALLOWED_INTERFACES: &[&str] = &[
    "types", "data", "http", "email", "slack", "report", "events", "state", "log", "clock",
    "program", "calls",
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
    /// Older versions of the job pruned by this upload (beyond the versions its tenant keeps,
    /// and used by nothing); their executions keep the version number.
    pub pruned_versions: Vec<i64>,
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
    // The bounds the compiler keeps, again: a manifest can be edited after `codeai build`.
    codeai_ir::limits::check_manifest(&manifest).map_err(|m| ("invalid_manifest", m))?;
    // A manifest can be written by hand: its entities are checked as the compiler checks them
    // (no platform table, nothing outside the tenant's namespace, built-in shapes).
    for entity in &manifest.entities {
        crate::store::entities::check_declaration(entity).map_err(|m| {
            (
                "entity_not_allowed",
                format!("entity `{}` cannot be used: {m}", entity.name),
            )
        })?;
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

/// Checks what the manifest alone decides, before anything is compiled or stored: one line per
/// check (add yours).
fn check_manifest(_state: &ApiState, manifest: &codeai_ir::Manifest) -> Result<(), Refusal> {
    crate::scheduler::fires_of(&manifest.schedule, &manifest.timezone)
        .map_err(|e| ("invalid_manifest", e.to_string()))?;
    // Whatever the schedule: the zone is shown and used when the job is rescheduled.
    if !manifest.timezone.is_empty() && manifest.timezone.parse::<chrono_tz::Tz>().is_err() {
        let zone = &manifest.timezone;
        return Err(("invalid_manifest", format!("unknown timezone `{zone}`")));
    }
    Ok(())
}

/// Upload a compiled job (`codeai build` output): registers it, or adds a version.
///
/// Everything the manifest and the tenant's quotas decide is checked before the component is
/// compiled; when anything fails after, what the compile left (its artifact, its `InstancePre`)
/// is removed unless a stored version has the same component. A new version beyond the versions
/// kept prunes the oldest that nothing uses.
#[utoipa::path(post, path = "/jobs", tag = "jobs", params(UploadParams),
    request_body(description = "A job component built by `codeai build`",
        content((Vec<u8> = "application/wasm"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 201, body = Uploaded, description = "A new job or a new version"),
        (status = 200, body = Uploaded, description = "The same component was there already"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "Larger than the server accepts, or beyond the tenant's storage quota"),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Not a valid job component, or beyond the tenant's job quota")))]
pub(super) async fn upload(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    QueryParams(params): QueryParams<UploadParams>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Uploaded>), ApiError> {
    check_media_type(&headers)?;
    let bytes = check_size(&state, body)?;
    let tenant = auth.acting_tenant(&state, params.tenant).await?;
    let manifest = check_component(&bytes).map_err(refused)?;
    check_origin(&state, &tenant, &bytes, &manifest)?;
    // A tenant's job names a queue the operator has; it sets no weight.
    state
        .queue
        .check_job(&tenant, &manifest)
        .map_err(|e| refused(("unknown_queue", e.to_string())))?;
    check_manifest(&state, &manifest).map_err(refused)?;
    let _one_at_a_time = state.uploads.lock(&tenant).await;
    let quotas = check_quotas(&state, &tenant, &manifest.name, &bytes, 0).await?;
    let job = compile(&state, &tenant, &bytes).await?;
    // The compiled artifact counts towards the storage quota too.
    let artifact = state
        .executor
        .runtime()
        .artifact_size(job.hash())
        .unwrap_or(0);
    if let Err(e) = check_quotas(&state, &tenant, &manifest.name, &bytes, artifact).await {
        discard(&state, job.hash()).await;
        return Err(e);
    }
    let reg = match store_job(&state, &tenant, &job, &bytes, artifact).await {
        Ok(reg) => reg,
        Err(e) => {
            discard(&state, job.hash()).await;
            return Err(e);
        }
    };
    let pruned = prune(&state, &reg, &quotas).await;
    tracing::info!(job = %manifest.name, %tenant, version = reg.version, ?pruned, "job uploaded");
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
            pruned_versions: pruned,
        }),
    ))
}

fn check_media_type(headers: &HeaderMap) -> Result<(), ApiError> {
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
    Ok(())
}

fn check_size(
    state: &ApiState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
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
    Ok(bytes)
}

/// The tenant's quotas, when the upload fits them; `quota_exceeded` (422 for the job quota,
/// 413 for the storage quota) when it does not.
async fn check_quotas(
    state: &ApiState,
    tenant: &str,
    name: &str,
    bytes: &[u8],
    artifact: u64,
) -> Result<Quotas, ApiError> {
    let quotas = state.config.quotas.of_tenant(&state.db, tenant).await?;
    match quotas::check_upload(
        &state.db,
        &state.queue,
        &quotas,
        tenant,
        name,
        bytes,
        artifact,
    )
    .await
    {
        Ok(()) => Ok(quotas),
        Err(e) => Err(quota_refused(e)),
    }
}

fn quota_refused(e: QuotaError) -> ApiError {
    match e {
        QuotaError::Exceeded(e) => {
            let status = match e {
                Exceeded::Jobs { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                Exceeded::Bytes { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            };
            ApiError::new(status, "quota_exceeded", e.to_string())
        }
        QuotaError::Failed(e) => e.into(),
    }
}

/// A tenant's component must be exactly what this host's `codeai build` makes (the guest
/// runtime the host ships and a program), unless the operator allows hand-made components
/// (`CODEAI_TENANT_COMPONENTS=any`). The operator's own uploads are trusted.
fn check_origin(
    state: &ApiState,
    tenant: &str,
    bytes: &[u8],
    manifest: &codeai_ir::Manifest,
) -> Result<(), ApiError> {
    if store::tenants::is_operator(tenant)
        || state.config.tenant_components == super::TenantComponents::Any
        || codeai_dsl::emit::is_this_compilers_build(bytes)
    {
        return Ok(());
    }
    let built_by = if manifest.compiler == env!("CARGO_PKG_VERSION") {
        "it was changed after `codeai build`, or made by hand".to_string()
    } else {
        format!(
            "its manifest names compiler {}, this host's is {}",
            manifest.compiler,
            env!("CARGO_PKG_VERSION")
        )
    };
    Err(refused((
        "hand_made_component",
        format!(
            "this host runs a tenant's component only as its own `codeai build` makes it, and \
             this one is not ({built_by}); build the job with this host's `codeai build`, or ask \
             the operator to allow hand-made components (CODEAI_TENANT_COMPONENTS=any)"
        ),
    )))
}

/// Compiles and links the component in the compile pool, within the compile budget and the
/// tenant's compile quota ([`crate::runtime::compile`]). A component that does not compile or
/// link leaves nothing behind.
async fn compile(
    state: &ApiState,
    tenant: &str,
    bytes: &Bytes,
) -> Result<Arc<PreparedJob<JobCaps>>, ApiError> {
    let prepared = state
        .executor
        .runtime()
        .prepare_budgeted(bytes, Some(tenant))
        .await;
    match prepared {
        Ok(job) => Ok(job),
        Err(e) => {
            // A component that does not link was compiled and written already.
            discard(state, &crate::runtime::cache::sha256(bytes)).await;
            Err(match e {
                RuntimeError::Link(_) => refused(("wrong_world", e.to_string())),
                RuntimeError::Manifest(m) => refused(("invalid_manifest", m.to_string())),
                RuntimeError::Budget(e) => {
                    let status = match e {
                        CompileError::Quota { .. } => StatusCode::TOO_MANY_REQUESTS,
                        _ => StatusCode::UNPROCESSABLE_ENTITY,
                    };
                    ApiError::new(status, e.code(), e.to_string())
                }
                RuntimeError::Cache(crate::runtime::CacheError::Compile(e)) => refused((
                    "malformed_component",
                    format!("the component does not compile: {e:#}"),
                )),
                other => ApiError::internal(other),
            })
        }
    }
}

/// Creates the tables of the job's entities and registers it (a new job or a new version).
async fn store_job(
    state: &ApiState,
    tenant: &str,
    job: &PreparedJob<JobCaps>,
    bytes: &[u8],
    artifact: u64,
) -> Result<crate::app::Registered, ApiError> {
    store::entities::create_entity_tables(&state.db, tenant, &job.manifest().entities)
        .await
        .map_err(|e| refused(("invalid_manifest", e.to_string())))?;
    let reg =
        crate::app::register_prepared(&state.db, &state.scheduler, tenant, job, bytes, Utc::now())
            .await?;
    store::quotas::set_artifact_bytes(&state.db, &reg.job_id, reg.version, artifact).await?;
    Ok(reg)
}

/// Removes what compiling a refused upload left, unless a stored version has the same
/// component.
async fn discard(state: &ApiState, hash: &crate::runtime::Digest) {
    let hex = crate::runtime::cache::hex(hash);
    if let Err(e) = state.job_storage().forget_unstored(&[hex]).await {
        tracing::warn!("removing the compiled component of a refused upload failed: {e:#}");
    }
}

/// Prunes the versions of a job beyond those its tenant keeps; the versions pruned. A failure
/// is logged: the upload is stored, and the next one prunes again.
async fn prune(state: &ApiState, reg: &crate::app::Registered, quotas: &Quotas) -> Vec<i64> {
    if !reg.new_version {
        return Vec::new();
    }
    match state.job_storage().prune(&reg.job_id, quotas).await {
        Ok(pruned) => pruned,
        Err(e) => {
            tracing::warn!(job = %reg.job_id, "pruning old versions failed: {e:#}");
            Vec::new()
        }
    }
}

/// One upload at a time per tenant, from its quota check to its registration, so concurrent
/// uploads cannot together go beyond a quota (within one API process).
#[derive(Default)]
pub(crate) struct UploadLocks(std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>);

impl UploadLocks {
    async fn lock(&self, tenant: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(tenant.to_string())
            .or_default()
            .clone();
        lock.lock_owned().await
    }
}

/// Delete a job: it stops firing, its queued runs are cancelled, its versions and their
/// compiled components are removed (freeing its tenant's storage quota); past executions and
/// reports stay.
#[utoipa::path(delete, path = "/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job's uuid or name")),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn delete_job(
    State(state): State<Arc<ApiState>>,
    auth: Auth,
    PathParams(id): PathParams<String>,
) -> Result<StatusCode, ApiError> {
    let row = find_job_row(&state, &auth, &id).await?;
    let job_id = row.text("id").unwrap_or_default();
    state.jobs().delete(&job_id, Utc::now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
