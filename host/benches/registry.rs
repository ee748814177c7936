//! Many jobs on one host (the embedded default: SQLite in a temp file, release build):
//!
//! - **registration**: `REGISTRY_JOBS` (default 10,000) distinct jobs built by `codeai build`,
//!   `REGISTRY_TENANTS` (default 1,000) tenants with as many jobs each, registered one by one
//!   the way `codeai host run` registers (prepare, store the version, schedule it): time per
//!   job (p50/p99), compiled artifacts, bytes added to the compile cache, resident memory per job;
//! - **host start** on that database: `Host::new` (migrations, the scheduler loading every
//!   job), its time and the process's resident memory;
//! - **executions**: one run of every job through the real queue and worker pool (10 slots),
//!   so each job's component is read from the database and prepared on its first run, then a
//!   second run of every job (all prepared): jobs/s of each round.
//!
//! `cargo bench -p codeai-host --bench registry`.

use codeai_host::app::{Host, HostConfig};
use codeai_host::queue::NewTask;
use codeai_host::store::{migrate, tenants, Database};
use codeai_host::worker::PoolConfig;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::{artifacts_in as artifacts, env_number, run_now};

const JOB: &str = "job Tick { schedule: every 1h  steps { answer { compute: 1 as: answer } } }";

/// The resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum()
    })
}

fn config(dir: &Path) -> HostConfig {
    HostConfig {
        pool: PoolConfig {
            slots: 10,
            poll: Duration::from_millis(5),
            ..PoolConfig::default()
        },
        ..HostConfig::local(dir)
    }
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

/// The build of job `n`: the same job under its own name and answer.
fn component(n: usize) -> Vec<u8> {
    let source = JOB
        .replace("Tick", &format!("Tick{n}"))
        .replace("compute: 1", &format!("compute: {n}"));
    let (mut artifacts, _) = codeai_dsl::compile("tick.codeai", &source).expect("builds");
    artifacts.remove(0).bytes
}

async fn count(db: &Database, sql: &str) -> i64 {
    let Database::Sqlite(pool) = db else {
        unreachable!()
    };
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// Runs every job once through the host's queue and pool; jobs/s.
async fn run_all(host: &Host, jobs: &[(String, String, i64, String)], done_before: i64) -> f64 {
    let tasks: Vec<NewTask> = jobs
        .iter()
        .map(|(tenant, id, version, name)| NewTask {
            tenant: tenant.clone(),
            ..run_now(id, *version, name)
        })
        .collect();
    let started = Instant::now();
    for chunk in tasks.chunks(1000) {
        host.queue.enqueue_many(chunk).await.unwrap();
    }
    let want = done_before + jobs.len() as i64;
    while count(&host.db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await < want {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    jobs.len() as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = env_number("REGISTRY_JOBS", 10_000);
    let tenant_count: usize = env_number("REGISTRY_TENANTS", 1_000).clamp(1, n.max(1));
    let dir = std::env::temp_dir().join(format!("codeai-registry-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite:{}", dir.join("bench.db").display());
    let db = Database::connect(&url).await.unwrap();
    migrate::migrate_up(&db).await.unwrap();
    let tenant_names: Vec<String> = (0..tenant_count).map(|t| format!("tenant{t}")).collect();
    for name in &tenant_names {
        tenants::create_tenant(&db, name, None, None, None)
            .await
            .unwrap();
    }

    let host = Host::new(db.clone(), config(&dir)).await.unwrap();
    let rss_before = rss();
    let mut times = Vec::with_capacity(n);
    let mut jobs = Vec::with_capacity(n);
    let mut component_bytes = 0;
    eprintln!("building and registering {n} jobs…");
    for i in 0..n {
        let tenant = &tenant_names[i % tenant_count];
        // Built one at a time (not timed): the process holds no more than one build.
        let file = (format!("tick{i}.wasm"), component(i));
        component_bytes += file.1.len();
        let t = Instant::now();
        let reg = host
            .register(tenant, std::slice::from_ref(&file))
            .await
            .unwrap();
        times.push(t.elapsed());
        let reg = &reg[0];
        jobs.push((
            tenant.clone(),
            reg.job_id.clone(),
            reg.version,
            reg.manifest.name.clone(),
        ));
        if (i + 1) % 1000 == 0 {
            eprintln!("  {} registered", i + 1);
        }
    }
    let rss_registered = rss();
    let compiled = artifacts(&dir.join("cache"));
    let cache = dir_bytes(&dir.join("cache"));
    let total: Duration = times.iter().sum();
    times.sort();
    println!(
        "registration of {n} built jobs ({tenant_count} tenants, {:.0} KiB each): p50 {:.2} ms, \
         p99 {:.2} ms, mean {:.2} ms; {compiled} compile(s); compile cache {:.1} MiB in all \
         ({:.1} KiB per job); resident memory +{:.1} MiB ({:.1} KiB per job); database {:.0} MiB",
        component_bytes as f64 / n as f64 / 1024.0,
        percentile(&times, 50),
        percentile(&times, 99),
        total.as_secs_f64() * 1000.0 / n as f64,
        cache as f64 / (1 << 20) as f64,
        cache as f64 / n as f64 / 1024.0,
        (rss_registered.saturating_sub(rss_before)) as f64 / (1 << 20) as f64,
        (rss_registered.saturating_sub(rss_before)) as f64 / n as f64 / 1024.0,
        dir_bytes(&dir) as f64 / (1 << 20) as f64,
    );
    host.shutdown().await;

    // A new host on that database and cache, as after a restart.
    let db = Database::connect(&url).await.unwrap();
    let rss_down = rss();
    let t = Instant::now();
    let mut host = Host::new(db.clone(), config(&dir)).await.unwrap();
    let start = t.elapsed();
    println!(
        "host start with {n} jobs: {:.0} ms; resident memory {:.0} MiB ({:+.1} MiB)",
        start.as_secs_f64() * 1000.0,
        rss() as f64 / (1 << 20) as f64,
        (rss() as f64 - rss_down as f64) / (1 << 20) as f64,
    );
    host.start();
    let first = run_all(&host, &jobs, 0).await;
    let rss_first = rss();
    let second = run_all(&host, &jobs, n as i64).await;
    println!(
        "executions, every job once, 10 slots: {first:.0} jobs/s with each job prepared on its \
         first run (read from the database, recognised, linked), {second:.0} jobs/s prepared; \
         resident memory {:.0} MiB after the first round, {:.0} MiB after the second; {} \
         compiled artifact(s) in the cache",
        rss_first as f64 / (1 << 20) as f64,
        rss() as f64 / (1 << 20) as f64,
        artifacts(&dir.join("cache")),
    );
    host.shutdown().await;
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
