//! Emission: one job's [`Program`] and [`Manifest`] → a self-contained WebAssembly component.
//!
//! Every component `codeai build` makes is the same **runtime component** — the guest runtime
//! (`guest-stdlib`, built for `wasm32-unknown-unknown` by `build.rs` and embedded here), wrapped
//! into a component — followed by two top-level custom sections:
//!
//! ```text
//! [ runtime component: the same bytes for every job of this compiler ]
//! [ custom section `codeai-program`: the program as JSON             ]
//! [ custom section `codeai-manifest`: the manifest as JSON           ]
//! ```
//!
//! The guest asks the host for its program (`program.get` in `wit/host.wit`), and the host
//! answers with the component's `codeai-program` section. So a job's code is the runtime's code,
//! byte for byte, and a host compiles it once for every job ([`split_build`] recognises such a
//! component by its bytes). The runtime component is made once per process from the core module:
//!
//! 1. memory 0's minimum is raised by [`HEAP_PAGES`]: the runtime's allocator hands out the
//!    memory from the end of the module's data (`__heap_base`) to the end of the initial memory
//!    (`guest-stdlib/src/heap.rs`) and grows memory for more, so a job that needs less than that
//!    heap never grows its memory;
//! 2. debug names and producer notes are dropped;
//! 3. the module becomes a component with `wit-component` (the world comes from the
//!    `component-type` section `wit-bindgen` left in the module).
//!
//! Emitting a job is then a copy and two appends: no Rust toolchain, well under a millisecond.

use codeai_ir::{Manifest, Program, MANIFEST_SECTION, PROGRAM_SECTION};
use std::sync::OnceLock;
use wasm_encoder::{MemorySection, MemoryType, RawSection};
use wasmparser::{Parser, Payload};

/// Pages added to the runtime's initial memory for its heap (256 KiB); the heap runs from the end
/// of the module's data to the end of that memory (~287 KiB today). Growing memory costs
/// the host two `mprotect`s per run (see `guest-stdlib/src/heap.rs`), so a small job should not
/// need to; but the host's pool keeps every page of the initial memory that any run in a slot
/// ever touched, and restores it at every later run in that slot, while pages grown beyond it
/// are given back. With 1 MiB here, a no-op job took 26–30 µs instead of 8–9 once a job that
/// used a few hundred KiB had run in its slot; with 256 KiB, 8–9 µs, and that job's own run
/// took ~30 µs more (BENCHMARKS.md, "What a pool slot keeps resident").
pub const HEAP_PAGES: u64 = 4;

/// Why a component could not be emitted. These are bugs or a corrupt build, never user errors:
/// the checker has already accepted the program.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("the embedded guest runtime is not usable: {0}")]
    Runtime(String),
    #[error("the program could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// Why a file does not carry a usable job manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("not a WebAssembly component (a core module, or not WebAssembly at all)")]
    NotAComponent,
    #[error("malformed component: {0}")]
    Malformed(#[from] wasmparser::BinaryReaderError),
    #[error(
        "the component has no `{MANIFEST_SECTION}` section: it was not built by `codeai build`"
    )]
    Missing,
    #[error("the component has more than one `{MANIFEST_SECTION}` section")]
    Duplicate,
    #[error("{0}")]
    Invalid(String),
}

/// Reads the manifest of a job component and checks its IR version.
///
/// Only the component's own top-level custom section counts: custom sections of the modules
/// nested inside are not looked at, so a nested module cannot pose as the job; a component with
/// two manifests is refused.
pub fn read_manifest(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    match top_level_sections(bytes, MANIFEST_SECTION)?.as_slice() {
        [] => Err(ManifestError::Missing),
        [data] => Manifest::from_json(data).map_err(ManifestError::Invalid),
        _ => Err(ManifestError::Duplicate),
    }
}

/// The guest runtime's core module, as built by `build.rs`.
pub fn guest_runtime() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/guest.wasm"))
}

/// The runtime component: what every component [`emit`] makes starts with (made once per
/// process, in a few milliseconds).
pub fn runtime_component() -> Result<&'static [u8], EmitError> {
    static RUNTIME: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let core = with_heap(guest_runtime()).map_err(|e| e.to_string())?;
            wit_component::ComponentEncoder::default()
                .module(&core)
                .and_then(|encoder| encoder.validate(true).encode())
                .map_err(|e| format!("{e:#}"))
        })
        .as_deref()
        .map_err(|e| EmitError::Runtime(e.clone()))
}

/// The core module of [`runtime_component`] that is the guest runtime (the largest of the three
/// it nests: the others are `wit-component`'s shim and fix-up), byte for byte as the component
/// holds it: what a host may instantiate without the component around it.
pub fn runtime_core_module() -> Result<&'static [u8], EmitError> {
    let component = runtime_component()?;
    Parser::new(0)
        .parse_all(component)
        .filter_map(|payload| match payload {
            Ok(Payload::ModuleSection {
                unchecked_range, ..
            }) => Some(unchecked_range),
            _ => None,
        })
        .max_by_key(|range| range.len())
        .map(|range| &component[range])
        .ok_or_else(|| EmitError::Runtime("the runtime component nests no core module".into()))
}

/// Where a fresh instance of the runtime's core module starts its arena: its `__heap_base` (past
/// its stack, read-only data and writable statics) aligned to 16, as the guest computes it
/// (`guest-stdlib/src/heap.rs`). A host that writes a program's image into a fresh instance
/// writes it there and nowhere else.
pub fn runtime_arena_start() -> Result<usize, EmitError> {
    static BASE: OnceLock<Option<u32>> = OnceLock::new();
    let module = runtime_core_module()?;
    BASE.get_or_init(|| exported_i32_global(module, "__heap_base"))
        .map(|base| (base as usize).next_multiple_of(16))
        .ok_or_else(|| {
            EmitError::Runtime(
                "the runtime's core module exports no `__heap_base` global of a constant value"
                    .into(),
            )
        })
}

/// The value of `module`'s global exported as `name`, when it is defined there with an
/// `i32.const` (as the linker's `__heap_base` and `__data_end` are).
fn exported_i32_global(module: &[u8], name: &str) -> Option<u32> {
    // Global indices count imported globals first (the runtime imports none today).
    let (mut imported, mut globals, mut index) = (0, Vec::new(), None);
    for payload in Parser::new(0).parse_all(module) {
        match payload.ok()? {
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    if matches!(import.ok()?.ty, wasmparser::TypeRef::Global(_)) {
                        imported += 1;
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    let init = global.ok()?.init_expr.get_operators_reader().read().ok()?;
                    globals.push(match init {
                        wasmparser::Operator::I32Const { value } => Some(value as u32),
                        _ => None,
                    });
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.ok()?;
                    if export.name == name && export.kind == wasmparser::ExternalKind::Global {
                        index = Some(export.index as usize);
                    }
                }
            }
            _ => {}
        }
    }
    *globals.get(index?.checked_sub(imported)?)?
}

/// The SHA-256 of [`runtime_component`] (computed once per process): the key a host stores and
/// caches the runtime under.
pub fn runtime_sha256() -> Result<[u8; 32], EmitError> {
    static HASH: OnceLock<[u8; 32]> = OnceLock::new();
    let runtime = runtime_component()?;
    Ok(*HASH.get_or_init(|| {
        use sha2::Digest as _;
        sha2::Sha256::digest(runtime).into()
    }))
}

/// Emits the component of one job.
pub fn emit(program: &Program, manifest: &Manifest) -> Result<Vec<u8>, EmitError> {
    let program = serde_json::to_vec(program)?;
    let manifest = serde_json::to_vec(manifest)?;
    let runtime = runtime_component()?;
    let mut component = Vec::with_capacity(runtime.len() + program.len() + manifest.len() + 64);
    component.extend_from_slice(runtime);
    append_custom_section(&mut component, PROGRAM_SECTION, &program);
    append_custom_section(&mut component, MANIFEST_SECTION, &manifest);
    Ok(component)
}

/// A component in the shape [`emit`] gives: this compiler's runtime component, byte for byte,
/// then the program's section and the manifest's, and nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Build<'a> {
    /// The `codeai-program` section's bytes (not checked: see [`is_this_compilers_build`]).
    pub program: &'a [u8],
    /// The `codeai-manifest` section's bytes (not checked).
    pub manifest: &'a [u8],
}

/// Splits a component in the shape [`emit`] gives into its program and manifest; `None` for
/// anything else. It compares bytes and reads two section headers, so it costs a `memcmp` of
/// the runtime. What it vouches for is the code — every function, import and export is this
/// compiler's runtime — so a host may run the program on the runtime it compiled once.
pub fn split_build(component: &[u8]) -> Option<Build<'_>> {
    split_own_sections(component.strip_prefix(runtime_component().ok()?)?)
}

/// What follows the runtime in a component of [`emit`]'s shape (the bytes a host stores for a
/// build apart from the runtime), split into its program and manifest; `None` for anything else.
pub fn split_own_sections(mut rest: &[u8]) -> Option<Build<'_>> {
    let program = take_custom_section(&mut rest, PROGRAM_SECTION)?;
    let manifest = take_custom_section(&mut rest, MANIFEST_SECTION)?;
    rest.is_empty().then_some(Build { program, manifest })
}

/// The SHA-256 of the component made of [`runtime_component`] followed by `own` (a build's own
/// sections): the hash of the whole component, from the runtime's hashed state kept once per
/// process, so it costs the hashing of `own` only.
pub fn build_sha256(own: &[u8]) -> Result<[u8; 32], EmitError> {
    use sha2::Digest as _;
    static AFTER_RUNTIME: OnceLock<sha2::Sha256> = OnceLock::new();
    let runtime = runtime_component()?;
    let mut hasher = AFTER_RUNTIME
        .get_or_init(|| sha2::Sha256::new_with_prefix(runtime))
        .clone();
    hasher.update(own);
    Ok(hasher.finalize().into())
}

/// Whether `component` is exactly what this compiler's [`emit`] makes of the program and the
/// manifest it carries: [`split_build`]'s shape, and both sections read back and are what
/// serialising them again gives. A component made by hand, changed after the build, or built
/// by another version of the compiler (another guest runtime) is not.
///
/// It vouches for the code, not for the values in the program and the manifest: anyone can
/// `emit` a program and a manifest of their own making. The host checks the manifest's bounds
/// ([`codeai_ir::limits`]) and holds every capability call to its own limits.
pub fn is_this_compilers_build(component: &[u8]) -> bool {
    let Some(build) = split_build(component) else {
        return false;
    };
    let program = serde_json::from_slice::<Program>(build.program)
        .ok()
        .and_then(|p| serde_json::to_vec(&p).ok());
    let manifest = Manifest::from_json(build.manifest)
        .ok()
        .and_then(|m| serde_json::to_vec(&m).ok());
    program.as_deref() == Some(build.program) && manifest.as_deref() == Some(build.manifest)
}

/// The program a component carries in its top-level `codeai-program` section, if it holds
/// one that reads back.
pub fn read_program(component: &[u8]) -> Option<Program> {
    serde_json::from_slice(program_section(component)?).ok()
}

/// The bytes of a component's top-level `codeai-program` section: what the host hands the
/// guest's `program.get`. As with the manifest, sections of nested modules are not looked at
/// and a component with two is refused (`None`).
pub fn program_section(component: &[u8]) -> Option<&[u8]> {
    match top_level_sections(component, PROGRAM_SECTION)
        .ok()?
        .as_slice()
    {
        [data] => Some(data),
        _ => None,
    }
}

/// The data of a component's top-level custom sections named `name`.
fn top_level_sections<'a>(bytes: &'a [u8], name: &str) -> Result<Vec<&'a [u8]>, ManifestError> {
    if !Parser::is_component(bytes) {
        return Err(ManifestError::NotAComponent);
    }
    let mut depth = 0usize;
    let mut sections = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            // The outermost `End` takes the depth below zero; nothing follows it.
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if depth == 0 && section.name() == name => {
                sections.push(section.data());
            }
            _ => {}
        }
    }
    Ok(sections)
}

/// Takes a custom section named `name` off the front of `rest`: its data.
fn take_custom_section<'a>(rest: &mut &'a [u8], name: &str) -> Option<&'a [u8]> {
    let (&0, after) = rest.split_first()? else {
        return None;
    };
    let (size, after) = read_leb128(after)?;
    let (content, after) = after.split_at_checked(usize::try_from(size).ok()?)?;
    let (name_len, named) = read_leb128(content)?;
    let (section_name, data) = named.split_at_checked(usize::try_from(name_len).ok()?)?;
    if section_name != name.as_bytes() {
        return None;
    }
    *rest = after;
    Some(data)
}

/// A LEB128 `u32` (as section sizes are) and what follows it.
fn read_leb128(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(5) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

/// Copies the runtime's core `module` with memory 0's minimum raised by [`HEAP_PAGES`] and its
/// debug names and producer notes dropped.
fn with_heap(module: &[u8]) -> Result<Vec<u8>, EmitError> {
    let runtime = |e: wasmparser::BinaryReaderError| EmitError::Runtime(e.to_string());
    let mut out = wasm_encoder::Module::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload.map_err(runtime)? {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::MemorySection(reader) => {
                let mut section = MemorySection::new();
                for (i, memory) in reader.into_iter().enumerate() {
                    let memory = memory.map_err(runtime)?;
                    let mut minimum = memory.initial;
                    let mut maximum = memory.maximum;
                    if i == 0 {
                        minimum += HEAP_PAGES;
                        maximum = maximum.map(|m| m.max(minimum));
                    }
                    section.memory(MemoryType {
                        minimum,
                        maximum,
                        memory64: memory.memory64,
                        shared: memory.shared,
                        page_size_log2: memory.page_size_log2,
                    });
                }
                out.section(&section);
            }
            // Debug names and producer notes only make every component bigger.
            Payload::CustomSection(c) if c.name() == "name" || c.name() == "producers" => {}
            Payload::CustomSection(c) if c.name().starts_with(".debug") => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &module[range],
                    });
                }
            }
        }
    }
    Ok(out.finish())
}

/// Appends a custom section `name` holding `data` to a module or component binary (how the
/// manifest is attached; tests attach hand-written manifests the same way).
pub fn append_custom_section(binary: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut content = Vec::with_capacity(name.len() + data.len() + 5);
    leb128(&mut content, name.len() as u64);
    content.extend_from_slice(name.as_bytes());
    content.extend_from_slice(data);
    binary.push(0); // custom section id
    leb128(binary, content.len() as u64);
    binary.extend_from_slice(&content);
}

fn leb128(out: &mut Vec<u8>, mut value: u64) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128_matches_the_spec_examples() {
        for (value, expected) in [
            (0u64, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (624_485, vec![0xe5, 0x8e, 0x26]),
        ] {
            let mut out = Vec::new();
            leb128(&mut out, value);
            assert_eq!(out, expected, "{value}");
        }
    }

    /// The runtime's memory: its stack (128 KiB, `guest-stdlib/build.rs`), then its read-only
    /// data, the one data segment, so the memory's initial image holds nothing else (a static
    /// with a nonzero initial value would add a `.data` segment on the image's last page); then
    /// the writable statics (`.bss`, not in the module) from the next page on
    /// (`guest-stdlib/src/heap.rs`, `PageStart`), and the heap right after them, on the same
    /// page: a run that fits there writes one page of the heap and statics together. Where
    /// `.bss` starts is not in the module, but where it ends is (`__data_end`): right after the
    /// image's end, the runtime's few hundred bytes of statics would end on the image's last
    /// page.
    #[test]
    fn the_runtimes_image_is_its_read_only_data_above_its_stack() {
        let module = runtime_core_module().unwrap();
        let mut segments = Vec::new();
        for payload in Parser::new(0).parse_all(module) {
            if let Payload::DataSection(reader) = payload.unwrap() {
                for data in reader {
                    let data = data.unwrap();
                    let wasmparser::DataKind::Active { offset_expr, .. } = data.kind else {
                        panic!("a passive data segment");
                    };
                    let offset = match offset_expr.get_operators_reader().read().unwrap() {
                        wasmparser::Operator::I32Const { value } => value,
                        other => panic!("not an i32 constant: {other:?}"),
                    };
                    segments.push((offset, data.data.len() as i32));
                }
            }
        }
        assert_eq!(segments.len(), 1, "{segments:?}");
        let (at, len) = segments[0];
        assert_eq!(at, 128 << 10, "{segments:?}");
        let image_end = ((at + len) as u32).next_multiple_of(4096) as i32;
        let data_end = exported_i32_global(module, "__data_end").expect("`__data_end` is exported");
        let data_end = data_end as i32;
        assert!(
            data_end > image_end,
            "the statics end at {data_end:#x}, on the image's last page"
        );
        // The heap starts past the statics, on the page they end on.
        let heap_base =
            exported_i32_global(module, "__heap_base").expect("`__heap_base` is exported");
        let heap_base = heap_base as i32;
        assert!(
            heap_base >= data_end && heap_base / 4096 == (data_end - 1) / 4096,
            "the heap starts at {heap_base:#x}, the statics end at {data_end:#x}"
        );
    }

    #[test]
    fn a_builds_hash_from_its_own_sections_is_the_hash_of_the_whole_component() {
        use sha2::Digest as _;
        for (program, manifest) in [(&b"{}"[..], &b"{\"name\":\"A\"}"[..]), (b"[1,2,3]", b"")] {
            let mut whole = runtime_component().unwrap().to_vec();
            let at = whole.len();
            append_custom_section(&mut whole, PROGRAM_SECTION, program);
            append_custom_section(&mut whole, MANIFEST_SECTION, manifest);
            let own = &whole[at..];
            let expected: [u8; 32] = sha2::Sha256::digest(&whole).into();
            assert_eq!(build_sha256(own).unwrap(), expected);
            let build = split_own_sections(own).unwrap();
            assert_eq!((build.program, build.manifest), (program, manifest));
            assert_eq!(split_build(&whole), Some(build));
        }
        // Anything else after the runtime is not a build's own sections.
        assert!(split_own_sections(b"").is_none());
        let mut reversed = Vec::new();
        append_custom_section(&mut reversed, MANIFEST_SECTION, b"{}");
        append_custom_section(&mut reversed, PROGRAM_SECTION, b"{}");
        assert!(split_own_sections(&reversed).is_none());
    }

    #[test]
    fn the_runtime_component_reserves_the_heap_and_drops_debug_names() {
        let initial = |bytes: &[u8]| {
            let mut found = Vec::new();
            for payload in Parser::new(0).parse_all(bytes) {
                if let Payload::MemorySection(r) = payload.unwrap() {
                    found.push(r.into_iter().next().unwrap().unwrap().initial);
                }
            }
            found
        };
        let runtime = runtime_component().unwrap();
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(runtime)
            .unwrap();
        // The runtime's own module is the first with a memory (wit-component's shims have none).
        assert_eq!(
            initial(runtime).first(),
            Some(&(initial(guest_runtime())[0] + HEAP_PAGES))
        );
        let names = |bytes: &[u8]| {
            Parser::new(0)
                .parse_all(bytes)
                .filter(|p| matches!(p, Ok(Payload::CustomSection(c)) if c.name() == "name"))
                .count()
        };
        assert!(names(guest_runtime()) > 0, "the built runtime has names");
        assert_eq!(names(&with_heap(guest_runtime()).unwrap()), 0);
    }

    #[test]
    fn a_build_splits_into_the_runtime_and_its_two_sections() {
        let runtime = runtime_component().unwrap();
        let mut built = runtime.to_vec();
        append_custom_section(&mut built, PROGRAM_SECTION, b"{\"p\":1}");
        append_custom_section(&mut built, MANIFEST_SECTION, b"{\"m\":2}");
        assert_eq!(
            split_build(&built),
            Some(Build {
                program: b"{\"p\":1}",
                manifest: b"{\"m\":2}",
            })
        );
        assert_eq!(program_section(&built), Some(&b"{\"p\":1}"[..]));
        // The sections in the other order, one missing, one more, or truncated: not a build.
        let mut swapped = runtime.to_vec();
        append_custom_section(&mut swapped, MANIFEST_SECTION, b"{}");
        append_custom_section(&mut swapped, PROGRAM_SECTION, b"{}");
        assert_eq!(split_build(&swapped), None);
        let mut alone = runtime.to_vec();
        append_custom_section(&mut alone, PROGRAM_SECTION, b"{}");
        assert_eq!(split_build(&alone), None);
        let mut more = built.clone();
        append_custom_section(&mut more, "extra", b"");
        assert_eq!(split_build(&more), None);
        assert_eq!(split_build(&built[..built.len() - 1]), None);
        // The runtime's code changed anywhere.
        let mut changed = built.clone();
        changed[runtime.len() / 2] ^= 1;
        assert_eq!(split_build(&changed), None);
    }
}

#[cfg(test)]
mod manifest_tests {
    use super::*;

    const COMPONENT_HEADER: &[u8] = b"\0asm\x0d\0\x01\0";
    const MODULE_HEADER: &[u8] = b"\0asm\x01\0\0\0";

    /// A section: its id, its size as LEB128, its contents.
    fn section(id: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![id];
        leb(&mut out, contents.len());
        out.extend_from_slice(contents);
        out
    }

    fn leb(out: &mut Vec<u8>, mut n: usize) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    fn custom(name: &str, data: &[u8]) -> Vec<u8> {
        let mut contents = Vec::new();
        leb(&mut contents, name.len());
        contents.extend_from_slice(name.as_bytes());
        contents.extend_from_slice(data);
        section(0, &contents)
    }

    fn manifest_json(name: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "ir_version": codeai_ir::IR_VERSION,
            "name": name,
            "description": null,
            "job_type": "report",
            "schedule": { "kind": "cron", "expression": "0 6 * * *" },
            "timezone": "UTC",
            "queue": "default",
            "queues": [],
            "timeout_ms": 1000,
            "retry": { "max_retries": 0, "backoff": { "kind": "fixed", "delay_ms": 0 } },
            "overlap": "skip",
            "on_complete": null,
            "on_fail": null,
            "capabilities": ["data"],
            "entities": [],
            "integrations": [],
            "templates": [],
            "events": [],
            "source_hash": "00",
            "source_file": "a.codeai",
            "compiler": "test"
        }))
        .unwrap()
    }

    fn component(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut out = COMPONENT_HEADER.to_vec();
        for s in sections {
            out.extend_from_slice(s);
        }
        out
    }

    #[test]
    fn reads_the_top_level_manifest() {
        let bytes = component(&[custom(MANIFEST_SECTION, &manifest_json("Daily"))]);
        assert_eq!(read_manifest(&bytes).unwrap().name, "Daily");
    }

    #[test]
    fn ignores_a_manifest_inside_a_nested_module() {
        let mut module = MODULE_HEADER.to_vec();
        module.extend(custom(MANIFEST_SECTION, &manifest_json("Impostor")));
        // Section id 1 of a component is a core module.
        let nested = section(1, &module);
        let bytes = component(std::slice::from_ref(&nested));
        assert!(matches!(read_manifest(&bytes), Err(ManifestError::Missing)));

        let bytes = component(&[nested, custom(MANIFEST_SECTION, &manifest_json("Real"))]);
        assert_eq!(read_manifest(&bytes).unwrap().name, "Real");
    }

    #[test]
    fn refuses_what_is_not_a_job_component() {
        assert!(matches!(
            read_manifest(b"hello"),
            Err(ManifestError::NotAComponent)
        ));
        assert!(matches!(
            read_manifest(MODULE_HEADER),
            Err(ManifestError::NotAComponent)
        ));
        assert!(matches!(
            read_manifest(COMPONENT_HEADER),
            Err(ManifestError::Missing)
        ));
        let twice = component(&[
            custom(MANIFEST_SECTION, &manifest_json("A")),
            custom(MANIFEST_SECTION, &manifest_json("B")),
        ]);
        assert!(matches!(
            read_manifest(&twice),
            Err(ManifestError::Duplicate)
        ));
        let garbage = component(&[custom(MANIFEST_SECTION, b"{not json")]);
        assert!(matches!(
            read_manifest(&garbage),
            Err(ManifestError::Invalid(_))
        ));
        let truncated = &component(&[custom(MANIFEST_SECTION, &manifest_json("A"))])[..20];
        assert!(matches!(
            read_manifest(truncated),
            Err(ManifestError::Malformed(_))
        ));
    }
}
