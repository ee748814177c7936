//! Egress and host memory: a tenant's integration pointed at the host's own API, at loopback,
//! at the private network or the cloud's metadata service is refused before anything is sent
//! (the listener counts connections, not requests); the operator's allow lists open exactly what
//! they name, one list for tenants' jobs and one for the operator's; and what the host buffers
//! for an execution (a flood of big responses, a select of big rows) counts against its memory
//! cap, so the execution ends `memory_exceeded` with the host's memory bounded.

use super::support::*;
use crate::common::peers::read_head;
use crate::common::{run_postgres, run_sqlite};
use codeai_host::store::Database;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

on_both_databases!(
    a_tenant_cannot_reach_the_host_loopback_private_or_metadata_addresses,
    the_allow_lists_open_what_they_name_for_whom_they_name,
    a_flood_of_big_responses_ends_memory_exceeded_with_host_memory_bounded,
    a_select_of_big_rows_ends_memory_exceeded,
    a_job_never_has_more_calls_in_flight_than_the_most_parallel,
);

/// A loopback server that holds every request until `total` have arrived or none has arrived for
/// `quiet`, then answers them all (and every later one at once): the most it held at once is
/// the most calls a client had in flight.
struct Holding {
    url: String,
    most: Arc<AtomicUsize>,
}

impl Holding {
    async fn start(total: usize, quiet: std::time::Duration) -> Holding {
        use std::sync::Mutex;
        use tokio::sync::Notify;
        #[derive(Default)]
        struct Seen {
            held: usize,
            arrived: usize,
            released: bool,
            last: Option<tokio::time::Instant>,
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let most = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let release = Arc::new(Notify::new());
        let most_seen = most.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (seen, release, most) = (seen.clone(), release.clone(), most_seen.clone());
                tokio::spawn(async move {
                    let Some(_) = read_head(&mut socket).await else {
                        return;
                    };
                    {
                        let mut s = seen.lock().unwrap();
                        s.held += 1;
                        s.arrived += 1;
                        s.last = Some(tokio::time::Instant::now());
                        most.fetch_max(s.held, Ordering::SeqCst);
                    }
                    loop {
                        let notified = release.notified();
                        {
                            let mut s = seen.lock().unwrap();
                            let quiet_for = s.last.map(|l| l.elapsed()).unwrap_or_default();
                            if !s.released && (s.arrived >= total || quiet_for >= quiet) {
                                s.released = true;
                                release.notify_waiters();
                            }
                            if s.released {
                                s.held -= 1;
                                break;
                            }
                        }
                        let _ = tokio::time::timeout(quiet, notified).await;
                    }
                    let body = br#"{"ok":true}"#;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                         content-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Holding { url, most }
    }
}

/// A loopback HTTP server answering every request with `body(path)`, counting the connections
/// it accepts (a refused call must not even connect). Bodies are shared, never copied per
/// request.
struct Listener {
    url: String,
    port: u16,
    accepted: Arc<AtomicUsize>,
}

impl Listener {
    async fn start(body: impl Fn(&str) -> Arc<[u8]> + Send + Sync + 'static) -> Listener {
        Listener::start_on("127.0.0.1", body).await
    }

    /// A listener on another loopback address (`127.0.0.2`).
    async fn start_on(
        ip: &str,
        body: impl Fn(&str) -> Arc<[u8]> + Send + Sync + 'static,
    ) -> Listener {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let body = Arc::new(body);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                tokio::spawn(async move {
                    let Some(head) = read_head(&mut socket).await else {
                        return;
                    };
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let body = body(&path);
                    // A big body comes without its length (read until the connection closes),
                    // so the host cannot size its buffer from a header: it must count the
                    // bytes as they arrive.
                    let length = if body.len() > 1 << 20 {
                        String::new()
                    } else {
                        format!("content-length: {}\r\n", body.len())
                    };
                    let start = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}\
                         connection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(start.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Listener {
            url: format!("http://{ip}:{port}"),
            port,
            accepted,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn ok_body(_: &str) -> Arc<[u8]> {
    Arc::from(&br#"{"ok":true}"#[..])
}

/// A source whose job `name` calls each of `targets` (base URLs) once, failures continued.
fn probe_source(name: &str, targets: &[String]) -> String {
    let mut source = String::new();
    let mut steps = String::new();
    for (i, target) in targets.iter().enumerate() {
        source.push_str(&format!(
            "integration Target{i} {{\n    base_url: \"{target}\"\n    timeout: 5s\n    \
             ping: GET \"/ping\" {{}}\n}}\n\n"
        ));
        steps.push_str(&format!(
            "        call{i} {{\n            call: Target{i}.ping {{}}\n            \
             on_fail: continue\n        }}\n"
        ));
    }
    source.push_str(&format!("job {name} {{\n    steps {{\n{steps}    }}\n}}\n"));
    source
}

/// The errors of an execution's `http.call`s, in order (`None` for a call that went through).
fn call_errors(execution: &Value) -> Vec<Option<String>> {
    execution["calls"]
        .as_array()
        .unwrap_or_else(|| panic!("no calls: {execution}"))
        .iter()
        .filter(|c| c["call"] == "http.call")
        .map(|c| c["error"].as_str().map(str::to_string))
        .collect()
}

async fn a_tenant_cannot_reach_the_host_loopback_private_or_metadata_addresses(db: Database) {
    let listener = Listener::start(ok_body).await;
    let host = TestHost::start(db.clone(), |_| {}).await;
    let token = tenant(&db, "mallory").await;
    let p = listener.port;
    let targets: Vec<(String, &str)> = vec![
        (host.base.clone(), "loopback"),
        (listener.url.clone(), "loopback"),
        ("http://10.0.0.1".into(), "private"),
        ("http://169.254.169.254".into(), "link-local"),
        (format!("http://localhost:{p}"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{p}"), "loopback"),
        (format!("http://0.0.0.0:{p}"), "unspecified"),
        (format!("http://2130706433:{p}"), "loopback"),
        (format!("http://[::1]:{p}"), "loopback"),
    ];
    let urls: Vec<String> = targets.iter().map(|(u, _)| u.clone()).collect();
    host.upload_ok(&token, job(&probe_source("Probe", &urls), "Probe"))
        .await;
    let done = host.run(&token, "Probe", json!({})).await;
    assert_eq!(done["status"], "completed", "{done}");
    let errors = call_errors(&done);
    assert_eq!(errors.len(), targets.len(), "{done}");
    for ((url, class), error) in targets.iter().zip(&errors) {
        let error = error.as_deref().unwrap_or("(went through)");
        if url.contains("localhost") {
            // A name: refused without saying what it resolves to.
            assert!(
                error.starts_with("denied: ")
                    && error.contains(
                        "`localhost` does not resolve to an address a tenant's job may call"
                    )
                    && !error.contains("127.0.0.1")
                    && !error.contains("::1")
                    && !error.contains(class),
                "{url}: {error}"
            );
            continue;
        }
        assert!(
            error.starts_with("denied: ")
                && error.contains(class)
                && error.contains("the operator can allow it with CODEAI_EGRESS_ALLOW="),
            "{url}: {error}"
        );
    }
    // The execution has ended: nothing reached the listener, not even a connection.
    assert_eq!(listener.accepted(), 0);
    host.stop().await;
}

async fn the_allow_lists_open_what_they_name_for_whom_they_name(db: Database) {
    // Tenants may call 127.0.0.1, the operator's jobs 127.0.0.2: each list is its own.
    let tenants_peer = Listener::start(ok_body).await;
    let operator_peer = Listener::start_on("127.0.0.2", ok_body).await;
    let host = TestHost::start(db.clone(), |c| {
        c.services.egress.tenants = "127.0.0.1/32".parse().unwrap();
        c.services.egress.operator = "127.0.0.2/32".parse().unwrap();
    })
    .await;
    let both = [tenants_peer.url.clone(), operator_peer.url.clone()];
    let token = tenant(&db, "acme").await;
    host.upload_ok(&token, job(&probe_source("Probe", &both), "Probe"))
        .await;
    let done = host.run(&token, "Probe", json!({})).await;
    let errors = call_errors(&done);
    assert_eq!(errors[0], None, "{done}");
    assert_loopback_denied(&errors[1], "127.0.0.2", "CODEAI_EGRESS_ALLOW");
    assert_eq!((tenants_peer.accepted(), operator_peer.accepted()), (1, 0));

    // A name is checked on what it resolves to: `localhost` leads to the allowed 127.0.0.1
    // (its `::1` is dropped).
    let named = [format!("http://localhost:{}", tenants_peer.port)];
    host.upload_ok(&token, job(&probe_source("Named", &named), "Named"))
        .await;
    let done = host.run(&token, "Named", json!({})).await;
    assert_eq!(call_errors(&done), [None], "{done}");
    assert_eq!((tenants_peer.accepted(), operator_peer.accepted()), (2, 0));

    // The operator's own job (the default tenant's), under the operator's list.
    let source = probe_source("OperatorProbe", &both);
    host.upload_ok(ADMIN, job(&source, "OperatorProbe")).await;
    let done = host.run(ADMIN, "OperatorProbe", json!({})).await;
    let errors = call_errors(&done);
    assert_loopback_denied(&errors[0], "127.0.0.1", "CODEAI_OPERATOR_EGRESS_ALLOW");
    assert_eq!(errors[1], None, "{done}");
    assert_eq!((tenants_peer.accepted(), operator_peer.accepted()), (2, 1));
    host.stop().await;
}

/// `error` denies a call to the loopback `address` and names the setting that would allow it.
#[track_caller]
fn assert_loopback_denied(error: &Option<String>, address: &str, setting: &str) {
    let error = error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with("denied: ")
            && error.contains(&format!("`{address}` is a loopback address"))
            && error.contains(&format!("{setting}={address}/32")),
        "{error}"
    );
}

/// Peak-RSS measurements must not overlap: one at a time in this process.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Set in the child process that runs one measuring test alone.
const ALONE: &str = "CODEAI_TEST_ALONE";

/// A peak RSS is the whole process's: a measuring test must not share its process with other
/// tests. nextest gives every test a process of its own; under `cargo test` (threads) the test
/// runs itself again, alone, in a child process, and this returns true once the child passed.
async fn ran_in_child(db: &Database, scenario: &str) -> bool {
    if std::env::var_os("NEXTEST_RUN_ID").is_some() || std::env::var_os(ALONE).is_some() {
        return false;
    }
    let kind = match db {
        Database::Sqlite(_) => "sqlite",
        Database::Postgres(_) => "postgres",
    };
    let name = format!("egress::{kind}::{scenario}");
    let child = name.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                child.as_str(),
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(ALONE, "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} alone:\n{stdout}\n{stderr}"
    );
    true
}

/// A host whose tenants may call peers on loopback, and a token of its tenant `name`.
async fn host_calling_loopback(db: &Database, name: &str) -> (TestHost, String) {
    let host = TestHost::start(db.clone(), |c| {
        c.services.egress.tenants = "127.0.0.1/32".parse().unwrap();
    })
    .await;
    let token = tenant(db, name).await;
    (host, token)
}

/// The integration `Peer` at `url`, whose `get` fetches `/item/{n}`, and the job `name` that
/// calls it for each of `input.items`, `parallel` at once, with `extra` in its step.
fn fan_out(url: &str, name: &str, parallel: u32, extra: &str) -> String {
    format!(
        r#"
integration Peer {{
    base_url: "{url}"
    timeout: 60s
    get: GET "/item/{{n}}" {{ n: int }}
}}

job {name} {{
    steps {{
        fetch {{
            for_each: input.items
            item: i
            parallel: {parallel}
            call: Peer.get {{ n: i }}
            {extra}
            as: answers
        }}
    }}
}}
"#
    )
}

const MEMORY_CAP: usize = 64 << 20;

fn status_bytes(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: usize = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    kib << 10
}

/// Runs `f` and returns its result with the growth of the process's peak RSS over the RSS at
/// its start (the peak is reset first: `5` to `clear_refs`).
async fn peak_rss_growth<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_bytes("VmRSS:");
    let out = f.await;
    let peak = status_bytes("VmHWM:");
    (out, peak.saturating_sub(before))
}

async fn a_flood_of_big_responses_ends_memory_exceeded_with_host_memory_bounded(db: Database) {
    let scenario = "a_flood_of_big_responses_ends_memory_exceeded_with_host_memory_bounded";
    if ran_in_child(&db, scenario).await {
        return;
    }
    // 16 MiB of JSON (one string), shared by every response; `/item/0` answers a small body.
    let big: Arc<[u8]> = {
        let mut body = vec![b'x'; 16 << 20];
        body[0] = b'"';
        *body.last_mut().unwrap() = b'"';
        body.into()
    };
    let listener = Listener::start(move |path| {
        if path.ends_with("/0") {
            Arc::from(&b"\"small\""[..])
        } else {
            big.clone()
        }
    })
    .await;
    let (host, token) = host_calling_loopback(&db, "hog").await;
    let source = fan_out(&listener.url, "Flood", 64, "on_fail: continue");
    host.upload_ok(&token, job(&source, "Flood")).await;
    let _one_at_a_time = MEASURING.lock().await;
    // Warm-up: the component is compiled and instantiated, the connection code runs.
    let warm = host.run(&token, "Flood", json!({ "items": [0] })).await;
    assert_eq!(warm["status"], "completed", "{warm}");
    let items: Vec<u32> = (1..=64).collect();
    let (done, growth) =
        peak_rss_growth(host.run(&token, "Flood", json!({ "items": items }))).await;
    eprintln!(
        "64 x 16 MiB with parallel 64: {} after {} connections, peak RSS growth {:.1} MiB",
        done["status"],
        listener.accepted() - 1,
        growth as f64 / (1 << 20) as f64
    );
    assert_exceeded(
        &done,
        "host-side buffers for `http.call-many` Peer.get exceeded the execution's memory cap of 64.0 MiB",
    );
    assert_rss_held(growth);
    host.stop().await;
}

async fn a_select_of_big_rows_ends_memory_exceeded(db: Database) {
    if ran_in_child(&db, "a_select_of_big_rows_ends_memory_exceeded").await {
        return;
    }
    let host = TestHost::start(db.clone(), |_| {}).await;
    let token = tenant(&db, "hoarder").await;
    let source = r#"
entity Blob {
    table: "blobs"
    id: uuid primary
    n: int
    data: string
}

job Fill {
    steps {
        put {
            for_each: input.keys
            item: k
            action: insert Blob { n: k, data: concat(input.blob, input.blob, input.blob, input.blob, input.blob, input.blob, input.blob, input.blob) }
        }
    }
}

job Dump {
    steps {
        all {
            query: select Blob
            as: rows
            on_fail: continue
        }
    }
}
"#;
    host.upload_ok(&token, job(source, "Fill")).await;
    host.upload_ok(&token, job(source, "Dump")).await;
    // 3 runs x 8 rows x 4 MiB: 96 MiB of rows, put in by the tenant's own job.
    let blob = "b".repeat(512 << 10);
    for run in 0..3 {
        let keys: Vec<u32> = (0..8).map(|k| run * 8 + k).collect();
        let done = host
            .run(&token, "Fill", json!({ "keys": keys, "blob": blob }))
            .await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    let _one_at_a_time = MEASURING.lock().await;
    let warm = host.run(&token, "Dump", json!({})).await;
    let (done, growth) = peak_rss_growth(host.run(&token, "Dump", json!({}))).await;
    eprintln!(
        "select of 96 MiB of rows: {}, peak RSS growth {:.1} MiB",
        done["status"],
        growth as f64 / (1 << 20) as f64
    );
    for done in [&warm, &done] {
        assert_exceeded(done, "host-side buffers for `data.select` Blob exceeded");
    }
    assert_rss_held(growth);
    host.stop().await;
}

/// The execution `done` ended `memory_exceeded` with an error that starts with `error`.
#[track_caller]
fn assert_exceeded(done: &Value, error: &str) {
    assert_eq!(done["status"], "memory_exceeded", "{done}");
    let got = done["error"].as_str().unwrap_or_default();
    assert!(got.starts_with(error), "{got}");
}

/// The process's peak RSS grew by less than twice an execution's memory cap.
#[track_caller]
fn assert_rss_held(growth: usize) {
    assert!(
        growth < 2 * MEMORY_CAP,
        "peak RSS grew by {growth} bytes for an execution capped at {MEMORY_CAP}"
    );
}

async fn a_job_never_has_more_calls_in_flight_than_the_most_parallel(db: Database) {
    // A program asking for 999 calls at once, made with the compiler's own `emit` (the origin
    // check passes: only the compiler's bound, not the host's, is stepped over).
    const MOST: usize = codeai_ir::limits::MAX_PARALLEL as usize;
    let server = Holding::start(MOST + 50, std::time::Duration::from_secs(2)).await;
    let (host, token) = host_calling_loopback(&db, "fan").await;
    let source = fan_out(&server.url, "Fan", 2, "");
    let built = job(&source, "Fan");
    let mut program =
        serde_json::to_value(codeai_dsl::emit::read_program(&built).unwrap()).unwrap();
    fn ask_for(v: &mut Value, n: u32) -> usize {
        match v {
            Value::Object(map) => {
                let mut found = 0;
                if let Some(p) = map.get_mut("parallel") {
                    *p = json!(n);
                    found += 1;
                }
                found + map.values_mut().map(|v| ask_for(v, n)).sum::<usize>()
            }
            Value::Array(items) => items.iter_mut().map(|v| ask_for(v, n)).sum(),
            _ => 0,
        }
    }
    assert_eq!(ask_for(&mut program, 999), 1, "{program}");
    let program: codeai_ir::Program = serde_json::from_value(program).unwrap();
    let manifest = codeai_dsl::emit::read_manifest(&built).unwrap();
    let greedy = codeai_dsl::emit::emit(&program, &manifest).unwrap();
    host.upload_ok(&token, greedy).await;
    let items: Vec<usize> = (0..MOST + 50).collect();
    let done = host.run(&token, "Fan", json!({ "items": items })).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        server.most.load(Ordering::SeqCst),
        MOST,
        "calls in flight at once"
    );
    let many = done["calls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["call"] == "http.call-many")
        .unwrap_or_else(|| panic!("no call-many: {done}"));
    assert!(
        many["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("(concurrency {MOST})")),
        "{many}"
    );
    host.stop().await;
}
