//! `cargo xtask <task>`: the project's chores, in Rust so they run the same everywhere.
//!
//! - `ci`: everything CI checks — formatting, clippy with warnings denied, the whole test suite
//!   (nextest when installed, `cargo test` otherwise) and the doc tests.
//! - `bench`: the benchmarks, in release mode; their figures go into `BENCHMARKS.md`.
//! - `fuzz [CASES]`: the parser's no-panic property test with many cases, in release mode.

use anyhow::{bail, Context, Result};
use std::process::Command;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => cargo(&["bench", "--workspace"]),
        Some("fuzz") => {
            let cases = args.get(1).cloned().unwrap_or_else(|| "100000".into());
            run(Command::new(cargo_bin())
                .args([
                    "test",
                    "--release",
                    "-p",
                    "codeai-dsl",
                    "--test",
                    "fuzz",
                    "--",
                    "--nocapture",
                ])
                .env("CODEAI_FUZZ_CASES", cases))
        }
        _ => bail!("usage: cargo xtask <ci|bench|fuzz [CASES]>"),
    }
}

fn ci() -> Result<()> {
    cargo(&["fmt", "--all", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The guest's WIT glue only exists on wasm32: lint it there too.
    cargo(&[
        "clippy",
        "--package",
        "codeai-guest",
        "--target",
        "wasm32-unknown-unknown",
        "--",
        "-D",
        "warnings",
    ])?;
    let has_nextest = Command::new(cargo_bin())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_nextest {
        cargo(&["nextest", "run", "--workspace", "--no-fail-fast"])?;
    } else {
        cargo(&["test", "--workspace", "--no-fail-fast"])?;
    }
    cargo(&["test", "--workspace", "--doc"])
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn cargo(args: &[&str]) -> Result<()> {
    run(Command::new(cargo_bin()).args(args))
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd
        .status()
        .with_context(|| format!("failed to start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed with {status}");
    }
    Ok(())
}
