//! What a `/metrics` scrape costs against the size of the execution history: the totals the
//! scrape reads (`store::executions::{counts_by_job, durations, retries_by_job}`, kept by
//! triggers as rows are written) beside the `GROUP BY` over `job_executions` they replaced,
//! median of 15 rounds each, on a SQLite file holding `METRICS_EXECUTIONS` executions (default
//! 1,000,000) of 20 jobs. With `DATABASE_URL=postgres://…` it runs on PostgreSQL instead.
//!
//! `cargo bench -p codeai-host --bench metrics`.

use codeai_host::store::{executions, migrate, Database};
use std::time::{Duration, Instant};

#[path = "../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::env_number;

/// The queries the scrape ran before the totals existed.
const GROUP_BY: [&str; 3] = [
    "SELECT COALESCE(job_name, ''), status, COALESCE(queue, ''), COUNT(*) AS n \
     FROM job_executions GROUP BY job_name, status, queue ORDER BY job_name, status, queue",
    "SELECT e.job_name, MAX(j.job_type) AS job_type, \
     SUM(CASE WHEN e.duration_ms <= 100 THEN 1 ELSE 0 END) AS b0, COUNT(*) AS n, \
     SUM(e.duration_ms) AS total FROM job_executions e LEFT JOIN jobs j ON j.id = e.job_id \
     WHERE e.duration_ms IS NOT NULL AND e.started_at IS NOT NULL GROUP BY e.job_name \
     ORDER BY e.job_name",
    "SELECT job_name, SUM(attempt - 1) AS n FROM job_executions WHERE attempt > 1 \
     GROUP BY job_name ORDER BY job_name",
];

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn raw(db: &Database, sql: &str) {
    match db {
        Database::Sqlite(pool) => {
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        }
        Database::Postgres(pool) => {
            sqlx::raw_sql(sql).execute(pool).await.unwrap();
        }
    }
}

/// `n` finished executions of 20 jobs (a fifth of them retried once), written by one statement
/// each 100,000 so that the triggers run as they do for recorded executions.
async fn fill(db: &Database, n: usize) {
    let postgres = matches!(db, Database::Postgres(_));
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(100_000);
        let sql = if postgres {
            format!(
                "INSERT INTO job_executions (id, tenant_id, job_id, job_name, status, queue, \
                 attempt, started_at, finished_at, duration_ms, created_at) \
                 SELECT gen_random_uuid(), 'default', 'job-' || (i % 20), 'Job' || (i % 20), \
                 CASE WHEN (i / 20) % 10 = 0 THEN 'failed' ELSE 'completed' END, 'default', \
                 1 + (i % 5 = 0)::int, now(), now(), (i::bigint * 7919) % 120000, now() \
                 FROM generate_series({done}, {}) AS i",
                done + chunk - 1
            )
        } else {
            format!(
                "WITH RECURSIVE s(i) AS (SELECT {done} UNION ALL SELECT i + 1 FROM s \
                 WHERE i < {}) \
                 INSERT INTO job_executions (id, tenant_id, job_id, job_name, status, queue, \
                 attempt, started_at, finished_at, duration_ms, created_at) \
                 SELECT lower(hex(randomblob(16))), 'default', 'job-' || (i % 20), \
                 'Job' || (i % 20), CASE WHEN (i / 20) % 10 = 0 THEN 'failed' ELSE 'completed' END, \
                 'default', 1 + (i % 5 = 0), '2026-01-01T00:00:00.000000Z', \
                 '2026-01-01T00:00:01.000000Z', (i * 7919) % 120000, \
                 '2026-01-01T00:00:00.000000Z' FROM s",
                done + chunk - 1
            )
        };
        raw(db, &sql).await;
        done += chunk;
        eprintln!("  {done} executions written");
    }
}

#[tokio::main]
async fn main() {
    let n: usize = env_number("METRICS_EXECUTIONS", 1_000_000);
    let dir = std::env::temp_dir().join(format!("codeai_metrics_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite:{}", dir.join("metrics.db").display()));
    let db = Database::connect(&url).await.unwrap();
    migrate::migrate_up(&db).await.unwrap();
    let t = Instant::now();
    fill(&db, n).await;
    let write = t.elapsed();
    let bounds = executions::DURATION_BOUNDS_MS;

    let rounds = 15;
    let mut totals = Vec::new();
    let mut group_by = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        let counts = executions::counts_by_job(&db).await.unwrap();
        let durations = executions::durations(&db, &bounds).await.unwrap();
        let retries = executions::retries_by_job(&db).await.unwrap();
        totals.push(t.elapsed());
        assert_eq!(counts.len(), 40, "20 jobs × completed/failed");
        assert_eq!(durations.iter().map(|d| d.count).sum::<i64>(), n as i64);
        assert_eq!(
            retries.iter().map(|r| r.1).sum::<i64>(),
            n.div_ceil(5) as i64
        );

        let t = Instant::now();
        for sql in GROUP_BY {
            raw(&db, sql).await;
        }
        group_by.push(t.elapsed());
    }
    let (totals, group_by) = (median(totals), median(group_by));
    println!(
        "metrics scrape, {n} executions ({}; written in {:.1} s with the triggers)",
        if url.starts_with("postgres") {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        write.as_secs_f64()
    );
    println!(
        "  kept totals: {:.2} ms   GROUP BY over job_executions: {:.1} ms   ({:.0}x)",
        totals.as_secs_f64() * 1e3,
        group_by.as_secs_f64() * 1e3,
        group_by.as_secs_f64() / totals.as_secs_f64()
    );
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
