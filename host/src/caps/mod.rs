//! The capabilities of a job: [`JobCaps`] implements the `Host` trait of every interface of the
//! `job` world (`wit/host.wit`) for one execution, one file per interface, each taking the
//! generated WIT types ([`crate::wasm`]) as the guest sent them:
//!
//! - [`data`]: queries on the job's entities, run by the store ([`crate::store::query`]:
//!   parameterised SQL, column allow-list, tenant scope);
//! - [`http`]: integration calls confined to the base URL, `env("…")` from the tenant's secrets
//!   ([`env`]; the operator's jobs also from the host's environment), through the egress policy
//!   of [`egress`] (the operator's jobs and tenants' have a client each);
//! - [`email`] / [`slack`]: SMTP through lettre and the Slack webhook when configured, otherwise
//!   the outbox (the delivery says `held`);
//! - [`report`]: rendered with [`crate::report`], the file kept under the report directory and
//!   its row written;
//! - [`events`], [`state`]: the job's events and its key-value state;
//! - [`log`]: `tracing` (the runtime's gate keeps the execution log);
//! - [`clock`]: instants and calendar periods in the job's timezone.
//!
//! What executions share (the database, the recorder, the HTTP clients, the mail, Slack and
//! report configuration) is the process's [`Services`]; a `JobCaps` borrows it.
//!
//! What the host holds for an execution (response bodies, query results, parsed data, rendered
//! reports, attachments) is charged to its [`MemoryBudget`]; a buffer handed to the guest stays
//! charged until its next call. Over the budget a call never returns: the runtime ends the
//! execution as `memory_exceeded` ([`JobCaps::within_budget`]). The runtime's gate
//! ([`crate::runtime::gate`]) sits in front of every call.
//!
//! **Invariant:** each interface file implements one WIT interface; none of them holds SQL
//! (that is [`crate::store`]'s). `budgeted`, `egress` and `env` are what the interface files
//! share: charged JSON parsing, where HTTP may connect, and `env("…")` with its redaction.

pub mod budgeted;
pub mod clock;
pub mod data;
pub mod email;
pub mod env;
pub mod events;
pub mod http;
pub mod log;
pub mod report;
pub mod slack;
pub mod state;

use self::budgeted::ParseError;
use self::env::{JobEnv, Redactor};
use crate::egress::Outbound;
use crate::runtime::{MemoryBudget, Reservation};
use crate::services::Services;
use crate::store::platform as store;
use crate::store::query::{EntityQueries, QueryError};
use crate::wasm::{types, CapError, Capabilities, Delivery};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use codeai_ir::{Manifest, ReportFormat, TemplateDecl};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Who an execution runs for and when.
#[derive(Debug, Clone)]
pub struct ExecContext {
    pub tenant: String,
    pub execution_id: Uuid,
    pub manifest: Arc<Manifest>,
    /// The clock's start (a schedule's fire time, or a test's instant); `None` is the wall
    /// clock. The clock moves on from it in real time.
    pub now: Option<DateTime<Utc>>,
    /// The execution span's W3C trace context, sent on with integration calls (when traces
    /// are exported).
    pub traceparent: Option<String>,
}

/// A report rendered during this execution (attachable by id).
#[derive(Debug, Clone)]
struct RenderedFile {
    id: String,
    name: String,
    format: ReportFormat,
    path: PathBuf,
}

/// The capabilities of one execution.
pub struct JobCaps {
    services: Arc<Services>,
    ctx: ExecContext,
    data: EntityQueries,
    /// The client of the job's kind (the operator's or tenants').
    http: Outbound,
    /// The execution's memory, shared with the guest (unlimited until the runtime sets it).
    budget: MemoryBudget,
    tz: Tz,
    started: Instant,
    rendered: Vec<RenderedFile>,
    /// Events emitted by this execution (at most [`events::MAX_PER_EXECUTION`]).
    emitted: usize,
    /// `env("…")` of this execution: its secrets, read once, and the values handed out.
    env: JobEnv,
}

impl JobCaps {
    /// The capabilities of one execution, over the process's `services`.
    pub fn new(services: &Arc<Services>, ctx: ExecContext) -> Result<JobCaps, QueryError> {
        let data = EntityQueries::in_namespace(
            services.db().clone(),
            &ctx.manifest.entities,
            services.namespace(&ctx.tenant),
        )?
        .with_report_dir(&services.config().report_dir);
        let tz = ctx.manifest.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
        Ok(JobCaps {
            services: services.clone(),
            data,
            http: services.outbound(&ctx.tenant).clone(),
            budget: MemoryBudget::unlimited(),
            tz,
            started: Instant::now(),
            rendered: Vec::new(),
            emitted: 0,
            env: JobEnv::new(&ctx.tenant),
            ctx,
        })
    }

    /// Replaces the `env("…")` values this execution resolved by `[secret]`: the executor
    /// applies it to the result before recording it.
    pub fn redactor(&self) -> &Redactor {
        self.env.redactor()
    }

    /// `r`, unless the execution's host buffers went over its memory cap: then the call never
    /// returns, and the runtime, woken by the budget, ends the execution as `memory_exceeded`
    /// (a guest must not get an error it could ignore with `on_fail: continue`).
    async fn within_budget<T>(&self, r: Result<T, CapError>) -> Result<T, CapError> {
        if self.budget.exceeded().is_some() {
            return std::future::pending().await;
        }
        r
    }

    /// JSON text from the guest, parsed with the text and the tree charged to `held`.
    fn parse_charged(
        &self,
        text: &str,
        what: &str,
        call: &str,
        held: &mut Reservation,
    ) -> Result<Value, CapError> {
        held.grow(text.len(), call).map_err(over)?;
        budgeted::parse_json(text, held, call).map_err(|e| match e {
            ParseError::Invalid(e) => CapError::Invalid(format!("{what} is not JSON: {e}")),
            ParseError::Exceeded(why) => CapError::Failed(why),
        })
    }

    fn clock_now(&self) -> DateTime<Utc> {
        match self.ctx.now {
            Some(start) => {
                start + chrono::Duration::from_std(self.started.elapsed()).unwrap_or_default()
            }
            None => Utc::now(),
        }
    }

    fn job(&self) -> &str {
        &self.ctx.manifest.name
    }

    fn template(&self, name: &str) -> Result<&TemplateDecl, CapError> {
        self.ctx
            .manifest
            .templates
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| {
                CapError::Denied(format!("template `{name}` is not declared by this job"))
            })
    }

    /// The text of a message: the template's body rendered with `data` (its table, if it has
    /// one, as lines of text below), or `data` itself.
    fn message_text(
        &self,
        template: Option<&TemplateDecl>,
        data: &Value,
    ) -> Result<String, CapError> {
        if let Some(t) = template.filter(|t| t.body.is_some() || t.table.is_some()) {
            // The table is shown when the data holds its rows (a report's template is often
            // the message's too, without the rows).
            let mut shown = t.clone();
            if let Some(table) = &t.table {
                if crate::report::template::resolve(data, &table.source).is_err() {
                    shown.table = None;
                }
            }
            let doc = crate::report::layout(&shown, data, crate::report::Reader::Person, self.tz);
            return filled(Some(t), doc.map(|doc| crate::report::text(&doc)));
        }
        Ok(match data {
            Value::String(s) => s.clone(),
            Value::Object(m) if m.get("text").is_some_and(Value::is_string) => {
                m["text"].as_str().unwrap_or_default().to_string()
            }
            other => other.to_string(),
        })
    }

    /// Holds a message of this execution in the outbox instead of sending it.
    async fn hold(&self, message: Held<'_>) -> Result<Delivery, CapError> {
        let item = store::OutboxItem {
            tenant: &self.ctx.tenant,
            job: self.job(),
            execution_id: Some(self.ctx.execution_id),
            kind: message.kind,
            recipient: message.recipient,
            subject: message.subject,
            body: message.body,
            attachments: message.attachments,
            reason: message.reason,
        };
        let id = store::insert_outbox(self.services.db(), &item)
            .await
            .map_err(db_error("outbox"))?;
        tracing::info!(job = %self.job(), kind = item.kind, %id, "message held in the outbox: {}", item.reason);
        Ok(Delivery::Held(id))
    }
}

/// A message held in the outbox (the execution it belongs to is the caller's).
struct Held<'a> {
    /// `email` or `slack`.
    kind: &'a str,
    /// Email: the recipients as a JSON array; Slack: the channel.
    recipient: String,
    subject: Option<String>,
    body: String,
    /// JSON array of `{id, name}`.
    attachments: serde_json::Value,
    /// Why it is held.
    reason: &'a str,
}

impl Capabilities for JobCaps {
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.budget = budget;
    }
}

impl types::Host for JobCaps {}

fn db_error(what: &str) -> impl Fn(sqlx::Error) -> CapError + '_ {
    move |e| CapError::Failed(format!("{what}: database error: {e}"))
}

fn over(e: crate::runtime::Exceeded) -> CapError {
    CapError::Failed(e.0)
}

/// A template's text, or the step's error naming the template and the path that is missing.
fn filled(
    template: Option<&TemplateDecl>,
    text: Result<String, String>,
) -> Result<String, CapError> {
    text.map_err(|e| match template {
        Some(t) => CapError::Invalid(format!("template `{}`: {e}", t.name)),
        None => CapError::Invalid(e),
    })
}
