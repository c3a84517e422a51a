//! The Messaging Mesh client library: publish, subscribe and request/reply through a Messaging
//! Mesh gateway, with TIBCO Rendezvous semantics.
//!
//! # Its one job
//!
//! Hold one connection to a gateway — handshake, coalesced writing, reading and routing,
//! heartbeats, reconnection — and give applications two front ends over it: a blocking,
//! RV-style API ([`Connection`]) that needs no async runtime, and an async API
//! ([`AsyncConnection`]) for tokio users. Both have the same operations, names and semantics
//! because each is a thin adapter over the same engine API.
//!
//! ```no_run
//! use std::time::Duration;
//! use messaging_mesh::{Connection, ConnectionParams, Message, Received};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let conn = Connection::connect(ConnectionParams::new("127.0.0.1:5050", "DEFAULT"))?;
//! let _sub = conn.subscribe("PRICES.>", |m: &Received| println!("{} {}", m.subject(), m.message()))?;
//! conn.send("PRICES.IBM", &Message::new().add_string("sym", "IBM").add_f64("px", 123.4))?;
//! let request = Message::new().add_f64("A", 0.5).add_f64("B", 1.5);
//! let reply = conn.send_request("Service.Add", &request, Duration::from_secs(2))?;
//! # Ok(())
//! # }
//! ```
//!
//! # Two front ends, one set of names
//!
//! [`Connection`] and [`AsyncConnection`] name every operation alike, after Rendezvous: `send`,
//! `send_with_reply`, `send_reply`, `subscribe`, `send_request`, `create_inbox`, `flush`,
//! `flush_mesh`, `close`. On the async side they are `async fn`s (`subscribe` included) and a
//! subscription is a [`Stream`](futures_core::Stream) rather than a callback. The async front
//! end's earlier names — `publish`, `publish_with_reply`, `reply`, `request` — remain as
//! `#[deprecated]` aliases of the new ones.
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
//! When the socket has been quiet, a publishing thread writes its frame itself rather than waking
//! the engine: a request and its reply each save a thread hand-off. Whoever writes holds the
//! socket alone, and what the kernel does not take of such a direct write is kept apart from
//! the queued frames as the *unfinished head*, written before them and never replayed: the output
//! buffer always starts on a frame boundary, so the replay after a reconnect never reads from the
//! middle of a frame. The invariants, as inequalities and statements, are written next to the
//! buffer (`outbound.rs`).
//!
//! On the read side the engine parses each frame's header once, in its read buffer, and routes
//! it by subscription id; where the header's parts lie travels with the message from there on,
//! so nothing downstream parses it again. Callback messages cross to the dispatch thread a whole
//! read at a time (one shared buffer plus positions) and are decoded only when the callback asks
//! (strings and blobs are slices of the received buffer). A frame whose subject or reply subject
//! is not UTF-8, or whose body does not decode, is dropped and reported through the notification
//! hook.
//!
//! Requests and flushes of both front ends wait on one completion type: the engine completes it
//! directly when the reply (or PONG) arrives — never through the dispatch queue — so a blocking
//! [`Connection::send_request`] works even from inside a subscription callback. A blocking caller
//! polls the completion for a short bounded window before it sleeps, because waking a sleeping
//! thread costs about as much as a round trip on one host (see
//! [`ConnectionParams::with_request_spin`]); an async caller awaits it as a future. Everything
//! else goes to the subscription's callback (on a library dispatch thread, or in
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
//!   [`FlushError`], [`DispatchError`], [`InvalidSubject`], [`InvalidUtf8`].
//! * [`ConnectionStats`], [`ConnectionStatus`], [`GatewayInfo`] — what a connection knows.
//! * Internals, each front end's method being one call into the first:
//!   * `client.rs` — the operations both front ends adapt (connect, publish, subscribe,
//!     request, flush, queue processing, close), blocking and async;
//!   * `engine.rs` — the engine thread: handshake, read/write/heartbeat loops, sessions,
//!     reconnect, and why a session ended;
//!   * `outbound.rs` — the output buffer: coalescing, direct writes, the unfinished head, flow
//!     control, replay, and its invariants;
//!   * `dispatch.rs` — subscriptions, pending limits, the dispatch queue;
//!   * `requests.rs` — the muxed request inbox and flush waiters;
//!   * `completion.rs` — the one-shot answer a request or flush waits on, blocking or async;
//!   * `spin.rs` — how long a blocking waiter polls before it sleeps;
//!   * `shared.rs` — the state the engine, the dispatch thread and `client.rs` share;
//!   * `received.rs` — [`Received`] and where a received frame's parts lie;
//!   * `notification.rs`, `params.rs`, `status.rs`, `error.rs` — the public types above;
//!   * [`advisory`] — advisories the connection delivers to its own subscriptions (a
//!     subscription that passed its pending limit), and their rate.

/// This crate's README and the repository's: their Rust code blocks are compiled (and, when they
/// need no gateway, run) by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct RepositoryReadmeDoctests;

/// docs/security.md: its Rust example is compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/security.md")]
struct SecurityDocDoctests;

pub mod advisory;
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
mod tls;

pub use async_connection::{AsyncConnection, AsyncSubscription};
pub use connection::{Connection, Subscription};
pub use error::{
    ConnectError, DispatchError, FlushError, InvalidSubject, InvalidUtf8, PublishError,
    RequestError, SubscribeError,
};
pub use notification::{LogLevel, Logger, Notification, NotificationHook};
pub use params::{
    ConnectionParams, DEFAULT_CONNECT_TIMEOUT, DEFAULT_HEARTBEAT, DEFAULT_PENDING_BYTES,
    DEFAULT_PENDING_MESSAGES, DEFAULT_PORT, DEFAULT_RECONNECT_BUFFER_BYTES, DEFAULT_REQUEST_SPIN,
    DEFAULT_SERVICE, DEFAULT_WRITE_HIGH_WATER, DispatchMode, PendingLimits, ReconnectPolicy,
};
pub use received::Received;
pub use status::{ConnectionStats, ConnectionStatus, GatewayInfo};
pub use tls::{TlsParams, TlsSetupError};

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
