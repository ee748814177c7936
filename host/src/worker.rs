//! The worker pool: N slots, each running one leased task at a time in a fresh instance.
//!
//! A dispatcher takes tasks from the queue (by weight) while a slot is free, as many per round
//! trip as there are free slots; each task runs through the [`Executor`] with a heartbeat
//! extending its lease. On Redis, a slot that finishes a task leases its next task in the same
//! round trip and runs it without going back to the dispatcher. When a task ends:
//! completed/skipped → `done`; failed with attempts left → back on the queue after the job's
//! retry delay (fixed, exponential, or the `retry_delays` list) and the execution shows
//! `retrying`; otherwise → `dead` and the job's `on_fail` event.
//!
//! Shutdown ([`WorkerPool::shutdown`]): stop taking tasks, let the active ones finish within
//! the grace period, then cancel the rest and put them back on the queue (their attempt given
//! back), so a restart runs them again.

use crate::caps::platform::JobCaps;
use crate::executor::{is_final, Executor, Request};
use crate::queue::{retry_delay, Queue, Task};
use crate::runtime::{CancelToken, ExecOptions, PreparedJob};
use crate::scheduler::Scheduler;
use crate::store::platform as store;
use crate::store::tenants::{self, Tenant};
use crate::store::Database;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Executions at once (default 10).
    pub slots: usize,
    /// How long the dispatcher sleeps when the queue is empty (default 50 ms; an enqueue in this
    /// process wakes it at once).
    pub poll: Duration,
    /// How often an active task's lease is extended (default 10 s).
    pub heartbeat: Duration,
    /// How long shutdown waits for active executions (default 30 s).
    pub grace: Duration,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            slots: 10,
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_secs(10),
            grace: Duration::from_secs(30),
        }
    }
}

/// Running executions, by execution id, with their cancel tokens.
type Active = Arc<Mutex<HashMap<Uuid, CancelToken>>>;

/// (job id, version).
type JobVersion = (String, i64);

/// Compiled components by (job id, version), loaded from `job_versions` on first use.
pub struct Components {
    executor: Arc<Executor>,
    cache: Mutex<HashMap<JobVersion, Arc<PreparedJob<JobCaps>>>>,
}

impl Components {
    pub fn new(executor: Arc<Executor>) -> Components {
        Components {
            executor,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The prepared component of a job version.
    pub async fn get(
        &self,
        job_id: &str,
        version: i64,
    ) -> anyhow::Result<Arc<PreparedJob<JobCaps>>> {
        let key = (job_id.to_string(), version);
        if let Some(job) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(job.clone());
        }
        let db = self.executor.platform().db();
        let bytes: Vec<u8> = match db {
            Database::Sqlite(pool) => {
                sqlx::query("SELECT component FROM job_versions WHERE job_id = ? AND version = ?")
                    .bind(job_id)
                    .bind(version)
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?
            }
            Database::Postgres(pool) => {
                sqlx::query("SELECT component FROM job_versions WHERE job_id = $1 AND version = $2")
                    .bind(job_id)
                    .bind(version)
                    .fetch_one(pool)
                    .await?
                    .try_get(0)?
            }
        };
        let executor = self.executor.clone();
        let job = tokio::task::spawn_blocking(move || executor.runtime().prepare(&bytes)).await??;
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, job.clone());
        Ok(job)
    }
}

/// The pool.
pub struct WorkerPool {
    queue: Arc<Queue>,
    executor: Arc<Executor>,
    components: Arc<Components>,
    config: PoolConfig,
    permits: Arc<Semaphore>,
    active: Active,
    wake: Arc<Notify>,
    stopping: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
    limits: TenantLimits,
    /// Platform failures in a row (backoff).
    failures: std::sync::atomic::AtomicU32,
    /// Executions running per tenant (for tenants with a concurrency limit).
    per_tenant: Mutex<HashMap<String, i64>>,
}

/// Tenants' limits, read from `tenants` and kept for a few seconds.
struct TenantLimits {
    db: Database,
    cache: Mutex<HashMap<String, (Option<Tenant>, std::time::Instant)>>,
}

impl TenantLimits {
    const FRESH: Duration = Duration::from_secs(5);

    async fn get(&self, tenant: &str) -> Option<Tenant> {
        if let Some((t, at)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(tenant)
        {
            if at.elapsed() < Self::FRESH {
                return t.clone();
            }
        }
        let t = match tenants::tenant(&self.db, tenant).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(%tenant, "reading the tenant's limits failed: {e}");
                None
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant.to_string(), (t.clone(), std::time::Instant::now()));
        t
    }
}

/// Decrements a tenant's running count when dropped.
struct TenantSlot<'a> {
    pool: &'a WorkerPool,
    tenant: Option<String>,
}

impl Drop for TenantSlot<'_> {
    fn drop(&mut self) {
        if let Some(t) = &self.tenant {
            if let Some(n) = self
                .pool
                .per_tenant
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get_mut(t)
            {
                *n -= 1;
            }
        }
    }
}

impl WorkerPool {
    pub fn new(queue: Arc<Queue>, executor: Arc<Executor>, config: PoolConfig) -> Arc<WorkerPool> {
        let db = queue.db().clone();
        Arc::new(WorkerPool {
            components: Arc::new(Components::new(executor.clone())),
            permits: Arc::new(Semaphore::new(config.slots.max(1))),
            queue,
            executor,
            config,
            active: Arc::new(Mutex::new(HashMap::new())),
            wake: Arc::new(Notify::new()),
            stopping: Arc::new(AtomicBool::new(false)),
            busy: Arc::new(AtomicUsize::new(0)),
            limits: TenantLimits {
                db,
                cache: Mutex::new(HashMap::new()),
            },
            per_tenant: Mutex::new(HashMap::new()),
            failures: std::sync::atomic::AtomicU32::new(0),
        })
    }

    /// Wakes the dispatcher (after an enqueue in this process).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Slots in the pool and slots running an execution.
    pub fn utilisation(&self) -> (usize, usize) {
        (self.config.slots, self.busy.load(Ordering::Relaxed))
    }

    /// Cancels a running execution of this pool; false if it is not running here.
    pub fn cancel(&self, execution_id: Uuid) -> bool {
        match self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&execution_id)
        {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Takes and runs tasks until [`WorkerPool::shutdown`]: waits for a free slot, then leases
    /// as many tasks as there are free slots at that moment (one round trip on Redis).
    pub async fn run(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                return;
            };
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let mut permits = vec![permit];
            while let Ok(p) = self.permits.clone().try_acquire_owned() {
                permits.push(p);
            }
            let tasks = match self.queue.dequeue_many(Utc::now(), permits.len()).await {
                Ok(tasks) => tasks,
                Err(e) => {
                    tracing::warn!("dequeue failed: {e:#}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    Vec::new()
                }
            };
            if tasks.is_empty() {
                drop(permits);
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
                continue;
            }
            permits.truncate(tasks.len());
            for (task, permit) in tasks.into_iter().zip(permits) {
                let pool = self.clone();
                self.busy.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    // A slot that finishes a task on Redis leases the next one in the same
                    // round trip and runs it here, without waiting for the dispatcher.
                    let mut next = Some(task);
                    while let Some(task) = next {
                        next = pool.execute(task).await;
                    }
                    pool.busy.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                });
            }
        }
    }

    /// Runs one task; the next task for this slot when finishing it leased one.
    async fn execute(&self, task: Task) -> Option<Task> {
        let cancel = CancelToken::new();
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(task.id, cancel.clone());
        let heartbeat = {
            let queue = self.queue.clone();
            let every = self.config.heartbeat;
            let id = task.id;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    if let Err(e) = queue.heartbeat(id, Utc::now()).await {
                        tracing::warn!(%id, "heartbeat failed: {e:#}");
                    }
                }
            })
        };
        let outcome = self.attempt(&task, cancel).await;
        heartbeat.abort();
        let mut next = None;
        match outcome {
            Ok(leased) => {
                self.failures.store(0, Ordering::Relaxed);
                next = leased;
            }
            Err(e) => {
                // The platform failed (the database is down, say), not the job: put the task
                // back (if the queue answers; otherwise its lease runs out and it is rescued)
                // and hold this slot for a growing pause, so a restart of the database is
                // waited out instead of burning through the queue.
                let n = self.failures.fetch_add(1, Ordering::Relaxed).min(7);
                let pause = Duration::from_millis(100 << n);
                tracing::error!(execution = %task.id, job = %task.job_name,
                    "task failed to run: {e:#}; back on the queue, pausing {pause:?}");
                let _ = self.queue.release(task.id).await;
                tokio::time::sleep(pause).await;
            }
        }
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&task.id);
        if let Some(t) = next
            .as_ref()
            .filter(|_| self.stopping.load(Ordering::SeqCst))
        {
            // Leased as shutdown began: back on the queue, attempt given back.
            if let Err(e) = self.queue.release(t.id).await {
                tracing::warn!(id = %t.id, "putting a task back failed: {e:#}; its lease will run out");
            }
            return None;
        }
        next
    }

    /// Runs one attempt of a task and records its outcome in the queue; the next task for
    /// this slot when finishing leased one.
    async fn attempt(&self, task: &Task, cancel: CancelToken) -> anyhow::Result<Option<Task>> {
        let limits = self.limits.get(&task.tenant).await;
        let mut slot = TenantSlot {
            pool: self,
            tenant: None,
        };
        if let Some(max) = limits.as_ref().and_then(|t| t.max_concurrent) {
            let admitted = {
                let mut running = self.per_tenant.lock().unwrap_or_else(|e| e.into_inner());
                let n = running.entry(task.tenant.clone()).or_insert(0);
                let admitted = *n < max.max(1);
                if admitted {
                    *n += 1;
                }
                admitted
            };
            if !admitted {
                // The tenant is at its limit: back on the queue for a moment, attempt given back.
                let at = Utc::now() + chrono::Duration::milliseconds(200);
                self.queue.defer(task.id, at).await?;
                return Ok(None);
            }
            slot.tenant = Some(task.tenant.clone());
        }
        let options = ExecOptions {
            cancel: Some(cancel),
            fuel: limits
                .as_ref()
                .and_then(|t| t.fuel_budget)
                .and_then(|f| u64::try_from(f).ok()),
            memory_limit: limits
                .as_ref()
                .and_then(|t| t.memory_limit_bytes)
                .and_then(|m| usize::try_from(m).ok()),
            ..ExecOptions::default()
        };
        let version = task.job_version.unwrap_or(1);
        let job = match self.components.get(&task.job_id, version).await {
            Ok(job) => job,
            Err(e) if is_row_not_found(&e) => {
                // The job was deleted: nothing can run this task, now or later.
                let error = "the job's component is gone (the job was deleted)";
                self.queue.finish(task.id, "failed", Some(error)).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let recorded = self
            .executor
            .run(
                &job,
                Request {
                    tenant: &task.tenant,
                    job_id: &task.job_id,
                    job_version: Some(version),
                    trigger: &task.trigger,
                    input: &task.input,
                    now: task.fire_at,
                    attempt: task.attempt,
                    max_attempts: task.max_attempts,
                    execution_id: Some(task.id),
                    scheduled_at: task.fire_at,
                    options,
                },
            )
            .await?;
        let r = &recorded.result;
        if self.stopping.load(Ordering::SeqCst) && r.status == crate::runtime::Status::Cancelled {
            // Cancelled by shutdown, not by a user: back on the queue for the next start.
            self.queue.release(task.id).await?;
            return Ok(None);
        }
        let mut next = None;
        if is_final(r.status, task.attempt, task.max_attempts) {
            let (status, error) = (r.status.as_str(), r.error.as_deref());
            if self.stopping.load(Ordering::SeqCst) {
                self.queue.finish(task.id, status, error).await?;
            } else {
                next = self
                    .queue
                    .finish_and_dequeue(task.id, status, error, Utc::now())
                    .await?;
            }
        } else {
            let manifest = job.manifest();
            let retry = u32::try_from(task.attempt).unwrap_or(u32::MAX);
            let delay = retry_delay(&manifest.retry.backoff, retry);
            let at: DateTime<Utc> =
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
            self.queue
                .retry(task.id, at, r.error.as_deref().unwrap_or(r.status.as_str()))
                .await?;
            store::set_execution_status(
                self.executor.platform().db(),
                &task.tenant,
                task.id,
                "retrying",
                Some(at),
            )
            .await?;
        }
        drop(slot);
        Ok(next)
    }

    /// Stops taking tasks, waits up to the grace period for active executions, then cancels the
    /// rest (they go back on the queue).
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        let deadline = tokio::time::Instant::now() + self.config.grace;
        while self.busy.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left: Vec<CancelToken> = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for token in &left {
            token.cancel();
        }
        while self.busy.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn is_row_not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::RowNotFound)
    )
}

/// Runs the scheduler: ticks when a fire is due (at least every second) until `stop`.
pub async fn run_scheduler(
    scheduler: Arc<Scheduler>,
    pool: Arc<WorkerPool>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let wait = tick(&scheduler, &pool).await;
        tokio::time::sleep(wait).await;
    }
}

/// One scheduler tick (waking the pool when it enqueued); how long to wait before the next.
pub async fn tick(scheduler: &Scheduler, pool: &WorkerPool) -> Duration {
    let wait = match scheduler.tick(Utc::now()).await {
        Ok(tick) => {
            if !tick.enqueued.is_empty() {
                pool.notify();
            }
            tick.next_due
                .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1))
        }
        Err(e) => {
            tracing::warn!("scheduler tick failed: {e:#}");
            Duration::from_secs(1)
        }
    };
    wait.max(Duration::from_millis(5))
}

/// Rescues tasks whose lease expired (a crashed worker's), every `every`, until `stop`.
pub async fn run_reaper(queue: Arc<Queue>, every: Duration, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match queue.rescue_expired(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!("rescued {n} task(s) whose lease expired"),
            Err(e) => tracing::warn!("rescue failed: {e:#}"),
        }
        tokio::time::sleep(every).await;
    }
}
