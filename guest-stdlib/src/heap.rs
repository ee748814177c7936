//! The guest's allocator: the heap the compiler reserves in the initial memory, above the
//! module's data (`HEAP_PAGES` in `dsl-compiler/src/emit.rs`), handed out as an arena; then
//! dlmalloc (as Rust's own for `wasm32-unknown-unknown`) on blocks from `memory.grow`.
//!
//! Why an arena: an instance runs one job once and is thrown away, so memory is never worth
//! giving back. Taking from the arena is a bump of one pointer; giving back is nothing (or a
//! step back when it is the last block taken, so a growing `Vec` or `String` stays in place).
//! Reading the program alone is dozens of small blocks, and each was a `malloc` and, at the end
//! of the run, a `free`. A job that outgrows the arena goes on with dlmalloc, which reuses what
//! it frees.
//!
//! Why reserved pages: Rust's allocator gets every block from `memory.grow`, so every run grew
//! its memory at least once. On the host, growing an instance's memory is an `mprotect` of the
//! new pages, and the next instance in the same slot is shrunk back with another; each
//! `mprotect` in a multithreaded host flushes the TLBs of every core (an interrupt to each). A
//! job whose allocations fit in the reserved heap never grows its memory, so a run costs no
//! `mprotect`. Wasm memory starts zeroed, so the arena is fresh on each run.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use dlmalloc::{Allocator, Dlmalloc};

const PAGE: usize = 65_536;

extern "C" {
    /// Where the linker put the end of the module's data and stack: the heap may start here.
    static __heap_base: u8;
}

/// The reserved heap, taken from the bottom up: `next` is the first free byte, `end` the end
/// of the initial memory. Empty (`next == end`) until the first request.
struct Arena {
    ready: bool,
    next: usize,
    end: usize,
}

static mut ARENA: Arena = Arena {
    ready: false,
    next: 0,
    end: 0,
};

fn arena() -> &'static mut Arena {
    // SAFETY: the guest is single-threaded and the allocator is not reentrant.
    let arena = unsafe { &mut *ptr::addr_of_mut!(ARENA) };
    if !arena.ready {
        // The first request comes before any `memory.grow`: the initial memory above the data.
        // Only the symbol's address is taken (which needs no `unsafe`).
        let base = ptr::addr_of!(__heap_base) as usize;
        let start = base.next_multiple_of(PAGE);
        let end = core::arch::wasm32::memory_size(0) * PAGE;
        let start = if start == 0 || end <= start {
            end
        } else {
            start
        };
        *arena = Arena {
            ready: true,
            next: start,
            end,
        };
    }
    arena
}

impl Arena {
    /// A block of `layout` from the arena, if it has room.
    fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        let at = self.next.checked_next_multiple_of(layout.align())?;
        let end = at.checked_add(layout.size())?;
        if end > self.end || layout.size() == 0 {
            return None;
        }
        self.next = end;
        Some(at as *mut u8)
    }

    /// Whether `ptr` was handed out by the arena (everything below its end is).
    fn holds(&self, ptr: *mut u8) -> bool {
        (ptr as usize) < self.end
    }

    /// Whether the block at `ptr` of `size` bytes is the last one taken.
    fn is_last(&self, ptr: *mut u8, size: usize) -> bool {
        ptr as usize + size == self.next
    }
}

/// Blocks of linear memory for dlmalloc, from `memory.grow`.
struct Memory;

// SAFETY: the blocks handed out are new pages of this instance, each handed out once.
unsafe impl Allocator for Memory {
    fn alloc(&self, size: usize) -> (*mut u8, usize, u32) {
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

// SAFETY: the arena hands out each byte once (or again only after the block holding it was
// given back as the last one taken); the rest is dlmalloc, whose contract is GlobalAlloc's.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match arena().take(layout) {
            Some(block) => block,
            // SAFETY: forwarded.
            None => unsafe { dl().malloc(layout.size(), layout.align()) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        match arena().take(layout) {
            // A block given back as the last one may have been written: zero it.
            // SAFETY: the block is `layout.size()` bytes of this instance's memory.
            Some(block) => unsafe {
                ptr::write_bytes(block, 0, layout.size());
                block
            },
            // SAFETY: forwarded.
            None => unsafe { dl().calloc(layout.size(), layout.align()) },
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let arena = arena();
        if arena.holds(ptr) {
            if arena.is_last(ptr, layout.size()) {
                arena.next = ptr as usize;
            }
        } else {
            // SAFETY: forwarded: dlmalloc handed out every block above the arena.
            unsafe { dl().free(ptr, layout.size(), layout.align()) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let arena = arena();
        if !arena.holds(ptr) {
            // SAFETY: forwarded.
            return unsafe { dl().realloc(ptr, layout.size(), layout.align(), new_size) };
        }
        // The last block taken grows or shrinks in place while the arena has room.
        if arena.is_last(ptr, layout.size()) && ptr as usize + new_size <= arena.end {
            arena.next = ptr as usize + new_size;
            return ptr;
        }
        // A block of the arena shrinks in place (the bytes it gives up are not used again).
        if new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (GlobalAlloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded to `alloc` above.
        let block = unsafe { self.alloc(new_layout) };
        if !block.is_null() {
            // SAFETY: both blocks are at least the smaller size, and distinct.
            unsafe { ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size)) };
        }
        block
    }
}
