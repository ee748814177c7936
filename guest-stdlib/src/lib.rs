//! The CodeAI guest runtime: the interpreter every job component carries.
//!
//! A job component is this crate, compiled once for `wasm32-unknown-unknown`, with the job's
//! compiled [`codeai_ir::Program`] written into its memory by `codeai build`. On `run(input)` it
//! reads the program and executes its steps, reaching the world only through the WIT imports of
//! `codeai:host` (see `component.rs`, wasm only).
//!
//! The interpreter ([`interp`]) talks to a [`host::Host`] trait, so it is tested natively with a
//! recording fake. It keeps no global state: everything lives in one `run`.

pub mod host;
pub mod interp;
pub mod time;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod heap;
