//! The lease reaper: puts back on the queue the tasks whose lease expired (their worker
//! crashed or lost its connection), so that they run again: at-least-once.

use super::pause;
use crate::queue::Queue;
use chrono::Utc;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rescues expired leases every `every`, until `stop`.
pub async fn run(queue: Arc<Queue>, every: Duration, stop: CancellationToken) {
    loop {
        match queue.rescue_expired(Utc::now()).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!("rescued {n} task(s) whose lease expired"),
            Err(e) => tracing::warn!("rescue failed: {e:#}"),
        }
        if !pause(&stop, every).await {
            return;
        }
    }
}
