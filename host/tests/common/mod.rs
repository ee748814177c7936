//! Shared by the integration tests: a fresh SQLite file or PostgreSQL schema per test.
//!
//! PostgreSQL comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); each
//! test works in a schema of its own that is dropped afterwards. Under `CI=true` an unreachable
//! PostgreSQL fails the test; elsewhere it prints a notice and passes.

#![allow(dead_code, unreachable_pub)]

pub mod fake;
pub mod fixtures;
pub mod handmade;
pub mod peers;
pub mod test_host;

use codeai_host::store::Database;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// How long a test waits for something the host must do before it fails: generous, so that a
/// slow or busy machine is never taken for a broken host. Tests assert what happened, never how
/// fast; speed is measured in the benches.
pub const LIVENESS: Duration = Duration::from_secs(60);

/// Polls `reached` until it holds; fails with `what` if it does not within [`LIVENESS`].
pub async fn wait_until<F, Fut>(what: &str, mut reached: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + LIVENESS;
    while !reached().await {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {LIVENESS:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `future`'s output; fails with `what` if it is not ready within [`LIVENESS`].
pub async fn within_liveness<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(LIVENESS, future).await {
        Ok(out) => out,
        Err(_) => panic!("not within {LIVENESS:?}: {what}"),
    }
}

pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// One column of `sql`'s rows, on either database. `sql` is written with `?` placeholders
/// (numbered `$1`, `$2`, … for PostgreSQL), each bound to one of `args` as text.
pub async fn column<T>(db: &Database, sql: &str, args: &[&str]) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
        + sqlx::Type<sqlx::Sqlite>
        + for<'r> sqlx::Decode<'r, sqlx::Postgres>
        + sqlx::Type<sqlx::Postgres>,
{
    let rows = match db {
        Database::Sqlite(pool) => {
            let mut query = sqlx::query_scalar::<_, T>(sql);
            for a in args {
                query = query.bind(a.to_string());
            }
            query.fetch_all(pool).await
        }
        Database::Postgres(pool) => {
            let mut numbered = String::new();
            for (n, piece) in sql.split('?').enumerate() {
                if n > 0 {
                    numbered.push_str(&format!("${n}"));
                }
                numbered.push_str(piece);
            }
            let mut query = sqlx::query_scalar::<_, T>(&numbered);
            for a in args {
                query = query.bind(a.to_string());
            }
            query.fetch_all(pool).await
        }
    };
    rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs `sql` (statements without parameters) on either database.
pub async fn exec_sql(db: &Database, sql: &str) {
    let done = match db {
        Database::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    };
    done.unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The one number `sql` answers (a `COUNT(*)`, say); see [`column`].
pub async fn count(db: &Database, sql: &str, args: &[&str]) -> i64 {
    column::<i64>(db, sql, args).await[0]
}

/// How many executions `job` has, of every tenant.
pub async fn runs_of(db: &Database, job: &str) -> i64 {
    let sql = "SELECT COUNT(*) FROM job_executions WHERE job_name = ?";
    count(db, sql, &[job]).await
}

/// An RFC 3339 instant of an API answer.
#[track_caller]
pub fn time(v: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .with_timezone(&chrono::Utc)
}

pub async fn run_sqlite<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let path = std::env::temp_dir().join(format!("{}.db", unique("codeai_data")));
    let options = SqliteConnectOptions::new().filename(&path);
    let db = Database::connect_sqlite(options)
        .await
        .expect("open SQLite");
    let outcome = tokio::spawn(scenario(db.clone())).await;
    db.close().await;
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The PostgreSQL of the tests: `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/test`.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// One connection to the PostgreSQL at `url` for creating and dropping schemas and databases;
/// `None` (with a notice) when it is unreachable outside CI.
pub async fn postgres_admin(url: &str) -> Option<sqlx::PgPool> {
    let options = PgConnectOptions::from_str(url).expect("DATABASE_URL");
    match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
    {
        Ok(pool) => Some(pool),
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL at {url} is unreachable under CI=true: {e}");
            }
            eprintln!("notice: PostgreSQL at {url} is unreachable ({e}); skipping this test");
            None
        }
    }
}

pub async fn run_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = postgres_url();
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL");
    let Some(admin) = postgres_admin(&url).await else {
        return;
    };
    let schema = unique("codeai_data");
    sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
        .execute(&admin)
        .await
        .expect("create schema");
    let db = Database::connect_postgres(options.options([
        ("search_path", schema.as_str()),
        // Tests do not survive an OS crash; commits need not wait for the disk.
        ("synchronous_commit", "off"),
    ]))
    .await
    .expect("connect to the schema");
    let outcome = tokio::spawn(scenario(db.clone())).await;
    db.close().await;
    // The schema, and the tenants' schemas named after it (`<schema>_tenant_<tenant>`).
    let schemas: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::TEXT FROM pg_namespace WHERE nspname = $1 OR nspname LIKE $1 || '\\_%'",
    )
    .bind(&schema)
    .fetch_all(&admin)
    .await
    .expect("list schemas");
    for s in schemas {
        sqlx::raw_sql(&format!("DROP SCHEMA \"{s}\" CASCADE"))
            .execute(&admin)
            .await
            .expect("drop schema");
    }
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `mod $module` with a test `NAME` for each scenario `NAME`, whose body is `$run` with
/// `$scenario` bound to the scenario function.
#[allow(unused_macros)]
macro_rules! scenario_tests {
    ($module:ident, |$scenario:ident| $run:expr, $($name:ident),*) => {
        mod $module {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let $scenario = super::$name;
                $run.await
            })*
        }
    };
}

/// Each scenario becomes `sqlite::NAME` and `postgres::NAME`.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        scenario_tests!(sqlite, |scenario| super::run_sqlite(scenario), $($name),*);
        scenario_tests!(postgres, |scenario| super::run_postgres(scenario), $($name),*);
    };
}

/// A Redis queue under a prefix of its own (`REDIS_URL`, default `redis://127.0.0.1:6379`);
/// `None` (with a notice) when Redis is unreachable outside CI.
pub async fn redis_queue() -> Option<codeai_host::queue::RedisQueue> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("{}:", unique("codeai_test"));
    match tokio::time::timeout(
        Duration::from_secs(5),
        codeai_host::queue::RedisQueue::connect(&url, &prefix),
    )
    .await
    {
        Ok(Ok(q)) => Some(q),
        Ok(Err(e)) => redis_missing(&url, &e.to_string()),
        Err(_) => redis_missing(&url, "timed out"),
    }
}

fn redis_missing<T>(url: &str, e: &str) -> Option<T> {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("Redis at {url} is unreachable under CI=true: {e}");
    }
    eprintln!("notice: Redis at {url} is unreachable ({e}); skipping this test");
    None
}

/// Deletes every key under the queue's prefix.
pub async fn redis_cleanup(q: &codeai_host::queue::RedisQueue) {
    let mut con = q.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", q.prefix()))
        .query_async(&mut con)
        .await
        .unwrap_or_default();
    for chunk in keys.chunks(500) {
        let _: Result<i64, _> = redis::cmd("DEL").arg(chunk).query_async(&mut con).await;
    }
}

/// A scenario on PostgreSQL (state) with the queue on Redis.
pub async fn run_postgres_redis<F, Fut>(scenario: F)
where
    F: FnOnce(Database, Option<codeai_host::queue::RedisQueue>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(redis) = redis_queue().await else {
        return;
    };
    let cleanup = redis.clone();
    run_postgres(move |db| scenario(db, Some(redis))).await;
    redis_cleanup(&cleanup).await;
}

/// Each scenario `NAME(db, redis)` becomes `sqlite::NAME`, `postgres::NAME` (the queue in the
/// database) and `redis::NAME` (PostgreSQL with the queue on Redis).
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        scenario_tests!(
            sqlite,
            |scenario| super::common::run_sqlite(move |db| scenario(db, None)),
            $($name),*
        );
        scenario_tests!(
            postgres,
            |scenario| super::common::run_postgres(move |db| scenario(db, None)),
            $($name),*
        );
        scenario_tests!(
            redis,
            |scenario| super::common::run_postgres_redis(scenario),
            $($name),*
        );
    };
}

/// Every row a query returns, on either database.
pub async fn query_rows<T>(db: &Database, sql: &str) -> Vec<T>
where
    T: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    match db {
        Database::Sqlite(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_as(sql).fetch_all(pool).await.unwrap(),
    }
}

/// The figures `/metrics` reads (totals the database keeps as executions are written) equal what
/// counting the whole of `job_executions` gives, as the scrape did before the totals existed.
pub async fn assert_metrics_match_history(db: &Database) {
    use codeai_host::store::executions::{self, DURATION_BOUNDS_MS};
    let mut counts = executions::counts_by_job(db).await.unwrap();
    let mut counted: Vec<(String, String, String, i64)> = query_rows(
        db,
        "SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), COUNT(*) \
         FROM job_executions GROUP BY job_name, status, queue",
    )
    .await;
    counts.sort();
    counted.sort();
    assert_eq!(counts, counted, "executions by job, status and queue");

    let mut retries = executions::retries_by_job(db).await.unwrap();
    let mut summed: Vec<(String, i64)> = query_rows(
        db,
        "SELECT COALESCE(job_name, ''), CAST(SUM(attempt - 1) AS BIGINT) FROM job_executions \
         WHERE attempt > 1 GROUP BY job_name",
    )
    .await;
    retries.sort();
    summed.sort();
    assert_eq!(retries, summed, "retries by job");

    let finished: Vec<(String, String, i64)> = query_rows(
        db,
        "SELECT COALESCE(e.job_name, ''), COALESCE(j.job_type, ''), e.duration_ms \
         FROM job_executions e LEFT JOIN jobs j ON j.id = e.job_id \
         WHERE e.duration_ms IS NOT NULL AND e.started_at IS NOT NULL",
    )
    .await;
    let mut by_job: std::collections::BTreeMap<String, executions::Durations> = Default::default();
    for (job, job_type, ms) in finished {
        let d = by_job
            .entry(job.clone())
            .or_insert_with(|| executions::Durations {
                job,
                job_type: String::new(),
                at_most: vec![0; DURATION_BOUNDS_MS.len()],
                count: 0,
                total_ms: 0,
            });
        d.job_type = d.job_type.clone().max(job_type);
        d.count += 1;
        d.total_ms += ms;
        for (bound, n) in DURATION_BOUNDS_MS.iter().zip(&mut d.at_most) {
            *n += i64::from(ms <= *bound);
        }
    }
    let mut durations = executions::durations(db, &DURATION_BOUNDS_MS)
        .await
        .unwrap();
    durations.sort_by(|a, b| a.job.cmp(&b.job));
    assert_eq!(
        durations,
        by_job.into_values().collect::<Vec<_>>(),
        "the duration histogram"
    );
}
