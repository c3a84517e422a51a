//! The blocking, RV-style front end: [`Connection`] and [`Subscription`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mm_wire::Message;

use crate::client::{Client, Handle, Subscribed};
use crate::error::{
    ConnectError, DispatchError, FlushError, PublishError, RequestError, SubscribeError,
};
use crate::params::ConnectionParams;
use crate::received::Received;
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
/// let conn = Connection::connect(ConnectionParams::new("127.0.0.1:5050", "DEFAULT"))?;
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
    /// [`DispatchMode::Callbacks`](crate::DispatchMode::Callbacks).
    pub fn connect(params: ConnectionParams) -> Result<Connection, ConnectError> {
        Client::connect(params).map(|client| Connection::from_handle(Arc::new(Handle::new(client))))
    }

    pub(crate) fn from_handle(handle: Arc<Handle>) -> Connection {
        Connection { handle }
    }

    pub(crate) fn handle(&self) -> &Arc<Handle> {
        &self.handle
    }

    fn client(&self) -> &Client {
        self.handle.client()
    }

    /// Publishes `message` on `subject`.
    ///
    /// Returns once the frame is queued for the engine (it is written with the next batch).
    /// Waits only when the output is at its high-water mark. While the connection is
    /// reconnecting, publishes are buffered up to the reconnect bound and replayed.
    pub fn send(&self, subject: &str, message: &Message) -> Result<(), PublishError> {
        self.client().publish(subject, "", message)
    }

    /// Publishes `message` on `subject` with a reply subject for the receivers to answer on.
    pub fn send_with_reply(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        self.client().publish(subject, reply_subject, message)
    }

    /// Answers `request` by publishing `message` on its reply subject.
    pub fn send_reply(&self, request: &Received, message: &Message) -> Result<(), PublishError> {
        let reply_subject = Client::reply_subject_of(request)?;
        self.client().publish(reply_subject, "", message)
    }

    /// Subscribes to `pattern` (wildcards allowed); `callback` runs for every message, on the
    /// library's dispatch thread or in [`process_message_queue`](Connection::process_message_queue)
    /// depending on the [`DispatchMode`](crate::DispatchMode).
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
        let mut callback = callback;
        self.subscribe_owned(pattern, move |received| callback(&received))
    }

    /// As [`subscribe`](Connection::subscribe), but the callback takes each message by value: for
    /// a callback that keeps or hands on the message (to a queue, another thread, a binding in
    /// another language), which then costs no copy.
    pub fn subscribe_owned<F>(
        &self,
        pattern: &str,
        callback: F,
    ) -> Result<Subscription, SubscribeError>
    where
        F: FnMut(Received) + Send + 'static,
    {
        let subscribed = self
            .client()
            .subscribe_callback(pattern, Box::new(callback))?;
        Ok(Subscription { subscribed })
    }

    /// Sends a request and waits up to `timeout` for the first reply.
    ///
    /// Fails with [`RequestError::Timeout`] when no reply comes in time and with
    /// [`RequestError::NoResponders`] as soon as an MM/2 gateway says nobody is subscribed (MM/1
    /// gateways cannot say so: the request times out). Fails at once with
    /// [`RequestError::Disconnected`] when the connection is down or is lost meanwhile.
    ///
    /// The reply is handed over by the engine directly, so this works from any thread, inside a
    /// subscription callback, and in queue mode without anyone processing the queue. The calling
    /// thread polls for the reply for a short bounded window before it sleeps (see
    /// [`ConnectionParams::with_request_spin`]).
    pub fn send_request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        self.client().request(subject, message, timeout)
    }

    /// A new unique inbox subject, for the application's own subscriptions (replies that come in
    /// several parts, say). Unguessable; never matched by the connection's request inbox.
    pub fn create_inbox(&self) -> String {
        self.client().create_inbox()
    }

    /// Waits until the gateway has processed everything this connection sent before — its
    /// subscriptions included — or `timeout` passes (SPEC §7.5). On an MM/1 gateway this sends
    /// a message to the connection's own inbox and waits for it to come back.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.client().flush(timeout, false)
    }

    /// Like [`flush`](Connection::flush), and also waits until every mesh link of the gateway
    /// has confirmed the interest changes this connection caused: after it, a publish anywhere in
    /// the mesh reaches this connection's subscriptions. Same as `flush` on an MM/1 gateway.
    pub fn flush_mesh(&self, timeout: Duration) -> Result<(), FlushError> {
        self.client().flush(timeout, true)
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
        self.client().process_message_queue(timeout, max)
    }

    /// Makes a [`process_message_queue`](Connection::process_message_queue) that is waiting (or
    /// the next one) return at once.
    pub fn wake_up(&self) {
        self.client().wake_up();
    }

    /// Messages waiting in the dispatch queue.
    pub fn queued_messages(&self) -> usize {
        self.client().queued_messages()
    }

    /// Closes the connection (every clone): writes queued output, sends DISCONNECT, fails
    /// requests in flight, ends subscriptions, and tells the hook `Closed`. Waits (up to 10 s) for
    /// the engine to finish. Closing twice is harmless.
    pub fn close(&self) {
        self.client().close();
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

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = self.client();
        f.debug_struct("Connection")
            .field("address", &client.params().address())
            .field("service", &client.params().service())
            .field("status", &client.status())
            .finish()
    }
}

/// A live subscription. Dropping it (or calling [`unsubscribe`](Subscription::unsubscribe)) ends
/// it: no callback runs for it afterwards, and the gateway is told. When a callback of this
/// subscription is running on another thread, ending it waits for that callback to return, so
/// whatever the callback uses may be freed right after; ended from inside its own callback, it
/// does not wait (that call finishes normally).
#[must_use = "dropping a Subscription unsubscribes at once"]
pub struct Subscription {
    subscribed: Subscribed,
}

impl Subscription {
    /// The subscription id (as in [`Received::subscription_id`]).
    pub fn id(&self) -> u32 {
        self.subscribed.id()
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        self.subscribed.pattern()
    }

    /// Ends the subscription (same as dropping it).
    pub fn unsubscribe(self) {}

    /// Messages waiting for the callback: (messages, bytes).
    pub fn pending(&self) -> (usize, usize) {
        self.subscribed.pending()
    }

    /// Messages dropped because the subscription passed its pending limit.
    pub fn dropped(&self) -> u64 {
        self.subscribed.dropped()
    }

    /// Messages handed to the callback.
    pub fn delivered(&self) -> u64 {
        self.subscribed.delivered()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id())
            .field("pattern", &self.pattern())
            .finish()
    }
}
