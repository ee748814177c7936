//! The scheduler's two services: [`fire`] enqueues due fires while this process leads (at
//! most a second apart, sooner when a fire is due), and [`reload`] picks up jobs uploaded,
//! changed, paused or deleted by other processes.

use super::pause;
use crate::cluster::Leadership;
use crate::scheduler::Scheduler;
use crate::worker::WorkerPool;
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often [`reload`] reads the jobs of the store.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Fires due jobs while this process leads, until `stop`: each fire is enqueued ahead of its
/// instant ([`crate::scheduler::LOOKAHEAD`]) and this process's pool is woken at the instant, so
/// it leases the task then rather than at its next poll.
pub async fn fire(
    scheduler: Arc<Scheduler>,
    pool: Arc<WorkerPool>,
    leadership: Leadership,
    stop: CancellationToken,
) {
    // The instants of the fires enqueued ahead, to wake the pool at.
    let mut ahead: BTreeSet<DateTime<Utc>> = BTreeSet::new();
    loop {
        let now = Utc::now();
        if ahead.first().is_some_and(|t| *t <= now) {
            ahead.retain(|t| *t > now);
            pool.notify();
        }
        let mut wait = if leadership.is_leader() {
            let (wait, fires) = tick(&scheduler, &pool).await;
            let now = Utc::now();
            ahead.extend(fires.into_iter().filter(|t| *t > now));
            wait
        } else {
            Duration::from_millis(500)
        };
        if let Some(first) = ahead.first() {
            wait = wait.min(until(*first));
        }
        if !pause(&stop, wait).await {
            return;
        }
    }
}

/// One scheduler tick (waking the pool when it enqueued fires already due): how long to wait
/// before the next (until the next fire enters the look-ahead, at most a second), and the
/// instants of the fires it enqueued.
pub async fn tick(scheduler: &Scheduler, pool: &WorkerPool) -> (Duration, Vec<DateTime<Utc>>) {
    match scheduler.tick(Utc::now()).await {
        Ok(tick) => {
            let now = Utc::now();
            if tick.enqueued.iter().any(|(_, fire, _)| *fire <= now) {
                pool.notify();
            }
            let wait = tick
                .next_due
                .map(|t| until(t - scheduler.lookahead()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1))
                .max(Duration::from_millis(5));
            let fires = tick.enqueued.into_iter().map(|(_, fire, _)| fire).collect();
            (wait, fires)
        }
        Err(e) => {
            tracing::warn!("scheduler tick failed: {e:#}");
            (Duration::from_secs(1), Vec::new())
        }
    }
}

/// How long from now until `t` (zero if it has passed).
fn until(t: DateTime<Utc>) -> Duration {
    (t - Utc::now()).to_std().unwrap_or_default()
}

/// Reloads the scheduler's jobs from the store every [`RELOAD_EVERY`], until `stop`.
pub async fn reload(scheduler: Arc<Scheduler>, stop: CancellationToken) {
    while pause(&stop, RELOAD_EVERY).await {
        if let Err(e) = scheduler.reload(Utc::now()).await {
            tracing::warn!("reloading jobs failed: {e:#}");
        }
    }
}
