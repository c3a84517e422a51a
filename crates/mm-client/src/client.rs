//! [`Client`]: the operations that both front ends — blocking
//! [`Connection`](crate::Connection) and async [`AsyncConnection`](crate::AsyncConnection) — are
//! thin adapters over: connect, publish, subscribe, request, flush, queue processing, close. An
//! operation that can wait comes in a blocking form and an async form, which differ only in how
//! they wait: at the output's high-water mark (a condition variable, or a future), and for an
//! answer (one [`Completion`] type either way, held by [`Awaiting`]).
//!
//! The front ends hold a [`Handle`], which closes the connection when the last one is dropped,
//! and wrap [`Subscribed`] for their subscription handles. They never touch the connection's
//! state ([`Shared`]) themselves.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use mm_wire::handshake::Protocol;
use mm_wire::{Action, Header, Message, encode_control_frame, encode_frame, subject};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::oneshot;

use crate::completion::{Completion, WaitFailed};
use crate::dispatch::{Callback, Sink, SubscriptionEntry};
use crate::engine::{self, Ready};
use crate::error::{
    ConnectError, DispatchError, FlushError, InvalidSubject, PublishError, RequestError,
    SubscribeError,
};
use crate::outbound::{Admission, PushError};
use crate::params::{ConnectionParams, DispatchMode};
use crate::received::Received;
use crate::requests::Outcome;
use crate::shared::{Shared, log};
use crate::status::{ConnectionStats, ConnectionStatus, GatewayInfo};

/// One connection, as the front ends see it. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    shared: Arc<Shared>,
}

impl Client {
    // -------------------------------------------------------------------------------------
    // Connecting
    // -------------------------------------------------------------------------------------

    /// Starts the engine and waits (blocking) for the first handshake.
    pub(crate) fn connect(params: ConnectionParams) -> Result<Client, ConnectError> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        let shared = engine::start(params, Ready::Blocking(sender))?;
        match receiver.recv() {
            Ok(Ok(())) => Ok(Client { shared }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::EngineEnded),
        }
    }

    /// Starts the engine and awaits the first handshake.
    pub(crate) async fn connect_async(params: ConnectionParams) -> Result<Client, ConnectError> {
        let (sender, receiver) = oneshot::channel();
        let shared = engine::start(params, Ready::Async(sender))?;
        match receiver.await {
            Ok(Ok(())) => Ok(Client { shared }),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::EngineEnded),
        }
    }

    // -------------------------------------------------------------------------------------
    // Publishing
    // -------------------------------------------------------------------------------------

    /// Publishes, blocking the thread at the high-water mark.
    pub(crate) fn publish(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        check_publish(subject, reply_subject)?;
        let header = Header::send_message(subject).with_reply_subject(reply_subject);
        self.shared
            .outbound
            .push_blocking(Admission::Publish, |out| {
                encode_frame(out, &header, message)
            })
            .map(|_| ())
            .map_err(publish_error)
    }

    /// Publishes, awaiting at the high-water mark.
    pub(crate) async fn publish_async(
        &self,
        subject: &str,
        reply_subject: &str,
        message: &Message,
    ) -> Result<(), PublishError> {
        check_publish(subject, reply_subject)?;
        let header = Header::send_message(subject).with_reply_subject(reply_subject);
        self.shared
            .outbound
            .push_async(Admission::Publish, |out| {
                encode_frame(out, &header, message)
            })
            .await
            .map(|_| ())
            .map_err(publish_error)
    }

    /// The reply subject to answer `request` on.
    pub(crate) fn reply_subject_of(request: &Received) -> Result<&str, PublishError> {
        request
            .reply_subject()
            .ok_or_else(|| PublishError::NoReplySubject {
                subject: request.subject().to_owned(),
            })
    }

    // -------------------------------------------------------------------------------------
    // Subscriptions
    // -------------------------------------------------------------------------------------

    /// Subscribes with a callback (run through the dispatch queue).
    pub(crate) fn subscribe_callback(
        &self,
        pattern: &str,
        callback: Callback,
    ) -> Result<Subscribed, SubscribeError> {
        self.subscribe(pattern, Sink::Callback(std::sync::Mutex::new(callback)))
    }

    /// Subscribes with a stream: messages arrive on the returned receiver.
    pub(crate) fn subscribe_stream(
        &self,
        pattern: &str,
    ) -> Result<(Subscribed, UnboundedReceiver<Received>), SubscribeError> {
        let (sender, receiver) = unbounded_channel();
        let subscribed =
            self.subscribe(pattern, Sink::Stream(std::sync::Mutex::new(Some(sender))))?;
        Ok((subscribed, receiver))
    }

    /// Adds a subscription and queues its SUBSCRIBE (renewed automatically after a reconnect).
    fn subscribe(&self, pattern: &str, sink: Sink) -> Result<Subscribed, SubscribeError> {
        let shared = &self.shared;
        subject::validate_pattern(pattern).map_err(|reason| {
            SubscribeError::InvalidPattern(InvalidSubject::new("pattern", pattern, reason))
        })?;
        let id = shared.next_subscription_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(SubscriptionEntry::new(id, pattern.to_owned(), sink));
        let header = Header::new(Action::Subscribe)
            .with_subscription_id(id)
            .with_subject(pattern);
        shared
            .outbound
            .push_interest(
                || {
                    shared.subscriptions.lock().insert(id, entry.clone());
                },
                |out| encode_control_frame(out, &header),
            )
            .map_err(|_| SubscribeError::Closed)?;
        log!(shared, Debug, "subscribed {id} to `{pattern}`");
        Ok(Subscribed {
            shared: shared.clone(),
            entry,
        })
    }

    // -------------------------------------------------------------------------------------
    // Requests and flush
    // -------------------------------------------------------------------------------------

    /// Sends a request and blocks for its first reply.
    pub(crate) fn request(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        let start = Instant::now();
        self.check_request(subject)?;
        if let Some(session) = self.inbox_unconfirmed() {
            self.flush(timeout.saturating_sub(start.elapsed()), true)
                .map_err(|error| confirm_error(error, subject, timeout))?;
            self.inbox_confirmed(session);
        }
        let (awaiting, reply_subject) = Awaiting::reply(&self.shared, start);
        self.publish(subject, &reply_subject, message)?;
        request_result(awaiting.wait_blocking(timeout), subject, timeout)
    }

    /// Sends a request and awaits its first reply.
    pub(crate) async fn request_async(
        &self,
        subject: &str,
        message: &Message,
        timeout: Duration,
    ) -> Result<Received, RequestError> {
        let start = Instant::now();
        self.check_request(subject)?;
        if let Some(session) = self.inbox_unconfirmed() {
            self.flush_async(timeout.saturating_sub(start.elapsed()), true)
                .await
                .map_err(|error| confirm_error(error, subject, timeout))?;
            self.inbox_confirmed(session);
        }
        let (mut awaiting, reply_subject) = Awaiting::reply(&self.shared, start);
        self.publish_async(subject, &reply_subject, message).await?;
        request_result(awaiting.wait(timeout).await, subject, timeout)
    }

    /// The session whose inbox still needs confirming before a request, if any. A reply from a
    /// responder on another gateway travels back only once that gateway has this connection's
    /// inbox subscription, which crosses the mesh on a different link than the request: so the
    /// first request of each session is preceded by a mesh-wide flush (one round trip; later
    /// requests pay nothing). MM/1 gateways have no mesh-wide flush.
    fn inbox_unconfirmed(&self) -> Option<u64> {
        if self.shared.protocol() == Protocol::Mm1 {
            return None;
        }
        let session = self.shared.outbound.session();
        (self.shared.inbox_confirmed.load(Ordering::Acquire) != session).then_some(session)
    }

    /// The inbox is live across the mesh for `session`.
    fn inbox_confirmed(&self, session: u64) {
        self.shared
            .inbox_confirmed
            .store(session, Ordering::Release);
    }

    /// Checks that a request can start now: valid subject, connected.
    fn check_request(&self, subject: &str) -> Result<(), RequestError> {
        check_publish(subject, "_INBOX.x")?;
        match self.shared.status() {
            ConnectionStatus::Connected => Ok(()),
            ConnectionStatus::Reconnecting => Err(RequestError::Disconnected),
            _ => Err(RequestError::Closed),
        }
    }

    /// A new unique inbox subject for the application's own subscriptions.
    pub(crate) fn create_inbox(&self) -> String {
        self.shared.requests.create_inbox()
    }

    /// Blocks until the gateway confirms everything sent before (`mesh`: and its mesh links).
    pub(crate) fn flush(&self, timeout: Duration, mesh: bool) -> Result<(), FlushError> {
        let start = Instant::now();
        let shared = &*self.shared;
        let awaiting = if shared.protocol() == Protocol::Mm1 {
            let (awaiting, inbox) = Awaiting::reply(shared, start);
            shared
                .outbound
                .push_blocking(Admission::Publish, |out| encode_own_message(out, &inbox))
                .map_err(|error| flush_push_error(shared, error))?;
            awaiting
        } else {
            let (awaiting, number) = Awaiting::pong(shared, start);
            push_flush_ping(shared, number, mesh)
                .map_err(|error| flush_push_error(shared, error))?;
            awaiting
        };
        flush_result(awaiting.wait_blocking(timeout), timeout)
    }

    /// Awaits the gateway's confirmation of everything sent before (`mesh`: and its mesh links).
    pub(crate) async fn flush_async(
        &self,
        timeout: Duration,
        mesh: bool,
    ) -> Result<(), FlushError> {
        let start = Instant::now();
        let shared = &*self.shared;
        let mut awaiting = if shared.protocol() == Protocol::Mm1 {
            let (awaiting, inbox) = Awaiting::reply(shared, start);
            let pushed = shared
                .outbound
                .push_async(Admission::Publish, |out| encode_own_message(out, &inbox));
            match tokio::time::timeout(timeout, pushed).await {
                Ok(pushed) => pushed.map_err(|error| flush_push_error(shared, error))?,
                Err(_) => return Err(FlushError::Timeout { timeout }),
            };
            awaiting
        } else {
            let (awaiting, number) = Awaiting::pong(shared, start);
            push_flush_ping(shared, number, mesh)
                .map_err(|error| flush_push_error(shared, error))?;
            awaiting
        };
        flush_result(awaiting.wait(timeout).await, timeout)
    }

    // -------------------------------------------------------------------------------------
    // Queue mode
    // -------------------------------------------------------------------------------------

    /// Runs queued callbacks on this thread (queue mode only).
    pub(crate) fn process_message_queue(
        &self,
        timeout: Duration,
        max: usize,
    ) -> Result<(usize, usize), DispatchError> {
        let shared = &self.shared;
        if shared.params.dispatch_mode != DispatchMode::Queue {
            return Err(DispatchError::NotQueueMode);
        }
        shared
            .dispatch
            .process(timeout, max, &|panicked| shared.on_panic(panicked))
    }

    /// Makes a waiting (or the next) `process_message_queue` return at once.
    pub(crate) fn wake_up(&self) {
        self.shared.dispatch.wake_up();
    }

    /// Messages waiting in the dispatch queue.
    pub(crate) fn queued_messages(&self) -> usize {
        self.shared.dispatch.len()
    }

    // -------------------------------------------------------------------------------------
    // Closing and status
    // -------------------------------------------------------------------------------------

    /// Closes and blocks (up to 10 s) until the engine has finished.
    pub(crate) fn close(&self) {
        self.shared.close_blocking();
    }

    /// Closes and awaits (up to 10 s) the engine's end.
    pub(crate) async fn close_async(&self) {
        self.shared.close_async().await;
    }

    /// Where the connection stands.
    pub(crate) fn status(&self) -> ConnectionStatus {
        self.shared.status()
    }

    /// The gateway currently (or last) connected to.
    pub(crate) fn gateway(&self) -> Option<GatewayInfo> {
        self.shared.gateway().clone()
    }

    /// The parameters the connection was opened with.
    pub(crate) fn params(&self) -> &ConnectionParams {
        &self.shared.params
    }

    /// The connection's counters.
    pub(crate) fn stats(&self) -> ConnectionStats {
        self.shared.stats()
    }
}

/// The application's handle on a connection: the connection closes when the last one is dropped.
/// Shared by every [`Connection`](crate::Connection) and
/// [`AsyncConnection`](crate::AsyncConnection) clone of one connection.
pub(crate) struct Handle {
    client: Client,
}

impl Handle {
    pub(crate) fn new(client: Client) -> Handle {
        Handle { client }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.client.close();
    }
}

/// A live subscription, as both front ends' subscription handles hold it. Dropping it ends the
/// subscription: no more messages reach it, and the gateway is told.
pub(crate) struct Subscribed {
    shared: Arc<Shared>,
    entry: Arc<SubscriptionEntry>,
}

impl Subscribed {
    /// The subscription id.
    pub(crate) fn id(&self) -> u32 {
        self.entry.id
    }

    /// The pattern subscribed to.
    pub(crate) fn pattern(&self) -> &str {
        &self.entry.pattern
    }

    /// Messages waiting: (messages, bytes).
    pub(crate) fn pending(&self) -> (usize, usize) {
        self.entry.pending()
    }

    /// Messages dropped at the pending limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.entry.dropped()
    }

    /// Messages handed to the application.
    pub(crate) fn delivered(&self) -> u64 {
        self.entry.delivered()
    }

    /// A stream subscription's message was taken by the application: no longer pending.
    pub(crate) fn taken(&self, received: &Received) {
        self.entry.release(received.size());
        self.entry.count_delivered();
    }

    /// Ends the subscription (once; later calls do nothing). The gateway is told if connected.
    pub(crate) fn unsubscribe(&self) {
        let shared = &self.shared;
        let entry = &self.entry;
        if !entry.deactivate() {
            return;
        }
        entry.wait_for_callback();
        let id = entry.id;
        let header = Header::new(Action::Unsubscribe).with_subscription_id(id);
        let removed = shared.outbound.push_interest(
            || {
                shared.subscriptions.lock().remove(&id);
            },
            |out| encode_control_frame(out, &header),
        );
        if removed.is_err() {
            // Closed: the table is (or is about to be) cleared anyway.
            shared.subscriptions.lock().remove(&id);
        }
        log!(shared, Debug, "unsubscribed {id} from `{}`", entry.pattern);
    }
}

impl Drop for Subscribed {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

/// What a request or flush waits for: a message on its reply subject, or a PONG.
#[derive(Debug, Clone, Copy)]
enum Registration {
    Reply(u64),
    Pong(u64),
}

/// A request or flush in flight: the completion the engine fills in, and its registration with
/// the inbox, withdrawn when this is dropped — answered, timed out, failed to send, or (async)
/// the future dropped.
struct Awaiting<'a> {
    shared: &'a Shared,
    registration: Registration,
    completion: Completion<Outcome>,
    /// When the operation started: its timeout counts from here.
    start: Instant,
}

impl<'a> Awaiting<'a> {
    /// Waits for a message on a fresh reply subject (returned with it).
    fn reply(shared: &'a Shared, start: Instant) -> (Awaiting<'a>, String) {
        let (number, reply_subject, completion) = shared.requests.register_reply();
        let awaiting = Awaiting {
            shared,
            registration: Registration::Reply(number),
            completion,
            start,
        };
        (awaiting, reply_subject)
    }

    /// Waits for the PONG with a fresh number (returned with it).
    fn pong(shared: &'a Shared, start: Instant) -> (Awaiting<'a>, u64) {
        let (number, completion) = shared.requests.register_pong();
        let awaiting = Awaiting {
            shared,
            registration: Registration::Pong(number),
            completion,
            start,
        };
        (awaiting, number)
    }

    /// Blocks until the answer or the timeout (polling first, see [`crate::spin`]).
    fn wait_blocking(&self, timeout: Duration) -> Result<Outcome, WaitFailed> {
        match self
            .completion
            .wait_blocking(&self.shared.spin, self.start, timeout)
        {
            Err(WaitFailed::Timeout) => self.give_up(),
            other => other,
        }
    }

    /// Awaits the answer or the timeout.
    async fn wait(&mut self, timeout: Duration) -> Result<Outcome, WaitFailed> {
        let left = timeout.saturating_sub(self.start.elapsed());
        match tokio::time::timeout(left, &mut self.completion).await {
            Ok(outcome) => outcome,
            Err(_) => self.give_up(),
        }
    }

    /// After the timeout: withdraws the registration, then takes an answer that raced it.
    fn give_up(&self) -> Result<Outcome, WaitFailed> {
        self.withdraw();
        self.completion.try_take().ok_or(WaitFailed::Timeout)
    }

    fn withdraw(&self) {
        match self.registration {
            Registration::Reply(number) => self.shared.requests.cancel_reply(number),
            Registration::Pong(number) => self.shared.requests.cancel_pong(number),
        }
    }
}

impl Drop for Awaiting<'_> {
    fn drop(&mut self) {
        // Once answered, the engine has already removed the registration.
        if !self.completion.is_done() {
            self.withdraw();
        }
    }
}

/// A request's result from how its wait ended.
fn request_result(
    waited: Result<Outcome, WaitFailed>,
    subject: &str,
    timeout: Duration,
) -> Result<Received, RequestError> {
    match waited {
        Ok(Outcome::Reply(received)) => Ok(received),
        Ok(Outcome::NoResponders) => Err(RequestError::NoResponders {
            subject: subject.to_owned(),
        }),
        Ok(Outcome::Undecodable(error)) => Err(RequestError::UndecodableReply {
            subject: subject.to_owned(),
            error,
        }),
        Ok(Outcome::InvalidUtf8(error)) => Err(RequestError::InvalidUtf8Reply {
            subject: subject.to_owned(),
            error,
        }),
        Ok(Outcome::Disconnected) => Err(RequestError::Disconnected),
        Ok(Outcome::Closed | Outcome::Pong) | Err(WaitFailed::Abandoned) => {
            Err(RequestError::Closed)
        }
        Err(WaitFailed::Timeout) => Err(RequestError::Timeout {
            subject: subject.to_owned(),
            timeout,
        }),
    }
}

/// A flush's result from how its wait ended.
fn flush_result(waited: Result<Outcome, WaitFailed>, timeout: Duration) -> Result<(), FlushError> {
    match waited {
        Ok(Outcome::Pong | Outcome::Reply(_)) => Ok(()),
        Ok(
            Outcome::Disconnected
            | Outcome::NoResponders
            | Outcome::Undecodable(_)
            | Outcome::InvalidUtf8(_),
        ) => Err(FlushError::Disconnected),
        Ok(Outcome::Closed) | Err(WaitFailed::Abandoned) => Err(FlushError::Closed),
        Err(WaitFailed::Timeout) => Err(FlushError::Timeout { timeout }),
    }
}

/// A request whose inbox could not be confirmed across the mesh fails as the request would have.
fn confirm_error(error: FlushError, subject: &str, timeout: Duration) -> RequestError {
    match error {
        FlushError::Timeout { .. } => RequestError::Timeout {
            subject: subject.to_owned(),
            timeout,
        },
        FlushError::Disconnected => RequestError::Disconnected,
        FlushError::Closed => RequestError::Closed,
    }
}

/// The empty message an MM/1 flush sends to its own inbox.
fn encode_own_message(
    out: &mut bytes::BytesMut,
    inbox: &str,
) -> Result<usize, mm_wire::EncodeError> {
    encode_frame(out, &Header::send_message(inbox), &Message::new())
}

/// Queues the PING of an MM/2 flush numbered `number`.
fn push_flush_ping(shared: &Shared, number: u64, mesh: bool) -> Result<(), PushError> {
    let mut body = Message::new().add_u64("k", number);
    if mesh {
        body.push("mesh", true);
    }
    shared
        .outbound
        .push_control(|out| encode_frame(out, &Header::new(Action::Ping), &body))
}

/// A flush whose PING (or inbox message) could not be queued.
fn flush_push_error(shared: &Shared, error: PushError) -> FlushError {
    match publish_error(error) {
        PublishError::Closed if shared.status() != ConnectionStatus::Closed => {
            FlushError::Disconnected
        }
        PublishError::ReconnectBufferFull { .. } => FlushError::Disconnected,
        _ => FlushError::Closed,
    }
}

/// Maps an output-buffer refusal to the publish error the application sees.
fn publish_error(error: PushError) -> PublishError {
    match error {
        PushError::Closed => PublishError::Closed,
        // A control frame while reconnecting: never a user publish, but say something sensible.
        PushError::NotConnected | PushError::Full => PublishError::Closed,
        PushError::ReconnectBufferFull { limit } => PublishError::ReconnectBufferFull { limit },
        PushError::Encode(error) => PublishError::Encode(error),
        PushError::TooLarge { size, max } => PublishError::TooLarge { size, max },
    }
}

/// Checks a publish before anything is encoded (SPEC §6.1).
fn check_publish(subject: &str, reply_subject: &str) -> Result<(), PublishError> {
    if !subject_known_valid(subject) {
        subject::validate_subject(subject).map_err(|reason| {
            PublishError::InvalidSubject(InvalidSubject::new("subject", subject, reason))
        })?;
        remember_valid_subject(subject);
    }
    subject::validate_reply_subject(reply_subject).map_err(|reason| {
        PublishError::InvalidReplySubject(InvalidSubject::new(
            "reply subject",
            reply_subject,
            reason,
        ))
    })?;
    if reply_subject.is_empty() && subject::is_gateway_subject(subject.as_bytes()) {
        return Err(PublishError::ReservedSubject {
            subject: subject.to_owned(),
        });
    }
    Ok(())
}

thread_local! {
    /// The subject this thread last published to and found valid. Publishers usually send many
    /// messages to one subject in a row; comparing bytes is cheaper than validating again.
    static LAST_VALID_SUBJECT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

/// Whether `subject` is the one this thread last validated.
fn subject_known_valid(subject: &str) -> bool {
    LAST_VALID_SUBJECT.with(|last| last.borrow().as_str() == subject)
}

/// Remembers a subject found valid (short ones only: the cache must stay cheap).
fn remember_valid_subject(subject: &str) {
    if subject.len() <= 64 {
        LAST_VALID_SUBJECT.with(|last| {
            let mut last = last.borrow_mut();
            last.clear();
            last.push_str(subject);
        });
    }
}
