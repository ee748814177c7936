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
use redis::Script;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const LEADER_TTL_MS: u64 = 10_000;
/// How often the leader renews its key and workers their entries.
pub const RENEW_EVERY: Duration = Duration::from_secs(2);

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

    /// Not the leader until the election ([`crate::background::election`]) wins.
    pub fn contender() -> Leadership {
        Leadership {
            is_leader: Arc::new(AtomicBool::new(false)),
        }
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::SeqCst)
    }

    /// Records whether this process holds the leader key now.
    pub(crate) fn set(&self, lead: bool) {
        if lead != self.is_leader.swap(lead, Ordering::SeqCst) {
            tracing::info!(leader = lead, "scheduler leadership changed");
        }
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

/// Gives the leader key up if this process holds it (on the way out).
pub async fn resign(redis: &RedisQueue, owner: &str, leadership: &Leadership) {
    if !leadership.is_leader() {
        return;
    }
    const RESIGN: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;
    let mut con = redis.connection();
    let _: Result<i64, _> = Script::new(RESIGN)
        .key(format!("{}leader", redis.prefix()))
        .arg(owner)
        .invoke_async(&mut con)
        .await;
    leadership.set(false);
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Writes this worker process's entry: its slots, how many are busy, its queues.
pub async fn heartbeat(
    redis: &RedisQueue,
    id: &str,
    pool: &WorkerPool,
    queues: &[String],
) -> redis::RedisResult<()> {
    let (slots, busy) = pool.utilisation();
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    let entry = serde_json::json!({
        "slots": slots, "busy": busy, "queues": queues, "host": host,
        "pid": std::process::id(), "seen": now_ms(),
    });
    let mut con = redis.connection();
    redis::cmd("HSET")
        .arg(format!("{}workers", redis.prefix()))
        .arg(id)
        .arg(entry.to_string())
        .query_async::<i64>(&mut con)
        .await
        .map(drop)
}

/// Removes this worker process's entry.
pub async fn leave(redis: &RedisQueue, id: &str) {
    let mut con = redis.connection();
    let _: Result<i64, _> = redis::cmd("HDEL")
        .arg(format!("{}workers", redis.prefix()))
        .arg(id)
        .query_async(&mut con)
        .await;
}

/// The channel the API publishes the ids of executions to cancel on.
pub fn cancel_channel(redis: &RedisQueue) -> String {
    format!("{}cancel", redis.prefix())
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
