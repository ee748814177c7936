//! The scheduler with a controlled clock: the example's ten jobs through a simulated week fire
//! exactly at their expected instants; pausing stops fires and resuming does not replay them;
//! fires missed while the host was down run once; a busy job's fire is skipped with a trace.

#[macro_use]
mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use codeai_host::queue::{Queue, QueueConfig, RedisQueue};
use codeai_host::scheduler::{MisfirePolicy, Scheduler};
use codeai_host::store::{migrate, platform, Database};
use std::collections::BTreeMap;
use std::sync::Arc;

on_every_backend!(
    the_example_jobs_fire_at_their_instants_through_a_week,
    a_paused_job_does_not_fire_and_resumes_without_a_backlog,
    missed_fires_run_once_after_downtime,
    a_fire_while_the_previous_run_is_busy_is_skipped_with_its_reason,
    a_trigger_runs_now_with_its_input_and_a_failed_execution_can_run_again,
    a_fire_is_enqueued_ahead_once_across_a_restart_and_taken_back_by_changes_inside_the_window,
);

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Migrates, registers the example's ten jobs with `start` as "now"; returns the scheduler and
/// job ids by name.
async fn setup(
    db: Database,
    redis: Option<RedisQueue>,
    start: DateTime<Utc>,
    misfire: MisfirePolicy,
) -> (Arc<Queue>, Scheduler, BTreeMap<String, String>) {
    migrate::migrate_up(&db).await.unwrap();
    let queue = Arc::new(Queue::open(db.clone(), QueueConfig::default(), redis));
    let scheduler = Scheduler::new(db.clone(), queue.clone(), misfire);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/05-scheduled-jobs/scheduled-jobs.codeai"
    );
    let source = std::fs::read_to_string(path).unwrap();
    let (artifacts, _) = codeai_dsl::compile("scheduled-jobs.codeai", &source).unwrap();
    let mut ids = BTreeMap::new();
    for a in artifacts {
        let reg = platform::register_job(
            &db,
            "default",
            &a.manifest,
            &a.bytes,
            &format!("{:x}", a.bytes.len()),
        )
        .await
        .unwrap();
        scheduler
            .add(
                &reg.job_id,
                "default",
                reg.version,
                Arc::new(a.manifest.clone()),
                start,
            )
            .await
            .unwrap();
        ids.insert(a.manifest.name.clone(), reg.job_id);
    }
    (queue, scheduler, ids)
}

/// Runs the clock from `start` to `end` (inclusive), ticking at every due instant and finishing
/// every enqueued task at once; returns the fires per job.
async fn simulate(
    queue: &Queue,
    scheduler: &Scheduler,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> BTreeMap<String, Vec<DateTime<Utc>>> {
    let mut fires: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    let mut now = start;
    loop {
        let tick = scheduler.tick(now).await.unwrap();
        for (job, fire, _) in &tick.enqueued {
            assert_eq!(*fire, now, "{job} fired late or early");
            fires.entry(job.clone()).or_default().push(*fire);
        }
        while let Some(t) = queue.dequeue(now).await.unwrap() {
            queue.finish(t.id, "completed", None).await.unwrap();
        }
        match tick.next_due {
            Some(next) if next <= end => now = next,
            _ => break,
        }
    }
    fires
}

async fn the_example_jobs_fire_at_their_instants_through_a_week(
    db: Database,
    redis: Option<RedisQueue>,
) {
    // Sunday 2026-05-31 00:00 UTC to Sunday 2026-06-07 00:00 UTC; New York is on EDT (UTC-4).
    let start = utc("2026-05-31T00:00:00Z");
    let end = utc("2026-06-07T00:00:00Z");
    let (queue, scheduler, _) = setup(db, redis, start, MisfirePolicy::RunOnce).await;
    let fires = simulate(&queue, &scheduler, start, end).await;
    let at = |s: &[&str]| s.iter().map(|t| utc(t)).collect::<Vec<_>>();
    let daily: Vec<DateTime<Utc>> = (0..7)
        .map(|d| utc("2026-05-31T10:00:00Z") + Duration::days(d))
        .collect();
    assert_eq!(
        fires["DailySalesReport"], daily,
        "06:00 in New York, 7 times"
    );
    assert_eq!(
        fires["WeeklyInventoryReport"],
        at(&["2026-06-01T12:00:00Z"]),
        "Monday 08:00 EDT"
    );
    assert_eq!(
        fires["MonthlyBusinessSummary"],
        at(&["2026-06-01T11:00:00Z"]),
        "the 1st, 07:00 EDT"
    );
    assert_eq!(
        fires["DatabaseMaintenance"],
        at(&["2026-05-31T04:00:00Z"]),
        "Sunday 04:00 UTC"
    );
    let utc_daily = |h: u32| {
        (0..7)
            .map(|d| Utc.with_ymd_and_hms(2026, 5, 31, h, 0, 0).unwrap() + Duration::days(d))
            .collect::<Vec<_>>()
    };
    assert_eq!(fires["CleanupJobExecutions"], utc_daily(2));
    assert_eq!(fires["CleanupExpiredReports"], utc_daily(3));
    for (job, every_min, n) in [
        ("ProcessPendingWebhooks", 5, 2016),
        ("SyncExternalInventory", 30, 336),
        ("CleanupExpiredSessions", 60, 168),
        ("LowStockAlert", 240, 42),
    ] {
        let expected: Vec<DateTime<Utc>> = (1..=n)
            .map(|i| start + Duration::minutes(every_min * i))
            .collect();
        assert_eq!(fires[job], expected, "{job} every {every_min} min");
    }
    assert_eq!(fires.len(), 10);
}

async fn a_paused_job_does_not_fire_and_resumes_without_a_backlog(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let start = utc("2026-05-31T00:00:00Z");
    let (queue, scheduler, ids) = setup(db, redis, start, MisfirePolicy::RunOnce).await;
    let hooks = &ids["ProcessPendingWebhooks"];
    assert!(scheduler.pause(hooks, start).await.unwrap());
    let fires = simulate(&queue, &scheduler, start, start + Duration::hours(2)).await;
    assert!(
        !fires.contains_key("ProcessPendingWebhooks"),
        "a paused job fired"
    );
    // Resumed at 02:02: the next fire is 02:05, not the 24 missed ones.
    let resumed = start + Duration::minutes(122);
    assert!(scheduler.resume(hooks, resumed).await.unwrap());
    assert_eq!(
        scheduler.job(hooks).unwrap().next_run_at,
        Some(start + Duration::minutes(125))
    );
    let fires = simulate(&queue, &scheduler, resumed, start + Duration::minutes(135)).await;
    assert_eq!(
        fires["ProcessPendingWebhooks"],
        vec![
            start + Duration::minutes(125),
            start + Duration::minutes(130),
            start + Duration::minutes(135)
        ]
    );
    // A new schedule takes effect from now.
    let daily = &ids["DailySalesReport"];
    let seven = codeai_ir::Schedule::Cron {
        expression: "0 7 * * *".into(),
    };
    let fires = codeai_host::scheduler::fires_of(&seven, "America/Los_Angeles").unwrap();
    let next = scheduler
        .reschedule(daily, &seven, "America/Los_Angeles", fires, resumed)
        .await
        .unwrap();
    assert_eq!(next, Some(utc("2026-05-31T14:00:00Z")), "07:00 PDT");
}

async fn missed_fires_run_once_after_downtime(db: Database, redis: Option<RedisQueue>) {
    let start = utc("2026-05-31T00:00:00Z");
    let (queue, scheduler, _) = setup(db, redis, start, MisfirePolicy::RunOnce).await;
    // The host was down for a day and a half: each job's missed fires run once, now.
    let back = start + Duration::hours(36) + Duration::minutes(2);
    let tick = scheduler.tick(back).await.unwrap();
    let mut per_job: BTreeMap<&str, usize> = BTreeMap::new();
    for (job, fire, _) in &tick.enqueued {
        *per_job.entry(job.as_str()).or_default() += 1;
        assert!(*fire < back);
    }
    assert!(per_job.values().all(|n| *n == 1), "{per_job:?}");
    assert!(
        per_job.contains_key("ProcessPendingWebhooks") && per_job.contains_key("DailySalesReport")
    );
    // Then the schedule continues from now: webhooks next at 12:05.
    while let Some(t) = queue.dequeue(back).await.unwrap() {
        queue.finish(t.id, "completed", None).await.unwrap();
    }
    let tick = scheduler.tick(back).await.unwrap();
    assert!(tick.enqueued.is_empty(), "no backlog storm");
    assert_eq!(
        tick.next_due,
        Some(start + Duration::hours(36) + Duration::minutes(5))
    );
}

async fn a_fire_while_the_previous_run_is_busy_is_skipped_with_its_reason(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let start = utc("2026-05-31T00:00:00Z");
    let (queue, scheduler, ids) = setup(db.clone(), redis, start, MisfirePolicy::RunOnce).await;
    let first = scheduler.tick(start + Duration::minutes(5)).await.unwrap();
    assert!(first
        .enqueued
        .iter()
        .any(|(j, _, _)| j == "ProcessPendingWebhooks"));
    // Nobody runs it: at 00:10 the previous run is still pending.
    let second = scheduler.tick(start + Duration::minutes(10)).await.unwrap();
    assert!(second
        .enqueued
        .iter()
        .all(|(j, _, _)| j != "ProcessPendingWebhooks"));
    let skipped: Vec<_> = second
        .skipped
        .iter()
        .filter(|(j, _, _)| j == "ProcessPendingWebhooks")
        .collect();
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].2.starts_with("overlap"));
    // The skipped fire is an execution with its reason, never dropped without a trace.
    let id = &ids["ProcessPendingWebhooks"];
    let n: i64 = match &db {
        Database::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM job_executions WHERE job_id = ? AND status = 'skipped' AND error LIKE 'overlap%'").bind(id.clone()).fetch_one(pool).await.unwrap(),
        Database::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM job_executions WHERE job_id = $1 AND status = 'skipped' AND error LIKE 'overlap%'").bind(id.clone()).fetch_one(pool).await.unwrap(),
    };
    assert_eq!(n, 1);
    drop(queue);
}

async fn a_trigger_runs_now_with_its_input_and_a_failed_execution_can_run_again(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let start = Utc::now();
    let (queue, scheduler, ids) = setup(db, redis, start, MisfirePolicy::RunOnce).await;
    let daily = &ids["DailySalesReport"];
    let input = r#"{"recipients":["me@example.com"]}"#;
    let run_now = |job: &str, input: &str| scheduler.run_now(job, input, "api", Utc::now());
    let id = queue
        .enqueue(&run_now(daily, input).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(run_now("no-such-job", "{}").is_none());
    let task = queue.dequeue(Utc::now()).await.unwrap().unwrap();
    assert_eq!(
        (task.id, task.input.as_str(), task.trigger.as_str()),
        (id, input, "api")
    );
    assert_eq!(task.max_attempts, 4, "retry: 3 times allows four attempts");
    // It fails for good; a retry runs the same execution again, attempts counted afresh.
    queue.finish(task.id, "failed", Some("boom")).await.unwrap();
    assert!(queue.requeue_dead(id, Utc::now()).await.unwrap());
    assert!(
        !queue.requeue_dead(id, Utc::now()).await.unwrap(),
        "only a dead task is retried"
    );
    let again = queue.dequeue(Utc::now()).await.unwrap().unwrap();
    assert_eq!(
        (again.id, again.attempt, again.trigger.as_str()),
        (id, 1, "retry")
    );
    // A pending task can be cancelled before it starts.
    let other = queue
        .enqueue(&run_now(daily, "{}").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(queue.cancel_pending(other).await.unwrap());
    assert!(queue.dequeue(Utc::now()).await.unwrap().is_none());
}

/// The fires of `job` in the queue, pending or leased, in order of their instant.
async fn fires_queued(queue: &Queue, ids: &[(uuid::Uuid, DateTime<Utc>)]) -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for (id, fire) in ids {
        if let Some(t) = queue.task_info(*id).await.unwrap() {
            if t.state == "pending" || t.state == "active" {
                out.push(*fire);
            }
        }
    }
    out.sort();
    out
}

/// The look-ahead: a fire is in the queue before its instant and runnable from it; a second
/// scheduler (a restart, a new leader) does not enqueue it again; pausing, rescheduling and
/// deleting the job inside the window take it back, and resuming enqueues it once.
async fn a_fire_is_enqueued_ahead_once_across_a_restart_and_taken_back_by_changes_inside_the_window(
    db: Database,
    redis: Option<RedisQueue>,
) {
    // A midnight ahead of the wall clock, which the Redis queue reads when it enqueues: a task
    // whose time has not come on it waits in `delayed`.
    let start = (Utc::now() + Duration::days(2))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc();
    let (queue, scheduler, ids) = setup(db.clone(), redis, start, MisfirePolicy::RunOnce).await;
    let hooks = &ids["ProcessPendingWebhooks"];
    let at = |m: i64, s: i64| start + Duration::minutes(m) + Duration::seconds(s);
    // Every five minutes, and the only job of the example due between 00:04 and 00:21.
    let mut enqueued: Vec<(uuid::Uuid, DateTime<Utc>)> = Vec::new();
    let tick = |now: DateTime<Utc>| {
        let scheduler = &scheduler;
        async move { scheduler.tick(now).await.unwrap() }
    };

    // 00:04:57: the 00:05 fire is enqueued, not runnable yet.
    let t = tick(at(4, 57)).await;
    assert_eq!(
        t.enqueued
            .iter()
            .map(|(j, f, _)| (j.as_str(), *f))
            .collect::<Vec<_>>(),
        vec![("ProcessPendingWebhooks", at(5, 0))]
    );
    enqueued.extend(t.enqueued.iter().map(|(_, f, id)| (*id, *f)));
    assert!(queue.dequeue(at(4, 59)).await.unwrap().is_none());
    // A restart (or another leader) at 00:04:58: the fire is not enqueued again.
    let again = Scheduler::new(db.clone(), queue.clone(), MisfirePolicy::RunOnce);
    again.reload(at(4, 58)).await.unwrap();
    for now in [at(4, 58), at(4, 59), at(5, 0)] {
        assert!(again.tick(now).await.unwrap().enqueued.is_empty(), "{now}");
        assert!(tick(now).await.enqueued.is_empty(), "{now}");
    }
    let task = queue.dequeue(at(5, 0)).await.unwrap().unwrap();
    assert_eq!(
        (task.job_id.as_str(), task.fire_at),
        (hooks.as_str(), Some(at(5, 0)))
    );
    assert!(
        queue.dequeue(at(5, 0)).await.unwrap().is_none(),
        "enqueued once"
    );
    // While the 00:05 run is active, the 00:10 fire enqueued ahead is not another run ahead of
    // it, and the 00:05 run is one ahead of the 00:10 fire (what a worker checks at lease).
    let t = tick(at(9, 56)).await;
    let (_, _, later) = t.enqueued[0];
    enqueued.push((later, at(10, 0)));
    assert!(!queue.busy_besides(hooks, task.id, at(5, 0)).await.unwrap());
    assert!(queue.busy_besides(hooks, later, at(10, 0)).await.unwrap());
    queue.finish(task.id, "completed", None).await.unwrap();
    assert!(!queue.busy_besides(hooks, later, at(10, 0)).await.unwrap());

    // Paused at 00:09:57, inside the window: the 00:10 fire is taken back.
    assert!(scheduler.pause(hooks, at(9, 57)).await.unwrap());
    assert!(fires_queued(&queue, &enqueued).await.is_empty());
    // Resumed at 00:09:58: the 00:10 fire is enqueued again, once.
    assert!(scheduler.resume(hooks, at(9, 58)).await.unwrap());
    let t = tick(at(9, 58)).await;
    enqueued.extend(t.enqueued.iter().map(|(_, f, id)| (*id, *f)));
    assert!(tick(at(9, 59)).await.enqueued.is_empty());
    assert_eq!(fires_queued(&queue, &enqueued).await, vec![at(10, 0)]);
    let task = queue.dequeue(at(10, 0)).await.unwrap().unwrap();
    assert_eq!(task.fire_at, Some(at(10, 0)));
    queue.finish(task.id, "completed", None).await.unwrap();

    // Rescheduled at 00:14:57, inside the window: the 00:15 fire is taken back; the new
    // schedule (every 10 minutes) fires next at 00:20.
    let t = tick(at(14, 57)).await;
    enqueued.extend(t.enqueued.iter().map(|(_, f, id)| (*id, *f)));
    assert_eq!(fires_queued(&queue, &enqueued).await, vec![at(15, 0)]);
    let ten = codeai_ir::Schedule::Interval { every_ms: 600_000 };
    let fires = codeai_host::scheduler::fires_of(&ten, "UTC").unwrap();
    let next = scheduler
        .reschedule(hooks, &ten, "UTC", fires, at(14, 57))
        .await
        .unwrap();
    assert_eq!(next, Some(at(20, 0)));
    assert!(fires_queued(&queue, &enqueued).await.is_empty());
    assert!(queue.dequeue(at(15, 0)).await.unwrap().is_none());

    // Deleted at 00:19:56, inside the window of its 00:20 fire: taken back (the domain's
    // delete: the scheduler forgets it, the queue cancels its tasks).
    let t = tick(at(19, 56)).await;
    enqueued.extend(t.enqueued.iter().map(|(_, f, id)| (*id, *f)));
    assert_eq!(fires_queued(&queue, &enqueued).await, vec![at(20, 0)]);
    assert!(scheduler.remove(hooks).await);
    queue.cancel_job(hooks).await.unwrap();
    assert!(fires_queued(&queue, &enqueued).await.is_empty());
    assert!(queue.dequeue(at(20, 0)).await.unwrap().is_none());
}
