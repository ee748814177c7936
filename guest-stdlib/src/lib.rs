// TEMPORARY minimal guest written by the lead to test the emitter; the guest helper replaces this file.
//! The CodeAI guest runtime (temporary minimal version).

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({ path: "../wit", world: "job" });


    #[repr(C)]
    struct ProgramSlot {
        magic: [u8; 16],
        ptr: u32,
        len: u32,
    }

    #[used]
    static PROGRAM_SLOT: ProgramSlot = ProgramSlot {
        magic: codeai_ir::PROGRAM_SLOT_MAGIC,
        ptr: 0,
        len: 0,
    };

    fn program_bytes() -> &'static [u8] {
        unsafe {
            let ptr = core::ptr::read_volatile(&PROGRAM_SLOT.ptr);
            let len = core::ptr::read_volatile(&PROGRAM_SLOT.len);
            core::slice::from_raw_parts(ptr as usize as *const u8, len as usize)
        }
    }

    struct Runtime;

    impl Guest for Runtime {
        fn run(_input: String) -> Result<Outcome, JobError> {
            let program: codeai_ir::Program = serde_json::from_slice(program_bytes()).map_err(|e| JobError {
                step: None,
                message: format!("invalid program: {e}"),
            })?;
            codeai::host::log::write(codeai::host::log::Level::Info, &format!("job {} has {} steps", program.job, program.steps.len()));
            Ok(Outcome::Completed(format!("{{\"steps\":{}}}", program.steps.len())))
        }
    }

    export!(Runtime);
}
