//! A whole service in process (see `crate::service::test_harness`): clients, fake peers, slow consumers,
//! mesh-wide flushes, and the two ways a connection can be named wrongly.

use std::time::Duration;

use mm_wire::{Action, Header, Message};

use crate::config::{GatewayConfig, MeshConfig};
use crate::service::test_harness::{FakePeerListener, SERVICE, TestPeer, TestService, run};

const PEER_ID: &str = "0000000000000000000000000000000f";

fn subscribe(id: u32, pattern: &str) -> Header<'_> {
    Header {
        subscription_id: id,
        subject: pattern.as_bytes(),
        reply_subject: &[],
        action: Action::Subscribe,
    }
}

fn unsubscribe(id: u32) -> Header<'static> {
    Header {
        subscription_id: id,
        subject: &[],
        reply_subject: &[],
        action: Action::Unsubscribe,
    }
}

/// 64 KiB frames, 128 KiB of queued output per client.
fn small_bounds() -> GatewayConfig {
    GatewayConfig {
        max_frame: 64 * 1024,
        max_pending_bytes: 128 * 1024,
        ..GatewayConfig::default()
    }
}

/// A PING and its PONG: everything sent before it has been processed.
async fn sync(peer: &mut TestPeer) {
    peer.send(&Header::new(Action::Ping), &Message::new().add_i32("k", 1))
        .await;
    loop {
        if peer.next_frame().await.action() == Some(Action::Pong) {
            return;
        }
    }
}

/// A service meshed with one fake peer, the link up and its (empty) replay read.
async fn meshed(config: GatewayConfig) -> (TestService, TestPeer, FakePeerListener) {
    let listener = FakePeerListener::bind().await;
    let mut config = config;
    config.meshes = vec![MeshConfig {
        service: SERVICE.into(),
        gateways: vec![listener.address()],
        ..MeshConfig::default()
    }];
    let service = TestService::start(config);
    let link = listener.accept(PEER_ID).await;
    service
        .wait_until("the link is up", |service| {
            service.connections.values().any(|c| c.role.is_link())
        })
        .await;
    (service, link, listener)
}

#[test]
fn publishes_reach_every_matching_subscription_with_its_id() {
    run(async {
        let service = TestService::start(GatewayConfig::default());
        let (_, mut subscriber) = service.client("sub").await;
        let (_, mut publisher) = service.client("pub").await;
        subscriber.send(&subscribe(7, "A.*"), &Message::new()).await;
        subscriber.send(&subscribe(9, "A.B"), &Message::new()).await;
        sync(&mut subscriber).await;
        publisher
            .send(
                &Header::send_message("A.B"),
                &Message::new().add_i32("n", 1),
            )
            .await;
        let mut ids = vec![
            subscriber
                .expect(Action::SendMessage)
                .await
                .header()
                .subscription_id,
            subscriber
                .expect(Action::SendMessage)
                .await
                .header()
                .subscription_id,
        ];
        ids.sort();
        assert_eq!(ids, vec![7, 9]);
        service.stop().await;
    });
}

#[test]
fn interest_reaches_the_peer_once_per_pattern_and_leaves_with_the_last_holder() {
    run(async {
        let (service, mut link, _listener) = meshed(GatewayConfig::default()).await;
        let (_, mut first) = service.client("first").await;
        let (_, mut second) = service.client("second").await;
        first.send(&subscribe(1, "ORDERS.>"), &Message::new()).await;
        second
            .send(&subscribe(1, "ORDERS.>"), &Message::new())
            .await;
        sync(&mut first).await;
        sync(&mut second).await;
        let subscribed = link.expect(Action::Subscribe).await;
        assert_eq!(subscribed.header().subject, b"ORDERS.>");
        let link_id = subscribed.header().subscription_id;

        // The first holder disconnects: nothing for the peer.
        first
            .send(&Header::new(Action::Disconnect), &Message::new())
            .await;
        first.expect_closed().await;
        assert_eq!(service.service.borrow().mesh.interest_count(b"ORDERS.>"), 1);
        // The last one unsubscribes: UNSUBSCRIBE with the same id.
        second.send(&unsubscribe(1), &Message::new()).await;
        let unsubscribed = link.expect(Action::Unsubscribe).await;
        assert_eq!(unsubscribed.header().subscription_id, link_id);
        assert_eq!(unsubscribed.header().subject, b"ORDERS.>");
        service.stop().await;
    });
}

/// Issue #11, bug 1: output queued while the flush set is being drained — here the UNSUBSCRIBE
/// for a peer when a slow consumer that held the last interest in a pattern is cut off — must be
/// written by that same drain. (It was lost: the link kept the bytes until some later batch
/// happened to touch it.)
#[test]
fn issue_11_interest_withdrawn_by_a_slow_consumer_cut_off_reaches_the_peer() {
    run(async {
        let config = small_bounds();
        let (service, mut link, _listener) = meshed(config).await;
        // The slow consumer: the gateway's end sends into a small buffer, the test never reads.
        let (slow_key, mut slow) = service.client_with("slow", Some(4096)).await;
        slow.send(&subscribe(1, "FLOOD"), &Message::new()).await;
        sync(&mut slow).await;
        assert_eq!(
            link.expect(Action::Subscribe).await.header().subject,
            b"FLOOD"
        );

        let (_, mut publisher) = service.client("publisher").await;
        let payload = vec![0x5a; 8 * 1024];
        let message = Message::new().add_blob("p", payload);
        let mut batch = Vec::new();
        for _ in 0..64 {
            batch.extend(crate::service::test_harness::frame(
                &Header::send_message("FLOOD"),
                &message,
            ));
        }
        // Publish until the slow consumer is cut off.
        while service.service.borrow().connections.contains_key(slow_key) {
            publisher.send_bytes(&batch).await;
        }
        assert_eq!(service.service.borrow().counters.slow_consumers, 1);
        // Nothing else happens in the service from now on; the UNSUBSCRIBE must arrive anyway.
        let frame = link
            .try_next_frame(Duration::from_secs(5))
            .await
            .expect("the UNSUBSCRIBE queued during the flush is written");
        assert_eq!(frame.action(), Some(Action::Unsubscribe));
        assert_eq!(frame.header().subject, b"FLOOD");
        assert!(service.service.borrow().router.flush.is_empty());
        service.stop().await;
    });
}

#[test]
fn a_slow_consumer_is_cut_off_with_an_error_and_others_get_everything() {
    run(async {
        let config = small_bounds();
        let service = TestService::start(config);
        let (slow_key, mut slow) = service.client_with("slow", Some(4096)).await;
        let (_, mut healthy) = service.client("healthy").await;
        slow.send(&subscribe(1, "FLOOD"), &Message::new()).await;
        healthy.send(&subscribe(1, "FLOOD"), &Message::new()).await;
        sync(&mut slow).await;
        sync(&mut healthy).await;
        let (_, mut publisher) = service.client("publisher").await;
        let payload = vec![0x5a; 8 * 1024];
        let mut sent = 0;
        while service.service.borrow().connections.contains_key(slow_key) {
            publisher
                .send(
                    &Header::send_message("FLOOD"),
                    &Message::new()
                        .add_i32("n", sent)
                        .add_blob("p", payload.clone()),
                )
                .await;
            sent += 1;
            // The healthy subscriber keeps up.
            let frame = healthy.expect(Action::SendMessage).await;
            assert_eq!(frame.message().unwrap().get_i32("n").unwrap(), sent - 1);
        }
        assert!(
            sent > 16,
            "the bound is 128 KiB: {sent} frames of 8 KiB passed it"
        );
        {
            let state = service.service.borrow();
            assert_eq!(state.counters.slow_consumers, 1);
            assert!(state.counters.dropped_frames > 0);
        }
        // The slow one's stream ends with ERROR SLOW_CONSUMER (after what it was already sent).
        let mut last = None;
        while let Some(frame) = slow.try_next_frame(Duration::from_secs(5)).await {
            last = Some(frame);
        }
        let last = last.expect("frames");
        assert_eq!(last.action(), Some(Action::Error));
        assert_eq!(
            last.message().unwrap().get_string("code").unwrap(),
            "SLOW_CONSUMER"
        );
        service.stop().await;
    });
}

#[test]
fn a_mesh_flush_is_answered_only_after_the_link_confirms() {
    run(async {
        let (service, mut link, _listener) = meshed(GatewayConfig::default()).await;
        let (_, mut client) = service.client("client").await;
        client.send(&subscribe(1, "A"), &Message::new()).await;
        client
            .send(
                &Header::new(Action::Ping),
                &Message::new().add_bool("mesh", true).add_i32("k", 5),
            )
            .await;
        // The peer gets the SUBSCRIBE, then a PING behind it.
        assert_eq!(link.expect(Action::Subscribe).await.header().subject, b"A");
        let ping = link.expect(Action::Ping).await;
        assert!(
            client
                .try_next_frame(Duration::from_millis(200))
                .await
                .is_none(),
            "no PONG before the link confirms"
        );
        link.send(&Header::new(Action::Pong), &ping.message().unwrap())
            .await;
        let pong = client.expect(Action::Pong).await;
        assert_eq!(pong.message().unwrap().get_i32("k").unwrap(), 5);
        service.stop().await;
    });
}

/// Connections are named by generational keys: a mesh flush pending for a client that left is
/// not answered to the client that took its slot.
#[test]
fn a_stale_key_never_reaches_a_newer_connection_in_the_same_slot() {
    run(async {
        let (service, mut link, _listener) = meshed(GatewayConfig::default()).await;
        let (first_key, mut first) = service.client("first").await;
        first
            .send(
                &Header::new(Action::Ping),
                &Message::new().add_bool("mesh", true),
            )
            .await;
        let ping = link.expect(Action::Ping).await;
        first
            .send(&Header::new(Action::Disconnect), &Message::new())
            .await;
        first.expect_closed().await;
        let (second_key, mut second) = service.client("second").await;
        assert_ne!(first_key, second_key);
        // The slot was reused (slot maps reuse the freed slot first).
        assert_eq!(
            format!("{first_key:?}").split('v').next(),
            format!("{second_key:?}").split('v').next()
        );
        link.send(&Header::new(Action::Pong), &ping.message().unwrap())
            .await;
        sync(&mut second).await;
        assert!(
            second
                .try_next_frame(Duration::from_millis(100))
                .await
                .is_none(),
            "the PONG meant for the first client must not reach the second"
        );
        assert_eq!(service.service.borrow().mesh.pending_flushes(), 0);
        service.stop().await;
    });
}

#[test]
fn peers_messages_go_to_local_clients_only() {
    run(async {
        let service = TestService::start(GatewayConfig::default());
        let (_, mut accepted) = service.accepted_link(PEER_ID).await;
        let (_, mut other_peer) = service
            .accepted_link("0000000000000000000000000000000e")
            .await;
        let (_, mut local) = service.client("local").await;
        accepted.send(&subscribe(1, "X"), &Message::new()).await;
        other_peer.send(&subscribe(1, "X"), &Message::new()).await;
        local.send(&subscribe(1, "X"), &Message::new()).await;
        sync(&mut local).await;
        // Peers' subscriptions are registered once the link's frames are processed.
        service
            .wait_until("both peers' interest is registered", |service| {
                service.router.subscriptions() == 3
            })
            .await;
        // From a peer: to the local client only, never on to the other peer.
        accepted
            .send(
                &Header::send_message("X"),
                &Message::new().add_i32("from", 1),
            )
            .await;
        assert_eq!(
            local
                .expect(Action::SendMessage)
                .await
                .message()
                .unwrap()
                .get_i32("from")
                .unwrap(),
            1
        );
        // From the local client: one copy to each peer.
        local
            .send(
                &Header::send_message("X"),
                &Message::new().add_i32("from", 2),
            )
            .await;
        let to_other = other_peer.expect(Action::SendMessage).await;
        assert_eq!(to_other.header().subscription_id, 0);
        assert_eq!(to_other.message().unwrap().get_i32("from").unwrap(), 2);
        assert_eq!(
            accepted
                .expect(Action::SendMessage)
                .await
                .message()
                .unwrap()
                .get_i32("from")
                .unwrap(),
            2
        );
        service.stop().await;
    });
}

#[test]
fn discovered_peers_are_dialled_get_interest_and_are_dropped_after_the_grace_period() {
    use crate::mesh::{DiscoveryReport, PeerSource};
    run(async {
        let listener = FakePeerListener::bind().await;
        let mut config = GatewayConfig::default();
        config.discovery.grace = Duration::from_millis(300);
        config.meshes = vec![MeshConfig {
            service: SERVICE.into(),
            etcd: true,
            ..MeshConfig::default()
        }];
        let service = TestService::start(config);
        let (_, mut client) = service.client("sub").await;
        client.send(&subscribe(1, "FOUND.>"), &Message::new()).await;
        sync(&mut client).await;

        service
            .service
            .borrow_mut()
            .discovered(DiscoveryReport::Peers(
                PeerSource::Etcd,
                vec![listener.address()],
            ));
        let mut link = listener.accept(PEER_ID).await;
        assert_eq!(
            link.expect(Action::Subscribe).await.header().subject,
            b"FOUND.>",
            "the new link gets the interest"
        );
        service
            .wait_until("the link is up", |service| {
                service.connections.values().any(|c| c.role.is_link())
            })
            .await;

        let vanished = std::time::Instant::now();
        service
            .service
            .borrow_mut()
            .discovered(DiscoveryReport::Peers(PeerSource::Etcd, Vec::new()));
        link.expect_closed().await;
        assert!(
            vanished.elapsed() >= Duration::from_millis(300),
            "kept for the grace period"
        );
        service
            .wait_until("no link and no dialler", |service| {
                service.mesh.dialers().next().is_none()
                    && !service.connections.values().any(|c| c.role.is_link())
            })
            .await;
        // Nobody dials again.
        assert!(
            tokio::time::timeout(Duration::from_millis(500), listener.accept(PEER_ID))
                .await
                .is_err()
        );
        service.stop().await;
    });
}
