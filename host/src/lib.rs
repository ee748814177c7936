//! The CodeAI Jobs platform: the wasmtime runtime that runs job components and the `codeai`
//! command line.
//!
//! - [`wasm`] loads a job component, links the `codeai:host` capabilities a host-state type
//!   provides, and calls the component's `run` export. It is the seed of the real runtime.
//! - [`cli`] is the `codeai` binary's commands; `main.rs` only parses arguments and calls in here.

pub mod alerts;
pub mod api;
pub mod app;
pub mod caps;
pub mod cli;
pub mod cluster;
pub mod domain;
pub mod envvar;
pub mod executor;
pub mod notify;
pub mod queue;
pub mod quotas;
pub mod report;
pub mod runtime;
pub mod scheduler;
pub mod services;
pub mod store;
pub mod wasm;
pub mod worker;
