//! Publishes are coalesced: far fewer write syscalls than frames.
//!
//! Two measurements, one test (kept alone in its test binary, with nobody subscribed, so that
//! nothing else in the process competes for the CPU):
//!
//! * **Behind a stalled socket**, the controlled one: the gateway is paused (SIGSTOP) and a frame
//!   larger than the kernel's socket buffers can hold is queued first, so every publish after it
//!   stays queued in the client until the gateway resumes — whatever the scheduling. The test
//!   checks that this was so, then that the queued frames leave many per `write`.
//! * **Free-running**, a tight publishing loop against a live gateway: how many frames share a
//!   write depends on how fast the publisher runs against one engine cycle, so the figure moves
//!   with the machine's load (a debug build on a 2-core machine: about 23 frames per write when
//!   idle, down to 8 with both cores busy with other work). The bound is one that any coalescing
//!   client meets on a loaded machine and that a client writing frame by frame (or a publisher
//!   that always writes directly) cannot meet. How well coalescing pays is measured by
//!   `mm bench` (it prints frames per write), not asserted here.
//!
//! Large reads and the high-water mark are tested in `flow.rs`.

mod common;

use common::{PATIENCE, connect, params};
use messaging_mesh::{Connection, ConnectionStats, Message};
use mm_testkit::{GatewayProcess, write_config};

/// Small frames published in each measurement.
const PUBLISHES: usize = 100_000;

/// The size of the frame queued ahead of the small ones while the gateway is paused: more than
/// the kernel holds for a reader that does not read. The sender's buffer grows to at most
/// `net.ipv4.tcp_wmem`'s maximum (4 MiB by default); the paused reader's receive buffer does not
/// grow past its initial size while it reads nothing (128 KiB by default). Measured: about 4 MiB
/// taken by the kernel.
fn filler_bytes() -> usize {
    let send_buffer_max = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse::<usize>().ok())
        .unwrap_or(4 << 20);
    let receive_buffer_initial = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(1)?.parse::<usize>().ok())
        .unwrap_or(128 << 10);
    2 * (send_buffer_max + receive_buffer_initial) + (4 << 20)
}

/// Frames per write the free-running loop must beat on average. Frame by frame gives at most 1.
const MIN_FRAMES_PER_WRITE_FREE_RUNNING: u64 = 2;

/// Frames per write the queued frames must beat once the stalled socket drains.
const MIN_FRAMES_PER_WRITE_QUEUED: u64 = 100;

fn message() -> Message {
    Message::new()
        .add_i32("n", 1)
        .add_string("pad", "0123456789abcdef")
}

/// (frames, write calls) between two snapshots.
fn delta(before: &ConnectionStats, after: &ConnectionStats) -> (u64, u64) {
    (
        after.frames_out - before.frames_out,
        after.write_calls - before.write_calls,
    )
}

#[test]
fn publishes_are_coalesced_far_fewer_writes_than_frames() {
    // No heartbeats: the client must not give the paused gateway up, however long publishing
    // takes on a loaded machine.
    let config = write_config("coalescing", r#"{"HeartbeatMs": 0}"#);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);

    // Behind a stalled socket. The high-water mark leaves room for everything queued here.
    let filler_bytes = filler_bytes();
    let publisher =
        Connection::connect(params(&gateway).with_write_high_water(filler_bytes + (32 << 20)))
            .unwrap();
    publisher.flush(PATIENCE).unwrap();
    gateway.pause();
    let filler = Message::new().add_blob("p", vec![0x5a; filler_bytes]);
    publisher.send("FILLER", &filler).unwrap();
    let before = publisher.stats();
    let message = message();
    for _ in 0..PUBLISHES {
        publisher.send("LOAD", &message).unwrap();
    }
    let queued = publisher.stats();
    println!(
        "while paused: {} of {} bytes written",
        queued.bytes_written, queued.bytes_out
    );
    // None of the small frames can have been written: the filler ahead of them is not through.
    assert!(
        queued.bytes_written < before.bytes_out,
        "the stalled socket took the whole filler ({} of {} bytes written): the measurement \
         would not be controlled",
        queued.bytes_written,
        before.bytes_out
    );
    gateway.resume();
    publisher.flush(PATIENCE * 3).unwrap();
    let after = publisher.stats();
    let (frames, writes) = delta(&before, &after);
    println!("behind a stalled socket: {frames} frames, {writes} write calls (filler included)");
    assert!(frames > PUBLISHES as u64, "frames {frames}");
    assert!(
        writes * MIN_FRAMES_PER_WRITE_QUEUED < frames,
        "queued frames not coalesced: {frames} frames took {writes} write calls \
         (fewer than {MIN_FRAMES_PER_WRITE_QUEUED} frames per write)"
    );
    assert_eq!(after.bytes_written, after.bytes_out);
    drop(publisher);

    // Free-running.
    let publisher = connect(&gateway);
    let before = publisher.stats();
    for _ in 0..PUBLISHES {
        publisher.send("LOAD", &message).unwrap();
    }
    publisher.flush(PATIENCE).unwrap();
    let after = publisher.stats();
    let (frames, writes) = delta(&before, &after);
    println!("free-running: {frames} frames, {writes} write calls");
    assert!(frames > PUBLISHES as u64, "frames {frames}");
    assert!(
        writes * MIN_FRAMES_PER_WRITE_FREE_RUNNING < frames,
        "not coalesced: {frames} frames took {writes} write calls \
         (fewer than {MIN_FRAMES_PER_WRITE_FREE_RUNNING} frames per write)"
    );
    // Everything queued was written: the flush's PONG proves its PING went out, and all before.
    assert_eq!(after.bytes_written, after.bytes_out);
}
