//! The sandbox against hostile components: each test runs a purpose-built component (a core
//! module written in WAT, wrapped into a `job` component by `wit-component`, with a manifest
//! appended) on ONE runtime shared by every test of this binary, usually beside a well-behaved
//! job that must keep working. The host surviving the whole binary is itself the last assertion.

use codeai_host::runtime::{
    CancelToken, CapabilitySet, ExecOptions, ExecResult, MemoryBudget, PreparedJob, Runtime,
    RuntimeConfig, Source, Status, MAX_DECODED_IMAGE,
};
use codeai_host::wasm::CapError;
use codeai_ir::Manifest;
use common::fake::{self, still_clock, Call, Script};
use serde_json::{json, Value};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod common;

// ---------------------------------------------------------------------------------------------
// Fake capabilities
// ---------------------------------------------------------------------------------------------

type Fake = fake::Fake<Answers>;

/// What the components here are told: `state.get` signals `entered` and takes `state_delay` to
/// answer; `data.select` holds `select_bytes` of host buffer for its answer, charged to the
/// execution's memory budget as the real capabilities do; `events.emit` succeeds; the clock
/// stands still; the rest is refused.
#[derive(Default)]
struct Answers {
    state_delay: Duration,
    entered: Option<Arc<tokio::sync::Notify>>,
    select_bytes: usize,
    budget: Option<MemoryBudget>,
}

impl Script for Answers {
    async fn answer(&mut self, call: &Call) -> Result<Value, CapError> {
        if let Some(time) = still_clock(call) {
            return Ok(time);
        }
        match call.name().as_str() {
            "data.select" => {
                if let Some(budget) = self.budget.as_ref().filter(|_| self.select_bytes > 0) {
                    let what = format!(
                        "`data.select` {}",
                        call.args["entity"].as_str().unwrap_or_default()
                    );
                    match budget.reserve(self.select_bytes, &what) {
                        Ok(held) => budget.hand_over(held),
                        // Over the cap the call never returns: the runtime ends the execution.
                        Err(_) => std::future::pending::<()>().await,
                    }
                }
                Ok(json!([]))
            }
            "events.emit" => Ok(Value::Null),
            "state.get" => {
                if let Some(entered) = &self.entered {
                    entered.notify_one();
                }
                tokio::time::sleep(self.state_delay).await;
                Ok(Value::Null)
            }
            _ => Err(CapError::Failed("not used by these tests".into())),
        }
    }

    fn set_memory_budget(&mut self, budget: MemoryBudget) {
        self.budget = Some(budget);
    }
}

fn fake() -> Fake {
    Fake::new(Answers::default())
}

fn slow_state(delay: Duration) -> Answers {
    Answers {
        state_delay: delay,
        ..Answers::default()
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
/// `calls.call`: the request variant flattened (its case, then 14 slots, the first an `i64`
/// because `clock-local` carries an `s64`), then where the response goes.
const CALL: &str = r#"(import "codeai:host/calls@0.1.0" "call" (func $call (param i32 i64 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))"#;

/// `calls.call-encoded`: the request's bytes (offset, length), then where the response's go.
const CALL_ENCODED: &str =
    r#"(import "codeai:host/calls@0.1.0" "call-encoded" (func $call (param i32 i32 i32)))"#;

/// A hand-made job: its name, and the imports and body of its core module (after the prelude).
struct Wat {
    name: &'static str,
    imports: &'static str,
    body: &'static str,
}

/// `loop {}`.
const SPIN: Wat = Wat {
    name: "Spin",
    imports: "",
    body: r#"(func (export "run") (param i32 i32) (result i32) (loop $l (br $l)) unreachable)"#,
};

/// Grows memory 1 MiB at a time until refused, then aborts like Rust's allocation failure.
const HOG: Wat = Wat {
    name: "Hog",
    imports: "",
    body: r#"(func (export "run") (param i32 i32) (result i32)
             (loop $l
               (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1)) (then unreachable))
               (br $l))
             unreachable)"#,
};

/// Unbounded recursion.
const RECURSE: Wat = Wat {
    name: "Recurse",
    imports: "",
    body: r#"(func $deep (param i32) (result i32) (call $deep (i32.add (local.get 0) (i32.const 1))))
           (func (export "run") (param i32 i32) (result i32)
             (drop (call $deep (i32.const 0)))
             (call $completed (i32.const 16) (i32.const 2)))"#,
};

/// What the guest runtime does on a panic: its hook logs the message, then it aborts.
const PANICS: Wat = Wat {
    name: "Panics",
    imports: LOG,
    body: r#"(data (i32.const 128) "guest panic: panicked at src/job.rs:7:5: boom")
           (func (export "run") (param i32 i32) (result i32)
             (call $log (i32.const 4) (i32.const 128) (i32.const 45))
             unreachable)"#,
};

/// Emits `Ping`; completes with `"emitted"`, or with the error's message if the call failed.
const EMITTER: Wat = Wat {
    name: "Emitter",
    imports: EMIT,
    body: r#"(data (i32.const 128) "Ping")
           (data (i32.const 136) "\"emitted\"")
           (func (export "run") (param i32 i32) (result i32)
             (call $emit (i32.const 128) (i32.const 4) (i32.const 16) (i32.const 2) (i32.const 256))
             (if (result i32) (i32.eqz (i32.load8_u (i32.const 256)))
               (then (call $completed (i32.const 136) (i32.const 9)))
               (else (call $completed (i32.load (i32.const 264)) (i32.load (i32.const 268))))))"#,
};

/// [`EMITTER`] through `calls`: the request `events-emit(("Ping", "{}"))` (case 15); the
/// response `done(result)` (case 8) at 256, its result at 264, an error's message at 272.
const EMITTER_THROUGH_CALLS: Wat = Wat {
    name: "CallsEmitter",
    imports: CALL,
    body: r#"(data (i32.const 128) "Ping")
           (data (i32.const 136) "\"emitted\"")
           (func (export "run") (param i32 i32) (result i32)
             (call $call (i32.const 15) (i64.const 128) (i32.const 4) (i32.const 16) (i32.const 2)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
               (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
               (i32.const 256))
             (if (i32.ne (i32.load8_u (i32.const 256)) (i32.const 8)) (then unreachable))
             (if (result i32) (i32.eqz (i32.load8_u (i32.const 264)))
               (then (call $completed (i32.const 136) (i32.const 9)))
               (else (call $completed (i32.load (i32.const 272)) (i32.load (i32.const 276))))))"#,
};

/// [`EMITTER`] through `calls.call-encoded`: the request `events-emit(("Ping", "{}"))` in
/// postcard (case 15, then each string's length and bytes); the response's offset and length at
/// 256. It must be `done` (case 8) of `ok` (0), or of `err` (1) of a `cap-error` whose message's
/// length is at 3 and its text from 4.
const EMITTER_ENCODED: Wat = Wat {
    name: "EncodedEmitter",
    imports: CALL_ENCODED,
    body: r#"(data (i32.const 128) "\0f\04Ping\02{}")
           (data (i32.const 144) "\"emitted\"")
           (func (export "run") (param i32 i32) (result i32)
             (local $r i32)
             (call $call (i32.const 128) (i32.const 9) (i32.const 256))
             (local.set $r (i32.load (i32.const 256)))
             (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 8)) (then unreachable))
             (if (result i32) (i32.eqz (i32.load8_u offset=1 (local.get $r)))
               (then (call $completed (i32.const 144) (i32.const 9)))
               (else (call $completed (i32.add (local.get $r) (i32.const 4))
                                      (i32.load8_u offset=3 (local.get $r))))))"#,
};

/// Sends `calls.call-encoded` two bytes that are no `request` (`{}`: case 123 of 26).
const GARBAGE_REQUEST: Wat = Wat {
    name: "GarbageRequest",
    imports: CALL_ENCODED,
    body: r#"(func (export "run") (param i32 i32) (result i32)
             (call $call (i32.const 16) (i32.const 2) (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
};

/// Sends `calls.call-encoded` 1 MiB of zeros (memory grown to hold them): decoding that many
/// bytes could take ~128 times as much host memory.
const HUGE_REQUEST: Wat = Wat {
    name: "HugeRequest",
    imports: CALL_ENCODED,
    body: r#"(func (export "run") (param i32 i32) (result i32)
             (drop (memory.grow (i32.const 16)))
             (call $call (i32.const 131072) (i32.const 1048576) (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
};

/// Increments a global and completes with its value: `1` on a fresh instance.
const COUNTER: Wat = Wat {
    name: "Counter",
    imports: "",
    body: r#"(global $count (mut i32) (i32.const 0))
           (func (export "run") (param i32 i32) (result i32)
             (global.set $count (i32.add (global.get $count) (i32.const 1)))
             (i32.store8 (i32.const 200) (i32.add (i32.const 48) (global.get $count)))
             (call $completed (i32.const 200) (i32.const 1)))"#,
};

/// Calls `state.get` (which the fake can make slow), then completes.
const WAITS_ON_STATE: Wat = Wat {
    name: "WaitsOnState",
    imports: STATE_GET,
    body: r#"(data (i32.const 128) "last")
           (func (export "run") (param i32 i32) (result i32)
             (call $get (i32.const 128) (i32.const 4) (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
};

/// Asks for the time, then completes.
const READS_CLOCK: Wat = Wat {
    name: "ReadsClock",
    imports: CLOCK_NOW,
    body: r#"(func (export "run") (param i32 i32) (result i32)
             (call $now (i32.const 256))
             (call $completed (i32.const 16) (i32.const 2)))"#,
};

/// `wat` with a manifest listing `capabilities`, named after it and how many it lists (one
/// program under two manifests is two jobs), prepared on the shared runtime.
fn prepare(wat: &Wat, capabilities: &[&str]) -> Arc<PreparedJob<Fake>> {
    let name = format!("{}{}", wat.name, capabilities.len());
    runtime()
        .prepare(&wat_job(&name, wat.imports, wat.body, capabilities))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

async fn run(job: Arc<PreparedJob<Fake>>, options: ExecOptions) -> ExecResult {
    runtime().execute(&job, fake(), "{}", options).await.result
}

async fn run_noop() -> ExecResult {
    let result = run(noop(), ExecOptions::default()).await;
    assert_eq!(result.status, Status::Completed, "{result:?}");
    result
}

/// Fuel to spare, and a timeout of `ms` milliseconds.
fn spin_for(ms: u64) -> ExecOptions {
    ExecOptions {
        timeout: Some(Duration::from_millis(ms)),
        fuel: Some(u64::MAX / 2),
        ..ExecOptions::default()
    }
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
    let (spinner, quick) = (prepare(&SPIN, &[]), noop());
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
    let options = spin_for(200);
    let result = run(prepare(&SPIN, &[]), options).await;
    assert_eq!(result.status, Status::TimedOut, "{result:?}");
    // Not before its deadline; how soon after it is measured in the benches, not asserted.
    assert!(result.wall_time >= Duration::from_millis(200));
    run_noop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_growth_past_the_cap_fails_alone() {
    let options = ExecOptions {
        memory_limit: Some(8 << 20),
        ..ExecOptions::default()
    };
    let (hogged, ok) = tokio::join!(run(prepare(&HOG, &[]), options), run_noop());
    assert_eq!(hogged.status, Status::MemoryExceeded, "{hogged:?}");
    assert!(
        hogged.memory_grows >= 7,
        "1 MiB grows up to 8 MiB: {hogged:?}"
    );
    assert!(hogged.error.unwrap().contains("8388608"));
    assert_eq!(ok.status, Status::Completed);
    // The default cap (64 MiB) holds too.
    let hogged = run(prepare(&HOG, &[]), ExecOptions::default()).await;
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
    let hoard = |bytes: usize| {
        Fake::new(Answers {
            select_bytes: bytes,
            ..Answers::default()
        })
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
    assert_eq!(over.capabilities.names(), ["data.select"]);
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
    let (deep, ok) = tokio::join!(
        run(prepare(&RECURSE, &[]), ExecOptions::default()),
        run_noop()
    );
    assert_eq!(deep.status, Status::Trapped, "{deep:?}");
    assert!(deep.error.unwrap().contains("stack overflow"));
    assert_eq!(ok.status, Status::Completed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_panic_fails_alone_with_its_message() {
    let (panicked, ok) = tokio::join!(
        run(prepare(&PANICS, &["log"]), ExecOptions::default()),
        run_noop()
    );
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
    // Asked directly (`events.emit`) or through `calls`, typed or encoded, the same gate answers.
    for emitter in [EMITTER, EMITTER_THROUGH_CALLS, EMITTER_ENCODED] {
        // The manifest lists only `log`: `events.emit` is refused with `cap-error::denied`,
        // which the guest receives as a value and reports.
        let undeclared = runtime()
            .execute(
                &prepare(&emitter, &["log"]),
                fake(),
                "{}",
                ExecOptions::default(),
            )
            .await;
        let result = &undeclared.result;
        assert_eq!(result.status, Status::Completed, "{result:?}");
        assert_eq!(
            result.output.as_deref(),
            Some(
                format!(
                    "capability `events` is not granted to job `{}1`",
                    emitter.name
                )
                .as_str()
            )
        );
        assert_eq!(result.denied, ["events.emit"]);
        assert!(undeclared.capabilities.calls.is_empty());

        // Declared but not granted to the tenant: refused the same way.
        let job = prepare(&emitter, &["events", "log"]);
        let ungranted = runtime()
            .execute(
                &job,
                fake(),
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
            .execute(&job, fake(), "{}", ExecOptions::default())
            .await;
        assert_eq!(granted.result.output.as_deref(), Some("\"emitted\""));
        assert_eq!(granted.capabilities.names(), ["events.emit"]);
        assert_eq!(granted.capabilities.calls[0].args["name"], "Ping");
        assert!(granted.result.denied.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_input_outgrows_its_arena_reads_its_program_and_completes_in_a_full_pool() {
    // An input past the guest's reserved heap leaves the program's image unusable, so the
    // guest asks for its program (`calls.call-encoded`) and the host writes the answer through
    // the guest's `cabi_realloc`: a call into the guest from inside a host call, which takes a
    // second fiber stack while the first is in use. A pool of one slot must still hold both.
    let runtime = Runtime::<Fake>::new(RuntimeConfig {
        pool_size: 1,
        ..config("one-slot")
    })
    .unwrap();
    let job = runtime.prepare(&noop_dsl().0).unwrap();
    let big = serde_json::json!({ "blob": "x".repeat(600 << 10) }).to_string();
    for input in [big.as_str(), "{}", big.as_str()] {
        let result = runtime
            .execute(&job, fake(), input, ExecOptions::default())
            .await
            .result;
        assert_eq!(result.status, Status::Completed, "{result:?}");
        assert_eq!(result.output.as_deref(), Some(r#"{"answer":42}"#));
    }
    // Only the small input was written in place; the big ones went through `cabi_realloc`.
    assert_eq!(runtime.runs_in_place(), 1);
}

/// The deepest jobs of seven shapes the compiler accepts run: the guest reads their programs
/// (the compiler checks they nest no deeper than `serde_json` reads) and evaluates them on the
/// stacks it has, its own in its memory and wasm's. Four shapes nest expressions, three nest
/// steps (chains of declared actions, one whose deepest step fails and is logged through a host
/// call, `for_each` in `for_each`); one level deeper, each is refused for its depth. The guest's
/// stack (`guest-stdlib/build.rs`) was sized with this test: it fails when the stack is too
/// small for these jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deepest_jobs_the_compiler_accepts_run() {
    type Shape = fn(usize) -> String;
    // A job whose step `deep` computes `x` from an expression nested `n` deep.
    fn expression(expr: String) -> String {
        format!(
            "job Deep {{ steps {{ deep {{ compute: {expr} as: x }} echo {{ compute: input as: y }} }} }}"
        )
    }
    // Actions `d0` … `dn`, each calling the next; the last's one step is `deepest`.
    fn action_chain(n: usize, deepest: &str) -> String {
        let mut source = format!("action d{n}(v) {{ steps {{ a {{ {deepest} as: a }} }} }}\n");
        for i in (0..n).rev() {
            source += &format!(
                "action d{i}(v) {{ steps {{ a {{ action: d{}(v) as: a }} }} }}\n",
                i + 1
            );
        }
        source + "job Deep { steps { deep { action: d0(1) as: x } echo { compute: input as: y } } }"
    }
    let shapes: [(&str, Shape); 7] = [
        ("operators", |n| expression(vec!["1"; n + 1].join(" + "))),
        ("fields", |n| expression(format!("input{}", ".a".repeat(n)))),
        ("calls", |n| {
            expression(format!("{}1{}", "abs(".repeat(n), ")".repeat(n)))
        }),
        ("objects", |n| {
            expression(format!("{}1{}", "{a: ".repeat(n), "}".repeat(n)))
        }),
        // Action `d0` calls `d1`, … `dn` computes 1; each binds its call's result as `a`.
        ("actions", |n| action_chain(n, "compute: v")),
        // The same chain, its deepest step failing: the failure is written and logged (a host
        // call) at the deepest level, and the step binds null.
        ("failing", |n| {
            action_chain(n, "action: fail(\"deep {{v}}\") on_fail: continue")
        }),
        // `for_each` over `[1]` in `for_each`, `n + 1` of them: each binds a list of one
        // `{item, ok, value, error}`, its `value` the object its steps bind.
        ("for_each", |n| {
            let mut step = "a { compute: 1 as: a }".to_string();
            for _ in 0..n {
                step = format!("a {{ for_each: [1] item: i steps {{ {step} }} as: a }}");
            }
            format!(
                "job Deep {{ steps {{ deep {{ for_each: [1] item: i steps {{ {step} }} as: x }} echo {{ compute: input as: y }} }} }}"
            )
        }),
    ];
    // A deep input (the output that echoes it is one level deeper, and JSON is read 127 levels
    // deep), echoed back whole; its `a`s lead to 1.
    let mut input = serde_json::json!(1);
    for _ in 0..120 {
        input = serde_json::json!({ "a": input });
    }
    let (deep_input, input) = (input.clone(), input.to_string());
    for (what, shape) in shapes {
        // The deepest of this shape that builds; one level deeper is refused for its depth.
        let build = |n: usize| codeai_dsl::compile("deep.codeai", &shape(n));
        let deepest = (1..).take_while(|&n| build(n).is_ok()).last().unwrap();
        let refused = format!("{:?}", build(deepest + 1).err().unwrap());
        assert!(
            refused.contains("nests too deeply") || refused.contains("nested too deeply"),
            "{what}: {refused}"
        );
        let (artifacts, _) = build(deepest).unwrap();
        let job = runtime().prepare(&artifacts[0].bytes).unwrap();
        let result = runtime()
            .execute(&job, fake(), &input, ExecOptions::default())
            .await
            .result;
        assert_eq!(
            result.status,
            Status::Completed,
            "{what} {deepest} deep: {result:?}"
        );
        let output: Value = serde_json::from_str(result.output.as_deref().unwrap()).unwrap();
        assert_eq!(output["y"].to_string(), input, "{what}");
        // `levels` of `each` around `start`.
        let nested = |levels: usize, start: Value, each: fn(Value) -> Value| {
            (0..levels).fold(start, |v, _| each(v))
        };
        let expected = match what {
            "operators" => serde_json::json!(deepest + 1),
            "objects" => nested(deepest, json!(1), |v| json!({ "a": v })),
            "fields" => (0..deepest).fold(&deep_input, |v, _| &v["a"]).clone(),
            "actions" => nested(deepest + 1, json!(1), |v| json!({ "a": v })),
            "failing" => nested(deepest + 1, Value::Null, |v| json!({ "a": v })),
            "for_each" => nested(
                deepest + 1,
                json!(1),
                |v| json!([{ "item": 1, "ok": true, "value": { "a": v }, "error": null }]),
            ),
            _ => serde_json::json!(1),
        };
        if what == "failing" {
            // The deepest step's failure was logged, with the argument passed down the chain.
            let warned = result.logs.iter().any(|line| {
                line.level_name() == "warn"
                    && line.message.contains("deep 1")
                    && line.message.contains("continuing")
            });
            assert!(warned, "{:?}", result.logs);
        }
        eprintln!("{what}: {deepest} deep");
        assert_eq!(output["x"], expected, "{what} {deepest} deep");
    }
}

/// The host writes `run-decoded`'s two lists into the runtime's memory itself and calls
/// `codeai-run-decoded-in-place`, which makes the two `cabi_realloc` calls the canonical ABI
/// would have made and runs only if the lists are in the blocks they give. Here the module
/// alone, on a plain engine, its imports ending the call with what was asked: lists that are not
/// where `cabi_realloc` puts them end the call before any code of the job's runs; lists where it
/// puts them (an image the runtime cannot adopt, an empty input) get as far as asking the host
/// for the program.
#[test]
fn the_in_place_entry_runs_only_on_the_blocks_cabi_realloc_gives() {
    use wasmtime::{Caller, Engine, Linker, Module, Store};
    let engine = Engine::default();
    let module = Module::new(&engine, codeai_dsl::emit::runtime_core_module().unwrap()).unwrap();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap(
            "codeai:host/calls@0.1.0",
            "call-encoded",
            |mut caller: Caller<'_, ()>, ptr: i32, len: i32, _: i32| -> wasmtime::Result<()> {
                let Some(wasmtime::Extern::Memory(memory)) = caller.get_export("memory") else {
                    panic!("the runtime exports its memory");
                };
                let (ptr, len) = (ptr as usize, len as usize);
                let bytes = memory.data(&caller)[ptr..ptr + len].to_vec();
                let request = codeai_host::wasm::decode_request(&bytes)?;
                Err(wasmtime::Error::msg(format!("asked for {request:?}")))
            },
        )
        .unwrap()
        .func_wrap(
            "codeai:host/log@0.1.0",
            "step",
            |_: Caller<'_, ()>, _: i32, _: i32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::msg("reached log.step"))
            },
        )
        .unwrap();
    let run = |image_offset: u32, input_offset: u32, input: &[u8]| {
        let mut store = Store::new(&engine, ());
        let instance = linker.instantiate(&mut store, &module).unwrap();
        // Where a fresh instance's first block goes: ask `cabi_realloc` in another instance.
        let start = {
            let mut probe = Store::new(&engine, ());
            let other = linker.instantiate(&mut probe, &module).unwrap();
            let realloc = other
                .get_typed_func::<(i32, i32, i32, i32), i32>(&mut probe, "cabi_realloc")
                .unwrap();
            realloc.call(&mut probe, (0, 0, 1, 16)).unwrap() as u32
        };
        let image = [0u8; 16];
        let (image_at, input_at) = (start + image_offset, start + 16 + input_offset);
        let memory = instance.get_memory(&mut store, "memory").unwrap();
        memory.write(&mut store, image_at as usize, &image).unwrap();
        memory.write(&mut store, input_at as usize, input).unwrap();
        let input_ptr = if input.is_empty() { 1 } else { input_at };
        instance
            .get_typed_func::<(u32, u32, u32, u32), u32>(&mut store, "codeai-run-decoded-in-place")
            .unwrap()
            .call(&mut store, (image_at, 16, input_ptr, input.len() as u32))
            .map(|_| ())
            .unwrap_err()
    };
    let (trapped, asked) = (
        "wasm `unreachable` instruction executed",
        "asked for Request::ProgramGet",
    );
    for (image_offset, input_offset, input, expected) in [
        // The image a byte further on, or the input past the image's end: nothing runs.
        (1, 0, &b"{}"[..], trapped),
        (0, 4, b"{}", trapped),
        // Where `cabi_realloc` puts them: the job's code runs until it asks for its program.
        (0, 0, b"{}", asked),
        (0, 0, b"", asked),
    ] {
        let error = format!("{:?}", run(image_offset, input_offset, input));
        assert!(
            error.contains(expected),
            "{image_offset} {input_offset}: {error}"
        );
    }
}

/// Runs `wat` (its manifest lists `data`, `events` and `log`) and checks that it ended as
/// `status`, its error saying `why`, having reached no capability.
async fn ends_before_any_call(wat: &Wat, status: Status, why: &str) {
    let sent = runtime()
        .execute(
            &prepare(wat, &["data", "events", "log"]),
            fake(),
            "{}",
            ExecOptions::default(),
        )
        .await;
    assert_eq!(sent.result.status, status, "{:?}", sent.result);
    let error = sent.result.error.as_deref().unwrap_or_default();
    assert!(error.contains(why), "{error}");
    assert!(sent.capabilities.calls.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_encoded_request_is_charged_what_decoding_it_may_take() {
    // 1 MiB of request against the 64 MiB cap: decoding it is charged 128 MiB, refused before
    // anything is allocated for it.
    let why = "decoding a `calls.call-encoded` request";
    ends_before_any_call(&HUGE_REQUEST, Status::MemoryExceeded, why).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_a_request_end_the_run_and_reach_nothing() {
    // As a malformed value of a typed call ends it (wasmtime's canonical ABI errors are not
    // traps, so the run is `failed`, with the reason).
    ends_before_any_call(&GARBAGE_REQUEST, Status::Failed, "not a `request`").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_call_with_no_error_channel_ends_the_execution_as_failed() {
    let denied = runtime()
        .execute(
            &prepare(&READS_CLOCK, &[]),
            fake(),
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
    let allowed = run(prepare(&READS_CLOCK, &["clock"]), ExecOptions::default()).await;
    assert_eq!(allowed.status, Status::Completed, "{allowed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_execution_starts_with_fresh_globals() {
    let job = prepare(&COUNTER, &[]);
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
    let running = tokio::spawn(async { run(prepare(&SPIN, &[]), options).await });
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
    let fake = Fake::new(Answers {
        entered: Some(entered.clone()),
        ..slow_state(Duration::from_secs(3600))
    });
    let job = prepare(&WAITS_ON_STATE, &["state"]);
    let running = tokio::spawn(async move { runtime().execute(&job, fake, "{}", options).await });
    common::within_liveness("the guest did not call `state.get`", entered.notified()).await;
    cancel.cancel();
    let execution = common::within_liveness("the cancelled guest did not stop", running)
        .await
        .unwrap();
    assert_eq!(execution.result.status, Status::Cancelled);
    assert_eq!(execution.capabilities.names(), ["state.get"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_spent_inside_host_calls_counts_against_the_timeout() {
    let options = ExecOptions {
        timeout: Some(Duration::from_millis(100)),
        ..ExecOptions::default()
    };
    let execution = runtime()
        .execute(
            &prepare(&WAITS_ON_STATE, &["state"]),
            Fake::new(slow_state(Duration::from_secs(30))),
            "{}",
            options,
        )
        .await;
    // The host call would take 30 s: the timeout, not its answer, ended the execution.
    assert_eq!(execution.result.status, Status::TimedOut);
    assert!(execution.result.wall_time >= Duration::from_millis(100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_survives_every_hostile_component_at_once() {
    let deadline = spin_for(300);
    let small = ExecOptions {
        memory_limit: Some(4 << 20),
        ..ExecOptions::default()
    };
    let (spin_fuel, spin_deadline, hogged, deep, panicked, denied, ok) = tokio::join!(
        run(prepare(&SPIN, &[]), with_fuel(100_000_000)),
        run(prepare(&SPIN, &[]), deadline),
        run(prepare(&HOG, &[]), small),
        run(prepare(&RECURSE, &[]), ExecOptions::default()),
        run(prepare(&PANICS, &["log"]), ExecOptions::default()),
        run(prepare(&EMITTER, &["log"]), ExecOptions::default()),
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

/// A new runtime on `config` and `bytes` prepared on it, which must come from `source`.
fn prepared_from(
    config: &RuntimeConfig,
    bytes: &[u8],
    source: Source,
) -> (Runtime<Fake>, Arc<PreparedJob<Fake>>) {
    let runtime = Runtime::<Fake>::new(config.clone()).unwrap();
    let job = runtime.prepare(bytes).unwrap();
    assert_eq!(job.source(), source);
    (runtime, job)
}

/// `job` runs to completion on `runtime`.
async fn completes(runtime: &Runtime<Fake>, job: &PreparedJob<Fake>) {
    completed(runtime, job).await;
}

/// Runs `job` once, checks that it completed, and returns the result with its output.
async fn completed(runtime: &Runtime<Fake>, job: &PreparedJob<Fake>) -> (ExecResult, Value) {
    let result = runtime
        .execute(job, fake(), "{}", ExecOptions::default())
        .await
        .result;
    assert_eq!(result.status, Status::Completed, "{result:?}");
    let output = serde_json::from_str(result.output.as_deref().unwrap()).unwrap();
    (result, output)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn components_are_compiled_once_and_reloaded_from_verified_artifacts() {
    // A hand-made component: what `codeai build` makes is not compiled at all (below).
    let config = config("cache");
    let bytes = &wat_job("Done", "", common::handmade::RUN_COMPLETED, &["log"]);
    let (first, job) = prepared_from(&config, bytes, Source::Compiled);
    assert!(
        Arc::ptr_eq(&job, &first.prepare(bytes).unwrap()),
        "one InstancePre per hash"
    );
    assert_eq!(first.compiled(), 1);
    drop(first);

    // A new host with the same cache directory loads the artifact.
    let (second, job) = prepared_from(&config, bytes, Source::Disk);
    assert_eq!(second.compiled(), 0);
    completes(&second, &job).await;
    drop(second);

    // A tampered artifact (its header no longer matches) is never loaded: compiled again.
    let hex = codeai_host::runtime::cache::hex(job.hash());
    let artifact = config.cache_dir.join(format!("{hex}.cwasm"));
    let mut tampered = std::fs::read(&artifact).unwrap();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    std::fs::write(&artifact, tampered).unwrap();
    let (third, job) = prepared_from(&config, bytes, Source::Compiled);
    completes(&third, &job).await;

    // A component without a manifest is not a job.
    let mut bare = bytes.clone();
    bare.truncate(8);
    assert!(third.prepare(&bare).is_err());
}

/// `job <name> { steps { answer { compute: <answer> as: answer } } }`, built.
fn answering(name: &str, answer: u32) -> Vec<u8> {
    let source = format!("job {name} {{ steps {{ answer {{ compute: {answer} as: answer }} }} }}");
    let (mut artifacts, _) = codeai_dsl::compile("answer.codeai", &source).expect("builds");
    artifacts.remove(0).bytes
}

/// The `answer` a completed execution's output holds.
async fn answer_of(runtime: &Runtime<Fake>, job: &PreparedJob<Fake>) -> Value {
    completed(runtime, job).await.1["answer"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_built_job_runs_on_one_runtime_compiled_once() {
    let config = config("one-runtime");
    let runtime = Runtime::<Fake>::new(config.clone()).unwrap();
    let jobs: Vec<_> = (1..=3)
        .map(|n| {
            runtime
                .prepare(&answering(&format!("Answer{n}"), n))
                .unwrap()
        })
        .collect();
    assert_eq!(runtime.compiled(), 1, "the runtime, once for the three");
    for (n, job) in (1..).zip(&jobs) {
        assert_eq!(job.source(), Source::Shared);
        assert_eq!(
            answer_of(&runtime, job).await,
            n,
            "each runs its own program"
        );
    }
    assert_eq!(
        common::fixtures::artifacts_in(&config.cache_dir),
        1,
        "only the runtime's artifact"
    );
    drop((jobs, runtime));

    // A new host loads the runtime from its cache: nothing is compiled at all.
    let again = Runtime::<Fake>::new(config.clone()).unwrap();
    let job = again.prepare(&answering("Answer4", 4)).unwrap();
    assert_eq!((again.compiled(), job.source()), (0, Source::Shared));
    assert_eq!(answer_of(&again, &job).await, 4);
}

/// A worker reads a build stored apart from its runtime as its own sections only: prepared from
/// them, it is the same prepared job as the whole component's (one hash, the whole component's),
/// and runs its program; until the runtime is compiled, or for bytes that are not a build's
/// sections, it is not prepared that way (the whole component takes the general path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_is_prepared_from_its_own_sections_as_from_the_whole_component() {
    let runtime = Runtime::<Fake>::new(config("own-sections")).unwrap();
    let whole = answering("Answer7", 7);
    let runtime_len = codeai_dsl::emit::runtime_component().unwrap().len();
    let own = &whole[runtime_len..];
    assert!(
        runtime.prepare_stored_build(own).unwrap().is_none(),
        "the runtime is not compiled yet"
    );
    let first = runtime.prepare(&answering("Answer8", 8)).unwrap();
    let from_own = runtime.prepare_stored_build(own).unwrap().unwrap();
    assert_eq!(from_own.source(), Source::Shared);
    assert_eq!(answer_of(&runtime, &from_own).await, 7);
    let from_whole = runtime.prepare(&whole).unwrap();
    assert!(
        Arc::ptr_eq(&from_own, &from_whole),
        "two entries for one job"
    );
    assert_eq!(runtime.compiled(), 1);
    assert!(runtime.prepare_stored_build(&own[1..]).unwrap().is_none());
    assert!(runtime.prepare_stored_build(&[]).unwrap().is_none());
    drop(first);
}

/// `built` with one byte of the runtime's own text changed (an error message in its data), so
/// the changed module is still valid and runs: not the shared runtime's code any more.
fn changed_in_its_code(built: &[u8]) -> Vec<u8> {
    let text = b", this runtime runs ";
    let at = built
        .windows(text.len())
        .position(|w| w == text)
        .expect("the runtime's message");
    let mut changed = built.to_vec();
    changed[at + 2] = b'T';
    changed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_changed_in_its_code_is_compiled_on_its_own() {
    let runtime = Runtime::<Fake>::new(config("changed")).unwrap();
    let built = answering("Changed", 5);
    let job = runtime.prepare(&changed_in_its_code(&built)).unwrap();
    assert_eq!((job.source(), runtime.compiled()), (Source::Compiled, 1));
    // Compiled on its own, it is still handed its own program.
    assert_eq!(answer_of(&runtime, &job).await, 5);
    // The build as made runs on the shared runtime (compiled now, once).
    let job = runtime.prepare(&built).unwrap();
    assert_eq!((job.source(), runtime.compiled()), (Source::Shared, 2));
    assert_eq!(answer_of(&runtime, &job).await, 5);
}

/// A component in the shape `codeai build` makes — the runtime, then a program and a manifest
/// section — with the given program and manifest, whatever they hold.
fn build_of(program: &Value, manifest: &Value) -> Vec<u8> {
    let mut bytes = codeai_dsl::emit::runtime_component().unwrap().to_vec();
    for (section, data) in [
        (codeai_ir::PROGRAM_SECTION, program),
        (codeai_ir::MANIFEST_SECTION, manifest),
    ] {
        let data = serde_json::to_vec(data).unwrap();
        codeai_dsl::emit::append_custom_section(&mut bytes, section, &data);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_for_another_ir_version_is_refused() {
    let runtime = Runtime::<Fake>::new(config("ir-version")).unwrap();
    let built = answering("Versioned", 6);
    let program = codeai_dsl::emit::read_program(&built).unwrap();
    let manifest = codeai_dsl::emit::read_manifest(&built).unwrap();
    let future = codeai_ir::IR_VERSION + 1;

    let mut newer = program.clone();
    newer.ir_version = future;
    let bytes = codeai_dsl::emit::emit(&newer, &manifest).unwrap();
    let error = runtime.prepare(&bytes).err().expect("refused").to_string();
    assert!(error.contains(&format!("IR version {future}")), "{error}");

    let mut json = serde_json::to_value(&manifest).unwrap();
    json["ir_version"] = json!(future);
    let bytes = build_of(&serde_json::to_value(&program).unwrap(), &json);
    let error = runtime.prepare(&bytes).err().expect("refused").to_string();
    assert!(error.contains(&format!("IR version {future}")), "{error}");
    assert_eq!(runtime.compiled(), 0, "nothing was compiled for either");
}

/// `job <name>` of `n` `compute` steps, each from the one before (`v1 = v0 + 1`, …): its
/// output's `v<n-1>` is `n(n-1)/2`.
fn steps(name: &str, n: u32) -> Vec<u8> {
    let steps: Vec<String> = std::iter::once("s0 { compute: 0 as: v0 }".to_string())
        .chain((1..n).map(|i| format!("s{i} {{ compute: v{} + {i} as: v{i} }}", i - 1)))
        .collect();
    let source = format!("job {name} {{ steps {{ {} }} }}", steps.join(" "));
    let (mut artifacts, _) = codeai_dsl::compile("steps.codeai", &source).expect("builds");
    artifacts.remove(0).bytes
}

/// A built job reads its program once, on its first run, and every run starts from what was
/// read: each runs the whole program (its output is complete), each burns the same fuel (no
/// run sees what another did), and less than the same program read at each run by a component
/// compiled on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_built_job_reads_its_program_once_and_each_run_starts_from_it() {
    let runtime = Runtime::<Fake>::new(config("read-once")).unwrap();
    let built = steps("ReadOnce", 20);
    let job = runtime.prepare(&built).unwrap();
    assert_eq!(job.source(), Source::Shared);
    assert_eq!(job.decoded_image_size(), None, "nothing read before a run");

    let mut fuel = Vec::new();
    for _ in 0..3 {
        let (result, output) = completed(&runtime, &job).await;
        assert_eq!(output["v19"], 190, "{output}");
        assert_eq!(result.steps.len(), 20);
        fuel.push(result.fuel_used);
    }
    let size = job
        .decoded_image_size()
        .expect("an image, after the first run");
    assert!(size > 0 && size <= MAX_DECODED_IMAGE, "{size}");
    assert!(fuel.iter().all(|&f| f == fuel[0]), "{fuel:?}");
    // Each run's image and input were written into the guest by the host: one call per run.
    assert_eq!(runtime.runs_in_place(), 3);

    // The same program in a component that is not the runtime's bytes runs on its own and reads
    // the program at each run.
    let own = runtime.prepare(&changed_in_its_code(&built)).unwrap();
    assert_eq!(own.source(), Source::Compiled);
    let (result, output) = completed(&runtime, &own).await;
    assert_eq!(output["v19"], 190, "{output}");
    assert_eq!(own.decoded_image_size(), None);
    assert!(
        result.fuel_used > fuel[0],
        "read at each run: {} against {}",
        result.fuel_used,
        fuel[0]
    );
}

/// A program whose image would pass `MAX_DECODED_IMAGE` is not kept read: it is read at each
/// run, as before, and runs the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_too_large_to_keep_read_is_read_at_each_run() {
    let runtime = Runtime::<Fake>::new(config("read-each-run")).unwrap();
    let long = "x".repeat(MAX_DECODED_IMAGE + 1);
    let source =
        format!(r#"job Long {{ steps {{ size {{ compute: len("{long}") as: size }} }} }}"#);
    let (mut artifacts, _) = codeai_dsl::compile("long.codeai", &source).expect("builds");
    let job = runtime.prepare(&artifacts.remove(0).bytes).unwrap();
    assert_eq!(job.source(), Source::Shared);
    for _ in 0..2 {
        let (_, output) = completed(&runtime, &job).await;
        assert_eq!(output["size"], MAX_DECODED_IMAGE + 1);
    }
    assert_eq!(job.decoded_image_size(), None);
}

/// A component in the shape `codeai build` makes whose program is not one (written by hand: its
/// IR version right, its steps not a list) runs on the shared runtime, which cannot read it once:
/// no image is kept, and each run says why, as it did when every run read its program.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_the_runtime_cannot_read_fails_each_run_with_the_reason() {
    let runtime = Runtime::<Fake>::new(config("unreadable")).unwrap();
    let built = answering("Unreadable", 1);
    let manifest = codeai_dsl::emit::read_manifest(&built).unwrap();
    let program = json!({ "ir_version": codeai_ir::IR_VERSION, "steps": "not a list" });
    let bytes = build_of(&program, &serde_json::to_value(&manifest).unwrap());
    let job = runtime.prepare(&bytes).unwrap();
    assert_eq!(job.source(), Source::Shared);
    for _ in 0..2 {
        let result = runtime
            .execute(&job, fake(), "{}", ExecOptions::default())
            .await
            .result;
        assert_eq!(result.status, Status::Failed, "{result:?}");
        let error = result.error.unwrap_or_default();
        assert!(error.contains("program is unreadable"), "{error}");
    }
    assert_eq!(job.decoded_image_size(), None);
}
