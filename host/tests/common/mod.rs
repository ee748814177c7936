//! Shared by the integration tests: a fresh SQLite file or PostgreSQL schema per test.
//!
//! PostgreSQL comes from `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`); each
//! test works in a schema of its own that is dropped afterwards. Under `CI=true` an unreachable
//! PostgreSQL fails the test; elsewhere it prints a notice and passes.

#![allow(dead_code, unreachable_pub)]

pub mod peers;

use codeai_host::store::Database;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

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

pub async fn run_postgres<F, Fut>(scenario: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let url = std::env::var("DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    let options = PgConnectOptions::from_str(&url).expect("DATABASE_URL");
    let admin = match PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await
    {
        Ok(pool) => pool,
        Err(e) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("PostgreSQL at {url} is unreachable under CI=true: {e}");
            }
            eprintln!("notice: PostgreSQL at {url} is unreachable ({e}); skipping this test");
            return;
        }
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
    sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .execute(&admin)
        .await
        .expect("drop schema");
    admin.close().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Each scenario becomes `sqlite::NAME` and `postgres::NAME`.
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run_sqlite(super::$name).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::run_postgres(super::$name).await
            })*
        }
    };
}
