//! Per-execution overhead of the sandboxed runtime, against bare wasmtime.
//!
//! `cargo bench -p codeai-host --bench exec` prints, for each case, p50/p99/mean in µs over
//! many sequential executions on one thread:
//! - `runtime: DSL no-op job`: `Runtime::execute` of a job compiled by `codeai_dsl` (one
//!   `compute` step): fresh store with limits, fuel, epoch callback, instantiate from the cached
//!   `InstancePre`, call `run`, classify, drop;
//! - `runtime: trivial component`: the same path with a hand-written component whose `run`
//!   returns `completed("{}")` at once;
//! - `runtime: DSL job of 50 steps`: the same path with 50 `compute` steps, each from the one
//!   before;
//! - `runtime: DSL no-op, 250-row input`: a job of middling size (more of the guest's heap than
//!   95 KiB, less than 287; a tenth of the iterations);
//! - `runtime: DSL no-op, 900 KiB input`: that big run itself (a twentieth of the iterations);
//! - `runtime: DSL no-op, after a big run`: the no-op job again, once a run with a 900 KiB
//!   input (most of the guest's heap) has gone through every slot of the pool: what a small
//!   job pays for the largest one that ran in its slot before (the pool's memory reset);
//! - `bare wasmtime: trivial component`: a default engine (on-demand allocator, no fuel, no
//!   epochs), `Linker::instantiate_pre` once, then a new `Store` + instantiate + `run` + drop.
//!
//! and the ratios runtime/bare; then, on a pooling engine like the runtime's, the time of
//! instantiating each component alone (no `run`): how much of each case is making the instance;
//! and of instantiating the guest runtime's core module alone, outside its component (the floor
//! of a `codeai build` job on this engine, whatever wraps the module).
//! Set `EXEC_BENCH_ITERS` to change the number of iterations, and
//! `EXEC_BENCH_ONLY=dsl` (or `=fifty`, `=trivial`, `=rows`) to run the DSL no-op (or the 50-step
//! job, the trivial component, the no-op with 250 rows) alone, to profile it.

use codeai_host::runtime::{ExecOptions, PreparedJob, Runtime, RuntimeConfig, Status};
use codeai_host::wasm::{self, bindings};
use std::future::Future;
use std::time::{Duration, Instant};
use wasmtime::Store;

#[path = "../tests/common/fake.rs"]
mod fake;

/// Capabilities that answer at once; only `log` and `clock` are ever called by the jobs here.
type Null = fake::Fake<fake::Refuse>;

fn null() -> Null {
    fake::Fake::new(fake::Refuse("benchmark"))
}

const NOOP_DSL: &str = r#"job Noop { steps { answer { compute: 42 as: answer } } }"#;

/// A job of 50 `compute` steps, each from the one before (`v1 = v0 + 1`, …).
fn fifty_steps_dsl() -> String {
    let steps: Vec<String> = std::iter::once("s0 { compute: 0 as: v0 }".to_string())
        .chain((1..50).map(|i| format!("s{i} {{ compute: v{} + {i} as: v{i} }}", i - 1)))
        .collect();
    format!("job Fifty {{ steps {{ {} }} }}", steps.join(" "))
}

#[path = "../tests/common/handmade.rs"]
mod handmade;

/// A component whose `run` returns `ok(completed("{}"))`, with the DSL job's manifest.
fn trivial_component(manifest: &codeai_ir::Manifest) -> Vec<u8> {
    let manifest = serde_json::to_vec(manifest).expect("manifest");
    handmade::job_component("Trivial", "", handmade::RUN_COMPLETED, &manifest)
}

struct Stats {
    p50: f64,
    p99: f64,
    mean: f64,
}

async fn measure<F, Fut>(iters: usize, mut once: F) -> Stats
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..iters / 10 {
        once().await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(iters);
    for _ in 0..iters {
        let start = Instant::now();
        once().await;
        samples.push(start.elapsed());
    }
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Stats {
        p50: us(samples[iters / 2]),
        p99: us(samples[iters * 99 / 100]),
        mean: us(samples.iter().sum::<Duration>()) / iters as f64,
    }
}

fn print(name: &str, s: &Stats) {
    println!(
        "{name:<36} p50 {:>8.2} µs   p99 {:>8.2} µs   mean {:>8.2} µs",
        s.p50, s.p99, s.mean
    );
}

async fn runtime_case(rt: &Runtime<Null>, job: &PreparedJob<Null>, iters: usize) -> Stats {
    measure(iters, || async {
        let execution = rt.execute(job, null(), "{}", ExecOptions::default()).await;
        assert_eq!(execution.result.status, Status::Completed);
    })
    .await
}

/// The no-op job with a 250-row input (~7 KiB of JSON; read, then bound as `input` and as its
/// field `rows`): a job of middling size, whose allocations fit in the reserved heap of 4 pages
/// (287 KiB) but not in one of 1 page (95 KiB), where the guest grows its memory and the pool
/// shrinks it back after the run (BENCHMARKS.md, session 17).
async fn rows_case(rt: &Runtime<Null>, job: &PreparedJob<Null>, iters: usize) -> Stats {
    let rows: Vec<_> = (0..250)
        .map(|i| serde_json::json!({ "id": i, "name": format!("item {i}") }))
        .collect();
    let input = serde_json::json!({ "rows": rows }).to_string();
    measure((iters / 10).max(1), || async {
        let execution = rt
            .execute(job, null(), &input, ExecOptions::default())
            .await;
        assert_eq!(execution.result.status, Status::Completed);
    })
    .await
}

fn main() {
    let iters: usize = std::env::var("EXEC_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");

    let (mut artifacts, _) = codeai_dsl::compile("noop.codeai", NOOP_DSL)
        .unwrap_or_else(|_| panic!("the no-op job compiles"));
    let noop = artifacts.remove(0);
    let trivial_bytes = trivial_component(&noop.manifest);
    let (mut fifty, _) = codeai_dsl::compile("fifty.codeai", &fifty_steps_dsl())
        .unwrap_or_else(|_| panic!("the 50-step job compiles"));
    let fifty = fifty.remove(0);

    let cache_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("exec-bench-cache");
    let rt = Runtime::<Null>::new(RuntimeConfig {
        cache_dir,
        pool_size: 16,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let dsl_job = rt.prepare(&noop.bytes).expect("the DSL job prepares");
    let trivial_job = rt
        .prepare(&trivial_bytes)
        .expect("the trivial component prepares");
    let fifty_job = rt.prepare(&fifty.bytes).expect("the 50-step job prepares");

    // Bare wasmtime: default engine, on-demand allocation, no fuel, no epochs, no limits.
    let engine = wasm::engine().expect("engine");
    let component = wasm::compile(&engine, &trivial_bytes).expect("compiles");
    let linker = wasm::linker::<Null>(&engine).expect("links");
    let pre = bindings::JobPre::new(linker.instantiate_pre(&component).expect("pre")).expect("run");

    tokio.block_on(async {
        println!(
            "exec bench: {iters} sequential executions per case, one thread (pagemap_scan {})",
            if wasmtime::PoolingAllocationConfig::is_pagemap_scan_available() {
                "available"
            } else {
                "unavailable"
            }
        );
        // `EXEC_BENCH_ONLY=dsl` (the no-op job), `=fifty` (the 50-step job), `=trivial` or `=rows`
        // (the no-op job with 250 rows of input): one case, to profile.
        let only = std::env::var("EXEC_BENCH_ONLY").ok();
        if only.as_deref() == Some("fifty") {
            print("runtime: DSL job of 50 steps", &runtime_case(&rt, &fifty_job, iters).await);
            return;
        }
        if only.as_deref() == Some("trivial") {
            let trivial = runtime_case(&rt, &trivial_job, iters).await;
            print("runtime: trivial component", &trivial);
            return;
        }
        if only.as_deref() == Some("rows") {
            let rows = rows_case(&rt, &dsl_job, iters).await;
            print("runtime: DSL no-op, 250-row input", &rows);
            return;
        }
        let dsl = runtime_case(&rt, &dsl_job, iters).await;
        print("runtime: DSL no-op job", &dsl);
        if only.as_deref() == Some("dsl") {
            return;
        }
        let trivial = runtime_case(&rt, &trivial_job, iters).await;
        print("runtime: trivial component", &trivial);
        let once = rt.execute(&fifty_job, null(), "{}", ExecOptions::default()).await;
        let output: serde_json::Value =
            serde_json::from_str(once.result.output.as_deref().unwrap_or("null")).expect("JSON");
        assert_eq!(output["v49"], 1225, "the 50 steps ran: {output}");
        let fifty = runtime_case(&rt, &fifty_job, iters).await;
        print("runtime: DSL job of 50 steps", &fifty);
        println!(
            "ratio to the trivial component: DSL no-op p50 {:.2}x, 50 steps p50 {:.2}x",
            dsl.p50 / trivial.p50,
            fifty.p50 / trivial.p50
        );
        let rows = rows_case(&rt, &dsl_job, iters).await;
        print("runtime: DSL no-op, 250-row input", &rows);
        println!(
            "programs read once: the no-op job's image {} bytes, the 50-step job's {} bytes",
            dsl_job.decoded_image_size().unwrap_or(0),
            fifty_job.decoded_image_size().unwrap_or(0)
        );
        // A slot of the pool keeps resident (and resets at every later run) what the largest job
        // that ran in it touched, up to the pool's `keep_resident`; what it does not keep, a job
        // faults in again. The no-op job with a 900 KiB input (most of its heap) through every
        // slot, then on its own, then the no-op job with `{}` again.
        let big = serde_json::json!({ "blob": "x".repeat(900 << 10) }).to_string();
        let bigs: Vec<_> = (0..16)
            .map(|_| rt.execute(&dsl_job, null(), &big, ExecOptions::default()))
            .collect();
        for execution in futures_util::future::join_all(bigs).await {
            assert_eq!(execution.result.status, Status::Completed, "{:?}", execution.result.error);
        }
        let big_runs = measure((iters / 20).max(1), || async {
            let execution = rt.execute(&dsl_job, null(), &big, ExecOptions::default()).await;
            assert_eq!(execution.result.status, Status::Completed);
        })
        .await;
        print("runtime: DSL no-op, 900 KiB input", &big_runs);
        let after_big = runtime_case(&rt, &dsl_job, iters).await;
        print("runtime: DSL no-op, after a big run", &after_big);
        println!(
            "ratio after a big run / before: p50 {:.2}x",
            after_big.p50 / dsl.p50
        );
        let input = "{}".to_string();
        let bare = measure(iters, || async {
            let mut store = Store::new(&engine, null());
            let job = pre
                .instantiate_async(&mut store)
                .await
                .expect("instantiates");
            let result = job.call_run(&mut store, &input).await.expect("runs");
            assert!(result.is_ok());
        })
        .await;
        print("bare wasmtime: trivial component", &bare);
        println!(
            "ratio runtime/bare, trivial component: p50 {:.2}x  mean {:.2}x",
            trivial.p50 / bare.p50,
            trivial.mean / bare.mean
        );
        println!(
            "ratio runtime DSL no-op job / bare trivial: p50 {:.2}x  mean {:.2}x",
            dsl.p50 / bare.p50,
            dsl.mean / bare.mean
        );

        // Instantiation alone, on a pooling engine like the runtime's (no fuel, no epochs):
        // the part of each case's time that is making the instance, before `run`.
        let pooled = pooled_engine();
        let linker = wasm::linker::<Null>(&pooled).expect("links");
        let mut made = Vec::new();
        for (name, bytes) in [("DSL no-op job", &noop.bytes[..]), ("trivial component", &trivial_bytes[..])] {
            let component = wasm::compile(&pooled, bytes).expect("compiles");
            let pre = linker.instantiate_pre(&component).expect("pre");
            let stats = measure(iters, || async {
                let mut store = Store::new(&pooled, null());
                pre.instantiate_async(&mut store).await.expect("instantiates");
            })
            .await;
            print(&format!("instantiate only: {name}"), &stats);
            made.push(stats);
        }
        println!(
            "of the runtime's time, instantiating: DSL no-op p50 {:.1} of {:.1} µs, trivial {:.1} of {:.1} µs",
            made[0].p50, dsl.p50, made[1].p50, trivial.p50
        );
        // The guest runtime's core module alone, outside any component (its two imports
        // trap): what instantiating a `codeai build` job costs on this engine whatever wraps
        // the module (BENCHMARKS.md, "The core-module route").
        let module = wasmtime::Module::new(
            &pooled,
            codeai_dsl::emit::runtime_core_module().expect("the runtime's core module"),
        )
            .expect("the runtime's core module compiles");
        let mut linker = wasmtime::Linker::<Null>::new(&pooled);
        linker
            .define_unknown_imports_as_traps(&module)
            .expect("its imports are functions");
        let pre = linker.instantiate_pre(&module).expect("pre");
        let core = measure(iters, || async {
            let mut store = Store::new(&pooled, null());
            pre.instantiate_async(&mut store).await.expect("instantiates");
        })
        .await;
        print("instantiate only: runtime core module", &core);
    });
}

/// An engine with the runtime's pooling allocator and copy-on-write memory images, without
/// fuel or epochs (`runtime::engine` is not public).
fn pooled_engine() -> wasmtime::Engine {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(4)
        .total_core_instances(64)
        .total_memories(8)
        .total_tables(16)
        .max_core_instances_per_component(16)
        .max_memories_per_component(2)
        .max_tables_per_component(4)
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(4 << 20)
        .pagemap_scan(wasmtime::Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true);
    wasmtime::Engine::new(&config).expect("engine")
}
