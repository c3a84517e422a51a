//! MM/1 interoperability: legacy clients (raw frames, empty CONNECT body) talking with Rust
//! clients through the real gateway, and the Rust client against an MM/1 gateway (empty ACK).

mod common;

use std::time::Duration;

use common::fake::{FakeBehaviour, FakeGateway};
use common::{PATIENCE, SERVICE, collector, connect, expect};
use messaging_mesh::{Connection, ConnectionParams, Message, Protocol, Received};
use mm_testkit::{GatewayProcess, RawClient};
use mm_wire::Action;

#[test]
fn legacy_publishes_reach_rust_subscribers_and_back() {
    let gateway = GatewayProcess::start(&[]);
    let rust = connect(&gateway);
    let (callback, received) = collector();
    let _sub = rust.subscribe("LEGACY.>", callback).unwrap();
    rust.flush(PATIENCE).unwrap();

    let mut legacy = RawClient::mm1(gateway.address(), SERVICE);
    assert!(legacy.ack().is_none(), "an MM/1 client gets an empty ACK");
    legacy.subscribe(5, "RUST.>");
    legacy.publish(
        "LEGACY.PRICE",
        "",
        &Message::new().add_string("sym", "IBM").add_f64("px", 1.5),
    );
    let message = expect(&received);
    assert_eq!(message.subject(), "LEGACY.PRICE");
    assert_eq!(message.message().get_f64("px"), Ok(1.5));

    // The gateway processed the legacy SUBSCRIBE before the legacy publish we just received
    // (per-connection order), so a Rust publish now reaches the legacy client.
    rust.send("RUST.HELLO", &Message::new().add_i32("n", 1))
        .unwrap();
    let frame = legacy.expect_action(Action::SendMessage);
    assert_eq!(frame.subscription_id(), 5);
    assert_eq!(frame.subject(), b"RUST.HELLO");
    assert_eq!(frame.message().unwrap().get_i32("n"), Ok(1));
}

#[test]
fn requests_between_legacy_and_rust_clients_both_ways() {
    let gateway = GatewayProcess::start(&[]);
    let rust = connect(&gateway);
    let responder = rust.clone();
    let _service = rust
        .subscribe("Rust.Double", move |request: &Received| {
            let n = request.message().get_i32("n").unwrap_or(0);
            responder
                .send_reply(request, &Message::new().add_i32("n", n * 2))
                .unwrap();
        })
        .unwrap();
    rust.flush(PATIENCE).unwrap();

    // Legacy requester, Rust responder.
    let mut legacy = RawClient::mm1(gateway.address(), SERVICE);
    legacy.subscribe(1, "_INBOX.legacy1.*");
    legacy.subscribe(2, "Legacy.Triple");
    legacy.publish(
        "Rust.Double",
        "_INBOX.legacy1.1",
        &Message::new().add_i32("n", 21),
    );
    let reply = legacy.expect_action(Action::SendMessage);
    assert_eq!(reply.subject(), b"_INBOX.legacy1.1");
    assert_eq!(reply.message().unwrap().get_i32("n"), Ok(42));

    // Rust requester, legacy responder. The legacy SUBSCRIBE was sent before the publish above,
    // whose reply we have: the gateway has it.
    let requester = rust.clone();
    let request = std::thread::spawn(move || {
        requester.send_request("Legacy.Triple", &Message::new().add_i32("n", 5), PATIENCE)
    });
    let frame = legacy.expect_action(Action::SendMessage);
    assert_eq!(frame.subject(), b"Legacy.Triple");
    let reply_to = String::from_utf8(frame.reply_subject().to_vec()).unwrap();
    let n = frame.message().unwrap().get_i32("n").unwrap();
    legacy.publish(&reply_to, "", &Message::new().add_i32("n", n * 3));
    let reply = request.join().unwrap().unwrap();
    assert_eq!(reply.message().get_i32("n"), Ok(15));
}

#[test]
fn against_an_mm1_gateway_no_mm2_frame_is_sent_and_everything_works() {
    let fake = FakeGateway::start(FakeBehaviour::mm1());
    let connection = Connection::connect(
        ConnectionParams::new(fake.address(), SERVICE)
            .with_heartbeat(Duration::from_millis(20))
            .with_connect_timeout(PATIENCE),
    )
    .unwrap();
    let info = connection.gateway().unwrap();
    assert_eq!(info.protocol, Protocol::Mm1);
    assert_eq!(info.heartbeat, Duration::ZERO);

    // Flush: a message to our own inbox that comes back.
    connection.flush(PATIENCE).unwrap();
    connection.flush_mesh(PATIENCE).unwrap();

    // Pub/sub and request/reply.
    let (callback, received) = collector();
    let _sub = connection.subscribe("FAKE.>", callback).unwrap();
    connection
        .send("FAKE.one", &Message::new().add_i32("n", 1))
        .unwrap();
    assert_eq!(expect(&received).subject(), "FAKE.one");
    let responder = connection.clone();
    let _echo = connection
        .subscribe("Echo", move |request: &Received| {
            responder.send_reply(request, request.message()).unwrap();
        })
        .unwrap();
    let reply = connection
        .send_request("Echo", &Message::new().add_string("s", "hi"), PATIENCE)
        .unwrap();
    assert_eq!(reply.message().get_string("s"), Ok("hi"));

    // Nobody listening: no NO_RESPONDERS from an MM/1 gateway, the request times out.
    let error = connection
        .send_request("Nobody", &Message::new(), Duration::from_millis(100))
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");

    // Watch a quiet period longer than the heartbeat interval: an MM/1 gateway gets no PING.
    let mm2_frame_seen = mm_testkit::wait_until(Duration::from_millis(200), || {
        fake.actions().iter().any(|action| action.is_mm2_only())
    });
    assert!(!mm2_frame_seen, "{:?}", fake.actions());
    connection.close();
    let actions = fake.actions();
    assert!(
        actions.iter().all(|action| !action.is_mm2_only()),
        "MM/2-only frames sent to an MM/1 gateway: {actions:?}"
    );
    assert_eq!(actions.first(), Some(&Action::Connect));
    assert!(mm_testkit::wait_until(PATIENCE, || fake.actions().last()
        == Some(&Action::Disconnect)));
}
