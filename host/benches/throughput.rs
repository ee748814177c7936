//! End-to-end figures of the embedded default (SQLite in a temp file, release build):
//!
//! - **throughput**: no-op jobs enqueued, then taken by a pool of 10 workers, each run in a fresh
//!   wasm instance with the real capabilities and recorded (execution row, attempt row, task
//!   state) — jobs/s from the first dequeue to the last record;
//! - **scheduler lateness**: 10,000 jobs all due at the same instant; how late after that instant
//!   each one's task is enqueued, p50/p99/max, with the real scheduler loop.
//!
//! `cargo bench -p codeai-host --bench throughput`; `THROUGHPUT_TASKS` (default 3000) and
//! `LATENESS_JOBS` (default 10000) change the sizes.

use chrono::{Duration as ChronoDuration, Utc};
use codeai_host::background::schedule;
use codeai_host::cluster::Leadership;
use codeai_host::queue::{NewTask, Queue, QueueConfig};
use codeai_host::scheduler::{MisfirePolicy, Scheduler};
use codeai_host::store::{migrate, platform, Database};
use codeai_host::worker::{PoolConfig, WorkerPool};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::{bench_pool, env_number as env_usize, local_executor, one_attempt, run_now, NOOP};

async fn database(dir: &std::path::Path) -> Database {
    let db = Database::connect(&format!("sqlite:{}", dir.join("bench.db").display()))
        .await
        .unwrap();
    migrate::migrate_up(&db).await.unwrap();
    db
}

async fn count(db: &Database, sql: &str) -> i64 {
    let Database::Sqlite(pool) = db else {
        unreachable!()
    };
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn throughput(dir: &std::path::Path, n: usize) {
    let db = database(dir).await;
    let (artifacts, _) = codeai_dsl::compile("noop.codeai", NOOP).unwrap();
    let a = &artifacts[0];
    let reg = platform::register_job(&db, "default", &a.manifest, &a.bytes, "noop")
        .await
        .unwrap();
    let executor = local_executor(&db, dir, "cache", None);
    let queue = Arc::new(Queue::new(db.clone(), QueueConfig::default()));
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            queue: fixtures::QUEUES[i % 3].into(),
            trigger: "bench".into(),
            ..run_now(&reg.job_id, reg.version, "Noop")
        })
        .collect();
    // Where the time goes: one recorded execution alone, and the queue's own moves alone.
    let job = executor.runtime().prepare(&a.bytes).unwrap();
    let t = Instant::now();
    for _ in 0..200 {
        executor
            .run(
                &job,
                codeai_host::executor::Request {
                    job_version: Some(reg.version),
                    ..one_attempt(&reg.job_id, "bench", "{}")
                },
            )
            .await
            .unwrap();
    }
    let recorded_run = t.elapsed() / 200;
    let t = Instant::now();
    queue.enqueue_many(&tasks[..1000]).await.unwrap();
    let mut moved = 0;
    while let Some(task) = queue.dequeue(Utc::now()).await.unwrap() {
        queue.finish(task.id, "completed", None).await.unwrap();
        moved += 1;
    }
    let queue_move = t.elapsed() / moved;
    println!(
        "one recorded execution (sequential): {:.2} ms; one enqueue+dequeue+finish (sequential, no execution): {:.2} ms",
        recorded_run.as_secs_f64() * 1000.0,
        queue_move.as_secs_f64() * 1000.0
    );
    let tasks = &tasks[1000..];
    let n = tasks.len();
    let t = Instant::now();
    queue.enqueue_many(tasks).await.unwrap();
    let enqueue = t.elapsed();
    let pool = bench_pool(queue.clone(), executor, 10);
    let started = Instant::now();
    let running = tokio::spawn(pool.clone().run());
    while count(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await < (n + 1000) as i64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    pool.shutdown().await;
    running.abort();
    let recorded = count(&db, "SELECT COUNT(*) FROM job_executions WHERE status = 'completed' AND id IN (SELECT id FROM tasks)").await;
    assert!(recorded >= n as i64);
    println!(
        "throughput: {n} no-op jobs, 10 workers: {:.0} jobs/s ({:.2} ms per job per worker slot); enqueue of {n}: {:.1} ms",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 * 10.0 / n as f64,
        enqueue.as_secs_f64() * 1000.0
    );
    db.close().await;
}

async fn lateness(dir: &std::path::Path, n: usize) {
    let db = database(dir).await;
    let Database::Sqlite(pool) = &db else {
        unreachable!()
    };
    let (artifacts, _) = codeai_dsl::compile("noop.codeai", NOOP).unwrap();
    let template = artifacts[0].manifest.clone();
    let queue = Arc::new(Queue::new(db.clone(), QueueConfig::default()));
    // All due at the next whole second, at least 3 s away.
    let due = Utc::now() + ChronoDuration::seconds(3);
    let due = due - ChronoDuration::nanoseconds(i64::from(due.timestamp_subsec_nanos()));
    let now = Utc::now();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..n {
        sqlx::query(
            "INSERT INTO jobs (id, tenant_id, name, version, schedule_kind, interval_ms, timezone, queue, timeout_ms, created_at, updated_at) \
             VALUES (?, 'default', ?, 1, 'every', 3600000, 'UTC', 'default', 60000, ?, ?)",
        )
        .bind(format!("job-{i}"))
        .bind(format!("Noop{i}"))
        .bind(now.to_rfc3339())
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    // Put every job's next fire at `due`.
    sqlx::query("UPDATE jobs SET next_run_at = ?")
        .bind(due.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .execute(pool)
        .await
        .unwrap();
    let scheduler = Arc::new(Scheduler::new(
        db.clone(),
        queue.clone(),
        MisfirePolicy::RunOnce,
    ));
    for i in 0..n {
        let mut m = template.clone();
        m.name = format!("Noop{i}");
        m.schedule = codeai_ir::Schedule::Interval {
            every_ms: 3_600_000,
        };
        scheduler
            .add(&format!("job-{i}"), "default", 1, Arc::new(m), now)
            .await
            .unwrap();
    }
    let executor_less_pool = {
        let executor = local_executor(&db, dir, "cache2", Some(1));
        WorkerPool::new(
            queue.clone(),
            executor,
            PoolConfig {
                slots: 1,
                ..PoolConfig::default()
            },
        )
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let loop_task = tokio::spawn(schedule::fire(
        scheduler.clone(),
        executor_less_pool,
        Leadership::alone(),
        stop.clone(),
    ));
    while count(&db, "SELECT COUNT(*) FROM tasks").await < n as i64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    loop_task.abort();
    let created: Vec<String> = sqlx::query_scalar("SELECT created_at FROM tasks")
        .fetch_all(pool)
        .await
        .unwrap();
    let mut late: Vec<f64> = created
        .iter()
        .map(|c| {
            let t = chrono::DateTime::parse_from_rfc3339(c)
                .unwrap()
                .with_timezone(&Utc);
            (t - due).num_microseconds().unwrap_or(0) as f64 / 1000.0
        })
        .collect();
    late.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let q = |p: f64| late[((late.len() as f64 - 1.0) * p) as usize];
    println!(
        "scheduler lateness, {n} jobs due at the same instant: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (enqueue after the fire instant)",
        q(0.50),
        q(0.99),
        late.last().copied().unwrap_or(0.0)
    );
    db.close().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let base = std::env::temp_dir().join(format!("codeai_bench_{}", std::process::id()));
    rt.block_on(async {
        let a = base.join("throughput");
        std::fs::create_dir_all(&a).unwrap();
        throughput(&a, env_usize("THROUGHPUT_TASKS", 3000)).await;
        let b = base.join("lateness");
        std::fs::create_dir_all(&b).unwrap();
        lateness(&b, env_usize("LATENESS_JOBS", 10_000)).await;
    });
    let _ = std::fs::remove_dir_all(&base);
}
