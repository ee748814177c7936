//! What processes sharing one Redis tell each other (scale-out): which of them is the scheduler,
//! which workers are alive and how busy, and which execution to cancel.
//!
//! - **Leader**: `{prefix}leader` holds the id of the process that schedules, set with `NX` and
//!   a 10 s expiry that the leader renews every 2 s. A process that dies stops renewing; another
//!   takes over within seconds. Fires stay idempotent across a change of leader (the compare-and-
//!   set on `jobs.next_run_at` and the `SET NX` of each fire).
//! - **Workers**: every worker process writes `{slots, busy, queues, host, pid, seen}` into the
//!   `{prefix}workers` hash every 2 s; counts add up the entries seen in the last 10 s and drop
//!   older ones (a killed worker drops out).
//! - **Cancel**: the API publishes an execution id on `{prefix}cancel`; every worker process
//!   listens and cancels it if it runs it.

use crate::queue::RedisQueue;
use crate::worker::WorkerPool;
use futures_util::StreamExt as _;
use redis::Script;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

const LEADER_TTL_MS: u64 = 10_000;
const RENEW_EVERY: Duration = Duration::from_secs(2);

/// Whether this process is the scheduler now.
#[derive(Clone)]
pub struct Leadership {
    is_leader: Arc<AtomicBool>,
}

impl Leadership {
    /// Always the leader (one process, no Redis).
    pub fn alone() -> Leadership {
        Leadership {
            is_leader: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Not the leader until [`run_leader_election`] wins.
    pub fn contender() -> Leadership {
        Leadership {
            is_leader: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }
}

/// Takes or renews the leader key; true while this process holds it.
pub async fn try_lead(redis: &RedisQueue, owner: &str) -> anyhow::Result<bool> {
    const RENEW: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"#;
    let mut con = redis.connection();
    let n: i64 = Script::new(RENEW)
        .key(format!("{}leader", redis.prefix()))
        .arg(owner)
        .arg(LEADER_TTL_MS)
        .invoke_async(&mut con)
        .await?;
    Ok(n == 1)
}

/// Competes for leadership until `stop`; gives the key up on the way out.
pub async fn run_leader_election(
    redis: RedisQueue,
    owner: String,
    leadership: Leadership,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        let lead = match try_lead(&redis, &owner).await {
            Ok(lead) => lead,
            Err(e) => {
                tracing::warn!("leader election: {e:#}");
                false
            }
        };
        if lead != leadership.is_leader() {
            tracing::info!(leader = lead, "scheduler leadership changed");
        }
        leadership.is_leader.store(lead, Ordering::SeqCst);
        tokio::time::sleep(RENEW_EVERY).await;
    }
    if leadership.is_leader() {
        const RESIGN: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
        let mut con = redis.connection();
        let _: Result<i64, _> = Script::new(RESIGN)
            .key(format!("{}leader", redis.prefix()))
            .arg(&owner)
            .invoke_async(&mut con)
            .await;
        leadership.is_leader.store(false, Ordering::SeqCst);
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Keeps this process's worker entry fresh until `stop`, then removes it.
pub async fn run_worker_registry(
    redis: RedisQueue,
    id: String,
    pool: Arc<WorkerPool>,
    queues: Vec<String>,
    stop: Arc<AtomicBool>,
) {
    let key = format!("{}workers", redis.prefix());
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    while !stop.load(Ordering::SeqCst) {
        let (slots, busy) = pool.utilisation();
        let entry = serde_json::json!({
            "slots": slots, "busy": busy, "queues": queues, "host": host,
            "pid": std::process::id(), "seen": now_ms(),
        });
        let mut con = redis.connection();
        if let Err(e) = redis::cmd("HSET")
            .arg(&key)
            .arg(&id)
            .arg(entry.to_string())
            .query_async::<i64>(&mut con)
            .await
        {
            tracing::warn!("worker registry: {e}");
        }
        tokio::time::sleep(RENEW_EVERY).await;
    }
    let mut con = redis.connection();
    let _: Result<i64, _> = redis::cmd("HDEL")
        .arg(&key)
        .arg(&id)
        .query_async(&mut con)
        .await;
}

/// Worker slots and busy slots: of every live worker process when the queue is shared (Redis),
/// else of this process's pool.
pub async fn slots(
    queue: &crate::queue::Queue,
    pool: &WorkerPool,
) -> anyhow::Result<(usize, usize)> {
    Ok(match queue.cluster_slots().await? {
        Some(slots) => slots,
        None => pool.utilisation(),
    })
}

/// Cancels the executions the API asks for, if this process runs them, until `stop`
/// (resubscribing after a lost connection).
pub async fn run_cancel_listener(redis: RedisQueue, pool: Arc<WorkerPool>, stop: Arc<AtomicBool>) {
    let channel = format!("{}cancel", redis.prefix());
    while !stop.load(Ordering::SeqCst) {
        let mut pubsub = match redis.client().get_async_pubsub().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cancel listener: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Err(e) = pubsub.subscribe(&channel).await {
            tracing::warn!("cancel listener: {e}");
            tokio::time::sleep(Duration::from_secs(1)).await;
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
                    None => break,
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                }
            }
        }
    }
}
