//! Interpreter tests: programs compiled from small DSL files, run against a recording fake host.

use super::{json_text, output_text, run, JobError, Outcome};
use crate::host::*;
use codeai_ir::{LogLevel, MaintenanceOp, Program, ReportFormat};
use serde_json::{json, Value};

const DECLS: &str = r#"
entity Product { id: uuid primary, sku: string unique, quantity: int, price: float, updated_at: datetime }
entity Order { id: uuid primary, total: float, status: string, created_at: datetime }
integration Api {
    base_url: env("API_URL")
    get: GET "/items" { since: datetime }
    push: POST "/items/{id}" { id: string, qty: int }
}
template t { title: "T" }
event Done { n: int }
"#;

/// Compiles one job (after the shared declarations) and returns its program.
fn program(job: &str) -> Program {
    let source = format!("{DECLS}\n{job}");
    let (file, mut diags) = codeai_dsl::parse(&source);
    let (jobs, more) = codeai_dsl::check::check(&file, &source, "test.codeai");
    diags.extend(more);
    assert!(
        diags.iter().all(|d| !d.is_error()),
        "{}",
        codeai_dsl::diagnostic::render_all("test.codeai", &source, &diags)
    );
    jobs.into_iter().next().expect("one job").program
}

/// A host that records every call as a line of text and answers from canned data.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    rows: Vec<Value>,
    fail_call: bool,
    state: serde_json::Map<String, Value>,
    /// The steps marked as started (the job's own, for traces).
    marks: Vec<String>,
    /// Bodies `call` answers with, one per call, before its default one.
    pages: std::collections::VecDeque<Value>,
}

impl Fake {
    /// The log lines written, as recorded calls (`log Info …`).
    fn logs(&self) -> Vec<&str> {
        self.calls
            .iter()
            .map(String::as_str)
            .filter(|c| c.starts_with("log"))
            .collect()
    }
}

const NOW: Instant = Instant {
    unix_ms: 1_768_215_600_000, // 2026-01-12T11:00:00Z
    utc_offset_seconds: -5 * 3600,
};

fn show_filter(f: &Option<Filter>) -> String {
    fn node(f: &Filter, i: u32) -> String {
        match &f.nodes[i as usize] {
            FilterNode::All(c) => format!(
                "({})",
                c.iter()
                    .map(|i| node(f, *i))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
            FilterNode::Any(c) => format!(
                "({})",
                c.iter()
                    .map(|i| node(f, *i))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            FilterNode::Not(c) => format!("not {}", node(f, *c)),
            FilterNode::Compare { field, op, value } => format!("{field} {op:?} {value}"),
            FilterNode::Terms {
                terms,
                left,
                op,
                right,
            } => {
                fn term(terms: &[Term], i: u32) -> String {
                    match &terms[i as usize] {
                        Term::Column(c) => c.clone(),
                        Term::Value(v) => v.to_string(),
                        Term::Arith(op, a, b) => {
                            format!("({} {op:?} {})", term(terms, *a), term(terms, *b))
                        }
                        Term::Func(f, a) => format!("{f:?}({})", term(terms, *a)),
                    }
                }
                format!("{} {op:?} {}", term(terms, *left), term(terms, *right))
            }
        }
    }
    match f {
        Some(f) => node(f, f.root),
        None => "-".into(),
    }
}

impl Host for Fake {
    fn aggregate(&mut self, q: AggregateQuery) -> Result<Value, CapError> {
        let columns: Vec<String> = q
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{}={}({})",
                    c.name,
                    c.func.name(),
                    c.field.as_deref().unwrap_or("")
                )
            })
            .collect();
        self.calls.push(format!(
            "aggregate {} {} where {} group {:?} order {:?} limit {:?}",
            q.entity,
            columns.join(","),
            show_filter(&q.filter),
            q.group_by,
            q.order,
            q.limit
        ));
        Ok(Value::Array(self.rows.clone()))
    }
    fn select(&mut self, q: Query) -> Result<Value, CapError> {
        self.calls.push(format!(
            "select {} where {} order {:?} limit {:?}",
            q.entity,
            show_filter(&q.filter),
            q.order,
            q.limit
        ));
        Ok(Value::Array(self.rows.clone()))
    }
    fn count(&mut self, entity: &str, filter: Option<Filter>) -> Result<u64, CapError> {
        self.calls
            .push(format!("count {entity} where {}", show_filter(&filter)));
        Ok(self.rows.len() as u64)
    }
    fn delete(&mut self, entity: &str, filter: Option<Filter>) -> Result<u64, CapError> {
        self.calls
            .push(format!("delete {entity} where {}", show_filter(&filter)));
        Ok(self.rows.len() as u64)
    }
    fn update(
        &mut self,
        entity: &str,
        filter: Option<Filter>,
        set: Vec<Assign>,
    ) -> Result<u64, CapError> {
        self.calls.push(format!(
            "update {entity} set {set:?} where {}",
            show_filter(&filter)
        ));
        Ok(1)
    }
    fn insert(&mut self, entity: &str, rows: Value) -> Result<u64, CapError> {
        self.calls.push(format!("insert {entity} {rows}"));
        Ok(1)
    }
    fn upsert(&mut self, entity: &str, rows: Value, keys: &[String]) -> Result<u64, CapError> {
        self.calls
            .push(format!("upsert {entity} {rows} on {keys:?}"));
        Ok(1)
    }
    fn maintain(&mut self, op: MaintenanceOp, entity: Option<&str>) -> Result<String, CapError> {
        self.calls.push(format!("maintain {op:?} {entity:?}"));
        Ok("done".into())
    }
    fn call(&mut self, r: CallRequest) -> Result<CallResponse, CapError> {
        self.calls.push(format!(
            "call {}.{} {} {:?}",
            r.integration, r.operation, r.args, r.timeout_ms
        ));
        if self.fail_call {
            return Err(CapError::Failed("503 Service Unavailable".into()));
        }
        let body = self.pages.pop_front().unwrap_or_else(
            || json!({"items": [{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 0}]}),
        );
        Ok(CallResponse { status: 200, body })
    }
    fn call_many(
        &mut self,
        reqs: Vec<CallRequest>,
        concurrency: u32,
    ) -> Vec<Result<CallResponse, CapError>> {
        self.calls
            .push(format!("call_many {} x{concurrency}", reqs.len()));
        reqs.iter()
            .map(|r| {
                if r.args["id"] == "bad" {
                    Err(CapError::Failed("500".into()))
                } else {
                    Ok(CallResponse {
                        status: 200,
                        body: json!({"ok": r.args["id"]}),
                    })
                }
            })
            .collect()
    }
    fn send_email(&mut self, m: EmailMessage) -> Result<Delivery, CapError> {
        self.calls.push(format!(
            "email {:?} {:?} {:?} {} {:?}",
            m.to, m.subject, m.template, m.data, m.attachments
        ));
        Ok(Delivery::Held("out-1".into()))
    }
    fn post_slack(
        &mut self,
        channel: &str,
        template: Option<&str>,
        data: Value,
    ) -> Result<Delivery, CapError> {
        self.calls
            .push(format!("slack {channel} {template:?} {data}"));
        Ok(Delivery::Sent("ok".into()))
    }
    fn render_report(
        &mut self,
        template: &str,
        data: Value,
        format: ReportFormat,
    ) -> Result<Rendered, CapError> {
        self.calls
            .push(format!("report {template} {format:?} {data}"));
        Ok(Rendered {
            id: "rep-1".into(),
            format,
            size: 1234,
            name: "t.pdf".into(),
        })
    }
    fn delete_report(&mut self, id: &str) -> Result<bool, CapError> {
        self.calls.push(format!("delete_report {id}"));
        Ok(true)
    }
    fn emit_event(&mut self, name: &str, payload: Value) -> Result<(), CapError> {
        self.calls.push(format!("emit {name} {payload}"));
        Ok(())
    }
    fn state_get(&mut self, key: &str) -> Option<Value> {
        self.calls.push(format!("state_get {key}"));
        self.state.get(key).cloned()
    }
    fn state_set(&mut self, key: &str, value: Value) -> Result<(), CapError> {
        self.calls.push(format!("state_set {key} {value}"));
        self.state.insert(key.into(), value);
        Ok(())
    }
    fn log(&mut self, level: LogLevel, message: &str) {
        self.calls.push(format!("log {level:?} {message}"));
    }
    fn step(&mut self, name: &str) {
        self.marks.push(name.to_string());
    }
    fn now(&mut self) -> Instant {
        NOW
    }
    fn local(&mut self, unix_ms: i64) -> Instant {
        // New York in winter, as `NOW`.
        Instant {
            unix_ms,
            utc_offset_seconds: NOW.utc_offset_seconds,
        }
    }
    fn period(&mut self, unit: PeriodUnit, offset: i32) -> Period {
        self.calls.push(format!("period {unit:?} {offset}"));
        if unit == PeriodUnit::Day && offset != -1 {
            // Days in New York (no daylight saving change in January), day 0 is 2026-01-12.
            let start = 1_768_194_000_000 + i64::from(offset) * 86_400_000;
            let label = chrono::DateTime::from_timestamp_millis(start - 18_000_000)
                .map(|t| t.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            return Period {
                start: Instant {
                    unix_ms: start,
                    utc_offset_seconds: -18000,
                },
                end: Instant {
                    unix_ms: start + 86_400_000,
                    utc_offset_seconds: -18000,
                },
                label,
            };
        }
        if (unit, offset) != (PeriodUnit::Day, -1) {
            // Other periods: a fixed start, one day long, labelled by what was asked.
            return Period {
                start: NOW,
                end: Instant {
                    unix_ms: NOW.unix_ms + 86_400_000,
                    ..NOW
                },
                label: format!("{unit:?}{offset}"),
            };
        }
        Period {
            start: Instant {
                unix_ms: 1_768_107_600_000,
                utc_offset_seconds: -18000,
            },
            end: Instant {
                unix_ms: 1_768_194_000_000,
                utc_offset_seconds: -18000,
            },
            label: "2026-01-11".into(),
        }
    }
}

fn exec(job: &str, host: &mut Fake, input: Value) -> Result<Outcome, JobError> {
    run(&program(job), input, host)
}

#[test]
fn query_then_slack_with_computed_data() {
    let mut host = Fake {
        rows: vec![
            json!({"sku": "A", "quantity": 3}),
            json!({"sku": "B", "quantity": 1}),
        ],
        ..Fake::default()
    };
    let out = exec(
        r##"job J { steps {
            q { query: select Product where quantity < 10 order by quantity limit 50
                as: low }
            c { compute: { count: count(low), skus: join(pluck(low, "sku"), ", "), total: sum(low, "quantity") }
                as: alert }
            s { send: slack("#alerts") { template: "t", data: alert } }
        } }"##,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(
        host.calls,
        vec![
            r#"select Product where quantity Lt 10 order [("quantity", false)] limit Some(50)"#,
            r##"slack #alerts Some("t") {"count":2,"skus":"A, B","total":4}"##,
        ]
    );
    let Outcome::Completed(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out["alert"]["count"], 2);
}

#[test]
fn on_empty_skip_ends_the_job_as_skipped() {
    let mut host = Fake::default();
    let out = exec(
        r#"job J { steps {
            q { query: select Order, as: rows, on_empty: skip("nothing to do") }
            never { log: "unreachable" }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(out, Outcome::Skipped("nothing to do".into()));
    assert_eq!(host.calls.len(), 2, "{:?}", host.calls); // select + the skip's log line
    assert!(host.calls[1].starts_with("log Info"));
}

/// A policy's text interpolates the step's names like any step string.
#[test]
fn policy_messages_interpolate() {
    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { depot: "B1" } steps {
            q { query: select Order, as: rows, on_empty: skip("no orders in {{input.depot}}") }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(out, Outcome::Skipped("no orders in B1".into()));
    let mut host = Fake::default();
    let err = exec(
        r#"job J { input: { n: 2 } steps {
            c { compute: 1 / 0, on_fail: abort("gave up after {{input.n * 2}} tries") }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.message, "gave up after 4 tries");
}

#[test]
fn failures_follow_the_step_policy() {
    let job = |policy: &str| {
        format!(
            r#"job J {{ steps {{
                c {{ call: Api.get {{ since: last_sync_timestamp() }}
                    timeout: 5s
                    {policy} }}
                after {{ log: "after" }}
            }} }}"#
        )
    };
    // No policy: the job fails, naming the step and its location.
    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let err = exec(&job(""), &mut host, json!({})).unwrap_err();
    assert_eq!(err.step.as_deref(), Some("c"));
    assert!(
        err.message.contains("503 Service Unavailable"),
        "{}",
        err.message
    );
    assert!(err.message.contains("test.codeai:"), "{}", err.message);
    // abort: the job fails with the policy's message.
    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let err = exec(
        &job("on_fail: abort(\"Sync failed\")"),
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.message, "Sync failed");
    // continue: the next step runs.
    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    exec(&job("on_fail: continue"), &mut host, json!({})).unwrap();
    assert_eq!(host.calls.last().unwrap(), "log Info after");
    // The call carried its timeout and the default sync timestamp.
    assert!(
        host.calls[1].contains(r#"{"since":"1970-01-01T00:00:00Z"} Some(5000)"#),
        "{:?}",
        host.calls
    );
}

#[test]
fn time_builtins_and_arithmetic() {
    let mut host = Fake::default();
    exec(
        r#"job J { steps {
            d { action: delete Order where created_at < now() - 30d and status in ["a", "b"] }
            w { query: select Order where created_at >= yesterday().start and created_at < yesterday().end }
            c { compute: { day: format_date(yesterday()), before: days_ago(1) < now(), gap: now() - days_ago(2) }, as: t }
            l { log: "{{t.day}} {{t.before}} {{t.gap}}" }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(
        host.calls[0],
        r#"delete Order where (created_at Lt "2025-12-13T06:00:00-05:00" and status In ["a","b"])"#
    );
    assert_eq!(
        host.calls[3],
        r#"select Order where (created_at Ge "2026-01-11T00:00:00-05:00" and created_at Lt "2026-01-12T00:00:00-05:00") order [] limit None"#
    );
    assert_eq!(host.calls[1..3], ["period Day -1", "period Day -1"]);
    assert_eq!(
        host.calls[4..],
        ["period Day -1", "log Info 2026-01-11 true 172800000"]
    );
}

#[test]
fn for_each_runs_the_body_per_item_and_binds_results() {
    let mut host = Fake::default();
    let out = exec(
        r#"job J { steps {
            sync { call: Api.get { since: now() }, as: inv }
            upd { for_each: inv.items
                  item: e
                  action: update Product set quantity = e.quantity, updated_at = now() where sku = e.sku
                  as: updated }
            save { state: { last_sync_timestamp: now() } }
            ev { emit: Done { n: count(updated) } }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    let updates: Vec<&String> = host
        .calls
        .iter()
        .filter(|c| c.starts_with("update"))
        .collect();
    assert_eq!(updates.len(), 2);
    assert!(
        updates[0].contains(r#"Set("quantity", Number(5))"#)
            && updates[0].ends_with(r#"where sku Eq "A""#),
        "{}",
        updates[0]
    );
    assert!(host
        .calls
        .contains(&r#"state_set last_sync_timestamp "2026-01-12T06:00:00-05:00""#.to_string()));
    assert_eq!(host.calls.last().unwrap(), r#"emit Done {"n":2}"#);
    let Outcome::Completed(out) = out else {
        panic!()
    };
    assert_eq!(out["updated"][1]["ok"], true);
    assert_eq!(out["updated"][1]["item"]["sku"], "B");
}

#[test]
fn parallel_calls_go_to_the_host_as_one_batch() {
    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { ids: ["x", "bad", "y"] }
          steps {
            push { for_each: ids
                   item: i
                   parallel: 8
                   call: Api.push { id: i, qty: 1 }
                   on_fail: continue
                   as: results }
            count { compute: count(results) - sum(pluck(results, "ok")) , as: failed }
        } }"#,
        &mut host,
        json!({}),
    );
    // `sum` of booleans is not a number: the step fails with a message, never a panic.
    let err = out.unwrap_err();
    assert!(
        err.message.contains("sum() found a boolean"),
        "{}",
        err.message
    );
    assert_eq!(host.calls[0], "call_many 3 x8");

    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { ids: ["x", "bad"] }
          steps {
            push { for_each: ids, item: i, parallel: 4, call: Api.push { id: i, qty: 1 }, on_fail: continue, as: results }
        } }"#,
        &mut host,
        json!({"ids": ["bad", "z", "w"]}),
    )
    .unwrap();
    let Outcome::Completed(out) = out else {
        panic!()
    };
    let oks: Vec<bool> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(
        oks,
        vec![false, true, true],
        "the trigger's input overrides the defaults"
    );
    assert_eq!(out["results"][0]["error"], "failed: 500");
}

#[test]
fn reports_are_attached_to_emails_by_id() {
    let mut host = Fake {
        rows: vec![json!({"total": 10.5}), json!({"total": 4.5})],
        ..Fake::default()
    };
    exec(
        r#"job J { input: { to: ["a@example.com"] }
          steps {
            o { query: select Order, as: orders }
            r { template: "t", data: { total: sum(orders, "total"), avg: avg(orders, "total") }, format: csv, as: file }
            s { compute: sum(orders, "total"), as: total }
            m { send: email(to) { subject: "Total {{total}}", attachment: file, data: { n: 1 } } }
          } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(host.calls[1], r#"report t Csv {"avg":7.5,"total":15}"#);
    assert_eq!(
        host.calls[2],
        r#"email ["a@example.com"] "Total 15" None {"n":1} ["rep-1"]"#
    );
}

#[test]
fn maintenance_and_report_deletion() {
    let mut host = Fake {
        rows: vec![json!({"id": "r1"}), json!({"id": "r2"})],
        ..Fake::default()
    };
    exec(
        r#"job J { steps {
            a { action: maintain analyze }
            v { action: maintain vacuum Order }
            q { query: select Order, as: old }
            d { for_each: old, item: r, action: delete_report(r.id) }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(
        host.calls,
        vec![
            "maintain Analyze None",
            r#"maintain Vacuum Some("Order")"#,
            "select Order where - order [] limit None",
            "delete_report r1",
            "delete_report r2",
        ]
    );
}

#[test]
fn runtime_type_errors_are_step_failures() {
    for (expr, message) in [
        // Values the build cannot type (`"a" * 2` is a build error).
        (
            r#"first(["a"]) * 2"#,
            "cannot apply `*` to a string and a number",
        ),
        ("1 / 0", "division by zero"),
        (
            "input.x.y.z",
            "`input.x` is missing: `input` is an empty object",
        ),
        (r#"number("abc")"#, "`abc` is not a number"),
        ("[1][5]", "is out of range: the list has 1 item"),
        (
            "input?.x.y",
            "cannot read `input?.x.y`: `input?.x` is null (if it may be, read `input?.x?.y`",
        ),
        (
            r#""abc"[0]"#,
            "cannot index `(value)` (a string) with a number",
        ),
        (
            r#"format_date(first(["nope"]))"#,
            "format_date() needs a timestamp",
        ),
        (
            r#"pluck([{"a": 1}, {"b": 2}], "a")"#,
            "pluck(list, \"a\"): item 1 has no `a` (it has `b`)",
        ),
        (
            r#"sum([{"a": 1}, {}], "a")"#,
            "sum(list, \"a\"): item 1 has no `a` (it has no fields)",
        ),
        (
            "1 < first([\"a\"])",
            "cannot compare a number with a string",
        ),
        // A null read from the data is named, with the two ways to handle it.
        (
            "input?.avg >= 90",
            "cannot compare null with a number: `input?.avg` is null (give it a value with \
             `input?.avg ?? 0`, or test `input?.avg != null` first)",
        ),
    ] {
        let mut host = Fake::default();
        let result = exec(
            &format!("job J {{ steps {{ c {{ compute: {expr}, as: v }} }} }}"),
            &mut host,
            json!({}),
        );
        let err = result.expect_err(expr);
        assert!(err.message.contains(message), "{expr}: {}", err.message);
    }
}

#[test]
fn input_must_be_an_object() {
    let mut host = Fake::default();
    let err = exec(
        "job J { steps { l { log: \"x\" } } }",
        &mut host,
        json!([1]),
    )
    .unwrap_err();
    assert!(err.message.contains("must be a JSON object"));
}

/// The value a `compute:` of one expression binds, or the job's error message.
fn compute(expr: &str, host: &mut Fake, input: Value) -> Result<Value, String> {
    match exec(
        &format!("job J {{ input: {{ n: 0 }} steps {{ c {{ compute: {expr}, as: v }} }} }}"),
        host,
        input,
    ) {
        Ok(Outcome::Completed(out)) => Ok(out["v"].clone()),
        Ok(other) => Err(format!("{other:?}")),
        Err(e) => Err(e.message),
    }
}

#[test]
fn builtins_compute_what_they_say() {
    let rows = r#"[{"a": 3, "s": "x"}, {"a": 1.5, "s": "y"}, {"a": null, "s": "z"}]"#;
    for (expr, expected) in [
        (format!("count({rows})"), json!(3)),
        (format!("len({rows})"), json!(3)),
        (r#"len("héllo")"#.into(), json!(5)),
        (format!(r#"sum({rows}, "a")"#), json!(4.5)),
        (format!(r#"avg({rows}, "a")"#), json!(2.25)),
        (format!(r#"min({rows}, "a")"#), json!(1.5)),
        (format!(r#"max({rows}, "a")"#), json!(3)),
        ("sum([1, 2, 3])".into(), json!(6)),
        ("avg([])".into(), json!(0)),
        ("max([])".into(), Value::Null),
        (format!(r#"pluck({rows}, "s")"#), json!(["x", "y", "z"])),
        (format!(r#"first(pluck({rows}, "s"))"#), json!("x")),
        (format!(r#"last(pluck({rows}, "s"))"#), json!("z")),
        ("first([])".into(), Value::Null),
        (r#"join(["a", 1, 2.5])"#.into(), json!("a, 1, 2.5")),
        (r#"join(["a", "b"], "-")"#.into(), json!("a-b")),
        (r#"contains(["a", "b"], "b")"#.into(), json!(true)),
        ("contains([1, 2], 3)".into(), json!(false)),
        (r#"contains("hello", "ell")"#.into(), json!(true)),
        ("round(2.345, 2)".into(), json!(2.35)),
        ("round(2.5)".into(), json!(3)),
        ("abs(-4)".into(), json!(4)),
        ("floor(2.7)".into(), json!(2)),
        ("ceil(2.1)".into(), json!(3)),
        (r#"lower("AbC")"#.into(), json!("abc")),
        (
            r#"concat(["a"], ["b", "c"])"#.into(),
            json!(["a", "b", "c"]),
        ),
        (
            r#"format_date("2026-02-01", "%d.%m.%Y")"#.into(),
            json!("01.02.2026"),
        ),
        (r#"concat("a", 1, ["b"])"#.into(), json!("a1b")),
        (r##"format(1249.5, "#,##0.00")"##.into(), json!("1,249.50")),
        (r#"format("0.125", "0.0%")"#.into(), json!("12.5%")),
        (r#"upper("AbC")"#.into(), json!("ABC")),
        (r#"trim("  x ")"#.into(), json!("x")),
        (r#"concat("a", 1, true)"#.into(), json!("a1true")),
        (r#"coalesce(null, input?.missing, "d")"#.into(), json!("d")),
        (r#"input?.missing ?? 7"#.into(), json!(7)),
        ("default(input.missing.deeper[3], [])".into(), json!([])),
        ("default(input.n, 7)".into(), json!(0)),
        ("default(null, 7)".into(), json!(7)),
        ("string(2.0)".into(), json!("2")),
        (r#"number(" 12.5 ")"#.into(), json!(12.5)),
        ("1 + 2 * 3 - 4 / 2".into(), json!(5)),
        ("7 % 4".into(), json!(3)),
        ("-n".into(), json!(0)),
        (r#"n > 0 ? "pos" : "zero""#.into(), json!("zero")),
        (r#"not (n = 0) or n < 1 and true"#.into(), json!(true)),
        (r#""a" + 1"#.into(), json!("a1")),
        ("[1] + [2]".into(), json!([1, 2])),
        (format!("{rows}[1].s"), json!("y")),
        (format!("{rows}[-1].s"), json!("z")),
        (r#"state("limit", 10)"#.into(), json!(10)),
        ("last_run_at()".into(), Value::Null),
        ("hours_ago(2)".into(), json!("2026-01-12T04:00:00-05:00")),
        ("minutes_ago(30)".into(), json!("2026-01-12T05:30:00-05:00")),
        ("now() + 1h".into(), json!("2026-01-12T07:00:00-05:00")),
        (
            r#""2026-01-12T11:00:00Z" = "2026-01-12T06:00:00-05:00""#.into(),
            json!(true),
        ),
        (
            r#""2026-01-12T10:59:59Z" < "2026-01-12T06:00:00-05:00""#.into(),
            json!(true),
        ),
        ("format_date(now(), \"%H:%M\")".into(), json!("06:00")),
        // A value in UTC (as a database gives it) is shown in the job's timezone.
        (
            r#"format_date("2026-01-12T20:30:00Z", "%Y-%m-%d %H:%M")"#.into(),
            json!("2026-01-12 15:30"),
        ),
        ("this_week().label".into(), json!("Week0")),
        ("last_month().label".into(), json!("Month-1")),
        ("this_year().label".into(), json!("Year0")),
        ("today().end".into(), json!("2026-01-13T00:00:00-05:00")),
    ] {
        let mut host = Fake::default();
        let got = compute(&expr, &mut host, json!({}));
        assert_eq!(got, Ok(expected), "{expr}");
    }
}

#[test]
fn state_builtins_read_the_job_state() {
    let mut host = Fake::default();
    host.state
        .insert("last_sync_timestamp".into(), json!("2026-01-01T00:00:00Z"));
    host.state
        .insert("last_run_at".into(), json!("2026-01-11T00:00:00Z"));
    host.state.insert("limit".into(), json!(3));
    assert_eq!(
        compute(
            r#"[last_sync_timestamp(), last_run_at(), state("limit", 10), state("other")]"#,
            &mut host,
            json!({})
        ),
        Ok(json!([
            "2026-01-01T00:00:00Z",
            "2026-01-11T00:00:00Z",
            3,
            null
        ]))
    );
}

#[test]
fn interpolation_formats_values_naturally() {
    let mut host = Fake::default();
    exec(
        r##"job J { input: { who: "Ann", n: 3, x: 2.0, y: 1.25, tags: ["a", "b"], none: null }
          steps {
            l { log: warn "{{who}} has {{n}} ({{x}}, {{y}}) [{{tags}}] <{{none}}>" }
            m { log: "paid {{format(y * 1000, \"#,##0.00\")}}" }
          } }"##,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(
        host.calls,
        [
            "log Warn Ann has 3 (2, 1.25) [a, b] <>",
            "log Info paid 1,250.00"
        ]
    );
}

#[test]
fn aggregates_bind_their_one_row_or_their_groups() {
    let mut host = Fake {
        rows: vec![json!({"n": 2, "total": 3.5})],
        ..Fake::default()
    };
    let out = exec(
        r#"job J { steps {
            a { query: aggregate Order { n: count(), total: sum(total) } where status = "new", as: a }
            g { query: aggregate Order { n: count() } group by status order by n desc limit 3, as: g }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(
        host.calls,
        [
            r#"aggregate Order n=count(),total=sum(total) where status Eq "new" group [] order [] limit None"#,
            r#"aggregate Order n=count() where - group ["status"] order [("n", true)] limit Some(3)"#,
        ]
    );
    let Outcome::Completed(out) = out else {
        panic!("{out:?}")
    };
    // Without groups the row itself; with them the list.
    assert_eq!(out["a"], json!({"n": 2, "total": 3.5}));
    assert_eq!(out["g"], json!([{"n": 2, "total": 3.5}]));
}

#[test]
fn a_paginated_call_follows_next_and_gathers_every_page() {
    const JOB: &str = r#"job J {
        steps {
            fetch {
                call: Api.get { since: now() }
                paginate: { next: page?.next, param: "since", items: page.data, max_pages: 3 }
                as: all
            }
        }
    }"#;
    let pages = [
        json!({"data": [1, 2], "next": "c1"}),
        json!({"data": [], "next": "c2"}),
        json!({"data": [3], "next": null}),
        json!({"data": [4], "next": "c4"}),
    ];
    let mut host = Fake {
        pages: pages.iter().cloned().collect(),
        ..Fake::default()
    };
    let Outcome::Completed(out) = exec(JOB, &mut host, json!({})).unwrap() else {
        panic!()
    };
    assert_eq!(out["all"], json!([1, 2, 3]));
    assert_eq!(
        host.calls,
        [
            r#"call Api.get {"since":"2026-01-12T06:00:00-05:00"} None"#,
            r#"call Api.get {"since":"c1"} None"#,
            r#"call Api.get {"since":"c2"} None"#,
        ]
    );
    // Bounded: a fourth page is not asked for; the log says more remained.
    let mut host = Fake {
        pages: std::iter::repeat_n(json!({"data": [1], "next": "a"}), 5).collect(),
        ..Fake::default()
    };
    let Outcome::Completed(out) = exec(JOB, &mut host, json!({})).unwrap() else {
        panic!()
    };
    assert_eq!(out["all"], json!([1, 1, 1]));
    assert_eq!(
        host.calls.iter().filter(|c| c.starts_with("call")).count(),
        3
    );
    assert_eq!(
        host.logs(),
        ["log Warn `paginate` stopped after max_pages (3) pages; more remain"]
    );
    // Items that are not a list fail the step with the page's number.
    let mut host = Fake {
        pages: [
            json!({"data": [1], "next": "a"}),
            json!({"data": "x", "next": null}),
        ]
        .into_iter()
        .collect(),
        ..Fake::default()
    };
    let err = exec(JOB, &mut host, json!({})).unwrap_err();
    assert!(
        err.message
            .contains("page 2: `paginate` items must be a list, got a string"),
        "{}",
        err.message
    );
}

#[test]
fn upserts_send_their_row_and_key() {
    let mut host = Fake::default();
    exec(
        r#"job J {
            input: { items: [] }
            steps {
                save {
                    for_each: items
                    item: it
                    action: upsert Product { sku: it.sku, quantity: it.n, price: 1, updated_at: now() } on [sku]
                }
                order { action: upsert Order { id: "5d0c6f0e-3c39-4a8f-9a59-1f8a3a8f6b10", total: 2, status: "new", created_at: now() } }
            }
        }"#,
        &mut host,
        json!({ "items": [{ "sku": "A", "n": 1 }, { "sku": "B", "n": 2 }] }),
    )
    .unwrap();
    assert_eq!(
        host.calls,
        [
            r#"upsert Product [{"price":1,"quantity":1,"sku":"A","updated_at":"2026-01-12T06:00:00-05:00"}] on ["sku"]"#,
            r#"upsert Product [{"price":1,"quantity":2,"sku":"B","updated_at":"2026-01-12T06:00:00-05:00"}] on ["sku"]"#,
            r#"upsert Order [{"created_at":"2026-01-12T06:00:00-05:00","id":"5d0c6f0e-3c39-4a8f-9a59-1f8a3a8f6b10","status":"new","total":2}] on ["id"]"#,
        ]
    );
}

#[test]
fn count_insert_and_on_empty_abort() {
    let mut host = Fake::default();
    let err = exec(
        r#"job J { steps {
            i { action: insert Order { total: 1.5, status: "new", created_at: now() }, as: inserted }
            c { query: count Order where status = "new", as: n, on_empty: abort("no orders") }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(
        host.calls,
        [
            r#"insert Order [{"created_at":"2026-01-12T06:00:00-05:00","status":"new","total":1.5}]"#,
            r#"count Order where status Eq "new""#,
        ]
    );
    assert_eq!(err.step.as_deref(), Some("c"));
    assert_eq!(err.message, "no orders");

    // With rows the count is bound and the job completes.
    let mut host = Fake {
        rows: vec![json!({}), json!({})],
        ..Fake::default()
    };
    let out = exec(
        r#"job J { steps { c { query: count Order, as: n, on_empty: abort("no orders") } } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(out, Outcome::Completed(json!({"n": 2})));
}

#[test]
fn on_fail_skip_and_continue_bind_null() {
    let job = |policy: &str| {
        format!(
            r#"job J {{ steps {{
                c {{ call: Api.get {{ since: now() }}, as: r, {policy} }}
                l {{ log: "r is <{{{{r}}}}>" }}
            }} }}"#
        )
    };
    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let out = exec(&job(r#"on_fail: skip("api down")"#), &mut host, json!({})).unwrap();
    assert_eq!(out, Outcome::Skipped("api down".into()));
    assert!(host.calls.last().unwrap().starts_with("log Warn step `c`"));

    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let out = exec(&job("on_fail: continue"), &mut host, json!({})).unwrap();
    assert_eq!(out, Outcome::Completed(json!({"r": null})));
    assert_eq!(host.calls.last().unwrap(), "log Info r is <>");
}

#[test]
fn for_each_failures_fail_the_step_unless_it_continues() {
    // A sequential body that fails on the second item: without `continue` the job fails there.
    let job = |policy: &str| {
        format!(
            r#"job J {{ input: {{ ids: ["a", "b", "c"] }}
              steps {{ p {{ for_each: ids, item: i, call: Api.push {{ id: i, qty: 1 }}, as: out {policy} }} }} }}"#
        )
    };
    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let err = exec(&job(""), &mut host, json!({})).unwrap_err();
    assert_eq!(err.step.as_deref(), Some("p"));
    assert!(
        err.message.contains("item 0: failed: 503"),
        "{}",
        err.message
    );
    assert_eq!(host.calls.len(), 1);

    let mut host = Fake {
        fail_call: true,
        ..Fake::default()
    };
    let Outcome::Completed(out) = exec(&job(", on_fail: continue"), &mut host, json!({})).unwrap()
    else {
        panic!()
    };
    assert_eq!(out["out"].as_array().unwrap().len(), 3);
    assert_eq!(out["out"][2]["ok"], false);
    assert_eq!(out["out"][2]["item"], "c");
    // Three calls and three warnings.
    assert_eq!(host.calls.len(), 6, "{:?}", host.calls);

    // A batched body whose host call fails without `continue`.
    let mut host = Fake::default();
    let err = exec(
        r#"job J { input: { ids: ["x", "bad"] }
          steps { p { for_each: ids, item: i, parallel: 2, call: Api.push { id: i, qty: 1 } } } }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.message.contains("item bad: failed: 500"),
        "{}",
        err.message
    );

    // An empty list triggers `on_empty`; a non-list is a step failure.
    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { ids: ["x"] }
          steps { p { for_each: ids, item: i, call: Api.push { id: i, qty: 1 }, on_empty: skip("none") } } }"#,
        &mut host,
        json!({"ids": []}),
    )
    .unwrap();
    assert_eq!(out, Outcome::Skipped("none".into()));
    let err = exec(
        r#"job J { input: { ids: ["x"] }
          steps { p { for_each: ids, item: i, call: Api.push { id: i, qty: 1 } } } }"#,
        &mut host,
        json!({"ids": "x"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .contains("`for_each` needs a list, got a string"),
        "{}",
        err.message
    );
}

#[test]
fn extreme_values_fail_or_saturate_without_panicking() {
    for (expr, input) in [
        ("-n", json!({"n": i64::MIN})),
        ("n * n", json!({"n": i64::MAX})),
        ("n + n", json!({"n": i64::MAX})),
        ("days_ago(n)", json!({"n": 1e300})),
        ("now() + n", json!({"n": 1e300})),
        ("round(n, 400)", json!({"n": 1e300})),
        ("n / 0.0", json!({"n": 1})),
        ("format_date(now(), n)", json!({"n": "%"})),
    ] {
        let mut host = Fake::default();
        // Either outcome is fine; reaching here without a panic is the point.
        let _ = compute(expr, &mut host, input);
    }
    let mut host = Fake::default();
    assert_eq!(
        compute("-n", &mut host, json!({"n": i64::MIN})),
        Ok(json!(-(i64::MIN as f64)))
    );
}

#[test]
fn a_huge_output_is_replaced_by_a_note() {
    let mut host = Fake::default();
    let big = "x".repeat(2 << 20);
    let Outcome::Completed(out) = exec(
        r#"job J { input: { s: "" } steps { c { compute: s, as: copy } } }"#,
        &mut host,
        json!({ "s": big }),
    )
    .unwrap() else {
        panic!()
    };
    let out: Value = serde_json::from_str(&output_text(&out)).unwrap();
    assert_eq!(out["truncated"], true);
    assert_eq!(out["bindings"], json!(["copy"]));
    assert!(out["size"].as_u64().unwrap() > 2 << 20);
}

// ---------------------------------------------------------------------------------------------
// Actions, blocks, conditions and strict data
// ---------------------------------------------------------------------------------------------

/// Compiles a file of declarations and one job (no shared declarations) and runs it.
fn exec_file(source: &str, host: &mut Fake, input: Value) -> Result<Outcome, JobError> {
    run(&program(source), input, host)
}

#[test]
fn a_declared_action_runs_per_item_with_its_parameters() {
    let mut host = Fake::default();
    let out = exec_file(
        r#"
        action process_item(item, label) {
            steps {
                push { call: Api.push { id: item.sku, qty: item.n }  as: pushed }
                note { log: "{{label}} {{item.sku}}" }
            }
        }
        job J {
            input: { items: [{ sku: "a", n: 1 }, { sku: "b", n: 2 }] }
            steps {
                process_items {
                    for_each: items
                    parallel: 10
                    action: process_item(item, "pushed")
                    as: results
                }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    let lines: Vec<&str> = host
        .calls
        .iter()
        .map(String::as_str)
        .filter(|c| c.starts_with("call") || c.starts_with("log"))
        .collect();
    assert_eq!(
        lines,
        vec![
            r#"call Api.push {"id":"a","qty":1} None"#,
            "log Info pushed a",
            r#"call Api.push {"id":"b","qty":2} None"#,
            "log Info pushed b",
        ]
    );
    let Outcome::Completed(out) = out else {
        panic!("{out:?}")
    };
    // Each item's value is the object of the action's bindings.
    assert_eq!(out["results"][1]["ok"], json!(true));
    assert!(out["results"][1]["value"]["pushed"].is_object(), "{out}");
    // The action's parameters do not leak into the job's scope.
    assert!(out.get("label").is_none());
    // Only the job's own step is marked for traces, not the action's steps per item.
    assert_eq!(host.marks, ["process_items"]);
}

#[test]
fn a_for_each_block_runs_several_steps_per_item_in_order() {
    let mut host = Fake::default();
    let out = exec(
        r#"job J {
            input: { xs: [1, 2, 3] }
            steps {
                each {
                    for_each: xs
                    item: x
                    steps {
                        double { compute: x * 2  as: d }
                        show { log: "{{x}}->{{d}}"  when: d != 4 }
                    }
                    as: all
                }
                after { compute: count(all) as: n }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    let logs = host.logs();
    assert_eq!(
        logs,
        vec![
            "log Info 1->2",
            "log Info step `show` skipped: `when: d != 4` does not hold",
            "log Info 3->6",
        ]
    );
    let Outcome::Completed(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out["n"], json!(3));
    assert_eq!(out["all"][2]["value"]["d"], json!(6));
    // The job's own steps are marked, not the block's.
    assert_eq!(host.marks, ["each", "after"]);
}

#[test]
fn when_skips_a_step_and_binds_null() {
    for (n, ran) in [(0, false), (5, true)] {
        let mut host = Fake::default();
        let out = exec(
            r#"job J {
                input: { n: 0 }
                steps {
                    s { emit: Done { n: n }  when: n > 0 and not (n = 3) }
                    c { compute: n * 10  when: n > 0 ? true : false  as: v }
                }
            }"#,
            &mut host,
            json!({ "n": n }),
        )
        .unwrap();
        let emitted = host.calls.iter().any(|c| c.starts_with("emit"));
        assert_eq!(emitted, ran, "n = {n}: {:?}", host.calls);
        let Outcome::Completed(out) = out else {
            panic!("{out:?}")
        };
        assert_eq!(out["v"], if ran { json!(50) } else { Value::Null });
        // A step that does not run is not marked as started.
        let marked: &[&str] = if ran { &["s", "c"] } else { &[] };
        assert_eq!(host.marks, marked, "n = {n}");
    }
}

#[test]
fn a_when_that_is_not_a_boolean_at_run_time_fails_the_step() {
    let mut host = Fake::default();
    let err = exec(
        r#"job J { input: { flag: 0 } steps { s { log: "x"  when: flag } } }"#,
        &mut host,
        json!({ "flag": "yes" }),
    )
    .unwrap_err();
    assert_eq!(err.step.as_deref(), Some("s"));
    assert!(
        err.message
            .contains("`when: flag` needs true or false, got a string"),
        "{}",
        err.message
    );
}

#[test]
fn fail_and_skip_as_conditional_steps() {
    // `fail` fails the job with its message unless `on_fail` says otherwise.
    let mut host = Fake::default();
    let err = exec(
        r#"job J { input: { n: 1 } steps {
            check { action: fail("n is {{n}}")  when: n > 0 }
            later { log: "not reached" }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.step.as_deref(), Some("check"));
    assert!(err.message.ends_with("n is 1"), "{}", err.message);
    assert!(!host.calls.iter().any(|c| c.contains("not reached")));

    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { n: 1 } steps {
            check { action: fail("bad")  on_fail: continue }
            later { compute: 1  as: v }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert!(
        matches!(out, Outcome::Completed(ref o) if o["v"] == json!(1)),
        "{out:?}"
    );

    // `skip` inside an action inside a `for_each` ends the job as skipped, past `on_fail`.
    let mut host = Fake::default();
    let out = exec_file(
        r#"
        action guard(x) { steps { stop { action: skip("nothing for {{x}}")  when: x = 2 } } }
        job J { input: { xs: [1, 2, 3] } steps {
            each { for_each: xs  action: guard(item)  on_fail: continue }
            later { log: "not reached" }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    assert_eq!(out, Outcome::Skipped("nothing for 2".into()));
    assert!(!host.calls.iter().any(|c| c.contains("not reached")));
}

#[test]
fn a_missing_field_fails_the_step_with_the_path_and_the_keys() {
    let mut host = Fake::default();
    let err = exec(
        r#"job J { input: { resp: { items: [], total: 0 } } steps {
            each { for_each: resp.data  action: fail("x") }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.step.as_deref(), Some("each"));
    assert!(
        err.message
            .contains("`resp.data` is missing: `resp` has the keys `items`, `total`"),
        "{}",
        err.message
    );
    // The same read made optional runs over nothing.
    let mut host = Fake::default();
    let out = exec(
        r#"job J { input: { resp: { items: [] } } steps {
            each { for_each: default(resp.data, [])  action: fail("x")  as: r }
            other { compute: resp?.data ?? "none"  as: o }
        } }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    let Outcome::Completed(out) = out else {
        panic!("{out:?}")
    };
    assert_eq!(out["r"], json!([]));
    assert_eq!(out["o"], json!("none"));
}

#[test]
fn typed_input_is_checked_and_iso_dates_become_days() {
    let job = "job J {
        input: { start_date: date = yesterday(), end_date: date = \"2026-01-12\", to: [string] = [\"a@b.c\"], n: int }
        steps { l { log: \"{{start_date}} {{input.end_date}} {{to}} {{n}}\" } }
    }";
    // Defaults: `yesterday()` is its start; the literal date is the start of that day.
    let mut host = Fake::default();
    exec(job, &mut host, json!({"n": 1})).unwrap();
    let log = host.calls.iter().find(|c| c.starts_with("log ")).unwrap();
    assert_eq!(
        log,
        "log Info 2026-01-11T00:00:00-05:00 2026-01-12T00:00:00-05:00 a@b.c 1"
    );
    // Given dates: the start of those days in the job's timezone, asked of the host.
    let mut host = Fake::default();
    exec(
        job,
        &mut host,
        json!({"n": 2, "start_date": "2026-01-01", "to": ["x@y.z"]}),
    )
    .unwrap();
    let log = host.calls.iter().find(|c| c.starts_with("log ")).unwrap();
    assert_eq!(
        log,
        "log Info 2026-01-01T00:00:00-05:00 2026-01-12T00:00:00-05:00 x@y.z 2"
    );
    assert!(
        host.calls.contains(&"period Day -11".to_string()),
        "{:?}",
        host.calls
    );
    // The declaration is checked here too (a run that did not come through the API).
    let mut host = Fake::default();
    let err = exec(job, &mut host, json!({"n": 1, "start_date": "2026-13-01"})).unwrap_err();
    assert_eq!(
        err.message,
        "input `start_date`: `2026-13-01` is not an ISO date (YYYY-MM-DD)"
    );
    let err = exec(job, &mut host, json!({})).unwrap_err();
    assert_eq!(err.message, "input `n`: required (int) and missing");
    let err = exec(job, &mut host, json!({"n": 1, "m": 2})).unwrap_err();
    assert!(
        err.message.starts_with("input `m`: not a declared input"),
        "{}",
        err.message
    );
}

#[test]
fn interpolations_take_expressions() {
    let mut host = Fake::default();
    exec(
        r#"job J {
            input: { xs: [1, 2, 3], total: 12.345 }
            steps {
                say { log: "{{count(xs)}} items, first doubled {{xs[0] * 2}}, total {{round(total, 2)}}, many {{count(xs) > 2}}" }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap();
    let logs = host.logs();
    assert_eq!(
        logs,
        ["log Info 3 items, first doubled 2, total 12.35, many true"]
    );
}

#[test]
fn filter_and_find_take_a_condition_on_each_item() {
    let mut host = Fake {
        rows: vec![
            json!({"id": "a", "total": 50.0, "status": "paid", "created_at": "2026-01-10T00:00:00Z"}),
            json!({"id": "b", "total": 150.0, "status": "open", "created_at": "2026-01-11T00:00:00Z"}),
            json!({"id": "c", "total": 250.0, "status": "paid", "created_at": "2026-01-12T00:00:00Z"}),
        ],
        ..Fake::default()
    };
    let Outcome::Completed(out) = exec(
        r#"job J {
            input: { wanted: "c", min: 100 }
            steps {
                load { query: select Order  as: rows }
                big { compute: filter(rows, r -> r.total > min)  as: big }
                paid { compute: pluck(filter(big, r -> r.status = "paid"), "id")  as: paid }
                one { compute: find(rows, r -> r.id = wanted)  as: one }
                none { compute: find(rows, r -> r.id = "zz")  as: none }
                empty { compute: filter(null, r -> r.ok)  as: empty }
                say { log: "{{count(filter(rows, o -> o.status = \"open\"))}} open of {{count(rows)}}" }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(pluck_ids(&out["big"]), ["b", "c"]);
    assert_eq!(out["paid"], json!(["c"]));
    assert_eq!(out["one"]["id"], json!("c"));
    assert_eq!(out["none"], Value::Null);
    assert_eq!(out["empty"], json!([]));
    assert_eq!(host.logs(), ["log Info 1 open of 3"]);
    // The item's name does not leak: a binding of that name keeps its value.
    let Outcome::Completed(out) = exec(
        r#"job J {
            input: { r: 7, xs: [1, 5, 9] }
            steps {
                f { compute: filter(xs, r -> r > 4)  as: f }
                after { compute: r  as: after }
            }
        }"#,
        &mut Fake::default(),
        json!({}),
    )
    .unwrap() else {
        panic!()
    };
    assert_eq!(
        (out["f"].clone(), out["after"].clone()),
        (json!([5, 9]), json!(7))
    );
}

fn pluck_ids(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect()
}

#[test]
fn a_condition_that_is_not_true_or_false_for_an_item_fails_the_step_naming_it() {
    let err = exec(
        r#"job J {
            input: { xs: [{ ok: true }, { ok: "yes" }] }
            steps {
                f { compute: filter(xs, x -> x.ok)  as: f }
            }
        }"#,
        &mut Fake::default(),
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.message.ends_with(
            "filter(…, x -> …) needs true or false for each item, got a string for item 1"
        ),
        "{}",
        err.message
    );
    let err = exec(
        r#"job J {
            input: { xs: 3 }
            steps {
                f { compute: find(xs, x -> x.ok)  as: f }
            }
        }"#,
        &mut Fake::default(),
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.message
            .ends_with("find() needs a list, but `xs` is a number"),
        "{}",
        err.message
    );
}

#[test]
fn a_call_answered_with_html_is_said_not_to_be_json_where_it_is_used_as_an_object() {
    let page = "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>Please sign in to continue to the dashboard</body></html>";
    let mut host = Fake {
        pages: [json!(page)].into_iter().collect(),
        ..Fake::default()
    };
    let err = exec(
        r#"job J {
            steps {
                fetch { call: Api.get { since: now() }  as: resp }
                each { for_each: resp.items  log: "{{item.sku}}" }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert_eq!(err.step.as_deref(), Some("each"));
    let expected = "cannot read `resp.items`: the response of `Api.get` was not JSON: it \
        answered 200 with an HTML page, `<!DOCTYPE html> <html><head><title>Sign \
        in</title></head><bo…` (check the integration's `base_url`, the operation's \
        path and its `auth`: a wrong address or a login or error page answers with HTML)";
    assert!(err.message.ends_with(expected), "{}", err.message);
    // The call's step logs it as a warning when it happens.
    assert_eq!(host.logs().len(), 1, "{:?}", host.logs());
    assert!(host.logs()[0].starts_with("log Warn the response of `Api.get` was not JSON"));

    // Other first uses as a list or an object say the same.
    for use_ in [
        "for_each: resp  log: \"x\"",
        "compute: pluck(resp, \"sku\")",
        "compute: filter(resp, r -> r.ok)",
        "compute: resp[0]",
    ] {
        let mut host = Fake {
            pages: [json!("plain text, not json")].into_iter().collect(),
            ..Fake::default()
        };
        let job = format!(
            "job J {{ steps {{ fetch {{ call: Api.get {{ since: now() }}  as: resp }}  use {{ {use_} }} }} }}"
        );
        let err = exec(&job, &mut host, json!({})).unwrap_err();
        assert!(
            err.message.ends_with(
                "the response of `Api.get` was not JSON: it answered 200 with text, `plain text, not json`"
            ),
            "{use_}: {}",
            err.message
        );
        assert!(host.logs().is_empty(), "{:?}", host.logs());
    }

    // A string that is not a call's response reads as before.
    let err = exec(
        r#"job J { input: { resp: "text" } steps { use { compute: resp.items } } }"#,
        &mut Fake::default(),
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.message
            .ends_with("cannot read `resp.items`: `resp` is a string"),
        "{}",
        err.message
    );
}

#[test]
fn a_paginated_call_answered_with_text_says_so_at_its_page() {
    let mut host = Fake {
        pages: [json!("<html><body>Bad gateway</body></html>")]
            .into_iter()
            .collect(),
        ..Fake::default()
    };
    let err = exec(
        r#"job J {
            steps {
                fetch {
                    call: Api.get { since: now() }
                    paginate: { next: page.next, param: "since", items: page.data }
                    as: all
                }
            }
        }"#,
        &mut host,
        json!({}),
    )
    .unwrap_err();
    assert!(
        err.message.ends_with(
            "cannot read `page.data`: the response of `Api.get` was not JSON: it answered 200 \
             with an HTML page, `<html><body>Bad gateway</body></html>` (check the \
             integration's `base_url`, the operation's path and its `auth`: a wrong address or \
             a login or error page answers with HTML)"
        ),
        "{}",
        err.message
    );
}

#[test]
fn a_policy_without_a_text_says_which_step_and_what_happened() {
    let mut host = Fake::default();
    assert_eq!(
        exec(
            r#"job J { steps { none { compute: [] as: none on_empty: skip } } }"#,
            &mut host,
            Value::Null
        ),
        Ok(Outcome::Skipped(
            "step `none` found nothing (`on_empty: skip`)".into()
        ))
    );
    let failed = exec(
        r#"job J { input: { n: 0 } steps { bad { compute: 1 / n on_fail: abort } } }"#,
        &mut host,
        Value::Null,
    )
    .unwrap_err();
    assert_eq!(
        failed.message,
        "step `bad` failed (`on_fail: abort`; its error is in the log)"
    );
}

/// Values of every kind, from a seeded generator: nested lists and objects, integers across
/// their range, floats of every exponent, strings with quotes, backslashes, control characters,
/// DEL, non-ASCII and the escapes' neighbours.
fn values(seed: u64, n: usize) -> Vec<Value> {
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
        fn string(&mut self) -> String {
            const PIECES: &[&str] = &[
                "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\r", "\u{8}", "\u{c}", "\u{0}",
                "\u{1f}", "\u{7f}", "é", "日本", "🦀", "\u{2028}", "'", "{}", "0x", "\\u00",
            ];
            (0..self.below(8))
                .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
                .collect()
        }
        fn value(&mut self, depth: u32) -> Value {
            match self.below(if depth == 0 { 6 } else { 8 }) {
                0 => Value::Null,
                1 => Value::Bool(self.below(2) == 0),
                2 => match self.below(4) {
                    0 => json!(self.next()),
                    1 => json!(self.next() as i64),
                    2 => json!(self.below(1000) as i64 - 500),
                    _ => {
                        let f = f64::from_bits(self.next());
                        if f.is_finite() {
                            json!(f)
                        } else {
                            json!(self.below(10_000) as f64 / 7.0)
                        }
                    }
                },
                3..=5 => Value::String(self.string()),
                6 => Value::Array((0..self.below(5)).map(|_| self.value(depth - 1)).collect()),
                _ => Value::Object(
                    (0..self.below(5))
                        .map(|_| (self.string(), self.value(depth - 1)))
                        .collect(),
                ),
            }
        }
    }
    let mut gen = Gen(seed);
    (0..n).map(|_| gen.value(4)).collect()
}

#[test]
fn json_text_writes_what_serde_json_writes() {
    let edges = [
        json!(null),
        json!({}),
        json!([]),
        json!(""),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(-0.0),
        json!(0.1),
        json!(1e300),
        json!(5e-324),
        json!(1.0),
        json!({"answer": 42, "b": [true, false, null], "c": {"": "\u{0}\"\\/"}}),
    ];
    for v in edges.iter().chain(&values(0x9e37_79b9_7f4a_7c15, 3000)) {
        assert_eq!(json_text(v), serde_json::to_string(v).unwrap(), "{v:?}");
    }
}
