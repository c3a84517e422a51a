//! The async front end on tokio runtimes (current-thread and multi-thread): streams, send,
//! send_request, flush, close — same engine, names and semantics as the blocking API.

mod common;

use std::pin::Pin;
use std::time::Duration;

use common::{PATIENCE, collector, expect, params};
use futures_core::Stream;
use messaging_mesh::{AsyncConnection, Connection, Message, RequestError};
use mm_testkit::GatewayProcess;

async fn connect(gateway: &GatewayProcess) -> AsyncConnection {
    AsyncConnection::connect(params(gateway)).await.unwrap()
}

#[tokio::test]
async fn stream_send_request_flush_on_a_current_thread_runtime() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway).await;
    let mut prices = connection.subscribe("PRICES.>").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    for n in 0..100 {
        connection
            .send("PRICES.IBM", &Message::new().add_i32("n", n))
            .await
            .unwrap();
    }
    for n in 0..100 {
        let message = tokio::time::timeout(PATIENCE, prices.next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(message.subject(), "PRICES.IBM");
        assert_eq!(message.message().get_i32("n"), Ok(n));
    }
    assert_eq!(prices.pending(), (0, 0));

    // A responder as a task over its own stream.
    let responder = connection.clone();
    let mut requests = connection.subscribe("Service.Add").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    let server = tokio::spawn(async move {
        while let Some(request) = requests.next().await {
            let body = request.message();
            let sum = body.get_f64("A").unwrap() + body.get_f64("B").unwrap();
            responder
                .send_reply(&request, &Message::new().add_f64("sum", sum))
                .await
                .unwrap();
        }
    });
    let reply = connection
        .send_request(
            "Service.Add",
            &Message::new().add_f64("A", 1.0).add_f64("B", 2.5),
            PATIENCE,
        )
        .await
        .unwrap();
    assert_eq!(reply.message().get_f64("sum"), Ok(3.5));
    let error = connection
        .send_request("Nobody.home", &Message::new(), PATIENCE)
        .await
        .unwrap_err();
    assert!(error.is_no_responders(), "{error:?}");
    connection.flush_mesh(PATIENCE).await.unwrap();

    // Closing ends every stream; the responder task finishes.
    connection.close().await;
    assert!(prices.next().await.is_none());
    tokio::time::timeout(PATIENCE, server)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        connection
            .send_request("Service.Add", &Message::new(), PATIENCE)
            .await,
        Err(RequestError::Closed)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_and_blocking_front_ends_share_one_connection() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway).await;
    let blocking = connection.to_blocking();
    let (callback, received) = collector();
    let _sub = blocking.subscribe("MIXED", callback).unwrap();
    connection.flush(PATIENCE).await.unwrap();
    connection
        .send_with_reply("MIXED", "R.S", &Message::new().add_i32("n", 1))
        .await
        .unwrap();
    let message = tokio::task::spawn_blocking(move || expect(&received))
        .await
        .unwrap();
    assert_eq!(message.reply_subject(), Some("R.S"));
    // The blocking API works from a runtime thread too (it needs no runtime of its own).
    blocking.send("MIXED", &Message::new()).unwrap();
    assert_eq!(blocking.stats().frames_out, connection.stats().frames_out);
    // Tasks on several workers requesting at once.
    let mut echo = connection.subscribe("Echo").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    let responder = connection.clone();
    tokio::spawn(async move {
        while let Some(request) = echo.next().await {
            let _ = responder.send_reply(&request, request.message()).await;
        }
    });
    let mut tasks = Vec::new();
    for task in 0..8 {
        let connection = connection.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..25 {
                let reply = connection
                    .send_request(
                        "Echo",
                        &Message::new().add_i32("n", task * 100 + n),
                        PATIENCE,
                    )
                    .await
                    .unwrap();
                assert_eq!(reply.message().get_i32("n"), Ok(task * 100 + n));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let blocking_clone = Connection::clone(&blocking);
    drop(blocking);
    drop(blocking_clone);
    // The async handle still holds the connection open.
    connection.flush(PATIENCE).await.unwrap();
    connection.close().await;
}

#[tokio::test]
async fn the_subscription_is_a_stream_and_dropping_it_unsubscribes() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway).await;
    let mut subscription = connection.subscribe("S.*").await.unwrap();
    let id = subscription.id();
    assert_eq!(subscription.pattern(), "S.*");
    connection.flush(PATIENCE).await.unwrap();
    connection.send("S.a", &Message::new()).await.unwrap();
    // Driven through the Stream trait itself.
    let next = std::future::poll_fn(|cx| Pin::new(&mut subscription).poll_next(cx));
    let message = tokio::time::timeout(PATIENCE, next).await.unwrap().unwrap();
    assert_eq!(message.subscription_id(), id);
    subscription.unsubscribe();
    assert!(subscription.next().await.is_none(), "the stream ends");
    drop(subscription);

    // Request timeouts are distinct here too.
    let _quiet = connection.subscribe("Quiet").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    let error = connection
        .send_request("Quiet", &Message::new(), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(connection.stats().requests_in_flight, 0);
}

/// The names the async front end had before it took the blocking front end's: still there,
/// deprecated, doing the same.
#[tokio::test]
#[allow(deprecated)]
async fn the_former_async_names_still_work() {
    let gateway = GatewayProcess::start(&[]);
    let connection = connect(&gateway).await;
    assert_eq!(connection.service(), common::SERVICE);
    let mut echo = connection.subscribe("Old.names").await.unwrap();
    connection.flush(PATIENCE).await.unwrap();
    let responder = connection.clone();
    tokio::spawn(async move {
        while let Some(request) = echo.next().await {
            if request.reply_subject().is_some() {
                let _ = responder.reply(&request, request.message()).await;
            }
        }
    });
    connection
        .publish("Old.names", &Message::new().add_i32("n", 1))
        .await
        .unwrap();
    connection
        .publish_with_reply("Old.names", "Nobody.listens", &Message::new())
        .await
        .unwrap();
    let reply = connection
        .request("Old.names", &Message::new().add_i32("n", 2), PATIENCE)
        .await
        .unwrap();
    assert_eq!(reply.message().get_i32("n"), Ok(2));
    connection.close().await;
    assert!(connection.is_closed());
}
