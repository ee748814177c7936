//! OpenTelemetry traces of a real `codeai host run`: with `OTEL_EXPORTER_OTLP_ENDPOINT` set, an
//! execution is a span whose parent is the `traceparent` its run request carried, each of the
//! job's steps a child span of it and each capability call a child of its step, and the integration the job calls receives the
//! execution's trace context; an OTLP/HTTP receiver in the test reads what the host exports.

#[path = "common/host_process.rs"]
mod host_process;

use host_process::{start_with, temp_dir};
use serde_json::Value;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ADMIN: &str = "traces-test-admin";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

/// One request a [`Peer`] received: its header lines (lower-cased names) and its body.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP/1.1 server on `ip` that answers every request 200 with `answer` (JSON) and keeps
/// what it received.
struct Peer {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Peer {
    fn start(ip: &str, answer: &'static str) -> Peer {
        let listener = TcpListener::bind(format!("{ip}:0")).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let sink = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let sink = sink.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    // Requests on one connection, one after the other.
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((n, v)) = h.split_once(':') {
                                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
                            }
                        }
                        let length: usize = headers
                            .iter()
                            .find(|(n, _)| n == "content-length")
                            .and_then(|(_, v)| v.parse().ok())
                            .unwrap_or(0);
                        let mut body = vec![0; length];
                        if reader.read_exact(&mut body).is_err() {
                            return;
                        }
                        sink.lock().unwrap().push(Received {
                            headers,
                            body: String::from_utf8_lossy(&body).into_owned(),
                        });
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\n\r\n{answer}",
                            answer.len()
                        );
                    }
                });
            }
        });
        Peer { url, received }
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A time of OTLP/JSON (a number, or a string holding one).
fn nanos(v: &Value) -> u128 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a time: {v}")),
        other => other
            .as_u64()
            .map(u128::from)
            .unwrap_or_else(|| panic!("not a time: {other}")),
    }
}

/// Every span the collector received: `(resource attributes, span)`.
fn spans(collector: &Peer) -> Vec<(Value, Value)> {
    let mut all = Vec::new();
    for r in collector.requests() {
        let export: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("not OTLP JSON ({e}): {}", r.body));
        for rs in export["resourceSpans"].as_array().into_iter().flatten() {
            for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                for span in ss["spans"].as_array().into_iter().flatten() {
                    all.push((rs["resource"]["attributes"].clone(), span.clone()));
                }
            }
        }
    }
    all
}

/// The string value of attribute `key` in an OTLP attribute list.
fn attribute(attributes: &Value, key: &str) -> Option<String> {
    let a = attributes.as_array()?.iter().find(|a| a["key"] == key)?;
    let v = &a["value"];
    v["stringValue"]
        .as_str()
        .map(str::to_string)
        .or_else(|| v["intValue"].as_str().map(str::to_string))
        .or_else(|| v["intValue"].as_i64().map(|i| i.to_string()))
}

#[test]
fn an_execution_span_has_the_requests_parent_and_its_calls_as_children() {
    let dir = temp_dir("traces");
    let collector = Peer::start("127.0.0.1", "{}");
    let warehouse = Peer::start("127.0.0.2", r#"{"items": []}"#);
    let host = start_with(
        &dir,
        Some(ADMIN),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_SERVICE_NAME", "codeai-traces-test"),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("WAREHOUSE_API_URL", warehouse.url.as_str()),
            ("WAREHOUSE_API_KEY", "wh-key"),
            ("CODEAI_OPERATOR_EGRESS_ALLOW", "127.0.0.2/32"),
        ],
    );

    let parent = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let client = reqwest::blocking::Client::new();
    let run: Value = client
        .post(format!("{}/jobs/SyncExternalInventory/run", host.base))
        .bearer_auth(ADMIN)
        .header("traceparent", &parent)
        .json(&serde_json::json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = run["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{run}"))
        .to_string();

    // The execution's span, once exported.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (resource, execution) = loop {
        let found = spans(&collector).into_iter().find(|(_, s)| {
            attribute(&s["attributes"], "codeai.execution_id").as_deref() == Some(id.as_str())
        });
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no span of execution {id}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        attribute(&resource, "service.name").as_deref(),
        Some("codeai-traces-test")
    );
    assert_eq!(
        execution["name"], "execution SyncExternalInventory",
        "{execution}"
    );
    assert_eq!(execution["traceId"], TRACE_ID, "{execution}");
    assert_eq!(execution["parentSpanId"], PARENT_SPAN, "{execution}");
    let attributes = &execution["attributes"];
    for (key, value) in [
        ("codeai.job", "SyncExternalInventory"),
        ("codeai.tenant", "default"),
        ("codeai.queue", "default"),
        ("codeai.trigger", "manual"),
        ("codeai.attempt", "1"),
        ("codeai.job_version", "1"),
    ] {
        assert_eq!(
            attribute(attributes, key).as_deref(),
            Some(value),
            "{key}: {execution}"
        );
    }
    let status = attribute(attributes, "codeai.status").expect("a status");
    let execution_span = execution["spanId"].as_str().unwrap().to_string();

    // Its steps are its children, in order; each call is a child of the step it was made in.
    let children = |parent: &str| -> Vec<Value> {
        let mut all: Vec<Value> = spans(&collector)
            .into_iter()
            .map(|(_, s)| s)
            .filter(|s| s["parentSpanId"] == parent)
            .collect();
        all.sort_by_key(|s| nanos(&s["startTimeUnixNano"]));
        all
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let steps = loop {
        let steps = children(&execution_span);
        if steps.len() >= 4 {
            break steps;
        }
        assert!(Instant::now() < deadline, "no step spans under {execution}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "step sync_inventory",
            "step update_products",
            "step remember_sync",
            "step announce"
        ],
        "{steps:?}"
    );
    for step in &steps {
        assert_eq!(step["traceId"], TRACE_ID, "{step}");
        assert!(
            nanos(&step["endTimeUnixNano"]) >= nanos(&step["startTimeUnixNano"]),
            "{step}"
        );
    }
    let first_step = steps[0]["spanId"].as_str().unwrap().to_string();
    let calls = children(&first_step);
    let http = calls
        .iter()
        .find(|c| c["name"] == "call http.call")
        .unwrap_or_else(|| panic!("no http.call span: {calls:?}"));
    assert_eq!(http["traceId"], TRACE_ID);
    assert_eq!(
        attribute(&http["attributes"], "codeai.detail").as_deref(),
        Some("WarehouseAPI.get_inventory: HTTP 200"),
        "{http}"
    );
    // The job is scheduled too (`every 30m`, on the clock's half hours): a fire of its schedule
    // during the test sends a request of its own, in a trace of its own.
    let sent: Vec<_> = warehouse
        .requests()
        .into_iter()
        .filter(|r| {
            r.header("traceparent")
                .is_some_and(|t| t.contains(TRACE_ID))
        })
        .collect();
    assert_eq!(sent.len(), 1, "{:?}", warehouse.requests());
    // Every call of an execution carries its trace, the schedule's fires too.
    assert!(
        warehouse
            .requests()
            .iter()
            .all(|r| r.header("traceparent").is_some()),
        "{:?}",
        warehouse.requests()
    );
    assert_eq!(
        sent[0].header("traceparent"),
        Some(format!("00-{TRACE_ID}-{execution_span}-01").as_str()),
        "{sent:?}"
    );
    assert_eq!(status, "completed", "{execution}");

    host.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
