//! Counters of connections and services.
//!
//! Plain integers owned by the service loop: no atomics, because only the service's thread
//! touches them. The `_MM.STATS` answer built from them is in the `stats` module.

use std::time::Instant;

use mm_wire::Message;

/// Counters of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionCounters {
    /// Frames received.
    pub(crate) frames_in: u64,
    /// Bytes received (whole frames).
    pub(crate) bytes_in: u64,
    /// Frames queued for sending.
    pub(crate) frames_out: u64,
    /// Bytes queued for sending.
    pub(crate) bytes_out: u64,
    /// `write` syscalls made on the socket.
    pub(crate) write_calls: u64,
    /// `read` syscalls that returned data.
    pub(crate) read_calls: u64,
}

impl ConnectionCounters {
    /// Adds another connection's counters (when it closes, its counts move to the service).
    pub(crate) fn add(&mut self, other: &ConnectionCounters) {
        self.frames_in += other.frames_in;
        self.bytes_in += other.bytes_in;
        self.frames_out += other.frames_out;
        self.bytes_out += other.bytes_out;
        self.write_calls += other.write_calls;
        self.read_calls += other.read_calls;
    }

    /// Writes the counters as fields of `message`.
    pub(crate) fn write_fields(&self, message: &mut Message) {
        message
            .push("frames_in", self.frames_in)
            .push("bytes_in", self.bytes_in)
            .push("frames_out", self.frames_out)
            .push("bytes_out", self.bytes_out)
            .push("write_calls", self.write_calls)
            .push("read_calls", self.read_calls);
    }
}

/// Counters of one service.
#[derive(Debug)]
pub(crate) struct ServiceCounters {
    /// When the service started.
    pub(crate) started: Instant,
    /// Connections attached since the start (clients and links).
    pub(crate) connections_total: u64,
    /// Counters of connections that have closed.
    pub(crate) closed_connections: ConnectionCounters,
    /// Connections closed as slow consumers.
    pub(crate) slow_consumers: u64,
    /// Publishes and subscriptions refused by permissions.
    pub(crate) permission_denied: u64,
    /// Mesh links closed because their queue passed its bound.
    pub(crate) slow_links: u64,
    /// Frames discarded from the queues of slow consumers and slow links.
    pub(crate) dropped_frames: u64,
    /// Bytes discarded from the queues of slow consumers and slow links.
    pub(crate) dropped_bytes: u64,
    /// Frames refused: invalid subjects, misuse, unknown `_MM.` requests.
    pub(crate) rejected_frames: u64,
    /// Connections closed for protocol errors (bad lengths, truncated headers).
    pub(crate) protocol_errors: u64,
    /// Publishes that matched no subscription.
    pub(crate) unmatched_publishes: u64,
    /// NO_RESPONDERS sent.
    pub(crate) no_responders_sent: u64,
    /// Warnings not logged because their connection had used up its budget.
    pub(crate) log_lines_suppressed: u64,
    /// `_MM.STATS` requests refused for coming too fast.
    pub(crate) stats_requests_refused: u64,
    /// Connections cut off because the gateway-wide output budget was exceeded.
    pub(crate) output_budget_cuts: u64,
    /// Connections closed because the gateway-wide budget for incomplete frames was exceeded.
    pub(crate) input_budget_closes: u64,
}

impl ServiceCounters {
    /// Zeroed counters, started now.
    pub(crate) fn new() -> Self {
        ServiceCounters {
            started: Instant::now(),
            connections_total: 0,
            closed_connections: ConnectionCounters::default(),
            slow_consumers: 0,
            permission_denied: 0,
            slow_links: 0,
            dropped_frames: 0,
            dropped_bytes: 0,
            rejected_frames: 0,
            protocol_errors: 0,
            unmatched_publishes: 0,
            no_responders_sent: 0,
            log_lines_suppressed: 0,
            stats_requests_refused: 0,
            output_budget_cuts: 0,
            input_budget_closes: 0,
        }
    }
}
