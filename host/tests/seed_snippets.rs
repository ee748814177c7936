//! The spec's DSL snippets ("Job Definition Structure", "Step Types", "Retry Strategies" of the
//! scheduled-jobs README), each as written inside a file that adds only the declarations it names
//! (entities, the integration, templates, events, the `process_item` action) and the bindings it
//! uses; built with `codeai build` and run with `codeai exec` on a fresh SQLite file, the call
//! against a warehouse API on loopback.

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// What the snippets name, declared once.
const DECLARATIONS: &str = r#"
entity Product { id: uuid primary, sku: string, quantity: int }
entity Session { id: uuid primary, user_id: string, expires_at: datetime }

integration WarehouseAPI {
    base_url: env("WAREHOUSE_API_URL")
    auth: bearer(env("WAREHOUSE_API_KEY"))
    get_inventory: GET "/v1/inventory" { since: datetime }
}

template daily_sales_report {
    title: "Daily sales"
    table: metrics { revenue: "Revenue" }
}
template daily_report { subject: "Daily report" body: "The report is attached." }
template low_stock_alert { body: "{{count}} products are low on stock" }

event JobCompleted { job: string, execution: string }
event JobFailed { job: string, execution: string, error: string }

action process_item(item) {
    steps {
        show { log: "processing {{item}}" }
    }
}
"#;

// ---- Job Definition Structure: one schedule of the three, as its comment says ----------------

const STRUCTURE: &str = r#"
job JobName {
    description: "What this job does"

    // Schedule (choose one)
    SCHEDULE

    timezone: "America/New_York"

    // Execution settings
    queue: default              // Queue name
    timeout: 30m                // Max execution time
    retry: 3 times              // Retry on failure

    // Job logic
    steps {
        step_name {
            // Step logic
        }
    }

    // Event handlers
    on_complete: emit(JobCompleted)
    on_fail: emit(JobFailed)
}
"#;

const SCHEDULES: [&str; 3] = [
    r#"schedule: "0 6 * * *"      // Cron expression"#,
    r#"schedule: every 1h          // Interval"#,
    r#"run_at: "2026-01-15T10:00:00Z"  // One-time"#,
];

// ---- Step Types, verbatim ------------------------------------------------------------------

const QUERY_DATA: &str = r#"
fetch_data {
    query: select Product where quantity < 10
    as: low_stock_items

    on_empty: skip("No data to process")
}
"#;

const EXECUTE_ACTION: &str = r#"
cleanup_records {
    action: delete Session where expires_at < now()
    as: delete_result
}
"#;

const CALL_EXTERNAL_SERVICE: &str = r#"
sync_inventory {
    call: WarehouseAPI.get_inventory {
        since: last_sync_timestamp()
    }
    as: inventory
    timeout: 60s
    on_fail: abort("Sync failed")
}
"#;

const GENERATE_REPORT: &str = r#"
create_report {
    template: "daily_sales_report"
    data: {
        period: yesterday()
        metrics: calculated_metrics
    }
    format: pdf
    as: report_file
}
"#;

const SEND_NOTIFICATIONS: &str = r##"
notify_team {
    send: email(recipients) {
        template: "daily_report"
        subject: "Daily Report"
        attachment: report_file
    }
}

send_alert {
    send: slack("#alerts") {
        template: "low_stock_alert"
        data: alert_data
    }
}
"##;

const FOR_EACH: &str = r#"
process_items {
    for_each: items
    parallel: 10                // Optional parallel processing

    action: process_item(item)
}
"#;

// ---- Retry Strategies, verbatim --------------------------------------------------------------

const RETRIES: [&str; 3] = [
    "retry: 3 times",
    "retry: 3 times with exponential_backoff\n// Delays: 100ms, 200ms, 400ms",
    "retry: 5 times\nretry_delays: [1m, 5m, 30m, 2h, 8h]",
];

/// The bindings a step snippet uses, made by the steps before it.
const METRICS: &str = "metrics { compute: [{ revenue: 1250.5 }]  as: calculated_metrics }";
const NOTIFY_BINDINGS: &str = r#"
setup { compute: ["ops@example.com"]  as: recipients }
alert { compute: { count: 2 }  as: alert_data }
"#;

/// A job of `steps` (the bindings first, then the snippet).
fn job(name: &str, steps: &[&str]) -> String {
    format!(
        "job {name} {{\n    steps {{\n{}\n    }}\n}}\n",
        steps.join("\n")
    )
}

struct Workspace {
    dir: std::path::PathBuf,
    warehouse: String,
}

impl Workspace {
    fn new() -> Workspace {
        let dir = std::env::temp_dir().join(format!("codeai_snippets_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workspace {
            dir,
            warehouse: warehouse(),
        }
    }

    fn codeai(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_codeai"))
            .args(args)
            .current_dir(&self.dir)
            .env("DATABASE_URL", "sqlite:snippets.db")
            .env_remove("REDIS_URL")
            .env("WAREHOUSE_API_URL", &self.warehouse)
            .env("WAREHOUSE_API_KEY", "k")
            .env("CODEAI_OPERATOR_EGRESS_ALLOW", "127.0.0.1/32")
            .env_remove("SMTP_HOST")
            .env_remove("SLACK_WEBHOOK")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// Builds `body` after the declarations as `file` and runs its job `wasm`: the execution.
    fn build_and_exec(&self, file: &str, body: &str, wasm: &str) -> Value {
        std::fs::write(self.dir.join(file), format!("{DECLARATIONS}\n{body}")).unwrap();
        let (code, out, err) = self.codeai(&["build", file, "-o", "out"]);
        assert_eq!(code, Some(0), "{file} does not build:\n{out}{err}\n{body}");
        let (code, out, err) = self.codeai(&["exec", &format!("out/{wasm}.wasm"), "--json"]);
        assert_eq!(code, Some(0), "{file} does not run:\n{out}{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

/// A warehouse API on loopback that answers every request with an empty inventory.
fn warehouse() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let body = r#"{"items": [], "next": null}"#;
            let mut stream = stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

fn status(v: &Value) -> &str {
    v["status"].as_str().unwrap_or_default()
}

#[test]
fn the_specs_snippets_build_as_written_and_run_with_exec() {
    let w = Workspace::new();
    let (code, _, err) = w.codeai(&["migrate", "up"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(Path::new(&w.dir.join("snippets.db")).exists());

    for (i, schedule) in SCHEDULES.iter().enumerate() {
        let body = STRUCTURE.replace("SCHEDULE", schedule);
        let run = w.build_and_exec(&format!("structure{i}.codeai"), &body, "job_name");
        assert_eq!(status(&run), "completed", "{run}");
    }

    // No product is low on stock in a fresh database: `on_empty` skips, with its reason.
    let run = w.build_and_exec(
        "query.codeai",
        &job("QueryData", &[QUERY_DATA]),
        "query_data",
    );
    assert_eq!(
        (status(&run), run["error"].as_str()),
        ("skipped", Some("No data to process")),
        "{run}"
    );

    let run = w.build_and_exec(
        "action.codeai",
        &job("ExecuteAction", &[EXECUTE_ACTION]),
        "execute_action",
    );
    assert_eq!(status(&run), "completed", "{run}");

    let run = w.build_and_exec(
        "call.codeai",
        &job("CallService", &[CALL_EXTERNAL_SERVICE]),
        "call_service",
    );
    assert_eq!(status(&run), "completed", "{run}");
    assert!(
        run["calls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["call"] == "http.call"),
        "{run}"
    );

    let run = w.build_and_exec(
        "report.codeai",
        &job("GenerateReport", &[METRICS, GENERATE_REPORT]),
        "generate_report",
    );
    assert_eq!(status(&run), "completed", "{run}");

    let notify = job(
        "SendNotifications",
        &[
            NOTIFY_BINDINGS,
            METRICS,
            GENERATE_REPORT,
            SEND_NOTIFICATIONS,
        ],
    );
    let run = w.build_and_exec("notify.codeai", &notify, "send_notifications");
    assert_eq!(status(&run), "completed", "{run}");
    let held = run["log"].as_array().unwrap().iter().filter(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("held in the outbox"))
    });
    assert_eq!(held.count(), 2, "the mail and the Slack message: {run}");

    let items = r#"items { compute: ["a", "b", "c"]  as: items }"#;
    let run = w.build_and_exec(
        "for_each.codeai",
        &job("ForEach", &[items, FOR_EACH]),
        "for_each",
    );
    assert_eq!(status(&run), "completed", "{run}");
    let processed: Vec<&str> = run["log"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .filter(|m| m.starts_with("processing"))
        .collect();
    assert_eq!(processed.len(), 3, "{run}");

    for (i, retry) in RETRIES.iter().enumerate() {
        let body = format!(
            "job Retrying{i} {{\n    schedule: every 1h\n    {retry}\n    steps {{\n        s {{ log: \"ran\" }}\n    }}\n}}\n"
        );
        let run = w.build_and_exec(&format!("retry{i}.codeai"), &body, &format!("retrying{i}"));
        assert_eq!(status(&run), "completed", "{run}");
    }
    let _ = std::fs::remove_dir_all(&w.dir);
}
