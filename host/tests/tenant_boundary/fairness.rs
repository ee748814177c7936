//! Fairness between tenants. A queue's weight is the operator's: a tenant's manifest names a
//! queue the operator configured and cannot set or raise a weight. Within a queue tenants take
//! turns: one tenant's flood of runs does not make another tenant's job wait for the flood.

use crate::common::{run_postgres, run_sqlite};
use crate::support::{job, tenant, with_manifest, TestHost, ADMIN};
use chrono::{DateTime, Utc};
use codeai_host::queue::{Queue, QueueConfig};
use codeai_host::store::Database;
use serde_json::{json, Value};
use std::sync::Arc;

on_both_databases!(
    a_tenants_manifest_sets_no_queue_weight,
    a_tenants_job_in_a_queue_the_operator_has_not_configured_is_refused,
    the_operators_own_jobs_declare_queues_within_the_bounds,
    a_flood_of_runs_does_not_make_another_tenants_job_wait_for_it,
);

const CRITICAL: &str =
    "job Urgent {\n  queue: critical\n  steps { one { compute: 1 as: one } }\n}\n";

/// The queues the host serves, as (name, weight).
fn weights(th: &TestHost) -> Vec<(String, u32)> {
    let mut w = th.host().queue.weights();
    w.sort();
    w
}

fn builtin() -> Vec<(String, u32)> {
    vec![
        ("critical".into(), 6),
        ("default".into(), 3),
        ("low".into(), 1),
    ]
}

/// The manifest's queues set to `critical` and a new `flood`, both at the largest weight a
/// manifest can hold.
fn greedy(manifest: &mut Value) {
    manifest["queues"] = json!([
        { "name": "critical", "weight": u32::MAX },
        { "name": "default", "weight": u32::MAX },
        { "name": "flood", "weight": u32::MAX },
    ]);
}

/// A tenant's manifest edited to weigh 4294967295 on `critical` (the queue its job runs in) and
/// on a new queue: the upload is taken (it runs in a configured queue) and every weight stays
/// the operator's; no queue is added, now or when the host reloads its jobs.
async fn a_tenants_manifest_sets_no_queue_weight(db: Database) {
    let th = TestHost::start(db.clone(), |c| {
        // The manifests below are edited after the build: hand-made, which this operator allows.
        c.api.tenant_components = codeai_host::api::TenantComponents::Any
    })
    .await;
    let token = tenant(&db, "greedy").await;
    let bytes = with_manifest(&job(CRITICAL, "Urgent"), greedy);
    let body = th.upload_ok(&token, bytes).await;
    assert_eq!(weights(&th), builtin());
    th.host()
        .scheduler
        .reload(chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(weights(&th), builtin());
    // It runs, in `critical`, with the weight the operator gave it.
    let done = th.run(&token, "Urgent", json!({})).await;
    assert_eq!(
        (&done["status"], &done["queue"]),
        (&json!("completed"), &json!("critical")),
        "{body} {done}"
    );
    th.stop().await;
}

/// A tenant's job whose manifest names a queue the operator has not configured (its manifest
/// declaring it, with any weight) is refused at upload with `unknown_queue` and the queues
/// there are; nothing of it is registered. Registered another way (a tenant's component given
/// to `codeai host run --tenant`), the scheduler refuses it too.
async fn a_tenants_job_in_a_queue_the_operator_has_not_configured_is_refused(db: Database) {
    let th = TestHost::start(db.clone(), |c| {
        // The manifests below are edited after the build: hand-made, which this operator allows.
        c.api.tenant_components = codeai_host::api::TenantComponents::Any
    })
    .await;
    let token = tenant(&db, "greedy").await;
    let bytes = with_manifest(&job(CRITICAL, "Urgent"), |m| {
        greedy(m);
        m["queue"] = json!("flood");
    });
    let (status, body) = th.upload(&token, bytes).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_queue", "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    for name in [
        "`flood`",
        "`critical`",
        "`default`",
        "`low`",
        "CODEAI_QUEUES",
    ] {
        assert!(message.contains(name), "{name} not in: {message}");
    }
    let (status, _) = th.get(&token, "/jobs/Urgent").await;
    assert_eq!(status, 404, "a refused upload registers nothing");
    assert_eq!(weights(&th), builtin());

    let mut manifest: codeai_ir::Manifest =
        serde_json::from_value(crate::support::manifest_of(&job(CRITICAL, "Urgent"))).unwrap();
    manifest.queue = "flood".into();
    manifest.queues.push(codeai_ir::QueueDecl {
        name: "flood".into(),
        weight: u32::MAX,
    });
    let added = th
        .host()
        .scheduler
        .add("urgent-job", "greedy", 1, Arc::new(manifest), Utc::now())
        .await;
    let e = added.expect_err("a tenant's job in an unknown queue is not scheduled");
    assert!(e.to_string().contains("`flood`"), "{e}");
    assert_eq!(weights(&th), builtin());
    th.stop().await;
}

/// The operator's own jobs may declare a queue in their source: it is added with its weight,
/// and a manifest edited past the bounds gets the largest weight (1000), never a configured
/// queue's weight changed. Tenants may then use the queue the operator declared, and worker
/// processes serve it too.
async fn the_operators_own_jobs_declare_queues_within_the_bounds(db: Database) {
    let th = TestHost::start(db.clone(), |_| {}).await;
    let source = "queue reports { weight: 2 }\n\
                  job Monthly {\n  queue: reports\n  steps { one { compute: 1 as: one } }\n}\n";
    th.upload_ok(ADMIN, job(source, "Monthly")).await;
    let mut expected = builtin();
    expected.push(("reports".into(), 2));
    expected.sort();
    assert_eq!(weights(&th), expected);

    let bytes = with_manifest(&job(CRITICAL, "Urgent"), |m| {
        greedy(m);
        m["queue"] = json!("flood");
    });
    th.upload_ok(ADMIN, bytes).await;
    expected.push(("flood".into(), 1000));
    expected.sort();
    assert_eq!(weights(&th), expected);

    let token = tenant(&db, "reader").await;
    th.upload_ok(&token, job(source, "Monthly")).await;
    let done = th.run(&token, "Monthly", json!({})).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        weights(&th),
        expected,
        "a tenant's declaration changes nothing"
    );

    // A worker process (`codeai worker start`) schedules no jobs: it reads the declarations
    // of the operator's stored jobs, the same ones.
    let worker = Queue::new(db.clone(), QueueConfig::default());
    codeai_host::background::queues::declare_operator_queues(&db, &worker)
        .await
        .unwrap();
    let mut seen = worker.weights();
    seen.sort();
    assert_eq!(seen, expected);
    th.stop().await;
}

/// A job that keeps a slot busy for tens of milliseconds (600 steps, each summing and joining a
/// list of 600 numbers), so a flood of its runs builds a backlog in the queue.
fn busy_source() -> String {
    let numbers: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    format!(
        "job Busy {{\n  steps {{\n    nums {{ compute: [{}] as: nums }}\n    \
         spin {{ for_each: nums item: x compute: sum(nums) + len(join(nums, \",\")) + x }}\n  }}\n}}\n",
        numbers.join(", ")
    )
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not an instant: {v}: {e}"))
        .with_timezone(&Utc)
}

/// When each execution of `tenant` started.
async fn starts(db: &Database, tenant: &str) -> Vec<DateTime<Utc>> {
    const SQL: &str = "SELECT started_at FROM job_executions WHERE tenant_id = $1 \
                       AND started_at IS NOT NULL";
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar::<_, String>(SQL)
            .bind(tenant)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|t| instant(&json!(t)))
            .collect(),
        Database::Postgres(pool) => sqlx::query_scalar(SQL)
            .bind(tenant)
            .fetch_all(pool)
            .await
            .unwrap(),
    }
}

/// Tenant A floods `POST /jobs/{id}/run` with a busy job while four worker slots run it; then
/// tenant B runs one job in the same queue. Counted from the executions' `started_at`: how many
/// of A's runs started after B's run was enqueued and before it started. With one line for the
/// whole queue that is A's whole backlog; with turns it is bounded by what the pool had taken
/// already (its slots; nothing is leased ahead of jobs this long, and at most `AHEAD` here) and
/// one task of A's ahead of B in the turn B joined, plus the slots that can start an A task
/// while B's is handed to its slot.
async fn a_flood_of_runs_does_not_make_another_tenants_job_wait_for_it(db: Database) {
    const SLOTS: usize = 4;
    const AHEAD: usize = 4;
    const FLOOD: usize = 120;
    let th = TestHost::start(db.clone(), |c| {
        c.pool.slots = SLOTS;
        c.pool.prefetch = Some(AHEAD);
    })
    .await;
    let a = tenant(&db, "flooder").await;
    let b = tenant(&db, "bystander").await;
    let busy = job(&busy_source(), "Busy");
    th.upload_ok(&a, busy.clone()).await;
    th.upload_ok(&b, busy).await;
    // Each job once first, so neither waits for its component to be prepared below.
    for token in [&a, &b] {
        let done = th.run(token, "Busy", json!({})).await;
        assert_eq!(done["status"], "completed", "{done}");
    }

    for wave in 0..FLOOD / 8 {
        let runs = (0..8).map(|_| th.post(&a, "/jobs/Busy/run", Some(json!({"input": {}}))));
        for (status, body) in futures_util::future::join_all(runs).await {
            assert_eq!(status, 202, "wave {wave}: {body}");
        }
    }
    let (status, run) = th
        .post(&b, "/jobs/Busy/run", Some(json!({"input": {}})))
        .await;
    assert_eq!(status, 202, "{run}");
    let done = th.wait_final(&b, run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let (enqueued, started) = (instant(&done["scheduled_at"]), instant(&done["started_at"]));

    let a_starts = starts(&db, "flooder").await;
    // A's runs enqueued before B's that had not started when B's was enqueued.
    let waiting = a_starts.iter().filter(|t| **t > enqueued).count() + (FLOOD + 1 - a_starts.len());
    let ahead_of_b = a_starts
        .iter()
        .filter(|t| **t > enqueued && **t < started)
        .count();
    eprintln!(
        "fairness: {waiting} of tenant A's runs were waiting when B's was enqueued; \
         {ahead_of_b} of them started before B's"
    );
    assert!(
        waiting >= 40,
        "the flood built no backlog ({waiting} waiting), so this run shows nothing"
    );
    let tenants = 2;
    let bound = 2 * SLOTS + AHEAD + tenants;
    assert!(
        ahead_of_b <= bound,
        "{ahead_of_b} of A's runs started between B's enqueue and B's start (bound {bound})"
    );
    th.stop().await;
}
