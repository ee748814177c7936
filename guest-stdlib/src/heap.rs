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
//!
//! Why an image: a program read into the arena is the same bytes at the same addresses in every
//! instance of the runtime (the arena starts at a fixed address and hands out blocks in order),
//! so what one instance read can be copied into another and used in place. [`image`] takes that
//! copy after the program is read (read outside the arena by [`outside_arena`], then cloned into
//! it, so the copy holds nothing else), and [`adopt`] checks, in the next instance, that the
//! copy landed where it was taken.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr;
use dlmalloc::{Allocator, Dlmalloc};

const PAGE: usize = 65_536;

extern "C" {
    /// Where the linker put the end of the module's data and stack: the heap may start here.
    static __heap_base: u8;
}

/// The reserved heap, taken from the bottom up: `start` is where it begins, `next` the first
/// free byte, `end` the end of the initial memory. Empty (`next == end`) until the first
/// request.
struct Arena {
    ready: bool,
    start: usize,
    next: usize,
    end: usize,
    /// Requests go to dlmalloc, not to the arena (see [`outside_arena`]).
    outside: bool,
    /// A request the arena had no room for went to dlmalloc: not everything allocated since
    /// the start is in the arena.
    overflowed: bool,
}

/// Aligned to a page of the host (4 KiB): the linker starts the module's zeroed statics (`.bss`,
/// where every writable static of the runtime lives, [`DLMALLOC`] included) on a page of their
/// own, past the last page of the read-only data, which is then the whole of the memory's
/// initial image (`.bss` is not in it). A host maps that image copy-on-write, and reading a page
/// of it makes the kernel map the pages around it too (fault-around, 64 KiB at a time). With the
/// statics on the image's last page, every run read there and so mapped the image's last 64 KiB
/// (Unicode case tables and float formatting, which a no-op job never reads), and wrote that
/// page, which the pool then copied back from the image after each run: 23 pages mapped from
/// the image and one copied, in a slot after each run, instead of 16 and none, and a no-op run
/// ~0.1 µs slower (BENCHMARKS.md, "The
/// runtime's memory made smaller").
#[repr(C, align(4096))]
struct PageStart([u8; 0]);

#[used]
static mut BSS_PAGE_START: PageStart = PageStart([]);

static mut ARENA: Arena = Arena {
    ready: false,
    start: 0,
    next: 0,
    end: 0,
    outside: false,
    overflowed: false,
};

fn arena() -> &'static mut Arena {
    // SAFETY: the guest is single-threaded and the allocator is not reentrant.
    let arena = unsafe { &mut *ptr::addr_of_mut!(ARENA) };
    if !arena.ready {
        // The first request comes before any `memory.grow`: the initial memory above the data,
        // from the end of the statics on, so that a run that fits writes one page for both
        // (the linker aligns `__heap_base` to 16 already). Only the symbol's address is taken
        // (which needs no `unsafe`).
        let base = ptr::addr_of!(__heap_base) as usize;
        let start = base.next_multiple_of(16);
        let end = core::arch::wasm32::memory_size(0) * PAGE;
        let start = if start == 0 || end <= start {
            end
        } else {
            start
        };
        *arena = Arena {
            ready: true,
            start,
            next: start,
            end,
            outside: false,
            overflowed: false,
        };
    }
    arena
}

impl Arena {
    /// A block of `layout` from the arena, if it has room.
    fn take(&mut self, layout: Layout) -> Option<*mut u8> {
        if self.outside || layout.size() == 0 {
            return None;
        }
        let at = self.next.checked_next_multiple_of(layout.align())?;
        let end = at.checked_add(layout.size())?;
        if end > self.end {
            self.overflowed = true;
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

/// dlmalloc, made at its first use: a job whose allocations fit in the arena never uses it.
/// Uninitialised until then, so that it is not in the module's data but in `.bss` (dlmalloc's
/// initial state is not all zeros): the memory's initial image is then the read-only data alone
/// (see [`PageStart`]).
static mut DLMALLOC: MaybeUninit<Dlmalloc<Memory>> = MaybeUninit::uninit();
static mut DLMALLOC_READY: bool = false;

#[global_allocator]
static HEAP: Heap = Heap;

fn dl() -> &'static mut Dlmalloc<Memory> {
    // SAFETY: the guest is single-threaded and the allocator is not reentrant; `DLMALLOC` is
    // written before it is first read.
    unsafe {
        let dl = &mut *ptr::addr_of_mut!(DLMALLOC);
        if !DLMALLOC_READY {
            dl.write(Dlmalloc::new_with_allocator(Memory));
            DLMALLOC_READY = true;
        }
        dl.assume_init_mut()
    }
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
        if !arena.outside
            && arena.is_last(ptr, layout.size())
            && ptr as usize + new_size <= arena.end
        {
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

/// Done with `value` at the end of a run. An instance runs one job once and is thrown away with
/// its memory, so freeing what a run built is work for nothing while every block it took came
/// from the arena, which gives back its last block only: `value` is then forgotten. A run that
/// outgrew the arena frees it, so that dlmalloc can reuse the room.
pub(crate) fn discard<T>(value: T) {
    if !arena().overflowed {
        core::mem::forget(value);
    }
}

/// Runs `f` with every allocation it makes taken from dlmalloc, not from the arena: what it
/// allocates stays out of an [`image`] (the program's text, and the program read from it before
/// it is cloned into the arena at its size).
pub(crate) fn outside_arena<T>(f: impl FnOnce() -> T) -> T {
    arena().outside = true;
    let out = f();
    arena().outside = false;
    out
}

/// The bytes of the arena from its start to its first free byte, followed by the arena's start
/// and `root` (each a little-endian `u32`): what an instance of this module can [`adopt`] to
/// use what this one allocated, at the same addresses. `None` when an allocation went past the
/// arena (its block, in dlmalloc's memory, would not be in the image).
pub(crate) fn image(root: usize) -> Option<Vec<u8>> {
    let (start, used) = {
        let arena = arena();
        if arena.overflowed {
            return None;
        }
        (arena.start, arena.next - arena.start)
    };
    let mut image = Vec::with_capacity(used + 8);
    // SAFETY: `start..start + used` is memory the arena handed out, all of it initialised
    // (wasm memory starts zeroed), and `image` was taken after it, so the two do not overlap.
    image.extend_from_slice(unsafe { core::slice::from_raw_parts(start as *const u8, used) });
    image.extend_from_slice(&(u32::try_from(start).ok()?).to_le_bytes());
    image.extend_from_slice(&(u32::try_from(root).ok()?).to_le_bytes());
    Some(image)
}

/// Takes an [`image`] made by another instance of this module as this instance's own memory,
/// when it lies where it was taken: it must be the first block this arena handed out (so its
/// bytes sit at the addresses they were copied from) and the arena must not have overflowed.
/// Returns `root` (checked to hold a `root` of `layout` inside the image) and keeps the image's
/// block for good; `None` (and the image dropped) when it does not fit.
pub(crate) fn adopt(image: Vec<u8>, root: Layout) -> Option<usize> {
    let n = image.len().checked_sub(8)?;
    let word =
        |at: usize| u32::from_le_bytes([image[at], image[at + 1], image[at + 2], image[at + 3]]);
    let (start, at) = (word(n) as usize, word(n + 4) as usize);
    let arena = arena();
    if arena.overflowed || arena.start != start || image.as_ptr() as usize != start {
        return None;
    }
    // The image's bytes past `n` (its trailer) are not part of what it holds.
    if at < start || at % root.align() != 0 || at + root.size() > start + n {
        return None;
    }
    core::mem::forget(image);
    Some(at)
}
