//! `codeai bench throughput [--jobs N] [--concurrency C]`: what this machine and backend do with
//! a built-in no-op job, end to end (enqueue → lease → a fresh sandbox → the execution recorded →
//! the task finished), on the backend `DATABASE_URL` and `REDIS_URL` name.
//!
//! It leaves nothing behind: on PostgreSQL it works in a schema of its own, dropped at the end; on
//! SQLite in a new file beside `DATABASE_URL`'s (in the temp dir by default), removed at the end;
//! on Redis under a key prefix of its own, deleted at the end. Its own queue name keeps hosts that
//! share the backend from taking its tasks. Results go to stdout, one `key=value` line each;
//! progress to stderr.

use super::exec::{database_url, redact};
use crate::executor::Executor;
use crate::queue::{NewTask, Queue, QueueConfig, RedisQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::services::{Services, ServicesConfig};
use crate::store::{self, Database};
use crate::worker::{PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::Utc;
use clap::{Args, Subcommand};
use sqlx::postgres::PgConnectOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub(super) struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Runs N no-op jobs on C worker slots; prints jobs/s, the queue wait and the run time.
    Throughput {
        /// How many jobs.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        jobs: u32,
        /// Worker slots.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1024))]
        concurrency: u32,
    },
}

/// The job every bench runs: one `compute` step.
const NOOP: &str = "job CodeaiBench {\n    steps { one { compute: { ok: true } as: result } }\n}\n";

pub(super) fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        match args.what {
            BenchCommand::Throughput { jobs, concurrency } => {
                let scratch = Scratch::open().await?;
                let result = throughput(&scratch, jobs as usize, concurrency as usize).await;
                scratch.remove().await;
                result?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Where a bench works, made fresh and removed at the end.
struct Scratch {
    db: Database,
    /// `sqlite` or `postgres`, and `+redis`.
    backend: String,
    dir: PathBuf,
    sqlite_file: Option<PathBuf>,
    postgres: Option<(sqlx::PgPool, String)>,
    redis: Option<RedisQueue>,
}

impl Scratch {
    async fn open() -> anyhow::Result<Scratch> {
        let url = database_url();
        let unique = format!(
            "codeai_bench_{}_{}",
            std::process::id(),
            Utc::now().timestamp_millis()
        );
        let dir = std::env::temp_dir().join(&unique);
        std::fs::create_dir_all(&dir)?;
        let (db, sqlite_file, postgres, mut backend) = if url.starts_with("postgres") {
            let admin = sqlx::PgPool::connect(&url)
                .await
                .with_context(|| format!("failed to connect to `{}`", redact(&url)))?;
            sqlx::raw_sql(&format!("CREATE SCHEMA \"{unique}\""))
                .execute(&admin)
                .await?;
            let options =
                PgConnectOptions::from_str(&url)?.options([("search_path", unique.as_str())]);
            let db = Database::connect_postgres(options).await?;
            (
                db,
                None,
                Some((admin, unique.clone())),
                "postgres".to_string(),
            )
        } else {
            // Beside the configured file, so that the same disk is measured.
            let configured = url
                .trim_start_matches("sqlite://")
                .trim_start_matches("sqlite:");
            let configured = configured.split('?').next().unwrap_or_default();
            let beside = Path::new(configured)
                .parent()
                .filter(|p| !p.as_os_str().is_empty() && std::env::var("DATABASE_URL").is_ok())
                .map_or_else(|| dir.clone(), Path::to_path_buf);
            let file = beside.join(format!("{unique}.db"));
            let db = Database::connect(&format!("sqlite:{}", file.display())).await?;
            (db, Some(file), None, "sqlite".to_string())
        };
        store::migrate::migrate_up(&db).await?;
        let redis = match std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            Some(url) => {
                backend.push_str("+redis");
                Some(
                    RedisQueue::connect(&url, &format!("{unique}:"))
                        .await
                        .with_context(|| format!("failed to connect to `{}`", redact(&url)))?,
                )
            }
            None => None,
        };
        Ok(Scratch {
            db,
            backend,
            dir,
            sqlite_file,
            postgres,
            redis,
        })
    }

    async fn remove(self) {
        self.db.close().await;
        if let Some(file) = &self.sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
        if let Some((admin, schema)) = &self.postgres {
            let _ = sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
                .execute(admin)
                .await;
            admin.close().await;
        }
        if let Some(redis) = &self.redis {
            let _ = redis.forget_all().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn throughput(scratch: &Scratch, jobs: usize, concurrency: usize) -> anyhow::Result<()> {
    let db = &scratch.db;
    let (artifacts, _) = codeai_dsl::compile("bench.codeai", NOOP)
        .map_err(|d| anyhow::anyhow!("the bench job does not build: {d:?}"))?;
    let job = &artifacts[0];
    let registered =
        store::platform::register_job(db, "default", &job.manifest, &job.bytes, "codeai-bench")
            .await?;
    // A queue of its own: a host sharing the backend does not serve it.
    let queue_name = "codeai-bench";
    let config = QueueConfig {
        weights: vec![(queue_name.to_string(), 1)],
        ..QueueConfig::default()
    };
    let queue = Arc::new(match &scratch.redis {
        Some(redis) => Queue::on(redis.clone(), config),
        None => Queue::new(db.clone(), config),
    });
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: scratch.dir.join("cache"),
        ..RuntimeConfig::default()
    })?;
    let services = Services::new(
        db.clone(),
        ServicesConfig::local(scratch.dir.join("reports"), Arc::new(|_| None)),
    );
    let executor = Arc::new(Executor::new(runtime, services));
    eprintln!("compiling the bench job …");
    executor.runtime().prepare(&job.bytes)?;

    eprintln!("enqueueing {jobs} jobs on {} …", scratch.backend);
    let due = Utc::now();
    let tasks: Vec<NewTask> = (0..jobs)
        .map(|_| NewTask {
            id: None,
            tenant: "default".into(),
            job_id: registered.job_id.clone(),
            job_name: job.name.clone(),
            job_version: Some(registered.version),
            queue: queue_name.into(),
            trigger: "bench".into(),
            input: "{}".into(),
            fire_at: None,
            run_after: due,
            max_attempts: 1,
            exclusive: false,
        })
        .collect();
    for chunk in tasks.chunks(1000) {
        queue.enqueue_many(chunk).await?;
    }
    let pool = WorkerPool::new(
        queue.clone(),
        executor,
        PoolConfig {
            slots: concurrency,
            ..PoolConfig::default()
        },
    );
    eprintln!("running them on {concurrency} worker slots …");
    let started = Instant::now();
    let running = tokio::spawn(pool.clone().run());
    loop {
        let counts = queue.counts(Utc::now(), None).await?;
        let c = counts.get(queue_name).copied().unwrap_or_default();
        if c.completed + c.failed >= jobs as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    pool.shutdown().await;
    running.abort();

    let runs = store::executions::starts_and_durations(db, &registered.job_id).await?;
    anyhow::ensure!(
        runs.len() == jobs,
        "{} of {jobs} executions were recorded",
        runs.len()
    );
    let mut waits: Vec<f64> = runs
        .iter()
        .map(|(start, _)| (*start - due).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect();
    let mut runs_ms: Vec<f64> = runs.iter().map(|(_, ms)| *ms as f64).collect();
    println!("bench=throughput");
    println!("backend={}", scratch.backend);
    println!("jobs={jobs}");
    println!("concurrency={concurrency}");
    println!("seconds={:.3}", elapsed.as_secs_f64());
    println!("jobs_per_second={:.0}", jobs as f64 / elapsed.as_secs_f64());
    println!("queue_wait_p50_ms={:.1}", percentile(&mut waits, 0.50));
    println!("queue_wait_p99_ms={:.1}", percentile(&mut waits, 0.99));
    println!("execution_p50_ms={:.1}", percentile(&mut runs_ms, 0.50));
    println!("execution_p99_ms={:.1}", percentile(&mut runs_ms, 0.99));
    Ok(())
}

/// The `p` quantile (nearest rank) of `values`.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len().max(1));
    values.get(rank - 1).copied().unwrap_or(0.0)
}
