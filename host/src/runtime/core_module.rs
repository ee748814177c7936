//! The guest runtime run as the core module it is, without the component around it.
//!
//! Every `codeai build` component is the runtime component — one core module, the guest runtime,
//! that `wit-component` wrapped with a shim and a fix-up module for its two imports — followed
//! by the job's program and manifest. A job of that shape runs here on that core module, byte for
//! byte the one the component nests ([`codeai_dsl::emit::runtime_core_module`]), compiled once
//! per host, in one core instance; the host does the canonical ABI's work at the module's edge
//! itself, for the few functions the module has there:
//!
//! - imports: `calls.call-encoded` (`list<u8> -> list<u8>`: the request and the response in
//!   postcard, answered by [`crate::wasm::call_encoded`], the gate's own `calls.call`) and
//!   `log.step` (`string`);
//! - exports: `run`, `decode-program` and `run-decoded`, each `-> result<_, job-error>`, and
//!   `cabi_realloc`, through which the host writes every list and string it hands in. The
//!   exports' `cabi_post_` functions are not called: they only free the result the host has
//!   just copied out, in an instance the host drops next, and each call into the module is a
//!   fiber switch (measured: two of them ~0.45 µs of a no-op job's ~7.6);
//! - and one core export outside the component's interface, `codeai-run-decoded-in-place`:
//!   `run-decoded` for a host that wrote the image and the input where the two `cabi_realloc`
//!   calls of lowering them would have put them (the start of a fresh instance's arena), so a
//!   run is one call into the module instead of three. The guest makes those two calls itself
//!   and traps, before any of the job's code runs, if the blocks they give are not where the
//!   host wrote.
//!
//! Why: a component instance of the runtime is three core instances, their trampolines, and
//! lowered imports passed through a table; measured, that layer was ~3 µs of a no-op job's ~12
//! (BENCHMARKS.md, "The core-module route"). What the component would check, this does: every
//! pointer and length is checked against the memory (a `u32` offset, in bounds, aligned where
//! the ABI aligns), every string the guest hands out is checked as UTF-8, every discriminant
//! against its cases, and each is a trap as in the component. The invariant: only the runtime's
//! own core module is instantiated here ([`SharedCore::link`] refuses a module with other
//! imports or without these exports), so these hand-written lifts and lowers meet only the code
//! they were written for.

use super::ExecState;
use crate::wasm::{Capabilities, JobError, Outcome};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::{AsContext, AsContextMut, Caller, Engine, Extern, ExternType, InstancePre};
use wasmtime::{Linker, Memory, Module, ModuleExport, Store, TypedFunc, ValType};

/// The import modules of the runtime's core module.
const CALLS: &str = "codeai:host/calls@0.1.0";
const LOG: &str = "codeai:host/log@0.1.0";

fn export(module: &Module, name: &str) -> anyhow::Result<ModuleExport> {
    module
        .get_export_index(name)
        .ok_or_else(|| anyhow::anyhow!("the runtime's core module has no export `{name}`"))
}

/// The runtime's core module, compiled and linked: what every `codeai build` job runs on.
pub(crate) struct SharedCore<C: 'static> {
    pre: InstancePre<ExecState<C>>,
    memory: ModuleExport,
    realloc: ModuleExport,
    run: ModuleExport,
    decode: ModuleExport,
    run_decoded: ModuleExport,
    run_decoded_in_place: ModuleExport,
    /// Where a fresh instance's arena starts (`codeai_dsl::emit::runtime_arena_start`).
    arena_start: usize,
    /// Runs that went through `codeai-run-decoded-in-place`.
    in_place_runs: AtomicU64,
}

type Trap = wasmtime::Error;

fn trap(message: &str) -> Trap {
    wasmtime::Error::msg(format!("canonical ABI: {message}"))
}

impl<C: Capabilities> SharedCore<C> {
    /// Links `module` (the runtime's core module) to the two host functions it imports. Refuses
    /// a module without the exports a run calls, each of the type the calls below take for it.
    pub(crate) fn link(engine: &Engine, module: &Module) -> anyhow::Result<SharedCore<C>> {
        let memory_export = export(module, "memory")?;
        if !matches!(module.get_export("memory"), Some(ExternType::Memory(_))) {
            anyhow::bail!("the runtime's core module's `memory` is not a memory");
        }
        let realloc = func_export(module, "cabi_realloc", 4)?;
        let mut linker: Linker<ExecState<C>> = Linker::new(engine);
        linker.func_wrap_async(
            CALLS,
            "call-encoded",
            move |mut caller: Caller<'_, ExecState<C>>, (ptr, len, ret): (i32, i32, i32)| {
                Box::new(async move {
                    let memory = memory_of(&caller)?;
                    let request = slice(memory.data(&caller), ptr, len)?.to_vec();
                    let response = caller
                        .data_mut()
                        .caps
                        .call_encoded_trusted(&request)
                        .await?;
                    let realloc = caller.get_module_export(&realloc);
                    // SAFETY: `func_export` checked the export's type when linking.
                    let realloc = unsafe { typed(&caller, realloc)? };
                    let (at, _) = lower_with(&mut caller, &realloc, &memory, &response).await?;
                    let pair = [at as u32, response.len() as u32];
                    store_u32s(memory.data_mut(&mut caller), ret, &pair)
                })
            },
        )?;
        // `log.step` waits for nothing: a plain host function, called without a future.
        linker.func_wrap(
            LOG,
            "step",
            move |mut caller: Caller<'_, ExecState<C>>, ptr: i32, len: i32| {
                let memory = memory_of(&caller)?;
                let name = string(memory.data(&caller), ptr, len)?.to_owned();
                caller.data_mut().caps.step_now(name);
                Ok(())
            },
        )?;
        Ok(SharedCore {
            pre: linker.instantiate_pre(module)?,
            memory: memory_export,
            realloc,
            run: func_export(module, "run", 2)?,
            decode: func_export(module, "codeai:host/decoded@0.1.0#decode-program", 0)?,
            run_decoded: func_export(module, "codeai:host/decoded@0.1.0#run-decoded", 4)?,
            run_decoded_in_place: func_export(module, "codeai-run-decoded-in-place", 4)?,
            // Read from the runtime's bytes that this host ships, which are the module's: the
            // shared runtime is compiled from them and cached under their hash.
            arena_start: codeai_dsl::emit::runtime_arena_start()?,
            in_place_runs: AtomicU64::new(0),
        })
    }

    /// `run(input)`, or `run-decoded(image, input)` with an image, in a fresh instance in `store`.
    pub(crate) async fn run(
        &self,
        store: &mut Store<ExecState<C>>,
        image: Option<&[u8]>,
        input: &str,
    ) -> wasmtime::Result<Result<Outcome, JobError>> {
        let (instance, memory) = self.instantiate(store).await?;
        let realloc = |store: &mut Store<ExecState<C>>| {
            let realloc = instance.get_module_export(&mut *store, &self.realloc);
            // SAFETY: `func_export` checked the export's type when linking.
            unsafe { typed::<(i32, i32, i32, i32)>(&*store, realloc) }
        };
        // The canonical ABI lowers the arguments in order: the image is the first block the
        // guest's arena hands out, where `run-decoded` expects it.
        let ret = match image {
            Some(image) => {
                let (export, args) = match self.in_place(&mut *store, &memory, image, input)? {
                    Some(args) => {
                        self.in_place_runs.fetch_add(1, Ordering::Relaxed);
                        (&self.run_decoded_in_place, args)
                    }
                    None => {
                        let realloc = realloc(&mut *store)?;
                        let (ip, il) = lower_with(&mut *store, &realloc, &memory, image).await?;
                        let input = input.as_bytes();
                        let (np, nl) = lower_with(&mut *store, &realloc, &memory, input).await?;
                        (&self.run_decoded, (ip, il, np, nl))
                    }
                };
                let run = instance.get_module_export(&mut *store, export);
                // SAFETY: `func_export` checked the export's type when linking.
                let run = unsafe { typed::<(i32, i32, i32, i32)>(&*store, run)? };
                run.call_async(&mut *store, args).await?
            }
            None => {
                let realloc = realloc(&mut *store)?;
                let (np, nl) = lower_with(&mut *store, &realloc, &memory, input.as_bytes()).await?;
                let run = instance.get_module_export(&mut *store, &self.run);
                // SAFETY: `func_export` checked the export's type when linking.
                let run = unsafe { typed::<(i32, i32)>(&*store, run)? };
                run.call_async(&mut *store, (np, nl)).await?
            }
        };
        lift_run_result(memory.data(&*store), ret)
    }

    /// Writes `image` and `input` where the guest's `cabi_realloc` would put them in this fresh
    /// instance — the image at the start of its arena, the input right after (an empty input at
    /// 1, as `cabi_realloc` answers for no bytes) — and returns `run-decoded`'s four arguments,
    /// for `codeai-run-decoded-in-place`, which makes the two allocations itself and traps if
    /// they are not these blocks. `None` when the image names another address than the arena's
    /// start, or the two do not fit in the arena ([`in_place_layout`]): they are lowered
    /// through `cabi_realloc` as usual.
    fn in_place(
        &self,
        store: &mut Store<ExecState<C>>,
        memory: &Memory,
        image: &[u8],
        input: &str,
    ) -> wasmtime::Result<Option<(i32, i32, i32, i32)>> {
        let input = input.as_bytes();
        let end_of_memory = memory.data_size(&*store);
        let Some((image_at, input_at, end)) =
            in_place_layout(image, input.len(), self.arena_start, end_of_memory)
        else {
            return Ok(None);
        };
        let data = memory.data_mut(&mut *store);
        data[image_at..input_at].copy_from_slice(image);
        data[input_at..end].copy_from_slice(input);
        let input_ptr = if input.is_empty() { 1 } else { input_at };
        Ok(Some((
            image_at as i32,
            image.len() as i32,
            input_ptr as i32,
            input.len() as i32,
        )))
    }

    /// How many runs went through `codeai-run-decoded-in-place`.
    pub(crate) fn in_place_runs(&self) -> u64 {
        self.in_place_runs.load(Ordering::Relaxed)
    }

    /// `decode-program()` in a fresh instance in `store`.
    pub(crate) async fn decode(
        &self,
        store: &mut Store<ExecState<C>>,
    ) -> wasmtime::Result<Result<Vec<u8>, JobError>> {
        let (instance, memory) = self.instantiate(store).await?;
        let decode = instance.get_module_export(&mut *store, &self.decode);
        // SAFETY: `func_export` checked the export's type when linking.
        let decode = unsafe { typed::<()>(&*store, decode)? };
        let ret = decode.call_async(&mut *store, ()).await?;
        let data = memory.data(&*store);
        let at = aligned(ret, 4)?;
        Ok(match byte(data, at)? {
            0 => Ok(slice(data, load_u32(data, at + 4)?, load_u32(data, at + 8)?)?.to_vec()),
            1 => Err(lift_job_error(data, at + 4)?),
            _ => return Err(trap("invalid `result` discriminant")),
        })
    }

    async fn instantiate(
        &self,
        store: &mut Store<ExecState<C>>,
    ) -> wasmtime::Result<(wasmtime::Instance, Memory)> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let memory = match instance.get_module_export(&mut *store, &self.memory) {
            Some(Extern::Memory(memory)) => memory,
            _ => return Err(trap("the module's `memory` is not a memory")),
        };
        // One instance per store: each execution (and each decoding) has a store of its own.
        debug_assert!(
            store.data().memory.is_none(),
            "a second instance in one store"
        );
        store.data_mut().memory = Some(memory);
        Ok((instance, memory))
    }
}

/// Where an `image` of a program read once goes in a fresh instance, with an input of
/// `input_len` bytes after it: the image's offset, the input's, and the end of both. An image
/// ends with the address of the arena it was taken from, then its root
/// (`guest-stdlib/src/heap.rs`); it goes there only when that is where a fresh instance's arena
/// starts (`arena_start`) and the two fit in the initial memory (`memory_len` bytes: a fresh
/// instance has not grown it). `None` otherwise: the two are then lowered through
/// `cabi_realloc`, and nothing is written below the arena (the module's stack and statics).
fn in_place_layout(
    image: &[u8],
    input_len: usize,
    arena_start: usize,
    memory_len: usize,
) -> Option<(usize, usize, usize)> {
    let trailer = image.len().checked_sub(8).map(|n| &image[n..n + 4])?;
    let start = u32::from_le_bytes(trailer.try_into().expect("four bytes")) as usize;
    let input_at = start.checked_add(image.len())?;
    let end = input_at.checked_add(input_len)?;
    (start == arena_start && end <= memory_len && end <= i32::MAX as usize)
        .then_some((start, input_at, end))
}

/// The export `name` of `module`, a function of `params` `i32`s to one `i32`, as every export
/// a run calls is: [`typed`] relies on this check.
fn func_export(module: &Module, name: &str, params: usize) -> anyhow::Result<ModuleExport> {
    fn i32s(mut types: impl ExactSizeIterator<Item = ValType>, n: usize) -> bool {
        types.len() == n && types.all(|t| matches!(t, ValType::I32))
    }
    let index = export(module, name)?;
    match module.get_export(name) {
        Some(ExternType::Func(ty)) if i32s(ty.params(), params) && i32s(ty.results(), 1) => {
            Ok(index)
        }
        _ => anyhow::bail!(
            "the runtime's core module's export `{name}` is not a function of {params} i32s to an i32"
        ),
    }
}

/// The function `export` as a `TypedFunc` of `P` to one `i32`, without loading its type from
/// the engine's registry twice, as `Func::typed` does to check it (each load ~0.05 µs of a
/// no-op run).
///
/// # Safety
/// `export` is of an instance of a module that [`func_export`] checked it in, for `P`.
unsafe fn typed<P: wasmtime::WasmParams>(
    store: impl AsContext,
    export: Option<Extern>,
) -> wasmtime::Result<TypedFunc<P, i32>> {
    match export {
        // SAFETY: the caller's contract: the function is of `P` to `i32`.
        Some(Extern::Func(func)) => Ok(unsafe { TypedFunc::new_unchecked(store, func) }),
        _ => Err(trap("an export is not a function")),
    }
}

/// The instance's memory, kept in the store's data when the instance was made.
fn memory_of<C>(caller: &Caller<'_, ExecState<C>>) -> wasmtime::Result<Memory> {
    caller
        .data()
        .memory
        .ok_or_else(|| trap("a host function was called before the instance's memory was known"))
}

/// Writes `bytes` into a block the guest's `cabi_realloc` gives (alignment 1), as the canonical
/// ABI lowers a `list<u8>` or a `string`; the block's offset and length.
async fn lower_with<T: Send + 'static>(
    mut store: impl AsContextMut<Data = T>,
    realloc: &wasmtime::TypedFunc<(i32, i32, i32, i32), i32>,
    memory: &Memory,
    bytes: &[u8],
) -> wasmtime::Result<(i32, i32)> {
    let len = i32::try_from(bytes.len()).map_err(|_| trap("a list longer than 2 GiB"))?;
    let at = realloc
        .call_async(store.as_context_mut(), (0, 0, 1, len))
        .await?;
    let data = memory.data_mut(store.as_context_mut());
    slice_mut(data, at, len)?.copy_from_slice(bytes);
    Ok((at, len))
}

/// `run`'s `result<outcome, job-error>` at `ret`.
fn lift_run_result(data: &[u8], ret: i32) -> wasmtime::Result<Result<Outcome, JobError>> {
    let at = aligned(ret, 4)?;
    Ok(match byte(data, at)? {
        0 => Ok(match byte(data, at + 4)? {
            0 => Outcome::Completed(lift_string(data, at + 8)?),
            1 => Outcome::Skipped(lift_string(data, at + 8)?),
            _ => return Err(trap("invalid `outcome` discriminant")),
        }),
        1 => Err(lift_job_error(data, at + 4)?),
        _ => return Err(trap("invalid `result` discriminant")),
    })
}

/// A `job-error` (`{ step: option<string>, message: string }`) at `at`.
fn lift_job_error(data: &[u8], at: usize) -> wasmtime::Result<JobError> {
    let step = match byte(data, at)? {
        0 => None,
        1 => Some(lift_string(data, at + 4)?),
        _ => return Err(trap("invalid `option` discriminant")),
    };
    Ok(JobError {
        step,
        message: lift_string(data, at + 12)?,
    })
}

/// The `string` whose offset and length are at `at`.
fn lift_string(data: &[u8], at: usize) -> wasmtime::Result<String> {
    let (ptr, len) = (load_u32(data, at)?, load_u32(data, at + 4)?);
    Ok(string(data, ptr, len)?.to_owned())
}

fn string(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&str> {
    std::str::from_utf8(slice(data, ptr, len)?).map_err(|_| trap("a string that is not UTF-8"))
}

fn aligned(ptr: i32, align: u32) -> wasmtime::Result<usize> {
    let ptr = ptr as u32;
    if !ptr.is_multiple_of(align) {
        return Err(trap("an unaligned pointer"));
    }
    Ok(ptr as usize)
}

fn byte(data: &[u8], at: usize) -> wasmtime::Result<u8> {
    data.get(at)
        .copied()
        .ok_or_else(|| trap("a pointer out of bounds"))
}

fn load_u32(data: &[u8], at: usize) -> wasmtime::Result<i32> {
    let bytes = at
        .checked_add(4)
        .and_then(|end| data.get(at..end))
        .ok_or_else(|| trap("a pointer out of bounds"))?;
    Ok(i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn store_u32s(data: &mut [u8], ptr: i32, values: &[u32]) -> wasmtime::Result<()> {
    let at = aligned(ptr, 4)?;
    let out = at
        .checked_add(4 * values.len())
        .and_then(|end| data.get_mut(at..end))
        .ok_or_else(|| trap("a pointer out of bounds"))?;
    for (chunk, value) in out.chunks_exact_mut(4).zip(values) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    Ok(())
}

/// The `len` bytes at `ptr` (both `u32`s, as the canonical ABI reads them).
fn slice(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    ptr.checked_add(len)
        .and_then(|end| data.get(ptr..end))
        .ok_or_else(|| trap("a list out of bounds"))
}

fn slice_mut(data: &mut [u8], ptr: i32, len: i32) -> wasmtime::Result<&mut [u8]> {
    let (ptr, len) = (ptr as u32 as usize, len as u32 as usize);
    ptr.checked_add(len)
        .and_then(|end| data.get_mut(ptr..end))
        .ok_or_else(|| trap("a block out of bounds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A memory of 64 bytes with `result<outcome, job-error>` values written at 0.
    fn memory(words: &[(usize, u32)], bytes: &[(usize, &[u8])]) -> Vec<u8> {
        let mut data = vec![0u8; 64];
        for (at, word) in words {
            data[*at..*at + 4].copy_from_slice(&word.to_le_bytes());
        }
        for (at, b) in bytes {
            data[*at..*at + b.len()].copy_from_slice(b);
        }
        data
    }

    #[test]
    fn a_run_result_is_lifted_as_the_canonical_abi_lays_it_out() {
        // ok(completed("{}")): discriminants at 0 and 4, the string's offset and length at 8.
        let data = memory(&[(0, 0), (4, 0), (8, 40), (12, 2)], &[(40, b"{}")]);
        assert!(
            matches!(lift_run_result(&data, 0).unwrap(), Ok(Outcome::Completed(s)) if s == "{}")
        );
        // err({ step: some("a"), message: "no" }).
        let data = memory(
            &[(0, 1), (4, 1), (8, 40), (12, 1), (16, 44), (20, 2)],
            &[(40, b"a"), (44, b"no")],
        );
        let error = lift_run_result(&data, 0).unwrap().unwrap_err();
        assert_eq!(
            (error.step.as_deref(), error.message.as_str()),
            (Some("a"), "no")
        );
    }

    #[test]
    fn an_image_is_written_at_the_arena_start_it_names_or_not_at_all() {
        let image = |start: u32| {
            let mut bytes = vec![7u8; 24];
            bytes.extend_from_slice(&start.to_le_bytes());
            bytes.extend_from_slice(&(start + 8).to_le_bytes());
            bytes
        };
        let (arena, memory) = (0x38240, 0x80000);
        assert_eq!(
            in_place_layout(&image(arena as u32), 2, arena, memory),
            Some((arena, arena + 32, arena + 34))
        );
        // An address below the arena (the stack, the statics), above it, or none at all.
        for start in [0, 16, arena as u32 - 16, arena as u32 + 16] {
            assert_eq!(
                in_place_layout(&image(start), 2, arena, memory),
                None,
                "{start:#x}"
            );
        }
        assert_eq!(in_place_layout(&[0; 7], 2, arena, memory), None);
        // The two ending exactly at the end of the initial memory, or past it.
        let (image_at_arena, room) = (image(arena as u32), memory - arena - 32);
        assert_eq!(
            in_place_layout(&image_at_arena, room, arena, memory),
            Some((arena, arena + 32, memory))
        );
        assert_eq!(
            in_place_layout(&image_at_arena, room + 1, arena, memory),
            None
        );
        assert_eq!(
            in_place_layout(&image_at_arena, usize::MAX, arena, memory),
            None
        );
        // Past what a wasm32 pointer (an `i32` argument) can name, whatever the memory.
        let past = i32::MAX as usize - arena - 32 + 1;
        assert_eq!(
            in_place_layout(&image_at_arena, past, arena, usize::MAX),
            None
        );
        assert!(in_place_layout(&image_at_arena, past - 1, arena, usize::MAX).is_some());
    }

    #[test]
    fn what_the_component_would_trap_on_traps() {
        let completed = |ptr: u32, len: u32| memory(&[(0, 0), (4, 0), (8, ptr), (12, len)], &[]);
        // A string past the end of memory, or wrapping around it.
        assert!(lift_run_result(&completed(60, 8), 0).is_err());
        assert!(lift_run_result(&completed(u32::MAX, 2), 0).is_err());
        // A string that is not UTF-8.
        let data = memory(&[(0, 0), (4, 0), (8, 40), (12, 1)], &[(40, &[0xff])]);
        assert!(lift_run_result(&data, 0).is_err());
        // Discriminants out of range, and an unaligned return area.
        assert!(lift_run_result(&memory(&[(0, 2)], &[]), 0).is_err());
        assert!(lift_run_result(&memory(&[(0, 0), (4, 2)], &[]), 0).is_err());
        assert!(lift_run_result(&memory(&[(0, 1), (4, 2)], &[]), 0).is_err());
        assert!(lift_run_result(&completed(40, 0), 2).is_err());
        // A return area past the end.
        assert!(lift_run_result(&completed(40, 0), 60).is_err());
        assert!(store_u32s(&mut [0u8; 8], 4, &[1, 2]).is_err());
    }
}
