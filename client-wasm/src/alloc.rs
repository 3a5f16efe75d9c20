//! A small allocator for the wasm build: power-of-two size classes, one free
//! list each, fed by a bump pointer over pages from `memory.grow`.
//!
//! Why: std's default wasm allocator (dlmalloc, with its realloc and
//! bookkeeping) is ~9 KB of the MQTT-only entry's wasm; this is a few
//! hundred bytes. The price is memory: a block is rounded up to a power of
//! two (at most 2x the request) and a freed block only serves requests of its
//! own class, never returning to the browser. A client's allocations are
//! mostly the same few shapes (packets, payloads, topics) coming and going,
//! which this serves well. Single-threaded, as wasm32-unknown-unknown is.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;

const PAGE: usize = 65536;
/// Classes 2^3 .. 2^30 bytes (index = log2 of the block size).
const CLASSES: usize = 31;

struct State {
    /// Head of each class's free list (the next pointer is stored in the block).
    free: [*mut u8; CLASSES],
    /// Bump region `[next, end)` not handed out yet.
    next: usize,
    end: usize,
}

/// The allocator (`#[global_allocator]` in lib.rs on wasm32).
pub struct Classes(UnsafeCell<State>);

// wasm32-unknown-unknown runs one thread.
unsafe impl Sync for Classes {}

impl Classes {
    /// An empty allocator.
    pub const fn new() -> Self {
        Classes(UnsafeCell::new(State {
            free: [null_mut(); CLASSES],
            next: 0,
            end: 0,
        }))
    }
}

/// The class of `layout`: log2 of the smallest power of two >= size and align (min 8).
fn class(layout: &Layout) -> usize {
    let size = layout.size().max(layout.align()).max(8);
    (usize::BITS - (size - 1).leading_zeros()) as usize
}

unsafe impl GlobalAlloc for Classes {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let s = &mut *self.0.get();
        let k = class(&layout);
        if k >= CLASSES {
            return null_mut();
        }
        let align = layout.align();
        let head = s.free[k];
        // A reused block is 16-aligned at least (or its size, if smaller).
        if !head.is_null() && align <= 16 {
            s.free[k] = *(head as *mut *mut u8);
            return head;
        }
        let size = 1usize << k;
        let align = align.max(size.min(16));
        let fits = |next: usize, end: usize| {
            let start = next.checked_add(align - 1)? & !(align - 1);
            (start.checked_add(size)? <= end).then_some(start)
        };
        let start = match fits(s.next, s.end) {
            Some(start) => start,
            None => {
                let Some(pages) = size.checked_add(align).map(|b| b.div_ceil(PAGE)) else {
                    return null_mut();
                };
                let got = core::arch::wasm32::memory_grow(0, pages);
                if got == usize::MAX {
                    return null_mut();
                }
                let base = got * PAGE;
                if base != s.end {
                    s.next = base;
                }
                s.end = base + pages * PAGE;
                match fits(s.next, s.end) {
                    Some(start) => start,
                    None => return null_mut(),
                }
            }
        };
        s.next = start + size;
        start as *mut u8
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let s = &mut *self.0.get();
        let k = class(&layout);
        *(ptr as *mut *mut u8) = s.free[k];
        s.free[k] = ptr;
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = Layout::from_size_align_unchecked(new_size, layout.align());
        if class(&new) == class(&layout) {
            return ptr;
        }
        let out = self.alloc(new);
        if !out.is_null() {
            core::ptr::copy_nonoverlapping(ptr, out, layout.size().min(new_size));
            self.dealloc(ptr, layout);
        }
        out
    }
}
