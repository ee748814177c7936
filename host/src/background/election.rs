//! Leader election on Redis: the processes that may schedule compete for the leader key; the
//! one holding it fires jobs and evaluates alerts ([`crate::cluster`] has the protocol).

use super::pause;
use crate::cluster::{self, Leadership, RENEW_EVERY};
use crate::queue::RedisQueue;
use tokio_util::sync::CancellationToken;

/// Competes for (and renews) leadership every [`RENEW_EVERY`] until `stop`; gives the key up
/// on the way out, so another process takes over at once.
pub async fn run(
    redis: RedisQueue,
    owner: String,
    leadership: Leadership,
    stop: CancellationToken,
) {
    loop {
        let lead = cluster::try_lead(&redis, &owner).await.unwrap_or_else(|e| {
            tracing::warn!("leader election: {e:#}");
            false
        });
        leadership.set(lead);
        if !pause(&stop, RENEW_EVERY).await {
            break;
        }
    }
    cluster::resign(&redis, &owner, &leadership).await;
}
