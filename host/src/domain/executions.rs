//! An execution's lifecycle: the use cases that move an execution between its states
//! ([`ExecutionStatus`]): cancel, retry, an attempt that will be retried.

use crate::queue::Queue;
use crate::store::platform as store;
use crate::store::Database;
pub use crate::store::ExecutionStatus;
use crate::worker::WorkerPool;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What cancelling did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// It had not started: it is cancelled and will not run.
    Cancelled,
    /// It is running (here or in another worker process): it stops within milliseconds.
    Stopping,
}

/// Why an execution could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("the execution is running in another process")]
    RunningElsewhere,
    #[error("the execution has just ended; its outcome is being recorded")]
    Ended,
    #[error("the execution is not pending or running (it is {0})")]
    NotCancellable(String),
    #[error("only a failed or cancelled execution can be retried (this one is {0})")]
    NotRetryable(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

impl From<sqlx::Error> for Refused {
    fn from(e: sqlx::Error) -> Refused {
        Refused::Store(e.into())
    }
}

/// What the lifecycle's use cases need: the records, the queue and this process's workers.
pub struct Lifecycle<'a> {
    pub db: &'a Database,
    pub queue: &'a Queue,
    pub pool: &'a std::sync::Arc<WorkerPool>,
}

impl Lifecycle<'_> {
    /// Cancels a pending or running execution of `tenant`. `shown` is the status the caller
    /// read, for the refusal's reason.
    pub async fn cancel(
        &self,
        tenant: &str,
        id: Uuid,
        shown: &str,
    ) -> Result<CancelOutcome, Refused> {
        if self.queue.cancel_pending(id).await? {
            let now = Utc::now();
            store::set_execution_status(
                self.db,
                tenant,
                id,
                ExecutionStatus::Cancelled,
                None,
                Some(now),
            )
            .await?;
            return Ok(CancelOutcome::Cancelled);
        }
        if self.pool.cancel(id) {
            return Ok(CancelOutcome::Stopping);
        }
        if self.pool.ended_unrecorded(id) {
            // Its task is still active on the queue until the record commits: not "stopping"
            // (it will not stop, it is over), nor running elsewhere.
            return Err(Refused::Ended);
        }
        let task = self.queue.task_info(id).await?.map(|i| i.state);
        if task.as_deref() == Some("active") {
            // Running in another worker process: it hears this and cancels.
            if self.queue.signal_cancel(id).await? {
                return Ok(CancelOutcome::Stopping);
            }
            // No other process to tell (the SQL queue): the task was leased by this pool's
            // lease call, which has not handed it over yet. Ask the pool again as it arrives.
            for _ in 0..50 {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                if self.pool.cancel(id) {
                    return Ok(CancelOutcome::Stopping);
                }
            }
            return Err(Refused::RunningElsewhere);
        }
        Err(Refused::NotCancellable(shown.to_string()))
    }

    /// Runs a failed or cancelled execution again, as the same execution.
    ///
    /// The record says `pending` before the task can be leased: a worker may take the task the
    /// moment it is back, and what it records (running, then the attempt's end) must come after,
    /// never be overwritten by this. A task that cannot be put back puts the record back too.
    pub async fn retry(&self, tenant: &str, id: Uuid, shown: &str) -> Result<(), Refused> {
        let refused = || Refused::NotRetryable(shown.to_string());
        let Ok(before) = shown.parse::<ExecutionStatus>() else {
            return Err(refused());
        };
        let pending = ExecutionStatus::Pending;
        let moved = store::move_execution_status(self.db, tenant, id, before, pending).await?;
        if !moved
            && crate::store::executions::get(self.db, id, Some(tenant))
                .await?
                .is_some()
        {
            // Its state changed since the caller read it (another retry, say).
            return Err(refused());
        }
        if !self.queue.requeue_dead(id, Utc::now()).await? {
            if moved {
                store::move_execution_status(self.db, tenant, id, pending, before).await?;
            }
            return Err(refused());
        }
        self.pool.notify();
        Ok(())
    }
}

/// Why a fire of a job with `overlap: skip` did not run.
pub const OVERLAP_SKIPPED: &str = "overlap: the previous run is still pending or active";

/// A schedule fire that does not run (a misfire, an overlap): its execution is recorded as
/// `skipped` with `reason`.
pub async fn skipped_fire(
    db: &Database,
    record: &store::NewExecution<'_>,
    reason: &str,
) -> Result<(), sqlx::Error> {
    store::record_skipped_fire(db, record, reason).await
}

/// An attempt failed and the next one is due at `at` (its task is back on the queue).
pub async fn retrying(
    db: &Database,
    tenant: &str,
    id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    store::set_execution_status(db, tenant, id, ExecutionStatus::Retrying, Some(at), None).await
}
