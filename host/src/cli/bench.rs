//! What this machine and backend do with a built-in no-op job, on the backend `DATABASE_URL` and
//! `REDIS_URL` name:
//!
//! - `codeai bench throughput [--jobs N] [--concurrency C]`: jobs/s end to end (enqueue → lease →
//!   a fresh sandbox → the execution recorded → the task finished); on Redis also what the Redis
//!   server did per job from the enqueue to the last finish (CPU time, commands), as
//!   `bench/peers/bullmq.mjs` reports it for BullMQ;
//! - `codeai bench fire [--jobs N] [--concurrency C]`: N jobs scheduled at one instant, fired by
//!   the host's own scheduler loop: how late each was *leasable* (in the queue and due) and how
//!   late it *started*, after the instant, and when the last fire was enqueued (negative: that
//!   long ahead of the instant, as the scheduler's look-ahead enqueues them).
//!
//! It leaves nothing behind: on PostgreSQL it works in a schema of its own, dropped at the end; on
//! SQLite in a new file beside `DATABASE_URL`'s (in the temp dir by default), removed at the end;
//! on Redis under a key prefix of its own, deleted at the end. Its own queue name keeps hosts that
//! share the backend from taking its tasks. Results go to stdout, one `key=value` line each;
//! progress to stderr.

use super::exec::{database_url, redact};
use crate::background::schedule;
use crate::cluster::Leadership;
use crate::executor::Executor;
use crate::queue::{NewTask, Queue, QueueConfig, RedisQueue};
use crate::runtime::{Runtime, RuntimeConfig};
use crate::scheduler::{MisfirePolicy, Scheduler};
use crate::services::{Services, ServicesConfig};
use crate::store::{self, Database};
use crate::worker::{PoolConfig, WorkerPool};
use anyhow::Context as _;
use chrono::{DurationRound as _, Utc};
use clap::{Args, Subcommand};
use sqlx::postgres::PgConnectOptions;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

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
    /// Schedules N no-op jobs due at one instant; prints how late they were leasable and started.
    Fire {
        /// How many jobs.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
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
            BenchCommand::Fire { jobs, concurrency } => {
                let scratch = Scratch::open().await?;
                let result = fire(&scratch, jobs as usize, concurrency as usize).await;
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
        let made = Self::make(&url, &unique, &dir).await;
        if made.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let mut scratch = made?;
        // From here on a failure removes what was made, as the end of a run does.
        if let Err(e) = store::migrate::migrate_up(&scratch.db).await {
            scratch.remove().await;
            return Err(e.into());
        }
        if let Some(url) = std::env::var("REDIS_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
        {
            match RedisQueue::connect(&url, &format!("{unique}:")).await {
                Ok(redis) => {
                    scratch.backend.push_str("+redis");
                    scratch.redis = Some(redis);
                }
                Err(e) => {
                    scratch.remove().await;
                    return Err(e)
                        .with_context(|| format!("failed to connect to `{}`", redact(&url)));
                }
            }
        }
        Ok(scratch)
    }

    /// The database of a new scratch: a schema of its own on PostgreSQL, a new file on SQLite.
    async fn make(url: &str, unique: &str, dir: &Path) -> anyhow::Result<Scratch> {
        let (db, sqlite_file, postgres, backend) = if url.starts_with("postgres") {
            let options = PgConnectOptions::from_str(url)?.options([("search_path", unique)]);
            let admin = sqlx::PgPool::connect(url)
                .await
                .with_context(|| format!("failed to connect to `{}`", redact(url)))?;
            sqlx::raw_sql(&format!("CREATE SCHEMA \"{unique}\""))
                .execute(&admin)
                .await?;
            let db = match Database::connect_postgres(options).await {
                Ok(db) => db,
                Err(e) => {
                    let _ = sqlx::raw_sql(&format!("DROP SCHEMA \"{unique}\" CASCADE"))
                        .execute(&admin)
                        .await;
                    return Err(e.into());
                }
            };
            (
                db,
                None,
                Some((admin, unique.to_string())),
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
                .map_or_else(|| dir.to_path_buf(), Path::to_path_buf);
            let file = beside.join(format!("{unique}.db"));
            let db = match Database::connect(&format!("sqlite:{}", file.display())).await {
                Ok(db) => db,
                Err(e) => {
                    remove_sqlite(&file);
                    return Err(e.into());
                }
            };
            (db, Some(file), None, "sqlite".to_string())
        };
        Ok(Scratch {
            db,
            backend,
            dir: dir.to_path_buf(),
            sqlite_file,
            postgres,
            redis: None,
        })
    }

    async fn remove(self) {
        self.db.close().await;
        if let Some(file) = &self.sqlite_file {
            remove_sqlite(file);
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

/// Removes a SQLite file with its log and shared memory.
fn remove_sqlite(file: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
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
    let queue = bench_queue(scratch);
    let executor = executor(scratch)?;
    eprintln!("compiling the bench job …");
    executor.runtime().prepare(&job.bytes)?;

    eprintln!("enqueueing {jobs} jobs on {} …", scratch.backend);
    let redis_before = match &scratch.redis {
        Some(redis) => redis_work(redis).await,
        None => None,
    };
    let due = Utc::now();
    let tasks: Vec<NewTask> = (0..jobs)
        .map(|_| NewTask {
            id: None,
            tenant: "default".into(),
            job_id: registered.job_id.clone(),
            job_name: job.name.clone(),
            job_version: Some(registered.version),
            queue: QUEUE.into(),
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
    let pool = pool(&queue, executor, concurrency);
    eprintln!("running them on {concurrency} worker slots …");
    let started = Instant::now();
    let running = tokio::spawn(pool.clone().run());
    // Told by the pool, as a peer's worker tells its own completions: no query competes with
    // the work measured.
    pool.until_finished(jobs as u64).await;
    let elapsed = started.elapsed();
    let redis_spent = match (&scratch.redis, redis_before) {
        (Some(redis), Some(before)) => redis_work(redis).await.map(|after| after.since(before)),
        _ => None,
    };
    pool.shutdown().await;
    running.abort();

    let runs = read_back(db, async |reader| {
        store::executions::starts_and_durations(reader, &registered.job_id).await
    })
    .await?;
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
    if let Some(spent) = redis_spent {
        println!(
            "redis_cpu_us_per_job={:.1}",
            spent.cpu_seconds * 1e6 / jobs as f64
        );
        println!(
            "redis_commands_per_job={:.2}",
            spent.commands as f64 / jobs as f64
        );
    }
    Ok(())
}

/// What a Redis server has done since it started: CPU time (user and system) and commands run
/// (every command, those its scripts ran included). The whole server's: other clients of the
/// same Redis count too.
#[derive(Debug, Clone, Copy)]
struct RedisWork {
    cpu_seconds: f64,
    commands: u64,
}

impl RedisWork {
    fn since(self, before: RedisWork) -> RedisWork {
        RedisWork {
            cpu_seconds: (self.cpu_seconds - before.cpu_seconds).max(0.0),
            commands: self.commands.saturating_sub(before.commands),
        }
    }
}

/// Reads [`RedisWork`] from `INFO cpu` and `INFO commandstats`; `None`, with a notice, where
/// `INFO` is not allowed (an ACL, a managed Redis): the bench runs without these figures.
async fn redis_work(redis: &RedisQueue) -> Option<RedisWork> {
    let con = redis.connection();
    let info = async |section: &str| -> redis::RedisResult<String> {
        redis::cmd("INFO")
            .arg(section)
            .query_async(&mut con.clone())
            .await
    };
    let (cpu, stats) = match (info("cpu").await, info("commandstats").await) {
        (Ok(cpu), Ok(stats)) => (cpu, stats),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("Redis's figures left out: INFO failed ({e})");
            return None;
        }
    };
    Some(RedisWork {
        cpu_seconds: cpu
            .lines()
            .filter_map(|l| {
                l.strip_prefix("used_cpu_user:")
                    .or_else(|| l.strip_prefix("used_cpu_sys:"))
            })
            .filter_map(|v| v.trim().parse::<f64>().ok())
            .sum(),
        // `cmdstat_<name>:calls=<n>,usec=…`
        commands: stats
            .lines()
            .filter_map(|l| l.strip_prefix("cmdstat_")?.split_once(":calls="))
            .filter_map(|(_, rest)| rest.split(',').next()?.trim().parse::<u64>().ok())
            .sum(),
    })
}

/// `read` of a bench's results, on SQLite through a pool of its own that hands rows over 256 at a
/// time, not two (see `Database::own_pool`; a run of 200,000 jobs took 2.7 s to read back
/// otherwise), closed before the scratch files are removed. PostgreSQL reads through `db`.
async fn read_back<T>(db: &Database, read: impl AsyncFnOnce(&Database) -> T) -> T {
    if db.sqlite_file().is_none() {
        return read(db).await;
    }
    let reader = db.own_pool(1);
    let out = read(&reader).await;
    reader.close().await;
    out
}

/// The queue every bench uses: a queue of its own, which a host sharing the backend does not
/// serve.
const QUEUE: &str = "codeai-bench";

fn bench_queue(scratch: &Scratch) -> Arc<Queue> {
    let config = QueueConfig {
        weights: vec![(QUEUE.to_string(), 1)],
        ..QueueConfig::default()
    };
    Arc::new(match &scratch.redis {
        Some(redis) => Queue::on(redis.clone(), config),
        None => Queue::new(scratch.db.clone(), config),
    })
}

fn executor(scratch: &Scratch) -> anyhow::Result<Arc<Executor>> {
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: scratch.dir.join("cache"),
        ..RuntimeConfig::default()
    })?;
    let services = Services::new(
        scratch.db.clone(),
        ServicesConfig::local(scratch.dir.join("reports"), Arc::new(|_| None)),
    );
    Ok(Arc::new(Executor::new(runtime, services)))
}

/// The worker pool of a bench: `concurrency` slots on the bench's queue.
fn pool(queue: &Arc<Queue>, executor: Arc<Executor>, concurrency: usize) -> Arc<WorkerPool> {
    let config = PoolConfig {
        slots: concurrency,
        ..PoolConfig::default()
    };
    WorkerPool::new(queue.clone(), executor, config)
}

/// N jobs scheduled at one instant, fired by the host's scheduler loop ([`schedule::fire`]).
async fn fire(scratch: &Scratch, jobs: usize, concurrency: usize) -> anyhow::Result<()> {
    let db = &scratch.db;
    eprintln!(
        "building and registering {jobs} jobs on {} …",
        scratch.backend
    );
    let mut registered = Vec::with_capacity(jobs);
    let mut one_build = Vec::new();
    for n in 0..jobs {
        let source = NOOP.replace("CodeaiBench", &format!("CodeaiFire{n}"));
        let (mut artifacts, _) = codeai_dsl::compile("fire.codeai", &source)
            .map_err(|d| anyhow::anyhow!("the bench job does not build: {d:?}"))?;
        let job = artifacts.remove(0);
        let mut manifest = job.manifest;
        manifest.queue = QUEUE.into();
        let reg =
            store::platform::register_job(db, "default", &manifest, &job.bytes, "codeai-bench")
                .await?;
        registered.push((reg.job_id, reg.version, manifest));
        one_build = job.bytes;
    }
    let queue = bench_queue(scratch);
    let executor = executor(scratch)?;
    let scheduler = Arc::new(Scheduler::new(
        db.clone(),
        queue.clone(),
        MisfirePolicy::RunOnce,
    ));
    eprintln!("compiling the bench job …");
    // Every job is the same guest runtime: one compile, before the instant.
    executor.runtime().prepare(&one_build)?;
    // The instant: far enough ahead for the scheduler to take every job first.
    let lead = chrono::Duration::milliseconds(2000 + jobs as i64);
    // In whole milliseconds, as the Redis queue keeps times (and cron fires are whole seconds).
    let instant = (Utc::now() + lead)
        .duration_trunc(chrono::Duration::milliseconds(1))
        .context("the instant")?;
    let once = codeai_ir::Schedule::Once {
        at: instant.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    };
    for (job_id, version, mut manifest) in registered {
        manifest.schedule = once.clone();
        manifest.timezone = "UTC".into();
        scheduler
            .add(&job_id, "default", version, Arc::new(manifest), Utc::now())
            .await?;
    }
    anyhow::ensure!(
        Utc::now() < instant,
        "scheduling {jobs} jobs took longer than the {} ms lead; try fewer jobs",
        lead.num_milliseconds()
    );
    let pool = pool(&queue, executor, concurrency);
    let stop = CancellationToken::new();
    let running = tokio::spawn(pool.clone().run());
    let firing = tokio::spawn(schedule::fire(
        scheduler,
        pool.clone(),
        Leadership::alone(),
        stop.clone(),
    ));
    eprintln!(
        "{jobs} jobs due at {} ({} ms from now), {concurrency} worker slots …",
        instant.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        (instant - Utc::now()).num_milliseconds()
    );
    pool.until_finished(jobs as u64).await;
    stop.cancel();
    let _ = firing.await;
    pool.shutdown().await;
    running.abort();

    let starts = read_back(db, async |reader| {
        store::executions::scheduled_starts(reader).await
    })
    .await?;
    anyhow::ensure!(
        starts.len() == jobs,
        "{} of {jobs} scheduled executions were recorded",
        starts.len()
    );
    let ms = |d: chrono::Duration| d.num_microseconds().unwrap_or(0) as f64 / 1000.0;
    let mut leasable = Vec::with_capacity(jobs);
    let mut started = Vec::with_capacity(jobs);
    // When the last fire was enqueued, from the instant (negative: ahead of it).
    let mut last_enqueued = f64::MIN;
    for (id, due, start) in &starts {
        started.push(ms(*start - *due));
        let id = uuid::Uuid::parse_str(id)?;
        let info = queue
            .task_info(id)
            .await?
            .with_context(|| format!("the task of execution {id} is gone"))?;
        if let Some(created) = info.created_at {
            last_enqueued = last_enqueued.max(ms(created - *due));
        }
        // In the queue, and due.
        let ready = info.created_at.into_iter().chain(info.run_after).max();
        let ready = ready.with_context(|| format!("task {id} has no enqueue time"))?;
        leasable.push(ms(ready - *due));
    }
    println!("bench=fire");
    println!("backend={}", scratch.backend);
    println!("jobs={jobs}");
    println!("concurrency={concurrency}");
    println!("leasable_p50_ms={:.1}", percentile(&mut leasable, 0.50));
    println!("leasable_p99_ms={:.1}", percentile(&mut leasable, 0.99));
    println!("leasable_max_ms={:.1}", percentile(&mut leasable, 1.0));
    println!("last_enqueued_ms={last_enqueued:.1}");
    println!("started_p50_ms={:.1}", percentile(&mut started, 0.50));
    println!("started_p99_ms={:.1}", percentile(&mut started, 0.99));
    println!("started_max_ms={:.1}", percentile(&mut started, 1.0));
    Ok(())
}

/// The `p` quantile (nearest rank) of `values`.
fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = ((values.len() as f64 * p).ceil() as usize).clamp(1, values.len().max(1));
    values.get(rank - 1).copied().unwrap_or(0.0)
}
