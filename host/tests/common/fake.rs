//! The one fake of the `codeai:host` capabilities, shared by the tests and the benches (which
//! include this file by path: it needs nothing but the host crate).
//!
//! [`Fake`] records every call the guest makes as a [`Call`] — interface, function and the
//! arguments as JSON — and asks its [`Script`] for the answer, given as JSON in the shape of the
//! function's result (the table on [`Script::answer`]). A test writes only what its jobs should
//! be told; the plumbing of ten interfaces is written once, here.

#![allow(dead_code, unreachable_pub)]

use codeai_host::runtime::MemoryBudget;
use codeai_host::wasm::{
    calls, clock, data, email, events, http, log, program, report, slack, state, types, CapError,
    Delivery,
};
use serde_json::{json, Value};
use std::future::Future;

/// One capability call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    pub interface: &'static str,
    pub function: &'static str,
    pub args: Value,
}

impl Call {
    /// `interface.function`, as the runtime names calls.
    pub fn name(&self) -> String {
        format!("{}.{}", self.interface, self.function)
    }

    /// Whether this is a call to `interface.function`.
    pub fn is(&self, interface: &str, function: &str) -> bool {
        self.interface == interface && self.function == function
    }
}

/// What a [`Fake`] answers.
pub trait Script: Send + 'static {
    /// The answer to `call`, as JSON in the shape of the function's result:
    ///
    /// | call | answer |
    /// | --- | --- |
    /// | `data.select` | the rows |
    /// | `data.count`, `delete`, `update`, `insert` | a number |
    /// | `data.maintain`, `clock.timezone` | a string |
    /// | `http.call` | `{"status": n, "body": json}` |
    /// | `http.call-many` | an array of `http.call` answers or `{"failed": message}` |
    /// | `email.send`, `slack.post` | `{"held": id}` or `{"sent": reply}` |
    /// | `report.render` | `{"id", "format", "size", "name"}` |
    /// | `report.delete` | a boolean |
    /// | `events.emit`, `state.set` | anything |
    /// | `state.get` | `null` for none, else the value |
    /// | `clock.now`, `clock.shift` | [`instant_json`] |
    /// | `clock.period` | `{"start": instant, "end": instant, "label"}` |
    ///
    /// `log.write` is recorded and never asked. An `Err` is the guest's `cap-error`; functions
    /// without an error channel (`state.get`, `clock.*`) must be answered.
    fn answer(&mut self, call: &Call) -> impl Future<Output = Result<Value, CapError>> + Send;

    /// The execution's memory budget, given before it starts (see
    /// `codeai_host::wasm::Capabilities`).
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        let _ = budget;
    }
}

/// Recording fake capabilities answered by the script `S`.
pub struct Fake<S> {
    /// Every call, in order.
    pub calls: Vec<Call>,
    pub script: S,
}

impl<S: Script> Fake<S> {
    pub fn new(script: S) -> Fake<S> {
        Fake {
            calls: Vec::new(),
            script,
        }
    }

    /// The names of the calls, in order.
    pub fn names(&self) -> Vec<String> {
        self.calls.iter().map(Call::name).collect()
    }

    /// The calls to `interface`, in order.
    pub fn calls_to(&self, interface: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.interface == interface)
            .collect()
    }

    /// The messages of the `log.write` calls.
    pub fn logs(&self) -> Vec<String> {
        self.calls_to("log")
            .iter()
            .map(|c| c.args["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Records the call and asks the script.
    /// Records the call before it is answered, so a call that never returns is recorded too.
    async fn ask(
        &mut self,
        interface: &'static str,
        function: &'static str,
        args: Value,
    ) -> Result<Value, CapError> {
        self.calls.push(Call {
            interface,
            function,
            args,
        });
        let call = self.calls.last().expect("just recorded");
        self.script.answer(call).await
    }

    /// Asks a function with no error channel, whose script must answer.
    async fn tell(
        &mut self,
        interface: &'static str,
        function: &'static str,
        args: Value,
    ) -> Value {
        match self.ask(interface, function, args).await {
            Ok(answer) => answer,
            Err(e) => panic!("the script must answer {interface}.{function}, not {e:?}"),
        }
    }

    async fn counted(&mut self, function: &'static str, args: Value) -> Result<u64, CapError> {
        let answer = self.ask("data", function, args).await?;
        Ok(answer
            .as_u64()
            .unwrap_or_else(|| panic!("data.{function} answers a count, not {answer}")))
    }

    async fn delivery(
        &mut self,
        interface: &'static str,
        args: Value,
    ) -> Result<Delivery, CapError> {
        let function = if interface == "email" { "send" } else { "post" };
        let answer = self.ask(interface, function, args).await?;
        Ok(match (&answer["held"], &answer["sent"]) {
            (Value::String(id), _) => Delivery::Held(id.clone()),
            (_, Value::String(reply)) => Delivery::Sent(reply.clone()),
            _ => panic!("{interface}.{function} answers held or sent, not {answer}"),
        })
    }
}

impl<S: Script> codeai_host::wasm::Capabilities for Fake<S> {
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.script.set_memory_budget(budget);
    }
}

/// The instant `unix_ms` in the answer shape of `clock.now`.
pub fn instant_json(unix_ms: i64, utc_offset_seconds: i32) -> Value {
    json!({ "unix_ms": unix_ms, "utc_offset_seconds": utc_offset_seconds })
}

/// A script's answer for the clock that stands still at 2026-01-13 11:00 UTC, `None` for a
/// call that is not to the clock.
pub fn still_clock(call: &Call) -> Option<Value> {
    let now = instant_json(1_768_302_000_000, 0);
    Some(match call.function {
        _ if call.interface != "clock" => return None,
        "timezone" => json!("UTC"),
        "period" => json!({ "start": now, "end": now, "label": "2026-01-13" }),
        _ => now,
    })
}

/// A script that refuses every call that has an error channel with `failed: <reason>`; the
/// clock stands still ([`still_clock`]) and `state.get` finds nothing.
pub struct Refuse(pub &'static str);

impl Script for Refuse {
    async fn answer(&mut self, call: &Call) -> Result<Value, CapError> {
        if let Some(time) = still_clock(call) {
            return Ok(time);
        }
        match call.name().as_str() {
            "state.get" => Ok(Value::Null),
            _ => Err(CapError::Failed(self.0.into())),
        }
    }
}

fn instant(answer: &Value) -> clock::Instant {
    let field = |name: &str| answer[name].as_i64();
    match (field("unix_ms"), field("utc_offset_seconds")) {
        (Some(unix_ms), Some(offset)) => clock::Instant {
            unix_ms,
            utc_offset_seconds: offset as i32,
        },
        _ => panic!("a clock instant is {{unix_ms, utc_offset_seconds}}, not {answer}"),
    }
}

fn response(answer: &Value) -> Result<http::CallResponse, CapError> {
    if let Some(message) = answer["failed"].as_str() {
        return Err(CapError::Failed(message.into()));
    }
    match answer["status"].as_u64() {
        Some(status) => Ok(http::CallResponse {
            status: status as u16,
            body: answer["body"].to_string(),
        }),
        None => panic!("an HTTP answer is {{status, body}} or {{failed}}, not {answer}"),
    }
}

/// JSON text from the guest as a value; text that is not JSON is kept as `{"unparsed": text}`
/// so a test sees it instead of the fake panicking.
pub fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({ "unparsed": text }))
}

/// A filter tree as JSON: `{"all": [...]}`, `{"any": [...]}`, `{"not": x}` or
/// `[field, op, value]`. Nested `all`s (from `a and b and c`) are flattened, since how the
/// parser groups a chain of `and`s does not change what the filter means.
pub fn filter_json(filter: &Option<data::Filter>) -> Value {
    fn node(filter: &data::Filter, index: u32, depth: usize) -> Value {
        if depth > 64 {
            return json!("cycle");
        }
        let Some(n) = filter.nodes.get(index as usize) else {
            return json!(format!("bad index {index}"));
        };
        match n {
            data::FilterNode::All(children) => {
                let mut flat = Vec::new();
                for &child in children {
                    match node(filter, child, depth + 1) {
                        Value::Object(mut o) if o.contains_key("all") => {
                            if let Some(Value::Array(inner)) = o.remove("all") {
                                flat.extend(inner);
                            }
                        }
                        other => flat.push(other),
                    }
                }
                json!({ "all": flat })
            }
            data::FilterNode::Any(children) => {
                json!({ "any": children.iter().map(|&c| node(filter, c, depth + 1)).collect::<Vec<_>>() })
            }
            data::FilterNode::Not(child) => json!({ "not": node(filter, *child, depth + 1) }),
            data::FilterNode::Compare(c) => {
                json!([c.field, compare_op(c.op), parse_json(&c.value)])
            }
            data::FilterNode::Terms(t) => {
                json!([term(t, t.left), compare_op(t.op), term(t, t.right)])
            }
        }
    }
    /// A term as JSON: `{"column": …}`, the value, `["mul", a, b]` or `["lower", a]`.
    fn term(t: &data::TermComparison, i: u32) -> Value {
        match t.terms.get(i as usize) {
            Some(data::Term::Column(c)) => json!({ "column": c }),
            Some(data::Term::Value(v)) => parse_json(v),
            Some(data::Term::Arith((op, a, b))) if *a < i && *b < i => {
                json!([format!("{op:?}").to_lowercase(), term(t, *a), term(t, *b)])
            }
            Some(data::Term::Apply((f, a))) if *a < i => {
                json!([format!("{f:?}").to_lowercase(), term(t, *a)])
            }
            _ => json!("invalid term"),
        }
    }
    match filter {
        None => Value::Null,
        Some(f) => node(f, f.root, 0),
    }
}

fn compare_op(op: data::CompareOp) -> &'static str {
    use data::CompareOp::*;
    match op {
        Eq => "eq",
        Ne => "ne",
        Lt => "lt",
        Le => "le",
        Gt => "gt",
        Ge => "ge",
        Like => "like",
        In => "in",
        IsNull => "is-null",
        IsNotNull => "is-not-null",
    }
}

fn assignments_json(set: &[data::Assignment]) -> Value {
    let mut out = serde_json::Map::new();
    for a in set {
        let value = match &a.value {
            data::NewValue::Set(v) => json!({ "set": parse_json(v) }),
            data::NewValue::Add(n) => json!({ "add": n }),
        };
        out.insert(a.field.clone(), value);
    }
    Value::Object(out)
}

fn request_json(r: &http::CallRequest) -> Value {
    json!({
        "integration": r.integration,
        "operation": r.operation,
        "args": parse_json(&r.args),
        "timeout_ms": r.timeout_ms,
    })
}

fn maintenance_op(op: data::MaintenanceOp) -> &'static str {
    match op {
        data::MaintenanceOp::Vacuum => "vacuum",
        data::MaintenanceOp::Analyze => "analyze",
        data::MaintenanceOp::Reindex => "reindex",
    }
}

pub fn unit_name(unit: clock::PeriodUnit) -> &'static str {
    match unit {
        clock::PeriodUnit::Day => "day",
        clock::PeriodUnit::Week => "week",
        clock::PeriodUnit::Month => "month",
        clock::PeriodUnit::Year => "year",
    }
}

pub fn format_name(format: report::Format) -> &'static str {
    match format {
        report::Format::Pdf => "pdf",
        report::Format::Csv => "csv",
        report::Format::Html => "html",
    }
}

fn format_named(name: &str) -> report::Format {
    match name {
        "pdf" => report::Format::Pdf,
        "csv" => report::Format::Csv,
        "html" => report::Format::Html,
        other => panic!("no report format `{other}`"),
    }
}

// The generated signatures, shortened.
type Filter = Option<data::Filter>;
type Counted = Result<u64, CapError>;
type Set = Vec<data::Assignment>;
type Delivered = Result<Delivery, CapError>;
type Rendered = Result<report::Rendered, CapError>;

impl<S: Script> types::Host for Fake<S> {}

impl<S: Script> data::Host for Fake<S> {
    async fn aggregate(&mut self, q: data::AggregateQuery) -> Result<String, CapError> {
        let columns: Vec<Value> = q
            .columns
            .iter()
            .map(|c| json!([c.name, format!("{:?}", c.function), c.field]))
            .collect();
        let args = json!({ "entity": q.entity, "columns": columns, "group_by": q.group_by });
        Ok(self.ask("data", "aggregate", args).await?.to_string())
    }

    async fn select(&mut self, q: data::Query) -> Result<String, CapError> {
        let order: Vec<Value> = q
            .order
            .iter()
            .map(|o| json!([o.field, if o.descending { "desc" } else { "asc" }]))
            .collect();
        let args = json!({ "entity": q.entity, "filter": filter_json(&q.filter), "order": order, "limit": q.limit });
        Ok(self.ask("data", "select", args).await?.to_string())
    }

    async fn select_page(&mut self, q: data::Query, offset: u32) -> Result<String, CapError> {
        let args = json!({ "entity": q.entity, "limit": q.limit, "offset": offset });
        Ok(self.ask("data", "select_page", args).await?.to_string())
    }

    async fn count(&mut self, entity: String, filter: Filter) -> Counted {
        let args = json!({ "entity": entity, "filter": filter_json(&filter) });
        self.counted("count", args).await
    }

    async fn delete(&mut self, entity: String, filter: Filter) -> Counted {
        let args = json!({ "entity": entity, "filter": filter_json(&filter) });
        self.counted("delete", args).await
    }

    async fn update(&mut self, entity: String, filter: Filter, set: Set) -> Counted {
        let (filter, set) = (filter_json(&filter), assignments_json(&set));
        let args = json!({ "entity": entity, "filter": filter, "set": set });
        self.counted("update", args).await
    }

    async fn insert(&mut self, entity: String, rows: String) -> Counted {
        let args = json!({ "entity": entity, "rows": parse_json(&rows) });
        self.counted("insert", args).await
    }

    async fn upsert(&mut self, entity: String, rows: String, keys: Vec<String>) -> Counted {
        let args = json!({ "entity": entity, "rows": parse_json(&rows), "keys": keys });
        self.counted("upsert", args).await
    }

    async fn maintain(
        &mut self,
        op: data::MaintenanceOp,
        entity: Option<String>,
    ) -> Result<String, CapError> {
        let args = json!({ "op": maintenance_op(op), "entity": entity });
        let answer = self.ask("data", "maintain", args).await?;
        Ok(answer
            .as_str()
            .unwrap_or_else(|| panic!("data.maintain answers a string, not {answer}"))
            .into())
    }
}

impl<S: Script> http::Host for Fake<S> {
    async fn call(&mut self, req: http::CallRequest) -> Result<http::CallResponse, CapError> {
        response(&self.ask("http", "call", request_json(&req)).await?)
    }

    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        let requests: Vec<Value> = reqs.iter().map(request_json).collect();
        let args = json!({ "requests": requests, "concurrency": concurrency });
        match self.ask("http", "call-many", args).await {
            Ok(Value::Array(answers)) if answers.len() == reqs.len() => {
                answers.iter().map(response).collect()
            }
            Ok(other) => panic!("http.call-many answers one answer per request, not {other}"),
            Err(e) => reqs.iter().map(|_| Err(e.clone())).collect(),
        }
    }
}

impl<S: Script> email::Host for Fake<S> {
    async fn send(&mut self, msg: email::Message) -> Delivered {
        let args = json!({
            "to": msg.to,
            "subject": msg.subject,
            "template": msg.template,
            "data": parse_json(&msg.data),
            "attachments": msg.attachments,
        });
        self.delivery("email", args).await
    }
}

impl<S: Script> slack::Host for Fake<S> {
    async fn post(&mut self, channel: String, template: Option<String>, data: String) -> Delivered {
        let args = json!({ "channel": channel, "template": template, "data": parse_json(&data) });
        self.delivery("slack", args).await
    }
}

impl<S: Script> report::Host for Fake<S> {
    async fn render(&mut self, template: String, data: String, format: report::Format) -> Rendered {
        let args = json!({ "template": template, "data": parse_json(&data), "format": format_name(format) });
        let answer = self.ask("report", "render", args).await?;
        let text = |field: &str| answer[field].as_str().unwrap_or_default().to_string();
        Ok(report::Rendered {
            id: text("id"),
            format: format_named(&text("format")),
            size: answer["size"].as_u64().unwrap_or_default(),
            name: text("name"),
        })
    }

    async fn delete(&mut self, id: String) -> Result<bool, CapError> {
        let answer = self.ask("report", "delete", json!({ "id": id })).await?;
        Ok(answer
            .as_bool()
            .unwrap_or_else(|| panic!("report.delete answers a boolean, not {answer}")))
    }
}

impl<S: Script> events::Host for Fake<S> {
    async fn emit(&mut self, name: String, payload: String) -> Result<(), CapError> {
        let args = json!({ "name": name, "payload": parse_json(&payload) });
        self.ask("events", "emit", args).await.map(drop)
    }
}

impl<S: Script> state::Host for Fake<S> {
    async fn get(&mut self, key: String) -> Option<String> {
        match self.tell("state", "get", json!({ "key": key })).await {
            Value::Null => None,
            value => Some(value.to_string()),
        }
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), CapError> {
        let args = json!({ "key": key, "value": parse_json(&value) });
        self.ask("state", "set", args).await.map(drop)
    }
}

impl<S: Script> log::Host for Fake<S> {
    async fn write(&mut self, level: log::Level, message: String) {
        self.calls.push(Call {
            interface: "log",
            function: "write",
            args: json!({ "level": format!("{level:?}"), "message": message }),
        });
    }

    async fn step(&mut self, _name: String) {}
}

/// Only for running a component bare (the `exec` bench's baseline): the runtime's gate answers
/// `program.get` for the jobs it runs.
impl<S: Script> calls::Host for Fake<S> {
    async fn call(&mut self, request: calls::Request) -> calls::Response {
        codeai_host::wasm::call(self, request).await
    }

    async fn call_encoded(&mut self, request: Vec<u8>) -> wasmtime::Result<Vec<u8>> {
        codeai_host::wasm::call_encoded(self, &request).await
    }
}

impl<S: Script> program::Host for Fake<S> {
    async fn get(&mut self) -> Vec<u8> {
        Vec::new()
    }
}

impl<S: Script> clock::Host for Fake<S> {
    async fn now(&mut self) -> clock::Instant {
        instant(&self.tell("clock", "now", json!({})).await)
    }

    async fn timezone(&mut self) -> String {
        let answer = self.tell("clock", "timezone", json!({})).await;
        answer
            .as_str()
            .unwrap_or_else(|| panic!("clock.timezone answers a string, not {answer}"))
            .into()
    }

    async fn period(&mut self, unit: clock::PeriodUnit, offset: i32) -> clock::CalendarPeriod {
        let args = json!({ "unit": unit_name(unit), "offset": offset });
        let answer = self.tell("clock", "period", args).await;
        clock::CalendarPeriod {
            start: instant(&answer["start"]),
            end: instant(&answer["end"]),
            label: answer["label"].as_str().unwrap_or_default().into(),
        }
    }

    async fn shift(&mut self, at: i64, unit: clock::PeriodUnit, amount: i32) -> clock::Instant {
        let args = json!({ "at": at, "unit": unit_name(unit), "amount": amount });
        instant(&self.tell("clock", "shift", args).await)
    }

    async fn local(&mut self, at: i64) -> clock::Instant {
        instant(&self.tell("clock", "local", json!({ "at": at })).await)
    }
}
