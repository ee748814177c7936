//! Tasks, executors and settings shared by the tests and the benches (the benches include this
//! file by path: it needs nothing but the host crate).

#![allow(dead_code, unreachable_pub)]

use chrono::Utc;
use codeai_host::executor::Executor;
use codeai_host::queue::NewTask;
use codeai_host::runtime::{Runtime, RuntimeConfig};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::Database;
use std::path::Path;
use std::sync::Arc;

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
