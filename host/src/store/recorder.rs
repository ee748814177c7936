//! Group commit of execution records: the statements of many executions' starts and ends
//! written in one transaction.
//!
//! Every execution writes its record when it starts and when it ends. One commit each costs a
//! disk flush on PostgreSQL and the one write lock on SQLite, so with many executions at once
//! the commits are the bottleneck. [`Recorder::write`] hands its statements to one writer task
//! that takes everything waiting (up to 256 items), runs it in one transaction, and answers each
//! caller after the commit: a caller still returns only once its record is durable. If a batch
//! fails, its items are retried one by one, so one bad item fails alone.
//!
//! An execution's start record is submitted without waiting ([`Recorder::submit`]): the job runs
//! while it is written, and the end record, written after it in the same order, is awaited.
//! If the host dies before either commits, the task's lease runs out and it runs again.

use super::sql::{pg_builder, sqlite_builder, Stmt};
use super::Database;
use std::sync::OnceLock;
use tokio::sync::{mpsc, oneshot};

const MAX_BATCH: usize = 256;

struct Item {
    stmts: Vec<Stmt>,
    done: oneshot::Sender<Result<(), String>>,
}

/// The writer of execution records for one database.
pub struct Recorder {
    db: Database,
    tx: OnceLock<mpsc::UnboundedSender<Item>>,
}

impl Recorder {
    pub fn new(db: Database) -> Recorder {
        Recorder {
            db,
            tx: OnceLock::new(),
        }
    }

    /// Writes `stmts` (in order, atomically) with whatever else is waiting; returns after the
    /// commit.
    pub(crate) async fn write(&self, stmts: Vec<Stmt>) -> Result<(), sqlx::Error> {
        self.submit(stmts).await.wait().await
    }

    /// Hands `stmts` to the writer without waiting for the commit; [`Pending::wait`] waits.
    /// Items are written in the order they are submitted, so a later item of the same
    /// execution never lands before an earlier one.
    pub(crate) async fn submit(&self, stmts: Vec<Stmt>) -> Pending {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.db.clone(), rx));
            tx
        });
        let (done, wait) = oneshot::channel();
        match tx.send(Item { stmts, done }) {
            Ok(()) => Pending::Waiting(wait),
            // The writer is gone (its runtime ended): write directly.
            Err(mpsc::error::SendError(item)) => {
                Pending::Done(write_all(&self.db, &[item.stmts]).await)
            }
        }
    }
}

/// A submitted write.
pub(crate) enum Pending {
    Waiting(oneshot::Receiver<Result<(), String>>),
    Done(Result<(), sqlx::Error>),
}

impl Pending {
    /// Waits for the commit.
    pub(crate) async fn wait(self) -> Result<(), sqlx::Error> {
        match self {
            Pending::Done(r) => r,
            Pending::Waiting(wait) => match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(sqlx::Error::Protocol(e)),
                Err(_) => Err(sqlx::Error::Protocol(
                    "the record writer stopped before the commit".into(),
                )),
            },
        }
    }
}

async fn writer(db: Database, mut rx: mpsc::UnboundedReceiver<Item>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        let groups: Vec<&[Stmt]> = batch.iter().map(|i| i.stmts.as_slice()).collect();
        if write_groups(&db, &groups).await.is_ok() {
            for item in batch {
                let _ = item.done.send(Ok(()));
            }
            continue;
        }
        for item in batch {
            let result = write_groups(&db, &[item.stmts.as_slice()])
                .await
                .map_err(|e| e.to_string());
            let _ = item.done.send(result);
        }
    }
}

/// Runs groups of statements in one transaction.
pub(crate) async fn write_all(db: &Database, groups: &[Vec<Stmt>]) -> Result<(), sqlx::Error> {
    let groups: Vec<&[Stmt]> = groups.iter().map(Vec::as_slice).collect();
    write_groups(db, &groups).await
}

async fn write_groups(db: &Database, groups: &[&[Stmt]]) -> Result<(), sqlx::Error> {
    match db {
        Database::Sqlite(pool) => {
            let mut tx = pool.begin().await?;
            for s in groups.iter().flat_map(|g| g.iter()) {
                sqlite_builder(s).build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
        Database::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            for s in groups.iter().flat_map(|g| g.iter()) {
                pg_builder(s).build().execute(&mut *tx).await?;
            }
            tx.commit().await
        }
    }
}
