//! Jobs that run on events (`trigger: on(E)`): each event of a tenant sets off one run of each
//! of its jobs waiting for it, with the event's data as the input and the event's id on the
//! execution; another tenant's jobs never see it; a dispatch repeated after a crash makes no
//! second run; a chain of triggers across files stops at the runtime bound. On SQLite and
//! PostgreSQL.

#[macro_use]
mod common;

use codeai_host::background::triggers::{self, MAX_DEPTH};
use codeai_host::store::{tenants, Database};
use common::test_host::{token_of, TestHost, ADMIN};
use common::{count, run_postgres, run_sqlite};
use serde_json::json;
use std::time::{Duration, Instant};

const SHOP: &str = r#"
event OrderPlaced { order: string, total: int }

job PlaceOrder {
    description: "Emits an order"
    steps {
        place { emit: OrderPlaced { order: "A-1", total: 42 } }
    }
}

job ConfirmOrder {
    description: "Runs once per order placed"
    trigger: on(OrderPlaced)
    // The event's data is the input: typed, it is checked (an int total fits a float).
    input: { order: string, total: float }
    steps {
        confirm { log: "confirming {{input.order}} of {{input.total}}" }
    }
}
"#;

/// Ping and Pong in two files: the compiler sees no cycle, the host bounds it.
const PING: &str = r#"
event Ping { n: int }
event Pong { n: int }

job PingJob {
    trigger: on(Pong)
    steps {
        ping { emit: Ping { n: 1 } }
    }
}
"#;

const PONG: &str = r#"
event Ping { n: int }
event Pong { n: int }

job PongJob {
    trigger: on(Ping)
    steps {
        pong { emit: Pong { n: 2 } }
    }
}
"#;

/// One job emits as many events as it is given items; a job of the same file runs on each.
const FLOOD: &str = r#"
event Ping { n: int }

job Flood {
    input: { xs: [] }
    steps {
        each {
            for_each: xs
            emit: Ping { n: item }
        }
    }
}
"#;

/// Waits until every event is dispatched and no execution is pending or running.
async fn settled(db: &Database) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // One statement, one snapshot: counted apart, a run could emit its event after the
        // events were counted and end before the runs were.
        let unsettled = count(
            db,
            "SELECT (SELECT COUNT(*) FROM events WHERE dispatched_at IS NULL) + \
             (SELECT COUNT(*) FROM job_executions \
              WHERE status IN ('pending', 'running', 'retrying'))",
            &[],
        )
        .await;
        if unsettled == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{unsettled} events undispatched and runs open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn an_event_runs_the_jobs_waiting_for_it_once(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    tenants::create_tenant(&db, "acme", None, None, None)
        .await
        .unwrap();
    let acme = token_of(&db, "acme").await;
    host.register_source("default", "shop.codeai", SHOP).await;
    host.register_source("acme", "shop.codeai", SHOP).await;

    // Two orders placed by the default tenant.
    host.run_completed(ADMIN, "PlaceOrder", json!({})).await;
    host.run_completed(ADMIN, "PlaceOrder", json!({})).await;
    settled(&db).await;

    let (_, events) = host.get(ADMIN, "/events?type=OrderPlaced").await;
    let mut event_ids: Vec<String> = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["tenant"] == "default")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    event_ids.sort();
    assert_eq!(event_ids.len(), 2, "{events}");

    // One run per event, with the event's data as its input and its id.
    let runs = host.executions_of(ADMIN, "ConfirmOrder", "").await;
    let mut set_off: Vec<String> = runs
        .iter()
        .map(|r| r["event_id"].as_str().unwrap_or_default().to_string())
        .collect();
    set_off.sort();
    assert_eq!(set_off, event_ids, "{runs:?}");
    for run in &runs {
        assert_eq!(run["trigger"], "event", "{run}");
        assert_eq!(run["status"], "completed", "{run}");
        let (_, detail) = host
            .get(
                ADMIN,
                &format!("/executions/{}", run["id"].as_str().unwrap()),
            )
            .await;
        assert_eq!(
            detail["input"],
            json!({ "order": "A-1", "total": 42 }),
            "{detail}"
        );
        assert_eq!(
            detail["log"][0]["message"], "confirming A-1 of 42",
            "{detail}"
        );
    }
    // The other tenant's identical job saw none of them.
    assert!(host
        .executions_of(&acme, "ConfirmOrder", "")
        .await
        .is_empty());

    // Dispatching an event again (as after a crash before it was marked) runs nothing twice.
    common::exec_sql(&db, "UPDATE events SET dispatched_at = NULL").await;
    let state = host.host().api.clone();
    let dispatched = triggers::dispatch(&state).await.unwrap();
    assert!(dispatched >= 2, "{dispatched}");
    settled(&db).await;
    assert_eq!(host.executions_of(ADMIN, "ConfirmOrder", "").await.len(), 2);
    host.stop().await;
}

async fn a_chain_of_triggers_across_files_stops_at_the_bound(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "ping.codeai", PING).await;
    host.register_source("default", "pong.codeai", PONG).await;

    // A run by hand starts the chain: Ping, Pong, Ping, … until an event is MAX_DEPTH runs deep.
    host.run_completed(ADMIN, "PingJob", json!({})).await;
    settled(&db).await;
    let events = count(&db, "SELECT COUNT(*) FROM events", &[]).await;
    let runs = count(&db, "SELECT COUNT(*) FROM job_executions", &[]).await;
    let triggered = count(
        &db,
        "SELECT COUNT(*) FROM job_executions WHERE trigger = 'event'",
        &[],
    )
    .await;
    let rows = common::column::<String>(
        &db,
        "SELECT name || ' depth ' || CAST(depth AS TEXT) || ' from ' || COALESCE(execution_id, '-') \
         FROM events ORDER BY created_at",
        &[],
    )
    .await;
    let execs = common::column::<String>(
        &db,
        "SELECT job_name || ' ' || CAST(id AS TEXT) || ' ' || trigger || ' ' || status || ' ' || \
         COALESCE(event_id, '-') FROM job_executions ORDER BY created_at",
        &[],
    )
    .await;
    assert_eq!(
        triggered, MAX_DEPTH,
        "{runs} runs, {events} events: {rows:#?} {execs:#?}"
    );
    assert_eq!(runs, MAX_DEPTH + 1);
    assert_eq!(events, MAX_DEPTH + 1, "each run emitted one event");
    let deepest = count(&db, "SELECT MAX(depth) FROM events", &[]).await;
    assert_eq!(deepest, MAX_DEPTH);
    host.stop().await;
}

/// A hostile tenant's fan-out: one execution emits at most 100 events (the 101st fails the job),
/// and a tenant with 100 executions open gets no triggered run until some end, while another
/// tenant's events go on.
async fn fan_out_is_bounded_per_execution_and_held_back_per_tenant(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    tenants::create_tenant(&db, "acme", None, None, None)
        .await
        .unwrap();
    let acme = token_of(&db, "acme").await;
    host.register_source("acme", "flood.codeai", FLOOD).await;
    host.register_source("acme", "shop.codeai", SHOP).await;
    host.register_source("default", "shop.codeai", SHOP).await;

    // 101 events asked of one execution: 100 are stored, the job fails at the next.
    let xs: Vec<i64> = (0..101).collect();
    let (status, run) = host
        .post(
            &acme,
            "/jobs/Flood/run",
            Some(json!({ "input": { "xs": xs } })),
        )
        .await;
    assert_eq!(status, 202, "{run}");
    let done = host.wait_final(&acme, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"]
            .as_str()
            .is_some_and(|e| e.contains("at most 100 events per execution")),
        "{done}"
    );
    let pings = count(&db, "SELECT COUNT(*) FROM events WHERE name = 'Ping'", &[]).await;
    assert_eq!(pings, 100);

    // acme holds 100 executions open (runs delayed by an hour).
    for _ in 0..triggers::MAX_OPEN_PER_TENANT {
        let (status, run) = host
            .post(
                &acme,
                "/jobs/PlaceOrder/run",
                Some(json!({ "delay": "1h" })),
            )
            .await;
        assert_eq!(status, 202, "{run}");
    }
    // An order placed by each tenant: the default tenant's sets off its run, acme's waits.
    host.run_completed(&acme, "PlaceOrder", json!({})).await;
    host.run_completed(ADMIN, "PlaceOrder", json!({})).await;
    let state = host.host().api.clone();
    for _ in 0..10 {
        triggers::dispatch(&state).await.unwrap();
    }
    let waiting = "SELECT COUNT(*) FROM events WHERE name = 'OrderPlaced' AND tenant_id = ? \
                   AND dispatched_at IS NULL";
    assert_eq!(count(&db, waiting, &["default"]).await, 0);
    assert_eq!(count(&db, waiting, &["acme"]).await, 1);
    let deadline = Instant::now() + Duration::from_secs(120);
    while host
        .executions_of(ADMIN, "ConfirmOrder", "")
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "the default tenant's order set nothing off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(host
        .executions_of(&acme, "ConfirmOrder", "")
        .await
        .is_empty());

    // Once acme's delayed runs are cancelled, its order sets off its run.
    let (status, cancelled) = host
        .post(
            &acme,
            "/executions/cancel",
            Some(json!({ "job": "PlaceOrder", "status": "pending", "limit": 500 })),
        )
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(
        cancelled["done"].as_array().unwrap().len(),
        100,
        "{cancelled}"
    );
    // Each round takes a few of a tenant's events (the Pings nobody waits for come first).
    for round in 0.. {
        if count(&db, waiting, &["acme"]).await == 0 {
            break;
        }
        assert!(round < 20, "acme's order is still waiting");
        triggers::dispatch(&state).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let runs = host.executions_of(&acme, "ConfirmOrder", "").await;
        if runs.iter().any(|r| r["status"] == "completed") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acme's order set nothing off: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    host.stop().await;
}

on_both_databases!(
    an_event_runs_the_jobs_waiting_for_it_once,
    a_chain_of_triggers_across_files_stops_at_the_bound,
    fan_out_is_bounded_per_execution_and_held_back_per_tenant,
);
