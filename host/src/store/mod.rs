//! The platform's databases: SQLite (the embedded default, a file in WAL mode) and PostgreSQL
//! (scale-out), both through `sqlx`.
//!
//! - [`Database`] is a pool of either kind; capabilities match on it to pick the SQL dialect.
//! - [`entities`] creates the tables a job's entity declarations need.
//! - [`demo`] fills those tables with demo data for the scheduled-jobs example.
//! - [`secrets`] keeps each tenant's secrets, encrypted.
//! - [`status`] spells the states of an execution record.

pub mod alerts;
pub mod demo;
pub mod entities;
pub mod events;
pub mod executions;
pub mod host_lock;
pub mod idempotency;
pub mod jobs;
pub mod migrate;
pub mod namespace;
pub mod page;
pub mod platform;
pub mod query;
pub mod quotas;
pub mod recorder;
pub mod reports;
pub mod rows;
pub mod schedules;
pub mod secrets;
pub mod sql;
pub mod status;
pub mod tenants;

pub use status::ExecutionStatus;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::str::FromStr;
use std::time::Duration;

/// This process's turn to write a SQLite file, shared by the platform's writers of it (the
/// queue and the execution recorder, each on a pool of its own): they take turns in the order
/// they asked (a fair async mutex). Without it, a writer that finds the file locked by another
/// is put to sleep by SQLite's busy handler for 1, 2, 5, … ms and retries, while the lock may
/// long be free: measured, 215 such sleeps in a one-second run of 20,000 no-op jobs.
/// PostgreSQL needs no turn (row locks, no file lock).
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteGate(Option<std::sync::Arc<tokio::sync::Mutex<()>>>);

impl WriteGate {
    /// The gate of `db`'s file (one per file in this process); none for PostgreSQL and for an
    /// in-memory database.
    pub(crate) fn of(db: &Database) -> WriteGate {
        static GATES: PerFile<tokio::sync::Mutex<()>> = PerFile::new();
        WriteGate(db.sqlite_file().map(|file| GATES.of(&file)))
    }

    /// Waits for this process's turn to write; the turn lasts while the guard lives.
    pub(crate) async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.0 {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}

/// One `T` per SQLite file in this process, shared by whoever asks for the same file while any
/// of them holds it (a `static` each: the write gate, the queue's held leases).
pub(crate) struct PerFile<T>(
    std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<std::path::PathBuf, std::sync::Weak<T>>>,
    >,
);

impl<T: Default> PerFile<T> {
    pub(crate) const fn new() -> PerFile<T> {
        PerFile(std::sync::OnceLock::new())
    }

    /// The `T` of `file` (however its path is spelled), made if nobody holds one.
    pub(crate) fn of(&self, file: &std::path::Path) -> std::sync::Arc<T> {
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let mut all = self
            .0
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.retain(|_, t| t.strong_count() > 0);
        if let Some(t) = all.get(&file).and_then(std::sync::Weak::upgrade) {
            return t;
        }
        let t = std::sync::Arc::new(T::default());
        all.insert(file, std::sync::Arc::downgrade(&t));
        t
    }
}

/// Turns off SQLite's memory statistics, once, before the first connection of the process.
/// With them on (the default), every allocation SQLite makes — each column value sqlx copies out
/// of a row, and each freed when the row is dropped on another thread — takes one process-wide
/// mutex: measured in a run of 20,000 no-op jobs, the process's `futex` calls fell from 164,000 to
/// 44,000 and its CPU time by ~4 % with them off. Nothing here reads the statistics. SQLite only takes the setting before it is initialised; later it
/// refuses it and nothing changes.
fn sqlite_without_memory_statistics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: `sqlite3_config` takes an int for this option; it runs before any connection
        // of this process is opened (every SQLite pool is made through `connect_sqlite`), and
        // returns SQLITE_MISUSE without effect if SQLite was initialised already.
        unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS,
                0 as std::ffi::c_int,
            );
        }
    });
}

/// Which SQL dialect a [`Database`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection pool to SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl Database {
    /// Connects to `url`: `sqlite:PATH` / `sqlite://PATH` (created if missing, WAL mode) or
    /// `postgres://…` / `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Database, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)?;
            Self::connect_postgres(options).await
        } else if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?;
            Self::connect_sqlite(options).await
        } else {
            Err(sqlx::Error::Configuration(
                format!("unsupported database URL `{url}` (expected sqlite: or postgres://)")
                    .into(),
            ))
        }
    }

    /// Opens (creating if needed) a SQLite file in WAL mode with `synchronous = NORMAL`: every
    /// commit survives a crash of the process (kill -9), which is what the queue's durability
    /// promises; a power loss may lose the last commits before a checkpoint.
    pub async fn connect_sqlite(options: SqliteConnectOptions) -> Result<Database, sqlx::Error> {
        sqlite_without_memory_statistics();
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            // SQLite runs in this process: the rows a connection's thread reads ahead of the
            // reader are host memory no execution's budget sees. A `data.select` counts each
            // row as it takes it, so keep what is read ahead to two rows (sqlx's default, 50,
            // is 50 rows of a table a tenant filled with big ones).
            .row_buffer_size(2)
            // A statement's undo journal (an upsert of many rows with the metric triggers
            // outgrows the 64 KiB SQLite keeps in memory) stays in memory instead of a temp file.
            .pragma("temp_store", "memory")
            // Pages read through a shared mapping of the file instead of copied by `pread` into
            // each connection's cache, which a commit of another connection empties.
            .pragma("mmap_size", "268435456");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // No ping when a connection is taken from the pool: a ping is a hop to the
            // connection's thread and back, in the caller's way, and a connection to a file in
            // this process does not break while it waits in the pool. (sqlx still pings one on
            // its return, after the caller is done, and drops it if that fails.)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Database::Sqlite(pool))
    }

    /// Connects to PostgreSQL. Put `search_path` into `options` to work inside one schema.
    ///
    /// Every statement is planned for its parameters (`plan_cache_mode = force_custom_plan`):
    /// sqlx keeps statements prepared, and a generic plan made while a table was still empty
    /// (a fresh deployment) scans the whole table forever after — measured: execution updates
    /// slowed as `job_executions` grew, 513 no-op jobs/s over 5,000 jobs but 198 over 20,000.
    pub async fn connect_postgres(options: PgConnectOptions) -> Result<Database, sqlx::Error> {
        let options = options.options([("plan_cache_mode", "force_custom_plan")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each use (a round trip per statement, a measurable share of a
            // worker's CPU at full speed). A connection that broke meanwhile fails its statement, is dropped
            // by the pool, and the caller's retry gets a fresh one.
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(Database::Postgres(pool))
    }

    /// A pool of its own on the same database for a writer of the platform's own rows that
    /// reads many rows back at once (the queue's leases; the recorder), with at most
    /// `connections` connections. On SQLite its connections hand rows over 256 at a time: the
    /// shared pool hands them over two at a time (see [`Database::connect_sqlite`]), and a
    /// lease of 300 tasks would then hold the one write lock over 150 hand-overs between
    /// threads. PostgreSQL (whose rows come over the network as they are) and an in-memory
    /// SQLite database (which another pool would not see) keep this pool.
    pub fn own_pool(&self, connections: u32) -> Database {
        match self {
            Database::Sqlite(pool) if self.sqlite_file().is_some() => {
                let options = (*pool.connect_options()).clone().row_buffer_size(256);
                Database::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(connections)
                        .test_before_acquire(false)
                        .connect_lazy_with(options),
                )
            }
            _ => self.clone(),
        }
    }

    /// Whether this is a SQLite database in memory, however its URL said so (`sqlite::memory:`,
    /// which sqlx names `file:sqlx-in-memory-<n>`, or `?mode=memory`, which keeps its name).
    pub fn sqlite_in_memory(&self) -> bool {
        let Database::Sqlite(pool) = self else {
            return false;
        };
        // sqlx keeps it to itself (a field with a setter and no getter); its `Debug` shows it.
        format!("{:?}", pool.connect_options()).contains("in_memory: true")
    }

    /// The file of a SQLite database; `None` for PostgreSQL and a `:memory:` name. sqlx renames
    /// `sqlite::memory:` to `file:sqlx-in-memory-<n>` (shared cache), which comes back as it is:
    /// a name per database, for the write gate and `own_pool`. Ask [`Database::sqlite_in_memory`]
    /// whether there is a file.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        let Database::Sqlite(pool) = self else {
            return None;
        };
        let options = pool.connect_options();
        let file = options.get_filename();
        let name = file.to_string_lossy();
        (!name.is_empty() && !name.contains(":memory:")).then(|| file.to_path_buf())
    }

    /// Whether the database answers a trivial statement.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        rows::execute(self, &sql::stmt("SELECT 1", vec![]))
            .await
            .map(drop)
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Database::Sqlite(_) => Dialect::Sqlite,
            Database::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Closes every connection of the pool.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// Quotes an identifier (table or column name) for both dialects.
///
/// Names come from entity declarations the compiler checked, never from the guest at run time;
/// [`valid_identifier`] is checked before any name is used, so quoting is belt and braces.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Table and column names the store accepts: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes
/// (PostgreSQL's identifier limit).
pub(crate) fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}
