//! The worker pool end to end: jobs that fail twice and then succeed show three attempts, with
//! the delays of their retry strategy between them; a job that always fails runs its `on_fail`
//! once, after the last attempt; a long execution is cancelled by id; while jobs are short, the
//! pool leases ahead, and a task leased ahead can be cancelled and is put back on shutdown; an
//! execution that has ended while its record is being written is refused a cancel; records
//! waiting for their commit hold at most the recorder's bytes, and one tenant's at most half.

#[macro_use]
mod common;
use common::peers::{HangingPeer, HttpPeer};

use chrono::{DateTime, Utc};
use codeai_host::domain::executions::{Lifecycle, Refused};
use codeai_host::executor::Executor;
use codeai_host::queue::{NewTask, Queue, QueueConfig, RedisQueue};
use codeai_host::runtime::{Runtime, RuntimeConfig};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::{migrate, platform, tenants, Database};
use codeai_host::worker::{PoolConfig, WorkerPool};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

on_every_backend!(
    failing_twice_then_succeeding_shows_three_attempts_per_strategy,
    a_running_execution_is_cancelled_by_id_and_shutdown_puts_the_rest_back,
    short_jobs_are_leased_ahead_cancellable_and_put_back_on_shutdown,
    a_fire_that_comes_to_run_beside_the_previous_run_is_skipped_with_its_reason,
);

/// Scenarios whose commits are held with a PostgreSQL table lock: each `MODULE: NAME` becomes
/// `MODULE::postgres` (the queue in the database) and `MODULE::redis` (the queue on Redis).
macro_rules! on_postgres_with_either_queue {
    ($($module:ident: $name:ident),* $(,)?) => {$(
        mod $module {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::common::run_postgres(move |db| super::$name(db, None)).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::common::run_postgres_redis(super::$name).await
            }
        }
    )*};
}

on_postgres_with_either_queue!(
    ended: an_ended_execution_whose_record_is_being_written_is_refused_a_cancel,
    held_records: records_waiting_for_their_commit_hold_at_most_the_recorders_bytes,
    held_shares: one_tenants_large_records_leave_room_for_anothers,
    copied: a_start_copied_in_whose_row_exists_is_written_again_as_an_upsert,
);

const API: &str = r#"
integration Api {
    base_url: env("API_URL")
    timeout: 5s
    ping: GET "/ping/{key}" { key: string }
}

event Failed { job: string, execution: string, error: string }
"#;

/// A job that calls `Api.ping` with its key, retries per its policy and emits `Failed` when it
/// gives up.
const PINGER: &str = r#"
job NAME {
    RETRY
    input: { key: "KEY" }
    steps { p { call: Api.ping { key: input.key } } }
    on_fail: emit(Failed)
}
"#;

/// (job, its retry policy, the key it pings with).
const PINGERS: [(&str, &str, &str); 4] = [
    ("Fixed", "retry: 2 times", "fixed"),
    (
        "Exponential",
        "retry: 2 times with exponential_backoff",
        "exp",
    ),
    (
        "Listed",
        "retry: 2 times\n    retry_delays: [300ms, 600ms]",
        "listed",
    ),
    (
        "Hopeless",
        "retry: 1 times with exponential_backoff",
        "never",
    ),
];

/// [`API`] and a [`PINGER`] for each of the [`PINGERS`].
fn source() -> String {
    let jobs = PINGERS.iter().map(|(job, retry, key)| {
        PINGER
            .replace("NAME", job)
            .replace("RETRY", retry)
            .replace("KEY", key)
    });
    std::iter::once(API.to_string()).chain(jobs).collect()
}

/// (status, started_at, finished_at) of each attempt of an execution, in order: the retried
/// attempts' rows in `execution_attempts`, then the last attempt, which is the execution row.
async fn attempts(db: &Database, id: &str) -> Vec<(String, DateTime<Utc>, DateTime<Utc>)> {
    let retried = "SELECT attempt, status, started_at, finished_at FROM execution_attempts \
                   WHERE execution_id = $1";
    let last = "SELECT attempt, status, started_at, finished_at FROM job_executions \
                WHERE id = $2 AND finished_at IS NOT NULL AND status <> 'retrying'";
    let mut rows: Vec<(i64, String, DateTime<Utc>, DateTime<Utc>)> = match db {
        Database::Sqlite(pool) => {
            let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
            let mut out = Vec::new();
            for sql in [retried, last] {
                let sql = sql.replace("$1", "?").replace("$2", "?");
                let rows: Vec<(i64, String, String, String)> = sqlx::query_as(&sql)
                    .bind(id.to_string())
                    .fetch_all(pool)
                    .await
                    .unwrap();
                out.extend(rows.into_iter().map(|(n, s, a, b)| (n, s, t(&a), t(&b))));
            }
            out
        }
        Database::Postgres(pool) => {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            let mut out: Vec<(i64, String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(retried)
                .bind(id.to_string())
                .fetch_all(pool)
                .await
                .unwrap();
            out.extend(
                sqlx::query_as::<_, (i64, String, DateTime<Utc>, DateTime<Utc>)>(
                    &last.replace("$2", "$1"),
                )
                .bind(uuid)
                .fetch_all(pool)
                .await
                .unwrap(),
            );
            out
        }
    };
    rows.sort_by_key(|r| r.0);
    let numbers: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let expected: Vec<i64> = (1..=rows.len() as i64).collect();
    assert_eq!(
        numbers, expected,
        "each attempt once: the last one is not repeated in execution_attempts"
    );
    rows.into_iter().map(|(_, s, a, b)| (s, a, b)).collect()
}

/// A manual run of a registered job, due now.
fn manual_task(reg: &platform::Registered, name: &str, queue: &str, max_attempts: i64) -> NewTask {
    NewTask {
        queue: queue.into(),
        max_attempts,
        ..common::fixtures::run_now(&reg.job_id, reg.version, name)
    }
}

async fn failing_twice_then_succeeding_shows_three_attempts_per_strategy(
    db: Database,
    redis: Option<RedisQueue>,
) {
    // The API fails the first two calls of each key, except `never`, which always fails.
    let calls: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = calls.clone();
    let api = HttpPeer::start(move |r| {
        let mut calls = seen.lock().unwrap();
        let n = calls.entry(r.target.clone()).or_default();
        *n += 1;
        if *n <= 2 || r.target.ends_with("/never") {
            (503, r#"{"error":"busy"}"#.into())
        } else {
            (200, r#"{"ok":true}"#.into())
        }
    })
    .await;
    let Workers { dir, queue, pool } = workers(
        &db,
        redis,
        "codeai_worker",
        api.url.clone(),
        PoolConfig {
            slots: 4,
            ..PoolConfig::default()
        },
    )
    .await;

    let (artifacts, _) = codeai_dsl::compile("retry.codeai", &source()).unwrap();
    let mut ids = BTreeMap::new();
    for a in &artifacts {
        let reg = platform::register_job(&db, "default", &a.manifest, &a.bytes, &a.name)
            .await
            .unwrap();
        let id = queue
            .enqueue(&manual_task(
                &reg,
                &a.name,
                &a.manifest.queue,
                i64::from(a.manifest.retry.max_retries) + 1,
            ))
            .await
            .unwrap()
            .unwrap();
        ids.insert(a.name.clone(), id.to_string());
    }
    let running = tokio::spawn(pool.clone().run());
    // Wait until every task is finished (done or dead).
    common::wait_until("tasks still open", || async {
        let c = queue.counts(Utc::now(), None).await.unwrap();
        c.values().all(|c| c.pending + c.scheduled + c.active == 0)
    })
    .await;
    pool.shutdown().await;
    running.abort();

    for (job, delays_ms) in [
        ("Fixed", [1000, 1000]),
        ("Exponential", [100, 200]),
        ("Listed", [300, 600]),
    ] {
        let a = attempts(&db, &ids[job]).await;
        let statuses: Vec<&str> = a.iter().map(|(s, _, _)| s.as_str()).collect();
        assert_eq!(statuses, ["failed", "failed", "completed"], "{job}");
        for (i, delay) in delays_ms.iter().enumerate() {
            let waited = (a[i + 1].1 - a[i].2).num_milliseconds();
            eprintln!(
                "{job}: retry {} after {waited} ms (delay {delay} ms)",
                i + 1
            );
            assert!(
                waited >= *delay - 5 && waited < delay + 1000,
                "{job} retry {}: waited {waited} ms, delay {delay} ms",
                i + 1
            );
        }
    }
    // The hopeless job: two attempts, then dead, and its on_fail event exactly once.
    let a = attempts(&db, &ids["Hopeless"]).await;
    assert_eq!(a.len(), 2);
    let failed_events = common::count(
        &db,
        "SELECT COUNT(*) FROM events WHERE name = 'Failed' AND job = 'Hopeless'",
        &[],
    )
    .await;
    assert_eq!(
        failed_events, 1,
        "on_fail runs after the final attempt only"
    );
    let others = common::count(
        &db,
        "SELECT COUNT(*) FROM events WHERE name = 'Failed' AND job <> 'Hopeless'",
        &[],
    )
    .await;
    assert_eq!(
        others, 0,
        "jobs that succeeded on a retry do not report failure"
    );
    let c = queue.counts(Utc::now(), None).await.unwrap();
    let (done, dead): (u64, u64) = c
        .values()
        .fold((0, 0), |(d, f), c| (d + c.completed, f + c.failed));
    assert_eq!((done, dead), (3, 1));
    // What /metrics reports of these runs (totals kept as they were recorded, in batches).
    common::assert_metrics_match_history(&db).await;
    let retries = codeai_host::store::executions::retries_by_job(&db)
        .await
        .unwrap();
    // Three jobs took two retries each, the hopeless one one.
    assert_eq!(
        retries.iter().map(|(_, n)| n).sum::<i64>(),
        7,
        "{retries:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The integration whose `wait` the jobs below sit in: `API_URL` never answers.
macro_rules! slow_api {
    () => {
        r#"
integration Slow {
    base_url: env("API_URL")
    timeout: 30s
    wait: GET "/wait" {}
}
"#
    };
}

const SLOW: &str = concat!(
    slow_api!(),
    r#"
job Waits {
    retry: 3 times
    steps { w { call: Slow.wait {} } }
}
"#
);

/// The state, outcome and attempt of a task.
async fn task_state(queue: &Queue, id: uuid::Uuid) -> (String, Option<String>, i64) {
    let t = queue.task_info(id).await.unwrap().unwrap();
    (t.state, t.outcome, t.task.attempt)
}

/// Waits until task `id` is dead, failing with `what` if that does not happen within the
/// liveness deadline; then it must have been cancelled, on its first attempt.
async fn wait_cancelled(queue: &Queue, id: uuid::Uuid, what: &str) {
    common::wait_until(what, || async { task_state(queue, id).await.0 == "dead" }).await;
    let (_, outcome, attempt) = task_state(queue, id).await;
    assert_eq!(
        (outcome.as_deref(), attempt),
        (Some("cancelled"), 1),
        "{what}"
    );
}

/// A queue and a worker pool on `db` (`config`, polling every 10 ms) whose jobs' `API_URL` is
/// `url`, a peer on loopback; the directory of its cache and reports, named after `name`.
struct Workers {
    dir: std::path::PathBuf,
    queue: Arc<Queue>,
    pool: Arc<WorkerPool>,
}

async fn workers(
    db: &Database,
    redis: Option<RedisQueue>,
    name: &str,
    url: String,
    config: PoolConfig,
) -> Workers {
    workers_with(db, redis, name, url, config, |_| {}).await.0
}

/// [`workers`] with its services' configuration changed by `services`, and their executor.
async fn workers_with(
    db: &Database,
    redis: Option<RedisQueue>,
    name: &str,
    url: String,
    config: PoolConfig,
    services: impl FnOnce(&mut ServicesConfig),
) -> (Workers, Arc<Executor>) {
    migrate::migrate_up(db).await.unwrap();
    let env: codeai_host::services::Env = Arc::new(move |k| (k == "API_URL").then(|| url.clone()));
    let dir = std::env::temp_dir().join(common::unique(name));
    let runtime = Runtime::new(RuntimeConfig {
        cache_dir: dir.join("cache"),
        pool_size: 8,
        ..RuntimeConfig::default()
    })
    .unwrap();
    let mut services_config = loopback_allowed(dir.join("reports"), env);
    services(&mut services_config);
    let executor = Arc::new(Executor::new(
        runtime,
        Services::new(db.clone(), services_config),
    ));
    let queue = Arc::new(Queue::open(db.clone(), QueueConfig::default(), redis));
    let config = PoolConfig {
        poll: Duration::from_millis(10),
        ..config
    };
    let pool = WorkerPool::new(queue.clone(), executor.clone(), config);
    (Workers { dir, queue, pool }, executor)
}

/// [`workers`] (`slots`, `prefetch`, 200 ms grace) whose `API_URL` is a server that accepts and
/// never answers: a job calling it sits in a host call.
async fn hanging(
    db: &Database,
    redis: Option<RedisQueue>,
    name: &str,
    slots: usize,
    prefetch: Option<usize>,
) -> (HangingPeer, Workers) {
    let server = HangingPeer::start().await;
    let config = PoolConfig {
        slots,
        grace: Duration::from_millis(200),
        prefetch,
        ..PoolConfig::default()
    };
    let workers = workers(db, redis, name, server.url.clone(), config).await;
    (server, workers)
}

async fn a_running_execution_is_cancelled_by_id_and_shutdown_puts_the_rest_back(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let (server, Workers { dir, queue, pool }, reg) =
        hanging_slow(&db, redis, "codeai_cancel").await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let id = queue
            .enqueue(&manual_task(&reg, "Waits", "default", 4))
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    let running = tokio::spawn(pool.clone().run());
    // Both start (the first run compiles the component) and wait on the server.
    common::wait_until("the tasks did not reach the server", || async {
        server.accepted() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Cancel the first by id: it stops inside its host call (the server never answers) and is
    // recorded as cancelled, not retried. Had the cancel not stopped it, the call would time
    // out after 30 s and the task be retried: not dead, or dead with outcome `failed`.
    assert!(pool.cancel(ids[0]));
    wait_cancelled(&queue, ids[0], "cancel did not stop the execution").await;
    assert_eq!(server.accepted(), 2, "the cancelled task was run again");
    // Shut down while the second waits: after the 200 ms grace it is cancelled and put back,
    // its attempt given back, to run on the next start.
    pool.shutdown().await;
    running.abort();
    let (state, outcome, attempt) = task_state(&queue, ids[1]).await;
    assert_eq!((state.as_str(), outcome, attempt), ("pending", None, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The scheduler enqueues a fire ahead of its instant without looking at the job's other runs;
/// with `overlap: skip` (the default), the worker that leases the fire skips it when another run
/// of the job is still active, and runs the next fire once that run is over.
async fn a_fire_that_comes_to_run_beside_the_previous_run_is_skipped_with_its_reason(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let (server, Workers { dir, queue, pool }, reg) =
        hanging_slow(&db, redis, "codeai_overlap").await;
    let previous = queue
        .enqueue(&manual_task(&reg, "Waits", "default", 1))
        .await
        .unwrap()
        .unwrap();
    let running = tokio::spawn(pool.clone().run());
    common::wait_until("the previous run did not start", || async {
        server.accepted() >= 1
    })
    .await;
    // Two fires whose instants have come, enqueued the way the scheduler enqueues them.
    let fire = |at: DateTime<Utc>| NewTask {
        trigger: "schedule".into(),
        fire_at: Some(at),
        run_after: at,
        ..manual_task(&reg, "Waits", "default", 1)
    };
    let first = Utc::now();
    let skipped = queue.enqueue(&fire(first)).await.unwrap().unwrap();
    pool.notify();
    common::wait_until("the fire was not skipped", || async {
        task_state(&queue, skipped).await.0 == "done"
    })
    .await;
    assert_eq!(
        task_state(&queue, skipped).await.1.as_deref(),
        Some("skipped")
    );
    assert_eq!(server.accepted(), 1, "the fire ran beside the previous run");
    let id = skipped.to_string();
    let recorded = "SELECT COUNT(*) FROM job_executions WHERE CAST(id AS TEXT) = ? \
                    AND status = 'skipped' AND error LIKE 'overlap:%' AND scheduled_at IS NOT NULL";
    assert_eq!(common::count(&db, recorded, &[&id]).await, 1);
    // Once the previous run is over, the next fire runs.
    assert!(pool.cancel(previous));
    wait_cancelled(&queue, previous, "cancel did not stop the previous run").await;
    let next = queue
        .enqueue(&fire(first + chrono::Duration::seconds(1)))
        .await
        .unwrap()
        .unwrap();
    pool.notify();
    common::wait_until("the next fire did not run", || async {
        server.accepted() >= 2
    })
    .await;
    assert!(pool.cancel(next));
    wait_cancelled(&queue, next, "cancel did not stop the next fire").await;
    pool.shutdown().await;
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// [`hanging`] workers (2 slots) and [`SLOW`]'s job, registered: each run of it hangs.
async fn hanging_slow(
    db: &Database,
    redis: Option<RedisQueue>,
    name: &str,
) -> (HangingPeer, Workers, platform::Registered) {
    let (server, workers) = hanging(db, redis, name, 2, None).await;
    let (artifacts, _) = codeai_dsl::compile("slow.codeai", SLOW).unwrap();
    let a = &artifacts[0];
    let reg = platform::register_job(db, "default", &a.manifest, &a.bytes, "slow")
        .await
        .unwrap();
    (server, workers, reg)
}

const QUICK_AND_SLOW: &str = concat!(
    slow_api!(),
    r#"
job Waits {
    steps { w { call: Slow.wait {} } }
}

job Quick {
    steps { one { compute: { ok: true } as: result } }
}
"#
);

async fn short_jobs_are_leased_ahead_cancellable_and_put_back_on_shutdown(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let (server, Workers { dir, queue, pool }) =
        hanging(&db, redis, "codeai_ahead", 1, Some(3)).await;
    let (artifacts, _) = codeai_dsl::compile("ahead.codeai", QUICK_AND_SLOW).unwrap();
    let mut jobs = BTreeMap::new();
    for a in &artifacts {
        let reg = platform::register_job(&db, "default", &a.manifest, &a.bytes, &a.name)
            .await
            .unwrap();
        jobs.insert(a.name.clone(), reg);
    }
    let task = |name: &str| manual_task(&jobs[name], name, "default", 3);
    let completed = || async {
        let c = queue.counts(Utc::now(), None).await.unwrap();
        c.values().map(|c| c.completed).sum::<u64>()
    };

    // Sixty short jobs: the pool learns that executions here are short.
    let warm: Vec<NewTask> = (0..60).map(|_| task("Quick")).collect();
    queue.enqueue_many(&warm).await.unwrap();
    let running = tokio::spawn(pool.clone().run());
    common::wait_until("the short jobs did not run", || async {
        completed().await >= 60
    })
    .await;

    // The one slot runs `Waits`; three short tasks enqueued behind it are leased ahead.
    let slow = queue.enqueue(&task("Waits")).await.unwrap().unwrap();
    common::wait_until("Waits did not start", || async { server.accepted() >= 1 }).await;
    let q1 = queue.enqueue(&task("Quick")).await.unwrap().unwrap();
    let q2 = queue.enqueue(&task("Quick")).await.unwrap().unwrap();
    let q3 = queue.enqueue(&task("Quick")).await.unwrap().unwrap();
    common::wait_until("the short tasks were not leased ahead", || async {
        for q in [q1, q2, q3] {
            if task_state(&queue, q).await.0 != "active" {
                return false;
            }
        }
        true
    })
    .await;
    assert_eq!(
        completed().await,
        60,
        "a task leased ahead ran with the slot busy"
    );

    // Cancelling one leased ahead records it `cancelled` at once, the slot still busy.
    assert!(pool.cancel(q1));
    // It is recorded while `Waits` still holds the slot, on its first attempt (the call it
    // waits in never answered, so the slot never came free).
    wait_cancelled(
        &queue,
        q1,
        "cancelling a task leased ahead was not recorded",
    )
    .await;
    assert_eq!(
        task_state(&queue, slow).await,
        ("active".to_string(), None, 1),
        "cancelling a task leased ahead waited for the slot"
    );
    assert_eq!(server.accepted(), 1);

    // Shutdown: `Waits` is cancelled after the grace and put back; the tasks still leased
    // ahead are put back too; none uses up an attempt, and they come back in their order.
    pool.shutdown().await;
    running.abort();
    for id in [slow, q2, q3] {
        let (state, outcome, attempt) = task_state(&queue, id).await;
        assert_eq!((state.as_str(), outcome, attempt), ("pending", None, 0));
    }
    assert_eq!(completed().await, 60);
    let mut order = Vec::new();
    while let Some(t) = queue.dequeue(Utc::now()).await.unwrap() {
        order.push(t.id);
    }
    assert_eq!(order, [slow, q2, q3], "put back out of order");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The platform of these tests: their operator's jobs call a peer on loopback.
fn loopback_allowed(
    reports: std::path::PathBuf,
    env: codeai_host::services::Env,
) -> ServicesConfig {
    let mut config = ServicesConfig::local(reports, env);
    config.egress.operator = "127.0.0.1/32".parse().unwrap();
    config
}

/// `source` compiled and registered for `tenant`.
async fn register(db: &Database, tenant: &str, source: &str) -> platform::Registered {
    let (artifacts, _) = codeai_dsl::compile("job.codeai", source).unwrap();
    let a = &artifacts[0];
    platform::register_job(db, tenant, &a.manifest, &a.bytes, "job")
        .await
        .unwrap()
}

/// Holds PostgreSQL's commits of execution records until the transaction ends: the record
/// writer's statements wait for the table.
async fn hold_record_commits(pg: &sqlx::PgPool) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut hold = pg.begin().await.unwrap();
    sqlx::query("LOCK TABLE job_executions IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    hold
}

/// An execution that has ended while PostgreSQL is slow to commit its record: its task stays
/// active on the queue and its record says `running` until the commit, but it is over. Cancelling
/// it is refused at once with that reason; before, the answer was "stopping" (Redis: the cancel
/// went to other workers) or, after half a second, "running in another process" (SQL queue).
async fn an_ended_execution_whose_record_is_being_written_is_refused_a_cancel(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let Database::Postgres(pg) = &db else {
        unreachable!("the commit is held with a PostgreSQL table lock")
    };
    let config = PoolConfig {
        slots: 1,
        ..PoolConfig::default()
    };
    let url = "http://127.0.0.1:9".to_string();
    let Workers { dir, queue, pool } = workers(&db, redis, "codeai_ended", url, config).await;
    let reg = register(&db, "default", common::fixtures::NOOP).await;
    let hold = hold_record_commits(pg).await;
    let id = queue
        .enqueue(&manual_task(&reg, "Noop", "default", 1))
        .await
        .unwrap()
        .unwrap();
    let running = tokio::spawn(pool.clone().run());
    common::wait_until("the execution did not end", || {
        let pool = pool.clone();
        async move { pool.ended_unrecorded(id) }
    })
    .await;
    let lifecycle = Lifecycle {
        db: &db,
        queue: &queue,
        pool: &pool,
    };
    let refused = lifecycle.cancel("default", id, "running").await;
    assert!(matches!(refused, Err(Refused::Ended)), "{refused:?}");

    hold.commit().await.unwrap();
    common::wait_until("the ended execution was not finished", || {
        let queue = queue.clone();
        async move { task_state(&queue, id).await.0 == "done" }
    })
    .await;
    assert_eq!(
        task_state(&queue, id).await,
        ("done".to_string(), Some("completed".to_string()), 1)
    );
    pool.shutdown().await;
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// On PostgreSQL the starts that look new (a first attempt of a task nobody recorded beforehand:
/// here scheduled fires) are copied in (`COPY`), and their rows hold what the upsert writes (a
/// run now's row, upserted, beside them). `COPY` cannot update a row: when the row exists after
/// all (here written beforehand, as a start committed by a worker that then died), the batch
/// fails and is written again as upserts, and every execution ends recorded once, completed,
/// those whose row existed and those copied beside them, and counted in `/metrics`' totals.
async fn a_start_copied_in_whose_row_exists_is_written_again_as_an_upsert(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let Database::Postgres(pg) = &db else {
        unreachable!("COPY is PostgreSQL's")
    };
    let url = "http://127.0.0.1:9".to_string();
    let config = PoolConfig::default();
    let Workers { dir, queue, pool } = workers(&db, redis, "codeai_copied", url, config).await;
    let reg = register(&db, "default", common::fixtures::NOOP).await;
    let fire = || NewTask {
        trigger: "schedule".into(),
        ..manual_task(&reg, "Noop", "default", 1)
    };
    let t0 = Utc::now();
    let running = tokio::spawn(pool.clone().run());
    let wait_done = |ids: Vec<uuid::Uuid>| {
        let queue = queue.clone();
        async move {
            for id in ids {
                common::wait_until("a run was not finished", || {
                    let queue = queue.clone();
                    async move { task_state(&queue, id).await.0 == "done" }
                })
                .await;
            }
        }
    };

    // New fires are copied in, each; a run now is upserted.
    let before = codeai_host::store::recorder::rows_copied();
    let mut fresh = Vec::new();
    for _ in 0..10 {
        fresh.push(queue.enqueue(&fire()).await.unwrap().unwrap());
    }
    let manual = manual_task(&reg, "Noop", "default", 1);
    let upserted = queue.enqueue(&manual).await.unwrap().unwrap();
    wait_done(fresh.iter().copied().chain([upserted]).collect()).await;
    assert_eq!(codeai_host::store::recorder::rows_copied() - before, 10);
    type Row = (
        String,
        String,
        String,
        Option<i64>,
        String,
        String,
        String,
        i64,
        i64,
    );
    type Texts = (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let columns = "tenant_id, job_id, job_name, job_version, status, queue, input, attempt, \
                   max_attempts";
    let row = |id: uuid::Uuid| async move {
        let kept: Row = sqlx::query_as(&format!(
            "SELECT {columns} FROM job_executions WHERE id = $1"
        ))
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        let (output, error, step, log, calls): Texts = sqlx::query_as(
            "SELECT output, error, step, log, calls FROM job_executions WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        let times: (DateTime<Utc>, DateTime<Utc>, DateTime<Utc>, i64) = sqlx::query_as(
            "SELECT started_at, created_at, finished_at, duration_ms FROM job_executions \
             WHERE id = $1",
        )
        .bind(id)
        .fetch_one(pg)
        .await
        .unwrap();
        (
            kept,
            output,
            error,
            step,
            log.is_some(),
            calls.is_some(),
            times,
        )
    };
    let reference = row(upserted).await;
    for id in &fresh {
        let copied = row(*id).await;
        assert_eq!(
            (&copied.0, &copied.1, &copied.2, &copied.3, copied.4, copied.5),
            (
                &reference.0,
                &reference.1,
                &reference.2,
                &reference.3,
                reference.4,
                reference.5
            ),
            "{id}"
        );
        let (started, created, finished, duration) = copied.6;
        assert_eq!(created, started, "{id}");
        assert!(
            t0 - chrono::Duration::seconds(1) <= started && started <= finished,
            "{id}"
        );
        assert!(finished <= Utc::now() && duration >= 0, "{id}");
    }

    // Fires of which every fourth has its row already: those batches are upserted instead.
    let mut ids = Vec::new();
    for i in 0..40 {
        let task = NewTask {
            run_after: Utc::now() + chrono::Duration::seconds(1),
            ..fire()
        };
        let id = queue.enqueue(&task).await.unwrap().unwrap();
        if i % 4 == 0 {
            sqlx::query(
                "INSERT INTO job_executions (id, tenant_id, job_id, job_name, status, trigger, \
                 queue, input, attempt, max_attempts, started_at, created_at) VALUES ($1, \
                 'default', $2, 'Noop', 'running', 'schedule', 'default', '{}', 1, 1, now(), now())",
            )
            .bind(id)
            .bind(&reg.job_id)
            .execute(pg)
            .await
            .unwrap();
        }
        ids.push(id);
    }
    wait_done(ids.clone()).await;
    let rows: Vec<(uuid::Uuid, String, i64, bool)> = sqlx::query_as(
        "SELECT id, status, attempt, finished_at IS NOT NULL FROM job_executions \
         WHERE job_id = $1 AND id = ANY($2) ORDER BY id",
    )
    .bind(&reg.job_id)
    .bind(&ids)
    .fetch_all(pg)
    .await
    .unwrap();
    let mut expected: Vec<(uuid::Uuid, String, i64, bool)> = ids
        .iter()
        .map(|id| (*id, "completed".to_string(), 1, true))
        .collect();
    expected.sort();
    assert_eq!(rows, expected);
    // The rows copied in count in `/metrics`' totals as the upserted ones do.
    let totals: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, SUM(n)::int8 FROM metric_executions WHERE job_name = 'Noop' \
         GROUP BY status HAVING SUM(n) <> 0 ORDER BY status",
    )
    .fetch_all(pg)
    .await
    .unwrap();
    let all = fresh.len() + 1 + ids.len();
    assert_eq!(totals, vec![("completed".to_string(), all as i64)]);
    pool.shutdown().await;
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// The records' room of the two tests below, and the size of an echo's input (each run's two
/// records are about two of it: the start's input, the end's output).
const HELD: usize = 1 << 20;
const BLOB: usize = 300 * 1024;

/// A job whose output is its input's `blob`.
const ECHO: &str = "job Echo { steps { echo { compute: input.blob as: blob } } }";

/// [`workers`] with 4 slots whose recorder holds at most [`HELD`] bytes, and PostgreSQL's commits
/// of execution records held until the returned transaction ends.
async fn held_workers(
    db: &Database,
    redis: Option<RedisQueue>,
    name: &str,
) -> (
    Workers,
    Arc<Executor>,
    sqlx::Transaction<'static, sqlx::Postgres>,
) {
    let Database::Postgres(pg) = db else {
        unreachable!("the commit is held with a PostgreSQL table lock")
    };
    let config = PoolConfig {
        slots: 4,
        ..PoolConfig::default()
    };
    let url = "http://127.0.0.1:9".to_string();
    let (workers, executor) = workers_with(db, redis, name, url, config, |services| {
        services.held_record_bytes = HELD
    })
    .await;
    (workers, executor, hold_record_commits(pg).await)
}

/// `runs` runs of the job `Echo` for `tenant` (made, with two of the pool's four slots, as
/// SECURITY.md advises, unless it is `default`), each echoing `bytes`.
async fn enqueue_echoes(
    db: &Database,
    queue: &Queue,
    tenant: &str,
    runs: usize,
    bytes: usize,
) -> Vec<uuid::Uuid> {
    if tenant != "default" {
        tenants::create_tenant(db, tenant, Some(2), None, None)
            .await
            .unwrap();
    }
    let echo = register(db, tenant, ECHO).await;
    let input = serde_json::json!({ "blob": "x".repeat(bytes) }).to_string();
    let mut ids = Vec::new();
    for _ in 0..runs {
        let task = NewTask {
            tenant: tenant.into(),
            input: input.clone(),
            ..manual_task(&echo, "Echo", "default", 1)
        };
        ids.push(queue.enqueue(&task).await.unwrap().unwrap());
    }
    ids
}

/// Waits until every run of `ids` is finished and recorded `completed` with its whole output of
/// `bytes`.
async fn assert_echoed(queue: &Queue, pg: &sqlx::PgPool, ids: &[uuid::Uuid], bytes: usize) {
    for id in ids {
        common::wait_until("a run was not finished", || async {
            task_state(queue, *id).await.0 == "done"
        })
        .await;
        let (status, output): (String, Option<String>) =
            sqlx::query_as("SELECT status, output FROM job_executions WHERE id = $1")
                .bind(id)
                .fetch_one(pg)
                .await
                .unwrap();
        assert_eq!(status, "completed");
        let output: serde_json::Value = serde_json::from_str(&output.unwrap()).unwrap();
        assert_eq!(output["blob"].as_str().map(str::len), Some(bytes), "{id}");
    }
}

/// Jobs of four tenants whose outputs are large, run while PostgreSQL is slow to commit: the
/// records waiting for their commit hold at most the recorder's bytes, though no tenant is at its
/// share. A run whose record does not fit waits to hand it over (so the pool stops taking tasks),
/// and once the commits go through every execution is recorded whole. Before, every record waited
/// in memory, so jobs that each return megabytes could fill the host's memory while the database
/// was slow.
async fn records_waiting_for_their_commit_hold_at_most_the_recorders_bytes(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let (Workers { dir, queue, pool }, executor, hold) =
        held_workers(&db, redis, "codeai_held").await;
    let Database::Postgres(pg) = &db else {
        unreachable!("held_workers runs on PostgreSQL only")
    };
    let mut ids = Vec::new();
    for tenant in ["default", "acme", "bravo", "carol"] {
        ids.extend(enqueue_echoes(&db, &queue, tenant, 1, BLOB).await);
    }
    let running = tokio::spawn(pool.clone().run());
    // Each run's start record is ~300 KiB, within its tenant's half: three fit in the room, the
    // fourth waits for room in the total; the three that run then wait to hand their ends over
    // (start and end, ~600 KiB, pass a tenant's half). Without the total, all four starts would
    // be held (~1.2 MiB).
    let recorder = executor.services().recorder();
    common::wait_until("not every run waited for room", || async {
        recorder.waiting() == ids.len()
    })
    .await;
    assert!(
        recorder.held_bytes() <= HELD,
        "{} bytes held",
        recorder.held_bytes()
    );
    let handed = ids.iter().filter(|id| pool.ended_unrecorded(**id)).count();
    assert_eq!(handed, 0, "runs handed their ends over");

    hold.commit().await.unwrap();
    assert_echoed(&queue, pg, &ids, BLOB).await;
    assert_eq!(recorder.held_bytes(), 0);
    pool.shutdown().await;
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tenant whose jobs return large outputs, run while PostgreSQL is slow to commit, holds at most
/// half of the recorder's bytes, and another tenant's run that returns a large output too hands
/// its records over meanwhile. Without the share the first tenant held ~900 KiB of the 1 MiB and
/// the other's run waited behind its records.
async fn one_tenants_large_records_leave_room_for_anothers(
    db: Database,
    redis: Option<RedisQueue>,
) {
    const OTHER: usize = 200 * 1024;
    let (Workers { dir, queue, pool }, executor, hold) =
        held_workers(&db, redis, "codeai_shares").await;
    let Database::Postgres(pg) = &db else {
        unreachable!("held_workers runs on PostgreSQL only")
    };
    let echoes = enqueue_echoes(&db, &queue, "acme", 4, BLOB).await;
    let running = tokio::spawn(pool.clone().run());
    // An echo's two records are ~600 KiB: more than the tenant's half of the room.
    let recorder = executor.services().recorder();
    common::wait_until("no record of acme's waited for room", || async {
        recorder.waiting() > 0
    })
    .await;
    let other = enqueue_echoes(&db, &queue, "default", 1, OTHER).await[0];
    common::wait_until(
        "the other tenant's execution did not hand its record over",
        || {
            let pool = pool.clone();
            async move { pool.ended_unrecorded(other) }
        },
    )
    .await;
    assert!(
        recorder.held_by("acme") <= HELD / 2,
        "acme holds {} bytes",
        recorder.held_by("acme")
    );
    // Seen from the pool: an echo's end does not fit beside its start in acme's half, so none
    // has handed it over, while the other tenant's execution has.
    let handed: Vec<_> = echoes
        .iter()
        .filter(|id| pool.ended_unrecorded(**id))
        .collect();
    assert!(handed.is_empty(), "acme's {handed:?} handed over");

    hold.commit().await.unwrap();
    assert_echoed(&queue, pg, &echoes, BLOB).await;
    assert_echoed(&queue, pg, &[other], OTHER).await;
    assert_eq!(recorder.held_bytes(), 0);
    pool.shutdown().await;
    running.abort();
    let _ = std::fs::remove_dir_all(&dir);
}
