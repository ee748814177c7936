//! Builds the guest runtime (`guest-stdlib`, crate `codeai-guest`) for `wasm32-unknown-unknown` and
//! puts the core module at `$OUT_DIR/guest.wasm`, where `emit.rs` embeds it.
//!
//! The guest is built by a nested `cargo build` with its own target dir (beside this build's, shared
//! by every profile) so that it never waits on the outer build's lock and is compiled once.
//! wasmtime's `crates/test-programs/artifacts/build.rs` does the same.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.parent().unwrap().to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    for path in [
        "guest-stdlib",
        "dsl-compiler/ir",
        "wit",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
    let target_dir = out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.clone())
        .join("codeai-guest");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&workspace)
        .args([
            "build",
            "--package",
            "codeai-guest",
            "--lib",
            "--profile",
            "guest",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // The outer build's flags and wrappers (clippy, coverage, sanitizers) must not leak in.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .expect("failed to run cargo to build the guest runtime");
    if !status.success() {
        panic!(
            "building the guest runtime (codeai-guest) for {TARGET} failed ({status}); \
             if the target is missing, run `rustup target add {TARGET}`"
        );
    }
    let built = target_dir
        .join(TARGET)
        .join("guest")
        .join("codeai_guest.wasm");
    std::fs::copy(&built, out_dir.join("guest.wasm"))
        .unwrap_or_else(|e| panic!("failed to copy `{}`: {e}", built.display()));
}
