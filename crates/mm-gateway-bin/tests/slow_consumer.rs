//! Slow consumers (SPEC §6.3): a subscriber that stops reading stalls neither the publisher
//! (beyond brief pauses) nor other subscribers, is cut off with ERROR SLOW_CONSUMER, is counted,
//! and gateway memory stays within the bound.

use std::time::{Duration, Instant};

use mm_testkit::{GatewayProcess, RawClient, wait_until, write_config};
use mm_wire::{Action, Header, Message, encode_frame};

const SERVICE: &str = "TEST";
const MESSAGES: i32 = 30_000;
const PAYLOAD: usize = 1024;

#[test]
fn a_subscriber_that_stops_reading_is_cut_off_without_hurting_anyone() {
    // Bound: 1 MiB of queued output per client (max_frame 64 KiB, so the floor is 128 KiB).
    let config = write_config(
        "slow",
        r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 1048576}"#,
    );
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let baseline_rss = gateway.rss_kib();

    let mut slow = RawClient::mm2(gateway.address(), SERVICE);
    slow.subscribe(1, "FLOOD");
    slow.flush();
    let mut healthy = RawClient::mm2(gateway.address(), SERVICE);
    healthy.subscribe(1, "FLOOD");
    healthy.flush();

    // The publisher runs on its own thread, writing 30 MiB as fast as the gateway takes it.
    let address = gateway.address();
    let publisher = std::thread::spawn(move || {
        let mut publisher = RawClient::mm2(address, SERVICE);
        let started = Instant::now();
        let payload = vec![0x42u8; PAYLOAD];
        let mut batch = Vec::new();
        for n in 0..MESSAGES {
            encode_frame(
                &mut batch,
                &Header::send_message("FLOOD"),
                &Message::new()
                    .add_i32("#", n)
                    .add_blob("p", payload.clone()),
            )
            .unwrap();
            if batch.len() > 64 * 1024 {
                publisher.send_bytes(&batch);
                batch.clear();
            }
        }
        publisher.send_bytes(&batch);
        publisher.flush();
        started.elapsed()
    });

    // The healthy subscriber gets everything, in order, while the slow one reads nothing.
    let mut peak_rss = 0;
    for n in 0..MESSAGES {
        let frame = healthy.expect_action(Action::SendMessage);
        assert_eq!(frame.message().unwrap().get_i32("#"), Ok(n));
        if n % 1000 == 0 {
            peak_rss = peak_rss.max(gateway.rss_kib());
        }
    }
    let publish_time = publisher.join().unwrap();
    println!(
        "published {MESSAGES} x {PAYLOAD} B in {publish_time:?}; RSS {baseline_rss} KiB -> peak {peak_rss} KiB"
    );
    assert!(
        publish_time < Duration::from_secs(30),
        "publisher was held up: {publish_time:?}"
    );

    // The slow subscriber was cut off, counted and logged.
    let mut observer = RawClient::mm2(gateway.address(), SERVICE);
    assert!(wait_until(Duration::from_secs(10), || {
        observer.stats(99).get_u64("slow_consumers") == Ok(1)
    }));
    let stats = observer.stats(98);
    assert!(stats.get_u64("dropped_frames").unwrap() > 0, "{stats:#}");
    assert!(gateway.wait_for_log("slow consumer", Duration::from_secs(5)));

    // Its stream: whatever the kernel buffered, then ERROR SLOW_CONSUMER, then end of stream.
    let (closed, frames) = slow.wait_closed(Duration::from_secs(10));
    assert!(closed, "slow consumer disconnected");
    let last = frames.last().expect("some frames");
    assert_eq!(
        last.action(),
        Some(Action::Error),
        "last frame is the ERROR"
    );
    assert_eq!(
        last.message().unwrap().get_string("code"),
        Ok("SLOW_CONSUMER")
    );
    let delivered = frames
        .iter()
        .filter(|frame| frame.action() == Some(Action::SendMessage))
        .count();
    assert!((delivered as i32) < MESSAGES, "it did not get everything");

    // Memory stayed near the bound: two 1 MiB queues, not the 30 MiB published.
    assert!(
        peak_rss < baseline_rss + 16 * 1024,
        "RSS grew from {baseline_rss} KiB to {peak_rss} KiB"
    );
}
