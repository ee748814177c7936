//! The spec's alerts, evaluated by the host every few seconds
//! ([`crate::background::alerts`]):
//!
//! | kind                | condition                                              | tenant   |
//! |---------------------|--------------------------------------------------------|----------|
//! | `job_failed`        | the job's last 3+ finished executions all failed       | the job's|
//! | `queue_backlog`     | more than 100 runnable tasks in a queue                | none     |
//! | `long_running`      | an execution running longer than 2x its job's timeout  | the job's|
//! | `worker_starvation` | no idle worker slot, at two evaluations in a row       | none     |
//!
//! An alert is recorded in `alerts` when its condition starts (and delivered once: to Slack
//! through `SLACK_WEBHOOK`, or held in the outbox when Slack is not configured), kept `active`
//! while the condition holds, and `resolved` when it clears. `GET /alerts` lists them.

use crate::queue::Queue;
use crate::services::Services;
use crate::store::alerts::{self, NewAlert};
use crate::store::executions;
use crate::store::platform::{insert_outbox, OutboxItem};
use crate::store::rows::RowExt;
use crate::store::ExecutionStatus;
use crate::worker::WorkerPool;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Thresholds of the alerts.
#[derive(Debug, Clone)]
pub struct AlertConfig {
    /// How often conditions are evaluated (default 15 s).
    pub every: Duration,
    /// Consecutive failures that make `job_failed` (default 3).
    pub failures: i64,
    /// Runnable tasks in a queue above which `queue_backlog` fires (default 100).
    pub backlog: u64,
    /// The Slack channel alerts go to (default `#alerts`).
    pub channel: String,
}

impl Default for AlertConfig {
    fn default() -> AlertConfig {
        AlertConfig {
            every: Duration::from_secs(15),
            failures: 3,
            backlog: 100,
            channel: "#alerts".into(),
        }
    }
}

/// A condition that holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: String,
    pub kind: &'static str,
    pub tenant: Option<String>,
    pub subject: String,
    pub message: String,
}

/// What one evaluation changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Evaluation {
    /// Keys of alerts that started now.
    pub started: Vec<String>,
    /// Keys of alerts that were resolved now.
    pub resolved: Vec<String>,
}

/// Evaluates the alert conditions.
pub struct Alerts {
    services: Arc<Services>,
    queue: Arc<Queue>,
    pool: Arc<WorkerPool>,
    config: AlertConfig,
    /// Whether no worker was idle at the previous evaluation.
    starved_before: AtomicBool,
}

impl Alerts {
    pub fn new(
        services: Arc<Services>,
        queue: Arc<Queue>,
        pool: Arc<WorkerPool>,
        config: AlertConfig,
    ) -> Alerts {
        Alerts {
            services,
            queue,
            pool,
            config,
            starved_before: AtomicBool::new(false),
        }
    }

    pub fn config(&self) -> &AlertConfig {
        &self.config
    }

    /// The conditions that hold at `now`.
    pub async fn conditions(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Condition>> {
        let db = self.services.db();
        let mut out = Vec::new();

        // job_failed: the last N finished executions of a job all failed.
        let finished = executions::last_finished(db, self.config.failures).await?;
        let mut by_job: BTreeMap<String, Vec<&crate::store::rows::JsonRow>> = BTreeMap::new();
        for r in &finished {
            let runs = by_job
                .entry(r.text("job_id").unwrap_or_default())
                .or_default();
            if (runs.len() as i64) < self.config.failures {
                runs.push(r);
            }
        }
        for (job_id, runs) in by_job {
            let all_failed = runs.len() as i64 >= self.config.failures
                && runs.iter().all(|r| {
                    r.text("status")
                        .and_then(|s| s.parse::<ExecutionStatus>().ok())
                        .is_some_and(ExecutionStatus::is_failure)
                });
            if all_failed {
                let name = runs[0].text("job_name").unwrap_or_else(|| job_id.clone());
                let error = runs[0].text("error").unwrap_or_default();
                out.push(Condition {
                    key: format!("job_failed:{job_id}"),
                    kind: "job_failed",
                    tenant: runs[0].text("tenant_id"),
                    subject: name.clone(),
                    message: format!(
                        "{name} failed {} times in a row; last error: {error}",
                        runs.len()
                    ),
                });
            }
        }

        // queue_backlog.
        for (queue, c) in self.queue.counts(now, None).await? {
            if c.pending > self.config.backlog {
                out.push(Condition {
                    key: format!("queue_backlog:{queue}"),
                    kind: "queue_backlog",
                    tenant: None,
                    subject: queue.clone(),
                    message: format!(
                        "queue {queue} has {} runnable tasks (more than {}): add workers",
                        c.pending, self.config.backlog
                    ),
                });
            }
        }

        // long_running: running for more than twice the job's timeout.
        let running = executions::running(db).await?;
        for r in running {
            let (Some(started), Some(timeout)) = (r.time("started_at"), r.int("timeout_ms")) else {
                continue;
            };
            let ran = now - started;
            if ran.num_milliseconds() > 2 * timeout {
                let id = r.text("id").unwrap_or_default();
                let name = r.text("job_name").unwrap_or_default();
                out.push(Condition {
                    key: format!("long_running:{id}"),
                    kind: "long_running",
                    tenant: r.text("tenant_id"),
                    subject: id.clone(),
                    message: format!(
                        "{name} execution {id} has run {}s, more than twice its timeout of {}s",
                        ran.num_seconds(),
                        timeout / 1000
                    ),
                });
            }
        }

        // worker_starvation: no idle slot now and at the previous evaluation.
        let (total, active) = crate::cluster::slots(&self.queue, &self.pool).await?;
        let starved = total > 0 && active >= total;
        let before = self.starved_before.swap(starved, Ordering::SeqCst);
        if starved && before {
            out.push(Condition {
                key: "worker_starvation".into(),
                kind: "worker_starvation",
                tenant: None,
                subject: "workers".into(),
                message: format!("all {total} worker slots are busy: add workers"),
            });
        }
        Ok(out)
    }

    /// Records new alerts (and delivers them), keeps active ones, resolves the cleared ones.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> anyhow::Result<Evaluation> {
        let db = self.services.db();
        let conditions = self.conditions(now).await?;
        let active: BTreeMap<String, String> = alerts::active(db).await?.into_iter().collect();
        let mut eval = Evaluation::default();
        for c in &conditions {
            if let Some(id) = active.get(&c.key) {
                alerts::seen(db, id, &c.message, now).await?;
                continue;
            }
            let delivery = self.deliver(c).await;
            let alert = NewAlert {
                key: &c.key,
                kind: c.kind,
                tenant: c.tenant.as_deref(),
                subject: &c.subject,
                message: &c.message,
                delivery: &delivery,
            };
            alerts::open(db, &alert, now).await?;
            tracing::warn!(alert = c.kind, subject = %c.subject, "{}", c.message);
            eval.started.push(c.key.clone());
        }
        for (key, id) in &active {
            if !conditions.iter().any(|c| &c.key == key) {
                alerts::resolve(db, id, now).await?;
                eval.resolved.push(key.clone());
            }
        }
        Ok(eval)
    }

    /// Sends an alert to Slack, or holds it in the outbox; returns how it went.
    async fn deliver(&self, c: &Condition) -> String {
        let text = format!(":rotating_light: [{}] {}", c.kind, c.message);
        if let Some(slack) = &self.services.config().slack {
            match crate::notify::post_slack(
                self.services.webhooks(),
                slack,
                &self.config.channel,
                &text,
            )
            .await
            {
                Ok(()) => return "slack".into(),
                Err(e) => tracing::warn!("alert to Slack failed, held in the outbox: {e}"),
            }
        }
        let tenant = c
            .tenant
            .clone()
            .unwrap_or_else(|| crate::store::platform::DEFAULT_TENANT.to_string());
        let held = insert_outbox(
            self.services.db(),
            &OutboxItem {
                tenant: &tenant,
                job: "alerts",
                execution_id: None,
                kind: "slack",
                recipient: self.config.channel.clone(),
                subject: Some(format!("alert: {}", c.kind)),
                body: text,
                attachments: serde_json::json!([]),
                reason: if self.services.config().slack.is_some() {
                    "Slack delivery failed"
                } else {
                    "no SLACK_WEBHOOK configured"
                },
            },
        )
        .await;
        match held {
            Ok(_) => "outbox".into(),
            Err(e) => format!("not delivered: {e}"),
        }
    }
}
