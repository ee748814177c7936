//! `codeai host run` on the example as a real process, for the tests that drive the binary
//! (`host_run.rs`, `dashboard.rs`). Included with `#[path]`, not through `common/mod.rs`.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(crate) const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// A running `codeai host run`.
pub(crate) struct Running {
    pub(crate) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// What it printed so far.
    pub(crate) stdout: Arc<Mutex<String>>,
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system's temp dir.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("codeai_hostrun_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `codeai` in `dir` with the test's SQLite database.
pub(crate) fn codeai(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codeai"));
    cmd.current_dir(dir)
        .env("DATABASE_URL", "sqlite:host.db")
        .env_remove("REDIS_URL")
        .env_remove("SMTP_HOST")
        .env_remove("SLACK_WEBHOOK");
    cmd
}

/// What `pipe` prints, as it prints it (a thread reads it line by line).
pub(crate) fn read_lines(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
    text
}

/// Starts `codeai host run` on the example (demo data, SQLite in `dir`) and waits until it
/// serves; `admin` is `CODEAI_ADMIN_TOKEN` (none: the host generates one).
pub(crate) fn start(dir: &Path, admin: Option<&str>) -> Running {
    start_with(dir, admin, &[])
}

/// [`start`] with more environment variables.
pub(crate) fn start_with(dir: &Path, admin: Option<&str>, env: &[(&str, &str)]) -> Running {
    // reqwest is built without a default TLS provider; the host installs ring, so do we.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = free_port();
    let mut cmd = codeai(dir);
    cmd.args([
        "host",
        "run",
        &format!("{ROOT}/examples/05-scheduled-jobs/scheduled-jobs.codeai"),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--demo",
        "--grace-secs",
        "2",
    ])
    .envs(env.iter().copied())
    .stdout(Stdio::piped())
    .stderr(Stdio::null());
    match admin {
        Some(t) => cmd.env("CODEAI_ADMIN_TOKEN", t),
        None => cmd.env_remove("CODEAI_ADMIN_TOKEN"),
    };
    let mut child = cmd.spawn().unwrap();
    let stdout = read_lines(child.stdout.take().unwrap());
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        if let Ok(r) = reqwest::blocking::get(format!("{base}/readyz")) {
            if r.status() == 200 && stdout.lock().unwrap().contains("running;") {
                break;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "codeai host run exited with {status}: {}",
                stdout.lock().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "the host did not come up");
        std::thread::sleep(Duration::from_millis(200));
    }
    Running {
        child,
        base,
        stdout,
    }
}

impl Running {
    /// SIGTERM, then waits for a clean exit; returns what it printed.
    pub(crate) fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "exit status {status}");
                break;
            }
            assert!(Instant::now() < deadline, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stdout.lock().unwrap().clone()
    }

    pub(crate) fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, token, path)
    }

    /// A `POST` without a body.
    pub(crate) fn post(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::POST, token, path)
    }

    fn call(&self, method: reqwest::Method, token: &str, path: &str) -> (u16, Value) {
        let r = reqwest::blocking::Client::new()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json().unwrap_or(Value::Null))
    }
}

impl Drop for Running {
    /// A test that panics does not leave its host running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
