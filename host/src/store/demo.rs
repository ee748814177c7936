//! Demo data for the scheduled-jobs example (`examples/05-scheduled-jobs/scheduled-jobs.codeai`):
//! products of which some are low on stock, expired and live sessions, yesterday's orders
//! (yesterday in the given timezone, relative to the given `now`) with orders on either side of
//! that day, and webhooks waiting for delivery ([`seed`], what `codeai migrate up --demo` loads).
//!
//! The application's rows go in through the [`EntityQueries`], so they are checked against the
//! entity declarations exactly like a job's inserts, and land in the capability's tenant's
//! namespace. The platform's own history is never demo data: [`history`] (old and fresh reports
//! and executions, for the cleanup jobs to find) is for tests that need a past.

use super::query::{EntityQueries, QueryError};
use super::sql::Param;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use codeai_ir::EntityDecl;
use serde_json::{json, Value};
use uuid::Uuid;

/// The example's source, embedded so the demo needs no file.
pub const EXAMPLE_SOURCE: &str =
    include_str!("../../../examples/05-scheduled-jobs/scheduled-jobs.codeai");

/// The entities the example's jobs declare (the union over its jobs' manifests), in order of
/// first use.
pub fn example_entities() -> Vec<EntityDecl> {
    let (file, _) = codeai_dsl::parse(EXAMPLE_SOURCE);
    let (jobs, _) = codeai_dsl::check::check(&file, EXAMPLE_SOURCE, "scheduled-jobs.codeai");
    super::entities::declared_by(jobs.iter().map(|j| &j.manifest))
}

/// What [`seed`] inserted, for tests and for the `codeai` command's output.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoSummary {
    pub products: u64,
    /// Products with `quantity <= reorder_level`.
    pub low_stock_products: u64,
    pub sessions: u64,
    /// Sessions with `expires_at < now`.
    pub expired_sessions: u64,
    pub orders: u64,
    /// Orders created during yesterday in the given timezone.
    pub yesterday_orders: u64,
    /// Sum of the totals of yesterday's orders whose status is not `cancelled`.
    pub yesterday_revenue: f64,
    /// Start (inclusive) and end (exclusive) of yesterday in the given timezone, in UTC.
    pub yesterday: (DateTime<Utc>, DateTime<Utc>),
    /// Orders in [`SAMPLE_PERIOD`] (none when it is too close to now).
    pub sample_period_orders: u64,
    pub webhooks: u64,
    /// Webhooks with status `pending`.
    pub pending_webhooks: u64,
}

/// The days (both included) the spec's sample run of `DailySalesReport` asks for.
pub const SAMPLE_PERIOD: (NaiveDate, NaiveDate) = (
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
    NaiveDate::from_ymd_opt(2026, 1, 12).unwrap(),
);

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn id() -> String {
    Uuid::new_v4().to_string()
}

/// Local midnight of `date` in `tz`, in UTC (the first instant of the day where a DST change
/// skips midnight).
fn midnight(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let mut time = date.and_time(NaiveTime::MIN);
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&time).earliest() {
            return t.with_timezone(&Utc);
        }
        time += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN))
}

/// Inserts the demo rows for the capability's tenant. The capability must declare the example's
/// entities (see [`example_entities`]) and their tables must exist.
pub async fn seed(
    data: &EntityQueries,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<DemoSummary, QueryError> {
    // Products: (sku, name, quantity, reorder level, price). Three are at or below reorder level.
    let products = [
        ("SKU-1001", "Espresso beans 1 kg", 42, 10, 24.90),
        ("SKU-1002", "Filter coffee 500 g", 8, 12, 11.50),
        ("SKU-1003", "Ceramic mug", 120, 25, 9.00),
        ("SKU-1004", "Milk frother", 5, 5, 39.00),
        ("SKU-1005", "Paper filters (100)", 300, 50, 3.20),
        ("SKU-1006", "Pour-over kettle", 0, 4, 54.00),
        ("SKU-1007", "Burr grinder", 16, 6, 129.00),
        ("SKU-1008", "Travel tumbler", 33, 15, 19.90),
        ("SKU-1009", "Decaf beans 1 kg", 14, 8, 23.50),
        ("SKU-1010", "Cleaning tablets", 61, 20, 12.00),
    ];
    let rows: Vec<Value> = products
        .iter()
        .enumerate()
        .map(|(i, (sku, name, quantity, reorder, price))| {
            json!({
                "id": id(), "sku": sku, "name": name, "quantity": quantity,
                "reorder_level": reorder, "price": price,
                "updated_at": ts(now - Duration::hours(3 + 7 * i as i64)),
            })
        })
        .collect();
    let low_stock_products = products.iter().filter(|p| p.2 <= p.3).count() as u64;
    let n_products = data
        .insert("Product", &Value::Array(rows).to_string())
        .await?;

    // Sessions: five expired, three live.
    let expires = [
        -Duration::minutes(1),
        -Duration::hours(5),
        -Duration::days(1),
        -Duration::days(3),
        -Duration::days(10),
        Duration::minutes(15),
        Duration::hours(2),
        Duration::days(7),
    ];
    let rows: Vec<Value> = expires
        .iter()
        .enumerate()
        .map(|(i, offset)| {
            json!({ "id": id(), "user_id": format!("user-{}", 100 + i), "expires_at": ts(now + *offset) })
        })
        .collect();
    let expired_sessions = expires.iter().filter(|o| **o < Duration::zero()).count() as u64;
    let n_sessions = data
        .insert("Session", &Value::Array(rows).to_string())
        .await?;

    // Orders: yesterday (local), plus some the day before and some today.
    let today = now.with_timezone(&tz).date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    let (y_start, y_end) = (midnight(tz, yesterday), midnight(tz, today));
    let yesterdays = [
        (90, "alice@example.com", "completed", 48.40),
        (480, "bob@example.com", "completed", 129.00),
        (555, "carol@example.com", "shipped", 33.80),
        (660, "dave@example.com", "cancelled", 54.00),
        (810, "erin@example.com", "completed", 24.90),
        (900, "frank@example.com", "completed", 71.70),
        (1125, "grace@example.com", "shipped", 19.90),
        (1374, "heidi@example.com", "completed", 9.00),
    ];
    let mut rows: Vec<Value> = yesterdays
        .iter()
        .map(|(minutes, email, status, total)| {
            let at = (y_start + Duration::minutes(*minutes)).min(y_end - Duration::seconds(1));
            json!({ "id": id(), "customer_email": email, "status": status, "total": total, "created_at": ts(at) })
        })
        .collect();
    let yesterday_revenue = yesterdays
        .iter()
        .filter(|o| o.2 != "cancelled")
        .map(|o| o.3)
        .sum::<f64>();
    for (hours, email, total) in [
        (3, "ivan@example.com", 23.50),
        (14, "judy@example.com", 61.00),
    ] {
        rows.push(
            json!({ "id": id(), "customer_email": email, "status": "completed", "total": total,
            "created_at": ts(y_start - Duration::hours(hours)) }),
        );
    }
    let elapsed = (now - y_end).max(Duration::zero());
    for (part, email, total) in [
        (4, "mallory@example.com", 12.00),
        (2, "niaj@example.com", 39.00),
    ] {
        rows.push(
            json!({ "id": id(), "customer_email": email, "status": "pending", "total": total,
            "created_at": ts(y_end + elapsed / part) }),
        );
    }
    // The spec's sample run asks for 1–12 January 2026 (`{"start_date": "2026-01-01",
    // "end_date": "2026-01-12"}`): orders in that period, and one on either side of it, unless
    // those days are close enough to now to be counted as yesterday's or today's.
    let sample_start = midnight(tz, SAMPLE_PERIOD.0);
    let sample_end = midnight(tz, SAMPLE_PERIOD.1 + Duration::days(1));
    let mut sample_period_orders = 0;
    if sample_end + Duration::days(1) < y_start - Duration::hours(14) {
        for (day, hour, email, total) in [
            (0, 10, "olivia@example.com", 42.00),
            (3, 15, "peggy@example.com", 87.25),
            (7, 9, "rupert@example.com", 15.50),
            (11, 23, "sybil@example.com", 64.00),
            (-1, 12, "trent@example.com", 30.00),
            (12, 1, "victor@example.com", 25.00),
        ] {
            let at = sample_start + Duration::days(day) + Duration::hours(hour);
            if at >= sample_start && at < sample_end {
                sample_period_orders += 1;
            }
            rows.push(
                json!({ "id": id(), "customer_email": email, "status": "completed", "total": total,
                "created_at": ts(at) }),
            );
        }
    }
    let n_orders = data
        .insert("Order", &Value::Array(rows).to_string())
        .await?;

    // Webhooks: three pending (0–2 attempts), two delivered, one given up.
    let webhooks = [
        ("order.created", "pending", 0, None),
        ("order.shipped", "pending", 1, Some("HTTP 502 from relay")),
        ("inventory.low", "pending", 2, Some("timed out after 10s")),
        ("order.created", "delivered", 1, None),
        ("order.cancelled", "delivered", 2, None),
        ("order.refunded", "failed", 5, Some("HTTP 410 Gone")),
    ];
    let rows: Vec<Value> = webhooks
        .iter()
        .enumerate()
        .map(|(i, (event, status, attempts, error))| {
            json!({ "id": id(), "url": format!("https://hooks.example.com/shop/{i}"), "event": event,
                "payload": { "order": format!("ORD-{}", 5000 + i), "sequence": i },
                "status": status, "attempts": attempts, "last_error": error,
                "updated_at": ts(now - Duration::minutes(10 * (i as i64 + 1))) })
        })
        .collect();
    let pending_webhooks = webhooks.iter().filter(|w| w.1 == "pending").count() as u64;
    let n_webhooks = data
        .insert("Webhook", &Value::Array(rows).to_string())
        .await?;

    Ok(DemoSummary {
        products: n_products,
        low_stock_products,
        sessions: n_sessions,
        expired_sessions,
        orders: n_orders,
        yesterday_orders: yesterdays.len() as u64,
        yesterday_revenue,
        yesterday: (y_start, y_end),
        sample_period_orders,
        webhooks: n_webhooks,
        pending_webhooks,
    })
}

/// What [`history`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    pub reports: u64,
    /// Reports with `expires_at < now`.
    pub expired_reports: u64,
    pub job_executions: u64,
}

/// A past for the example's cleanup jobs: reports (expired and not) and finished executions of
/// `tenant`, old and recent, written as the platform writes them. For tests; the demo data
/// ([`seed`]) never includes platform rows.
pub async fn history(
    db: &super::Database,
    tenant: &str,
    now: DateTime<Utc>,
) -> Result<History, QueryError> {
    // Reports and executions are the platform's own tables: written through the store as the
    // platform writes them (the data capability cannot write them).
    // Reports: two expired, one expiring later, one kept forever (rows only: no file).
    let reports = [
        ("DailySalesReport", "pdf", 48_213, -40, Some(-10)),
        ("WeeklyInventoryReport", "csv", 3_904, -35, Some(-5)),
        ("DailySalesReport", "pdf", 47_530, -1, Some(29)),
        ("MonthlyBusinessSummary", "html", 12_288, -20, None),
    ];
    for (job, format, size, created, expires) in reports {
        let report = super::platform::ReportRow {
            id: Uuid::new_v4(),
            tenant: tenant.to_string(),
            job: job.to_string(),
            execution_id: None,
            format: format.to_string(),
            size,
            name: format!("demo-{}.{format}", job.to_lowercase()),
            created_at: now + Duration::days(created),
            expires_at: expires.map(|d| now + Duration::days(d)),
        };
        super::platform::insert_report(db, &report)
            .await
            .map_err(|e| QueryError::Failed(format!("demo reports: {e}")))?;
    }
    let expired_reports = reports
        .iter()
        .filter(|r| r.4.is_some_and(|d| d < 0))
        .count() as u64;

    // Finished executions of the example's jobs: old ones for the cleanup job, recent ones.
    let executions = [
        ("DailySalesReport", "completed", -45),
        ("CleanupExpiredSessions", "completed", -40),
        ("SyncExternalInventory", "failed", -31),
        ("DailySalesReport", "completed", -1),
        ("ProcessPendingWebhooks", "failed", -1),
    ];
    let statements: Vec<_> = executions
        .iter()
        .map(|(job, status, days)| {
            let started = now + Duration::days(*days);
            super::sql::stmt(
                "INSERT INTO job_executions (id, tenant_id, job_id, job_name, status, trigger, \
                 attempt, max_attempts, started_at, finished_at, duration_ms, created_at) \
                 VALUES (?, ?, ?, ?, ?, 'demo', 1, 1, ?, ?, 12000, ?)",
                vec![
                    Param::Uuid(Uuid::new_v4()),
                    Param::Text(tenant.to_string()),
                    Param::Text(job.to_string()),
                    Param::Text(job.to_string()),
                    Param::Text(status.to_string()),
                    Param::DateTime(started),
                    Param::DateTime(started + Duration::seconds(12)),
                    Param::DateTime(started),
                ],
            )
        })
        .collect();
    let n_executions = super::rows::execute_all(db, &statements)
        .await
        .map_err(|e| QueryError::Failed(format!("demo executions: {e}")))?;

    Ok(History {
        reports: reports.len() as u64,
        expired_reports,
        job_executions: n_executions,
    })
}
