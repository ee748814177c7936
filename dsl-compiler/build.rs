//! Builds the guest runtime (`guest-stdlib`, crate `codeai-guest`) for `wasm32-unknown-unknown` and
//! puts the core module at `$OUT_DIR/guest.wasm`, where `emit.rs` embeds it.
//!
//! The guest is built by a nested `cargo build` with its own target dir (beside this build's, shared
//! by every profile) so that it never waits on the outer build's lock and is compiled once.
//! wasmtime's `crates/test-programs/artifacts/build.rs` does the same.
//!
//! The guest needs the toolchain's `wasm32-unknown-unknown` standard library. `rust-toolchain.toml`
//! lists the target, but rustup installs listed targets only where it installs toolchains
//! automatically; when the target is missing and rustup is there, this script adds it (saying so)
//! rather than failing a first build on a step the README would have to explain.

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

    ensure_target(&workspace);

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

/// Whether the compiler that builds the guest has the target's standard library.
fn target_installed() -> bool {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).args(["--print", "sysroot"]).output() else {
        // No answer: let the guest build say what is wrong.
        return true;
    };
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    !out.status.success()
        || sysroot
            .join("lib/rustlib")
            .join(TARGET)
            .join("lib")
            .is_dir()
}

/// Adds the guest's target with rustup when it is missing.
fn ensure_target(workspace: &Path) {
    if target_installed() {
        return;
    }
    println!(
        "cargo:warning=the {TARGET} target (needed to build the guest runtime) is missing: \
         installing it with `rustup target add {TARGET}`"
    );
    let mut rustup = Command::new("rustup");
    rustup
        .current_dir(workspace)
        .args(["target", "add", TARGET]);
    if let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    match rustup.status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`rustup target add {TARGET}` failed ({status}); the guest runtime cannot be built \
             without it: install the target for the toolchain in rust-toolchain.toml"
        ),
        Err(e) => panic!(
            "the {TARGET} target is missing and rustup could not be run ({e}): install the \
             target's standard library for this toolchain to build the guest runtime"
        ),
    }
}
