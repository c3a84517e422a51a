//! Advisories (`crate::advisory`) raised by a whole service in process and received by a
//! client subscribed to `_MM.ADVISORY.>`: slow consumers, refused clients, mesh links.

use std::net::SocketAddr;
use std::time::Duration;

use mm_wire::handshake::ErrorCode;
use mm_wire::{Action, Frame, Header, Message};

use crate::advisory::RefusedConnect;
use crate::config::GatewayConfig;
use crate::service::test_harness::{TestPeer, TestService, run};

fn subscribe(id: u32, pattern: &str) -> Header<'_> {
    Header {
        subscription_id: id,
        subject: pattern.as_bytes(),
        reply_subject: &[],
        action: Action::Subscribe,
    }
}

/// A PING and its PONG: everything sent before it has been processed.
async fn sync(peer: &mut TestPeer) {
    peer.send(&Header::new(Action::Ping), &Message::new()).await;
    while peer.next_frame().await.action() != Some(Action::Pong) {}
}

/// A client subscribed to every advisory, its subscription confirmed.
async fn watcher(service: &TestService) -> TestPeer {
    let (_, mut watcher) = service.client("watcher").await;
    watcher
        .send(&subscribe(5, "_MM.ADVISORY.>"), &Message::new())
        .await;
    sync(&mut watcher).await;
    watcher
}

/// The next advisory the watcher receives: (subject, body).
async fn next_advisory(watcher: &mut TestPeer) -> (String, Message) {
    loop {
        let frame: Frame = watcher.expect(Action::SendMessage).await;
        let subject = String::from_utf8_lossy(frame.subject()).into_owned();
        if subject.starts_with("_MM.ADVISORY.") {
            assert_eq!(frame.header().subscription_id, 5);
            return (subject, frame.message().expect("an advisory decodes"));
        }
    }
}

#[test]
fn a_slow_consumer_cut_off_is_advised() {
    run(async {
        let service = TestService::start(GatewayConfig {
            max_frame: 64 * 1024,
            max_pending_bytes: 128 * 1024,
            ..GatewayConfig::default()
        });
        let mut watcher = watcher(&service).await;
        let (slow_key, mut slow) = service.client_with("slowpoke", Some(4096)).await;
        slow.send(&subscribe(1, "FLOOD"), &Message::new()).await;
        sync(&mut slow).await;
        let (_, mut publisher) = service.client("publisher").await;
        let payload = vec![0x5a; 8 * 1024];
        while service.service.borrow().connections.contains_key(slow_key) {
            publisher
                .send(
                    &Header::send_message("FLOOD"),
                    &Message::new().add_blob("p", payload.clone()),
                )
                .await;
            tokio::task::yield_now().await;
        }
        let (subject, advisory) = next_advisory(&mut watcher).await;
        assert_eq!(subject, "_MM.ADVISORY.WARN.CLIENT.SLOW_CONSUMER");
        assert_eq!(
            advisory.try_string("service"),
            Some(crate::service::test_harness::SERVICE)
        );
        assert_eq!(advisory.try_string("name"), Some("slowpoke"));
        assert_eq!(advisory.try_string("role"), Some("client"));
        assert_eq!(advisory.try_string("cause"), Some("bound"));
        assert_eq!(advisory.try_u64("bound"), Some(128 * 1024));
        assert!(advisory.try_u64("dropped_frames").is_some_and(|n| n > 0));
        assert_eq!(advisory.try_u64("suppressed"), Some(0));
        assert!(
            advisory
                .try_string("text")
                .is_some_and(|text| text.contains("slow consumer")),
            "{advisory}"
        );
        assert_eq!(service.service.borrow().advisories.published_total(), 1);
        service.stop().await;
    });
}

#[test]
fn refusals_are_advised_with_their_code() {
    run(async {
        let service = TestService::start(GatewayConfig {
            limits: crate::config::Limits {
                max_subscriptions_per_connection: 2,
                ..crate::config::Limits::default()
            },
            ..GatewayConfig::default()
        });
        let mut watcher = watcher(&service).await;
        let (_, mut greedy) = service.client("greedy").await;
        for (id, pattern) in [(1, "A"), (2, "B"), (3, "C.>")] {
            greedy.send(&subscribe(id, pattern), &Message::new()).await;
        }
        let error = greedy.expect(Action::Error).await;
        assert_eq!(
            error.message().unwrap().try_string("code"),
            Some("LIMIT_EXCEEDED")
        );
        let (subject, advisory) = next_advisory(&mut watcher).await;
        assert_eq!(subject, "_MM.ADVISORY.WARN.CLIENT.REFUSED");
        assert_eq!(advisory.try_string("code"), Some("LIMIT_EXCEEDED"));
        assert_eq!(advisory.try_string("name"), Some("greedy"));
        assert_eq!(advisory.try_string("subject"), Some("C.>"));

        // Refused by the acceptor while the service runs (SERVICE_REFUSED, say).
        let address: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        service
            .service
            .borrow_mut()
            .refused_at_connect(&RefusedConnect {
                name: "late".into(),
                address,
                code: ErrorCode::ServiceRefused,
                text: "the service stopped".into(),
            });
        let (subject, advisory) = next_advisory(&mut watcher).await;
        assert_eq!(subject, "_MM.ADVISORY.WARN.CLIENT.REFUSED");
        assert_eq!(advisory.try_string("code"), Some("SERVICE_REFUSED"));
        assert_eq!(advisory.try_string("name"), Some("late"));
        assert_eq!(advisory.try_string("address"), Some("192.0.2.7:40000"));
        service.stop().await;
    });
}

#[test]
fn mesh_links_up_and_down_are_advised() {
    run(async {
        let service = TestService::start(GatewayConfig::default());
        let mut watcher = watcher(&service).await;
        let (link_key, link) = service
            .accepted_link("0000000000000000000000000000000a")
            .await;
        let (subject, advisory) = next_advisory(&mut watcher).await;
        assert_eq!(subject, "_MM.ADVISORY.INFO.LINK.UP");
        assert_eq!(advisory.try_string("direction"), Some("accepted"));
        assert_eq!(
            advisory.try_string("peer_id"),
            Some("0000000000000000000000000000000a")
        );
        assert_eq!(advisory.try_string("peer_name"), Some("peer"));
        assert_eq!(advisory.try_i32("protocol"), Some(2));
        drop(link);
        service
            .wait_until("the link is closed", |service| {
                !service.connections.contains_key(link_key)
            })
            .await;
        let (subject, advisory) = next_advisory(&mut watcher).await;
        assert_eq!(subject, "_MM.ADVISORY.WARN.LINK.DOWN");
        assert_eq!(
            advisory.try_string("reason"),
            Some("peer closed the connection")
        );
        // Nothing else was advised.
        assert!(
            watcher
                .try_next_frame(Duration::from_millis(50))
                .await
                .is_none()
        );
        service.stop().await;
    });
}
