//! Tasks, executors and settings shared by the tests and the benches (the benches include this
//! file by path: it needs nothing but the host crate).

#![allow(dead_code, unreachable_pub)]

use chrono::Utc;
use codeai_host::executor::{Executor, Request};
use codeai_host::queue::{NewTask, Queue};
use codeai_host::runtime::{ExecOptions, Runtime, RuntimeConfig};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::Database;
use codeai_host::worker::{PoolConfig, WorkerPool};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A job that does nothing: one `compute` step.
pub const NOOP: &str = r#"
job Noop {
    steps { one { compute: { ok: true } as: result } }
}
"#;

/// The number in the environment variable `name`, or `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A manual run of version `version` of job `job_id` (named `job_name`), for the default
/// tenant on the default queue, runnable now, one attempt; change a field with struct update.
pub fn run_now(job_id: &str, version: i64, job_name: &str) -> NewTask {
    NewTask {
        id: None,
        tenant: "default".into(),
        job_id: job_id.into(),
        job_name: job_name.into(),
        job_version: Some(version),
        queue: "default".into(),
        trigger: "manual".into(),
        input: "{}".into(),
        fire_at: None,
        run_after: Utc::now(),
        max_attempts: 1,
        exclusive: false,
    }
}

/// The first and only attempt of job `job_id` (unregistered: no version) for the default
/// tenant, with `input`, on the wall clock and the default options; change a field with
/// struct update.
pub fn one_attempt<'a>(job_id: &'a str, trigger: &'a str, input: &'a str) -> Request<'a> {
    Request {
        tenant: "default",
        job_id,
        job_version: None,
        trigger,
        input,
        now: None,
        attempt: 1,
        max_attempts: 1,
        execution_id: None,
        scheduled_at: None,
        options: ExecOptions::default(),
    }
}

/// The queues the tests and benches spread tasks over, in turn.
pub const QUEUES: [&str; 3] = ["critical", "default", "low"];

/// An executor on `db` with a runtime of `pool_size` instances (the default if `None`) caching
/// under `dir/<cache>`, reports under `dir/reports`, and no environment.
pub fn local_executor(
    db: &Database,
    dir: &Path,
    cache: &str,
    pool_size: Option<u32>,
) -> Arc<Executor> {
    let defaults = RuntimeConfig::default();
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: dir.join(cache),
        pool_size: pool_size.unwrap_or(defaults.pool_size),
        ..defaults
    })
    .unwrap();
    Arc::new(Executor::new(
        runtime,
        Services::new(
            db.clone(),
            ServicesConfig::local(dir.join("reports"), Arc::new(|_| None)),
        ),
    ))
}

/// The worker pool of the throughput benches: `slots` slots polling every 5 ms, leasing ahead
/// the environment's `PEER_PREFETCH` tasks (default: the pool's).
pub fn bench_pool(queue: Arc<Queue>, executor: Arc<Executor>, slots: usize) -> Arc<WorkerPool> {
    let config = PoolConfig {
        slots,
        poll: Duration::from_millis(5),
        prefetch: std::env::var("PEER_PREFETCH")
            .ok()
            .and_then(|v| v.parse().ok()),
        ..PoolConfig::default()
    };
    WorkerPool::new(queue, executor, config)
}

/// The compiled artifacts (`.cwasm`) in a runtime's cache directory `dir`.
pub fn artifacts_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            })
            .count()
    })
}
