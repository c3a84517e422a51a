//! The async front end for tokio users: [`AsyncConnection`] and [`AsyncSubscription`], a
//! [`Stream`] of messages. Same engine, same operation names, same semantics as the blocking API
//! (each method is one call into [`Client`]); nothing here blocks a runtime thread (the engine
//! runs on its own thread, and the two meet through runtime-agnostic primitives), so it works on
//! any tokio runtime, current-thread or multi-thread.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use mm_wire::Message;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::client::{Client, Handle, Subscribed};
use crate::connection::Connection;
use crate::error::{ConnectError, FlushError, PublishError, RequestError, SubscribeError};
use crate::params::ConnectionParams;
use crate::received::Received;
use crate::status::{ConnectionStats, ConnectionStatus, GatewayInfo};

/// A connection to a Messaging Mesh gateway, with an async API.
///
/// The operations have the names and semantics of the blocking [`Connection`]'s — `send`,
/// `send_with_reply`, `send_reply`, `subscribe`, `send_request`, `flush`, `close` — and are
/// `async`; a subscription is a [`Stream`] instead of a callback.
///
/// Cheap to clone; clones (and [`Connection`]s made with
/// [`to_blocking`](AsyncConnection::to_blocking)) share one connection. Prefer
/// [`close`](AsyncConnection::close)`.await` to dropping the last handle: dropping closes too,
/// but waits for the engine synchronously.
///
/// ```no_run
/// use std::time::Duration;
/// use messaging_mesh::{AsyncConnection, ConnectionParams, Message};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = AsyncConnection::connect(ConnectionParams::new("127.0.0.1:5050", "DEFAULT")).await?;
/// let mut prices = conn.subscribe("PRICES.>").await?;
/// conn.send("PRICES.IBM", &Message::new().add_f64("px", 123.4)).await?;
/// while let Some(message) = prices.next().await {
///     println!("{} {}", message.subject(), message.message());
/// }
/// let reply = conn.send_request("Service.Add", &Message::new(), Duration::from_secs(2)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncConnection {
    handle: Arc<Handle>,
}

impl AsyncConnection {
    /// Connects to the gateway and completes the handshake (see [`Connection::connect`]).
    pub async fn connect(params: ConnectionParams) -> Result<AsyncConnection, ConnectError> {
        let client = Client::connect_async(params).await?;
        Ok(AsyncConnection::from_handle(Arc::new(Handle::new(client))))
    }

    fn from_handle(handle: Arc<Handle>) -> AsyncConnection {
        AsyncConnection { handle }
    }

    fn client(&self) -> &Client {
        self.handle.client()
    }

    /// The blocking front end of this same connection.
    pub fn to_blocking(&self) -> Connection {
        Connection::from_handle(self.handle.clone())
    }

    /// Publishes `message` on `subject` (see [`Connection::send`]); awaits only when the output
    /// is at its high-water mark.
    pub async fn send(&self, subject: &str, message: &Message) -> Result<(), PublishError> {
        self.client().publish_async(subject, "", message).await
    }

    /// Publishes `message` on `subject` with a reply subject for the receivers to answer on.
    pub async fn send_with_reply(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        self.client()
            .publish_async(subject, reply_subject, message)
            .await
    }

    /// Answers `request` by publishing `message` on its reply subject.
    pub async fn send_reply(
        &self,
        request: &Received,
        message: &Message,
    ) -> Result<(), PublishError> {
        let reply_subject = Client::reply_subject_of(request)?;
        self.client()
            .publish_async(reply_subject, "", message)
            .await
    }

    /// Subscribes to `pattern` (wildcards allowed); messages arrive on the returned stream, which
    /// ends when the subscription does (dropped, unsubscribed, connection closed). The
    /// subscription's pending limit bounds how many messages the stream holds unread. Like
    /// [`Connection::subscribe`], it returns once the SUBSCRIBE is queued; use
    /// [`flush`](AsyncConnection::flush) to know that the gateway has it.
    pub async fn subscribe(&self, pattern: &str) -> Result<AsyncSubscription, SubscribeError> {
        let (subscribed, receiver) = self.client().subscribe_stream(pattern)?;
        Ok(AsyncSubscription {
            subscribed,
            receiver,
        })
    }

    /// Sends a request and awaits the first reply, up to `timeout` (see
    /// [`Connection::send_request`] for the errors). Never spins: the task simply awaits.
    pub async fn send_request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        self.client().request_async(subject, message, timeout).await
    }

    /// Former name of [`send`](AsyncConnection::send).
    #[deprecated(note = "renamed `send`, as on the blocking `Connection`")]
    pub async fn publish(&self, subject: &str, message: &Message) -> Result<(), PublishError> {
        self.send(subject, message).await
    }

    /// Former name of [`send_with_reply`](AsyncConnection::send_with_reply).
    #[deprecated(note = "renamed `send_with_reply`, as on the blocking `Connection`")]
    pub async fn publish_with_reply(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        self.send_with_reply(subject, reply_subject, message).await
    }

    /// Former name of [`send_reply`](AsyncConnection::send_reply).
    #[deprecated(note = "renamed `send_reply`, as on the blocking `Connection`")]
    pub async fn reply(&self, request: &Received, message: &Message) -> Result<(), PublishError> {
        self.send_reply(request, message).await
    }

    /// Former name of [`send_request`](AsyncConnection::send_request).
    #[deprecated(note = "renamed `send_request`, as on the blocking `Connection`")]
    pub async fn request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        self.send_request(subject, message, timeout).await
    }

    /// A new unique inbox subject (see [`Connection::create_inbox`]).
    pub fn create_inbox(&self) -> String {
        self.client().create_inbox()
    }

    /// Awaits the gateway's confirmation that everything sent before was processed (see
    /// [`Connection::flush`]).
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.client().flush_async(timeout, false).await
    }

    /// Mesh-wide flush (see [`Connection::flush_mesh`]).
    pub async fn flush_mesh(&self, timeout: Duration) -> Result<(), FlushError> {
        self.client().flush_async(timeout, true).await
    }

    /// Closes the connection (every clone) and awaits the engine (see [`Connection::close`]).
    pub async fn close(&self) {
        self.client().close_async().await;
    }

    /// Where the connection stands.
    pub fn status(&self) -> ConnectionStatus {
        self.client().status()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.status() == ConnectionStatus::Closed
    }

    /// The gateway currently (or last) connected to.
    pub fn gateway(&self) -> Option<GatewayInfo> {
        self.client().gateway()
    }

    /// The service this connection belongs to.
    pub fn service(&self) -> &str {
        self.client().params().service()
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.client().stats()
    }
}

impl Connection {
    /// The async front end of this same connection.
    pub fn to_async(&self) -> AsyncConnection {
        AsyncConnection::from_handle(self.handle().clone())
    }
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = self.client();
        f.debug_struct("AsyncConnection")
            .field("address", &client.params().address())
            .field("service", &client.params().service())
            .field("status", &client.status())
            .finish()
    }
}

/// A subscription whose messages arrive as a [`Stream`]. Dropping it ends the subscription.
#[must_use = "dropping an AsyncSubscription unsubscribes at once"]
pub struct AsyncSubscription {
    subscribed: Subscribed,
    receiver: UnboundedReceiver<Received>,
}

impl AsyncSubscription {
    /// The next message; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Received> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The subscription id.
    pub fn id(&self) -> u32 {
        self.subscribed.id()
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        self.subscribed.pattern()
    }

    /// Messages waiting to be read: (messages, bytes).
    pub fn pending(&self) -> (usize, usize) {
        self.subscribed.pending()
    }

    /// Messages dropped because the subscription passed its pending limit.
    pub fn dropped(&self) -> u64 {
        self.subscribed.dropped()
    }

    /// Ends the subscription; messages already received can still be read, then the stream ends.
    pub fn unsubscribe(&mut self) {
        self.subscribed.unsubscribe();
    }
}

impl Stream for AsyncSubscription {
    type Item = Received;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let this = self.get_mut();
        let polled = this.receiver.poll_recv(cx);
        if let Poll::Ready(Some(received)) = &polled {
            this.subscribed.taken(received);
        }
        polled
    }
}

impl fmt::Debug for AsyncSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubscription")
            .field("id", &self.id())
            .field("pattern", &self.pattern())
            .finish()
    }
}
