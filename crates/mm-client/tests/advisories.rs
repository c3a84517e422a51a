//! The advisory a connection delivers to its own subscriptions when one of them passes its
//! pending limit (`_MM.ADVISORY.WARN.LOCAL.MESSAGES_DROPPED`), to callbacks and to streams; it
//! never goes to the gateway.

mod common;

use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{PATIENCE, collector, connect, params};
use messaging_mesh::advisory::MESSAGES_DROPPED;
use messaging_mesh::{AsyncConnection, Connection, Message, PendingLimits};
use mm_testkit::GatewayProcess;

const LIMITS: PendingLimits = PendingLimits {
    messages: 10,
    bytes: 1024 * 1024,
};

#[test]
fn a_subscription_past_its_pending_limit_is_advised_to_the_connections_advisory_callback() {
    let gateway = GatewayProcess::start(&[]);
    let connection = Connection::connect(
        params(&gateway)
            .with_client_name("overwhelmed")
            .with_pending_limits(LIMITS),
    )
    .unwrap();
    // Another connection listens for advisories too: it must hear nothing of this one's.
    let bystander = connect(&gateway);
    let (bystander_callback, bystander_advisories) = collector();
    let _bystander_sub = bystander
        .subscribe("_MM.ADVISORY.>", bystander_callback)
        .unwrap();
    bystander.flush(PATIENCE).unwrap();

    let (advised, advisories) = collector();
    let _advisories = connection.subscribe("_MM.ADVISORY.>", advised).unwrap();
    // The callback holds the dispatch thread on the first message until released.
    let (release, released) = channel::<()>();
    let released = Mutex::new(released);
    let first = Arc::new(Mutex::new(true));
    let slow = connection
        .subscribe("SLOW", move |_| {
            if std::mem::take(&mut *first.lock().unwrap()) {
                let _ = released.lock().unwrap().recv_timeout(PATIENCE);
            }
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();
    let publisher = connect(&gateway);
    for n in 0..100 {
        publisher
            .send("SLOW", &Message::new().add_i32("n", n))
            .unwrap();
    }
    publisher.flush(PATIENCE).unwrap();
    // Every message has arrived (one held by the callback, the rest queued or dropped) before
    // the callback is released: otherwise late arrivals could overflow the queue a second time.
    assert!(
        mm_testkit::wait_until(PATIENCE, || {
            slow.dropped() > 0 && slow.dropped() + slow.pending().0 as u64 + 1 >= 100
        }),
        "dropped {}, pending {:?}, delivered {}",
        slow.dropped(),
        slow.pending(),
        slow.delivered()
    );
    release.send(()).unwrap();

    let advisory = advisories.recv_timeout(PATIENCE).expect("the advisory");
    assert_eq!(advisory.subject(), MESSAGES_DROPPED);
    let body = advisory.message();
    assert_eq!(body.try_string("service"), Some(common::SERVICE));
    assert_eq!(body.try_string("client_name"), Some("overwhelmed"));
    assert_eq!(body.try_u32("subscription_id"), Some(slow.id()));
    assert_eq!(body.try_string("pattern"), Some("SLOW"));
    assert!(body.try_u64("dropped").is_some_and(|n| n >= 1));
    assert_eq!(body.try_u64("limit_messages"), Some(10));
    assert_eq!(body.try_u64("limit_bytes"), Some(1024 * 1024));
    assert_eq!(body.try_u64("suppressed"), Some(0));
    assert!(body.try_u64("time_ms").is_some());
    // One overflow, one advisory.
    assert!(advisories.recv_timeout(Duration::from_millis(200)).is_err());
    // Local only: the gateway never saw it.
    bystander.flush(PATIENCE).unwrap();
    assert!(bystander_advisories.try_recv().is_err());
}

#[tokio::test]
async fn a_stream_past_its_pending_limit_is_advised_to_the_connections_advisory_stream() {
    let gateway = GatewayProcess::start(&[]);
    let connection = AsyncConnection::connect(params(&gateway).with_pending_limits(LIMITS))
        .await
        .unwrap();
    let mut advisories = connection.subscribe("_MM.ADVISORY.WARN.>").await.unwrap();
    // Never read: its stream fills up to the limit.
    let unread = connection.subscribe("UNREAD").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    for n in 0..50 {
        connection
            .send("UNREAD", &Message::new().add_i32("n", n))
            .await
            .unwrap();
    }
    let advisory = tokio::time::timeout(PATIENCE, advisories.next())
        .await
        .expect("the advisory in time")
        .expect("the stream is open");
    assert_eq!(advisory.subject(), MESSAGES_DROPPED);
    assert_eq!(advisory.message().try_string("pattern"), Some("UNREAD"));
    assert_eq!(
        advisory.message().try_u32("subscription_id"),
        Some(unread.id())
    );
    assert_eq!(unread.pending().0, 10);
}
