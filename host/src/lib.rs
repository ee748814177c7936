//! The CodeAI Jobs host: runs job components built by the DSL compiler on a schedule, through
//! queues and a worker pool, each execution in a fresh wasmtime sandbox, and serves the HTTP API
//! and the dashboard. `main.rs` only parses arguments and calls [`cli`].
//!
//! The layers, each using only the ones below it (ARCHITECTURE.md has the map and each
//! module's invariant):
//!
//! - [`api`] (HTTP handlers) and [`cli`] (commands): parse, call one domain function, shape
//!   the answer.
//! - [`app`] wires a host together for its role; [`background`] holds its services (scheduler
//!   fires, lease reaper, alerts, leader election, heartbeats), one file each.
//! - [`domain`]: the job and execution lifecycle, the one writer of execution state;
//!   [`scheduler`], [`worker`] and [`executor`] drive executions.
//! - [`runtime`] (wasmtime: fuel, memory, deadlines, compile budgets) and [`caps`] (the
//!   capabilities a job calls, one file per WIT interface); [`wasm`] is the generated bindings.
//! - [`queue`] (one front over the SQL and Redis backends) and [`store`] (every SQL statement
//!   outside the queue backends).
//! - [`logging`] and [`telemetry`]: the process's log lines and its OpenTelemetry traces.

/// The allocator of every program that links the host (the `codeai` binary, its tests and
/// benches alike): mimalloc, which also serves the C code's `malloc` (SQLite's), without
/// transparent huge pages. With glibc's allocator, `malloc` and `free` took a fifth of the CPU of a
/// no-op throughput run, half of it on the SQLite connections' threads while they held the one
/// write lock; with huge pages, clearing them took half (BENCHMARKS.md, 2026-12-05, session 9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod alerts;
pub mod api;
pub mod app;
pub mod background;
pub mod caps;
pub mod cli;
pub mod cluster;
pub mod describe;
pub mod domain;
pub mod egress;
pub mod envvar;
pub mod executor;
pub mod integrations;
pub mod logging;
pub mod notify;
pub mod queue;
pub mod quotas;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod wasm;
pub mod worker;
