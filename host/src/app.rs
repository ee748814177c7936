//! Everything one host process runs, put together: store, runtime, queue, scheduler, worker
//! pool, lease reaper, alerts and the HTTP API. `codeai host run` uses it, and so do the tests
//! that need a whole host.

use crate::alerts::{AlertConfig, Alerts};
use crate::api::{self, ApiConfig, ApiState};
use crate::background::{self, Background};
use crate::cluster::Leadership;
use crate::executor::Executor;
use crate::queue::{Queue, QueueConfig, RedisQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scheduler::{MisfirePolicy, Scheduler};
use crate::services::{Services, ServicesConfig};
use crate::store::{self, Database};
use crate::worker::{PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use codeai_ir::Manifest;
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

impl HostConfig {
    /// A whole host on one machine that keeps its files under `dir` (the compile cache in
    /// `dir/cache`, reports in `dir/reports`): the database's own queue, no admin token, no
    /// environment for jobs, every other setting at its default. For embedding a host and for
    /// tests and benches; set the fields that differ.
    pub fn local(dir: &std::path::Path) -> HostConfig {
        HostConfig {
            role: Role::All,
            redis: None,
            runtime: RuntimeConfig {
                cache_dir: dir.join("cache"),
                ..RuntimeConfig::default()
            },
            services: ServicesConfig::local(dir.join("reports"), Arc::new(|_| None)),
            queue: QueueConfig::default(),
            pool: PoolConfig::default(),
            misfire: MisfirePolicy::RunOnce,
            api: ApiConfig::default(),
            alerts: AlertConfig::default(),
            reap_every: Duration::from_secs(1),
        }
    }
}

/// A job registered at start.
#[derive(Debug, Clone)]
pub struct Registered {
    pub manifest: Arc<Manifest>,
    pub next_run_at: Option<DateTime<Utc>>,
    /// False when the job is paused.
    pub enabled: bool,
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
    let reg = store::platform::register_job(db, tenant, &manifest, bytes, &hash).await?;
    // It fires on its row's schedule: the manifest's, or one the API gave it that the new
    // version left as it was.
    let mut fires_on = manifest.clone();
    if let Some((schedule, timezone)) = store::schedules::stored(db, &reg.job_id).await? {
        if schedule != manifest.schedule || timezone != manifest.timezone {
            let mut m = (*manifest).clone();
            m.schedule = schedule;
            m.timezone = timezone;
            fires_on = Arc::new(m);
        }
    }
    let scheduled = scheduler
        .add(&reg.job_id, tenant, reg.version, fires_on, now)
        .await
        .with_context(|| format!("job `{}`", manifest.name))?;
    Ok(Registered {
        manifest,
        next_run_at: scheduled.next_run_at,
        enabled: scheduled.enabled,
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
    background: Background,
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
            background: Background::new(),
            server: None,
            config,
        };
        if host.config.role != Role::Worker {
            host.scheduler.reload(Utc::now()).await?;
        } else {
            background::queues::declare_operator_queues(&host.db, &host.queue).await?;
        }
        Ok(host)
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
    /// reaper, the alerts, and with Redis the leader election, the worker heartbeat and the
    /// cancel listener (see [`crate::background`]).
    pub fn start(&mut self) {
        let role = self.config.role;
        let bg = &self.background;
        if role != Role::Api {
            let pool = self.pool.clone();
            bg.spawn(|_| pool.run());
        }
        if role == Role::Worker {
            let (db, queue) = (self.db.clone(), self.queue.clone());
            bg.spawn(|stop| background::queues::run(db, queue, stop));
        }
        if role != Role::Worker {
            let (scheduler, pool) = (self.scheduler.clone(), self.pool.clone());
            let leadership = self.leadership.clone();
            bg.spawn(|stop| background::schedule::fire(scheduler, pool, leadership, stop));
            let scheduler = self.scheduler.clone();
            bg.spawn(|stop| background::schedule::reload(scheduler, stop));
            let (alerts, leadership) = (self.alerts.clone(), self.leadership.clone());
            bg.spawn(|stop| background::alerts::run(alerts, leadership, stop));
            let (api, leadership) = (self.api.clone(), self.leadership.clone());
            bg.spawn(|stop| background::triggers::run(api, leadership, stop));
        }
        let (queue, every) = (self.queue.clone(), self.config.reap_every);
        bg.spawn(|stop| background::reaper::run(queue, every, stop));
        if let Some(redis) = self.config.redis.clone() {
            let owner = self.queue.owner().to_string();
            if role != Role::Worker {
                let (redis, owner) = (redis.clone(), owner.clone());
                let leadership = self.leadership.clone();
                bg.spawn(|stop| background::election::run(redis, owner, leadership, stop));
            }
            if role != Role::Api {
                let queues = self
                    .config
                    .queue
                    .only
                    .clone()
                    .unwrap_or_else(|| self.queue.names());
                let (heartbeat, pool) = (redis.clone(), self.pool.clone());
                bg.spawn(|stop| background::heartbeat::run(heartbeat, owner, pool, queues, stop));
                let pool = self.pool.clone();
                bg.spawn(|stop| background::cancellations::run(redis, pool, stop));
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
        if let Some((tx, handle)) = self.server.take() {
            let _ = tx.send(());
            let _ = tokio::time::timeout(Duration::from_secs(5), handle).await;
        }
        self.pool.shutdown().await;
        if !self.background.shutdown(Duration::from_secs(2)).await {
            tracing::warn!("background services still running after 2 s; stopping anyway");
        }
        self.db.close().await;
    }
}
