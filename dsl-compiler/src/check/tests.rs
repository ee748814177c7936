//! Tests of the checker: the seed example checks cleanly and lowers to the expected manifests
//! and programs; each semantic mistake is reported once, at the right text, with its hint.

use super::{check, CheckedJob};
use crate::diagnostic::Diagnostic;
use codeai_ir::{
    Assignment, Backoff, BinaryOp, Builtin, CompareOp, Expr, Filter, Part, Policy, ReportFormat,
    Schedule, StepKind, Term,
};

const EXAMPLE: &str = include_str!("../../../examples/05-scheduled-jobs/scheduled-jobs.codeai");

/// Declarations the small test programs use.
const PRELUDE: &str = r#"
entity Product {
    id: uuid primary
    sku: string
    quantity: int
    price: float
    active: bool
    note: string optional
    updated_at: datetime
}
integration Shop {
    base_url: env("SHOP_URL")
    get_item: GET "/items/{id}" { id: string }
}
template summary { body: "{{count}} items" }
event Done { count: int }
"#;

/// Parses (asserting the syntax is valid) and checks a source.
fn run(source: &str) -> (Vec<CheckedJob>, Vec<Diagnostic>) {
    let (file, parse_errors) = crate::parse(source);
    assert!(
        parse_errors.is_empty(),
        "syntax errors in test source: {parse_errors:#?}"
    );
    check(&file, source, "test.codeai")
}

/// Checks a job (with the prelude) and returns its diagnostics.
fn diagnostics(job: &str) -> (String, Vec<Diagnostic>) {
    let source = format!("{PRELUDE}\n{job}");
    let (_, diagnostics) = run(&source);
    (source, diagnostics)
}

/// Asserts exactly one error, with this message, pointing at `at` (the first occurrence of
/// that text in the job, or `TEXT @ CONTEXT` for TEXT where CONTEXT first occurs), and
/// returns its hint.
fn one_error(job: &str, message: &str, at: &str) -> Option<String> {
    let (source, diagnostics) = diagnostics(job);
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(
        errors.len(),
        1,
        "expected one error for:\n{job}\ngot {errors:#?}"
    );
    let d = errors[0];
    assert_eq!(d.message, message);
    // `TEXT @ CONTEXT`: the span is TEXT, found where CONTEXT starts.
    let (at, context) = at.split_once(" @ ").unwrap_or((at, at));
    let start = PRELUDE.len() + 1 + job.find(context).expect("`at` occurs in the job");
    assert_eq!(
        &source[d.span.range()],
        at,
        "span of `{message}`: expected `{at}` at {start}, got {:?}",
        d.span
    );
    assert_eq!(d.span.start, start, "span start of `{message}`");
    d.hint.clone()
}

fn ok(job: &str) -> CheckedJob {
    let (source, diagnostics) = diagnostics(job);
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "unexpected errors: {errors:#?}");
    let (jobs, _) = run(&source);
    jobs.into_iter().last().expect("one job")
}

fn example() -> Vec<CheckedJob> {
    let (jobs, diagnostics) = run(EXAMPLE);
    assert_eq!(diagnostics, Vec::new(), "the example must check cleanly");
    jobs
}

fn job<'j>(jobs: &'j [CheckedJob], name: &str) -> &'j CheckedJob {
    jobs.iter()
        .find(|j| j.manifest.name == name)
        .unwrap_or_else(|| panic!("job {name}"))
}

#[test]
fn example_checks_cleanly_into_ten_jobs() {
    let jobs = example();
    let names: Vec<&str> = jobs.iter().map(|j| j.manifest.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "DailySalesReport",
            "WeeklyInventoryReport",
            "MonthlyBusinessSummary",
            "CleanupExpiredSessions",
            "CleanupJobExecutions",
            "CleanupExpiredReports",
            "DatabaseMaintenance",
            "SyncExternalInventory",
            "ProcessPendingWebhooks",
            "LowStockAlert",
        ]
    );
    for j in &jobs {
        assert_eq!(j.program.job, j.manifest.name);
        assert_eq!(j.program.ir_version, codeai_ir::IR_VERSION);
        assert_eq!(j.manifest.source_file, "test.codeai");
        assert_eq!(j.manifest.source_hash.len(), 64);
        assert!(j.manifest.capabilities.contains(&"log".to_string()));
        let queues: Vec<(&str, u32)> = j
            .manifest
            .queues
            .iter()
            .map(|q| (q.name.as_str(), q.weight))
            .collect();
        assert_eq!(queues, [("critical", 6), ("default", 3), ("low", 1)]);
    }
}

#[test]
fn example_daily_sales_report_manifest() {
    let jobs = example();
    let m = &job(&jobs, "DailySalesReport").manifest;
    assert_eq!(
        m.schedule,
        Schedule::Cron {
            expression: "0 6 * * *".into()
        }
    );
    assert_eq!(m.timezone, "America/New_York");
    assert_eq!(m.queue, "default");
    assert_eq!(m.timeout_ms, 30 * 60 * 1000);
    assert_eq!(m.retry.max_retries, 3);
    assert_eq!(m.retry.backoff, Backoff::Exponential { base_ms: 100 });
    assert_eq!(m.job_type, "report");
    assert_eq!(m.description.as_deref(), Some("Daily sales summary"));
    assert_eq!(m.on_complete.as_deref(), Some("JobCompleted"));
    assert_eq!(m.on_fail.as_deref(), Some("JobFailed"));
    assert_eq!(m.overlap, codeai_ir::Overlap::Skip);
    assert_eq!(
        m.capabilities,
        ["clock", "data", "email", "events", "log", "report"]
    );
    let entities: Vec<&str> = m.entities.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(entities, ["Order"]);
    assert_eq!(m.entities[0].table, "orders");
    let templates: Vec<&str> = m.templates.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(templates, ["daily_sales_report", "daily_report"]);
    let events: Vec<&str> = m.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["JobCompleted", "JobFailed"]);
    assert!(m.integrations.is_empty());
    let table = m.templates[0]
        .table
        .as_ref()
        .expect("the report has a table");
    assert_eq!(table.source, "orders");
    assert_eq!(table.totals, ["total"]);
}

#[test]
fn example_sync_and_webhook_manifests() {
    let jobs = example();
    let sync = &job(&jobs, "SyncExternalInventory").manifest;
    assert_eq!(sync.retry.max_retries, 5);
    assert_eq!(
        sync.retry.backoff,
        Backoff::Custom {
            delays_ms: vec![60_000, 300_000, 1_800_000, 7_200_000, 28_800_000]
        }
    );
    assert_eq!(
        sync.schedule,
        Schedule::Interval {
            every_ms: 30 * 60 * 1000
        }
    );
    assert_eq!(
        sync.capabilities,
        ["clock", "data", "events", "http", "log", "state"]
    );
    assert_eq!(sync.integrations.len(), 1);
    assert_eq!(sync.integrations[0].name, "WarehouseAPI");
    assert_eq!(sync.integrations[0].timeout_ms, 30_000);
    let events: Vec<&str> = sync.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["JobFailed", "InventorySynced"]);

    let hooks = &job(&jobs, "ProcessPendingWebhooks").manifest;
    assert_eq!(hooks.queue, "critical");
    assert_eq!(hooks.schedule, Schedule::Interval { every_ms: 300_000 });
    assert_eq!(hooks.timeout_ms, 4 * 60 * 1000);
    assert_eq!(hooks.job_type, "processing");

    let sessions = &job(&jobs, "CleanupExpiredSessions").manifest;
    assert_eq!(sessions.retry.backoff, Backoff::Fixed { delay_ms: 1000 });
    assert_eq!(sessions.retry.max_retries, 2);
    assert_eq!(sessions.timezone, "UTC");
    assert_eq!(sessions.queue, "low");

    let maintenance = &job(&jobs, "DatabaseMaintenance").manifest;
    assert_eq!(
        maintenance.schedule,
        Schedule::Cron {
            expression: "0 4 * * 0".into()
        }
    );
    assert_eq!(maintenance.capabilities, ["data", "events", "log"]);
}

#[test]
fn example_low_stock_alert_program() {
    let jobs = example();
    let j = job(&jobs, "LowStockAlert");
    let first = &j.program.steps[0];
    assert_eq!(first.name, "fetch_data");
    assert_eq!(first.bind.as_deref(), Some("low_stock_items"));
    assert_eq!(
        first.on_empty,
        Some(Policy::Skip(codeai_ir::Expr::Str(
            "No data to process".into()
        )))
    );
    assert!(
        first.location.starts_with("test.codeai:"),
        "{}",
        first.location
    );
    assert_eq!(
        first.kind,
        StepKind::Query {
            entity: "Product".into(),
            filter: Some(Filter::Terms {
                left: Term::Column("quantity".into()),
                op: CompareOp::Le,
                right: Term::Column("reorder_level".into()),
            }),
            order: vec![],
            limit: None,
            offset: None,
        }
    );
    match &j.program.steps[2].kind {
        StepKind::Slack {
            channel,
            template,
            data,
        } => {
            assert_eq!(channel, &Expr::Str("#alerts".into()));
            assert_eq!(template.as_deref(), Some("low_stock_alert"));
            assert_eq!(data, &Some(Expr::Var("alert_data".into())));
        }
        other => panic!("expected a Slack step, got {other:?}"),
    }
    assert_eq!(j.manifest.capabilities, ["data", "events", "log", "slack"]);
}

#[test]
fn example_programs_lower_filters_updates_and_loops() {
    let jobs = example();
    // `status in [..]` and `finished_at < now() - 30d`.
    let cleanup = job(&jobs, "CleanupJobExecutions");
    match &cleanup.program.steps[0].kind {
        StepKind::Delete {
            entity,
            filter: Some(Filter::All(parts)),
        } => {
            assert_eq!(entity, "JobExecution");
            assert_eq!(
                parts[0],
                Filter::Compare {
                    field: "finished_at".into(),
                    op: CompareOp::Lt,
                    value: Expr::Binary(
                        BinaryOp::Sub,
                        Box::new(Expr::Call(Builtin::Now, vec![])),
                        Box::new(Expr::Duration(30 * 86_400_000))
                    ),
                }
            );
            assert!(
                matches!(&parts[1], Filter::Compare { op: CompareOp::In, value: Expr::List(v), .. } if v.len() == 2)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        cleanup.program.steps[1].kind,
        StepKind::Log {
            level: codeai_ir::LogLevel::Info,
            message: Expr::Interpolated(vec![
                Part::Text("Archived ".into()),
                Part::Expr(Expr::Var("archived".into())),
                Part::Text(" executions older than 30 days".into()),
            ]),
        }
    );
    // `attempts = attempts + 1` and a for_each with parallel calls.
    let hooks = job(&jobs, "ProcessPendingWebhooks");
    match &hooks.program.steps[1].kind {
        StepKind::ForEach {
            item,
            parallel,
            body,
            ..
        } => {
            assert_eq!(item, "hook");
            assert_eq!(*parallel, 10);
            assert!(
                matches!(**body, StepKind::Call { ref operation, .. } if operation == "deliver")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(hooks.program.steps[1].timeout_ms, Some(15_000));
    assert_eq!(hooks.program.steps[1].on_fail, Some(Policy::Continue));
    match &hooks.program.steps[2].kind {
        StepKind::ForEach { body, .. } => match &**body {
            StepKind::Update { set, .. } => {
                assert!(set.contains(&Assignment::Add {
                    field: "attempts".into(),
                    amount: Expr::Int(1)
                }));
                assert!(
                    matches!(&set[0], Assignment::Set { field, value: Expr::Cond(..) } if field == "status")
                );
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    // Reports and e-mails.
    let monthly = job(&jobs, "MonthlyBusinessSummary");
    assert!(matches!(
        &monthly.program.steps[4].kind,
        StepKind::Report {
            format: ReportFormat::Csv,
            ..
        }
    ));
    match &monthly.program.steps[5].kind {
        StepKind::Email {
            to,
            attachments,
            template,
            ..
        } => {
            assert_eq!(to, &Expr::Var("recipients".into()));
            assert_eq!(attachments.len(), 2);
            assert_eq!(template.as_deref(), Some("monthly_report_email"));
        }
        other => panic!("{other:?}"),
    }
    assert!(monthly.program.input_defaults.contains_key("recipients"));
}

#[test]
fn job_defaults_and_inferred_types() {
    let j = ok("job A { steps { s { query: select Product } } }");
    let m = &j.manifest;
    assert_eq!(m.schedule, Schedule::Manual);
    assert_eq!(
        (m.timezone.as_str(), m.queue.as_str(), m.timeout_ms),
        ("UTC", "default", 1_800_000)
    );
    assert_eq!(m.retry.max_retries, 0);
    assert_eq!(m.retry.backoff, Backoff::Fixed { delay_ms: 1000 });
    assert_eq!(m.job_type, "general");
    assert_eq!(m.capabilities, ["data", "log"]);

    for (steps, job_type) in [
        (r#"r { template: "summary" data: { count: 1 } }"#, "report"),
        ("d { action: delete Product where quantity = 0 }", "cleanup"),
        ("m { action: maintain vacuum }", "maintenance"),
        (r#"c { call: Shop.get_item { id: "x" } }"#, "sync"),
        (r##"s { send: slack("#a") { text: "hi" } }"##, "alert"),
    ] {
        let j = ok(&format!("job A {{ steps {{ {steps} }} }}"));
        assert_eq!(j.manifest.job_type, job_type, "{steps}");
    }
}

#[test]
fn schedules_lower_by_kind() {
    let once = ok(r#"job A { run_at: "2026-01-15T10:00:00-05:00" steps { s { compute: 1 } } }"#);
    assert_eq!(
        once.manifest.schedule,
        Schedule::Once {
            at: "2026-01-15T15:00:00Z".into()
        }
    );
    let cron =
        ok(r#"job A { schedule: "@daily" timezone: "Europe/Paris" steps { s { compute: 1 } } }"#);
    assert_eq!(
        cron.manifest.schedule,
        Schedule::Cron {
            expression: "@daily".into()
        }
    );
    assert_eq!(cron.manifest.timezone, "Europe/Paris");
}

#[test]
fn declared_queues_and_table_defaults() {
    let source = "queue bulk { weight: 2 }\nqueue critical { weight: 8 }\nentity JobExecution { id: uuid primary }\n\
                  job A { queue: bulk steps { s { query: select JobExecution } } }";
    let (jobs, diagnostics) = run(source);
    assert_eq!(diagnostics, vec![]);
    let m = &jobs[0].manifest;
    assert_eq!(m.queue, "bulk");
    let queues: Vec<(&str, u32)> = m
        .queues
        .iter()
        .map(|q| (q.name.as_str(), q.weight))
        .collect();
    assert_eq!(
        queues,
        [("critical", 8), ("default", 3), ("low", 1), ("bulk", 2)]
    );
    assert_eq!(m.entities[0].table, "job_executions");
}

#[test]
fn filters_lower_null_in_like_and_not() {
    let j = ok(
        r#"job A { steps { s { query: select Product where note = null and sku like "A%" and not (quantity > 5 or price <= 1.5) and active and note != null order by price desc limit 5 } } }"#,
    );
    let StepKind::Query {
        filter: Some(Filter::All(parts)),
        order,
        limit,
        ..
    } = &j.program.steps[0].kind
    else {
        panic!("{:?}", j.program.steps[0].kind)
    };
    assert_eq!(parts.len(), 5);
    assert!(matches!(
        &parts[0],
        Filter::Compare {
            op: CompareOp::IsNull,
            ..
        }
    ));
    assert!(matches!(
        &parts[1],
        Filter::Compare {
            op: CompareOp::Like,
            ..
        }
    ));
    assert!(
        matches!(&parts[2], Filter::Not(inner) if matches!(**inner, Filter::Any(ref v) if v.len() == 2))
    );
    assert!(matches!(
        &parts[3],
        Filter::Compare {
            op: CompareOp::Eq,
            value: Expr::Bool(true),
            ..
        }
    ));
    assert!(matches!(
        &parts[4],
        Filter::Compare {
            op: CompareOp::IsNotNull,
            ..
        }
    ));
    assert!(order[0].descending);
    assert_eq!(limit, &Some(Expr::Int(5)));
}

#[test]
fn update_decrement_is_a_negative_add() {
    let j = ok("job A { steps { s { action: update Product set quantity = quantity - 2, note = null where sku = \"x\" } } }");
    let StepKind::Update { set, .. } = &j.program.steps[0].kind else {
        panic!()
    };
    assert_eq!(
        set[0],
        Assignment::Add {
            field: "quantity".into(),
            amount: Expr::Int(-2)
        }
    );
    assert_eq!(
        set[1],
        Assignment::Set {
            field: "note".into(),
            value: Expr::Null
        }
    );
}

#[test]
fn semantic_errors_point_at_the_mistake() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "job A { steps { s { query: select Prodcut } } }",
            "unknown entity `Prodcut`",
            "Prodcut",
            Some("did you mean `Product`?"),
        ),
        (
            "job A { steps { s { query: select Product where quantiy < 10 } } }",
            "entity `Product` has no field `quantiy`",
            "quantiy",
            Some("did you mean `quantity`?"),
        ),
        (
            "job A { steps { s { query: select Product where sku = 10 } } }",
            "field `sku` is a string, but `10` is a number",
            "10",
            Some("quote it: `\"10\"`"),
        ),
        (
            "job A { steps { s { query: select Product where quantity > \"5\" } } }",
            "field `quantity` is an int, but `\"5\"` is a string",
            "\"5\"",
            Some("remove the quotes: `5`"),
        ),
        (
            "job A { steps { s { query: select Product where updated_at < 30d } } }",
            "field `updated_at` is a datetime, but `30d` is a duration",
            "30d",
            Some("a duration is not a point in time: write `now() - 30d`"),
        ),
        (
            "job A { steps { s { query: select Product where active = 1 } } }",
            "field `active` is a bool, but `1` is a number",
            "1",
            None,
        ),
        (
            "job A { steps { s { query: select Product where sku in \"a\" } } }",
            "`in` needs a list, but `\"a\"` is a string",
            "\"a\"",
            Some("write a list, like `sku in [\"a\", \"b\"]`"),
        ),
        (
            "job A { steps { s { query: select Product where quantity < sku } } }",
            "cannot compare `quantity` (a number) with `sku` (a string)",
            "quantity < sku",
            Some("both sides of a comparison have the same type: numbers, strings, dates or datetimes"),
        ),
        (
            "job A { steps { s { compute: metrics } t { compute: 1 as: metrics } } }",
            "`metrics` is used before the step that binds it (`as: metrics` in step `t`)",
            "metrics",
            Some("steps run in order: a step sees the bindings of the steps before it"),
        ),
        (
            "job A { steps { s { compute: round(1, 2, 3) } } }",
            "`round` takes 1 or 2 arguments, found 3",
            "round(1, 2, 3)",
            None,
        ),
        (
            "job A { steps { s { compute: sume([1]) } } }",
            "unknown function `sume`",
            "sume",
            Some("did you mean `sum`?"),
        ),
        (
            "job A { queue: urgent steps { s { compute: 1 } } }",
            "unknown queue `urgent`",
            "urgent",
            Some("declared queues are critical, default, low"),
        ),
        (
            "job A { timezone: \"America/New_Yrok\" steps { s { compute: 1 } } }",
            "unknown timezone `America/New_Yrok`",
            "\"America/New_Yrok\"",
            Some("did you mean `America/New_York`?"),
        ),
        (
            "job A { schedule: \"0 24 * * *\" steps { s { compute: 1 } } }",
            "invalid cron expression: hour 24 is out of range 0-23",
            "24",
            None,
        ),
        (
            "job A { schedule: every 1h run_at: \"2026-01-15T10:00:00Z\" steps { s { compute: 1 } } }",
            "a job has one schedule: `schedule` and `run_at` cannot both be set",
            "run_at: \"2026-01-15T10:00:00Z\"",
            Some("use `schedule:` for a recurring job or `run_at:` for a single run"),
        ),
        (
            "job A { run_at: \"tomorrow\" steps { s { compute: 1 } } }",
            "`tomorrow` is not an RFC 3339 date-time (premature end of input)",
            "\"tomorrow\"",
            None,
        ),
        (
            "job A { schedule: every 500ms steps { s { compute: 1 } } }",
            "an interval must be at least 1s",
            "500ms",
            None,
        ),
        (
            "job A { timeout: 25h steps { s { compute: 1 } } }",
            "a job timeout must be at most 24h",
            "25h",
            Some("an execution holds a worker slot until it ends; split longer work into jobs"),
        ),
        (
            "job A { retry: 5 times retry_delays: [1m, 5m, 30m] steps { s { compute: 1 } } }",
            "5 retries but 3 delays",
            "retry_delays: [1m, 5m, 30m]",
            None,
        ),
        (
            "job A { retry: 101 times steps { s { compute: 1 } } }",
            "retry count 101 is out of range 0-100",
            "101",
            None,
        ),
        (
            "job A { retry: 2 times with linear steps { s { compute: 1 } } }",
            "unknown retry strategy `linear`",
            "linear",
            None,
        ),
        (
            "job A { timeout: 0s steps { s { compute: 1 } } }",
            "a job timeout must be greater than 0",
            "0s",
            None,
        ),
        (
            "job A { overlap: never steps { s { compute: 1 } } }",
            "unknown overlap policy `never`",
            "never",
            None,
        ),
        (
            "job A { on_fail: emit(Failed) steps { s { compute: 1 } } }",
            "unknown event `Failed`",
            "Failed",
            None,
        ),
        (
            "job A { priority: 1 steps { s { compute: 1 } } }",
            "unknown job field `priority`",
            "priority",
            None,
        ),
        ("job A { description: \"x\" }", "job `A` has no `steps`", "A", None),
        (
            "job A { steps { s { compute: 1 } s { compute: 2 } } }",
            "duplicate step `s`",
            "s @ s { compute: 2",
            None,
        ),
        (
            "job A { steps { s { compute: 1 as: x } t { compute: 2 as: x } } }",
            "`x` is already bound by step `s`",
            "x @ x } }",
            None,
        ),
        (
            "job A { steps { s { query: select Product action: maintain vacuum } } }",
            "step `s` has more than one kind: `query` and `action`",
            "action",
            Some("a step does one thing: split it into two steps"),
        ),
        ("job A { steps { s { as: x } } }", "step `s` does nothing", "s @ s { as", None),
        (
            "job A { steps { s { compute: 1 retries: 2 } } }",
            "unknown step field `retries`",
            "retries",
            None,
        ),
        (
            "job A { steps { s { compute: 1 parallel: 4 } } }",
            "`parallel:` only applies to a `for_each` step",
            "parallel",
            None,
        ),
        (
            "job A { steps { s { for_each: [1] parallel: 500 compute: item } } }",
            "`parallel` expects an integer from 1 to 100",
            "parallel: 500",
            None,
        ),
        (
            "job A { steps { s { compute: 1 timeout: 5s } } }",
            "`timeout:` only applies to a `call` step",
            "timeout",
            None,
        ),
        (
            "job A { steps { s { call: Shop.get_itme { id: \"1\" } } } }",
            "integration `Shop` has no operation `get_itme`",
            "get_itme",
            Some("did you mean `get_item`?"),
        ),
        (
            "job A { steps { s { call: Shop.get_item { id: \"1\", sku: \"2\" } } } }",
            "operation `Shop.get_item` has no parameter `sku`",
            "sku",
            None,
        ),
        (
            "job A { steps { s { call: Shop.get_item { } } } }",
            "missing argument `id` for `Shop.get_item`",
            "get_item",
            None,
        ),
        (
            "job A { steps { s { call: Shops.get_item { id: \"1\" } } } }",
            "unknown integration `Shops`",
            "Shops",
            Some("did you mean `Shop`?"),
        ),
        (
            "job A { steps { s { template: \"sumary\" data: {} } } }",
            "unknown template `sumary`",
            "\"sumary\"",
            Some("did you mean `summary`?"),
        ),
        (
            "job A { steps { s { template: \"summary\" data: { count: 1 } format: docx } } }",
            "unknown report format `docx`",
            "docx",
            None,
        ),
        (
            "job A { steps { s { send: email(\"a@b.c\") { template: \"summary\" data: { count: 1 } } } } }",
            "an email needs a `subject`",
            "email",
            None,
        ),
        (
            "job A { steps { s { send: slack(\"#a\") { text: \"x\", body: \"y\" } } } }",
            "unknown field `body` in `send: slack`",
            "body",
            None,
        ),
        (
            "job A { steps { s { emit: Don { count: 1 } } } }",
            "unknown event `Don`",
            "Don",
            Some("did you mean `Done`?"),
        ),
        (
            "job A { steps { s { emit: Done { count: 1, total: 1 } } } }",
            "event `Done` has no field `total`",
            "total",
            None,
        ),
        (
            "job A { steps { s { log: \"{{missing}} rows\" } } }",
            "unknown name `missing`",
            "missing",
            None,
        ),
        (
            "job A { steps { s { action: update Product set quantity = \"many\" } } }",
            "field `quantity` is an int, but `\"many\"` is a string",
            "\"many\"",
            None,
        ),
        (
            "job A { steps { s { action: update Product set sku = null where sku = \"a\" } } }",
            "field `sku` is not optional, so it cannot be set to null",
            "null",
            None,
        ),
        (
            "job A { steps { s { action: insert Product { sku: \"a\", qty: 1 } } } }",
            "entity `Product` has no field `qty`",
            "qty",
            None,
        ),
        (
            "job A { steps { s { query: select Product order by prize } } }",
            "entity `Product` has no field `prize`",
            "prize",
            Some("did you mean `price`?"),
        ),
        (
            "job A { steps { s { action: process_item(1) } } }",
            "unknown action `process_item`",
            "process_item",
            None,
        ),
        (
            "job A { steps { s { action: maintain compact } } }",
            "unknown maintenance operation `compact`",
            "compact",
            None,
        ),
        (
            "job A { steps { s { query: select Product where sku like 5 } } }",
            "`like` needs a string pattern, but `5` is a number",
            "5",
            None,
        ),
        (
            "job A { steps { s { query: select Product where quantity like \"1%\" } } }",
            "`like` needs a string field, but `quantity` is an int",
            "quantity like \"1%\"",
            None,
        ),
    ];
    for (job, message, at, hint) in cases {
        let got = one_error(job, message, at);
        if let Some(hint) = hint {
            assert_eq!(got.as_deref(), Some(*hint), "hint of `{message}`");
        }
    }
}

#[test]
fn scopes_follow_steps_inputs_and_items() {
    ok(r#"job A {
        input: { max: 5 }
        steps {
            a { query: select Product limit max as: products }
            b { for_each: products item: p compute: p.sku }
            c { for_each: products compute: item.price + input.max }
            d { log: "{{products.0.sku}} and {{max}}" }
        }
    }"#);
    // The item variable is not visible outside its step.
    one_error(
        "job A { steps { a { for_each: [1] item: p compute: p } b { compute: p } } }",
        "unknown name `p`",
        "p @ p } } }",
    );
}

#[test]
fn declaration_errors_are_reported() {
    let source = r#"
entity Product { id: uuid primary  sku: strng  sku: string  code: string primary }
entity Product { id: uuid }
integration Api { get: FETCH "/items/{id}" { q: string } }
template t { table: rows { a: "A" } totals: [b] }
job A { steps { s { compute: 1 } } }
job A { steps { s { compute: 1 } } }
"#;
    let (_, diagnostics) = run(source);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    for expected in [
        "unknown field type `strng`",
        "duplicate field `sku`",
        "entity `Product` has more than one primary key",
        "duplicate entity `Product`",
        "integration `Api` has no `base_url`",
        "unknown HTTP method `FETCH`",
        "path parameter `{id}` is not a parameter of operation `get`",
        "`totals` names `b`, which is not a column of the table",
        "duplicate job `A`",
    ] {
        assert!(
            messages.contains(&expected),
            "missing `{expected}` in {messages:#?}"
        );
    }
    assert_eq!(messages.len(), 9, "{messages:#?}");
    let dup = diagnostics
        .iter()
        .find(|d| d.message == "duplicate entity `Product`")
        .unwrap();
    assert_eq!(
        dup.hint.as_deref(),
        Some("`Product` is first declared on line 2")
    );
    let path = diagnostics
        .iter()
        .find(|d| d.message.starts_with("path parameter"))
        .unwrap();
    assert_eq!(&source[path.span.range()], "{id}");
}

#[test]
fn an_empty_step_is_a_placeholder_that_warns() {
    // The spec's skeleton: `step_name { // Step logic }`.
    let (_, diagnostics) = diagnostics("job A { steps { step_name {\n // Step logic\n } } }");
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert!(!diagnostics[0].is_error());
    assert_eq!(diagnostics[0].message, "step `step_name` does nothing");
    let job = ok("job A { steps { step_name { } } }");
    assert_eq!(job.program.steps.len(), 1);
}

#[test]
fn delete_without_where_warns() {
    let (_, diagnostics) = diagnostics("job A { steps { s { action: delete Product } } }");
    assert_eq!(diagnostics.len(), 1);
    assert!(!diagnostics[0].is_error());
    assert_eq!(
        diagnostics[0].message,
        "`delete Product` without `where` deletes every row"
    );
}

#[test]
fn platform_tables_and_unsafe_names_are_refused() {
    for (table, message) in [
        ("tokens", "`tokens` is a table of the platform itself; jobs cannot declare it"),
        ("Tokens", "`Tokens` is not a table name: 1 to 48 characters of a-z, 0-9 and `_`, starting with a letter"),
        ("t_acme__tokens", "`t_acme__tokens` contains `__`, which the platform keeps to separate tenants from their tables"),
        ("sqlite_master", "`sqlite_master` starts with `sqlite_`, which is reserved for the database and the platform"),
    ] {
        let job = format!(
            "entity Stolen {{ table: \"{table}\" id: uuid primary }}\njob A {{ steps {{ s {{ query: select Stolen }} }} }}"
        );
        one_error(&job, message, &format!("\"{table}\""));
    }
    // The default table of an entity is checked too.
    one_error(
        "entity Token { id: uuid primary }\njob A { steps { s { query: select Token } } }",
        "`tokens` is a table of the platform itself; jobs cannot declare it",
        "Token @ Token {",
    );
}

#[test]
fn builtin_entities_are_read_and_deleted_only() {
    // Usable without a declaration, with the platform's shape.
    let j = ok(
        r#"job A { steps { s { action: delete JobExecution where finished_at < now() - 30d and status = "completed" } } }"#,
    );
    let m = &j.manifest;
    assert_eq!(m.entities[0].name, "JobExecution");
    assert_eq!(m.entities[0].table, "job_executions");
    assert!(m.entities[0].fields.iter().any(|f| f.name == "finished_at"));
    ok("job A { steps { s { query: select Report where expires_at < now() limit 5 } } }");
    for (action, verb) in [
        (
            r#"insert JobExecution { status: "completed" }"#,
            "insert into",
        ),
        (r#"update Report set size = 0 where size > 0"#, "update"),
        ("maintain vacuum Report", "maintain"),
    ] {
        let entity = if action.contains("Report") {
            "Report"
        } else {
            "JobExecution"
        };
        let table = if entity == "Report" {
            "reports"
        } else {
            "job_executions"
        };
        one_error(
            &format!("job A {{ steps {{ s {{ action: {action} }} }} }}"),
            &format!(
                "cannot {verb} `{entity}`: it is the platform's table `{table}`, which jobs only read and delete from"
            ),
            &format!("{entity} @ {entity}"),
        );
    }
    // A declaration lists a subset of the built-in fields, with their types.
    one_error(
        "entity Report { id: uuid primary path: string }\njob A { steps { s { query: select Report } } }",
        "the built-in entity `Report` (table `reports`) has no field `path`; it has id, job, execution_id, format, size, name, created_at, expires_at",
        "path",
    );
    one_error(
        "entity Report { id: uuid primary size: string }\njob A { steps { s { query: select Report } } }",
        "field `size` of the built-in entity `Report` is int, not string",
        "size",
    );
}

#[test]
fn an_actions_capabilities_and_declarations_count_towards_the_calling_job_only() {
    let source = format!(
        "{PRELUDE}
action restock(sku) {{
    steps {{
        bump {{ action: update Product set quantity = quantity + 10 where sku = sku }}
        tell {{ emit: Done {{ count: 1 }} }}
    }}
}}
job Caller {{
    input: {{ skus: [\"a\"] }}
    steps {{
        each {{ for_each: skus  action: restock(item) }}
    }}
}}
job Other {{
    steps {{ hello {{ log: \"hi\" }} }}
}}
"
    );
    let (jobs, diagnostics) = run(&source);
    assert!(diagnostics.is_empty(), "{diagnostics:#?}");
    let caller = job(&jobs, "Caller");
    assert_eq!(caller.manifest.capabilities, ["data", "events", "log"]);
    assert_eq!(caller.manifest.entities[0].name, "Product");
    assert_eq!(caller.manifest.events[0].name, "Done");
    let StepKind::ForEach { body, .. } = &caller.program.steps[0].kind else {
        panic!("{:?}", caller.program.steps[0].kind)
    };
    let StepKind::Block {
        action,
        bind,
        steps,
    } = &**body
    else {
        panic!("{body:?}")
    };
    assert_eq!(action.as_deref(), Some("restock"));
    assert_eq!(bind, &[("sku".to_string(), Expr::Var("item".into()))]);
    assert_eq!(steps.len(), 2);
    assert!(matches!(steps[0].kind, StepKind::Update { .. }));
    let other = job(&jobs, "Other");
    assert_eq!(other.manifest.capabilities, ["log"]);
    assert!(other.manifest.entities.is_empty());
}

#[test]
fn when_is_lowered_with_its_source_text() {
    let job = ok("job J { input: { n: 1 } steps { s { log: \"x\"  when: n > 0 and n < 5 } } }");
    let when = job.program.steps[0].when.as_ref().expect("a condition");
    assert_eq!(when.text, "n > 0 and n < 5");
    assert!(matches!(when.expr, Expr::Binary(BinaryOp::And, ..)));
}

#[test]
fn filters_compare_fields_and_compute_with_them() {
    let job = ok(
        "job J { input: { n: 1 } steps { s { query: select Product where lower(sku) = \"a\" and quantity * 2 > n } } }",
    );
    let StepKind::Query {
        filter: Some(Filter::All(parts)),
        ..
    } = &job.program.steps[0].kind
    else {
        panic!("{:?}", job.program.steps[0].kind)
    };
    assert_eq!(
        parts[0],
        Filter::Terms {
            left: Term::Func(
                codeai_ir::TermFunc::Lower,
                Box::new(Term::Column("sku".into()))
            ),
            op: CompareOp::Eq,
            right: Term::Value(Expr::Str("a".into())),
        }
    );
    assert_eq!(
        parts[1],
        Filter::Terms {
            left: Term::Arith(
                codeai_ir::ArithOp::Mul,
                Box::new(Term::Column("quantity".into())),
                Box::new(Term::Value(Expr::Int(2)))
            ),
            op: CompareOp::Gt,
            // A binding in scope is a value, not a field.
            right: Term::Value(Expr::Var("n".into())),
        }
    );
}

#[test]
fn typed_input_goes_into_program_and_manifest() {
    use codeai_ir::input::{InputField, InputType};
    let j = ok("job J {
        input: { start_date: date = yesterday(), to: [string] = [\"a@b.c\"], n: int, note: string = null, raw: json = 1 }
        steps { s { log: \"{{start_date}} {{to}} {{n}} {{note}} {{input.raw}}\" } }
    }");
    let field = |name: &str, ty: InputType, has_default: bool| InputField {
        name: name.into(),
        ty,
        has_default,
    };
    let expected = vec![
        field("start_date", InputType::Date, true),
        field("to", InputType::List(Box::new(InputType::String)), true),
        field("n", InputType::Int, false),
        field(
            "note",
            InputType::Optional(Box::new(InputType::String)),
            true,
        ),
        field("raw", InputType::Any, true),
    ];
    assert_eq!(j.manifest.input.as_ref(), Some(&expected));
    assert_eq!(j.program.input.as_ref(), Some(&expected));
    // `date = yesterday()` is the period's start; a date input needs the clock.
    assert_eq!(
        j.program.input_defaults["start_date"],
        Expr::Field(
            Box::new(Expr::Call(codeai_ir::Builtin::Yesterday, vec![])),
            "start".into()
        )
    );
    assert!(!j.program.input_defaults.contains_key("n"));
    assert!(j.manifest.capabilities.contains(&"clock".to_string()));
    // Plain defaults are the untyped form: no declaration for the host to check.
    let untyped = ok("job J { input: { who: [\"a@b.c\"] } steps { s { log: \"{{who}}\" } } }");
    assert_eq!(untyped.manifest.input, None);
    assert_eq!(untyped.program.input, None);
}

#[test]
fn an_email_takes_its_templates_subject_or_a_text_as_its_body() {
    // The template declares a subject: the step need not repeat one.
    let job = ok(
        r#"template greeting { subject: "Hi {{name}}" body: "Hello {{name}}" }
        job A { steps { s { send: email("a@b.c") { template: "greeting" data: { name: "Ann" } } } } }"#,
    );
    let StepKind::Email {
        subject, template, ..
    } = &job.program.steps[0].kind
    else {
        panic!("{:?}", job.program.steps[0].kind)
    };
    assert_eq!(template.as_deref(), Some("greeting"));
    assert_eq!(*subject, Expr::Null);
    // Without a template, `text` is the body (sent as the message's data).
    let job =
        ok(r#"job A { steps { s { send: email("a@b.c") { subject: "S" text: "Hello" } } } }"#);
    let StepKind::Email { data, template, .. } = &job.program.steps[0].kind else {
        panic!("{:?}", job.program.steps[0].kind)
    };
    assert_eq!(*template, None);
    assert!(
        matches!(data, Some(Expr::Str(s)) if s == "Hello") || format!("{data:?}").contains("Hello"),
        "{data:?}"
    );
}

/// Every program the checker accepts is one the runtime reads (`serde_json` reads 127 levels of
/// lists and objects): a job nested deeper, though within the parser's limit, is refused at the
/// step that goes deepest, instead of building and failing at every run.
#[test]
fn a_program_the_checker_accepts_is_one_the_runtime_reads() {
    type Shape = fn(usize) -> String;
    let shapes: [(&str, Shape); 4] = [
        ("a chain of operators", |n| vec!["1"; n + 1].join(" + ")),
        ("a chain of fields", |n| format!("input{}", ".a".repeat(n))),
        ("nested calls", |n| {
            format!("{}1{}", "abs(".repeat(n), ")".repeat(n))
        }),
        ("nested object literals", |n| {
            format!("{}1{}", "{a: ".repeat(n), "}".repeat(n))
        }),
    ];
    let mut refusals = 0;
    for (what, expr) in shapes {
        let (mut accepted, mut refused) = (0, 0);
        for n in 1.. {
            let source = format!(
                "job J {{\n    steps {{\n        one {{ compute: 1 as: one }}\n        \
                 deep {{ compute: {} as: x }}\n    }}\n}}\n",
                expr(n)
            );
            let (file, syntax) = crate::parse(&source);
            if syntax
                .iter()
                .any(|d| d.message == "expression nested too deeply")
            {
                break;
            }
            assert!(syntax.is_empty(), "{what} of {n}: {syntax:?}");
            let (jobs, diagnostics) = check(&file, &source, "test.codeai");
            let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
            let text = serde_json::to_string(&jobs[0].program).unwrap();
            let read = serde_json::from_str::<codeai_ir::Program>(&text);
            if errors.is_empty() {
                accepted += 1;
                if let Err(e) = read {
                    panic!("{what} of {n}: accepted, and the runtime cannot read it: {e}");
                }
            } else {
                refused += 1;
                assert_eq!(errors.len(), 1, "{what} of {n}: {errors:#?}");
                assert!(
                    errors[0]
                        .message
                        .starts_with("step `deep` of job `J` nests too deeply to run"),
                    "{what} of {n}: {}",
                    errors[0].message
                );
                assert!(source[errors[0].span.start..].starts_with("deep {"));
                // Refused because the runtime could not read it, not short of that.
                assert!(read.is_err());
            }
        }
        assert!(accepted > 0, "{what}: none accepted");
        refusals += refused;
    }
    // Nested calls (three levels of the program each) reach it before the parser's limit.
    assert!(
        refusals > 0,
        "no job reached the runtime's limit: the test does not test it"
    );
}

/// A job too deep for the runtime in its input's defaults (no step goes that deep) is reported
/// at its name.
#[test]
fn input_defaults_too_deep_to_run_are_reported_at_the_job() {
    let nested = format!("{}1{}", "abs(".repeat(45), ")".repeat(45));
    let job = format!("job Deep {{\n    input: {{ x: {nested} }}\n    steps {{\n        s {{ compute: 1 as: one }}\n    }}\n}}");
    let (source, diagnostics) = diagnostics(&job);
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0]
            .message
            .starts_with("the input defaults of job `Deep` nest too deeply to run"),
        "{}",
        errors[0].message
    );
    assert!(source[errors[0].span.start..].starts_with("Deep {"));
}
