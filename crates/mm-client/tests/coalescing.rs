//! Speed: publishes are coalesced, far fewer write syscalls than frames.
//!
//! Kept alone in its test binary, with nobody subscribed: how many frames share a write depends
//! on how fast the publisher runs against one engine cycle, so nothing else in the process may
//! compete for the CPU. Large reads and the high-water mark are tested in `flow.rs`.

mod common;

use common::{PATIENCE, connect};
use messaging_mesh::Message;
use mm_testkit::GatewayProcess;

const PUBLISHES: usize = 100_000;

#[test]
fn publishes_are_coalesced_far_fewer_writes_than_frames() {
    let gateway = GatewayProcess::start(&[]);
    let publisher = connect(&gateway);
    let before = publisher.stats();
    let message = Message::new()
        .add_i32("n", 1)
        .add_string("pad", "0123456789abcdef");
    for _ in 0..PUBLISHES {
        publisher.send("LOAD", &message).unwrap();
    }
    publisher.flush(PATIENCE).unwrap();
    let after = publisher.stats();
    let frames = after.frames_out - before.frames_out;
    let writes = after.write_calls - before.write_calls;
    println!("{frames} frames, {writes} write calls");
    assert!(frames > PUBLISHES as u64, "frames {frames}");
    // Typically 20-60 frames per write; on a loaded machine (other builds sharing the two cores)
    // runs down to 9 were seen. One write per frame would be 100 000.
    assert!(
        writes * 4 < frames,
        "not coalesced: {frames} frames took {writes} write calls"
    );
    // Everything queued was written: the flush's PONG proves its PING went out, and all before.
    assert_eq!(after.bytes_written, after.bytes_out);
}
