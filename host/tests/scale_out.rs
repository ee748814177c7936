//! Scale-out on PostgreSQL + Redis with real processes: one `codeai run` (API and scheduler) and
//! three `codeai worker start`, 20,000 tasks, a worker killed with -9 five times and restarted:
//! every task completes at least once (counted in the database), duplicates reported. Two
//! schedulers at once never enqueue one fire twice (1,000 fires). A Redis restart with AOF loses
//! no acknowledged task; a PostgreSQL crash and restart under a running worker loses none either.
//! A migration gives way to a long read of the table it changes, and applies after it.

#[macro_use]
mod common;

use chrono::{DateTime, Utc};
use codeai_host::queue::{NewTask, Queue, QueueConfig, RedisQueue};
use codeai_host::scheduler::{MisfirePolicy, Scheduler};
use codeai_host::store::{migrate, platform, Database};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOB: &str = r#"
event Ran { n: int }

job Noop {
    overlap: allow
    steps { e { emit: Ran { n: 1 } } }
}

job EveryMinute {
    schedule: "* * * * *"
    overlap: allow
    steps { e { emit: Ran { n: 2 } } }
}
"#;

fn pg_base() -> String {
    common::postgres_url()
}

/// A fresh PostgreSQL database the processes can all open by URL; dropped by `drop_database`.
async fn create_database(name: &str) -> Option<String> {
    let base = pg_base();
    let admin = common::postgres_admin(&base).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE \"{name}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(format!("{head}/{name}"))
}

async fn drop_database(name: &str) {
    if let Ok(admin) = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(PgConnectOptions::from_str(&pg_base()).unwrap())
        .await
    {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&admin)
            .await;
        admin.close().await;
    }
}

fn spawn(args: &[&str], db_url: &str, redis: &RedisQueue, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_codeai"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", db_url)
        .env(
            "REDIS_URL",
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        )
        .env("CODEAI_REDIS_PREFIX", redis.prefix())
        .env("CODEAI_ADMIN_TOKEN", "scale-out-token")
        .env("CODEAI_LEASE_SECS", "3")
        .env_remove("SMTP_HOST")
        .env_remove("SLACK_WEBHOOK")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Child processes killed when dropped, so a failing test leaves none behind.
struct Reaped(Vec<Child>);

impl Drop for Reaped {
    fn drop(&mut self) {
        for c in &mut self.0 {
            kill9(c);
        }
    }
}

fn kill9(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

async fn scalar(db: &Database, sql: &str) -> i64 {
    common::count(db, sql, &[]).await
}

fn env_usize(name: &str, default: usize) -> usize {
    common::fixtures::env_number(name, default)
}

/// The `Noop` job of [`JOB`], compiled and registered for the default tenant.
async fn register_noop(db: &Database) -> platform::Registered {
    let (artifacts, _) = codeai_dsl::compile("scale.codeai", JOB).unwrap();
    let noop = artifacts
        .iter()
        .find(|a| a.manifest.name == "Noop")
        .unwrap();
    platform::register_job(db, "default", &noop.manifest, &noop.bytes, "noop")
        .await
        .unwrap()
}

/// `n` manual runs of the registered `Noop`, runnable now.
fn noop_tasks(reg: &platform::Registered, n: usize, max_attempts: i64) -> Vec<NewTask> {
    let task = NewTask {
        max_attempts,
        ..common::fixtures::run_now(&reg.job_id, reg.version, "Noop")
    };
    vec![task; n]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_with_9_lose_no_task() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(redis) = common::redis_queue().await else {
        return;
    };
    let name = common::unique("codeai_scale");
    let Some(url) = create_database(&name).await else {
        return;
    };
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(&dir).unwrap();
    let db = Database::connect(&url).await.unwrap();
    migrate::migrate_up(&db).await.unwrap();
    let reg = register_noop(&db).await;

    // The API/scheduler and three workers.
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let api = Reaped(vec![spawn(
        &["run", "--listen", &listen],
        &url,
        &redis,
        &dir,
    )]);
    let worker_args = [
        "worker",
        "start",
        "--concurrency",
        "10",
        "--grace-secs",
        "1",
    ];
    let mut workers = Reaped(
        (0..3)
            .map(|_| spawn(&worker_args, &url, &redis, &dir))
            .collect(),
    );

    let n = env_usize("SCALE_OUT_TASKS", 20_000);
    let queue = Queue::on(redis.clone(), QueueConfig::default());
    let tasks = noop_tasks(&reg, n, 1);
    let started = Instant::now();
    assert_eq!(queue.enqueue_many(&tasks).await.unwrap(), n as u64);

    // Kill a worker with -9 five times while the tasks run (spread over the run: at 1/6, 2/6, …
    // of the tasks done, plus a random delay), restarting it each time.
    let completed_sql = "SELECT COUNT(*) FROM job_executions WHERE status = 'completed'";
    let mut kills = 0;
    let mut seed = started.elapsed().subsec_nanos() as usize;
    let deadline = Instant::now() + Duration::from_secs(600);
    while kills < 5 {
        let done = scalar(&db, completed_sql).await as usize;
        if done < n * (kills + 1) / 6 {
            assert!(Instant::now() < deadline, "stalled at {done} of {n}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        tokio::time::sleep(Duration::from_millis((seed % 500) as u64)).await;
        let i = (seed >> 8) % workers.0.len();
        kill9(&mut workers.0[i]);
        workers.0[i] = spawn(&worker_args, &url, &redis, &dir);
        kills += 1;
        eprintln!("kill {kills}: worker {i} at {done} of {n} completed");
    }

    // Everything completes (a killed worker's tasks after their 3 s lease).
    loop {
        let done = scalar(&db, completed_sql).await;
        if done as usize >= n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {n} completed; the rest were lost"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let elapsed = started.elapsed();
    // Every task exactly once in the records; runs (one event each) minus tasks = duplicates.
    let distinct = scalar(
        &db,
        "SELECT COUNT(DISTINCT id) FROM job_executions WHERE status = 'completed'",
    )
    .await;
    let runs = scalar(&db, "SELECT COUNT(*) FROM events WHERE name = 'Ran'").await;
    let run_executions = scalar(
        &db,
        "SELECT COUNT(DISTINCT execution_id) FROM events WHERE name = 'Ran'",
    )
    .await;
    eprintln!(
        "{n} tasks, 3 workers x 10, 5 kills: all completed in {:.1}s ({:.0} tasks/s); \
         {} duplicate runs",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        runs - run_executions
    );
    assert_eq!(distinct as usize, n);
    assert_eq!(run_executions as usize, n, "a task that never ran");
    queue_counts_completed(&queue, n).await;
    let counts = queue.counts(Utc::now(), None).await.unwrap();
    assert_eq!(counts["default"].completed as usize, n);
    assert_eq!(counts["default"].pending + counts["default"].active, 0);

    // The API adds up the workers of the other processes; the killed ones drop out of the
    // counts once their entries are 10 s old: 3 live processes x 10 slots.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status: serde_json::Value = reqwest::Client::new()
            .get(format!("http://{listen}/queues/status"))
            .bearer_auth("scale-out-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["workers"]["total"] == 30 && status["workers"]["active"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    drop(api);
    drop(workers);
    db.close().await;
    common::redis_cleanup(&redis).await;
    drop_database(&name).await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn two_schedulers_never_fire_twice(db: Database, redis: Option<RedisQueue>) {
    let Some(redis) = redis else {
        return;
    };
    migrate::migrate_up(&db).await.unwrap();
    let (artifacts, _) = codeai_dsl::compile("scale.codeai", JOB).unwrap();
    let every = artifacts
        .iter()
        .find(|a| a.manifest.name == "EveryMinute")
        .unwrap();
    let queue = Arc::new(Queue::on(redis.clone(), QueueConfig::default()));
    let a = Arc::new(Scheduler::new(
        db.clone(),
        queue.clone(),
        MisfirePolicy::RunOnce,
    ));
    let b = Arc::new(Scheduler::new(
        db.clone(),
        queue.clone(),
        MisfirePolicy::RunOnce,
    ));
    let start: DateTime<Utc> = "2026-03-01T00:00:30Z".parse().unwrap();
    // 20 jobs firing every minute, 50 minutes: 1,000 fires.
    for i in 0..20 {
        let mut manifest = every.manifest.clone();
        manifest.name = format!("EveryMinute{i}");
        let reg = platform::register_job(&db, "default", &manifest, &every.bytes, &format!("e{i}"))
            .await
            .unwrap();
        let manifest = Arc::new(manifest);
        for s in [&a, &b] {
            s.add(&reg.job_id, "default", reg.version, manifest.clone(), start)
                .await
                .unwrap();
        }
    }
    let mut enqueued = 0;
    for minute in 1..=50 {
        let now = start + chrono::Duration::minutes(minute);
        let (ta, tb) = tokio::join!(a.tick(now), b.tick(now));
        let (ta, tb) = (ta.unwrap(), tb.unwrap());
        assert!(ta.skipped.is_empty() && tb.skipped.is_empty());
        enqueued += ta.enqueued.len() + tb.enqueued.len();
    }
    let counts = queue.counts(Utc::now(), None).await.unwrap();
    let queued: u64 = counts.values().map(|c| c.pending + c.scheduled).sum();
    assert_eq!(queued, 1_000, "fires in the queue");
    assert_eq!(enqueued, 1_000, "fires the schedulers report");
}

mod redis_schedulers {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_schedulers_at_once_enqueue_each_of_1000_fires_once() {
        super::common::run_postgres_redis(super::two_schedulers_never_fire_twice).await
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A Redis of its own on a free port, with the append-only file on.
fn redis_server(dir: &std::path::Path, port: u16) -> Child {
    let port = port.to_string();
    Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1"])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn connect_when_up(url: &str) -> RedisQueue {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Ok(q)) =
            tokio::time::timeout(Duration::from_secs(2), RedisQueue::connect(url, "aof:")).await
        {
            let mut con = q.connection();
            if redis::cmd("PING")
                .query_async::<String>(&mut con)
                .await
                .is_ok()
            {
                return q;
            }
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_aof_loses_no_acknowledged_task() {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "redis-server is not installed"
        );
        eprintln!("notice: no redis-server; skipping");
        return;
    }
    let dir = std::env::temp_dir().join(common::unique("codeai_aof"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let mut server = Reaped(vec![redis_server(&dir, port)]);
    let db = Database::connect(&format!("sqlite:{}", dir.join("state.db").display()))
        .await
        .unwrap();
    migrate::migrate_up(&db).await.unwrap();
    let queue = Queue::on(connect_when_up(&url).await, QueueConfig::default());
    let now = Utc::now();
    let tasks: Vec<NewTask> = (0..1_000)
        .map(|i| NewTask {
            id: None,
            tenant: "default".into(),
            job_id: format!("job{}", i % 7),
            job_name: "J".into(),
            job_version: Some(1),
            queue: ["critical", "default", "low"][i % 3].into(),
            trigger: "manual".into(),
            input: "{}".into(),
            fire_at: None,
            run_after: now - chrono::Duration::seconds(1),
            max_attempts: 1,
            exclusive: false,
        })
        .collect();
    assert_eq!(queue.enqueue_many(&tasks).await.unwrap(), 1_000);
    let mut leased = Vec::new();
    for _ in 0..100 {
        leased.push(queue.dequeue(now).await.unwrap().unwrap());
    }
    for t in &leased[..50] {
        queue.finish(t.id, "completed", None).await.unwrap();
    }
    let before = queue.counts(now, None).await.unwrap();

    // kill -9 and start again on the same files.
    kill9(&mut server.0[0]);
    server.0[0] = redis_server(&dir, port);
    let queue = Queue::on(connect_when_up(&url).await, QueueConfig::default());
    let after = queue.counts(now, None).await.unwrap();
    assert_eq!(after, before);
    let sum = |f: fn(&codeai_host::queue::QueueCounts) -> u64| after.values().map(f).sum::<u64>();
    assert_eq!(
        (sum(|c| c.pending), sum(|c| c.active), sum(|c| c.completed)),
        (900, 50, 50)
    );
    // The leased ones come back when their lease runs out; then every task is there to run.
    let later = now + chrono::Duration::seconds(60);
    assert_eq!(queue.rescue_expired(later).await.unwrap(), 50);
    let mut runnable = 0;
    while queue.dequeue(later).await.unwrap().is_some() {
        runnable += 1;
    }
    assert_eq!(runnable, 950);
    drop(server);
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The newest PostgreSQL server programs installed (`/usr/lib/postgresql/<version>/bin`).
fn pg_bin() -> Option<std::path::PathBuf> {
    let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("pg_ctl").exists() && bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// `pg_ctl` as the `postgres` user (the server refuses to run as root).
fn pg_ctl(bin: &std::path::Path, args: &[&str]) -> bool {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join("pg_ctl"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A PostgreSQL server of its own, stopped with `-m immediate` (a crash) while a worker runs
/// tasks and started again: the worker does not exit, waits with its backoff, and every task
/// completes once the database is back (tasks have 3 attempts: a run whose capability call met
/// the outage failed like any job whose dependency failed, and is retried).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_makes_workers_wait_not_crash() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let Some(bin) = pg_bin() else {
        assert!(
            !ci,
            "no PostgreSQL server programs under /usr/lib/postgresql"
        );
        eprintln!("notice: no PostgreSQL server programs; skipping");
        return;
    };
    let Some(redis) = common::redis_queue().await else {
        return;
    };
    let dir = std::env::temp_dir().join(common::unique("codeai_pgrestart"));
    let data = dir.join("pgdata");
    std::fs::create_dir_all(&data).unwrap();
    let owned = Command::new("chown")
        .args(["-R", "postgres", dir.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    let initdb = owned
        && Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if !initdb {
        assert!(!ci, "initdb as the postgres user failed (is this root?)");
        eprintln!("notice: cannot run initdb as postgres; skipping");
        return;
    }
    let port = free_port();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
        dir.display()
    );
    let data_dir = data.to_str().unwrap();
    let start = || {
        pg_ctl(
            &bin,
            &["-D", data_dir, "-o", &options, "-w", "-t", "30", "start"],
        )
    };
    let crash = || pg_ctl(&bin, &["-D", data_dir, "-m", "immediate", "-w", "stop"]);
    assert!(start(), "the private PostgreSQL did not start");
    struct Stop<F: Fn() -> bool>(F);
    impl<F: Fn() -> bool> Drop for Stop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let stop = Stop(crash);

    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    let db = Database::connect(&url).await.unwrap();
    migrate::migrate_up(&db).await.unwrap();
    let reg = register_noop(&db).await;
    let mut worker = Reaped(vec![spawn(
        &["worker", "start", "--concurrency", "4", "--grace-secs", "1"],
        &url,
        &redis,
        &dir,
    )]);

    let n = 2_000;
    let queue = Queue::on(redis.clone(), QueueConfig::default());
    // A run whose `emit` meets the database down fails like any job whose capability failed;
    // its retry runs it again once the database is back.
    let tasks = noop_tasks(&reg, n, 3);
    assert_eq!(queue.enqueue_many(&tasks).await.unwrap(), n as u64);
    let completed_sql = "SELECT COUNT(DISTINCT id) FROM job_executions WHERE status = 'completed'";
    let deadline = Instant::now() + Duration::from_secs(300);
    while (scalar(&db, completed_sql).await as usize) < n / 10 {
        assert!(Instant::now() < deadline, "the worker does not run tasks");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The database goes away in the middle of the run. In its place at its port, a stand-in
    // that takes each connection and closes it at once, counting them: the worker must come
    // back to the database again and again (waiting with its backoff between tries), and be
    // running still after it met the outage that many times.
    assert!(crash(), "pg_ctl stop -m immediate failed");
    let stand_in = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind the database's port");
    let tries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tries.clone();
    let refusing = tokio::spawn(async move {
        while let Ok((socket, _)) = stand_in.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(socket);
        }
    });
    common::wait_until("the worker did not come back to the database", || async {
        tries.load(std::sync::atomic::Ordering::SeqCst) >= 10
    })
    .await;
    assert!(
        worker.0[0].try_wait().unwrap().is_none(),
        "the worker exited while the database was down"
    );
    let left = queue.counts(Utc::now(), None).await.unwrap()["default"].pending;
    refusing.abort();
    let _ = refusing.await;
    assert!(start(), "the private PostgreSQL did not start again");

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done = match Database::connect(&url).await {
            Ok(check) => {
                let n = scalar(&check, completed_sql).await;
                check.close().await;
                n
            }
            Err(_) => 0,
        };
        if done as usize >= n {
            break;
        }
        if Instant::now() > deadline {
            let statuses: Vec<(String, i64)> = match &db {
                Database::Postgres(pool) => sqlx::query_as(
                    "SELECT status, COUNT(*) FROM job_executions GROUP BY status ORDER BY status",
                )
                .fetch_all(pool)
                .await
                .unwrap_or_default(),
                Database::Sqlite(_) => unreachable!(),
            };
            let counts = queue.counts(Utc::now(), None).await.unwrap();
            panic!(
                "{done} of {n} completed after the restart ({left} were left when it went \
                 down); records by status {statuses:?}; queue {counts:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        worker.0[0].try_wait().unwrap().is_none(),
        "the worker exited after the restart"
    );
    queue_counts_completed(&queue, n).await;
    let counts = queue.counts(Utc::now(), None).await.unwrap();
    assert_eq!(counts["default"].completed as usize, n);
    kill9(&mut worker.0[0]);
    drop(worker);
    db.close().await;
    drop(stop);
    common::redis_cleanup(&redis).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Waits until the queue counts `n` tasks of `default` completed. A task is finished in the queue
/// after its execution is committed (and finishes are batched), so the queue's count follows the
/// records' by a moment.
async fn queue_counts_completed(queue: &Queue, n: usize) {
    common::wait_until("the queue did not count every task completed", || async {
        let counts = queue.counts(Utc::now(), None).await.unwrap();
        counts["default"].completed as usize >= n
    })
    .await;
}

/// An upgrade while a long read holds `job_executions` (a dashboard query, a report): migration
/// 17 replaces that table's triggers, so it needs the table to itself. Waiting would hold up every
/// query that comes after it for as long as the read runs; it gives way instead, so a write gets
/// through while the read goes on, and it applies once the read is gone. When the read outlasts
/// its tries, it fails and leaves the database as it was. (Without a lock timeout the migration
/// and the write wait behind the read for good, and the test's hang guards fail.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_gives_way_to_a_long_read_and_applies_after_it() {
    common::run_postgres(|db| async move {
        let patient = migrate::LockWait {
            timeout: Duration::from_millis(100),
            tries: 1000,
            pause: Duration::from_millis(20),
        };
        migrate::migrate_up_to(&db, 16, patient).await.unwrap();
        let Database::Postgres(pool) = &db else {
            unreachable!()
        };
        let hang_guard = Duration::from_secs(60);
        // The read: a transaction that has read the table holds its lock until it ends.
        let mut read = pool.begin().await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM job_executions")
            .fetch_one(&mut *read)
            .await
            .unwrap();

        // Out of tries while the read goes on: refused, nothing of it left.
        let impatient = migrate::LockWait {
            tries: 3,
            ..patient
        };
        let refused = tokio::time::timeout(hang_guard, migrate::migrate_up_to(&db, 17, impatient))
            .await
            .expect("the migration waited behind the read without end");
        let e = refused.expect_err("migration 17 changed job_executions while a read held it");
        let code = e.as_database_error().and_then(|d| d.code());
        assert_eq!(code.as_deref(), Some("55P03"), "{e}");
        let version: i64 = sqlx::query_scalar("SELECT MAX(version) FROM _codeai_migrations")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            version, 16,
            "a migration that gave way left something behind"
        );

        // With tries to spare: once it waits for the table, a write still gets through (it
        // queues behind the migration's request, which gives way), then the read ends and the
        // migration, trying again, applies.
        let upgrade = tokio::spawn({
            let db = db.clone();
            async move { migrate::migrate_up_to(&db, 17, patient).await }
        });
        let waiting = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE relation = \
            'job_executions'::regclass AND mode = 'AccessExclusiveLock' AND NOT granted)";
        tokio::time::timeout(hang_guard, async {
            while !sqlx::query_scalar::<_, bool>(waiting)
                .fetch_one(pool)
                .await
                .unwrap()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the migration never asked for job_executions");
        let mut write = pool.begin().await.unwrap();
        tokio::time::timeout(
            hang_guard,
            sqlx::query("LOCK TABLE job_executions IN ROW EXCLUSIVE MODE").execute(&mut *write),
        )
        .await
        .expect("a write waited behind the migration as long as the read ran")
        .unwrap();
        write.rollback().await.unwrap();
        read.commit().await.unwrap();
        let applied = tokio::time::timeout(hang_guard, upgrade)
            .await
            .expect("the migration did not apply once the read was gone")
            .unwrap()
            .unwrap();
        assert_eq!(applied, vec![(17, "metric_statements")]);
    })
    .await
}
