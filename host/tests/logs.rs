//! The host's log as an operator reads it, from the real binary: `codeai host run --log-format
//! json` writes one JSON object per line to stderr — a line per finished execution (job, tenant,
//! execution id, attempt, status, duration, fuel, error), one per scheduler fire, a warning at
//! start and at first use for an integration whose base URL or credential is unset — and never
//! a secret's value, even when a server echoes it back into an error. `CODEAI_LOG` comes before
//! `RUST_LOG`; `--log-format pretty` writes text.

#[path = "common/host_process.rs"]
mod host_process;

use host_process::{codeai, free_port, read_lines, temp_dir};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "logs-test-admin-token";
/// The warehouse's key: set in the host's environment, sent by the job, echoed by the server.
const SECRET: &str = "s3cr3t-warehouse-key-4711";

const SOURCE: &str = r#"
integration Warehouse {
    base_url: env("LOGTEST_WAREHOUSE_URL")
    auth: bearer(env("LOGTEST_WAREHOUSE_KEY"))
    timeout: 10s

    items: GET "/v1/items" { since: string }
}

integration Relay {
    base_url: env("LOGTEST_RELAY_URL")
    auth: header("X-Relay-Key", env("LOGTEST_RELAY_KEY"))
    timeout: 10s

    deliver: POST "/v1/deliveries" { event: string }
}

job Ticker {
    description: "Fires every second"
    schedule: every 1s
    steps {
        note { log: "tick" }
    }
}

job Sync {
    description: "Calls the warehouse, which answers 500 with the request's credentials"
    steps {
        fetch {
            call: Warehouse.items { since: "yesterday" }
            as: items
        }
    }
}

job Deliver {
    description: "Calls the relay, whose URL is not set"
    steps {
        send {
            call: Relay.deliver { event: "ping" }
            as: delivery
        }
    }
}
"#;

/// A warehouse on 127.0.0.2 that answers every request 500, its body the request's headers
/// (the `Authorization` header included, as a careless server might).
fn echoing_warehouse() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                request.push(byte[0]);
            }
            // The credentials first, so that they are within the start of the body an error
            // keeps.
            let text = String::from_utf8_lossy(&request).into_owned();
            let (auth, rest): (Vec<&str>, Vec<&str>) = text
                .lines()
                .partition(|l| l.to_ascii_lowercase().starts_with("authorization:"));
            let body = format!("{}\n{}", auth.join("\n"), rest.join("\n"));
            let _ = write!(
                stream,
                "HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/plain\r\n\
                 content-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A running `codeai host run` with its stdout and stderr collected line by line.
struct Host {
    child: Child,
    base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(pipe: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
}

fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Host {
    let _ = rustls::crypto::ring::default_provider().install_default();
    std::fs::write(dir.join("logs.codeai"), SOURCE).unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = codeai(dir);
    cmd.args([
        "host",
        "run",
        "logs.codeai",
        "--listen",
        &listen,
        "--grace-secs",
        "2",
    ])
    .args(args)
    .env("CODEAI_ADMIN_TOKEN", ADMIN)
    .env_remove("CODEAI_LOG")
    .env_remove("RUST_LOG")
    .env_remove("CODEAI_LOG_FORMAT")
    .env_remove("LOGTEST_RELAY_URL")
    .env_remove("LOGTEST_RELAY_KEY")
    .envs(env.iter().copied())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stdout = read_lines(child.stdout.take().unwrap());
    let stderr = Arc::new(Mutex::new(Vec::new()));
    collect(child.stderr.take().unwrap(), stderr.clone());
    let host = Host {
        child,
        base: format!("http://{listen}"),
        stdout,
        stderr,
    };
    host.wait_for("the host serves", |h| {
        h.stdout.lock().unwrap().contains("running;")
    });
    host
}

impl Host {
    /// Polls `reached` until it holds (the host exiting or a generous deadline fails the test).
    fn wait_for(&self, what: &str, reached: impl Fn(&Host) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while !reached(self) {
            assert!(
                Instant::now() < deadline,
                "not reached: {what}\n{}",
                self.stderr.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn request(&self, method: &str, path: &str) -> Value {
        let client = reqwest::blocking::Client::new();
        let url = format!("{}{path}", self.base);
        let req = match method {
            "POST" => client.post(url).json(&serde_json::json!({})),
            _ => client.get(url),
        };
        let r = req.bearer_auth(ADMIN).send().unwrap();
        r.json().unwrap_or(Value::Null)
    }

    /// Triggers `job` and waits until its execution ends; the execution's id.
    fn run(&self, job: &str) -> String {
        let run = self.request("POST", &format!("/jobs/{job}/run"));
        let id = run["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{run}"))
            .to_string();
        self.wait_for(&format!("{job} ends"), |h| {
            let e = h.request("GET", &format!("/executions/{id}"));
            !["pending", "running", "retrying", ""].contains(&e["status"].as_str().unwrap_or(""))
        });
        id
    }

    /// SIGTERM, a clean exit; what it wrote to stdout and stderr.
    fn stop(mut self) -> (String, Vec<String>) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "exit status {status}");
        // The pipes close with the process; the readers finish what is left.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last = usize::MAX;
        loop {
            let n = self.stderr.lock().unwrap().len();
            if n == last || Instant::now() > deadline {
                break;
            }
            last = n;
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lines whose `message` contains `message` and whose string fields match `fields`.
fn lines<'a>(log: &'a [Value], message: &str, fields: &[(&str, &str)]) -> Vec<&'a Value> {
    log.iter()
        .filter(|l| l["message"].as_str().is_some_and(|m| m.contains(message)))
        .filter(|l| fields.iter().all(|(k, v)| l[*k].as_str() == Some(*v)))
        .collect()
}

#[test]
fn json_lines_tell_each_execution_fire_and_unset_integration_and_no_secret() {
    let dir = temp_dir("logs_json");
    let warehouse = echoing_warehouse();
    let host = start(
        &dir,
        &["--log-format", "json"],
        &[
            ("LOGTEST_WAREHOUSE_URL", &warehouse),
            ("LOGTEST_WAREHOUSE_KEY", SECRET),
            ("CODEAI_OPERATOR_EGRESS_ALLOW", "127.0.0.2/32"),
            // CODEAI_LOG comes first: RUST_LOG alone would hide everything below `error`.
            ("CODEAI_LOG", "debug"),
            ("RUST_LOG", "error"),
        ],
    );
    let sync = host.run("Sync");
    let deliver = host.run("Deliver");
    host.wait_for("a fire of Ticker has run", |h| {
        let runs = h.request("GET", "/jobs/Ticker/executions?status=completed");
        runs["data"].as_array().is_some_and(|d| !d.is_empty())
    });
    let ticker = host.request("GET", "/jobs/Ticker/executions?status=completed")["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (stdout, stderr) = host.stop();

    // Every line of stderr is a JSON object with a level and a message.
    let log: Vec<Value> = stderr
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &log {
        assert!(
            line["level"].is_string() && line["timestamp"].is_string(),
            "{line}"
        );
    }
    // The banner stays on stdout.
    assert!(stdout.contains("CodeAI Jobs host"), "{stdout}");

    // One line per finished execution, with its facts.
    let failed = lines(&log, "execution finished", &[("execution", &sync)]);
    assert_eq!(failed.len(), 1, "{stderr:#?}");
    let line = failed[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(line["job"], "Sync", "{line}");
    assert_eq!(line["tenant"], "default", "{line}");
    assert_eq!(line["attempt"], 1, "{line}");
    assert_eq!(line["status"], "failed", "{line}");
    assert!(
        line["duration_ms"].is_u64() && line["fuel"].is_u64(),
        "{line}"
    );
    let error = line["error"].as_str().unwrap();
    assert!(error.contains("answered 500"), "{line}");
    assert!(
        error.contains("[secret]"),
        "the echoed key is redacted: {line}"
    );
    let completed = lines(&log, "execution finished", &[("execution", &ticker)]);
    assert_eq!(completed.len(), 1, "{stderr:#?}");
    assert_eq!(completed[0]["level"], "INFO");
    assert_eq!(completed[0]["status"], "completed");
    assert_eq!(completed[0]["job"], "Ticker");

    // One line per scheduler fire, naming the execution it enqueued.
    let fired = lines(&log, "scheduled fire enqueued", &[("execution", &ticker)]);
    assert_eq!(fired.len(), 1, "{stderr:#?}");
    assert_eq!(fired[0]["job"], "Ticker");
    assert!(fired[0]["fire_at"].is_string(), "{}", fired[0]);

    // The relay is not configured: warned once at start per variable, once at its first call.
    for variable in ["LOGTEST_RELAY_URL", "LOGTEST_RELAY_KEY"] {
        let at_start = lines(&log, "is not set; its calls", &[("variable", variable)]);
        assert_eq!(at_start.len(), 1, "{variable}: {stderr:#?}");
        assert_eq!(at_start[0]["level"], "WARN");
        assert_eq!(at_start[0]["integration"], "Relay");
        assert_eq!(at_start[0]["job"], "Deliver");
    }
    let at_use = lines(
        &log,
        "was called but",
        &[("integration", "Relay"), ("variable", "LOGTEST_RELAY_URL")],
    );
    assert_eq!(at_use.len(), 1, "{stderr:#?}");
    assert_eq!(at_use[0]["job"], "Deliver");
    assert_eq!(
        lines(&log, "execution finished", &[("execution", &deliver)])[0]["status"],
        "failed"
    );
    // The warehouse is configured: no warning about it.
    assert!(
        lines(&log, "", &[("integration", "Warehouse")]).is_empty(),
        "{stderr:#?}"
    );

    // The key never appears, at debug level, anywhere.
    let everything = format!("{stdout}\n{}", stderr.join("\n"));
    assert!(!everything.contains(SECRET), "the secret was logged");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pretty_lines_are_text_and_rust_log_filters_them() {
    let dir = temp_dir("logs_pretty");
    let host = start(
        &dir,
        &[],
        &[("RUST_LOG", "warn,codeai_host::scheduler=info")],
    );
    host.wait_for("a fire is logged", |h| {
        h.stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("scheduled fire enqueued"))
    });
    let (_, stderr) = host.stop();
    let fire = stderr
        .iter()
        .find(|l| l.contains("scheduled fire enqueued"))
        .unwrap();
    assert!(serde_json::from_str::<Value>(fire).is_err(), "{fire}");
    assert!(
        fire.contains("INFO") && fire.contains("job=Ticker"),
        "{fire}"
    );
    // `RUST_LOG` keeps the executions' lines (info, outside the scheduler) out.
    assert!(
        !stderr.iter().any(|l| l.contains("execution finished")),
        "{stderr:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_log_format_or_filter_is_refused() {
    let dir = temp_dir("logs_refused");
    let out = codeai(&dir)
        .args(["host", "run", "none.codeai", "--log-format", "yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("yaml"),
        "{out:?}"
    );
    let out = codeai(&dir)
        .args(["schedule", "next", "0 6 * * *"])
        .env("CODEAI_LOG", "codeai_host=loud")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CODEAI_LOG"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
