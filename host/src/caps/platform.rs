//! The real capabilities: [`JobCaps`] implements every `Host` trait of the `job` world over the
//! platform's database, report store, mail and Slack configuration and the integrations' HTTP
//! endpoints. One `JobCaps` serves one execution; [`Platform`] holds what executions share.
//!
//! - data: [`DataCapability`] (parameterised SQL, column allow-list, tenant scope);
//! - http: [`super::http`] (base-URL confinement), `env("…")` from the tenant's secrets
//!   ([`super::env`]; the operator's jobs also from the host's environment), through the
//!   egress policy of [`super::egress`] (the operator's jobs and tenants' have a client each);
//! - email / slack: SMTP through lettre and the Slack webhook when configured, otherwise the
//!   outbox table (the delivery says `held`);
//! - report: rendered with [`crate::report`], the file kept under the report directory and a
//!   `reports` row written;
//! - events, state: the `events` and `job_state` tables;
//! - log: `tracing` (the runtime's gate keeps the execution log);
//! - clock: [`super::clock`] in the job's timezone.
//!
//! What the host holds for an execution (response bodies, query results, parsed data, rendered
//! reports, attachments) is charged to its [`MemoryBudget`]; a buffer handed to the guest stays
//! charged until its next call. Over the budget a call never returns: the runtime ends the
//! execution as `memory_exceeded` ([`JobCaps::within_budget`]).

use super::budgeted::{self, ParseError};
use super::clock;
use super::data::{self as d, DataCapability, DataError};
use super::egress::EgressConfig;
use super::env::{EnvSources, JobEnv, Redactor};
use super::http::{self as h, Env, Outbound};
use crate::notify::{self, SlackConfig, SmtpConfig};
use crate::report::template::interpolate;
use crate::runtime::{MemoryBudget, Reservation};
use crate::store::platform as store;
use crate::store::secrets::Keyring;
use crate::store::Database;
use crate::wasm::{
    clock as wclock, data, email, events, http, log, report, slack, state, types, CapError,
    Capabilities, Delivery,
};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use codeai_ir::{Manifest, ReportFormat, TemplateDecl};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// How the platform reaches the outside world; [`PlatformConfig::from_env`] reads it.
#[derive(Clone)]
pub struct PlatformConfig {
    /// Where rendered reports are kept (`CODEAI_REPORT_DIR`, default `.codeai/reports`).
    pub report_dir: PathBuf,
    /// How long a report is kept before `expires_at` (`CODEAI_REPORT_TTL_DAYS`, default 30).
    pub report_ttl: chrono::Duration,
    /// `SMTP_HOST` and friends; `None` holds mail in the outbox.
    pub smtp: Option<SmtpConfig>,
    /// `SLACK_WEBHOOK`; `None` holds Slack messages in the outbox.
    pub slack: Option<SlackConfig>,
    /// The host's environment: where the operator's jobs read `env("…")` values that are not
    /// secrets of the operator (tenants' jobs never do).
    pub env: Env,
    /// `CODEAI_ENV_DENY`: names (`PREFIX*` allowed) the operator's jobs may not read from `env`,
    /// besides the platform's own variables ([`super::env::PLATFORM_VARIABLES`]).
    pub env_deny: Vec<String>,
    /// The keys tenants' secrets are encrypted with (`CODEAI_SECRET_KEY`, …).
    pub secret_keys: Arc<Keyring>,
    /// Where jobs' HTTP may go (`CODEAI_EGRESS_ALLOW`, `CODEAI_OPERATOR_EGRESS_ALLOW`).
    pub egress: EgressConfig,
}

impl std::fmt::Debug for PlatformConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformConfig")
            .field("report_dir", &self.report_dir)
            .field("report_ttl", &self.report_ttl)
            .field("smtp", &self.smtp.as_ref().map(|s| (&s.host, s.port)))
            .field("slack", &self.slack.is_some())
            .field("env_deny", &self.env_deny)
            .field("secret_keys", &self.secret_keys)
            .field("egress", &self.egress)
            .finish()
    }
}

impl PlatformConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<PlatformConfig, String> {
        let ttl_days = match std::env::var("CODEAI_REPORT_TTL_DAYS") {
            Ok(v) if !v.is_empty() => {
                v.parse::<i64>().ok().filter(|d| *d > 0).ok_or_else(|| {
                    format!("CODEAI_REPORT_TTL_DAYS=`{v}` is not a positive number")
                })?
            }
            _ => 30,
        };
        Ok(PlatformConfig {
            report_dir: std::env::var_os("CODEAI_REPORT_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".codeai/reports")),
            report_ttl: chrono::Duration::days(ttl_days),
            smtp: SmtpConfig::from_env()?,
            slack: SlackConfig::from_env(),
            env: h::process_env(),
            env_deny: super::env::parse_deny_list(
                &std::env::var("CODEAI_ENV_DENY").unwrap_or_default(),
            ),
            secret_keys: Arc::new(Keyring::from_env()?),
            egress: EgressConfig::from_env()?,
        })
    }

    /// No mail server, no Slack, reports under `report_dir`, the host's environment `env`,
    /// secrets under a key that lives as long as this configuration, and HTTP to public
    /// addresses only (tests that call a peer on loopback allow it in `egress`).
    pub fn local(report_dir: impl Into<PathBuf>, env: Env) -> PlatformConfig {
        PlatformConfig {
            report_dir: report_dir.into(),
            report_ttl: chrono::Duration::days(30),
            smtp: None,
            slack: None,
            env,
            env_deny: Vec::new(),
            secret_keys: Arc::new(Keyring::ephemeral()),
            egress: EgressConfig::default(),
        }
    }
}

/// What every execution on this host shares.
pub struct Platform {
    db: Database,
    /// The platform's PostgreSQL schema, asked once: tenants' namespaces are named after it.
    schemas: crate::store::namespace::SchemaCache,
    recorder: crate::store::recorder::Recorder,
    config: PlatformConfig,
    /// Integration calls of the operator's jobs, under the operator's allow list.
    operator_http: Outbound,
    /// Integration calls of tenants' jobs, under the tenants' allow list.
    tenant_http: Outbound,
    webhooks: reqwest::Client,
}

impl Platform {
    pub fn new(db: Database, config: PlatformConfig) -> Arc<Platform> {
        Arc::new(Platform {
            recorder: crate::store::recorder::Recorder::new(db.clone()),
            schemas: Default::default(),
            db,
            operator_http: Outbound::new(config.egress.policy(true)),
            tenant_http: Outbound::new(config.egress.policy(false)),
            config,
            webhooks: notify::http_client(),
        })
    }

    pub fn db(&self) -> &Database {
        &self.db
    }

    pub fn config(&self) -> &PlatformConfig {
        &self.config
    }

    /// Writes execution records with group commit.
    pub fn recorder(&self) -> &crate::store::recorder::Recorder {
        &self.recorder
    }

    /// The HTTP client for Slack webhooks.
    pub fn webhooks(&self) -> &reqwest::Client {
        &self.webhooks
    }

    /// The capabilities of one execution.
    pub fn caps(self: &Arc<Platform>, ctx: ExecContext) -> Result<JobCaps, DataError> {
        let namespace =
            crate::store::namespace::Namespace::with_cache(&self.db, &ctx.tenant, &self.schemas);
        let data =
            DataCapability::in_namespace(self.db.clone(), &ctx.manifest.entities, namespace)?
                .with_report_dir(&self.config.report_dir);
        let tz = ctx.manifest.timezone.parse::<Tz>().unwrap_or(Tz::UTC);
        let http = if crate::store::tenants::is_operator(&ctx.tenant) {
            self.operator_http.clone()
        } else {
            self.tenant_http.clone()
        };
        Ok(JobCaps {
            platform: self.clone(),
            data,
            http,
            budget: MemoryBudget::unlimited(),
            tz,
            started: Instant::now(),
            rendered: Vec::new(),
            env: JobEnv::new(&ctx.tenant),
            ctx,
        })
    }
}

/// Who an execution runs for and when.
#[derive(Debug, Clone)]
pub struct ExecContext {
    pub tenant: String,
    pub execution_id: Uuid,
    pub manifest: Arc<Manifest>,
    /// The clock's start (a schedule's fire time, or a test's instant); `None` is the wall
    /// clock. The clock moves on from it in real time.
    pub now: Option<DateTime<Utc>>,
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
    platform: Arc<Platform>,
    ctx: ExecContext,
    data: DataCapability,
    /// The client of the job's kind (the operator's or tenants').
    http: Outbound,
    /// The execution's memory, shared with the guest (unlimited until the runtime sets it).
    budget: MemoryBudget,
    tz: Tz,
    started: Instant,
    rendered: Vec<RenderedFile>,
    /// `env("…")` of this execution: its secrets, read once, and the values handed out.
    env: JobEnv,
}

fn data_error(e: DataError) -> CapError {
    match e {
        DataError::Denied(m) => CapError::Denied(m),
        DataError::Invalid(m) => CapError::Invalid(m),
        DataError::Failed(m) => CapError::Failed(m),
    }
}

fn db_error(what: &str) -> impl Fn(sqlx::Error) -> CapError + '_ {
    move |e| CapError::Failed(format!("{what}: database error: {e}"))
}

fn filter(f: Option<data::Filter>) -> Option<d::Filter> {
    f.map(|f| d::Filter {
        nodes: f
            .nodes
            .into_iter()
            .map(|n| match n {
                data::FilterNode::All(c) => d::FilterNode::All(c),
                data::FilterNode::Any(c) => d::FilterNode::Any(c),
                data::FilterNode::Not(c) => d::FilterNode::Not(c),
                data::FilterNode::Compare(c) => d::FilterNode::Compare(d::Comparison {
                    field: c.field,
                    op: match c.op {
                        data::CompareOp::Eq => d::CompareOp::Eq,
                        data::CompareOp::Ne => d::CompareOp::Ne,
                        data::CompareOp::Lt => d::CompareOp::Lt,
                        data::CompareOp::Le => d::CompareOp::Le,
                        data::CompareOp::Gt => d::CompareOp::Gt,
                        data::CompareOp::Ge => d::CompareOp::Ge,
                        data::CompareOp::Like => d::CompareOp::Like,
                        data::CompareOp::In => d::CompareOp::In,
                        data::CompareOp::IsNull => d::CompareOp::IsNull,
                        data::CompareOp::IsNotNull => d::CompareOp::IsNotNull,
                    },
                    value: c.value,
                }),
            })
            .collect(),
        root: f.root,
    })
}

fn parse_json(text: &str, what: &str) -> Result<Value, CapError> {
    serde_json::from_str(text).map_err(|e| CapError::Invalid(format!("{what} is not JSON: {e}")))
}

fn over(e: crate::runtime::Exceeded) -> CapError {
    CapError::Failed(e.0)
}

fn extension(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Pdf => "pdf",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    }
}

fn content_type(format: ReportFormat) -> &'static str {
    match format {
        ReportFormat::Pdf => "application/pdf",
        ReportFormat::Csv => "text/csv; charset=utf-8",
        ReportFormat::Html => "text/html; charset=utf-8",
    }
}

/// `daily_sales_report` → `daily-sales-report`.
fn kebab(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

impl Capabilities for JobCaps {
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.budget = budget;
    }
}

impl JobCaps {
    /// Replaces the `env("…")` values this execution resolved by `[secret]`: the executor
    /// applies it to the result before recording it.
    pub fn redactor(&self) -> &Redactor {
        self.env.redactor()
    }

    /// Reads the secrets when a call to `req` needs them (once per execution).
    async fn load_env(&mut self, req: &http::CallRequest) -> Result<(), CapError> {
        if h::uses_env(&self.ctx.manifest.integrations, req) {
            self.env.load(&self.platform.db).await?;
        }
        Ok(())
    }

    /// Builds the request of one call, `env("…")` resolved for this execution's tenant.
    fn prepare(&mut self, req: &http::CallRequest) -> Result<h::Prepared, CapError> {
        let config = &self.platform.config;
        let sources = EnvSources {
            keys: &config.secret_keys,
            process: &config.env,
            deny: &config.env_deny,
        };
        let env = &mut self.env;
        h::prepare(
            &self.ctx.manifest.integrations,
            &mut |name: &str| env.lookup(name, &sources),
            req,
        )
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

    /// The text of a message: the template's body rendered with `data`, or `data` itself.
    fn message_text(&self, template: Option<&TemplateDecl>, data: &Value) -> String {
        match template.and_then(|t| t.body.as_deref()) {
            Some(body) => interpolate(body, data),
            None => match data {
                Value::String(s) => s.clone(),
                Value::Object(m) if m.get("text").is_some_and(Value::is_string) => {
                    m["text"].as_str().unwrap_or_default().to_string()
                }
                other => other.to_string(),
            },
        }
    }

    async fn hold(&self, item: store::OutboxItem<'_>) -> Result<Delivery, CapError> {
        let id = store::insert_outbox(&self.platform.db, &item)
            .await
            .map_err(db_error("outbox"))?;
        tracing::info!(job = %self.job(), kind = item.kind, %id, "message held in the outbox: {}", item.reason);
        Ok(Delivery::Held(id))
    }

    fn report_path(&self, id: Uuid, format: ReportFormat) -> Result<PathBuf, CapError> {
        store::report_path(
            &self.platform.config.report_dir,
            &self.ctx.tenant,
            id,
            extension(format),
        )
        .ok_or_else(|| {
            CapError::Failed(format!("tenant `{}` has no report store", self.ctx.tenant))
        })
    }
}

impl types::Host for JobCaps {}

impl data::Host for JobCaps {
    async fn select(&mut self, q: data::Query) -> Result<String, CapError> {
        let query = d::Query {
            entity: q.entity,
            filter: filter(q.filter),
            order: q
                .order
                .into_iter()
                .map(|o| d::OrderBy {
                    field: o.field,
                    descending: o.descending,
                })
                .collect(),
            limit: q.limit,
        };
        let call = format!("`data.select` {}", query.entity);
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        let r = self
            .data
            .select_within(&query, &mut |bytes| {
                held.resize(bytes, &call)
                    .map_err(|e| DataError::Failed(e.0))
            })
            .await
            .map_err(data_error);
        let rows = self.within_budget(r).await?;
        self.budget.hand_over(held);
        Ok(rows)
    }

    async fn count(&mut self, entity: String, f: Option<data::Filter>) -> Result<u64, CapError> {
        self.data
            .count(&entity, filter(f).as_ref())
            .await
            .map_err(data_error)
    }

    async fn delete(&mut self, entity: String, f: Option<data::Filter>) -> Result<u64, CapError> {
        self.data
            .delete(&entity, filter(f).as_ref())
            .await
            .map_err(data_error)
    }

    async fn update(
        &mut self,
        entity: String,
        f: Option<data::Filter>,
        set: Vec<data::Assignment>,
    ) -> Result<u64, CapError> {
        let set: Vec<d::Assignment> = set
            .into_iter()
            .map(|a| d::Assignment {
                field: a.field,
                value: match a.value {
                    data::NewValue::Set(v) => d::NewValue::Set(v),
                    data::NewValue::Add(n) => d::NewValue::Add(n),
                },
            })
            .collect();
        self.data
            .update(&entity, filter(f).as_ref(), &set)
            .await
            .map_err(data_error)
    }

    async fn insert(&mut self, entity: String, rows: String) -> Result<u64, CapError> {
        let call = format!("`data.insert` {entity}");
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        // The parsed rows can take many times their text: charged as they are built.
        let r = self.parse_charged(&rows, "the rows", &call, &mut held);
        let rows = self.within_budget(r).await?;
        self.data
            .insert_parsed(&entity, rows)
            .await
            .map_err(data_error)
    }

    async fn maintain(
        &mut self,
        op: data::MaintenanceOp,
        entity: Option<String>,
    ) -> Result<String, CapError> {
        let op = match op {
            data::MaintenanceOp::Vacuum => d::MaintenanceOp::Vacuum,
            data::MaintenanceOp::Analyze => d::MaintenanceOp::Analyze,
            data::MaintenanceOp::Reindex => d::MaintenanceOp::Reindex,
        };
        self.data
            .maintain(op, entity.as_deref())
            .await
            .map_err(data_error)
    }
}

impl http::Host for JobCaps {
    async fn call(&mut self, req: http::CallRequest) -> Result<http::CallResponse, CapError> {
        self.load_env(&req).await?;
        let call = format!("`http.call` {}.{}", req.integration, req.operation);
        let prepared = self.prepare(&req).map_err(|e| self.redactor().error(e))?;
        let r = h::send(&self.http, prepared, &self.budget, &call).await;
        let (response, held) = self
            .within_budget(r)
            .await
            .map_err(|e| self.redactor().error(e))?;
        self.budget.hand_over(held);
        Ok(response)
    }

    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        let limit = Arc::new(tokio::sync::Semaphore::new(
            concurrency.clamp(1, codeai_ir::limits::MAX_PARALLEL) as usize,
        ));
        let mut tasks = tokio::task::JoinSet::new();
        let mut results: Vec<Result<http::CallResponse, CapError>> = (0..reqs.len())
            .map(|_| Err(CapError::Failed("not run".into())))
            .collect();
        for (i, req) in reqs.iter().enumerate() {
            let prepared = match self.load_env(req).await {
                Ok(()) => self.prepare(req),
                Err(e) => Err(e),
            };
            match prepared {
                Err(e) => results[i] = Err(e),
                Ok(prepared) => {
                    let http = self.http.clone();
                    let budget = self.budget.clone();
                    let call = format!("`http.call-many` {}.{}", req.integration, req.operation);
                    let limit = limit.clone();
                    tasks.spawn(async move {
                        let _permit = limit.acquire_owned().await;
                        (i, h::send(&http, prepared, &budget, &call).await)
                    });
                }
            }
        }
        // Every body stays charged until the guest's next call; one over the budget stops the
        // others at once (dropping the set aborts them) and ends the execution.
        let mut held = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if self.budget.exceeded().is_some() {
                tasks.abort_all();
                drop(held);
                return std::future::pending().await;
            }
            if let Ok((i, result)) = done {
                results[i] = result.map(|(response, reservation)| {
                    held.push(reservation);
                    response
                });
            }
        }
        for reservation in held {
            self.budget.hand_over(reservation);
        }
        let redactor = self.redactor();
        results
            .into_iter()
            .map(|r| r.map_err(|e| redactor.error(e)))
            .collect()
    }
}

impl email::Host for JobCaps {
    async fn send(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        let r = self.send_email(msg).await;
        self.within_budget(r).await
    }
}

impl JobCaps {
    async fn send_email(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        let call = "`email.send`";
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let data = self.parse_charged(&msg.data, "the message data", call, &mut held)?;
        let template = match &msg.template {
            Some(name) => Some(self.template(name)?.clone()),
            None => None,
        };
        // A template that declares a subject renders it with the data (the DSL's `send` step
        // always carries a plain subject too, which is the fallback).
        let subject = match template.as_ref().and_then(|t| t.subject.as_deref()) {
            Some(s) => interpolate(s, &data),
            None if !msg.subject.trim().is_empty() => interpolate(&msg.subject, &data),
            None => format!("{} from CodeAI Jobs", self.job()),
        };
        let body = self.message_text(template.as_ref(), &data);
        let mut files = Vec::new();
        for id in &msg.attachments {
            let file = self
                .rendered
                .iter()
                .find(|r| &r.id == id)
                .cloned()
                .ok_or_else(|| {
                    CapError::Invalid(format!(
                        "attachment `{id}` is not a report rendered by this execution"
                    ))
                })?;
            files.push(file);
        }
        if msg.to.is_empty() {
            return Err(CapError::Invalid("the message has no recipients".into()));
        }
        if msg.to.len() > notify::MAX_RECIPIENTS {
            return Err(CapError::Invalid(format!(
                "{} recipients (at most {})",
                msg.to.len(),
                notify::MAX_RECIPIENTS
            )));
        }
        let Some(smtp) = self.platform.config.smtp.clone() else {
            let attachments: Vec<Value> = files
                .iter()
                .map(|f| json!({ "id": f.id, "name": f.name }))
                .collect();
            return self
                .hold(store::OutboxItem {
                    tenant: &self.ctx.tenant,
                    job: self.job(),
                    execution_id: Some(self.ctx.execution_id),
                    kind: "email",
                    recipient: Value::from(msg.to.clone()).to_string(),
                    subject: Some(subject),
                    body,
                    attachments: Value::Array(attachments),
                    reason: "no SMTP server is configured (SMTP_HOST)",
                })
                .await;
        };
        let mut attachments = Vec::new();
        for f in &files {
            let failed = |e: std::io::Error| {
                CapError::Failed(format!("reading report `{}`: {e}", f.path.display()))
            };
            // The file's bytes, and its base64 in the message built from them.
            let size = tokio::fs::metadata(&f.path).await.map_err(failed)?.len() as usize;
            held.grow(size + size.div_ceil(3) * 4, call).map_err(over)?;
            let bytes = tokio::fs::read(&f.path).await.map_err(failed)?;
            attachments.push(notify::Attachment {
                file_name: f.name.clone(),
                content_type: content_type(f.format).to_string(),
                bytes,
            });
        }
        let mail = notify::Email {
            to: msg.to,
            subject,
            body,
            attachments,
        };
        match notify::send_email(&smtp, &mail).await {
            Ok(reply) => Ok(Delivery::Sent(reply)),
            Err(notify::NotifyError::Address(a)) => {
                Err(CapError::Invalid(format!("invalid address `{a}`")))
            }
            Err(e) => Err(CapError::Failed(e.to_string())),
        }
    }
}

impl slack::Host for JobCaps {
    async fn post(
        &mut self,
        channel: String,
        template: Option<String>,
        data: String,
    ) -> Result<Delivery, CapError> {
        let call = "`slack.post`";
        let mut held = self.budget.reserve(0, call).map_err(over)?;
        let r = self.parse_charged(&data, "the message data", call, &mut held);
        let data = self.within_budget(r).await?;
        let template = match &template {
            Some(name) => Some(self.template(name)?.clone()),
            None => None,
        };
        let text = self.message_text(template.as_ref(), &data);
        let Some(config) = self.platform.config.slack.clone() else {
            return self
                .hold(store::OutboxItem {
                    tenant: &self.ctx.tenant,
                    job: self.job(),
                    execution_id: Some(self.ctx.execution_id),
                    kind: "slack",
                    recipient: channel,
                    subject: None,
                    body: text,
                    attachments: json!([]),
                    reason: "no Slack webhook is configured (SLACK_WEBHOOK)",
                })
                .await;
        };
        notify::post_slack(&self.platform.webhooks, &config, &channel, &text)
            .await
            .map_err(|e| CapError::Failed(e.to_string()))?;
        Ok(Delivery::Sent(String::new()))
    }
}

impl report::Host for JobCaps {
    async fn render(
        &mut self,
        template: String,
        data: String,
        format: report::Format,
    ) -> Result<report::Rendered, CapError> {
        let decl = self.template(&template)?.clone();
        let call = format!("`report.render` {template}");
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        let r = self.parse_charged(&data, "the report data", &call, &mut held);
        let data = self.within_budget(r).await?;
        let format = match format {
            report::Format::Pdf => ReportFormat::Pdf,
            report::Format::Csv => ReportFormat::Csv,
            report::Format::Html => ReportFormat::Html,
        };
        let now = self.clock_now();
        // The file is named after the period it covers when the data says, else today.
        let label = data
            .pointer("/period/label")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| now.with_timezone(&self.tz).format("%Y-%m-%d").to_string());
        let name = format!(
            "{}-{}.{}",
            kebab(&template),
            kebab(&label),
            extension(format)
        );
        let bytes =
            tokio::task::spawn_blocking(move || crate::report::render(&decl, &data, format))
                .await
                .map_err(|e| CapError::Failed(format!("rendering `{template}`: {e}")))?;
        let r = held.grow(bytes.capacity(), &call).map_err(over);
        self.within_budget(r).await?;
        let id = Uuid::new_v4();
        let path = self.report_path(id, format)?;
        write_file(&path, &bytes).await?;
        let row = store::ReportRow {
            id,
            tenant: self.ctx.tenant.clone(),
            job: self.job().to_string(),
            execution_id: Some(self.ctx.execution_id.to_string()),
            format: extension(format).to_string(),
            size: bytes.len() as i64,
            name: name.clone(),
            created_at: now,
            expires_at: Some(now + self.platform.config.report_ttl),
        };
        if let Err(e) = store::insert_report(&self.platform.db, &row).await {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(db_error("reports")(e));
        }
        self.rendered.push(RenderedFile {
            id: id.to_string(),
            name: name.clone(),
            format,
            path,
        });
        Ok(report::Rendered {
            id: id.to_string(),
            format: match format {
                ReportFormat::Pdf => report::Format::Pdf,
                ReportFormat::Csv => report::Format::Csv,
                ReportFormat::Html => report::Format::Html,
            },
            size: bytes.len() as u64,
            name,
        })
    }

    async fn delete(&mut self, id: String) -> Result<bool, CapError> {
        let Ok(uuid) = Uuid::parse_str(&id) else {
            return Ok(false);
        };
        // The file is found from the report's id, under the report directory; never from a row.
        store::remove_report(
            &self.platform.db,
            &self.platform.config.report_dir,
            &self.ctx.tenant,
            uuid,
        )
        .await
        .map_err(|e| CapError::Failed(e.to_string()))
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CapError> {
    let failed = |e: std::io::Error| CapError::Failed(format!("writing `{}`: {e}", path.display()));
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await.map_err(failed)?;
    }
    // Written beside and renamed, so a crash never leaves half a report under its name.
    let partial = path.with_extension("partial");
    tokio::fs::write(&partial, bytes).await.map_err(failed)?;
    tokio::fs::rename(&partial, path).await.map_err(failed)
}

impl events::Host for JobCaps {
    async fn emit(&mut self, name: String, payload: String) -> Result<(), CapError> {
        if !self.ctx.manifest.events.iter().any(|e| e.name == name) {
            return Err(CapError::Denied(format!(
                "event `{name}` is not declared by this job"
            )));
        }
        let call = format!("`events.emit` {name}");
        let mut held = self.budget.reserve(0, &call).map_err(over)?;
        let r = self.parse_charged(&payload, "the event payload", &call, &mut held);
        let payload = self.within_budget(r).await?;
        if !payload.is_object() {
            return Err(CapError::Invalid(
                "an event payload must be a JSON object".into(),
            ));
        }
        store::insert_event(
            &self.platform.db,
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            Some(self.ctx.execution_id),
            &name,
            &payload,
        )
        .await
        .map_err(db_error("events"))?;
        Ok(())
    }
}

/// Keys and values of the `state` capability are bounded: it is for bookmarks, not storage.
const MAX_STATE_KEY: usize = 200;
const MAX_STATE_VALUE: usize = 64 * 1024;

impl state::Host for JobCaps {
    async fn get(&mut self, key: String) -> Option<String> {
        match store::state_get(
            &self.platform.db,
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            &key,
        )
        .await
        {
            Ok(value) => value,
            Err(e) => {
                tracing::warn!(job = %self.job(), "state.get {key}: {e}");
                None
            }
        }
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), CapError> {
        if key.is_empty() || key.len() > MAX_STATE_KEY {
            return Err(CapError::Invalid(format!(
                "a state key is 1 to {MAX_STATE_KEY} bytes"
            )));
        }
        if value.len() > MAX_STATE_VALUE {
            return Err(CapError::Invalid(format!(
                "a state value is at most {MAX_STATE_VALUE} bytes"
            )));
        }
        parse_json(&value, "the state value")?;
        store::state_set(
            &self.platform.db,
            &self.ctx.tenant,
            &self.ctx.manifest.name,
            &key,
            &value,
        )
        .await
        .map_err(db_error("state"))
    }
}

impl log::Host for JobCaps {
    async fn write(&mut self, level: log::Level, message: String) {
        // A value a server echoed back is not written to the host's log either.
        let message = self.redactor().owned(message);
        let job = self.job();
        let execution = self.ctx.execution_id;
        match level {
            log::Level::Trace => tracing::trace!(%job, %execution, "{message}"),
            log::Level::Debug => tracing::debug!(%job, %execution, "{message}"),
            log::Level::Info => tracing::info!(%job, %execution, "{message}"),
            log::Level::Warn => tracing::warn!(%job, %execution, "{message}"),
            log::Level::Error => tracing::error!(%job, %execution, "{message}"),
        }
    }
}

impl wclock::Host for JobCaps {
    async fn now(&mut self) -> wclock::Instant {
        clock::instant(self.tz, self.clock_now())
    }

    async fn timezone(&mut self) -> String {
        self.tz.name().to_string()
    }

    async fn period(&mut self, unit: wclock::PeriodUnit, offset: i32) -> wclock::CalendarPeriod {
        clock::period(self.tz, self.clock_now(), unit, offset)
    }

    async fn shift(&mut self, at: i64, unit: wclock::PeriodUnit, amount: i32) -> wclock::Instant {
        clock::shift(self.tz, at, unit, amount)
    }
}
