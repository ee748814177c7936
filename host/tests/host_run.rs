//! `codeai host run` as a user starts it: the spec's requests of
//! `examples/05-scheduled-jobs/test.sh` against the served API, graceful stop on SIGTERM, and the
//! admin token generated at the first start and printed once.

#[path = "common/host_process.rs"]
mod host_process;

use host_process::{start, temp_dir, ROOT};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs test.sh; returns `(request, HTTP status)` in order.
fn test_sh(base: &str, token: &str, extra: &[(&str, &str)]) -> Vec<(String, u16)> {
    let out = Command::new("bash")
        .arg(format!("{ROOT}/examples/05-scheduled-jobs/test.sh"))
        .env("BASE_URL", base)
        .env("CODEAI_TOKEN", token)
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut requests = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(r) = line.strip_prefix("### ") {
            current = r.to_string();
        } else if let Some(code) = line.strip_prefix("HTTP ") {
            requests.push((current.clone(), code.trim().parse().unwrap()));
        }
    }
    requests
}

#[test]
fn test_sh_gets_the_spec_answers_from_host_run() {
    let dir = temp_dir("spec");
    const TOKEN: &str = "host-run-test-token";
    let host = start(&dir, Some(TOKEN));
    let banner = host.stdout.lock().unwrap().clone();
    assert!(
        banner.contains(&format!("API       {}", host.base)),
        "{banner}"
    );
    assert!(
        banner.contains("the token in CODEAI_ADMIN_TOKEN"),
        "{banner}"
    );

    let (_, before) = host.get(TOKEN, "/jobs/DailySalesReport");
    let answers = test_sh(&host.base, TOKEN, &[]);
    // It changed the job's schedule and put it back.
    let (_, after) = host.get(TOKEN, "/jobs/DailySalesReport");
    for field in ["schedule", "timezone", "is_enabled"] {
        assert_eq!(after[field], before[field], "{field}: {after}");
    }
    let expected = [
        "GET /jobs",
        "GET /jobs/DailySalesReport",
        "POST /jobs/DailySalesReport/run",
        "POST /jobs/DailySalesReport/pause",
        "POST /jobs/DailySalesReport/resume",
        "PUT /jobs/DailySalesReport/schedule",
        "GET /queues/status",
        "GET /jobs/DailySalesReport/executions?status=failed",
        "GET /reports",
    ];
    let requests: Vec<&str> = answers.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(requests, expected);
    for (request, status) in &answers {
        assert!((200..300).contains(status), "{request}: HTTP {status}");
    }

    // The run it triggered completes and renders a report; then the execution and report
    // requests of the script.
    // The script's run, not a fire of the job's schedule that may have come meanwhile.
    let (_, runs) = host.get(TOKEN, "/jobs/DailySalesReport/executions");
    let execution = runs["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["trigger"] == "manual")
        .unwrap_or_else(|| panic!("no manual run: {runs}"))["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, e) = host.get(TOKEN, &format!("/executions/{execution}"));
        if e["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "run did not complete: {e}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, reports) = host.get(TOKEN, "/reports");
    let report = reports["data"][0]["id"].as_str().unwrap().to_string();
    let answers = test_sh(
        &host.base,
        TOKEN,
        &[("EXECUTION", &execution), ("REPORT", &report)],
    );
    let status_of = |r: &str| {
        answers
            .iter()
            .find(|(req, _)| req == r)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("{r} not requested: {answers:?}"))
    };
    assert_eq!(status_of(&format!("GET /executions/{execution}")), 200);
    // A completed execution is neither retried nor cancelled.
    assert_eq!(
        status_of(&format!("POST /executions/{execution}/retry")),
        409
    );
    assert_eq!(
        status_of(&format!("POST /executions/{execution}/cancel")),
        409
    );
    assert_eq!(status_of(&format!("GET /reports/{report}")), 200);
    assert_eq!(status_of(&format!("GET /reports/{report}/download")), 200);

    let out = host.stop();
    assert!(out.contains("running; Ctrl-C to stop"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The generated token is printed at the first start only; a job paused over the API shows as
/// paused in the next start's list of jobs.
#[test]
fn without_an_admin_token_one_is_generated_and_printed_once() {
    let dir = temp_dir("token");
    let host = start(&dir, None);
    let banner = host.stdout.lock().unwrap().clone();
    let token = banner
        .lines()
        .find_map(|l| l.strip_prefix("admin     "))
        .map(str::trim)
        .filter(|t| t.starts_with("cai_"))
        .unwrap_or_else(|| panic!("no generated token in the banner: {banner}"))
        .to_string();
    assert_eq!(host.get(&token, "/jobs").0, 200);
    assert_eq!(host.get("cai_wrong", "/jobs").0, 401);
    // Paused while the host runs (a job is addressed by its name too): the next start says so
    // instead of a next run.
    let paused = host.post(&token, "/jobs/ProcessPendingWebhooks/pause");
    assert!(paused.0 < 300, "{paused:?}");
    host.stop();

    // Second start: not printed again, still valid.
    let host = start(&dir, None);
    let banner = host.stdout.lock().unwrap().clone();
    assert!(!banner.contains(&token), "{banner}");
    assert!(banner.contains("not shown again"), "{banner}");
    assert_eq!(host.get(&token, "/jobs").0, 200);
    let row = |job: &str| {
        banner
            .lines()
            .find(|l| l.starts_with(job))
            .unwrap_or_default()
    };
    assert!(
        row("ProcessPendingWebhooks ").contains("paused"),
        "{banner}"
    );
    assert!(
        !row("SyncExternalInventory ").contains("paused"),
        "{banner}"
    );
    host.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

/// schemathesis (PyPI, `st`) generates requests from `/openapi.json` of a live host: no 5xx,
/// every status code, content type and body as documented. `.ci/run` installs it; under
/// `CI=true` a missing `st` fails this test, elsewhere it is skipped with a notice.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_schema() {
    let st = std::env::var("SCHEMATHESIS").unwrap_or_else(|_| "st".into());
    if Command::new(&st).arg("--version").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("schemathesis (`{st}`) is not installed: pip install schemathesis");
        }
        eprintln!("notice: schemathesis (`{st}`) is not installed; skipping");
        return;
    }
    let dir = temp_dir("schemathesis");
    const TOKEN: &str = "schemathesis-token";
    let host = start(&dir, Some(TOKEN));
    let out = Command::new(&st)
        .args([
            "run",
            &format!("{}/openapi.json", host.base),
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "20",
            "--seed",
            "1",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    host.stop();
    assert!(out.status.success(), "{report}");
    assert!(report.contains("passed"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}
