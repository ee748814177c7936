//! Job components made by hand from WAT, shared by the sandbox tests, the tenant-boundary tests
//! and the `exec` bench (which includes this file by path: it needs no test harness).

#![allow(dead_code, unreachable_pub)]

/// The core module every hand-made job starts from: a memory, a bump allocator for the host's
/// strings, and `$completed`, which builds `ok(completed(<string>))` in a return area at 64;
/// `"{}"` stands at 16.
pub const PRELUDE: &str = r#"
  (memory (export "memory") 2)
  (global $bump (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $bump) (i32.const 7)) (i32.const -8)))
    (global.set $bump (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func $completed (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 64) (i32.const 0))
    (i32.store8 (i32.const 68) (i32.const 0))
    (i32.store (i32.const 72) (local.get $ptr))
    (i32.store (i32.const 76) (local.get $len))
    (i32.const 64))
  (data (i32.const 16) "{}")
"#;

/// A `run` that returns `completed("{}")` at once.
pub const RUN_COMPLETED: &str = r#"(func (export "run") (param i32 i32) (result i32) (call $completed (i32.const 16) (i32.const 2)))"#;

/// A component of the `job` world made from the core module `(module {imports} {PRELUDE}
/// {body})`, with `manifest` (JSON) as its manifest section; panics naming `name` if it does
/// not build.
pub fn job_component(name: &str, imports: &str, body: &str, manifest: &[u8]) -> Vec<u8> {
    let text = format!("(module {imports} {PRELUDE} {body})");
    let mut module = wat::parse_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../wit"))
        .expect("the WIT parses");
    let world = resolve
        .select_world(&[package], Some("job"))
        .expect("the job world");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    let mut component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    codeai_dsl::emit::append_custom_section(&mut component, codeai_ir::MANIFEST_SECTION, manifest);
    component
}
