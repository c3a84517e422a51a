//! Counters, and the `_MM.STATS` answer built from them (SPEC §9; field names in
//! docs/protocol.md).
//!
//! Counters are plain integers owned by the service loop: no atomics, because only the service's
//! thread touches them.

use std::time::Instant;

use mm_wire::Message;

/// Counters of one connection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ConnectionStats {
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

impl ConnectionStats {
    /// Adds another connection's counters (when it closes, its counts move to the service).
    pub(crate) fn add(&mut self, other: &ConnectionStats) {
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
pub(crate) struct ServiceStats {
    /// When the service started.
    pub(crate) started: Instant,
    /// Connections attached since the start (clients and links).
    pub(crate) connections_total: u64,
    /// Counters of connections that have closed.
    pub(crate) closed_connections: ConnectionStats,
    /// Connections closed as slow consumers.
    pub(crate) slow_consumers: u64,
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
    /// Mesh links dialled (first dials and redials).
    pub(crate) link_dials: u64,
}

impl ServiceStats {
    pub(crate) fn new() -> Self {
        ServiceStats {
            started: Instant::now(),
            connections_total: 0,
            closed_connections: ConnectionStats::default(),
            slow_consumers: 0,
            slow_links: 0,
            dropped_frames: 0,
            dropped_bytes: 0,
            rejected_frames: 0,
            protocol_errors: 0,
            unmatched_publishes: 0,
            no_responders_sent: 0,
            link_dials: 0,
        }
    }
}

impl crate::service::ServiceState {
    /// The answer to `_MM.STATS`: service totals, then one `connection` field per client, one
    /// `link` field per mesh link and one `peer` field per configured mesh address. Field names
    /// are documented in docs/protocol.md.
    pub(crate) fn stats_message(&self) -> Message {
        use crate::connection::Role;
        let mut totals = self.stats.closed_connections;
        let mut clients = 0u32;
        let mut links = 0u32;
        for (_, connection) in &self.connections {
            totals.add(&connection.stats);
            if connection.role.is_link() {
                links += 1;
            } else {
                clients += 1;
            }
        }
        let stats = &self.stats;
        let mut message = Message::new()
            .add_string("service", self.name.as_str())
            .add_string("gateway_name", self.config().name.as_str())
            .add_string("gateway_id", self.context.gateway_id.as_str())
            .add_u64("uptime_ms", stats.started.elapsed().as_millis() as u64)
            .add_u32("clients", clients)
            .add_u32("links", links)
            .add_u64("subscriptions", self.trie.len() as u64)
            .add_u64("interest", self.mesh.interest_len() as u64);
        totals.write_fields(&mut message);
        message
            .push("connections_total", stats.connections_total)
            .push("slow_consumers", stats.slow_consumers)
            .push("slow_links", stats.slow_links)
            .push("dropped_frames", stats.dropped_frames)
            .push("dropped_bytes", stats.dropped_bytes)
            .push("rejected_frames", stats.rejected_frames)
            .push("protocol_errors", stats.protocol_errors)
            .push("unmatched_publishes", stats.unmatched_publishes)
            .push("no_responders_sent", stats.no_responders_sent)
            .push("link_dials", stats.link_dials);
        for (_, connection) in &self.connections {
            let mut entry = Message::new()
                .add_u64("id", connection.id)
                .add_string("name", connection.name.as_str())
                .add_string("address", connection.address.to_string())
                .add_i32(
                    "protocol",
                    match connection.protocol {
                        mm_wire::handshake::Protocol::Mm1 => 1,
                        mm_wire::handshake::Protocol::Mm2 => 2,
                    },
                )
                .add_u32("subscriptions", connection.subscriptions.len() as u32)
                .add_u64("pending_bytes", connection.outbound.pending() as u64)
                .add_u64("pending_frames", connection.outbound.frames() as u64);
            connection.stats.write_fields(&mut entry);
            match &connection.role {
                Role::Client { .. } => {
                    message.push("connection", entry);
                }
                Role::AcceptedLink { peer_id } | Role::DialledLink { peer_id, .. } => {
                    entry.push(
                        "direction",
                        if matches!(connection.role, Role::AcceptedLink { .. }) {
                            "accepted"
                        } else {
                            "dialled"
                        },
                    );
                    entry.push("peer_id", peer_id.as_deref().unwrap_or_default());
                    message.push("link", entry);
                }
            }
        }
        self.mesh_stats(&mut message);
        message
    }
}
