//! The durable queue on SQLite, PostgreSQL and Redis: weighted shares, idempotent fires, leases
//! that expire and are rescued, retries that wait, and no task claimed twice by concurrent
//! workers, and tenants served by turns within a queue.

#[macro_use]
mod common;

use chrono::{DateTime, Duration, Utc};
use codeai_host::queue::{Finished, NewTask, Queue, QueueConfig, RedisQueue};
use codeai_host::store::{migrate, Database};
use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;

on_every_backend!(
    ten_thousand_tasks_are_shared_60_30_10_and_low_keeps_progressing,
    a_fire_is_enqueued_once,
    tasks_enqueued_together_keep_each_ones_dedup_turns_and_time,
    an_expired_lease_is_rescued_and_its_attempt_given_back,
    a_retry_waits_for_its_time,
    concurrent_workers_never_claim_a_task_twice,
    leases_of_many_at_once_keep_each_queue_in_order_and_finish_cleanly,
    a_tenants_task_is_leased_within_one_turn_of_another_tenants_flood,
    a_retried_task_goes_behind_its_tenants_waiting_tasks,
    a_lease_of_many_takes_one_task_of_a_job_that_may_not_overlap,
    run_requests_at_once_each_get_their_record_their_task_and_their_turn,
    a_task_finished_twice_at_once_counts_once_and_ends_with_no_error_once_it_succeeds,
);

fn task(queue: &str, job: &str, run_after: DateTime<Utc>) -> NewTask {
    NewTask {
        id: None,
        tenant: "default".into(),
        job_id: job.into(),
        job_name: job.into(),
        job_version: Some(1),
        queue: queue.into(),
        trigger: "test".into(),
        input: "{}".into(),
        fire_at: None,
        run_after,
        max_attempts: 3,
        exclusive: false,
    }
}

/// The ids of up to `n` tasks leased at `now`, in the order leased.
async fn leased_ids(q: &Queue, now: DateTime<Utc>, n: usize) -> Vec<uuid::Uuid> {
    let leased = q.dequeue_many(now, n).await.unwrap();
    leased.into_iter().map(|t| t.id).collect()
}

async fn queue(db: Database, redis: Option<RedisQueue>, config: QueueConfig) -> Queue {
    migrate::migrate_up(&db).await.unwrap();
    Queue::open(db, config, redis)
}

/// A Redis-only test's queue, its Redis and the Redis's key prefix.
async fn redis_queue(db: Database, redis: Option<RedisQueue>) -> (Queue, RedisQueue, String) {
    let redis = redis.expect("run_postgres_redis gives a Redis queue");
    let q = queue(db, Some(redis.clone()), QueueConfig::default()).await;
    let prefix = redis.prefix().to_string();
    (q, redis, prefix)
}

async fn ten_thousand_tasks_are_shared_60_30_10_and_low_keeps_progressing(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    // Equal numbers in each queue: the shares come from the weights, not from the backlog.
    let tasks: Vec<NewTask> = (0..10_000)
        .map(|i| {
            let name = ["critical", "default", "low"][i % 3];
            task(name, &format!("job-{name}"), t0)
        })
        .collect();
    assert_eq!(q.enqueue_many(&tasks).await.unwrap(), 10_000);
    let now = Utc::now();
    let mut order = Vec::new();
    // While every queue has work (the first 5,000: critical has 3,334).
    for _ in 0..5_000 {
        let t = q.dequeue(now).await.unwrap().expect("a runnable task");
        order.push(t.queue);
    }
    let share =
        |name: &str| order.iter().filter(|q| *q == name).count() as f64 / order.len() as f64;
    let (c, d, l) = (share("critical"), share("default"), share("low"));
    eprintln!("shares: critical {c:.4}, default {d:.4}, low {l:.4}");
    assert!((c - 0.60).abs() <= 0.03 && (d - 0.30).abs() <= 0.03 && (l - 0.10).abs() <= 0.03);
    // `low` progresses in every window of 100 dequeues.
    for window in order.chunks(100) {
        assert!(window.iter().any(|q| q == "low"), "low starved in a window");
    }
    // Once critical runs dry its share goes to the others; everything drains exactly once.
    let mut rest = 0;
    while q.dequeue(now).await.unwrap().is_some() {
        rest += 1;
    }
    assert_eq!(order.len() + rest, 10_000);
    let counts = q.counts(now, None).await.unwrap();
    let active: u64 = counts.values().map(|c| c.active).sum();
    assert_eq!(active, 10_000);
}

async fn a_fire_is_enqueued_once(db: Database, redis: Option<RedisQueue>) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let fire = DateTime::parse_from_rfc3339("2026-01-12T11:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut t = task("default", "Daily", fire);
    t.fire_at = Some(fire);
    assert!(q.enqueue(&t).await.unwrap().is_some());
    assert!(
        q.enqueue(&t).await.unwrap().is_none(),
        "the same fire twice"
    );
    t.fire_at = Some(fire + Duration::days(1));
    assert!(
        q.enqueue(&t).await.unwrap().is_some(),
        "the next day's fire is another task"
    );
    // Manual tasks (no fire) are never merged.
    let manual = task("default", "Daily", fire);
    assert!(q.enqueue(&manual).await.unwrap().is_some());
    assert!(q.enqueue(&manual).await.unwrap().is_some());
}

/// One `enqueue_many` with what a batch of fires and run requests can hold: the same fire twice,
/// the same id twice, two tenants' tasks interleaved in one queue, a task for later. Each counts as
/// if enqueued alone: one task per fire and per id, the tenants taking turns from their first task
/// on, the later one leased only at its time (Redis writes a batch's lanes, sets and counts once
/// per key, `queue/redis.rs`).
async fn tasks_enqueued_together_keep_each_ones_dedup_turns_and_time(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let on_redis = redis.is_some();
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    let of = |tenant: &str, job: &str, i: i64| NewTask {
        id: Some(uuid::Uuid::new_v4()),
        tenant: tenant.into(),
        ..task("default", job, t0 + Duration::milliseconds(i))
    };
    let (a1, b1, a2, b2) = (
        of("a", "A", 0),
        of("b", "B", 1),
        of("a", "A", 2),
        of("b", "B", 3),
    );
    let fire = t0 - Duration::minutes(1);
    let daily = NewTask {
        fire_at: Some(fire),
        ..of("a", "Daily", 4)
    };
    let daily_again = NewTask {
        fire_at: Some(fire),
        ..of("a", "Daily", 5)
    };
    let later = of("b", "B", 60_000);
    let tasks = [
        a1.clone(),
        b1.clone(),
        a2.clone(),
        a1.clone(),
        daily.clone(),
        b2.clone(),
        daily_again.clone(),
        later.clone(),
    ];
    assert_eq!(
        q.enqueue_many(&tasks).await.unwrap(),
        6,
        "the repeated id and the repeated fire are not new"
    );
    // A second batch into lanes that have tasks already.
    let (a3, b3) = (of("a", "A", 6), of("b", "B", 7));
    assert_eq!(q.enqueue_many(&[b3.clone(), a3.clone()]).await.unwrap(), 2);
    let now = Utc::now();
    let counts = q.counts(now, None).await.unwrap();
    assert_eq!(
        (counts["default"].pending, counts["default"].scheduled),
        (7, 1)
    );
    let got = leased_ids(&q, now, 10).await;
    let id = |t: &NewTask| t.id.unwrap();
    // a and b take turns from their first tasks on. Which of the two goes first is the SQL
    // queue's tie between equal turns; on Redis, a lane joins the rotation when its first task
    // comes, as when the tasks are enqueued one at a time.
    let pair = |i: usize| HashSet::from([got[i], got[i + 1]]);
    assert_eq!(got.len(), 7, "{got:?}");
    assert_eq!(pair(0), HashSet::from([id(&a1), id(&b1)]), "{got:?}");
    assert_eq!(pair(2), HashSet::from([id(&a2), id(&b2)]), "{got:?}");
    assert_eq!(pair(4), HashSet::from([id(&daily), id(&b3)]), "{got:?}");
    assert_eq!(got[6], id(&a3));
    if on_redis {
        let order = [&a1, &b1, &a2, &b2, &daily, &b3, &a3].map(id);
        assert_eq!(got, order, "a's lane joined first");
    }
    assert!(q.task_info(id(&daily_again)).await.unwrap().is_none());
    let waiting = q.task_info(id(&later)).await.unwrap().unwrap();
    assert_eq!(waiting.state, "pending");
    let at_its_time = leased_ids(&q, now + Duration::minutes(2), 10).await;
    assert_eq!(at_its_time, vec![id(&later)]);
}

async fn an_expired_lease_is_rescued_and_its_attempt_given_back(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(
        db,
        redis,
        QueueConfig {
            lease: std::time::Duration::from_secs(5),
            ..QueueConfig::default()
        },
    )
    .await;
    let now = Utc::now();
    q.enqueue(&task("default", "j", now - Duration::seconds(1)))
        .await
        .unwrap();
    let leased = q.dequeue(now).await.unwrap().unwrap();
    assert_eq!(leased.attempt, 1);
    assert!(
        q.dequeue(now).await.unwrap().is_none(),
        "leased tasks are not handed out again"
    );
    // Before the lease ends nothing is rescued; after, the task is runnable again.
    assert_eq!(
        q.rescue_expired(now + Duration::seconds(4)).await.unwrap(),
        0
    );
    assert_eq!(
        q.rescue_expired(now + Duration::seconds(6)).await.unwrap(),
        1
    );
    let again = q
        .dequeue(now + Duration::seconds(6))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.id, leased.id);
    assert_eq!(again.attempt, 1, "the lost attempt does not count");
    // A heartbeat keeps a lease alive.
    assert_eq!(
        q.heartbeat(
            &[again.id, uuid::Uuid::new_v4()],
            now + Duration::seconds(9)
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(
        q.rescue_expired(now + Duration::seconds(12)).await.unwrap(),
        0
    );
}

async fn a_retry_waits_for_its_time(db: Database, redis: Option<RedisQueue>) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let now = Utc::now();
    q.enqueue(&task("low", "j", now - Duration::seconds(1)))
        .await
        .unwrap();
    let t = q.dequeue(now).await.unwrap().unwrap();
    q.retry(t.id, now + Duration::seconds(30), "boom")
        .await
        .unwrap();
    assert!(q
        .dequeue(now + Duration::seconds(29))
        .await
        .unwrap()
        .is_none());
    let counts = q.counts(now, None).await.unwrap();
    assert_eq!(counts["low"].scheduled, 1);
    let again = q
        .dequeue(now + Duration::seconds(31))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (t.id, 2));
    q.finish(again.id, "completed", None).await.unwrap();
    assert_eq!(q.counts(now, None).await.unwrap()["low"].completed, 1);
}

async fn concurrent_workers_never_claim_a_task_twice(db: Database, redis: Option<RedisQueue>) {
    let q = Arc::new(queue(db, redis, QueueConfig::default()).await);
    let now = Utc::now();
    for i in 0..400 {
        q.enqueue(&task(
            ["critical", "default", "low"][i % 3],
            "j",
            now - Duration::seconds(1),
        ))
        .await
        .unwrap();
    }
    let mut workers = Vec::new();
    for _ in 0..8 {
        let q = q.clone();
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = q.dequeue(now).await.unwrap() {
                got.push(t.id);
            }
            got
        }));
    }
    let mut seen = HashSet::new();
    let mut per_worker = BTreeMap::new();
    for (i, w) in workers.into_iter().enumerate() {
        let got = w.await.unwrap();
        per_worker.insert(i, got.len());
        for id in got {
            assert!(seen.insert(id), "task {id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 400, "{per_worker:?}");
}

/// The worker leases and finishes many tasks per call (`finish_and_dequeue`): calls of any size
/// lease each queue's tasks in their order, by weight, each once, and finishing them leaves
/// nothing behind (on Redis: no lease and no job-task entry left for a finished task).
async fn leases_of_many_at_once_keep_each_queue_in_order_and_finish_cleanly(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let keys = redis.clone();
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    let names = ["critical", "default", "low"];
    let mut enqueued: BTreeMap<&str, Vec<uuid::Uuid>> = BTreeMap::new();
    let tasks: Vec<NewTask> = (0..300)
        .map(|i| {
            let name = names[i % 3];
            let id = uuid::Uuid::new_v4();
            enqueued.entry(name).or_default().push(id);
            NewTask {
                id: Some(id),
                ..task(name, &format!("job-{}", i % 7), t0)
            }
        })
        .collect();
    assert_eq!(q.enqueue_many(&tasks).await.unwrap(), 300);
    let now = Utc::now();
    let mut leased: Vec<(String, uuid::Uuid)> = Vec::new();
    let mut done: Vec<Finished> = Vec::new();
    for n in [7, 1, 13, 5, 32].into_iter().cycle() {
        let got = q.finish_and_dequeue(&done, now, n).await.unwrap();
        done.clear();
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= n);
        for t in got {
            done.push(Finished {
                id: t.id,
                outcome: "completed",
                error: None,
            });
            leased.push((t.queue, t.id));
        }
    }
    assert_eq!(leased.len(), 300, "every task leased");
    let unique: HashSet<_> = leased.iter().map(|(_, id)| *id).collect();
    assert_eq!(unique.len(), 300, "no task leased twice");
    for name in names {
        let order: Vec<uuid::Uuid> = leased
            .iter()
            .filter(|(q, _)| q == name)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(order, enqueued[name], "{name} out of order");
    }
    // While all three queues had work (the first 150: low has 100), the weights held.
    let first: Vec<&str> = leased[..150].iter().map(|(q, _)| q.as_str()).collect();
    let share = |name: &str| first.iter().filter(|q| **q == name).count();
    assert!(
        (80..=100).contains(&share("critical")) && (37..=53).contains(&share("default")),
        "shares {} / {} / {}",
        share("critical"),
        share("default"),
        share("low")
    );
    let counts = q.counts(now, None).await.unwrap();
    let completed: u64 = counts.values().map(|c| c.completed).sum();
    let active: u64 = counts.values().map(|c| c.active).sum();
    assert_eq!((completed, active), (300, 0));
    if let Some(r) = keys {
        // Members left in the pool's set of held tasks and in each job's task set.
        let mut left = vec![("SCARD", format!("held:{}", q.owner()))];
        left.extend((0..7).map(|j| ("SCARD", format!("jobtasks:job-{j}"))));
        let mut con = r.connection();
        for (card, key) in left {
            let n: i64 = ::redis::cmd(card)
                .arg(format!("{}{key}", r.prefix()))
                .query_async(&mut con)
                .await
                .unwrap();
            assert_eq!(n, 0, "finished tasks left in {key}");
        }
    }
}

fn tenant_task(tenant: &str, queue: &str, run_after: DateTime<Utc>) -> NewTask {
    NewTask {
        tenant: tenant.into(),
        ..task(queue, &format!("{tenant}-job"), run_after)
    }
}

/// Enqueues a task of `tenant` on the default queue, runnable from `run_after`; its id.
async fn enqueue_for(q: &Queue, tenant: &str, run_after: DateTime<Utc>) -> uuid::Uuid {
    let task = tenant_task(tenant, "default", run_after);
    q.enqueue(&task).await.unwrap().unwrap()
}

/// Enqueues `n` tasks of `tenant` on the default queue at once, runnable from `run_after`.
async fn flood(q: &Queue, tenant: &str, n: u64, run_after: DateTime<Utc>) {
    let tasks: Vec<NewTask> = (0..n)
        .map(|_| tenant_task(tenant, "default", run_after))
        .collect();
    assert_eq!(q.enqueue_many(&tasks).await.unwrap(), n);
}

/// Where `id` comes in `leased`, counted from 1.
fn position(leased: &[uuid::Uuid], id: uuid::Uuid) -> Option<usize> {
    leased.iter().position(|t| *t == id).map(|i| i + 1)
}

/// Tenant A has 2,000 tasks waiting in a queue; tenant B enqueues one after them. Tenants take
/// turns within a queue, so B's task is leased within the turn it joins: among the first
/// (tenants with waiting tasks) leases, not after A's 2,000. Then a third tenant floods too and
/// B enqueues again: within three leases, whether the worker leases one at a time or many per
/// call, and A and C alternate.
async fn a_tenants_task_is_leased_within_one_turn_of_another_tenants_flood(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    flood(&q, "tenant-a", 2_000, t0).await;
    let b = enqueue_for(&q, "tenant-b", t0).await;
    let now = Utc::now();
    let mut leased = Vec::new();
    while position(&leased, b).is_none() && leased.len() < 2_001 {
        leased.push(q.dequeue(now).await.unwrap().unwrap().id);
    }
    let at = position(&leased, b).unwrap();
    eprintln!("fairness: B's task was lease {at} after A's 2,000");
    assert!(at <= 2, "B's task was lease {at}, two tenants were waiting");

    flood(&q, "tenant-c", 500, t0).await;
    let b = enqueue_for(&q, "tenant-b", t0).await;
    let mut tenants = Vec::new();
    let mut leased = Vec::new();
    for n in [16, 1, 7, 32, 5, 3] {
        for t in q.dequeue_many(now, n).await.unwrap() {
            leased.push(t.id);
            tenants.push(t.tenant);
        }
    }
    let at = position(&leased, b).unwrap_or(usize::MAX);
    assert!(
        at <= 3,
        "B's second task was lease {at}, three tenants were waiting"
    );
    let a = tenants.iter().filter(|t| *t == "tenant-a").count();
    let c = tenants.iter().filter(|t| *t == "tenant-c").count();
    assert!(
        a.abs_diff(c) <= 1,
        "A {a} and C {c} leases: they take turns"
    );
}

/// A retry takes a new turn behind its tenant's waiting tasks, as a new task would: a tenant
/// whose tasks fail and retry at once cannot keep its place ahead of another tenant's.
async fn a_retried_task_goes_behind_its_tenants_waiting_tasks(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    let mut a = Vec::new();
    for _ in 0..3 {
        a.push(enqueue_for(&q, "tenant-a", t0).await);
    }
    let b = enqueue_for(&q, "tenant-b", t0).await;
    let now = Utc::now();
    let first = q.dequeue(now).await.unwrap().unwrap();
    assert_eq!(first.id, a[0]);
    q.retry(first.id, now, "boom").await.unwrap();
    let mut order = Vec::new();
    while let Some(t) = q.dequeue(now).await.unwrap() {
        order.push(t.id);
    }
    assert_eq!(order, [b, a[1], a[2], a[0]]);
}

/// A Redis queue written by the code before tenants took turns held each queue's runnable
/// tasks in one `ready:{queue}` list. Connecting moves them into their tenants' lanes, in
/// order, once: none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tasks_of_the_older_layout_are_moved_into_lanes() {
    common::run_postgres_redis(|db, redis| async move {
        let (q, redis, prefix) = redis_queue(db, redis).await;
        let t0 = Utc::now() - Duration::seconds(1);
        let mut ids = Vec::new();
        for tenant in ["tenant-a", "tenant-b", "tenant-a"] {
            ids.push(enqueue_for(&q, tenant, t0).await);
        }
        // The older layout: one list per queue, no lanes, no record of an upgrade.
        let mut con = redis.connection();
        let old: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
        let _: () = ::redis::pipe()
            .cmd("DEL")
            .arg(format!("{prefix}lane:default:tenant-a"))
            .arg(format!("{prefix}lane:default:tenant-b"))
            .arg(format!("{prefix}lanes:default"))
            .arg(format!("{prefix}layout"))
            .ignore()
            .cmd("RPUSH")
            .arg(format!("{prefix}ready:default"))
            .arg(&old)
            .ignore()
            .query_async(&mut con)
            .await
            .unwrap();
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let upgraded = RedisQueue::connect(&url, &prefix).await.unwrap();
        let q = Queue::on(upgraded, QueueConfig::default());
        let leased = leased_ids(&q, Utc::now(), 10).await;
        assert_eq!(
            leased, ids,
            "every task, tenants by turns, each tenant's in order"
        );
        let (list, layout): (i64, String) = ::redis::pipe()
            .cmd("EXISTS")
            .arg(format!("{prefix}ready:default"))
            .cmd("GET")
            .arg(format!("{prefix}layout"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((list, layout.as_str()), (0, "columns"));
    })
    .await
}

/// A Redis queue written before the task columns kept a hash `task:{id}` per task, with the
/// job's name, most attempts and input packed in one field `d` or (earlier) as fields of their
/// own. Connecting moves every task into the columns, once: pending ones are shown and leased
/// whole, in order; ended ones keep their outcome, error and the time they have left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tasks_kept_in_hashes_of_their_own_are_moved_into_the_columns_whole() {
    common::run_postgres_redis(|db, redis| async move {
        let (_, redis, prefix) = redis_queue(db, redis).await;
        let t0 = Utc::now() - Duration::seconds(1);
        // Texts with the separators' neighbours in them: a `|`, a tab, non-ASCII, a JSON input.
        let new = |i: i64, job: &str| NewTask {
            id: Some(uuid::Uuid::new_v4()),
            job_name: format!("Nightly | 報告 {i}"),
            job_version: Some(7 + i),
            input: format!("{{\"n\":{i},\"s\":\"a\\tb ü\"}}"),
            max_attempts: 4 + i,
            trigger: "schedule".into(),
            fire_at: Some(t0 - Duration::minutes(i)),
            ..task("default", job, t0 + Duration::milliseconds(i))
        };
        let (packed, unpacked) = (new(0, "packed-job"), new(1, "unpacked-job"));
        let (done, dead) = (new(2, "done-job"), new(3, "dead-job"));
        let (active, later) = (new(4, "active-job"), new(5, "later-job"));
        let later = NewTask {
            run_after: Utc::now() + Duration::hours(1),
            ..later
        };
        // The older layout, as those versions wrote it.
        let mut pipe = ::redis::pipe();
        for (t, state) in [
            (&packed, "pending"),
            (&unpacked, "pending"),
            (&done, "done"),
            (&dead, "dead"),
            (&active, "active"),
            (&later, "later"),
        ] {
            let (later, state) = (state == "later", state.replace("later", "pending"));
            let state = state.as_str();
            let id = t.id.unwrap().to_string();
            let key = format!("{prefix}task:{id}");
            let fire = t.fire_at.map(|f| f.to_rfc3339()).unwrap_or_default();
            pipe.cmd("HSET")
                .arg(&key)
                .arg(&[("s", state), ("x", "0"), ("j", t.job_id.as_str())])
                .arg(&[
                    ("tr", t.trigger.as_str()),
                    ("q", t.queue.as_str()),
                    ("t", t.tenant.as_str()),
                ])
                .arg(&[("f", fire), ("v", t.job_version.unwrap().to_string())])
                .arg(&[("ra", t.run_after.timestamp_millis()), ("c", 1)])
                .ignore();
            let max = t.max_attempts.to_string();
            if t.job_id == "unpacked-job" {
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg(&[("n", &t.job_name), ("m", &max), ("in", &t.input)])
                    .ignore();
            } else {
                let d = [t.job_name.as_bytes(), max.as_bytes(), t.input.as_bytes()].join(&0xFF);
                pipe.cmd("HSET").arg(&key).arg("d").arg(d).ignore();
            }
            if matches!(state, "pending" | "active") {
                pipe.cmd("SADD")
                    .arg(format!("{prefix}jobtasks:{}", t.job_id))
                    .arg(&id)
                    .ignore();
            }
            match state {
                "pending" if later => {
                    pipe.cmd("HSET").arg(&key).arg("a").arg(0).ignore();
                    pipe.cmd("ZADD")
                        .arg(format!("{prefix}delayed"))
                        .arg(t.run_after.timestamp_millis())
                        .arg(&id)
                        .ignore();
                }
                "active" => {
                    // Leased by a worker whose lease runs out in a minute.
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg(&[("a", "1"), ("w", "old-worker")])
                        .ignore();
                    pipe.cmd("ZADD")
                        .arg(format!("{prefix}active"))
                        .arg((Utc::now() + Duration::minutes(1)).timestamp_millis())
                        .arg(&id)
                        .ignore();
                }
                "pending" => {
                    pipe.cmd("HSET").arg(&key).arg("a").arg(0).ignore();
                    pipe.cmd("RPUSH")
                        .arg(format!("{prefix}lane:default:default"))
                        .arg(&id)
                        .ignore();
                }
                "done" => {
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg(&[("a", "1"), ("o", "completed")])
                        .ignore();
                    // Ended 7 days less an hour ago.
                    pipe.cmd("EXPIRE").arg(&key).arg(3600).ignore();
                }
                _ => {
                    pipe.cmd("HSET")
                        .arg(&key)
                        .arg(&[("a", "4"), ("o", "failed"), ("e", "boom")])
                        .ignore();
                    pipe.cmd("EXPIRE").arg(&key).arg(5 * 24 * 3600).ignore();
                }
            }
        }
        pipe.cmd("ZADD")
            .arg(format!("{prefix}lanes:default"))
            .arg(1)
            .arg("default")
            .ignore();
        // A lease left of a task that is gone.
        pipe.cmd("ZADD")
            .arg(format!("{prefix}active"))
            .arg(1)
            .arg(uuid::Uuid::new_v4().to_string())
            .ignore();
        pipe.cmd("SET")
            .arg(format!("{prefix}layout"))
            .arg("lanes")
            .ignore();
        let mut con = redis.connection();
        let _: () = pipe.query_async(&mut con).await.unwrap();

        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let q = Queue::on(
            RedisQueue::connect(&url, &prefix).await.unwrap(),
            QueueConfig::default(),
        );
        let (left, leases, layout): (Vec<String>, i64, String) = ::redis::pipe()
            .cmd("KEYS")
            .arg(format!("{prefix}task:*"))
            .cmd("EXISTS")
            .arg(format!("{prefix}active"))
            .cmd("GET")
            .arg(format!("{prefix}layout"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!((left, leases, layout.as_str()), (vec![], 0, "columns"));

        // What a task keeps of its request, from the request or from the task.
        macro_rules! kept {
            ($t:expr, $id:expr) => {
                (
                    $id,
                    $t.tenant.clone(),
                    $t.job_id.clone(),
                    $t.job_name.clone(),
                    $t.job_version,
                    $t.queue.clone(),
                    $t.trigger.clone(),
                    $t.input.clone(),
                    $t.fire_at.map(|f| f.timestamp()),
                    $t.max_attempts,
                )
            };
        }
        let whole = |t: &NewTask| kept!(t, t.id.unwrap());
        let shown = |t: &codeai_host::queue::Task| kept!(t, t.id);
        for t in [&packed, &unpacked, &done, &dead, &active, &later] {
            let info = q.task_info(t.id.unwrap()).await.unwrap().unwrap();
            assert_eq!(shown(&info.task), whole(t), "{}", t.job_id);
        }
        let info = q.task_info(active.id.unwrap()).await.unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.task.attempt), ("active", 1));
        for t in [&packed, &unpacked] {
            let versions = q.versions_in_use(&t.job_id).await.unwrap();
            assert_eq!(
                versions.into_iter().collect::<Vec<_>>(),
                vec![t.job_version.unwrap()]
            );
        }
        let ended = |info: codeai_host::queue::TaskInfo| {
            (info.state, info.task.attempt, info.outcome, info.last_error)
        };
        let info = q.task_info(done.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(
            ended(info),
            ("done".into(), 1, Some("completed".into()), None)
        );
        let info = q.task_info(dead.id.unwrap()).await.unwrap().unwrap();
        assert_eq!(
            ended(info),
            ("dead".into(), 4, Some("failed".into()), Some("boom".into()))
        );
        // The done task has an hour left, the dead one five days; the active one's lease a
        // minute.
        assert_eq!(q.rescue_expired(Utc::now()).await.unwrap(), 0);
        assert!(q.task_info(done.id.unwrap()).await.unwrap().is_some());
        let rescued = q.rescue_expired(Utc::now() + Duration::hours(2));
        assert_eq!(rescued.await.unwrap(), 1);
        assert!(q.task_info(done.id.unwrap()).await.unwrap().is_none());
        assert!(q.requeue_dead(dead.id.unwrap(), Utc::now()).await.unwrap());

        let leased = q.dequeue_many(Utc::now(), 10).await.unwrap();
        assert_eq!(
            leased.iter().map(shown).collect::<Vec<_>>(),
            vec![
                whole(&packed),
                whole(&unpacked),
                whole(&active),
                whole(&NewTask {
                    trigger: "retry".into(),
                    ..dead.clone()
                })
            ]
        );
        assert!(leased.iter().all(|t| t.attempt == 1));
        let due = q.dequeue_many(Utc::now() + Duration::hours(2), 10);
        let due = due.await.unwrap();
        assert_eq!(
            due.iter().map(shown).collect::<Vec<_>>(),
            vec![whole(&later)]
        );
    })
    .await
}

/// On Redis a lease is its worker process's: a task the process holds but lost track of (a
/// lease call whose answer never came) goes back on the queue at a heartbeat once it was leased
/// more than a lease ago, while the tasks the process names stay leased.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_task_its_worker_lost_track_of_goes_back_once_its_lease_would_have_run_out() {
    common::run_postgres_redis(|db, redis| async move {
        let q = queue(db, redis, QueueConfig::default()).await;
        let t0 = Utc::now() - Duration::seconds(1);
        let known = enqueue_for(&q, "default", t0).await;
        let lost = enqueue_for(&q, "default", t0).await;
        let now = Utc::now();
        assert_eq!(leased_ids(&q, now, 10).await, vec![known, lost]);
        macro_rules! states {
            () => {
                (
                    q.task_info(known).await.unwrap().unwrap().state,
                    q.task_info(lost).await.unwrap().unwrap().state,
                )
            };
        }
        assert_eq!(q.heartbeat(&[known], now).await.unwrap(), 1);
        assert_eq!(states!(), ("active".into(), "active".into()));
        let lease = Duration::from_std(QueueConfig::default().lease).unwrap();
        // Still within two leases and 10 s (its lease call might be answering).
        let soon = now + lease + Duration::seconds(1);
        assert_eq!(q.heartbeat(&[known], soon).await.unwrap(), 1);
        assert_eq!(states!(), ("active".into(), "active".into()));
        let later = now + lease * 2 + Duration::seconds(11);
        assert_eq!(q.heartbeat(&[known], later).await.unwrap(), 1);
        assert_eq!(states!(), ("active".into(), "pending".into()));
        let again = q.dequeue_many(Utc::now(), 10).await.unwrap();
        assert_eq!(
            again.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(),
            vec![(lost, 1)],
            "its attempt given back"
        );
    })
    .await
}

/// A Redis queue keeps an ended task 7 days (an enqueue of its id meanwhile is skipped), then
/// the lease reaper forgets it, however many ended at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_ended_tasks_are_kept_seven_days_then_forgotten() {
    common::run_postgres_redis(|db, redis| async move {
        let (q, redis, prefix) = redis_queue(db, redis).await;
        let t0 = Utc::now() - Duration::seconds(1);
        let tasks: Vec<NewTask> = (0..2500)
            .map(|_| NewTask {
                id: Some(uuid::Uuid::new_v4()),
                ..task("default", "Bulk", t0)
            })
            .collect();
        assert_eq!(q.enqueue_many(&tasks).await.unwrap(), 2500);
        let leased = q.dequeue_many(Utc::now(), 2500).await.unwrap();
        assert_eq!(leased.len(), 2500);
        // A tenth failed, with an error.
        let done: Vec<Finished> = leased
            .iter()
            .enumerate()
            .map(|(i, t)| Finished {
                id: t.id,
                outcome: if i % 10 == 0 { "failed" } else { "completed" },
                error: (i % 10 == 0).then(|| "boom".to_string()),
            })
            .collect();
        let ended = Utc::now();
        q.finish_and_dequeue(&done, ended, 0).await.unwrap();
        assert_eq!(q.enqueue_many(&tasks).await.unwrap(), 0, "known for 7 days");

        let (first, last) = (tasks[0].id.unwrap(), tasks[2499].id.unwrap());
        q.rescue_expired(ended + Duration::days(6)).await.unwrap();
        let failed = leased[0].id;
        let info = q.task_info(failed).await.unwrap().unwrap();
        assert_eq!(
            (info.state.as_str(), info.last_error),
            ("dead", Some("boom".into()))
        );
        for id in [first, last] {
            let info = q.task_info(id).await.unwrap().unwrap();
            assert!(info.state == "done" || info.state == "dead");
        }
        q.rescue_expired(ended + Duration::days(8)).await.unwrap();
        for id in [first, last] {
            assert!(q.task_info(id).await.unwrap().is_none());
        }
        let mut con = redis.connection();
        let left: (i64, i64, i64, i64, Vec<String>) = ::redis::pipe()
            .cmd("HLEN")
            .arg(format!("{prefix}td"))
            .cmd("HLEN")
            .arg(format!("{prefix}ts"))
            .cmd("HLEN")
            .arg(format!("{prefix}te"))
            .cmd("ZCARD")
            .arg(format!("{prefix}endedhours"))
            .cmd("KEYS")
            .arg(format!("{prefix}ended:*"))
            .query_async(&mut con)
            .await
            .unwrap();
        assert_eq!(left, (0, 0, 0, 0, vec![]));
        assert_eq!(
            q.enqueue_many(&tasks).await.unwrap(),
            2500,
            "unknown once forgotten"
        );
    })
    .await
}

/// A task finished twice in one call (a pool that ran it again) is counted once; a task whose
/// attempt failed and whose next one succeeded shows no error.
async fn a_task_finished_twice_at_once_counts_once_and_ends_with_no_error_once_it_succeeds(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    let id = enqueue_for(&q, "default", t0).await;
    let now = Utc::now();
    assert_eq!(leased_ids(&q, now, 10).await, vec![id]);
    q.retry(id, now, "boom").await.unwrap();
    let info = q.task_info(id).await.unwrap().unwrap();
    assert_eq!(info.last_error.as_deref(), Some("boom"));
    assert_eq!(leased_ids(&q, Utc::now(), 10).await, vec![id]);
    let done = Finished {
        id,
        outcome: "completed",
        error: None,
    };
    q.finish_and_dequeue(&[done.clone(), done], Utc::now(), 0)
        .await
        .unwrap();
    let counts = q.counts(Utc::now(), None).await.unwrap();
    let (completed, active): (u64, u64) = (
        counts.values().map(|c| c.completed).sum(),
        counts.values().map(|c| c.active).sum(),
    );
    assert_eq!((completed, active), (1, 0));
    let info = q.task_info(id).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.last_error), ("done", None));
}

/// A job whose runs may not overlap (`overlap: queue`) has one task active at a time, also when
/// one call leases many: its next task stays pending, in its place and with no attempt spent,
/// until the first is finished; the other jobs' tasks are leased around it.
async fn a_lease_of_many_takes_one_task_of_a_job_that_may_not_overlap(
    db: Database,
    redis: Option<RedisQueue>,
) {
    let q = queue(db, redis, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(1);
    let one_at_a_time = |i: usize| NewTask {
        id: Some(uuid::Uuid::new_v4()),
        exclusive: true,
        ..task("default", "Serial", t0 + Duration::milliseconds(i as i64))
    };
    let (first, second) = (one_at_a_time(0), one_at_a_time(1));
    let other = NewTask {
        id: Some(uuid::Uuid::new_v4()),
        ..task("default", "Free", t0 + Duration::milliseconds(2))
    };
    let tasks = [first.clone(), second.clone(), other.clone()];
    assert_eq!(q.enqueue_many(&tasks).await.unwrap(), 3);
    let now = Utc::now();
    let got = leased_ids(&q, now, 10).await;
    assert_eq!(got, vec![first.id.unwrap(), other.id.unwrap()]);
    let waiting = q.task_info(second.id.unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state.as_str(), waiting.task.attempt),
        ("pending", 0),
        "the serial job's second task waits, no attempt spent"
    );
    assert!(q.dequeue_many(now, 10).await.unwrap().is_empty());
    let done = Finished {
        id: first.id.unwrap(),
        outcome: "completed",
        error: None,
    };
    // (Redis puts a task that found its job active aside for 100 ms: ask a second later.)
    let later = now + Duration::seconds(1);
    let next = q.finish_and_dequeue(&[done], later, 10).await.unwrap();
    assert_eq!(
        next.iter().map(|t| (t.id, t.attempt)).collect::<Vec<_>>(),
        vec![(second.id.unwrap(), 1)],
        "once the first is finished, the second runs"
    );
}

/// Run requests that arrive at once (`POST /jobs/{id}/run` under load; on SQLite they are
/// written together, a few statements for them all): each gets its record and one task, is said
/// to be new, and takes its tenant's next turn as if they had come one by one, so the tenants'
/// tasks are leased in turns. The same request again is not new and writes nothing.
async fn run_requests_at_once_each_get_their_record_their_task_and_their_turn(
    db: Database,
    redis: Option<RedisQueue>,
) {
    use codeai_host::store::platform::{pending_execution, NewExecution};
    let on_redis = redis.is_some();
    let q = Arc::new(queue(db.clone(), redis, QueueConfig::default()).await);
    let t0 = Utc::now() - Duration::seconds(1);
    let request = |i: usize, id: uuid::Uuid| {
        let (q, db) = (q.clone(), db.clone());
        async move {
            // 30 requests of tenant 0, then 20 of tenant 1, then 10 of tenant 2.
            let tenant = format!(
                "tenant-{}",
                match i {
                    0..30 => 0,
                    30..50 => 1,
                    _ => 2,
                }
            );
            let task = NewTask {
                id: Some(id),
                ..tenant_task(&tenant, "default", t0)
            };
            let record = NewExecution {
                id,
                tenant: &tenant,
                job_id: &task.job_id,
                job_name: "Burst",
                job_version: Some(1),
                trigger: "manual",
                queue: "default",
                input: "{}",
                attempt: 0,
                max_attempts: 3,
                scheduled_at: Some(t0),
                started_at: t0,
            };
            let record = pending_execution(&record, None, None);
            q.enqueue_recorded(&task, &db, &record).await.unwrap()
        }
    };
    let ids: Vec<uuid::Uuid> = (0..60).map(|_| uuid::Uuid::now_v7()).collect();
    let written =
        futures_util::future::join_all(ids.iter().enumerate().map(|(i, id)| request(i, *id))).await;
    let expected: Vec<Option<uuid::Uuid>> = ids.iter().copied().map(Some).collect();
    assert_eq!(written, expected, "each new, under its own id");
    assert_eq!(common::runs_of(&db, "Burst").await, 60);
    if !on_redis {
        assert_eq!(request(0, ids[0]).await, None, "the same request again");
        assert_eq!(common::runs_of(&db, "Burst").await, 60);
    }

    let now = Utc::now();
    let mut tenants = Vec::new();
    while let Some(t) = q.dequeue(now).await.unwrap() {
        tenants.push(t.tenant);
    }
    assert_eq!(tenants.len(), 60, "one task each");
    // On PostgreSQL without Redis each request is its own transaction, and two at once may
    // read the same next turn of their tenant (a tie the lease breaks by age): not exact there.
    if matches!(db, Database::Postgres(_)) && !on_redis {
        return;
    }
    // Turns 0–9: a task of each tenant; 10–19: of tenants 0 and 1; 20–29: of tenant 0.
    let mut rest = &tenants[..];
    for turn in 0..30 {
        let waiting = 3 - turn / 10;
        let (this, after) = rest.split_at(waiting);
        let expected: HashSet<String> = (0..waiting).map(|t| format!("tenant-{t}")).collect();
        assert_eq!(
            this.iter().cloned().collect::<HashSet<_>>(),
            expected,
            "turn {turn}: {tenants:?}"
        );
        rest = after;
    }
}

/// On SQLite a host process holds the file alone (`PATH.lock`) and holds its leases in memory:
/// a lease writes nothing (the task stays `pending` in the table, with the attempts that ended),
/// while the queue shows it active. What moves waiting tasks (a cancel, a deleted job's tasks)
/// leaves a leased one alone, and another queue on the file in the same process does not lease
/// it again. When the process's queues are gone (it died), the task is leased again at once,
/// its attempt not counted twice; its finish writes the attempt.
#[tokio::test]
async fn sqlite_leases_are_held_in_memory_and_go_with_the_process() {
    common::run_sqlite(|db| async move {
        let q = queue(db.clone(), None, QueueConfig::default()).await;
        let now = Utc::now();
        let a = q
            .enqueue(&task("default", "j", now - Duration::seconds(2)))
            .await
            .unwrap()
            .unwrap();
        let b = q
            .enqueue(&task("default", "j", now - Duration::seconds(1)))
            .await
            .unwrap()
            .unwrap();
        let leased = q.dequeue(now).await.unwrap().unwrap();
        assert_eq!((leased.id, leased.attempt), (a, 1));

        let row = |id: uuid::Uuid| {
            let db = db.clone();
            async move {
                let state: Vec<String> = common::column(
                    &db,
                    "SELECT state FROM tasks WHERE id = ?",
                    &[&id.to_string()],
                )
                .await;
                let attempt: Vec<i64> = common::column(
                    &db,
                    "SELECT attempt FROM tasks WHERE id = ?",
                    &[&id.to_string()],
                )
                .await;
                (state[0].clone(), attempt[0])
            }
        };
        assert_eq!(
            row(a).await,
            ("pending".to_string(), 0),
            "a lease writes nothing"
        );
        let info = q.task_info(a).await.unwrap().unwrap();
        assert_eq!((info.state.as_str(), info.task.attempt), ("active", 1));
        let counts = q.counts(now, None).await.unwrap();
        assert_eq!(
            (counts["default"].active, counts["default"].pending),
            (1, 1)
        );

        assert!(
            !q.cancel_pending(a).await.unwrap(),
            "a leased task is not a waiting one"
        );
        assert_eq!(q.cancel_job("j").await.unwrap(), 1, "only the waiting task");
        assert_eq!(q.task_info(b).await.unwrap().unwrap().state, "dead");
        assert_eq!(q.task_info(a).await.unwrap().unwrap().state, "active");

        let beside = queue(db.clone(), None, QueueConfig::default()).await;
        assert!(
            beside.dequeue(now).await.unwrap().is_none(),
            "held by this process, whichever queue asks"
        );

        // The process dies: its leases go with it.
        drop(q);
        drop(beside);
        let after = queue(db.clone(), None, QueueConfig::default()).await;
        let again = after.dequeue(now).await.unwrap().unwrap();
        assert_eq!((again.id, again.attempt), (a, 1));
        after.finish(a, "completed", None).await.unwrap();
        assert_eq!(row(a).await, ("done".to_string(), 1));
        assert!(after.dequeue(now).await.unwrap().is_none());
    })
    .await;
}

/// While a job that may not overlap has a task running, its other tasks wait without taking the
/// places of the tasks behind them: a lease of one takes the next runnable task of another job;
/// once the running one is finished, the next of the job is leased.
async fn a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it(db: Database) {
    let q = queue(db, None, QueueConfig::default()).await;
    let now = Utc::now();
    let exclusive = |at: i64| NewTask {
        exclusive: true,
        ..task("default", "one-at-a-time", now - Duration::seconds(at))
    };
    let first = q.enqueue(&exclusive(4)).await.unwrap().unwrap();
    let second = q.enqueue(&exclusive(3)).await.unwrap().unwrap();
    let other = q
        .enqueue(&task("default", "other", now - Duration::seconds(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased_ids(&q, now, 1).await, vec![first]);
    assert_eq!(leased_ids(&q, now, 1).await, vec![other]);
    assert!(leased_ids(&q, now, 1).await.is_empty());
    q.finish(first, "completed", None).await.unwrap();
    assert_eq!(leased_ids(&q, now, 5).await, vec![second]);
}

#[tokio::test]
async fn sqlite_a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it() {
    common::run_sqlite(a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it)
        .await;
}

#[tokio::test]
async fn postgres_a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it() {
    common::run_postgres(a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it)
        .await;
}

/// An in-memory SQLite database (no file, so no host lock) keeps its leases in the table, as
/// PostgreSQL does: a lease marks the task `active` with its attempt, a task is not leased
/// twice, and a job that may not overlap runs one task at a time without holding up the tasks
/// behind it.
#[tokio::test]
async fn sqlite_in_memory_writes_its_leases_to_the_table() {
    // One connection: a database in memory lives as long as a connection holds it, and SQLite's
    // shared cache (which lets several connections share one) answers a write beside another
    // connection's read with SQLITE_LOCKED at once instead of waiting.
    let options = sqlx::sqlite::SqliteConnectOptions::from_str("sqlite::memory:").unwrap();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let db = Database::Sqlite(pool);
    assert!(db.sqlite_in_memory());
    let q = queue(db.clone(), None, QueueConfig::default()).await;
    let now = Utc::now();
    let a = q
        .enqueue(&task("default", "j", now - Duration::seconds(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leased_ids(&q, now, 1).await, vec![a]);
    let state: Vec<String> = common::column(
        &db,
        "SELECT state || ':' || attempt FROM tasks WHERE id = ?",
        &[&a.to_string()],
    )
    .await;
    assert_eq!(state, vec!["active:1".to_string()]);
    assert!(leased_ids(&q, now, 1).await.is_empty(), "not leased twice");
    // That task stays leased: the scenario's leases see only its own tasks.
    a_running_job_that_may_not_overlap_does_not_hold_up_the_tasks_behind_it(db).await;
}

/// A tenant whose only other task is running joins the current turn with its next one, as a
/// tenant with nothing waiting does: B's flood waits from turn 0, A's running task took turn 0,
/// and A's next task is leased second, not behind B's next turn.
async fn a_tenant_whose_task_runs_joins_the_current_turn(db: Database) {
    let q = queue(db, None, QueueConfig::default()).await;
    let t0 = Utc::now() - Duration::seconds(10);
    let a1 = enqueue_for(&q, "tenant-a", t0).await;
    flood(&q, "tenant-b", 3, t0).await;
    assert_eq!(leased_ids(&q, Utc::now(), 1).await, vec![a1]);
    let a2 = enqueue_for(&q, "tenant-a", t0).await;
    let next = leased_ids(&q, Utc::now(), 2).await;
    assert_eq!(next.len(), 2);
    assert_eq!(next[1], a2, "A's next task comes within the turn it joins");
}

#[tokio::test]
async fn sqlite_a_tenant_whose_task_runs_joins_the_current_turn() {
    common::run_sqlite(a_tenant_whose_task_runs_joins_the_current_turn).await;
}

#[tokio::test]
async fn postgres_a_tenant_whose_task_runs_joins_the_current_turn() {
    common::run_postgres(a_tenant_whose_task_runs_joins_the_current_turn).await;
}

/// A task deferred (its tenant at its concurrency limit) goes back to wait until its time, its
/// attempt given back: not leasable before, then leased with the same attempt.
async fn a_deferred_task_waits_for_its_time_with_its_attempt_given_back(db: Database) {
    let q = queue(db, None, QueueConfig::default()).await;
    let now = Utc::now();
    let id = q
        .enqueue(&task("default", "j", now - Duration::seconds(1)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(q.dequeue(now).await.unwrap().unwrap().attempt, 1);
    q.defer(id, now + Duration::minutes(1)).await.unwrap();
    let info = q.task_info(id).await.unwrap().unwrap();
    assert_eq!((info.state.as_str(), info.task.attempt), ("pending", 0));
    assert_eq!(q.counts(now, None).await.unwrap()["default"].active, 0);
    assert!(q.dequeue(now).await.unwrap().is_none());
    let again = q
        .dequeue(now + Duration::minutes(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempt), (id, 1));
}

#[tokio::test]
async fn sqlite_a_deferred_task_waits_for_its_time_with_its_attempt_given_back() {
    common::run_sqlite(a_deferred_task_waits_for_its_time_with_its_attempt_given_back).await;
}

#[tokio::test]
async fn postgres_a_deferred_task_waits_for_its_time_with_its_attempt_given_back() {
    common::run_postgres(a_deferred_task_waits_for_its_time_with_its_attempt_given_back).await;
}
