//! Frames no real gateway should send, delivered by a fake one: a subject or reply subject that
//! is not UTF-8 is reported as such (never as a truncated frame), the message is dropped, and a
//! request whose reply carries one fails at once instead of timing out.

mod common;

use std::time::{Duration, Instant};

use common::fake::{FakeBehaviour, FakeGateway};
use common::{PATIENCE, Recorder, SERVICE, collector, expect};
use messaging_mesh::{
    AsyncConnection, Connection, ConnectionParams, InvalidUtf8, Message, Notification, RequestError,
};
use mm_wire::{Action, Header, encode_frame};

/// A SEND_MESSAGE frame as a gateway delivers it, with raw subject bytes.
fn delivery(subscription_id: u32, subject: &[u8], reply_subject: &[u8], n: i32) -> Vec<u8> {
    let header = Header {
        subscription_id,
        subject,
        reply_subject,
        action: Action::SendMessage,
    };
    let mut frame = Vec::new();
    encode_frame(&mut frame, &header, &Message::new().add_i32("n", n)).unwrap();
    frame
}

fn invalid_utf8_errors(recorder: &Recorder) -> Vec<(u32, InvalidUtf8)> {
    recorder
        .events()
        .into_iter()
        .filter_map(|event| match event {
            Notification::InvalidUtf8 {
                subscription_id,
                error,
            } => Some((subscription_id, error)),
            _ => None,
        })
        .collect()
}

#[test]
fn non_utf8_subjects_reach_the_hook_as_such_and_the_next_message_arrives() {
    let fake = FakeGateway::start(FakeBehaviour::mm2());
    let recorder = Recorder::default();
    let connection =
        Connection::connect(recorder.install(ConnectionParams::new(fake.address(), SERVICE)))
            .unwrap();
    let (callback, received) = collector();
    let subscription = connection.subscribe(">", callback).unwrap();
    connection.flush(PATIENCE).unwrap();
    let id = subscription.id();

    fake.deliver(&delivery(id, b"BAD.\xff\xfe", b"", 1));
    fake.deliver(&delivery(id, b"GOOD.one", b"_INBOX.\xc3", 2));
    fake.deliver(&delivery(id, b"GOOD.two", b"", 3));

    let message = expect(&received);
    assert_eq!(message.subject(), "GOOD.two");
    assert_eq!(message.message().get_i32("n"), Ok(3));
    assert!(mm_testkit::wait_until(PATIENCE, || invalid_utf8_errors(
        &recorder
    )
    .len()
        == 2));
    let errors = invalid_utf8_errors(&recorder);
    assert_eq!(
        errors,
        [
            (
                id,
                InvalidUtf8::Subject {
                    lossy: "BAD.\u{fffd}\u{fffd}".to_owned(),
                    valid_up_to: 4
                }
            ),
            (
                id,
                InvalidUtf8::ReplySubject {
                    lossy: "_INBOX.\u{fffd}".to_owned(),
                    valid_up_to: 7
                }
            ),
        ]
    );
    assert_eq!(
        errors[0].1.to_string(),
        "the subject `BAD.\u{fffd}\u{fffd}` is not valid UTF-8 (from byte 4)"
    );
    // Neither is reported as undecodable (the body is fine), but both are counted as dropped
    // bad input.
    assert_eq!(
        recorder.count(|event| matches!(event, Notification::UndecodableMessage { .. })),
        0
    );
    assert_eq!(connection.stats().undecodable_messages, 2);
    assert!(received.try_recv().is_err(), "nothing else was delivered");
}

#[tokio::test]
async fn a_stream_subscription_reports_non_utf8_subjects_too() {
    let fake = FakeGateway::start(FakeBehaviour::mm2());
    let recorder = Recorder::default();
    let connection =
        AsyncConnection::connect(recorder.install(ConnectionParams::new(fake.address(), SERVICE)))
            .await
            .unwrap();
    let mut stream = connection.subscribe(">").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    let id = stream.id();

    fake.deliver(&delivery(id, b"S.\x80", b"", 1));
    fake.deliver(&delivery(id, b"S.ok", b"R.\xff", 2));
    fake.deliver(&delivery(id, b"S.ok", b"", 3));

    let message = tokio::time::timeout(PATIENCE, stream.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.message().get_i32("n"), Ok(3));
    let watcher = recorder.clone();
    let reported = tokio::task::spawn_blocking(move || {
        mm_testkit::wait_until(PATIENCE, || invalid_utf8_errors(&watcher).len() == 2)
    })
    .await
    .unwrap();
    assert!(reported);
    let errors = invalid_utf8_errors(&recorder);
    assert!(matches!(
        errors[0].1,
        InvalidUtf8::Subject { valid_up_to: 2, .. }
    ));
    assert!(matches!(
        errors[1].1,
        InvalidUtf8::ReplySubject { valid_up_to: 2, .. }
    ));
    connection.close().await;
}

#[test]
fn a_reply_with_a_non_utf8_reply_subject_fails_its_request_at_once() {
    let fake = FakeGateway::start(FakeBehaviour::mm2());
    let recorder = Recorder::default();
    let connection =
        Connection::connect(recorder.install(ConnectionParams::new(fake.address(), SERVICE)))
            .unwrap();
    connection.flush(PATIENCE).unwrap();
    let requester = connection.clone();
    let request = std::thread::spawn(move || {
        let started = Instant::now();
        let result = requester.send_request("Svc", &Message::new(), Duration::from_secs(60));
        (result, started.elapsed())
    });
    let mut inbox = None;
    assert!(mm_testkit::wait_until(PATIENCE, || {
        inbox = fake.reply_subject_of("Svc");
        inbox.is_some()
    }));
    let inbox = inbox.unwrap();
    // The inbox subscription has id 1 (see the client's requests module).
    fake.deliver(&delivery(1, inbox.as_bytes(), b"\xff", 7));

    let (result, elapsed) = request.join().unwrap();
    let Err(RequestError::InvalidUtf8Reply { subject, error }) = result else {
        panic!("{result:?}")
    };
    assert_eq!(subject, "Svc");
    assert!(matches!(
        error,
        InvalidUtf8::ReplySubject { valid_up_to: 0, .. }
    ));
    assert!(
        elapsed < Duration::from_secs(30),
        "failed at once, not at the timeout"
    );
    assert!(mm_testkit::wait_until(PATIENCE, || invalid_utf8_errors(
        &recorder
    )
    .len()
        == 1));
    assert_eq!(connection.stats().requests_in_flight, 0);
}
