//! Emission: one job's [`Program`] and [`Manifest`] → a self-contained WebAssembly component.
//!
//! Every component is the same guest runtime (`guest-stdlib`, built for `wasm32-unknown-unknown`
//! by `build.rs` and embedded here) with the job's program written into its linear memory:
//!
//! 1. the program is serialised as JSON;
//! 2. the runtime's core module is copied with memory 0's minimum raised by enough 64 KiB pages
//!    for the program and [`HEAP_PAGES`] more, a new active data segment at the old minimum
//!    holding the program, and the runtime's program slot (found by [`PROGRAM_SLOT_MAGIC`])
//!    patched with the program's address and length. The runtime's allocator starts with the
//!    pages above the program (`guest-stdlib/src/heap.rs`) and grows memory for more, so the
//!    program stays intact and a job that needs less than the heap never grows its memory;
//! 3. debug names are dropped, the module becomes a component with `wit-component` (the world
//!    comes from the `component-type` section `wit-bindgen` left in the module);
//! 4. the manifest is appended as a top-level custom section named [`MANIFEST_SECTION`].
//!
//! The result needs no Rust toolchain and takes well under a millisecond to produce.

use codeai_ir::{Manifest, Program, MANIFEST_SECTION, PROGRAM_SLOT_MAGIC};
use wasm_encoder::{
    ConstExpr, DataCountSection, DataSection, MemorySection, MemoryType, RawSection,
};
use wasmparser::{DataKind, Operator, Parser, Payload};

const PAGE: u64 = 65_536;

/// Pages of heap in a component's initial memory, above the program (1 MiB). Growing memory
/// costs the host two `mprotect`s per run (see `guest-stdlib/src/heap.rs`); untouched pages
/// cost nothing, and the host's memory cap still counts them.
pub const HEAP_PAGES: u64 = 16;

/// Why a component could not be emitted. These are bugs or a corrupt build, never user errors:
/// the checker has already accepted the program.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("the embedded guest runtime is not a valid module: {0}")]
    Runtime(String),
    #[error("the guest runtime has no program slot (magic bytes not found exactly once)")]
    NoSlot,
    #[error("the program could not be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the program is too large ({0} bytes)")]
    TooLarge(usize),
    #[error("the component could not be encoded: {0}")]
    Component(String),
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
    if !Parser::is_component(bytes) {
        return Err(ManifestError::NotAComponent);
    }
    let mut depth = 0usize;
    let mut sections: Vec<&[u8]> = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload? {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            // The outermost `End` takes the depth below zero; nothing follows it.
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::CustomSection(section) if depth == 0 && section.name() == MANIFEST_SECTION => {
                sections.push(section.data());
            }
            _ => {}
        }
    }
    match sections.as_slice() {
        [] => Err(ManifestError::Missing),
        [data] => Manifest::from_json(data).map_err(ManifestError::Invalid),
        _ => Err(ManifestError::Duplicate),
    }
}

/// The guest runtime's core module, as built by `build.rs`.
pub fn guest_runtime() -> &'static [u8] {
    include_bytes!(concat!(env!("OUT_DIR"), "/guest.wasm"))
}

/// Emits the component of one job.
pub fn emit(program: &Program, manifest: &Manifest) -> Result<Vec<u8>, EmitError> {
    let program_json = serde_json::to_vec(program)?;
    let core = embed_program(guest_runtime(), &program_json)?;
    let mut component = wit_component::ComponentEncoder::default()
        .module(&core)
        .map_err(|e| EmitError::Component(format!("{e:#}")))?
        .validate(true)
        .encode()
        .map_err(|e| EmitError::Component(format!("{e:#}")))?;
    let manifest_json = serde_json::to_vec(manifest)?;
    append_custom_section(&mut component, MANIFEST_SECTION, &manifest_json);
    Ok(component)
}

/// Whether `component` is exactly what this compiler's [`emit`] makes of the program and the
/// manifest it carries: the program is read back from where `emit` put it (the last data
/// segment of the core module), both are emitted again, and the bytes must be identical. A
/// component made by hand, changed after the build, or built by another version of the
/// compiler (another guest runtime) is not. Takes about as long as one `emit`.
///
/// It vouches for the code, not for the values in the program and the manifest: anyone can
/// `emit` a program and a manifest of their own making. The host checks the manifest's bounds
/// ([`codeai_ir::limits`]) and holds every capability call to its own limits.
pub fn is_this_compilers_build(component: &[u8]) -> bool {
    let Ok(manifest) = read_manifest(component) else {
        return false;
    };
    let Some(program) = read_program(component) else {
        return false;
    };
    emit(&program, &manifest).is_ok_and(|rebuilt| rebuilt == component)
}

/// The program [`emit`] wrote into `component`, if it holds one that reads back.
pub fn read_program(component: &[u8]) -> Option<Program> {
    serde_json::from_slice(program_data(component)?).ok()
}

/// The bytes of the last data segment of the first core module in `component`: where [`emit`]
/// writes the program.
fn program_data(component: &[u8]) -> Option<&[u8]> {
    let mut last = None;
    let mut modules = 0;
    for payload in Parser::new(0).parse_all(component) {
        match payload.ok()? {
            Payload::ModuleSection { .. } => modules += 1,
            Payload::DataSection(reader) if modules == 1 => {
                for data in reader {
                    last = Some(data.ok()?.data);
                }
            }
            _ => {}
        }
    }
    last
}

/// Copies `module` with `program` written into a new data segment and the slot patched.
fn embed_program(module: &[u8], program: &[u8]) -> Result<Vec<u8>, EmitError> {
    let len = u32::try_from(program.len()).map_err(|_| EmitError::TooLarge(program.len()))?;
    let pages = (program.len() as u64).div_ceil(PAGE).max(1);
    let runtime = |e: wasmparser::BinaryReaderError| EmitError::Runtime(e.to_string());

    let mut out = wasm_encoder::Module::new();
    let mut program_addr: Option<u64> = None;
    let mut slot_found = 0usize;
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(runtime)?;
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::MemorySection(reader) => {
                let mut section = MemorySection::new();
                for (i, memory) in reader.into_iter().enumerate() {
                    let memory = memory.map_err(runtime)?;
                    let mut minimum = memory.initial;
                    let mut maximum = memory.maximum;
                    if i == 0 {
                        program_addr = Some(memory.initial * PAGE);
                        minimum += pages + HEAP_PAGES;
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
            Payload::DataCountSection { count, .. } => {
                out.section(&DataCountSection { count: count + 1 });
            }
            Payload::DataSection(reader) => {
                let addr = program_addr.ok_or_else(|| {
                    EmitError::Runtime("data section before memory section".into())
                })?;
                let mut section = DataSection::new();
                for data in reader {
                    let data = data.map_err(runtime)?;
                    let mut bytes = data.data.to_vec();
                    if let Some(at) = find(&bytes, &PROGRAM_SLOT_MAGIC) {
                        slot_found += 1;
                        let fields = at + PROGRAM_SLOT_MAGIC.len();
                        if bytes.len() < fields + 8 {
                            return Err(EmitError::NoSlot);
                        }
                        let addr32 =
                            u32::try_from(addr).map_err(|_| EmitError::TooLarge(program.len()))?;
                        bytes[fields..fields + 4].copy_from_slice(&addr32.to_le_bytes());
                        bytes[fields + 4..fields + 8].copy_from_slice(&len.to_le_bytes());
                    }
                    match data.kind {
                        DataKind::Passive => {
                            section.passive(bytes);
                        }
                        DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => {
                            let mut ops = offset_expr.get_operators_reader();
                            let offset = match (ops.read(), ops.read()) {
                                (Ok(Operator::I32Const { value }), Ok(Operator::End)) => {
                                    ConstExpr::i32_const(value)
                                }
                                _ => {
                                    return Err(EmitError::Runtime(
                                        "data segment offset is not an i32.const".into(),
                                    ))
                                }
                            };
                            section.active(memory_index, &offset, bytes);
                        }
                    }
                }
                let addr = i32::try_from(addr).map_err(|_| EmitError::TooLarge(program.len()))?;
                section.active(0, &ConstExpr::i32_const(addr), program.iter().copied());
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
    if slot_found != 1 {
        return Err(EmitError::NoSlot);
    }
    Ok(out.finish())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
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

    #[test]
    fn the_runtime_has_exactly_one_program_slot() {
        let runtime = guest_runtime();
        let hits = runtime
            .windows(PROGRAM_SLOT_MAGIC.len())
            .filter(|w| *w == PROGRAM_SLOT_MAGIC)
            .count();
        assert_eq!(hits, 1, "the magic must occur once in the guest runtime");
    }

    #[test]
    fn embedding_patches_the_slot_and_grows_memory() {
        let program = vec![b'x'; 70_000]; // needs two pages
        let patched = embed_program(guest_runtime(), &program).unwrap();
        wasmparser::Validator::new().validate_all(&patched).unwrap();
        let mut initial = None;
        let mut segments = Vec::new();
        for payload in Parser::new(0).parse_all(&patched) {
            match payload.unwrap() {
                Payload::MemorySection(r) => {
                    initial = Some(r.into_iter().next().unwrap().unwrap().initial)
                }
                Payload::DataSection(r) => {
                    for d in r {
                        segments.push(d.unwrap().data.to_vec());
                    }
                }
                _ => {}
            }
        }
        let original_initial = Parser::new(0)
            .parse_all(guest_runtime())
            .find_map(|p| match p.unwrap() {
                Payload::MemorySection(r) => Some(r.into_iter().next().unwrap().unwrap().initial),
                _ => None,
            })
            .unwrap();
        assert_eq!(initial, Some(original_initial + 2 + HEAP_PAGES));
        assert_eq!(segments.last().unwrap(), &program);
        let slot_segment = segments
            .iter()
            .find(|s| find(s, &PROGRAM_SLOT_MAGIC).is_some())
            .unwrap();
        let at = find(slot_segment, &PROGRAM_SLOT_MAGIC).unwrap() + 16;
        let ptr = u32::from_le_bytes(slot_segment[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(slot_segment[at + 4..at + 8].try_into().unwrap());
        assert_eq!(u64::from(ptr), original_initial * PAGE);
        assert_eq!(len as usize, program.len());
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
