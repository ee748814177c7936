//! The one wasmtime [`Engine`] for untrusted components, and the thread that ticks its epoch.

use super::RuntimeConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How many of each resource one job component may use. A `codeai build` component is one
/// core module wrapped by `wit-component` (a few shim instances, one memory, two tables); the
/// ceilings leave room without letting one component take a large share of the pool.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 16;
const MAX_MEMORIES_PER_COMPONENT: u32 = 2;
const MAX_TABLES_PER_COMPONENT: u32 = 4;
/// What the pool keeps resident between executions (the tuned figures of DESIGN.md).
const KEEP_RESIDENT: usize = 4 << 20;

/// Builds the engine: pooling allocator sized for `config.pool_size` concurrent executions,
/// fuel metering, epoch interruption, a bounded wasm stack, copy-on-write memory images.
pub(crate) fn build(config: &RuntimeConfig) -> anyhow::Result<Engine> {
    let slots = config.pool_size.max(1);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .total_core_instances(slots * MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(slots * MAX_MEMORIES_PER_COMPONENT)
        .total_tables(slots * MAX_TABLES_PER_COMPONENT)
        // Two fiber stacks a slot: a `codeai build` job's host call that hands the guest a list
        // calls the guest's `cabi_realloc` from inside that call (`core_module.rs`), on a
        // second fiber while the first is suspended in it.
        .total_stacks(slots * 2)
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .max_memory_size(config.max_memory)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(KEEP_RESIDENT)
        // Linux 6.7+: resets only the pages a guest dirtied; silently off elsewhere.
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
        .memory_init_cow(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.max_wasm_stack)
        // Host calls run on the fiber's stack too: give them room above the wasm stack.
        .async_stack_size(config.max_wasm_stack + (1 << 20));
    Ok(Engine::new(&wasm)?)
}

/// Ticks an engine's epoch every `period` on its own thread until dropped.
pub(crate) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine, period: Duration) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("codeai-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(period);
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
