//! What compiling a tenant's component may cost (`SECURITY.md`, "Compiling"): hand-made
//! components are refused unless the operator allows them; code over the size limits is refused
//! before any compile; compiles run one at a time in the compile pool, in a child process under
//! a time and memory budget, while the worker slots keep running jobs; a tenant's compiles per
//! hour are counted.
//!
//! The compile bombs are real: components of straight-line arithmetic functions, compiled by
//! the host's own engine in the `codeai` binary's compiler child.

use crate::common::{run_postgres, run_sqlite};
use crate::support::{arithmetic, hand_made, job, tenant, with_manifest, TestHost, ADMIN};
use codeai_host::api::TenantComponents;
use codeai_host::app::HostConfig;
use codeai_host::runtime::compile::CompileLimits;
use codeai_host::store::Database;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const SIMPLE: &str = "job Simple { steps { s { compute: 1 } } }";

/// Code limits for these tests: room for the guest runtime of `codeai build` (0.37 MiB of
/// code, its largest function 45 KiB), little more.
const MAX_CODE: usize = 600 << 10;
const MAX_FUNCTION: usize = 64 << 10;

/// The compiler program: the `codeai` binary behind a gate — the child waits until the file
/// `gate` exists, so a test can hold a compile for as long as it needs to look at the host.
fn gated_compiler(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let gate = dir.join("gate");
    let script = dir.join("compiler.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nwhile [ ! -f '{}' ]; do sleep 0.02; done\nexec '{}' \"$@\"\n",
            gate.display(),
            env!("CARGO_BIN_EXE_codeai")
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, gate)
}

/// A host that compiles in the gated compiler child, with the test's code limits, a cache of
/// its own and hand-made components allowed for tenants.
async fn host(db: Database, tweak: impl FnOnce(&mut HostConfig, &Path)) -> (TestHost, PathBuf) {
    let dir = std::env::temp_dir().join(crate::common::unique("codeai_compile"));
    let (script, gate) = gated_compiler(&dir);
    std::fs::write(&gate, "").unwrap();
    let mut t = TestHost::start(db, |c| {
        c.runtime.cache_dir = dir.join("cache");
        c.runtime.compile = CompileLimits {
            max_code_bytes: MAX_CODE,
            max_function_bytes: MAX_FUNCTION,
            program: Some(script),
            ..CompileLimits::default()
        };
        c.api.tenant_components = TenantComponents::Any;
        tweak(c, &dir);
    })
    .await;
    t.remove_on_stop(dir);
    (t, gate)
}

fn cached_files(t: &TestHost) -> usize {
    let dir = &t.host().executor.runtime().config().cache_dir;
    std::fs::read_dir(dir).map_or(0, |d| d.count())
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn hand_made_components_of_tenants_are_refused_by_default(db: Database) {
    let cache = std::env::temp_dir().join(crate::common::unique("codeai_hm"));
    let mut t = TestHost::start(db, |c| c.runtime.cache_dir = cache.clone()).await;
    t.remove_on_stop(cache);
    let acme = tenant(&t.db, "acme").await;
    let before = t.host().executor.runtime().compile_pool().stats();
    let message = t
        .upload_refused(&acme, hand_made("Handy", ""), 422, "hand_made_component")
        .await;
    assert!(
        message.contains("CODEAI_TENANT_COMPONENTS=any"),
        "{message}"
    );
    // A real build changed afterwards is not a build any more.
    let edited = with_manifest(&job(SIMPLE, "Simple"), |m| m["timeout_ms"] = json!(1));
    t.upload_refused(&acme, edited, 422, "hand_made_component")
        .await;
    let mut flipped = job(SIMPLE, "Simple");
    let at = flipped.len() / 2;
    flipped[at] ^= 1;
    let (status, body) = t.upload(&acme, flipped).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        t.host().executor.runtime().compile_pool().stats().started,
        before.started,
        "nothing refused was compiled"
    );
    // The build itself is accepted and runs; the operator's own hand-made component too.
    t.upload_ok(&acme, job(SIMPLE, "Simple")).await;
    assert_eq!(
        t.run(&acme, "Simple", json!({})).await["status"],
        "completed"
    );
    t.upload_ok(ADMIN, hand_made("Handy", "")).await;
    assert_eq!(
        t.run(ADMIN, "Handy", json!({})).await["status"],
        "completed"
    );
    t.stop().await;
}

async fn code_over_the_limits_is_refused_before_any_compile(db: Database) {
    let (t, _gate) = host(db, |_, _| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let files = cached_files(&t);
    for (name, functions, limit) in [
        (
            "OneBigFunction",
            arithmetic(1, MAX_FUNCTION + 3_000, 1),
            "CODEAI_COMPILE_MAX_FUNCTION_BYTES",
        ),
        (
            "ManyFunctions",
            arithmetic(12, 60_000, 2),
            "CODEAI_COMPILE_MAX_CODE_BYTES",
        ),
    ] {
        let (status, body) = t.upload(&acme, hand_made(name, &functions)).await;
        assert_eq!(
            (status, code(&body)),
            (422, "too_much_code"),
            "{name}: {body}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains(limit),
            "{body}"
        );
    }
    let stats = t.host().executor.runtime().compile_pool().stats();
    assert_eq!((stats.started, stats.refused), (0, 2), "{stats:?}");
    assert_eq!(
        cached_files(&t),
        files,
        "nothing of a refused upload is kept"
    );
    t.stop().await;
}

async fn a_compile_runs_in_the_pool_while_every_slot_runs_jobs(db: Database) {
    let (t, gate) = host(db, |_, _| {}).await;
    let acme = tenant(&t.db, "acme").await;
    // A quick job, compiled (through the open gate) before the test starts.
    t.upload_ok(ADMIN, job(SIMPLE, "Simple")).await;
    std::fs::remove_file(&gate).unwrap();
    // Just under both limits: 9 functions of 60 KiB, compiled while the gate is shut.
    let bomb = hand_made("NearlyABomb", &arithmetic(9, 60_000, 3));
    let upload = {
        let (http, base, token) = (t.http.clone(), t.base.clone(), acme.clone());
        tokio::spawn(async move {
            let res = http
                .post(format!("{base}/jobs"))
                .bearer_auth(token)
                .header("content-type", "application/wasm")
                .body(bomb)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        })
    };
    let pool = || t.host().executor.runtime().compile_pool().stats();
    while pool().running == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Twice as many runs as slots, all finished while the compile is held.
    let runs: Vec<_> = (0..8).map(|_| t.run(ADMIN, "Simple", json!({}))).collect();
    for exec in futures_util::future::join_all(runs).await {
        assert_eq!(exec["status"], "completed", "{exec}");
    }
    assert_eq!(pool().running, 1, "the compile was still running all along");
    std::fs::write(&gate, "").unwrap();
    let (status, body) = upload.await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        t.run(&acme, "NearlyABomb", json!({})).await["status"],
        "completed"
    );
    assert_eq!(pool().max_running, 1);
    t.stop().await;
}

async fn ten_uploads_at_once_compile_one_at_a_time(db: Database) {
    let (t, _gate) = host(db, |_, _| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let uploads: Vec<_> = (0..10)
        .map(|i| {
            t.upload(
                &acme,
                hand_made(&format!("Job{i}"), &arithmetic(2, 20_000, i)),
            )
        })
        .collect();
    for (status, body) in futures_util::future::join_all(uploads).await {
        assert_eq!(status, 201, "{body}");
    }
    let stats = t.host().executor.runtime().compile_pool().stats();
    assert_eq!(stats.started, 10, "{stats:?}");
    assert_eq!(stats.max_running, 1, "{stats:?}");
    t.stop().await;
}

/// Uploads `component`, which must be refused for its compile budget; the message.
async fn over_budget(t: &TestHost, token: &str, component: Vec<u8>) -> String {
    t.upload_refused(token, component, 422, "compile_budget_exceeded")
        .await
}

async fn a_compile_over_its_time_budget_fails_alone(db: Database) {
    // The gate stays shut: the compile never ends by itself. The budget leaves a small component
    // compiled after it ample time even on a loaded machine.
    let (t, gate) = host(db, |c, _| {
        c.runtime.compile.timeout = Duration::from_secs(10)
    })
    .await;
    let acme = tenant(&t.db, "acme").await;
    std::fs::remove_file(&gate).unwrap();
    let message = over_budget(&t, &acme, hand_made("Slow", &arithmetic(1, 1_000, 4))).await;
    assert!(message.contains("CODEAI_COMPILE_TIMEOUT_SECS"), "{message}");
    std::fs::write(&gate, "").unwrap();
    // The host goes on: the next component compiles within the budget.
    let (status, body) = t
        .upload(&acme, hand_made("Quick", &arithmetic(1, 10, 4)))
        .await;
    assert_eq!(status, 201, "{body}");
    t.stop().await;
}

async fn a_compile_over_its_memory_budget_fails_alone(db: Database) {
    let (t, _gate) = host(db, |c, _| c.runtime.compile.max_memory = 24 << 20).await;
    let acme = tenant(&t.db, "acme").await;
    let message = over_budget(&t, &acme, hand_made("Hungry", &arithmetic(9, 60_000, 5))).await;
    assert!(message.contains("CODEAI_COMPILE_MAX_MEMORY"), "{message}");
    assert_eq!(cached_files(&t), 0, "nothing of the refused upload is kept");
    t.stop().await;
}

async fn a_tenants_compiles_per_hour_are_counted(db: Database) {
    let (t, _gate) = host(db, |c, _| c.runtime.compile.tenant_compiles_per_hour = 3).await;
    let acme = tenant(&t.db, "acme").await;
    for i in 0..3 {
        let component = hand_made(&format!("Job{i}"), &arithmetic(1, 300, i));
        t.upload_ok(&acme, component.clone()).await;
        // The same bytes again compile nothing and cost nothing.
        t.upload_ok(&acme, component).await;
    }
    t.upload_refused(
        &acme,
        hand_made("Job3", &arithmetic(1, 300, 3)),
        429,
        "compile_quota_exceeded",
    )
    .await;
    // Another tenant, and the operator, have their own.
    let globex = tenant(&t.db, "globex").await;
    t.upload_ok(&globex, hand_made("Job3", &arithmetic(1, 300, 3)))
        .await;
    t.upload_ok(ADMIN, hand_made("Job4", &arithmetic(1, 300, 4)))
        .await;
    t.stop().await;
}

async fn a_build_emitted_with_values_beyond_the_compilers_bounds_is_refused(db: Database) {
    // What a tenant with the compiler can make: its own `emit` of a built program under an
    // edited manifest. The bytes are exactly what this compiler makes of them, so the origin
    // check passes; the values are what the compiler would never accept.
    let (t, _gate) = host(db, |_, _| {}).await;
    let acme = tenant(&t.db, "acme").await;
    let built = job(
        "job Tick { schedule: every 1s  timeout: 1m  steps { s { compute: 1 } } }",
        "Tick",
    );
    let program = codeai_dsl::emit::read_program(&built).unwrap();
    type Edit = fn(&mut codeai_ir::Manifest);
    let emitted = |edit: Edit| {
        let mut manifest = codeai_dsl::emit::read_manifest(&built).unwrap();
        edit(&mut manifest);
        codeai_dsl::emit::emit(&program, &manifest).unwrap()
    };
    let edits: [(&str, Edit); 7] = [
        ("every 1ms", |m| {
            m.schedule = codeai_ir::Schedule::Interval { every_ms: 1 }
        }),
        ("every 0ms", |m| {
            m.schedule = codeai_ir::Schedule::Interval { every_ms: 0 }
        }),
        ("a timeout of a year", |m| {
            m.timeout_ms = 365 * 24 * 3_600_000
        }),
        ("no timeout", |m| m.timeout_ms = 0),
        ("a thousand retries", |m| m.retry.max_retries = 1_000),
        ("a name that is a path", |m| m.name = "../T/ck".into()),
        ("a zone that is none", |m| m.timezone = "XYZ".into()),
    ];
    for (what, edit) in edits {
        let bytes = emitted(edit);
        assert!(codeai_dsl::emit::is_this_compilers_build(&bytes), "{what}");
        let (status, body) = t.upload(&acme, bytes).await;
        assert_eq!(
            (status, code(&body)),
            (422, "invalid_manifest"),
            "{what}: {body}"
        );
    }
    let (_, jobs) = t.get(&acme, "/jobs").await;
    assert_eq!(jobs["data"], json!([]), "nothing refused was registered");
    // The same emit within the bounds is the build itself.
    t.upload_ok(&acme, emitted(|_| {})).await;
    t.stop().await;
}

on_both_databases!(
    hand_made_components_of_tenants_are_refused_by_default,
    code_over_the_limits_is_refused_before_any_compile,
    a_compile_runs_in_the_pool_while_every_slot_runs_jobs,
    ten_uploads_at_once_compile_one_at_a_time,
    a_compile_over_its_time_budget_fails_alone,
    a_compile_over_its_memory_budget_fails_alone,
    a_tenants_compiles_per_hour_are_counted,
    a_build_emitted_with_values_beyond_the_compilers_bounds_is_refused,
);
