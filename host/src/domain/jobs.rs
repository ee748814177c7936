//! A job's lifecycle after registration: run it now, pause and resume it, give it another
//! schedule, delete it. Each use case here is the only place that does it; the HTTP API calls
//! them.
//!
//! - **Run now**: the pending execution and its task are written together — in one transaction
//!   on the SQL queue; on Redis the record first, so a task never runs without its record, and a
//!   task that could not be queued leaves its execution `failed` with the reason.
//! - **Pause/resume/reschedule** go through this process's scheduler when it holds the job, and
//!   to the stored job alone otherwise (every scheduler reads it at its next load).
//! - **Delete**: the job stops firing, its pending runs are cancelled, its rows and the bytes
//!   only it used are gone.

use crate::queue::Queue;
use crate::quotas::JobStorage;
use crate::scheduler::{fires_of, ScheduleError, Scheduler};
use crate::store::{platform, quotas, schedules, Database, ExecutionStatus};
use crate::worker::WorkerPool;
use chrono::{DateTime, Utc};
use codeai_ir::Schedule;
use uuid::Uuid;

/// What the jobs' use cases need: the records, the queue, this process's scheduler and workers.
#[derive(Clone, Copy)]
pub struct Jobs<'a> {
    pub db: &'a Database,
    pub queue: &'a Queue,
    pub scheduler: &'a Scheduler,
    pub storage: JobStorage<'a>,
}

/// A run asked for outside the schedule.
pub struct RunNow<'a> {
    /// A JSON object.
    pub input: &'a str,
    /// `manual`, `api`, …
    pub trigger: &'a str,
    pub now: DateTime<Utc>,
    /// Not before this instant (`now` at the earliest).
    pub run_after: DateTime<Utc>,
    /// The execution's id (chosen by the caller: an idempotency key names it before it
    /// exists).
    pub id: Uuid,
    /// The W3C trace context the request carried: the parent of the execution's span.
    pub traceparent: Option<&'a str>,
    /// The event that set the run off (`trigger: on(E)`).
    pub event_id: Option<&'a str>,
}

impl<'a> Jobs<'a> {
    fn pool(&self) -> &'a WorkerPool {
        self.storage.pool
    }

    /// Runs a job now with `input` (a JSON object) outside its schedule: a `pending` execution
    /// and its task. `None` if this process does not hold the job.
    pub async fn trigger(
        &self,
        job_id: &str,
        input: &str,
        trigger: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Uuid>> {
        let run = RunNow {
            input,
            trigger,
            now,
            run_after: now,
            id: crate::queue::new_task_id(),
            traceparent: None,
            event_id: None,
        };
        self.trigger_at(job_id, run).await
    }

    /// [`Jobs::trigger`] for a run as [`RunNow`] describes it: not before `run_after`, as the
    /// execution `id`, with the caller's trace context.
    pub async fn trigger_at(&self, job_id: &str, run: RunNow<'_>) -> anyhow::Result<Option<Uuid>> {
        let RunNow {
            input,
            trigger,
            now,
            run_after,
            id,
            traceparent,
            event_id,
        } = run;
        let Some(task) = self.scheduler.run_now(job_id, input, trigger, now) else {
            return Ok(None);
        };
        // The task has its id: the execution's.
        let run_after = run_after.max(now);
        let task = crate::queue::NewTask {
            id: Some(id),
            run_after,
            ..task
        };
        let record = platform::NewExecution {
            id,
            tenant: &task.tenant,
            job_id,
            job_name: &task.job_name,
            job_version: task.job_version,
            trigger,
            queue: &task.queue,
            input,
            attempt: 0,
            max_attempts: task.max_attempts,
            scheduled_at: Some(run_after),
            started_at: now,
        };
        let queued = self
            .queue
            .enqueue_recorded(
                &task,
                self.db,
                &platform::pending_execution(&record, traceparent, event_id),
            )
            .await;
        if let Err(e) = queued {
            let error = format!("it could not be queued: {e:#}");
            platform::end_execution(self.db, &task.tenant, id, ExecutionStatus::Failed, &error)
                .await?;
            return Err(e);
        }
        self.pool().notify();
        Ok(Some(id))
    }

    /// Pauses a job: it does not fire until resumed, and its fires enqueued ahead of their
    /// instant are taken back (running executions and fires already due go on).
    pub async fn pause(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        if !self.scheduler.pause(job_id, now).await? {
            schedules::set_enabled(self.db, job_id, false, None).await?;
            self.queue.drop_fires_after(job_id, now).await?;
        }
        Ok(())
    }

    /// Resumes a job: its next fire is computed from `now` (missed fires do not run).
    pub async fn resume(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        if !self.scheduler.resume(job_id, now).await? {
            schedules::set_enabled(self.db, job_id, true, None).await?;
        }
        Ok(())
    }

    /// Gives a job another schedule (cron, interval or one time) in `timezone`; its next fire is
    /// computed from `now`. It holds until a new version of the job brings another one
    /// ([`crate::store::platform::register_job`]). Both are checked before anything changes: an
    /// invalid one is refused with its [`ScheduleError`] and the job keeps its schedule.
    pub async fn reschedule(
        &self,
        job_id: &str,
        schedule: &Schedule,
        timezone: &str,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<DateTime<Utc>>> {
        // An interval does not need its timezone, but a later cron schedule would.
        if timezone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ScheduleError::Timezone(timezone.to_string()).into());
        }
        let fires = fires_of(schedule, timezone)?;
        self.scheduler
            .reschedule(job_id, schedule, timezone, fires, now)
            .await
    }

    /// Deletes a job: it stops firing, its pending runs are cancelled (their executions say
    /// "job deleted"), its versions and row are removed, and the compiled components no other
    /// stored version has are forgotten. Running executions finish.
    pub async fn delete(&self, job_id: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        self.scheduler.remove(job_id).await;
        self.queue.cancel_job(job_id).await?;
        platform::cancel_pending_of_job(self.db, job_id, "job deleted", now).await?;
        let versions = quotas::versions(self.db, job_id).await?;
        platform::delete_job(self.db, job_id).await?;
        // Its bytes are free.
        self.storage.forget(job_id, &versions).await
    }
}
