//! Group commit of execution records: many executions' starts and ends written in one
//! transaction.
//!
//! Every execution writes its record when it starts and when it ends. One commit each costs a
//! disk flush on PostgreSQL and the one write lock on SQLite, so with many executions at once
//! the commits are the bottleneck. [`Recorder::submit`] hands its record to one writer task that
//! takes everything waiting (up to [`MAX_BATCH`] records on PostgreSQL, [`MAX_BATCH_EMBEDDED`] on
//! SQLite), writes it in one transaction, and answers each
//! caller after the commit ([`Pending::wait`]). If a batch fails, its records are written again
//! (see below), then by halves down to single records, so one bad record fails alone. One batch
//! is written at a time: what arrives meanwhile is the next batch, so under load batches grow
//! instead of multiplying (a batch's statement and commit cost about as much as fifteen rows).
//!
//! An execution's start record is submitted without waiting: the job runs while it is written.
//! The end record, written after it in the same order, is waited for by `codeai exec`; a worker
//! takes its next task meanwhile and finishes the task on the queue only after the commit. If
//! the host dies before either commits, the task runs again (once its lease runs out; on SQLite,
//! whose leases are the host process's memory, once a host starts on the file again).
//!
//! How a batch is written:
//! - A start and the end of the same execution in one batch become one row written with its
//!   final values (the transaction makes the `running` state in between invisible anyway).
//! - On PostgreSQL the whole batch is one statement (data-modifying CTEs over `UNNEST`ed
//!   arrays: the new and restarted executions, the attempts that are retried, the ends of
//!   executions started in an earlier batch), so a batch costs one round trip and one commit,
//!   whatever its size. The starts that look new (a first attempt nobody recorded beforehand:
//!   a scheduled fire, not a run now) are copied in first (`COPY … FORMAT BINARY`, in the same
//!   transaction), which costs PostgreSQL about half an upsert's CPU a row; `COPY` cannot update
//!   a row, so when one existed after all the batch is written again as upserts ([`CopyMode`]).
//! - An execution's last attempt is its execution row only; an attempt that is retried also
//!   gets an `execution_attempts` row, since the next attempt overwrites the execution row. So
//!   a job that succeeds at once is one row, and no log is stored twice.
//! - On SQLite the batch is one statement per kind of write (`WITH v AS (VALUES …) INSERT …
//!   SELECT … ON CONFLICT`, `UPDATE … FROM (VALUES …)`), in one transaction: each statement is a
//!   hop to the connection's thread, which costs more than the rows (BENCHMARKS.md, 2026-12-05).
//!   Their `VALUES` are padded to a power of two rows (`Stmt::pad_rows`), so each connection
//!   prepares a few texts once instead of one per batch size.
//!
//! Records of one execution keep their order: a batch is cut where a record would depend on one
//! before it in the same statement (an execution started again after its end, say), and the
//! pieces run in order in the transaction.
//!
//! The records waiting for their commit hold at most [`HELD_BYTES`] between them, and the records
//! of one tenant at most half of that (a record larger than its share takes all of the share),
//! counted by their text: [`Recorder::submit`] waits for room. An end record carries the job's
//! output and log (up to the guest's memory and 1,000 lines of 8 KiB), and a pool keeps running
//! executions while earlier ones commit, so without the bound a tenant's jobs with large outputs,
//! run while the database is slow, would pile their records up in the host's memory until it ran
//! out. With it, an execution waits to hand over its start record (before it runs) or its end
//! record (after it ends) until there is room, and the pool stops taking tasks. Without the
//! share, that tenant's records alone could fill the room and hold up every other tenant's
//! (`host/tests/worker.rs`, `held_records`, `held_shares`).

use super::sql::{Param, Stmt};
use super::{Database, ExecutionStatus, WriteGate};
use chrono::{DateTime, Utc};
use codeai_ir::FieldType;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::{mpsc, oneshot, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

/// The most records one batch writes on PostgreSQL.
///
/// One batch is written at a time, so what arrives during a batch's round trips and commit
/// (whose flush waits for the disk, ~3 ms on the project's machines) must fit in the next. With
/// 512 (before 2026-12-07) the scale-out bench's batches stood near the cap (~200 jobs a commit
/// on average) and the pool's slots waited on its room; with 2,048 they settle at ~330–380 jobs
/// a commit, under the cap, and the bench ran 20 % faster (the median of 10 paired rounds;
/// BENCHMARKS.md, "Session 20"). Such a batch is one statement of arrays and a `COPY`, so its
/// size costs no statement text.
pub(crate) const MAX_BATCH: usize = 2048;

/// The most records one batch writes on SQLite, where a batch holds the one write lock the API's
/// writes wait for too (a longer turn is a longer wait for them), and a commit is a write in this
/// process, not a wait for another.
pub(crate) const MAX_BATCH_EMBEDDED: usize = 512;

/// The most bytes of records waiting for their commit, per recorder (see the module's doc); one
/// tenant's records hold at most half. A no-op job's records are about 1 KiB, so this is felt
/// only by records of megabytes.
pub const HELD_BYTES: usize = 64 << 20;

/// What a record costs besides its text: its fixed fields and the allocations that hold it.
const RECORD_OVERHEAD: usize = 256;

/// The start of an execution's attempt: the row is created `running` (a later attempt, or a
/// row recorded `pending` earlier, is updated to `running`).
#[derive(Debug, Clone)]
pub(crate) struct StartRow {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub trigger: String,
    pub queue: String,
    pub input: String,
    pub attempt: i64,
    pub max_attempts: i64,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
}

/// The end of an execution's attempt: the execution row's outcome and the attempt's row.
#[derive(Debug, Clone)]
pub(crate) struct FinishRow {
    pub id: Uuid,
    pub tenant: String,
    pub attempt: i64,
    pub started_at: DateTime<Utc>,
    pub status: ExecutionStatus,
    pub output: Option<String>,
    pub error: Option<String>,
    pub step: Option<String>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub fuel_used: i64,
    /// JSON array of log lines.
    pub log: String,
    /// JSON array of capability calls.
    pub calls: String,
    /// The execution's last attempt: it stays in the execution row only. An attempt that is
    /// retried also gets its own `execution_attempts` row, as the next attempt overwrites the
    /// execution row (so every execution's log and calls are stored once).
    pub last: bool,
}

/// One record for the writer.
#[derive(Debug, Clone)]
pub(crate) enum Record {
    Start(StartRow),
    Finish(FinishRow),
}

impl Record {
    fn id(&self) -> Uuid {
        match self {
            Record::Start(s) => s.id,
            Record::Finish(f) => f.id,
        }
    }

    fn tenant(&self) -> &str {
        match self {
            Record::Start(s) => &s.tenant,
            Record::Finish(f) => &f.tenant,
        }
    }

    /// About what the record holds in memory: its text and a fixed part.
    fn bytes(&self) -> usize {
        let text = match self {
            Record::Start(s) => [
                &s.tenant,
                &s.job_id,
                &s.job_name,
                &s.trigger,
                &s.queue,
                &s.input,
            ]
            .iter()
            .map(|t| t.len())
            .sum::<usize>(),
            Record::Finish(f) => {
                let optional = |t: &Option<String>| t.as_ref().map_or(0, String::len);
                f.tenant.len()
                    + optional(&f.output)
                    + optional(&f.error)
                    + optional(&f.step)
                    + f.log.len()
                    + f.calls.len()
            }
        };
        RECORD_OVERHEAD + text
    }
}

struct Item {
    record: Record,
    done: oneshot::Sender<Result<(), String>>,
    /// The record's room among the bytes held ([`HELD_BYTES`]), given back when the item is
    /// dropped: after its commit (or its failure) is answered.
    _room: Held,
}

/// The bytes records waiting for their commit may hold: `total` in all, `share` per tenant.
struct Room {
    total: usize,
    share: usize,
    bytes: Arc<Semaphore>,
    /// Bytes held by each tenant's records (the key shared with their `Held`s).
    tenants: Mutex<HashMap<Arc<str>, usize>>,
    /// Notified when a tenant's records give back room.
    freed: Notify,
    /// Submits waiting for room.
    waiting: AtomicUsize,
}

/// A record's room, given back when dropped.
struct Held {
    room: Arc<Room>,
    tenant: Arc<str>,
    bytes: usize,
    /// Its bytes of the total (`None` while it waits for them: its share is counted already).
    _total: Option<OwnedSemaphorePermit>,
}

impl Drop for Held {
    fn drop(&mut self) {
        {
            let mut tenants = self.room.tenants.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(held) = tenants.get_mut(&*self.tenant) {
                *held -= self.bytes;
                if *held == 0 {
                    tenants.remove(&*self.tenant);
                }
            }
        }
        self.room.freed.notify_waiters();
    }
}

/// Counts a submit as waiting while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Room {
    /// Room for `bytes` of `tenant`'s records: first within the tenant's share, then within the
    /// total. (A record larger than the share takes all of it.) Within the total, waiters are
    /// served in order; within a share they are not (each release wakes them all, and the first
    /// that fits goes): a record needing the whole share can wait behind its own tenant's stream
    /// of small ones, never behind another tenant's.
    async fn take(self: &Arc<Room>, tenant: &str, bytes: usize) -> Held {
        let bytes = bytes.min(self.share);
        let mut waiting = None;
        let tenant: Arc<str> = loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut tenants = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
                match tenants.get_key_value(tenant) {
                    // The tenant's key, shared: no allocation per record while it holds room.
                    Some((key, held)) if held + bytes <= self.share => {
                        let key = key.clone();
                        *tenants.get_mut(tenant).expect("just found") += bytes;
                        break key;
                    }
                    Some(_) => {}
                    None => {
                        let key: Arc<str> = tenant.into();
                        tenants.insert(key.clone(), bytes);
                        break key;
                    }
                }
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.waiting));
            freed.await;
        };
        // The share is counted from here: dropping `held` gives it back.
        let mut held = Held {
            room: self.clone(),
            tenant,
            bytes,
            _total: None,
        };
        // `bytes` is at most the share, at most `u32::MAX` (`Recorder::holding`).
        let permit = match self.bytes.clone().try_acquire_many_owned(bytes as u32) {
            Ok(permit) => permit,
            Err(_) => {
                waiting.get_or_insert_with(|| Waiting::new(&self.waiting));
                self.bytes
                    .clone()
                    .acquire_many_owned(bytes as u32)
                    .await
                    .expect("the recorder's room is never closed")
            }
        };
        held._total = Some(permit);
        held
    }
}

/// The writer of execution records for one database.
pub struct Recorder {
    db: Database,
    /// This process's turn to write the file (SQLite), shared with the queue.
    gate: WriteGate,
    tx: OnceLock<mpsc::UnboundedSender<Item>>,
    /// Room for the bytes of the records waiting for their commit.
    room: Arc<Room>,
}

impl Recorder {
    /// A recorder whose records waiting for their commit hold at most `bytes`, and one tenant's
    /// at most half (at least one record's worth each).
    pub fn holding(db: Database, bytes: usize) -> Recorder {
        // A record's permits are a `u32`; the semaphore has its own ceiling (lower on 32 bits).
        let total = bytes.clamp(
            2 * RECORD_OVERHEAD,
            (u32::MAX as usize).min(Semaphore::MAX_PERMITS),
        );
        Recorder {
            gate: WriteGate::of(&db),
            db,
            tx: OnceLock::new(),
            room: Arc::new(Room {
                total,
                share: total / 2,
                bytes: Arc::new(Semaphore::new(total)),
                tenants: Mutex::new(HashMap::new()),
                freed: Notify::new(),
                waiting: AtomicUsize::new(0),
            }),
        }
    }

    /// Bytes of records handed to the writer and not yet committed (or failed).
    pub fn held_bytes(&self) -> usize {
        self.room.total - self.room.bytes.available_permits()
    }

    /// Bytes of `tenant`'s records handed to the writer or waiting for the total's room, and not
    /// yet committed (or failed).
    pub fn held_by(&self, tenant: &str) -> usize {
        let tenants = self.room.tenants.lock().unwrap_or_else(|e| e.into_inner());
        tenants.get(tenant).copied().unwrap_or(0)
    }

    /// How many submits are waiting for room among the bytes held.
    pub fn waiting(&self) -> usize {
        self.room.waiting.load(Ordering::Relaxed)
    }

    /// Hands `record` to the writer without waiting for the commit; [`Pending::wait`] waits.
    /// Records are written in the order they are submitted, so a later record of the same
    /// execution never lands before an earlier one. Waits first while the records already
    /// handed over hold the recorder's bytes, or the tenant's share of them (see the module's
    /// doc).
    pub(crate) async fn submit(&self, record: Record) -> Pending {
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(writer(self.db.clone(), self.gate.clone(), rx));
            tx
        });
        let _room = self.room.take(record.tenant(), record.bytes()).await;
        let (done, wait) = oneshot::channel();
        match tx.send(Item {
            record,
            done,
            _room,
        }) {
            Ok(()) => Pending::Waiting(wait),
            // The writer is gone (its runtime ended): write directly.
            Err(mpsc::error::SendError(item)) => {
                let _turn = self.gate.turn().await;
                Pending::Done(write_records(&self.db, &[&item.record]).await)
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

/// Batches written at once on PostgreSQL. Two (the next written while the previous commits)
/// halve the wait of a caller that waits for its record, but also the size of the batches: with
/// workers that do not wait (see `worker.rs`), one at a time is faster (BENCHMARKS.md,
/// `redis_throughput`). SQLite has one writer at a time.
const IN_FLIGHT: usize = 1;

async fn writer(db: Database, gate: WriteGate, mut rx: mpsc::UnboundedReceiver<Item>) {
    // Batches being written, with the executions they touch: a record of an execution that is
    // in one of them waits until that batch is done, so records of an execution stay in order.
    let mut flying: VecDeque<(JoinHandle<()>, HashSet<Uuid>)> = VecDeque::new();
    let mut batch: Vec<Item> = Vec::new();
    let (in_flight, max_batch) = match db {
        Database::Sqlite(_) => (1, MAX_BATCH_EMBEDDED),
        Database::Postgres(_) => (IN_FLIGHT, MAX_BATCH),
    };
    let mut open = true;
    while open || !batch.is_empty() {
        if batch.is_empty() {
            match rx.recv().await {
                Some(item) => batch.push(item),
                None => break,
            }
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        while flying.front().is_some_and(|(h, _)| h.is_finished()) {
            flying.pop_front();
        }
        let depends = || {
            batch.iter().any(|i| {
                let id = i.record.id();
                flying.iter().any(|(_, ids)| ids.contains(&id))
            })
        };
        if flying.len() >= in_flight || depends() {
            // Wait for the oldest batch, then take what came meanwhile too.
            if let Some((h, _)) = flying.pop_front() {
                let _ = h.await;
            }
            continue;
        }
        let ids = batch.iter().map(|i| i.record.id()).collect();
        let items = std::mem::take(&mut batch);
        flying.push_back((
            tokio::spawn(write_batch(db.clone(), gate.clone(), items)),
            ids,
        ));
    }
    for (h, _) in flying {
        let _ = h.await;
    }
}

/// Writes a batch and answers each of its callers; if the database refuses the batch, its
/// halves are written, and theirs, down to single records ([`isolate`]), so one bad record
/// fails alone.
async fn write_batch(db: Database, gate: WriteGate, batch: Vec<Item>) {
    let _turn = gate.turn().await;
    let records: Vec<&Record> = batch.iter().map(|i| &i.record).collect();
    let mut written = write_with(&db, &records, CopyMode::NewRows).await;
    if let Err(e) = &written {
        if copies_any(&db, &records) {
            // A start copied in as new whose row existed after all (see `CopyMode`): the batch
            // again, every start an upsert. A unique violation is that case; any other error
            // copying is worth a look (a column whose type changed, say).
            let conflict = e
                .as_database_error()
                .is_some_and(|d| d.code().as_deref() == Some("23505"));
            if conflict {
                tracing::debug!(error = %e, "recorder: a start copied in had its row; upserting the batch");
            } else {
                tracing::warn!(error = %e, "recorder: a batch with copied starts failed; upserting it");
            }
            written = write_with(&db, &records, CopyMode::Never).await;
        }
    }
    let results = match written {
        Ok(()) => vec![Ok(()); records.len()],
        // Not the database's answer (the connection broke, none came in time): every record
        // fails with it at once, instead of waiting for it again record by record.
        Err(e) if e.as_database_error().is_none() => vec![Err(e.to_string()); records.len()],
        Err(_) => isolate(&db, &records).await,
    };
    drop(records);
    for (item, result) in batch.into_iter().zip(results) {
        let _ = item.done.send(result);
    }
}

/// Writes the halves of `records`, a batch the database refused, and the halves of each half
/// it refuses, down to single records, in order (a record of an execution still comes after
/// the earlier ones): each record's outcome. One bad record among `n` costs about `2·log2(n)`
/// writes; record by record (before 2026-12-07) a batch of 2,048 took 2,048 commits, seconds
/// in which nothing else was recorded.
async fn isolate(db: &Database, records: &[&Record]) -> Vec<Result<(), String>> {
    let mut results = vec![Ok(()); records.len()];
    let halves = |from: usize, to: usize| {
        let mid = from + (to - from) / 2;
        [(mid, to), (from, mid)] // popped first half first
    };
    let mut todo: Vec<(usize, usize)> = match records.len() {
        0 => Vec::new(),
        1 => vec![(0, 1)],
        n => halves(0, n).to_vec(),
    };
    while let Some((from, to)) = todo.pop() {
        match write_with(db, &records[from..to], CopyMode::Never).await {
            Ok(()) => {}
            Err(e) if to - from == 1 || e.as_database_error().is_none() => {
                let e = e.to_string();
                for result in &mut results[from..to] {
                    *result = Err(e.clone());
                }
            }
            Err(_) => todo.extend(halves(from, to)),
        }
    }
    results
}

/// Whether starts that look new are copied in (PostgreSQL's `COPY`) instead of upserted.
/// (Not `Copy`, which would hide the trait in this module.)
///
/// `COPY` costs PostgreSQL about half an upsert's CPU a row (BENCHMARKS.md, session 18), but it
/// cannot update a row that exists. A start looks new on its first attempt of a task no one
/// recorded beforehand ([`looks_new`]); a guess the database checks: a start copied in whose row
/// exists (a task run again after its worker died, say) fails its batch with a unique violation,
/// and the batch is written again with `Never`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CopyMode {
    NewRows,
    Never,
}

/// A start whose execution has no row yet, as far as the worker can tell: its first attempt,
/// and not of a run now (`manual`) or an event's run, which are recorded `pending` when asked
/// for, nor of a failed execution run again (`retry`), which has its row.
fn looks_new(s: &StartRow) -> bool {
    s.attempt == 1 && !matches!(s.trigger.as_str(), "manual" | "event" | "retry")
}

/// Whether a start (with its end, when the end came in the same batch) is copied in with
/// [`CopyMode::NewRows`]: it looks new and needs no attempt row (an attempt that is retried gets
/// one, written by the upsert's statement).
fn copied(s: &StartRow, end: Option<&FinishRow>) -> bool {
    looks_new(s) && end.is_none_or(|f| f.last)
}

/// Whether writing `records` with [`CopyMode::NewRows`] copies any start in.
fn copies_any(db: &Database, records: &[&Record]) -> bool {
    matches!(db, Database::Postgres(_))
        && plan(records)
            .iter()
            .any(|p| p.execs.iter().any(|(s, e)| copied(s, *e)))
}

/// Executions whose start was copied in and committed, since the process started (tests see
/// that the copy is taken).
static ROWS_COPIED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many starts were copied into PostgreSQL and committed by this process.
pub fn rows_copied() -> u64 {
    ROWS_COPIED.load(Ordering::Relaxed)
}

/// Writes records in one transaction, in order.
pub(crate) async fn write_records(db: &Database, records: &[&Record]) -> Result<(), sqlx::Error> {
    write_with(db, records, CopyMode::Never).await
}

async fn write_with(db: &Database, records: &[&Record], copy: CopyMode) -> Result<(), sqlx::Error> {
    let parts = plan(records);
    match db {
        Database::Sqlite(_) => {
            let stmts: Vec<Stmt> = parts.iter().flat_map(Part::sqlite_stmts).collect();
            super::rows::execute_all(db, &stmts).await.map(|_| ())
        }
        Database::Postgres(pool) => write_pg(pool, &parts, copy).await,
    }
}

/// Records that can be written by one statement: executions to insert (or restart), each with
/// its end when the end came in the same batch; ends of executions started earlier; attempts.
#[derive(Default)]
struct Part<'a> {
    execs: Vec<ExecRow<'a>>,
    ends: Vec<&'a FinishRow>,
    /// Execution id → index in `execs`, or `usize::MAX` for one in `ends`.
    seen: HashMap<Uuid, usize>,
}

impl<'a> Part<'a> {
    /// Adds `r` unless it depends on a record of this part (then the caller starts a new part).
    fn add(&mut self, r: &'a Record) -> bool {
        match r {
            Record::Start(s) => {
                if self.seen.contains_key(&s.id) {
                    return false;
                }
                self.seen.insert(s.id, self.execs.len());
                self.execs.push((s, None));
            }
            Record::Finish(f) => match self.seen.get(&f.id) {
                Some(&i) if i != usize::MAX => {
                    let (start, end) = &mut self.execs[i];
                    if end.is_some() || start.tenant != f.tenant {
                        return false;
                    }
                    *end = Some(f);
                }
                Some(_) => return false,
                None => {
                    self.seen.insert(f.id, usize::MAX);
                    self.ends.push(f);
                }
            },
        }
        true
    }

    /// The same writes, without the bookkeeping of [`Part::add`].
    fn clone_shallow(&self) -> Part<'a> {
        Part {
            execs: self.execs.clone(),
            ends: self.ends.clone(),
            seen: HashMap::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.execs.is_empty() && self.ends.is_empty()
    }

    /// The ends that get an attempt row: those of attempts that are retried.
    fn attempts(&self) -> impl Iterator<Item = &'a FinishRow> + '_ {
        self.execs
            .iter()
            .filter_map(|(_, end)| *end)
            .chain(self.ends.iter().copied())
            .filter(|f| !f.last)
    }

    /// The same writes as SQLite statements: one per kind of write and 500 rows.
    fn sqlite_stmts(&self) -> Vec<Stmt> {
        let mut out = Vec::new();
        for chunk in self.execs.chunks(SQLITE_ROWS) {
            out.push(insert_stmt(chunk));
        }
        let attempts: Vec<&FinishRow> = self.attempts().collect();
        for chunk in attempts.chunks(SQLITE_ROWS) {
            out.push(attempt_stmt(chunk));
        }
        for chunk in self.ends.chunks(SQLITE_ROWS) {
            out.push(end_stmt(chunk));
        }
        out
    }
}

/// Rows per SQLite statement: 512 rows of 22 parameters stay under SQLite's 32,766.
const SQLITE_ROWS: usize = 512;

/// Splits records into parts that each can be one statement, in order.
fn plan<'a>(records: &[&'a Record]) -> Vec<Part<'a>> {
    let mut parts = vec![Part::default()];
    for r in records {
        let last = parts.last_mut().expect("one part at least");
        if !last.add(r) {
            let mut part = Part::default();
            part.add(r);
            parts.push(part);
        }
    }
    debug_assert!(records
        .iter()
        .all(|r| parts.iter().any(|p| p.seen.contains_key(&r.id()))));
    parts
}

fn text(s: &str) -> Param {
    Param::Text(s.to_string())
}

fn opt_text(s: Option<&str>) -> Param {
    s.map_or(Param::Null(FieldType::String), text)
}

/// An end's outcome columns: output, error, step, finished_at, duration_ms, fuel_used, log,
/// calls (in that order, in every statement that writes them).
fn end_params(f: &FinishRow) -> [Param; 8] {
    [
        opt_text(f.output.as_deref()),
        opt_text(f.error.as_deref()),
        opt_text(f.step.as_deref()),
        Param::DateTime(f.finished_at),
        Param::Int(f.duration_ms),
        Param::Int(f.fuel_used),
        text(&f.log),
        text(&f.calls),
    ]
}

/// The columns a new row gets; on a conflict (a later attempt, or a row recorded `pending`),
/// the row is restarted: its status, attempt and times, and the outcome when the end is known.
const INSERT_COLUMNS: &str = "id, tenant_id, job_id, job_name, job_version, status, trigger, \
     queue, input, attempt, max_attempts, scheduled_at, started_at, created_at, output, error, \
     step, finished_at, duration_ms, fuel_used, log, calls";

const ON_CONFLICT: &str = " ON CONFLICT (id) DO UPDATE SET status = excluded.status, \
     attempt = excluded.attempt, started_at = excluded.started_at, \
     finished_at = excluded.finished_at, \
     output = CASE WHEN excluded.finished_at IS NULL THEN job_executions.output ELSE excluded.output END, \
     error = CASE WHEN excluded.finished_at IS NULL THEN job_executions.error ELSE excluded.error END, \
     step = CASE WHEN excluded.finished_at IS NULL THEN job_executions.step ELSE excluded.step END, \
     duration_ms = CASE WHEN excluded.finished_at IS NULL THEN job_executions.duration_ms \
     ELSE excluded.duration_ms END, \
     fuel_used = CASE WHEN excluded.finished_at IS NULL THEN job_executions.fuel_used \
     ELSE excluded.fuel_used END, \
     log = CASE WHEN excluded.finished_at IS NULL THEN job_executions.log ELSE excluded.log END, \
     calls = CASE WHEN excluded.finished_at IS NULL THEN job_executions.calls ELSE excluded.calls END";

const ATTEMPT_COLUMNS: &str = "execution_id, tenant_id, attempt, status, error, started_at, \
     finished_at, duration_ms, fuel_used, log, calls";

/// Inserts (or restarts) executions, each with its end when it is known.
fn insert_stmt(execs: &[ExecRow<'_>]) -> Stmt {
    let mut out = Stmt::default();
    out.sql(format!("WITH v ({INSERT_COLUMNS}) AS (VALUES "));
    for (i, (s, end)) in execs.iter().enumerate() {
        let mut params = vec![
            Param::Uuid(s.id),
            text(&s.tenant),
            text(&s.job_id),
            text(&s.job_name),
            s.job_version
                .map_or(Param::Null(FieldType::Int), Param::Int),
            text(end.map_or(ExecutionStatus::Running, |f| f.status).as_str()),
            text(&s.trigger),
            text(&s.queue),
            text(&s.input),
            Param::Int(s.attempt),
            Param::Int(s.max_attempts),
            s.scheduled_at
                .map_or(Param::Null(FieldType::Datetime), Param::DateTime),
            Param::DateTime(s.started_at),
            Param::DateTime(s.started_at),
        ];
        match end {
            Some(f) => params.extend(end_params(f)),
            None => params.extend([
                Param::Null(FieldType::String),
                Param::Null(FieldType::String),
                Param::Null(FieldType::String),
                Param::Null(FieldType::Datetime),
                Param::Null(FieldType::Int),
                Param::Null(FieldType::Int),
                Param::Null(FieldType::String),
                Param::Null(FieldType::String),
            ]),
        }
        out.row(i == 0, params);
    }
    out.pad_rows(execs.len(), &NULL_EXECUTION);
    out.sql(format!(
        ") INSERT INTO job_executions ({INSERT_COLUMNS}) SELECT * FROM v WHERE v.id IS NOT NULL"
    ));
    out.sql(ON_CONFLICT);
    out
}

/// A row of [`INSERT_COLUMNS`] that [`insert_stmt`] leaves out (see [`Stmt::pad_rows`]).
const NULL_EXECUTION: [Param; 22] = [const { Param::Null(FieldType::String) }; 22];

/// The rows of attempts that are retried.
fn attempt_stmt(attempts: &[&FinishRow]) -> Stmt {
    let mut out = Stmt::default();
    out.sql(format!(
        "INSERT INTO execution_attempts ({ATTEMPT_COLUMNS}) VALUES "
    ));
    for (i, f) in attempts.iter().enumerate() {
        out.row(
            i == 0,
            [
                text(&f.id.to_string()),
                text(&f.tenant),
                Param::Int(f.attempt),
                text(f.status.as_str()),
                opt_text(f.error.as_deref()),
                Param::DateTime(f.started_at),
                Param::DateTime(f.finished_at),
                Param::Int(f.duration_ms),
                Param::Int(f.fuel_used),
                text(&f.log),
                text(&f.calls),
            ],
        );
    }
    out.sql(" ON CONFLICT DO NOTHING");
    out
}

/// The ends of executions started in an earlier batch.
fn end_stmt(ends: &[&FinishRow]) -> Stmt {
    let mut out = Stmt::default();
    out.sql(
        "WITH v (id, tenant_id, status, output, error, step, finished_at, duration_ms, \
         fuel_used, log, calls) AS (VALUES ",
    );
    for (i, f) in ends.iter().enumerate() {
        out.row(
            i == 0,
            [Param::Uuid(f.id), text(&f.tenant), text(f.status.as_str())]
                .into_iter()
                .chain(end_params(f)),
        );
    }
    out.pad_rows(ends.len(), &[const { Param::Null(FieldType::String) }; 11]);
    out.sql(
        ") UPDATE job_executions SET status = v.status, output = v.output, error = v.error, \
         step = v.step, finished_at = v.finished_at, duration_ms = v.duration_ms, \
         fuel_used = v.fuel_used, log = v.log, calls = v.calls \
         FROM v WHERE job_executions.tenant_id = v.tenant_id AND job_executions.id = v.id",
    );
    out
}

/// The parts, each one statement (and with [`CopyMode::NewRows`], its starts that look new copied
/// in first), in one transaction (no transaction for a single statement: it is atomic by
/// itself).
async fn write_pg(pool: &PgPool, parts: &[Part<'_>], copy: CopyMode) -> Result<(), sqlx::Error> {
    let split: Vec<(Part<'_>, Vec<ExecRow<'_>>)> = parts
        .iter()
        .map(|part| {
            let mut rest = part.clone_shallow();
            let copied = match copy {
                CopyMode::NewRows => {
                    let (new, old) = part.execs.iter().partition(|(s, e)| copied(s, *e));
                    rest.execs = old;
                    new
                }
                CopyMode::Never => Vec::new(),
            };
            (rest, copied)
        })
        .collect();
    if let [(part, copied)] = split.as_slice() {
        if copied.is_empty() {
            return pg_part(part).execute(pool).await.map(|_| ());
        }
    }
    let mut tx = pool.begin().await?;
    let mut rows = 0;
    for (part, copied) in &split {
        rows += copied.len() as u64;
        if !copied.is_empty() {
            let mut copy_in = tx
                .copy_in_raw(&format!(
                    "COPY job_executions ({INSERT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
                ))
                .await?;
            copy_in.send(copy_binary(copied)).await?;
            copy_in.finish().await?;
        }
        if !part.is_empty() {
            pg_part(part).execute(&mut *tx).await?;
        }
    }
    tx.commit().await?;
    ROWS_COPIED.fetch_add(rows, Ordering::Relaxed);
    Ok(())
}

/// A start and its end when the end came in the same batch.
type ExecRow<'a> = (&'a StartRow, Option<&'a FinishRow>);

/// `rows` in `COPY`'s binary format, the columns of [`INSERT_COLUMNS`] as the upsert writes them
/// (`created_at` is the start).
fn copy_binary(rows: &[ExecRow<'_>]) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, v: Option<&str>) {
        match v {
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v.as_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    fn int(out: &mut Vec<u8>, v: Option<i64>) {
        match v {
            Some(v) => {
                out.extend_from_slice(&8i32.to_be_bytes());
                out.extend_from_slice(&v.to_be_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    // PostgreSQL's timestamps: microseconds since 2000-01-01 00:00:00 UTC.
    const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
    fn time(out: &mut Vec<u8>, v: Option<DateTime<Utc>>) {
        int(out, v.map(|t| t.timestamp_micros() - PG_EPOCH_MICROS));
    }
    // Each row says how many fields it has: the columns named, so the two cannot drift apart
    // unnoticed (a row of another length is refused by the database).
    let fields = INSERT_COLUMNS.split(',').count() as i16;
    let mut out = Vec::with_capacity(19 + rows.len() * 512);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for (s, e) in rows {
        out.extend_from_slice(&fields.to_be_bytes());
        out.extend_from_slice(&16i32.to_be_bytes());
        out.extend_from_slice(s.id.as_bytes());
        text(&mut out, Some(&s.tenant));
        text(&mut out, Some(&s.job_id));
        text(&mut out, Some(&s.job_name));
        int(&mut out, s.job_version);
        let status = e.map_or(ExecutionStatus::Running, |f| f.status);
        text(&mut out, Some(status.as_str()));
        text(&mut out, Some(&s.trigger));
        text(&mut out, Some(&s.queue));
        text(&mut out, Some(&s.input));
        int(&mut out, Some(s.attempt));
        int(&mut out, Some(s.max_attempts));
        time(&mut out, s.scheduled_at);
        time(&mut out, Some(s.started_at));
        time(&mut out, Some(s.started_at));
        text(&mut out, e.and_then(|f| f.output.as_deref()));
        text(&mut out, e.and_then(|f| f.error.as_deref()));
        text(&mut out, e.and_then(|f| f.step.as_deref()));
        time(&mut out, e.map(|f| f.finished_at));
        int(&mut out, e.map(|f| f.duration_ms));
        int(&mut out, e.map(|f| f.fuel_used));
        text(&mut out, e.map(|f| f.log.as_str()));
        text(&mut out, e.map(|f| f.calls.as_str()));
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// The arrays a part binds, as `name type` (the `UNNEST` aliases and the arrays' element types,
/// in bind order).
const EXEC_ARRAYS: &str = "id uuid, tenant_id text, job_id text, job_name text, job_version int8, \
     status text, trigger text, queue text, input text, attempt int8, max_attempts int8, \
     scheduled_at timestamptz, started_at timestamptz, output text, error text, step text, \
     finished_at timestamptz, duration_ms int8, fuel_used int8, log text, calls text";
const ATTEMPT_ARRAYS: &str = "execution_id text, tenant_id text, attempt int8, status text, \
     error text, started_at timestamptz, finished_at timestamptz, duration_ms int8, \
     fuel_used int8, log text, calls text";
const END_ARRAYS: &str = "id uuid, tenant_id text, status text, output text, error text, \
     step text, finished_at timestamptz, duration_ms int8, fuel_used int8, log text, calls text";

/// The statement of a part that has executions to insert (`mask & 1`), attempts (`& 2`) and
/// ends of executions started earlier (`& 4`): eight shapes, made once, each prepared once per
/// connection.
fn pg_sql(mask: usize) -> &'static str {
    static SQL: OnceLock<Vec<String>> = OnceLock::new();
    &SQL.get_or_init(|| (0..8).map(make_pg_sql).collect())[mask]
}

fn make_pg_sql(mask: usize) -> String {
    let mut ctes: Vec<String> = Vec::new();
    let mut n = 0;
    // `UNNEST($1::uuid[], …) AS v(id, …)`, numbering the arrays across the statement.
    let mut unnest = |arrays: &str| -> String {
        let (names, args): (Vec<&str>, Vec<String>) = arrays
            .split(", ")
            .map(|array| {
                let (name, ty) = array.split_once(' ').expect("`name type`");
                n += 1;
                (name, format!("${n}::{ty}[]"))
            })
            .unzip();
        format!("UNNEST({}) AS v({})", args.join(", "), names.join(", "))
    };
    if mask & 1 != 0 {
        let v = unnest(EXEC_ARRAYS);
        ctes.push(format!(
            "s AS (INSERT INTO job_executions ({INSERT_COLUMNS}) SELECT id, tenant_id, job_id, \
             job_name, job_version, status, trigger, queue, input, attempt, max_attempts, \
             scheduled_at, started_at, started_at, output, error, step, finished_at, \
             duration_ms, fuel_used, log, calls FROM {v}{ON_CONFLICT})"
        ));
    }
    if mask & 2 != 0 {
        let v = unnest(ATTEMPT_ARRAYS);
        ctes.push(format!(
            "a AS (INSERT INTO execution_attempts ({ATTEMPT_COLUMNS}) SELECT * FROM {v} \
             ON CONFLICT DO NOTHING)"
        ));
    }
    if mask & 4 != 0 {
        let v = unnest(END_ARRAYS);
        ctes.push(format!(
            "u AS (UPDATE job_executions e SET status = v.status, output = v.output, \
             error = v.error, step = v.step, finished_at = v.finished_at, \
             duration_ms = v.duration_ms, fuel_used = v.fuel_used, log = v.log, calls = v.calls \
             FROM {v} WHERE e.tenant_id = v.tenant_id AND e.id = v.id)"
        ));
    }
    if ctes.is_empty() {
        "SELECT 1".to_string()
    } else {
        format!("WITH {} SELECT 1", ctes.join(", "))
    }
}

/// One part as one statement: `UNNEST`ed arrays feeding data-modifying CTEs.
fn pg_part(part: &Part<'_>) -> PgQuery {
    let execs = &part.execs;
    let attempts: Vec<&FinishRow> = part.attempts().collect();
    let ends = &part.ends;
    let mask = usize::from(!execs.is_empty())
        | usize::from(!attempts.is_empty()) << 1
        | usize::from(!ends.is_empty()) << 2;
    let mut q = sqlx::query(pg_sql(mask));
    if !execs.is_empty() {
        let col = |f: &dyn Fn(&StartRow, Option<&FinishRow>) -> Option<String>| {
            execs
                .iter()
                .map(|(s, e)| f(s, *e))
                .collect::<Vec<Option<String>>>()
        };
        q = q
            .bind(execs.iter().map(|(s, _)| s.id).collect::<Vec<Uuid>>())
            .bind(col(&|s, _| Some(s.tenant.clone())))
            .bind(col(&|s, _| Some(s.job_id.clone())))
            .bind(col(&|s, _| Some(s.job_name.clone())))
            .bind(execs.iter().map(|(s, _)| s.job_version).collect::<Vec<_>>())
            .bind(col(&|_, e| {
                Some(
                    e.map_or(ExecutionStatus::Running, |f| f.status)
                        .as_str()
                        .to_string(),
                )
            }))
            .bind(col(&|s, _| Some(s.trigger.clone())))
            .bind(col(&|s, _| Some(s.queue.clone())))
            .bind(col(&|s, _| Some(s.input.clone())))
            .bind(execs.iter().map(|(s, _)| s.attempt).collect::<Vec<_>>())
            .bind(
                execs
                    .iter()
                    .map(|(s, _)| s.max_attempts)
                    .collect::<Vec<_>>(),
            )
            .bind(
                execs
                    .iter()
                    .map(|(s, _)| s.scheduled_at)
                    .collect::<Vec<_>>(),
            )
            .bind(execs.iter().map(|(s, _)| s.started_at).collect::<Vec<_>>())
            .bind(col(&|_, e| e.and_then(|f| f.output.clone())))
            .bind(col(&|_, e| e.and_then(|f| f.error.clone())))
            .bind(col(&|_, e| e.and_then(|f| f.step.clone())))
            .bind(
                execs
                    .iter()
                    .map(|(_, e)| e.map(|f| f.finished_at))
                    .collect::<Vec<_>>(),
            )
            .bind(
                execs
                    .iter()
                    .map(|(_, e)| e.map(|f| f.duration_ms))
                    .collect::<Vec<_>>(),
            )
            .bind(
                execs
                    .iter()
                    .map(|(_, e)| e.map(|f| f.fuel_used))
                    .collect::<Vec<_>>(),
            )
            .bind(col(&|_, e| e.map(|f| f.log.clone())))
            .bind(col(&|_, e| e.map(|f| f.calls.clone())));
    }
    if !attempts.is_empty() {
        let col = |f: &dyn Fn(&FinishRow) -> Option<String>| {
            attempts
                .iter()
                .map(|a| f(a))
                .collect::<Vec<Option<String>>>()
        };
        q = q
            .bind(col(&|f| Some(f.id.to_string())))
            .bind(col(&|f| Some(f.tenant.clone())))
            .bind(attempts.iter().map(|f| f.attempt).collect::<Vec<_>>())
            .bind(col(&|f| Some(f.status.as_str().to_string())))
            .bind(col(&|f| f.error.clone()))
            .bind(attempts.iter().map(|f| f.started_at).collect::<Vec<_>>())
            .bind(attempts.iter().map(|f| f.finished_at).collect::<Vec<_>>())
            .bind(attempts.iter().map(|f| f.duration_ms).collect::<Vec<_>>())
            .bind(attempts.iter().map(|f| f.fuel_used).collect::<Vec<_>>())
            .bind(col(&|f| Some(f.log.clone())))
            .bind(col(&|f| Some(f.calls.clone())));
    }
    if !ends.is_empty() {
        let col = |f: &dyn Fn(&FinishRow) -> Option<String>| {
            ends.iter().map(|a| f(a)).collect::<Vec<Option<String>>>()
        };
        q = q
            .bind(ends.iter().map(|f| f.id).collect::<Vec<Uuid>>())
            .bind(col(&|f| Some(f.tenant.clone())))
            .bind(col(&|f| Some(f.status.as_str().to_string())))
            .bind(col(&|f| f.output.clone()))
            .bind(col(&|f| f.error.clone()))
            .bind(col(&|f| f.step.clone()))
            .bind(ends.iter().map(|f| f.finished_at).collect::<Vec<_>>())
            .bind(ends.iter().map(|f| f.duration_ms).collect::<Vec<_>>())
            .bind(ends.iter().map(|f| f.fuel_used).collect::<Vec<_>>())
            .bind(col(&|f| Some(f.log.clone())))
            .bind(col(&|f| Some(f.calls.clone())));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(id: Uuid) -> Record {
        Record::Start(StartRow {
            id,
            tenant: "t".into(),
            job_id: "j".into(),
            job_name: "J".into(),
            job_version: Some(1),
            trigger: "manual".into(),
            queue: "default".into(),
            input: "{}".into(),
            attempt: 1,
            max_attempts: 1,
            scheduled_at: None,
            started_at: Utc::now(),
        })
    }

    /// The end of `id`'s attempt; `last`: not retried (no attempt row).
    fn finish(id: Uuid, last: bool) -> Record {
        Record::Finish(FinishRow {
            id,
            tenant: "t".into(),
            attempt: 1,
            started_at: Utc::now(),
            status: ExecutionStatus::Completed,
            output: None,
            error: None,
            step: None,
            finished_at: Utc::now(),
            duration_ms: 0,
            fuel_used: 0,
            log: "[]".into(),
            calls: "[]".into(),
            last,
        })
    }

    #[test]
    fn a_start_and_its_end_become_one_row_and_a_dependent_record_starts_a_new_part() {
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let records = [
            start(a),
            finish(a, true),
            start(b),
            finish(c, false),
            start(c),
            finish(b, false),
        ];
        let refs: Vec<&Record> = records.iter().collect();
        let parts = plan(&refs);
        assert_eq!(
            parts.len(),
            2,
            "c starts again after its end: a second part"
        );
        let first = &parts[0];
        assert_eq!(first.execs.len(), 2);
        assert!(first.execs[0].1.is_some(), "a: start and end in one row");
        assert!(first.execs[1].1.is_none(), "b: its end came after the cut");
        assert_eq!(first.ends.len(), 1, "c ended (started in an earlier batch)");
        assert_eq!(
            first.attempts().count(),
            1,
            "c's attempt is retried; a's was its last"
        );
        let second = &parts[1];
        assert_eq!(second.execs.len(), 1, "c's new start");
        assert_eq!(
            second.ends.len(),
            1,
            "b's end, after its start in the first part"
        );
        assert_eq!(
            second.sqlite_stmts().len(),
            3,
            "c's insert, b's attempt row, b's end"
        );
    }

    /// A batch of 1,500 executions (3,000 records, past the PostgreSQL cap, so two batches or
    /// more) with one end PostgreSQL refuses (a NUL character in its output): that record fails
    /// alone, by halves, and every other is written with its final values.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_the_database_refuses_fails_alone_in_a_large_batch() {
        use sqlx::postgres::PgConnectOptions;
        use std::str::FromStr;
        let url = std::env::var("DATABASE_URL")
            .ok()
            .filter(|u| u.starts_with("postgres"))
            .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
        let admin = match PgPool::connect(&url).await {
            Ok(admin) => admin,
            Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("PostgreSQL at {url} is unreachable under CI=true: {e}")
            }
            Err(e) => return eprintln!("notice: PostgreSQL unreachable ({e}); skipping"),
        };
        let schema = format!("codeai_recorder_{}", Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE SCHEMA \"{schema}\""))
            .execute(&admin)
            .await
            .unwrap();
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let db = Database::connect_postgres(options).await.unwrap();
        crate::store::migrate::migrate_up(&db).await.unwrap();

        let ids: Vec<Uuid> = (0..1500).map(|_| Uuid::now_v7()).collect();
        let bad = ids[1100];
        let recorder = Recorder::holding(db.clone(), HELD_BYTES);
        let mut pending = Vec::new();
        for id in &ids {
            let Record::Finish(mut end) = finish(*id, true) else {
                unreachable!()
            };
            end.output = Some(if *id == bad { "a\0b" } else { "{}" }.into());
            pending.push((*id, recorder.submit(start(*id)).await));
            pending.push((*id, recorder.submit(Record::Finish(end)).await));
        }
        let mut failed = HashSet::new();
        for (id, p) in pending {
            if p.wait().await.is_err() {
                failed.insert(id);
            }
        }
        assert_eq!(
            failed,
            HashSet::from([bad]),
            "only the bad record's execution fails"
        );
        let Database::Postgres(pool) = &db else {
            unreachable!()
        };
        let completed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM job_executions WHERE status = 'completed' AND output = '{}'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            completed, 1499,
            "every other execution is written with its end"
        );
        db.close().await;
        sqlx::raw_sql(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}
