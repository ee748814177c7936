//! Durability of the embedded default: `codeai host run` is killed with SIGKILL in the middle of
//! a burst of 3,000 tasks and started again; every task completes at least once, none is lost
//! (counted in the SQLite file), and each has one execution recorded completed (a task whose
//! attempt was cut off by the kill runs again once the host starts again — its lease was the
//! killed process's memory, the task still `pending` in the file — and writes the same row).
//! `tests/scale_out.rs` counts duplicate runs through an event each run emits. A second host on
//! the same file is refused while the first runs, and not after it was killed.

mod common;

use chrono::Utc;
use codeai_host::queue::{NewTask, Queue, QueueConfig};
use codeai_host::store::Database;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOOP: &str = r#"
job Noop {
    description: "does nothing, quickly"
    steps {
        one { compute: { ok: true } as: result }
    }
}
"#;

/// Starts the host on `dir` and waits for its banner.
fn start(dir: &Path) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_codeai"))
        .args([
            "host",
            "run",
            "jobs",
            "--workers",
            "8",
            "--lease-secs",
            "2",
            "--grace-secs",
            "1",
            "--listen",
            "127.0.0.1:0",
        ])
        .current_dir(dir)
        .env("DATABASE_URL", "sqlite:codeai.db")
        .env_remove("REDIS_URL")
        .env_remove("SMTP_HOST")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start codeai host run");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match lines.next() {
            Some(Ok(line)) if line.starts_with("running") => break,
            Some(Ok(_)) => {}
            _ => panic!("the host exited before its banner"),
        }
        assert!(Instant::now() < deadline, "no banner");
    }
    // Keep draining stdout so the host never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// A folder with the no-op job built into `jobs/`.
fn workdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "codeai_{name}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    ));
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    let (artifacts, _) = codeai_dsl::compile("noop.codeai", NOOP).unwrap();
    std::fs::write(
        dir.join("jobs").join(&artifacts[0].file_name),
        &artifacts[0].bytes,
    )
    .unwrap();
    dir
}

/// The host's database in `dir`, and `n` runs of its no-op job enqueued there (spread over
/// the three queues).
async fn enqueue_runs(dir: &Path, n: usize) -> Database {
    let db = Database::connect(&format!("sqlite:{}", dir.join("codeai.db").display()))
        .await
        .unwrap();
    let Database::Sqlite(pool) = &db else {
        unreachable!()
    };
    let job_id: String = sqlx::query_scalar("SELECT id FROM jobs WHERE name = 'Noop'")
        .fetch_one(pool)
        .await
        .unwrap();
    let queue = Queue::new(db.clone(), QueueConfig::default());
    let tasks: Vec<NewTask> = (0..n)
        .map(|i| NewTask {
            queue: common::fixtures::QUEUES[i % 3].into(),
            ..common::fixtures::run_now(&job_id, 1, "Noop")
        })
        .collect();
    assert_eq!(queue.enqueue_many(&tasks).await.unwrap(), n as u64);
    db
}

/// Waits until at least `n` tasks are done; `stuck` is the failure's message.
async fn until_done(db: &Database, n: i64, stuck: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await < n {
        assert!(Instant::now() < deadline, "{stuck}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn count(db: &Database, sql: &str) -> i64 {
    common::count(db, sql, &[]).await
}

/// Tasks in the burst: enough that the kill, once 150 are done, comes in the middle of it
/// however fast the host runs them.
const BURST: i64 = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_burst_loses_no_task() {
    let dir = workdir("crash");

    let mut host = start(&dir);
    let db = enqueue_runs(&dir, BURST as usize).await;

    // Kill it once part of the burst is done.
    until_done(&db, 150, "the host made no progress").await;
    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();
    let done_at_kill = count(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await;
    let pending_at_kill = count(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'pending'").await;
    eprintln!("killed with {done_at_kill} done and {pending_at_kill} pending (leased or not)");
    assert!(
        done_at_kill < BURST,
        "the kill came too late to test anything"
    );

    // Restart: the rest, and the tasks the killed process held, complete.
    let mut host = start(&dir);
    let deadline = Instant::now() + Duration::from_secs(180);
    while count(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await < BURST {
        assert!(
            Instant::now() < deadline,
            "tasks were lost: {} done",
            count(&db, "SELECT COUNT(*) FROM tasks WHERE state = 'done'").await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &host.id().to_string()])
        .status();
    let _ = host.wait();

    let tasks = count(&db, "SELECT COUNT(*) FROM tasks").await;
    // One execution row per task, completed (a task run again after the kill writes the same row).
    let recorded = count(
        &db,
        "SELECT COUNT(*) FROM job_executions WHERE job_name = 'Noop' AND status = 'completed'",
    )
    .await;
    eprintln!("{tasks} tasks, {recorded} executions recorded completed");
    assert_eq!(tasks, BURST);
    assert_eq!(recorded, BURST);
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// A second host process on the file, beside the first: refused before it does anything, with
/// the first one's pid; the first keeps running its tasks; once the first is killed, a host
/// starts on the file again (the kernel let go of the lock with the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_host_on_the_same_sqlite_file_is_refused_until_the_first_is_gone() {
    let dir = workdir("second_host");
    let mut first = start(&dir);
    let second = Command::new(env!("CARGO_BIN_EXE_codeai"))
        .args(["host", "run", "jobs", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("DATABASE_URL", "sqlite:codeai.db")
        .env_remove("REDIS_URL")
        .output()
        .expect("run a second host");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second host ran: {err}");
    assert!(
        err.contains(&format!("another CodeAI host (process {})", first.id()))
            && err.contains("codeai.db"),
        "{err}"
    );

    // The first still runs what is enqueued.
    let db = enqueue_runs(&dir, 20).await;
    until_done(&db, 20, "the first host stopped working").await;

    first.kill().unwrap(); // SIGKILL: no clean exit to release anything
    first.wait().unwrap();
    let mut again = start(&dir);
    let _ = Command::new("kill")
        .args(["-TERM", &again.id().to_string()])
        .status();
    let _ = again.wait();
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
