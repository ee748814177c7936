//! The guest runtime's stack: 128 KiB of its linear memory (Rust's default for wasm is 1 MiB).
//!
//! A host's pool resets an instance's memory after every run by walking the page table over all
//! of it (`PAGEMAP_SCAN`), so every page of the initial memory costs each run, used or not: with
//! a 1 MiB stack the initial memory was 352 pages of 4 KiB, with 256 KiB 160, with 128 KiB 128
//! (BENCHMARKS.md, "The runtime's memory made smaller", and its session 16 sequel). The deepest
//! jobs the compiler accepts, in seven shapes (chains of operators and of fields, nested calls,
//! nested object literals, chains of declared actions, the same chain failing and logging at its
//! deepest step, `for_each` in `for_each`: `host/tests/sandbox.rs`,
//! `the_deepest_jobs_the_compiler_accepts_run`), ran on 80 KiB; on 64 KiB the four shapes of
//! expressions ran and the chain of actions overflowed (the test stops there). So 128 KiB leaves
//! the deepest shape measured at least 1.6x. A program deeper than the compiler builds (a
//! hand-made one) that overflows the stack traps: the stack is at the bottom of the memory, and
//! its run fails alone.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=131072");
    }
}
