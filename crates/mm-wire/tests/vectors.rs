//! Every file in `testdata/vectors/` decodes to exactly the values SPEC §10 lists and re-encodes to
//! the identical bytes.

use bytes::Bytes;
use mm_wire::{
    Action, DEFAULT_MAX_FRAME, DecodeError, FieldType, Frame, FrameDecoder, Header, MAX_DEPTH,
    Message, encode_frame,
};

fn vector(name: &str) -> Bytes {
    let path = format!(
        "{}/../../testdata/vectors/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}")))
}

fn frame(name: &str) -> Frame {
    let bytes = vector(name);
    // Through the incremental decoder, as a receiver would see it.
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    decoder.feed(&bytes);
    let frame = decoder.next_frame().unwrap().unwrap();
    assert_eq!(decoder.buffered(), 0, "{name}: exactly one frame");
    frame
}

/// Re-encodes a frame from its decoded header and message and checks the bytes are identical.
fn assert_reencodes(name: &str, frame: &Frame, message: &Message) {
    let header = frame.header();
    let mut out = Vec::new();
    encode_frame(
        &mut out,
        &Header {
            subscription_id: header.subscription_id,
            subject: header.subject,
            reply_subject: header.reply_subject,
            action: header.action().unwrap(),
        },
        message,
    )
    .unwrap();
    assert_eq!(out.as_slice(), frame.as_bytes(), "{name} re-encodes");
}

struct Expected<'a> {
    action: Action,
    subscription_id: u32,
    subject: &'a str,
    reply_subject: &'a str,
    message: Message,
}

fn check(name: &str, expected: Expected<'_>) {
    let frame = frame(name);
    assert_eq!(frame.action(), Some(expected.action), "{name} action");
    assert_eq!(
        frame.subscription_id(),
        expected.subscription_id,
        "{name} id"
    );
    assert_eq!(
        frame.subject(),
        expected.subject.as_bytes(),
        "{name} subject"
    );
    assert_eq!(
        frame.reply_subject(),
        expected.reply_subject.as_bytes(),
        "{name} reply subject"
    );
    let message = frame.message().unwrap();
    assert_eq!(message, expected.message, "{name} message");
    assert_reencodes(name, &frame, &message);
}

fn twelve_fields() -> Message {
    Message::new()
        .add_string("s", "hello, world!")
        .add_i32("i32_1", 123456)
        .add_i32("i32_2", -123456)
        .add_u32("ui32", 3123456789)
        .add_i64("i64_1", 4123456789123456789)
        .add_i64("i64_2", -4123456789123456789)
        .add_u64("ui64", 11123456789123456789)
        .add_f64("d", 123.456)
        .add_bool("b1", true)
        .add_bool("b2", false)
        .add_blob("blob", vec![0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa])
        .add_message(
            "sm",
            Message::new()
                .add_string("s", "hello, world!")
                .add_f64("d", 123.456),
        )
}

#[test]
fn reference_message() {
    // Framed Message only: length + Message, no header.
    let bytes = vector("reference-message.bin");
    assert_eq!(bytes.len(), 222);
    assert_eq!(i32::from_le_bytes(bytes[..4].try_into().unwrap()), 222);
    let message = Message::decode(&bytes.slice(4..)).unwrap();
    assert_eq!(message, twelve_fields());
    // Typed reads of every value, as SPEC §10 lists them.
    assert_eq!(message.get_string("s"), Ok("hello, world!"));
    assert_eq!(message.get_i32("i32_1"), Ok(123456));
    assert_eq!(message.get_i32("i32_2"), Ok(-123456));
    assert_eq!(message.get_u32("ui32"), Ok(3123456789));
    assert_eq!(message.get_i64("i64_1"), Ok(4123456789123456789));
    assert_eq!(message.get_i64("i64_2"), Ok(-4123456789123456789));
    assert_eq!(message.get_u64("ui64"), Ok(11123456789123456789));
    assert_eq!(message.get_f64("d"), Ok(123.456));
    assert_eq!(message.get_bool("b1"), Ok(true));
    assert_eq!(message.get_bool("b2"), Ok(false));
    assert_eq!(
        message.get_blob("blob").unwrap().as_ref(),
        &[0x01, 0x02, 0x03, 0xe6, 0xf0, 0xfa]
    );
    let nested = message.get_message("sm").unwrap();
    assert_eq!(nested.get_string("s"), Ok("hello, world!"));
    assert_eq!(nested.get_f64("d"), Ok(123.456));
    let names: Vec<String> = message.iter().map(|f| f.name().to_string()).collect();
    assert_eq!(
        names,
        [
            "s", "i32_1", "i32_2", "ui32", "i64_1", "i64_2", "ui64", "d", "b1", "b2", "blob", "sm"
        ]
    );
    // Re-encode: length prefix + Message.
    let body = message.to_bytes().unwrap();
    let mut out = (body.len() as i32 + 4).to_le_bytes().to_vec();
    out.extend_from_slice(&body);
    assert_eq!(out.as_slice(), bytes.as_ref());
}

#[test]
fn all_types_frame() {
    check(
        "all-types-frame.bin",
        Expected {
            action: Action::SendMessage,
            subscription_id: 0,
            subject: "TEST.ALL",
            reply_subject: "",
            message: twelve_fields(),
        },
    );
}

#[test]
fn connect_legacy() {
    check(
        "connect-legacy.bin",
        Expected {
            action: Action::Connect,
            subscription_id: 0,
            subject: "VULCAN",
            reply_subject: "X",
            message: Message::new(),
        },
    );
}

#[test]
fn connect_v2() {
    check(
        "connect-v2.bin",
        Expected {
            action: Action::Connect,
            subscription_id: 0,
            subject: "VULCAN",
            reply_subject: "orders-service",
            message: Message::new()
                .add_i32("protocol_version", 2)
                .add_string("client_name", "example 1.0")
                .add_i32("heartbeat_ms", 5000)
                .add_bool("no_responders", true),
        },
    );
}

#[test]
fn ack_legacy() {
    check(
        "ack-legacy.bin",
        Expected {
            action: Action::Ack,
            subscription_id: 0,
            subject: "",
            reply_subject: "",
            message: Message::new(),
        },
    );
}

#[test]
fn ack_v2() {
    check(
        "ack-v2.bin",
        Expected {
            action: Action::Ack,
            subscription_id: 0,
            subject: "",
            reply_subject: "",
            message: Message::new()
                .add_i32("protocol_version", 2)
                .add_string("gateway_name", "gw-a")
                .add_u32("max_frame", 67108864)
                .add_i32("heartbeat_ms", 5000),
        },
    );
}

#[test]
fn subscribe() {
    check(
        "subscribe.bin",
        Expected {
            action: Action::Subscribe,
            subscription_id: 1,
            subject: "A.B",
            reply_subject: "",
            message: Message::new(),
        },
    );
}

#[test]
fn subscribe_wildcard() {
    check(
        "subscribe-wildcard.bin",
        Expected {
            action: Action::Subscribe,
            subscription_id: 7,
            subject: "PRICES.*.>",
            reply_subject: "",
            message: Message::new(),
        },
    );
}

#[test]
fn unsubscribe_by_id() {
    check(
        "unsubscribe-by-id.bin",
        Expected {
            action: Action::Unsubscribe,
            subscription_id: 1,
            subject: "",
            reply_subject: "",
            message: Message::new(),
        },
    );
}

#[test]
fn disconnect() {
    check(
        "disconnect.bin",
        Expected {
            action: Action::Disconnect,
            subscription_id: 0,
            subject: "",
            reply_subject: "",
            message: Message::new(),
        },
    );
}

#[test]
fn send_message_and_delivered_copy() {
    let message = Message::new().add_i32("#", 7);
    check(
        "send-message.bin",
        Expected {
            action: Action::SendMessage,
            subscription_id: 0,
            subject: "A.B",
            reply_subject: "",
            message: message.clone(),
        },
    );
    check(
        "send-message-delivered-sub5.bin",
        Expected {
            action: Action::SendMessage,
            subscription_id: 5,
            subject: "A.B",
            reply_subject: "",
            message,
        },
    );
    assert_eq!(vector("send-message.bin").len(), 34);
}

#[test]
fn request_with_reply_subject() {
    check(
        "request-with-reply-subject.bin",
        Expected {
            action: Action::SendMessage,
            subscription_id: 0,
            subject: "Service.Add",
            reply_subject: "_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.1",
            message: Message::new().add_f64("A", 0.5).add_f64("B", 1.5),
        },
    );
}

#[test]
fn ping_pong() {
    for (name, action) in [("ping.bin", Action::Ping), ("pong.bin", Action::Pong)] {
        check(
            name,
            Expected {
                action,
                subscription_id: 0,
                subject: "",
                reply_subject: "",
                message: Message::new().add_i32("k", 42),
            },
        );
    }
}

#[test]
fn ping_mesh_flush() {
    check(
        "ping-mesh-flush.bin",
        Expected {
            action: Action::Ping,
            subscription_id: 0,
            subject: "",
            reply_subject: "",
            message: Message::new().add_bool("mesh", true),
        },
    );
}

#[test]
fn error_invalid_subject() {
    check(
        "error-invalid-subject.bin",
        Expected {
            action: Action::Error,
            subscription_id: 3,
            subject: "bad..subject",
            reply_subject: "",
            message: Message::new()
                .add_string("code", "INVALID_SUBJECT")
                .add_string("text", "empty token at position 2"),
        },
    );
    // Our own validator produces the same text for that subject.
    assert_eq!(
        mm_wire::subject::validate_subject("bad..subject")
            .unwrap_err()
            .to_string(),
        "empty token at position 2"
    );
}

#[test]
fn no_responders() {
    check(
        "no-responders.bin",
        Expected {
            action: Action::NoResponders,
            subscription_id: 1,
            subject: "_INBOX.k3Jx9aQ0pLm2Zr8sT4uVw6.1",
            reply_subject: "Service.Add",
            message: Message::new(),
        },
    );
}

#[test]
fn connect_mesh_peer_legacy() {
    check(
        "connect-mesh-peer.bin",
        Expected {
            action: Action::ConnectMeshPeer,
            subscription_id: 0,
            subject: "VULCAN",
            reply_subject: "G",
            message: Message::new(),
        },
    );
}

#[test]
fn connect_mesh_peer_v2() {
    check(
        "connect-mesh-peer-v2.bin",
        Expected {
            action: Action::ConnectMeshPeer,
            subscription_id: 0,
            subject: "VULCAN",
            reply_subject: "host-a:5050",
            message: Message::new()
                .add_i32("protocol_version", 2)
                .add_string("gateway_name", "host-a:5050")
                .add_string("gateway_id", "5f0c3a9e1b7d4c2a8e6f0b1d3c5a7e9f")
                .add_i32("heartbeat_ms", 5000),
        },
    );
}

#[test]
fn ack_mesh_v2() {
    check(
        "ack-mesh-v2.bin",
        Expected {
            action: Action::Ack,
            subscription_id: 0,
            subject: "",
            reply_subject: "",
            message: Message::new()
                .add_i32("protocol_version", 2)
                .add_string("gateway_name", "host-b:5050")
                .add_string("gateway_id", "a1b2c3d4e5f60718293a4b5c6d7e8f90")
                .add_i32("heartbeat_ms", 5000)
                .add_u32("max_frame", 67108864),
        },
    );
}

/// The nested chain `n` → `n` → … of a nest vector, innermost depth.
fn nesting_depth(message: &Message) -> usize {
    let mut depth = 1;
    let mut current = message;
    while let Some(inner) = current.try_message("n") {
        depth += 1;
        current = inner;
    }
    assert!(current.is_empty());
    depth
}

#[test]
fn nest_64_decodes() {
    let frame = frame("nest-64.bin");
    assert_eq!(frame.subject(), b"NEST.x");
    let message = frame.message().unwrap();
    assert_eq!(nesting_depth(&message), MAX_DEPTH);
    assert_reencodes("nest-64.bin", &frame, &message);
}

#[test]
fn nest_65_fails() {
    let frame = frame("nest-65.bin");
    // The header is fine (a gateway forwards it); the body is one level too deep.
    assert_eq!(frame.subject(), b"NEST.x");
    assert!(matches!(
        frame.message(),
        Err(DecodeError::TooDeep { max: 64, .. })
    ));
}

#[test]
fn every_vector_is_covered() {
    let directory = format!("{}/../../testdata/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 23);
    let source = include_str!("vectors.rs");
    for name in names {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} has no test"
        );
    }
}

#[test]
fn header_strings_of_vectors_have_expected_types() {
    let message = frame("connect-v2.bin").message().unwrap();
    assert_eq!(message.field_type("no_responders"), Some(FieldType::Bool));
}

#[test]
fn handshake_types_build_the_vector_bodies() {
    use mm_wire::handshake::{AckInfo, ConnectOptions, PeerHello, Protocol};
    let connect = frame("connect-v2.bin").message().unwrap();
    let (options, warning) = ConnectOptions::from_message(&connect);
    assert!(warning.is_none());
    assert_eq!(options.protocol(), Protocol::Mm2);
    assert_eq!(options.heartbeat_ms, 5000);
    assert!(options.no_responders);
    assert_eq!(options.to_message(), connect);

    let ack = frame("ack-v2.bin").message().unwrap();
    let info = AckInfo::from_message(&ack).unwrap();
    assert_eq!(info.gateway_name, "gw-a");
    assert_eq!(info.client_message(), ack);
    assert!(AckInfo::from_message(&frame("ack-legacy.bin").message().unwrap()).is_none());

    let mesh_ack = frame("ack-mesh-v2.bin").message().unwrap();
    let info = AckInfo::from_message(&mesh_ack).unwrap();
    assert_eq!(
        info.gateway_id.as_deref(),
        Some("a1b2c3d4e5f60718293a4b5c6d7e8f90")
    );
    assert_eq!(info.mesh_message(), mesh_ack);

    let hello_body = frame("connect-mesh-peer-v2.bin").message().unwrap();
    let hello = PeerHello::from_message(&hello_body);
    assert_eq!(hello.protocol(), Protocol::Mm2);
    assert_eq!(hello.to_message(), hello_body);
    let legacy = PeerHello::from_message(&frame("connect-mesh-peer.bin").message().unwrap());
    assert_eq!(legacy.protocol(), Protocol::Mm1);

    let error = frame("error-invalid-subject.bin").message().unwrap();
    assert_eq!(
        mm_wire::handshake::ErrorCode::InvalidSubject.message("empty token at position 2"),
        error
    );
}
