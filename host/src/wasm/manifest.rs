//! Reading a job's [`Manifest`] out of its component, without compiling or running it.
//!
//! `codeai build` stores the manifest as JSON in a custom section named
//! [`codeai_ir::MANIFEST_SECTION`] at the component's top level. Custom sections of the modules
//! nested inside (for example the guest runtime's own `name` or `producers` sections) are not
//! looked at, so a nested module cannot pose as the job.

use codeai_ir::{Manifest, MANIFEST_SECTION};
use wasmparser::{Parser, Payload};

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

#[cfg(test)]
mod tests {
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
