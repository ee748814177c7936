//! The HTTP API (axum): the spec's endpoints for jobs, executions, reports and queues, upload of
//! compiled jobs, tenants' secrets and tokens, emitted events, OpenAPI, Prometheus metrics, health,
//! alerts and the outbox.
//!
//! - Every request but `/healthz`, `/readyz`, `/openapi.json` and a signed report link carries
//!   `Authorization: Bearer <token>`: the admin token sees everything, a tenant's token only its
//!   tenant's objects. Another tenant's object answers 404, like one that does not exist.
//! - Errors are JSON `{"error": {"code", "message"}}` ([`error::ApiError`]).
//! - Lists are `{"data": [...], "next_cursor": ...}`; pass `cursor` back for the next page.

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod events;
pub mod executions;
pub mod jobs;
pub mod page;
pub mod reports;
pub mod run;
pub mod secrets;
pub mod system;
pub mod upload;

use crate::executor::Executor;
use crate::queue::Queue;
use crate::quotas::{JobStorage, Quotas};
use crate::scheduler::Scheduler;
use crate::store::Database;
use crate::worker::WorkerPool;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// How the API behaves; [`ApiConfig::from_env`] reads it.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// `CODEAI_ADMIN_TOKEN`, kept as its hash.
    pub admin_token_hash: Option<String>,
    /// The largest `.wasm` upload (`CODEAI_MAX_UPLOAD_BYTES`, default 16 MiB).
    pub max_upload: usize,
    /// The largest JSON body (1 MiB).
    pub max_json: usize,
    /// How long a report download link works (`CODEAI_DOWNLOAD_TTL_SECS`, default 900).
    pub download_ttl: Duration,
    /// The URL download links start with (`CODEAI_PUBLIC_URL`; default: from the request's
    /// `Host`).
    pub public_url: Option<String>,
    /// The upload quotas of a tenant without its own (`CODEAI_TENANT_MAX_JOBS`,
    /// `CODEAI_TENANT_MAX_VERSIONS`, `CODEAI_TENANT_MAX_BYTES`; default 100 jobs, 10 versions
    /// kept, 256 MiB).
    pub quotas: Quotas,
    /// Which components a tenant may upload (`CODEAI_TENANT_COMPONENTS`, default `codeai`).
    pub tenant_components: TenantComponents,
}

/// Which components a tenant (not the operator) may upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantComponents {
    /// Only components exactly as this host's `codeai build` makes them: the guest runtime the
    /// host ships and a program, nothing else (`codeai`, the default).
    #[default]
    Codeai,
    /// Any component that passes the upload checks, hand-made ones included (`any`): they are
    /// compiled within the compile budget.
    Any,
}

impl TenantComponents {
    pub fn parse(value: &str) -> Result<TenantComponents, String> {
        match value.trim() {
            "" | "codeai" => Ok(TenantComponents::Codeai),
            "any" => Ok(TenantComponents::Any),
            other => Err(format!(
                "CODEAI_TENANT_COMPONENTS=`{other}`: expected `codeai` or `any`"
            )),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> ApiConfig {
        ApiConfig {
            admin_token_hash: None,
            max_upload: 16 << 20,
            max_json: 1 << 20,
            download_ttl: Duration::from_secs(900),
            public_url: None,
            quotas: Quotas::default(),
            tenant_components: TenantComponents::default(),
        }
    }
}

impl ApiConfig {
    pub fn from_env() -> Result<ApiConfig, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            Ok(crate::envvar::positive(name)?.unwrap_or(default))
        };
        Ok(ApiConfig {
            admin_token_hash: std::env::var("CODEAI_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.trim().is_empty())
                .map(|t| crate::store::tenants::token_hash(t.trim())),
            max_upload: usize::try_from(number("CODEAI_MAX_UPLOAD_BYTES", 16 << 20)?)
                .unwrap_or(usize::MAX),
            max_json: 1 << 20,
            download_ttl: Duration::from_secs(number("CODEAI_DOWNLOAD_TTL_SECS", 900)?),
            public_url: std::env::var("CODEAI_PUBLIC_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
                .map(|u| u.trim().trim_end_matches('/').to_string()),
            quotas: Quotas::from_env()?,
            tenant_components: TenantComponents::parse(
                &std::env::var("CODEAI_TENANT_COMPONENTS").unwrap_or_default(),
            )?,
        })
    }
}

/// What the handlers share.
pub struct ApiState {
    pub db: Database,
    pub executor: Arc<Executor>,
    pub queue: Arc<Queue>,
    pub scheduler: Arc<Scheduler>,
    /// The worker pool of this process (cancel, utilisation).
    pub pool: Arc<WorkerPool>,
    pub config: ApiConfig,
    /// Signs report download links (kept in `settings`, shared by every process).
    pub signing_key: Vec<u8>,
    pub(crate) tokens: auth::TokenCache,
    pub(crate) metrics: system::HttpMetrics,
    /// One upload at a time per tenant, from its quota check to its registration.
    pub(crate) uploads: upload::UploadLocks,
}

impl ApiState {
    pub async fn new(
        db: Database,
        executor: Arc<Executor>,
        queue: Arc<Queue>,
        scheduler: Arc<Scheduler>,
        pool: Arc<WorkerPool>,
        config: ApiConfig,
    ) -> anyhow::Result<Arc<ApiState>> {
        let signing_key = crate::store::reports::signing_key(&db).await?;
        Ok(Arc::new(ApiState {
            db,
            executor,
            queue,
            scheduler,
            pool,
            config,
            signing_key,
            tokens: auth::TokenCache::default(),
            metrics: system::HttpMetrics::default(),
            uploads: upload::UploadLocks::default(),
        }))
    }

    /// What holds the jobs' versions, for pruning and deleting them.
    /// The jobs' use cases ([`crate::domain::jobs`]).
    pub fn jobs(&self) -> crate::domain::jobs::Jobs<'_> {
        crate::domain::jobs::Jobs {
            db: &self.db,
            queue: &self.queue,
            scheduler: &self.scheduler,
            storage: self.job_storage(),
        }
    }

    pub fn job_storage(&self) -> JobStorage<'_> {
        JobStorage {
            db: &self.db,
            queue: &self.queue,
            executor: &self.executor,
            pool: &self.pool,
        }
    }
}

/// Every route.
pub fn router(state: Arc<ApiState>) -> Router {
    let upload_limit = state.config.max_upload;
    let json_limit = state.config.max_json;
    let uploads = Router::new()
        .route("/jobs", post(upload::upload).get(jobs::list))
        .layer(DefaultBodyLimit::max(upload_limit));
    Router::new()
        .route("/jobs/{id}", get(jobs::get_job).delete(upload::delete_job))
        .route("/jobs/{id}/run", post(jobs::run))
        .route("/jobs/{id}/pause", post(jobs::pause))
        .route("/jobs/{id}/resume", post(jobs::resume))
        .route("/jobs/{id}/schedule", put(jobs::schedule))
        .route("/jobs/{id}/executions", get(executions::list))
        .route("/executions", get(executions::search))
        .route("/executions/retry", post(executions::retry_many))
        .route("/executions/cancel", post(executions::cancel_many))
        .route("/executions/{id}", get(executions::get_execution))
        .route("/executions/{id}/cancel", post(executions::cancel))
        .route("/executions/{id}/retry", post(executions::retry))
        .route("/events", get(events::list))
        .route("/reports", get(reports::list))
        .route("/reports/{id}", get(reports::get_report))
        .route("/reports/{id}/download", get(reports::download))
        .route("/files/reports/{id}", get(reports::file))
        .route("/secrets", get(secrets::list_secrets))
        .route(
            "/secrets/{name}",
            put(secrets::put_secret).delete(secrets::delete_secret),
        )
        .route("/queues/status", get(system::queues_status))
        .route("/alerts", get(system::alerts))
        .route("/outbox", get(system::outbox))
        .route("/metrics", get(system::metrics))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi_json))
        .route("/me", get(dashboard::me))
        .route("/stats/throughput", get(dashboard::throughput))
        .route("/schedule/preview", get(dashboard::schedule_preview))
        .route("/", get(dashboard::root))
        .route("/ui", get(dashboard::root))
        .route("/ui/", get(dashboard::index))
        .route("/ui/app.js", get(dashboard::app_js))
        .route("/ui/app.css", get(dashboard::app_css))
        .route("/ui/favicon.svg", get(dashboard::favicon))
        .layer(DefaultBodyLimit::max(json_limit))
        .merge(uploads)
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            system::count_requests,
        ))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The OpenAPI document, generated from the handlers and their types.
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi as _;
    system::ApiDoc::openapi()
}
