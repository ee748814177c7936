//! Everything one host process runs, put together: store, runtime, queue, scheduler, worker
//! pool, lease reaper, alerts and the HTTP API. `codeai host run` uses it, and so do the tests
//! that need a whole host.

use crate::alerts::{run_alerts, AlertConfig, Alerts};
use crate::api::{self, ApiConfig, ApiState};
use crate::cluster::{self, Leadership};
use crate::executor::Executor;
use crate::queue::{Queue, QueueConfig, RedisQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scheduler::{MisfirePolicy, Scheduler};
use crate::services::{Services, ServicesConfig};
use crate::store::rows::{fetch_all, RowExt};
use crate::store::sql::{stmt, Param};
use crate::store::{self, platform as pstore, Database};
use crate::worker::{run_reaper, PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use codeai_ir::Manifest;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Everything (`codeai host run`).
    #[default]
    All,
    /// The API, the scheduler (when leader) and the alerts, no workers (`codeai run`).
    Api,
    /// Workers only (`codeai worker start`).
    Worker,
}

/// How a host runs.
#[derive(Clone)]
pub struct HostConfig {
    pub role: Role,
    /// The queue on Redis (`REDIS_URL`); `None`: the `tasks` table of the database.
    pub redis: Option<RedisQueue>,
    pub runtime: RuntimeConfig,
    pub services: ServicesConfig,
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
    /// False when the same component was registered already.
    pub new_version: bool,
}

/// Stores a prepared component for `tenant` (a new job, or a new version when its bytes
/// changed) and schedules it: what `codeai host run` and `POST /jobs` both do. The tables of
/// its entities are the caller's to create.
pub async fn register_prepared(
    db: &Database,
    scheduler: &Scheduler,
    tenant: &str,
    job: &crate::runtime::PreparedJob<crate::caps::JobCaps>,
    bytes: &[u8],
    now: DateTime<Utc>,
) -> anyhow::Result<Registered> {
    let manifest = job.manifest_arc();
    let hash = crate::runtime::cache::hex(job.hash());
    let reg = pstore::register_job(db, tenant, &manifest, bytes, &hash).await?;
    let scheduled = scheduler
        .add(&reg.job_id, tenant, reg.version, manifest.clone(), now)
        .await
        .with_context(|| format!("job `{}`", manifest.name))?;
    Ok(Registered {
        manifest,
        next_run_at: scheduled.next_run_at,
        job_id: reg.job_id,
        version: reg.version,
        new_version: reg.new_version,
    })
}

/// A running host.
pub struct Host {
    pub db: Database,
    pub executor: Arc<Executor>,
    pub queue: Arc<Queue>,
    pub scheduler: Arc<Scheduler>,
    pub pool: Arc<WorkerPool>,
    pub api: Arc<ApiState>,
    pub alerts: Arc<Alerts>,
    pub leadership: Leadership,
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
        let services = Services::new(db.clone(), config.services.clone());
        let executor = Arc::new(Executor::new(runtime, services.clone()));
        let queue = Arc::new(Queue::open(
            db.clone(),
            config.queue.clone(),
            config.redis.clone(),
        ));
        let leadership = if config.redis.is_some() {
            Leadership::contender()
        } else {
            Leadership::alone()
        };
        let scheduler = Arc::new(Scheduler::new(db.clone(), queue.clone(), config.misfire));
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
            services,
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
            leadership,
            stop: Arc::new(AtomicBool::new(false)),
            tasks: Vec::new(),
            server: None,
            config,
        };
        if host.config.role != Role::Worker {
            sync_jobs(&host.db, &host.scheduler).await?;
        } else {
            declare_operator_queues(&host.db, &host.queue).await?;
        }
        Ok(host)
    }
}

/// Adds the queues the operator's stored jobs declare in their source to the queues `queue`
/// serves: what a worker process (which schedules no jobs) needs to take their tasks.
pub async fn declare_operator_queues(db: &Database, queue: &Queue) -> anyhow::Result<()> {
    let rows = fetch_all(
        db,
        &stmt(
            "SELECT v.manifest FROM jobs j \
             JOIN job_versions v ON v.job_id = j.id AND v.version = j.version \
             WHERE j.tenant_id = ?",
            vec![Param::Text(pstore::DEFAULT_TENANT.into())],
        ),
    )
    .await?;
    for r in rows {
        if let Ok(m) = serde_json::from_str::<Manifest>(&r.text("manifest").unwrap_or_default()) {
            // An operator's job in a queue it does not declare is the scheduler's to report.
            let _ = queue.admit_job(pstore::DEFAULT_TENANT, &m);
        }
    }
    Ok(())
}

/// A worker process's view of the queues: the operator's jobs' declarations, every 5 s.
async fn queue_loop(db: Database, queue: Arc<Queue>, stop: Arc<AtomicBool>) {
    let mut read = tokio::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if read.elapsed() >= Duration::from_secs(5) {
            if let Err(e) = declare_operator_queues(&db, &queue).await {
                tracing::warn!("reading the queues jobs declare failed: {e:#}");
            }
            read = tokio::time::Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Puts every job of the store into the scheduler with its latest version (jobs uploaded or
/// changed by another process included) and forgets deleted ones.
pub async fn sync_jobs(db: &Database, scheduler: &Scheduler) -> anyhow::Result<()> {
    {
        let rows = fetch_all(
            db,
            &stmt(
                // The operator's jobs first: a tenant's job may run in a queue they declare.
                "SELECT j.id, j.tenant_id, j.version, j.enabled, v.manifest FROM jobs j \
                 JOIN job_versions v ON v.job_id = j.id AND v.version = j.version \
                 ORDER BY CASE WHEN j.tenant_id = ? THEN 0 ELSE 1 END",
                vec![Param::Text(pstore::DEFAULT_TENANT.into())],
            ),
        )
        .await?;
        let now = Utc::now();
        let known: std::collections::HashSet<String> =
            rows.iter().filter_map(|r| r.text("id")).collect();
        for j in scheduler.jobs() {
            if !known.contains(&j.job_id) {
                scheduler.remove(&j.job_id);
            }
        }
        for r in rows {
            let id = r.text("id").unwrap_or_default();
            let version = r.int("version").unwrap_or(1);
            let enabled = r.flag("enabled");
            if scheduler
                .job(&id)
                .is_some_and(|j| j.version == version && j.enabled == enabled)
            {
                continue;
            }
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
            if let Err(e) = scheduler
                .add(&id, &tenant, version, Arc::new(manifest), now)
                .await
            {
                tracing::warn!(job = %id, "job not scheduled: {e:#}");
            }
        }
        Ok(())
    }
}

impl Host {
    /// Registers components for `tenant` (a changed component becomes a new version, and the
    /// versions beyond those the tenant keeps are pruned), creates the tables of their
    /// entities, and schedules them.
    pub async fn register(
        &self,
        tenant: &str,
        components: &[(String, Vec<u8>)],
    ) -> anyhow::Result<Vec<Registered>> {
        let now = Utc::now();
        let mut out = Vec::new();
        let mut entities: Vec<codeai_ir::EntityDecl> = Vec::new();
        let mut prepared = Vec::new();
        for (file, bytes) in components {
            let job = self
                .executor
                .runtime()
                .prepare(bytes)
                .with_context(|| format!("`{file}` cannot run"))?;
            let manifest = job.manifest_arc();
            for e in &manifest.entities {
                store::entities::check_declaration(e).map_err(|m| {
                    anyhow::anyhow!("`{file}`: entity `{}` cannot be used: {m}", e.name)
                })?;
                if !entities.iter().any(|x| x.table == e.table) {
                    entities.push(e.clone());
                }
            }
            prepared.push((job, bytes));
        }
        // The tables first: a job never runs before the tables it declares exist.
        store::entities::create_entity_tables(&self.db, tenant, &entities).await?;
        for (job, bytes) in prepared {
            let reg =
                register_prepared(&self.db, &self.scheduler, tenant, &job, bytes, now).await?;
            let artifact = self
                .executor
                .runtime()
                .artifact_size(job.hash())
                .unwrap_or(0);
            store::quotas::set_artifact_bytes(&self.db, &reg.job_id, reg.version, artifact).await?;
            if reg.new_version {
                // The operator registers: no job or byte quota, but the versions kept apply.
                let quotas = self.api.config.quotas.of_tenant(&self.db, tenant).await?;
                self.api.job_storage().prune(&reg.job_id, &quotas).await?;
            }
            out.push(reg);
        }
        Ok(out)
    }

    /// Starts what the role runs: workers, the scheduler (while this process leads), the lease
    /// reaper, the alerts, and with Redis the leader election, the worker registry and the
    /// cancel listener.
    pub fn start(&mut self) {
        let stop = self.stop.clone();
        let role = self.config.role;
        if role != Role::Api {
            self.tasks.push(tokio::spawn(self.pool.clone().run()));
        }
        if role == Role::Worker {
            self.tasks.push(tokio::spawn(queue_loop(
                self.db.clone(),
                self.queue.clone(),
                stop.clone(),
            )));
        }
        if role != Role::Worker {
            self.tasks.push(tokio::spawn(schedule_loop(
                self.db.clone(),
                self.scheduler.clone(),
                self.pool.clone(),
                self.leadership.clone(),
                stop.clone(),
            )));
            self.tasks.push(tokio::spawn(run_alerts(
                self.alerts.clone(),
                self.leadership.clone(),
                stop.clone(),
            )));
        }
        self.tasks.push(tokio::spawn(run_reaper(
            self.queue.clone(),
            self.config.reap_every,
            stop.clone(),
        )));
        if let Some(redis) = self.config.redis.clone() {
            if role != Role::Worker {
                self.tasks.push(tokio::spawn(cluster::run_leader_election(
                    redis.clone(),
                    self.queue.owner().to_string(),
                    self.leadership.clone(),
                    stop.clone(),
                )));
            }
            if role != Role::Api {
                let queues = self
                    .config
                    .queue
                    .only
                    .clone()
                    .unwrap_or_else(|| self.queue.names());
                self.tasks.push(tokio::spawn(cluster::run_worker_registry(
                    redis.clone(),
                    self.queue.owner().to_string(),
                    self.pool.clone(),
                    queues,
                    stop.clone(),
                )));
                self.tasks.push(tokio::spawn(cluster::run_cancel_listener(
                    redis,
                    self.pool.clone(),
                    stop,
                )));
            }
        }
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

/// The scheduler loop: ticks while this process leads (about every second, sooner when a fire
/// is due), and picks up jobs added, changed or deleted by other processes every 5 s.
async fn schedule_loop(
    db: Database,
    scheduler: Arc<Scheduler>,
    pool: Arc<WorkerPool>,
    leadership: Leadership,
    stop: Arc<AtomicBool>,
) {
    let mut synced = tokio::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if synced.elapsed() >= Duration::from_secs(5) {
            if let Err(e) = sync_jobs(&db, &scheduler).await {
                tracing::warn!("reloading jobs failed: {e:#}");
            }
            synced = tokio::time::Instant::now();
        }
        if !leadership.is_leader() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let wait = crate::worker::tick(&scheduler, &pool).await;
        tokio::time::sleep(wait).await;
    }
}
