//! Routing end to end (SPEC §6): real `mm-gateway` processes, raw frames.

use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient};
use mm_wire::{Action, Header, Message, encode_frame, encode_frame_with_body};

const SERVICE: &str = "TEST";

fn message(n: i32) -> Message {
    Message::new().add_i32("#", n)
}

/// Receives one SEND_MESSAGE and returns (subscription id, subject, reply subject, `#`).
fn receive(client: &mut RawClient) -> (u32, String, String, i32) {
    let frame = client.expect_action(Action::SendMessage);
    let body = frame.message().expect("body decodes");
    (
        frame.subscription_id(),
        String::from_utf8(frame.subject().to_vec()).unwrap(),
        String::from_utf8(frame.reply_subject().to_vec()).unwrap(),
        body.get_i32("#").unwrap_or(-1),
    )
}

#[test]
fn wildcard_semantics_match_the_spec() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    let patterns = ["A.B", "A.*", "A.>", "*.B", ">", "A.B.C", "*", "A.*.C"];
    for (index, pattern) in patterns.iter().enumerate() {
        subscriber.subscribe(index as u32 + 1, pattern);
    }
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    // (subject, ids of the patterns that match it)
    let cases: &[(&str, &[u32])] = &[
        ("A.B", &[1, 2, 3, 4, 5]),
        ("A.B.C", &[3, 5, 6, 8]),
        ("A", &[5, 7]),
        ("X.B", &[4, 5]),
        ("A.X.C", &[3, 5, 8]),
        ("B.A", &[5]),
    ];
    for (n, (subject, expected)) in cases.iter().enumerate() {
        publisher.publish(subject, "", &message(n as i32));
        publisher.flush();
        subscriber.flush();
        let mut ids = Vec::new();
        while let Some(frame) = subscriber.recv(Duration::ZERO) {
            assert_eq!(frame.action(), Some(Action::SendMessage));
            assert_eq!(frame.subject(), subject.as_bytes());
            assert_eq!(frame.message().unwrap().get_i32("#"), Ok(n as i32));
            ids.push(frame.subscription_id());
        }
        ids.sort();
        assert_eq!(ids, *expected, "subject {subject}");
    }
}

#[test]
fn one_frame_per_matching_subscription_with_patched_id_and_identical_bytes() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(10, "A.B");
    subscriber.subscribe(11, "A.*");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    let mut sent = Vec::new();
    encode_frame(
        &mut sent,
        &Header::send_message("A.B").with_reply_subject("R.X"),
        &message(7),
    )
    .unwrap();
    publisher.send_bytes(&sent);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let frame = subscriber.expect_action(Action::SendMessage);
        // Byte for byte the publisher's frame, except bytes 4..7.
        assert_eq!(&frame.as_bytes()[..4], &sent[..4]);
        assert_eq!(&frame.as_bytes()[8..], &sent[8..]);
        ids.push(frame.subscription_id());
    }
    ids.sort();
    assert_eq!(ids, [10, 11]);
    subscriber.assert_nothing_pending();
}

#[test]
fn unsubscribe_by_id_stops_delivery() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "A.B");
    subscriber.subscribe(2, "A.B");
    subscriber.unsubscribe(1);
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    publisher.publish("A.B", "", &message(1));
    assert_eq!(receive(&mut subscriber).0, 2);
    subscriber.assert_nothing_pending();
}

#[test]
fn mm1_unsubscribe_by_subject_removes_the_oldest_with_that_pattern() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm1(gateway.address(), SERVICE);
    subscriber.subscribe(5, "A.B");
    subscriber.subscribe(3, "A.B");
    // Unknown id 99 with a subject: the oldest `A.B` (id 5) goes.
    subscriber.send(
        &Header::new(Action::Unsubscribe)
            .with_subscription_id(99)
            .with_subject("A.B"),
        &Message::new(),
    );
    // MM/1 has no PING: a publish to a private subject serves as the flush.
    subscriber.subscribe(7, "SYNC.me");
    subscriber.publish("SYNC.me", "", &message(0));
    assert_eq!(receive(&mut subscriber).0, 7);
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    publisher.publish("A.B", "", &message(1));
    publisher.flush();
    assert_eq!(receive(&mut subscriber).0, 3);
}

#[test]
fn publisher_receives_its_own_messages() {
    let gateway = GatewayProcess::start(&[]);
    let mut client = RawClient::mm2(gateway.address(), SERVICE);
    client.subscribe(1, "ME.>");
    client.publish("ME.too", "", &message(3));
    assert_eq!(receive(&mut client), (1, "ME.too".into(), String::new(), 3));
}

#[test]
fn per_publisher_order_is_preserved() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "ORDER.*");
    subscriber.flush();
    let mut first = RawClient::mm2(gateway.address(), SERVICE);
    let mut second = RawClient::mm2(gateway.address(), SERVICE);
    let mut burst_a = Vec::new();
    let mut burst_b = Vec::new();
    for n in 0..5_000 {
        encode_frame(&mut burst_a, &Header::send_message("ORDER.a"), &message(n)).unwrap();
        encode_frame(&mut burst_b, &Header::send_message("ORDER.b"), &message(n)).unwrap();
    }
    first.send_bytes(&burst_a);
    second.send_bytes(&burst_b);
    let (mut next_a, mut next_b) = (0, 0);
    while next_a < 5_000 || next_b < 5_000 {
        let (_, subject, _, n) = receive(&mut subscriber);
        match subject.as_str() {
            "ORDER.a" => {
                assert_eq!(n, next_a);
                next_a += 1;
            }
            "ORDER.b" => {
                assert_eq!(n, next_b);
                next_b += 1;
            }
            other => panic!("unexpected subject {other}"),
        }
    }
}

#[test]
fn services_are_isolated() {
    let gateway = GatewayProcess::start(&[]);
    let mut in_a = RawClient::mm2(gateway.address(), "ALPHA");
    let mut in_b = RawClient::mm2(gateway.address(), "BETA");
    in_a.subscribe(1, "SAME.subject");
    in_b.subscribe(1, "SAME.subject");
    in_a.flush();
    in_b.flush();
    let mut publisher = RawClient::mm2(gateway.address(), "ALPHA");
    publisher.publish("SAME.subject", "", &message(1));
    publisher.flush();
    assert_eq!(receive(&mut in_a).3, 1);
    in_b.assert_nothing_pending();
}

#[test]
fn frames_pipelined_behind_connect_are_processed_in_order() {
    let gateway = GatewayProcess::start(&[]);
    let mut client = RawClient::open(gateway.address());
    let mut bytes = Vec::new();
    let connect = mm_wire::handshake::ConnectOptions::mm2("pipelined").to_message();
    encode_frame(
        &mut bytes,
        &Header::new(Action::Connect)
            .with_subject(SERVICE)
            .with_reply_subject("p"),
        &connect,
    )
    .unwrap();
    encode_frame(
        &mut bytes,
        &Header::new(Action::Subscribe)
            .with_subscription_id(4)
            .with_subject("PIPE.x"),
        &Message::new(),
    )
    .unwrap();
    for n in 0..100 {
        encode_frame(&mut bytes, &Header::send_message("PIPE.x"), &message(n)).unwrap();
    }
    encode_frame(
        &mut bytes,
        &Header::new(Action::Ping),
        &Message::new().add_i32("k", 99),
    )
    .unwrap();
    client.send_bytes(&bytes);
    client.expect_action(Action::Ack);
    for n in 0..100 {
        assert_eq!(receive(&mut client), (4, "PIPE.x".into(), String::new(), n));
    }
    let pong = client.expect_action(Action::Pong);
    assert_eq!(pong.message().unwrap().get_i32("k"), Ok(99));
}

#[test]
fn bodies_are_forwarded_untouched_even_when_malformed_or_too_deep() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, ">");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    let nest_65 = std::fs::read(format!(
        "{}/../../testdata/vectors/nest-65.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    publisher.send_bytes(&nest_65);
    let mut garbage = Vec::new();
    encode_frame_with_body(
        &mut garbage,
        &Header::send_message("GARBAGE.body"),
        b"\xff\xff\xff\xff\x01\x02 trailing junk",
    )
    .unwrap();
    publisher.send_bytes(&garbage);
    let first = subscriber.expect_action(Action::SendMessage);
    assert_eq!(&first.as_bytes()[8..], &nest_65[8..]);
    assert!(first.message().is_err());
    let second = subscriber.expect_action(Action::SendMessage);
    assert_eq!(&second.as_bytes()[8..], &garbage[8..]);
    // The publisher is still connected and fine.
    publisher.flush();
}

#[test]
fn large_frames_route_intact() {
    let gateway = GatewayProcess::start(&["--max-frame", "1048576"]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "BIG");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    assert_eq!(publisher.ack().map(|ack| ack.max_frame), Some(1_048_576));
    let payload = vec![0x5a; 1_000_000];
    publisher.publish("BIG", "", &Message::new().add_blob("p", payload.clone()));
    let frame = subscriber.expect_action(Action::SendMessage);
    assert_eq!(
        frame.message().unwrap().get_blob("p").unwrap().as_ref(),
        payload.as_slice()
    );
}

#[test]
fn disconnect_removes_subscriptions() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "GONE.>");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    // The stats request itself holds an inbox subscription while it is answered.
    let before = publisher.stats(900);
    assert_eq!(before.get_u64("subscriptions"), Ok(2));
    subscriber.disconnect();
    let (closed, _) = subscriber.wait_closed(Duration::from_secs(5));
    assert!(closed, "gateway closes after DISCONNECT");
    assert!(mm_testkit::wait_until(Duration::from_secs(5), || {
        publisher.stats(901).get_u64("subscriptions") == Ok(1)
    }));
}
