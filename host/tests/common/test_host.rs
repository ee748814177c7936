//! A whole in-process host (store, scheduler, workers, API on a loopback port) for the tests
//! that speak HTTP to it, with the requests they make.

use codeai_host::alerts::AlertConfig;
use codeai_host::api::ApiConfig;
use codeai_host::app::{Host, HostConfig};
use codeai_host::runtime::RuntimeConfig;
use codeai_host::store::{tenants, Database};
use codeai_host::worker::PoolConfig;
use serde_json::{json, Value};
use std::time::Duration;

/// The admin token of every test host.
pub const ADMIN: &str = "test-admin-token";

pub struct TestHost {
    host: Option<Host>,
    pub base: String,
    pub http: reqwest::Client,
    /// Reports and anything else the host writes live under here.
    pub dir: std::path::PathBuf,
    pub db: Database,
    /// Folders of the test's own, removed with `dir` when the host stops.
    scratch: Vec<std::path::PathBuf>,
}

impl TestHost {
    /// A whole host (scheduler, 4 worker slots, API) on `db`; `tweak` changes its configuration
    /// before it starts.
    pub async fn start(db: Database, tweak: impl FnOnce(&mut HostConfig)) -> TestHost {
        let dir = std::env::temp_dir().join(super::unique(&format!(
            "codeai_{}",
            env!("CARGO_CRATE_NAME")
        )));
        let mut config = HostConfig {
            runtime: RuntimeConfig {
                // Shared by the tests of this binary: compiled once per component
                // (content-addressed).
                cache_dir: std::env::temp_dir()
                    .join(format!("codeai_{}_test_cache", env!("CARGO_CRATE_NAME"))),
                pool_size: 8,
                ..RuntimeConfig::default()
            },
            pool: PoolConfig {
                slots: 4,
                poll: Duration::from_millis(10),
                grace: Duration::from_millis(500),
                ..PoolConfig::default()
            },
            api: ApiConfig {
                admin_token_hash: Some(tenants::token_hash(ADMIN)),
                ..ApiConfig::default()
            },
            alerts: AlertConfig {
                every: Duration::from_secs(3600),
                ..AlertConfig::default()
            },
            reap_every: Duration::from_millis(200),
            ..HostConfig::local(&dir)
        };
        tweak(&mut config);
        let mut host = Host::new(db.clone(), config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        host.start();
        host.serve(listener);
        TestHost {
            host: Some(host),
            base,
            http: reqwest::Client::new(),
            dir,
            db,
            scratch: Vec::new(),
        }
    }

    /// Removes `dir` (a folder the test made for this host) when the host stops.
    pub fn remove_on_stop(&mut self, dir: std::path::PathBuf) {
        self.scratch.push(dir);
    }

    pub fn host(&self) -> &Host {
        self.host.as_ref().unwrap()
    }

    /// A request with `token`; the answer's status and JSON body (`null` when empty; a body
    /// that is not JSON fails the test).
    pub async fn call(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        answer(path, req.send().await.unwrap()).await
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::GET, path, None)
            .await
    }

    pub async fn post(&self, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::POST, path, body)
            .await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::PUT, path, Some(body))
            .await
    }

    pub async fn delete(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::DELETE, path, None)
            .await
    }

    /// The text of `/metrics`, read with the admin token.
    pub async fn metrics(&self) -> String {
        let res = self
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(ADMIN)
            .send();
        let res = res.await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// Registers `bytes` as the component `file` of `tenant`, as the operator's deploy does.
    pub async fn register_one(&self, tenant: &str, file: &str, bytes: Vec<u8>) {
        let components = [(file.to_string(), bytes)];
        self.host().register(tenant, &components).await.unwrap();
    }

    /// Builds `source` (which must build without a warning) as the file `file` and registers
    /// its jobs for `tenant`.
    pub async fn register_source(&self, tenant: &str, file: &str, source: &str) {
        let (artifacts, warnings) = codeai_dsl::compile(file, source)
            .unwrap_or_else(|d| panic!("{file} does not build: {d:?}"));
        assert!(warnings.is_empty(), "{warnings:?}");
        for a in artifacts {
            self.register_one(tenant, &a.file_name, a.bytes).await;
        }
    }

    /// `GET /jobs/{job}/executions?limit=500{query}`: the executions it lists.
    pub async fn executions_of(&self, token: &str, job: &str, query: &str) -> Vec<Value> {
        let path = format!("/jobs/{job}/executions?limit=500{query}");
        let (status, list) = self.get(token, &path).await;
        assert_eq!(status, 200, "{list}");
        list["data"].as_array().unwrap().clone()
    }

    /// Tasks waiting for their time, over every queue (`GET /queues/status`).
    pub async fn scheduled_tasks(&self) -> u64 {
        let (status, queues) = self.get(ADMIN, "/queues/status").await;
        assert_eq!(status, 200, "{queues}");
        queues["queues"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["scheduled"].as_u64().unwrap_or(0))
            .sum()
    }

    /// `POST /jobs` with a component.
    pub async fn upload(&self, token: &str, bytes: Vec<u8>) -> (u16, Value) {
        self.upload_as(token, bytes, "application/wasm").await
    }

    /// `POST /jobs` with `bytes` sent as `content_type`.
    pub async fn upload_as(&self, token: &str, bytes: Vec<u8>, content_type: &str) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}/jobs", self.base))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(bytes);
        answer("/jobs", req.send().await.unwrap()).await
    }

    /// Uploads `bytes` with `token` and asserts that it is refused with `status` and the error
    /// `code`; the error's message.
    pub async fn upload_refused(
        &self,
        token: &str,
        bytes: Vec<u8>,
        status: u16,
        code: &str,
    ) -> String {
        let (got, body) = self.upload(token, bytes).await;
        let error = &body["error"];
        assert_eq!(
            (got, error["code"].as_str().unwrap_or_default()),
            (status, code),
            "{body}"
        );
        error["message"].as_str().unwrap_or_default().to_string()
    }

    /// Uploads `bytes` with `token` and panics unless the upload was accepted.
    pub async fn upload_ok(&self, token: &str, bytes: Vec<u8>) -> Value {
        let (status, body) = self.upload(token, bytes).await;
        assert!(
            status == 201 || status == 200,
            "upload refused: {status} {body}"
        );
        body
    }

    /// Triggers `job` with `input` and waits for the execution's final state; its detail.
    pub async fn run(&self, token: &str, job: &str, input: Value) -> Value {
        let (status, run) = self
            .post(
                token,
                &format!("/jobs/{job}/run"),
                Some(json!({ "input": input })),
            )
            .await;
        assert_eq!(status, 202, "run {job}: {run}");
        self.wait_final(token, run["id"].as_str().unwrap()).await
    }

    /// [`TestHost::run`], which must complete.
    pub async fn run_completed(&self, token: &str, job: &str, input: Value) -> Value {
        let done = self.run(token, job, input).await;
        assert_eq!(done["status"], "completed", "{job}: {done}");
        done
    }

    /// Waits until an execution's status is final; returns its detail.
    pub async fn wait_final(&self, token: &str, id: &str) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            let (status, exec) = self.get(token, &format!("/executions/{id}")).await;
            assert_eq!(status, 200, "{exec}");
            let s = exec["status"].as_str().unwrap_or_default().to_string();
            if !["pending", "running", "retrying"].contains(&s.as_str()) {
                return exec;
            }
            if std::time::Instant::now() >= deadline {
                // What the queue holds of it, to tell a lost task from a slow one.
                let task = super::column::<String>(
                    &self.db,
                    "SELECT state || ' attempt ' || CAST(attempt AS TEXT) || ' after ' || run_after \
                     || ' owner ' || COALESCE(lease_owner, '-') || ' until ' \
                     || COALESCE(CAST(lease_expires_at AS TEXT), '-') || ' turn ' \
                     || CAST(turn AS TEXT) || ' exclusive ' || CAST(exclusive AS TEXT) \
                     FROM tasks WHERE CAST(id AS TEXT) = ?",
                    &[id],
                )
                .await;
                panic!("execution {id} still {s}; its task: {task:?}; {exec}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        for dir in &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A new API token of the existing tenant `tenant`.
pub async fn token_of(db: &Database, tenant: &str) -> String {
    tenants::create_token(db, Some(tenant), false, "test")
        .await
        .unwrap()
}

/// The status and JSON body of the answer to a request for `path` (`null` when empty); a body
/// that is not JSON fails the test.
async fn answer(path: &str, res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{path}: not JSON ({status}): {text}"))
    };
    (status, value)
}

/// The string `field` of each element of the array `items` (a list's `data`, say).
pub fn each<'a>(items: &'a Value, field: &str) -> Vec<&'a str> {
    let items = items
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {items}"));
    items
        .iter()
        .map(|item| item[field].as_str().unwrap_or_default())
        .collect()
}
