//! Encoding a frame into a warm buffer, and the gateway's header parse + id patch, allocate
//! nothing — proved with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mm_wire::{Header, HeaderView, Message, encode_frame, patch_subscription_id};

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    work();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

// One test function: the counter is global, and tests in one binary run on parallel threads.
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
