//! The worker pool: N slots, each running one leased task at a time in a fresh instance.
//!
//! The pool's tasks:
//! - **Slots** (N): each asks the feeder for a task, runs it through the [`Executor`], and asks
//!   again. A slot does not wait for its execution's records to be committed: it hands the
//!   commit to the confirmer and takes its next task while the records are written.
//! - **The feeder** (one): makes the pool's queue calls, one at a time, each finishing the
//!   tasks whose records are committed and leasing as many tasks as there are slots waiting
//!   (by weight): one Redis round trip, however many of each. While a call is out, the next
//!   one's finishes and requests gather, so a busy pool makes fewer, larger calls. While
//!   executions are short (under [`SHORT`] on average) it also leases ahead
//!   ([`PoolConfig::prefetch`]), so a slot that ends one finds its next task waiting; at its
//!   own pace it tops that up once half of it is taken. Finishes go with the next lease, or on their own once [`FINISH_BATCH`] are waiting or the
//!   oldest has waited [`FINISH_WAIT`].
//! - **The confirmer** (one): waits for the commits, in order, and passes each task to the
//!   feeder to finish. A task leaves the queue only when its execution is recorded; if the host
//!   dies first, the task's lease runs out and it runs again (on SQLite, where the process holds
//!   its leases in memory, as soon as a host starts on the file again).
//! - **The heartbeat** (one): every `heartbeat`, extends the leases of all the tasks the pool
//!   holds (running or waiting for their commit) in one call.
//!
//! The pool's tasks share one room: `slots * 4`, plus [`UNFINISHED_REMOTE`] (PostgreSQL) or
//! [`UNFINISHED_EMBEDDED`] (SQLite), plus the most it may lease ahead. Running, ended but not yet
//! committed or finished, and leased ahead, each takes a place, so a slow database slows the
//! slots down instead of piling up unfinished tasks. When a task ends:
//! completed/skipped → `done`; failed with attempts left → back on the queue after the job's retry delay (fixed,
//! exponential, or the `retry_delays` list) and the execution shows `retrying`; otherwise →
//! `dead` and the job's `on_fail` event.
//!
//! Shutdown ([`WorkerPool::shutdown`]): stop taking tasks, let the active ones finish within
//! the grace period, then cancel the rest and put them back on the queue (their attempt given
//! back), so a restart runs them again; then finish the tasks whose commits are still out.

use crate::caps::JobCaps;
use crate::domain::executions::{self, ExecutionStatus};
use crate::executor::{is_final, Commit, Executor, Request};
use crate::queue::{retry_delay, Finished, Queue, Task};
use crate::runtime::{CancelToken, ExecOptions, PreparedJob, Status};
use crate::store::jobs::{self, StoredComponent};
use crate::store::tenants::{self, Tenant};
use crate::store::{platform, Database};
use chrono::{DateTime, Utc};
use codeai_ir::Overlap;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// A task that cannot run ends as a failed execution.
const FAILED: &str = ExecutionStatus::Failed.as_str();
const SKIPPED: &str = ExecutionStatus::Skipped.as_str();

/// How the pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Executions at once (default 10).
    pub slots: usize,
    /// How long the pool waits before asking the queue again after it found nothing to lease
    /// (default 50 ms; an enqueue in this process wakes it at once).
    pub poll: Duration,
    /// How often an active task's lease is extended (default 10 s).
    pub heartbeat: Duration,
    /// How long shutdown waits for active executions (default 30 s).
    pub grace: Duration,
    /// Tasks leased ahead for slots that are still busy, while executions are short (see
    /// [`SHORT`]), so a slot that ends one finds the next waiting instead of waiting a queue
    /// call for it (default: about [`AHEAD`] of the pool's work at its current pace, between 2
    /// and [`MAX_AHEAD`] per slot, topped up once half is taken; a number set here is kept
    /// topped up; 0 turns it off).
    pub prefetch: Option<usize>,
}

/// Executions shorter than this on average (over the last few dozen) make the pool lease
/// ahead ([`PoolConfig::prefetch`]); longer ones do not, so tasks do not wait behind long jobs
/// in one worker while another worker is idle.
pub const SHORT: Duration = Duration::from_millis(20);

/// How much of the pool's work it leases ahead by default: what its slots get through in this
/// time at their current pace. Enough to cover a queue call's round trip with room to spare
/// (a busy machine delays the call), and short enough that tasks held ahead by one worker do
/// not wait noticeably while another worker is idle.
pub const AHEAD: Duration = Duration::from_millis(10);

/// The most tasks leased ahead per slot by default (no-op jobs at ~20,000 a second would ask
/// for more).
pub const MAX_AHEAD: usize = 32;

/// Finishes wait to be made with others: a queue call finishes at least this many tasks, unless
/// it is made anyway (to lease) or the oldest has waited [`FINISH_WAIT`].
const FINISH_BATCH: usize = 64;

/// The longest a committed task waits to be finished on the queue with others.
const FINISH_WAIT: Duration = Duration::from_millis(2);

/// The pool's room besides its slots' share and what it may lease ahead, when its records go to
/// PostgreSQL: room for the tasks whose executions have ended while a batch of records is being
/// committed and the next gathers, and for their finishes. Twice a record batch (up to 2,048
/// records, an execution's start and end being two: `store::recorder::MAX_BATCH`) and twice a
/// finish batch: sized by measurement, not derived. A commit there is a round trip to another process; with 64 in its
/// place (before 2026-12-06) the slots of a pool running no-op jobs waited on the commits and a
/// fifth of both cores stood idle. This made the scale-out 11–29 % faster (BENCHMARKS.md); the
/// batches' cap going from 512 records to 2,048, and this room with it, another 20 % (the
/// median of 10 paired rounds, session 20).
///
/// What it costs: more tasks that ran but are not recorded yet when a host dies (they run again
/// once their leases run out: at least once, as before). The memory their records hold while
/// PostgreSQL is slow is bounded by the recorder's room (`store::recorder::HELD_BYTES`).
pub const UNFINISHED_REMOTE: usize = 2 * (crate::store::recorder::MAX_BATCH + FINISH_BATCH);

/// The same on SQLite, where a commit is a write in this process. [`UNFINISHED_REMOTE`] there
/// made no difference to `codeai bench throughput` and cost the workers 12–14 % in `api_load`'s
/// backlog, so SQLite keeps the room it had.
pub const UNFINISHED_EMBEDDED: usize = 64;

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            slots: 10,
            poll: Duration::from_millis(50),
            heartbeat: Duration::from_secs(10),
            grace: Duration::from_secs(30),
            prefetch: None,
        }
    }
}

/// Running executions, by execution id, with their cancel tokens.
type Active = Arc<Mutex<HashMap<Uuid, CancelToken>>>;

/// (job id, version).
type JobVersion = (String, i64);

/// Compiled components by (job id, version), loaded from `job_versions` on first use.
///
/// A component is never compiled in a worker slot: one that is neither prepared nor on disk is
/// handed to the runtime's compile pool (within the compile budget) and its task waits on the
/// queue meanwhile, so a slow compile never holds a slot the other jobs could use.
pub struct Components {
    executor: Arc<Executor>,
    cache: Arc<Mutex<HashMap<JobVersion, Arc<PreparedJob<JobCaps>>>>>,
    /// Compiles under way (`None`) or failed (`Some(why)`), by job version.
    compiling: Arc<Mutex<HashMap<JobVersion, Option<String>>>>,
}

/// A job version's component, as far as the worker can tell.
pub enum Component {
    Ready(Arc<PreparedJob<JobCaps>>),
    /// Being compiled in the compile pool: try again shortly.
    Compiling,
    /// It could not be compiled (over the compile budget, or invalid).
    Failed(String),
}

impl Components {
    pub fn new(executor: Arc<Executor>) -> Components {
        Components {
            executor,
            cache: Arc::default(),
            compiling: Arc::default(),
        }
    }

    /// The prepared component of a job version, if it needs no compiling; otherwise its compile
    /// is started in the compile pool (once) and [`Component::Compiling`] returned.
    pub async fn get(&self, job_id: &str, version: i64) -> anyhow::Result<Component> {
        let key = (job_id.to_string(), version);
        if let Some(job) = lock(&self.cache).get(&key) {
            return Ok(Component::Ready(job.clone()));
        }
        match lock(&self.compiling).get(&key) {
            Some(None) => return Ok(Component::Compiling),
            Some(Some(why)) => return Ok(Component::Failed(why.clone())),
            None => {}
        }
        let db = self.executor.services().db();
        // A version deleted since its task was queued: the caller drops the task.
        let gone = || sqlx::Error::RowNotFound;
        let bytes = match jobs::stored_component(db, job_id, version)
            .await?
            .ok_or_else(gone)?
        {
            StoredComponent::OwnSections(own) => {
                if let Some(job) = self.executor.runtime().prepare_stored_build(&own)? {
                    lock(&self.cache).insert(key, job.clone());
                    return Ok(Component::Ready(job));
                }
                // The runtime is not compiled yet: the whole component goes to the compile pool.
                jobs::component(db, job_id, version)
                    .await?
                    .ok_or_else(gone)?
            }
            StoredComponent::Whole(bytes) => bytes,
        };
        let executor = self.executor.clone();
        let (cached, bytes) =
            tokio::task::spawn_blocking(move || (executor.runtime().prepare_cached(&bytes), bytes))
                .await?;
        if let Some(job) = cached? {
            lock(&self.cache).insert(key, job.clone());
            return Ok(Component::Ready(job));
        }
        if lock(&self.compiling).insert(key.clone(), None).is_some() {
            return Ok(Component::Compiling);
        }
        let (executor, cache, compiling) = (
            self.executor.clone(),
            self.cache.clone(),
            self.compiling.clone(),
        );
        tokio::spawn(async move {
            match executor.runtime().prepare_budgeted(&bytes, None).await {
                Ok(job) => {
                    lock(&cache).insert(key.clone(), job);
                    lock(&compiling).remove(&key);
                }
                Err(e) => {
                    tracing::warn!(job = %key.0, version = key.1, "the component does not compile: {e}");
                    lock(&compiling).insert(key, Some(e.to_string()));
                }
            }
        });
        Ok(Component::Compiling)
    }

    /// Forgets job versions that are no longer stored (pruned, or their job deleted).
    pub fn forget(&self, job_id: &str, versions: &[i64]) {
        lock(&self.cache).retain(|(job, version), _| job != job_id || !versions.contains(version));
        lock(&self.compiling)
            .retain(|(job, version), _| job != job_id || !versions.contains(version));
    }
}

/// The pool.
pub struct WorkerPool {
    queue: Arc<Queue>,
    executor: Arc<Executor>,
    components: Arc<Components>,
    config: PoolConfig,
    /// Tasks the pool may hold at once (see the module's doc).
    room: Arc<Semaphore>,
    /// Leased tasks not yet finished or put back (their leases are heartbeated).
    held: Mutex<HashSet<Uuid>>,
    active: Active,
    feed: Mutex<Feed>,
    /// Wakes the feeder: a slot wants a task, a task is ready to finish, an enqueue, shutdown.
    kick: Notify,
    commits: mpsc::UnboundedSender<Committing>,
    /// The confirmer's end of `commits`, taken by [`WorkerPool::run`].
    confirms: Mutex<Option<mpsc::UnboundedReceiver<Committing>>>,
    stopping: Arc<AtomicBool>,
    busy: Arc<AtomicUsize>,
    /// Notified when an execution ends or the pool lets go of a task: what shutdown waits on.
    settled: Notify,
    /// Tasks this pool finished on the queue with their execution's final outcome.
    finished: AtomicU64,
    limits: TenantLimits,
    /// Platform failures in a row (backoff).
    failures: AtomicU32,
    /// Moving average of execution times, in µs (it starts long: no lease ahead until short
    /// executions have been seen).
    typical_us: AtomicU64,
    /// No slot takes a task before this instant (after a platform failure).
    paused_until: Mutex<Option<tokio::time::Instant>>,
    /// Executions running per tenant (for tenants with a concurrency limit).
    per_tenant: Mutex<HashMap<String, i64>>,
}

/// What the feeder has to do.
#[derive(Default)]
struct Feed {
    /// Slots waiting for a task, first come first served.
    wanting: VecDeque<oneshot::Sender<Task>>,
    /// Tasks leased ahead (with their room in the pool), for the next slots that ask.
    ready: VecDeque<(Task, OwnedSemaphorePermit)>,
    /// Tasks whose records are committed, to finish on the queue.
    done: Vec<Finished>,
    /// Their room in the pool, given back once they are finished.
    rooms: Vec<OwnedSemaphorePermit>,
    /// When the oldest of `done` was committed.
    done_since: Option<tokio::time::Instant>,
    /// An enqueue in this process since the feeder last looked.
    woken: bool,
}

/// A finished task whose records are being committed.
struct Committing {
    finished: Finished,
    commit: Commit,
    room: OwnedSemaphorePermit,
}

/// Tenants' limits, read from `tenants` and kept for a few seconds.
struct TenantLimits {
    db: Database,
    cache: Mutex<HashMap<String, (Option<Tenant>, std::time::Instant)>>,
}

impl TenantLimits {
    const FRESH: Duration = Duration::from_secs(5);

    async fn get(&self, tenant: &str) -> Option<Tenant> {
        if let Some((t, at)) = lock(&self.cache).get(tenant) {
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
        lock(&self.cache).insert(tenant.to_string(), (t.clone(), std::time::Instant::now()));
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
            if let Some(n) = lock(&self.pool.per_tenant).get_mut(t) {
                *n -= 1;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a task's attempt ended for the pool.
enum Ended {
    /// Final: finish the task once the records are committed.
    Final(Finished, Commit),
    /// Already put back or finished on the queue (a retry, a deferral, a release).
    Handled,
}

impl WorkerPool {
    pub fn new(queue: Arc<Queue>, executor: Arc<Executor>, config: PoolConfig) -> Arc<WorkerPool> {
        let db = executor.services().db().clone();
        let slots = config.slots.max(1);
        let (commits, confirms) = mpsc::unbounded_channel();
        Arc::new(WorkerPool {
            components: Arc::new(Components::new(executor.clone())),
            room: Arc::new(Semaphore::new(
                slots * 4
                    + match db {
                        Database::Postgres(_) => UNFINISHED_REMOTE,
                        Database::Sqlite(_) => UNFINISHED_EMBEDDED,
                    }
                    + config.prefetch.unwrap_or(MAX_AHEAD * slots),
            )),
            held: Mutex::new(HashSet::new()),
            queue,
            executor,
            config,
            active: Arc::new(Mutex::new(HashMap::new())),
            feed: Mutex::new(Feed::default()),
            kick: Notify::new(),
            commits,
            confirms: Mutex::new(Some(confirms)),
            stopping: Arc::new(AtomicBool::new(false)),
            busy: Arc::new(AtomicUsize::new(0)),
            settled: Notify::new(),
            finished: AtomicU64::new(0),
            limits: TenantLimits {
                db,
                cache: Mutex::new(HashMap::new()),
            },
            failures: AtomicU32::new(0),
            typical_us: AtomicU64::new(1_000_000),
            paused_until: Mutex::new(None),
            per_tenant: Mutex::new(HashMap::new()),
        })
    }

    /// Wakes the feeder (after an enqueue in this process).
    pub fn notify(&self) {
        lock(&self.feed).woken = true;
        self.kick.notify_one();
    }

    /// Forgets the compiled components of job versions no longer stored (executions running
    /// them finish).
    pub fn forget_versions(&self, job_id: &str, versions: &[i64]) {
        self.components.forget(job_id, versions);
    }

    /// Slots in the pool and slots running an execution.
    pub fn utilisation(&self) -> (usize, usize) {
        (self.config.slots, self.busy.load(Ordering::Relaxed))
    }

    /// How many tasks this pool has finished on the queue (their executions recorded with
    /// their final outcome).
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Returns once this pool has finished `n` tasks on the queue (see
    /// [`WorkerPool::finished`]), looking every millisecond: a wake-up at every execution's end
    /// would cost more than a bench measures.
    pub async fn until_finished(&self, n: u64) {
        while self.finished() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Cancels an execution this pool holds, running or leased ahead; false if it does not
    /// hold it. One leased ahead is run at once, cancelled before it starts, so it is recorded
    /// `cancelled` without waiting for a slot.
    pub fn cancel(self: &Arc<Self>, execution_id: Uuid) -> bool {
        let Some(token) = lock(&self.active).get(&execution_id).cloned() else {
            return false;
        };
        token.cancel();
        let waiting = {
            let mut feed = lock(&self.feed);
            let at = feed.ready.iter().position(|(t, _)| t.id == execution_id);
            at.and_then(|i| feed.ready.remove(i))
        };
        if let Some((task, room)) = waiting {
            let pool = self.clone();
            tokio::spawn(async move { pool.execute(task, room).await });
        }
        true
    }

    /// Whether an execution of this pool has ended and is waiting for its record's commit or
    /// its task's finish: too late to cancel, not yet recorded (it still shows `running`).
    pub fn ended_unrecorded(&self, execution_id: Uuid) -> bool {
        // One lock at a time. A leased task is made active before it is held, and stops being
        // active when its execution ends, before it stops being held (once finished).
        let held = lock(&self.held).contains(&execution_id);
        held && !lock(&self.active).contains_key(&execution_id)
    }

    /// Runs the pool until [`WorkerPool::shutdown`]: the slots, the feeder, the confirmer and
    /// the heartbeat (see the module's doc).
    pub async fn run(self: Arc<Self>) {
        let Some(confirms) = lock(&self.confirms).take() else {
            tracing::warn!("the worker pool is running already");
            return;
        };
        let feeder = tokio::spawn(self.clone().feeder());
        let confirmer = tokio::spawn(self.clone().confirmer(confirms));
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let slots: Vec<_> = (0..self.config.slots.max(1))
            .map(|_| tokio::spawn(self.clone().slot()))
            .collect();
        for slot in slots {
            let _ = slot.await;
        }
        self.drain().await;
        feeder.abort();
        confirmer.abort();
        heartbeat.abort();
    }

    /// Takes tasks from the feeder and runs them, until shutdown.
    async fn slot(self: Arc<Self>) {
        loop {
            if self.stopping.load(Ordering::SeqCst) {
                return;
            }
            let paused = *lock(&self.paused_until);
            if let Some(until) = paused.filter(|u| *u > tokio::time::Instant::now()) {
                tokio::time::sleep_until(until).await;
                continue;
            }
            let Ok(room) = self.room.clone().acquire_owned().await else {
                return;
            };
            let ahead = {
                let mut feed = lock(&self.feed);
                match feed.ready.pop_front() {
                    // A task leased ahead: this slot's room replaces the one it was held with.
                    Some((task, _)) => Ok(task),
                    None => {
                        let (tx, rx) = oneshot::channel();
                        feed.wanting.push_back(tx);
                        Err(rx)
                    }
                }
            };
            self.kick.notify_one();
            let task = match ahead {
                Ok(task) => task,
                Err(rx) => match rx.await {
                    Ok(task) => task,
                    Err(_) => return, // shutdown: the feeder let go of the waiting slots
                },
            };
            self.busy.fetch_add(1, Ordering::Relaxed);
            let started = std::time::Instant::now();
            self.execute(task, room).await;
            let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u64;
            let _ = self
                .typical_us
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some(t - t / 8 + took / 8)
                });
            self.busy.fetch_sub(1, Ordering::Relaxed);
            self.settled.notify_waiters();
        }
    }

    /// How many tasks to lease ahead now: none while executions are long; else the configured
    /// number, or about [`AHEAD`] of the pool's work at its current pace (`slots` executions
    /// every `typical_us`), at least two and at most [`MAX_AHEAD`] per slot.
    fn prefetch(&self) -> usize {
        lease_ahead(
            self.config.slots,
            self.typical_us.load(Ordering::Relaxed),
            self.config.prefetch,
        )
    }

    /// Makes the pool's queue calls: finishes committed tasks and leases tasks for waiting
    /// slots (and ahead, see [`PoolConfig::prefetch`]), one call at a time.
    async fn feeder(self: Arc<Self>) {
        // When the last call found nothing to lease: no new lease is tried before the poll
        // interval is over, unless an enqueue in this process wakes the feeder.
        let mut idle_since: Option<tokio::time::Instant> = None;
        loop {
            let stopping = self.stopping.load(Ordering::SeqCst);
            let (finished, rooms, want, ahead, unneeded, finish_in) = {
                let mut feed = lock(&self.feed);
                if std::mem::take(&mut feed.woken)
                    || idle_since.is_some_and(|t| t.elapsed() >= self.config.poll)
                {
                    idle_since = None;
                }
                let mut unneeded = Vec::new();
                if stopping {
                    feed.wanting.clear();
                    unneeded.extend(feed.ready.drain(..).map(|(t, _)| t.id));
                }
                let (want, ahead) = if idle_since.is_some() || stopping {
                    (0, Vec::new())
                } else {
                    // Lease ahead only with room in the pool to spare. At the pool's own pace
                    // (no configured number), top up once half of it is taken: one call for
                    // many tasks, not one per task (measured: ~7 % more no-op jobs/s).
                    let prefetch = self.prefetch();
                    let missing =
                        match self.config.prefetch.is_none() && feed.ready.len() > prefetch / 2 {
                            true => 0,
                            false => prefetch.saturating_sub(feed.ready.len()),
                        };
                    let ahead: Vec<OwnedSemaphorePermit> = (0..missing)
                        .map_while(|_| self.room.clone().try_acquire_owned().ok())
                        .collect();
                    (feed.wanting.len() + ahead.len(), ahead)
                };
                // Finishes go with a call made anyway, or in a batch of their own.
                let waited = feed.done_since.map(|t| t.elapsed()).unwrap_or_default();
                let (finished, rooms, finish_in) = if want > 0
                    || stopping
                    || feed.done.len() >= FINISH_BATCH
                    || waited >= FINISH_WAIT
                {
                    feed.done_since = None;
                    (
                        std::mem::take(&mut feed.done),
                        std::mem::take(&mut feed.rooms),
                        None,
                    )
                } else {
                    let finish_in = feed.done_since.map(|_| FINISH_WAIT - waited);
                    (Vec::new(), Vec::new(), finish_in)
                };
                (finished, rooms, want, ahead, unneeded, finish_in)
            };
            // Back on the queue at once, in the order they were leased (each goes to the head
            // of its queue, so the last leased goes first).
            futures_util::future::join_all(unneeded.iter().rev().map(|id| self.put_back(*id)))
                .await;
            if finished.is_empty() && want == 0 {
                let now = tokio::time::Instant::now();
                let wake = [
                    idle_since.map(|since| since + self.config.poll),
                    finish_in.map(|d| now + d),
                ]
                .into_iter()
                .flatten()
                .min();
                match wake {
                    Some(at) => tokio::select! {
                        _ = self.kick.notified() => {}
                        _ = tokio::time::sleep_until(at) => {}
                    },
                    None => self.kick.notified().await,
                }
                continue;
            }
            match self
                .queue
                .finish_and_dequeue(&finished, Utc::now(), want)
                .await
            {
                Ok(tasks) => {
                    self.finished
                        .fetch_add(finished.len() as u64, Ordering::Relaxed);
                    {
                        // Cancellable from the lease on, running or not (`WorkerPool::cancel`);
                        // active before held, so that a held task not active has ended
                        // (`WorkerPool::ended_unrecorded`).
                        let mut active = lock(&self.active);
                        for t in &tasks {
                            active.insert(t.id, CancelToken::new());
                        }
                    }
                    {
                        let mut held = lock(&self.held);
                        for f in &finished {
                            held.remove(&f.id);
                        }
                        held.extend(tasks.iter().map(|t| t.id));
                    }
                    self.settled.notify_waiters();
                    drop(rooms);
                    if tasks.len() < want {
                        idle_since = Some(tokio::time::Instant::now());
                    }
                    let mut ahead = ahead.into_iter();
                    for task in tasks {
                        let unsent = {
                            let mut feed = lock(&self.feed);
                            match feed.wanting.pop_front() {
                                Some(slot) => slot.send(task).err(),
                                None => match ahead.next() {
                                    Some(room) => {
                                        feed.ready.push_back((task, room));
                                        None
                                    }
                                    None => Some(task),
                                },
                            }
                        };
                        if let Some(task) = unsent {
                            // The slot is gone (shutdown): back on the queue.
                            self.put_back(task.id).await;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("the queue call failed: {e:#}; retrying");
                    {
                        let mut feed = lock(&self.feed);
                        if !finished.is_empty() {
                            feed.done_since
                                .get_or_insert_with(tokio::time::Instant::now);
                        }
                        feed.done.splice(0..0, finished);
                        feed.rooms.extend(rooms);
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Waits for the commits of finished tasks, in order, and passes each to the feeder.
    async fn confirmer(self: Arc<Self>, mut confirms: mpsc::UnboundedReceiver<Committing>) {
        while let Some(c) = confirms.recv().await {
            match c.commit.wait().await {
                Ok(()) => {
                    self.failures.store(0, Ordering::Relaxed);
                    {
                        let mut feed = lock(&self.feed);
                        feed.done_since
                            .get_or_insert_with(tokio::time::Instant::now);
                        feed.done.push(c.finished);
                        feed.rooms.push(c.room);
                    }
                    self.kick.notify_one();
                }
                Err(e) => {
                    let id = c.finished.id;
                    let pause = self.failed();
                    tracing::error!(execution = %id,
                        "recording the execution failed: {e}; back on the queue, pausing {pause:?}");
                    self.put_back(id).await;
                }
            }
        }
    }

    /// Extends the leases of the tasks the pool holds, every `heartbeat`.
    async fn heartbeat(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.config.heartbeat).await;
            let ids: Vec<Uuid> = lock(&self.held).iter().copied().collect();
            if let Err(e) = self.queue.heartbeat(&ids, Utc::now()).await {
                tracing::warn!(tasks = ids.len(), "heartbeat failed: {e:#}");
            }
        }
    }

    /// A platform failure (the database is down, say): the slots pause for a growing time
    /// before taking tasks, so a restart of the database is waited out instead of burning
    /// through the queue. The pause.
    fn failed(&self) -> Duration {
        let n = self.failures.fetch_add(1, Ordering::Relaxed).min(7);
        let pause = Duration::from_millis(100 << n);
        *lock(&self.paused_until) = Some(tokio::time::Instant::now() + pause);
        pause
    }

    /// Puts a held task back on the queue, its attempt given back (if the queue answers;
    /// otherwise its lease runs out and it is rescued); it is no longer cancellable here.
    async fn put_back(&self, id: Uuid) {
        lock(&self.active).remove(&id);
        if let Err(e) = self.queue.release(id).await {
            tracing::warn!(%id, "putting a task back failed: {e:#}; it goes back once its lease runs out");
        }
        self.let_go(id);
    }

    /// Runs one task and sees to its end on the queue.
    async fn execute(&self, task: Task, room: OwnedSemaphorePermit) {
        // The feeder made the task's token when it leased the task.
        let cancel = lock(&self.active).entry(task.id).or_default().clone();
        let outcome = self.attempt(&task, cancel).await;
        lock(&self.active).remove(&task.id);
        match outcome {
            Ok(Ended::Final(finished, commit)) => {
                let c = Committing {
                    finished,
                    commit,
                    room,
                };
                if let Err(mpsc::error::SendError(c)) = self.commits.send(c) {
                    // The confirmer is gone (the runtime is ending): wait here.
                    if c.commit.wait().await.is_ok() {
                        let _ = self
                            .finish(task.id, c.finished.outcome, c.finished.error.as_deref())
                            .await;
                    }
                    self.let_go(task.id);
                }
            }
            Ok(Ended::Handled) => {
                self.failures.store(0, Ordering::Relaxed);
                self.let_go(task.id);
            }
            Err(e) => {
                // The platform failed, not the job: put the task back and pause the slots.
                let pause = self.failed();
                tracing::error!(execution = %task.id, job = %task.job_name,
                    "task failed to run: {e:#}; back on the queue, pausing {pause:?}");
                self.put_back(task.id).await;
            }
        }
    }

    /// Runs one attempt of a task. A final end is finished on the queue by the feeder once its
    /// records are committed; any other end is seen to here, after the commit.
    async fn attempt(&self, task: &Task, cancel: CancelToken) -> anyhow::Result<Ended> {
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
                return Ok(Ended::Handled);
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
            Ok(Component::Ready(job)) => job,
            Ok(Component::Compiling) => {
                // Compiling in the compile pool, not in this slot: back on the queue a moment.
                let at = Utc::now() + chrono::Duration::milliseconds(250);
                self.queue.defer(task.id, at).await?;
                return Ok(Ended::Handled);
            }
            Ok(Component::Failed(why)) => {
                let error = format!("the job's component could not be compiled: {why}");
                self.finish(task.id, FAILED, Some(&error)).await?;
                return Ok(Ended::Handled);
            }
            Err(e) if is_row_not_found(&e) => {
                // The job was deleted: nothing can run this task, now or later.
                let error = "the job's component is gone: the job was deleted, or this version \
                             was pruned (a tenant keeps its newest versions); run the job again";
                self.finish(task.id, FAILED, Some(error)).await?;
                return Ok(Ended::Handled);
            }
            Err(e) => return Err(e),
        };
        if task.attempt == 1 && self.overlaps(task, &job).await? {
            return Ok(Ended::Handled);
        }
        let (recorded, commit) = self
            .executor
            .run_uncommitted(
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
        drop(slot);
        let r = &recorded.result;
        if is_final(r.status, task.attempt, task.max_attempts)
            && !(self.stopping.load(Ordering::SeqCst) && r.status == Status::Cancelled)
        {
            let finished = Finished {
                id: task.id,
                outcome: r.status.as_str(),
                error: r.error.clone(),
            };
            return Ok(Ended::Final(finished, commit));
        }
        commit.wait().await?;
        if r.status == Status::Cancelled {
            // Cancelled by shutdown, not by a user: back on the queue for the next start.
            self.queue.release(task.id).await?;
            return Ok(Ended::Handled);
        }
        let manifest = job.manifest();
        let retry = u32::try_from(task.attempt).unwrap_or(u32::MAX);
        let delay = retry_delay(&manifest.retry.backoff, retry);
        let at: DateTime<Utc> = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        self.queue
            .retry(task.id, at, r.error.as_deref().unwrap_or(r.status.as_str()))
            .await?;
        executions::retrying(self.executor.services().db(), &task.tenant, task.id, at).await?;
        Ok(Ended::Handled)
    }

    /// Whether `task` is the fire of a job with `overlap: skip` whose previous run is still
    /// pending or active; if so, its execution is recorded as skipped and the task finished.
    /// (The scheduler checks the fires due when it enqueues them; a fire enqueued ahead of its
    /// instant is checked here, when it comes to run.)
    async fn overlaps(&self, task: &Task, job: &PreparedJob<JobCaps>) -> anyhow::Result<bool> {
        let Some(fire) = task.fire_at else {
            return Ok(false);
        };
        if task.trigger != "schedule" || job.manifest().overlap != Overlap::Skip {
            return Ok(false);
        }
        if !self.queue.busy_besides(&task.job_id, task.id, fire).await? {
            return Ok(false);
        }
        let reason = executions::OVERLAP_SKIPPED;
        let record = platform::NewExecution {
            id: task.id,
            tenant: &task.tenant,
            job_id: &task.job_id,
            job_name: &task.job_name,
            job_version: task.job_version,
            trigger: &task.trigger,
            queue: &task.queue,
            input: &task.input,
            attempt: 0,
            max_attempts: 0,
            scheduled_at: Some(fire),
            started_at: Utc::now(),
        };
        executions::skipped_fire(self.executor.services().db(), &record, reason).await?;
        self.finish(task.id, SKIPPED, Some(reason)).await?;
        tracing::info!(job = %task.job_name, tenant = %task.tenant, fire_at = %fire.to_rfc3339(),
            "scheduled fire skipped: overlap");
        Ok(true)
    }

    /// Finishes a task on the queue at once (not through the feeder), counted in
    /// [`WorkerPool::finished`].
    async fn finish(
        &self,
        id: Uuid,
        outcome: &'static str,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        self.queue.finish(id, outcome, error).await?;
        self.finished.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The pool no longer holds the task `id`.
    fn let_go(&self, id: Uuid) {
        lock(&self.held).remove(&id);
        self.settled.notify_waiters();
    }

    /// Returns once `done` holds, checking it each time an execution ends or a task is let go
    /// (`kick` first wakes the feeder, which finishes what is committed).
    async fn settle(&self, kick: bool, done: impl Fn() -> bool) {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if done() {
                return;
            }
            if kick {
                self.kick.notify_one();
            }
            settled.await;
        }
    }

    /// Stops taking tasks, waits up to the grace period for active executions, then cancels the
    /// rest (they go back on the queue) and waits (up to 10 s) for them to end, and waits (up
    /// to 10 s) for the commits still out and their tasks to be finished on the queue. (An
    /// execution that has ended may still wait for its record's room or commit while the
    /// database is stuck; its task runs again once its lease runs out.)
    pub async fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.kick.notify_one();
        let idle = || self.busy.load(Ordering::Relaxed) == 0;
        let _ = tokio::time::timeout(self.config.grace, self.settle(false, idle)).await;
        let left: Vec<CancelToken> = lock(&self.active).values().cloned().collect();
        for token in &left {
            token.cancel();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.settle(false, idle)).await;
        self.drain().await;
    }

    /// Waits (up to 10 s) until the pool holds no task: the last commits are in and their
    /// tasks finished on the queue.
    async fn drain(&self) {
        let drained = || lock(&self.held).is_empty();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.settle(true, drained)).await;
    }
}

/// Tasks to lease ahead for a pool of `slots` whose executions take `typical_us` on average
/// (see [`WorkerPool::prefetch`]).
fn lease_ahead(slots: usize, typical_us: u64, configured: Option<usize>) -> usize {
    if typical_us >= SHORT.as_micros() as u64 {
        return 0;
    }
    let slots = slots.max(1);
    configured.unwrap_or_else(|| {
        let pace = slots as u64 * AHEAD.as_micros() as u64 / typical_us.max(1);
        usize::try_from(pace)
            .unwrap_or(usize::MAX)
            .clamp(2 * slots, MAX_AHEAD * slots)
    })
}

fn is_row_not_found(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<sqlx::Error>(),
        Some(sqlx::Error::RowNotFound)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_leases_about_ten_ms_of_work_ahead_while_jobs_are_short() {
        // 10 slots at 1 ms a job get through 100 tasks in 10 ms.
        assert_eq!(lease_ahead(10, 1_000, None), 100);
        assert_eq!(lease_ahead(4, 2_500, None), 16);
        // Very short jobs: at most 32 per slot; jobs near the limit: at least 2 per slot.
        assert_eq!(lease_ahead(10, 20, None), 320);
        assert_eq!(lease_ahead(10, 0, None), 320);
        assert_eq!(lease_ahead(10, 19_000, None), 20);
        // Long jobs (and a pool that has not run any yet, at 1 s): nothing ahead, configured
        // or not.
        assert_eq!(lease_ahead(10, 20_000, None), 0);
        assert_eq!(lease_ahead(10, 1_000_000, Some(50)), 0);
        // A configured number wins while jobs are short.
        assert_eq!(lease_ahead(10, 1_000, Some(5)), 5);
        assert_eq!(lease_ahead(0, 1_000, None), 10);
    }
}
