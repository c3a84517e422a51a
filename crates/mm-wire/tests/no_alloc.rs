//! Encoding a frame into a warm buffer, and the gateway's header parse + id patch, allocate
//! nothing — proved with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mm_wire::{Header, HeaderView, Message, encode_frame, patch_subscription_id};

struct CountingAllocator;

thread_local! {
    /// Allocations made by this thread. Per thread, because the test harness's own threads
    /// allocate now and then while a measured loop runs.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: a thread being torn down may still allocate after its locals are gone.
    let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
}

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn hot_paths_do_not_allocate() {
    let small = Message::new().add_i32("#", 7);
    let large = Message::new()
        .add_string("s", "hello, world!")
        .add_blob("b", vec![7u8; 4096])
        .add_message("m", Message::new().add_f64("d", 1.5).add_u64("u", 9));
    let mut buffer = Vec::with_capacity(16);
    // Warm up: the buffer grows once.
    encode_frame(&mut buffer, &Header::send_message("A.B"), &large).unwrap();

    let count = allocations_during(|| {
        for i in 0..10_000u32 {
            buffer.clear();
            let header = Header::send_message("PRICES.IBM")
                .with_reply_subject("_INBOX.abc.1")
                .with_subscription_id(i);
            encode_frame(
                &mut buffer,
                &header,
                if i % 2 == 0 { &small } else { &large },
            )
            .unwrap();
        }
    });
    assert_eq!(count, 0, "encode_frame allocated {count} times");

    buffer.clear();
    encode_frame(&mut buffer, &Header::send_message("A.B"), &small).unwrap();
    let count = allocations_during(|| {
        for i in 0..10_000u32 {
            let header = HeaderView::parse(&buffer).unwrap();
            assert_eq!(header.subject, b"A.B");
            patch_subscription_id(&mut buffer, i);
        }
    });
    assert_eq!(count, 0, "header parse + patch allocated {count} times");
}
