//! The guest runtime's stack: 256 KiB of its linear memory (Rust's default for wasm is 1 MiB).
//!
//! A host's pool resets an instance's memory after every run by walking the page table over all
//! of it (`PAGEMAP_SCAN`), so every page of the initial memory costs each run, used or not: with
//! a 1 MiB stack the initial memory was 352 pages of 4 KiB, with 256 KiB 160, and a no-op run
//! ~0.2 µs less (BENCHMARKS.md, "The runtime's memory made smaller"). The deepest jobs the
//! compiler accepts, in four shapes (chains of operators and of fields, nested calls, nested
//! object literals: `host/tests/sandbox.rs`, `the_deepest_jobs_the_compiler_accepts_run`), ran
//! on 48 KiB and overflowed 32 KiB. A program deeper than the compiler builds (a hand-made one)
//! that overflows the stack traps: the stack is at the bottom of the memory, and its run fails
//! alone.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=262144");
    }
}
