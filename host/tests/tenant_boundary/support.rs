//! What every attack test needs: a whole in-process host on a loopback port, tenants with
//! tokens, jobs compiled from DSL source by the real compiler, uploads, runs, and a way to edit a
//! built component's manifest the way a tenant who skips `codeai build` would.

#![allow(dead_code, unreachable_pub)]

use crate::common;
pub use crate::common::test_host::{TestHost, ADMIN};
use codeai_host::store::{tenants, Database};
use serde_json::{json, Value};

/// Creates tenant `name` and returns a token of it.
pub async fn tenant(db: &Database, name: &str) -> String {
    tenants::create_tenant(db, name, None, None, None)
        .await
        .unwrap();
    tenants::create_token(db, Some(name), false, "test")
        .await
        .unwrap()
}

/// `codeai build` of `source`: the components by job name, or the rendered diagnostics.
pub fn build(source: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
    match codeai_dsl::compile("tenant.codeai", source) {
        Ok((artifacts, _)) => Ok(artifacts.into_iter().map(|a| (a.name, a.bytes)).collect()),
        Err(failed) => Err(codeai_dsl::diagnostic::render_all(
            "tenant.codeai",
            source,
            &failed.diagnostics,
        )),
    }
}

/// The component of job `name` in `source`; panics when the source does not build.
pub fn job(source: &str, name: &str) -> Vec<u8> {
    build(source)
        .unwrap_or_else(|e| panic!("the source does not build:\n{e}"))
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no job `{name}`"))
        .1
}

/// The manifest of a component, as JSON.
pub fn manifest_of(bytes: &[u8]) -> Value {
    let manifest = codeai_host::wasm::read_manifest(bytes).unwrap();
    serde_json::to_value(manifest).unwrap()
}

/// The component with its manifest replaced by `edit` applied to it: what a tenant who edits
/// `codeai build`'s output (or writes a component by hand) can upload. The program inside is
/// unchanged.
pub fn with_manifest(bytes: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut manifest = manifest_of(bytes);
    edit(&mut manifest);
    let mut out = without_section(bytes, codeai_ir::MANIFEST_SECTION);
    codeai_dsl::emit::append_custom_section(
        &mut out,
        codeai_ir::MANIFEST_SECTION,
        &serde_json::to_vec(&manifest).unwrap(),
    );
    out
}

/// The component without its top-level custom section `name` (nested sections are opaque
/// payloads of their parent section and stay).
fn without_section(bytes: &[u8], name: &str) -> Vec<u8> {
    fn leb(bytes: &[u8], at: &mut usize) -> usize {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let b = bytes[*at];
            *at += 1;
            value |= usize::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut out = bytes[..8].to_vec();
    let mut at = 8;
    while at < bytes.len() {
        let start = at;
        let id = bytes[at];
        at += 1;
        let size = leb(bytes, &mut at);
        let end = at + size;
        let skip = id == 0 && {
            let mut p = at;
            let len = leb(bytes, &mut p);
            &bytes[p..p + len] == name.as_bytes()
        };
        if !skip {
            out.extend_from_slice(&bytes[start..end]);
        }
        at = end;
    }
    out
}

/// A component made by hand (not by `codeai build`) that fits the `job` world: `run` returns
/// `completed("{}")`; `functions` are extra core functions (WAT) it carries; the manifest is a
/// real build's, renamed `name`.
pub fn hand_made(name: &str, functions: &str) -> Vec<u8> {
    let mut manifest = manifest_of(&job(
        "job Template { steps { s { compute: 1 } } }",
        "Template",
    ));
    manifest["name"] = json!(name);
    manifest["capabilities"] = json!([]);
    common::handmade::job_component(
        name,
        "",
        &format!("{} {functions}", common::handmade::RUN_COMPLETED),
        &serde_json::to_vec(&manifest).unwrap(),
    )
}

/// `count` functions of straight-line arithmetic, each about `bytes` bytes of code (three bytes
/// per `i32.const 1; i32.add`): what a compile bomb is made of. `salt` makes them differ.
pub fn arithmetic(count: usize, bytes: usize, salt: u32) -> String {
    let body = "i32.const 1 i32.add ".repeat(bytes / 3);
    (0..count)
        .map(|i| format!("(func $f{i} (param i32) (result i32) local.get 0 i32.const {salt} i32.add {body})\n"))
        .collect()
}
