//! The web dashboard end to end: `codeai host run` on the example, driven in headless Chromium
//! by `tests/e2e/dashboard.mjs` (playwright-core): sign in with a token, the ten jobs, pause and
//! resume, edit a schedule with its live preview, run a job and watch it complete, its detail,
//! the executions filter, download a report, the outbox, the events and their filters, cancel a
//! long-running execution, a phone-sized screen, keyboard use, and a tenant's token that sees
//! only its own job and events. No console error and no failed request on any page. Screenshots
//! go to `target/tmp/dashboard-e2e/`.
//!
//! Needs Debian's `chromium` and `npm ci` in `host/tests/e2e` (`.ci/run` does both); under
//! `CI=true` a missing one fails the test, elsewhere it is skipped with a notice.

#[path = "common/host_process.rs"]
mod host_process;

use host_process::{codeai, start_with, temp_dir};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const E2E: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e");
const ARTIFACTS: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/dashboard-e2e");
const ADMIN: &str = "dashboard-e2e-admin-token";

const TENANT_SOURCE: &str = r#"
job AcmeNightlyExport {
    description: "Acme's own nightly export"
    schedule: "30 1 * * *"
    timezone: "Europe/Paris"
    steps {
        note { log: "exporting" }
    }
}
"#;

/// What the test needs from the machine, or why it cannot run.
fn prerequisites() -> Result<PathBuf, String> {
    let chromium = PathBuf::from(std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into()));
    if !chromium.exists() {
        return Err(format!(
            "{} is missing: apt-get install chromium",
            chromium.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node is missing".into());
    }
    for package in ["playwright-core", "axe-core"] {
        if !Path::new(E2E).join("node_modules").join(package).exists() {
            return Err(format!("{package} is missing: npm ci --prefix {E2E}"));
        }
    }
    Ok(chromium)
}

/// Accepts connections and never answers: the warehouse of a job that runs until cancelled.
fn black_hole() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().map_while(Result::ok) {
            held.push(stream);
        }
    });
    url
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let chromium = match prerequisites() {
        Ok(c) => c,
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("{why}"),
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = temp_dir("dashboard");
    let warehouse = black_hole();
    let host = start_with(
        &dir,
        Some(ADMIN),
        &[
            ("WAREHOUSE_API_URL", &warehouse),
            ("WAREHOUSE_API_KEY", "e2e-key"),
            // The black hole is on loopback, which the egress policy refuses by default.
            ("CODEAI_OPERATOR_EGRESS_ALLOW", "127.0.0.1/32"),
        ],
    );

    let banner = host.stdout.lock().unwrap().clone();
    assert!(
        banner.contains(&format!("dashboard {}/ui/", host.base)),
        "{banner}"
    );

    // A tenant with a job of its own, uploaded with its token.
    let out = codeai(&dir)
        .args(["tenant", "create", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = codeai(&dir)
        .args(["token", "create", "--tenant", "acme"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let tenant_token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(tenant_token.starts_with("cai_"), "{tenant_token}");
    let (artifacts, _) = codeai_dsl::compile("acme.codeai", TENANT_SOURCE).unwrap();
    let upload = reqwest::blocking::Client::new()
        .post(format!("{}/jobs", host.base))
        .bearer_auth(&tenant_token)
        .header("content-type", "application/wasm")
        .body(artifacts.into_iter().next().unwrap().bytes)
        .send()
        .unwrap();
    assert_eq!(upload.status().as_u16(), 201);

    let _ = std::fs::remove_dir_all(ARTIFACTS);
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(E2E)
        .env("BASE_URL", &host.base)
        .env("ADMIN_TOKEN", ADMIN)
        .env("TENANT", "acme")
        .env("TENANT_TOKEN", &tenant_token)
        .env("TENANT_JOB", "AcmeNightlyExport")
        .env("ARTIFACTS", ARTIFACTS)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    println!("{out}");
    eprintln!("{err}");
    assert!(
        status.success(),
        "the dashboard test failed ({status}); screenshots in {ARTIFACTS}\n{out}\n{err}"
    );
    for shot in [
        "01-sign-in",
        "02-overview",
        "03-jobs",
        "05-execution-completed",
        "07-reports",
        "08-outbox",
        "08-events",
        "10-execution-cancelled",
        "14-tenant-jobs",
    ] {
        let png = Path::new(ARTIFACTS).join(format!("{shot}.png"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot {}",
            png.display()
        );
    }
    host.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
