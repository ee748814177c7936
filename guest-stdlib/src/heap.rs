//! The guest's allocator: dlmalloc (as Rust's own for `wasm32-unknown-unknown`), whose first
//! block of memory is the heap the compiler reserves in the initial memory, above the module's
//! data (`HEAP_PAGES` in `dsl-compiler/src/emit.rs`). Later blocks come from `memory.grow`.
//!
//! Why: Rust's allocator gets every block from `memory.grow`, so every run grew its memory at
//! least once. On the host, growing an instance's memory is an `mprotect` of the new pages, and
//! the next instance in the same slot is shrunk back with another; each `mprotect` in a
//! multithreaded host flushes the TLBs of every core (an interrupt to each). A job whose
//! allocations fit in the reserved heap never grows its memory, so a run costs no `mprotect`.
//! Wasm memory starts zeroed and is never given back, so the reserved heap is fresh on each run.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use dlmalloc::{Allocator, Dlmalloc};

const PAGE: usize = 65_536;

/// Blocks of linear memory for dlmalloc: the reserved heap first, then `memory.grow`.
struct Memory;

extern "C" {
    /// Where the linker put the end of the module's data and stack: the heap may start here.
    static __heap_base: u8;
}

/// The reserved heap: `None` until the first request (when memory has not grown yet), then
/// its bounds until it is handed out (to the first request it fits), then empty.
static mut RESERVED: Option<(usize, usize)> = None;

// SAFETY: the blocks handed out are unused memory of this instance, each handed out once.
unsafe impl Allocator for Memory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
        // SAFETY: the guest is single-threaded; only this function touches `RESERVED`.
        let reserved = unsafe { &mut *ptr::addr_of_mut!(RESERVED) };
        let (start, end) = *reserved.get_or_insert_with(|| {
            // The first request, before any `memory.grow`: the initial memory above the data.
            // Only the symbol's address is taken (which needs no `unsafe`).
            let base = ptr::addr_of!(__heap_base) as usize;
            let start = base.next_multiple_of(PAGE);
            let end = core::arch::wasm32::memory_size(0) * PAGE;
            if start == 0 || end <= start {
                (0, 0)
            } else {
                (start, end)
            }
        });
        if end - start >= size && size > 0 {
            *reserved = Some((0, 0));
            return (start as *mut u8, end - start, 0);
        }
        let pages = size.div_ceil(PAGE);
        let prev = core::arch::wasm32::memory_grow(0, pages);
        if prev == usize::MAX {
            return (ptr::null_mut(), 0, 0);
        }
        ((prev * PAGE) as *mut u8, pages * PAGE, 0)
    }

    fn remap(&self, _ptr: *mut u8, _old: usize, _new: usize, _can_move: bool) -> *mut u8 {
        ptr::null_mut()
    }

    fn free_part(&self, _ptr: *mut u8, _old: usize, _new: usize) -> bool {
        false
    }

    fn free(&self, _ptr: *mut u8, _size: usize) -> bool {
        false
    }

    fn can_release_part(&self, _flags: u32) -> bool {
        false
    }

    fn allocates_zeros(&self) -> bool {
        true
    }

    fn page_size(&self) -> usize {
        PAGE
    }
}

struct Heap;

static mut DLMALLOC: Dlmalloc<Memory> = Dlmalloc::new_with_allocator(Memory);

#[global_allocator]
static HEAP: Heap = Heap;

fn dl() -> &'static mut Dlmalloc<Memory> {
    // SAFETY: the guest is single-threaded and the allocator is not reentrant.
    unsafe { &mut *ptr::addr_of_mut!(DLMALLOC) }
}

// SAFETY: dlmalloc's contract is GlobalAlloc's.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { dl().malloc(layout.size(), layout.align()) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { dl().calloc(layout.size(), layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { dl().free(ptr, layout.size(), layout.align()) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { dl().realloc(ptr, layout.size(), layout.align(), new_size) }
    }
}
