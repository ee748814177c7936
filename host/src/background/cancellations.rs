//! Cancellation across processes on Redis: the API publishes the id of an execution to cancel;
//! every worker process listens and cancels it if it runs it.

use super::pause;
use crate::cluster;
use crate::queue::RedisQueue;
use crate::worker::WorkerPool;
use futures_util::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Cancels the executions the API asks for, if this process runs them, until `stop`
/// (subscribing again after a lost connection).
pub async fn run(redis: RedisQueue, pool: Arc<WorkerPool>, stop: CancellationToken) {
    let channel = cluster::cancel_channel(&redis);
    loop {
        let mut pubsub = match redis.client().get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cancel listener: {e}");
                if !pause(&stop, Duration::from_secs(1)).await {
                    return;
                }
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!("cancel listener: {e}");
            if !pause(&stop, Duration::from_secs(1)).await {
                return;
            }
            continue;
        }
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => {
                        let payload: String = msg.get_payload().unwrap_or_default();
                        if let Ok(id) = Uuid::parse_str(&payload) {
                            if pool.cancel(id) {
                                tracing::info!(execution = %id, "cancelled on request");
                            }
                        }
                    }
                    // The connection was lost: subscribe again.
                    None => break,
                },
                _ = stop.cancelled() => return,
            }
        }
    }
}
