//! End-to-end emission: a hand-built program and the example's ten jobs become valid components
//! that import only `codeai:host/*`, export `run`, and are one runtime component (the same bytes
//! for every job) followed by their program and manifest sections; one emitted component runs
//! in wasmtime, handed its program by `program.get`, and finds it intact after the guest has
//! allocated far more memory than the program occupies.

use codeai_dsl::emit::{emit, guest_runtime, read_manifest, read_program, runtime_component};
use codeai_ir::{
    Backoff, Builtin, Expr, Manifest, Part, Program, QueueDecl, RetryPolicy, Schedule, Step,
    StepKind, IR_VERSION,
};
use std::collections::BTreeMap;
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
        assert_eq!(exports, ["run", "codeai:host/decoded@0.1.0"], "{}", a.name);
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
        // The program travels in its own section; the code is the runtime's, byte for byte.
        assert_eq!(read_program(&a.bytes).unwrap().job, a.name);
        assert!(
            a.bytes.starts_with(runtime_component().unwrap()),
            "{}",
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

/// Editing one job of a file rebuilds that job's component only: the others come out byte for
/// byte as before, so a host registers no new version of them; a declaration a job uses changes
/// that job too. (Lines added above a job move its steps' locations, which its program
/// carries for error messages: that job is then rebuilt too.)
#[test]
fn editing_one_job_leaves_the_other_jobs_components_as_they_were() {
    let source = r#"
template note {
    subject: "Note"
    body: "{{n}}"
}

job First {
    schedule: every 1h
    steps { one { compute: 1 as: n } }
}

job Second {
    schedule: every 2h
    steps { two { log: "second" } }
}
"#;
    let build = |source: &str| -> Vec<Vec<u8>> {
        let (artifacts, _) = codeai_dsl::compile("file.codeai", source).expect("builds");
        artifacts.into_iter().map(|a| a.bytes).collect()
    };
    let before = build(source);
    let edited = build(&source.replace("log: \"second\"", "log: \"second, edited\""));
    assert_eq!(before[0], edited[0], "First is untouched");
    assert_ne!(before[1], edited[1], "Second changed");
    // A job that sends the template changes with it.
    let sender = source.replace(
        "steps { one { compute: 1 as: n } }",
        "steps { one { compute: 1 as: n } mail { send: email(\"a@example.com\") { template: \"note\" data: { n: n } } } }",
    );
    let with_mail = build(&sender);
    let with_other_subject = build(&sender.replace("subject: \"Note\"", "subject: \"Notice\""));
    assert_ne!(
        with_mail[0], with_other_subject[0],
        "First sends the template"
    );
    assert_eq!(with_mail[1], with_other_subject[1], "Second does not");
}

#[test]
fn read_manifest_refuses_what_codeai_did_not_build() {
    use codeai_dsl::emit::ManifestError;
    assert!(matches!(
        read_manifest(b"not wasm"),
        Err(ManifestError::NotAComponent)
    ));
    // The bare guest runtime is a core module, not a job component.
    let runtime = codeai_dsl::emit::guest_runtime();
    assert!(matches!(
        read_manifest(runtime),
        Err(ManifestError::NotAComponent)
    ));
    // A job component whose manifest section is renamed has no manifest any more.
    let mut renamed = example()[0].bytes.clone();
    let name = codeai_ir::MANIFEST_SECTION.as_bytes();
    let at = renamed
        .windows(name.len())
        .rposition(|w| w == name)
        .unwrap();
    renamed[at + name.len() - 1] = b'X';
    assert!(matches!(
        read_manifest(&renamed),
        Err(ManifestError::Missing)
    ));
}

// ---------------------------------------------------------------------------------------------
// A hand-built program, emitted and run
// ---------------------------------------------------------------------------------------------

/// A program whose steps use no capability (so a component with trapping imports can run it):
/// the size of `input?.blob` (absent in the second run), a large literal `marker`, and a greeting from an input default.
fn small_program(marker: &str) -> Program {
    let step = |name: &str, value: Expr| Step {
        name: name.to_string(),
        location: format!("small.codeai:{}:5", name.len()),
        kind: StepKind::Compute { value },
        bind: Some(name.to_string()),
        on_empty: None,
        on_fail: None,
        timeout_ms: None,
        when: None,
    };
    Program {
        ir_version: IR_VERSION,
        job: "Small".into(),
        input_defaults: BTreeMap::from([("who".to_string(), Expr::Str("world".into()))]),
        input: None,
        steps: vec![
            step(
                "size",
                Expr::Call(
                    Builtin::Len,
                    vec![Expr::OptField(
                        Box::new(Expr::Var("input".into())),
                        "blob".into(),
                    )],
                ),
            ),
            step("marker", Expr::Str(marker.to_string())),
            step(
                "greeting",
                Expr::Interpolated(vec![
                    Part::Text("hello ".into()),
                    Part::Expr(Expr::Var("who".into())),
                ]),
            ),
        ],
    }
}

fn small_manifest() -> Manifest {
    Manifest {
        ir_version: IR_VERSION,
        name: "Small".into(),
        description: Some("a hand-built job".into()),
        job_type: "processing".into(),
        schedule: Schedule::Manual,
        timezone: "UTC".into(),
        queue: "default".into(),
        queues: vec![QueueDecl {
            name: "default".into(),
            weight: 1,
        }],
        timeout_ms: 60_000,
        retry: RetryPolicy {
            max_retries: 0,
            backoff: Backoff::Fixed { delay_ms: 0 },
        },
        overlap: codeai_ir::Overlap::Skip,
        on_complete: None,
        on_fail: None,
        trigger: None,
        capabilities: vec![],
        entities: vec![],
        integrations: vec![],
        templates: vec![],
        events: vec![],
        input: None,
        source_hash: "0".repeat(64),
        source_file: "small.codeai".into(),
        compiler: "test".into(),
    }
}

/// A 200 KB marker (four 64 KiB pages of program) that no allocator garbage can imitate.
fn marker() -> String {
    (0..20_000).map(|i| format!("{:09}|", i * 7)).collect()
}

#[test]
fn a_hand_built_program_emits_a_valid_component() {
    let program = small_program(&marker());
    let manifest = small_manifest();
    let bytes = emit(&program, &manifest).unwrap();

    Validator::new_with_features(WasmFeatures::all())
        .validate_all(&bytes)
        .expect("a valid component");
    let (imports, exports) = imports_exports(&bytes);
    assert_eq!(exports, ["run", "codeai:host/decoded@0.1.0"]);
    let mut imports = imports;
    imports.sort();
    // One function for every capability (`calls.call-encoded`, whose requests and responses
    // are bytes, so no other interface's types come in) and `log.step`; `types` for `run`.
    assert_eq!(
        imports,
        [
            "codeai:host/calls@0.1.0",
            "codeai:host/log@0.1.0",
            "codeai:host/types@0.1.0",
        ]
    );
    assert_eq!(read_manifest(&bytes).unwrap(), manifest);
    let json = serde_json::to_vec(&program).unwrap();
    assert_eq!(
        codeai_dsl::emit::program_section(&bytes),
        Some(json.as_slice()),
        "the program's JSON is its section, verbatim"
    );
    // The component is the runtime plus the program, the manifest and the component wrapping.
    let overhead = bytes.len() as i64 - guest_runtime().len() as i64 - json.len() as i64;
    eprintln!(
        "runtime {} bytes, program {} bytes, component {} bytes (overhead {overhead})",
        guest_runtime().len(),
        json.len(),
        bytes.len()
    );
    assert!(overhead < 64 * 1024, "overhead {overhead}");
}

/// Calls `run(input)` on an instance and returns the `completed` JSON, or the error as text.
fn call_run(
    store: &mut wasmtime::Store<()>,
    instance: &wasmtime::component::Instance,
    input: String,
) -> Result<serde_json::Value, String> {
    use wasmtime::component::Val;
    let run = instance.get_func(&mut *store, "run").expect("`run` export");
    let mut results = [Val::Bool(false)];
    run.call(&mut *store, &[Val::String(input)], &mut results)
        .map_err(|e| format!("trap: {e:?}"))?;
    match &results[0] {
        Val::Result(Ok(Some(outcome))) => match &**outcome {
            Val::Variant(case, Some(payload)) if case == "completed" => match &**payload {
                Val::String(json) => serde_json::from_str(json).map_err(|e| e.to_string()),
                other => Err(format!("completed with {other:?}")),
            },
            other => Err(format!("outcome {other:?}")),
        },
        other => Err(format!("job error {other:?}")),
    }
}

#[test]
fn an_emitted_component_runs_in_wasmtime_with_its_program_intact() {
    use wasmtime::component::{Component, Linker, Val};
    let marker = marker();
    let bytes = emit(&small_program(&marker), &small_manifest()).unwrap();
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, &bytes).expect("wasmtime compiles the component");
    let mut linker = Linker::<()>::new(&engine);
    // The program calls no capability; the guest marks its steps (for traces: `log.step`, its
    // one import besides `calls`) and asks for its program through `calls.call-encoded`, which
    // a host answers with the component's own program section. Both in postcard: the request
    // `program-get` is its case (25), the response `program(bytes)` its case (14), the bytes'
    // length as a varint, the bytes.
    linker
        .instance("codeai:host/log@0.1.0")
        .unwrap()
        .func_wrap("step", |_, (_name,): (String,)| Ok(()))
        .unwrap();
    let program = codeai_dsl::emit::program_section(&bytes).unwrap().to_vec();
    linker
        .instance("codeai:host/calls@0.1.0")
        .unwrap()
        .func_new("call-encoded", move |_, _, params, results| {
            assert_eq!(
                params[0],
                Val::List(vec![Val::U8(25)]),
                "the program asked for more"
            );
            let mut response = vec![14];
            let mut n = program.len();
            while n >= 0x80 {
                response.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            response.push(n as u8);
            response.extend_from_slice(&program);
            results[0] = Val::List(response.into_iter().map(Val::U8).collect());
            Ok(())
        })
        .unwrap();
    linker.define_unknown_imports_as_traps(&component).unwrap();
    let mut store = wasmtime::Store::new(&engine, ());
    let instance = linker.instantiate(&mut store, &component).unwrap();

    // The 8 MiB input is copied into guest memory (and parsed) around the program, both on the
    // guest's heap: the program must come through whole.
    let blob = "x".repeat(8 << 20);
    let input = serde_json::json!({ "blob": blob, "who": "wasm" }).to_string();
    let out = call_run(&mut store, &instance, input).unwrap();
    assert_eq!(out["size"], 8 << 20);
    assert_eq!(out["greeting"], "hello wasm");
    assert!(out["marker"] == marker.as_str(), "the program was damaged");

    // The same instance again, after all that memory was used and freed.
    let out = call_run(&mut store, &instance, "{}".into()).unwrap();
    assert_eq!(out["size"], 0);
    assert_eq!(out["greeting"], "hello world");
    assert!(out["marker"] == marker.as_str(), "the program was damaged");
}

#[test]
fn a_build_is_recognised_and_any_change_to_it_is_not() {
    use codeai_dsl::emit::{append_custom_section, is_this_compilers_build};
    for artifact in example() {
        assert!(
            is_this_compilers_build(&artifact.bytes),
            "{}",
            artifact.name
        );
    }
    let built = example().remove(0).bytes;
    // One byte changed anywhere: in the program, the runtime's code, the manifest.
    for at in [built.len() / 3, built.len() / 2, built.len() - 10] {
        let mut changed = built.clone();
        changed[at] ^= 0x01;
        assert!(
            !is_this_compilers_build(&changed),
            "a change at byte {at} passed"
        );
    }
    // Something appended (a second manifest, any section).
    let mut longer = built.clone();
    append_custom_section(&mut longer, "extra", b"x");
    assert!(!is_this_compilers_build(&longer));
    // The runtime module alone, and a component made by hand.
    assert!(!is_this_compilers_build(guest_runtime()));
    assert!(!is_this_compilers_build(runtime_component().unwrap()));
    assert!(!is_this_compilers_build(b"\0asm\x0d\0\x01\0"));
}
