//! Applies the platform's migrations (`migrations/sqlite`, `migrations/postgres`), embedded in
//! the binary, in order, each once.
//!
//! Applied versions are recorded in `_codeai_migrations`. Each migration runs in its own
//! transaction with its record, so a failure leaves the database at the previous version. On
//! PostgreSQL a transaction-scoped advisory lock serialises processes that start together (many
//! `codeai worker start` at once); SQLite's write lock does the same for one file.
//!
//! On PostgreSQL a migration that alters a table in use (a trigger on `job_executions`, say)
//! waits for the table's lock behind the queries that hold it, and every query that comes after,
//! reads and writes, waits behind the migration: one long dashboard read during an upgrade would
//! stall the workers for as long as it runs. So a migration waits at most [`LockWait::timeout`]
//! for any one lock, then gives way (its transaction rolls back and releases what it held, and the
//! queries behind it go on), pauses [`LockWait::pause`] and tries again, up to [`LockWait::tries`]
//! times, saying so in the log; after the last it fails with PostgreSQL's `lock_not_available`
//! error and the database stays at the version before it. A try that gives way is done again from
//! the start (a migration that rewrites rows does its work again). Once it has its locks, a
//! migration holds them until it commits.

use super::Database;
use chrono::Utc;
use sqlx::Executor as _;
use std::time::Duration;

/// One migration: its version, a name, and the SQL of each dialect.
struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform",
        sqlite: include_str!("../../../migrations/sqlite/0001_platform.sql"),
        postgres: include_str!("../../../migrations/postgres/0001_platform.sql"),
    },
    Migration {
        version: 2,
        name: "queue",
        sqlite: include_str!("../../../migrations/sqlite/0002_queue.sql"),
        postgres: include_str!("../../../migrations/postgres/0002_queue.sql"),
    },
    Migration {
        version: 3,
        name: "api",
        sqlite: include_str!("../../../migrations/sqlite/0003_api.sql"),
        postgres: include_str!("../../../migrations/postgres/0003_api.sql"),
    },
    Migration {
        version: 4,
        name: "dashboard",
        sqlite: include_str!("../../../migrations/sqlite/0004_dashboard.sql"),
        postgres: include_str!("../../../migrations/postgres/0004_dashboard.sql"),
    },
    Migration {
        version: 5,
        name: "lean_executions",
        sqlite: include_str!("../../../migrations/sqlite/0005_lean_executions.sql"),
        postgres: include_str!("../../../migrations/postgres/0005_lean_executions.sql"),
    },
    Migration {
        version: 6,
        name: "tenant_boundary",
        sqlite: include_str!("../../../migrations/sqlite/0006_tenant_boundary.sql"),
        postgres: include_str!("../../../migrations/postgres/0006_tenant_boundary.sql"),
    },
    Migration {
        version: 7,
        name: "secrets",
        sqlite: include_str!("../../../migrations/sqlite/0007_secrets.sql"),
        postgres: include_str!("../../../migrations/postgres/0007_secrets.sql"),
    },
    Migration {
        version: 8,
        name: "fair_queues",
        sqlite: include_str!("../../../migrations/sqlite/0008_fair_queues.sql"),
        postgres: include_str!("../../../migrations/postgres/0008_fair_queues.sql"),
    },
    Migration {
        version: 9,
        name: "upload_quotas",
        sqlite: include_str!("../../../migrations/sqlite/0009_upload_quotas.sql"),
        postgres: include_str!("../../../migrations/postgres/0009_upload_quotas.sql"),
    },
    Migration {
        version: 10,
        name: "artifact_bytes",
        sqlite: include_str!("../../../migrations/sqlite/0010_artifact_bytes.sql"),
        postgres: include_str!("../../../migrations/postgres/0010_artifact_bytes.sql"),
    },
    Migration {
        version: 11,
        name: "metrics",
        sqlite: include_str!("../../../migrations/sqlite/0011_metrics.sql"),
        postgres: include_str!("../../../migrations/postgres/0011_metrics.sql"),
    },
    Migration {
        version: 12,
        name: "idempotency_keys",
        sqlite: include_str!("../../../migrations/sqlite/0012_idempotency_keys.sql"),
        postgres: include_str!("../../../migrations/postgres/0012_idempotency_keys.sql"),
    },
    Migration {
        version: 13,
        name: "execution_traceparent",
        sqlite: include_str!("../../../migrations/sqlite/0013_execution_traceparent.sql"),
        postgres: include_str!("../../../migrations/postgres/0013_execution_traceparent.sql"),
    },
    Migration {
        version: 14,
        name: "event_triggers",
        sqlite: include_str!("../../../migrations/sqlite/0014_event_triggers.sql"),
        postgres: include_str!("../../../migrations/postgres/0014_event_triggers.sql"),
    },
    Migration {
        version: 15,
        name: "guest_runtimes",
        sqlite: include_str!("../../../migrations/sqlite/0015_guest_runtimes.sql"),
        postgres: include_str!("../../../migrations/postgres/0015_guest_runtimes.sql"),
    },
    Migration {
        version: 16,
        name: "metric_triggers",
        sqlite: include_str!("../../../migrations/sqlite/0016_metric_triggers.sql"),
        postgres: include_str!("../../../migrations/postgres/0016_metric_triggers.sql"),
    },
    Migration {
        version: 17,
        name: "metric_statements",
        sqlite: include_str!("../../../migrations/sqlite/0017_metric_statements.sql"),
        postgres: include_str!("../../../migrations/postgres/0017_metric_statements.sql"),
    },
    Migration {
        version: 18,
        name: "lean_keys",
        sqlite: include_str!("../../../migrations/sqlite/0018_lean_keys.sql"),
        postgres: include_str!("../../../migrations/postgres/0018_lean_keys.sql"),
    },
];

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: "codeai" in ASCII.
const PG_LOCK_KEY: i64 = 0x636f_6465_6169;

/// The latest migration version this binary knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// How a migration on PostgreSQL waits for the locks of tables in use (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct LockWait {
    /// The longest one try waits for any one lock (`lock_timeout`).
    pub timeout: Duration,
    /// Tries before the migration fails (at least one).
    pub tries: u32,
    /// The pause between two tries, in which the queries that waited behind it run.
    pub pause: Duration,
}

impl Default for LockWait {
    /// Two seconds a try, then two seconds of pause, thirty tries: two minutes for the reads in
    /// the way to end, the queries behind the migration held up at most two seconds at a time and
    /// never during the pauses.
    fn default() -> LockWait {
        LockWait {
            timeout: Duration::from_secs(2),
            tries: 30,
            pause: Duration::from_secs(2),
        }
    }
}

/// Applies every migration the database does not have yet; returns the `(version, name)` of
/// those applied now (empty when it was up to date).
pub async fn migrate_up(db: &Database) -> Result<Vec<(i64, &'static str)>, sqlx::Error> {
    migrate_up_to(db, latest_version(), LockWait::default()).await
}

/// [`migrate_up`] up to version `last`, waiting for locks as `wait` says.
pub async fn migrate_up_to(
    db: &Database,
    last: i64,
    wait: LockWait,
) -> Result<Vec<(i64, &'static str)>, sqlx::Error> {
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version <= last) {
        let ran = match db {
            Database::Sqlite(pool) => apply_sqlite(pool, m).await?,
            Database::Postgres(pool) => {
                let mut tried = 1;
                loop {
                    match apply_postgres(pool, m, wait.timeout).await {
                        Err(e) if lock_not_available(&e) && tried < wait.tries.max(1) => {
                            tracing::warn!(
                                version = m.version,
                                name = m.name,
                                tried,
                                tries = wait.tries,
                                "migration: waited too long for a lock (a table or rows it \
                                 changes are in use); gave way, trying again"
                            );
                            tokio::time::sleep(wait.pause).await;
                            tried += 1;
                        }
                        outcome => break outcome?,
                    }
                }
            }
        };
        if ran {
            applied.push((m.version, m.name));
        }
    }
    if let Database::Sqlite(pool) = db {
        if !applied.is_empty() && !db.sqlite_in_memory() {
            truncate_log(pool).await;
        }
    }
    Ok(applied)
}

/// Truncates a SQLite file's write-ahead log after migrations ran: one that builds a table
/// again (0018) writes all of it to the log, which keeps that size on disk until a checkpoint
/// truncates it. The migrations are committed already, so a checkpoint that fails or cannot
/// finish (another connection reading) is said in the log, not returned.
async fn truncate_log(pool: &sqlx::SqlitePool) {
    let done: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(pool)
        .await;
    match done {
        Ok((0, _, _)) => {}
        Ok(_) => tracing::warn!(
            "after the migrations, the write-ahead log could not be truncated (busy)"
        ),
        Err(e) => {
            tracing::warn!("after the migrations, the write-ahead log could not be truncated: {e}")
        }
    }
}

/// PostgreSQL's `lock_not_available`: a `lock_timeout` ran out (or a `NOWAIT` found a lock
/// taken: as well tried again).
fn lock_not_available(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "55P03")
}

const LEDGER: &str = "CREATE TABLE IF NOT EXISTS _codeai_migrations (\
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

/// A boxed `Send` future. `sqlx::raw_sql(..).execute(&mut *tx)` inside an `async fn` trips the
/// compiler's higher-ranked `Send` check when callers hold the database by reference, so the
/// statements go through `Executor` methods, and the boxing with the lifetime spelled out keeps
/// the check here, in one place.
type Step<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, sqlx::Error>> + Send + 'a>>;

// Every statement below is text this binary carries (no value comes from outside).
fn record(m: &Migration) -> String {
    format!(
        "INSERT INTO _codeai_migrations (version, name, applied_at) VALUES ({}, '{}', '{}')",
        m.version,
        m.name,
        Utc::now().to_rfc3339()
    )
}

fn done(m: &Migration) -> String {
    format!(
        "SELECT version FROM _codeai_migrations WHERE version = {}",
        m.version
    )
}

/// In transaction `tx`: runs `sql`, migration `m`'s, and records it, unless it is recorded;
/// commits; whether it ran.
macro_rules! apply_once {
    ($tx:ident, $m:ident, $sql:expr) => {{
        let seen = !(&mut *$tx).fetch_all(done($m).as_str()).await?.is_empty();
        if !seen {
            (&mut *$tx).execute($sql).await?;
            (&mut *$tx).execute(record($m).as_str()).await?;
        }
        $tx.commit().await?;
        Ok(!seen)
    }};
}

fn apply_sqlite<'a>(pool: &'a sqlx::SqlitePool, m: &'static Migration) -> Step<'a> {
    Box::pin(async move {
        sqlx::raw_sql(LEDGER).execute(pool).await?;
        let mut tx = pool.begin().await?;
        apply_once!(tx, m, m.sqlite)
    })
}

fn apply_postgres<'a>(
    pool: &'a sqlx::PgPool,
    m: &'static Migration,
    lock_timeout: Duration,
) -> Step<'a> {
    Box::pin(async move {
        let mut tx = pool.begin().await?;
        // Processes starting together wait for each other in full, whatever `lock_timeout` the
        // role or the URL sets; the migration's own comes after the advisory lock.
        (&mut *tx).execute("SET LOCAL lock_timeout = 0").await?;
        let lock = format!("SELECT pg_advisory_xact_lock({PG_LOCK_KEY})");
        (&mut *tx).execute(lock.as_str()).await?;
        let timeout = format!(
            "SET LOCAL lock_timeout = {}",
            lock_timeout.as_millis().max(1)
        );
        (&mut *tx).execute(timeout.as_str()).await?;
        (&mut *tx).execute(LEDGER).await?;
        apply_once!(tx, m, m.postgres)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Totals = (
        Vec<(String, String, i64, i64)>,
        Vec<(String, i64, i64, i64)>,
    );

    /// Every row of `job_executions`, every column, as JSON text, in id order.
    async fn executions(pool: &sqlx::SqlitePool) -> Vec<String> {
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('job_executions') ORDER BY cid")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(columns.len(), 24, "{columns:?}");
        let sql = format!(
            "SELECT json_array({}) FROM job_executions ORDER BY id",
            columns.join(", ")
        );
        sqlx::query_scalar(&sql).fetch_all(pool).await.unwrap()
    }

    /// What else the database holds for `job_executions`: its columns and their types, its
    /// indexes and its triggers (their SQL), SQLite's automatic indexes left out.
    async fn schema(pool: &sqlx::SqlitePool) -> Vec<String> {
        let mut out: Vec<String> = sqlx::query_scalar(
            "SELECT name || ' ' || type || ' ' || \"notnull\" FROM pragma_table_info('job_executions') \
             ORDER BY cid",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let objects: Vec<String> = sqlx::query_scalar(
            "SELECT type || ' ' || name || ': ' || sql FROM sqlite_master \
             WHERE tbl_name = 'job_executions' AND type IN ('index', 'trigger') \
             AND sql IS NOT NULL ORDER BY type, name",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        out.extend(objects);
        out
    }

    async fn totals(pool: &sqlx::SqlitePool) -> Totals {
        let by_status = sqlx::query_as(
            "SELECT job_name, status, SUM(n), SUM(retries) FROM metric_executions \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let durations = sqlx::query_as(
            "SELECT job_id, le_ms, SUM(n), SUM(total_ms) FROM metric_durations \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (by_status, durations)
    }

    /// An execution with every column given, each value its own.
    fn insert(id: &str, tenant: &str, status: &str, attempt: i64, ms: i64) -> String {
        format!(
            "INSERT INTO job_executions (id, tenant_id, job_id, job_name, job_version, status, \
             trigger, queue, input, output, error, step, attempt, max_attempts, scheduled_at, \
             started_at, finished_at, duration_ms, fuel_used, log, calls, created_at, \
             traceparent, event_id) VALUES ('{id}', '{tenant}', 'job-{tenant}', 'Job', 3, \
             '{status}', 'manual', 'q-{id}', '{{\"n\":{id}}}', 'out {id}', 'error {id}', \
             'step {id}', {attempt}, 5, '2026-12-07T00:00:00Z', '2026-12-07T00:00:01Z', \
             '2026-12-07T00:00:02Z', {ms}, 1{id}, '[\"line of {id}\"]', '[\"call of {id}\"]', \
             '2026-12-07T00:00:00.{id}Z', '00-trace-{id}-01', 'event-{id}')"
        )
    }

    /// Migration 18 builds `job_executions` again on SQLite (keyed by `id` alone): every row and
    /// column is there after it, its columns, indexes and triggers are what they were, the
    /// /metrics totals the triggers kept are neither lost nor counted twice, the triggers count
    /// what comes after (inserts, updates, deletes, retries), and an id is still unique across
    /// tenants. The queue's queries by job then use the partial index 0018 makes.
    #[tokio::test]
    async fn keying_executions_by_id_keeps_rows_schema_totals_and_triggers() {
        let dir = std::env::temp_dir().join(format!(
            "codeai-migrate-18-{}-{}",
            std::process::id(),
            uuid::Uuid::now_v7()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("jobs.db");
        let db = Database::connect(&format!("sqlite:{}", file.display()))
            .await
            .unwrap();
        let Database::Sqlite(pool) = &db else {
            unreachable!()
        };
        migrate_up_to(&db, 17, LockWait::default()).await.unwrap();
        for (id, tenant, status, attempt, ms) in [
            ("1001", "acme", "completed", 1, 3),
            ("1002", "acme", "failed", 2, 40),
            ("1003", "globex", "completed", 1, 700),
            ("1004", "acme", "running", 1, 9),
        ] {
            sqlx::query(&insert(id, tenant, status, attempt, ms))
                .execute(pool)
                .await
                .unwrap();
        }
        let (rows, schema_before, before) = (
            executions(pool).await,
            schema(pool).await,
            totals(pool).await,
        );
        assert_eq!(rows.len(), 4);
        assert_eq!(before.0.iter().map(|r| r.2).sum::<i64>(), 4);

        let applied = migrate_up(&db).await.unwrap();
        assert!(applied.contains(&(18, "lean_keys")), "{applied:?}");
        assert_eq!(executions(pool).await, rows);
        assert_eq!(schema(pool).await, schema_before);
        assert_eq!(
            totals(pool).await,
            before,
            "the copy counted the rows again"
        );
        let automatic: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE tbl_name = 'job_executions' \
             AND name LIKE 'sqlite_autoindex%'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(automatic, 0, "the key on (tenant_id, id) is still there");

        sqlx::query(&insert("1005", "globex", "completed", 3, 2))
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE job_executions SET status = 'completed' WHERE id = '1004'")
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM job_executions WHERE id = '1002'")
            .execute(pool)
            .await
            .unwrap();
        let (by_status, durations) = totals(pool).await;
        let count = |status: &str| {
            by_status
                .iter()
                .find(|r| r.1 == status)
                .map_or((0, 0), |r| (r.2, r.3))
        };
        // Completed: 1001, 1003, 1004 and 1005 (two retries); 1002 deleted; 1004 not running.
        assert_eq!(
            (count("completed"), count("failed"), count("running")),
            ((4, 2), (0, 0), (0, 0))
        );
        let globex: Vec<_> = durations.iter().filter(|d| d.0 == "job-globex").collect();
        assert_eq!(
            globex.iter().map(|d| (d.1, d.2, d.3)).collect::<Vec<_>>(),
            vec![(5, 1, 2), (1000, 1, 700)]
        );

        let twice = sqlx::query(&insert("1001", "globex", "completed", 1, 1))
            .execute(pool)
            .await;
        assert!(twice.is_err(), "an id taken by another tenant was written");

        for sql in [
            crate::queue::sql::BUSY_BESIDES,
            crate::queue::sql::VERSIONS_IN_USE,
        ] {
            let text = format!("EXPLAIN QUERY PLAN {sql}");
            let mut explain = sqlx::query_as(&text);
            for _ in 0..sql.matches('?').count() {
                explain = explain.bind("x");
            }
            let plan: Vec<(i64, i64, i64, String)> = explain.fetch_all(pool).await.unwrap();
            let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
            assert!(
                plan.iter().any(|d| d.contains("tasks_job_state_idx")),
                "{sql}: {plan:?}"
            );
        }
        db.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
