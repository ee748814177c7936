//! The acceptance test of the host runtime: the example's ten jobs, compiled from
//! `examples/05-scheduled-jobs/scheduled-jobs.codeai`, each run for real in the sandboxed runtime
//! with the platform's capabilities, against a database seeded with the demo data — on SQLite and
//! on PostgreSQL. Mail goes to a local SMTP sink, Slack messages to a local fake webhook, the
//! integrations to a local fake warehouse API and webhook relay. Each job's effect is checked in
//! the database, the peers and the report files (PDFs read back with poppler).

#[macro_use]
mod common;
use common::peers::{HttpPeer, SmtpSink};
use common::{run_postgres, run_sqlite};

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use codeai_host::executor::{Executor, Recorded, Request};
use codeai_host::notify::{SlackConfig, SmtpConfig, Tls};
use codeai_host::runtime::{Runtime, RuntimeConfig, Status};
use codeai_host::services::{Services, ServicesConfig};
use codeai_host::store::query::EntityQueries;
use codeai_host::store::{demo, entities, migrate, Database};
use codeai_host::wasm::data::{CompareOp, Comparison, Filter, Query};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

on_both_databases!(the_ten_example_jobs_do_their_real_work);

/// The example's components by job name.
fn components() -> BTreeMap<String, Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let (artifacts, _) = codeai_dsl::compile("scheduled-jobs.codeai", &source)
        .unwrap_or_else(|e| panic!("the example does not compile: {e}"));
    artifacts.into_iter().map(|a| (a.name, a.bytes)).collect()
}

/// The files of the reports matching `condition`, where the platform keeps them (found from
/// each report's id, as the platform does).
async fn report_files(w: &World, condition: &str, binds: &[&str]) -> Vec<PathBuf> {
    let sql = format!(
        "SELECT CAST(id AS TEXT) || ' ' || tenant_id || ' ' || format FROM reports WHERE {condition}"
    );
    common::column::<String>(&w.db, &sql, binds)
        .await
        .iter()
        .map(|row| {
            let parts: Vec<&str> = row.split(' ').collect();
            codeai_host::store::platform::report_path(
                &w.dir.join("reports"),
                parts[1],
                uuid::Uuid::parse_str(parts[0]).unwrap(),
                parts[2],
            )
            .unwrap()
        })
        .collect()
}

fn poppler(tool: &str) -> bool {
    let present = std::process::Command::new(tool).arg("-v").output().is_ok();
    if !present {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "{tool} (poppler-utils) is required under CI=true"
        );
        eprintln!("notice: {tool} is not installed; the PDF is not read back");
    }
    present
}

/// The text of a PDF (pdftotext) after checking that pdftoppm renders its first page.
fn read_pdf(path: &Path) -> Option<String> {
    if !poppler("pdftotext") || !poppler("pdftoppm") {
        return None;
    }
    let png = path.with_extension("page1");
    let out = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "40", "-f", "1", "-l", "1", "-singlefile"])
        .arg(path)
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pdftoppm failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let image = std::fs::metadata(format!("{}.png", png.display())).unwrap();
    assert!(
        image.len() > 1000,
        "the rendered page is suspiciously small"
    );
    let out = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(path)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success());
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

struct World {
    db: Database,
    executor: Executor,
    /// The same platform without SMTP and Slack: messages go to the outbox.
    offline: Executor,
    jobs: BTreeMap<String, Vec<u8>>,
    now: DateTime<Utc>,
    dir: PathBuf,
}

impl World {
    /// The first column of `sql`'s rows, as text.
    async fn texts(&self, sql: &str) -> Vec<String> {
        common::column::<String>(&self.db, sql, &[]).await
    }

    /// How many rows of `table` meet `condition` (`?` placeholders bound to `binds`).
    async fn rows(&self, table: &str, condition: &str, binds: &[&str]) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE {condition}");
        common::count(&self.db, &sql, binds).await
    }

    async fn run(&self, name: &str, offline: bool) -> Recorded {
        let executor = if offline {
            &self.offline
        } else {
            &self.executor
        };
        let bytes = &self.jobs[name];
        let job = executor.runtime().prepare(bytes).unwrap();
        let recorded = executor
            .run(
                &job,
                Request {
                    now: Some(self.now),
                    ..common::fixtures::one_attempt(name, "test", "{}")
                },
            )
            .await
            .unwrap();
        let r = &recorded.result;
        eprintln!(
            "{name}: {} in {:?}, fuel {}, calls: {:?}, log: {:?}",
            r.status.as_str(),
            r.wall_time,
            r.fuel_used,
            r.calls
                .iter()
                .map(|c| format!("{} {}", c.call, c.detail))
                .collect::<Vec<_>>(),
            r.logs.iter().map(|l| &l.message).collect::<Vec<_>>()
        );
        recorded
    }
}

async fn the_ten_example_jobs_do_their_real_work(db: Database) {
    migrate::migrate_up(&db).await.unwrap();
    entities::create_entity_tables(&db, "default", &demo::example_entities())
        .await
        .unwrap();
    let tz: Tz = "America/New_York".parse().unwrap();
    let now = Utc::now().trunc_subsecs(0);
    let data = EntityQueries::new(db.clone(), &demo::example_entities(), "default").unwrap();
    let summary = demo::seed(&data, now, tz).await.unwrap();
    let history = demo::history(&db, "default", now).await.unwrap();

    // The peers.
    let smtp = SmtpSink::start().await;
    let slack = HttpPeer::start(|_| (200, "ok".into())).await;
    let warehouse = HttpPeer::start(|r| {
        if r.header("authorization") != Some("Bearer wh-secret") {
            return (401, r#"{"error":"unauthorized"}"#.into());
        }
        (
            200,
            json!({ "items": [
                { "sku": "SKU-1002", "quantity": 40 },
                { "sku": "SKU-1006", "quantity": 12 },
                { "sku": "SKU-9999", "quantity": 3 },
            ]})
            .to_string(),
        )
    })
    .await;
    let relay = HttpPeer::start(|r| {
        if r.header("x-relay-key") != Some("relay-key") {
            return (401, "{}".into());
        }
        if r.body.contains("inventory.low") {
            (502, r#"{"error":"bad gateway"}"#.into())
        } else {
            (200, r#"{"delivered":true}"#.into())
        }
    })
    .await;
    let env_map: BTreeMap<String, String> = BTreeMap::from([
        ("WAREHOUSE_API_URL".into(), warehouse.url.clone()),
        ("WAREHOUSE_API_KEY".into(), "wh-secret".into()),
        ("WEBHOOK_RELAY_URL".into(), relay.url.clone()),
        ("WEBHOOK_RELAY_KEY".into(), "relay-key".into()),
    ]);
    let env: codeai_host::services::Env = Arc::new(move |k| env_map.get(k).cloned());

    let dir = std::env::temp_dir().join(common::unique("codeai_example_jobs"));
    let runtime = |sub: &str| {
        Runtime::new(RuntimeConfig {
            cache_dir: dir.join(sub),
            pool_size: 4,
            ..RuntimeConfig::default()
        })
        .unwrap()
    };
    // The warehouse and the relay are fake peers on loopback.
    let mut offline = ServicesConfig::local(dir.join("reports"), env.clone());
    offline.egress.operator = "127.0.0.1/32".parse().unwrap();
    let mut online = offline.clone();
    online.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: smtp.port,
        credentials: None,
        tls: Tls::None,
        from: "CodeAI Jobs <jobs@example.com>".into(),
        timeout: std::time::Duration::from_secs(10),
    });
    online.slack = Some(SlackConfig {
        webhook_url: format!("{}/services/T000/B000/XXXX", slack.url),
    });
    let world = World {
        executor: Executor::new(runtime("cache"), Services::new(db.clone(), online)),
        offline: Executor::new(runtime("cache"), Services::new(db.clone(), offline)),
        db: db.clone(),
        jobs: components(),
        now,
        dir: dir.clone(),
    };
    assert_eq!(world.jobs.len(), 10);

    daily_sales_report(&world, &smtp, summary.yesterday_revenue).await;
    weekly_inventory_report(&world, &smtp).await;
    monthly_business_summary(&world, &smtp).await;
    cleanup_expired_sessions(&world, &data, summary.expired_sessions, summary.sessions).await;
    cleanup_job_executions(&world).await;
    cleanup_expired_reports(&world, history.expired_reports).await;
    database_maintenance(&world).await;
    sync_external_inventory(&world, &data, &warehouse).await;
    process_pending_webhooks(&world, &relay).await;
    low_stock_alert(&world, &slack).await;

    // Every execution is recorded, with its log and calls.
    let recorded = world.rows("job_executions", "trigger = 'test'", &[]).await;
    assert_eq!(recorded, 12, "ten jobs, two of them run twice");
    let unfinished = world
        .rows(
            "job_executions",
            "trigger = 'test' AND (finished_at IS NULL OR calls IS NULL)",
            &[],
        )
        .await;
    assert_eq!(unfinished, 0);
    let _ = std::fs::remove_dir_all(&world.dir);
}

/// The execution logged exactly the line `line`.
#[track_caller]
fn assert_logged(r: &Recorded, line: impl AsRef<str>) {
    let logs = &r.result.logs;
    assert!(logs.iter().any(|l| l.message == line.as_ref()), "{logs:?}");
}

/// The attachments of a MIME message: (file name, decoded bytes).
fn attachments(data: &str) -> Vec<(String, Vec<u8>)> {
    use base64::Engine as _;
    let boundary = data
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default();
    let mut out = Vec::new();
    for part in data.split(&format!("--{boundary}")).skip(1) {
        let Some((head, body)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        if !head.contains("attachment") {
            continue;
        }
        // `filename="…"` or, for RFC 2231 parameters, `filename*0="…"`.
        let name = head
            .split("filename")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .unwrap_or_default()
            .to_string();
        let bytes = if head.contains("base64") {
            let encoded: String = body.split_whitespace().collect();
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap()
        } else {
            body.trim_end_matches("\r\n").as_bytes().to_vec()
        };
        out.push((name, bytes));
    }
    out
}

async fn daily_sales_report(w: &World, smtp: &SmtpSink, revenue: f64) {
    let r = w.run("DailySalesReport", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let id = r.execution_id.to_string();
    let paths = report_files(w, "execution_id = ? AND format = 'pdf'", &[&id]).await;
    assert_eq!(paths.len(), 1, "one PDF report row");
    let pdf = std::fs::read(&paths[0]).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    if let Some(text) = read_pdf(Path::new(&paths[0])) {
        assert!(text.contains("Daily Sales Report"), "{text}");
        // Yesterday's orders that were not cancelled, and their total.
        for customer in [
            "alice@", "bob@", "carol@", "erin@", "frank@", "grace@", "heidi@",
        ] {
            assert!(text.contains(customer), "{customer} missing from:\n{text}");
        }
        assert!(!text.contains("dave@"), "a cancelled order is listed");
        assert!(
            !text.contains("ivan@") && !text.contains("mallory@"),
            "an order of another day is listed"
        );
        assert!(
            text.contains(&format!("{revenue:.2}")),
            "total {revenue:.2} missing from:\n{text}"
        );
    }
    // The email reached the sink, to both recipients, with the PDF attached.
    let mails = smtp.mails();
    let mail = mails.last().expect("a mail reached the SMTP sink");
    assert_eq!(mail.recipients, ["sales@example.com", "ops@example.com"]);
    // The template's subject, rendered with the period.
    let subject = format!(
        "Subject: Daily sales report for {}",
        (w.now
            .with_timezone(&chrono_tz::America::New_York)
            .date_naive()
            - chrono::Days::new(1))
        .format("%Y-%m-%d")
    );
    assert!(
        mail.data.contains(&subject),
        "{subject} not in {}",
        &mail.data[..mail.data.len().min(600)]
    );
    assert!(mail.data.contains("application/pdf"));
    let files = attachments(&mail.data);
    assert_eq!(files.len(), 1);
    let (name, bytes) = &files[0];
    assert!(
        name.starts_with("daily-sales-report-") && name.ends_with(".pdf"),
        "{name}"
    );
    assert_eq!(bytes, &pdf, "the attachment is the stored report");
    // on_complete: emit(JobCompleted), by the host.
    let events = w
        .rows(
            "events",
            "name = 'JobCompleted' AND execution_id = ?",
            &[&id],
        )
        .await;
    assert_eq!(events, 1);
}

async fn weekly_inventory_report(w: &World, smtp: &SmtpSink) {
    let before = smtp.mails().len();
    let r = w.run("WeeklyInventoryReport", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let id = r.execution_id.to_string();
    let paths = report_files(w, "execution_id = ?", &[&id]).await;
    assert_eq!(paths.len(), 1);
    if let Some(text) = read_pdf(Path::new(&paths[0])) {
        assert!(text.contains("Weekly Inventory Report"));
        for sku in ["SKU-1001", "SKU-1006", "SKU-1010"] {
            assert!(text.contains(sku), "{sku} missing");
        }
    }
    let mails = smtp.mails();
    assert_eq!(mails.len(), before + 1);
    assert_eq!(mails[before].recipients, ["inventory@example.com"]);
    // `quantity <= reorder_level`: SKU-1002 (8 ≤ 12), SKU-1004 (5 ≤ 5), SKU-1006 (0 ≤ 4).
    assert!(
        mails[before].data.contains("3 products need reordering"),
        "{}",
        mails[before].data
    );
}

async fn monthly_business_summary(w: &World, smtp: &SmtpSink) {
    let before = smtp.mails().len();
    let r = w.run("MonthlyBusinessSummary", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let id = r.execution_id.to_string();
    let formats = common::column::<String>(
        &w.db,
        "SELECT format FROM reports WHERE execution_id = ? ORDER BY format",
        &[&id],
    )
    .await;
    assert_eq!(formats, ["csv", "pdf"]);
    let mails = smtp.mails();
    assert_eq!(mails.len(), before + 1);
    let files = attachments(&mails[before].data);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names.len(),
        2,
        "the PDF and the CSV are attached: {names:?}"
    );
    assert!(
        files[0].1.starts_with(b"%PDF-") && names[1].ends_with(".csv"),
        "{names:?}"
    );
}

async fn cleanup_expired_sessions(w: &World, data: &EntityQueries, expired: u64, total: u64) {
    let r = w.run("CleanupExpiredSessions", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    assert_logged(&r, format!("Deleted {expired} expired sessions"));
    // The call's detail says what it did in words.
    let details: Vec<&str> = r.result.calls.iter().map(|c| c.detail.as_str()).collect();
    assert!(
        details.contains(&format!("Session: {expired} rows").as_str()),
        "{details:?}"
    );
    let left = data
        .select_rows(&Query {
            entity: "Session".into(),
            filter: None,
            order: vec![],
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(
        left.len() as u64,
        total - expired,
        "exactly the expired rows are gone"
    );
    for row in left {
        let at = DateTime::parse_from_rfc3339(row["expires_at"].as_str().unwrap()).unwrap();
        assert!(at > w.now, "a live session was kept: {row:?}");
    }
}

async fn cleanup_job_executions(w: &World) {
    let total_before = w.rows("job_executions", "TRUE", &[]).await;
    let r = w.run("CleanupJobExecutions", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    // The demo has two completed executions older than 30 days (a failed one is kept).
    assert_logged(&r, "Archived 2 executions older than 30 days");
    let total_after = w.rows("job_executions", "TRUE", &[]).await;
    assert_eq!(
        total_after,
        total_before + 1 - 2,
        "two archived, this run recorded"
    );
}

async fn cleanup_expired_reports(w: &World, expired: u64) {
    let before = w.rows("reports", "TRUE", &[]).await;
    let r = w.run("CleanupExpiredReports", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let deletes = r
        .result
        .calls
        .iter()
        .filter(|c| c.call == "report.delete")
        .count() as u64;
    assert_eq!(deletes, expired);
    let after = w.rows("reports", "TRUE", &[]).await;
    assert_eq!(
        after,
        before - expired as i64,
        "exactly the expired reports are deleted"
    );
    // The reports rendered today are still there, files included.
    for path in report_files(w, "execution_id IS NOT NULL", &[]).await {
        assert!(path.exists(), "{} was deleted", path.display());
    }
}

async fn database_maintenance(w: &World) {
    let r = w.run("DatabaseMaintenance", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let ops: Vec<&str> = r
        .result
        .calls
        .iter()
        .filter(|c| c.call == "data.maintain")
        .map(|c| c.detail.as_str())
        .collect();
    assert_eq!(ops.len(), 3, "{ops:?}");
    let all = ops.join(" ").to_uppercase();
    assert!(
        all.contains("ANALYZE") && all.contains("VACUUM") && all.contains("REINDEX"),
        "{ops:?}"
    );
    assert!(
        ops.iter().all(|o| o.ends_with("of the whole database")),
        "{ops:?}"
    );
}

async fn quantity(data: &EntityQueries, sku: &str) -> i64 {
    let rows = data
        .select_rows(&Query {
            entity: "Product".into(),
            filter: Some(Filter::compare(Comparison::new(
                "sku",
                CompareOp::Eq,
                json!(sku),
            ))),
            order: vec![],
            limit: None,
        })
        .await
        .unwrap();
    rows[0]["quantity"].as_i64().unwrap()
}

async fn sync_external_inventory(w: &World, data: &EntityQueries, warehouse: &HttpPeer) {
    assert_eq!(quantity(data, "SKU-1002").await, 8);
    let untouched = quantity(data, "SKU-1001").await;
    let r = w.run("SyncExternalInventory", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    assert_eq!(quantity(data, "SKU-1002").await, 40);
    assert_eq!(quantity(data, "SKU-1006").await, 12);
    assert_eq!(quantity(data, "SKU-1001").await, untouched);
    let requests = warehouse.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert!(
        requests[0]
            .target
            .starts_with("/v1/inventory?since=1970-01-01"),
        "{}",
        requests[0].target
    );
    // The second run asks for changes since the first one.
    let r = w.run("SyncExternalInventory", false).await;
    assert_eq!(r.result.status, Status::Completed);
    let second = &warehouse.requests()[1];
    let year = w.now.format("since=%Y-").to_string();
    assert!(second.target.contains(&year), "{}", second.target);
    let synced = w.rows("events", "name = 'InventorySynced'", &[]).await;
    assert_eq!(synced, 2);
}

async fn process_pending_webhooks(w: &World, relay: &HttpPeer) {
    let r = w.run("ProcessPendingWebhooks", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let requests = relay.requests();
    assert_eq!(
        requests.len(),
        3,
        "the three pending webhooks are delivered"
    );
    assert!(requests
        .iter()
        .all(|q| q.method == "POST" && q.target == "/v1/deliveries"));
    let delivered = w
        .texts("SELECT event FROM webhooks WHERE status = 'delivered' ORDER BY event")
        .await;
    assert_eq!(
        delivered,
        [
            "order.cancelled",
            "order.created",
            "order.created",
            "order.shipped"
        ]
    );
    let pending = w
        .texts("SELECT last_error FROM webhooks WHERE status = 'pending' AND attempts = 3")
        .await;
    assert_eq!(
        pending.len(),
        1,
        "the failed delivery stays pending with one more attempt"
    );
    assert!(pending[0].contains("502"), "{}", pending[0]);
}

async fn low_stock_alert(w: &World, slack: &HttpPeer) {
    // After the sync (SKU-1002 at 40, SKU-1006 at 12), SKU-1004 (5, reorder level 5) is the only
    // product at or below its reorder level.
    let r = w.run("LowStockAlert", false).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let posts = slack.requests();
    assert_eq!(posts.len(), 1);
    let body: Value = serde_json::from_str(&posts[0].body).unwrap();
    assert_eq!(body["channel"], "#alerts");
    assert_eq!(
        body["text"],
        ":warning: 1 products are low on stock: SKU-1004"
    );
    // Without a webhook the message is held in the outbox, and the log says so.
    let r = w.run("LowStockAlert", true).await;
    assert_eq!(r.result.status, Status::Completed, "{:?}", r.result.error);
    let held = w
        .texts("SELECT body FROM outbox WHERE kind = 'slack' AND recipient = '#alerts'")
        .await;
    assert_eq!(held, [":warning: 1 products are low on stock: SKU-1004"]);
    assert!(
        r.result
            .logs
            .iter()
            .any(|l| l.message.contains("held in the outbox")),
        "{:?}",
        r.result.logs
    );
    let events = w.rows("events", "name = 'LowStockDetected'", &[]).await;
    assert_eq!(events, 2);
}
