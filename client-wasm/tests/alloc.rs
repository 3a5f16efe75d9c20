//! The wasm build's allocator (`client-wasm/src/alloc.rs`, the global
//! allocator of this crate on wasm32): blocks keep their contents through
//! growth and reuse, honour their alignment, and freed blocks are reused.

// Linked for its `#[global_allocator]`.
use client_wasm as _;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[repr(align(64))]
struct Aligned64([u8; 100]);

#[wasm_bindgen_test]
fn vectors_keep_their_contents_while_growing_and_shrinking() {
    let mut v: Vec<u32> = Vec::new();
    for i in 0..100_000u32 {
        v.push(i);
    }
    assert!(v.iter().enumerate().all(|(i, x)| *x == i as u32));
    v.truncate(10);
    v.shrink_to_fit();
    assert_eq!(v, (0..10).collect::<Vec<u32>>());
    let mut s = String::new();
    for i in 0..5_000 {
        s.push(char::from(b'a' + (i % 26) as u8));
    }
    assert_eq!(s.len(), 5_000);
    assert!(s
        .bytes()
        .enumerate()
        .all(|(i, b)| b == b'a' + (i % 26) as u8));
}

#[wasm_bindgen_test]
fn alignment_is_honoured_for_every_size() {
    for size in [1usize, 7, 8, 9, 16, 33, 100, 4096, 70_000] {
        for _ in 0..3 {
            let b = vec![0xA5u8; size].into_boxed_slice();
            assert!(b.iter().all(|x| *x == 0xA5));
            let w = vec![1u64; size.div_ceil(8)];
            assert_eq!(w.as_ptr() as usize % 8, 0);
        }
    }
    let boxes: Vec<Box<Aligned64>> = (0..20).map(|i| Box::new(Aligned64([i; 100]))).collect();
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(&**b as *const Aligned64 as usize % 64, 0);
        assert!(b.0.iter().all(|x| *x == i as u8));
    }
}

#[wasm_bindgen_test]
fn freed_blocks_are_reused() {
    let first = Box::new([7u8; 200]);
    let at = first.as_ptr() as usize;
    drop(first);
    let second = Box::new([9u8; 200]);
    assert_eq!(
        second.as_ptr() as usize,
        at,
        "a block of the same class comes back"
    );
    // Many short-lived allocations of mixed sizes do not keep growing memory.
    let pages = core::arch::wasm32::memory_size(0);
    for round in 0..2_000usize {
        let a = vec![round as u8; 10 + round % 300];
        let b = vec![0u16; 1 + round % 1_000];
        assert_eq!(a[0], round as u8);
        assert_eq!(b.len(), 1 + round % 1_000);
    }
    assert!(core::arch::wasm32::memory_size(0) <= pages + 1);
}
