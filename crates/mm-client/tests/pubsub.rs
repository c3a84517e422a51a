//! Publish/subscribe through a real gateway: delivery, wildcards, unsubscribe, subject
//! validation, the message model.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{PATIENCE, SERVICE, collector, connect, expect, expect_many, params};
use messaging_mesh::{
    ConnectError, Connection, ConnectionStatus, Message, Protocol, PublishError, SubscribeError,
};
use mm_testkit::GatewayProcess;

#[test]
fn publish_reaches_subscriber_with_subject_reply_and_fields() {
    let gateway = GatewayProcess::start(&[]);
    let publisher = connect(&gateway);
    let subscriber = connect(&gateway);
    let (callback, received) = collector();
    let subscription = subscriber.subscribe("PRICES.>", callback).unwrap();
    subscriber.flush(PATIENCE).unwrap();

    let message = Message::new()
        .add_string("sym", "IBM")
        .add_f64("px", 123.4)
        .add_i32("i32", -7)
        .add_u32("u32", 7)
        .add_i64("i64", -1 << 40)
        .add_u64("u64", u64::MAX)
        .add_bool("ok", true)
        .add_blob("blob", Bytes::from_static(&[1, 2, 0xff]))
        .add_message("meta", Message::new().add_string("venue", "NYSE"));
    publisher.send("PRICES.IBM", &message).unwrap();
    publisher
        .send_with_reply("PRICES.MSFT", "REPLY.HERE", &Message::new().add_i32("n", 1))
        .unwrap();

    let first = expect(&received);
    assert_eq!(first.subject(), "PRICES.IBM");
    assert_eq!(first.reply_subject(), None);
    assert_eq!(first.message(), &message);
    assert_eq!(first.subscription_id(), subscription.id());
    let second = expect(&received);
    assert_eq!(second.subject(), "PRICES.MSFT");
    assert_eq!(second.reply_subject(), Some("REPLY.HERE"));
    assert_eq!(second.message().get_i32("n"), Ok(1));

    let gateway_info = publisher.gateway().unwrap();
    assert_eq!(gateway_info.protocol, Protocol::Mm2);
    assert_eq!(publisher.status(), ConnectionStatus::Connected);
}

#[test]
fn every_matching_subscription_gets_its_own_copy_and_publishers_hear_themselves() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let (exact, exact_received) = collector();
    let (star, star_received) = collector();
    let (tail, tail_received) = collector();
    let exact = connection.subscribe("A.B", exact).unwrap();
    let star = connection.subscribe("A.*", star).unwrap();
    let _tail = connection.subscribe("A.>", tail).unwrap();
    connection.flush(PATIENCE).unwrap();

    connection.send("A.B", &Message::new()).unwrap();
    connection.send("A.B.C", &Message::new()).unwrap();
    connection.send("A", &Message::new()).unwrap();
    connection.flush(PATIENCE).unwrap();

    assert_eq!(expect(&exact_received).subscription_id(), exact.id());
    assert_eq!(expect(&star_received).subscription_id(), star.id());
    let tails: Vec<String> = expect_many(&tail_received, 2)
        .iter()
        .map(|m| m.subject().to_owned())
        .collect();
    assert_eq!(tails, ["A.B", "A.B.C"]);
    // A flush after the publishes has been answered: nothing else is on its way.
    connection.flush(PATIENCE).unwrap();
    assert!(exact_received.try_recv().is_err());
    assert!(star_received.try_recv().is_err());
}

#[test]
fn dropping_or_unsubscribing_ends_a_subscription() {
    let gateway = GatewayProcess::start(&[]);
    let publisher = connect(&gateway);
    let subscriber = connect(&gateway);
    let (first, first_received) = collector();
    let (second, second_received) = collector();
    let (marker, marker_received) = collector();
    let first = subscriber.subscribe("X.1", first).unwrap();
    let second = subscriber.subscribe("X.2", second).unwrap();
    let _marker = subscriber.subscribe("X.marker", marker).unwrap();
    subscriber.flush(PATIENCE).unwrap();
    drop(first);
    second.unsubscribe();
    subscriber.flush(PATIENCE).unwrap();

    publisher.send("X.1", &Message::new()).unwrap();
    publisher.send("X.2", &Message::new()).unwrap();
    publisher.send("X.marker", &Message::new()).unwrap();
    // Per-publisher order: once the marker is in, the others would have been too.
    expect(&marker_received);
    assert!(first_received.try_recv().is_err());
    assert!(second_received.try_recv().is_err());
}

#[test]
fn subjects_are_validated_before_sending_with_the_offending_token() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let error = connection.send("A.b c.D", &Message::new()).unwrap_err();
    assert!(
        matches!(error, PublishError::InvalidSubject(_)),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "invalid subject `A.b c.D`: token 2 contains white space (`b c`)"
    );
    let error = connection.send("A.*", &Message::new()).unwrap_err();
    assert!(error.to_string().contains("wildcard at token 2"), "{error}");
    let error = connection
        .send_with_reply("A.B", "R..S", &Message::new())
        .unwrap_err();
    assert!(
        matches!(&error, PublishError::InvalidReplySubject(invalid) if invalid.reason().position() == Some(2)),
        "{error:?}"
    );
    assert!(matches!(
        connection.send("", &Message::new()),
        Err(PublishError::InvalidSubject(_))
    ));
    let error = connection.send("_MM.STATS", &Message::new()).unwrap_err();
    assert!(
        matches!(error, PublishError::ReservedSubject { .. }),
        "{error:?}"
    );
    let error = connection.subscribe("A.>.B", |_| {}).unwrap_err();
    assert!(
        matches!(&error, SubscribeError::InvalidPattern(invalid) if invalid.offending_token() == Some(">")),
        "{error:?}"
    );
    assert!(error.to_string().contains("`>` at token 2"), "{error}");
    // Nothing invalid reached the gateway: the connection is healthy and no ERROR came back.
    connection.flush(PATIENCE).unwrap();
    assert_eq!(gateway.log().matches("INVALID_SUBJECT").count(), 0);

    let error = Connection::connect(messaging_mesh::ConnectionParams::new(
        gateway.address_string(),
        "BAD.SERVICE",
    ))
    .unwrap_err();
    assert!(
        matches!(error, ConnectError::InvalidServiceName(_)),
        "{error:?}"
    );
}

#[test]
fn connect_errors_are_distinct() {
    // Nobody listens on a port that was free a moment ago.
    let port = mm_testkit::free_port();
    let error = Connection::connect(messaging_mesh::ConnectionParams::new(
        format!("127.0.0.1:{port}"),
        SERVICE,
    ))
    .unwrap_err();
    assert!(matches!(error, ConnectError::Io { .. }), "{error:?}");
    assert!(error.to_string().contains("cannot connect"), "{error}");

    // A listener that never answers: the connect timeout applies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = silent.local_addr().unwrap();
    let error = Connection::connect(
        messaging_mesh::ConnectionParams::new(address.to_string(), SERVICE)
            .with_connect_timeout(Duration::from_millis(200)),
    )
    .unwrap_err();
    assert!(matches!(error, ConnectError::Timeout { .. }), "{error:?}");

    // A gateway that does not serve the service says so with an ERROR before closing.
    let config = mm_testkit::write_config("refused", r#"{"AllowedServices": ["OPEN"]}"#);
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let error = Connection::connect(params(&gateway)).unwrap_err();
    assert!(
        matches!(&error, ConnectError::Refused { code, .. } if code == "SERVICE_REFUSED"),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("refused the connection: SERVICE_REFUSED")
    );
}

#[test]
fn gateway_errors_reach_the_notification_hook() {
    let gateway = GatewayProcess::start(&[]);
    let recorder = common::Recorder::default();
    let connection = Connection::connect(recorder.install(params(&gateway))).unwrap();
    // A request to an `_MM.` subject the gateway does not answer is refused with an ERROR.
    let error = connection
        .send_request("_MM.NOPE", &Message::new(), Duration::from_millis(100))
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    let event = recorder.wait_for("gateway error", |event| {
        matches!(event, messaging_mesh::Notification::GatewayError { .. })
    });
    let messaging_mesh::Notification::GatewayError { code, subject, .. } = event else {
        unreachable!()
    };
    assert_eq!(code, "INVALID_SUBJECT");
    assert_eq!(subject, "_MM.NOPE");
    // The connection carries on.
    connection.flush(PATIENCE).unwrap();
}

#[test]
fn large_messages_round_trip() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let (callback, received) = collector();
    let _subscription = connection.subscribe("BIG", callback).unwrap();
    connection.flush(PATIENCE).unwrap();
    let blob: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let message = Message::new().add_blob("data", blob.clone());
    connection.send("BIG", &message).unwrap();
    let delivered = expect(&received);
    assert_eq!(
        delivered.message().get_blob("data").unwrap().as_ref(),
        &blob[..]
    );
}

#[test]
fn close_writes_pending_output_and_says_disconnect() {
    let gateway = GatewayProcess::start(&[]);
    let subscriber = connect(&gateway);
    let (callback, received) = collector();
    let _subscription = subscriber.subscribe("CLOSE.>", callback).unwrap();
    subscriber.flush(PATIENCE).unwrap();

    let publisher = Connection::connect(params(&gateway)).unwrap();
    for n in 0..10_000 {
        publisher
            .send("CLOSE.n", &Message::new().add_i32("n", n))
            .unwrap();
    }
    publisher.close();
    assert!(publisher.is_closed());
    assert!(matches!(
        publisher.send("CLOSE.n", &Message::new()),
        Err(PublishError::Closed)
    ));
    let messages = expect_many(&received, 10_000);
    assert_eq!(messages.last().unwrap().message().get_i32("n"), Ok(9_999));
    // Dropping the last handle closes too.
    let dropped = Connection::connect(params(&gateway)).unwrap();
    dropped.send("CLOSE.last", &Message::new()).unwrap();
    drop(dropped);
    assert_eq!(expect(&received).subject(), "CLOSE.last");
    // The gateway saw an orderly DISCONNECT, not a dropped socket.
    assert!(gateway.wait_for_log("client disconnected", PATIENCE));
    assert!(!gateway.log().contains("peer closed the connection"));
}

#[test]
fn frames_larger_than_the_gateway_accepts_are_refused_before_sending() {
    let gateway = GatewayProcess::start(&["--max-frame", "4096"]);
    let connection = connect(&gateway);
    assert_eq!(connection.gateway().unwrap().max_frame, 4096);
    let error = connection
        .send("BIG", &Message::new().add_blob("data", vec![0u8; 5000]))
        .unwrap_err();
    assert!(
        matches!(error, PublishError::TooLarge { max: 4096, .. }),
        "{error:?}"
    );
    // Nothing was sent: the connection is fine.
    connection.send("SMALL", &Message::new()).unwrap();
    connection.flush(PATIENCE).unwrap();
}
