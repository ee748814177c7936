//! Uploads cannot fill the host: a tenant's jobs, the versions kept of each and the bytes of its
//! components are bounded (refused with the quota, the usage and the limit), old versions go
//! with their compiled artifacts, a refused upload leaves nothing behind, and made-up methods
//! and paths make no new metric series.

use crate::common::{self, run_postgres, run_sqlite};
use crate::support::{job, tenant, with_manifest, TestHost, ADMIN};
use codeai_host::queue::NewTask;
use codeai_host::runtime::cache;
use codeai_host::store::quotas::{self, StoredVersion};
use codeai_host::store::tenants::LimitChanges;
use codeai_host::store::{tenants, Database};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A job whose program differs with `n`, so each `n` is another component (another version).
fn noop(name: &str, n: u32) -> Vec<u8> {
    job(
        &format!("job {name} {{ steps {{ answer {{ compute: {n} as: answer }} }} }}"),
        name,
    )
}

/// [`noop`] with a section added after the build: no longer the shape `codeai build` gives, so
/// the host compiles it on its own (this file's hosts allow such components) and caches the
/// artifact; a build itself runs on the host's shared runtime and has none.
fn own_code(name: &str, n: u32) -> Vec<u8> {
    let mut bytes = noop(name, n);
    codeai_dsl::emit::append_custom_section(&mut bytes, "tenant-note", b"edited");
    bytes
}

/// A host whose compiled artifacts go to a directory of this test's own.
/// A host keeping compiled components in a directory of its own (`cache_dir`), its queue on
/// `redis` when given, and a token of its tenant `acme`.
struct Acme {
    t: TestHost,
    cache_dir: PathBuf,
    token: String,
}

async fn acme(db: &Database, redis: Option<codeai_host::queue::RedisQueue>) -> Acme {
    let cache_dir = std::env::temp_dir().join(common::unique("codeai_uploads_cache"));
    let dir = cache_dir.clone();
    let t = TestHost::start(db.clone(), move |c| {
        c.runtime.cache_dir = dir;
        c.redis = redis;
        // Some uploads below are edited after the build: hand-made, which this operator allows.
        c.api.tenant_components = codeai_host::api::TenantComponents::Any;
    })
    .await;
    let token = tenant(db, "acme").await;
    Acme {
        t,
        cache_dir,
        token,
    }
}

impl Acme {
    async fn stop(self) {
        self.t.stop().await;
        let _ = std::fs::remove_dir_all(self.cache_dir);
    }
}

/// Uploads `component`, which must be refused with `status` for a quota; the message, in
/// lower case.
async fn over_quota(t: &TestHost, token: &str, component: &[u8], status: u16) -> String {
    let refused = t.upload_refused(token, component.to_vec(), status, "quota_exceeded");
    refused.await.to_lowercase()
}

/// Tenant `acme` keeps `n` versions of each job.
async fn keep_versions(db: &Database, n: i64) {
    let keep = LimitChanges {
        max_versions: Some(Some(n)),
        ..Default::default()
    };
    tenants::set_limits(db, "acme", &keep).await.unwrap();
}

/// The files in the cache directory.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn artifact(dir: &Path, component: &[u8]) -> PathBuf {
    dir.join(format!("{}.cwasm", cache::hex(&cache::sha256(component))))
}

fn numbers(versions: &[StoredVersion]) -> Vec<i64> {
    let mut n: Vec<i64> = versions.iter().map(|v| v.version).collect();
    n.sort();
    n
}

fn refusal(body: &Value) -> (&str, &str) {
    (
        body["error"]["code"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

async fn over_the_job_and_byte_quotas_uploads_are_refused_with_the_reason(db: Database) {
    let acme = acme(&db, None).await;
    let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
    let two_jobs = LimitChanges {
        max_jobs: Some(Some(2)),
        ..Default::default()
    };
    tenants::set_limits(&db, "acme", &two_jobs).await.unwrap();
    let first = t.upload_ok(&token, noop("First", 1)).await;
    t.upload_ok(&token, noop("Second", 2)).await;

    // A third job: refused, with the quota, the usage, the limit and what to do.
    let third = noop("Third", 3);
    let before = files(&cache_dir);
    let message = over_quota(t, &token, &third, 422).await;
    for part in ["job quota", "has 2 jobs", "may have 2", "delete a job"] {
        assert!(message.contains(part), "`{part}` missing: {message}");
    }
    assert_eq!(quotas::usage(&db, "acme").await.unwrap().jobs, 2);
    assert_eq!(
        files(&cache_dir),
        before,
        "a refused upload compiled nothing"
    );
    // A new version of a job it has is no new job.
    t.upload_ok(&token, noop("First", 11)).await;
    // Deleting a job makes room.
    let id = first["id"].as_str().unwrap();
    let (status, _) = t.delete(&token, &format!("/jobs/{id}")).await;
    assert_eq!(status, 204);
    t.upload_ok(&token, third).await;

    // The bytes: a limit just above what it stores refuses a new job of any size.
    let usage = quotas::usage(&db, "acme").await.unwrap();
    let limit = usage.bytes + 1024;
    let bytes = LimitChanges {
        max_jobs: Some(None),
        max_versions: Some(Some(1)),
        max_bytes: Some(Some(limit as i64)),
        ..Default::default()
    };
    tenants::set_limits(&db, "acme", &bytes).await.unwrap();
    let fourth = noop("Fourth", 4);
    let before = files(&cache_dir);
    let message = over_quota(t, &token, &fourth, 413).await;
    for part in [
        "storage quota".to_string(),
        format!("stores {} bytes", usage.bytes),
        format!("may store {limit}"),
        format!("upload of {} bytes", fourth.len()),
        "delete a job".to_string(),
    ] {
        assert!(message.contains(&part), "`{part}` missing: {message}");
    }
    assert_eq!(quotas::usage(&db, "acme").await.unwrap(), usage);
    assert_eq!(
        files(&cache_dir),
        before,
        "a refused upload compiled nothing"
    );
    // With one version kept, a new version of a job replaces the old one and fits.
    let (status, body) = t.upload(&token, noop("Third", 33)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["pruned_versions"], json!([1]), "{body}");
    assert!(quotas::usage(&db, "acme").await.unwrap().bytes <= limit);

    // The operator has no quota unless it sets one.
    t.upload_ok(ADMIN, noop("Fourth", 4)).await;
    acme.stop().await;
}

async fn compiled_artifacts_count_towards_the_storage_quota(db: Database) {
    let acme = acme(&db, None).await;
    let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
    // A build stores its bytes and nothing compiled.
    let built = noop("Built", 8);
    t.upload_ok(&token, built.clone()).await;
    assert!(!artifact(&cache_dir, &built).exists());
    assert_eq!(
        quotas::usage(&db, "acme").await.unwrap().bytes,
        built.len() as u64
    );
    let (status, _) = t.delete(&token, "/jobs/Built").await;
    assert_eq!(status, 204);
    // Room for the component, not for what it compiles to (about three times its size).
    let component = own_code("Compiled", 7);
    let room = LimitChanges {
        max_bytes: Some(Some(component.len() as i64 + 4096)),
        ..Default::default()
    };
    tenants::set_limits(&db, "acme", &room).await.unwrap();
    let (status, body) = t.upload(&token, component.clone()).await;
    let (code, message) = refusal(&body);
    assert_eq!((status, code), (413, "quota_exceeded"), "{body}");
    assert!(message.contains("compiled code"), "{message}");
    assert!(
        !artifact(&cache_dir, &component).exists(),
        "the artifact was discarded"
    );
    assert_eq!(quotas::usage(&db, "acme").await.unwrap().jobs, 0);
    // With room for both, the stored usage counts both.
    let unlimited = LimitChanges {
        max_bytes: Some(None),
        ..Default::default()
    };
    tenants::set_limits(&db, "acme", &unlimited).await.unwrap();
    t.upload_ok(&token, component.clone()).await;
    let compiled = std::fs::metadata(artifact(&cache_dir, &component))
        .unwrap()
        .len();
    assert_eq!(
        quotas::usage(&db, "acme").await.unwrap().bytes,
        component.len() as u64 + compiled
    );
    acme.stop().await;
}

async fn a_build_is_stored_apart_from_its_runtime_and_read_back_whole(db: Database) {
    let acme = acme(&db, None).await;
    let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
    let runtime = codeai_dsl::emit::runtime_component().unwrap();
    let builds: Vec<Vec<u8>> = (1..=3).map(|n| noop("Stored", n)).collect();
    let mut built_id = String::new();
    for bytes in &builds {
        built_id = t.upload_ok(&token, bytes.clone()).await["id"]
            .as_str()
            .unwrap()
            .to_string();
    }
    let edited = own_code("Edited", 1);
    let edited_id = t.upload_ok(&token, edited.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The runtime is stored once; a build's versions keep only their own sections; a component
    // of any other shape is stored whole.
    let stored = |id: &str| {
        let sql =
            "SELECT CAST(SUM(LENGTH(component)) AS BIGINT) FROM job_versions WHERE job_id = ?";
        let (db, id) = (db.clone(), id.to_string());
        async move { common::count(&db, sql, &[&id]).await as usize }
    };
    let runtimes = common::count(&db, "SELECT COUNT(*) FROM guest_runtimes", &[]).await;
    assert_eq!(runtimes, 1);
    let whole: usize = builds.iter().map(Vec::len).sum();
    assert_eq!(stored(&built_id).await, whole - 3 * runtime.len());
    assert_eq!(stored(&edited_id).await, edited.len());
    // Each reads back byte for byte, and runs.
    for (version, bytes) in (1..).zip(&builds) {
        let read = codeai_host::store::jobs::component(&db, &built_id, version)
            .await
            .unwrap();
        assert!(
            read.as_deref() == Some(bytes.as_slice()),
            "version {version}"
        );
    }
    let read = codeai_host::store::jobs::component(&db, &edited_id, 1)
        .await
        .unwrap();
    assert!(read.as_deref() == Some(edited.as_slice()));
    for job in ["Stored", "Edited"] {
        assert_eq!(t.run(&token, job, json!({})).await["status"], "completed");
    }
    // The storage quota counts every version whole (and the edited one's compiled artifact).
    let compiled = std::fs::metadata(artifact(&cache_dir, &edited))
        .unwrap()
        .len();
    assert_eq!(
        quotas::usage(&db, "acme").await.unwrap().bytes,
        (whole + edited.len()) as u64 + compiled
    );
    acme.stop().await;
}

async fn versions_beyond_those_kept_are_pruned_with_their_compiled_artifacts(db: Database) {
    let acme = acme(&db, None).await;
    let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
    keep_versions(&db, 10).await;
    let components: Vec<Vec<u8>> = (1..=15).map(|n| own_code("Churn", n)).collect();
    let mut job_id = String::new();
    for (i, bytes) in components.iter().enumerate() {
        let body = t.upload_ok(&token, bytes.clone()).await;
        job_id = body["id"].as_str().unwrap().to_string();
        let version = i as i64 + 1;
        let pruned = if version > 10 {
            json!([version - 10])
        } else {
            json!([])
        };
        assert_eq!(body["pruned_versions"], pruned, "{body}");
    }
    let stored = quotas::versions(&db, &job_id).await.unwrap();
    assert_eq!(numbers(&stored), (6..=15).collect::<Vec<_>>());
    for (i, bytes) in components.iter().enumerate() {
        let path = artifact(&cache_dir, bytes);
        assert_eq!(
            path.exists(),
            i >= 5,
            "version {}: {}",
            i + 1,
            path.display()
        );
    }
    // Nor in memory.
    let runtime = t.host().executor.runtime();
    for (i, bytes) in components.iter().enumerate() {
        let prepared = runtime.is_prepared(&cache::sha256(bytes));
        assert_eq!(prepared, i >= 5, "version {}", i + 1);
    }
    // The kept versions still run; executions keep their version number.
    let exec = t.run(&token, &job_id, json!({})).await;
    assert_eq!(exec["status"], "completed", "{exec}");
    assert_eq!(exec["job_version"], 15, "{exec}");

    // Deleting the job frees every version and its artifacts.
    let (status, _) = t.delete(&token, &format!("/jobs/{job_id}")).await;
    assert_eq!(status, 204);
    assert!(quotas::versions(&db, &job_id).await.unwrap().is_empty());
    assert_eq!(quotas::usage(&db, "acme").await.unwrap().bytes, 0);
    for bytes in &components[5..] {
        assert!(!artifact(&cache_dir, bytes).exists());
    }
    acme.stop().await;
}

async fn a_refused_upload_leaves_no_row_and_no_compiled_artifact(db: Database) {
    let acme = acme(&db, None).await;
    let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
    let good = noop("Refused", 1);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            // Passes `check_component`; only the schedule check refuses it.
            "an invalid schedule",
            with_manifest(&good, |m| {
                m["schedule"] = json!({"kind": "cron", "expression": "61 * * * *"});
            }),
            "invalid_manifest",
        ),
        (
            // Compiles (the artifact is written), then fails to link.
            "no `run` export",
            {
                let mut bytes = wat::parse_str("(component)").unwrap();
                let manifest = serde_json::to_vec(&crate::support::manifest_of(&good)).unwrap();
                codeai_dsl::emit::append_custom_section(
                    &mut bytes,
                    codeai_ir::MANIFEST_SECTION,
                    &manifest,
                );
                bytes
            },
            "wrong_world",
        ),
    ];
    for (what, bytes, want) in cases {
        let (status, body) = t.upload(&token, bytes.clone()).await;
        assert_eq!((status, refusal(&body).0), (422, want), "{what}: {body}");
        assert_eq!(files(&cache_dir), Vec::<String>::new(), "{what}");
        assert_eq!(quotas::usage(&db, "acme").await.unwrap().jobs, 0, "{what}");
    }
    acme.stop().await;
}

/// The `http_requests_total` lines of `/metrics`.
async fn request_series(t: &TestHost) -> Vec<String> {
    t.metrics()
        .await
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .map(str::to_string)
        .collect()
}

async fn made_up_methods_and_paths_make_no_new_metric_series(db: Database) {
    let t = TestHost::start(db.clone(), |_| {}).await;
    let token = tenant(&db, "acme").await;
    let send = |method: String, path: String| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        t.http
            .request(method, format!("{}{path}", t.base))
            .bearer_auth(&token)
            .send()
    };
    // One of each kind first (and `/metrics` itself): the series they make are the closed
    // set's.
    for (method, path) in [
        ("BREW", "/jobs"),
        ("BREW", "/nowhere/0"),
        ("GET", "/nowhere/0"),
    ] {
        send(method.into(), path.into()).await.unwrap();
    }
    request_series(&t).await;
    let before = request_series(&t).await;
    for i in 0..3000 {
        let path = if i % 2 == 0 {
            "/jobs".to_string()
        } else {
            format!("/nowhere/{i}")
        };
        let res = send(format!("X-MADE-UP-{i}"), path).await.unwrap();
        assert!(
            matches!(res.status().as_u16(), 404 | 405),
            "{}",
            res.status()
        );
    }
    let after = request_series(&t).await;
    let labels = |l: &String| l.rsplit_once(' ').unwrap().0.to_string();
    assert_eq!(
        after.iter().map(labels).collect::<Vec<_>>(),
        before.iter().map(labels).collect::<Vec<_>>(),
        "3,000 made-up methods and paths added series"
    );
    for line in &after {
        let method = line
            .split("method=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(
            ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"].contains(&method),
            "{line}"
        );
        assert!(line.contains("route=\""), "{line}");
    }
    assert!(
        after.iter().any(|l| l
            .starts_with("http_requests_total{method=\"other\",route=\"/jobs\",status=\"405\"}")),
        "{after:?}"
    );
    assert!(
        after.iter().any(|l| l.starts_with(
            "http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"}"
        )),
        "{after:?}"
    );
    t.stop().await;
}

/// The versions pending tasks will run come from the queue: on Redis too.
mod held {
    use super::*;
    use codeai_host::queue::RedisQueue;

    async fn a_version_a_pending_task_will_run_is_kept(db: Database, redis: Option<RedisQueue>) {
        let acme = acme(&db, redis).await;
        let (t, cache_dir, token) = (&acme.t, acme.cache_dir.clone(), acme.token.clone());
        keep_versions(&db, 2).await;
        let components: Vec<Vec<u8>> = (1..=5).map(|n| own_code("Held", n)).collect();
        let body = t.upload_ok(&token, components[0].clone()).await;
        let job_id = body["id"].as_str().unwrap().to_string();
        // A run of version 1 waiting for its time (as a later fire or a retry's delay would).
        let task = t
            .host()
            .queue
            .enqueue(&NewTask {
                tenant: "acme".into(),
                trigger: "schedule".into(),
                run_after: chrono::Utc::now() + chrono::Duration::hours(1),
                ..common::fixtures::run_now(&job_id, 1, "Held")
            })
            .await
            .unwrap()
            .unwrap();
        for bytes in &components[1..4] {
            t.upload_ok(&token, bytes.clone()).await;
        }
        let stored = quotas::versions(&db, &job_id).await.unwrap();
        assert_eq!(numbers(&stored), vec![1, 3, 4]);
        assert!(artifact(&cache_dir, &components[0]).exists());
        assert!(!artifact(&cache_dir, &components[1]).exists());

        // Once nothing will run it, the next upload prunes it.
        assert!(t.host().queue.cancel_pending(task).await.unwrap());
        let body = t.upload_ok(&token, components[4].clone()).await;
        assert_eq!(body["pruned_versions"], json!([1, 3]), "{body}");
        let stored = quotas::versions(&db, &job_id).await.unwrap();
        assert_eq!(numbers(&stored), vec![4, 5]);
        assert!(!artifact(&cache_dir, &components[0]).exists());
        acme.stop().await;
    }

    on_every_backend!(a_version_a_pending_task_will_run_is_kept);
}

on_both_databases!(
    a_build_is_stored_apart_from_its_runtime_and_read_back_whole,
    compiled_artifacts_count_towards_the_storage_quota,
    over_the_job_and_byte_quotas_uploads_are_refused_with_the_reason,
    versions_beyond_those_kept_are_pruned_with_their_compiled_artifacts,
    a_refused_upload_leaves_no_row_and_no_compiled_artifact,
    made_up_methods_and_paths_make_no_new_metric_series,
);
