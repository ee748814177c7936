//! `POST /jobs/{id}/run` beyond "now": `delay` and `run_at` start a run later (never before its
//! time), and an `Idempotency-Key` makes a retried request — or many at once — answer the first
//! request's execution and run the job once; on SQLite and PostgreSQL.

#[macro_use]
mod common;

use chrono::{DateTime, Utc};
use codeai_host::store::idempotency::{self, Claim, FirstUse};
use codeai_host::store::{tenants, Database};
use common::test_host::{token_of, TestHost, ADMIN};
use common::{run_postgres, run_sqlite, runs_of, time};
use serde_json::{json, Value};

const SOURCE: &str = r#"
job Noop {
    description: "Does nothing"
    steps {
        note { log: "ran" }
    }
}

job Other {
    description: "Does nothing either"
    steps {
        note { log: "ran too" }
    }
}
"#;

/// POST /jobs/{job}/run with `body` and an optional key: (status, replayed header, body).
async fn run(
    host: &TestHost,
    token: &str,
    job: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, bool, Value) {
    let mut req = host
        .http
        .post(format!("{}/jobs/{job}/run", host.base))
        .bearer_auth(token)
        .json(&body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let replayed = res
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    (status, replayed, res.json().await.unwrap_or(Value::Null))
}

async fn delayed_runs_start_not_before_their_time(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "run.codeai", SOURCE).await;

    // Two seconds later: pending until then, started after.
    let asked = Utc::now();
    let (status, _, answer) = run(&host, ADMIN, "Noop", json!({ "delay": "2s" }), None).await;
    assert_eq!(status, 202, "{answer}");
    let scheduled = time(&answer["scheduled_at"]);
    assert!(
        scheduled >= asked + chrono::Duration::seconds(2),
        "{answer}"
    );
    let id = answer["id"].as_str().unwrap().to_string();
    let (_, pending) = host.get(ADMIN, &format!("/executions/{id}")).await;
    assert_eq!(pending["status"], "pending", "{pending}");
    assert_eq!(time(&pending["scheduled_at"]), scheduled, "{pending}");
    let done = host.wait_final(ADMIN, &id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert!(time(&done["started_at"]) >= scheduled, "{done}");

    // An hour from now: still pending, with that time; one in the past runs now.
    let later = (Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (status, _, answer) = run(&host, ADMIN, "Noop", json!({ "run_at": later }), None).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(time(&answer["scheduled_at"]), time(&json!(later)));
    assert!(host.scheduled_tasks().await >= 1);
    let (status, _, answer) = run(
        &host,
        ADMIN,
        "Noop",
        json!({ "run_at": "2020-01-01T00:00:00Z", "input": {"a": 1} }),
        None,
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let done = host.wait_final(ADMIN, answer["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["input"], json!({"a": 1}));

    // Refused: both, a bad delay, too far ahead.
    for body in [
        json!({ "delay": 5, "run_at": later }),
        json!({ "delay": "soon" }),
        json!({ "delay": "400d" }),
        json!({ "run_at": "tomorrow" }),
    ] {
        let (status, _, answer) = run(&host, ADMIN, "Noop", body.clone(), None).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_body", "{answer}");
    }
    host.stop().await;
}

async fn an_idempotency_key_runs_the_job_once(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "run.codeai", SOURCE).await;

    // A retried request answers the first execution and runs nothing more.
    let (status, replayed, first) = run(&host, ADMIN, "Noop", json!({}), Some("order-1")).await;
    assert_eq!((status, replayed), (202, false), "{first}");
    host.wait_final(ADMIN, first["id"].as_str().unwrap()).await;
    let (status, replayed, again) = run(&host, ADMIN, "Noop", json!({}), Some("order-1")).await;
    assert_eq!((status, replayed), (202, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(runs_of(&db, "Noop").await, 1);

    // Many at once with one key: one execution, every answer names it.
    let answers = futures_util::future::join_all(
        (0..8).map(|_| run(&host, ADMIN, "Noop", json!({}), Some("order-2"))),
    )
    .await;
    let ids: Vec<&Value> = answers.iter().map(|(_, _, a)| &a["id"]).collect();
    assert!(answers.iter().all(|(s, _, _)| *s == 202), "{answers:?}");
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        answers.iter().filter(|(_, r, _)| !r).count(),
        1,
        "{answers:?}"
    );
    host.wait_final(ADMIN, ids[0].as_str().unwrap()).await;
    assert_eq!(runs_of(&db, "Noop").await, 2);

    // Another job with a used key is refused; no key, or another key, runs again.
    let (status, _, refused) = run(&host, ADMIN, "Other", json!({}), Some("order-1")).await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "idempotency_key_reused");
    assert_eq!(runs_of(&db, "Other").await, 0);
    let (_, replayed, fresh) = run(&host, ADMIN, "Noop", json!({}), Some("order-3")).await;
    assert!(!replayed);
    assert_ne!(fresh["id"], first["id"]);
    let (status, _, bad) = run(&host, ADMIN, "Noop", json!({}), Some("with space")).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_idempotency_key");

    // Keys belong to a tenant: another tenant's "order-1" is its own.
    tenants::create_tenant(&db, "acme", None, None, None)
        .await
        .unwrap();
    host.register_source("acme", "run.codeai", SOURCE).await;
    let acme = token_of(&db, "acme").await;
    let (status, replayed, theirs) = run(&host, &acme, "Noop", json!({}), Some("order-1")).await;
    assert_eq!((status, replayed), (202, false), "{theirs}");
    assert_ne!(theirs["id"], first["id"]);
    host.stop().await;
}

async fn a_key_answers_for_24_hours(db: Database) {
    codeai_host::store::migrate::migrate_up(&db).await.unwrap();
    let first = |execution: uuid::Uuid| FirstUse {
        job_id: "job".into(),
        execution_id: execution.to_string(),
        response: format!("{{\"id\":\"{execution}\"}}"),
    };
    let claim = |at: DateTime<Utc>, execution: uuid::Uuid| {
        let db = db.clone();
        async move {
            idempotency::claim(&db, "default", "k", &first(execution), at)
                .await
                .unwrap()
        }
    };
    let e: Vec<uuid::Uuid> = (0..5).map(|_| uuid::Uuid::new_v4()).collect();
    let t0 = Utc::now();
    let hours = |h: i64| t0 + chrono::Duration::hours(h);
    assert_eq!(claim(t0, e[0]).await, Claim::New);
    assert_eq!(claim(hours(23), e[1]).await, Claim::Used(first(e[0])));
    // Past 24 hours the key is free again.
    let later = hours(24) + chrono::Duration::seconds(1);
    assert_eq!(claim(later, e[2]).await, Claim::New);
    assert_eq!(claim(later, e[3]).await, Claim::Used(first(e[2])));
    // Released (its run could not be queued): the next request claims it; releasing with
    // another execution does nothing.
    idempotency::release(&db, "default", "k", e[3])
        .await
        .unwrap();
    assert_eq!(claim(later, e[3]).await, Claim::Used(first(e[2])));
    idempotency::release(&db, "default", "k", e[2])
        .await
        .unwrap();
    assert_eq!(claim(later, e[4]).await, Claim::New);
}

on_both_databases!(
    delayed_runs_start_not_before_their_time,
    an_idempotency_key_runs_the_job_once,
    a_key_answers_for_24_hours,
);
