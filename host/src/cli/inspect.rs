//! `codeai inspect JOB.wasm [--json]`: what a job component says about itself (its manifest) and
//! what it imports and exports.

use super::format;
use crate::wasm::{self, ExternShape};
use anyhow::Context as _;
use codeai_ir::Manifest;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub(super) struct InspectArgs {
    /// A component written by `codeai build`.
    pub(super) file: PathBuf,
    /// Print the manifest as JSON instead.
    #[arg(long)]
    pub(super) json: bool,
}

pub(super) fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.display();
    let bytes = std::fs::read(&args.file).with_context(|| format!("failed to read `{path}`"))?;
    let manifest =
        wasm::read_manifest(&bytes).with_context(|| format!("`{path}` is not a job component"))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(ExitCode::SUCCESS);
    }
    let engine = wasm::engine()?;
    let component =
        wasm::compile(&engine, &bytes).with_context(|| format!("failed to load `{path}`"))?;
    let shape = wasm::describe_component(&engine, &component);
    print!("{}", describe(&manifest, bytes.len(), &code(&bytes)));
    print!("{}", describe_shape(&shape));
    Ok(ExitCode::SUCCESS)
}

/// Whose code a component holds: this compiler's guest runtime (which a host compiles once for
/// every job), or code of its own.
fn code(bytes: &[u8]) -> String {
    match codeai_dsl::emit::split_build(bytes) {
        Some(build) => format!(
            "the guest runtime of codeai {} (compiled once per host for every job) and a \
             program of {:.1} KiB",
            env!("CARGO_PKG_VERSION"),
            build.program.len() as f64 / 1024.0
        ),
        None => "its own (not this compiler's runtime: a host compiles it on its own)".into(),
    }
}

/// The manifest as aligned `label: value` lines, then the size and whose `code` it is.
fn describe(m: &Manifest, size: usize, code: &str) -> String {
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "-".to_string()
        } else {
            items.join(", ")
        }
    };
    let emit = |event: &Option<String>| {
        event
            .as_ref()
            .map(|e| format!("emit {e}"))
            .unwrap_or_else(|| "-".to_string())
    };
    let lines = [
        ("job", m.name.clone()),
        (
            "description",
            m.description.clone().unwrap_or_else(|| "-".into()),
        ),
        ("type", m.job_type.clone()),
        ("schedule", crate::describe::schedule_described(&m.schedule)),
        ("timezone", m.timezone.clone()),
        ("queue", m.queue.clone()),
        ("timeout", format::duration(m.timeout_ms)),
        ("retry", format::retry(&m.retry)),
        ("overlap", m.overlap.to_string()),
        ("on complete", emit(&m.on_complete)),
        ("on fail", emit(&m.on_fail)),
        (
            "trigger",
            m.trigger
                .as_ref()
                .map_or_else(|| "-".to_string(), |e| format!("on({e})")),
        ),
        ("capabilities", list(m.capabilities.clone())),
        (
            "entities",
            list(
                m.entities
                    .iter()
                    .map(|e| format!("{} ({})", e.name, e.table))
                    .collect(),
            ),
        ),
        (
            "integrations",
            list(
                m.integrations
                    .iter()
                    .map(|i| {
                        let ops: Vec<&str> = i.operations.iter().map(|o| o.name.as_str()).collect();
                        format!("{} [{}]", i.name, ops.join(", "))
                    })
                    .collect(),
            ),
        ),
        (
            "templates",
            list(m.templates.iter().map(|t| t.name.clone()).collect()),
        ),
        (
            "events",
            list(m.events.iter().map(|e| e.name.clone()).collect()),
        ),
        (
            "source",
            format!("{} (job text sha256 {})", m.source_file, m.source_hash),
        ),
        ("ir version", m.ir_version.to_string()),
        ("compiler", m.compiler.clone()),
        ("size", format!("{:.1} KiB", size as f64 / 1024.0)),
        ("code", code.to_string()),
    ];
    let mut out = String::new();
    for (label, value) in lines {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    }
    out
}

/// Imports by interface with their function names; exports with their full signatures.
fn describe_shape(shape: &wasm::ComponentShape) -> String {
    let mut out = String::from("\nimports:\n");
    for (name, item) in &shape.imports {
        match item {
            ExternShape::Instance(funcs) if funcs.is_empty() => {
                let _ = writeln!(out, "  {name}: (types only)");
            }
            ExternShape::Instance(funcs) => {
                let names: Vec<&str> = funcs.iter().map(|(n, _)| n.as_str()).collect();
                let _ = writeln!(out, "  {name}: {}", names.join(", "));
            }
            ExternShape::Func(signature) => {
                let _ = writeln!(out, "  {name}: {signature}");
            }
            ExternShape::Other(kind) => {
                let _ = writeln!(out, "  {name}: {kind}");
            }
        }
    }
    out.push_str("exports:\n");
    for (name, item) in &shape.exports {
        match item {
            ExternShape::Func(signature) => {
                let _ = writeln!(out, "  {name}: {signature}");
            }
            ExternShape::Instance(funcs) => {
                let _ = writeln!(out, "  {name}:");
                for (func, signature) in funcs {
                    let _ = writeln!(out, "    {func}: {signature}");
                }
            }
            ExternShape::Other(kind) => {
                let _ = writeln!(out, "  {name}: {kind}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeai_ir::{
        Auth, Backoff, EntityDecl, IntegrationDecl, OperationDecl, RetryPolicy, Schedule,
        ValueSource,
    };

    fn manifest() -> Manifest {
        Manifest {
            ir_version: codeai_ir::IR_VERSION,
            name: "SyncExternalInventory".into(),
            description: Some("Sync from warehouse".into()),
            job_type: "sync".into(),
            schedule: Schedule::Interval {
                every_ms: 1_800_000,
            },
            timezone: "UTC".into(),
            queue: "default".into(),
            queues: vec![],
            timeout_ms: 600_000,
            retry: RetryPolicy {
                max_retries: 5,
                backoff: Backoff::Custom {
                    delays_ms: vec![60_000, 300_000],
                },
            },
            overlap: codeai_ir::Overlap::Skip,
            on_complete: None,
            on_fail: Some("JobFailed".into()),
            trigger: Some("InventoryRequested".into()),
            capabilities: vec!["data".into(), "http".into(), "state".into()],
            entities: vec![EntityDecl {
                name: "Product".into(),
                table: "products".into(),
                fields: vec![],
            }],
            integrations: vec![IntegrationDecl {
                name: "WarehouseAPI".into(),
                base_url: ValueSource::Env("WAREHOUSE_API_URL".into()),
                auth: Auth::None,
                timeout_ms: 30_000,
                operations: vec![OperationDecl {
                    name: "get_inventory".into(),
                    method: "GET".into(),
                    path: "/v1/inventory".into(),
                    params: vec![],
                }],
            }],
            templates: vec![],
            events: vec![],
            input: None,
            source_hash: "ab12".into(),
            source_file: "jobs.codeai".into(),
            compiler: "codeai-dsl 0.1.0".into(),
        }
    }

    #[test]
    fn the_manifest_is_described_line_by_line() {
        let text = describe(&manifest(), 2048, &code(b"\0asm\x0d\0\x01\0"));
        let expected = "\
job:          SyncExternalInventory
description:  Sync from warehouse
type:         sync
schedule:     every 30m
timezone:     UTC
queue:        default
timeout:      10m
retry:        5 retries, delays [1m, 5m]
overlap:      skip
on complete:  -
on fail:      emit JobFailed
trigger:      on(InventoryRequested)
capabilities: data, http, state
entities:     Product (products)
integrations: WarehouseAPI [get_inventory]
templates:    -
events:       -
source:       jobs.codeai (job text sha256 ab12)
ir version:   1
compiler:     codeai-dsl 0.1.0
size:         2.0 KiB
code:         its own (not this compiler's runtime: a host compiles it on its own)
";
        assert_eq!(text, expected);
    }

    #[test]
    fn exports_show_their_signature_and_imports_their_functions() {
        let shape = wasm::ComponentShape {
            imports: vec![(
                "codeai:host/state@0.1.0".into(),
                ExternShape::Instance(vec![
                    ("get".into(), "func(key: string) -> option<string>".into()),
                    ("set".into(), "func(key: string, value: string)".into()),
                ]),
            )],
            exports: vec![(
                "run".into(),
                ExternShape::Func("func(input: string) -> result<string>".into()),
            )],
        };
        assert_eq!(
            describe_shape(&shape),
            "\nimports:\n  codeai:host/state@0.1.0: get, set\nexports:\n  run: func(input: string) -> result<string>\n"
        );
    }
}
