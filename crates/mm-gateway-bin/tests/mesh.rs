//! The mesh (SPEC §8): three gateways on loopback, raw clients, mesh-wide flush as the
//! synchronisation point.

use std::time::Duration;

use mm_testkit::mesh::{link_counts, links, peers};
use mm_testkit::{MeshProcesses, RawClient, wait_until};
use mm_wire::{Action, Header, Message, encode_frame};

const SERVICE: &str = "VULCAN";
const LINK_PATIENCE: Duration = Duration::from_secs(20);

fn mesh(count: usize) -> MeshProcesses {
    let mesh = MeshProcesses::start(count, SERVICE, "");
    assert!(
        mesh.wait_fully_linked(LINK_PATIENCE),
        "mesh did not link up"
    );
    mesh
}

fn number(frame: &mm_wire::Frame) -> i32 {
    frame.message().unwrap().get_i32("#").unwrap()
}

/// Frames a client has received before a flush, in order.
fn drain(client: &mut RawClient) -> Vec<mm_wire::Frame> {
    client.flush();
    let mut frames = Vec::new();
    while let Some(frame) = client.recv(Duration::ZERO) {
        if frame.action() != Some(Action::Ping) {
            frames.push(frame);
        }
    }
    frames
}

/// Frames sent on the link from gateway `from` to the gateway named `to_name`, as `from` counts
/// them: the accepted link of `to_name` carries `from`'s messages to it.
fn frames_to(client: &mut RawClient, to_name: &str) -> u64 {
    let stats = client.stats(0xff00);
    links(&stats)
        .into_iter()
        .filter(|link| {
            link.get_string("direction") == Ok("accepted") && link.get_string("name") == Ok(to_name)
        })
        .map(|link| link.get_u64("frames_out").unwrap())
        .sum()
}

#[test]
fn pub_sub_both_ways_and_no_loops() {
    let mesh = mesh(3);
    let mut subscribers: Vec<RawClient> = (0..3).map(|i| mesh.client(i)).collect();
    for subscriber in &mut subscribers {
        subscriber.subscribe(1, "MESH.>");
        subscriber.mesh_flush();
    }
    for publisher_index in 0..3 {
        let mut publisher = mesh.client(publisher_index);
        publisher.publish(
            "MESH.hello",
            "",
            &Message::new().add_i32("#", publisher_index as i32),
        );
        for subscriber in &mut subscribers {
            let frame = subscriber.expect_action(Action::SendMessage);
            assert_eq!(number(&frame), publisher_index as i32);
            assert_eq!(frame.subscription_id(), 1);
        }
    }
    // Exactly one copy each: nothing relayed, nothing looped.
    for subscriber in &mut subscribers {
        assert!(drain(subscriber).is_empty());
    }
}

#[test]
fn wildcards_never_cause_duplicates_and_cross_the_link_once() {
    let mesh = mesh(3);
    let mut remote = mesh.client(0);
    remote.subscribe(1, "A.B");
    remote.subscribe(2, "A.*");
    remote.subscribe(3, "A.>");
    remote.mesh_flush();
    let mut publisher = mesh.client(1);
    let before = frames_to(&mut publisher, "gw1");
    publisher.publish("A.B", "", &Message::new().add_i32("#", 5));
    publisher.flush();
    let mut ids: Vec<u32> = (0..3)
        .map(|_| remote.expect_action(Action::SendMessage).subscription_id())
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3], "one frame per local subscription");
    assert!(drain(&mut remote).is_empty());
    assert_eq!(
        frames_to(&mut publisher, "gw1") - before,
        1,
        "one frame on the link"
    );
}

#[test]
fn request_reply_across_gateways_and_no_responders_from_peer_interest() {
    let mesh = mesh(3);
    let mut responder = mesh.client(2);
    responder.subscribe(1, "Service.Add");
    responder.mesh_flush();
    let mut requester = mesh.client(0);
    requester.subscribe(7, "_INBOX.req0.*");
    requester.mesh_flush();
    requester.publish(
        "Service.Add",
        "_INBOX.req0.1",
        &Message::new().add_f64("A", 2.0),
    );
    let request = responder.expect_action(Action::SendMessage);
    let reply_to = String::from_utf8(request.reply_subject().to_vec()).unwrap();
    responder.publish(&reply_to, "", &Message::new().add_f64("sum", 4.0));
    let reply = requester.expect_action(Action::SendMessage);
    assert_eq!(reply.subscription_id(), 7);
    assert_eq!(reply.message().unwrap().get_f64("sum"), Ok(4.0));
    // Nobody anywhere: NO_RESPONDERS at once.
    requester.publish("Service.Missing", "_INBOX.req0.2", &Message::new());
    assert_eq!(
        requester.expect_action(Action::NoResponders).subject(),
        b"_INBOX.req0.2"
    );
}

#[test]
fn five_thousand_messages_in_order_none_lost() {
    let mesh = mesh(3);
    let mut subscriber = mesh.client(2);
    subscriber.subscribe(1, "SEQ");
    subscriber.mesh_flush();
    let mut publisher = mesh.client(0);
    let mut burst = Vec::new();
    for n in 0..5_000 {
        encode_frame(
            &mut burst,
            &Header::send_message("SEQ"),
            &Message::new().add_i32("#", n),
        )
        .unwrap();
    }
    publisher.send_bytes(&burst);
    for n in 0..5_000 {
        assert_eq!(number(&subscriber.expect_action(Action::SendMessage)), n);
    }
}

#[test]
fn unsubscribe_and_disconnect_withdraw_interest() {
    let mesh = mesh(2);
    let mut observer = mesh.client(1);
    let accepted_subscriptions = |client: &mut RawClient| -> u32 {
        let stats = client.stats(0xfe00);
        links(&stats)
            .into_iter()
            .filter(|link| link.get_string("direction") == Ok("accepted"))
            .map(|link| link.get_u32("subscriptions").unwrap())
            .sum()
    };
    // No client of gw1's peer holds anything yet (the clients that checked the links are gone;
    // stats answers may lag by up to 250 ms, so poll).
    let baseline = 0;
    assert!(wait_until(Duration::from_secs(5), || {
        accepted_subscriptions(&mut observer) == baseline
    }));
    let mut first = mesh.client(0);
    first.subscribe(1, "INTEREST.x");
    first.mesh_flush();
    let mut second = mesh.client(0);
    second.subscribe(1, "INTEREST.x");
    second.subscribe(2, "INTEREST.y");
    second.mesh_flush();
    // Counted over local clients: one pattern each, whatever the number of holders. (Stats
    // answers are reused for up to 250 ms: poll.)
    assert!(wait_until(Duration::from_secs(5), || {
        accepted_subscriptions(&mut observer) == baseline + 2
    }));
    // A request from gw2 is answered by nobody yet but finds interest: no NO_RESPONDERS.
    observer.publish("INTEREST.y", "_INBOX.obs.1", &Message::new());
    observer.assert_nothing_pending();
    second.expect_action(Action::SendMessage);

    second.unsubscribe(2);
    second.mesh_flush();
    assert!(wait_until(Duration::from_secs(5), || {
        accepted_subscriptions(&mut observer) == baseline + 1
    }));
    observer.publish("INTEREST.y", "_INBOX.obs.2", &Message::new());
    observer.expect_action(Action::NoResponders);

    // `first` still holds INTEREST.x: the pattern stays until the last holder goes.
    drop(second);
    first.mesh_flush();
    assert_eq!(accepted_subscriptions(&mut observer), baseline + 1);
    first.disconnect();
    assert!(first.wait_closed(Duration::from_secs(5)).0);
    assert!(wait_until(Duration::from_secs(5), || {
        accepted_subscriptions(&mut observer) == baseline
    }));
    observer.publish("INTEREST.x", "_INBOX.obs.3", &Message::new());
    observer.expect_action(Action::NoResponders);
}

#[test]
fn killed_peer_restarts_and_interest_is_restored_both_ways() {
    let mut mesh = mesh(3);
    let mut at_first = mesh.client(0);
    at_first.subscribe(1, "RESTART.>");
    at_first.mesh_flush();

    mesh.gateways[1].kill();
    // The survivors notice and hold nothing toward the dead peer.
    let mut observer = mesh.client(0);
    assert!(wait_until(LINK_PATIENCE, || {
        link_counts(&observer.stats(0xfd00)) == (1, 1)
    }));
    // Publishing meanwhile queues nothing for the dead peer.
    observer.publish("RESTART.meanwhile", "", &Message::new().add_i32("#", 0));
    assert_eq!(number(&at_first.expect_action(Action::SendMessage)), 0);

    mesh.restart(1);
    assert!(mesh.wait_fully_linked(LINK_PATIENCE), "links restored");
    // gw1's interest reached the restarted gw2 (replayed on its accepted link)...
    let mut at_second = mesh.client(1);
    at_second.publish("RESTART.from2", "", &Message::new().add_i32("#", 2));
    assert_eq!(number(&at_first.expect_action(Action::SendMessage)), 2);
    // ...and interest from the restarted gateway reached the others.
    at_second.subscribe(1, "BACK.>");
    at_second.mesh_flush();
    let mut at_third = mesh.client(2);
    at_third.publish("BACK.again", "", &Message::new().add_i32("#", 3));
    assert_eq!(number(&at_second.expect_action(Action::SendMessage)), 3);
    // No duplicates.
    assert!(drain(&mut at_first).is_empty());
    assert!(drain(&mut at_second).is_empty());
}

#[test]
fn a_peer_that_never_comes_up_costs_only_redials() {
    let port = mm_testkit::free_port();
    let config = mm_testkit::write_config(
        "deadpeer",
        &format!(
            r#"{{"StartupMeshes": [{{"Name": "{SERVICE}", "MeshGateways": ["127.0.0.1:{port}"]}}],
                "RedialMaxMs": 200}}"#
        ),
    );
    let gateway = mm_testkit::GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let mut client = RawClient::mm2(gateway.address(), SERVICE);
    client.subscribe(1, "X");
    client.mesh_flush();
    client.publish("X", "", &Message::new());
    client.expect_action(Action::SendMessage);
    let dials = |client: &mut RawClient| peers(&client.stats(0xfc00))[0].get_u64("dials").unwrap();
    let first = dials(&mut client);
    assert!(wait_until(Duration::from_secs(10), || dials(&mut client) >= first + 3));
    let stats = client.stats(0xfc01);
    assert_eq!(peers(&stats)[0].get_string("state"), Ok("backoff"));
    assert_eq!(link_counts(&stats), (0, 0));
}

#[test]
fn self_and_aliases_are_recognised_by_gateway_id() {
    // Two gateways; the configuration lists gw2 twice (127.0.0.1 and localhost) and gw1 itself.
    let mesh = MeshProcesses::start(2, SERVICE, "");
    assert!(mesh.wait_fully_linked(LINK_PATIENCE));
    let alias_config = mm_testkit::write_config(
        "alias",
        &format!(
            r#"{{"StartupMeshes": [{{"Name": "{SERVICE}", "MeshGateways":
                ["127.0.0.1:{p}", "localhost:{p}", "127.0.0.1:{me}", "localhost:{me}"]}}],
                "RedialMaxMs": 200}}"#,
            p = mesh.ports[1],
            me = "PORT",
        ),
    );
    // Start a third gateway on a port chosen now, and put that port into its own config.
    let port = mm_testkit::free_port();
    let text = std::fs::read_to_string(&alias_config)
        .unwrap()
        .replace("PORT", &port.to_string());
    std::fs::write(&alias_config, text).unwrap();
    let third = mm_testkit::GatewayProcess::start_exact(&[
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--name",
        "gw3",
        "--config",
        alias_config.to_str().unwrap(),
    ])
    .unwrap();
    let mut client = RawClient::mm2(third.address(), SERVICE);
    assert!(wait_until(LINK_PATIENCE, || {
        let stats = client.stats(0xfb00);
        let states: Vec<String> = peers(&stats)
            .iter()
            .map(|peer| peer.get_string("state").unwrap().to_owned())
            .collect();
        states.iter().filter(|state| *state == "self").count() == 2
            && states.iter().filter(|state| *state == "up").count() == 1
            && states.iter().filter(|state| *state == "suppressed").count() == 1
    }));
    // Stable: no flapping between the aliases. Watch for 1.5 s (several 200 ms redial periods):
    // no address dials again.
    let dials = |client: &mut RawClient| -> u64 {
        peers(&client.stats(0xfb01))
            .iter()
            .map(|peer| peer.get_u64("dials").unwrap())
            .sum()
    };
    let dials_before = dials(&mut client);
    let redialled = wait_until(Duration::from_millis(1500), || {
        dials(&mut client) != dials_before
    });
    let stats = client.stats(0xfb02);
    assert!(!redialled, "{stats:#}");
    assert_eq!(link_counts(&stats).0, 1, "one dialled link to gw2");
    // gw3 does not list gw1, but gw2 is one-sided towards gw3: messages still flow gw2 -> gw3.
    let mut at_second = mesh.client(1);
    client.subscribe(1, "ALIAS");
    client.mesh_flush();
    at_second.publish("ALIAS", "", &Message::new().add_i32("#", 9));
    assert_eq!(number(&client.expect_action(Action::SendMessage)), 9);
    assert!(mesh.gateways[1].wait_for_log("one-sided mesh peer", Duration::from_secs(15)));
}

#[test]
fn links_heartbeat_and_a_frozen_peer_is_detected() {
    let mesh = MeshProcesses::start(2, SERVICE, r#""HeartbeatMs": 200"#);
    assert!(mesh.wait_fully_linked(LINK_PATIENCE));
    let mut observer = mesh.client(0);
    // Idle links stay up: heartbeats flow both ways.
    let frames_in_before: u64 = links(&observer.stats(0xfa00))
        .iter()
        .map(|link| link.get_u64("frames_in").unwrap())
        .sum();
    // Watch for 1 s (five heartbeat intervals): the links never drop.
    let dropped = wait_until(Duration::from_millis(1000), || {
        link_counts(&observer.stats(0xfa01)) != (1, 1)
    });
    assert!(!dropped, "links survive idle periods");
    let stats = observer.stats(0xfa01);
    let frames_in_after: u64 = links(&stats)
        .iter()
        .map(|link| link.get_u64("frames_in").unwrap())
        .sum();
    assert!(
        frames_in_after >= frames_in_before + 4,
        "heartbeat PINGs/PONGs arrived"
    );
    // A frozen peer stops answering: both links to it are declared dead.
    mesh.gateways[1].pause();
    assert!(wait_until(Duration::from_secs(10), || {
        link_counts(&observer.stats(0xfa02)) == (0, 0)
    }));
    assert!(mesh.gateways[0].wait_for_log("heartbeat timeout", Duration::from_secs(5)));
    mesh.gateways[1].resume();
    assert!(mesh.wait_fully_linked(LINK_PATIENCE), "links come back");
}

#[test]
fn a_link_past_its_bound_is_closed_counted_and_redialled() {
    let mesh = MeshProcesses::start(
        2,
        SERVICE,
        r#""MaxFrameBytes": 65536, "LinkMaxPendingBytes": 1048576, "HeartbeatMs": 0"#,
    );
    assert!(mesh.wait_fully_linked(LINK_PATIENCE));
    let mut receiver = mesh.client(0);
    receiver.subscribe(1, "FLOOD");
    receiver.mesh_flush();
    // Freeze gw1: gw2's link to it stops draining.
    mesh.gateways[0].pause();
    let mut publisher = mesh.client(1);
    let payload = vec![7u8; 4096];
    let mut burst = Vec::new();
    for n in 0..4_000 {
        encode_frame(
            &mut burst,
            &Header::send_message("FLOOD"),
            &Message::new()
                .add_i32("#", n)
                .add_blob("p", payload.clone()),
        )
        .unwrap();
    }
    publisher.send_bytes(&burst);
    assert!(wait_until(Duration::from_secs(10), || {
        publisher.stats(0xf900).get_u64("slow_links") == Ok(1)
    }));
    let stats = publisher.stats(0xf901);
    assert!(stats.get_u64("dropped_frames").unwrap() > 0, "{stats:#}");
    mesh.gateways[0].resume();
    // gw1 redials and replays its interest: messages flow again.
    assert!(mesh.wait_fully_linked(LINK_PATIENCE));
    receiver.mesh_flush();
    let mut seen_after = false;
    publisher.publish("FLOOD", "", &Message::new().add_i32("#", -1));
    while let Some(frame) = receiver.recv(Duration::from_secs(10)) {
        if frame.action() == Some(Action::SendMessage) && number(&frame) == -1 {
            seen_after = true;
            break;
        }
    }
    assert!(seen_after, "a message published after the redial arrives");
}

/// A fake mesh peer: accepts a gateway's dial and answers its CONNECT_MESH_PEER with an MM/2 ACK.
struct FakePeer {
    stream: std::net::TcpStream,
    decoder: mm_wire::FrameDecoder,
}

impl FakePeer {
    fn accept(listener: &std::net::TcpListener) -> FakePeer {
        let (stream, _) = listener.accept().expect("the gateway dials");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut peer = FakePeer {
            stream,
            decoder: mm_wire::FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME),
        };
        let hello = peer
            .next(Duration::from_secs(10))
            .expect("CONNECT_MESH_PEER");
        assert_eq!(hello.action(), Some(Action::ConnectMeshPeer));
        let ack = mm_wire::handshake::AckInfo {
            protocol_version: mm_wire::handshake::PROTOCOL_VERSION,
            gateway_name: "fake-peer".into(),
            gateway_id: Some("0000000000000000000000000000fa4e".into()),
            max_frame: mm_wire::DEFAULT_MAX_FRAME,
            heartbeat_ms: 0,
            inbox_prefix: None,
            mesh_auth: None,
        };
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, &Header::new(Action::Ack), &ack.mesh_message()).unwrap();
        std::io::Write::write_all(&mut peer.stream, &bytes).unwrap();
        peer
    }

    /// The next frame within `patience`, if any.
    fn next(&mut self, patience: Duration) -> Option<mm_wire::Frame> {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames") {
                return Some(frame);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            let mut chunk = [0u8; 65536];
            match std::io::Read::read(&mut self.stream, &mut chunk) {
                Ok(0) => return None,
                Ok(read) => self.decoder.buffer_mut().extend_from_slice(&chunk[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(error) => panic!("read failed: {error}"),
            }
        }
    }
}

/// Issue #11, bug 1: the UNSUBSCRIBE a gateway owes its peers when it cuts off a slow consumer
/// that held the last interest in a pattern is queued while output is being flushed. It must
/// still be written (it stayed queued forever: nothing else touched the link).
#[test]
fn issue_11_interest_withdrawn_by_a_slow_consumer_cut_off_reaches_the_peer() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = mm_testkit::write_config(
        "issue-11",
        &format!(
            r#"{{"MaxFrameBytes": 65536, "MaxPendingBytes": 131072, "HeartbeatMs": 0,
                "StartupMeshes": [{{"Name": "{SERVICE}", "MeshGateways": ["{}"]}}]}}"#,
            listener.local_addr().unwrap()
        ),
    );
    let gateway = mm_testkit::GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let mut peer = FakePeer::accept(&listener);

    let mut slow = RawClient::mm2(gateway.address(), SERVICE);
    slow.subscribe(1, "FLOOD");
    slow.flush();
    let subscribed = peer.next(Duration::from_secs(10)).expect("SUBSCRIBE");
    assert_eq!(subscribed.action(), Some(Action::Subscribe));
    assert_eq!(subscribed.header().subject, b"FLOOD");

    // Flood the slow consumer (which never reads again) until it is cut off.
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    let mut burst = Vec::new();
    for _ in 0..64 {
        encode_frame(
            &mut burst,
            &Header::send_message("FLOOD"),
            &Message::new().add_blob("p", vec![0x5a; 8192]),
        )
        .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            publisher.send_bytes(&burst);
            publisher.stats(0xf800).get_u64("slow_consumers") == Ok(1)
        }),
        "the slow consumer is cut off"
    );
    // Nothing else happens on the link now; the UNSUBSCRIBE must arrive anyway. (The
    // publisher's stats requests add and remove interest in its inbox: skipped.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let frame = peer.next(left).expect("the UNSUBSCRIBE reaches the peer");
        if frame.header().subject == b"FLOOD" {
            assert_eq!(frame.action(), Some(Action::Unsubscribe));
            break;
        }
    }
}
