//! What a queue backend does: the moves of a task between its states, each one atomic in the
//! backend's store. Two backends implement it — [`SqlQueue`](super::sql::SqlQueue), the `tasks`
//! table of the platform's database, and [`RedisQueue`](super::redis::RedisQueue) — and
//! [`Queue`](super::Queue) is written once in front of either: it owns the weighted picker,
//! the lease length and this process's lease owner id, and hands the backend what a call needs.
//!
//! A task's states: `pending` (runnable at its `run_after`), `active` (leased until its lease
//! expires), `done` (completed or skipped) and `dead` (failed, timed out or cancelled; a dead
//! task can be run again as the same execution).

use super::{NewTask, QueueCounts, Task, TaskInfo};
use crate::store::sql::Stmt;
use crate::store::Database;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration;
use uuid::Uuid;

/// A task to finish: its id, how its execution ended (`completed`, `skipped`, `failed`,
/// `cancelled`, `timed_out`, …) and the error.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: Uuid,
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// What a lease call asks of a backend: up to `n` tasks, each queue chosen as the picker would,
/// starting from the picker's state in `queues`.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    pub n: usize,
    /// Strict priority: the heaviest non-empty queue first.
    pub strict: bool,
    /// (name, weight, credit) of the queues this process takes from, heaviest first.
    pub queues: &'a [(String, i64, i64)],
    pub lease: Lease<'a>,
}

/// The terms of the leases a call takes or extends: from `now`, for `length`, held by `owner`
/// (this process's id).
#[derive(Debug, Clone, Copy)]
pub struct Lease<'a> {
    pub now: DateTime<Utc>,
    pub length: Duration,
    pub owner: &'a str,
}

impl Lease<'_> {
    /// When a lease taken on these terms expires.
    pub fn until(&self) -> DateTime<Utc> {
        self.now + chrono::Duration::from_std(self.length).unwrap_or_default()
    }
}

/// A task a lease call took.
#[derive(Debug, Clone, PartialEq)]
pub struct Leased {
    /// How many of [`Claimed::empties`] were found empty before its queue was chosen.
    pub before: usize,
    /// The queue it was taken from.
    pub queue: String,
    pub task: Task,
}

/// What a lease call took: the tasks, and the queues it found empty, in the order it found
/// them (so that the front's picker can replay its choices).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claimed {
    pub empties: Vec<String>,
    pub tasks: Vec<Leased>,
}

/// A queue backend. Every method is one atomic step in the backend (a statement or transaction,
/// a Lua script); none of them waits for a task to arrive.
#[async_trait::async_trait]
pub trait QueueBackend: Send + Sync {
    /// Enqueues a task (with `t.id` set); false when a task for the same job and fire exists.
    async fn enqueue(&self, t: &NewTask) -> anyhow::Result<bool> {
        Ok(self.enqueue_many(std::slice::from_ref(t)).await? == 1)
    }

    /// Enqueues a task (as [`QueueBackend::enqueue`]) and runs `record` on `db` with it: in one
    /// transaction where the queue lives in that database, else the record first (so the task
    /// never runs without it). False when a task for the same job and fire exists.
    async fn enqueue_recorded(
        &self,
        t: &NewTask,
        db: &Database,
        record: &Stmt,
    ) -> anyhow::Result<bool> {
        crate::store::rows::execute(db, record).await?;
        self.enqueue(t).await
    }

    /// Enqueues many tasks; returns how many were new.
    async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64>;

    /// Finishes the active tasks of `done` (as [`QueueBackend::finish`]) and leases up to
    /// `claim.n` runnable tasks. A failed call may have finished some of `done`; finishing a
    /// task again does nothing.
    async fn finish_and_claim(
        &self,
        done: &[Finished],
        claim: &Claim<'_>,
    ) -> anyhow::Result<Claimed>;

    /// Extends the leases of those of `ids` that are active and held by `lease.owner`, on
    /// `lease`'s terms; how many. (On Redis the lease is the owner's: every task it holds is
    /// extended, and those it holds that are not among `ids` and were leased more than two
    /// leases and 10 s ago are put back.)
    async fn heartbeat(&self, ids: &[Uuid], lease: &Lease<'_>) -> anyhow::Result<u64>;

    /// Marks an active task finished: `done` when it completed or was skipped, else `dead`.
    async fn finish(&self, done: &Finished) -> anyhow::Result<()>;

    /// Puts a failed task back to run again after `run_after`, behind its tenant's waiting
    /// tasks.
    async fn retry(&self, id: Uuid, run_after: DateTime<Utc>, error: &str) -> anyhow::Result<()>;

    /// Puts an active task back until `run_after`, its attempt given back (its tenant was at its
    /// concurrency limit), behind its tenant's waiting tasks.
    async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()>;

    /// Puts an active task back to `pending` at once, its attempt given back, in its place
    /// (shutdown).
    async fn release(&self, id: Uuid) -> anyhow::Result<()>;

    /// Runs a dead task again as the same execution, its attempts counted afresh; false if the
    /// task is not dead.
    async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool>;

    /// Cancels a task that has not started; false if it is not pending.
    async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool>;

    /// Cancels every pending task of a job (deleted); returns how many.
    async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64>;

    /// Puts active tasks whose lease expired before `now` back to `pending`, their attempt
    /// given back; returns how many.
    async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64>;

    /// Of `jobs`, those with a pending or active task.
    async fn busy_jobs(&self, jobs: &[String]) -> anyhow::Result<HashSet<String>>;

    /// Whether `job_id` has a pending or active task other than `id` that is not a later fire
    /// than `fire` (a run of an earlier fire, a retry, a manual run): the overlap check of the
    /// task of a fire when a worker leases it.
    async fn busy_besides(
        &self,
        job_id: &str,
        id: Uuid,
        fire: DateTime<Utc>,
    ) -> anyhow::Result<bool>;

    /// Takes back the pending tasks of `job_id`'s fires later than `after` (enqueued ahead of
    /// their instant: they have no execution yet), as if they had never been enqueued, so the
    /// same fire can be enqueued again; returns how many.
    async fn drop_fires_after(&self, job_id: &str, after: DateTime<Utc>) -> anyhow::Result<u64>;

    /// The versions of `job_id` that a pending or active task will run (a task without a
    /// version runs version 1).
    async fn versions_in_use(&self, job_id: &str) -> anyhow::Result<BTreeSet<i64>>;

    /// Tasks per state of every queue that has any; with a `tenant`, only that tenant's.
    async fn counts(
        &self,
        now: DateTime<Utc>,
        tenant: Option<&str>,
    ) -> anyhow::Result<BTreeMap<String, QueueCounts>>;

    /// One task as the API shows it.
    async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>>;

    /// Asks the worker processes sharing this backend to cancel a running execution; false when
    /// the backend has no way to reach other processes (the SQL queue: one host process).
    async fn signal_cancel(&self, id: Uuid) -> anyhow::Result<bool>;

    /// Worker slots and busy slots of every live worker process sharing this backend; `None`
    /// when this process is the only one (its pool knows).
    async fn cluster_slots(&self) -> anyhow::Result<Option<(usize, usize)>>;
}
