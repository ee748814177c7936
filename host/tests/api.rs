//! The HTTP API against a whole in-process host (store, scheduler, workers, API on a loopback
//! port): the spec's requests and their shapes, tenants kept apart, uploads and their
//! refusals, signed report links, alerts, OpenAPI and metrics.

#[macro_use]
mod common;

use chrono::{DateTime, Timelike, Utc};
use codeai_host::services::ServicesConfig;
use codeai_host::store::{demo, executions, migrate, tenants, Database};
use common::test_host::{each, token_of, TestHost, ADMIN};
use common::{run_postgres, run_sqlite};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The example's ten components, compiled once.
fn example() -> &'static Vec<(String, Vec<u8>)> {
    static EXAMPLE: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    EXAMPLE.get_or_init(|| {
        let (artifacts, _) =
            codeai_dsl::compile("scheduled-jobs.codeai", demo::EXAMPLE_SOURCE).unwrap();
        artifacts
            .into_iter()
            .map(|a| (a.file_name, a.bytes))
            .collect()
    })
}

/// The tasks completed on all queues, by `/queues/status`.
fn completed_tasks(status: &Value) -> u64 {
    let queues = status["queues"].as_array().unwrap();
    queues
        .iter()
        .map(|q| q["completed"].as_u64().unwrap())
        .sum()
}

fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

async fn seed_demo(db: &Database, tenant: &str) {
    let data = codeai_host::store::query::EntityQueries::new(
        db.clone(),
        &demo::example_entities(),
        tenant.to_string(),
    )
    .unwrap();
    codeai_host::store::entities::create_entity_tables(db, tenant, &demo::example_entities())
        .await
        .unwrap();
    demo::seed(&data, Utc::now(), chrono_tz::America::New_York)
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The spec's requests
// ---------------------------------------------------------------------------------------------

async fn spec_requests_answer_with_the_spec_shapes(db: Database) {
    let t = TestHost::start(db.clone(), |_| {}).await;
    t.host().register("default", example()).await.unwrap();
    seed_demo(&db, "default").await;

    // List all jobs.
    let (status, jobs) = t.get(ADMIN, "/jobs").await;
    assert_eq!(status, 200, "{jobs}");
    let data = jobs["data"].as_array().unwrap();
    assert_eq!(data.len(), 10, "{jobs}");
    for job in data {
        for key in [
            "id",
            "name",
            "job_type",
            "cron_expression",
            "is_enabled",
            "next_run_at",
            "last_run_status",
        ] {
            assert!(job.get(key).is_some(), "{key} missing in {job}");
        }
    }
    let daily = data
        .iter()
        .find(|j| j["name"] == "DailySalesReport")
        .unwrap();
    assert_eq!(daily["cron_expression"], "0 6 * * *");
    assert_eq!(daily["job_type"], "report");
    assert_eq!(daily["is_enabled"], true);
    let webhooks = data
        .iter()
        .find(|j| j["name"] == "ProcessPendingWebhooks")
        .unwrap();
    assert_eq!(webhooks["cron_expression"], Value::Null);
    assert_eq!(webhooks["schedule"]["every_ms"], 300_000);

    // Get job details, by uuid and by name.
    let id = daily["id"].as_str().unwrap().to_string();
    let (status, by_id) = t.get(ADMIN, &format!("/jobs/{id}")).await;
    assert_eq!(status, 200);
    let (_, by_name) = t.get(ADMIN, "/jobs/DailySalesReport").await;
    assert_eq!(by_id["id"], by_name["id"]);
    assert_eq!(by_id["versions"][0]["version"], 1);

    // Manually trigger a job.
    let (status, run) = t
        .post(
            ADMIN,
            &format!("/jobs/{id}/run"),
            Some(json!({"input": {"start_date": "2026-01-01", "end_date": "2026-01-12"}})),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    assert_eq!(run["job_id"], id.as_str());
    assert_eq!(run["status"], "pending");
    assert_eq!(run["id"], run["execution_id"]);
    assert!(DateTime::parse_from_rfc3339(run["scheduled_at"].as_str().unwrap()).is_ok());
    let exec_id = run["id"].as_str().unwrap().to_string();
    let exec = t.wait_final(ADMIN, &exec_id).await;
    assert_eq!(exec["status"], "completed", "{exec}");
    // The days asked for, not yesterday: the demo's four orders of 1–12 January 2026.
    assert_eq!(exec["calls"][0]["call"], "data.select", "{exec}");
    assert!(
        exec["calls"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("Order: 4 rows")),
        "{exec}"
    );
    assert_eq!(exec["job_name"], "DailySalesReport");
    assert_eq!(exec["trigger"], "manual");
    assert_eq!(exec["input"]["start_date"], "2026-01-01");
    assert_eq!(exec["attempts"].as_array().unwrap().len(), 1);
    assert!(exec["fuel_used"].as_i64().unwrap() > 0, "{exec}");
    assert!(exec["duration_ms"].as_i64().is_some());
    let calls = exec["calls"].as_array().unwrap();
    assert!(
        calls.iter().any(|c| c.to_string().contains("report")),
        "{calls:?}"
    );

    // The job now shows its last run.
    let (_, daily) = t.get(ADMIN, "/jobs/DailySalesReport").await;
    assert_eq!(daily["last_run_status"], "completed");
    assert_eq!(daily["stats"]["completed"], 1);

    // Pause and resume.
    let (status, paused) = t.post(ADMIN, "/jobs/DailySalesReport/pause", None).await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["is_enabled"], false);
    assert!(!t.host().scheduler.job(&id).unwrap().enabled);
    let (status, resumed) = t.post(ADMIN, "/jobs/DailySalesReport/resume", None).await;
    assert_eq!(status, 200);
    assert_eq!(resumed["is_enabled"], true);
    let next: DateTime<Utc> = resumed["next_run_at"].as_str().unwrap().parse().unwrap();
    assert!(next > Utc::now());

    // Update the schedule: 07:00 in Los Angeles.
    let reschedule = |schedule: Value| t.put(ADMIN, "/jobs/DailySalesReport/schedule", schedule);
    let los_angeles = json!({"cron_expression": "0 7 * * *", "timezone": "America/Los_Angeles"});
    let (status, moved) = reschedule(los_angeles).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["cron_expression"], "0 7 * * *");
    assert_eq!(moved["timezone"], "America/Los_Angeles");
    let next: DateTime<Utc> = moved["next_run_at"].as_str().unwrap().parse().unwrap();
    let local = next.with_timezone(&chrono_tz::America::Los_Angeles);
    assert_eq!((local.hour(), local.minute()), (7, 0));
    for bad in [
        json!({"cron_expression": "61 * * * *"}),
        json!({"cron_expression": "0 7 * * *", "timezone": "Mars/Olympus"}),
    ] {
        let (status, body) = reschedule(bad).await;
        assert_error(status, &body, 422, "invalid_schedule");
    }

    // Queue status.
    let (status, queues) = t.get(ADMIN, "/queues/status").await;
    assert_eq!(status, 200);
    let names: Vec<&str> = each(&queues["queues"], "name");
    for q in ["critical", "default", "low"] {
        assert!(names.contains(&q), "{queues}");
    }
    for q in queues["queues"].as_array().unwrap() {
        for key in ["pending", "active", "completed", "failed", "scheduled"] {
            assert!(q[key].is_u64(), "{q}");
        }
    }
    let completed: u64 = completed_tasks(&queues);
    assert!(completed >= 1);
    assert_eq!(queues["workers"]["total"], 4);
    assert_eq!(
        queues["workers"]["active"].as_u64().unwrap() + queues["workers"]["idle"].as_u64().unwrap(),
        4
    );

    // Executions of a job, filtered by status.
    let (status, list) = t
        .get(ADMIN, "/jobs/DailySalesReport/executions?status=completed")
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["data"][0]["id"], exec_id.as_str());
    let (_, failed) = t
        .get(ADMIN, "/jobs/DailySalesReport/executions?status=failed")
        .await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 0);

    // Cursor pagination: three runs, pages of two, newest first, nothing twice or lost.
    let mut ours = Vec::new();
    for _ in 0..3 {
        let (_, r) = t
            .post(ADMIN, "/jobs/CleanupExpiredSessions/run", None)
            .await;
        t.wait_final(ADMIN, r["id"].as_str().unwrap()).await;
        ours.push(r["id"].as_str().unwrap().to_string());
    }
    let all: Vec<String> = t
        .executions_of(ADMIN, "CleanupExpiredSessions", "")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/jobs/CleanupExpiredSessions/executions?limit=2&cursor={c}"),
            None => "/jobs/CleanupExpiredSessions/executions?limit=2".to_string(),
        };
        let (status, page) = t.get(ADMIN, &path).await;
        assert_eq!(status, 200, "{page}");
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2);
        paged.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all);
    ours.reverse();
    let positions: Vec<usize> = ours
        .iter()
        .map(|id| all.iter().position(|x| x == id).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not newest first: {all:?}"
    );
    let (status, bad) = t
        .get(ADMIN, "/jobs/CleanupExpiredSessions/executions?cursor=zz")
        .await;
    assert_error(status, &bad, 400, "invalid_cursor");

    // Retry and cancel a completed execution: refused with the reason.
    let (status, body) = t
        .post(ADMIN, &format!("/executions/{exec_id}/retry"), None)
        .await;
    assert_error(status, &body, 409, "not_retryable");
    let (status, body) = t
        .post(ADMIN, &format!("/executions/{exec_id}/cancel"), None)
        .await;
    assert_error(status, &body, 409, "not_cancellable");

    // Reports and a download URL that serves the PDF without a token.
    let (status, reports) = t.get(ADMIN, "/reports").await;
    assert_eq!(status, 200);
    let report = reports["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["format"] == "pdf")
        .unwrap_or_else(|| panic!("no PDF report: {reports}"))
        .clone();
    let rid = report["id"].as_str().unwrap();
    let (status, detail) = t.get(ADMIN, &format!("/reports/{rid}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["execution_id"], exec_id.as_str());
    let (status, link) = t.get(ADMIN, &format!("/reports/{rid}/download")).await;
    assert_eq!(status, 200, "{link}");
    let url = link["download_url"].as_str().unwrap();
    assert!(url.starts_with(&t.base), "{url}");
    let expires: DateTime<Utc> = link["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > Utc::now() && expires < Utc::now() + chrono::Duration::minutes(16));
    let file = reqwest::get(url).await.unwrap();
    assert_eq!(file.status(), 200);
    assert_eq!(file.headers()["content-type"], "application/pdf");
    let bytes = file.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF"), "not a PDF");
    assert_eq!(bytes.len() as i64, report["size"].as_i64().unwrap());
    // A changed signature or report id is refused.
    let tampered = url.replace("signature=", "signature=00");
    assert_eq!(reqwest::get(&tampered).await.unwrap().status(), 403);
    let other = url.replace(rid, &uuid::Uuid::new_v4().to_string());
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);

    // Errors are JSON with a code.
    let (status, body) = t.call(None, reqwest::Method::GET, "/jobs", None).await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = t.get("wrong-token", "/jobs").await;
    assert_error(status, &body, 401, "unauthorized");
    let (status, body) = t.get(ADMIN, "/jobs/NoSuchJob").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t.get(ADMIN, "/executions/not-a-uuid").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t.get(ADMIN, "/no/such/route").await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = t
        .post(
            ADMIN,
            "/jobs/DailySalesReport/run",
            Some(json!({"input": [1, 2]})),
        )
        .await;
    assert_error(status, &body, 422, "invalid_body");
    let res = t
        .http
        .post(format!("{}/jobs/DailySalesReport/run", t.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");
    let (status, body) = t.get(ADMIN, "/jobs?limit=0").await;
    assert_error(status, &body, 400, "invalid_query");
    // Request bodies are limited (1 MiB of JSON). Just over the limit: the server answers 413
    // before reading the rest, and a small excess still fits the socket buffers, so the client
    // always gets to read that answer.
    let big = json!({"input": {"blob": "x".repeat((1 << 20) + 64)}});
    let (status, body) = t.post(ADMIN, "/jobs/DailySalesReport/run", Some(big)).await;
    assert_error(status, &body, 413, "too_large");

    // Health, OpenAPI, metrics.
    assert_eq!(
        t.call(None, reqwest::Method::GET, "/healthz", None).await.0,
        200
    );
    assert_eq!(
        t.call(None, reqwest::Method::GET, "/readyz", None).await.0,
        200
    );
    let (status, doc) = t
        .call(None, reqwest::Method::GET, "/openapi.json", None)
        .await;
    assert_eq!(status, 200);
    for path in [
        "/jobs",
        "/jobs/{id}",
        "/jobs/{id}/run",
        "/jobs/{id}/pause",
        "/jobs/{id}/resume",
        "/jobs/{id}/schedule",
        "/jobs/{id}/executions",
        "/executions/{id}",
        "/executions/{id}/cancel",
        "/executions/{id}/retry",
        "/reports",
        "/reports/{id}",
        "/reports/{id}/download",
        "/queues/status",
        "/alerts",
        "/outbox",
        "/metrics",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} not in the OpenAPI document"
        );
    }
    let metrics = t.metrics().await;
    assert!(
        metrics.contains(
            "job_executions_total{job=\"DailySalesReport\",status=\"completed\",queue=\"reports\"} 1"
        ) || metrics.contains("job_executions_total{job=\"DailySalesReport\",status=\"completed\""),
        "{metrics}"
    );
    assert!(metrics
        .contains("job_executions_total{job=\"CleanupExpiredSessions\",status=\"completed\""));
    assert!(metrics.contains("job_execution_duration_seconds_bucket{job=\"DailySalesReport\""));
    assert!(metrics.contains("queue_depth{queue=\"critical\",state=\"pending\"}"));
    assert!(metrics.contains("workers_total 4"));
    t.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Tenants
// ---------------------------------------------------------------------------------------------

/// Tenants `acme` and `globex`, and a token of each.
async fn acme_and_globex(db: &Database) -> (String, String) {
    let mut tokens = Vec::new();
    for name in ["acme", "globex"] {
        tenants::create_tenant(db, name, None, None, None)
            .await
            .unwrap();
        tokens.push(
            tenants::create_token(db, Some(name), false, "test")
                .await
                .unwrap(),
        );
    }
    let globex = tokens.pop().unwrap();
    (tokens.pop().unwrap(), globex)
}

async fn a_tenant_sees_and_changes_only_its_own(db: Database) {
    let t = TestHost::start(db.clone(), |_| {}).await;
    let (a, b) = acme_and_globex(&db).await;
    // Both tenants run the example; only acme has data.
    t.host().register("acme", example()).await.unwrap();
    t.host().register("globex", example()).await.unwrap();
    seed_demo(&db, "acme").await;

    // acme runs a report (an execution and a report file of acme's).
    let (status, run) = t.post(&a, "/jobs/DailySalesReport/run", None).await;
    assert_eq!(status, 202, "{run}");
    let exec_id = run["id"].as_str().unwrap().to_string();
    assert_eq!(t.wait_final(&a, &exec_id).await["status"], "completed");
    let (_, reports) = t.get(&a, "/reports").await;
    let report_id = reports["data"][0]["id"].as_str().unwrap().to_string();
    let (_, job) = t.get(&a, "/jobs/DailySalesReport").await;
    let job_id = job["id"].as_str().unwrap().to_string();
    assert_eq!(job["tenant"], "acme");

    // Lists show only one's own.
    let (_, b_jobs) = t.get(&b, "/jobs").await;
    assert_eq!(b_jobs["data"].as_array().unwrap().len(), 10);
    assert!(b_jobs["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["tenant"] == "globex"));
    let (_, admin_jobs) = t.get(ADMIN, "/jobs").await;
    assert_eq!(admin_jobs["data"].as_array().unwrap().len(), 20);
    let (_, b_reports) = t.get(&b, "/reports").await;
    assert_eq!(b_reports["data"].as_array().unwrap().len(), 0);
    let (_, b_queues) = t.get(&b, "/queues/status").await;
    let b_completed: u64 = completed_tasks(&b_queues);
    assert_eq!(b_completed, 0, "{b_queues}");

    // Every attempt on acme's objects with globex's token is a 404.
    use reqwest::Method as M;
    let attempts: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, format!("/jobs/{job_id}"), None),
        (M::POST, format!("/jobs/{job_id}/run"), None),
        (M::POST, format!("/jobs/{job_id}/pause"), None),
        (M::POST, format!("/jobs/{job_id}/resume"), None),
        (
            M::PUT,
            format!("/jobs/{job_id}/schedule"),
            Some(json!({"cron_expression": "0 1 * * *"})),
        ),
        (M::GET, format!("/jobs/{job_id}/executions"), None),
        (M::DELETE, format!("/jobs/{job_id}"), None),
        (M::GET, format!("/executions/{exec_id}"), None),
        (M::POST, format!("/executions/{exec_id}/cancel"), None),
        (M::POST, format!("/executions/{exec_id}/retry"), None),
        (M::GET, format!("/reports/{report_id}"), None),
        (M::GET, format!("/reports/{report_id}/download"), None),
    ];
    for (method, path, body) in &attempts {
        let (status, answer) = t.call(Some(&b), method.clone(), path, body.clone()).await;
        assert_error(status, &answer, 404, "not_found");
        assert!(
            !answer.to_string().contains("acme"),
            "{method} {path} hints at the other tenant: {answer}"
        );
    }
    // Nothing changed.
    let (_, job_after) = t.get(&a, &format!("/jobs/{job_id}")).await;
    assert_eq!(job_after["is_enabled"], true);
    assert_eq!(job_after["cron_expression"], "0 6 * * *");
    let (_, runs) = t.get(&a, &format!("/jobs/{job_id}/executions")).await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 1);
    // The same name resolves to one's own job.
    let (status, own) = t.get(&b, "/jobs/DailySalesReport").await;
    assert_eq!(status, 200);
    assert_eq!(own["tenant"], "globex");
    assert_ne!(own["id"], job_id.as_str());

    // A job of globex cannot read acme's rows: its cleanup deletes nothing of acme's.
    // acme's sessions, in acme's namespace.
    let expired = |db: Database| async move {
        codeai_host::store::query::EntityQueries::new(db, &demo::example_entities(), "acme")
            .unwrap()
            .count("Session", None)
            .await
            .unwrap() as i64
    };
    let before = expired(db.clone()).await;
    let (_, run) = t.post(&b, "/jobs/CleanupExpiredSessions/run", None).await;
    let done = t.wait_final(&b, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(expired(db.clone()).await, before);
    let (_, run) = t.post(&a, "/jobs/CleanupExpiredSessions/run", None).await;
    t.wait_final(&a, run["id"].as_str().unwrap()).await;
    assert_eq!(expired(db.clone()).await, before - 5);
    t.stop().await;
}

on_both_databases!(
    spec_requests_answer_with_the_spec_shapes,
    a_tenant_sees_and_changes_only_its_own,
    metrics_totals_follow_every_write_of_an_execution,
);

/// `/metrics` reads totals the database keeps as executions are written (so a scrape does not
/// count the history): after inserts, moves between states, new attempts and deletes, by any
/// statement, they equal counting `job_executions`.
async fn metrics_totals_follow_every_write_of_an_execution(db: Database) {
    migrate::migrate_up(&db).await.unwrap();
    let write = |sql: String| {
        let db = db.clone();
        async move {
            match &db {
                Database::Sqlite(pool) => sqlx::raw_sql(&sql).execute(pool).await.map(drop),
                Database::Postgres(pool) => sqlx::raw_sql(&sql).execute(pool).await.map(drop),
            }
            .unwrap()
        }
    };
    let quoted = |v: Option<&str>| v.map_or("NULL".to_string(), |v| format!("'{v}'"));
    let row =
        |id: &str,
         job: Option<&str>,
         status: &str,
         queue: Option<&str>,
         attempt: i64,
         ms: Option<i64>| {
            format!(
            "INSERT INTO job_executions (id, tenant_id, job_id, job_name, status, queue, attempt, \
             started_at, duration_ms) VALUES ('{id}', 'default', 'j-{}', {}, '{status}', {}, \
             {attempt}, {}, {})",
            job.unwrap_or("none"),
            quoted(job),
            quoted(queue),
            if attempt > 0 { "'2026-12-01T00:00:00.000000Z'" } else { "NULL" },
            ms.map_or("NULL".to_string(), |ms| ms.to_string()),
        )
        };
    // On each side of two bucket bounds and past the last one; a run with a duration but no
    // start (attempt 0: never counted in the histogram); no job name or queue; a third attempt.
    let (a, b) = (Some("A"), Some("B"));
    for sql in [
        row(
            "00000000-0000-4000-8000-000000000001",
            a,
            "pending",
            Some("default"),
            0,
            None,
        ),
        row(
            "00000000-0000-4000-8000-000000000002",
            a,
            "completed",
            Some("default"),
            1,
            Some(5),
        ),
        row(
            "00000000-0000-4000-8000-000000000003",
            a,
            "completed",
            Some("default"),
            1,
            Some(6),
        ),
        row(
            "00000000-0000-4000-8000-000000000004",
            b,
            "failed",
            Some("critical"),
            2,
            Some(300_000),
        ),
        row(
            "00000000-0000-4000-8000-000000000005",
            b,
            "failed",
            Some("critical"),
            1,
            Some(300_001),
        ),
        row(
            "00000000-0000-4000-8000-000000000006",
            None,
            "timed_out",
            None,
            3,
            Some(1000),
        ),
        row(
            "00000000-0000-4000-8000-000000000007",
            b,
            "cancelled",
            Some("critical"),
            0,
            Some(40),
        ),
    ] {
        write(sql).await;
    }
    common::assert_metrics_match_history(&db).await;
    let counts = executions::counts_by_job(&db).await.unwrap();
    assert!(
        counts.contains(&("A".into(), "completed".into(), "default".into(), 2)),
        "{counts:?}"
    );
    let durations = executions::durations(&db, &executions::DURATION_BOUNDS_MS)
        .await
        .unwrap();
    let a = durations.iter().find(|d| d.job == "A").unwrap();
    // 5 ms is in the 5 ms bucket, 6 ms in the 10 ms one.
    assert_eq!((a.at_most[0], a.at_most[1], a.count), (1, 2, 2));

    // A pending run starts, fails, is retried and completes; one moves queue; one is deleted.
    write(
        "UPDATE job_executions SET status = 'running', attempt = 1, \
           started_at = '2026-12-01T00:00:00.000000Z' WHERE id = '00000000-0000-4000-8000-000000000001'"
            .into(),
    )
    .await;
    common::assert_metrics_match_history(&db).await;
    write(
        "UPDATE job_executions SET status = 'completed', attempt = 2, duration_ms = 250 \
           WHERE id = '00000000-0000-4000-8000-000000000001'"
            .into(),
    )
    .await;
    write("UPDATE job_executions SET queue = 'low', job_name = 'C' WHERE id = '00000000-0000-4000-8000-000000000006'".into()).await;
    write("DELETE FROM job_executions WHERE id IN ('00000000-0000-4000-8000-000000000002', '00000000-0000-4000-8000-000000000004')".into()).await;
    common::assert_metrics_match_history(&db).await;
    let retries = executions::retries_by_job(&db).await.unwrap();
    assert_eq!(retries, [("A".to_string(), 1), ("C".to_string(), 2)]);

    // Rows written many at once (the recorder's batches) count one by one.
    write(
        "UPDATE job_executions SET status = 'failed', duration_ms = duration_ms + 1 \
           WHERE duration_ms IS NOT NULL"
            .into(),
    )
    .await;
    common::assert_metrics_match_history(&db).await;

    // The recorder's shapes: an upsert that inserts one row and updates another, and (PostgreSQL)
    // such an upsert and an update of a third row in one statement.
    let upsert = |new: &str, existing: &str, status: &str| {
        format!(
            "{} , ('{existing}', 'default', 'j-A', 'A', '{status}', 'default', 4, \
             '2026-12-01T00:00:00.000000Z', 9) ON CONFLICT (id) DO UPDATE SET \
             status = excluded.status, attempt = excluded.attempt, \
             duration_ms = excluded.duration_ms",
            row(new, Some("A"), "completed", Some("default"), 1, Some(20))
        )
    };
    write(upsert(
        "00000000-0000-4000-8000-000000000008",
        "00000000-0000-4000-8000-000000000003",
        "timed_out",
    ))
    .await;
    common::assert_metrics_match_history(&db).await;
    if let Database::Postgres(_) = &db {
        write(format!(
            "WITH s AS ({}), u AS (UPDATE job_executions SET status = 'completed', attempt = 2 \
             WHERE id = '00000000-0000-4000-8000-000000000008') SELECT 1",
            upsert(
                "00000000-0000-4000-8000-000000000009",
                "00000000-0000-4000-8000-000000000001",
                "failed",
            )
        ))
        .await;
        common::assert_metrics_match_history(&db).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Upload
// ---------------------------------------------------------------------------------------------

const UPLOADED: &str = r#"
entity Session {
    table: "sessions"
    id: uuid primary
    expires_at: datetime
}

job Ticker {
    schedule: every 1s
    steps {
        cleanup {
            action: delete Session where expires_at < now()
            as: deleted
        }
    }
}

integration Down {
    base_url: env("DOWN_URL")
    timeout: 1s
    ping: GET "/ping" {}
}

job AlwaysFails {
    steps { p { call: Down.ping {} } }
}
"#;

fn compiled(source: &str, job: &str) -> (Vec<u8>, codeai_ir::Manifest) {
    let (artifacts, _) = codeai_dsl::compile("uploaded.codeai", source).unwrap();
    let a = artifacts
        .into_iter()
        .find(|a| a.manifest.name == job)
        .unwrap();
    (a.bytes, a.manifest)
}

/// A hand-made component with a manifest section.
fn component_with(wat: &str, manifest: &[u8]) -> Vec<u8> {
    let mut bytes = wat::parse_str(wat).unwrap();
    codeai_dsl::emit::append_custom_section(&mut bytes, codeai_ir::MANIFEST_SECTION, manifest);
    bytes
}

async fn an_uploaded_job_runs_on_its_schedule_and_bad_uploads_are_refused(db: Database) {
    let t = TestHost::start(db.clone(), |c| c.api.max_upload = 1 << 20).await;
    tenants::create_tenant(&db, "acme", None, None, None)
        .await
        .unwrap();
    let token = token_of(&db, "acme").await;
    let (ticker, manifest) = compiled(UPLOADED, "Ticker");

    // Every refusal, with its reason, and nothing registered.
    let good_manifest = serde_json::to_vec(&manifest).unwrap();
    let mut wrong_ir = serde_json::to_value(&manifest).unwrap();
    wrong_ir["ir_version"] = json!(999);
    let cases: Vec<(&str, Vec<u8>, &str, u16, &str)> = vec![
        (
            "not wasm",
            b"hello, world".to_vec(),
            "application/wasm",
            422,
            "not_a_component",
        ),
        (
            "a core module",
            wat::parse_str("(module)").unwrap(),
            "application/wasm",
            422,
            "not_a_component",
        ),
        (
            "no manifest",
            wat::parse_str("(component)").unwrap(),
            "application/wasm",
            422,
            "invalid_manifest",
        ),
        (
            "a manifest that is not JSON",
            component_with("(component)", b"{not json"),
            "application/wasm",
            422,
            "invalid_manifest",
        ),
        (
            "another IR version",
            component_with("(component)", &serde_json::to_vec(&wrong_ir).unwrap()),
            "application/wasm",
            422,
            "wrong_ir_version",
        ),
        (
            "an import outside the allow-list",
            component_with(
                r#"(component (import "wasi:cli/environment@0.2.0" (instance)))"#,
                &good_manifest,
            ),
            "application/wasm",
            422,
            "imports_not_allowed",
        ),
        (
            "made by hand (a tenant's must be a `codeai build` component)",
            component_with("(component)", &good_manifest),
            "application/wasm",
            422,
            "hand_made_component",
        ),
        (
            "too large",
            vec![0u8; (1 << 20) + 1],
            "application/wasm",
            413,
            "too_large",
        ),
        (
            "not sent as wasm",
            ticker.clone(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, bytes, content_type, status, code) in cases {
        let (got, body) = t.upload_as(&token, bytes, content_type).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{what}: {body}"
        );
    }
    let (_, jobs) = t.get(&token, "/jobs").await;
    assert_eq!(jobs["data"].as_array().unwrap().len(), 0);
    // The operator's own components may be hand-made; this one does not fit the `job` world.
    let (got, body) = t
        .upload_as(
            ADMIN,
            component_with("(component)", &good_manifest),
            "application/wasm",
        )
        .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (422, Some("wrong_world")),
        "{body}"
    );

    // A real upload registers the job for the token's tenant; it runs on its schedule.
    let (status, up) = t
        .upload_as(&token, ticker.clone(), "application/wasm")
        .await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(
        (up["name"].as_str(), up["tenant"].as_str()),
        (Some("Ticker"), Some("acme"))
    );
    assert_eq!(up["version"], 1);
    wait_scheduled_runs(&t, &token, "Ticker", 2).await;

    // The same bytes again: nothing changes. A changed job: version 2, old runs keep 1.
    let (status, same) = t
        .upload_as(&token, ticker.clone(), "application/wasm")
        .await;
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["new_version"], false);
    let (ticker2, _) = compiled(&UPLOADED.replace("every 1s", "every 2s"), "Ticker");
    let (status, v2) = t.upload_as(&token, ticker2, "application/wasm").await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["id"], up["id"]);
    let (_, job) = t.get(&token, "/jobs/Ticker").await;
    assert_eq!(job["version"], 2);
    assert_eq!(job["schedule"]["every_ms"], 2000);
    let old = t.executions_of(&token, "Ticker", "").await;
    assert!(old.iter().any(|e| e["job_version"] == 1));
    common::wait_until("version 2 did not run", || async {
        t.executions_of(&token, "Ticker", "&status=completed")
            .await
            .iter()
            .any(|e| e["job_version"] == 2)
    })
    .await;

    // The admin uploads for a named tenant; an unknown tenant is refused.
    let (fails, _) = compiled(UPLOADED, "AlwaysFails");
    let res = t
        .http
        .post(format!("{}/jobs?tenant=nobody", t.base))
        .bearer_auth(ADMIN)
        .header("content-type", "application/wasm")
        .body(fails.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // Delete: it stops firing and is gone; its history stays in the database.
    let job_id = up["id"].as_str().unwrap().to_string();
    let (status, _) = t.delete(&token, "/jobs/Ticker").await;
    assert_eq!(status, 204);
    let deleted_at = Utc::now();
    let (status, body) = t.get(&token, "/jobs/Ticker").await;
    assert_error(status, &body, 404, "not_found");
    // The scheduler has forgotten it: a tick a day ahead fires nothing of it.
    assert!(t.host().scheduler.job(&job_id).is_none());
    let tick = t
        .host()
        .scheduler
        .tick(deleted_at + chrono::Duration::days(1))
        .await
        .unwrap();
    assert!(
        tick.enqueued.iter().all(|(name, _, _)| name != "Ticker"),
        "{tick:?}"
    );
    // And the host's own scheduler loop goes on without it: a marker job uploaded after the
    // delete runs three scheduled fires (two seconds, Ticker's period, past the delete), and
    // still no run of Ticker was scheduled after the delete. Runs of fires due before it may
    // still finish; they are history.
    let (marker, _) = compiled(&UPLOADED.replace("job Ticker", "job Marker"), "Marker");
    let (status, body) = t.upload_as(&token, marker, "application/wasm").await;
    assert_eq!(status, 201, "{body}");
    wait_scheduled_runs(&t, &token, "Marker", 3).await;
    let fires: Vec<Option<DateTime<Utc>>> = common::column(
        &db,
        "SELECT scheduled_at FROM job_executions WHERE job_id = ?",
        &[&job_id],
    )
    .await;
    assert!(fires.len() >= 3, "the history is gone: {fires:?}");
    let late: Vec<_> = fires
        .iter()
        .flatten()
        .filter(|f| **f > deleted_at)
        .collect();
    assert!(late.is_empty(), "fired after delete: {late:?}");
    t.stop().await;
}

/// Waits until `job` has completed `n` scheduled runs.
async fn wait_scheduled_runs(t: &TestHost, token: &str, job: &str, n: usize) {
    common::wait_until(&format!("{job} did not fire {n} times"), || async {
        let done = t.executions_of(token, job, "&status=completed").await;
        done.iter().filter(|e| e["trigger"] == "schedule").count() >= n
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------------------------

async fn alerts_start_are_delivered_and_resolve(db: Database) {
    let t = TestHost::start(db.clone(), |_| {}).await;
    let (fails, _) = compiled(UPLOADED, "AlwaysFails");
    t.register_one("default", "fails.wasm", fails).await;
    let tenant_token = token_of(&db, "default").await;

    // Two failures: no alert yet; the third makes one, delivered to the outbox (no Slack).
    for n in 1..=3 {
        let (_, run) = t.post(ADMIN, "/jobs/AlwaysFails/run", None).await;
        let done = t.wait_final(ADMIN, run["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "failed", "{done}");
        let eval = t.host().alerts.evaluate(Utc::now()).await.unwrap();
        assert_eq!(
            eval.started.len(),
            usize::from(n == 3),
            "after {n} failures: {eval:?}"
        );
    }
    let (_, alerts) = t.get(&tenant_token, "/alerts").await;
    let alert = &alerts["data"][0];
    assert_eq!(alert["kind"], "job_failed", "{alerts}");
    assert_eq!(alert["subject"], "AlwaysFails");
    assert_eq!(alert["delivery"], "outbox");
    assert_eq!(alert["status"], "active");
    let (_, outbox) = t.get(ADMIN, "/outbox").await;
    let held = &outbox["data"][0];
    assert_eq!(held["kind"], "slack");
    assert_eq!(held["recipient"], "#alerts");
    assert!(held["body"]
        .as_str()
        .unwrap()
        .contains("AlwaysFails failed 3 times"));
    // Still failing: the alert stays, not delivered again.
    let eval = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert!(eval.started.is_empty() && eval.resolved.is_empty());

    // Backlog: stop the workers, queue 101 runnable tasks.
    t.host().pool.shutdown().await;
    let job = t.host().scheduler.jobs()[0].clone();
    let tasks: Vec<_> = (0..101)
        .map(|_| codeai_host::queue::NewTask {
            id: None,
            tenant: "default".into(),
            job_id: job.job_id.clone(),
            job_name: "AlwaysFails".into(),
            job_version: Some(job.version),
            queue: "low".into(),
            trigger: "manual".into(),
            input: "{}".into(),
            fire_at: None,
            run_after: Utc::now() - chrono::Duration::seconds(1),
            max_attempts: 1,
            exclusive: false,
        })
        .collect();
    t.host().queue.enqueue_many(&tasks).await.unwrap();
    // A run that has gone on for more than twice its job's timeout.
    let long_id = uuid::Uuid::new_v4();
    let started = Utc::now() - chrono::Duration::hours(3);
    codeai_host::store::platform::start_execution(
        &db,
        &codeai_host::store::platform::NewExecution {
            id: long_id,
            tenant: "default",
            job_id: &job.job_id,
            job_name: "AlwaysFails",
            job_version: Some(job.version),
            trigger: "manual",
            queue: "default",
            input: "{}",
            attempt: 1,
            max_attempts: 1,
            scheduled_at: None,
            started_at: started,
        },
    )
    .await
    .unwrap();
    let eval = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert!(
        eval.started.contains(&"queue_backlog:low".to_string()),
        "{eval:?}"
    );
    assert!(
        eval.started.contains(&format!("long_running:{long_id}")),
        "{eval:?}"
    );
    let (_, all) = t.get(ADMIN, "/alerts").await;
    let kinds: Vec<&str> = each(&all["data"], "kind");
    assert!(
        kinds.contains(&"queue_backlog") && kinds.contains(&"long_running"),
        "{all}"
    );
    // A host-wide alert is the admin's; the tenant sees its own only.
    let (_, mine) = t.get(&tenant_token, "/alerts").await;
    assert!(mine["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["kind"] != "queue_backlog"));

    // The backlog clears: the alert is resolved.
    let sql = "UPDATE tasks SET state = 'dead', outcome = 'cancelled' WHERE state = 'pending'";
    match &db {
        Database::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
        Database::Postgres(p) => sqlx::query(sql).execute(p).await.map(|_| ()).unwrap(),
    }
    let eval = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert_eq!(eval.resolved, vec!["queue_backlog:low".to_string()]);
    let (_, resolved) = t.get(ADMIN, "/alerts?status=resolved").await;
    assert_eq!(resolved["data"][0]["kind"], "queue_backlog");
    assert!(resolved["data"][0]["resolved_at"].is_string());
    t.stop().await;
}

mod more {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_upload() {
        run_sqlite(an_uploaded_job_runs_on_its_schedule_and_bad_uploads_are_refused).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_upload() {
        run_postgres(an_uploaded_job_runs_on_its_schedule_and_bad_uploads_are_refused).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_alerts() {
        run_sqlite(alerts_start_are_delivered_and_resolve).await
    }
}

// ---------------------------------------------------------------------------------------------
// Tenant limits
// ---------------------------------------------------------------------------------------------

const SLOW: &str = r#"
integration Slow {
    base_url: env("SLOW_URL")
    timeout: 10s
    wait: GET "/wait" {}
}

job Waits {
    steps { w { call: Slow.wait {} } }
}
"#;

async fn a_tenants_limits_hold_for_its_executions(db: Database) {
    // A server that answers after 300 ms and counts the requests in flight at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let in_flight = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let most = Arc::new(std::sync::atomic::AtomicI64::new(0));
    {
        let (in_flight, most) = (in_flight.clone(), most.clone());
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            while let Ok((mut socket, _)) = listener.accept().await {
                let (in_flight, most) = (in_flight.clone(), most.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = socket.read(&mut buf).await;
                    let now = in_flight.fetch_add(1, SeqCst) + 1;
                    most.fetch_max(now, SeqCst);
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    in_flight.fetch_sub(1, SeqCst);
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                        .await;
                });
            }
        });
    }
    let t = TestHost::start(db.clone(), |c| {
        // The tenants' jobs call the slow peer on loopback.
        c.services.egress.tenants = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    tenants::create_tenant(&db, "small", Some(1), None, Some(1_000))
        .await
        .unwrap();
    tenants::create_tenant(&db, "one", Some(1), None, None)
        .await
        .unwrap();
    let (waits, _) = compiled(SLOW, "Waits");
    t.register_one("one", "waits.wasm", waits.clone()).await;
    t.register_one("small", "waits.wasm", waits).await;
    let one = token_of(&db, "one").await;
    let small = token_of(&db, "small").await;
    // A tenant's `env("SLOW_URL")` is its own secret.
    let (status, _) = t
        .put(&one, "/secrets/SLOW_URL", json!({ "value": url }))
        .await;
    assert_eq!(status, 201);

    // Fuel: 1,000 units is not enough to run the job.
    let (_, run) = t.post(&small, "/jobs/Waits/run", None).await;
    let done = t.wait_final(&small, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "fuel_exhausted", "{done}");

    // Concurrency: four runs of a tenant limited to one at a time (the pool has four slots).
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (_, run) = t.post(&one, "/jobs/Waits/run", None).await;
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        let done = t.wait_final(&one, id).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tenant_limits() {
    run_sqlite(a_tenants_limits_hold_for_its_executions).await
}

/// No idle worker at two evaluations in a row makes `worker_starvation`; cancelling the running
/// executions over the API frees the slots and resolves it.
async fn starved_workers_raise_an_alert_and_cancel_frees_them(db: Database) {
    // A server that accepts and never answers: every call waits until cancelled.
    let slow = common::peers::HangingPeer::start().await;
    let url = slow.url.clone();
    let t = TestHost::start(db.clone(), move |c| {
        c.pool.slots = 2;
        c.services = ServicesConfig::local(
            std::env::temp_dir().join(common::unique("codeai_starved")),
            Arc::new(move |k| (k == "SLOW_URL").then(|| url.clone())),
        );
        c.services.egress.operator = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    let (waits, _) = compiled(SLOW, "Waits");
    t.register_one("default", "waits.wasm", waits).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (_, run) = t.post(ADMIN, "/jobs/Waits/run", None).await;
        ids.push(run["id"].as_str().unwrap().to_string());
    }
    common::wait_until("the runs did not start", || async { slow.accepted() >= 2 }).await;
    let first = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert!(!first.started.contains(&"worker_starvation".to_string()));
    let second = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert!(
        second.started.contains(&"worker_starvation".to_string()),
        "{second:?}"
    );
    let (_, status) = t.get(ADMIN, "/queues/status").await;
    assert_eq!(
        (&status["workers"]["active"], &status["workers"]["idle"]),
        (&json!(2), &json!(0))
    );

    // Cancel both running executions over the API.
    for id in &ids {
        let (code, body) = t
            .post(ADMIN, &format!("/executions/{id}/cancel"), None)
            .await;
        assert_eq!(
            (code, body["status"].as_str()),
            (202, Some("cancelling")),
            "{body}"
        );
    }
    for id in &ids {
        assert_eq!(t.wait_final(ADMIN, id).await["status"], "cancelled");
    }
    common::wait_until("slots not freed", || async {
        t.host().pool.utilisation().1 == 0
    })
    .await;
    let third = t.host().alerts.evaluate(Utc::now()).await.unwrap();
    assert_eq!(third.resolved, vec!["worker_starvation".to_string()]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_starvation() {
    run_sqlite(starved_workers_raise_an_alert_and_cancel_frees_them).await
}

// ---------------------------------------------------------------------------------------------
// The dashboard's page and endpoints
// ---------------------------------------------------------------------------------------------

async fn the_dashboard_is_served_and_its_endpoints_answer_for_the_caller(db: Database) {
    let t = TestHost::start(db.clone(), |_| {}).await;
    let (acme, globex) = acme_and_globex(&db).await;
    t.host().register("acme", example()).await.unwrap();
    seed_demo(&db, "acme").await;
    // Paused, so that no fire (`every 5m`, …) lands among the runs counted below.
    let (_, jobs) = t.get(&acme, "/jobs?limit=100").await;
    for job in jobs["data"].as_array().unwrap() {
        let id = job["id"].as_str().unwrap();
        let (status, body) = t.post(&acme, &format!("/jobs/{id}/pause"), None).await;
        assert_eq!(status, 200, "{body}");
    }

    // The page: `/` leads to it; its files are served with a strict policy, no token needed.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let root = no_redirect
        .get(format!("{}/", t.base))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status().as_u16(), 307);
    assert_eq!(root.headers()["location"], "/ui/");
    for (path, content_type, needle) in [
        (
            "/ui/",
            "text/html",
            "<script type=\"module\" src=\"app.js\">",
        ),
        ("/ui/app.js", "text/javascript", "Authorization: `Bearer"),
        ("/ui/app.css", "text/css", "prefers-color-scheme"),
        ("/ui/favicon.svg", "image/svg+xml", "<svg"),
    ] {
        let res = t
            .http
            .get(format!("{}{path}", t.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let headers = res.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type),
            "{path}: {headers:?}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(res.text().await.unwrap().contains(needle), "{path}");
    }

    // GET /me
    let (status, me) = t.get(ADMIN, "/me").await;
    assert_eq!((status, me["role"].as_str()), (200, Some("admin")), "{me}");
    assert!(me["tenant"].is_null(), "{me}");
    let (_, me) = t.get(&acme, "/me").await;
    assert_eq!(me, json!({"role": "tenant", "tenant": "acme"}));
    let (status, body) = t.call(None, reqwest::Method::GET, "/me", None).await;
    assert_error(status, &body, 401, "unauthorized");

    // GET /stats/throughput: two completed runs and one failed, counted in this minute (or the
    // one before, when the minute turned meanwhile), for acme and the admin, not for globex.
    let (bytes, _) = compiled(UPLOADED, "AlwaysFails");
    let (status, body) = t.upload_as(&acme, bytes, "application/wasm").await;
    assert_eq!(status, 201, "{body}");
    let mut runs = vec![];
    for job in [
        "CleanupExpiredSessions",
        "CleanupExpiredSessions",
        "AlwaysFails",
    ] {
        let (status, run) = t.post(&acme, &format!("/jobs/{job}/run"), None).await;
        assert_eq!(status, 202, "{run}");
        runs.push(run["execution_id"].as_str().unwrap().to_string());
    }
    let mut statuses = vec![];
    for id in &runs {
        statuses.push(t.wait_final(&acme, id).await["status"].clone());
    }
    assert_eq!(
        statuses,
        [json!("completed"), json!("completed"), json!("failed")]
    );
    let totals = |stats: &Value| -> (u64, u64, u64) {
        let data = stats["data"].as_array().unwrap();
        let sum = |k: &str| data.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
        (sum("completed"), sum("failed"), sum("cancelled"))
    };
    let (status, stats) = t.get(&acme, "/stats/throughput").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["bucket_seconds"], 60);
    let data = stats["data"].as_array().unwrap();
    assert_eq!(data.len(), 60);
    let minute = |b: &Value| DateTime::parse_from_rfc3339(b["at"].as_str().unwrap()).unwrap();
    let last = minute(&data[59]);
    assert_eq!((last.second(), last.nanosecond()), (0, 0));
    assert!(Utc::now().signed_duration_since(last) < chrono::Duration::seconds(61));
    assert_eq!(last - minute(&data[0]), chrono::Duration::minutes(59));
    assert_eq!(totals(&stats), (2, 1, 0), "{stats}");
    let busy: u64 = data[58..]
        .iter()
        .map(|b| b["completed"].as_u64().unwrap() + b["failed"].as_u64().unwrap())
        .sum();
    assert_eq!(busy, 3, "the runs are in the last minutes: {stats}");
    let (_, stats) = t.get(ADMIN, "/stats/throughput?minutes=5").await;
    assert_eq!(stats["data"].as_array().unwrap().len(), 5);
    assert_eq!(totals(&stats), (2, 1, 0), "{stats}");
    let (_, stats) = t.get(&globex, "/stats/throughput").await;
    assert_eq!(totals(&stats), (0, 0, 0), "{stats}");
    let (status, body) = t.get(ADMIN, "/stats/throughput?minutes=0").await;
    assert_error(status, &body, 400, "invalid_query");

    // GET /schedule/preview: 07:00 on weekdays in Los Angeles.
    let (status, p) = t
        .get(
            &acme,
            "/schedule/preview?cron_expression=0%207%20*%20*%201-5&timezone=America/Los_Angeles&count=7",
        )
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["valid"], true);
    assert!(p["description"].as_str().unwrap().contains("07:00"), "{p}");
    let next = p["next"].as_array().unwrap();
    assert_eq!(next.len(), 7);
    let mut previous = Utc::now();
    for f in next {
        let at = DateTime::parse_from_rfc3339(f["at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc);
        assert!(at > previous, "{p}");
        previous = at;
        let local = at.with_timezone(&chrono_tz::America::Los_Angeles);
        assert_eq!((local.hour(), local.minute()), (7, 0), "{p}");
        use chrono::Datelike;
        assert!(local.weekday().number_from_monday() <= 5, "{p}");
        assert_eq!(
            DateTime::parse_from_rfc3339(f["local"].as_str().unwrap()).unwrap(),
            local.fixed_offset()
        );
    }
    // What is being typed is often not valid yet: said in the answer, not as an HTTP error.
    for (query, reason) in [
        ("cron_expression=61%20*%20*%20*%20*", "minute"),
        ("cron_expression=0%207%20*%20*&timezone=UTC", ""),
        (
            "cron_expression=0%207%20*%20*%20*&timezone=Mars/Olympus",
            "IANA",
        ),
    ] {
        let (status, p) = t.get(&acme, &format!("/schedule/preview?{query}")).await;
        assert_eq!(status, 200, "{p}");
        assert_eq!(p["valid"], false, "{p}");
        assert!(p["next"].as_array().unwrap().is_empty(), "{p}");
        assert!(p["error"].as_str().unwrap().contains(reason), "{p}");
    }
    let (status, body) = t
        .get(
            &acme,
            "/schedule/preview?cron_expression=*%20*%20*%20*%20*&count=51",
        )
        .await;
    assert_error(status, &body, 400, "invalid_query");
    let (status, body) = t.get(&acme, "/schedule/preview").await;
    assert_error(status, &body, 400, "invalid_query");
    t.stop().await;
}

mod dashboard {
    use super::*;

    on_both_databases!(the_dashboard_is_served_and_its_endpoints_answer_for_the_caller);
}
