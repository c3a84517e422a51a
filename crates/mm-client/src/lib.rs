//! The Messaging Mesh client library: publish, subscribe and request/reply through a Messaging
//! Mesh gateway, with TIBCO Rendezvous semantics.
//!
//! # Its one job
//!
//! Hold one connection to a gateway — handshake, coalesced writing, reading and routing,
//! heartbeats, reconnection — and give applications two front ends over it: a blocking,
//! RV-style API ([`Connection`]) that needs no async runtime, and an async API
//! ([`AsyncConnection`]) for tokio users. Both have the same semantics because they are thin
//! layers over the same engine.
//!
//! ```no_run
//! use std::time::Duration;
//! use messaging_mesh::{Connection, ConnectionParams, Message, Received};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Connection::connect(ConnectionParams::new("127.0.0.1:5050", "VULCAN"))?;
//! let _sub = conn.subscribe("PRICES.>", |m: &Received| println!("{} {}", m.subject(), m.message()))?;
//! conn.send("PRICES.IBM", &Message::new().add_string("sym", "IBM").add_f64("px", 123.4))?;
//! let request = Message::new().add_f64("A", 0.5).add_f64("B", 1.5);
//! let reply = conn.send_request("Service.Add", &request, Duration::from_secs(2))?;
//! # Ok(())
//! # }
//! ```
//!
//! # Main design decision: publishers write into a shared buffer
//!
//! Each connection has one engine thread, running a private current-thread tokio runtime, that
//! owns the socket. A publisher does not hand its message to the engine: it encodes the frame
//! itself, under a short `std` mutex, straight into the connection's output buffer, and wakes the
//! engine only when that buffer goes from empty to non-empty. The engine swaps the whole buffer
//! out and writes it, so under load one `write` syscall carries many messages, and publishing
//! costs one lock and one encode. Above a high-water mark publishers wait for the engine (flow
//! control, bounded memory).
//!
//! The rejected alternative is the async-nats shape: every publish becomes a command sent over a
//! channel to the task that owns the socket. That costs a channel operation and often a wake-up
//! per message, and ties the blocking API to a runtime.
//!
//! On the read side the engine validates each delivered message without building it and routes it
//! by subscription id; callback messages cross to the dispatch thread a whole read at a time and
//! are decoded only when the callback asks (strings and blobs are slices of the received buffer).
//! When the socket has been quiet, a publishing thread writes its frame itself rather than waking
//! the engine: a request and its reply each save a thread hand-off. Request replies complete their
//! waiter directly from the engine — never through the dispatch queue — so a blocking
//! [`Connection::send_request`] works even from inside a subscription callback; the waiting thread
//! polls for its reply for a short bounded window before it sleeps, because waking a sleeping
//! thread costs about as much as a round trip on one host (see
//! [`ConnectionParams::with_request_spin`]). Everything else
//! goes to the subscription's callback (on a library dispatch thread, or in
//! [`Connection::process_message_queue`]) or its [`AsyncSubscription`] stream, bounded by
//! per-subscription [`PendingLimits`]; the engine never waits for the application.
//!
//! # Where to find things
//!
//! * [`Connection`], [`Subscription`] — the blocking front end (`connection.rs`).
//! * [`AsyncConnection`], [`AsyncSubscription`] — the async front end (`async_connection.rs`).
//! * [`ConnectionParams`], [`DispatchMode`], [`ReconnectPolicy`], [`PendingLimits`] — options.
//! * [`Notification`], [`NotificationHook`], [`Logger`], [`LogLevel`] — what the application is
//!   told besides messages.
//! * [`Received`] — a delivered message.
//! * Errors: [`ConnectError`], [`PublishError`], [`SubscribeError`], [`RequestError`],
//!   [`FlushError`], [`DispatchError`], [`InvalidSubject`].
//! * [`ConnectionStats`], [`ConnectionStatus`], [`GatewayInfo`] — what a connection knows.
//! * Internals: `engine.rs` (the socket, sessions, reconnect), `outbound.rs` (the shared output
//!   buffer), `dispatch.rs` (subscriptions, pending limits, the dispatch queue), `requests.rs`
//!   (the muxed inbox and flush waiters), `reply_wait.rs` (how a blocking caller waits for its
//!   answer: spin, then sleep), `shared.rs` (the state both front ends use).

mod async_connection;
mod client;
mod completion;
mod connection;
mod dispatch;
mod engine;
mod error;
mod notification;
mod outbound;
mod params;
mod received;
mod requests;
mod shared;
mod spin;
mod status;

pub use async_connection::{AsyncConnection, AsyncSubscription};
pub use connection::{Connection, Subscription};
pub use error::{
    ConnectError, DispatchError, FlushError, InvalidSubject, InvalidUtf8, PublishError,
    RequestError, SubscribeError,
};
pub use notification::{LogLevel, Logger, Notification, NotificationHook};
pub use params::{
    ConnectionParams, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_PENDING_BYTES,
    DEFAULT_PENDING_MESSAGES, DEFAULT_RECONNECT_BUFFER_BYTES, DEFAULT_REQUEST_SPIN,
    DEFAULT_WRITE_HIGH_WATER, DispatchMode, PendingLimits, ReconnectPolicy,
};
pub use received::Received;
pub use status::{ConnectionStats, ConnectionStatus, GatewayInfo};

/// The message model, re-exported from `mm-wire`.
pub use mm_wire::{Field, FieldError, FieldType, FieldValue, Message, Text};

/// The wire crate, for frames, subject validation and the handshake types.
pub use mm_wire;

/// Which protocol a gateway speaks (MM/1 or MM/2).
pub use mm_wire::handshake::Protocol;

/// Checks a subject one may publish to (no wildcards), as every publish does before sending.
/// The error names the offending token.
pub fn validate_subject(subject: &str) -> Result<(), InvalidSubject> {
    mm_wire::subject::validate_subject(subject)
        .map_err(|reason| InvalidSubject::new("subject", subject, reason))
}

/// Checks a subscription pattern (wildcards allowed), as every subscribe does.
pub fn validate_pattern(pattern: &str) -> Result<(), InvalidSubject> {
    mm_wire::subject::validate_pattern(pattern)
        .map(|_| ())
        .map_err(|reason| InvalidSubject::new("pattern", pattern, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Connection>();
        assert_send_sync::<AsyncConnection>();
        assert_send_sync::<Subscription>();
        assert_send_sync::<AsyncSubscription>();
        assert_send_sync::<Received>();
        assert_send_sync::<ConnectionParams>();
    }
}
