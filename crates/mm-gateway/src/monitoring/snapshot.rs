//! What a service hands out about itself: owned, bounded copies of its state, built on its own
//! thread and sent to the monitoring server. Serialized as the HTTP API's JSON (field names are
//! documented in docs/monitoring.md).

use serde::Serialize;

use crate::events::Event;

/// Most connections in one page of a connection listing.
pub const MAX_CONNECTIONS_PER_PAGE: usize = 1000;

/// Most mesh links listed per service (the busiest); the rest are counted.
pub const MAX_LISTED_LINKS: usize = 64;

/// Most subjects in each top-subjects list.
pub const TOP_SUBJECTS: usize = 20;

/// Most patterns in the top-patterns list.
pub const TOP_PATTERNS: usize = 20;

/// What a snapshot should include beyond the summary.
#[derive(Debug, Clone, Default)]
pub struct SnapshotRequest {
    /// One page of connections.
    pub connections: Option<ConnectionQuery>,
    /// Subscription counts and the top patterns.
    pub subscriptions: bool,
    /// Per-second rates of the last minutes.
    pub history: bool,
    /// Recent events.
    pub events: bool,
}

/// Which connections, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionQuery {
    /// Sort key (always descending, then by id).
    pub sort: ConnectionSort,
    /// Entries to skip.
    pub offset: usize,
    /// Entries to return (at most [`MAX_CONNECTIONS_PER_PAGE`]).
    pub limit: usize,
}

/// Sort keys of the connection listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionSort {
    /// Messages per second, in and out, over the last second.
    Rate,
    /// Bytes queued for sending.
    Pending,
    /// Subscriptions held.
    Subscriptions,
    /// Bytes in and out since the connection started.
    Bytes,
    /// Connection id (oldest first is the only ascending order).
    Id,
}

impl ConnectionSort {
    /// Parses a `sort` query value.
    pub fn parse(text: &str) -> Option<ConnectionSort> {
        Some(match text {
            "rate" => ConnectionSort::Rate,
            "pending" => ConnectionSort::Pending,
            "subscriptions" => ConnectionSort::Subscriptions,
            "bytes" => ConnectionSort::Bytes,
            "id" => ConnectionSort::Id,
            _ => return None,
        })
    }
}

/// Messages and bytes, in and out (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Frames received.
    pub messages_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Frames sent (queued).
    pub messages_out: u64,
    /// Bytes sent (queued).
    pub bytes_out: u64,
}

impl Traffic {
    /// Adds `other`.
    pub fn add(&mut self, other: &Traffic) {
        self.messages_in += other.messages_in;
        self.bytes_in += other.bytes_in;
        self.messages_out += other.messages_out;
        self.bytes_out += other.bytes_out;
    }

    /// Per-second rates from `earlier` to `self` over `seconds`.
    pub fn rates_since(&self, earlier: &Traffic, seconds: f64) -> Rates {
        if seconds <= 0.0 {
            return Rates::default();
        }
        let per_second = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        Rates {
            messages_in: per_second(self.messages_in, earlier.messages_in),
            bytes_in: per_second(self.bytes_in, earlier.bytes_in),
            messages_out: per_second(self.messages_out, earlier.messages_out),
            bytes_out: per_second(self.bytes_out, earlier.bytes_out),
        }
    }
}

/// Per-second rates, in and out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Rates {
    /// Messages received per second.
    pub messages_in: f64,
    /// Bytes received per second.
    pub bytes_in: f64,
    /// Messages sent per second.
    pub messages_out: f64,
    /// Bytes sent per second.
    pub bytes_out: f64,
}

/// One second of a service's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RateSample {
    /// End of the second, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The rates over it.
    #[serde(flatten)]
    pub rates: Rates,
}

/// Counters of a service (cumulative since it started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ServiceCounterSnapshot {
    /// Connections attached since the start.
    pub connections_total: u64,
    /// Clients cut off as slow consumers.
    pub slow_consumers: u64,
    /// Links closed past their bound.
    pub slow_links: u64,
    /// Frames discarded from cut-off queues.
    pub dropped_frames: u64,
    /// Bytes discarded from cut-off queues.
    pub dropped_bytes: u64,
    /// Frames refused (invalid subjects, misuse).
    pub rejected_frames: u64,
    /// Connections closed for protocol errors.
    pub protocol_errors: u64,
    /// Publishes that matched nothing.
    pub unmatched_publishes: u64,
    /// NO_RESPONDERS sent.
    pub no_responders_sent: u64,
    /// Connections cut off for the gateway's output budget.
    pub output_budget_cuts: u64,
    /// Connections closed for the gateway's budget of incomplete frames.
    pub input_budget_closes: u64,
    /// Mesh dial attempts.
    pub link_dials: u64,
}

/// One subject's traffic in the last window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubjectRate {
    /// The subject.
    pub subject: String,
    /// Messages published in the window.
    pub messages: u64,
    /// Bytes published in the window (whole frames).
    pub bytes: u64,
    /// Messages per second.
    pub messages_per_second: f64,
    /// Bytes per second.
    pub bytes_per_second: f64,
}

/// The heaviest subjects published by local clients over the last closed window.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TopSubjects {
    /// Length of the window, in seconds.
    pub window_seconds: f64,
    /// When it closed, in milliseconds since the Unix epoch (0: none closed yet).
    pub closed_at_ms: u64,
    /// Everything published in the window.
    pub total_messages: u64,
    /// Bytes published in the window.
    pub total_bytes: u64,
    /// Distinct subjects counted (those pruned to keep the table bounded not included).
    pub subjects: usize,
    /// Subjects pruned from the table in the window (undercounted).
    pub pruned: u64,
    /// Heaviest by messages per second.
    pub by_messages: Vec<SubjectRate>,
    /// Heaviest by bytes per second.
    pub by_bytes: Vec<SubjectRate>,
}

/// One connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionInfo {
    /// Id, unique in the gateway.
    pub id: u64,
    /// `client`, `accepted-link` or `dialled-link`.
    pub kind: &'static str,
    /// Client name, or peer gateway name.
    pub name: String,
    /// Peer address.
    pub address: String,
    /// 1 (MM/1) or 2 (MM/2).
    pub protocol: u8,
    /// Subscriptions held (for a link: patterns the peer registered).
    pub subscriptions: u64,
    /// Bytes queued for sending.
    pub pending_bytes: u64,
    /// Frames queued for sending.
    pub pending_frames: u64,
    /// Traffic since it connected.
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Rates over the last second.
    pub rates: Rates,
    /// Milliseconds since it connected.
    pub connected_ms: u64,
}

/// A page of connections.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConnectionPage {
    /// Connections of the service (clients and links).
    pub total: usize,
    /// The sort key.
    pub sort: ConnectionSort,
    /// Entries skipped.
    pub offset: usize,
    /// Entries asked for.
    pub limit: usize,
    /// The page.
    pub connections: Vec<ConnectionInfo>,
}

/// A pattern and how many local subscriptions hold it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatternCount {
    /// The pattern.
    pub pattern: String,
    /// Local client subscriptions with it.
    pub subscriptions: u64,
}

/// Subscription counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionSummary {
    /// Entries in the subject index (clients' and peers').
    pub total: u64,
    /// Held by local clients.
    pub clients: u64,
    /// Registered by peers on their links.
    pub links: u64,
    /// Distinct patterns held by local clients (what the mesh propagates).
    pub distinct_client_patterns: u64,
    /// Client patterns with the most subscriptions.
    pub top_patterns: Vec<PatternCount>,
}

/// A configured peer address and its dialler.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerInfo {
    /// `host:port` from the configuration.
    pub address: String,
    /// `connecting`, `up`, `backoff`, `suppressed` or `self`.
    pub state: &'static str,
    /// The peer's `gateway_id` (from its last ACK).
    pub peer_id: String,
    /// The peer's gateway name, while its link is up.
    pub peer_name: String,
    /// Dial attempts.
    pub dials: u64,
    /// Times the link came up again after the first.
    pub reconnects: u64,
    /// Why the last attempt or link failed.
    pub last_error: String,
}

/// A mesh link that is up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkInfo {
    /// Connection id.
    pub id: u64,
    /// `dialled` (we send interest, receive messages) or `accepted`.
    pub direction: &'static str,
    /// The peer's `gateway_id`.
    pub peer_id: String,
    /// The peer's gateway name.
    pub peer_name: String,
    /// The configured address (dialled links) or the peer's address.
    pub address: String,
    /// 1 or 2.
    pub protocol: u8,
    /// Round-trip time of the last probe PING, in milliseconds (none yet, or MM/1).
    pub rtt_ms: Option<f64>,
    /// Bytes queued for the peer.
    pub pending_bytes: u64,
    /// Interest patterns on the link: sent by us (dialled) or registered by the peer (accepted).
    pub interest_patterns: u64,
    /// Traffic since the link came up.
    #[serde(flatten)]
    pub traffic: Traffic,
    /// Rates over the last second.
    pub rates: Rates,
    /// Milliseconds since it came up.
    pub up_ms: u64,
}

/// The mesh of a service.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MeshSnapshot {
    /// Configured peer addresses.
    pub peers: Vec<PeerInfo>,
    /// Links that are up (the busiest [`MAX_LISTED_LINKS`]).
    pub links: Vec<LinkInfo>,
    /// Links not listed.
    pub links_omitted: usize,
}

/// Everything about one service, as one thread saw it at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceSnapshot {
    /// The service.
    pub name: String,
    /// Milliseconds since it started.
    pub uptime_ms: u64,
    /// Clients connected.
    pub clients: u64,
    /// Mesh links up.
    pub links: u64,
    /// Entries in the subject index.
    pub subscriptions: u64,
    /// Distinct local patterns propagated to peers.
    pub interest_patterns: u64,
    /// Bytes queued for sending, all connections.
    pub pending_bytes: u64,
    /// Traffic since the service started (closed connections included).
    pub totals: Traffic,
    /// Rates over the last second.
    pub rates: Rates,
    /// Counters.
    pub counters: ServiceCounterSnapshot,
    /// Top subjects of the last window.
    pub top_subjects: TopSubjects,
    /// Mesh peers and links.
    pub mesh: MeshSnapshot,
    /// A page of connections, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionPage>,
    /// Subscription counts, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_summary: Option<SubscriptionSummary>,
    /// Rates of the last minutes, one sample a second, oldest first, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<RateSample>>,
    /// Recent events, oldest first, if asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<Event>>,
}
