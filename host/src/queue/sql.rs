//! The queue in the platform's database: the `tasks` table (SQLite, the embedded default; or
//! PostgreSQL, with `FOR UPDATE SKIP LOCKED`). Each move is one statement, or one transaction.
//!
//! **Leases**: on PostgreSQL a lease is written to the task (`active`, an owner, an expiry); on
//! SQLite the one host process on the file holds its leases in memory ([`Held`]), and a lease
//! is a read.
//!
//! **Turns**: each task is given its turn when it is enqueued ([`next_turn`]): one after its
//! tenant's last waiting task in that queue, and never before the queue's current turn; a lease
//! takes the lowest turn (the oldest first among equals), with one `UPDATE … RETURNING` that
//! writes nothing more (PostgreSQL) or a read (SQLite). A retry, a deferral and a dead task run again take a new turn; a task
//! released at shutdown or rescued from an expired lease keeps its own.

use super::backend::{Claim, Claimed, Finished, Lease, Leased, QueueBackend};
use super::{NewTask, Picker, QueueCounts, Task, TaskInfo};
use crate::store::rows::{self, RowExt as _};
use crate::store::sql::{merge_rows, stmt, Param, Stmt};
use crate::store::{Database, Dialect, ExecutionStatus, PerFile, WriteGate};
use chrono::{DateTime, Utc};
use codeai_ir::FieldType;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// The queue in the `tasks` table.
pub struct SqlQueue {
    db: Database,
    /// This process's turn to write the file (SQLite), shared with the execution recorder.
    gate: WriteGate,
    /// The writer of run requests on SQLite ([`SqlQueue::enqueue_recorded`]), started at the
    /// first.
    runs: OnceLock<mpsc::UnboundedSender<Run>>,
    /// On SQLite, the leases this process holds on the file's tasks ([`Held`]); on PostgreSQL
    /// leases are written to the table.
    held: Option<Arc<Held>>,
}

/// The leases this process holds on the tasks of a SQLite file: one per file in the process,
/// shared by every queue on it. A host process holds the file alone (`PATH.lock`, see
/// `store::lock`), so no other process leases its tasks, and a lease need not be written: a
/// leased task stays `pending` in the table while this process holds it, and the lease is
/// this process's memory. A lease call is a read, outside the turn to write; the task is
/// written once, when it ends (or is retried, or deferred). If the process dies, its leases go
/// with it, and its tasks, still `pending`, run again as soon as a host starts on the file.
///
/// A lease written to the table cost each task an update of its row and five index entries
/// (to `active` and back), in the one turn to write every worker and API request waits for.
/// Measured on `codeai bench throughput` (BENCHMARKS.md, session 22): the turn was held 90 % of
/// the time, half of it by the queue's leases and finishes.
#[derive(Default)]
struct Held {
    tasks: std::sync::Mutex<HashMap<Uuid, HeldTask>>,
    /// A lease call (its read and its hold), the moves of pending tasks by others (a cancel, a
    /// deleted job's tasks, fires taken back), and the tasks let go by a retry, a deferral, a
    /// release or an expiry take turns, so that none acts on what another has changed since it
    /// read. Taken after the turn to write where both are taken ([`SqlQueue::turn_and_moves`]).
    moves: tokio::sync::Mutex<()>,
}

/// A lease this process holds on a SQLite file's task.
struct HeldTask {
    queue: String,
    tenant: String,
    job_id: String,
    owner: String,
    expires: DateTime<Utc>,
}

impl Held {
    /// The leases of `db`'s file in this process; `None` for PostgreSQL.
    fn of(db: &Database) -> Option<Arc<Held>> {
        static HELD: PerFile<Held> = PerFile::new();
        // An in-memory database's name is no file's: its leases are written to the table.
        if db.sqlite_in_memory() {
            return None;
        }
        db.sqlite_file().map(|file| HELD.of(&file))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, HeldTask>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The ids held, as a JSON array (for `json_each`).
    fn ids_json(&self) -> String {
        let tasks = self.lock();
        let ids: Vec<String> = tasks.keys().map(Uuid::to_string).collect();
        serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into())
    }

    /// The jobs of the tasks held, as a JSON array (for `json_each`).
    fn jobs_json(&self) -> String {
        let tasks = self.lock();
        let jobs: BTreeSet<&str> = tasks.values().map(|t| t.job_id.as_str()).collect();
        serde_json::to_string(&jobs).unwrap_or_else(|_| "[]".into())
    }

    fn contains(&self, id: &Uuid) -> bool {
        self.lock().contains_key(id)
    }

    fn let_go(&self, ids: impl IntoIterator<Item = Uuid>) {
        let mut tasks = self.lock();
        for id in ids {
            tasks.remove(&id);
        }
    }
}

/// A run request to enqueue: its record's statement and its task (its id set), and who waits
/// for them.
struct Run {
    record: Stmt,
    task: NewTask,
    done: oneshot::Sender<Result<bool, String>>,
}

/// Run requests written in one transaction at most.
const RUNS_PER_TRANSACTION: usize = 256;

/// Writes the run requests that arrive, all those waiting in one transaction, in this process's
/// turn to write: a flood of requests takes one turn at a time, as the workers' lease and
/// record writes do, instead of one turn per request (measured: the workers kept 13 % of their
/// throughput under a flood of `POST /jobs/{id}/run` with a turn per request).
///
/// The transaction is three statements however many requests it holds: their records as one
/// `INSERT` of many rows ([`merge_rows`]; one by one when they are not of one shape), the next
/// turn of each queue and tenant, and their tasks as one `INSERT … RETURNING id`, which says
/// which were new. Two statements a request (each task's turn found by four index lookups in its
/// own `INSERT`) cost the workers 6–8 more points of their throughput under a flood
/// (BENCHMARKS.md). A transaction that fails is written again one request at a time, so one bad
/// request fails alone.
async fn write_runs(
    db: Database,
    gate: WriteGate,
    held: Option<Arc<Held>>,
    mut rx: mpsc::UnboundedReceiver<Run>,
) {
    while let Some(first) = rx.recv().await {
        let mut runs = vec![first];
        while runs.len() < RUNS_PER_TRANSACTION {
            match rx.try_recv() {
                Ok(run) => runs.push(run),
                Err(_) => break,
            }
        }
        let turn = gate.turn().await;
        match write_together(&db, held.as_deref(), &runs).await {
            Ok(new) => {
                for run in runs {
                    let id = run.task.id.map(|id| id.to_string()).unwrap_or_default();
                    let _ = run.done.send(Ok(new.contains(&id)));
                }
            }
            Err(_) => {
                for run in runs {
                    let stmts = [
                        run.record,
                        insert_one(db.dialect(), held.as_deref(), &run.task),
                    ];
                    let written = rows::execute_each(&db, &stmts)
                        .await
                        .map(|changed| changed.last() == Some(&1))
                        .map_err(|e| format!("{:#}", failed(e)));
                    let _ = run.done.send(written);
                }
            }
        }
        drop(turn);
    }
}

/// The records and tasks of `runs` in one transaction (see [`write_runs`]); the ids of the tasks
/// that were new.
async fn write_together(
    db: &Database,
    held: Option<&Held>,
    runs: &[Run],
) -> anyhow::Result<HashSet<String>> {
    let records = match merge_rows(runs.iter().map(|r| &r.record)) {
        Some(merged) => vec![merged],
        None => runs.iter().map(|r| r.record.clone()).collect(),
    };
    let tasks: Vec<&NewTask> = runs.iter().map(|r| &r.task).collect();
    let turns = next_turns(db, held, &tasks).await?;
    let insert = insert_many(&tasks, turns, " RETURNING id");
    let new: Vec<(String,)> = rows::execute_then_fetch(db, &records, &insert)
        .await
        .map_err(failed)?;
    Ok(new.into_iter().map(|(id,)| id).collect())
}

/// The next turn of each (queue, tenant) of `tasks`, in one query.
async fn next_turns<'a>(
    db: &Database,
    held: Option<&Held>,
    tasks: &[&'a NewTask],
) -> anyhow::Result<HashMap<(&'a str, &'a str), i64>> {
    let mut lanes: Vec<(&str, &str)> = Vec::new();
    for t in tasks {
        if !lanes.contains(&(t.queue.as_str(), t.tenant.as_str())) {
            lanes.push((&t.queue, &t.tenant));
        }
    }
    let turn = next_turn(db.dialect(), "?", "?", held.is_some());
    let held_ids = held.map(Held::ids_json);
    let mut sql = String::new();
    let mut params = Vec::new();
    for (i, (queue, tenant)) in lanes.iter().enumerate() {
        if i > 0 {
            sql.push_str(" UNION ALL ");
        }
        sql.push_str(&format!("SELECT ?, {turn}"));
        params.push(Param::Int(i as i64));
        params.extend(turn_params(held_ids.as_deref(), queue, tenant));
    }
    let turns: Vec<(i64, i64)> = rows::fetch_as(db, &stmt(&sql, params))
        .await
        .map_err(failed)?;
    Ok(turns
        .into_iter()
        .filter_map(|(i, turn)| Some((*lanes.get(usize::try_from(i).ok()?)?, turn)))
        .collect())
}

/// The statement that enqueues one task, with its turn.
fn insert_one(dialect: Dialect, held: Option<&Held>, t: &NewTask) -> Stmt {
    let id = t.id.unwrap_or_else(super::new_task_id);
    let mut params = task_values(t, id, Utc::now());
    params.extend(turn_params(
        held.map(Held::ids_json).as_deref(),
        &t.queue,
        &t.tenant,
    ));
    stmt(
        &format!(
            "INSERT INTO tasks ({TASK_COLUMNS}, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, \
             ?, ?, ?, ?, ?, ?, ?, {}) ON CONFLICT DO NOTHING",
            next_turn(dialect, "?", "?", held.is_some())
        ),
        params,
    )
}

/// The insert of `tasks` in one statement, each with its id (or a new one), its turn from
/// `turns` (the next turn of each queue and tenant, [`next_turns`]: the tasks of one tenant in one
/// queue take consecutive turns from it) and `ON CONFLICT DO NOTHING`, then `returning`.
fn insert_many<'a>(
    tasks: &[&'a NewTask],
    mut turns: HashMap<(&'a str, &'a str), i64>,
    returning: &str,
) -> Stmt {
    let now = Utc::now();
    let mut s = Stmt::default();
    s.sql(format!("INSERT INTO tasks ({TASK_COLUMNS}, turn) VALUES "));
    for (i, t) in tasks.iter().enumerate() {
        let mut values = task_values(t, t.id.unwrap_or_else(super::new_task_id), now);
        let turn = turns
            .get_mut(&(t.queue.as_str(), t.tenant.as_str()))
            .map_or(0, |next| {
                *next += 1;
                *next - 1
            });
        values.push(Param::Int(turn));
        s.row(i == 0, values);
    }
    s.sql(format!(" ON CONFLICT DO NOTHING{returning}"));
    s
}

fn text(s: impl Into<String>) -> Param {
    Param::Text(s.into())
}

fn failed(e: sqlx::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("queue")
}

/// A leased task's columns, as `claim_batch` returns them: the task's, then whether its job's
/// tasks may not overlap, its turn and when it was enqueued.
type ClaimedRow = (
    String,
    String,
    String,
    String,
    Option<i64>,
    String,
    String,
    String,
    Option<DateTime<Utc>>,
    i64,
    i64,
    bool,
    i64,
    DateTime<Utc>,
);

impl SqlQueue {
    pub fn new(db: Database) -> SqlQueue {
        SqlQueue {
            gate: WriteGate::of(&db),
            held: Held::of(&db),
            db: db.own_pool(4),
            runs: OnceLock::new(),
        }
    }

    /// This process's turn to write, then, where it holds the leases, the turn of moves against
    /// lease calls ([`Held::moves`]): a task let go is not left out by a move that read the ids
    /// held before. Always in this order (a lease call takes only the second), so a lease call
    /// never waits behind the turn to write.
    async fn turn_and_moves(
        &self,
    ) -> (
        Option<tokio::sync::MutexGuard<'_, ()>>,
        Option<tokio::sync::MutexGuard<'_, ()>>,
    ) {
        let turn = self.gate.turn().await;
        let moves = match &self.held {
            Some(held) => Some(held.moves.lock().await),
            None => None,
        };
        (turn, moves)
    }

    /// A statement, the caller holding the turn to write ([`SqlQueue::turn_and_moves`]).
    async fn execute_taken(&self, sql: &str, params: Vec<Param>) -> anyhow::Result<u64> {
        rows::execute(&self.db, &stmt(sql, params))
            .await
            .map_err(failed)
    }

    /// A condition (after `AND`) that leaves out the tasks this process holds ([`Held`]), with
    /// its parameters; nothing where leases are written to the table.
    fn not_held(&self) -> (&'static str, Vec<Param>) {
        match &self.held {
            Some(held) => (
                " AND id NOT IN (SELECT value FROM json_each(?))",
                vec![text(held.ids_json())],
            ),
            None => ("", Vec::new()),
        }
    }

    /// Runs `write` in this process's turn to write the database.
    async fn in_turn<T>(&self, write: impl std::future::Future<Output = T>) -> T {
        let _turn = self.gate.turn().await;
        write.await
    }

    async fn execute(&self, sql: &str, params: Vec<Param>) -> anyhow::Result<u64> {
        self.in_turn(rows::execute(&self.db, &stmt(sql, params)))
            .await
            .map_err(failed)
    }

    /// The next turn of the task an `UPDATE` of `tasks` changes, in its queue for its tenant.
    /// With its parameters: the ids this process holds ([`Held`]), twice, if it holds the leases.
    fn row_next_turn(&self) -> (String, Vec<Param>) {
        let sql = next_turn(
            self.db.dialect(),
            "tasks.queue",
            "tasks.tenant_id",
            self.held.is_some(),
        );
        let ids = self.held.as_ref().map(|h| h.ids_json());
        (
            sql,
            ids.into_iter()
                .flat_map(|ids| [text(&ids), text(ids)])
                .collect(),
        )
    }

    /// Leases up to `n` runnable tasks of one queue with the lowest turns (the oldest among
    /// equals), in one `UPDATE … RETURNING`; in turn order. A job whose tasks may not overlap
    /// (`exclusive`) gets at most one: its other tasks the statement took are put back, in their
    /// place, by a second statement (only then). The caller holds the turn to write. Where this
    /// process holds the leases ([`Held`]), [`SqlQueue::hold_batch`] instead (no turn).
    ///
    /// `before` (a round's finishes) is written first, in the lease's transaction; if that
    /// transaction fails, `before` is written again alone, so a lease that keeps failing does
    /// not hold it back, and the lease's error is returned.
    async fn claim_batch(
        &self,
        queue: &str,
        n: usize,
        claim: &Claim<'_>,
        before: &[Stmt],
    ) -> anyhow::Result<Vec<Task>> {
        if let Some(held) = &self.held {
            return self.hold_batch(held, queue, n, claim).await;
        }
        // SQLite finds each task the walk chose by its row number, not by a search of the
        // index on `id` first.
        let (key, lock, free) = match self.db.dialect() {
            Dialect::Sqlite => ("rowid", "", "0"),
            Dialect::Postgres => ("id", " FOR UPDATE SKIP LOCKED", "FALSE"),
        };
        let sql = format!(
            "UPDATE tasks SET state = 'active', attempt = attempt + 1, lease_owner = ?, \
             lease_expires_at = ?, updated_at = ? \
             WHERE {key} IN (SELECT t.{key} FROM tasks t WHERE t.state = 'pending' AND t.queue = ? \
             AND t.run_after <= ? AND (t.exclusive = {free} OR NOT EXISTS \
             (SELECT 1 FROM tasks a WHERE a.job_id = t.job_id AND a.state = 'active')) \
             ORDER BY t.turn, t.created_at LIMIT ?{lock}) \
             RETURNING id, tenant_id, job_id, job_name, job_version, queue, trigger, input, \
             fire_at, attempt, max_attempts, exclusive, turn, created_at"
        );
        let s = stmt(
            &sql,
            vec![
                text(claim.lease.owner),
                Param::DateTime(claim.lease.until()),
                Param::DateTime(claim.lease.now),
                text(queue),
                Param::DateTime(claim.lease.now),
                Param::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            ],
        );
        let mut rows: Vec<ClaimedRow> = if before.is_empty() {
            rows::fetch_as(&self.db, &s).await.map_err(failed)?
        } else {
            match rows::execute_then_fetch(&self.db, before, &s).await {
                Ok(rows) => rows,
                Err(e) => {
                    let lease = failed(e);
                    rows::execute_all(&self.db, before).await.map_err(|e| {
                        tracing::warn!("lease failed: {lease:#}");
                        failed(e)
                    })?;
                    return Err(lease);
                }
            }
        };
        rows.sort_by_key(|r| (r.12, r.13));
        let mut exclusive_jobs = HashSet::new();
        let mut tasks = Vec::with_capacity(rows.len());
        let mut back = Vec::new();
        for row in rows {
            let id =
                Uuid::parse_str(&row.0).map_err(|e| anyhow::anyhow!("task id `{}`: {e}", row.0))?;
            if row.11 && !exclusive_jobs.insert(row.2.clone()) {
                back.push(id);
                continue;
            }
            tasks.push(claimed_task(id, row));
        }
        for s in release_stmts(&back) {
            rows::execute(&self.db, &s).await.map_err(failed)?;
        }
        Ok(tasks)
    }

    /// [`SqlQueue::claim_batch`] where this process holds the leases ([`Held`]): the runnable
    /// tasks of `queue` it does not hold yet, read (no write, no turn to write), then held. Their
    /// attempt is the one they start (the table's count, of attempts that ended, plus one). A
    /// job whose tasks may not overlap gets one only while this process holds none of its tasks
    /// (and none is `active` in the table: leased by a host before this kind of lease); the read
    /// leaves its other tasks out, so they do not take the places of runnable tasks behind them.
    async fn hold_batch(
        &self,
        held: &Held,
        queue: &str,
        n: usize,
        claim: &Claim<'_>,
    ) -> anyhow::Result<Vec<Task>> {
        let _moves = held.moves.lock().await;
        let s = stmt(
            "SELECT id, tenant_id, job_id, job_name, job_version, queue, trigger, input, \
             fire_at, attempt + 1, max_attempts, exclusive, turn, created_at FROM tasks t \
             WHERE t.state = 'pending' AND t.queue = ? AND t.run_after <= ? \
             AND (t.exclusive = 0 OR (t.job_id NOT IN (SELECT value FROM json_each(?)) \
             AND NOT EXISTS \
             (SELECT 1 FROM tasks a WHERE a.job_id = t.job_id AND a.state = 'active'))) \
             AND t.id NOT IN (SELECT value FROM json_each(?)) \
             ORDER BY t.turn, t.created_at LIMIT ?",
            vec![
                text(queue),
                Param::DateTime(claim.lease.now),
                text(held.jobs_json()),
                text(held.ids_json()),
                Param::Int(i64::try_from(n).unwrap_or(i64::MAX)),
            ],
        );
        let rows: Vec<ClaimedRow> = rows::fetch_as(&self.db, &s).await.map_err(failed)?;
        let mut tasks = held.lock();
        // The query left out the no-overlap tasks of jobs held already (nothing is held
        // meanwhile: `moves` is ours); of those it read, one per job.
        let mut jobs: HashSet<String> = HashSet::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id =
                Uuid::parse_str(&row.0).map_err(|e| anyhow::anyhow!("task id `{}`: {e}", row.0))?;
            if !jobs.insert(row.2.clone()) && row.11 {
                continue;
            }
            tasks.insert(
                id,
                HeldTask {
                    queue: row.5.clone(),
                    tenant: row.1.clone(),
                    job_id: row.2.clone(),
                    owner: claim.lease.owner.to_string(),
                    expires: claim.lease.until(),
                },
            );
            out.push(claimed_task(id, row));
        }
        Ok(out)
    }

    /// Puts active tasks back to `pending` at once, their attempt given back, in their place.
    async fn release_many(&self, ids: &[Uuid]) -> anyhow::Result<()> {
        if let Some(held) = &self.held {
            // Still `pending` in the table, with the attempts that ended.
            let _moves = held.moves.lock().await;
            held.let_go(ids.iter().copied());
            return Ok(());
        }
        for s in release_stmts(ids) {
            self.in_turn(rows::execute(&self.db, &s))
                .await
                .map_err(failed)?;
        }
        Ok(())
    }
}

/// The task a lease call read, with its id.
fn claimed_task(id: Uuid, row: ClaimedRow) -> Task {
    Task {
        id,
        tenant: row.1,
        job_id: row.2,
        job_name: row.3,
        job_version: row.4,
        queue: row.5,
        trigger: row.6,
        input: row.7,
        fire_at: row.8,
        attempt: row.9,
        max_attempts: row.10,
    }
}

/// The statements that put active tasks back to `pending`, their attempt given back, in their
/// place: one per 500.
fn release_stmts(ids: &[Uuid]) -> Vec<Stmt> {
    ids.chunks(500)
        .map(|chunk| {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut params = vec![Param::DateTime(Utc::now())];
            params.extend(chunk.iter().map(|id| text(id.to_string())));
            stmt(
                &format!(
                    "UPDATE tasks SET state = 'pending', attempt = attempt - 1, \
                     lease_owner = NULL, lease_expires_at = NULL, updated_at = ? \
                     WHERE state = 'active' AND id IN ({marks})"
                ),
                params,
            )
        })
        .collect()
}

#[async_trait::async_trait]
impl QueueBackend for SqlQueue {
    /// One statement: the task and its turn.
    async fn enqueue(&self, t: &NewTask) -> anyhow::Result<bool> {
        let n = self
            .in_turn(rows::execute(
                &self.db,
                &insert_one(self.db.dialect(), self.held.as_deref(), t),
            ))
            .await
            .map_err(failed)?;
        Ok(n == 1)
    }

    /// The record and the task in one transaction (the queue is in the platform's database); on
    /// SQLite with the other run requests waiting ([`write_runs`]).
    async fn enqueue_recorded(
        &self,
        t: &NewTask,
        _db: &Database,
        record: &Stmt,
    ) -> anyhow::Result<bool> {
        if self.db.dialect() == Dialect::Sqlite {
            let runs = self.runs.get_or_init(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(write_runs(
                    self.db.clone(),
                    self.gate.clone(),
                    self.held.clone(),
                    rx,
                ));
                tx
            });
            let (done, wait) = oneshot::channel();
            let run = Run {
                record: record.clone(),
                task: NewTask {
                    id: Some(t.id.unwrap_or_else(super::new_task_id)),
                    ..t.clone()
                },
                done,
            };
            if runs.send(run).is_ok() {
                return match wait.await {
                    Ok(written) => written.map_err(anyhow::Error::msg),
                    Err(_) => Err(anyhow::anyhow!("queue: the run writer stopped")),
                };
            }
        }
        let changed = self
            .in_turn(rows::execute_each(
                &self.db,
                &[
                    record.clone(),
                    insert_one(self.db.dialect(), self.held.as_deref(), t),
                ],
            ))
            .await
            .map_err(failed)?;
        Ok(changed.last() == Some(&1))
    }

    /// One statement per 500 tasks, and one query for their turns.
    async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64> {
        let mut n = 0;
        for chunk in tasks.chunks(500) {
            let chunk: Vec<&NewTask> = chunk.iter().collect();
            let turns = next_turns(&self.db, self.held.as_deref(), &chunk).await?;
            let s = insert_many(&chunk, turns, "");
            n += self
                .in_turn(rows::execute(&self.db, &s))
                .await
                .map_err(failed)?;
        }
        Ok(n)
    }

    /// The finishes (one statement per 512), then the leases: one `UPDATE … RETURNING` per
    /// queue the picker chooses from. The finishes are written in the first lease's
    /// transaction (alone when no lease is asked for, or when that transaction fails: see
    /// [`SqlQueue::claim_batch`]): one commit fewer a round, +4.3 % no-op jobs/s on SQLite at
    /// the median of 14 pairs (BENCHMARKS.md, session 21). The picker's `n` choices are played
    /// ahead as if no queue were empty, each queue's share leased at once, and the choices
    /// played again on what came back: a queue that gave fewer than its share is empty from
    /// where it ran out, and if that moved choices to a queue whose share is used up, that
    /// queue is asked again. An error after some tasks were leased returns those.
    ///
    /// Where this process holds the leases ([`Held`], SQLite), the finishes (of the tasks it
    /// still holds) are a turn to write of their own and the leases are reads; otherwise:
    ///
    /// All in one turn to write: a worker's round (its finishes, then a lease from each queue
    /// the picker chooses, several when some are empty) waits for the file once, not once per
    /// statement behind every other writer of it. Measured on SQLite under a flood of
    /// `POST /jobs/{id}/run` (`api_load`): the workers kept 41–69 % (median 49 %) of their
    /// throughput with a turn per statement, 65–91 % (median 81 %) with one turn a round
    /// (BENCHMARKS.md).
    async fn finish_and_claim(
        &self,
        done: &[Finished],
        claim: &Claim<'_>,
    ) -> anyhow::Result<Claimed> {
        // Where this process holds the leases ([`Held`]), only the tasks it still holds: one whose
        // lease ran out may be another's now, or dead and run again.
        let held_done: Vec<Finished>;
        let done = match &self.held {
            Some(held) => {
                held_done = done
                    .iter()
                    .filter(|d| held.contains(&d.id))
                    .cloned()
                    .collect();
                &held_done[..]
            }
            None => done,
        };
        let held = self.held.is_some();
        let mut finishes: Vec<Stmt> = done.chunks(512).map(|d| finish_stmt(d, held)).collect();
        if let Some(held) = &self.held {
            // The finishes in a turn to write of their own; the leases are read ([`Held`]).
            if !finishes.is_empty() {
                let turn = self.gate.turn().await;
                rows::execute_all(&self.db, &std::mem::take(&mut finishes))
                    .await
                    .map_err(failed)?;
                drop(turn);
                held.let_go(done.iter().map(|d| d.id));
            }
        }
        let _turn = match held {
            true => None,
            false => self.gate.turn().await,
        };
        let mut picker = Picker::resume(claim.queues.to_vec(), claim.strict);
        let mut out = Claimed::default();
        // Tasks leased from each queue and not handed out yet, and the queues that gave fewer
        // than they were asked for.
        let mut leased: HashMap<String, VecDeque<Task>> = HashMap::new();
        let mut short: HashSet<String> = HashSet::new();
        'rounds: while out.tasks.len() < claim.n {
            // Each queue's share of the remaining choices, in the order they come.
            let mut ahead = picker.clone();
            let mut shares: Vec<(String, usize)> = Vec::new();
            for _ in out.tasks.len()..claim.n {
                let Some(queue) = ahead.peek(&out.empties) else {
                    break;
                };
                ahead.served(&queue, &out.empties);
                match shares.iter_mut().find(|(q, _)| *q == queue) {
                    Some((_, k)) => *k += 1,
                    None => shares.push((queue, 1)),
                }
            }
            if shares.is_empty() {
                break;
            }
            for (queue, share) in shares {
                let have = leased.get(&queue).map_or(0, VecDeque::len);
                if have >= share || short.contains(&queue) {
                    continue;
                }
                let before = std::mem::take(&mut finishes);
                match self.claim_batch(&queue, share - have, claim, &before).await {
                    Ok(tasks) => {
                        if tasks.len() < share - have {
                            short.insert(queue.clone());
                        }
                        leased.entry(queue).or_default().extend(tasks);
                    }
                    Err(e) if out.tasks.is_empty() && leased.values().all(VecDeque::is_empty) => {
                        return Err(e)
                    }
                    Err(e) => {
                        tracing::warn!("dequeue failed: {e:#}");
                        break 'rounds;
                    }
                }
            }
            // The choices again, on what the queues gave.
            while out.tasks.len() < claim.n {
                let Some(queue) = picker.peek(&out.empties) else {
                    break 'rounds;
                };
                match leased.get_mut(&queue).and_then(VecDeque::pop_front) {
                    Some(task) => {
                        picker.served(&queue, &out.empties);
                        out.tasks.push(Leased {
                            before: out.empties.len(),
                            queue,
                            task,
                        });
                    }
                    None if short.contains(&queue) => out.empties.push(queue),
                    // Its share is used up: another round asks it for more.
                    None => continue 'rounds,
                }
            }
        }
        if !finishes.is_empty() {
            rows::execute_all(&self.db, &finishes)
                .await
                .map_err(failed)?;
        }
        // What was leased and not handed out (only after an error) goes with the rest.
        for (queue, tasks) in leased {
            for task in tasks {
                out.tasks.push(Leased {
                    before: out.empties.len(),
                    queue: queue.clone(),
                    task,
                });
            }
        }
        Ok(out)
    }

    async fn heartbeat(&self, ids: &[Uuid], lease: &Lease<'_>) -> anyhow::Result<u64> {
        if let Some(held) = &self.held {
            let mut tasks = held.lock();
            let mut n = 0;
            for id in ids {
                if let Some(t) = tasks.get_mut(id).filter(|t| t.owner == lease.owner) {
                    t.expires = lease.until();
                    n += 1;
                }
            }
            return Ok(n);
        }
        let mut n = 0;
        for chunk in ids.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut params = vec![
                Param::DateTime(lease.until()),
                Param::DateTime(lease.now),
                text(lease.owner),
            ];
            params.extend(chunk.iter().map(|id| text(id.to_string())));
            n += self
                .execute(
                    &format!(
                        "UPDATE tasks SET lease_expires_at = ?, updated_at = ? \
                         WHERE state = 'active' AND lease_owner = ? AND id IN ({marks})"
                    ),
                    params,
                )
                .await?;
        }
        Ok(n)
    }

    async fn finish(&self, done: &Finished) -> anyhow::Result<()> {
        if self.held.as_ref().is_some_and(|h| !h.contains(&done.id)) {
            return Ok(()); // its lease ran out: another's now, or dead and run again
        }
        self.in_turn(rows::execute(
            &self.db,
            &finish_stmt(std::slice::from_ref(done), self.held.is_some()),
        ))
        .await
        .map(drop)
        .map_err(failed)?;
        if let Some(held) = &self.held {
            held.let_go([done.id]);
        }
        Ok(())
    }

    async fn retry(&self, id: Uuid, run_after: DateTime<Utc>, error: &str) -> anyhow::Result<()> {
        let _turns = self.turn_and_moves().await;
        // A lease held in memory ([`Held`]) did not count the attempt that failed.
        let counted = match self.held {
            Some(_) => "attempt = attempt + 1, ",
            None => "",
        };
        let (turn, turn_params) = self.row_next_turn();
        let mut params = vec![
            Param::DateTime(run_after),
            text(error),
            Param::DateTime(Utc::now()),
        ];
        params.extend(turn_params);
        params.push(text(id.to_string()));
        self.execute_taken(
            &format!(
                "UPDATE tasks SET state = 'pending', {counted}run_after = ?, last_error = ?, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, turn = {turn} \
                 WHERE id = ?"
            ),
            params,
        )
        .await?;
        if let Some(held) = &self.held {
            held.let_go([id]);
        }
        Ok(())
    }

    async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()> {
        let _turns = self.turn_and_moves().await;
        // A lease held in memory ([`Held`]) left the task `pending`, its attempt not counted.
        let (attempt, state) = match self.held {
            Some(_) => ("", "pending"),
            None => ("attempt = attempt - 1, ", "active"),
        };
        let (turn, turn_params) = self.row_next_turn();
        let mut params = vec![Param::DateTime(run_after), Param::DateTime(Utc::now())];
        params.extend(turn_params);
        params.push(text(id.to_string()));
        self.execute_taken(
            &format!(
                "UPDATE tasks SET state = 'pending', {attempt}run_after = ?, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, turn = {turn} \
                 WHERE id = ? AND state = '{state}'"
            ),
            params,
        )
        .await?;
        if let Some(held) = &self.held {
            held.let_go([id]);
        }
        Ok(())
    }

    async fn release(&self, id: Uuid) -> anyhow::Result<()> {
        self.release_many(&[id]).await
    }

    async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let (turn, turn_params) = self.row_next_turn();
        let mut params = vec![Param::DateTime(now), Param::DateTime(now)];
        params.extend(turn_params);
        params.push(text(id.to_string()));
        let n = self
            .execute(
                &format!(
                    "UPDATE tasks SET state = 'pending', attempt = 0, outcome = NULL, \
                     run_after = ?, trigger = 'retry', updated_at = ?, turn = {turn} \
                     WHERE id = ? AND state = 'dead'"
                ),
                params,
            )
            .await?;
        Ok(n == 1)
    }

    async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool> {
        let _turns = self.turn_and_moves().await;
        if self.held.as_ref().is_some_and(|h| h.contains(&id)) {
            return Ok(false); // leased: running, or about to
        }
        let n = self
            .execute_taken(
                "UPDATE tasks SET state = 'dead', outcome = ?, updated_at = ? \
                 WHERE id = ? AND state = 'pending'",
                vec![
                    text(ExecutionStatus::Cancelled.as_str()),
                    Param::DateTime(Utc::now()),
                    text(id.to_string()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64> {
        // The tasks this process holds ([`Held`]) are running: they end as they would have.
        let _turns = self.turn_and_moves().await;
        let (not_held, mut params) = self.not_held();
        params.splice(
            0..0,
            [
                text(ExecutionStatus::Cancelled.as_str()),
                Param::DateTime(Utc::now()),
                text(job_id),
            ],
        );
        self.execute_taken(
            &format!(
                "UPDATE tasks SET state = 'dead', outcome = ?, last_error = 'job deleted', \
                 updated_at = ? WHERE job_id = ? AND state = 'pending'{not_held}"
            ),
            params,
        )
        .await
    }

    async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        // Leases held in memory whose holder stopped extending them: let go, the task is
        // runnable again (still `pending`, its attempt not counted).
        let mut rescued = 0;
        if let Some(held) = &self.held {
            let _moves = held.moves.lock().await;
            let mut tasks = held.lock();
            let before = tasks.len();
            tasks.retain(|_, t| t.expires >= now);
            rescued = (before - tasks.len()) as u64;
        }
        // Leases written to the table (by a host before leases were held in memory, or on
        // PostgreSQL).
        Ok(rescued + self.execute(
            "UPDATE tasks SET state = 'pending', attempt = attempt - 1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ? WHERE state = 'active' AND lease_expires_at < ?",
            vec![Param::DateTime(now), Param::DateTime(now)],
        )
        .await?)
    }

    /// Every job with a pending or active task (one query, whatever `jobs` holds).
    async fn busy_jobs(&self, _jobs: &[String]) -> anyhow::Result<HashSet<String>> {
        let busy: Vec<String> = rows::scalars(
            &self.db,
            &stmt(
                "SELECT DISTINCT job_id FROM tasks WHERE (state = 'pending' OR state = 'active')",
                vec![],
            ),
        )
        .await
        .map_err(failed)?;
        Ok(busy.into_iter().collect())
    }

    async fn busy_besides(
        &self,
        job_id: &str,
        id: Uuid,
        fire: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let other: Option<String> = rows::scalar(
            &self.db,
            &stmt(
                BUSY_BESIDES,
                vec![text(job_id), text(id.to_string()), Param::DateTime(fire)],
            ),
        )
        .await
        .map_err(failed)?;
        Ok(other.is_some())
    }

    async fn drop_fires_after(&self, job_id: &str, after: DateTime<Utc>) -> anyhow::Result<u64> {
        let _turns = self.turn_and_moves().await;
        let (not_held, mut params) = self.not_held();
        params.splice(0..0, [text(job_id), Param::DateTime(after)]);
        self.execute_taken(
            &format!(
                "DELETE FROM tasks WHERE job_id = ? AND state = 'pending' AND fire_at > ?{not_held}"
            ),
            params,
        )
        .await
    }

    async fn versions_in_use(&self, job_id: &str) -> anyhow::Result<BTreeSet<i64>> {
        let versions: Vec<Option<i64>> =
            rows::scalars(&self.db, &stmt(VERSIONS_IN_USE, vec![text(job_id)]))
                .await
                .map_err(failed)?;
        Ok(versions.into_iter().map(|v| v.unwrap_or(1)).collect())
    }

    async fn counts(
        &self,
        now: DateTime<Utc>,
        tenant: Option<&str>,
    ) -> anyhow::Result<BTreeMap<String, QueueCounts>> {
        let mut params = vec![Param::DateTime(now)];
        let filter = match tenant {
            Some(t) => {
                params.push(text(t));
                " WHERE tenant_id = ?"
            }
            None => "",
        };
        let s = stmt(
            &format!(
                "SELECT queue, state, outcome, later, COUNT(*) FROM (SELECT queue, state, outcome, \
                 CASE WHEN run_after > ? THEN 1 ELSE 0 END AS later FROM tasks{filter}) t \
                 GROUP BY queue, state, outcome, later"
            ),
            params,
        );
        let groups: Vec<(String, String, Option<String>, i32, i64)> =
            rows::fetch_as(&self.db, &s).await.map_err(failed)?;
        let mut out: BTreeMap<String, QueueCounts> = BTreeMap::new();
        // The tasks this process holds ([`Held`]) are `pending` in the table: active here.
        let mut holding: HashMap<String, u64> = HashMap::new();
        if let Some(held) = &self.held {
            for t in held.lock().values() {
                if tenant.is_none_or(|tenant| t.tenant == tenant) {
                    *holding.entry(t.queue.clone()).or_default() += 1;
                }
            }
        }
        for (queue, n) in &holding {
            let c = out.entry(queue.clone()).or_default();
            c.active += n;
        }
        for (queue, state, outcome, later, n) in groups {
            let c = out.entry(queue).or_default();
            let n = n as u64;
            match state.as_str() {
                "pending" if later == 1 => c.scheduled += n,
                "pending" => c.pending += n,
                "active" => c.active += n,
                "done" => c.completed += n,
                _ if outcome.as_deref() == Some(ExecutionStatus::Cancelled.as_str()) => {}
                _ => c.failed += n,
            }
        }
        for (queue, n) in holding {
            if let Some(c) = out.get_mut(&queue) {
                c.pending = c.pending.saturating_sub(n);
            }
        }
        Ok(out)
    }

    async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>> {
        let row = rows::fetch_one(
            &self.db,
            &stmt(
                "SELECT tenant_id, job_id, job_name, job_version, queue, trigger, input, fire_at, \
                 attempt, max_attempts, state, outcome, last_error, run_after, created_at \
                 FROM tasks WHERE id = ?",
                vec![text(id.to_string())],
            ),
        )
        .await?;
        let holding = self.held.as_ref().is_some_and(|h| h.contains(&id));
        Ok(row.map(|r| {
            let mut info = TaskInfo {
                task: Task {
                    id,
                    tenant: r.text("tenant_id").unwrap_or_default(),
                    job_id: r.text("job_id").unwrap_or_default(),
                    job_name: r.text("job_name").unwrap_or_default(),
                    job_version: r.int("job_version"),
                    queue: r.text("queue").unwrap_or_default(),
                    trigger: r.text("trigger").unwrap_or_default(),
                    input: r.text("input").unwrap_or_default(),
                    fire_at: r.time("fire_at"),
                    attempt: r.int("attempt").unwrap_or(0),
                    max_attempts: r.int("max_attempts").unwrap_or(1),
                },
                state: r.text("state").unwrap_or_default(),
                outcome: r.text("outcome"),
                last_error: r.text("last_error"),
                run_after: r.time("run_after"),
                created_at: r.time("created_at"),
            };
            // Held in memory ([`Held`]): `pending` in the table, its attempt not counted yet.
            if holding && info.state == "pending" {
                info.state = "active".into();
                info.task.attempt += 1;
            }
            info
        }))
    }

    /// One host process runs everything on the SQL queue: there is no other to ask.
    async fn signal_cancel(&self, _id: Uuid) -> anyhow::Result<bool> {
        Ok(false)
    }

    async fn cluster_slots(&self) -> anyhow::Result<Option<(usize, usize)>> {
        Ok(None)
    }
}

/// A job's other waiting or running task, older than a fire. The states are written as an `OR`,
/// as `tasks_job_state_idx`'s condition is: SQLite's planner takes a partial index only for a
/// condition it can match to the index's, and `state IN ('pending', 'active')` it does not (it
/// would walk the waiting and running tasks of every job instead).
pub(crate) const BUSY_BESIDES: &str = "SELECT id FROM tasks WHERE job_id = ? \
     AND (state = 'pending' OR state = 'active') AND id <> ? \
     AND (fire_at IS NULL OR fire_at < ?) LIMIT 1";

/// The versions of a job its waiting and running tasks run (see [`BUSY_BESIDES`]).
pub(crate) const VERSIONS_IN_USE: &str = "SELECT DISTINCT job_version FROM tasks \
     WHERE job_id = ? AND (state = 'pending' OR state = 'active')";

/// The columns of a new task, in the order of [`task_values`].
const TASK_COLUMNS: &str = "id, tenant_id, job_id, job_name, job_version, queue, state, trigger, \
    input, fire_at, run_after, attempt, max_attempts, exclusive, created_at, updated_at";

/// A new task's values for [`TASK_COLUMNS`].
fn task_values(t: &NewTask, id: Uuid, now: DateTime<Utc>) -> Vec<Param> {
    vec![
        text(id.to_string()),
        text(&t.tenant),
        text(&t.job_id),
        text(&t.job_name),
        t.job_version
            .map_or(Param::Null(FieldType::Int), Param::Int),
        text(&t.queue),
        text("pending"),
        text(&t.trigger),
        text(&t.input),
        t.fire_at
            .map_or(Param::Null(FieldType::Datetime), Param::DateTime),
        Param::DateTime(t.run_after),
        Param::Int(0),
        Param::Int(t.max_attempts.max(1)),
        Param::Bool(t.exclusive),
        Param::DateTime(now),
        Param::DateTime(now),
    ]
}

/// The SQL expression of the turn a new task of tenant `tenant` in queue `queue` takes (both
/// SQL: `?` placeholders, or columns of the row an `UPDATE` changes): one after the tenant's
/// last waiting task in that queue, and not before the queue's current turn — the highest turn
/// leased (active or done) or the lowest waiting, whichever is later. A tenant that had nothing
/// waiting joins the current turn, so it comes next within one turn; a tenant that has waited
/// long has no credit saved up. Each part is one step down an index: `tasks_ready_idx` (state,
/// queue, turn) and `tasks_lane_idx` (the waiting tasks by queue, tenant and turn). With `?`
/// placeholders it binds `queue` three times, the ids `held` (if any), `queue`, `tenant` and the
/// ids `held` again ([`turn_params`]); with columns, the ids `held` twice. Dead tasks are left
/// out: a cancelled flood's turns were never leased. Where this process holds the leases
/// ([`Held`]), the tasks it holds count neither as waiting nor as leased (`held`): a leased task
/// is `pending` in the table, and the highest turn leased is no longer there to read. What that
/// changes: a tenant joins at the lowest turn still waiting, which may be below a turn leased
/// ahead of it (a task that may not overlap, or not runnable yet, was passed over).
fn next_turn(dialect: Dialect, queue: &str, tenant: &str, held: bool) -> String {
    let greatest = match dialect {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    // The tasks this process holds ([`Held`]) are `pending` in the table, but not waiting.
    let waiting = match held {
        true => " AND x.id NOT IN (SELECT value FROM json_each(?))",
        false => "",
    };
    format!(
        "{greatest}(\
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'active' AND x.queue = {queue} \
         ORDER BY x.turn DESC LIMIT 1), 0), \
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'done' AND x.queue = {queue} \
         ORDER BY x.turn DESC LIMIT 1), 0), \
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'pending' AND x.queue = {queue}\
         {waiting} ORDER BY x.turn LIMIT 1), 0), \
         COALESCE((SELECT x.turn + 1 FROM tasks x WHERE x.state = 'pending' AND \
         x.queue = {queue} AND x.tenant_id = {tenant}{waiting} ORDER BY x.turn DESC LIMIT 1), 0))"
    )
}

/// The parameters of [`next_turn`] with `?` placeholders: `queue` three times, the held ids
/// (a JSON array, [`Held::ids_json`], if any), `queue`, `tenant` and the held ids again.
fn turn_params(held_ids: Option<&str>, queue: &str, tenant: &str) -> Vec<Param> {
    let mut params = vec![text(queue), text(queue), text(queue)];
    params.extend(held_ids.map(text));
    params.extend([text(queue), text(tenant)]);
    params.extend(held_ids.map(text));
    params
}

/// The update that finishes active tasks (held ones: [`Held`]), each `done` when it completed
/// or was skipped, else `dead`.
fn finish_stmt(done: &[Finished], held: bool) -> Stmt {
    let mut s = Stmt::default();
    s.sql("WITH v (id, state, outcome, error) AS (VALUES ");
    for (i, d) in done.iter().enumerate() {
        let ended_well = d
            .outcome
            .parse::<ExecutionStatus>()
            .is_ok_and(ExecutionStatus::is_success);
        s.row(
            i == 0,
            [
                text(d.id.to_string()),
                text(if ended_well { "done" } else { "dead" }),
                text(d.outcome),
                d.error
                    .as_deref()
                    .map_or(Param::Null(FieldType::String), text),
            ],
        );
    }
    s.pad_rows(done.len(), &[const { Param::Null(FieldType::String) }; 4]);
    s.sql(
        ") UPDATE tasks SET state = v.state, outcome = v.outcome, last_error = v.error, \
         lease_owner = NULL, lease_expires_at = NULL, updated_at = ",
    );
    s.bind(Param::DateTime(Utc::now()));
    // A lease held in memory ([`Held`]) left the task `pending`, its attempt not counted yet.
    s.sql(match held {
        true => ", attempt = attempt + 1 FROM v WHERE tasks.id = v.id AND tasks.state = 'pending'",
        false => " FROM v WHERE tasks.id = v.id AND tasks.state = 'active'",
    });
    s
}
