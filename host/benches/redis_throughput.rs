//! No-op jobs through CodeAI Jobs on PostgreSQL + Redis (the scale-out setup), for the side-by-side
//! with peer queues in `bench/peers/`: `PEER_JOBS` tasks (default 20,000) enqueued on Redis, one
//! worker process with `PEER_CONCURRENCY` slots (default 10), each job run in a fresh wasm instance
//! with its execution recorded in PostgreSQL. jobs/s from the first job's start to the last task
//! completed, as the peers time themselves (and from the pool's start, which adds its
//! connecting). Needs PostgreSQL (`DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; a fresh database is made and dropped) and Redis
//! (`REDIS_URL`, default `redis://127.0.0.1:6379`, keys under a prefix of their own).
//!
//! `PEER_PREFETCH` sets the tasks leased ahead (default: the pool's, about 10 ms of its work).
//!
//! `cargo bench -p codeai-host --bench redis_throughput`

use chrono::Utc;
use codeai_host::queue::{NewTask, Queue, QueueConfig, RedisQueue};
use codeai_host::store::{migrate, platform, Database};
use std::sync::Arc;
use std::time::Instant;

#[path = "../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::{bench_pool, env_number as env_usize, local_executor, run_now, NOOP};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = env_usize("PEER_JOBS", 20_000);
        let slots = env_usize("PEER_CONCURRENCY", 10);
        let base = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("codeai_bench_{}", std::process::id());
        let admin = Database::connect(&base).await.unwrap();
        let Database::Postgres(admin_pool) = &admin else {
            unreachable!()
        };
        sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
            .execute(admin_pool)
            .await
            .unwrap();
        let (head, _) = base.rsplit_once('/').unwrap();
        let db = Database::connect(&format!("{head}/{name}")).await.unwrap();
        migrate::migrate_up(&db).await.unwrap();
        let redis_url =
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let prefix = format!("codeai_bench_{}:", std::process::id());
        let redis = RedisQueue::connect(&redis_url, &prefix).await.unwrap();

        let (artifacts, _) = codeai_dsl::compile("noop.codeai", NOOP).unwrap();
        let a = &artifacts[0];
        let reg = platform::register_job(&db, "default", &a.manifest, &a.bytes, "noop")
            .await
            .unwrap();
        let dir = std::env::temp_dir().join(&name);
        let executor = local_executor(&db, &dir, "cache", None);
        executor.runtime().prepare(&a.bytes).unwrap();
        let queue = Arc::new(Queue::on(redis.clone(), QueueConfig::default()));
        let task = NewTask {
            trigger: "bench".into(),
            ..run_now(&reg.job_id, reg.version, "Noop")
        };
        let tasks = vec![task; n];
        let t = Instant::now();
        queue.enqueue_many(&tasks).await.unwrap();
        let enqueue = t.elapsed();
        let pool = bench_pool(queue.clone(), executor, slots);
        let started = Instant::now();
        let running = tokio::spawn(pool.clone().run());
        // Told by the pool, as a peer's worker tells its completions (no Redis command).
        pool.until_finished(n as u64).await;
        let elapsed = started.elapsed();
        let last_done = Utc::now();
        pool.shutdown().await;
        running.abort();
        let Database::Postgres(pool) = &db else {
            unreachable!()
        };
        let (recorded, first_start): (i64, chrono::DateTime<Utc>) = sqlx::query_as(
            "SELECT COUNT(*), MIN(started_at) FROM job_executions WHERE status = 'completed'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(recorded as usize, n);
        // As the peers time themselves: from the first job's start to the last completion.
        let running_for = (last_done - first_start)
            .to_std()
            .unwrap_or(elapsed)
            .min(elapsed);
        println!(
            "peer=codeai version={} jobs={n} concurrency={slots} seconds={:.3} jobs_per_s={:.0} \
             (first job's start to last completion; from the pool's start: {:.0} jobs/s; \
             PostgreSQL + Redis, fresh wasm instance per job, every execution recorded; \
             enqueue of {n}: {:.0} ms)",
            env!("CARGO_PKG_VERSION"),
            running_for.as_secs_f64(),
            n as f64 / running_for.as_secs_f64(),
            n as f64 / elapsed.as_secs_f64(),
            enqueue.as_secs_f64() * 1000.0
        );
        db.close().await;
        // SCAN, not KEYS: a KEYS over the 100,000s of keys a run leaves blocked Redis ~35 ms.
        let _ = redis.forget_all().await;
        sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(admin_pool)
            .await
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    });
}
