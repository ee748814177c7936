//! The on-disk cache of precompiled components, keyed by the SHA-256 of the component's bytes.
//!
//! `<dir>/<sha256>.cwasm` is what [`Engine::precompile_component`] produced; `<dir>/<sha256>.meta`
//! is a header this host writes beside it, after the artifact: the component's hash, the
//! artifact's own SHA-256 and size, and a fingerprint of the engine configuration. An artifact
//! is loaded (with the `unsafe` [`Component::deserialize_file`]) only when its header is present
//! and every field matches — so only artifacts this host wrote, intact and for this engine, are
//! ever mapped. Anything else is compiled again and overwritten.
//!
//! The cache directory must be writable by this host only: the header proves integrity, not
//! authorship against someone who can write both files.

use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::component::Component;
use wasmtime::{Engine, Module};

const HEADER_MAGIC: &str = "codeai-artifact 1";

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Lower-case hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The digest spelt by [`hex`]; `None` for anything else.
pub fn from_hex(text: &str) -> Option<Digest> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Where a prepared component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Already prepared in this process.
    Memory,
    /// A verified artifact from the cache directory.
    Disk,
    /// Compiled now (and written to the cache directory).
    Compiled,
    /// A `codeai build` component: it runs on the guest runtime this host compiled once for
    /// all of them, with its own program; nothing of its own was compiled or cached.
    Shared,
}

/// Failures of the cache directory itself. A bad artifact is not one: it is recompiled.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the component does not compile: {0:#}")]
    Compile(anyhow::Error),
}

#[derive(Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

impl ArtifactCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> ArtifactCache {
        let mut hasher = ShaHasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        ArtifactCache {
            dir,
            engine_fingerprint: hex(&hasher.0.finalize()),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn paths(&self, hash: &Digest) -> (PathBuf, PathBuf) {
        let name = hex(hash);
        (
            self.dir.join(format!("{name}.cwasm")),
            self.dir.join(format!("{name}.meta")),
        )
    }

    fn header(&self, kind: &str, hash: &Digest, artifact: &[u8]) -> String {
        format!(
            "{HEADER_MAGIC}\n{kind} {}\nartifact {}\nsize {}\nengine {}\n",
            hex(hash),
            hex(&sha256(artifact)),
            artifact.len(),
            self.engine_fingerprint
        )
    }

    /// The compiled component for `bytes` (whose SHA-256 is `hash`): from a verified artifact
    /// when there is one, otherwise compiled here, precompiled to disk and loaded from there.
    pub(crate) fn load(
        &self,
        engine: &Engine,
        hash: &Digest,
        bytes: &[u8],
    ) -> Result<(Component, Source), CacheError> {
        if let Some(component) = self.load_from_disk(engine, hash) {
            return Ok((component, Source::Disk));
        }
        let compiled = engine
            .precompile_component(bytes)
            .map_err(|e| CacheError::Compile(e.into()))?;
        Ok((self.store(engine, hash, &compiled)?, Source::Compiled))
    }

    /// The component of `hash` from a verified artifact, if there is one.
    pub(crate) fn load_from_disk(&self, engine: &Engine, hash: &Digest) -> Option<Component> {
        let (artifact, meta) = self.paths(hash);
        self.load_verified(engine, hash, &artifact, &meta)
    }

    /// Writes `compiled` (what this engine's `precompile_component` made of the component
    /// `hash`, here or in the compiler child process) with its header, and loads it.
    pub(crate) fn store(
        &self,
        engine: &Engine,
        hash: &Digest,
        compiled: &[u8],
    ) -> Result<Component, CacheError> {
        let artifact = self.write("component", hash, compiled)?;
        // SAFETY: the file holds what this engine's `precompile_component` returned (in this
        // process, or in the compiler child this host started with its own engine settings);
        // deserialisation still checks the engine's compatibility.
        unsafe { Component::deserialize_file(engine, &artifact) }
            .map_err(|e| CacheError::Compile(e.into()))
    }

    /// Writes the artifact `compiled` of the `kind` ("component" or "module") `hash`, then its
    /// header; the artifact's path.
    fn write(&self, kind: &str, hash: &Digest, compiled: &[u8]) -> Result<PathBuf, CacheError> {
        let (artifact, meta) = self.paths(hash);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io { path, source }
        };
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        // Header last, both through a rename: a crash leaves no header for a partial artifact.
        let header = self.header(kind, hash, compiled);
        let _ = std::fs::remove_file(&meta);
        write_atomically(&artifact, compiled).map_err(io(&artifact))?;
        write_atomically(&meta, header.as_bytes()).map_err(io(&meta))?;
        Ok(artifact)
    }

    /// The size of the artifact of `hash` on disk, if there is one.
    pub(crate) fn artifact_size(&self, hash: &Digest) -> Option<u64> {
        std::fs::metadata(self.paths(hash).0).ok().map(|m| m.len())
    }

    /// Removes the artifact of `hash` and its header (header first: an artifact without one is
    /// never loaded). True when there was an artifact.
    pub(crate) fn remove(&self, hash: &Digest) -> Result<bool, CacheError> {
        let (artifact, meta) = self.paths(hash);
        let gone = |path: &Path| match std::fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(CacheError::Io {
                path: path.to_path_buf(),
                source,
            }),
        };
        gone(&meta)?;
        gone(&artifact)
    }

    fn load_verified(
        &self,
        engine: &Engine,
        hash: &Digest,
        artifact: &Path,
        meta: &Path,
    ) -> Option<Component> {
        let header = std::fs::read_to_string(meta).ok()?;
        let bytes = std::fs::read(artifact).ok()?;
        if header != self.header("component", hash, &bytes) {
            tracing::warn!(
                artifact = %artifact.display(),
                "cached artifact does not match its header; compiling again"
            );
            return None;
        }
        // SAFETY: the header this host wrote after precompiling matches the file byte for byte
        // (SHA-256 and size) and names this engine's configuration, so the file is an artifact
        // this host produced with `Engine::precompile_component`.
        match unsafe { Component::deserialize_file(engine, artifact) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(artifact = %artifact.display(), "cached artifact rejected: {e}");
                None
            }
        }
    }
}

impl ArtifactCache {
    /// The compiled core module for `bytes` (whose SHA-256 is `hash`), as [`ArtifactCache::load`]
    /// is for a component: from a verified artifact when there is one, otherwise compiled here
    /// and written beside its header.
    pub(crate) fn load_module(
        &self,
        engine: &Engine,
        hash: &Digest,
        bytes: &[u8],
    ) -> Result<(Module, Source), CacheError> {
        if let Some(module) = self.module_from_disk(engine, hash) {
            return Ok((module, Source::Disk));
        }
        let compiled = engine
            .precompile_module(bytes)
            .map_err(|e| CacheError::Compile(e.into()))?;
        self.write("module", hash, &compiled)?;
        // SAFETY: these are the bytes this engine's `precompile_module` just returned;
        // deserialisation still checks the engine's compatibility.
        let module = unsafe { Module::deserialize(engine, &compiled) }
            .map_err(|e| CacheError::Compile(e.into()))?;
        Ok((module, Source::Compiled))
    }

    /// The core module of `hash` from a verified artifact, if there is one. Its header names a
    /// module: a component's artifact is never loaded as one, nor the other way round.
    pub(crate) fn module_from_disk(&self, engine: &Engine, hash: &Digest) -> Option<Module> {
        let (artifact, meta) = self.paths(hash);
        let header = std::fs::read_to_string(&meta).ok()?;
        let bytes = std::fs::read(&artifact).ok()?;
        if header != self.header("module", hash, &bytes) {
            return None;
        }
        // SAFETY: the header this host wrote after precompiling matches these bytes (SHA-256 and
        // size) and names this engine's configuration and a module; the bytes checked are the
        // bytes loaded (not the file opened again).
        match unsafe { Module::deserialize(engine, &bytes) } {
            Ok(module) => Some(module),
            Err(e) => {
                tracing::warn!(artifact = %artifact.display(), "cached artifact rejected: {e}");
                None
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Feeds `Hash` output into SHA-256, so the fingerprint is stable across processes.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}
