//! A worker process's heartbeat on Redis: its entry in the workers hash (slots, busy slots,
//! queues), renewed every [`RENEW_EVERY`]; counts drop entries not renewed for 10 s.

use super::pause;
use crate::cluster::{self, RENEW_EVERY};
use crate::queue::RedisQueue;
use crate::worker::WorkerPool;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Keeps this process's worker entry fresh until `stop`, then removes it.
pub async fn run(
    redis: RedisQueue,
    id: String,
    pool: Arc<WorkerPool>,
    queues: Vec<String>,
    stop: CancellationToken,
) {
    loop {
        if let Err(e) = cluster::heartbeat(&redis, &id, &pool, &queues).await {
            tracing::warn!("worker heartbeat: {e}");
        }
        if !pause(&stop, RENEW_EVERY).await {
            break;
        }
    }
    cluster::leave(&redis, &id).await;
}
