//! The spec's alerts, evaluated by the host every few seconds ([`run_alerts`]):
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

use crate::cluster::Leadership;
use crate::queue::Queue;
use crate::services::Services;
use crate::store::platform::{insert_outbox, OutboxItem};
use crate::store::rows::{execute, fetch_all, RowExt};
use crate::store::sql::{stmt, Param};
use crate::store::ExecutionStatus;
use crate::worker::WorkerPool;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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

    /// The conditions that hold at `now`.
    pub async fn conditions(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Condition>> {
        let db = self.services.db();
        let mut out = Vec::new();

        // job_failed: the last N finished executions of a job all failed.
        let finished = fetch_all(
            db,
            &stmt(
                &format!(
                    "SELECT tenant_id, job_id, job_name, status, error, created_at FROM (SELECT \
                     tenant_id, job_id, job_name, status, error, created_at, ROW_NUMBER() OVER \
                     (PARTITION BY job_id ORDER BY created_at DESC) AS rn FROM job_executions \
                     WHERE status IN ({})) t WHERE rn <= ? ORDER BY job_id, created_at DESC",
                    ExecutionStatus::sql_list_of(
                        |s| s == ExecutionStatus::Completed || s.is_failure()
                    )
                ),
                vec![Param::Int(self.config.failures)],
            ),
        )
        .await?;
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
        let running = fetch_all(
            db,
            &stmt(
                "SELECT e.id, e.tenant_id, e.job_name, e.started_at, j.timeout_ms \
                 FROM job_executions e JOIN jobs j ON j.id = e.job_id \
                 WHERE e.status = ? AND e.started_at IS NOT NULL",
                vec![Param::Text(ExecutionStatus::Running.to_string())],
            ),
        )
        .await?;
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
        let active = fetch_all(
            db,
            &stmt("SELECT id, key FROM alerts WHERE status = 'active'", vec![]),
        )
        .await?;
        let active: BTreeMap<String, String> = active
            .iter()
            .map(|r| {
                (
                    r.text("key").unwrap_or_default(),
                    r.text("id").unwrap_or_default(),
                )
            })
            .collect();
        let mut eval = Evaluation::default();
        for c in &conditions {
            if let Some(id) = active.get(&c.key) {
                execute(
                    db,
                    &stmt(
                        "UPDATE alerts SET last_seen_at = ?, message = ? WHERE id = ?",
                        vec![
                            Param::DateTime(now),
                            Param::Text(c.message.clone()),
                            Param::Text(id.clone()),
                        ],
                    ),
                )
                .await?;
                continue;
            }
            let delivery = self.deliver(c).await;
            execute(
                db,
                &stmt(
                    "INSERT INTO alerts (id, tenant_id, key, kind, subject, message, status, \
                     delivery, started_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)",
                    vec![
                        Param::Text(Uuid::new_v4().to_string()),
                        c.tenant
                            .clone()
                            .map_or(Param::Null(codeai_ir::FieldType::String), Param::Text),
                        Param::Text(c.key.clone()),
                        Param::Text(c.kind.into()),
                        Param::Text(c.subject.clone()),
                        Param::Text(c.message.clone()),
                        Param::Text(delivery),
                        Param::DateTime(now),
                        Param::DateTime(now),
                    ],
                ),
            )
            .await?;
            tracing::warn!(alert = c.kind, subject = %c.subject, "{}", c.message);
            eval.started.push(c.key.clone());
        }
        for (key, id) in &active {
            if !conditions.iter().any(|c| &c.key == key) {
                execute(
                    db,
                    &stmt(
                        "UPDATE alerts SET status = 'resolved', resolved_at = ? WHERE id = ?",
                        vec![Param::DateTime(now), Param::Text(id.clone())],
                    ),
                )
                .await?;
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

/// Evaluates the alerts every [`AlertConfig::every`] while this process leads, until `stop`.
pub async fn run_alerts(alerts: Arc<Alerts>, leadership: Leadership, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        if !leadership.is_leader() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if let Err(e) = alerts.evaluate(Utc::now()).await {
            tracing::warn!("alert evaluation failed: {e:#}");
        }
        let mut waited = Duration::ZERO;
        while waited < alerts.config.every && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
        }
    }
}
