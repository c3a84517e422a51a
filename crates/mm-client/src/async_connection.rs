//! The async front end for tokio users: [`AsyncConnection`] and [`AsyncSubscription`], a
//! [`Stream`] of messages. Same engine, same semantics as the blocking API; nothing here blocks a
//! runtime thread (the engine runs on its own thread, and the two meet through runtime-agnostic
//! `tokio::sync` primitives), so it works on any tokio runtime, current-thread or multi-thread.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use mm_wire::Message;
use mm_wire::handshake::Protocol;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::oneshot;

use crate::connection::{Connection, flush_outcome, flush_push_error, request_outcome};
use crate::dispatch::{Sink, SubscriptionEntry};
use crate::engine::{self, Ready};
use crate::error::{ConnectError, FlushError, PublishError, RequestError, SubscribeError};
use crate::outbound::Admission;
use crate::params::ConnectionParams;
use crate::received::Received;
use crate::requests::Waiter;
use crate::shared::{Handle, Shared};
use crate::status::{ConnectionStats, ConnectionStatus, GatewayInfo};

/// A connection to a Messaging Mesh gateway, with an async API.
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
/// let conn = AsyncConnection::connect(ConnectionParams::new("127.0.0.1:5050", "VULCAN")).await?;
/// let mut prices = conn.subscribe("PRICES.>")?;
/// conn.publish("PRICES.IBM", &Message::new().add_f64("px", 123.4)).await?;
/// while let Some(message) = prices.next().await {
///     println!("{} {}", message.subject(), message.message());
/// }
/// let reply = conn.request("Service.Add", &Message::new(), Duration::from_secs(2)).await?;
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
        let (sender, receiver) = oneshot::channel();
        let shared = engine::start(params, Ready::Async(sender))?;
        match receiver.await {
            Ok(Ok(())) => Ok(AsyncConnection {
                handle: Arc::new(Handle { shared }),
            }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::Thread(std::io::Error::other(
                "the connection thread ended during connect",
            ))),
        }
    }

    pub(crate) fn from_handle(handle: Arc<Handle>) -> AsyncConnection {
        AsyncConnection { handle }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The blocking front end of this same connection.
    pub fn to_blocking(&self) -> Connection {
        Connection::from_handle(self.handle.clone())
    }

    /// Publishes `message` on `subject`; awaits only when the output is at its high-water mark.
    pub async fn publish(&self, subject: &str, message: &Message) -> Result<(), PublishError> {
        self.shared().publish_async(subject, "", message).await
    }

    /// Publishes with a reply subject.
    pub async fn publish_with_reply(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        self.shared()
            .publish_async(subject, reply_subject, message)
            .await
    }

    /// Answers `request` on its reply subject.
    pub async fn reply(&self, request: &Received, message: &Message) -> Result<(), PublishError> {
        let reply_subject =
            request
                .reply_subject()
                .ok_or_else(|| PublishError::NoReplySubject {
                    subject: request.subject().to_owned(),
                })?;
        self.shared()
            .publish_async(reply_subject, "", message)
            .await
    }

    /// Subscribes to `pattern`; messages arrive on the returned stream, which ends when the
    /// subscription does (dropped, unsubscribed, connection closed). The subscription's pending
    /// limit bounds how many messages the stream holds unread.
    pub fn subscribe(&self, pattern: &str) -> Result<AsyncSubscription, SubscribeError> {
        let (sender, receiver) = unbounded_channel();
        let entry = self
            .shared()
            .subscribe(pattern, Sink::Stream(std::sync::Mutex::new(Some(sender))))?;
        Ok(AsyncSubscription {
            shared: self.shared().clone(),
            entry,
            receiver,
        })
    }

    /// Sends a request and awaits the first reply, up to `timeout` (see
    /// [`Connection::send_request`] for the errors).
    pub async fn request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        let shared = self.shared();
        shared.check_request(subject)?;
        let (sender, receiver) = oneshot::channel();
        let (number, reply_subject) = shared.requests.register_reply(Waiter::Async(sender));
        let cancel = CancelReply {
            shared,
            number: Some(number),
        };
        shared
            .publish_async(subject, &reply_subject, message)
            .await?;
        let outcome = tokio::time::timeout(timeout, receiver).await;
        drop(cancel);
        match outcome {
            Ok(Ok(outcome)) => request_outcome(outcome, subject),
            Ok(Err(_)) => Err(RequestError::Closed),
            Err(_) => Err(RequestError::Timeout {
                subject: subject.to_owned(),
                timeout,
            }),
        }
    }

    /// A new unique inbox subject (see [`Connection::create_inbox`]).
    pub fn create_inbox(&self) -> String {
        self.shared().requests.create_inbox()
    }

    /// Awaits the gateway's confirmation that everything sent before was processed (see
    /// [`Connection::flush`]).
    pub async fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.flush_inner(timeout, false).await
    }

    /// Mesh-wide flush (see [`Connection::flush_mesh`]).
    pub async fn flush_mesh(&self, timeout: Duration) -> Result<(), FlushError> {
        self.flush_inner(timeout, true).await
    }

    async fn flush_inner(&self, timeout: Duration, mesh: bool) -> Result<(), FlushError> {
        let shared = self.shared();
        let (sender, receiver) = oneshot::channel();
        let waiter = Waiter::Async(sender);
        let work = async {
            if shared.protocol() == Protocol::Mm1 {
                let (number, inbox) = shared.requests.register_reply(waiter);
                let _cancel = CancelReply {
                    shared,
                    number: Some(number),
                };
                shared
                    .outbound
                    .push_async(Admission::Publish, |out| {
                        mm_wire::encode_frame(
                            out,
                            &mm_wire::Header::send_message(&inbox),
                            &Message::new(),
                        )
                    })
                    .await
                    .map_err(|error| flush_push_error(shared, error))?;
                receiver
                    .await
                    .map_or(Err(FlushError::Closed), flush_outcome)
            } else {
                let number = shared.requests.register_pong(waiter);
                let _cancel = CancelPong { shared, number };
                shared
                    .push_flush_ping(number, mesh)
                    .map_err(|error| flush_push_error(shared, error))?;
                receiver
                    .await
                    .map_or(Err(FlushError::Closed), flush_outcome)
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or(Err(FlushError::Timeout { timeout }))
    }

    /// Closes the connection (every clone) and awaits the engine (see [`Connection::close`]).
    pub async fn close(&self) {
        self.shared().close_async().await;
    }

    /// Where the connection stands.
    pub fn status(&self) -> ConnectionStatus {
        self.shared().status()
    }

    /// The gateway currently (or last) connected to.
    pub fn gateway(&self) -> Option<GatewayInfo> {
        self.shared().gateway().clone()
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.shared().stats()
    }
}

impl fmt::Debug for AsyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("AsyncConnection")
            .field("address", &shared.params.address)
            .field("service", &shared.params.service)
            .field("status", &shared.status())
            .finish()
    }
}

/// Forgets a reply waiter when the request future ends or is dropped (cancelled).
struct CancelReply<'a> {
    shared: &'a Shared,
    number: Option<u64>,
}

impl Drop for CancelReply<'_> {
    fn drop(&mut self) {
        if let Some(number) = self.number.take() {
            self.shared.requests.cancel_reply(number);
        }
    }
}

/// Forgets a PONG waiter when the flush future ends or is dropped.
struct CancelPong<'a> {
    shared: &'a Shared,
    number: u64,
}

impl Drop for CancelPong<'_> {
    fn drop(&mut self) {
        self.shared.requests.cancel_pong(self.number);
    }
}

/// A subscription whose messages arrive as a [`Stream`]. Dropping it ends the subscription.
#[must_use = "dropping an AsyncSubscription unsubscribes at once"]
pub struct AsyncSubscription {
    shared: Arc<Shared>,
    entry: Arc<SubscriptionEntry>,
    receiver: UnboundedReceiver<Received>,
}

impl AsyncSubscription {
    /// The next message; `None` once the subscription has ended.
    pub async fn next(&mut self) -> Option<Received> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The subscription id.
    pub fn id(&self) -> u32 {
        self.entry.id
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.entry.pattern
    }

    /// Messages waiting to be read: (messages, bytes).
    pub fn pending(&self) -> (usize, usize) {
        self.entry.pending()
    }

    /// Messages dropped because the subscription passed its pending limit.
    pub fn dropped(&self) -> u64 {
        self.entry.dropped()
    }

    /// Ends the subscription; messages already received can still be read, then the stream ends.
    pub fn unsubscribe(&mut self) {
        self.shared.unsubscribe(&self.entry);
    }
}

impl Stream for AsyncSubscription {
    type Item = Received;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Received>> {
        let this = self.get_mut();
        match this.receiver.poll_recv(cx) {
            Poll::Ready(Some(received)) => {
                this.entry.release(received.size());
                this.entry.count_delivered();
                Poll::Ready(Some(received))
            }
            other => other,
        }
    }
}

impl Drop for AsyncSubscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.entry);
    }
}

impl fmt::Debug for AsyncSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncSubscription")
            .field("id", &self.entry.id)
            .field("pattern", &self.entry.pattern)
            .finish()
    }
}
