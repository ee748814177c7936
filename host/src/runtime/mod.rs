//! The sandboxed runtime: runs untrusted job components with every limit the design promises.
//!
//! - **One engine** ([`engine`]): pooling allocator (tuned to keep 4 MiB of memory and tables
//!   resident, `pagemap_scan` when the kernel has it), fuel metering, epoch interruption, a
//!   bounded wasm stack, async calls. A semaphore keeps executions within the pool's capacity.
//! - **One compiled guest runtime**: every component `codeai build` makes is the same runtime
//!   component followed by its program and manifest ([`codeai_dsl::emit::split_build`] checks
//!   the bytes), so such a job is not compiled at all: it runs on the runtime this host compiled
//!   once — the core module that component nests, instantiated without the component around it
//!   ([`core_module`]) — which asks for its program through `program.get` and is handed the
//!   job's own. Its first run reads the program once ([`Runtime::decode_program`]), and every
//!   run starts from the image of what was read (`run-decoded`) instead of reading it again.
//! - **A component cache** ([`cache`]): any other component (hand-made, changed after its
//!   build, built by another version) is compiled once per SHA-256 of its bytes, the artifact
//!   kept in a cache directory (default `.codeai/cache/`) beside a header that proves this host
//!   wrote it, and an `InstancePre` kept in memory per hash. The shared runtime's core module is
//!   cached the same way (its header names a module).
//! - **Per execution** ([`Runtime::execute`]): a fresh [`Store`] with a memory cap shared by
//!   the guest's memory and the host's buffers for it ([`budget`]), a fuel budget that yields
//!   to tokio every so often, an epoch deadline checked at every 10 ms tick, a tokio timeout
//!   around the whole call (time inside host calls counts), and cancellation through a
//!   [`CancelToken`]. The call is polled once before any of these is registered: most
//!   executions end in that poll and cost no timer and no waiters. The result says how it ended.
//! - **Capability gating** ([`gate`]): calls to interfaces the manifest does not list, or the
//!   tenant does not grant, are refused with `cap-error::denied`; the real capabilities are any
//!   [`Capabilities`] implementation.

pub mod budget;
pub mod cache;
pub mod cancel;
pub mod compile;
mod core_module;
mod engine;
pub mod gate;

pub use budget::{Exceeded, MemoryBudget, Reservation};
pub use cache::{CacheError, Digest, Source};
pub use cancel::CancelToken;
pub use gate::{CallRecord, Capability, CapabilitySet, Gated, LogLine};

use crate::wasm::{bindings, read_manifest, Capabilities, JobError, ManifestError, Outcome};
use cache::ArtifactCache;
use codeai_dsl::emit::{program_section, split_build, Build};
use codeai_ir::Manifest;
use core_module::SharedCore;
use engine::EpochTicker;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime::{UpdateDeadline, WasmBacktrace};

/// How the runtime is set up. [`RuntimeConfig::default`] gives the documented defaults.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where precompiled components are kept (default `.codeai/cache`).
    pub cache_dir: PathBuf,
    /// Executions that may run at once; the pooling allocator is sized for this many (default 64).
    pub pool_size: u32,
    /// The memory cap of an execution in bytes, and the size of a pool slot (default 64 MiB).
    /// [`ExecOptions::memory_limit`] can lower it per execution, never raise it.
    pub max_memory: usize,
    /// The fuel (≈ wasm instructions) an execution may burn unless its options say otherwise
    /// (default 2·10⁹, a few seconds of guest CPU).
    pub fuel: u64,
    /// A guest yields to the tokio executor after burning this much fuel (default 10⁶), so a
    /// CPU-bound guest neither starves other tasks nor ignores cancellation.
    pub fuel_yield_interval: u64,
    /// The deepest wasm stack a guest may use, in bytes (default 512 KiB).
    pub max_wasm_stack: usize,
    /// How often the engine's epoch ticks (default 10 ms): deadlines and cancellation are
    /// checked at every tick.
    pub epoch_tick: Duration,
    /// The timeout of a job whose manifest gives none (default 30 min).
    pub default_timeout: Duration,
    /// What compiling a component may cost ([`compile`]).
    pub compile: compile::CompileLimits,
}

impl Default for RuntimeConfig {
    fn default() -> RuntimeConfig {
        RuntimeConfig {
            cache_dir: PathBuf::from(".codeai/cache"),
            pool_size: 64,
            max_memory: 64 << 20,
            fuel: 2_000_000_000,
            fuel_yield_interval: 1_000_000,
            max_wasm_stack: 512 << 10,
            epoch_tick: Duration::from_millis(10),
            default_timeout: Duration::from_secs(30 * 60),
            compile: compile::CompileLimits::default(),
        }
    }
}

/// Per-execution settings; every `None` falls back to the manifest or the [`RuntimeConfig`].
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// Wall-clock budget, host calls included (default: the manifest's `timeout`).
    pub timeout: Option<Duration>,
    /// CPU budget in fuel (default: [`RuntimeConfig::fuel`]).
    pub fuel: Option<u64>,
    /// Memory cap in bytes, at most [`RuntimeConfig::max_memory`].
    pub memory_limit: Option<usize>,
    /// What the job's tenant is granted; a call needs both this and the manifest
    /// (default: everything the manifest lists).
    pub grants: Option<CapabilitySet>,
    /// Cancels the execution from another task.
    pub cancel: Option<CancelToken>,
}

/// How an execution ended: one of the final [`crate::store::ExecutionStatus`]es (the runtime
/// never answers `pending`, `running` or `retrying`). The states are spelled once, there.
pub use crate::store::ExecutionStatus as Status;

/// What one execution produced.
#[derive(Debug, Clone)]
pub struct ExecResult {
    pub status: Status,
    /// The job's output (JSON) when it completed.
    pub output: Option<String>,
    /// Why it did not complete: the skip reason, the job's error, the trap or the exhausted limit.
    pub error: Option<String>,
    /// The step a job error belongs to.
    pub step: Option<String>,
    /// Fuel burnt by the guest.
    pub fuel_used: u64,
    /// From instantiation to the end of `run` (waiting for a pool slot not included).
    pub wall_time: Duration,
    /// The guest's `log.write` lines (at most [`gate::MAX_LOG_LINES`]).
    pub logs: Vec<LogLine>,
    /// Log lines beyond the limit, counted.
    pub logs_dropped: usize,
    /// Capability calls refused, as `interface.function`.
    pub denied: Vec<String>,
    /// Capability calls let through, in order, with their timings (at most
    /// [`gate::MAX_CALL_RECORDS`]).
    pub calls: Vec<CallRecord>,
    /// Calls beyond the limit, counted.
    pub calls_dropped: usize,
    /// The job's own steps as the guest marked them (at most [`gate::MAX_STEP_RECORDS`]).
    pub steps: Vec<gate::StepRecord>,
    /// Times the guest grew its memory past its initial size. Each grow costs the host a remap
    /// (and a TLB flush on every core), so a small job should not grow at all: the guest's
    /// allocator starts with a heap reserved in the initial memory (`guest-stdlib/src/heap.rs`).
    pub memory_grows: u32,
}

/// An execution's result and the capabilities it was given, handed back.
pub struct Execution<C> {
    pub result: ExecResult,
    pub capabilities: C,
}

/// Why a component cannot be prepared.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("not a job component: {0}")]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("the component does not fit the `job` world: {0:#}")]
    Link(anyhow::Error),
    #[error("the runtime could not start: {0:#}")]
    Setup(anyhow::Error),
    #[error(transparent)]
    Budget(#[from] compile::CompileError),
}

/// A job component ready to run: compiled (or recognised as a build of the shared runtime),
/// linked, its manifest read.
pub struct PreparedJob<C: 'static> {
    hash: Digest,
    manifest: Arc<Manifest>,
    capabilities: CapabilitySet,
    source: Source,
    /// What `program.get` answers: the component's `codeai-program` section (empty if none).
    program: Arc<[u8]>,
    linked: Linked<C>,
    /// For a job on the shared runtime: its program read once.
    decoded: Option<Decoded>,
}

/// What a prepared job instantiates.
enum Linked<C: 'static> {
    /// A component of its own (any component not in the shape `codeai build` gives).
    Component(bindings::JobPre<ExecState<C>>),
    /// The guest runtime's core module, shared by every `codeai build` job ([`core_module`]).
    Shared(Arc<SharedCore<C>>),
}

/// The largest image of a program read once that a prepared job keeps (a program whose image
/// is larger is read again at each run, as a component of any other shape is).
pub const MAX_DECODED_IMAGE: usize = 64 << 10;

/// How long reading a program once may take (it is a few dozen microseconds; the bound is for
/// a program made to be slow to read).
const DECODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A shared-runtime job's program read once: the guest runtime's `decode-program`, run in an
/// instance of its own on the job's first run, returns the image of the memory holding the
/// program read, and each run hands it to `run-decoded` in its fresh instance (see
/// `guest-stdlib/src/heap.rs`). The image is the guest's memory, not read by the host.
#[derive(Default)]
struct Decoded {
    /// Set on the first run: `None` when the guest kept no image (or one past
    /// [`MAX_DECODED_IMAGE`]), or could not read the program (each run then says why).
    image: OnceLock<Option<Arc<[u8]>>>,
}

impl<C: 'static> PreparedJob<C> {
    /// The SHA-256 of the component's bytes.
    pub fn hash(&self) -> &Digest {
        &self.hash
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The manifest, shared (executions hand it to their capabilities without copying it).
    pub fn manifest_arc(&self) -> Arc<Manifest> {
        self.manifest.clone()
    }

    /// The capabilities the manifest lists (and the runtime knows).
    pub fn capabilities(&self) -> CapabilitySet {
        self.capabilities
    }

    /// Where the compiled component came from when it was prepared.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The program the guest is handed (the component's `codeai-program` section).
    pub fn program(&self) -> &[u8] {
        &self.program
    }

    /// The size of the image of its program read once, once its first run made one: `None`
    /// before, or when each run reads the program (a component not on the shared runtime, a
    /// program too large to keep read, or one the guest could not read).
    pub fn decoded_image_size(&self) -> Option<usize> {
        let image = self.decoded.as_ref()?.image.get()?.as_ref()?;
        Some(image.len())
    }
}

/// The store data of one execution.
pub struct ExecState<C> {
    caps: Gated<C>,
    limits: Limits,
    cancel: CancelToken,
    abort: CancelToken,
    deadline: Instant,
    /// The memory of a shared runtime's instance, once made (`core_module.rs`): what its host
    /// functions read and write, without looking the export up at every call.
    memory: Option<wasmtime::Memory>,
}

/// `StoreLimits` plus the execution's [`MemoryBudget`] (a growth is refused when the guest's
/// memory and the host's buffers together would pass the cap), and a record of whether the cap
/// was hit, so a guest that turns a refused `memory.grow` into a trap (Rust's allocation-failure
/// abort) is still reported as `memory_exceeded`.
struct Limits {
    inner: StoreLimits,
    cap: usize,
    budget: MemoryBudget,
    exceeded: bool,
    /// Host buffers held when a growth was refused because of them.
    host_at_refusal: Option<usize>,
    /// The last growth charged to the budget, given back if the grow fails after all.
    last_growth: usize,
    /// `memory.grow`s past the initial size asked for (allowed or not).
    grows: u32,
}

impl Limits {
    fn new(cap: usize, budget: MemoryBudget) -> Limits {
        Limits {
            inner: StoreLimitsBuilder::new().memory_size(cap).build(),
            cap,
            budget,
            exceeded: false,
            host_at_refusal: None,
            last_growth: 0,
            grows: 0,
        }
    }
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if current > 0 && desired > current {
            self.grows += 1;
        }
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if !allowed {
            if desired > self.cap {
                self.exceeded = true;
            }
            return Ok(false);
        }
        let growth = desired.saturating_sub(current);
        if !self.budget.grow_guest(growth) {
            self.exceeded = true;
            self.host_at_refusal = Some(self.budget.host());
            return Ok(false);
        }
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.budget
            .ungrow_guest(std::mem::take(&mut self.last_growth));
        self.inner.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// Why the epoch callback stopped a guest.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error("cancelled")]
    Cancelled,
    #[error("denied")]
    Denied,
    #[error("deadline passed")]
    TimedOut,
    #[error("host-side buffers exceeded the memory cap")]
    MemoryExceeded,
}

/// Runs job components whose capabilities are provided by `C`.
pub struct Runtime<C: 'static> {
    engine: Engine,
    linker: Linker<ExecState<C>>,
    cache: ArtifactCache,
    prepared: Mutex<HashMap<Digest, Arc<PreparedJob<C>>>>,
    /// The guest runtime every `codeai build` component shares, once compiled and linked.
    shared: Mutex<Option<Arc<SharedCore<C>>>>,
    /// Components compiled by this runtime (the shared runtime counts once).
    compiled: AtomicU64,
    permits: Arc<Semaphore>,
    compiles: compile::CompilePool,
    config: RuntimeConfig,
    _ticker: EpochTicker,
}

impl<C: Capabilities> Runtime<C> {
    /// Builds the engine, the linker of the `job` world, and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Runtime<C>, RuntimeError> {
        let engine = engine::build(&config).map_err(RuntimeError::Setup)?;
        let mut linker = Linker::new(&engine);
        bindings::Job::add_to_linker::<ExecState<C>, HasSelf<Gated<C>>>(
            &mut linker,
            |state: &mut ExecState<C>| &mut state.caps,
        )
        .map_err(|e| RuntimeError::Setup(e.into()))?;
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)
            .map_err(|e| RuntimeError::Setup(e.into()))?;
        Ok(Runtime {
            cache: ArtifactCache::new(config.cache_dir.clone(), &engine),
            engine,
            linker,
            prepared: Mutex::new(HashMap::new()),
            shared: Mutex::new(None),
            compiled: AtomicU64::new(0),
            permits: Arc::new(Semaphore::new(config.pool_size.max(1) as usize)),
            compiles: compile::CompilePool::new(config.compile.clone()),
            config,
            _ticker: ticker,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Where precompiled artifacts are kept.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.cache.dir()
    }

    /// Prepares a job component: reads its manifest, compiles it (or loads the artifact
    /// compiled earlier for the same bytes) and links it. Compiling blocks this thread and is
    /// bounded by nothing: for the operator's own components (`codeai host run`, `codeai exec`,
    /// benches). Anything a tenant sent goes through [`Runtime::prepare_budgeted`].
    pub fn prepare(&self, bytes: &[u8]) -> Result<Arc<PreparedJob<C>>, RuntimeError> {
        let hash = cache::sha256(bytes);
        if let Some(job) = self.lock_prepared().get(&hash) {
            return Ok(job.clone());
        }
        if let Some(build) = split_build(bytes) {
            let manifest = build_manifest(&build)?;
            let shared = match self.shared_runtime()? {
                Some(shared) => shared,
                None => {
                    let (runtime, hash) = shared_runtime_bytes()?;
                    let (module, source) = self.cache.load_module(&self.engine, &hash, runtime)?;
                    self.count(source);
                    self.link_shared(&module)?
                }
            };
            return Ok(self.register_build(hash, manifest, build.program, shared));
        }
        let manifest = read_manifest(bytes)?;
        let (component, source) = self.cache.load(&self.engine, &hash, bytes)?;
        self.count(source);
        self.link(hash, manifest, program_section(bytes), &component, source)
    }

    /// The prepared component for `bytes` if it needs no compiling: prepared in memory, or a
    /// verified artifact on disk (loading one takes well under a millisecond). `None` when it
    /// would have to be compiled.
    pub fn prepare_cached(
        &self,
        bytes: &[u8],
    ) -> Result<Option<Arc<PreparedJob<C>>>, RuntimeError> {
        let hash = cache::sha256(bytes);
        if let Some(job) = self.lock_prepared().get(&hash) {
            return Ok(Some(job.clone()));
        }
        if let Some(build) = split_build(bytes) {
            let manifest = build_manifest(&build)?;
            return Ok(self
                .shared_runtime()?
                .map(|shared| self.register_build(hash, manifest, build.program, shared)));
        }
        let manifest = read_manifest(bytes)?;
        match self.cache.load_from_disk(&self.engine, &hash) {
            Some(component) => self
                .link(
                    hash,
                    manifest,
                    program_section(bytes),
                    &component,
                    Source::Disk,
                )
                .map(Some),
            None => Ok(None),
        }
    }

    /// The prepared component of a build stored apart from its runtime — `own`, its program
    /// and manifest sections, stored with the SHA-256 of this host's runtime — without the
    /// runtime's bytes: the same job as [`Runtime::prepare_cached`] of the whole component, for
    /// the hashing of `own` alone. `None` when `own` is not a build's two sections or the shared
    /// runtime is not compiled yet (then the whole component takes the general path).
    pub fn prepare_stored_build(
        &self,
        own: &[u8],
    ) -> Result<Option<Arc<PreparedJob<C>>>, RuntimeError> {
        let Some(build) = codeai_dsl::emit::split_own_sections(own) else {
            return Ok(None);
        };
        let setup = |e: codeai_dsl::emit::EmitError| RuntimeError::Setup(anyhow::anyhow!(e));
        let hash = codeai_dsl::emit::build_sha256(own).map_err(setup)?;
        if let Some(job) = self.lock_prepared().get(&hash) {
            return Ok(Some(job.clone()));
        }
        let manifest = build_manifest(&build)?;
        Ok(self
            .shared_runtime()?
            .map(|shared| self.register_build(hash, manifest, build.program, shared)))
    }

    /// Prepares a component within the compile budget ([`compile`]): what needs no compiling
    /// is prepared at once; otherwise its code is measured against the limits (refused before
    /// compiling when over), `charge`'s compile quota is counted (an upload's tenant), and it
    /// is compiled in the compile pool — in the compiler child process under the time and
    /// memory budget when one is configured.
    pub async fn prepare_budgeted(
        &self,
        bytes: &[u8],
        charge: Option<&str>,
    ) -> Result<Arc<PreparedJob<C>>, RuntimeError> {
        if let Some(job) = self.prepare_cached(bytes)? {
            return Ok(job);
        }
        let hash = cache::sha256(bytes);
        if let Some(build) = split_build(bytes) {
            // The host's own runtime, not yet compiled: no tenant's budget pays for it.
            let manifest = build_manifest(&build)?;
            let (runtime, runtime_hash) = shared_runtime_bytes()?;
            let (engine, cache) = (self.engine.clone(), self.cache.clone());
            let (module, source) = self
                .compiles
                .run(move || cache.load_module(&engine, &runtime_hash, runtime))
                .await??;
            self.count(source);
            let shared = self.link_shared(&module)?;
            return Ok(self.register_build(hash, manifest, build.program, shared));
        }
        let manifest = read_manifest(bytes)?;
        self.compiles.check(bytes)?;
        if let Some(tenant) = charge {
            self.compiles.charge(tenant)?;
        }
        let (component, source) = self.compile_in_pool(hash, bytes).await?;
        self.link(hash, manifest, program_section(bytes), &component, source)
    }

    /// Compiles `bytes` (whose SHA-256 is `hash`) in the compile pool, in the compiler child
    /// process when one is configured, unless a verified artifact turned up meanwhile.
    async fn compile_in_pool(
        &self,
        hash: Digest,
        bytes: &[u8],
    ) -> Result<(Component, Source), RuntimeError> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let limits = self.config.compile.clone();
        let engine_args = compile::engine_args(&self.config);
        let owned = bytes.to_vec();
        let (component, source) = self
            .compiles
            .run(move || -> Result<(Component, Source), RuntimeError> {
                // Another compile of the same bytes may have finished while this one waited.
                if let Some(component) = cache.load_from_disk(&engine, &hash) {
                    return Ok((component, Source::Disk));
                }
                let compiled = match &limits.program {
                    Some(program) => {
                        compile::compile_in_child(program, &engine_args, &owned, &limits)?
                    }
                    None => engine
                        .precompile_component(&owned)
                        .map_err(|e| compile::CompileError::Failed(format!("{e:#}")))?,
                };
                Ok((cache.store(&engine, &hash, &compiled)?, Source::Compiled))
            })
            .await??;
        self.count(source);
        Ok((component, source))
    }

    /// How many components this runtime compiled (not loaded from disk, not shared): the
    /// shared guest runtime counts once, however many jobs run on it.
    pub fn compiled(&self) -> u64 {
        self.compiled.load(Ordering::Relaxed)
    }

    /// How many runs of `codeai build` jobs had their program's image and input written into
    /// the guest by the host (one call into the module; `core_module.rs`) rather than lowered
    /// through the guest's `cabi_realloc`.
    pub fn runs_in_place(&self) -> u64 {
        self.lock_shared()
            .as_ref()
            .map_or(0, |shared| shared.in_place_runs())
    }

    fn count(&self, source: Source) {
        if source == Source::Compiled {
            self.compiled.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The shared runtime, linked, if it is prepared or its artifact is on disk.
    fn shared_runtime(&self) -> Result<Option<Arc<SharedCore<C>>>, RuntimeError> {
        if let Some(shared) = self.lock_shared().clone() {
            return Ok(Some(shared));
        }
        let (_, hash) = shared_runtime_bytes()?;
        match self.cache.module_from_disk(&self.engine, &hash) {
            Some(module) => self.link_shared(&module).map(Some),
            None => Ok(None),
        }
    }

    /// Links the compiled shared runtime and keeps it (the first one linked wins).
    fn link_shared(&self, module: &wasmtime::Module) -> Result<Arc<SharedCore<C>>, RuntimeError> {
        let shared = SharedCore::link(&self.engine, module).map_err(RuntimeError::Link)?;
        Ok(self.lock_shared().get_or_insert(Arc::new(shared)).clone())
    }

    fn lock_shared(&self) -> std::sync::MutexGuard<'_, Option<Arc<SharedCore<C>>>> {
        // A panic while holding the lock leaves it consistent (one assignment).
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The compile pool (its counters say how many compiles ran, and at most at once).
    pub fn compile_pool(&self) -> &compile::CompilePool {
        &self.compiles
    }

    /// The size of the compiled artifact of `hash` on disk, if any.
    pub fn artifact_size(&self, hash: &Digest) -> Option<u64> {
        self.cache.artifact_size(hash)
    }

    fn instantiate_pre(
        &self,
        component: &Component,
    ) -> Result<bindings::JobPre<ExecState<C>>, RuntimeError> {
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| RuntimeError::Link(e.into()))?;
        bindings::JobPre::new(pre).map_err(|e| RuntimeError::Link(e.into()))
    }

    fn link(
        &self,
        hash: Digest,
        manifest: Manifest,
        program: Option<&[u8]>,
        component: &Component,
        source: Source,
    ) -> Result<Arc<PreparedJob<C>>, RuntimeError> {
        let pre = self.instantiate_pre(component)?;
        Ok(self.register(
            hash,
            manifest,
            program.unwrap_or_default(),
            Linked::Component(pre),
            source,
        ))
    }

    /// Keeps a `codeai build` job, which runs on `shared`, in memory.
    fn register_build(
        &self,
        hash: Digest,
        manifest: Manifest,
        program: &[u8],
        shared: Arc<SharedCore<C>>,
    ) -> Arc<PreparedJob<C>> {
        self.register(
            hash,
            manifest,
            program,
            Linked::Shared(shared),
            Source::Shared,
        )
    }

    /// Keeps a prepared job in memory (the first one prepared for `hash` wins).
    fn register(
        &self,
        hash: Digest,
        manifest: Manifest,
        program: &[u8],
        linked: Linked<C>,
        source: Source,
    ) -> Arc<PreparedJob<C>> {
        let decoded = match linked {
            Linked::Shared(_) => Some(Decoded::default()),
            Linked::Component(_) => None,
        };
        let job = Arc::new(PreparedJob {
            hash,
            capabilities: CapabilitySet::from_names(&manifest.capabilities),
            manifest: Arc::new(manifest),
            source,
            program: program.into(),
            linked,
            decoded,
        });
        self.lock_prepared()
            .entry(hash)
            .or_insert_with(|| job)
            .clone()
    }

    /// Forgets the component of `hash`: its `InstancePre` in memory and its artifact on disk
    /// (when its job version is pruned or deleted, or its upload refused). Executions holding it
    /// finish; preparing the same bytes again compiles them again. True when there was an
    /// artifact on disk.
    pub fn forget(&self, hash: &Digest) -> Result<bool, RuntimeError> {
        self.lock_prepared().remove(hash);
        Ok(self.cache.remove(hash)?)
    }

    /// Whether the component of `hash` is prepared in memory.
    pub fn is_prepared(&self, hash: &Digest) -> bool {
        self.lock_prepared().contains_key(hash)
    }

    fn lock_prepared(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<PreparedJob<C>>>> {
        // A panic while holding the lock leaves the map consistent (inserts are single calls).
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `job` once with `input` (a JSON object) in a fresh store and instance, with
    /// `capabilities` behind the gate. Never fails: every way an execution can end is a
    /// [`Status`].
    pub async fn execute(
        &self,
        job: &PreparedJob<C>,
        mut capabilities: C,
        input: &str,
        options: ExecOptions,
    ) -> Execution<C> {
        let cancel = options.cancel.clone().unwrap_or_default();
        // Wait for a pool slot; cancellation stops the wait too.
        let permit = tokio::select! {
            biased;
            _ = cancel.cancelled() => None,
            permit = self.permits.clone().acquire_owned() => permit.ok(),
        };
        if permit.is_none() {
            return Execution {
                result: ExecResult::ended(Status::Cancelled, "cancelled before it started"),
                capabilities,
            };
        }
        // A shared-runtime job's first run reads its program once, for every run after it.
        let decoded = match &job.decoded {
            Some(decoded) => {
                let image = match decoded.image.get() {
                    Some(image) => image.clone(),
                    None => {
                        let (caps, image) = self.decode_program(job, capabilities).await;
                        capabilities = caps;
                        decoded.image.get_or_init(|| image).clone()
                    }
                };
                image
            }
            None => None,
        };

        let started = Instant::now();
        let timeout = options.timeout.unwrap_or(if job.manifest.timeout_ms > 0 {
            Duration::from_millis(job.manifest.timeout_ms)
        } else {
            self.config.default_timeout
        });
        let fuel = options.fuel.unwrap_or(self.config.fuel);
        let memory_cap = options
            .memory_limit
            .map_or(self.config.max_memory, |m| m.min(self.config.max_memory));
        let allowed = job
            .capabilities
            .intersect(options.grants.unwrap_or_else(CapabilitySet::all));
        let budget = MemoryBudget::new(memory_cap);
        capabilities.set_memory_budget(budget.clone());
        let caps = Gated::new(
            capabilities,
            allowed,
            &job.manifest.name,
            budget.clone(),
            job.program.clone(),
        );
        let abort = caps.abort_token();

        let mut store = Store::new(
            &self.engine,
            ExecState {
                caps,
                limits: Limits::new(memory_cap, budget.clone()),
                cancel: cancel.clone(),
                abort: abort.clone(),
                deadline: started + timeout,
                memory: None,
            },
        );
        store.limiter(|state| &mut state.limits);
        // Both only fail when the engine lacks fuel, which `engine::build` enables.
        let _ = store.set_fuel(fuel);
        let _ = store.fuel_async_yield_interval(Some(self.config.fuel_yield_interval.max(1)));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.cancel.is_cancelled() {
                Err(Stop::Cancelled.into())
            } else if state.abort.is_cancelled() {
                Err(Stop::Denied.into())
            } else if state.limits.budget.exceeded().is_some() {
                Err(Stop::MemoryExceeded.into())
            } else if Instant::now() >= state.deadline {
                Err(Stop::TimedOut.into())
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });

        let ended = {
            let input = input.to_owned();
            let call = async {
                match &job.linked {
                    Linked::Shared(shared) => {
                        shared.run(&mut store, decoded.as_deref(), &input).await
                    }
                    Linked::Component(pre) => {
                        let instance = pre.instantiate_async(&mut store).await?;
                        instance.call_run(&mut store, &input).await
                    }
                }
            };
            let mut call = std::pin::pin!(call);
            // Most executions end on their first poll (no host call waits). That poll comes
            // first, with the same checks the `select!` below makes in its first round, so
            // such an execution registers no timer and no waiters.
            let first = if cancel.is_cancelled() {
                Poll::Ready(Ended::Stopped(Stop::Cancelled))
            } else if abort.is_cancelled() {
                Poll::Ready(Ended::Stopped(Stop::Denied))
            } else if budget.exceeded().is_some() {
                Poll::Ready(Ended::Stopped(Stop::MemoryExceeded))
            } else {
                std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx).map(Ended::Returned)))
                    .await
            };
            match first {
                Poll::Ready(ended) => ended,
                Poll::Pending => tokio::select! {
                    biased;
                    _ = cancel.cancelled() => Ended::Stopped(Stop::Cancelled),
                    _ = abort.cancelled() => Ended::Stopped(Stop::Denied),
                    _ = budget.exceeded_signal() => Ended::Stopped(Stop::MemoryExceeded),
                    returned = tokio::time::timeout_at((started + timeout).into(), call) => {
                        match returned {
                            Ok(result) => Ended::Returned(result),
                            Err(_) => Ended::Stopped(Stop::TimedOut),
                        }
                    }
                },
            }
        };
        let wall_time = started.elapsed();
        let fuel_used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        drop(permit);

        let state = store.into_data();
        let memory = MemoryEnd {
            cap: memory_cap,
            guest_refused: state.limits.exceeded,
            host_at_refusal: state.limits.host_at_refusal,
            host_exceeded: budget.exceeded().map(str::to_string),
        };
        let memory_grows = state.limits.grows;
        let fatal = state.caps.fatal().map(str::to_string);
        let parts = state.caps.into_parts();
        let capabilities = parts.inner;
        let mut result = classify(ended, memory, timeout, fatal, &parts.logs);
        result.fuel_used = fuel_used;
        result.wall_time = wall_time;
        result.logs = parts.logs;
        result.logs_dropped = parts.logs_dropped;
        result.denied = parts.denied;
        result.calls = parts.calls;
        result.calls_dropped = parts.calls_dropped;
        result.steps = parts.steps;
        result.memory_grows = memory_grows;
        tracing::debug!(
            job = %job.manifest.name,
            status = result.status.as_str(),
            fuel_used,
            wall_us = wall_time.as_micros() as u64,
            "execution ended"
        );
        Execution {
            result,
            capabilities,
        }
    }

    /// Reads `job`'s program once, in an instance of its own (the guest runtime's
    /// `decode-program`), with no capability granted, the runtime's fuel and memory cap, and
    /// [`DECODE_TIMEOUT`]. Hands `capabilities` back (the store needs them, the guest may not
    /// use them) with the image, if the guest kept one within [`MAX_DECODED_IMAGE`].
    async fn decode_program(
        &self,
        job: &PreparedJob<C>,
        capabilities: C,
    ) -> (C, Option<Arc<[u8]>>) {
        let budget = MemoryBudget::new(self.config.max_memory);
        let caps = Gated::new(
            capabilities,
            CapabilitySet::NONE,
            &job.manifest.name,
            budget.clone(),
            job.program.clone(),
        );
        let mut store = Store::new(
            &self.engine,
            ExecState {
                caps,
                limits: Limits::new(self.config.max_memory, budget),
                cancel: CancelToken::new(),
                abort: CancelToken::new(),
                deadline: Instant::now() + DECODE_TIMEOUT,
                memory: None,
            },
        );
        store.limiter(|state| &mut state.limits);
        let _ = store.set_fuel(self.config.fuel);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(Stop::TimedOut.into())
            } else {
                Ok(UpdateDeadline::Continue(1))
            }
        });
        let read: wasmtime::Result<Result<Vec<u8>, JobError>> = match &job.linked {
            Linked::Shared(shared) => shared.decode(&mut store).await,
            // Only a job on the shared runtime has a program to read once (`register`).
            Linked::Component(_) => Ok(Ok(Vec::new())),
        };
        let image = match read {
            Ok(Ok(image)) if !image.is_empty() && image.len() <= MAX_DECODED_IMAGE => {
                Some(Arc::from(image))
            }
            Err(e) => {
                tracing::debug!(job = %job.manifest.name, error = %e, "reading the program once failed");
                None
            }
            // No image kept, or a program the guest cannot read: each run reads it (and says why).
            Ok(_) => None,
        };
        (store.into_data().caps.into_parts().inner, image)
    }
}

/// The shared runtime's core module (the one the component every `codeai build` component
/// starts with nests) and its SHA-256, its key in the artifact cache.
fn shared_runtime_bytes() -> Result<(&'static [u8], Digest), RuntimeError> {
    static HASH: OnceLock<Digest> = OnceLock::new();
    let setup = |e: codeai_dsl::emit::EmitError| RuntimeError::Setup(anyhow::anyhow!(e));
    let bytes = codeai_dsl::emit::runtime_core_module().map_err(setup)?;
    Ok((bytes, *HASH.get_or_init(|| cache::sha256(bytes))))
}

/// The manifest of a component in the shape `codeai build` gives, once its manifest and its
/// program are both of this runtime's IR version (the shared runtime would refuse the program
/// at every run; it is refused once, here).
fn build_manifest(build: &Build<'_>) -> Result<Manifest, RuntimeError> {
    #[derive(serde::Deserialize)]
    struct Versioned {
        ir_version: u32,
    }
    let manifest = Manifest::from_json(build.manifest).map_err(ManifestError::Invalid)?;
    match serde_json::from_slice::<Versioned>(build.program) {
        Ok(v) if v.ir_version == codeai_ir::IR_VERSION => Ok(manifest),
        Ok(v) => Err(ManifestError::Invalid(format!(
            "the program has IR version {}, this host runs {}",
            v.ir_version,
            codeai_ir::IR_VERSION
        ))
        .into()),
        Err(e) => Err(ManifestError::Invalid(format!("the program is unreadable: {e}")).into()),
    }
}

enum Ended {
    Returned(wasmtime::Result<Result<Outcome, JobError>>),
    Stopped(Stop),
}

impl ExecResult {
    fn ended(status: Status, error: impl Into<String>) -> ExecResult {
        ExecResult {
            status,
            output: None,
            error: Some(error.into()),
            step: None,
            fuel_used: 0,
            wall_time: Duration::ZERO,
            logs: Vec::new(),
            logs_dropped: 0,
            denied: Vec::new(),
            calls: Vec::new(),
            calls_dropped: 0,
            steps: Vec::new(),
            memory_grows: 0,
        }
    }
}

/// How an execution's memory stood when it ended.
struct MemoryEnd {
    cap: usize,
    /// The guest asked for memory past the cap.
    guest_refused: bool,
    /// Host buffers held when the guest was refused because of them.
    host_at_refusal: Option<usize>,
    /// Why host buffers were refused.
    host_exceeded: Option<String>,
}

fn classify(
    ended: Ended,
    memory: MemoryEnd,
    timeout: Duration,
    fatal: Option<String>,
    logs: &[LogLine],
) -> ExecResult {
    // Host buffers over the cap end the execution whatever the guest did next.
    if let Some(why) = memory.host_exceeded {
        return ExecResult::ended(Status::MemoryExceeded, why);
    }
    let stopped = |stop: &Stop| match stop {
        Stop::Cancelled => ExecResult::ended(Status::Cancelled, "cancelled"),
        Stop::TimedOut => ExecResult::ended(
            Status::TimedOut,
            format!("timed out after {} ms", timeout.as_millis()),
        ),
        Stop::Denied => ExecResult::ended(
            Status::Failed,
            fatal.clone().unwrap_or_else(|| "capability denied".into()),
        ),
        Stop::MemoryExceeded => ExecResult::ended(
            Status::MemoryExceeded,
            "host-side buffers exceeded the memory cap",
        ),
    };
    let error = match ended {
        Ended::Stopped(stop) => return stopped(&stop),
        Ended::Returned(Ok(Ok(Outcome::Completed(output)))) => {
            let mut result = ExecResult::ended(Status::Completed, "");
            result.error = None;
            result.output = Some(output);
            return result;
        }
        Ended::Returned(Ok(Ok(Outcome::Skipped(reason)))) => {
            return ExecResult::ended(Status::Skipped, reason);
        }
        Ended::Returned(Ok(Err(job_error))) => {
            let mut result = ExecResult::ended(Status::Failed, job_error.message);
            result.step = job_error.step;
            return result;
        }
        Ended::Returned(Err(error)) => error,
    };
    tracing::debug!("execution error: {error:?}");
    if memory.guest_refused {
        let host = match memory.host_at_refusal {
            Some(bytes) if bytes > 0 => format!(
                " (guest memory and the {bytes} bytes of host-side buffers held for it together)"
            ),
            _ => String::new(),
        };
        return ExecResult::ended(
            Status::MemoryExceeded,
            format!(
                "memory limit of {} bytes exceeded{host} ({error})",
                memory.cap
            ),
        );
    }
    if let Some(stop) = error.downcast_ref::<Stop>() {
        return stopped(stop);
    }
    let Some(trap) = error.downcast_ref::<Trap>() else {
        return ExecResult::ended(Status::Failed, format!("{error:#}"));
    };
    let status = match trap {
        Trap::OutOfFuel => Status::FuelExhausted,
        Trap::Interrupt => Status::TimedOut,
        _ => Status::Trapped,
    };
    let mut message = match trap {
        Trap::OutOfFuel => "fuel budget exhausted".to_string(),
        Trap::StackOverflow => "stack overflow (the wasm stack limit was reached)".to_string(),
        other => format!("wasm trap: {other}"),
    };
    // The guest runtime's panic hook logs the panic message just before it aborts.
    if let Some(panic) = logs
        .iter()
        .rev()
        .find(|l| l.message.starts_with("guest panic:"))
    {
        message = format!("{}; {message}", panic.message);
    }
    if let Some(frame) = error
        .downcast_ref::<WasmBacktrace>()
        .and_then(|bt| bt.frames().first())
        .and_then(|f| f.func_name().map(str::to_string))
    {
        message = format!("{message} (in `{frame}`)");
    }
    ExecResult::ended(status, message)
}
