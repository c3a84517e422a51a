//! What a connection knows about itself: [`ConnectionStatus`], [`GatewayInfo`] and the counters in
//! [`ConnectionStats`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mm_wire::handshake::Protocol;

/// Where a connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Connected to a gateway.
    Connected,
    /// The gateway was lost; redialling. Publishes are buffered, requests and flushes fail.
    Reconnecting,
    /// Closed for good.
    Closed,
}

/// The gateway a connection is talking to, from its ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GatewayInfo {
    /// Its address.
    pub address: SocketAddr,
    /// The protocol spoken: MM/1 when the gateway sent an empty ACK.
    pub protocol: Protocol,
    /// Its name (empty for MM/1).
    pub name: String,
    /// The largest frame it accepts.
    pub max_frame: u32,
    /// Its heartbeat interval (zero: none).
    pub heartbeat: Duration,
}

/// A connection's own counters, since it was opened.
///
/// `frames_out` against `write_calls` shows output coalescing: under load, one `write` syscall
/// carries many frames.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionStats {
    /// Frames queued for the gateway (publishes, subscriptions, PINGs, …).
    pub frames_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
    /// `write` syscalls on the socket.
    pub write_calls: u64,
    /// Bytes written to the socket.
    pub bytes_written: u64,
    /// Output bytes queued and not yet taken by the engine.
    pub pending_output_bytes: usize,
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// `read` syscalls that returned data.
    pub read_calls: u64,
    /// Messages dropped at a subscription's pending limit.
    pub messages_dropped: u64,
    /// Delivered messages dropped because their body does not decode.
    pub undecodable_messages: u64,
    /// Successful reconnections.
    pub reconnects: u64,
    /// Requests and flushes waiting for an answer.
    pub requests_in_flight: usize,
    /// Blocking requests and flushes whose answer arrived while the caller was still spinning
    /// (see [`ConnectionParams::with_request_spin`](crate::ConnectionParams::with_request_spin)).
    pub spin_hits: u64,
    /// Blocking requests and flushes that spun for the whole window and then slept.
    pub spin_misses: u64,
    /// Notifications and log lines lost because the hook fell behind.
    pub notifications_lost: u64,
}

/// The engine's counters (atomics: the engine writes them, any thread reads them).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) write_calls: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) frames_in: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) read_calls: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) undecodable_messages: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

impl Counters {
    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
