//! Capability gating: the host state a job's store holds wraps the real capabilities and lets a
//! call through only when the job may use that WIT interface — its manifest lists it in
//! `capabilities` and the tenant grants it.
//!
//! A refused call returns `cap-error::denied` to the guest; it is not a trap. Functions whose WIT
//! signature has no error channel are handled as follows:
//! - `log.write`: the line is dropped;
//! - `state.get`: answers `none`;
//! - `http.call-many`: every element is `denied`;
//! - `clock.*`: there is no honest answer, so the execution is ended (status `failed`, the
//!   denial as its error) instead of handing the guest a made-up time.
//!
//! Every refusal is recorded (`interface.function`) and ends up in the execution's result.
//! `log.write` lines that are let through are also kept, bounded, as the execution log.

use super::budget::MemoryBudget;
use super::cancel::CancelToken;
use crate::wasm::{
    calls, clock, data, email, events, http, log, program, report, slack, state, types, CapError,
    Capabilities, Delivery,
};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One WIT interface of the `job` world that a manifest can list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    Data,
    Http,
    Email,
    Slack,
    Report,
    Events,
    State,
    Log,
    Clock,
}

impl Capability {
    /// Every capability, in WIT order.
    pub const ALL: [Capability; 9] = [
        Capability::Data,
        Capability::Http,
        Capability::Email,
        Capability::Slack,
        Capability::Report,
        Capability::Events,
        Capability::State,
        Capability::Log,
        Capability::Clock,
    ];

    /// The interface's name, as manifests spell it.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Data => "data",
            Capability::Http => "http",
            Capability::Email => "email",
            Capability::Slack => "slack",
            Capability::Report => "report",
            Capability::Events => "events",
            Capability::State => "state",
            Capability::Log => "log",
            Capability::Clock => "clock",
        }
    }

    /// The capability a manifest name stands for.
    pub fn parse(name: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapabilitySet(u16);

impl CapabilitySet {
    /// No capability.
    pub const NONE: CapabilitySet = CapabilitySet(0);

    /// Every capability.
    pub fn all() -> CapabilitySet {
        Capability::ALL.into_iter().collect()
    }

    /// The capabilities named in `names`; names that are not interfaces of the `job` world are
    /// ignored (they grant nothing).
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> CapabilitySet {
        names
            .iter()
            .filter_map(|n| Capability::parse(n.as_ref()))
            .collect()
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    pub fn insert(&mut self, cap: Capability) {
        self.0 |= cap.bit();
    }

    /// The capabilities in both sets.
    pub fn intersect(self, other: CapabilitySet) -> CapabilitySet {
        CapabilitySet(self.0 & other.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> CapabilitySet {
        let mut set = CapabilitySet::NONE;
        for cap in iter {
            set.insert(cap);
        }
        set
    }
}

/// One line of an execution's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: log::Level,
    pub message: String,
}

impl LogLine {
    /// `trace`, `debug`, `info`, `warn` or `error`.
    pub fn level_name(&self) -> &'static str {
        match self.level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        }
    }
}

/// At most this many log lines are kept per execution; later ones are counted, not kept.
pub const MAX_LOG_LINES: usize = 1_000;
/// Longer log lines are cut to this many bytes.
pub const MAX_LOG_LINE_BYTES: usize = 8 * 1024;

/// At most this many capability calls are recorded per execution; later ones are counted.
pub const MAX_CALL_RECORDS: usize = 1_000;

/// At most this many step marks are kept per execution; later ones are ignored.
pub const MAX_STEP_RECORDS: usize = 1_000;
/// Longer step names (from the guest) are cut to this many bytes.
const MAX_STEP_NAME_BYTES: usize = 256;

/// One of the job's own steps, as the guest marked it (`log.step`): from its mark to the next
/// one, the last to the end of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub name: String,
    /// When it started, from the start of the execution.
    pub at: Duration,
    /// Until the next step started; `None` for the last one (it ends with the run).
    pub duration: Option<Duration>,
}

/// One capability call an execution made, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// `interface.function`, e.g. `data.select`.
    pub call: &'static str,
    /// What it was about and what came back, e.g. `Order: 2048 bytes`.
    pub detail: String,
    /// When it started, from the start of the execution.
    pub at: Duration,
    pub duration: Duration,
    /// The error returned to the guest, if any.
    pub error: Option<String>,
}

fn describe_error(e: &CapError) -> String {
    match e {
        CapError::Denied(m) => format!("denied: {m}"),
        CapError::Invalid(m) => format!("invalid: {m}"),
        CapError::Timeout(m) => format!("timeout: {m}"),
        CapError::Failed(m) => format!("failed: {m}"),
    }
}

/// What an execution's gate hands back when it ends.
pub(crate) struct Parts<C> {
    pub(crate) inner: C,
    pub(crate) denied: Vec<String>,
    pub(crate) logs: Vec<LogLine>,
    pub(crate) logs_dropped: usize,
    pub(crate) calls: Vec<CallRecord>,
    pub(crate) calls_dropped: usize,
    pub(crate) steps: Vec<StepRecord>,
}

/// The host state of one execution's capabilities: the real implementations `C` behind the gate.
pub struct Gated<C> {
    inner: C,
    allowed: CapabilitySet,
    job: String,
    denied: Vec<String>,
    logs: Vec<LogLine>,
    logs_dropped: usize,
    calls: Vec<CallRecord>,
    calls_dropped: usize,
    steps: Vec<StepRecord>,
    started: Instant,
    /// Set when a denial ends the execution; the reason is in `fatal`.
    abort: CancelToken,
    fatal: Option<String>,
    /// The execution's memory: every call releases the buffers the last one handed over.
    budget: MemoryBudget,
    /// The job's program, handed to the guest by `program.get`.
    program: Arc<[u8]>,
}

impl<C> Gated<C> {
    pub(crate) fn new(
        inner: C,
        allowed: CapabilitySet,
        job: &str,
        budget: MemoryBudget,
        program: Arc<[u8]>,
    ) -> Gated<C> {
        Gated {
            inner,
            allowed,
            job: job.to_string(),
            denied: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            calls: Vec::new(),
            calls_dropped: 0,
            steps: Vec::new(),
            started: Instant::now(),
            abort: CancelToken::new(),
            fatal: None,
            budget,
            program,
        }
    }

    /// The capabilities calls may use.
    pub fn allowed(&self) -> CapabilitySet {
        self.allowed
    }

    pub(crate) fn abort_token(&self) -> CancelToken {
        self.abort.clone()
    }

    pub(crate) fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    pub(crate) fn into_parts(self) -> Parts<C> {
        Parts {
            inner: self.inner,
            denied: self.denied,
            logs: self.logs,
            logs_dropped: self.logs_dropped,
            calls: self.calls,
            calls_dropped: self.calls_dropped,
            steps: self.steps,
        }
    }

    /// `log.step`, which waits for nothing: a host may call it without a future.
    pub(crate) fn step_now(&mut self, name: String) {
        if self.check(Capability::Log, "step").is_ok() {
            self.mark_step(name);
        }
    }

    /// Marks the start of a step: the one before ends now.
    fn mark_step(&mut self, mut name: String) {
        if self.steps.len() >= MAX_STEP_RECORDS {
            return;
        }
        if name.len() > MAX_STEP_NAME_BYTES {
            let mut cut = MAX_STEP_NAME_BYTES;
            while !name.is_char_boundary(cut) {
                cut -= 1;
            }
            name.truncate(cut);
        }
        let at = self.started.elapsed();
        if let Some(last) = self.steps.last_mut() {
            last.duration = Some(at.saturating_sub(last.at));
        }
        self.steps.push(StepRecord {
            name,
            at,
            duration: None,
        });
    }

    /// Records a capability call that was let through, with its timing and outcome.
    fn record<T>(
        &mut self,
        call: &'static str,
        detail: String,
        started: Instant,
        r: &Result<T, CapError>,
    ) {
        if self.calls.len() >= MAX_CALL_RECORDS {
            self.calls_dropped += 1;
            return;
        }
        self.calls.push(CallRecord {
            call,
            detail,
            at: started.saturating_duration_since(self.started),
            duration: started.elapsed(),
            error: r.as_ref().err().map(describe_error),
        });
    }

    /// Records a delivery; a message held in the outbox also gets a line in the log.
    fn delivered(
        &mut self,
        call: &'static str,
        detail: &str,
        started: Instant,
        r: &Result<Delivery, CapError>,
    ) {
        let detail = match r {
            Ok(Delivery::Sent(reply)) if reply.is_empty() => format!("{detail}: sent"),
            Ok(Delivery::Sent(reply)) => format!("{detail}: sent ({reply})"),
            Ok(Delivery::Held(id)) => {
                let what = if call == "email.send" {
                    "no SMTP server"
                } else {
                    "no Slack webhook"
                };
                self.push_log(
                    log::Level::Info,
                    format!("{call} {detail}: {what} is configured, held in the outbox as {id}"),
                );
                format!("{detail}: held in the outbox ({id})")
            }
            Err(_) => detail.to_string(),
        };
        self.record(call, detail, started, r);
    }

    fn push_log(&mut self, level: log::Level, message: String) {
        if self.logs.len() < MAX_LOG_LINES {
            self.logs.push(LogLine { level, message });
        } else {
            self.logs_dropped += 1;
        }
    }

    /// `Ok` when `cap` is allowed; otherwise records the refusal and returns the guest's error.
    fn check(&mut self, cap: Capability, function: &str) -> Result<(), CapError> {
        // A new call: the guest has copied what the last one returned.
        self.budget.settle();
        if self.fatal.is_none() && self.allowed.contains(cap) {
            return Ok(());
        }
        self.denied.push(format!("{cap}.{function}"));
        tracing::warn!(job = %self.job, "denied a call to {cap}.{function}");
        Err(CapError::Denied(format!(
            "capability `{cap}` is not granted to job `{}`",
            self.job
        )))
    }

    /// A denial with no error channel to report it: ends the execution.
    async fn deny_fatally<T>(&mut self, error: CapError) -> T {
        let CapError::Denied(message) = error else {
            unreachable!("check only returns `denied`")
        };
        self.fatal.get_or_insert(message);
        self.abort.cancel();
        // The execution's `select!` sees the abort token and drops this call.
        std::future::pending().await
    }
}

impl<C: Capabilities> types::Host for Gated<C> {}

impl<C: Capabilities> data::Host for Gated<C> {
    async fn select(&mut self, q: data::Query) -> Result<String, CapError> {
        let entity = q.entity.clone();
        self.check(Capability::Data, "select")?;
        let t = Instant::now();
        let r = self.inner.select(q).await;
        self.record("data.select", rows_read(entity, &r), t, &r);
        r
    }

    async fn select_page(&mut self, q: data::Query, offset: u32) -> Result<String, CapError> {
        let entity = q.entity.clone();
        self.check(Capability::Data, "select-page")?;
        let t = Instant::now();
        let r = self.inner.select_page(q, offset).await;
        self.record("data.select", rows_read(entity, &r), t, &r);
        r
    }

    async fn aggregate(&mut self, q: data::AggregateQuery) -> Result<String, CapError> {
        let entity = q.entity.clone();
        self.check(Capability::Data, "aggregate")?;
        let t = Instant::now();
        let r = self.inner.aggregate(q).await;
        self.record("data.aggregate", rows_read(entity, &r), t, &r);
        r
    }

    async fn count(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.check(Capability::Data, "count")?;
        let t = Instant::now();
        let r = self.inner.count(entity.clone(), filter).await;
        self.record("data.count", counted(&entity, &r), t, &r);
        r
    }

    async fn delete(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.check(Capability::Data, "delete")?;
        let t = Instant::now();
        let r = data::Host::delete(&mut self.inner, entity.clone(), filter).await;
        self.record("data.delete", counted(&entity, &r), t, &r);
        r
    }

    async fn update(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
        set: Vec<data::Assignment>,
    ) -> Result<u64, CapError> {
        self.check(Capability::Data, "update")?;
        let t = Instant::now();
        let r = self.inner.update(entity.clone(), filter, set).await;
        self.record("data.update", counted(&entity, &r), t, &r);
        r
    }

    async fn insert(&mut self, entity: String, rows: String) -> Result<u64, CapError> {
        self.check(Capability::Data, "insert")?;
        let t = Instant::now();
        let r = self.inner.insert(entity.clone(), rows).await;
        self.record("data.insert", counted(&entity, &r), t, &r);
        r
    }

    async fn upsert(
        &mut self,
        entity: String,
        rows: String,
        keys: Vec<String>,
    ) -> Result<u64, CapError> {
        self.check(Capability::Data, "upsert")?;
        let t = Instant::now();
        let r = self.inner.upsert(entity.clone(), rows, keys).await;
        self.record("data.upsert", counted(&entity, &r), t, &r);
        r
    }

    async fn maintain(
        &mut self,
        op: data::MaintenanceOp,
        entity: Option<String>,
    ) -> Result<String, CapError> {
        self.check(Capability::Data, "maintain")?;
        let t = Instant::now();
        let r = self.inner.maintain(op, entity).await;
        let detail = r.clone().unwrap_or_default();
        self.record("data.maintain", detail, t, &r);
        r
    }
}

/// `Entity: 3 rows (120 bytes)`: the rows a read returned, counted without building them.
fn rows_read(entity: String, r: &Result<String, CapError>) -> String {
    match r {
        Ok(json) => match serde_json::from_str::<Vec<serde::de::IgnoredAny>>(json) {
            Ok(rows) => format!(
                "{entity}: {} ({} bytes)",
                rows_in_words(rows.len()),
                json.len()
            ),
            Err(_) => format!("{entity}: {} bytes", json.len()),
        },
        Err(_) => entity,
    }
}

fn counted(entity: &str, r: &Result<u64, CapError>) -> String {
    match r {
        Ok(n) => format!("{entity}: {}", rows_in_words(*n as usize)),
        Err(_) => entity.to_string(),
    }
}

/// `no rows`, `1 row`, `12 rows`.
fn rows_in_words(n: usize) -> String {
    match n {
        0 => "no rows".to_string(),
        1 => "1 row".to_string(),
        n => format!("{n} rows"),
    }
}

impl<C: Capabilities> http::Host for Gated<C> {
    async fn call(&mut self, req: http::CallRequest) -> Result<http::CallResponse, CapError> {
        self.check(Capability::Http, "call")?;
        let detail = format!("{}.{}", req.integration, req.operation);
        let t = Instant::now();
        let r = self.inner.call(req).await;
        let detail = match &r {
            Ok(resp) => format!("{detail}: HTTP {}", resp.status),
            Err(_) => detail,
        };
        self.record("http.call", detail, t, &r);
        r
    }

    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        // Whatever the component asks, at most `MAX_PARALLEL` calls are in flight.
        let concurrency = concurrency.clamp(1, codeai_ir::limits::MAX_PARALLEL);
        match self.check(Capability::Http, "call-many") {
            Ok(()) => {
                let detail = reqs
                    .first()
                    .map(|r| format!("{}.{}", r.integration, r.operation))
                    .unwrap_or_default();
                let n = reqs.len();
                let t = Instant::now();
                let results = self.inner.call_many(reqs, concurrency).await;
                let failed = results.iter().filter(|r| r.is_err()).count();
                let summary: Result<(), CapError> = Ok(());
                self.record(
                    "http.call-many",
                    format!("{detail} x{n} (concurrency {concurrency}): {failed} failed"),
                    t,
                    &summary,
                );
                results
            }
            Err(denied) => vec![Err(denied); reqs.len()],
        }
    }
}

impl<C: Capabilities> email::Host for Gated<C> {
    async fn send(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        self.check(Capability::Email, "send")?;
        let to = msg.to.join(", ");
        let t = Instant::now();
        let r = self.inner.send(msg).await;
        self.delivered("email.send", &format!("to {to}"), t, &r);
        r
    }
}

impl<C: Capabilities> slack::Host for Gated<C> {
    async fn post(
        &mut self,
        channel: String,
        template: Option<String>,
        data: String,
    ) -> Result<Delivery, CapError> {
        self.check(Capability::Slack, "post")?;
        let t = Instant::now();
        let r = self.inner.post(channel.clone(), template, data).await;
        self.delivered("slack.post", &format!("to {channel}"), t, &r);
        r
    }
}

impl<C: Capabilities> report::Host for Gated<C> {
    async fn render(
        &mut self,
        template: String,
        data: String,
        format: report::Format,
    ) -> Result<report::Rendered, CapError> {
        self.check(Capability::Report, "render")?;
        let t = Instant::now();
        let r = self.inner.render(template.clone(), data, format).await;
        let detail = match &r {
            Ok(done) => format!(
                "{template}: {} ({} bytes, id {})",
                done.name, done.size, done.id
            ),
            Err(_) => template,
        };
        self.record("report.render", detail, t, &r);
        r
    }

    async fn delete(&mut self, id: String) -> Result<bool, CapError> {
        self.check(Capability::Report, "delete")?;
        let t = Instant::now();
        let r = report::Host::delete(&mut self.inner, id.clone()).await;
        self.record("report.delete", id, t, &r);
        r
    }
}

impl<C: Capabilities> events::Host for Gated<C> {
    async fn emit(&mut self, name: String, payload: String) -> Result<(), CapError> {
        self.check(Capability::Events, "emit")?;
        let t = Instant::now();
        let r = self.inner.emit(name.clone(), payload).await;
        self.record("events.emit", name, t, &r);
        r
    }
}

impl<C: Capabilities> state::Host for Gated<C> {
    async fn get(&mut self, key: String) -> Option<String> {
        self.check(Capability::State, "get").ok()?;
        let t = Instant::now();
        let r = self.inner.get(key.clone()).await;
        let found: Result<(), CapError> = Ok(());
        let detail = format!("{key}: {}", if r.is_some() { "found" } else { "none" });
        self.record("state.get", detail, t, &found);
        r
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), CapError> {
        self.check(Capability::State, "set")?;
        let t = Instant::now();
        let r = self.inner.set(key.clone(), value).await;
        self.record("state.set", key, t, &r);
        r
    }
}

impl<C: Capabilities> log::Host for Gated<C> {
    async fn write(&mut self, level: log::Level, mut message: String) {
        if self.check(Capability::Log, "write").is_err() {
            return;
        }
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.push_log(level, message.clone());
        self.inner.write(level, message).await;
    }

    async fn step(&mut self, name: String) {
        self.step_now(name);
    }
}

impl<C: Capabilities> clock::Host for Gated<C> {
    async fn now(&mut self) -> clock::Instant {
        match self.check(Capability::Clock, "now") {
            Ok(()) => self.inner.now().await,
            Err(denied) => self.deny_fatally(denied).await,
        }
    }

    async fn timezone(&mut self) -> String {
        match self.check(Capability::Clock, "timezone") {
            Ok(()) => self.inner.timezone().await,
            Err(denied) => self.deny_fatally(denied).await,
        }
    }

    async fn period(&mut self, unit: clock::PeriodUnit, offset: i32) -> clock::CalendarPeriod {
        match self.check(Capability::Clock, "period") {
            Ok(()) => self.inner.period(unit, offset).await,
            Err(denied) => self.deny_fatally(denied).await,
        }
    }

    async fn shift(&mut self, at: i64, unit: clock::PeriodUnit, amount: i32) -> clock::Instant {
        match self.check(Capability::Clock, "shift") {
            Ok(()) => self.inner.shift(at, unit, amount).await,
            Err(denied) => self.deny_fatally(denied).await,
        }
    }

    async fn local(&mut self, at: i64) -> clock::Instant {
        match self.check(Capability::Clock, "local") {
            Ok(()) => self.inner.local(at).await,
            Err(denied) => self.deny_fatally(denied).await,
        }
    }
}

/// The gate is itself the capabilities a job sees.
impl<C: Capabilities> Capabilities for Gated<C> {
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.inner.set_memory_budget(budget);
    }
}

impl<C: Capabilities> calls::Host for Gated<C> {
    async fn call(&mut self, request: calls::Request) -> calls::Response {
        crate::wasm::call(self, request).await
    }

    /// Through a component of any shape (the guest runtime runs as a core module, and its
    /// requests come through [`Gated::call_encoded_trusted`]): what decoding the bytes may
    /// allocate is charged to the execution's memory first ([`crate::wasm::ENCODED_EXPANSION`]).
    async fn call_encoded(&mut self, request: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        let charge = request.len().saturating_mul(crate::wasm::ENCODED_EXPANSION);
        let decoded = {
            let _decoding = self
                .budget
                .reserve(charge, "decoding a `calls.call-encoded` request")
                .map_err(|e| wasmtime::Error::msg(e.0))?;
            crate::wasm::decode_request(&request)?
        };
        drop(request);
        crate::wasm::encode_response(&crate::wasm::call(self, decoded).await)
    }
}

impl<C: Capabilities> Gated<C> {
    /// `calls.call-encoded` from the guest runtime's own core module (`core_module.rs`), whose
    /// requests are typed values it encoded itself: decoding one allocates about what the guest
    /// holds, so nothing more is charged.
    pub(crate) async fn call_encoded_trusted(
        &mut self,
        request: &[u8],
    ) -> wasmtime::Result<Vec<u8>> {
        crate::wasm::call_encoded(self, request).await
    }
}

/// Not a capability: every job may read its own program, and nothing is recorded.
impl<C: Capabilities> program::Host for Gated<C> {
    async fn get(&mut self) -> Vec<u8> {
        self.program.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::{Capability, CapabilitySet};

    #[test]
    fn sets_parse_intersect_and_ignore_unknown_names() {
        let manifest = CapabilitySet::from_names(&["data", "log", "teleport"]);
        assert_eq!(
            manifest.iter().collect::<Vec<_>>(),
            [Capability::Data, Capability::Log]
        );
        let grants = CapabilitySet::from_names(&["log", "events"]);
        assert_eq!(
            manifest.intersect(grants).iter().collect::<Vec<_>>(),
            [Capability::Log]
        );
        assert_eq!(CapabilitySet::all().iter().count(), 9);
    }
}
