//! Everything one host process runs, put together: store, runtime, queue, scheduler, worker
//! pool, lease reaper, alerts and the HTTP API. `codeai host run` uses it, and so do the tests
//! that need a whole host.

use crate::alerts::{run_alerts, AlertConfig, Alerts};
use crate::api::{self, ApiConfig, ApiState};
use crate::caps::platform::{Platform, PlatformConfig};
use crate::executor::Executor;
use crate::queue::{QueueConfig, SqlQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scheduler::{MisfirePolicy, Scheduler};
use crate::store::rows::{fetch_all, RowExt};
use crate::store::sql::stmt;
use crate::store::{self, platform as pstore, Database};
use crate::worker::{run_reaper, run_scheduler, PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use codeai_ir::Manifest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How a host runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub runtime: RuntimeConfig,
    pub platform: PlatformConfig,
    pub queue: QueueConfig,
    pub pool: PoolConfig,
    pub misfire: MisfirePolicy,
    pub api: ApiConfig,
    pub alerts: AlertConfig,
    /// How often expired leases are rescued (default 1 s).
    pub reap_every: Duration,
}

/// A job registered at start.
#[derive(Debug, Clone)]
pub struct Registered {
    pub manifest: Arc<Manifest>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub job_id: String,
    pub version: i64,
}

/// A running host.
pub struct Host {
    pub db: Database,
    pub executor: Arc<Executor>,
    pub queue: Arc<SqlQueue>,
    pub scheduler: Arc<Scheduler>,
    pub pool: Arc<WorkerPool>,
    pub api: Arc<ApiState>,
    pub alerts: Arc<Alerts>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<std::io::Result<()>>,
    )>,
    config: HostConfig,
}

impl Host {
    /// Migrates the database and builds every part; nothing runs until [`Host::start`].
    /// Jobs registered earlier (built or uploaded) are loaded into the scheduler.
    pub async fn new(db: Database, config: HostConfig) -> anyhow::Result<Host> {
        store::migrate::migrate_up(&db)
            .await
            .context("applying the migrations failed")?;
        let runtime = Runtime::new(config.runtime.clone())?;
        let platform = Platform::new(db.clone(), config.platform.clone());
        let executor = Arc::new(Executor::new(runtime, platform.clone()));
        let queue = Arc::new(SqlQueue::new(db.clone(), config.queue.clone()));
        let scheduler = Arc::new(Scheduler::new(queue.clone(), config.misfire));
        let pool = WorkerPool::new(queue.clone(), executor.clone(), config.pool.clone());
        let api = ApiState::new(
            db.clone(),
            executor.clone(),
            queue.clone(),
            scheduler.clone(),
            pool.clone(),
            config.api.clone(),
        )
        .await?;
        let alerts = Arc::new(Alerts::new(
            platform,
            queue.clone(),
            pool.clone(),
            config.alerts.clone(),
        ));
        let host = Host {
            db,
            executor,
            queue,
            scheduler,
            pool,
            api,
            alerts,
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            server: None,
            config,
        };
        host.load_registered().await?;
        Ok(host)
    }

    /// Puts every job of the store into the scheduler with its latest version.
    async fn load_registered(&self) -> anyhow::Result<()> {
        let rows = fetch_all(
            &self.db,
            &stmt(
                "SELECT j.id, j.tenant_id, j.version, v.manifest FROM jobs j \
                 JOIN job_versions v ON v.job_id = j.id AND v.version = j.version",
                vec![],
            ),
        )
        .await?;
        let now = Utc::now();
        for r in rows {
            let id = r.text("id").unwrap_or_default();
            let manifest: Manifest = match serde_json::from_str(
                &r.text("manifest").unwrap_or_default(),
            ) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(job = %id, "stored manifest unreadable, job not scheduled: {e}");
                    continue;
                }
            };
            let tenant = r.text("tenant_id").unwrap_or_default();
            let version = r.int("version").unwrap_or(1);
            if let Err(e) = self
                .scheduler
                .add(&id, &tenant, version, Arc::new(manifest), now)
                .await
            {
                tracing::warn!(job = %id, "job not scheduled: {e:#}");
            }
        }
        Ok(())
    }

    /// Registers components for `tenant` (a changed component becomes a new version), creates
    /// the tables of their entities, and schedules them.
    pub async fn register(
        &self,
        tenant: &str,
        components: &[(String, Vec<u8>)],
    ) -> anyhow::Result<Vec<Registered>> {
        let now = Utc::now();
        let mut out = Vec::new();
        let mut entities: Vec<codeai_ir::EntityDecl> = Vec::new();
        for (file, bytes) in components {
            let job = self
                .executor
                .runtime()
                .prepare(bytes)
                .with_context(|| format!("`{file}` cannot run"))?;
            let manifest = job.manifest_arc();
            for e in &manifest.entities {
                if !entities.iter().any(|x| x.table == e.table) {
                    entities.push(e.clone());
                }
            }
            let hash = crate::runtime::cache::hex(job.hash());
            let reg = pstore::register_job(&self.db, tenant, &manifest, bytes, &hash).await?;
            let scheduled = self
                .scheduler
                .add(&reg.job_id, tenant, reg.version, manifest.clone(), now)
                .await
                .with_context(|| format!("job `{}`", manifest.name))?;
            out.push(Registered {
                manifest,
                next_run_at: scheduled.next_run_at,
                job_id: reg.job_id,
                version: reg.version,
            });
        }
        store::entities::create_entity_tables(&self.db, &entities).await?;
        Ok(out)
    }

    /// Starts the workers, the scheduler, the reaper and the alerts.
    pub fn start(&mut self) {
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(self.pool.clone().run()));
        self.tasks.push(tokio::spawn(run_scheduler(
            self.scheduler.clone(),
            self.pool.clone(),
            stop.clone(),
        )));
        self.tasks.push(tokio::spawn(run_reaper(
            self.queue.clone(),
            self.config.reap_every,
            stop.clone(),
        )));
        self.tasks
            .push(tokio::spawn(run_alerts(self.alerts.clone(), stop)));
    }

    /// Serves the HTTP API on `listener` (until [`Host::shutdown`]).
    pub fn serve(&mut self, listener: tokio::net::TcpListener) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let state = self.api.clone();
        let handle = tokio::spawn(api::serve(listener, state, async {
            let _ = rx.await;
        }));
        self.server = Some((tx, handle));
    }

    /// Stops: the API stops accepting, the scheduler stops firing, active executions get the
    /// pool's grace period and the rest go back on the queue.
    pub async fn shutdown(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some((tx, handle)) = self.server.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        self.pool.shutdown().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        for mut t in self.tasks.drain(..) {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
        self.db.close().await;
    }
}
