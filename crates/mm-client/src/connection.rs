//! The blocking, RV-style front end: [`Connection`] and [`Subscription`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mm_wire::Message;
use mm_wire::handshake::Protocol;

use crate::async_connection::AsyncConnection;
use crate::dispatch::{Sink, SubscriptionEntry};
use crate::engine::{self, Ready};
use crate::error::{
    ConnectError, DispatchError, FlushError, PublishError, RequestError, SubscribeError,
};
use crate::outbound::Admission;
use crate::params::{ConnectionParams, DispatchMode};
use crate::received::Received;
use crate::reply_wait::WaitFailed;
use crate::requests::{Outcome, Waiter};
use crate::shared::{Handle, Shared, publish_error};
use crate::status::{ConnectionStats, ConnectionStatus, GatewayInfo};

/// A connection to a Messaging Mesh gateway, with a blocking API that needs no async runtime.
///
/// `Connection` is `Send + Sync` and cheap to clone: clones share one connection (and one
/// engine thread). Any thread may publish, subscribe and request at once, including from inside
/// a subscription callback. The connection closes when [`close`](Connection::close) is called or
/// the last clone (blocking or async) is dropped; either way queued output is written and the
/// gateway gets DISCONNECT.
///
/// ```no_run
/// use std::time::Duration;
/// use messaging_mesh::{Connection, ConnectionParams, Message, Received};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let conn = Connection::connect(ConnectionParams::new("127.0.0.1:5050", "VULCAN"))?;
/// let _sub = conn.subscribe("PRICES.>", |m: &Received| println!("{} {}", m.subject(), m.message()))?;
/// conn.send("PRICES.IBM", &Message::new().add_string("sym", "IBM").add_f64("px", 123.4))?;
/// let request = Message::new().add_f64("A", 0.5).add_f64("B", 1.5);
/// match conn.send_request("Service.Add", &request, Duration::from_secs(2)) {
///     Ok(reply) => println!("sum = {}", reply.message()),
///     Err(error) if error.is_no_responders() => println!("nobody serves Service.Add"),
///     Err(error) => return Err(error.into()),
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Connection {
    handle: Arc<Handle>,
}

impl Connection {
    /// Connects to the gateway and completes the handshake (waiting up to the connect timeout
    /// for its ACK). Starts the connection's engine thread, and its dispatch thread in
    /// [`DispatchMode::Callbacks`].
    pub fn connect(params: ConnectionParams) -> Result<Connection, ConnectError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let shared = engine::start(params, Ready::Blocking(sender))?;
        match receiver.recv() {
            Ok(Ok(())) => Ok(Connection::from_shared(shared)),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::Thread(std::io::Error::other(
                "the connection thread ended during connect",
            ))),
        }
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Connection {
        Connection {
            handle: Arc::new(Handle { shared }),
        }
    }

    pub(crate) fn from_handle(handle: Arc<Handle>) -> Connection {
        Connection { handle }
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The async front end of this same connection.
    pub fn to_async(&self) -> AsyncConnection {
        AsyncConnection::from_handle(self.handle.clone())
    }

    /// Publishes `message` on `subject`.
    ///
    /// Returns once the frame is queued for the engine (it is written with the next batch).
    /// Waits only when the output is at its high-water mark. While the connection is
    /// reconnecting, publishes are buffered up to the reconnect bound and replayed.
    pub fn send(&self, subject: &str, message: &Message) -> Result<(), PublishError> {
        self.shared().publish_blocking(subject, "", message)
    }

    /// Publishes `message` on `subject` with a reply subject for the receivers to answer on.
    pub fn send_with_reply(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        self.shared()
            .publish_blocking(subject, reply_subject, message)
    }

    /// Answers `request` by publishing `message` on its reply subject.
    pub fn send_reply(&self, request: &Received, message: &Message) -> Result<(), PublishError> {
        let reply_subject =
            request
                .reply_subject()
                .ok_or_else(|| PublishError::NoReplySubject {
                    subject: request.subject().to_owned(),
                })?;
        self.shared().publish_blocking(reply_subject, "", message)
    }

    /// Subscribes to `pattern` (wildcards allowed); `callback` runs for every message, on the
    /// library's dispatch thread or in [`process_message_queue`](Connection::process_message_queue)
    /// depending on the [`DispatchMode`].
    ///
    /// The subscription lasts until the returned [`Subscription`] is dropped or
    /// [`unsubscribe`](Subscription::unsubscribe)d, or the connection closes. It is renewed
    /// automatically after a reconnect. Use [`flush`](Connection::flush) to know that the gateway
    /// has it.
    ///
    /// A callback may call back into the connection (publish, subscribe, even a blocking
    /// [`send_request`](Connection::send_request)). A callback that panics is logged and reported
    /// through the notification hook, and dispatch carries on. A callback that captures a clone of
    /// the connection keeps the connection open until the subscription ends or `close` is called.
    pub fn subscribe<F>(&self, pattern: &str, callback: F) -> Result<Subscription, SubscribeError>
    where
        F: FnMut(&Received) + Send + 'static,
    {
        let entry = self.shared().subscribe(
            pattern,
            Sink::Callback(std::sync::Mutex::new(Box::new(callback))),
        )?;
        Ok(Subscription {
            shared: self.shared().clone(),
            entry,
        })
    }

    /// Sends a request and waits up to `timeout` for the first reply.
    ///
    /// Fails with [`RequestError::Timeout`] when no reply comes in time and with
    /// [`RequestError::NoResponders`] as soon as an MM/2 gateway says nobody is subscribed (MM/1
    /// gateways cannot say so: the request times out). Fails at once with
    /// [`RequestError::Disconnected`] when the connection is down or is lost meanwhile.
    ///
    /// The reply is handed over by the engine directly, so this works from any thread, inside a
    /// subscription callback, and in queue mode without anyone processing the queue.
    pub fn send_request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        let shared = self.shared();
        shared.check_request(subject)?;
        let start = Instant::now();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let (number, reply_subject) = shared.requests.register_reply(Waiter::Blocking(sender));
        if let Err(error) = shared.publish_blocking(subject, &reply_subject, message) {
            shared.requests.cancel_reply(number);
            return Err(error.into());
        }
        let cancel = || shared.requests.cancel_reply(number);
        match shared.reply_wait.wait(&receiver, start, timeout, cancel) {
            Ok(outcome) => request_outcome(outcome, subject),
            Err(WaitFailed::Timeout) => Err(RequestError::Timeout {
                subject: subject.to_owned(),
                timeout,
            }),
            Err(WaitFailed::Closed) => Err(RequestError::Closed),
        }
    }

    /// A new unique inbox subject, for the application's own subscriptions (replies that come in
    /// several parts, say). Unguessable; never matched by the connection's request inbox.
    pub fn create_inbox(&self) -> String {
        self.shared().requests.create_inbox()
    }

    /// Waits until the gateway has processed everything this connection sent before — its
    /// subscriptions included — or `timeout` passes (SPEC §7.5). On an MM/1 gateway this sends
    /// a message to the connection's own inbox and waits for it to come back.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.flush_inner(timeout, false)
    }

    /// Like [`flush`](Connection::flush), and also waits until every mesh link of the gateway
    /// has confirmed the interest changes this connection caused: after it, a publish anywhere in
    /// the mesh reaches this connection's subscriptions. Same as `flush` on an MM/1 gateway.
    pub fn flush_mesh(&self, timeout: Duration) -> Result<(), FlushError> {
        self.flush_inner(timeout, true)
    }

    fn flush_inner(&self, timeout: Duration, mesh: bool) -> Result<(), FlushError> {
        let shared = self.shared();
        let start = Instant::now();
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let waiter = Waiter::Blocking(sender);
        let cancel: Box<dyn Fn() + '_> = if shared.protocol() == Protocol::Mm1 {
            let (number, inbox) = shared.requests.register_reply(waiter);
            let pushed = shared.outbound.push_blocking(Admission::Publish, |out| {
                mm_wire::encode_frame(out, &mm_wire::Header::send_message(&inbox), &Message::new())
            });
            if let Err(error) = pushed {
                shared.requests.cancel_reply(number);
                return Err(flush_push_error(shared, error));
            }
            Box::new(move || shared.requests.cancel_reply(number))
        } else {
            let number = shared.requests.register_pong(waiter);
            if let Err(error) = shared.push_flush_ping(number, mesh) {
                shared.requests.cancel_pong(number);
                return Err(flush_push_error(shared, error));
            }
            Box::new(move || shared.requests.cancel_pong(number))
        };
        match shared.reply_wait.wait(&receiver, start, timeout, cancel) {
            Ok(outcome) => flush_outcome(outcome),
            Err(WaitFailed::Timeout) => Err(FlushError::Timeout { timeout }),
            Err(WaitFailed::Closed) => Err(FlushError::Closed),
        }
    }

    /// Queue mode: waits up to `timeout` for a message, then runs the callbacks of the messages
    /// waiting, at most `max` in all (0: no limit), on this thread. Returns `(processed,
    /// remaining)`. Returns early with `(0, remaining)` after [`wake_up`](Connection::wake_up).
    ///
    /// Fails with [`DispatchError::NotQueueMode`] in callback mode (the dispatch thread owns the
    /// queue there), and with [`DispatchError::Closed`] once the connection is closed.
    pub fn process_message_queue(
        &self,
        timeout: Duration,
        max: usize,
    ) -> Result<(usize, usize), DispatchError> {
        let shared = self.shared();
        if shared.params.dispatch_mode != DispatchMode::Queue {
            return Err(DispatchError::NotQueueMode);
        }
        shared
            .dispatch
            .process(timeout, max, &|panicked| shared.on_panic(panicked))
            .map_err(|()| DispatchError::Closed)
    }

    /// Makes a [`process_message_queue`](Connection::process_message_queue) that is waiting (or
    /// the next one) return at once.
    pub fn wake_up(&self) {
        self.shared().dispatch.wake_up();
    }

    /// Messages waiting in the dispatch queue.
    pub fn queued_messages(&self) -> usize {
        self.shared().dispatch.len()
    }

    /// Closes the connection (every clone): writes queued output, sends DISCONNECT, fails
    /// requests in flight, ends subscriptions, and tells the hook `Closed`. Waits (up to 10 s) for
    /// the engine to finish. Closing twice is harmless.
    pub fn close(&self) {
        self.shared().close_blocking();
    }

    /// Where the connection stands.
    pub fn status(&self) -> ConnectionStatus {
        self.shared().status()
    }

    /// Whether the connection is closed.
    pub fn is_closed(&self) -> bool {
        self.status() == ConnectionStatus::Closed
    }

    /// The gateway currently (or last) connected to.
    pub fn gateway(&self) -> Option<GatewayInfo> {
        self.shared().gateway().clone()
    }

    /// The service this connection belongs to.
    pub fn service(&self) -> &str {
        &self.shared().params.service
    }

    /// The connection's counters.
    pub fn stats(&self) -> ConnectionStats {
        self.shared().stats()
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("Connection")
            .field("address", &shared.params.address)
            .field("service", &shared.params.service)
            .field("status", &shared.status())
            .finish()
    }
}

/// Maps a request's outcome to its result.
pub(crate) fn request_outcome(outcome: Outcome, subject: &str) -> Result<Received, RequestError> {
    match outcome {
        Outcome::Reply(received) => Ok(received),
        Outcome::NoResponders => Err(RequestError::NoResponders {
            subject: subject.to_owned(),
        }),
        Outcome::Undecodable(error) => Err(RequestError::UndecodableReply {
            subject: subject.to_owned(),
            error,
        }),
        Outcome::Disconnected => Err(RequestError::Disconnected),
        Outcome::Closed | Outcome::Pong => Err(RequestError::Closed),
    }
}

/// Maps a flush's outcome to its result.
pub(crate) fn flush_outcome(outcome: Outcome) -> Result<(), FlushError> {
    match outcome {
        Outcome::Pong | Outcome::Reply(_) => Ok(()),
        Outcome::Disconnected | Outcome::NoResponders | Outcome::Undecodable(_) => {
            Err(FlushError::Disconnected)
        }
        Outcome::Closed => Err(FlushError::Closed),
    }
}

/// A flush whose PING (or inbox message) could not be queued.
pub(crate) fn flush_push_error(shared: &Shared, error: crate::outbound::PushError) -> FlushError {
    match publish_error(error) {
        PublishError::Closed if shared.status() != ConnectionStatus::Closed => {
            FlushError::Disconnected
        }
        PublishError::ReconnectBufferFull { .. } => FlushError::Disconnected,
        _ => FlushError::Closed,
    }
}

/// A live subscription. Dropping it (or calling [`unsubscribe`](Subscription::unsubscribe)) ends
/// it: no callback runs for it afterwards, and the gateway is told.
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    shared: Arc<Shared>,
    entry: Arc<SubscriptionEntry>,
}

impl Subscription {
    /// The subscription id (as in [`Received::subscription_id`]).
    pub fn id(&self) -> u32 {
        self.entry.id
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.entry.pattern
    }

    /// Ends the subscription (same as dropping it).
    pub fn unsubscribe(self) {}

    /// Messages waiting for the callback: (messages, bytes).
    pub fn pending(&self) -> (usize, usize) {
        self.entry.pending()
    }

    /// Messages dropped because the subscription passed its pending limit.
    pub fn dropped(&self) -> u64 {
        self.entry.dropped()
    }

    /// Messages handed to the callback.
    pub fn delivered(&self) -> u64 {
        self.entry.delivered()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.shared.unsubscribe(&self.entry);
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.entry.id)
            .field("pattern", &self.entry.pattern)
            .finish()
    }
}
