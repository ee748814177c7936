//! End-to-end emission: the example's ten jobs become valid components that import only
//! `codeai:host/*`, export `run`, carry their program as data and their manifest as a section.

use codeai_dsl::emit::read_manifest;
use wasmparser::{ComponentTypeRef, Parser, Payload, Validator, WasmFeatures};

fn example() -> Vec<codeai_dsl::Artifact> {
    let source = include_str!("../../examples/05-scheduled-jobs/scheduled-jobs.codeai");
    let (artifacts, diagnostics) =
        codeai_dsl::compile("scheduled-jobs.codeai", source).expect("the example builds");
    assert!(diagnostics.is_empty(), "{diagnostics:?}");
    artifacts
}

/// Top-level import and export names of a component.
fn imports_exports(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    let mut depth = 0;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.unwrap() {
            Payload::Version { .. } => depth += 1,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(r) if depth == 1 => {
                for i in r {
                    let i = i.unwrap();
                    // Types the world `use`s (json, outcome, job-error) are imported as types;
                    // capabilities are instances.
                    if matches!(i.ty, ComponentTypeRef::Instance(_)) {
                        imports.push(i.name.name.to_string());
                    } else {
                        assert!(matches!(i.ty, ComponentTypeRef::Type(_)), "{}", i.name.name);
                    }
                }
            }
            Payload::ComponentExportSection(r) if depth == 1 => {
                for e in r {
                    exports.push(e.unwrap().name.name.to_string());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

#[test]
fn the_example_emits_ten_valid_components() {
    let artifacts = example();
    let mut names: Vec<&str> = artifacts.iter().map(|a| a.file_name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cleanup_expired_reports.wasm",
            "cleanup_expired_sessions.wasm",
            "cleanup_job_executions.wasm",
            "daily_sales_report.wasm",
            "database_maintenance.wasm",
            "low_stock_alert.wasm",
            "monthly_business_summary.wasm",
            "process_pending_webhooks.wasm",
            "sync_external_inventory.wasm",
            "weekly_inventory_report.wasm",
        ]
    );
    for a in &artifacts {
        Validator::new_with_features(WasmFeatures::all())
            .validate_all(&a.bytes)
            .unwrap_or_else(|e| panic!("{}: invalid component: {e}", a.name));
        let (imports, exports) = imports_exports(&a.bytes);
        assert_eq!(exports, ["run"], "{}", a.name);
        assert!(!imports.is_empty());
        for import in &imports {
            assert!(
                import.starts_with("codeai:host/") && import.ends_with("@0.1.0"),
                "{}: unexpected import {import}",
                a.name
            );
        }
        let manifest = read_manifest(&a.bytes).unwrap();
        assert_eq!(manifest, a.manifest);
        // The program travels as data: its JSON (which names the job) is inside the component.
        let needle = format!("\"job\":\"{}\"", a.name);
        assert!(
            a.bytes
                .windows(needle.len())
                .any(|w| w == needle.as_bytes()),
            "{}: program not embedded",
            a.name
        );
    }
}

#[test]
fn components_differ_only_by_what_the_job_says() {
    let artifacts = example();
    let first = &artifacts[0].bytes;
    assert!(artifacts[1..].iter().all(|a| &a.bytes != first));
}

#[test]
fn read_manifest_refuses_what_codeai_did_not_build() {
    let runtime = codeai_dsl::emit::guest_runtime();
    assert!(read_manifest(b"not wasm").is_err());
    let err = read_manifest(runtime).unwrap_err().to_string();
    assert!(err.contains("codeai-manifest"), "{err}");
}
