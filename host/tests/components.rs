//! The acceptance test of the job components: the example's ten jobs, compiled by
//! `codeai_dsl::compile`, each run in wasmtime with recording fake capabilities.
//!
//! Every import the fake receives is recorded as `(interface, function, arguments as JSON)` and
//! answered with canned data (three orders, low-stock products, two pending webhooks, a warehouse
//! inventory, …). Each test runs one job with `run("{}")` and asserts the exact ordered sequence
//! of capability calls with their key arguments, and the job's outcome. `log.write` and
//! `clock.*` calls are left out of the sequence and asserted on their own where they matter.

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use codeai_host::wasm::{
    self, clock, data, email, events, http, log, report, slack, state, types, CapError, Delivery,
    JobError, Outcome, RunResult, Runner,
};
use codeai_ir::Manifest;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use wasmtime::component::Component;
use wasmtime::Engine;

// ---------------------------------------------------------------------------------------------
// The compiled example, shared by every test of this binary
// ---------------------------------------------------------------------------------------------

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
);

/// Every job of the example, with its file name. A job added to the example without a test here
/// fails `the_example_compiles_to_ten_components`.
const JOBS: [(&str, &str); 10] = [
    ("DailySalesReport", "daily_sales_report.wasm"),
    ("WeeklyInventoryReport", "weekly_inventory_report.wasm"),
    ("MonthlyBusinessSummary", "monthly_business_summary.wasm"),
    ("CleanupExpiredSessions", "cleanup_expired_sessions.wasm"),
    ("CleanupJobExecutions", "cleanup_job_executions.wasm"),
    ("CleanupExpiredReports", "cleanup_expired_reports.wasm"),
    ("DatabaseMaintenance", "database_maintenance.wasm"),
    ("SyncExternalInventory", "sync_external_inventory.wasm"),
    ("ProcessPendingWebhooks", "process_pending_webhooks.wasm"),
    ("LowStockAlert", "low_stock_alert.wasm"),
];

struct Compiled {
    engine: Engine,
    /// Job name → (file name, manifest, component bytes, compiled component).
    jobs: BTreeMap<String, (String, Manifest, Vec<u8>, Component)>,
}

fn compiled() -> &'static Compiled {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let source = std::fs::read_to_string(EXAMPLE).expect("the example is readable");
        let (artifacts, warnings) = match codeai_dsl::compile("scheduled-jobs.codeai", &source) {
            Ok(built) => built,
            Err(failed) => panic!(
                "the example does not compile:\n{}",
                codeai_dsl::diagnostic::render_all(
                    "scheduled-jobs.codeai",
                    &source,
                    &failed.diagnostics
                )
            ),
        };
        assert!(
            warnings.is_empty(),
            "the example has warnings:\n{}",
            codeai_dsl::diagnostic::render_all("scheduled-jobs.codeai", &source, &warnings)
        );
        let engine = wasm::engine().expect("engine");
        let jobs = artifacts
            .into_iter()
            .map(|a| {
                let component = wasm::compile(&engine, &a.bytes)
                    .unwrap_or_else(|e| panic!("{}: {e:#}", a.file_name));
                (a.name, (a.file_name, a.manifest, a.bytes, component))
            })
            .collect();
        Compiled { engine, jobs }
    })
}

/// Runs one job of the example with `fake` as its capabilities and input `{}`.
async fn run(job: &str, fake: Fake) -> (RunResult, Fake) {
    let compiled = compiled();
    let (_, manifest, _, component) = compiled
        .jobs
        .get(job)
        .unwrap_or_else(|| panic!("no component for job `{job}`"));
    let fake = fake.in_timezone(&manifest.timezone);
    let runner = Runner::<Fake>::new(&compiled.engine, component).expect("the component links");
    runner
        .run(fake, "{}")
        .await
        .expect("the execution does not trap")
}

// ---------------------------------------------------------------------------------------------
// The recording fake
// ---------------------------------------------------------------------------------------------

/// One capability call as the fake saw it.
#[derive(Debug, Clone)]
struct Call {
    interface: &'static str,
    function: &'static str,
    args: Value,
}

impl Call {
    fn name(&self) -> String {
        format!("{}.{}", self.interface, self.function)
    }
}

/// The fixed "now" of every run: Tuesday 2026-01-13 11:00 UTC (06:00 in New York).
fn now_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 13, 11, 0, 0).unwrap()
}

/// Canned data and the record of calls. Builder methods change the canned answers.
struct Fake {
    calls: Vec<Call>,
    utc_offset_seconds: i32,
    timezone: String,
    orders: Vec<Value>,
    cancelled_orders: Vec<Value>,
    products: Vec<Value>,
    low_stock: Vec<Value>,
    webhooks: Vec<Value>,
    expired_reports: Vec<Value>,
    warehouse: Result<Value, CapError>,
    last_sync: Option<Value>,
    deleted_rows: u64,
    rendered: u32,
}

impl Fake {
    fn new() -> Fake {
        Fake {
            calls: Vec::new(),
            utc_offset_seconds: 0,
            timezone: "UTC".into(),
            orders: vec![
                order("o-1", "ann@example.com", "paid", 120.5),
                order("o-2", "bob@example.com", "shipped", 80.25),
                order("o-3", "cy@example.com", "paid", 49.25),
            ],
            cancelled_orders: vec![order("o-4", "dee@example.com", "cancelled", 15.0)],
            products: vec![
                product("p-1", "SKU-1", "Widget", 3, 10),
                product("p-2", "SKU-2", "Gadget", 7, 10),
                product("p-3", "SKU-3", "Gizmo", 40, 10),
                product("p-4", "SKU-4", "Doohickey", 25, 5),
            ],
            low_stock: vec![
                product("p-1", "SKU-1", "Widget", 3, 10),
                product("p-2", "SKU-2", "Gadget", 7, 10),
            ],
            webhooks: vec![
                webhook("w-1", "https://a.example/hook", "order.paid", 0),
                webhook("w-2", "https://b.example/hook", "order.shipped", 2),
            ],
            expired_reports: vec![
                json!({"id": "r-old-1", "job": "DailySalesReport", "format": "pdf", "size": 1024,
                       "created_at": "2025-12-01T11:00:00Z", "expires_at": "2026-01-01T11:00:00Z"}),
                json!({"id": "r-old-2", "job": "DailySalesReport", "format": "csv", "size": 512,
                       "created_at": "2025-12-02T11:00:00Z", "expires_at": "2026-01-02T11:00:00Z"}),
            ],
            warehouse: Ok(json!({"items": [
                {"sku": "SKU-1", "quantity": 50},
                {"sku": "SKU-2", "quantity": 12},
            ]})),
            last_sync: Some(json!("2026-01-13T10:30:00Z")),
            deleted_rows: 7,
            rendered: 0,
        }
    }

    fn with_orders(mut self, orders: Vec<Value>) -> Fake {
        self.orders = orders;
        self
    }

    fn with_warehouse(mut self, answer: Result<Value, CapError>) -> Fake {
        self.warehouse = answer;
        self
    }

    /// The example's timezones are New York (UTC-5 in January) and UTC.
    fn in_timezone(mut self, timezone: &str) -> Fake {
        self.utc_offset_seconds = if timezone == "America/New_York" {
            -5 * 3600
        } else {
            0
        };
        self.timezone = timezone.to_string();
        self
    }

    fn offset(&self) -> FixedOffset {
        FixedOffset::east_opt(self.utc_offset_seconds).unwrap()
    }

    fn instant(&self, at: DateTime<Utc>) -> clock::Instant {
        clock::Instant {
            unix_ms: at.timestamp_millis(),
            utc_offset_seconds: self.utc_offset_seconds,
        }
    }

    fn record(&mut self, interface: &'static str, function: &'static str, args: Value) {
        self.calls.push(Call {
            interface,
            function,
            args,
        });
    }

    /// The calls that make up a job's observable behaviour: everything but `log` and `clock`.
    fn effects(&self) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.interface != "log" && c.interface != "clock")
            .collect()
    }

    fn calls_to(&self, interface: &str) -> Vec<&Call> {
        self.calls
            .iter()
            .filter(|c| c.interface == interface)
            .collect()
    }

    fn logs(&self) -> Vec<String> {
        self.calls_to("log")
            .iter()
            .map(|c| c.args["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

fn order(id: &str, email: &str, status: &str, total: f64) -> Value {
    json!({"id": id, "customer_email": email, "status": status, "total": total,
           "created_at": "2026-01-12T15:00:00Z"})
}

fn product(id: &str, sku: &str, name: &str, quantity: i64, reorder_level: i64) -> Value {
    json!({"id": id, "sku": sku, "name": name, "quantity": quantity,
           "reorder_level": reorder_level, "price": 9.99, "updated_at": "2026-01-10T00:00:00Z"})
}

fn webhook(id: &str, url: &str, event: &str, attempts: i64) -> Value {
    json!({"id": id, "url": url, "event": event, "payload": {"order": id},
           "status": "pending", "attempts": attempts, "last_error": null,
           "updated_at": "2026-01-13T10:00:00Z"})
}

/// JSON text from the guest as a value; text that is not JSON is kept as `{"unparsed": text}`
/// so a test sees it instead of the fake panicking.
fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!({ "unparsed": text }))
}

/// A filter tree as JSON: `{"all": [...]}`, `{"any": [...]}`, `{"not": x}` or
/// `[field, op, value]`. Nested `all`s (from `a and b and c`) are flattened, since how the
/// parser groups a chain of `and`s does not change what the filter means.
fn filter_json(filter: &Option<data::Filter>) -> Value {
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

fn unit_name(unit: clock::PeriodUnit) -> &'static str {
    match unit {
        clock::PeriodUnit::Day => "day",
        clock::PeriodUnit::Week => "week",
        clock::PeriodUnit::Month => "month",
        clock::PeriodUnit::Year => "year",
    }
}

fn format_name(format: report::Format) -> &'static str {
    match format {
        report::Format::Pdf => "pdf",
        report::Format::Csv => "csv",
        report::Format::Html => "html",
    }
}

fn has_compare(
    filter: &Option<data::Filter>,
    field: &str,
    op: data::CompareOp,
    value: &Value,
) -> bool {
    filter.as_ref().is_some_and(|f| {
        f.nodes.iter().any(|n| match n {
            data::FilterNode::Compare(c) => {
                c.field == field && c.op == op && parse_json(&c.value) == *value
            }
            _ => false,
        })
    })
}

impl types::Host for Fake {}
impl codeai_host::wasm::Capabilities for Fake {}

impl data::Host for Fake {
    async fn select(&mut self, q: data::Query) -> Result<String, CapError> {
        let order: Vec<Value> = q
            .order
            .iter()
            .map(|o| json!([o.field, if o.descending { "desc" } else { "asc" }]))
            .collect();
        self.record(
            "data",
            "select",
            json!({ "entity": q.entity, "filter": filter_json(&q.filter), "order": order, "limit": q.limit }),
        );
        let rows = match q.entity.as_str() {
            "Order"
                if has_compare(
                    &q.filter,
                    "status",
                    data::CompareOp::Eq,
                    &json!("cancelled"),
                ) =>
            {
                self.cancelled_orders.clone()
            }
            "Order" => self.orders.clone(),
            "Product" if q.filter.is_some() => self.low_stock.clone(),
            "Product" => self.products.clone(),
            "Webhook" => self.webhooks.clone(),
            "Report" => self.expired_reports.clone(),
            other => return Err(CapError::Denied(format!("no canned rows for `{other}`"))),
        };
        Ok(Value::Array(rows).to_string())
    }

    async fn count(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.record(
            "data",
            "count",
            json!({ "entity": entity, "filter": filter_json(&filter) }),
        );
        Ok(3)
    }

    async fn delete(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
    ) -> Result<u64, CapError> {
        self.record(
            "data",
            "delete",
            json!({ "entity": entity, "filter": filter_json(&filter) }),
        );
        Ok(self.deleted_rows)
    }

    async fn update(
        &mut self,
        entity: String,
        filter: Option<data::Filter>,
        set: Vec<data::Assignment>,
    ) -> Result<u64, CapError> {
        self.record(
            "data",
            "update",
            json!({ "entity": entity, "filter": filter_json(&filter), "set": assignments_json(&set) }),
        );
        Ok(1)
    }

    async fn insert(&mut self, entity: String, rows: String) -> Result<u64, CapError> {
        let rows = parse_json(&rows);
        let n = rows.as_array().map_or(0, |r| r.len() as u64);
        self.record("data", "insert", json!({ "entity": entity, "rows": rows }));
        Ok(n)
    }

    async fn maintain(
        &mut self,
        op: data::MaintenanceOp,
        entity: Option<String>,
    ) -> Result<String, CapError> {
        self.record(
            "data",
            "maintain",
            json!({ "op": maintenance_op(op), "entity": entity }),
        );
        Ok(format!("{} done", maintenance_op(op)))
    }
}

impl http::Host for Fake {
    async fn call(&mut self, req: http::CallRequest) -> Result<http::CallResponse, CapError> {
        self.record("http", "call", request_json(&req));
        match (req.integration.as_str(), req.operation.as_str()) {
            ("WarehouseAPI", "get_inventory") => {
                self.warehouse.clone().map(|body| http::CallResponse {
                    status: 200,
                    body: body.to_string(),
                })
            }
            _ => Err(CapError::Denied(format!(
                "{}.{}",
                req.integration, req.operation
            ))),
        }
    }

    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        self.record(
            "http",
            "call-many",
            json!({ "requests": reqs.iter().map(request_json).collect::<Vec<_>>(), "concurrency": concurrency }),
        );
        // The first delivery succeeds, every later one fails: both paths of `on_fail: continue`.
        reqs.iter()
            .enumerate()
            .map(|(i, _)| {
                if i == 0 {
                    Ok(http::CallResponse {
                        status: 202,
                        body: json!({"delivery": "d-1"}).to_string(),
                    })
                } else {
                    Err(CapError::Failed("relay answered 503".into()))
                }
            })
            .collect()
    }
}

impl email::Host for Fake {
    async fn send(&mut self, msg: email::Message) -> Result<Delivery, CapError> {
        self.record(
            "email",
            "send",
            json!({
                "to": msg.to,
                "subject": msg.subject,
                "template": msg.template,
                "data": parse_json(&msg.data),
                "attachments": msg.attachments,
            }),
        );
        Ok(Delivery::Held("mail-1".into()))
    }
}

impl slack::Host for Fake {
    async fn post(
        &mut self,
        channel: String,
        template: Option<String>,
        data: String,
    ) -> Result<Delivery, CapError> {
        self.record(
            "slack",
            "post",
            json!({ "channel": channel, "template": template, "data": parse_json(&data) }),
        );
        Ok(Delivery::Held("slack-1".into()))
    }
}

impl report::Host for Fake {
    async fn render(
        &mut self,
        template: String,
        data: String,
        format: report::Format,
    ) -> Result<report::Rendered, CapError> {
        self.rendered += 1;
        let id = format!("rpt-{}", self.rendered);
        self.record(
            "report",
            "render",
            json!({ "template": template, "data": parse_json(&data), "format": format_name(format) }),
        );
        Ok(report::Rendered {
            id: id.clone(),
            format,
            size: 2048,
            name: format!("{template}-{id}.{}", format_name(format)),
        })
    }

    async fn delete(&mut self, id: String) -> Result<bool, CapError> {
        self.record("report", "delete", json!({ "id": id }));
        Ok(true)
    }
}

impl events::Host for Fake {
    async fn emit(&mut self, name: String, payload: String) -> Result<(), CapError> {
        self.record(
            "events",
            "emit",
            json!({ "name": name, "payload": parse_json(&payload) }),
        );
        Ok(())
    }
}

impl state::Host for Fake {
    async fn get(&mut self, key: String) -> Option<String> {
        self.record("state", "get", json!({ "key": key }));
        match key.as_str() {
            "last_sync_timestamp" => self.last_sync.as_ref().map(Value::to_string),
            _ => None,
        }
    }

    async fn set(&mut self, key: String, value: String) -> Result<(), CapError> {
        self.record(
            "state",
            "set",
            json!({ "key": key, "value": parse_json(&value) }),
        );
        Ok(())
    }
}

impl log::Host for Fake {
    async fn write(&mut self, level: log::Level, message: String) {
        self.record(
            "log",
            "write",
            json!({ "level": format!("{level:?}"), "message": message }),
        );
    }
}

impl clock::Host for Fake {
    async fn now(&mut self) -> clock::Instant {
        self.record("clock", "now", json!({}));
        self.instant(now_utc())
    }

    async fn timezone(&mut self) -> String {
        self.record("clock", "timezone", json!({}));
        self.timezone.clone()
    }

    async fn period(&mut self, unit: clock::PeriodUnit, offset: i32) -> clock::CalendarPeriod {
        self.record(
            "clock",
            "period",
            json!({ "unit": unit_name(unit), "offset": offset }),
        );
        let (start, end, label) = period_bounds(unit, offset, self.offset());
        clock::CalendarPeriod {
            start: self.instant(start),
            end: self.instant(end),
            label,
        }
    }

    async fn shift(&mut self, at: i64, unit: clock::PeriodUnit, amount: i32) -> clock::Instant {
        self.record(
            "clock",
            "shift",
            json!({ "at": at, "unit": unit_name(unit), "amount": amount }),
        );
        let at = DateTime::from_timestamp_millis(at).unwrap_or_else(now_utc);
        let shifted = match unit {
            clock::PeriodUnit::Day => at + chrono::Duration::days(amount.into()),
            clock::PeriodUnit::Week => at + chrono::Duration::weeks(amount.into()),
            clock::PeriodUnit::Month | clock::PeriodUnit::Year => at,
        };
        self.instant(shifted)
    }
}

/// Fixed periods around [`now_utc`] in the job's offset: yesterday, last week (Mon 5 – Mon 12
/// January) and last month (December 2025). Other periods are never asked for by the example.
fn period_bounds(
    unit: clock::PeriodUnit,
    offset: i32,
    tz: FixedOffset,
) -> (DateTime<Utc>, DateTime<Utc>, String) {
    let local = |y, m, d| {
        tz.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    match (unit, offset) {
        (clock::PeriodUnit::Day, -1) => {
            (local(2026, 1, 12), local(2026, 1, 13), "2026-01-12".into())
        }
        (clock::PeriodUnit::Day, 0) => {
            (local(2026, 1, 13), local(2026, 1, 14), "2026-01-13".into())
        }
        (clock::PeriodUnit::Week, -1) => (local(2026, 1, 5), local(2026, 1, 12), "2026-W02".into()),
        (clock::PeriodUnit::Month, -1) => (local(2025, 12, 1), local(2026, 1, 1), "2025-12".into()),
        other => panic!("the example does not ask for the period {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Matching recorded calls against expectations
// ---------------------------------------------------------------------------------------------

/// Matches a timestamp string by the instant it names, whatever its offset or precision.
fn instant(rfc3339: &str) -> Value {
    json!({ "$instant": rfc3339 })
}

/// Matches any value.
fn any() -> Value {
    json!({ "$any": true })
}

/// Matches a string containing this text.
fn containing(text: &str) -> Value {
    json!({ "$contains": text })
}

/// Matches a number within 0.001 of this one (sums of floats).
fn approx(n: f64) -> Value {
    json!({ "$approx": n })
}

/// `Ok` if `actual` matches `expected`: objects match when every expected key matches (extra
/// keys are allowed), arrays element by element with equal lengths, numbers by value, and the
/// `$…` markers above as described.
fn matches(expected: &Value, actual: &Value, path: &str) -> Result<(), String> {
    if let Value::Object(e) = expected {
        if let Some(want) = e.get("$instant").and_then(Value::as_str) {
            let want = DateTime::parse_from_rfc3339(want).expect("a valid expected instant");
            return match actual.as_str().map(DateTime::parse_from_rfc3339) {
                Some(Ok(got)) if got == want => Ok(()),
                _ => Err(format!("{path}: expected the instant {want}, got {actual}")),
            };
        }
        if e.contains_key("$any") {
            return Ok(());
        }
        if let Some(text) = e.get("$contains").and_then(Value::as_str) {
            return match actual.as_str() {
                Some(s) if s.contains(text) => Ok(()),
                _ => Err(format!(
                    "{path}: expected a string containing {text:?}, got {actual}"
                )),
            };
        }
        if let Some(want) = e.get("$approx").and_then(Value::as_f64) {
            return match actual.as_f64() {
                Some(got) if (got - want).abs() < 1e-3 => Ok(()),
                _ => Err(format!("{path}: expected about {want}, got {actual}")),
            };
        }
    }
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, want) in e {
                let got = a.get(key).unwrap_or(&Value::Null);
                matches(want, got, &format!("{path}.{key}"))?;
            }
            Ok(())
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                return Err(format!(
                    "{path}: expected {} elements, got {}: {actual}",
                    e.len(),
                    a.len()
                ));
            }
            for (i, (want, got)) in e.iter().zip(a).enumerate() {
                matches(want, got, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => Ok(()),
        (e, a) if e == a => Ok(()),
        (e, a) => Err(format!("{path}: expected {e}, got {a}")),
    }
}

/// Asserts the exact ordered sequence of effects (all calls but `log.*` and `clock.*`).
#[track_caller]
fn assert_effects(fake: &Fake, expected: &[(&str, Value)]) {
    let effects = fake.effects();
    let listing = || {
        effects
            .iter()
            .map(|c| format!("  {} {}", c.name(), c.args))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        effects.iter().map(|c| c.name()).collect::<Vec<_>>(),
        expected
            .iter()
            .map(|(n, _)| n.to_string())
            .collect::<Vec<_>>(),
        "the sequence of capability calls differs; the calls were:\n{}",
        listing()
    );
    for (i, (call, (_, want))) in effects.iter().zip(expected).enumerate() {
        if let Err(why) = matches(want, &call.args, &format!("call {i} ({})", call.name())) {
            panic!("{why}\nthe calls were:\n{}", listing());
        }
    }
}

#[track_caller]
fn completed(result: &RunResult) -> Value {
    match result {
        Ok(Outcome::Completed(output)) => parse_json(output),
        other => panic!("expected the job to complete, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_example_compiles_to_ten_components() {
    let compiled = compiled();
    let built: Vec<(&str, &str)> = compiled
        .jobs
        .iter()
        .map(|(name, (file, ..))| (name.as_str(), file.as_str()))
        .collect();
    let mut expected = JOBS.to_vec();
    expected.sort();
    assert_eq!(built, expected);
    for (name, (_, manifest, bytes, _)) in &compiled.jobs {
        assert_eq!(&manifest.name, name);
        let read = wasm::read_manifest(bytes).expect("the component carries its manifest");
        assert_eq!(
            &read, manifest,
            "{name}: the embedded manifest differs from the built one"
        );
    }
}

#[test]
fn every_component_exports_run_and_imports_only_codeai_host() {
    let compiled = compiled();
    for (name, (_, _, _, component)) in &compiled.jobs {
        let shape = wasm::describe_component(&compiled.engine, component);
        let exports: Vec<&str> = shape.exports.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(exports, ["run"], "{name}");
        match &shape.exports[0].1 {
            wasm::ExternShape::Func(signature) => assert!(
                signature.starts_with("func(input: string) -> result<"),
                "{name}: {signature}"
            ),
            other => panic!("{name}: `run` is {other:?}"),
        }
        for (import, _) in &shape.imports {
            assert!(
                import.starts_with("codeai:host/") && import.ends_with("@0.1.0"),
                "{name} imports `{import}`"
            );
        }
    }
}

#[tokio::test]
async fn daily_sales_report() {
    let (result, fake) = run("DailySalesReport", Fake::new()).await;
    let yesterday_start = instant("2026-01-12T05:00:00Z");
    let yesterday_end = instant("2026-01-13T05:00:00Z");
    let metrics =
        json!({ "order_count": 3, "revenue": approx(250.0), "average_order": approx(83.33) });
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": { "all": [
                        ["created_at", "ge", yesterday_start],
                        ["created_at", "lt", yesterday_end],
                        ["status", "ne", "cancelled"],
                    ]},
                    "order": [["created_at", "asc"]],
                    "limit": null,
                }),
            ),
            (
                "report.render",
                json!({
                    "template": "daily_sales_report",
                    "format": "pdf",
                    "data": {
                        "period": { "label": "2026-01-12" },
                        "metrics": metrics,
                        "orders": [{ "id": "o-1" }, { "id": "o-2" }, { "id": "o-3" }],
                    },
                }),
            ),
            (
                "email.send",
                json!({
                    "to": ["sales@example.com", "ops@example.com"],
                    "subject": "Daily Report",
                    "template": "daily_report",
                    "attachments": ["rpt-1"],
                    "data": { "period": { "label": "2026-01-12" }, "metrics": metrics },
                }),
            ),
        ],
    );
    let periods = fake.calls_to("clock");
    assert!(
        periods
            .iter()
            .any(|c| c.function == "period" && c.args == json!({ "unit": "day", "offset": -1 })),
        "yesterday() asks the clock for the period (day, -1): {periods:?}"
    );
    let output = completed(&result);
    matches(&json!({ "metrics": metrics }), &output, "output").unwrap();
}

#[tokio::test]
async fn daily_sales_report_without_orders_is_skipped() {
    let (result, fake) = run("DailySalesReport", Fake::new().with_orders(vec![])).await;
    match &result {
        Ok(Outcome::Skipped(reason)) => assert_eq!(reason, "No orders yesterday"),
        other => panic!("expected skipped, got {other:?}"),
    }
    assert_effects(&fake, &[("data.select", json!({ "entity": "Order" }))]);
}

#[tokio::test]
async fn weekly_inventory_report() {
    let (result, fake) = run("WeeklyInventoryReport", Fake::new()).await;
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({ "entity": "Product", "filter": null, "order": [["quantity", "asc"]], "limit": 1000 }),
            ),
            (
                "data.select",
                json!({ "entity": "Product", "filter": ["quantity", "le", 10], "order": [], "limit": null }),
            ),
            (
                "report.render",
                json!({
                    "template": "weekly_inventory_report",
                    "format": "pdf",
                    "data": {
                        "period": { "label": "2026-W02" },
                        "product_count": 4,
                        "low_count": 2,
                        "products": [{ "sku": "SKU-1" }, { "sku": "SKU-2" }, { "sku": "SKU-3" }, { "sku": "SKU-4" }],
                    },
                }),
            ),
            (
                "email.send",
                json!({
                    "to": ["inventory@example.com"],
                    "subject": "Weekly Inventory Report",
                    "template": "weekly_report_email",
                    "attachments": ["rpt-1"],
                    "data": { "period": { "label": "2026-W02" }, "low_count": 2 },
                }),
            ),
        ],
    );
    completed(&result);
}

#[tokio::test]
async fn monthly_business_summary() {
    let (result, fake) = run("MonthlyBusinessSummary", Fake::new()).await;
    let start = instant("2025-12-01T05:00:00Z");
    let end = instant("2026-01-01T05:00:00Z");
    let metrics = json!({ "order_count": 3, "revenue": approx(250.0), "cancelled": 1 });
    let report_data = json!({
        "period": { "label": "2025-12" },
        "metrics": metrics,
        "orders": [{ "id": "o-1" }, { "id": "o-2" }, { "id": "o-3" }],
    });
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": { "all": [["created_at", "ge", start], ["created_at", "lt", end]] },
                    "order": [["created_at", "asc"]],
                }),
            ),
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": { "all": [
                        ["created_at", "ge", start],
                        ["created_at", "lt", end],
                        ["status", "eq", "cancelled"],
                    ]},
                    "order": [],
                }),
            ),
            (
                "report.render",
                json!({ "template": "monthly_business_summary", "format": "pdf", "data": report_data }),
            ),
            (
                "report.render",
                json!({ "template": "monthly_business_summary", "format": "csv", "data": report_data }),
            ),
            (
                "email.send",
                json!({
                    "to": ["management@example.com"],
                    "subject": "Monthly Business Summary",
                    "template": "monthly_report_email",
                    "attachments": ["rpt-1", "rpt-2"],
                    "data": { "period": { "label": "2025-12" } },
                }),
            ),
        ],
    );
    completed(&result);
}

#[tokio::test]
async fn cleanup_expired_sessions() {
    let (result, fake) = run("CleanupExpiredSessions", Fake::new()).await;
    assert_effects(
        &fake,
        &[(
            "data.delete",
            json!({ "entity": "Session", "filter": ["expires_at", "lt", instant("2026-01-13T11:00:00Z")] }),
        )],
    );
    assert!(
        fake.logs()
            .iter()
            .any(|l| l == "Deleted 7 expired sessions"),
        "{:?}",
        fake.logs()
    );
    let output = completed(&result);
    assert_eq!(output["delete_result"], json!(7), "{output}");
}

#[tokio::test]
async fn cleanup_job_executions() {
    let (result, fake) = run("CleanupJobExecutions", Fake::new()).await;
    assert_effects(
        &fake,
        &[(
            "data.delete",
            json!({
                "entity": "JobExecution",
                "filter": { "all": [
                    ["finished_at", "lt", instant("2025-12-14T11:00:00Z")],
                    ["status", "in", ["completed", "skipped"]],
                ]},
            }),
        )],
    );
    assert!(
        fake.logs()
            .iter()
            .any(|l| l == "Archived 7 executions older than 30 days"),
        "{:?}",
        fake.logs()
    );
    completed(&result);
}

#[tokio::test]
async fn cleanup_expired_reports() {
    let (result, fake) = run("CleanupExpiredReports", Fake::new()).await;
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Report",
                    "filter": ["expires_at", "lt", instant("2026-01-13T11:00:00Z")],
                    "limit": 500,
                }),
            ),
            ("report.delete", json!({ "id": "r-old-1" })),
            ("report.delete", json!({ "id": "r-old-2" })),
        ],
    );
    completed(&result);
}

#[tokio::test]
async fn database_maintenance() {
    let (result, fake) = run("DatabaseMaintenance", Fake::new()).await;
    assert_effects(
        &fake,
        &[
            ("data.maintain", json!({ "op": "analyze", "entity": null })),
            ("data.maintain", json!({ "op": "reindex", "entity": null })),
            ("data.maintain", json!({ "op": "vacuum", "entity": null })),
        ],
    );
    let output = completed(&result);
    assert_eq!(output["vacuum_result"], json!("vacuum done"), "{output}");
}

#[tokio::test]
async fn sync_external_inventory() {
    let (result, fake) = run("SyncExternalInventory", Fake::new()).await;
    let now = instant("2026-01-13T11:00:00Z");
    assert_effects(
        &fake,
        &[
            ("state.get", json!({ "key": "last_sync_timestamp" })),
            (
                "http.call",
                json!({
                    "integration": "WarehouseAPI",
                    "operation": "get_inventory",
                    "args": { "since": instant("2026-01-13T10:30:00Z") },
                    "timeout_ms": 60000,
                }),
            ),
            (
                "data.update",
                json!({
                    "entity": "Product",
                    "filter": ["sku", "eq", "SKU-1"],
                    "set": { "quantity": { "set": 50 }, "updated_at": { "set": now } },
                }),
            ),
            (
                "data.update",
                json!({
                    "entity": "Product",
                    "filter": ["sku", "eq", "SKU-2"],
                    "set": { "quantity": { "set": 12 }, "updated_at": { "set": now } },
                }),
            ),
            (
                "state.set",
                json!({ "key": "last_sync_timestamp", "value": now }),
            ),
            (
                "events.emit",
                json!({ "name": "InventorySynced", "payload": { "updated": 2 } }),
            ),
        ],
    );
    completed(&result);
}

#[tokio::test]
async fn sync_external_inventory_fails_when_the_warehouse_does() {
    let fake = Fake::new().with_warehouse(Err(CapError::Failed("warehouse answered 500".into())));
    let (result, fake) = run("SyncExternalInventory", fake).await;
    match &result {
        Err(JobError { step, message }) => {
            assert!(message.contains("Sync failed"), "{message}");
            assert_eq!(step.as_deref(), Some("sync_inventory"), "{message}");
        }
        other => panic!("expected a job error, got {other:?}"),
    }
    assert_effects(
        &fake,
        &[
            ("state.get", json!({ "key": "last_sync_timestamp" })),
            (
                "http.call",
                json!({ "integration": "WarehouseAPI", "operation": "get_inventory" }),
            ),
        ],
    );
}

#[tokio::test]
async fn process_pending_webhooks() {
    let (result, fake) = run("ProcessPendingWebhooks", Fake::new()).await;
    let now = instant("2026-01-13T11:00:00Z");
    let delivery = |url: &str, event: &str, id: &str| {
        json!({
            "integration": "WebhookRelay",
            "operation": "deliver",
            "args": { "url": url, "event": event, "payload": { "order": id } },
            "timeout_ms": 15000,
        })
    };
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Webhook",
                    "filter": { "all": [["status", "eq", "pending"], ["attempts", "lt", 5]] },
                    "order": [["updated_at", "asc"]],
                    "limit": 100,
                }),
            ),
            (
                "http.call-many",
                json!({
                    "requests": [
                        delivery("https://a.example/hook", "order.paid", "w-1"),
                        delivery("https://b.example/hook", "order.shipped", "w-2"),
                    ],
                    "concurrency": 10,
                }),
            ),
            (
                "data.update",
                json!({
                    "entity": "Webhook",
                    "filter": ["id", "eq", "w-1"],
                    "set": {
                        "status": { "set": "delivered" },
                        "attempts": { "add": 1.0 },
                        "last_error": { "set": null },
                        "updated_at": { "set": now },
                    },
                }),
            ),
            (
                "data.update",
                json!({
                    "entity": "Webhook",
                    "filter": ["id", "eq", "w-2"],
                    "set": {
                        "status": { "set": "pending" },
                        "attempts": { "add": 1.0 },
                        "last_error": { "set": containing("503") },
                        "updated_at": { "set": now },
                    },
                }),
            ),
        ],
    );
    let output = completed(&result);
    matches(
        &json!({ "deliveries": [{ "ok": true, "item": { "id": "w-1" } }, { "ok": false, "item": { "id": "w-2" } }] }),
        &output,
        "output",
    )
    .unwrap();
}

#[tokio::test]
async fn low_stock_alert() {
    let (result, fake) = run("LowStockAlert", Fake::new()).await;
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({ "entity": "Product", "filter": ["quantity", "lt", 10], "order": [], "limit": null }),
            ),
            (
                "slack.post",
                json!({
                    "channel": "#alerts",
                    "template": "low_stock_alert",
                    "data": { "count": 2, "skus": "SKU-1, SKU-2" },
                }),
            ),
            (
                "events.emit",
                json!({ "name": "LowStockDetected", "payload": { "count": 2, "skus": ["SKU-1", "SKU-2"] } }),
            ),
        ],
    );
    completed(&result);
}

#[test]
fn the_matcher_rejects_what_it_should() {
    // The assertions above are only as good as `matches`; check that it can fail.
    assert!(matches(&json!({"a": 1}), &json!({"a": 1, "b": 2}), "x").is_ok());
    assert!(matches(&json!({"a": 1}), &json!({"a": 2}), "x").is_err());
    assert!(matches(&json!([1, 2]), &json!([1, 2, 3]), "x").is_err());
    assert!(matches(&json!(1.0), &json!(1), "x").is_ok());
    assert!(matches(
        &instant("2026-01-13T11:00:00Z"),
        &json!("2026-01-13T06:00:00-05:00"),
        "x"
    )
    .is_ok());
    assert!(matches(
        &instant("2026-01-13T11:00:00Z"),
        &json!("2026-01-13T11:00:01Z"),
        "x"
    )
    .is_err());
    assert!(matches(&containing("503"), &json!("relay answered 503"), "x").is_ok());
    assert!(matches(&containing("503"), &json!(null), "x").is_err());
    assert!(matches(&approx(250.0), &json!(250.0004), "x").is_ok());
    assert!(matches(&any(), &json!(null), "x").is_ok());
    assert!(matches(&json!({"a": null}), &json!({}), "x").is_ok());
}
