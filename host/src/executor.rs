//! One execution from start to record: the execution row, the sandboxed run with the real
//! capabilities, the finished row (status, output, error, log, capability calls, fuel, times;
//! every secret value the execution resolved replaced by `[secret]`) and the job's
//! `on_complete` / `on_fail` event.
//!
//! `codeai exec` runs one execution this way; the workers of the scheduler do the same for each
//! task they take.

use crate::caps::{ExecContext, JobCaps};
use crate::runtime::{ExecOptions, ExecResult, PreparedJob, Runtime, Status};
use crate::services::Services;
use crate::store::platform as store;
use crate::store::recorder::{Pending, Record};
use crate::telemetry::ExecutionSpan;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

/// Runs job components with the real capabilities and records every execution.
pub struct Executor {
    runtime: Runtime<JobCaps>,
    services: Arc<Services>,
}

/// What to run and for whom.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tenant: &'a str,
    /// The job's id in the store (its name when it is not registered).
    pub job_id: &'a str,
    pub job_version: Option<i64>,
    /// `manual`, `schedule`, `api`, `retry`, ….
    pub trigger: &'a str,
    /// A JSON object.
    pub input: &'a str,
    /// The clock the job sees (a fire time); `None` is the wall clock.
    pub now: Option<DateTime<Utc>>,
    pub attempt: i64,
    pub max_attempts: i64,
    /// An id chosen by the caller (a queued task's), or a new one.
    pub execution_id: Option<Uuid>,
    /// The schedule fire the execution is for.
    pub scheduled_at: Option<DateTime<Utc>>,
    pub options: ExecOptions,
}

/// Whether an attempt that ended with `status` is the execution's last: it succeeded, was
/// cancelled, or used the last attempt. Every other failure (a job error, a trap, a timeout, an
/// exhausted budget) is retried while attempts are left.
pub fn is_final(status: Status, attempt: i64, max_attempts: i64) -> bool {
    match status {
        Status::Completed | Status::Skipped | Status::Cancelled => true,
        _ => attempt >= max_attempts,
    }
}

/// A finished, recorded execution.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub execution_id: Uuid,
    pub result: ExecResult,
}

/// Why an execution could not even start.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the job's entity declarations cannot be used: {0}")]
    Entities(#[from] crate::store::query::QueryError),
    #[error("recording the execution failed: {0}")]
    Store(#[from] sqlx::Error),
}

impl Executor {
    pub fn new(runtime: Runtime<JobCaps>, services: Arc<Services>) -> Executor {
        Executor { runtime, services }
    }

    pub fn runtime(&self) -> &Runtime<JobCaps> {
        &self.runtime
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// Runs `job` once and records it. A job that fails, traps or runs out of a budget is a
    /// recorded execution with that status, not an `Err`.
    pub async fn run(
        &self,
        job: &PreparedJob<JobCaps>,
        req: Request<'_>,
    ) -> Result<Recorded, ExecError> {
        let (recorded, commit) = self.run_uncommitted(job, req).await?;
        commit.wait().await?;
        Ok(recorded)
    }

    /// [`Executor::run`] that returns as soon as the job has run: its records are handed to the
    /// writer and [`Commit::wait`] waits until they are durable. A worker uses it to start its
    /// next task while the records of the last one are written, and finishes a task on the
    /// queue only after its commit (a task leaves the queue only when its execution is
    /// recorded). A job with an `on_complete` / `on_fail` event waits for its records here, as
    /// its event is written after them.
    pub async fn run_uncommitted(
        &self,
        job: &PreparedJob<JobCaps>,
        req: Request<'_>,
    ) -> Result<(Recorded, Commit), ExecError> {
        let manifest = job.manifest_arc();
        let execution_id = req.execution_id.unwrap_or_else(crate::queue::new_task_id);
        let db = self.services.db();
        let new = store::NewExecution {
            id: execution_id,
            tenant: req.tenant,
            job_id: req.job_id,
            job_name: &manifest.name,
            job_version: req.job_version,
            trigger: req.trigger,
            queue: &manifest.queue,
            input: req.input,
            attempt: req.attempt,
            max_attempts: req.max_attempts,
            scheduled_at: req.scheduled_at,
            started_at: Utc::now(),
        };
        let span = match crate::telemetry::enabled() {
            false => None,
            true => {
                // A run request's trace context is on its pending record.
                let parent = match req.trigger {
                    "schedule" => None,
                    _ => crate::store::executions::traceparent(db, execution_id)
                        .await
                        .unwrap_or(None),
                };
                ExecutionSpan::start(&new, parent.as_deref())
            }
        };
        let caps = JobCaps::new(
            &self.services,
            ExecContext {
                tenant: req.tenant.to_string(),
                execution_id,
                manifest: manifest.clone(),
                now: req.now,
                traceparent: span.as_ref().and_then(ExecutionSpan::traceparent),
            },
        )?;
        let started_at = new.started_at;
        let recorder = self.services.recorder();
        // Written while the job runs; the end record below is written after it and awaited.
        let start = recorder.submit(Record::Start(new.row())).await;

        let execution = self
            .runtime
            .execute(job, caps, req.input, req.options)
            .await;
        let mut result = execution.result;
        // No `env("…")` value leaves the execution: not in what is recorded, returned or emitted.
        execution.capabilities.redactor().result(&mut result);
        if let Some(span) = span {
            span.finish(&result);
        }
        log_finished(
            (req.tenant, req.attempt, req.trigger),
            &manifest.name,
            execution_id,
            &result,
        );

        let log: Vec<Value> = result
            .logs
            .iter()
            .map(|l| json!({ "level": l.level_name(), "message": l.message }))
            .collect();
        let calls: Vec<Value> = result
            .calls
            .iter()
            .map(|c| {
                json!({
                    "call": c.call,
                    "detail": c.detail,
                    "at_ms": c.at.as_secs_f64() * 1000.0,
                    "duration_ms": c.duration.as_secs_f64() * 1000.0,
                    "error": c.error,
                })
            })
            .collect();
        // The row made before the submit (which may wait for room): the JSON values it is made
        // from are not held meanwhile.
        let row = store::FinishedExecution {
            attempt: req.attempt,
            started_at,
            status: result.status,
            output: result.output.as_deref(),
            error: result.error.as_deref(),
            step: result.step.as_deref(),
            finished_at: Utc::now(),
            duration_ms: result.wall_time.as_millis() as i64,
            fuel_used: result.fuel_used as i64,
            log: Value::Array(log),
            calls: Value::Array(calls),
            last: is_final(result.status, req.attempt, req.max_attempts),
        }
        .row(req.tenant, execution_id);
        let end = recorder.submit(Record::Finish(row)).await;
        let commit = Commit {
            pending: vec![start, end],
        };

        // The job's completion events, emitted by the host so they fire even when the guest
        // trapped. A skipped run counts as completed; `on_fail` waits for the final failure.
        let event = match result.status {
            _ if !is_final(result.status, req.attempt, req.max_attempts) => None,
            Status::Completed | Status::Skipped => manifest.on_complete.as_ref().map(|e| {
                (
                    e,
                    json!({ "job": manifest.name, "execution": execution_id.to_string() }),
                )
            }),
            _ => manifest.on_fail.as_ref().map(|e| {
                (
                    e,
                    json!({
                        "job": manifest.name,
                        "execution": execution_id.to_string(),
                        "error": result.error.clone().unwrap_or_default(),
                    }),
                )
            }),
        };
        let commit = match event {
            None => commit,
            Some((name, payload)) => {
                commit.wait().await?;
                store::insert_event(
                    db,
                    req.tenant,
                    &manifest.name,
                    Some(execution_id),
                    name,
                    &payload,
                )
                .await?;
                Commit::default()
            }
        };
        Ok((
            Recorded {
                execution_id,
                result,
            },
            commit,
        ))
    }
}

/// The execution's line in the host's log (after redaction: it holds no `env("…")` value):
/// `info` when it completed, was skipped or cancelled, `warn` for every failure.
fn log_finished(
    (tenant, attempt, trigger): (&str, i64, &str),
    job: &str,
    execution_id: Uuid,
    result: &ExecResult,
) {
    let status = result.status.as_str();
    let duration_ms = result.wall_time.as_millis() as u64;
    let fuel = result.fuel_used;
    let error = result.error.as_deref().unwrap_or_default();
    let step = result.step.as_deref().unwrap_or_default();
    match result.status {
        Status::Completed | Status::Skipped | Status::Cancelled => tracing::info!(
            job, tenant, execution = %execution_id, attempt, trigger, status, duration_ms, fuel,
            error, "execution finished"
        ),
        _ => tracing::warn!(
            job, tenant, execution = %execution_id, attempt, trigger, status, duration_ms, fuel,
            error, step, "execution finished"
        ),
    }
}

/// The records of an execution on their way to the database.
#[derive(Default)]
pub struct Commit {
    pending: Vec<Pending>,
}

impl Commit {
    /// Waits until the records are committed.
    pub async fn wait(self) -> Result<(), ExecError> {
        for p in self.pending {
            p.wait().await?;
        }
        Ok(())
    }
}
