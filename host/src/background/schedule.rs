//! The scheduler's two services: [`fire`] enqueues due fires while this process leads (at
//! most a second apart, sooner when a fire is due), and [`reload`] picks up jobs uploaded,
//! changed, paused or deleted by other processes.

use super::pause;
use crate::cluster::Leadership;
use crate::scheduler::Scheduler;
use crate::worker::WorkerPool;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often [`reload`] reads the jobs of the store.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Fires due jobs while this process leads, until `stop`.
pub async fn fire(
    scheduler: Arc<Scheduler>,
    pool: Arc<WorkerPool>,
    leadership: Leadership,
    stop: CancellationToken,
) {
    loop {
        let wait = if leadership.is_leader() {
            tick(&scheduler, &pool).await
        } else {
            Duration::from_millis(500)
        };
        if !pause(&stop, wait).await {
            return;
        }
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

/// Reloads the scheduler's jobs from the store every [`RELOAD_EVERY`], until `stop`.
pub async fn reload(scheduler: Arc<Scheduler>, stop: CancellationToken) {
    while pause(&stop, RELOAD_EVERY).await {
        if let Err(e) = scheduler.reload(Utc::now()).await {
            tracing::warn!("reloading jobs failed: {e:#}");
        }
    }
}
