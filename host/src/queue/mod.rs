//! The durable task queue: the `tasks` table in the platform's database (the embedded default,
//! SQLite; PostgreSQL works too, with `FOR UPDATE SKIP LOCKED`) or, for scale-out, Redis
//! ([`redis`]); the rest of the host uses [`Queue`], which is either.
//!
//! - **Queues by weight** ([`Picker`]): queues are served by smooth weighted round robin over the
//!   queues that have a runnable task — critical 6 : default 3 : low 1 by default — so no queue
//!   starves and an empty queue yields its share to the others. A strict-priority mode always
//!   serves the heaviest non-empty queue first. The queues and their weights are the operator's
//!   ([`QueueConfig`], `CODEAI_QUEUES`; see `config.rs`): a job names its queue, it sets no
//!   weight.
//! - **Tenants by turns within a queue**: every tenant with waiting tasks in a queue has one
//!   task leased per turn, so one tenant's flood cannot make another tenant's task wait for it.
//!   A task enqueued behind another tenant's 10,000 is leased within the turn it joins — among
//!   the next (tenants with waiting tasks) leases of that queue — after what workers had leased
//!   already. A tenant's own tasks keep their order. On the SQL queue each task is given its
//!   turn when it is enqueued (`next_turn`): one after its tenant's last waiting task in that
//!   queue, and never before the queue's current turn; a lease takes the lowest turn (the
//!   oldest first among equals) with the same single `UPDATE … RETURNING` as before, and writes
//!   nothing more. On Redis each tenant has a list per queue and the queue a rotation of its
//!   tenants (see [`redis`]). A retry, a deferral and a dead task run again go behind their
//!   tenant's waiting tasks, as a new task would; a task put back at shutdown or rescued from
//!   an expired lease keeps its place.
//! - **Leases**: a dequeued task is `active` until its lease expires; the worker heartbeats it.
//!   [`SqlQueue::rescue_expired`] puts tasks whose lease ran out back to `pending` (their attempt
//!   given back), so a crashed worker's task runs again: at least once, never lost.
//! - **Idempotent fires**: a task for a schedule fire carries `fire_at`, unique per job, so the
//!   same fire is enqueued once however many times the scheduler tries.
//! - **Retries**: [`SqlQueue::retry`] puts a failed task back with a later `run_after`.

mod config;
mod picker;
pub mod redis;

pub use config::{
    clamp_weight, parse_weights, QueueConfig, UnknownQueue, DEFAULT_QUEUES, MAX_WEIGHT, MIN_WEIGHT,
};
pub use picker::Picker;
pub use redis::RedisQueue;

use crate::store::sql::{pg_builder, sqlite_builder, stmt, Param, Stmt};
use crate::store::{Database, Dialect};
use chrono::{DateTime, Utc};
use codeai_ir::{FieldType, Manifest};
use sqlx::Row;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// A task to enqueue.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// The execution id (a new one when `None`).
    pub id: Option<Uuid>,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub queue: String,
    /// `schedule`, `manual`, `api`, `retry`.
    pub trigger: String,
    /// A JSON object.
    pub input: String,
    /// The schedule fire it is for; at most one task per job and fire.
    pub fire_at: Option<DateTime<Utc>>,
    /// Not before this instant.
    pub run_after: DateTime<Utc>,
    pub max_attempts: i64,
    /// Waits while another task of the same job is active (overlap policy `queue`).
    pub exclusive: bool,
}

/// A leased task.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub queue: String,
    pub trigger: String,
    pub input: String,
    pub fire_at: Option<DateTime<Utc>>,
    /// This attempt's number, from 1.
    pub attempt: i64,
    pub max_attempts: i64,
}

/// A task to finish: its id, how its execution ended (`completed`, `skipped`, `failed`,
/// `cancelled`, `timed_out`, …) and the error.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub id: Uuid,
    pub outcome: &'static str,
    pub error: Option<String>,
}

/// Tasks per state of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueCounts {
    /// Runnable now.
    pub pending: u64,
    /// Waiting for their time (a later fire or a retry delay).
    pub scheduled: u64,
    pub active: u64,
    pub completed: u64,
    pub failed: u64,
}

/// The SQL-backed queue.
pub struct SqlQueue {
    db: Database,
    picker: Mutex<Picker>,
    config: QueueConfig,
    /// This process's id on the leases it takes.
    owner: String,
}

fn text(s: impl Into<String>) -> Param {
    Param::Text(s.into())
}

fn failed(e: sqlx::Error) -> anyhow::Error {
    anyhow::Error::new(e).context("queue")
}

impl SqlQueue {
    pub fn new(db: Database, config: QueueConfig) -> SqlQueue {
        let picker = Picker::new(&config.weights, config.strict);
        SqlQueue {
            db,
            picker: Mutex::new(picker),
            config,
            owner: format!("{}-{}", std::process::id(), Uuid::new_v4().simple()),
        }
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    fn lock_picker(&self) -> std::sync::MutexGuard<'_, Picker> {
        self.picker.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn execute(&self, sql: &str, params: Vec<Param>) -> anyhow::Result<u64> {
        let s = stmt(sql, params);
        Ok(match &self.db {
            Database::Sqlite(pool) => sqlite_builder(&s)
                .build()
                .execute(pool)
                .await
                .map_err(failed)?
                .rows_affected(),
            Database::Postgres(pool) => pg_builder(&s)
                .build()
                .execute(pool)
                .await
                .map_err(failed)?
                .rows_affected(),
        })
    }

    /// Enqueues a task; `None` when a task for the same job and fire exists already.
    pub async fn enqueue(&self, t: &NewTask) -> anyhow::Result<Option<Uuid>> {
        let id = t.id.unwrap_or_else(Uuid::new_v4);
        let now = Utc::now();
        let mut params = task_values(t, id, now);
        params.extend([
            text(&t.queue),
            text(&t.queue),
            text(&t.queue),
            text(&t.queue),
        ]);
        params.push(text(&t.tenant));
        let n = self
            .execute(
                &format!(
                    "INSERT INTO tasks ({TASK_COLUMNS}, turn) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, \
                     ?, ?, ?, ?, ?, ?, ?, {}) ON CONFLICT DO NOTHING",
                    next_turn(self.db.dialect(), "?", "?")
                ),
                params,
            )
            .await?;
        Ok((n == 1).then_some(id))
    }

    /// Enqueues many tasks, one statement per 500 (and one query for their turns); returns how
    /// many were new.
    pub async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64> {
        let mut n = 0;
        for chunk in tasks.chunks(500) {
            let now = Utc::now();
            // The tasks of one tenant in one queue take consecutive turns from the next one.
            let mut turns = self.next_turns(chunk).await?;
            let mut s = Stmt::default();
            s.sql(format!("INSERT INTO tasks ({TASK_COLUMNS}, turn) VALUES "));
            for (i, t) in chunk.iter().enumerate() {
                if i > 0 {
                    s.sql(", ");
                }
                let mut values = task_values(t, t.id.unwrap_or_else(Uuid::new_v4), now);
                let turn = turns
                    .get_mut(&(t.queue.as_str(), t.tenant.as_str()))
                    .map_or(0, |next| {
                        *next += 1;
                        *next - 1
                    });
                values.push(Param::Int(turn));
                s.sql("(");
                for (j, v) in values.into_iter().enumerate() {
                    if j > 0 {
                        s.sql(", ");
                    }
                    s.bind(v);
                }
                s.sql(")");
            }
            s.sql(" ON CONFLICT DO NOTHING");
            n += match &self.db {
                Database::Sqlite(pool) => sqlite_builder(&s)
                    .build()
                    .execute(pool)
                    .await
                    .map_err(failed)?
                    .rows_affected(),
                Database::Postgres(pool) => pg_builder(&s)
                    .build()
                    .execute(pool)
                    .await
                    .map_err(failed)?
                    .rows_affected(),
            };
        }
        Ok(n)
    }

    /// The next turn of each (queue, tenant) of `tasks`, in one query.
    async fn next_turns<'a>(
        &self,
        tasks: &'a [NewTask],
    ) -> anyhow::Result<HashMap<(&'a str, &'a str), i64>> {
        let mut lanes: Vec<(&str, &str)> = Vec::new();
        for t in tasks {
            if !lanes.contains(&(t.queue.as_str(), t.tenant.as_str())) {
                lanes.push((&t.queue, &t.tenant));
            }
        }
        let turn = next_turn(self.db.dialect(), "?", "?");
        let mut sql = String::new();
        let mut params = Vec::new();
        for (i, (queue, tenant)) in lanes.iter().enumerate() {
            if i > 0 {
                sql.push_str(" UNION ALL ");
            }
            sql.push_str(&format!("SELECT ?, {turn}"));
            params.push(Param::Int(i as i64));
            params.extend(std::iter::repeat_n(text(*queue), 4));
            params.push(text(*tenant));
        }
        let s = stmt(&sql, params);
        let rows: Vec<(i64, i64)> = match &self.db {
            Database::Sqlite(pool) => sqlite_builder(&s)
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(failed)?,
            Database::Postgres(pool) => pg_builder(&s)
                .build_query_as()
                .fetch_all(pool)
                .await
                .map_err(failed)?,
        };
        Ok(rows
            .into_iter()
            .filter_map(|(i, turn)| Some((*lanes.get(usize::try_from(i).ok()?)?, turn)))
            .collect())
    }

    /// The next turn of the task an `UPDATE` of `tasks` changes, in its queue for its tenant.
    fn row_next_turn(&self) -> String {
        next_turn(self.db.dialect(), "tasks.queue", "tasks.tenant_id")
    }

    /// Leases the next runnable task, choosing the queue by weight; `None` when nothing is
    /// runnable at `now`.
    pub async fn dequeue(&self, now: DateTime<Utc>) -> anyhow::Result<Option<Task>> {
        let mut tried = self.excluded();
        loop {
            let Some(queue) = self.lock_picker().peek(&tried) else {
                return Ok(None);
            };
            match self.claim(&queue, now).await? {
                Some(task) => {
                    self.lock_picker().served(&queue, &tried);
                    return Ok(Some(task));
                }
                None => tried.push(queue),
            }
        }
    }

    /// The queues this process does not take from.
    fn excluded(&self) -> Vec<String> {
        match &self.config.only {
            Some(only) => self
                .lock_picker()
                .names()
                .into_iter()
                .filter(|n| !only.contains(n))
                .collect(),
            None => Vec::new(),
        }
    }

    /// One task as the API shows it.
    pub async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>> {
        let row = crate::store::rows::fetch_one(
            &self.db,
            &stmt(
                "SELECT tenant_id, job_id, job_name, job_version, queue, trigger, input, attempt, \
                 max_attempts, state, outcome, last_error, run_after, created_at FROM tasks \
                 WHERE id = ?",
                vec![text(id.to_string())],
            ),
        )
        .await?;
        use crate::store::rows::RowExt as _;
        Ok(row.map(|r| TaskInfo {
            id,
            tenant: r.text("tenant_id").unwrap_or_default(),
            job_id: r.text("job_id").unwrap_or_default(),
            job_name: r.text("job_name").unwrap_or_default(),
            job_version: r.int("job_version"),
            queue: r.text("queue").unwrap_or_default(),
            trigger: r.text("trigger").unwrap_or_default(),
            input: r.text("input").unwrap_or_default(),
            attempt: r.int("attempt").unwrap_or(0),
            max_attempts: r.int("max_attempts").unwrap_or(1),
            state: r.text("state").unwrap_or_default(),
            outcome: r.text("outcome"),
            last_error: r.text("last_error"),
            run_after: r.time("run_after"),
            created_at: r.time("created_at"),
        }))
    }

    /// Cancels every pending task of a job (deleted); returns how many.
    pub async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64> {
        self.execute(
            "UPDATE tasks SET state = 'dead', outcome = 'cancelled', last_error = 'job deleted', \
             updated_at = ? WHERE job_id = ? AND state = 'pending'",
            vec![Param::DateTime(Utc::now()), text(job_id)],
        )
        .await
    }

    /// Leases the runnable task of one queue with the lowest turn (the oldest among equals).
    async fn claim(&self, queue: &str, now: DateTime<Utc>) -> anyhow::Result<Option<Task>> {
        let lease = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let (lock, free) = match self.db {
            Database::Sqlite(_) => ("", "0"),
            Database::Postgres(_) => (" FOR UPDATE SKIP LOCKED", "FALSE"),
        };
        let sql = format!(
            "UPDATE tasks SET state = 'active', attempt = attempt + 1, lease_owner = ?, \
             lease_expires_at = ?, updated_at = ? \
             WHERE id = (SELECT t.id FROM tasks t WHERE t.state = 'pending' AND t.queue = ? \
             AND t.run_after <= ? AND (t.exclusive = {free} OR NOT EXISTS \
             (SELECT 1 FROM tasks a WHERE a.job_id = t.job_id AND a.state = 'active')) \
             ORDER BY t.turn, t.created_at LIMIT 1{lock}) \
             RETURNING id, tenant_id, job_id, job_name, job_version, queue, trigger, input, \
             fire_at, attempt, max_attempts"
        );
        let s = stmt(
            &sql,
            vec![
                text(&self.owner),
                Param::DateTime(lease),
                Param::DateTime(now),
                text(queue),
                Param::DateTime(now),
            ],
        );
        // The same columns from either database; only `fire_at`'s type differs.
        macro_rules! task {
            ($row:expr, $fire_at:expr) => {
                Task {
                    id: parse_uuid(&$row.try_get::<String, _>(0)?)?,
                    tenant: $row.try_get(1)?,
                    job_id: $row.try_get(2)?,
                    job_name: $row.try_get(3)?,
                    job_version: $row.try_get(4)?,
                    queue: $row.try_get(5)?,
                    trigger: $row.try_get(6)?,
                    input: $row.try_get(7)?,
                    fire_at: $fire_at,
                    attempt: $row.try_get(9)?,
                    max_attempts: $row.try_get(10)?,
                }
            };
        }
        let task = match &self.db {
            Database::Sqlite(pool) => {
                let row = sqlite_builder(&s)
                    .build()
                    .fetch_optional(pool)
                    .await
                    .map_err(failed)?;
                match row {
                    None => None,
                    Some(row) => {
                        let fire_at = row
                            .try_get::<Option<String>, _>(8)?
                            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                            .map(|t| t.with_timezone(&Utc));
                        Some(task!(row, fire_at))
                    }
                }
            }
            Database::Postgres(pool) => {
                let row = pg_builder(&s)
                    .build()
                    .fetch_optional(pool)
                    .await
                    .map_err(failed)?;
                match row {
                    None => None,
                    Some(row) => {
                        let fire_at = row.try_get(8)?;
                        Some(task!(row, fire_at))
                    }
                }
            }
        };
        Ok(task)
    }

    /// Extends the leases of those of `ids` that are active and held by this process; how many.
    pub async fn heartbeat(&self, ids: &[Uuid], now: DateTime<Utc>) -> anyhow::Result<u64> {
        let lease = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let mut n = 0;
        for chunk in ids.chunks(200) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let mut params = vec![
                Param::DateTime(lease),
                Param::DateTime(now),
                text(&self.owner),
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

    /// Marks an active task finished (`done` for completed/skipped, `dead` otherwise).
    pub async fn finish(&self, id: Uuid, outcome: &str, error: Option<&str>) -> anyhow::Result<()> {
        let s = finish_stmt(id, outcome, error);
        match &self.db {
            Database::Sqlite(pool) => sqlite_builder(&s).build().execute(pool).await.map(drop),
            Database::Postgres(pool) => pg_builder(&s).build().execute(pool).await.map(drop),
        }
        .map_err(failed)
    }

    /// Finishes tasks (as [`SqlQueue::finish`]) in one transaction.
    pub async fn finish_many(&self, done: &[Finished]) -> anyhow::Result<()> {
        match done {
            [] => return Ok(()),
            [d] => return self.finish(d.id, d.outcome, d.error.as_deref()).await,
            _ => {}
        }
        let stmts: Vec<Stmt> = done
            .iter()
            .map(|d| finish_stmt(d.id, d.outcome, d.error.as_deref()))
            .collect();
        crate::store::rows::execute_all(&self.db, &stmts)
            .await
            .map(|_| ())
            .map_err(failed)
    }

    /// Puts a failed task back to run again after `run_after`, behind its tenant's waiting
    /// tasks (a new turn).
    pub async fn retry(
        &self,
        id: Uuid,
        run_after: DateTime<Utc>,
        error: &str,
    ) -> anyhow::Result<()> {
        self.execute(
            &format!(
                "UPDATE tasks SET state = 'pending', run_after = ?, last_error = ?, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, turn = {} \
                 WHERE id = ?",
                self.row_next_turn()
            ),
            vec![
                Param::DateTime(run_after),
                text(error),
                Param::DateTime(Utc::now()),
                text(id.to_string()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Puts an active task back to `pending` at once, its attempt given back (shutdown).
    pub async fn release(&self, id: Uuid) -> anyhow::Result<()> {
        self.execute(
            "UPDATE tasks SET state = 'pending', attempt = attempt - 1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = 'active'",
            vec![Param::DateTime(Utc::now()), text(id.to_string())],
        )
        .await?;
        Ok(())
    }

    /// Puts an active task back to `pending` until `run_after`, its attempt given back (its
    /// tenant was at its concurrency limit), behind its tenant's waiting tasks (a new turn).
    pub async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()> {
        self.execute(
            &format!(
                "UPDATE tasks SET state = 'pending', attempt = attempt - 1, run_after = ?, \
                 lease_owner = NULL, lease_expires_at = NULL, updated_at = ?, turn = {} \
                 WHERE id = ? AND state = 'active'",
                self.row_next_turn()
            ),
            vec![
                Param::DateTime(run_after),
                Param::DateTime(Utc::now()),
                text(id.to_string()),
            ],
        )
        .await?;
        Ok(())
    }

    /// Runs a finished-for-good task (failed, timed out, cancelled) again as the same execution,
    /// with its attempts counted afresh, behind its tenant's waiting tasks; false if the task is
    /// not `dead`.
    pub async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let n = self
            .execute(
                &format!(
                    "UPDATE tasks SET state = 'pending', attempt = 0, outcome = NULL, \
                     run_after = ?, trigger = 'retry', updated_at = ?, turn = {} \
                     WHERE id = ? AND state = 'dead'",
                    self.row_next_turn()
                ),
                vec![
                    Param::DateTime(now),
                    Param::DateTime(now),
                    text(id.to_string()),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Cancels a task that has not started; false if it is not pending.
    pub async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool> {
        let n = self
            .execute(
                "UPDATE tasks SET state = 'dead', outcome = 'cancelled', updated_at = ? \
                 WHERE id = ? AND state = 'pending'",
                vec![Param::DateTime(Utc::now()), text(id.to_string())],
            )
            .await?;
        Ok(n == 1)
    }

    /// Puts active tasks whose lease expired before `now` back to `pending`, giving their attempt
    /// back (the attempt never finished). Returns how many were rescued.
    pub async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        self.execute(
            "UPDATE tasks SET state = 'pending', attempt = attempt - 1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = ? WHERE state = 'active' AND lease_expires_at < ?",
            vec![Param::DateTime(now), Param::DateTime(now)],
        )
        .await
    }

    /// The jobs that have a task pending or active (the overlap check of a scheduler tick).
    pub async fn busy_jobs(&self) -> anyhow::Result<std::collections::HashSet<String>> {
        const SQL: &str = "SELECT DISTINCT job_id FROM tasks WHERE state IN ('pending', 'active')";
        Ok(match &self.db {
            Database::Sqlite(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
            Database::Postgres(pool) => sqlx::query_scalar(SQL).fetch_all(pool).await?,
        }
        .into_iter()
        .collect())
    }

    /// The versions of `job_id` that a pending or active task will run (they must stay stored).
    pub async fn versions_in_use(
        &self,
        job_id: &str,
    ) -> anyhow::Result<std::collections::BTreeSet<i64>> {
        let versions: Vec<Option<i64>> = match &self.db {
            Database::Sqlite(pool) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT job_version FROM tasks \
                     WHERE job_id = ? AND state IN ('pending', 'active')",
                )
                .bind(job_id)
                .fetch_all(pool)
                .await?
            }
            Database::Postgres(pool) => {
                sqlx::query_scalar(
                    "SELECT DISTINCT job_version FROM tasks \
                     WHERE job_id = $1 AND state IN ('pending', 'active')",
                )
                .bind(job_id)
                .fetch_all(pool)
                .await?
            }
        };
        // A task without a version runs version 1 (as the worker does).
        Ok(versions.into_iter().map(|v| v.unwrap_or(1)).collect())
    }

    /// Tasks per state for every queue that has any (and every configured queue); with a
    /// `tenant`, only that tenant's tasks.
    pub async fn counts(
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
        let rows: Vec<(String, String, Option<String>, i64, i64)> = match &self.db {
            Database::Sqlite(pool) => {
                let rows = sqlite_builder(&s).build().fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get(0)?,
                            r.try_get(1)?,
                            r.try_get(2)?,
                            r.try_get::<i32, _>(3)? as i64,
                            r.try_get(4)?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()?
            }
            Database::Postgres(pool) => {
                let rows = pg_builder(&s).build().fetch_all(pool).await?;
                rows.iter()
                    .map(|r| {
                        Ok((
                            r.try_get(0)?,
                            r.try_get(1)?,
                            r.try_get(2)?,
                            r.try_get::<i32, _>(3)? as i64,
                            r.try_get(4)?,
                        ))
                    })
                    .collect::<Result<_, sqlx::Error>>()?
            }
        };
        let mut out: BTreeMap<String, QueueCounts> = self
            .lock_picker()
            .names()
            .into_iter()
            .map(|n| (n, QueueCounts::default()))
            .collect();
        for (queue, state, outcome, later, n) in rows {
            let c = out.entry(queue).or_default();
            let n = n as u64;
            match state.as_str() {
                "pending" if later == 1 => c.scheduled += n,
                "pending" => c.pending += n,
                "active" => c.active += n,
                "done" => c.completed += n,
                _ if outcome.as_deref() == Some("cancelled") => {}
                _ => c.failed += n,
            }
        }
        Ok(out)
    }
}

/// A task as the API shows it (an execution that has not started yet).
#[derive(Debug, Clone, PartialEq)]
pub struct TaskInfo {
    pub id: Uuid,
    pub tenant: String,
    pub job_id: String,
    pub job_name: String,
    pub job_version: Option<i64>,
    pub queue: String,
    pub trigger: String,
    pub input: String,
    pub attempt: i64,
    pub max_attempts: i64,
    /// `pending`, `active`, `done` or `dead`.
    pub state: String,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
    pub run_after: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}

/// The queue a process uses: the `tasks` table of the platform's database (the embedded
/// default), or Redis when `REDIS_URL` is set (scale-out). The weighted picker, the lease
/// length and this process's lease owner id are the same for both.
pub struct Queue {
    sql: SqlQueue,
    redis: Option<RedisQueue>,
}

impl Queue {
    /// The queue on Redis when one is given, else in the platform's database (which holds jobs
    /// and executions either way).
    pub fn open(db: Database, config: QueueConfig, redis: Option<RedisQueue>) -> Queue {
        Queue {
            sql: SqlQueue::new(db, config),
            redis,
        }
    }

    /// The queue in the platform's database.
    pub fn new(db: Database, config: QueueConfig) -> Queue {
        Queue::open(db, config, None)
    }

    /// The queue on Redis.
    pub fn with_redis(db: Database, config: QueueConfig, redis: RedisQueue) -> Queue {
        Queue::open(db, config, Some(redis))
    }

    pub fn db(&self) -> &Database {
        self.sql.db()
    }

    pub fn config(&self) -> &QueueConfig {
        self.sql.config()
    }

    pub fn redis(&self) -> Option<&RedisQueue> {
        self.redis.as_ref()
    }

    /// This process's id on the leases it takes.
    pub fn owner(&self) -> &str {
        &self.sql.owner
    }

    /// The names of the known queues, heaviest first.
    pub fn names(&self) -> Vec<String> {
        self.sql.lock_picker().names()
    }

    /// The known queues and their weights, heaviest first.
    pub fn weights(&self) -> Vec<(String, u32)> {
        self.sql.lock_picker().weights()
    }

    /// Whether a job of `tenant` runs in a queue there is (the operator's job may also name a
    /// queue its own source declares); changes nothing. What an upload checks first.
    pub fn check_job(&self, tenant: &str, manifest: &Manifest) -> Result<(), UnknownQueue> {
        config::check_job(&self.names(), tenant, manifest)
    }

    /// Admits a job to be scheduled: as [`Queue::check_job`], then the queues the operator's
    /// job declares are added (weights clamped to [`MIN_WEIGHT`]..=[`MAX_WEIGHT`]; a known queue
    /// keeps its weight). The weights in a tenant's manifest are ignored.
    pub fn admit_job(&self, tenant: &str, manifest: &Manifest) -> Result<(), UnknownQueue> {
        self.check_job(tenant, manifest)?;
        if crate::store::tenants::is_operator(tenant) {
            let mut picker = self.sql.lock_picker();
            for q in &manifest.queues {
                picker.declare(&q.name, q.weight);
            }
        }
        Ok(())
    }

    pub async fn enqueue(&self, t: &NewTask) -> anyhow::Result<Option<Uuid>> {
        match &self.redis {
            Some(r) => r.enqueue(t).await,
            None => self.sql.enqueue(t).await,
        }
    }

    pub async fn enqueue_many(&self, tasks: &[NewTask]) -> anyhow::Result<u64> {
        match &self.redis {
            Some(r) => r.enqueue_many(tasks).await,
            None => self.sql.enqueue_many(tasks).await,
        }
    }

    /// Leases the next runnable task, choosing the queue by weight; `None` when nothing is
    /// runnable at `now`.
    pub async fn dequeue(&self, now: DateTime<Utc>) -> anyhow::Result<Option<Task>> {
        Ok(self.dequeue_many(now, 1).await?.pop())
    }

    /// Leases up to `n` runnable tasks, each queue chosen by weight as `n` calls of
    /// [`Queue::dequeue`] would; fewer (or none) when fewer are runnable at `now`. On Redis
    /// this is one round trip. On the SQL queue an error after some tasks were leased returns
    /// those.
    pub async fn dequeue_many(&self, now: DateTime<Utc>, n: usize) -> anyhow::Result<Vec<Task>> {
        let Some(r) = &self.redis else {
            let mut out = Vec::new();
            while out.len() < n {
                match self.sql.dequeue(now).await {
                    Ok(Some(task)) => out.push(task),
                    Ok(None) => break,
                    Err(e) if out.is_empty() => return Err(e),
                    Err(e) => {
                        tracing::warn!("dequeue failed: {e:#}");
                        break;
                    }
                }
            }
            return Ok(out);
        };
        let excluded = self.sql.excluded();
        let queues = self.sql.lock_picker().queues(&excluded);
        let picks = redis::Picks {
            n,
            strict: self.sql.config.strict,
            queues: &queues,
        };
        let claimed = r
            .finish_and_claim(&[], &picks, now, self.sql.config.lease, &self.sql.owner)
            .await?;
        Ok(self.replay(&excluded, claimed))
    }

    /// Records the picks a claim on Redis made on this process's picker; the tasks.
    fn replay(&self, excluded: &[String], (empties, tasks): redis::Claimed) -> Vec<Task> {
        let mut picker = self.sql.lock_picker();
        let mut empty = excluded.to_vec();
        tasks
            .into_iter()
            .map(|(before, queue, task)| {
                empty.truncate(excluded.len());
                empty.extend(empties.iter().take(before).cloned());
                picker.served(&queue, &empty);
                task
            })
            .collect()
    }

    /// Finishes active tasks (each as [`Queue::finish`]) and leases up to `n` runnable tasks
    /// (as [`Queue::dequeue_many`]): on Redis one round trip, on the SQL queue the finishes in
    /// one transaction and then the leases. A failed call may have finished some of `done` or
    /// all of them; finishing a task again does nothing, so the caller repeats it.
    pub async fn finish_and_dequeue(
        &self,
        done: &[Finished],
        now: DateTime<Utc>,
        n: usize,
    ) -> anyhow::Result<Vec<Task>> {
        let Some(r) = &self.redis else {
            self.sql.finish_many(done).await?;
            return self.dequeue_many(now, n).await;
        };
        let excluded = self.sql.excluded();
        let queues = self.sql.lock_picker().queues(&excluded);
        let picks = redis::Picks {
            n,
            strict: self.sql.config.strict,
            queues: &queues,
        };
        let claimed = r
            .finish_and_claim(done, &picks, now, self.sql.config.lease, &self.sql.owner)
            .await?;
        Ok(self.replay(&excluded, claimed))
    }

    /// Extends the leases of those of `ids` that this process still holds; how many.
    pub async fn heartbeat(&self, ids: &[Uuid], now: DateTime<Utc>) -> anyhow::Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        match &self.redis {
            Some(r) => {
                r.heartbeat(ids, now, self.sql.config.lease, &self.sql.owner)
                    .await
            }
            None => self.sql.heartbeat(ids, now).await,
        }
    }

    pub async fn finish(&self, id: Uuid, outcome: &str, error: Option<&str>) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.finish(id, outcome, error).await,
            None => self.sql.finish(id, outcome, error).await,
        }
    }

    pub async fn retry(
        &self,
        id: Uuid,
        run_after: DateTime<Utc>,
        error: &str,
    ) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.later(id, run_after, error, false).await,
            None => self.sql.retry(id, run_after, error).await,
        }
    }

    pub async fn release(&self, id: Uuid) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.release(id).await,
            None => self.sql.release(id).await,
        }
    }

    pub async fn defer(&self, id: Uuid, run_after: DateTime<Utc>) -> anyhow::Result<()> {
        match &self.redis {
            Some(r) => r.later(id, run_after, "", true).await,
            None => self.sql.defer(id, run_after).await,
        }
    }

    pub async fn requeue_dead(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        match &self.redis {
            Some(r) => r.requeue_dead(id, now).await,
            None => self.sql.requeue_dead(id, now).await,
        }
    }

    pub async fn cancel_pending(&self, id: Uuid) -> anyhow::Result<bool> {
        match &self.redis {
            Some(r) => r.cancel_pending(id, "cancelled").await,
            None => self.sql.cancel_pending(id).await,
        }
    }

    pub async fn rescue_expired(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        match &self.redis {
            Some(r) => r.rescue_expired(now).await,
            None => self.sql.rescue_expired(now).await,
        }
    }

    /// Of `jobs`, those with a pending or active task.
    pub async fn busy_jobs(
        &self,
        jobs: &[String],
    ) -> anyhow::Result<std::collections::HashSet<String>> {
        match &self.redis {
            Some(r) => r.busy_jobs(jobs).await,
            None => self.sql.busy_jobs().await,
        }
    }

    /// The versions of `job_id` that a pending or active task will run.
    pub async fn versions_in_use(
        &self,
        job_id: &str,
    ) -> anyhow::Result<std::collections::BTreeSet<i64>> {
        match &self.redis {
            Some(r) => r.versions_in_use(job_id).await,
            None => self.sql.versions_in_use(job_id).await,
        }
    }

    pub async fn counts(
        &self,
        now: DateTime<Utc>,
        tenant: Option<&str>,
    ) -> anyhow::Result<BTreeMap<String, QueueCounts>> {
        match &self.redis {
            Some(r) => {
                let mut out: BTreeMap<String, QueueCounts> = self
                    .names()
                    .into_iter()
                    .map(|n| (n, QueueCounts::default()))
                    .collect();
                out.extend(r.counts(tenant).await?);
                Ok(out)
            }
            None => self.sql.counts(now, tenant).await,
        }
    }

    pub async fn task_info(&self, id: Uuid) -> anyhow::Result<Option<TaskInfo>> {
        match &self.redis {
            Some(r) => r.task_info(id).await,
            None => self.sql.task_info(id).await,
        }
    }

    pub async fn cancel_job(&self, job_id: &str) -> anyhow::Result<u64> {
        match &self.redis {
            Some(r) => r.cancel_job(job_id).await,
            None => self.sql.cancel_job(job_id).await,
        }
    }
}

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
/// placeholders it binds `queue` four times, then `tenant`. Dead tasks are left out: a
/// cancelled flood's turns were never leased.
fn next_turn(dialect: Dialect, queue: &str, tenant: &str) -> String {
    let greatest = match dialect {
        Dialect::Sqlite => "MAX",
        Dialect::Postgres => "GREATEST",
    };
    format!(
        "{greatest}(\
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'active' AND x.queue = {queue} \
         ORDER BY x.turn DESC LIMIT 1), 0), \
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'done' AND x.queue = {queue} \
         ORDER BY x.turn DESC LIMIT 1), 0), \
         COALESCE((SELECT x.turn FROM tasks x WHERE x.state = 'pending' AND x.queue = {queue} \
         ORDER BY x.turn LIMIT 1), 0), \
         COALESCE((SELECT x.turn + 1 FROM tasks x WHERE x.state = 'pending' AND \
         x.queue = {queue} AND x.tenant_id = {tenant} ORDER BY x.turn DESC LIMIT 1), 0))"
    )
}

/// The update that finishes an active task.
fn finish_stmt(id: Uuid, outcome: &str, error: Option<&str>) -> Stmt {
    let state = if matches!(outcome, "completed" | "skipped") {
        "done"
    } else {
        "dead"
    };
    stmt(
        "UPDATE tasks SET state = ?, outcome = ?, last_error = ?, lease_owner = NULL, \
         lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = 'active'",
        vec![
            text(state),
            text(outcome),
            error.map_or(Param::Null(FieldType::String), text),
            Param::DateTime(Utc::now()),
            text(id.to_string()),
        ],
    )
}

fn parse_uuid(s: &str) -> anyhow::Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| anyhow::anyhow!("task id `{s}`: {e}"))
}

/// The delay before retry number `retry` (1 for the first retry) under a job's backoff.
pub fn retry_delay(backoff: &codeai_ir::Backoff, retry: u32) -> Duration {
    use codeai_ir::Backoff;
    let n = retry.max(1) - 1;
    match backoff {
        Backoff::Fixed { delay_ms } => Duration::from_millis(*delay_ms),
        Backoff::Exponential { base_ms } => {
            Duration::from_millis(base_ms.saturating_mul(1u64 << n.min(40)))
        }
        Backoff::Custom { delays_ms } => Duration::from_millis(
            delays_ms
                .get(n as usize)
                .or(delays_ms.last())
                .copied()
                .unwrap_or(0),
        ),
    }
}
