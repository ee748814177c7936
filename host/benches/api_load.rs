//! Load on the HTTP API over loopback (release build, SQLite in a temp file, the whole host
//! running: scheduler, 10 workers, alerts): `GET /jobs` and `POST /jobs/{id}/run` of a no-op job,
//! each for `LOAD_SECS` seconds (default 30) from `LOAD_CLIENTS` concurrent clients (default 32,
//! keep-alive connections). Prints requests/s, p50/p99/max latency and the errors (any answer
//! other than the expected status).
//!
//! Then fairness between the API and the workers: the workers' throughput on a backlog of
//! `FAIR_BACKLOG` no-op tasks (default 100,000) over `FAIR_SECS` seconds (default 3), alone and
//! while the clients flood `POST /jobs/Noop/run`, and the ratio of the two.
//!
//! `cargo bench -p codeai-host --bench api_load`

use codeai_host::api::ApiConfig;
use codeai_host::app::{Host, HostConfig};
use codeai_host::store::{tenants, Database};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "load-token";

const NOOP: &str = r#"
job Noop {
    queue: critical
    steps { one { compute: { ok: true } as: result } }
}
"#;

#[path = "../tests/common/fixtures.rs"]
mod fixtures;
use fixtures::env_number as env_u64;

/// `POST /jobs/Noop/run` from `clients` clients for `secs` seconds.
async fn flood(base: &str, clients: u64, secs: u64) {
    let body = Some(r#"{"input": {}}"#);
    load(
        base,
        reqwest::Method::POST,
        "/jobs/Noop/run",
        body,
        202,
        clients,
        secs,
    )
    .await;
}

/// Tasks finished (completed or failed) so far.
async fn finished(host: &Host) -> u64 {
    let counts = host.queue.counts(chrono::Utc::now(), None).await.unwrap();
    counts.values().map(|c| c.completed + c.failed).sum()
}

/// The workers' executions finished per second over `secs` from now.
async fn pool_rate(host: &Host, secs: u64) -> f64 {
    let (before, started) = (finished(host).await, Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    (finished(host).await - before) as f64 / started.elapsed().as_secs_f64()
}

/// Waits until no task is pending or active.
async fn drained(host: &Host) {
    loop {
        let counts = host.queue.counts(chrono::Utc::now(), None).await.unwrap();
        if counts.values().all(|c| c.pending + c.active == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Enqueues `n` runs of the no-op job (as many as a flood would leave waiting).
async fn backlog(host: &Host, job: &codeai_host::app::Registered, n: u64) {
    let tasks: Vec<_> = (0..n)
        .map(|_| codeai_host::queue::NewTask {
            queue: job.manifest.queue.clone(),
            ..fixtures::run_now(&job.job_id, job.version, &job.manifest.name)
        })
        .collect();
    for chunk in tasks.chunks(1000) {
        host.queue.enqueue_many(chunk).await.unwrap();
    }
    host.pool.notify();
}

struct Outcome {
    latencies: Vec<Duration>,
    errors: u64,
}

async fn load(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&'static str>,
    expect: u16,
    clients: u64,
    secs: u64,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for _ in 0..clients {
        let http = reqwest::Client::new();
        let url = format!("{base}{path}");
        let stop = stop.clone();
        let method = method.clone();
        handles.push(tokio::spawn(async move {
            let mut out = Outcome {
                latencies: Vec::new(),
                errors: 0,
            };
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                let mut req = http.request(method.clone(), &url).bearer_auth(TOKEN);
                if let Some(b) = body {
                    req = req.header("content-type", "application/json").body(b);
                }
                match req.send().await {
                    Ok(r) if r.status().as_u16() == expect => {
                        let _ = r.bytes().await;
                        out.latencies.push(start.elapsed());
                    }
                    _ => out.errors += 1,
                }
            }
            out
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut errors = 0;
    for h in handles {
        let o = h.await.unwrap();
        latencies.extend(o.latencies);
        errors += o.errors;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{method} {path}: {} requests in {elapsed:.1}s = {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, \
         max {:.2} ms, errors {errors} ({clients} clients)",
        latencies.len(),
        latencies.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let secs = env_u64("LOAD_SECS", 30);
    let clients = env_u64("LOAD_CLIENTS", 32);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("codeai_api_load_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = Database::connect(&format!("sqlite:{}", dir.join("load.db").display()))
            .await
            .unwrap();
        let mut host = Host::new(
            db.clone(),
            HostConfig {
                api: ApiConfig {
                    admin_token_hash: Some(tenants::token_hash(TOKEN)),
                    ..ApiConfig::default()
                },
                ..HostConfig::local(&dir)
            },
        )
        .await
        .unwrap();
        let (example, _) = codeai_dsl::compile(
            "scheduled-jobs.codeai",
            codeai_host::store::demo::EXAMPLE_SOURCE,
        )
        .unwrap();
        let (noop, _) = codeai_dsl::compile("noop.codeai", NOOP).unwrap();
        let components: Vec<(String, Vec<u8>)> = example
            .into_iter()
            .chain(noop)
            .map(|a| (a.file_name, a.bytes))
            .collect();
        let registered = host.register("default", &components).await.unwrap();
        let noop = registered
            .iter()
            .find(|r| r.manifest.name == "Noop")
            .unwrap()
            .clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        host.start();
        host.serve(listener);

        load(&base, reqwest::Method::GET, "/jobs", None, 200, clients, secs).await;
        flood(&base, clients, secs).await;
        let executed = match &db {
            Database::Sqlite(pool) => sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM job_executions WHERE job_name = 'Noop' AND status = 'completed'",
            )
            .fetch_one(pool)
            .await
            .unwrap(),
            Database::Postgres(_) => 0,
        };
        println!("Noop executions completed while the load ran: {executed}");

        // Fairness: the workers on a backlog, alone and under a flood of run requests.
        let (fair_backlog, fair_secs) = (env_u64("FAIR_BACKLOG", 100_000), env_u64("FAIR_SECS", 3));
        drained(&host).await;
        backlog(&host, &noop, fair_backlog).await;
        let alone = pool_rate(&host, fair_secs).await;
        drained(&host).await;
        backlog(&host, &noop, fair_backlog).await;
        let (loaded, ()) = tokio::join!(
            pool_rate(&host, fair_secs),
            flood(&base, clients, fair_secs)
        );
        println!(
            "workers on a backlog: {alone:.0} executions/s alone, {loaded:.0}/s under the flood \
             above ({:.0} %)",
            loaded / alone * 100.0
        );
        host.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    });
}
