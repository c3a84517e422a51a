//! The `_MM.STATS` answer (SPEC §9; field names in docs/protocol.md), built from the parts of a
//! service.

use mm_wire::Message;
use mm_wire::handshake::Protocol;

use crate::advisory::Advisories;
use crate::connection::{Connection, Connections, Role};
use crate::context::GatewayContext;
use crate::counters::ServiceCounters;
use crate::mesh::Mesh;
use crate::router::Router;

/// What the answer is built from: one service's parts, borrowed.
pub(crate) struct StatsSources<'a> {
    /// The service name.
    pub(crate) service: &'a str,
    /// The gateway.
    pub(crate) context: &'a GatewayContext,
    /// Its connections.
    pub(crate) connections: &'a Connections,
    /// Its subject index.
    pub(crate) router: &'a Router,
    /// Its mesh.
    pub(crate) mesh: &'a Mesh,
    /// Its counters.
    pub(crate) counters: &'a ServiceCounters,
    /// Its advisories (for their counts).
    pub(crate) advisories: &'a Advisories,
    /// Whether each listed connection and link also lists its patterns (a request body with
    /// `subscriptions` = true).
    pub(crate) with_patterns: bool,
}

/// Most `connection` entries in an answer (and, apart, most `link` entries): the busiest, by
/// bytes in and out. The totals cover every connection; `connections_omitted` and
/// `links_omitted` count the rest. Bounds the answer's size and the work of building it.
pub(crate) const MAX_LISTED_CONNECTIONS: usize = 100;

/// Most `pattern` fields in one `connection` or `link` entry of an answer with subscriptions;
/// `patterns_omitted` counts the rest.
pub(crate) const MAX_LISTED_PATTERNS: usize = 100;

/// The answer to `_MM.STATS`: service totals, then one `connection` field per client, one `link`
/// field per mesh link (the busiest [`MAX_LISTED_CONNECTIONS`] of each), one `peer` field per mesh
/// peer address (configured or discovered) and one `discovery` field per discovery source.
pub(crate) fn stats_message(sources: &StatsSources<'_>) -> Message {
    let counters = sources.counters;
    let mut totals = counters.closed_connections;
    let mut clients = 0u32;
    let mut links = 0u32;
    for (_, connection) in sources.connections {
        totals.add(&connection.counters);
        if connection.role.is_link() {
            links += 1;
        } else {
            clients += 1;
        }
    }
    let mut message = Message::new()
        .add_string("service", sources.service)
        .add_string("gateway_name", sources.context.config.name.as_str())
        .add_string("gateway_id", sources.context.gateway_id.as_str())
        .add_u64("uptime_ms", counters.started.elapsed().as_millis() as u64)
        .add_u32("clients", clients)
        .add_u32("links", links)
        .add_u64("subscriptions", sources.router.subscriptions() as u64)
        .add_u64("interest", sources.mesh.interest_len() as u64);
    totals.write_fields(&mut message);
    message
        .push("connections_total", counters.connections_total)
        .push("slow_consumers", counters.slow_consumers)
        .push("slow_links", counters.slow_links)
        .push("dropped_frames", counters.dropped_frames)
        .push("dropped_bytes", counters.dropped_bytes)
        .push("rejected_frames", counters.rejected_frames)
        .push("protocol_errors", counters.protocol_errors)
        .push("unmatched_publishes", counters.unmatched_publishes)
        .push("no_responders_sent", counters.no_responders_sent)
        .push("link_dials", sources.mesh.link_dials())
        .push("log_lines_suppressed", counters.log_lines_suppressed)
        .push("stats_requests_refused", counters.stats_requests_refused)
        .push("output_budget_cuts", counters.output_budget_cuts)
        .push("input_budget_closes", counters.input_budget_closes)
        .push("permission_denied", counters.permission_denied)
        .push(
            "authentication_failures",
            sources
                .context
                .authentication_failures
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .push(
            "mesh_authentication_failures",
            sources
                .context
                .mesh_authentication_failures
                .load(std::sync::atomic::Ordering::Relaxed),
        )
        .push("advisories_published", sources.advisories.published_total())
        .push(
            "advisories_suppressed",
            sources.advisories.suppressed_total(),
        );
    let (listed_clients, clients_omitted) =
        busiest(sources.connections, |connection| !connection.role.is_link());
    let (listed_links, links_omitted) =
        busiest(sources.connections, |connection| connection.role.is_link());
    message
        .push("connections_omitted", clients_omitted as u64)
        .push("links_omitted", links_omitted as u64);
    for connection in listed_clients.into_iter().chain(listed_links) {
        let mut entry = Message::new()
            .add_u64("id", connection.id)
            .add_string("name", connection.name.as_str())
            .add_string("address", connection.address.to_string())
            .add_i32(
                "protocol",
                match connection.protocol {
                    Protocol::Mm1 => 1,
                    Protocol::Mm2 => 2,
                },
            )
            .add_u32("subscriptions", connection.subscriptions.len() as u32)
            .add_u64("pending_bytes", connection.outbound.pending() as u64)
            .add_u64("pending_frames", connection.outbound.frames() as u64);
        connection.counters.write_fields(&mut entry);
        if sources.with_patterns {
            write_patterns(&mut entry, connection);
        }
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
    for (_, dialer) in sources.mesh.dialers() {
        message.push(
            "peer",
            Message::new()
                .add_string("address", dialer.address.as_str())
                .add_string("source", dialer.found_by())
                .add_bool("leaving", dialer.leaving.is_some())
                .add_string("state", dialer.state.name())
                .add_u64("dials", dialer.dials)
                .add_string("peer_id", dialer.peer_id.as_deref().unwrap_or_default())
                .add_string(
                    "last_error",
                    dialer
                        .last_failure
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                ),
        );
    }
    for record in sources.mesh.sources() {
        message.push(
            "discovery",
            Message::new()
                .add_string("source", record.source.to_string())
                .add_string(
                    "state",
                    match (&record.error, record.peers) {
                        (Some(_), _) => "unreachable",
                        (None, Some(_)) => "ok",
                        (None, None) => "starting",
                    },
                )
                .add_u32(
                    "peers",
                    record.peers.unwrap_or(0).min(u32::MAX as usize) as u32,
                )
                .add_string("last_error", record.error.as_deref().unwrap_or_default()),
        );
    }
    message
}

/// Up to [`MAX_LISTED_PATTERNS`] of the connection's patterns, sorted, as repeated `pattern`
/// fields, then `patterns_omitted`.
fn write_patterns(entry: &mut Message, connection: &Connection) {
    let mut patterns: Vec<&[u8]> = connection
        .subscriptions
        .patterns()
        .take(MAX_LISTED_PATTERNS)
        .collect();
    patterns.sort_unstable();
    for pattern in patterns.iter() {
        entry.push("pattern", String::from_utf8_lossy(pattern).as_ref());
    }
    let omitted = connection
        .subscriptions
        .len()
        .saturating_sub(patterns.len());
    entry.push("patterns_omitted", omitted as u64);
}

/// The busiest [`MAX_LISTED_CONNECTIONS`] connections that pass `filter` (O(n), no full sort),
/// busiest first, and how many others passed.
fn busiest(
    connections: &Connections,
    filter: impl Fn(&Connection) -> bool,
) -> (Vec<&Connection>, usize) {
    let mut chosen: Vec<&Connection> = connections
        .values()
        .filter(|connection| filter(connection))
        .collect();
    let traffic = |connection: &&Connection| {
        std::cmp::Reverse(connection.counters.bytes_in + connection.counters.bytes_out)
    };
    let omitted = chosen.len().saturating_sub(MAX_LISTED_CONNECTIONS);
    if omitted > 0 {
        chosen.select_nth_unstable_by_key(MAX_LISTED_CONNECTIONS, traffic);
        chosen.truncate(MAX_LISTED_CONNECTIONS);
    }
    chosen.sort_by_key(traffic);
    (chosen, omitted)
}
