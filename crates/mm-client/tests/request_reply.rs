//! Request/reply (SPEC §7.4) and flush (SPEC §7.5) through a real gateway.

mod common;

use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use common::{PATIENCE, collector, connect, expect, params};
use messaging_mesh::{
    Connection, ConnectionParams, DispatchMode, FlushError, Message, PublishError, Received,
    RequestError,
};
use mm_testkit::{GatewayProcess, RawClient};
use mm_wire::Action;

/// A responder that answers `Service.Add` with the sum of `A` and `B`.
fn adder(connection: &Connection) -> messaging_mesh::Subscription {
    let responder = connection.clone();
    connection
        .subscribe("Service.Add", move |request: &Received| {
            let body = request.message();
            let sum = body.get_f64("A").unwrap_or(0.0) + body.get_f64("B").unwrap_or(0.0);
            responder
                .send_reply(request, &Message::new().add_f64("sum", sum))
                .unwrap();
        })
        .unwrap()
}

#[test]
fn request_gets_the_reply_over_the_muxed_inbox() {
    let gateway = GatewayProcess::start(&[]);
    let server = connect(&gateway);
    let _adder = adder(&server);
    server.flush(PATIENCE).unwrap();

    let client = connect(&gateway);
    let request = Message::new().add_f64("A", 0.5).add_f64("B", 1.5);
    for _ in 0..3 {
        let reply = client
            .send_request("Service.Add", &request, PATIENCE)
            .unwrap();
        assert_eq!(reply.message().get_f64("sum"), Ok(2.0));
    }
    assert_eq!(client.stats().requests_in_flight, 0);

    // Reply subjects: `_INBOX.<22 base62>.<counter>`; one wire subscription for all of them.
    let mut spy = RawClient::mm2(gateway.address(), common::SERVICE);
    spy.subscribe(1, "Service.Add");
    spy.flush();
    client
        .send_request("Service.Add", &request, PATIENCE)
        .unwrap();
    let seen = spy.expect_action(Action::SendMessage);
    let reply_subject = String::from_utf8(seen.reply_subject().to_vec()).unwrap();
    let tokens: Vec<&str> = reply_subject.split('.').collect();
    assert_eq!(tokens.len(), 3, "{reply_subject}");
    assert_eq!(tokens[0], "_INBOX");
    assert!(tokens[1].len() >= 22, "{reply_subject}");
    assert!(tokens[1].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert!(tokens[2].parse::<u64>().is_ok(), "{reply_subject}");
    let stats = spy.stats(2);
    let connections: Vec<_> = stats
        .iter()
        .filter_map(|field| field.as_message())
        .filter(|entry| entry.try_string("name") == Some("test"))
        .map(|entry| entry.get_u32("subscriptions").unwrap())
        .collect();
    // The server holds Service.Add + its inbox; the client only its inbox.
    assert!(connections.contains(&1), "{connections:?}");
}

#[test]
fn no_responders_is_distinct_and_immediate() {
    let gateway = GatewayProcess::start(&[]);
    let client = connect(&gateway);
    let started = Instant::now();
    let error = client
        .send_request("Nobody.home", &Message::new(), Duration::from_secs(30))
        .unwrap_err();
    assert!(error.is_no_responders(), "{error:?}");
    assert!(
        matches!(error, RequestError::NoResponders { ref subject } if subject == "Nobody.home")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.to_string(), "no responders for `Nobody.home`");
}

#[test]
fn timeout_is_distinct() {
    let gateway = GatewayProcess::start(&[]);
    let silent = connect(&gateway);
    let _ignore = silent.subscribe("Silent.service", |_| {}).unwrap();
    silent.flush(PATIENCE).unwrap();
    let client = connect(&gateway);
    let started = Instant::now();
    let error = client
        .send_request(
            "Silent.service",
            &Message::new(),
            Duration::from_millis(200),
        )
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert!(!error.is_no_responders());
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(client.stats().requests_in_flight, 0);
}

#[test]
fn a_blocking_request_spins_for_its_reply_within_the_window_and_not_when_disabled() {
    let gateway = GatewayProcess::start(&[]);
    let server = connect(&gateway);
    let _adder = adder(&server);
    server.flush(PATIENCE).unwrap();
    let request = Message::new().add_f64("A", 1.0).add_f64("B", 2.0);

    // A window far longer than any round trip: every reply arrives while the caller spins,
    // unless another thread of this process holds the one spin slot a 2-CPU machine allows.
    let spinning =
        Connection::connect(params(&gateway).with_request_spin(Duration::from_secs(5))).unwrap();
    for _ in 0..5 {
        let reply = spinning
            .send_request("Service.Add", &request, PATIENCE)
            .unwrap();
        assert_eq!(reply.message().get_f64("sum").unwrap(), 3.0);
    }
    let stats = spinning.stats();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    if cpus > 1 {
        assert!(stats.spin_hits >= 1, "{stats:?}");
    } else {
        assert_eq!(stats.spin_hits, 0, "one CPU: never spin");
    }
    assert_eq!(stats.spin_misses, 0, "{stats:?}");

    let sleeping = Connection::connect(params(&gateway).with_request_spin(Duration::ZERO)).unwrap();
    for _ in 0..5 {
        sleeping
            .send_request("Service.Add", &request, PATIENCE)
            .unwrap();
    }
    sleeping.flush(PATIENCE).unwrap();
    let stats = sleeping.stats();
    assert_eq!((stats.spin_hits, stats.spin_misses), (0, 0), "{stats:?}");
}

#[test]
fn blocking_request_from_inside_a_callback_works() {
    let gateway = GatewayProcess::start(&[]);
    let server = connect(&gateway);
    let _adder = adder(&server);
    server.flush(PATIENCE).unwrap();

    // The callback runs on the dispatch thread and blocks in send_request; the reply must not
    // need that thread.
    let client = connect(&gateway);
    let inner = client.clone();
    let (done, results) = channel();
    let _trigger = client
        .subscribe("Trigger", move |_: &Received| {
            let reply = inner.send_request(
                "Service.Add",
                &Message::new().add_f64("A", 1.0).add_f64("B", 2.0),
                PATIENCE,
            );
            let _ = done.send(reply.map(|reply| reply.message().get_f64("sum")));
        })
        .unwrap();
    client.flush(PATIENCE).unwrap();
    for _ in 0..5 {
        client.send("Trigger", &Message::new()).unwrap();
    }
    for _ in 0..5 {
        let result = results
            .recv_timeout(PATIENCE)
            .expect("the callback finished");
        assert_eq!(result.unwrap(), Ok(3.0));
    }
}

#[test]
fn request_works_in_queue_mode_without_processing_the_queue() {
    let gateway = GatewayProcess::start(&[]);
    let server = connect(&gateway);
    let _adder = adder(&server);
    server.flush(PATIENCE).unwrap();
    let client =
        Connection::connect(params(&gateway).with_dispatch_mode(DispatchMode::Queue)).unwrap();
    let (callback, _received) = collector();
    let _sub = client.subscribe("Service.Add", callback).unwrap();
    client.flush(PATIENCE).unwrap();
    let reply = client
        .send_request(
            "Service.Add",
            &Message::new().add_f64("A", 2.0).add_f64("B", 2.0),
            PATIENCE,
        )
        .unwrap();
    assert_eq!(reply.message().get_f64("sum"), Ok(4.0));
    // Our own subscription got the request too, and it waits in the queue (the reply may have
    // been handed over first: it does not wait for the queue).
    assert!(mm_testkit::wait_until(PATIENCE, || client
        .queued_messages()
        == 1));
}

#[test]
fn gateway_requests_are_answered() {
    let gateway = GatewayProcess::start(&["--name", "gw-client-test"]);
    let client = connect(&gateway);
    let stats = client
        .send_request("_MM.STATS", &Message::new(), PATIENCE)
        .unwrap();
    assert_eq!(
        stats.message().get_string("gateway_name"),
        Ok("gw-client-test")
    );
    assert_eq!(stats.message().get_string("service"), Ok(common::SERVICE));
}

#[test]
fn send_reply_needs_a_reply_subject_and_inboxes_are_unique() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let inbox = connection.create_inbox();
    let other = connection.create_inbox();
    assert_ne!(inbox, other);
    assert!(inbox.starts_with("_INBOX."));
    let (callback, received) = collector();
    let _sub = connection.subscribe(&inbox, callback).unwrap();
    connection.flush(PATIENCE).unwrap();
    connection
        .send_with_reply(&inbox, &other, &Message::new().add_i32("n", 1))
        .unwrap();
    let message = expect(&received);
    assert_eq!(message.reply_subject(), Some(other.as_str()));
    let (plain_callback, plain) = collector();
    let _plain = connection.subscribe("Plain", plain_callback).unwrap();
    connection.flush(PATIENCE).unwrap();
    connection.send("Plain", &Message::new()).unwrap();
    let plain = expect(&plain);
    let error = connection.send_reply(&plain, &Message::new()).unwrap_err();
    assert!(
        matches!(error, PublishError::NoReplySubject { .. }),
        "{error:?}"
    );
    // Only one copy of the inbox message arrived (the muxed request inbox does not match it).
    connection.flush(PATIENCE).unwrap();
    assert!(received.try_recv().is_err());
}

#[test]
fn flush_and_mesh_flush_confirm_and_time_out() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    connection.flush(PATIENCE).unwrap();
    connection.flush_mesh(PATIENCE).unwrap();
    // Flushes from many threads at once each get their own PONG.
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    connection.flush(PATIENCE).unwrap();
                }
            });
        }
    });
    assert_eq!(connection.stats().requests_in_flight, 0);
    connection.close();
    assert!(matches!(
        connection.flush(PATIENCE),
        Err(FlushError::Closed)
    ));
    assert!(matches!(
        connection.send_request("A", &Message::new(), PATIENCE),
        Err(RequestError::Closed)
    ));
}

#[test]
fn flush_times_out_when_the_gateway_does_not_answer() {
    // An MM/2 gateway that ACKs and then never answers anything.
    let fake = common::fake::FakeGateway::start(common::fake::FakeBehaviour::silent_mm2(0));
    let connection = Connection::connect(messaging_mesh::ConnectionParams::new(
        fake.address(),
        common::SERVICE,
    ))
    .unwrap();
    let started = Instant::now();
    let error = connection.flush(Duration::from_millis(100)).unwrap_err();
    assert!(matches!(error, FlushError::Timeout { .. }), "{error:?}");
    assert!(started.elapsed() >= Duration::from_millis(100));
    assert!(matches!(
        connection.flush_mesh(Duration::from_millis(10)),
        Err(FlushError::Timeout { .. })
    ));
    // Timed-out flushes leave nothing behind.
    assert_eq!(connection.stats().requests_in_flight, 0);
}

/// The first request of each session is preceded by a mesh-wide flush: a reply from a responder
/// on another gateway travels back only once that gateway has this connection's inbox
/// subscription, which crosses the mesh on a different link than the request, so without it the
/// first reply of a fresh connection can be lost. Later requests of the session pay nothing;
/// after a reconnect the inbox is confirmed again. MM/1 gateways get no PING.
#[test]
fn the_first_request_of_each_session_confirms_the_inbox_mesh_wide() {
    use common::fake::{FakeBehaviour, FakeGateway};
    let requests_and_pings = |fake: &FakeGateway| -> Vec<Action> {
        fake.actions()
            .into_iter()
            .filter(|action| matches!(action, Action::Ping | Action::SendMessage))
            .collect()
    };
    let fake = FakeGateway::start(FakeBehaviour::mm2());
    let requester =
        Connection::connect(ConnectionParams::new(fake.address(), common::SERVICE)).unwrap();
    for _ in 0..2 {
        let error = requester
            .send_request("Nobody.Home", &Message::new(), Duration::from_millis(200))
            .unwrap_err();
        assert!(matches!(error, RequestError::Timeout { .. }), "{error}");
    }
    assert_eq!(
        requests_and_pings(&fake),
        [Action::Ping, Action::SendMessage, Action::SendMessage]
    );
    // A new session: confirmed again.
    fake.drop_connections();
    assert!(mm_testkit::wait_until(PATIENCE, || requester
        .send_request("Nobody.Home", &Message::new(), Duration::from_millis(200))
        .is_err_and(|error| matches!(
            error,
            RequestError::Timeout { .. }
        ))
        && requests_and_pings(&fake)
            .ends_with(&[Action::Ping, Action::SendMessage])));
    let sent = requests_and_pings(&fake);
    assert_eq!(
        sent.iter()
            .filter(|action| **action == Action::Ping)
            .count(),
        2,
        "{sent:?}"
    );

    let legacy = FakeGateway::start(FakeBehaviour::mm1());
    let requester =
        Connection::connect(ConnectionParams::new(legacy.address(), common::SERVICE)).unwrap();
    let _ = requester.send_request("Nobody.Home", &Message::new(), Duration::from_millis(100));
    assert_eq!(requests_and_pings(&legacy), [Action::SendMessage]);
}

/// The first request of a fresh connection, answered by a responder on another gateway of a real
/// mesh, gets its reply (the confirmation above at work).
#[test]
fn the_first_request_across_a_mesh_gets_its_reply() {
    let mesh = mm_testkit::MeshProcesses::start(2, common::SERVICE, "");
    assert!(mesh.wait_fully_linked(PATIENCE), "the mesh links up");
    let responder = connect(&mesh.gateways[1]);
    let _adder = adder(&responder);
    responder.flush_mesh(PATIENCE).unwrap();
    for attempt in 0..20 {
        let requester = connect(&mesh.gateways[0]);
        let reply = requester
            .send_request(
                "Service.Add",
                &Message::new()
                    .add_f64("A", attempt as f64)
                    .add_f64("B", 1.0),
                Duration::from_secs(5),
            )
            .unwrap_or_else(|error| panic!("attempt {attempt}: {error}"));
        assert_eq!(
            reply.message().get_f64("sum").unwrap(),
            attempt as f64 + 1.0
        );
    }
}
