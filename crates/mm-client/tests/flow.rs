//! Flow: large reads on the receiving side, unwritten output bounded by the high-water mark.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{PATIENCE, connect, params};
use messaging_mesh::{Connection, Message};
use mm_testkit::GatewayProcess;

const MESSAGES: usize = 100_000;

#[test]
fn reads_are_large_and_every_message_arrives() {
    let gateway = GatewayProcess::start(&[]);
    let subscriber = connect(&gateway);
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let _sub = subscriber
        .subscribe("LOAD", move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    subscriber.flush(PATIENCE).unwrap();
    let before = subscriber.stats();
    let publisher = connect(&gateway);
    let message = Message::new().add_i32("n", 1);
    for _ in 0..MESSAGES {
        publisher.send("LOAD", &message).unwrap();
    }
    publisher.flush(PATIENCE).unwrap();
    assert!(mm_testkit::wait_until(PATIENCE, || count
        .load(Ordering::Relaxed)
        == MESSAGES));
    let after = subscriber.stats();
    let frames = after.frames_in - before.frames_in;
    let reads = after.read_calls - before.read_calls;
    println!("{frames} frames in {reads} reads");
    assert!(reads * 10 < frames, "{frames} frames took {reads} reads");
}

#[test]
fn output_is_bounded_by_the_high_water_mark() {
    let gateway = GatewayProcess::start(&[]);
    let high_water = 64 * 1024;
    let connection =
        Connection::connect(params(&gateway).with_write_high_water(high_water)).unwrap();
    let message = Message::new().add_blob("data", vec![7u8; 4096]);
    let mut peak = 0;
    for _ in 0..5_000 {
        connection.send("BOUNDED", &message).unwrap();
        peak = peak.max(connection.stats().pending_output_bytes);
    }
    connection.flush(PATIENCE).unwrap();
    assert!(peak <= high_water + 4096 + 64, "peak {peak}");
}
