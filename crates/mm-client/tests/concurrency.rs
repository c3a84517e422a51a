//! Thread safety: many threads publishing, subscribing and requesting at once, with callbacks
//! re-entering the connection.

mod common;

use common::{PATIENCE, collector, connect, expect_many};
use messaging_mesh::{Message, Received};
use mm_testkit::GatewayProcess;
use std::sync::Arc;

#[test]
fn many_threads_publish_and_request_at_once() {
    let gateway = GatewayProcess::start(&[]);
    let server = connect(&gateway);
    let responder = server.clone();
    let _service = server
        .subscribe("Service.Echo", move |request: &Received| {
            responder.send_reply(request, request.message()).unwrap();
        })
        .unwrap();
    let (callback, received) = collector();
    let _sink = server.subscribe("FANIN.>", callback).unwrap();
    server.flush(PATIENCE).unwrap();

    let client = connect(&gateway);
    const THREADS: usize = 6;
    const EACH: usize = 2_000;
    const REQUESTS: usize = 100;
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let client = &client;
            scope.spawn(move || {
                for n in 0..EACH {
                    client
                        .send(
                            &format!("FANIN.{thread}"),
                            &Message::new().add_u64("n", n as u64),
                        )
                        .unwrap();
                }
            });
            scope.spawn(move || {
                for n in 0..REQUESTS {
                    let tag = format!("{thread}-{n}");
                    let reply = client
                        .send_request(
                            "Service.Echo",
                            &Message::new().add_string("tag", tag.as_str()),
                            PATIENCE,
                        )
                        .unwrap();
                    assert_eq!(reply.message().get_string("tag"), Ok(tag.as_str()));
                }
            });
        }
    });
    let messages = expect_many(&received, THREADS * EACH);
    // Per publisher thread, order is kept.
    for thread in 0..THREADS {
        let subject = format!("FANIN.{thread}");
        let numbers: Vec<u64> = messages
            .iter()
            .filter(|m| m.subject() == subject)
            .map(|m| m.message().get_u64("n").unwrap())
            .collect();
        assert_eq!(numbers, (0..EACH as u64).collect::<Vec<_>>(), "{subject}");
    }
    assert_eq!(client.stats().requests_in_flight, 0);
}

#[test]
fn callbacks_reenter_the_connection() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway);
    let (callback, echoes) = collector();
    let _echoes = connection.subscribe("REENTER.echo", callback).unwrap();
    let inner = connection.clone();
    let subscriptions = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = subscriptions.clone();
    let _trigger = connection
        .subscribe("REENTER.trigger", move |m: &Received| {
            // Subscribe, unsubscribe, flush and publish, all from inside a callback.
            let sub = inner.subscribe("REENTER.inner", |_| {}).unwrap();
            let mut kept = keep.lock().unwrap();
            kept.push(sub);
            if kept.len() > 2 {
                // Unsubscribes, from inside a callback.
                drop(kept.remove(0));
            }
            drop(kept);
            inner.flush(PATIENCE).unwrap();
            inner.send("REENTER.echo", m.message()).unwrap();
        })
        .unwrap();
    connection.flush(PATIENCE).unwrap();
    for n in 0..50 {
        connection
            .send("REENTER.trigger", &Message::new().add_i32("n", n))
            .unwrap();
    }
    let numbers: Vec<i32> = expect_many(&echoes, 50)
        .iter()
        .map(|m| m.message().get_i32("n").unwrap())
        .collect();
    assert_eq!(numbers, (0..50).collect::<Vec<_>>());
    // Closing from inside a callback does not deadlock.
    let closer = connection.clone();
    let (done, closed) = std::sync::mpsc::channel();
    let _closer = connection
        .subscribe("REENTER.close", move |_| {
            closer.close();
            let _ = done.send(());
        })
        .unwrap();
    connection.send("REENTER.close", &Message::new()).unwrap();
    closed.recv_timeout(PATIENCE).unwrap();
    assert!(connection.is_closed());
    drop(subscriptions);
}
