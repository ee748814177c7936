//! The scheduler: turns each job's schedule into tasks on the queue, at the right instants.
//!
//! Every job's next fire time is kept in `jobs.next_run_at`. [`Scheduler::tick`] enqueues every
//! fire that falls due within [`LOOKAHEAD`] of `now` and moves the job's next fire on; the host
//! calls it in a loop (about once a second, sooner when a fire enters the window), tests call it
//! with a controlled clock.
//!
//! - **Ahead of time**: a fire is enqueued up to [`LOOKAHEAD`] before its instant, as a task
//!   that is not runnable before it (`run_after`), so at the instant it is already in the queue
//!   and the workers only have to lease it (the host's loop wakes its pool at the instant).
//!   Pausing, rescheduling or deleting a job takes back the fires it has in the queue ahead of
//!   their instant ([`Queue::drop_fires_after`]); a new version with another schedule does too.
//! - **Idempotent**: the task of a fire is unique on (job, fire time), and the move of
//!   `next_run_at` is a compare-and-set (of an enabled job), so a fire is enqueued once however
//!   often `tick` runs, across restarts and leader changes.
//! - **Misfires** (the host was down when a fire fell due): the missed fire runs once when the
//!   host is back, and the schedule continues from now — no backlog storm
//!   ([`MisfirePolicy::RunOnce`], the default); [`MisfirePolicy::Skip`] drops missed fires
//!   (recorded as a skipped execution).
//! - **Overlap** (the job's previous run still pending or active when a fire comes), by the job's
//!   `overlap:` — `skip` (default): the fire is recorded as a skipped execution with its reason
//!   (a fire already due is checked here; a fire enqueued ahead is checked by the worker that
//!   leases it, [`Queue::busy_besides`]); `queue`: the fire is enqueued and waits for the
//!   previous run; `allow`: it runs alongside.
//! - **Pause/resume**: a paused job does not fire; resuming computes the next fire from now.

use crate::domain::executions;
use crate::queue::{NewTask, Queue};
use crate::store::{platform, schedules, Database};
use chrono::{DateTime, Utc};
use codeai_cron::{CronExpr, Schedule as Fires, Tz};
use codeai_ir::{Manifest, Overlap, Schedule};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// What happens to fires that fell due while the host was down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MisfirePolicy {
    /// Run the missed fire once, then continue from now.
    #[default]
    RunOnce,
    /// Skip missed fires (older than the grace period) and continue from now.
    Skip,
}

/// A job the scheduler fires.
#[derive(Debug, Clone)]
pub struct ScheduledJob {
    pub job_id: String,
    pub tenant: String,
    pub version: i64,
    pub manifest: Arc<Manifest>,
    /// `None` for manual-only jobs.
    pub fires: Option<Fires>,
    pub enabled: bool,
    pub next_run_at: Option<DateTime<Utc>>,
}

/// Why a schedule cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("invalid cron expression `{expr}`: {message}")]
    Cron { expr: String, message: String },
    #[error("`{0}` is not an IANA timezone")]
    Timezone(String),
    #[error("`{0}` is not an RFC 3339 instant")]
    Instant(String),
}

/// The fire times of a manifest's schedule in its timezone.
pub fn fires_of(schedule: &Schedule, timezone: &str) -> Result<Option<Fires>, ScheduleError> {
    let tz = || -> Result<Tz, ScheduleError> {
        let name = if timezone.is_empty() { "UTC" } else { timezone };
        name.parse::<Tz>()
            .map_err(|_| ScheduleError::Timezone(name.to_string()))
    };
    Ok(match schedule {
        Schedule::Cron { expression } => Some(Fires::Cron {
            expr: CronExpr::parse(expression).map_err(|e| ScheduleError::Cron {
                expr: expression.clone(),
                message: e.to_string(),
            })?,
            tz: tz()?,
        }),
        Schedule::Interval { every_ms } => Some(Fires::Every(Duration::from_millis(*every_ms))),
        Schedule::Once { at } => Some(Fires::Once(
            DateTime::parse_from_rfc3339(at)
                .map_err(|_| ScheduleError::Instant(at.clone()))?
                .with_timezone(&Utc),
        )),
        Schedule::Manual => None,
    })
}

/// What one [`Scheduler::tick`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tick {
    /// (job name, fire time, task id) of every fire enqueued.
    pub enqueued: Vec<(String, DateTime<Utc>, Uuid)>,
    /// (job name, fire time, reason) of fires recorded as skipped.
    pub skipped: Vec<(String, DateTime<Utc>, String)>,
    /// The earliest next fire of any enabled job.
    pub next_due: Option<DateTime<Utc>>,
}

/// The log line of each fire enqueued (one per fire, at `info`).
fn log_fires(batch: &[NewTask]) {
    for task in batch {
        tracing::info!(
            job = %task.job_name,
            tenant = %task.tenant,
            execution = %task.id.map(|id| id.to_string()).unwrap_or_default(),
            fire_at = %task.fire_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            queue = %task.queue,
            "scheduled fire enqueued"
        );
    }
}

/// How many due fires [`Scheduler::tick`] moves on and enqueues together.
pub const FIRES_PER_BATCH: usize = 500;

/// How far ahead of its instant a fire is enqueued: more than a tick of 10,000 fires takes
/// (under a second on SQLite and on PostgreSQL + Redis), so they are all in the queue in time.
pub const LOOKAHEAD: chrono::Duration = chrono::Duration::seconds(5);

/// Fires jobs onto the queue.
pub struct Scheduler {
    db: Database,
    queue: Arc<Queue>,
    jobs: Mutex<BTreeMap<String, ScheduledJob>>,
    misfire: MisfirePolicy,
    /// A fire later than this is a misfire (default 60 s).
    grace: chrono::Duration,
    /// How far ahead fires are enqueued ([`LOOKAHEAD`]).
    lookahead: chrono::Duration,
    /// Held by a tick and by every change of a job's schedule, so that a job paused (or
    /// rescheduled) while a tick runs does not get a fire of the tick's enqueued after its
    /// fires ahead were taken back.
    changing: tokio::sync::Mutex<()>,
}

impl Scheduler {
    pub fn new(db: Database, queue: Arc<Queue>, misfire: MisfirePolicy) -> Scheduler {
        Scheduler {
            db,
            queue,
            jobs: Mutex::new(BTreeMap::new()),
            misfire,
            grace: chrono::Duration::seconds(60),
            lookahead: LOOKAHEAD,
            changing: tokio::sync::Mutex::new(()),
        }
    }

    /// How far ahead of their instant fires are enqueued.
    pub fn lookahead(&self) -> chrono::Duration {
        self.lookahead
    }

    fn db(&self) -> &Database {
        &self.db
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ScheduledJob>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The jobs this scheduler fires, by id.
    pub fn jobs(&self) -> Vec<ScheduledJob> {
        self.lock().values().cloned().collect()
    }

    pub fn job(&self, job_id: &str) -> Option<ScheduledJob> {
        self.lock().get(job_id).cloned()
    }

    /// Adds (or replaces) a registered job. Its stored `next_run_at` and `enabled` are kept when
    /// present; otherwise, or when it replaces the job with another schedule (whose fires ahead
    /// are taken back), the next fire is computed from `now` and stored. A job whose queue
    /// does not exist is refused ([`Queue::admit_job`]: the operator's jobs may declare queues,
    /// a tenant's may not).
    pub async fn add(
        &self,
        job_id: &str,
        tenant: &str,
        version: i64,
        manifest: Arc<Manifest>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<ScheduledJob> {
        let fires = fires_of(&manifest.schedule, &manifest.timezone)?;
        self.queue.admit_job(tenant, &manifest)?;
        let _changing = self.changing.lock().await;
        let changed = self.job(job_id).is_some_and(|j| {
            j.manifest.schedule != manifest.schedule || j.manifest.timezone != manifest.timezone
        });
        if changed {
            // Its fires ahead, and the next fire this scheduler moved on to, are of the
            // schedule it had: the new one takes effect from now.
            self.queue.drop_fires_after(job_id, now).await?;
        }
        let (enabled, stored) = schedules::state(self.db(), job_id).await?;
        let next_run_at = match stored {
            Some(t) if !changed => Some(t),
            _ => fires.as_ref().and_then(|f| f.next_after(now)),
        };
        schedules::set_next(self.db(), job_id, next_run_at).await?;
        let job = ScheduledJob {
            job_id: job_id.to_string(),
            tenant: tenant.to_string(),
            version,
            manifest,
            fires,
            enabled,
            next_run_at,
        };
        self.lock().insert(job_id.to_string(), job.clone());
        Ok(job)
    }

    /// Loads every job of the store with its current version (jobs uploaded, changed or
    /// paused by another process included) and forgets deleted ones. The operator's jobs come
    /// first: a tenant's job may run in a queue they declare.
    pub async fn reload(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        // Only jobs held before the read can be forgotten: one registered while it ran is not
        // in the rows read, and is not deleted.
        let held: std::collections::HashSet<String> = self.lock().keys().cloned().collect();
        let rows = crate::store::jobs::current(self.db(), platform::DEFAULT_TENANT).await?;
        let known: std::collections::HashSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        self.lock()
            .retain(|id, _| known.contains(id.as_str()) || !held.contains(id));
        for r in &rows {
            if self.job(&r.id).is_some_and(|j| {
                j.version == r.version
                    && j.enabled == r.enabled
                    && j.manifest.schedule == r.schedule
                    && j.manifest.timezone == r.timezone
            }) {
                continue;
            }
            let mut manifest: Manifest = match serde_json::from_str(&r.manifest) {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(job = %r.id, "stored manifest unreadable, job not scheduled: {e}");
                    continue;
                }
            };
            // The schedule it fires on is the row's: the manifest's, or the API's since.
            manifest.schedule = r.schedule.clone();
            manifest.timezone = r.timezone.clone();
            if let Err(e) = self
                .add(&r.id, &r.tenant_id, r.version, Arc::new(manifest), now)
                .await
            {
                tracing::warn!(job = %r.id, "job not scheduled: {e:#}");
            }
        }
        Ok(())
    }

    /// Forgets a job (deleted): it does not fire any more. (Its tasks, fires ahead included,
    /// are cancelled with the job: [`crate::domain::jobs::Jobs::delete`].)
    pub async fn remove(&self, job_id: &str) -> bool {
        let _changing = self.changing.lock().await;
        self.lock().remove(job_id).is_some()
    }

    /// Pauses a job: it does not fire until resumed, and the fires it has in the queue ahead of
    /// their instant are taken back (those already due stay). False if the job is unknown.
    pub async fn pause(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let _changing = self.changing.lock().await;
        if !self.lock().contains_key(job_id) {
            return Ok(false);
        }
        schedules::set_enabled(self.db(), job_id, false, None).await?;
        if let Some(job) = self.lock().get_mut(job_id) {
            job.enabled = false;
        }
        self.queue.drop_fires_after(job_id, now).await?;
        Ok(true)
    }

    /// Resumes a job; its next fire is computed from `now` (missed fires are not run).
    pub async fn resume(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let _changing = self.changing.lock().await;
        let Some(fires) = self.lock().get(job_id).map(|j| j.fires.clone()) else {
            return Ok(false);
        };
        let next = fires.and_then(|f| f.next_after(now));
        schedules::set_enabled(self.db(), job_id, true, Some(next)).await?;
        if let Some(job) = self.lock().get_mut(job_id) {
            job.enabled = true;
            job.next_run_at = next;
        }
        Ok(true)
    }

    /// Replaces a job's schedule and timezone (until a new version brings another one) with their
    /// `fires`, checked by the caller ([`crate::domain::jobs::Jobs::reschedule`]); the next fire
    /// is computed from `now`, and the fires of the old schedule in the queue ahead of their
    /// instant are taken back.
    pub async fn reschedule(
        &self,
        job_id: &str,
        schedule: &Schedule,
        timezone: &str,
        fires: Option<Fires>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        let _changing = self.changing.lock().await;
        let next = fires.as_ref().and_then(|f| f.next_after(now));
        schedules::set(self.db(), job_id, schedule, timezone, next).await?;
        self.queue.drop_fires_after(job_id, now).await?;
        if let Some(job) = self.lock().get_mut(job_id) {
            let mut manifest = (*job.manifest).clone();
            manifest.schedule = schedule.clone();
            manifest.timezone = timezone.to_string();
            job.manifest = Arc::new(manifest);
            job.fires = fires;
            job.next_run_at = next;
        }
        Ok(next)
    }

    /// The task that runs a job now with `input` (a JSON object), outside its schedule (see
    /// [`crate::domain::jobs::Jobs::trigger`], which queues it); `None` if the job is unknown.
    pub fn run_now(
        &self,
        job_id: &str,
        input: &str,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> Option<NewTask> {
        let job = self.job(job_id)?;
        Some(NewTask {
            id: Some(crate::queue::new_task_id()),
            tenant: job.tenant.clone(),
            job_id: job.job_id.clone(),
            job_name: job.manifest.name.clone(),
            job_version: Some(job.version),
            queue: job.manifest.queue.clone(),
            trigger: trigger.into(),
            input: input.into(),
            fire_at: None,
            run_after: now,
            max_attempts: i64::from(job.manifest.retry.max_retries) + 1,
            exclusive: job.manifest.overlap == Overlap::Queue,
        })
    }

    /// Enqueues every fire due within the look-ahead of `now` (each a task runnable from its
    /// instant) and moves each job's next fire on, [`FIRES_PER_BATCH`] at a time: one
    /// transaction moves a batch's next fires, one insert enqueues its tasks, so the first fires
    /// are in the queue while the later ones are being moved.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<Tick> {
        let _changing = self.changing.lock().await;
        let horizon = now + self.lookahead;
        let due: Vec<(ScheduledJob, DateTime<Utc>)> = self
            .lock()
            .values()
            .filter(|j| j.enabled)
            .filter_map(|j| Some((j.clone(), j.next_run_at.filter(|t| *t <= horizon)?)))
            .collect();
        let mut tick = Tick::default();
        if due.is_empty() {
            tick.next_due = self.next_due();
            return Ok(tick);
        }
        // One query for the overlap check of every job due now (a fire ahead is checked when
        // a worker leases it).
        let due_ids: Vec<String> = due
            .iter()
            .filter(|(_, fire)| *fire <= now)
            .map(|(j, _)| j.job_id.clone())
            .collect();
        let busy = self.queue.busy_jobs(&due_ids).await?;
        for chunk in due.chunks(FIRES_PER_BATCH) {
            // Past fires are not replayed one by one: continue from now.
            let moves: Vec<schedules::Advance<'_>> = chunk
                .iter()
                .map(|(job, fire)| schedules::Advance {
                    job_id: &job.job_id,
                    fired: *fire,
                    next: job
                        .fires
                        .as_ref()
                        .and_then(|f| f.next_after((*fire).max(now))),
                })
                .collect();
            let won = schedules::advance(self.db(), &moves).await?;
            let mut batch: Vec<NewTask> = Vec::with_capacity(chunk.len());
            for (((job, fire), moved), won) in chunk.iter().zip(&moves).zip(won) {
                let fire = *fire;
                if !won {
                    // Another scheduler moved it on, or another process paused it; take its
                    // values.
                    let (enabled, stored) = schedules::state(self.db(), &job.job_id).await?;
                    if let Some(j) = self.lock().get_mut(&job.job_id) {
                        j.enabled = enabled;
                        j.next_run_at = stored;
                    }
                    continue;
                }
                if let Some(j) = self.lock().get_mut(&job.job_id) {
                    j.next_run_at = moved.next;
                }
                let name = job.manifest.name.clone();
                if self.misfire == MisfirePolicy::Skip && now - fire > self.grace {
                    self.record_skipped(job, fire, "misfire: the host was down when it fell due")
                        .await?;
                    tracing::info!(job = %name, tenant = %job.tenant, fire_at = %fire.to_rfc3339(),
                        "scheduled fire skipped: misfire");
                    tick.skipped.push((name, fire, "misfire".into()));
                    continue;
                }
                let overlap = job.manifest.overlap;
                if overlap == Overlap::Skip && fire <= now && busy.contains(&job.job_id) {
                    let reason = executions::OVERLAP_SKIPPED;
                    self.record_skipped(job, fire, reason).await?;
                    tracing::info!(job = %name, tenant = %job.tenant, fire_at = %fire.to_rfc3339(),
                        "scheduled fire skipped: overlap");
                    tick.skipped.push((name, fire, reason.into()));
                    continue;
                }
                let id = crate::queue::new_task_id();
                batch.push(NewTask {
                    id: Some(id),
                    tenant: job.tenant.clone(),
                    job_id: job.job_id.clone(),
                    job_name: name.clone(),
                    job_version: Some(job.version),
                    queue: job.manifest.queue.clone(),
                    trigger: "schedule".into(),
                    input: "{}".into(),
                    fire_at: Some(fire),
                    run_after: fire,
                    max_attempts: i64::from(job.manifest.retry.max_retries) + 1,
                    exclusive: overlap == Overlap::Queue,
                });
                tick.enqueued.push((name, fire, id));
            }
            // The compare-and-set above makes this scheduler the only one enqueuing these
            // fires; the unique (job, fire) index would drop a duplicate anyway.
            self.queue.enqueue_many(&batch).await?;
            log_fires(&batch);
        }
        tick.next_due = self.next_due();
        Ok(tick)
    }

    /// The earliest next fire of any enabled job.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lock()
            .values()
            .filter(|j| j.enabled)
            .filter_map(|j| j.next_run_at)
            .min()
    }

    /// Records a fire that did not run as a skipped execution, with its reason.
    async fn record_skipped(
        &self,
        job: &ScheduledJob,
        fire: DateTime<Utc>,
        reason: &str,
    ) -> anyhow::Result<()> {
        let record = platform::NewExecution {
            id: crate::queue::new_task_id(),
            tenant: &job.tenant,
            job_id: &job.job_id,
            job_name: &job.manifest.name,
            job_version: Some(job.version),
            trigger: "schedule",
            queue: &job.manifest.queue,
            input: "{}",
            attempt: 0,
            max_attempts: 0,
            scheduled_at: Some(fire),
            started_at: fire,
        };
        executions::skipped_fire(self.db(), &record, reason).await?;
        Ok(())
    }
}
