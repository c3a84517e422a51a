//! Negotiation, the misuse table (SPEC §5.2) for MM/1 and MM/2, hostile input, heartbeats.
//! Every test keeps a bystander pair of clients and checks they are unaffected.

use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient, RawClientOptions, write_config};
use mm_wire::handshake::{ConnectOptions, ErrorCode};
use mm_wire::{Action, Frame, Header, Message, encode_frame};

const SERVICE: &str = "TEST";

/// Two clients that exchange one message: proves the gateway still serves others.
struct Bystanders {
    subscriber: RawClient,
    publisher: RawClient,
    round: i32,
}

impl Bystanders {
    fn new(gateway: &GatewayProcess) -> Self {
        let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
        subscriber.subscribe(1, "BYSTANDER");
        subscriber.flush();
        Bystanders {
            subscriber,
            publisher: RawClient::mm2(gateway.address(), SERVICE),
            round: 0,
        }
    }

    fn check(&mut self) {
        self.round += 1;
        self.publisher
            .publish("BYSTANDER", "", &Message::new().add_i32("#", self.round));
        let frame = self.subscriber.expect_action(Action::SendMessage);
        assert_eq!(frame.message().unwrap().get_i32("#"), Ok(self.round));
    }
}

fn expect_error(client: &mut RawClient, code: ErrorCode) -> Frame {
    let frame = client.expect_action(Action::Error);
    let body = frame.message().unwrap();
    assert_eq!(body.get_string("code"), Ok(code.as_str()), "{body}");
    assert!(!body.get_string("text").unwrap().is_empty());
    frame
}

/// MM/1 has no PING: subscribing to a private subject and publishing to it proves everything
/// sent before was processed. Returns every frame received before the sync message.
fn mm1_sync(client: &mut RawClient, id: u32) -> Vec<Frame> {
    let subject = format!("SYNC.{id}");
    client.subscribe(id, &subject);
    client.publish(&subject, "", &Message::new());
    let mut before = Vec::new();
    loop {
        let frame = client.expect_frame();
        if frame.action() == Some(Action::SendMessage) && frame.subject() == subject.as_bytes() {
            return before;
        }
        before.push(frame);
    }
}

fn frame_bytes(header: &Header<'_>) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, header, &Message::new()).unwrap();
    bytes
}

#[test]
fn mm2_negotiation_and_ack() {
    let gateway = GatewayProcess::start(&["--name", "gw-test"]);
    let client = RawClient::mm2(gateway.address(), SERVICE);
    let ack = client.ack().expect("MM/2 ACK body");
    assert_eq!(ack.protocol_version, 2);
    assert_eq!(ack.gateway_name, "gw-test");
    assert_eq!(ack.max_frame, 64 * 1024 * 1024);
    assert_eq!(ack.heartbeat_ms, 5000);
    assert_eq!(ack.gateway_id, None, "gateway_id is for mesh links only");
}

#[test]
fn mm1_clients_get_an_empty_ack_and_nothing_mm2_only() {
    let gateway = GatewayProcess::start(&[]);
    let mut legacy = RawClient::open(gateway.address());
    let connect = std::fs::read(format!(
        "{}/../../testdata/vectors/connect-legacy.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    legacy.send_bytes(&connect);
    let ack = legacy.expect_frame();
    let expected_ack = std::fs::read(format!(
        "{}/../../testdata/vectors/ack-legacy.bin",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(
        ack.as_bytes(),
        expected_ack.as_slice(),
        "the exact legacy ACK"
    );
    // Misuse and a request nobody answers: an MM/2 client would get ERRORs and NO_RESPONDERS.
    legacy.subscribe(0, "X");
    legacy.subscribe(1, "A..B");
    legacy.subscribe(2, "Y");
    legacy.subscribe(2, "Z");
    legacy.unsubscribe(77);
    legacy.publish("bad subject", "", &Message::new());
    legacy.publish("Nobody.home", "_INBOX.legacy.1", &Message::new());
    legacy.publish("_MM.NOPE", "_INBOX.legacy.2", &Message::new());
    legacy.send_bytes(&frame_bytes(
        &Header::new(Action::Connect).with_subject(SERVICE),
    ));
    let received = mm1_sync(&mut legacy, 3);
    assert!(received.is_empty(), "MM/1 client got {received:?}");
    // The first subscription with id 2 stayed (Y), the duplicate (Z) was ignored.
    // connect-legacy.bin connects to VULCAN.
    let mut publisher = RawClient::mm2(gateway.address(), "VULCAN");
    publisher.publish("Z", "", &Message::new().add_i32("#", 1));
    publisher.publish("Y", "", &Message::new().add_i32("#", 2));
    let frame = legacy.expect_action(Action::SendMessage);
    assert_eq!(frame.subject(), b"Y");
    assert!(gateway.wait_for_log("subscription id 0", Duration::from_secs(5)));
}

#[test]
fn protocol_version_of_the_wrong_type_means_mm1_with_a_warning() {
    let gateway = GatewayProcess::start(&[]);
    let mut client = RawClient::open(gateway.address());
    client.send(
        &Header::new(Action::Connect)
            .with_subject(SERVICE)
            .with_reply_subject("odd"),
        &Message::new().add_string("protocol_version", "2"),
    );
    let ack = client.expect_action(Action::Ack);
    assert!(ack.message().unwrap().is_empty(), "MM/1 ACK");
    assert!(gateway.wait_for_log("treating the client as MM/1", Duration::from_secs(5)));
}

#[test]
fn mm2_misuse_gets_errors_and_the_connection_continues() {
    let gateway = GatewayProcess::start(&[]);
    let mut bystanders = Bystanders::new(&gateway);
    let mut client = RawClient::mm2(gateway.address(), SERVICE);

    // A second CONNECT.
    client.send_bytes(&frame_bytes(
        &Header::new(Action::Connect).with_subject(SERVICE),
    ));
    expect_error(&mut client, ErrorCode::Protocol);

    // SUBSCRIBE with id 0.
    client.subscribe(0, "A");
    expect_error(&mut client, ErrorCode::Protocol);

    // SUBSCRIBE with a live id.
    client.subscribe(5, "A");
    client.subscribe(5, "B");
    let error = expect_error(&mut client, ErrorCode::DuplicateSubscriptionId);
    assert_eq!(error.subscription_id(), 5);

    // UNSUBSCRIBE of an unknown id.
    client.unsubscribe(77);
    let error = expect_error(&mut client, ErrorCode::UnknownSubscriptionId);
    assert_eq!(error.subscription_id(), 77);

    // Invalid pattern: the ERROR names the subscription and the subject.
    client.subscribe(6, "A..B");
    let error = expect_error(&mut client, ErrorCode::InvalidSubject);
    assert_eq!(error.subscription_id(), 6);
    assert_eq!(error.subject(), b"A..B");
    assert_eq!(
        error.message().unwrap().get_string("text"),
        Ok("empty token at position 2")
    );

    // Invalid publish subject, wildcard publish subject, invalid reply subject.
    for (subject, reply, offending) in [
        ("ab*", "", "ab*"),
        ("A.*", "", "A.*"),
        ("A.B", "R..X", "R..X"),
        ("A.B", "R.>", "R.>"),
        ("A B", "", "A B"),
    ] {
        client.publish(subject, reply, &Message::new());
        let error = expect_error(&mut client, ErrorCode::InvalidSubject);
        assert_eq!(error.subject(), offending.as_bytes());
    }

    // A plain publish to _MM. and a request the gateway does not answer.
    client.publish("_MM.STATS", "", &Message::new());
    expect_error(&mut client, ErrorCode::InvalidSubject);
    client.publish("_MM.UNKNOWN", "_INBOX.x.1", &Message::new());
    expect_error(&mut client, ErrorCode::InvalidSubject);

    // Unknown actions and NONE are ignored.
    let mut unknown = frame_bytes(&Header::new(Action::None));
    let action_offset = unknown.len() - 5;
    client.send_bytes(&unknown);
    unknown[action_offset] = 200;
    client.send_bytes(&unknown);

    // Still alive, and the first subscription with id 5 stayed.
    client.assert_nothing_pending();
    bystanders.publisher.publish("A", "", &Message::new());
    assert_eq!(
        client.expect_action(Action::SendMessage).subscription_id(),
        5
    );
    bystanders.check();
}

#[test]
fn frames_before_connect_close_the_connection() {
    let gateway = GatewayProcess::start(&[]);
    let mut bystanders = Bystanders::new(&gateway);
    let mut client = RawClient::open(gateway.address());
    client.send_bytes(&frame_bytes(
        &Header::new(Action::Subscribe)
            .with_subscription_id(1)
            .with_subject("A"),
    ));
    let (closed, frames) = client.wait_closed(Duration::from_secs(5));
    assert!(closed && frames.is_empty());
    assert!(gateway.wait_for_log("frame before CONNECT", Duration::from_secs(5)));
    bystanders.check();
}

fn length_prefixed(length: i32, rest: &[u8]) -> Vec<u8> {
    let mut bytes = length.to_le_bytes().to_vec();
    bytes.extend_from_slice(rest);
    bytes
}

#[test]
fn bad_lengths_get_an_error_then_close_for_mm2() {
    let gateway = GatewayProcess::start(&["--max-frame", "65536"]);
    let mut bystanders = Bystanders::new(&gateway);
    let cases: Vec<(Vec<u8>, ErrorCode)> = vec![
        (length_prefixed(65537, &[0; 32]), ErrorCode::FrameTooLarge),
        (length_prefixed(i32::MAX, &[]), ErrorCode::FrameTooLarge),
        (length_prefixed(20, &[0; 16]), ErrorCode::Protocol),
        (length_prefixed(-1, &[]), ErrorCode::Protocol),
        (length_prefixed(0, &[]), ErrorCode::Protocol),
        // Length 30, subject length 1000: the header does not fit its frame.
        (
            length_prefixed(
                30,
                &[
                    0, 0, 0, 0, 0xe8, 0x03, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
                    15, 16, 17, 18,
                ],
            ),
            ErrorCode::Protocol,
        ),
    ];
    for (bytes, code) in cases {
        let mut client = RawClient::mm2(gateway.address(), SERVICE);
        client.send_bytes(&bytes);
        let (closed, frames) = client.wait_closed(Duration::from_secs(5));
        assert!(closed, "closed after {code}");
        let errors: Vec<_> = frames
            .iter()
            .filter(|frame| frame.action() == Some(Action::Error))
            .collect();
        assert_eq!(errors.len(), 1, "{code}: {frames:?}");
        assert_eq!(
            errors[0].message().unwrap().get_string("code"),
            Ok(code.as_str())
        );
        bystanders.check();
    }
}

#[test]
fn bad_lengths_close_mm1_connections_without_error_frames() {
    let gateway = GatewayProcess::start(&["--max-frame", "65536"]);
    let mut bystanders = Bystanders::new(&gateway);
    for bytes in [length_prefixed(70000, &[0; 8]), length_prefixed(3, &[0; 8])] {
        let mut client = RawClient::mm1(gateway.address(), SERVICE);
        client.send_bytes(&bytes);
        let (closed, frames) = client.wait_closed(Duration::from_secs(5));
        assert!(closed);
        assert!(frames.is_empty(), "MM/1 gets no ERROR: {frames:?}");
        bystanders.check();
    }
    assert!(gateway.wait_for_log("closing connection", Duration::from_secs(5)));
}

#[test]
fn garbage_and_vanishing_peers_do_not_hurt_the_gateway() {
    let gateway = GatewayProcess::start(&[]);
    let mut bystanders = Bystanders::new(&gateway);
    // Pure garbage instead of CONNECT.
    let mut client = RawClient::open(gateway.address());
    client.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(client.wait_closed(Duration::from_secs(5)).0);
    bystanders.check();
    // A peer that vanishes in the middle of a frame, and one that vanishes mid-CONNECT.
    for cut in [10usize, 30] {
        let mut client = RawClient::mm2(gateway.address(), SERVICE);
        let mut bytes = Vec::new();
        encode_frame(
            &mut bytes,
            &Header::send_message("BYSTANDER"),
            &Message::new().add_blob("p", vec![1u8; 100]),
        )
        .unwrap();
        client.send_bytes(&bytes[..cut]);
        drop(client);
        bystanders.check();
    }
    let mut half_connect = RawClient::open(gateway.address());
    half_connect.send_bytes(&[40, 0, 0, 0, 0, 0]);
    drop(half_connect);
    bystanders.check();
    // A bystander never saw a partial frame as a message.
    bystanders.subscriber.assert_nothing_pending();
}

#[test]
fn refused_services() {
    let config = write_config("refused", r#"{"AllowedServices": ["OPEN"]}"#);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let _open = RawClient::mm2(gateway.address(), "OPEN");
    // MM/2: ERROR SERVICE_REFUSED, then close.
    let mut options = RawClientOptions::mm2("CLOSED");
    options.wait_for_ack = false;
    let mut client = RawClient::connect(gateway.address(), options);
    let (closed, frames) = client.wait_closed(Duration::from_secs(5));
    assert!(closed);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let body = frames[0].message().unwrap();
    assert_eq!(body.get_string("code"), Ok("SERVICE_REFUSED"));
    assert_eq!(frames[0].subject(), b"CLOSED");
    // MM/1: just closed.
    let mut options = RawClientOptions::mm1("CLOSED");
    options.wait_for_ack = false;
    let mut legacy = RawClient::connect(gateway.address(), options);
    let (closed, frames) = legacy.wait_closed(Duration::from_secs(5));
    assert!(closed && frames.is_empty());
}

#[test]
fn invalid_service_names_are_refused() {
    let gateway = GatewayProcess::start(&[]);
    for name in ["A.B", "", "*"] {
        let mut options = RawClientOptions::mm2(name);
        options.wait_for_ack = false;
        let mut client = RawClient::connect(gateway.address(), options);
        let (closed, frames) = client.wait_closed(Duration::from_secs(5));
        assert!(closed, "{name:?}");
        assert_eq!(
            frames[0].message().unwrap().get_string("code"),
            Ok("INVALID_SUBJECT")
        );
    }
}

#[test]
fn gateway_heartbeats_and_dead_client_detection() {
    let config = write_config("heartbeat", r#"{"HeartbeatMs": 200}"#);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    // An idle MM/2 client gets PINGs (the ACK announces the interval).
    let mut client = RawClient::mm2(gateway.address(), SERVICE);
    assert_eq!(client.ack().unwrap().heartbeat_ms, 200);
    let ping = client
        .recv(Duration::from_secs(5))
        .expect("a heartbeat PING");
    assert_eq!(ping.action(), Some(Action::Ping));
    // An MM/1 client never gets one: after more than two intervals, only its sync message.
    let mut legacy = RawClient::mm1(gateway.address(), SERVICE);
    assert!(legacy.recv(Duration::from_millis(700)).is_none());
    // A client that announced heartbeats and goes silent is closed after twice its interval.
    let mut options = RawClientOptions::mm2(SERVICE);
    options.options = ConnectOptions {
        heartbeat_ms: 150,
        ..ConnectOptions::mm2("silent")
    };
    let mut silent = RawClient::connect(gateway.address(), options);
    let (closed, _) = silent.wait_closed(Duration::from_secs(5));
    assert!(closed, "silent client closed");
    assert!(gateway.wait_for_log("heartbeat timeout", Duration::from_secs(5)));
}
