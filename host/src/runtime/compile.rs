//! What compiling a component may cost: compile bombs.
//!
//! A job's fuel, memory cap and deadline bound its *execution*; compiling its component comes
//! before and is paid by the host. A component of a few megabytes of straight-line arithmetic
//! (valid, within the upload limit) took 5.6 s of both cores and 0.9 GB of memory to compile.
//! So every compile is budgeted:
//!
//! - **Code size, before compiling** ([`code_size`], [`CompileLimits::check`]): the bytes of all
//!   function bodies of all core modules in the component, and of the largest one. What
//!   Cranelift costs grows with both; a component over either is refused without compiling.
//! - **One at a time** ([`CompilePool`]): compiles wait for a place in a pool of bounded
//!   concurrency (default 1), never in a worker slot or on an async thread.
//! - **Time and memory**: with a compiler program configured (the `codeai` binary compiles in a
//!   child process, `codeai __compile`), the child runs under `RLIMIT_DATA` (the memory budget)
//!   and `RLIMIT_CPU`, and is killed at the wall-clock budget; a compile over budget fails with
//!   the reason and the host keeps its memory. Without one (a library use, some tests) compiles
//!   run in process, bounded by size and concurrency only.
//! - **Per tenant**: a tenant's uploads may cause a bounded number of compiles per hour
//!   ([`CompilePool::charge`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The budget of one compile and of the pool.
#[derive(Debug, Clone)]
pub struct CompileLimits {
    /// Bytes of function bodies in the whole component (default 4 MiB; the guest runtime of
    /// `codeai build` has 0.37 MiB).
    pub max_code_bytes: usize,
    /// Bytes of the largest function body (default 256 KiB; the guest runtime's largest has
    /// 45 KiB).
    pub max_function_bytes: usize,
    /// Wall-clock budget of one compile (default 60 s).
    pub timeout: Duration,
    /// Memory budget of one compile, in bytes (default 1 GiB), for the compiler child process.
    pub max_memory: u64,
    /// Compiles at once (default 1).
    pub concurrency: usize,
    /// The `codeai` binary, to compile in a child process under the time and memory budget;
    /// `None` compiles in this process (bounded by size and concurrency only).
    pub program: Option<PathBuf>,
    /// Compiles one tenant's uploads may cause per hour (default 30); the operator's are free.
    pub tenant_compiles_per_hour: u32,
}

impl Default for CompileLimits {
    fn default() -> CompileLimits {
        CompileLimits {
            max_code_bytes: 4 << 20,
            max_function_bytes: 256 << 10,
            timeout: Duration::from_secs(60),
            max_memory: 1 << 30,
            concurrency: 1,
            program: None,
            tenant_compiles_per_hour: 30,
        }
    }
}

impl CompileLimits {
    /// The limits from the environment (`CODEAI_COMPILE_MAX_CODE_BYTES`,
    /// `CODEAI_COMPILE_MAX_FUNCTION_BYTES`, `CODEAI_COMPILE_TIMEOUT_SECS`,
    /// `CODEAI_COMPILE_MAX_MEMORY`, `CODEAI_COMPILE_CONCURRENCY`,
    /// `CODEAI_TENANT_COMPILES_PER_HOUR`), compiling in a child process of this binary.
    pub fn from_env() -> Result<CompileLimits, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            Ok(crate::envvar::positive(name)?.unwrap_or(default))
        };
        let d = CompileLimits::default();
        Ok(CompileLimits {
            max_code_bytes: number("CODEAI_COMPILE_MAX_CODE_BYTES", d.max_code_bytes as u64)?
                as usize,
            max_function_bytes: number(
                "CODEAI_COMPILE_MAX_FUNCTION_BYTES",
                d.max_function_bytes as u64,
            )? as usize,
            timeout: Duration::from_secs(number(
                "CODEAI_COMPILE_TIMEOUT_SECS",
                d.timeout.as_secs(),
            )?),
            max_memory: number("CODEAI_COMPILE_MAX_MEMORY", d.max_memory)?,
            concurrency: number("CODEAI_COMPILE_CONCURRENCY", d.concurrency as u64)? as usize,
            program: std::env::current_exe().ok(),
            tenant_compiles_per_hour: number(
                "CODEAI_TENANT_COMPILES_PER_HOUR",
                u64::from(d.tenant_compiles_per_hour),
            )? as u32,
        })
    }
}

/// The code a component carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CodeSize {
    /// Bytes of all function bodies.
    pub total: usize,
    /// Bytes of the largest function body.
    pub largest: usize,
    pub functions: usize,
}

/// Why a component is not compiled, or its compile failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CompileError {
    #[error(
        "the component has {total} bytes of code, more than this host compiles ({limit}; \
         CODEAI_COMPILE_MAX_CODE_BYTES)"
    )]
    TooMuchCode { total: usize, limit: usize },
    #[error(
        "the component's largest function has {largest} bytes of code, more than this host \
         compiles ({limit}; CODEAI_COMPILE_MAX_FUNCTION_BYTES)"
    )]
    FunctionTooLarge { largest: usize, limit: usize },
    #[error("the component is not valid WebAssembly: {0}")]
    Malformed(String),
    #[error("compiling took longer than its budget of {0:?} (CODEAI_COMPILE_TIMEOUT_SECS)")]
    TimedOut(Duration),
    #[error(
        "compiling needed more memory than its budget of {0} bytes (CODEAI_COMPILE_MAX_MEMORY)"
    )]
    OutOfMemory(u64),
    #[error(
        "tenant `{tenant}` caused {limit} compiles in the last hour, its quota \
         (CODEAI_TENANT_COMPILES_PER_HOUR); try again later"
    )]
    Quota { tenant: String, limit: u32 },
    #[error("the component does not compile: {0}")]
    Failed(String),
}

impl CompileError {
    /// The error's code in API answers.
    pub fn code(&self) -> &'static str {
        match self {
            CompileError::TooMuchCode { .. } | CompileError::FunctionTooLarge { .. } => {
                "too_much_code"
            }
            CompileError::Malformed(_) => "malformed_component",
            CompileError::TimedOut(_) | CompileError::OutOfMemory(_) => "compile_budget_exceeded",
            CompileError::Quota { .. } => "compile_quota_exceeded",
            CompileError::Failed(_) => "wrong_world",
        }
    }
}

/// Measures the function bodies of every core module in `bytes` (a component or a module),
/// nested ones included, without compiling anything.
pub fn code_size(bytes: &[u8]) -> Result<CodeSize, CompileError> {
    let mut size = CodeSize::default();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| CompileError::Malformed(e.to_string()))?;
        if let wasmparser::Payload::CodeSectionEntry(body) = payload {
            let len = body.range().len();
            size.total += len;
            size.largest = size.largest.max(len);
            size.functions += 1;
        }
    }
    Ok(size)
}

impl CompileLimits {
    /// Checks `bytes`' code against the limits; its size when it fits.
    pub fn check(&self, bytes: &[u8]) -> Result<CodeSize, CompileError> {
        let size = code_size(bytes)?;
        if size.total > self.max_code_bytes {
            return Err(CompileError::TooMuchCode {
                total: size.total,
                limit: self.max_code_bytes,
            });
        }
        if size.largest > self.max_function_bytes {
            return Err(CompileError::FunctionTooLarge {
                largest: size.largest,
                limit: self.max_function_bytes,
            });
        }
        Ok(size)
    }
}

/// What the pool has done, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompileStats {
    /// Compiles running now.
    pub running: usize,
    /// The most that ever ran at once.
    pub max_running: usize,
    /// Compiles started.
    pub started: usize,
    /// Components refused before compiling (too much code, quota).
    pub refused: usize,
}

/// The compile pool: a semaphore of [`CompileLimits::concurrency`] places, counters, and each
/// tenant's compiles of the last hour.
pub struct CompilePool {
    limits: CompileLimits,
    places: Semaphore,
    running: AtomicUsize,
    max_running: AtomicUsize,
    started: AtomicUsize,
    refused: AtomicUsize,
    by_tenant: Mutex<HashMap<String, Vec<Instant>>>,
}

impl CompilePool {
    pub fn new(limits: CompileLimits) -> CompilePool {
        CompilePool {
            places: Semaphore::new(limits.concurrency.max(1)),
            limits,
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            started: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            by_tenant: Mutex::new(HashMap::new()),
        }
    }

    pub fn limits(&self) -> &CompileLimits {
        &self.limits
    }

    pub fn stats(&self) -> CompileStats {
        CompileStats {
            running: self.running.load(Ordering::SeqCst),
            max_running: self.max_running.load(Ordering::SeqCst),
            started: self.started.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
        }
    }

    /// Checks the code of `bytes` against the limits, counting a refusal.
    pub fn check(&self, bytes: &[u8]) -> Result<CodeSize, CompileError> {
        self.limits.check(bytes).inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::SeqCst);
        })
    }

    /// Counts one compile against `tenant`'s hourly quota (the operator has none); refused when
    /// the tenant has used it up.
    pub fn charge(&self, tenant: &str) -> Result<(), CompileError> {
        if crate::store::tenants::is_operator(tenant) {
            return Ok(());
        }
        let now = Instant::now();
        let hour = Duration::from_secs(3600);
        let mut by_tenant = self.by_tenant.lock().unwrap_or_else(|e| e.into_inner());
        let recent = by_tenant.entry(tenant.to_string()).or_default();
        recent.retain(|t| now.duration_since(*t) < hour);
        if recent.len() >= self.limits.tenant_compiles_per_hour as usize {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Err(CompileError::Quota {
                tenant: tenant.to_string(),
                limit: self.limits.tenant_compiles_per_hour,
            });
        }
        recent.push(now);
        Ok(())
    }

    /// Runs `compile` (blocking) when a place is free, on a blocking thread; counts it.
    pub async fn run<T: Send + 'static>(
        &self,
        compile: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, CompileError> {
        let _place = self
            .places
            .acquire()
            .await
            .map_err(|_| CompileError::Failed("the compile pool is closed".into()))?;
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        self.started.fetch_add(1, Ordering::SeqCst);
        let result = tokio::task::spawn_blocking(compile).await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        result.map_err(|e| CompileError::Failed(format!("the compile panicked: {e}")))
    }
}

// ---------------------------------------------------------------------------------------------
// The compiler child process
// ---------------------------------------------------------------------------------------------

/// The arguments that make the compiler child build an engine like this host's.
pub(crate) fn engine_args(config: &super::RuntimeConfig) -> Vec<String> {
    vec![
        "--pool-size".into(),
        config.pool_size.to_string(),
        "--max-memory".into(),
        config.max_memory.to_string(),
        "--max-wasm-stack".into(),
        config.max_wasm_stack.to_string(),
    ]
}

/// `codeai __compile --pool-size N --max-memory N --max-wasm-stack N`: reads a component on
/// stdin, writes what an engine of those settings precompiles of it on stdout. Returns the
/// process's exit code.
pub fn child_main(args: &[String]) -> i32 {
    use std::io::{Read as _, Write as _};
    let mut config = super::RuntimeConfig::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--pool-size", Some(v)) => config.pool_size = v as u32,
            ("--max-memory", Some(v)) => config.max_memory = v as usize,
            ("--max-wasm-stack", Some(v)) => config.max_wasm_stack = v as usize,
            _ => {
                eprintln!("codeai {CHILD_COMMAND}: unexpected argument `{flag}`");
                return 2;
            }
        }
    }
    let engine = match super::engine::build(&config) {
        Ok(engine) => engine,
        Err(e) => {
            eprintln!("the engine could not start: {e:#}");
            return 1;
        }
    };
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut bytes) {
        eprintln!("reading the component: {e}");
        return 1;
    }
    match engine.precompile_component(&bytes) {
        Ok(artifact) => match std::io::stdout().write_all(&artifact) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("writing the artifact: {e}");
                1
            }
        },
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}

/// The hidden command the `codeai` binary answers to: reads a component on stdin and writes the
/// engine's precompiled artifact on stdout.
pub const CHILD_COMMAND: &str = "__compile";

/// Precompiles `bytes` in a child process (`program __compile`) under the limits' memory and
/// CPU budgets, killed at the wall-clock budget. `engine_args` tell the child how to build an
/// engine identical to this host's (so the artifact loads here).
pub(crate) fn compile_in_child(
    program: &std::path::Path,
    engine_args: &[String],
    bytes: &[u8],
    limits: &CompileLimits,
) -> Result<Vec<u8>, CompileError> {
    use std::io::{Read as _, Write as _};
    use std::os::unix::process::CommandExt as _;
    use std::process::{Command, Stdio};

    let memory = limits.max_memory;
    let cpu = limits.timeout.as_secs().max(1) + 1;
    let mut command = Command::new(program);
    command
        .arg(CHILD_COMMAND)
        .args(engine_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("RUST_BACKTRACE", "0");
    // SAFETY: only async-signal-safe calls (setrlimit) between fork and exec.
    unsafe {
        command.pre_exec(move || {
            set_limit(libc::RLIMIT_DATA, memory)?;
            set_limit(libc::RLIMIT_CPU, cpu)?;
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| CompileError::Failed(format!("starting the compiler process: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out);
        out
    });
    let deadline = Instant::now() + limits.timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(CompileError::Failed(format!(
                    "waiting for the compiler: {e}"
                )))
            }
        }
    };
    let _ = writer.join();
    let artifact = reader.join().unwrap_or_default();
    let stderr = errors.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(CompileError::TimedOut(limits.timeout));
    };
    if status.success() {
        return Ok(artifact);
    }
    use std::os::unix::process::ExitStatusExt as _;
    let signal = status.signal();
    if signal == Some(libc::SIGXCPU) || signal == Some(libc::SIGKILL) {
        return Err(CompileError::TimedOut(limits.timeout));
    }
    if signal == Some(libc::SIGABRT)
        || stderr.contains("memory allocation")
        || stderr.contains("out of memory")
        || stderr.contains("Cannot allocate memory")
    {
        return Err(CompileError::OutOfMemory(memory));
    }
    let last = stderr.lines().last().unwrap_or("").trim().to_string();
    Err(CompileError::Failed(if last.is_empty() {
        format!("the compiler process ended with {status}")
    } else {
        last
    }))
}

fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit with a valid struct.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_runtime_fits_the_default_limits_with_room() {
        let size = code_size(codeai_dsl::emit::guest_runtime()).unwrap();
        let limits = CompileLimits::default();
        assert!(size.functions > 100, "{size:?}");
        // About 0.51 MiB of code in a 4 MiB limit (2026-12-05): room for the runtime to double
        // twice before a legitimate build comes near what refuses a compile bomb.
        assert!(size.total * 4 < limits.max_code_bytes, "{size:?}");
        assert!(size.largest * 4 < limits.max_function_bytes, "{size:?}");
        assert_eq!(limits.check(codeai_dsl::emit::guest_runtime()), Ok(size));
    }

    #[test]
    fn limits_refuse_before_compiling() {
        let module = wat::parse_str(
            "(module (func (result i32) i32.const 1 i32.const 2 i32.add) (func nop))",
        )
        .unwrap();
        let size = code_size(&module).unwrap();
        assert_eq!(size.functions, 2);
        let code = |max_code_bytes| CompileLimits {
            max_code_bytes,
            ..CompileLimits::default()
        };
        let function = |max_function_bytes| CompileLimits {
            max_function_bytes,
            ..CompileLimits::default()
        };
        // A limit holds up to its value, inclusive.
        assert_eq!(code(size.total).check(&module), Ok(size));
        assert_eq!(function(size.largest).check(&module), Ok(size));
        let over_total = code(size.total - 1).check(&module);
        assert!(
            matches!(over_total, Err(CompileError::TooMuchCode { .. })),
            "{over_total:?}"
        );
        let over_largest = function(size.largest - 1).check(&module);
        assert!(
            matches!(over_largest, Err(CompileError::FunctionTooLarge { .. })),
            "{over_largest:?}"
        );
    }

    #[test]
    fn a_tenants_compiles_are_counted() {
        let pool = CompilePool::new(CompileLimits {
            tenant_compiles_per_hour: 2,
            ..CompileLimits::default()
        });
        assert!(pool.charge("acme").is_ok());
        assert!(pool.charge("acme").is_ok());
        assert!(matches!(
            pool.charge("acme"),
            Err(CompileError::Quota { .. })
        ));
        assert!(pool.charge("globex").is_ok());
        for _ in 0..5 {
            assert!(pool.charge("default").is_ok(), "the operator has no quota");
        }
        assert_eq!(pool.stats().refused, 1);
    }
}
