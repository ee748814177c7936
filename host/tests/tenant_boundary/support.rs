//! What every attack test needs: a whole in-process host on a loopback port, tenants with
//! tokens, jobs compiled from DSL source by the real compiler, uploads, runs, and a way to edit a
//! built component's manifest the way a tenant who skips `codeai build` would.

#![allow(dead_code, unreachable_pub)]

use crate::common;
use codeai_host::alerts::AlertConfig;
use codeai_host::api::ApiConfig;
use codeai_host::app::{Host, HostConfig};
use codeai_host::queue::QueueConfig;
use codeai_host::runtime::RuntimeConfig;
use codeai_host::scheduler::MisfirePolicy;
use codeai_host::services::ServicesConfig;
use codeai_host::store::{tenants, Database};
use codeai_host::worker::PoolConfig;
use serde_json::{json, Value};
use std::sync::Arc;
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
}

impl TestHost {
    /// A whole host (scheduler, 4 worker slots, API) on `db`; `tweak` changes its configuration
    /// before it starts.
    pub async fn start(db: Database, tweak: impl FnOnce(&mut HostConfig)) -> TestHost {
        let dir = std::env::temp_dir().join(common::unique("codeai_boundary"));
        let mut config = HostConfig {
            role: codeai_host::app::Role::All,
            redis: None,
            runtime: RuntimeConfig {
                // Shared by the tests: compiled once per component (content-addressed).
                cache_dir: std::env::temp_dir().join("codeai_boundary_test_cache"),
                pool_size: 8,
                ..RuntimeConfig::default()
            },
            services: ServicesConfig::local(dir.join("reports"), Arc::new(|_| None)),
            queue: QueueConfig::default(),
            pool: PoolConfig {
                slots: 4,
                poll: Duration::from_millis(10),
                grace: Duration::from_millis(500),
                ..PoolConfig::default()
            },
            misfire: MisfirePolicy::RunOnce,
            api: ApiConfig {
                admin_token_hash: Some(tenants::token_hash(ADMIN)),
                ..ApiConfig::default()
            },
            alerts: AlertConfig {
                every: Duration::from_secs(3600),
                ..AlertConfig::default()
            },
            reap_every: Duration::from_millis(200),
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
        }
    }

    pub fn host(&self) -> &Host {
        self.host.as_ref().unwrap()
    }

    /// A request with `token`; the answer's status and JSON body (`null` when empty).
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
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::GET, path, None)
            .await
    }

    pub async fn post(&self, token: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(Some(token), reqwest::Method::POST, path, body)
            .await
    }

    /// `POST /jobs` with a component.
    pub async fn upload(&self, token: &str, bytes: Vec<u8>) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}/jobs", self.base))
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
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
            assert!(
                std::time::Instant::now() < deadline,
                "execution {id} still {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates tenant `name` and returns a token of it.
pub async fn tenant(db: &Database, name: &str) -> String {
    tenants::create_tenant(db, name, None, None, None)
        .await
        .unwrap();
    tenants::create_token(db, Some(name), false, "test")
        .await
        .unwrap()
}

/// `codeai build` of `source`: the components by job name, or the rendered diagnostics.
pub fn build(source: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    match codeai_dsl::compile("tenant.codeai", source) {
        Ok((artifacts, _)) => Ok(artifacts.into_iter().map(|a| (a.name, a.bytes)).collect()),
        Err(failed) => Err(codeai_dsl::diagnostic::render_all(
            "tenant.codeai",
            source,
            &failed.diagnostics,
        )),
    }
}

/// The component of job `name` in `source`; panics when the source does not build.
pub fn job(source: &str, name: &str) -> Vec<u8> {
    build(source)
        .unwrap_or_else(|e| panic!("the source does not build:\n{e}"))
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no job `{name}`"))
        .1
}

/// The manifest of a component, as JSON.
pub fn manifest_of(bytes: &[u8]) -> Value {
    let manifest = codeai_host::wasm::read_manifest(bytes).unwrap();
    serde_json::to_value(manifest).unwrap()
}

/// The component with its manifest replaced by `edit` applied to it: what a tenant who edits
/// `codeai build`'s output (or writes a component by hand) can upload. The program inside is
/// unchanged.
pub fn with_manifest(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut manifest = manifest_of(bytes);
    edit(&mut manifest);
    let mut out = without_section(bytes, codeai_ir::MANIFEST_SECTION);
    codeai_dsl::emit::append_custom_section(
        &mut out,
        codeai_ir::MANIFEST_SECTION,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    out
}

/// The component without its top-level custom section `name` (nested sections are opaque
/// payloads of their parent section and stay).
fn without_section(bytes: &[u8], name: &str) -> Vec<u8> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let b = bytes[*at];
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at);
        let end = at + size;
        let skip = id == 0 && {
            let mut p = at;
            let len = leb(bytes, &mut p);
            &bytes[p..p + len] == name.as_bytes()
        };
        if !skip {
            out.extend_from_slice(&bytes[start..end]);
        }
        at = end;
    }
    out
}

/// A component made by hand (not by `codeai build`) that fits the `job` world: `run` returns
/// `completed("{}")`; `functions` are extra core functions (WAT) it carries; the manifest is a
/// real build's, renamed `name`.
pub fn hand_made(name: &str, functions: &str) -> Vec<u8> {
    let mut manifest = manifest_of(&job(
        "job Template { steps { s { compute: 1 } } }",
        "Template",
    ));
    manifest["name"] = json!(name);
    manifest["capabilities"] = json!([]);
    common::handmade::job_component(
        name,
        "",
        &format!("{} {functions}", common::handmade::RUN_COMPLETED),
        &serde_json::to_vec(&manifest).unwrap(),
    )
}

/// `count` functions of straight-line arithmetic, each about `bytes` bytes of code (three bytes
/// per `i32.const 1; i32.add`): what a compile bomb is made of. `salt` makes them differ.
pub fn arithmetic(count: usize, bytes: usize, salt: u32) -> String {
    let body = "i32.const 1 i32.add ".repeat(bytes / 3);
    (0..count)
        .map(|i| format!("(func $f{i} (param i32) (result i32) local.get 0 i32.const {salt} i32.add {body})\n"))
        .collect()
}
