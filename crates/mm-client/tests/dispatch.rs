//! Dispatch (SPEC §6.4): queue mode, panicking callbacks, pending limits, undecodable bodies,
//! and the logger.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{PATIENCE, Recorder, collector, connect, expect, params};
use messaging_mesh::{
    Connection, DispatchError, DispatchMode, LogLevel, Message, Notification, PendingLimits,
};
use mm_testkit::{GatewayProcess, RawClient};
use mm_wire::Header;

#[test]
fn queue_mode_runs_callbacks_on_the_calling_thread() {
    let gateway = GatewayProcess::start(&[]);
    let connection =
        Connection::connect(params(&gateway).with_dispatch_mode(DispatchMode::Queue)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let _sub = connection
        .subscribe("Q.>", move |m| {
            sink.lock().unwrap().push((
                std::thread::current().id(),
                m.message().get_i32("n").unwrap(),
            ))
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();

    // Nothing waiting: returns after the timeout with nothing done.
    let started = Instant::now();
    assert_eq!(
        connection.process_message_queue(Duration::from_millis(50), 0),
        Ok((0, 0))
    );
    assert!(started.elapsed() >= Duration::from_millis(50));

    for n in 0..10 {
        connection
            .send("Q.n", &Message::new().add_i32("n", n))
            .unwrap();
    }
    connection.flush(PATIENCE).unwrap();
    assert!(mm_testkit::wait_until(PATIENCE, || connection
        .queued_messages()
        == 10));
    assert_eq!(connection.process_message_queue(PATIENCE, 4), Ok((4, 6)));
    assert_eq!(connection.process_message_queue(PATIENCE, 0), Ok((6, 0)));
    let seen = seen.lock().unwrap().clone();
    let numbers: Vec<i32> = seen.iter().map(|(_, n)| *n).collect();
    assert_eq!(numbers, (0..10).collect::<Vec<_>>());
    assert!(
        seen.iter()
            .all(|(thread, _)| *thread == std::thread::current().id())
    );

    // wake_up makes a waiting call return at once.
    let waker = connection.clone();
    let handle = std::thread::spawn(move || {
        let started = Instant::now();
        let result = waker.process_message_queue(Duration::from_secs(60), 0);
        (result, started.elapsed())
    });
    // Wake until the waiting thread returns (a wake_up before it waits also counts).
    assert!(mm_testkit::wait_until(PATIENCE, || {
        connection.wake_up();
        handle.is_finished()
    }));
    let (result, elapsed) = handle.join().unwrap();
    assert_eq!(result, Ok((0, 0)));
    assert!(elapsed < Duration::from_secs(30));

    connection.close();
    assert_eq!(
        connection.process_message_queue(Duration::from_secs(1), 0),
        Err(DispatchError::Closed)
    );
    let callbacks = connect(&gateway);
    assert_eq!(
        callbacks.process_message_queue(Duration::ZERO, 0),
        Err(DispatchError::NotQueueMode)
    );
}

#[test]
fn a_panicking_callback_is_reported_and_dispatch_continues() {
    let gateway = GatewayProcess::start(&[]);
    let recorder = Recorder::default();
    let connection = Connection::connect(recorder.install(params(&gateway))).unwrap();
    let (callback, received) = collector();
    let mut callback = callback;
    let _sub = connection
        .subscribe("P", move |m| {
            if m.message().get_bool("panic") == Ok(true) {
                panic!("boom on purpose");
            }
            callback(m);
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();
    connection
        .send("P", &Message::new().add_bool("panic", true))
        .unwrap();
    connection
        .send("P", &Message::new().add_bool("panic", false))
        .unwrap();
    assert_eq!(expect(&received).message().get_bool("panic"), Ok(false));
    let event = recorder.wait_for("callback panicked", |event| {
        matches!(event, Notification::CallbackPanicked { .. })
    });
    let Notification::CallbackPanicked { panic, pattern, .. } = event else {
        unreachable!()
    };
    assert_eq!(panic, "boom on purpose");
    assert_eq!(pattern, "P");
}

#[test]
fn pending_limit_drops_counts_and_reports_once() {
    let gateway = GatewayProcess::start(&[]);
    let recorder = Recorder::default();
    let limits = PendingLimits {
        messages: 10,
        bytes: 1024 * 1024,
    };
    let connection =
        Connection::connect(recorder.install(params(&gateway).with_pending_limits(limits)))
            .unwrap();
    // The callback holds the dispatch thread on the first message until released.
    let (release, released) = channel::<()>();
    let released = Mutex::new(released);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let subscription = connection
        .subscribe("SLOW", move |_| {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                let _ = released.lock().unwrap().recv_timeout(PATIENCE);
            }
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();
    let publisher = connect(&gateway);
    for n in 0..100 {
        publisher
            .send("SLOW", &Message::new().add_i32("n", n))
            .unwrap();
    }
    publisher.flush(PATIENCE).unwrap();
    // All 100 arrive; at most 1 (in the callback) + 10 (pending) are kept.
    assert!(mm_testkit::wait_until(PATIENCE, || {
        subscription.dropped() + subscription.pending().0 as u64 + 1 >= 100
    }));
    release.send(()).unwrap();
    assert!(mm_testkit::wait_until(PATIENCE, || subscription
        .pending()
        .0
        == 0));
    let delivered = calls.load(Ordering::SeqCst) as u64;
    assert_eq!(delivered + subscription.dropped(), 100);
    assert!(delivered <= 11, "{delivered}");
    assert_eq!(connection.stats().messages_dropped, subscription.dropped());
    recorder.wait_for("messages dropped", |event| {
        matches!(event, Notification::MessagesDropped { .. })
    });
    assert_eq!(
        recorder.count(|event| matches!(event, Notification::MessagesDropped { .. })),
        1,
        "one report per overflow"
    );
    // After draining, the subscription works normally again.
    publisher.send("SLOW", &Message::new()).unwrap();
    assert!(mm_testkit::wait_until(
        PATIENCE,
        || calls.load(Ordering::SeqCst) as u64 == delivered + 1
    ));
}

#[test]
fn an_undecodable_body_is_dropped_reported_and_the_connection_carries_on() {
    let gateway = GatewayProcess::start(&[]);
    let recorder = Recorder::default();
    let connection = Connection::connect(recorder.install(params(&gateway))).unwrap();
    let (callback, received) = collector();
    let _sub = connection.subscribe("NEST.>", callback).unwrap();
    connection.flush(PATIENCE).unwrap();

    let mut raw = RawClient::mm2(gateway.address(), common::SERVICE);
    // Nested 65 deep: the gateway forwards it untouched, the client cannot decode it.
    raw.send_bytes(include_bytes!("../../../testdata/vectors/nest-65.bin"));
    // A field type byte of 0 (NOT_SET) is invalid on the wire.
    let mut bad = Vec::new();
    mm_wire::encode_frame_with_body(
        &mut bad,
        &Header::send_message("NEST.bad"),
        &[1, 0, 0, 0, 1, 0, 0, 0, b'x', 0],
    )
    .unwrap();
    raw.send_bytes(&bad);
    raw.send_bytes(include_bytes!("../../../testdata/vectors/nest-64.bin"));
    raw.publish("NEST.ok", "", &Message::new().add_i32("fine", 1));

    let first = expect(&received);
    assert_eq!(first.subject(), "NEST.x", "the depth-64 message decodes");
    assert_eq!(expect(&received).subject(), "NEST.ok");
    // Notifications come from their own thread: wait for both.
    assert!(mm_testkit::wait_until(PATIENCE, || {
        recorder.count(|event| matches!(event, Notification::UndecodableMessage { .. })) == 2
    }));
    let subjects: Vec<String> = recorder
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Notification::UndecodableMessage { subject, .. } => Some(subject),
            _ => None,
        })
        .collect();
    assert_eq!(subjects, ["NEST.x", "NEST.bad"]);
    assert_eq!(connection.stats().undecodable_messages, 2);
}

#[test]
fn the_logger_receives_the_library_log_lines() {
    let gateway = GatewayProcess::start(&[]);
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let connection = Connection::connect(
        params(&gateway)
            .with_logger(move |level, line| sink.lock().unwrap().push((level, line.to_owned()))),
    )
    .unwrap();
    connection.close();
    // Log lines are delivered on the notifier thread: wait for the last one.
    assert!(mm_testkit::wait_until(PATIENCE, || {
        lines
            .lock()
            .unwrap()
            .iter()
            .any(|(_, line)| line == "connection closed")
    }));
    let lines = lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|(level, line)| *level == LogLevel::Info && line.starts_with("connected to")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|(_, line)| line == "connection closed"),
        "{lines:?}"
    );
}

#[test]
fn callbacks_of_one_subscription_keep_arrival_order() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let (callback, received) = collector();
    let _sub = connection.subscribe("ORDER", callback).unwrap();
    connection.flush(PATIENCE).unwrap();
    for n in 0..5000 {
        connection
            .send("ORDER", &Message::new().add_i32("n", n))
            .unwrap();
    }
    let numbers: Vec<i32> = common::expect_many(&received, 5000)
        .iter()
        .map(|m| m.message().get_i32("n").unwrap())
        .collect();
    assert_eq!(numbers, (0..5000).collect::<Vec<_>>());
}

/// Dropping a subscription while its callback runs on the dispatch thread returns only after
/// that callback has returned, and no callback runs afterwards; dropping it from inside its own
/// callback does not wait (it would wait for itself). Both orders of a second message are
/// covered: queued before the drop (discarded) and sent after it (never delivered).
#[test]
fn ending_a_subscription_waits_for_its_running_callback_but_not_from_inside_it() {
    use std::sync::atomic::AtomicBool;

    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let in_callback = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let (inside, running, count) = (in_callback.clone(), release.clone(), calls.clone());
    let subscription = connection
        .subscribe_owned("WAIT.>", move |received| {
            count.fetch_add(1, Ordering::SeqCst);
            inside.store(true, Ordering::SeqCst);
            while !running.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            // Owned: it may be kept beyond the call.
            let kept = received;
            assert_eq!(kept.subject(), "WAIT.one");
            inside.store(false, Ordering::SeqCst);
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();
    connection.send("WAIT.one", &Message::new()).unwrap();
    connection.send("WAIT.one", &Message::new()).unwrap();
    assert!(mm_testkit::wait_until(PATIENCE, || in_callback.load(Ordering::SeqCst)));
    let releaser = {
        let release = release.clone();
        std::thread::spawn(move || {
            // Pacing, not synchronisation: the drop below must wait however long this takes.
            std::thread::sleep(Duration::from_millis(100));
            release.store(true, Ordering::SeqCst);
        })
    };
    drop(subscription);
    assert!(
        !in_callback.load(Ordering::SeqCst),
        "the drop returned while the callback was running"
    );
    releaser.join().unwrap();
    connection.send("WAIT.one", &Message::new()).unwrap();
    connection.flush(PATIENCE).unwrap();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "a callback ran after the drop"
    );

    // From inside: the callback ends its own subscription and returns normally.
    let slot: Arc<Mutex<Option<messaging_mesh::Subscription>>> = Arc::new(Mutex::new(None));
    let (sender, receiver) = channel();
    let own = slot.clone();
    let subscription = connection
        .subscribe("SELF.>", move |_| {
            let ended = own.lock().unwrap().take();
            drop(ended);
            let _ = sender.send(());
        })
        .unwrap();
    *slot.lock().unwrap() = Some(subscription);
    connection.flush(PATIENCE).unwrap();
    connection.send("SELF.x", &Message::new()).unwrap();
    assert_eq!(receiver.recv_timeout(PATIENCE), Ok(()));
    assert!(slot.lock().unwrap().is_none());
}
