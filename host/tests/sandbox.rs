//! The sandbox against hostile components: each test runs a purpose-built component (a core
//! module written in WAT, wrapped into a `job` component by `wit-component`, with a manifest
//! appended) on ONE runtime shared by every test of this binary, usually beside a well-behaved
//! job that must keep working. The host surviving the whole binary is itself the last assertion.

use codeai_host::runtime::{
    CancelToken, CapabilitySet, ExecOptions, ExecResult, MemoryBudget, PreparedJob, Runtime,
    RuntimeConfig, Source, Status,
};
use codeai_host::wasm::{
    clock, data, email, events, http, log, report, slack, state, types, CapError, Delivery,
};
use codeai_ir::Manifest;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod common;

// ---------------------------------------------------------------------------------------------
// Fake capabilities
// ---------------------------------------------------------------------------------------------

/// Records which capability calls reached it; `state.get` signals `entered` and takes
/// `state_delay` to answer;
/// `data.select` holds `select_bytes` of host buffer for its answer, charged to the execution's
/// memory budget as the real capabilities do.
#[derive(Default)]
struct Fake {
    calls: Vec<String>,
    state_delay: Duration,
    entered: Option<Arc<tokio::sync::Notify>>,
    select_bytes: usize,
    budget: Option<MemoryBudget>,
}

impl Fake {
    fn slow_state(delay: Duration) -> Fake {
        Fake {
            state_delay: delay,
            ..Fake::default()
        }
    }

    fn record(&mut self, call: &str) {
        self.calls.push(call.to_string());
    }
}

fn unused<T>() -> Result<T, CapError> {
    Err(CapError::Failed("not used by these tests".into()))
}

impl types::Host for Fake {}
impl codeai_host::wasm::Capabilities for Fake {
    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.budget = Some(budget);
    }
}

impl data::Host for Fake {
    async fn select(&mut self, q: data::Query) -> Result<String, CapError> {
        self.record("data.select");
        if let Some(budget) = self.budget.as_ref().filter(|_| self.select_bytes > 0) {
            match budget.reserve(self.select_bytes, &format!("`data.select` {}", q.entity)) {
                Ok(held) => budget.hand_over(held),
                // Over the cap the call never returns: the runtime ends the execution.
                Err(_) => std::future::pending::<()>().await,
            }
        }
        Ok("[]".into())
    }
    async fn count(&mut self, _: String, _: Option<data::Filter>) -> Result<u64, CapError> {
        self.record("data.count");
        Ok(0)
    }
    async fn delete(&mut self, _: String, _: Option<data::Filter>) -> Result<u64, CapError> {
        self.record("data.delete");
        Ok(0)
    }
    async fn update(
        &mut self,
        _: String,
        _: Option<data::Filter>,
        _: Vec<data::Assignment>,
    ) -> Result<u64, CapError> {
        self.record("data.update");
        Ok(0)
    }
    async fn insert(&mut self, _: String, _: String) -> Result<u64, CapError> {
        self.record("data.insert");
        Ok(0)
    }
    async fn maintain(
        &mut self,
        _: data::MaintenanceOp,
        _: Option<String>,
    ) -> Result<String, CapError> {
        self.record("data.maintain");
        Ok("done".into())
    }
}

impl http::Host for Fake {
    async fn call(&mut self, _: http::CallRequest) -> Result<http::CallResponse, CapError> {
        self.record("http.call");
        unused()
    }
    async fn call_many(
        &mut self,
        reqs: Vec<http::CallRequest>,
        _: u32,
    ) -> Vec<Result<http::CallResponse, CapError>> {
        self.record("http.call-many");
        reqs.iter().map(|_| unused()).collect()
    }
}

impl email::Host for Fake {
    async fn send(&mut self, _: email::Message) -> Result<Delivery, CapError> {
        self.record("email.send");
        Ok(Delivery::Held("outbox-1".into()))
    }
}

impl slack::Host for Fake {
    async fn post(
        &mut self,
        _: String,
        _: Option<String>,
        _: String,
    ) -> Result<Delivery, CapError> {
        self.record("slack.post");
        Ok(Delivery::Held("outbox-2".into()))
    }
}

impl report::Host for Fake {
    async fn render(
        &mut self,
        _: String,
        _: String,
        _: report::Format,
    ) -> Result<report::Rendered, CapError> {
        self.record("report.render");
        unused()
    }
    async fn delete(&mut self, _: String) -> Result<bool, CapError> {
        self.record("report.delete");
        Ok(false)
    }
}

impl events::Host for Fake {
    async fn emit(&mut self, name: String, _: String) -> Result<(), CapError> {
        self.record(&format!("events.emit({name})"));
        Ok(())
    }
}

impl state::Host for Fake {
    async fn get(&mut self, _: String) -> Option<String> {
        self.record("state.get");
        if let Some(entered) = &self.entered {
            entered.notify_one();
        }
        tokio::time::sleep(self.state_delay).await;
        None
    }
    async fn set(&mut self, _: String, _: String) -> Result<(), CapError> {
        self.record("state.set");
        Ok(())
    }
}

impl log::Host for Fake {
    async fn write(&mut self, _: log::Level, _: String) {
        self.record("log.write");
    }
}

fn instant() -> clock::Instant {
    clock::Instant {
        unix_ms: 1_768_302_000_000,
        utc_offset_seconds: 0,
    }
}

impl clock::Host for Fake {
    async fn now(&mut self) -> clock::Instant {
        self.record("clock.now");
        instant()
    }
    async fn timezone(&mut self) -> String {
        "UTC".into()
    }
    async fn period(&mut self, _: clock::PeriodUnit, _: i32) -> clock::CalendarPeriod {
        clock::CalendarPeriod {
            start: instant(),
            end: instant(),
            label: "2026-01-13".into(),
        }
    }
    async fn shift(&mut self, _: i64, _: clock::PeriodUnit, _: i32) -> clock::Instant {
        instant()
    }
}

// ---------------------------------------------------------------------------------------------
// The shared runtime and the components
// ---------------------------------------------------------------------------------------------

fn cache_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("sandbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(name: &str) -> RuntimeConfig {
    RuntimeConfig {
        cache_dir: cache_dir(name),
        pool_size: 16,
        ..RuntimeConfig::default()
    }
}

/// One runtime for every test: whatever a hostile component does to it, the others still run.
fn runtime() -> &'static Runtime<Fake> {
    static RUNTIME: OnceLock<Runtime<Fake>> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(config("shared")).expect("the runtime starts"))
}

/// A well-behaved job compiled from the DSL: one `compute` step, then completes.
const NOOP_DSL: &str = r#"job Noop { steps { answer { compute: 42 as: answer } } }"#;

fn noop_dsl() -> &'static (Vec<u8>, Manifest) {
    static NOOP: OnceLock<(Vec<u8>, Manifest)> = OnceLock::new();
    NOOP.get_or_init(|| {
        let (mut artifacts, _) =
            codeai_dsl::compile("noop.codeai", NOOP_DSL).unwrap_or_else(|failed| {
                panic!(
                    "{}",
                    codeai_dsl::diagnostic::render_all(
                        "noop.codeai",
                        NOOP_DSL,
                        &failed.diagnostics
                    )
                )
            });
        let artifact = artifacts.remove(0);
        (artifact.bytes, artifact.manifest)
    })
}

fn noop() -> Arc<PreparedJob<Fake>> {
    runtime()
        .prepare(&noop_dsl().0)
        .expect("the DSL job prepares")
}

/// A job component from WAT (imports, then the shared prelude, then `body`) with a manifest
/// listing `capabilities`.
fn wat_job(name: &str, imports: &str, body: &str, capabilities: &[&str]) -> Vec<u8> {
    let mut manifest = noop_dsl().1.clone();
    manifest.name = name.to_string();
    manifest.capabilities = capabilities.iter().map(|c| c.to_string()).collect();
    common::handmade::job_component(name, imports, body, &serde_json::to_vec(&manifest).unwrap())
}

const LOG: &str = r#"(import "codeai:host/log@0.1.0" "write" (func $log (param i32 i32 i32)))"#;
const EMIT: &str =
    r#"(import "codeai:host/events@0.1.0" "emit" (func $emit (param i32 i32 i32 i32 i32)))"#;
const STATE_GET: &str =
    r#"(import "codeai:host/state@0.1.0" "get" (func $get (param i32 i32 i32)))"#;
const CLOCK_NOW: &str = r#"(import "codeai:host/clock@0.1.0" "now" (func $now (param i32)))"#;

/// `loop {}`.
fn spin() -> Arc<PreparedJob<Fake>> {
    prepare(
        "Spin",
        "",
        r#"(func (export "run") (param i32 i32) (result i32) (loop $l (br $l)) unreachable)"#,
        &[],
    )
}

/// Grows memory 1 MiB at a time until refused, then aborts like Rust's allocation failure.
fn hog() -> Arc<PreparedJob<Fake>> {
    prepare(
        "Hog",
        "",
        r#"(func (export "run") (param i32 i32) (result i32)
             (loop $l
               (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
               (br $l))
             unreachable)"#,
        &[],
    )
}

/// Unbounded recursion.
fn recurse() -> Arc<PreparedJob<Fake>> {
    prepare(
        "Recurse",
        "",
        r#"(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))
           (func (export "run") (param i32 i32) (result i32)
             (drop (call $deep (i32.const 0)))
             (call $completed (i32.const 16) (i32.const 2)))"#,
        &[],
    )
}

/// What the guest runtime does on a panic: its hook logs the message, then it aborts.
fn panics() -> Arc<PreparedJob<Fake>> {
    prepare(
        "Panics",
        LOG,
        r#"(data (i32.const 128) "guest panic: panicked at src/job.rs:7:5: boom")
           (func (export "run") (param i32 i32) (result i32)
             (call $log (i32.const 4) (i32.const 128) (i32.const 45))
             unreachable)"#,
        &["log"],
    )
}

/// Emits `Ping`; completes with `"emitted"`, or with the error's message if the call failed.
fn emitter(capabilities: &[&str]) -> Arc<PreparedJob<Fake>> {
    prepare(
        &format!("Emitter{}", capabilities.len()),
        EMIT,
        r#"(data (i32.const 128) "Ping")
           (data (i32.const 136) "\"emitted\"")
           (func (export "run") (param i32 i32) (result i32)
             (call $emit (i32.const 128) (i32.const 4) (i32.const 16) (i32.const 2) (i32.const 256))
             (if (result i32) (i32.eqz (i32.load8_u (i32.const 256)))
               (then (call $completed (i32.const 136) (i32.const 9)))
               (else (call $completed (i32.load (i32.const 264)) (i32.load (i32.const 268))))))"#,
        capabilities,
    )
}

/// Increments a global and completes with its value: `1` on a fresh instance.
fn counter() -> Arc<PreparedJob<Fake>> {
    prepare(
        "Counter",
        "",
        r#"(global $count (mut i32) (i32.const 0))
           (func (export "run") (param i32 i32) (result i32)
             (global.set $count (i32.add (global.get $count) (i32.const 1)))
             (i32.store8 (i32.const 200) (i32.add (i32.const 48) (global.get $count)))
             (call $completed (i32.const 200) (i32.const 1)))"#,
        &[],
    )
}

/// Calls `state.get` (which the fake can make slow), then completes.
fn waits_on_state() -> Arc<PreparedJob<Fake>> {
    prepare(
        "WaitsOnState",
        STATE_GET,
        r#"(data (i32.const 128) "last")
           (func (export "run") (param i32 i32) (result i32)
             (call $get (i32.const 128) (i32.const 4) (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
        &["state"],
    )
}

/// Asks for the time, then completes.
fn reads_clock(capabilities: &[&str]) -> Arc<PreparedJob<Fake>> {
    prepare(
        &format!("ReadsClock{}", capabilities.len()),
        CLOCK_NOW,
        r#"(func (export "run") (param i32 i32) (result i32)
             (call $now (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
        capabilities,
    )
}

fn prepare(name: &str, imports: &str, body: &str, capabilities: &[&str]) -> Arc<PreparedJob<Fake>> {
    runtime()
        .prepare(&wat_job(name, imports, body, capabilities))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn run(job: Arc<PreparedJob<Fake>>, options: ExecOptions) -> ExecResult {
    runtime()
        .execute(&job, Fake::default(), "{}", options)
        .await
        .result
}

async fn run_noop() -> ExecResult {
    let result = run(noop(), ExecOptions::default()).await;
    assert_eq!(result.status, Status::Completed, "{result:?}");
    result
}

fn with_fuel(fuel: u64) -> ExecOptions {
    ExecOptions {
        fuel: Some(fuel),
        ..ExecOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsl_job_completes_with_its_output_and_fuel_used() {
    let result = run_noop().await;
    let output: serde_json::Value =
        serde_json::from_str(result.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["answer"], 42, "{output}");
    assert!(result.fuel_used > 0);
    assert!(result.error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_runs_out_of_fuel_while_another_execution_completes() {
    // Both components compiled first, so the race below is only between executions: the loop's
    // budget lasts about a second in a debug build, five no-op runs take milliseconds.
    let (spinner, quick) = (spin(), noop());
    let looping = tokio::spawn(async move { run(spinner, with_fuel(500_000_000)).await });
    // The loop is running; well-behaved executions on the same runtime keep completing.
    tokio::time::sleep(Duration::from_millis(20)).await;
    for _ in 0..5 {
        let result = run(quick.clone(), ExecOptions::default()).await;
        assert_eq!(result.status, Status::Completed, "{result:?}");
    }
    assert!(
        !looping.is_finished(),
        "the loop should still be burning fuel"
    );
    let result = looping.await.unwrap();
    assert_eq!(result.status, Status::FuelExhausted, "{result:?}");
    assert_eq!(result.fuel_used, 500_000_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_with_fuel_to_spare_hits_its_deadline() {
    let options = ExecOptions {
        timeout: Some(Duration::from_millis(200)),
        fuel: Some(u64::MAX / 2),
        ..ExecOptions::default()
    };
    let result = run(spin(), options).await;
    assert_eq!(result.status, Status::TimedOut, "{result:?}");
    assert!(result.wall_time >= Duration::from_millis(200));
    assert!(
        result.wall_time < Duration::from_millis(400),
        "{:?}",
        result.wall_time
    );
    run_noop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_past_the_cap_fails_alone() {
    let options = ExecOptions {
        memory_limit: Some(8 << 20),
        ..ExecOptions::default()
    };
    let (hogged, ok) = tokio::join!(run(hog(), options), run_noop());
    assert_eq!(hogged.status, Status::MemoryExceeded, "{hogged:?}");
    assert!(
        hogged.memory_grows >= 7,
        "1 MiB grows up to 8 MiB: {hogged:?}"
    );
    assert!(hogged.error.unwrap().contains("8388608"));
    assert_eq!(ok.status, Status::Completed);
    // The default cap (64 MiB) holds too.
    let hogged = run(hog(), ExecOptions::default()).await;
    assert_eq!(hogged.status, Status::MemoryExceeded, "{hogged:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_buffers_past_the_cap_end_the_execution_whatever_the_job_says() {
    const SOURCE: &str = r#"
entity Row { table: "rows" id: uuid primary }
job Hoard {
    steps {
        all { query: select Row as: rows on_fail: continue }
        after { compute: 42 as: answer }
    }
}
"#;
    let (artifacts, _) = codeai_dsl::compile("hoard.codeai", SOURCE).unwrap();
    let job = runtime().prepare(&artifacts[0].bytes).unwrap();
    let hoard = |bytes: usize| Fake {
        select_bytes: bytes,
        ..Fake::default()
    };
    // Within the cap, the answer is held until the next call and the job completes.
    let fits = runtime()
        .execute(&job, hoard(16 << 20), "{}", ExecOptions::default())
        .await;
    assert_eq!(fits.result.status, Status::Completed, "{:?}", fits.result);
    // Past it, the execution is over: `on_fail: continue` never sees an error to continue from.
    let (over, ok) = tokio::join!(
        runtime().execute(&job, hoard(80 << 20), "{}", ExecOptions::default()),
        run_noop()
    );
    let result = over.result;
    assert_eq!(result.status, Status::MemoryExceeded, "{result:?}");
    let error = result.error.unwrap_or_default();
    assert!(
        error.starts_with(
            "host-side buffers for `data.select` Row exceeded the execution's memory cap of 64.0 MiB"
        ),
        "{error}"
    );
    assert_eq!(over.capabilities.calls, ["data.select"]);
    assert_eq!(ok.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_dsl_job_runs_in_its_initial_memory() {
    // The guest's heap is reserved in its initial memory: a small job never calls
    // `memory.grow` (each grow costs the host a remap and a TLB flush on every core).
    for _ in 0..3 {
        let result = run_noop().await;
        assert_eq!(result.memory_grows, 0, "{result:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_overflows_the_stack_alone() {
    let (deep, ok) = tokio::join!(run(recurse(), ExecOptions::default()), run_noop());
    assert_eq!(deep.status, Status::Trapped, "{deep:?}");
    assert!(deep.error.unwrap().contains("stack overflow"));
    assert_eq!(ok.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_panic_fails_alone_with_its_message() {
    let (panicked, ok) = tokio::join!(run(panics(), ExecOptions::default()), run_noop());
    assert_eq!(panicked.status, Status::Trapped, "{panicked:?}");
    let error = panicked.error.unwrap();
    assert!(
        error.contains("panicked at src/job.rs:7:5: boom"),
        "{error}"
    );
    assert!(error.contains("unreachable"), "{error}");
    assert_eq!(panicked.logs.len(), 1);
    assert_eq!(ok.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_capability_the_manifest_does_not_list_is_denied_not_trapped() {
    // The manifest lists only `log`: `events.emit` is refused with `cap-error::denied`, which
    // the guest receives as a value and reports.
    let undeclared = runtime()
        .execute(
            &emitter(&["log"]),
            Fake::default(),
            "{}",
            ExecOptions::default(),
        )
        .await;
    let result = &undeclared.result;
    assert_eq!(result.status, Status::Completed, "{result:?}");
    assert_eq!(
        result.output.as_deref(),
        Some("capability `events` is not granted to job `Emitter1`")
    );
    assert_eq!(result.denied, ["events.emit"]);
    assert!(undeclared.capabilities.calls.is_empty());

    // Declared but not granted to the tenant: refused the same way.
    let job = emitter(&["events", "log"]);
    let ungranted = runtime()
        .execute(
            &job,
            Fake::default(),
            "{}",
            ExecOptions {
                grants: Some(CapabilitySet::from_names(&["log"])),
                ..ExecOptions::default()
            },
        )
        .await;
    assert_eq!(ungranted.result.denied, ["events.emit"]);
    assert!(ungranted.capabilities.calls.is_empty());

    // Declared and granted: the call reaches the capability.
    let granted = runtime()
        .execute(&job, Fake::default(), "{}", ExecOptions::default())
        .await;
    assert_eq!(granted.result.output.as_deref(), Some("\"emitted\""));
    assert_eq!(granted.capabilities.calls, ["events.emit(Ping)"]);
    assert!(granted.result.denied.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_with_no_error_channel_ends_the_execution_as_failed() {
    let denied = runtime()
        .execute(
            &reads_clock(&[]),
            Fake::default(),
            "{}",
            ExecOptions::default(),
        )
        .await;
    assert_eq!(denied.result.status, Status::Failed, "{:?}", denied.result);
    assert_eq!(
        denied.result.error.as_deref(),
        Some("capability `clock` is not granted to job `ReadsClock0`")
    );
    assert!(denied.capabilities.calls.is_empty());
    let allowed = run(reads_clock(&["clock"]), ExecOptions::default()).await;
    assert_eq!(allowed.status, Status::Completed, "{allowed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_execution_starts_with_fresh_globals() {
    let job = counter();
    for _ in 0..3 {
        let result = run(job.clone(), ExecOptions::default()).await;
        assert_eq!(result.output.as_deref(), Some("1"), "{result:?}");
    }
}

// Cancelling stops a guest that would otherwise never end on its own (unbounded fuel, a host
// call answering in an hour): the execution ending `Cancelled` at all is the proof. How fast it
// stops is measured by the `exec` bench, not asserted here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_cpu_bound_guest_stops_it() {
    let cancel = CancelToken::new();
    let options = ExecOptions {
        fuel: Some(u64::MAX / 2),
        timeout: Some(Duration::from_secs(3600)),
        cancel: Some(cancel.clone()),
        ..ExecOptions::default()
    };
    let running = tokio::spawn(async { run(spin(), options).await });
    // Let it start spinning (a cancel before the start would end it just the same).
    tokio::time::sleep(Duration::from_millis(100)).await;
    cancel.cancel();
    let result = common::within_liveness("the cancelled guest did not stop", running)
        .await
        .unwrap();
    assert_eq!(result.status, Status::Cancelled, "{result:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_guest_waiting_in_a_host_call_stops_it() {
    let cancel = CancelToken::new();
    let options = ExecOptions {
        timeout: Some(Duration::from_secs(3600)),
        cancel: Some(cancel.clone()),
        ..ExecOptions::default()
    };
    let entered = Arc::new(tokio::sync::Notify::new());
    let fake = Fake {
        entered: Some(entered.clone()),
        ..Fake::slow_state(Duration::from_secs(3600))
    };
    let job = waits_on_state();
    let running = tokio::spawn(async move { runtime().execute(&job, fake, "{}", options).await });
    common::within_liveness("the guest did not call `state.get`", entered.notified()).await;
    cancel.cancel();
    let execution = common::within_liveness("the cancelled guest did not stop", running)
        .await
        .unwrap();
    assert_eq!(execution.result.status, Status::Cancelled);
    assert_eq!(execution.capabilities.calls, ["state.get"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_inside_host_calls_counts_against_the_timeout() {
    let options = ExecOptions {
        timeout: Some(Duration::from_millis(100)),
        ..ExecOptions::default()
    };
    let execution = runtime()
        .execute(
            &waits_on_state(),
            Fake::slow_state(Duration::from_secs(30)),
            "{}",
            options,
        )
        .await;
    assert_eq!(execution.result.status, Status::TimedOut);
    assert!(execution.result.wall_time < Duration::from_millis(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_survives_every_hostile_component_at_once() {
    let deadline = ExecOptions {
        timeout: Some(Duration::from_millis(300)),
        fuel: Some(u64::MAX / 2),
        ..ExecOptions::default()
    };
    let small = ExecOptions {
        memory_limit: Some(4 << 20),
        ..ExecOptions::default()
    };
    let (spin_fuel, spin_deadline, hogged, deep, panicked, denied, ok) = tokio::join!(
        run(spin(), with_fuel(100_000_000)),
        run(spin(), deadline),
        run(hog(), small),
        run(recurse(), ExecOptions::default()),
        run(panics(), ExecOptions::default()),
        run(emitter(&["log"]), ExecOptions::default()),
        run_noop(),
    );
    assert_eq!(spin_fuel.status, Status::FuelExhausted);
    assert_eq!(spin_deadline.status, Status::TimedOut);
    assert_eq!(hogged.status, Status::MemoryExceeded);
    assert_eq!(deep.status, Status::Trapped);
    assert_eq!(panicked.status, Status::Trapped);
    assert_eq!(denied.status, Status::Completed);
    assert_eq!(denied.denied, ["events.emit"]);
    assert_eq!(ok.status, Status::Completed);
    // And afterwards, business as usual.
    for _ in 0..3 {
        run_noop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_compiled_once_and_reloaded_from_verified_artifacts() {
    let config = config("cache");
    let bytes = &noop_dsl().0;
    let first = Runtime::<Fake>::new(config.clone()).unwrap();
    let job = first.prepare(bytes).unwrap();
    assert_eq!(job.source(), Source::Compiled);
    assert!(
        Arc::ptr_eq(&job, &first.prepare(bytes).unwrap()),
        "one InstancePre per hash"
    );
    drop(first);

    // A new host with the same cache directory loads the artifact.
    let second = Runtime::<Fake>::new(config.clone()).unwrap();
    let job = second.prepare(bytes).unwrap();
    assert_eq!(job.source(), Source::Disk);
    let result = second
        .execute(&job, Fake::default(), "{}", ExecOptions::default())
        .await
        .result;
    assert_eq!(result.status, Status::Completed, "{result:?}");
    drop(second);

    // A tampered artifact (its header no longer matches) is never loaded: compiled again.
    let hex = codeai_host::runtime::cache::hex(job.hash());
    let artifact = config.cache_dir.join(format!("{hex}.cwasm"));
    let mut tampered = std::fs::read(&artifact).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    std::fs::write(&artifact, tampered).unwrap();
    let third = Runtime::<Fake>::new(config.clone()).unwrap();
    let job = third.prepare(bytes).unwrap();
    assert_eq!(job.source(), Source::Compiled);
    let result = third
        .execute(&job, Fake::default(), "{}", ExecOptions::default())
        .await
        .result;
    assert_eq!(result.status, Status::Completed, "{result:?}");

    // A component without a manifest is not a job.
    let mut bare = bytes.clone();
    bare.truncate(8);
    assert!(third.prepare(&bare).is_err());
}
