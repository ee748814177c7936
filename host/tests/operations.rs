//! Operating on many executions and on a job's schedule through the API: executions searched
//! by job, status, time range and error text; bulk retry and cancel by filter, bounded and
//! within the caller's tenant; a schedule replaced by an interval or a one-time run, which the
//! scheduler keeps across a restart; on SQLite and PostgreSQL.

#[macro_use]
mod common;

use chrono::{DateTime, SubsecRound, Utc};
use codeai_host::queue::{Queue, QueueConfig};
use codeai_host::scheduler::{MisfirePolicy, Scheduler};
use codeai_host::store::{tenants, Database};
use codeai_ir::Schedule;
use common::test_host::{each, token_of, TestHost, ADMIN};
use common::{run_postgres, run_sqlite, time};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SOURCE: &str = r#"
integration Nowhere {
    base_url: env("OPS_NOWHERE_URL")
    timeout: 5s

    ping: GET "/ping" { q: string }
}

job Broken {
    description: "Calls an integration whose URL is not set: fails"
    retry: 0 times
    steps {
        call_it {
            call: Nowhere.ping { q: "x" }
            as: answer
        }
    }
}

job Fine {
    description: "Does nothing"
    steps {
        note { log: "fine" }
    }
}

job Daily {
    description: "Runs at six"
    schedule: "0 6 * * *"
    steps {
        note { log: "daily" }
    }
}
"#;

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The ids of a listing's executions, sorted.
fn ids(listing: &Value) -> Vec<String> {
    let mut ids: Vec<String> = each(&listing["data"], "id")
        .into_iter()
        .map(str::to_string)
        .collect();
    ids.sort();
    ids
}

/// `GET path` with `token`, which must answer 200.
async fn get_ok(host: &TestHost, token: &str, path: &str) -> Value {
    let (status, body) = host.get(token, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Runs `job` `n` times with `token`, each to its end; their ids, sorted.
async fn runs(host: &TestHost, token: &str, job: &str, n: usize, expected: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let done = host.run(token, job, json!({})).await;
        assert_eq!(done["status"], expected, "{job}: {done}");
        ids.push(done["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    ids
}

/// `POST /executions/{action}` with `body` and `token`, which must answer 200: the outcome and
/// the ids it acted on, sorted.
async fn bulk(host: &TestHost, token: &str, action: &str, body: Value) -> (Value, Vec<String>) {
    let path = format!("/executions/{action}");
    let (status, outcome) = host.post(token, &path, Some(body)).await;
    assert_eq!(status, 200, "{outcome}");
    let mut done: Vec<String> = each(&outcome["done"], "id")
        .into_iter()
        .map(str::to_string)
        .collect();
    done.sort();
    (outcome, done)
}

/// `POST /executions/{action}` with `body`, which must be refused 400 `invalid_filter`.
async fn bulk_refused(host: &TestHost, action: &str, body: Value) {
    let path = format!("/executions/{action}");
    let (status, answer) = host.post(ADMIN, &path, Some(body.clone())).await;
    let code = &answer["error"]["code"];
    assert_eq!(
        (status, code.as_str()),
        (400, Some("invalid_filter")),
        "{body}: {answer}"
    );
}

async fn job_id(host: &TestHost, token: &str, name: &str) -> String {
    get_ok(host, token, &format!("/jobs/{name}")).await["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn executions_are_searched_and_retried_by_filter(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "ops.codeai", SOURCE).await;
    tenants::create_tenant(&db, "acme", None, None, None)
        .await
        .unwrap();
    let acme = token_of(&db, "acme").await;
    host.register_source("acme", "ops.codeai", SOURCE).await;

    let t0 = Utc::now();
    let broken = runs(&host, ADMIN, "Broken", 3, "failed").await;
    let fine = runs(&host, ADMIN, "Fine", 2, "completed").await;
    let acme_broken = runs(&host, &acme, "Broken", 1, "failed").await;
    let t1 = Utc::now();
    let broken_id = job_id(&host, ADMIN, "Broken").await;

    // Search: by status across jobs and tenants for the admin, the tenant's own for a tenant.
    let failed = get_ok(&host, ADMIN, "/executions?status=failed").await;
    let mut all_failed = [broken.clone(), acme_broken.clone()].concat();
    all_failed.sort();
    assert_eq!(ids(&failed), all_failed);
    assert_eq!(
        ids(&get_ok(&host, &acme, "/executions?status=failed,completed").await),
        acme_broken
    );
    assert_eq!(
        ids(&get_ok(&host, ADMIN, "/executions?status=completed").await),
        fine
    );
    // By job and by error text, in any case, wildcards matching themselves.
    let error = failed["data"][0]["error"].as_str().unwrap().to_string();
    let word = error
        .split_whitespace()
        .find(|w| w.len() > 4 && w.chars().all(char::is_alphabetic))
        .unwrap_or_else(|| panic!("no word in {error}"))
        .to_uppercase();
    let by_error = get_ok(
        &host,
        ADMIN,
        &format!("/executions?job={broken_id}&error={word}"),
    )
    .await;
    assert_eq!(ids(&by_error), broken, "{word} in {error}");
    assert!(ids(&get_ok(&host, ADMIN, "/executions?error=%25%25").await).is_empty());
    // By time range.
    let window = |since: DateTime<Utc>, until: DateTime<Utc>| {
        format!(
            "/executions?since={}&until={}",
            urlencoding(&rfc3339(since)),
            urlencoding(&rfc3339(until))
        )
    };
    assert_eq!(
        ids(&get_ok(&host, ADMIN, &window(t0, t1)).await).len(),
        6,
        "all six ran in the window"
    );
    assert!(ids(&get_ok(&host, ADMIN, &window(t1, Utc::now())).await).is_empty());
    // A paged search.
    let first = get_ok(&host, ADMIN, "/executions?status=failed&limit=3").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 3);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = get_ok(
        &host,
        ADMIN,
        &format!("/executions?status=failed&limit=3&cursor={cursor}"),
    )
    .await;
    let mut both = [ids(&first), ids(&second)].concat();
    both.sort();
    assert_eq!(both, all_failed);
    // Bad filters are refused with the reason.
    for (path, code) in [
        ("/executions?status=broken", "invalid_filter"),
        ("/executions?since=yesterday", "invalid_filter"),
        ("/executions?job=NoSuchJob", "not_found"),
    ] {
        let (status, body) = host.get(ADMIN, path).await;
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(status == 400 || status == 404, "{path}: {status}");
    }

    // Bulk retry, bounded: two of the admin's three, newest first; more remain.
    let (outcome, retried) = bulk(
        &host,
        ADMIN,
        "retry",
        json!({ "job": broken_id, "limit": 2 }),
    )
    .await;
    assert_eq!(outcome["matched"], 2, "{outcome}");
    assert_eq!(outcome["more"], true, "{outcome}");
    assert_eq!(retried.len(), 2, "{outcome}");
    for id in &retried {
        assert!(broken.contains(id), "{id} is not one of {broken:?}");
        let done = host.wait_final(ADMIN, id).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert!(time(&done["started_at"]) > t1, "it ran again: {done}");
    }
    // The third, not taken, did not.
    let rest = broken.iter().find(|id| !retried.contains(id)).unwrap();
    let untouched = get_ok(&host, ADMIN, &format!("/executions/{rest}")).await;
    assert!(time(&untouched["started_at"]) < t1, "{untouched}");
    // A tenant's bulk retry takes its own executions only.
    let (outcome, theirs) = bulk(&host, &acme, "retry", json!({})).await;
    assert_eq!(theirs, acme_broken, "{outcome}");
    assert_eq!(outcome["more"], false, "{outcome}");
    host.wait_final(&acme, &acme_broken[0]).await;
    // Completed executions are not retried, nor does a bulk action take a cursor.
    bulk_refused(&host, "retry", json!({ "status": "completed" })).await;
    bulk_refused(&host, "retry", json!({ "cursor": "abc" })).await;
    let (status, body) = host
        .post(ADMIN, "/executions/retry", Some(json!({ "jobs": "x" })))
        .await;
    assert_eq!(status, 422, "unknown fields are refused: {body}");
    host.stop().await;
}

async fn pending_executions_are_cancelled_by_filter(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "ops.codeai", SOURCE).await;
    let mut later = Vec::new();
    for _ in 0..3 {
        let (status, run) = host
            .post(ADMIN, "/jobs/Fine/run", Some(json!({ "delay": "1h" })))
            .await;
        assert_eq!(status, 202, "{run}");
        later.push(run["id"].as_str().unwrap().to_string());
    }
    later.sort();
    let now = runs(&host, ADMIN, "Fine", 1, "completed").await;

    let (outcome, cancelled) = bulk(&host, ADMIN, "cancel", json!({ "job": "Fine" })).await;
    assert_eq!(outcome["matched"], 3, "{outcome}");
    assert_eq!(cancelled, later, "{outcome}");
    for id in &later {
        let exec = get_ok(&host, ADMIN, &format!("/executions/{id}")).await;
        assert_eq!(exec["status"], "cancelled", "{exec}");
    }
    let completed = get_ok(&host, ADMIN, &format!("/executions/{}", now[0])).await;
    assert_eq!(completed["status"], "completed");
    // Nothing is left to cancel; nor does cancel apply to finished executions.
    let (again, _) = bulk(&host, ADMIN, "cancel", json!({ "job": "Fine" })).await;
    assert_eq!(again["matched"], 0, "{again}");
    bulk_refused(&host, "cancel", json!({ "status": "failed" })).await;
    // The queue holds none of them any more.
    assert_eq!(host.scheduled_tasks().await, 0);
    host.stop().await;
}

async fn a_schedule_becomes_an_interval_or_one_run_and_survives_a_restart(db: Database) {
    let host = TestHost::start(db.clone(), |_| {}).await;
    host.register_source("default", "ops.codeai", SOURCE).await;
    let id = job_id(&host, ADMIN, "Daily").await;
    // Another process's scheduler, which loaded the jobs before the change.
    let queue = Arc::new(Queue::open(db.clone(), QueueConfig::default(), None));
    let other = Scheduler::new(db.clone(), queue.clone(), MisfirePolicy::RunOnce);
    other.reload(Utc::now()).await.unwrap();
    let cron = Schedule::Cron {
        expression: "0 6 * * *".into(),
    };
    assert_eq!(other.job(&id).expect("loaded").manifest.schedule, cron);

    let asked = Utc::now();
    let (status, job) = host
        .put(ADMIN, "/jobs/Daily/schedule", json!({ "every": "10m" }))
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["schedule"]["kind"], "every", "{job}");
    assert_eq!(job["schedule"]["every_ms"], 600_000, "{job}");
    assert_eq!(job["cron_expression"], Value::Null, "{job}");
    let next = time(&job["next_run_at"]);
    assert!(
        next > asked && next <= Utc::now() + chrono::Duration::minutes(10),
        "{job}"
    );

    // That scheduler picks the interval up at its next reload, and one that loads the jobs
    // afresh (a restarted host) fires on it too, not on the manifest's cron.
    let every = Schedule::Interval { every_ms: 600_000 };
    other.reload(Utc::now()).await.unwrap();
    assert_eq!(other.job(&id).unwrap().manifest.schedule, every);
    let fresh = Scheduler::new(db.clone(), queue, MisfirePolicy::RunOnce);
    fresh.reload(Utc::now()).await.unwrap();
    let loaded = fresh.job(&id).unwrap();
    assert_eq!(loaded.manifest.schedule, every);
    assert_eq!(loaded.next_run_at, Some(next));

    // One run at an instant.
    let at = (Utc::now() + chrono::Duration::days(2)).trunc_subsecs(6);
    let (status, job) = host
        .put(
            ADMIN,
            "/jobs/Daily/schedule",
            json!({ "run_at": rfc3339(at) }),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["schedule"]["kind"], "once", "{job}");
    assert_eq!(time(&job["next_run_at"]), at, "{job}");
    assert_eq!(time(&job["schedule"]["run_at"]), at, "{job}");

    // Refused, with the reason, and nothing changed.
    let past = rfc3339(Utc::now() - chrono::Duration::minutes(1));
    for body in [
        json!({}),
        json!({ "every": "500ms" }),
        json!({ "every": "soon" }),
        json!({ "every": "10m", "cron_expression": "0 7 * * *" }),
        json!({ "run_at": past }),
        json!({ "run_at": "tomorrow" }),
        json!({ "cron_expression": "0 25 * * *" }),
        json!({ "every": "1h", "timezone": "Mars/Olympus" }),
    ] {
        let (status, answer) = host.put(ADMIN, "/jobs/Daily/schedule", body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(
            answer["error"]["code"], "invalid_schedule",
            "{body}: {answer}"
        );
    }
    let unchanged = get_ok(&host, ADMIN, "/jobs/Daily").await;
    assert_eq!(unchanged["schedule"]["kind"], "once", "{unchanged}");

    // Cron again, in a timezone.
    let (status, job) = host
        .put(
            ADMIN,
            "/jobs/Daily/schedule",
            json!({ "cron_expression": "0 7 * * *", "timezone": "America/Los_Angeles" }),
        )
        .await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["schedule"]["kind"], "cron", "{job}");
    assert_eq!(job["cron_expression"], "0 7 * * *", "{job}");
    assert_eq!(job["timezone"], "America/Los_Angeles", "{job}");

    // An interval of a second: the scheduler fires it.
    let (status, job) = host
        .put(ADMIN, "/jobs/Daily/schedule", json!({ "every": "1s" }))
        .await;
    assert_eq!(status, 200, "{job}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = get_ok(&host, ADMIN, "/jobs/Daily/executions?status=completed").await;
        let data = runs["data"].as_array().unwrap();
        if let Some(run) = data.first() {
            assert_eq!(run["trigger"], "schedule", "{run}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fire of the 1s interval"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    host.stop().await;
}

/// Percent-encodes the characters of an RFC 3339 instant a query string needs encoded.
fn urlencoding(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// A schedule the API gave a job holds when a new version of it brings the schedule the
/// version before it brought (an edit of its steps, or of another job of the file, which does not
/// even make a new version of it); a new version that changes the schedule in the source wins.
async fn an_api_schedule_holds_across_new_versions_that_bring_the_same_schedule(db: Database) {
    let host = TestHost::start(db, |_| {}).await;
    host.register_source("default", "ops.codeai", SOURCE).await;
    let id = job_id(&host, ADMIN, "Daily").await;
    let (status, job) = host
        .put(ADMIN, "/jobs/Daily/schedule", json!({ "every": "10m" }))
        .await;
    assert_eq!(status, 200, "{job}");
    let every = Schedule::Interval { every_ms: 600_000 };
    let fires_on = || {
        host.host()
            .scheduler
            .job(&id)
            .unwrap()
            .manifest
            .schedule
            .clone()
    };

    // Daily's steps change: a new version, the same schedule in the source.
    let edited = SOURCE.replace(r#"log: "daily""#, r#"log: "daily, edited""#);
    host.register_source("default", "ops.codeai", &edited).await;
    let daily = get_ok(&host, ADMIN, "/jobs/Daily").await;
    assert_eq!(daily["version"], 2, "{daily}");
    assert_eq!(daily["schedule"]["kind"], "every", "{daily}");
    assert_eq!(fires_on(), every);
    // The other jobs of the file were not touched: no new version.
    let fine = get_ok(&host, ADMIN, "/jobs/Fine").await;
    assert_eq!(fine["version"], 1, "{fine}");

    // The source changes the schedule: the new one wins.
    let moved = edited.replace(r#"schedule: "0 6 * * *""#, r#"schedule: "0 8 * * *""#);
    host.register_source("default", "ops.codeai", &moved).await;
    let daily = get_ok(&host, ADMIN, "/jobs/Daily").await;
    assert_eq!(daily["version"], 3, "{daily}");
    assert_eq!(daily["cron_expression"], "0 8 * * *", "{daily}");
    let eight = Schedule::Cron {
        expression: "0 8 * * *".into(),
    };
    assert_eq!(fires_on(), eight);
    host.stop().await;
}

on_both_databases!(
    executions_are_searched_and_retried_by_filter,
    pending_executions_are_cancelled_by_filter,
    a_schedule_becomes_an_interval_or_one_run_and_survives_a_restart,
    an_api_schedule_holds_across_new_versions_that_bring_the_same_schedule,
);
