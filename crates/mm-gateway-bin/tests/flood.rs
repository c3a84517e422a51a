//! A client that publishes without pause — its socket always readable — must not keep the
//! service's loop from taking new connections and answering requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mm_testkit::{GatewayProcess, RawClient, wait_until};
use mm_wire::{Action, Header, Message, encode_frame};

const SERVICE: &str = "FLOOD";

#[test]
fn a_client_that_never_stops_publishing_does_not_keep_others_out() {
    let gateway = GatewayProcess::start(&[]);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, sent, address) = (stop.clone(), sent.clone(), gateway.address());
        std::thread::spawn(move || {
            let mut publisher = RawClient::mm2(address, SERVICE);
            // 4000 frames per write: the gateway always finds the socket readable.
            let message = Message::new().add_blob("p", vec![0x42; 16]);
            let mut chunk = Vec::new();
            for _ in 0..4000 {
                encode_frame(
                    &mut chunk,
                    &Header::new(Action::SendMessage).with_subject("NOBODY.listens"),
                    &message,
                )
                .expect("a frame");
            }
            while !stop.load(Ordering::Relaxed) {
                publisher.send_bytes(&chunk);
                sent.fetch_add(4000, Ordering::Relaxed);
            }
        })
    };
    assert!(wait_until(Duration::from_secs(10), || sent
        .load(Ordering::Relaxed)
        > 1_000_000));
    // While the flood goes on: a new client joins the same service and asks for its statistics.
    // Before the fix the service's loop took the CONNECT only when the flood paused (seconds).
    let started = Instant::now();
    let mut late = RawClient::mm2(gateway.address(), SERVICE);
    let _stats = late.stats_once(0x51);
    let waited = started.elapsed();
    let flooding = !publisher.is_finished();
    stop.store(true, Ordering::Relaxed);
    publisher.join().expect("the publisher");
    assert!(flooding, "the flood went on throughout");
    assert!(
        waited < Duration::from_secs(2),
        "joining and a _MM.STATS answer took {waited:?} during the flood"
    );
}
