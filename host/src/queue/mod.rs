//! The durable task queue. [`Queue`] is written once in front of a [`QueueBackend`]: the
//! `tasks` table in the platform's database ([`SqlQueue`]: the embedded default, SQLite;
//! PostgreSQL works too, with `FOR UPDATE SKIP LOCKED`) or, for scale-out, Redis
//! ([`RedisQueue`]). The rest of the host uses [`Queue`] and never knows which.
//!
//! - **Queues by weight** ([`Picker`], owned by the front): queues are served by smooth
//!   weighted round robin over the queues that have a runnable task — critical 6 : default 3 :
//!   low 1 by default — so no queue starves and an empty queue yields its share to the others.
//!   A strict-priority mode always serves the heaviest non-empty queue first. A backend leases
//!   from a snapshot of the picker ([`Claim`]) and reports the queues it found empty
//!   ([`Claimed`]); the front replays those choices on its picker. The queues and their weights
//!   are the operator's ([`QueueConfig`], `CODEAI_QUEUES`; see `config.rs`): a job names its
//!   queue, it sets no weight.
//! - **Tenants by turns within a queue**: every tenant with waiting tasks in a queue has one
//!   task leased per turn, so one tenant's flood cannot make another tenant's task wait for it.
//!   A task enqueued behind another tenant's 10,000 is leased within the turn it joins — among
//!   the next (tenants with waiting tasks) leases of that queue — after what workers had leased
//!   already. A tenant's own tasks keep their order (see `sql.rs` and `redis.rs` for how). A
//!   retry, a deferral and a dead task run again go behind their tenant's waiting tasks, as a
//!   new task would; a task put back at shutdown or rescued from an expired lease keeps its
//!   place.
//! - **Leases**: a dequeued task is `active` until its lease expires; the worker heartbeats it.
//!   [`Queue::rescue_expired`] puts tasks whose lease ran out back to `pending` (their attempt
//!   given back), so a crashed worker's task runs again: at least once, never lost. On SQLite
//!   the one host process on the file holds its leases in memory (`sql.rs`, `Held`): the task
//!   stays `pending` in the table (shown `active`), and if the process dies it runs again as
//!   soon as a host starts on the file.
//! - **Idempotent fires**: a task for a schedule fire carries `fire_at`, unique per job, so the
//!   same fire is enqueued once however many times the scheduler tries.
//! - **Retries**: [`Queue::retry`] puts a failed task back with a later `run_after`.

mod backend;
mod config;
mod picker;
pub mod redis;
pub(crate) mod sql;

pub use backend::{Claim, Claimed, Finished, Lease, Leased, QueueBackend};
pub use config::{
    clamp_weight, parse_weights, QueueConfig, UnknownQueue, DEFAULT_QUEUES, MAX_WEIGHT, MIN_WEIGHT,
};
pub use picker::Picker;
pub use redis::RedisQueue;
pub use sql::SqlQueue;

use crate::store::Database;
use chrono::{DateTime, Utc};
use codeai_ir::Manifest;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The execution id (a new one when `None`).
    pub id: Option<Uuid>,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub queue: String,
    /// `schedule`, `manual`, `api`, `retry`.
    pub trigger: String,
    /// A JSON object.
    pub input: String,
    /// The schedule fire it is for; at most one task per job and fire.
    pub fire_at: Option<DateTime<Utc>>,
    /// Not before this instant.
    pub run_after: DateTime<Utc>,
    pub max_attempts: i64,
    /// Waits while another task of the same job is active (overlap policy `queue`).
    pub exclusive: bool,
}

/// A leased task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub queue: String,
    pub trigger: String,
    pub input: String,
    pub fire_at: Option<DateTime<Utc>>,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
}

/// Tasks per state of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Runnable now.
    pub pending: u64,
    /// Waiting for their time (a later fire or a retry delay).
    pub scheduled: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
}

/// A task as the API shows it (an execution that has not started yet).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    /// The task as a worker would lease it, `attempt` being the attempts started so far.
    pub task: Task,
    /// `pending`, `active`, `done` or `dead`.
    pub state: String,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub run_after: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// A new task's id, which is also its execution's: a UUIDv7, ordered by the time it was made, so
/// new tasks and executions are appended to the end of the indexes on their ids instead of
/// landing all over them (fewer pages written per commit: 10,500 → 14,000 no-op jobs/s on
/// SQLite, BENCHMARKS.md).
pub fn new_task_id() -> Uuid {
    Uuid::now_v7()
}

/// The queue a process uses, in front of its backend: the `tasks` table of the platform's
/// database (the embedded default) or Redis when `REDIS_URL` is set (scale-out). It owns what is
/// the same for both: the weighted picker, the lease length and this process's lease owner id.
pub struct Queue {
    backend: Box<dyn QueueBackend>,
    picker: Mutex<Picker>,
    config: QueueConfig,
    /// This process's id on the leases it takes.
    owner: String,
}

impl Queue {
    /// The queue on Redis when one is given, else in the platform's database.
    pub fn open(db: Database, config: QueueConfig, redis: Option<RedisQueue>) -> Queue {
        match redis {
            Some(redis) => Queue::on(redis, config),
            None => Queue::new(db, config),
        }
    }

    /// The queue in the platform's database.
    pub fn new(db: Database, config: QueueConfig) -> Queue {
        Queue::on(SqlQueue::new(db), config)
    }

    /// The queue on a backend.
    pub fn on(backend: impl QueueBackend + 'static, config: QueueConfig) -> Queue {
        Queue {
            backend: Box::new(backend),
            picker: Mutex::new(Picker::new(&config.weights, config.strict)),
            config,
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
        }
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    /// This process's id on the leases it takes.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    fn lock_picker(&self) -> std::sync::MutexGuard<'_, Picker> {
        self.picker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The names of the known queues, heaviest first.
    pub fn names(&self) -> Vec<String> {
        self.lock_picker().names()
    }

    /// The known queues and their weights, heaviest first.
    pub fn weights(&self) -> Vec<(String, u32)> {
        self.lock_picker().weights()
    }

    /// Whether a job of `tenant` runs in a queue there is (the operator's job may also name a
    /// queue its own source declares); changes nothing. What an upload checks first.
    pub fn check_job(&self, tenant: &str, manifest: &Manifest) -> Result<(), UnknownQueue> {
        config::check_job(&self.names(), tenant, manifest)
    }

    /// Admits a job to be scheduled: as [`Queue::check_job`], then the queues the operator's
    /// job declares are added (weights clamped to [`MIN_WEIGHT`]..=[`MAX_WEIGHT`]; a known queue
    /// keeps its weight). The weights in a tenant's manifest are ignored.
    pub fn admit_job(&self, tenant: &str, manifest: &Manifest) -> Result<(), UnknownQueue> {
        self.check_job(tenant, manifest)?;
        if crate::store::tenants::is_operator(tenant) {
            let mut picker = self.lock_picker();
            for q in &manifest.queues {
                picker.declare(&q.name, q.weight);
            }
        }
        Ok(())
    }

    /// Enqueues a task; `None` when a task for the same job and fire exists already.
    pub async fn enqueue(&self, t: &NewTask) -> anyhow::Result<Option<Uuid>> {
        let id = t.id.unwrap_or_else(new_task_id);
        let task = NewTask {
            id: Some(id),
            ..t.clone()
        };
        Ok(self.backend.enqueue(&task).await?.then_some(id))
    }

    /// Enqueues a task with `record` written to `db` (see [`QueueBackend::enqueue_recorded`]);
    /// `None` when a task for the same job and fire exists already.
    pub async fn enqueue_recorded(
        &self,
        t: &NewTask,
        db: &Database,
        record: &crate::store::sql::Stmt,
    ) -> anyhow::Result<Option<Uuid>> {
        let id = t.id.unwrap_or_else(new_task_id);
        let task = NewTask {
            id: Some(id),
            ..t.clone()
        };
        let new = self.backend.enqueue_recorded(&task, db, record).await?;
        Ok(new.then_some(id))
    }

    /// Enqueues many tasks; returns how many were new.
    pub async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64> {
        self.backend.enqueue_many(tasks).await
    }

    /// Leases the next runnable task, choosing the queue by weight; `None` when nothing is
    /// runnable at `now`.
    pub async fn dequeue(&self, now: DateTime<Utc>) -> anyhow::Result<Option<Task>> {
        Ok(self.dequeue_many(now, 1).await?.pop())
    }

    /// Leases up to `n` runnable tasks, each queue chosen by weight as `n` calls of
    /// [`Queue::dequeue`] would; fewer (or none) when fewer are runnable at `now`. On Redis
    /// this is one round trip. On the SQL queue an error after some tasks were leased returns
    /// those.
    pub async fn dequeue_many(&self, now: DateTime<Utc>, n: usize) -> anyhow::Result<Vec<Task>> {
        self.finish_and_dequeue(&[], now, n).await
    }

    /// Finishes active tasks (each as [`Queue::finish`]) and leases up to `n` runnable tasks
    /// (as [`Queue::dequeue_many`]): on Redis one round trip, on the SQL queue the finishes in
    /// the first lease's transaction (alone when no lease is asked for or that one fails). A
    /// failed call may have finished none of `done`, some of them (Redis) or all of them;
    /// finishing a task again does nothing, so the caller repeats it.
    pub async fn finish_and_dequeue(
        &self,
        done: &[Finished],
        now: DateTime<Utc>,
        n: usize,
    ) -> anyhow::Result<Vec<Task>> {
        let excluded = self.excluded();
        let queues = self.lock_picker().queues(&excluded);
        let claim = Claim {
            n,
            strict: self.config.strict,
            queues: &queues,
            lease: self.lease(now),
        };
        let claimed = self.backend.finish_and_claim(done, &claim).await?;
        Ok(self.replay(&excluded, claimed))
    }

    /// The queues this process does not take from.
    fn excluded(&self) -> Vec<String> {
        match &self.config.only {
            Some(only) => self
                .names()
                .into_iter()
                .filter(|n| !only.contains(n))
                .collect(),
            None => Vec::new(),
        }
    }

    /// Records on this process's picker the picks the backend made; the tasks.
    fn replay(&self, excluded: &[String], claimed: Claimed) -> Vec<Task> {
        let mut picker = self.lock_picker();
        let mut empty = excluded.to_vec();
        claimed
            .tasks
            .into_iter()
            .map(|leased| {
                empty.truncate(excluded.len());
                empty.extend(claimed.empties.iter().take(leased.before).cloned());
                picker.served(&leased.queue, &empty);
                leased.task
            })
            .collect()
    }

    /// Extends the leases of those of `ids` that this process still holds; how many. (Called
    /// with none too: on Redis it puts back the tasks this process holds and lost track of, see
    /// [`QueueBackend::heartbeat`].)
    pub async fn heartbeat(&self, ids: &[Uuid], now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.backend.heartbeat(ids, &self.lease(now)).await
    }

    /// The terms of this process's leases, from `now`.
    fn lease(&self, now: DateTime<Utc>) -> Lease<'_> {
        Lease {
            now,
            length: self.config.lease,
            owner: &self.owner,
        }
    }

    /// Marks an active task finished: `done` when `outcome` is completed or skipped, else
    /// `dead`.
    pub async fn finish(
        &self,
        id: Uuid,
        outcome: &'static str,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let done = Finished {
            id,
            outcome,
            error: error.map(str::to_string),
        };
        self.backend.finish(&done).await
    }

    /// Puts a failed task back to run again after `run_after`, behind its tenant's waiting
    /// tasks.
    pub async fn retry(
        &self,
        id: Uuid,
        run_after: DateTime<Utc>,
        error: &str,
    ) -> anyhow::Result<()> {
        self.backend.retry(id, run_after, error).await
    }

    /// Puts an active task back to `pending` at once, its attempt given back (shutdown).
    pub async fn release(&self, id: Uuid) -> anyhow::Result<()> {
        self.backend.release(id).await
    }

    /// Puts an active task back until `run_after`, its attempt given back (its tenant was at its
    /// concurrency limit), behind its tenant's waiting tasks.
    pub async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()> {
        self.backend.defer(id, run_after).await
    }

    /// Runs a dead task (failed, timed out, cancelled) again as the same execution, its
    /// attempts counted afresh, behind its tenant's waiting tasks; false if it is not dead.
    pub async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        self.backend.requeue_dead(id, now).await
    }

    /// Cancels a task that has not started; false if it is not pending.
    pub async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool> {
        self.backend.cancel_pending(id).await
    }

    /// Puts active tasks whose lease expired before `now` back to `pending`, giving their
    /// attempt back (the attempt never finished): a crashed worker's task runs again. Returns
    /// how many were rescued.
    pub async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.backend.rescue_expired(now).await
    }

    /// Of `jobs`, those with a pending or active task (no query for none: a tick whose fires
    /// are all ahead of their instant asks for none).
    pub async fn busy_jobs(&self, jobs: &[String]) -> anyhow::Result<HashSet<String>> {
        if jobs.is_empty() {
            return Ok(HashSet::new());
        }
        self.backend.busy_jobs(jobs).await
    }

    /// Whether another run of `job_id` than task `id` (of the fire at `fire`) is pending or
    /// active, later fires enqueued ahead not counted (see [`QueueBackend::busy_besides`]).
    pub async fn busy_besides(
        &self,
        job_id: &str,
        id: Uuid,
        fire: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        self.backend.busy_besides(job_id, id, fire).await
    }

    /// Takes back the pending tasks of `job_id`'s fires later than `after`, enqueued ahead of
    /// their instant; how many (see [`QueueBackend::drop_fires_after`]).
    pub async fn drop_fires_after(
        &self,
        job_id: &str,
        after: DateTime<Utc>,
    ) -> anyhow::Result<u64> {
        self.backend.drop_fires_after(job_id, after).await
    }

    /// The versions of `job_id` that a pending or active task will run.
    pub async fn versions_in_use(&self, job_id: &str) -> anyhow::Result<BTreeSet<i64>> {
        self.backend.versions_in_use(job_id).await
    }

    /// Tasks per state of every known queue and every queue that has any; with a `tenant`,
    /// only that tenant's tasks.
    pub async fn counts(
        &self,
        now: DateTime<Utc>,
        tenant: Option<&str>,
    ) -> anyhow::Result<BTreeMap<String, QueueCounts>> {
        let mut out: BTreeMap<String, QueueCounts> = self
            .names()
            .into_iter()
            .map(|n| (n, QueueCounts::default()))
            .collect();
        out.extend(self.backend.counts(now, tenant).await?);
        Ok(out)
    }

    /// One task as the API shows it.
    pub async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>> {
        self.backend.task_info(id).await
    }

    /// Cancels every pending task of a job (deleted); returns how many.
    pub async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64> {
        self.backend.cancel_job(job_id).await
    }

    /// Asks the other worker processes sharing this queue to cancel a running execution; false
    /// when there are none to ask (the SQL queue: this host process runs everything).
    pub async fn signal_cancel(&self, id: Uuid) -> anyhow::Result<bool> {
        self.backend.signal_cancel(id).await
    }

    /// Worker slots and busy slots of every live worker process sharing this queue; `None`
    /// when this process is the only one.
    pub async fn cluster_slots(&self) -> anyhow::Result<Option<(usize, usize)>> {
        self.backend.cluster_slots().await
    }
}

/// The delay before retry number `retry` (1 for the first retry) under a job's backoff.
pub fn retry_delay(backoff: &codeai_ir::Backoff, retry: u32) -> Duration {
    use codeai_ir::Backoff;
    let n = retry.max(1) - 1;
    match backoff {
        Backoff::Fixed { delay_ms } => Duration::from_millis(*delay_ms),
        Backoff::Exponential { base_ms } => {
            Duration::from_millis(base_ms.saturating_mul(1u64 << n.min(40)))
        }
        Backoff::Custom { delays_ms } => Duration::from_millis(
            delays_ms
                .get(n as usize)
                .or(delays_ms.last())
                .copied()
                .unwrap_or(0),
        ),
    }
}
