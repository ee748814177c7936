//! The acceptance test of the job components: the example's ten jobs, compiled by
//! `codeai_dsl::compile`, each run through the production runtime (`Runtime::execute`: the
//! pooling engine, limits and the capability gate, every capability the manifest lists granted)
//! with the recording fake capabilities of `common::fake`.
//!
//! Every import the fake receives is recorded as `(interface, function, arguments as JSON)` and
//! answered with canned data (three orders, low-stock products, two pending webhooks, a warehouse
//! inventory, …). Each test runs one job with `run("{}")` and asserts the exact ordered sequence
//! of capability calls with their key arguments, and the job's outcome. `log.write` and
//! `clock.*` calls are left out of the sequence and asserted on their own where they matter.

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use codeai_host::runtime::{ExecOptions, ExecResult, Runtime, RuntimeConfig, Status};
use codeai_host::wasm::{self, CapError};
use codeai_ir::Manifest;
use common::fake::{self, instant_json, parse_json, Call, Script};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::OnceLock;

mod common;

// ---------------------------------------------------------------------------------------------
// The compiled example and the runtime, shared by every test of this binary
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

/// Job name → (file name, manifest, component bytes).
type Built = BTreeMap<String, (String, Manifest, Vec<u8>)>;

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
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
        artifacts
            .into_iter()
            .map(|a| (a.name, (a.file_name, a.manifest, a.bytes)))
            .collect()
    })
}

/// The production runtime (pooling, fuel, epochs, the capability gate) with the fake as its
/// capabilities, shared by every test.
fn runtime() -> &'static Runtime<Fake> {
    static RUNTIME: OnceLock<Runtime<Fake>> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let cache_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("components-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&cache_dir);
        Runtime::new(RuntimeConfig {
            cache_dir,
            pool_size: 8,
            ..RuntimeConfig::default()
        })
        .expect("the runtime starts")
    })
}

/// Runs one job of the example through the runtime with `canned` as its capabilities' answers
/// and input `{}`, every capability its manifest lists granted. The run must end as the job
/// says (completed, skipped or failed), not by a trap or an exhausted limit, and without a
/// denied call.
async fn run(job: &str, canned: Canned) -> (ExecResult, Fake) {
    run_with_input(job, canned, "{}").await
}

/// [`run`] with a trigger's input (JSON text).
async fn run_with_input(job: &str, canned: Canned, input: &str) -> (ExecResult, Fake) {
    let (_, _, bytes) = built()
        .get(job)
        .unwrap_or_else(|| panic!("no component for job `{job}`"));
    let prepared = runtime().prepare(bytes).expect("the component prepares");
    let canned = canned.in_timezone(&prepared.manifest().timezone);
    let execution = runtime()
        .execute(&prepared, Fake::new(canned), input, ExecOptions::default())
        .await;
    let result = execution.result;
    assert!(
        matches!(
            result.status,
            Status::Completed | Status::Skipped | Status::Failed
        ) && result.step.is_some() == (result.status == Status::Failed),
        "the execution ends by the job's own outcome: {result:?}"
    );
    assert!(result.denied.is_empty(), "{result:?}");
    (result, execution.capabilities)
}

// ---------------------------------------------------------------------------------------------
// The canned answers
// ---------------------------------------------------------------------------------------------

type Fake = fake::Fake<Canned>;

/// The fixed "now" of every run: Tuesday 2026-01-13 11:00 UTC (06:00 in New York).
fn now_utc() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 13, 11, 0, 0).unwrap()
}

/// Canned data. Builder methods change the canned answers.
struct Canned {
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

impl Canned {
    fn new() -> Canned {
        Canned {
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

    fn with_orders(mut self, orders: Vec<Value>) -> Canned {
        self.orders = orders;
        self
    }

    fn with_warehouse(mut self, answer: Result<Value, CapError>) -> Canned {
        self.warehouse = answer;
        self
    }

    /// The example's timezones are New York (UTC-5 in January) and UTC.
    fn in_timezone(mut self, timezone: &str) -> Canned {
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

    fn instant(&self, at: DateTime<Utc>) -> Value {
        instant_json(at.timestamp_millis(), self.utc_offset_seconds)
    }

    fn rows(&self, call: &Call) -> Result<Value, CapError> {
        let filter = &call.args["filter"];
        let rows = match call.args["entity"].as_str().unwrap_or_default() {
            "Order" if has_compare(filter, &json!(["status", "eq", "cancelled"])) => {
                self.cancelled_orders.clone()
            }
            "Order" => self.orders.clone(),
            "Product" if !filter.is_null() => self.low_stock.clone(),
            "Product" => self.products.clone(),
            "Webhook" => self.webhooks.clone(),
            "Report" => self.expired_reports.clone(),
            other => return Err(CapError::Denied(format!("no canned rows for `{other}`"))),
        };
        Ok(Value::Array(rows))
    }

    fn clock(&self, call: &Call) -> Value {
        let unit = call.args["unit"].as_str().unwrap_or_default();
        match call.function {
            "now" => self.instant(now_utc()),
            "timezone" => json!(self.timezone),
            "period" => {
                let offset = call.args["offset"].as_i64().unwrap_or_default();
                let (start, end, label) = period_bounds(unit, offset, self.offset());
                json!({ "start": self.instant(start), "end": self.instant(end), "label": label })
            }
            _ => {
                let at = call.args["at"].as_i64().unwrap_or_default();
                let amount = call.args["amount"].as_i64().unwrap_or_default();
                let at = DateTime::from_timestamp_millis(at).unwrap_or_else(now_utc);
                let shifted = match unit {
                    "day" => at + chrono::Duration::days(amount),
                    "week" => at + chrono::Duration::weeks(amount),
                    _ => at,
                };
                self.instant(shifted)
            }
        }
    }
}

impl Script for Canned {
    async fn answer(&mut self, call: &Call) -> Result<Value, CapError> {
        let args = &call.args;
        match (call.interface, call.function) {
            ("data", "select") => self.rows(call),
            ("data", "count") => Ok(json!(3)),
            ("data", "delete") => Ok(json!(self.deleted_rows)),
            ("data", "update") => Ok(json!(1)),
            ("data", "insert") => Ok(json!(args["rows"].as_array().map_or(0, Vec::len))),
            ("data", "maintain") => Ok(json!(format!(
                "{} done",
                args["op"].as_str().unwrap_or_default()
            ))),
            ("http", "call") => match (args["integration"].as_str(), args["operation"].as_str()) {
                (Some("WarehouseAPI"), Some("get_inventory")) => self
                    .warehouse
                    .clone()
                    .map(|body| json!({ "status": 200, "body": body })),
                (integration, operation) => Err(CapError::Denied(format!(
                    "{}.{}",
                    integration.unwrap_or_default(),
                    operation.unwrap_or_default()
                ))),
            },
            // The first delivery succeeds, every later one fails: both paths of `on_fail: continue`.
            ("http", "call-many") => {
                let requests = args["requests"].as_array().map_or(0, Vec::len);
                Ok((0..requests)
                    .map(|i| match i {
                        0 => json!({ "status": 202, "body": {"delivery": "d-1"} }),
                        _ => json!({ "failed": "relay answered 503" }),
                    })
                    .collect())
            }
            ("email", "send") => Ok(json!({ "held": "mail-1" })),
            ("slack", "post") => Ok(json!({ "held": "slack-1" })),
            ("report", "render") => {
                self.rendered += 1;
                let id = format!("rpt-{}", self.rendered);
                let format = args["format"].as_str().unwrap_or_default();
                let name = format!(
                    "{}-{id}.{format}",
                    args["template"].as_str().unwrap_or_default()
                );
                Ok(json!({ "id": id, "format": format, "size": 2048, "name": name }))
            }
            ("report", "delete") => Ok(json!(true)),
            ("state", "get") => Ok(match args["key"].as_str() {
                Some("last_sync_timestamp") => self.last_sync.clone().unwrap_or(Value::Null),
                _ => Value::Null,
            }),
            ("events", "emit") | ("state", "set") => Ok(Value::Null),
            ("clock", _) => Ok(self.clock(call)),
            _ => Err(CapError::Denied(format!(
                "no canned answer for {}",
                call.name()
            ))),
        }
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

/// Whether the recorded filter (see `fake::filter_json`) holds the comparison `[field, op,
/// value]` anywhere.
fn has_compare(filter: &Value, compare: &Value) -> bool {
    filter == compare
        || match filter {
            Value::Array(nodes) => nodes.iter().any(|f| has_compare(f, compare)),
            Value::Object(node) => node.values().any(|f| has_compare(f, compare)),
            _ => false,
        }
}

/// Fixed periods around [`now_utc`] in the job's offset: any day, last week (Mon 5 – Mon 12
/// January) and last month (December 2025). Other periods are never asked for by the example.
fn period_bounds(
    unit: &str,
    offset: i64,
    tz: FixedOffset,
) -> (DateTime<Utc>, DateTime<Utc>, String) {
    let local = |y, m, d| {
        tz.with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    };
    match (unit, offset) {
        // Today is 2026-01-13; a date given as input is a day `offset` days away.
        ("day", offset) => {
            let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 13).unwrap()
                + chrono::Duration::days(offset);
            let next = day + chrono::Duration::days(1);
            use chrono::Datelike;
            (
                local(day.year(), day.month(), day.day()),
                local(next.year(), next.month(), next.day()),
                day.format("%Y-%m-%d").to_string(),
            )
        }
        ("week", -1) => (local(2026, 1, 5), local(2026, 1, 12), "2026-W02".into()),
        ("month", -1) => (local(2025, 12, 1), local(2026, 1, 1), "2025-12".into()),
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

/// Matches the filter `created_at` in the instants `[start, end)` and `more`.
fn created_between((start, end): &(&str, &str), more: &[Value]) -> Value {
    let bounds = [
        json!(["created_at", "ge", instant(start)]),
        json!(["created_at", "lt", instant(end)]),
    ];
    json!({ "all": bounds.iter().chain(more).collect::<Vec<_>>() })
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

/// The calls that make up a job's observable behaviour: everything but `log` and `clock`.
fn effects(fake: &Fake) -> Vec<&Call> {
    fake.calls
        .iter()
        .filter(|c| c.interface != "log" && c.interface != "clock")
        .collect()
}

/// Asserts the exact ordered sequence of effects (all calls but `log.*` and `clock.*`).
#[track_caller]
fn assert_effects(fake: &Fake, expected: &[(&str, Value)]) {
    let effects = effects(fake);
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

/// The job logged exactly the line `line`.
#[track_caller]
fn assert_logged(fake: &Fake, line: &str) {
    let logs = fake.logs();
    assert!(logs.iter().any(|l| l == line), "{logs:?}");
}

#[track_caller]
fn completed(result: &ExecResult) -> Value {
    match (result.status, &result.output) {
        (Status::Completed, Some(output)) => parse_json(output),
        _ => panic!("expected the job to complete, got {result:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[test]
fn the_example_compiles_to_ten_components() {
    let names: Vec<(&str, &str)> = built()
        .iter()
        .map(|(name, (file, ..))| (name.as_str(), file.as_str()))
        .collect();
    let mut expected = JOBS.to_vec();
    expected.sort();
    assert_eq!(names, expected);
    for (name, (_, manifest, bytes)) in built() {
        assert_eq!(&manifest.name, name);
        let read = wasm::read_manifest(bytes).expect("the component carries its manifest");
        assert_eq!(
            &read, manifest,
            "{name}: the embedded manifest differs from the built one"
        );
    }
}

#[test]
fn every_component_exports_run_and_its_program_read_once_and_imports_only_codeai_host() {
    let engine = runtime().engine();
    for (name, (_, _, bytes)) in built() {
        let component = wasm::compile(engine, bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let shape = wasm::describe_component(engine, &component);
        let exports: Vec<&str> = shape.exports.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(exports, ["run", "codeai:host/decoded@0.1.0"], "{name}");
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
    let (result, fake) = run("DailySalesReport", Canned::new()).await;
    let yesterday = ("2026-01-12T05:00:00Z", "2026-01-13T05:00:00Z");
    let metrics =
        json!({ "order_count": 3, "revenue": approx(250.0), "average_order": approx(83.33) });
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": created_between(&yesterday, &[json!(["status", "ne", "cancelled"])]),
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
async fn daily_sales_report_honours_the_seeds_trigger_input() {
    // The spec's sample trigger: both days included, in the job's timezone (New York).
    let input = r#"{"start_date": "2026-01-01", "end_date": "2026-01-12"}"#;
    let (result, fake) = run_with_input("DailySalesReport", Canned::new(), input).await;
    let range = ("2026-01-01T05:00:00Z", "2026-01-13T05:00:00Z");
    let period = json!({ "label": "2026-01-01 to 2026-01-12" });
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": created_between(&range, &[json!(["status", "ne", "cancelled"])]),
                }),
            ),
            (
                "report.render",
                json!({ "template": "daily_sales_report", "data": { "period": period } }),
            ),
            (
                "email.send",
                json!({
                    "to": ["sales@example.com", "ops@example.com"],
                    "data": { "period": period },
                }),
            ),
        ],
    );
    completed(&result);
}

#[tokio::test]
async fn daily_sales_report_without_orders_is_skipped() {
    let (result, fake) = run("DailySalesReport", Canned::new().with_orders(vec![])).await;
    assert_eq!(result.status, Status::Skipped, "{result:?}");
    assert_eq!(result.error.as_deref(), Some("No orders in the period"));
    assert_effects(&fake, &[("data.select", json!({ "entity": "Order" }))]);
}

#[tokio::test]
async fn weekly_inventory_report() {
    let (result, fake) = run("WeeklyInventoryReport", Canned::new()).await;
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({ "entity": "Product", "filter": null, "order": [["quantity", "asc"]], "limit": 1000 }),
            ),
            (
                "data.select",
                json!({ "entity": "Product", "filter": [{ "column": "quantity" }, "le", { "column": "reorder_level" }], "order": [], "limit": null }),
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
    let (result, fake) = run("MonthlyBusinessSummary", Canned::new()).await;
    let month = ("2025-12-01T05:00:00Z", "2026-01-01T05:00:00Z");
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
                    "filter": created_between(&month, &[]),
                    "order": [["created_at", "asc"]],
                }),
            ),
            (
                "data.select",
                json!({
                    "entity": "Order",
                    "filter": created_between(&month, &[json!(["status", "eq", "cancelled"])]),
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
    let (result, fake) = run("CleanupExpiredSessions", Canned::new()).await;
    assert_effects(
        &fake,
        &[(
            "data.delete",
            json!({ "entity": "Session", "filter": ["expires_at", "lt", instant("2026-01-13T11:00:00Z")] }),
        )],
    );
    assert_logged(&fake, "Deleted 7 expired sessions");
    let output = completed(&result);
    assert_eq!(output["delete_result"], json!(7), "{output}");
}

#[tokio::test]
async fn cleanup_job_executions() {
    let (result, fake) = run("CleanupJobExecutions", Canned::new()).await;
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
    assert_logged(&fake, "Archived 7 executions older than 30 days");
    completed(&result);
}

#[tokio::test]
async fn cleanup_expired_reports() {
    let (result, fake) = run("CleanupExpiredReports", Canned::new()).await;
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
    let (result, fake) = run("DatabaseMaintenance", Canned::new()).await;
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
    let (result, fake) = run("SyncExternalInventory", Canned::new()).await;
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
    let canned =
        Canned::new().with_warehouse(Err(CapError::Failed("warehouse answered 500".into())));
    let (result, fake) = run("SyncExternalInventory", canned).await;
    assert_eq!(result.status, Status::Failed, "{result:?}");
    let message = result.error.as_deref().unwrap_or_default();
    assert!(message.contains("Sync failed"), "{message}");
    assert_eq!(result.step.as_deref(), Some("sync_inventory"), "{message}");
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
    let (result, fake) = run("ProcessPendingWebhooks", Canned::new()).await;
    let now = instant("2026-01-13T11:00:00Z");
    // The update of webhook `id` after an attempt: its new status and error.
    let attempted = |id: &str, status: &str, error: Value| {
        json!({
            "entity": "Webhook",
            "filter": ["id", "eq", id],
            "set": {
                "status": { "set": status },
                "attempts": { "add": 1.0 },
                "last_error": { "set": error },
                "updated_at": { "set": now },
            },
        })
    };
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
            ("data.update", attempted("w-1", "delivered", Value::Null)),
            (
                "data.update",
                attempted("w-2", "pending", containing("503")),
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
    let (result, fake) = run("LowStockAlert", Canned::new()).await;
    assert_effects(
        &fake,
        &[
            (
                "data.select",
                json!({ "entity": "Product", "filter": [{ "column": "quantity" }, "le", { "column": "reorder_level" }], "order": [], "limit": null }),
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
