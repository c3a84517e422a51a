//! Losing the gateway: reconnect with resubscription and replay, the reconnect buffer bound,
//! requests in flight, reconnect disabled, and heartbeats (SPEC §7.3).

mod common;

use std::time::{Duration, Instant};

use common::fake::{FakeBehaviour, FakeGateway};
use common::{PATIENCE, Recorder, SERVICE, collector, expect, params};
use messaging_mesh::{
    Connection, ConnectionParams, ConnectionStatus, Message, Notification, PublishError,
    ReconnectPolicy, RequestError,
};
use mm_testkit::GatewayProcess;
use mm_wire::Action;

/// Starts a gateway on `port` (the same port a killed one had), retrying while the port is
/// still being released.
fn restart_on(port: u16) -> GatewayProcess {
    let port = port.to_string();
    let mut last_error = String::new();
    let mut started = None;
    // The old socket may linger for a moment: retry until the port is free again.
    mm_testkit::wait_until(PATIENCE, || {
        match GatewayProcess::start_exact(&["--port", &port, "--bind", "127.0.0.1"]) {
            Ok(gateway) => started = Some(gateway),
            Err(error) => last_error = error,
        }
        started.is_some()
    });
    started.unwrap_or_else(|| panic!("gateway did not restart: {last_error}"))
}

fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        initial_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    }
}

#[test]
fn a_killed_and_restarted_gateway_is_redialled_and_subscriptions_resume() {
    let mut gateway = GatewayProcess::start(&[]);
    let port = gateway.port();
    let recorder = Recorder::default();
    let connection =
        Connection::connect(recorder.install(params(&gateway).with_reconnect(fast_reconnect())))
            .unwrap();
    let (callback, received) = collector();
    let _sub = connection.subscribe("RESUME.>", callback).unwrap();
    connection.flush(PATIENCE).unwrap();

    // A request in flight when the gateway dies fails promptly, not at its timeout.
    let silent =
        Connection::connect(params(&gateway).with_reconnect(ReconnectPolicy::disabled())).unwrap();
    let _silent_sub = silent.subscribe("Never.answers", |_| {}).unwrap();
    silent.flush(PATIENCE).unwrap();
    let requester = connection.clone();
    let request = std::thread::spawn(move || {
        let started = Instant::now();
        let result =
            requester.send_request("Never.answers", &Message::new(), Duration::from_secs(60));
        (result, started.elapsed())
    });
    assert!(mm_testkit::wait_until(PATIENCE, || connection
        .stats()
        .requests_in_flight
        == 1));

    gateway.kill();
    let (result, elapsed) = request.join().unwrap();
    assert!(
        matches!(result, Err(RequestError::Disconnected)),
        "{result:?}"
    );
    assert!(elapsed < Duration::from_secs(30));
    recorder.wait_for("disconnected", |event| {
        matches!(event, Notification::Disconnected { .. })
    });
    assert!(mm_testkit::wait_until(PATIENCE, || connection.status()
        == ConnectionStatus::Reconnecting));
    recorder.wait_for("reconnecting", |event| {
        matches!(event, Notification::Reconnecting { .. })
    });
    // Requests fail at once while disconnected; publishes are buffered for replay.
    assert!(matches!(
        connection.send_request("X", &Message::new(), PATIENCE),
        Err(RequestError::Disconnected)
    ));
    connection
        .send("RESUME.buffered", &Message::new().add_i32("n", 1))
        .unwrap();

    let restarted = restart_on(port);
    let event = recorder.wait_for("reconnected", |event| {
        matches!(event, Notification::Reconnected { .. })
    });
    let Notification::Reconnected {
        subscriptions,
        replayed_bytes,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(subscriptions, 1);
    assert!(replayed_bytes > 0);
    // The buffered publish was replayed after the subscription was renewed: it comes back.
    assert_eq!(expect(&received).subject(), "RESUME.buffered");
    // Others' publishes reach the renewed subscription.
    let publisher = Connection::connect(params(&restarted)).unwrap();
    publisher.send("RESUME.after", &Message::new()).unwrap();
    assert_eq!(expect(&received).subject(), "RESUME.after");
    assert_eq!(connection.stats().reconnects, 1);
    assert_eq!(connection.status(), ConnectionStatus::Connected);
    connection.flush(PATIENCE).unwrap();

    // The connection without reconnect closed for good.
    assert!(silent.is_closed());
    // Every step was told, in order.
    let steps: Vec<&str> = recorder
        .events()
        .iter()
        .map(|event| match event {
            Notification::Connected { .. } => "connected",
            Notification::Disconnected { .. } => "disconnected",
            Notification::Reconnecting { .. } => "reconnecting",
            Notification::ReconnectFailed { .. } => "failed",
            Notification::Reconnected { .. } => "reconnected",
            _ => "other",
        })
        .filter(|step| *step != "failed" && *step != "reconnecting")
        .collect();
    assert_eq!(steps, ["connected", "disconnected", "reconnected"]);
}

#[test]
fn publishes_while_disconnected_are_bounded_then_fail_clearly() {
    let mut gateway = GatewayProcess::start(&[]);
    let policy = ReconnectPolicy {
        buffer_bytes: 64 * 1024,
        initial_delay: Duration::from_secs(60),
        ..ReconnectPolicy::default()
    };
    let recorder = Recorder::default();
    let connection =
        Connection::connect(recorder.install(params(&gateway).with_reconnect(policy))).unwrap();
    gateway.kill();
    recorder.wait_for("disconnected", |event| {
        matches!(event, Notification::Disconnected { .. })
    });
    let payload = Message::new().add_blob("data", vec![0u8; 1000]);
    let mut accepted = 0;
    let error = loop {
        match connection.send("BUFFERED", &payload) {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted < 1000, "the reconnect buffer is not bounded");
    };
    assert!(
        matches!(error, PublishError::ReconnectBufferFull { limit: 65536 }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "not connected and the reconnect buffer is full (65536 bytes); the message was not sent"
    );
    assert!((60..=65).contains(&accepted), "{accepted}");
    // Closing while reconnecting is prompt and final.
    let started = Instant::now();
    connection.close();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(matches!(
        connection.send("BUFFERED", &payload),
        Err(PublishError::Closed)
    ));
    recorder.wait_for("closed", |event| matches!(event, Notification::Closed));
}

#[test]
fn giving_up_after_max_attempts_closes() {
    let mut gateway = GatewayProcess::start(&[]);
    let recorder = Recorder::default();
    let policy = ReconnectPolicy {
        max_attempts: Some(2),
        initial_delay: Duration::from_millis(10),
        ..ReconnectPolicy::default()
    };
    let connection =
        Connection::connect(recorder.install(params(&gateway).with_reconnect(policy))).unwrap();
    gateway.kill();
    recorder.wait_for("closed", |event| matches!(event, Notification::Closed));
    assert_eq!(
        recorder.count(|event| matches!(event, Notification::ReconnectFailed { .. })),
        2
    );
    assert!(connection.is_closed());
}

#[test]
fn heartbeats_detect_a_silent_gateway_and_are_sent_when_idle() {
    let fake = FakeGateway::start(FakeBehaviour::silent_mm2(50));
    let recorder = Recorder::default();
    let started = Instant::now();
    let connection = Connection::connect(
        recorder.install(
            ConnectionParams::new(fake.address(), SERVICE)
                .with_heartbeat(Duration::from_millis(20))
                .with_reconnect(ReconnectPolicy::disabled()),
        ),
    )
    .unwrap();
    let event = recorder.wait_for("disconnected", |event| {
        matches!(event, Notification::Disconnected { .. })
    });
    let Notification::Disconnected { reason } = event else {
        unreachable!()
    };
    assert!(reason.contains("nothing received"), "{reason}");
    // Twice the gateway's 50 ms, and not much more.
    assert!(started.elapsed() >= Duration::from_millis(100));
    recorder.wait_for("closed", |event| matches!(event, Notification::Closed));
    assert!(connection.is_closed());
    // While it waited, the client PINGed (it had nothing else to send).
    assert!(
        fake.actions().contains(&Action::Ping),
        "{:?}",
        fake.actions()
    );
}

#[test]
fn a_publish_queued_behind_a_partly_written_frame_is_replayed_whole() {
    let fake = FakeGateway::start(FakeBehaviour::stalling_mm2());
    let recorder = Recorder::default();
    let connection =
        Connection::connect(recorder.install(
            ConnectionParams::new(fake.address(), SERVICE).with_reconnect(fast_reconnect()),
        ))
        .unwrap();
    // The fake reads nothing after its ACK: the kernel takes a few MiB of this frame at most,
    // and the rest waits with the writer.
    let big = Message::new().add_blob("p", vec![0u8; 32 * 1024 * 1024]);
    connection.send("BIG", &big).unwrap();
    assert!(mm_testkit::wait_until(PATIENCE, || {
        let stats = connection.stats();
        stats.pending_output_bytes == 0 && stats.bytes_written > 0
    }));
    let small = Message::new().add_i32("n", 1);
    connection.send("B", &small).unwrap();
    fake.drop_connections();

    let event = recorder.wait_for("reconnected", |event| {
        matches!(event, Notification::Reconnected { .. })
    });
    let Notification::Reconnected { replayed_bytes, .. } = event else {
        unreachable!()
    };
    let b_frame = mm_wire::Frame::new(&mm_wire::Header::send_message("B"), &small).unwrap();
    assert_eq!(replayed_bytes, b_frame.len());
    assert!(mm_testkit::wait_until(PATIENCE, || !fake
        .published()
        .is_empty()));
    connection.flush(PATIENCE).unwrap();
    // B came back whole, after nothing of the frame that was cut off.
    assert_eq!(fake.published(), ["B"]);
    assert_eq!(fake.malformed(), Vec::<String>::new());
}
