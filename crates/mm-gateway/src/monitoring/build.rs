//! Building a [`ServiceSnapshot`] from the parts of a service, on the service's thread. Every list
//! is bounded: a page of connections, the busiest links, the top patterns.

use std::time::Instant;

use mm_wire::handshake::Protocol;

use super::Monitor;
use super::snapshot::{
    ConnectionInfo, ConnectionPage, ConnectionQuery, ConnectionSort, LinkInfo,
    MAX_CONNECTIONS_PER_PAGE, MAX_LISTED_LINKS, MeshSnapshot, PatternCount, PeerInfo, Rates,
    ServiceCounterSnapshot, ServiceSnapshot, SnapshotRequest, SubscriptionSummary, TOP_PATTERNS,
};
use super::traffic_of;
use crate::connection::{Connection, ConnectionKey, Connections, Role};
use crate::counters::ServiceCounters;
use crate::events::EVENTS_KEPT;
use crate::mesh::Mesh;
use crate::router::Router;

/// What a snapshot is built from: one service's parts, borrowed.
pub(crate) struct SnapshotSources<'a> {
    /// The service name.
    pub(crate) service: &'a str,
    /// Its connections.
    pub(crate) connections: &'a Connections,
    /// Its subject index.
    pub(crate) router: &'a Router,
    /// Its mesh.
    pub(crate) mesh: &'a Mesh,
    /// Its counters.
    pub(crate) counters: &'a ServiceCounters,
    /// Its monitor.
    pub(crate) monitor: &'a Monitor,
    /// Bytes queued for sending, all connections.
    pub(crate) pending_bytes: usize,
}

/// The snapshot `request` asks for.
pub(crate) fn service_snapshot(
    sources: &SnapshotSources<'_>,
    request: &SnapshotRequest,
    now: Instant,
) -> ServiceSnapshot {
    let counters = sources.counters;
    let mut totals = traffic_of(&counters.closed_connections);
    let mut clients = 0u64;
    let mut links = 0u64;
    for (_, connection) in sources.connections {
        totals.add(&traffic_of(&connection.counters));
        if connection.role.is_link() {
            links += 1;
        } else {
            clients += 1;
        }
    }
    ServiceSnapshot {
        name: sources.service.to_owned(),
        uptime_ms: counters.started.elapsed().as_millis() as u64,
        clients,
        links,
        subscriptions: sources.router.subscriptions() as u64,
        interest_patterns: sources.mesh.interest_len() as u64,
        pending_bytes: sources.pending_bytes as u64,
        totals,
        rates: sources.monitor.rates,
        counters: ServiceCounterSnapshot {
            connections_total: counters.connections_total,
            slow_consumers: counters.slow_consumers,
            slow_links: counters.slow_links,
            dropped_frames: counters.dropped_frames,
            dropped_bytes: counters.dropped_bytes,
            rejected_frames: counters.rejected_frames,
            protocol_errors: counters.protocol_errors,
            unmatched_publishes: counters.unmatched_publishes,
            no_responders_sent: counters.no_responders_sent,
            output_budget_cuts: counters.output_budget_cuts,
            input_budget_closes: counters.input_budget_closes,
            link_dials: sources.mesh.link_dials(),
        },
        top_subjects: sources.monitor.top_subjects.clone(),
        mesh: mesh_snapshot(sources, now),
        connections: request
            .connections
            .map(|query| connection_page(sources, query, now)),
        subscription_summary: request.subscriptions.then(|| subscription_summary(sources)),
        history: request.history.then(|| sources.monitor.history()),
        events: request
            .events
            .then(|| sources.monitor.events.recent(EVENTS_KEPT)),
    }
}

fn protocol_number(protocol: Protocol) -> u8 {
    match protocol {
        Protocol::Mm1 => 1,
        Protocol::Mm2 => 2,
    }
}

/// Rates of a connection, and milliseconds since the monitor first saw it.
fn rates_and_age(monitor: &Monitor, key: ConnectionKey, now: Instant) -> (Rates, u64) {
    monitor
        .connection_rate(key)
        .map(|rate| {
            (
                rate.rates,
                now.saturating_duration_since(rate.since).as_millis() as u64,
            )
        })
        .unwrap_or_default()
}

fn connection_info(
    monitor: &Monitor,
    key: ConnectionKey,
    connection: &Connection,
    now: Instant,
) -> ConnectionInfo {
    let (rates, connected_ms) = rates_and_age(monitor, key, now);
    ConnectionInfo {
        id: connection.id,
        kind: connection.role.kind(),
        name: connection.name.clone(),
        address: connection.address.to_string(),
        protocol: protocol_number(connection.protocol),
        subscriptions: connection.subscriptions.len() as u64,
        pending_bytes: connection.outbound.pending() as u64,
        pending_frames: connection.outbound.frames() as u64,
        traffic: traffic_of(&connection.counters),
        rates,
        connected_ms,
    }
}

/// One page of connections, sorted by `query.sort` (descending; ids ascending). Selects the
/// page in O(n) and sorts only the page's entries.
fn connection_page(
    sources: &SnapshotSources<'_>,
    query: ConnectionQuery,
    now: Instant,
) -> ConnectionPage {
    let limit = query.limit.min(MAX_CONNECTIONS_PER_PAGE);
    let monitor = sources.monitor;
    let weight = |key: ConnectionKey, connection: &Connection| -> f64 {
        match query.sort {
            ConnectionSort::Rate => monitor
                .connection_rate(key)
                .map_or(0.0, |rate| rate.rates.messages_in + rate.rates.messages_out),
            ConnectionSort::Pending => connection.outbound.pending() as f64,
            ConnectionSort::Subscriptions => connection.subscriptions.len() as f64,
            ConnectionSort::Bytes => {
                (connection.counters.bytes_in + connection.counters.bytes_out) as f64
            }
            ConnectionSort::Id => -(connection.id as f64),
        }
    };
    let mut entries: Vec<(f64, u64, ConnectionKey, &Connection)> = sources
        .connections
        .iter()
        .map(|(key, connection)| (weight(key, connection), connection.id, key, connection))
        .collect();
    let total = entries.len();
    let order = |a: &(f64, u64, ConnectionKey, &Connection),
                 b: &(f64, u64, ConnectionKey, &Connection)| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
    };
    let end = query.offset.saturating_add(limit).min(total);
    if end < total && end > 0 {
        entries.select_nth_unstable_by(end - 1, order);
    }
    entries.truncate(end);
    entries.sort_by(order);
    let connections = entries
        .into_iter()
        .skip(query.offset)
        .map(|(_, _, key, connection)| connection_info(monitor, key, connection, now))
        .collect();
    ConnectionPage {
        total,
        sort: query.sort,
        offset: query.offset,
        limit,
        connections,
    }
}

fn subscription_summary(sources: &SnapshotSources<'_>) -> SubscriptionSummary {
    let mut clients = 0u64;
    let mut links = 0u64;
    for connection in sources.connections.values() {
        let held = connection.subscriptions.len() as u64;
        if connection.role.is_link() {
            links += held;
        } else {
            clients += held;
        }
    }
    let mut patterns: Vec<(&[u8], u32)> = sources.mesh.interest_counts().collect();
    let order = |a: &(&[u8], u32), b: &(&[u8], u32)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
    if patterns.len() > TOP_PATTERNS {
        patterns.select_nth_unstable_by(TOP_PATTERNS - 1, order);
        patterns.truncate(TOP_PATTERNS);
    }
    patterns.sort_by(order);
    SubscriptionSummary {
        total: sources.router.subscriptions() as u64,
        clients,
        links,
        distinct_client_patterns: sources.mesh.interest_len() as u64,
        top_patterns: patterns
            .into_iter()
            .map(|(pattern, count)| PatternCount {
                pattern: String::from_utf8_lossy(pattern).into_owned(),
                subscriptions: u64::from(count),
            })
            .collect(),
    }
}

fn mesh_snapshot(sources: &SnapshotSources<'_>, now: Instant) -> MeshSnapshot {
    let monitor = sources.monitor;
    let mut links: Vec<(ConnectionKey, &Connection)> = sources
        .connections
        .iter()
        .filter(|(_, connection)| connection.role.is_link())
        .collect();
    let links_omitted = links.len().saturating_sub(MAX_LISTED_LINKS);
    let busiest = |entry: &(ConnectionKey, &Connection)| {
        std::cmp::Reverse(entry.1.counters.bytes_in + entry.1.counters.bytes_out)
    };
    if links_omitted > 0 {
        links.select_nth_unstable_by_key(MAX_LISTED_LINKS, busiest);
        links.truncate(MAX_LISTED_LINKS);
    }
    links.sort_by_key(|(_, connection)| connection.id);
    // Names of the peers behind dialled links, by configured address (one pass).
    let dialled_names: Vec<(&str, &str)> = sources
        .connections
        .values()
        .filter_map(|connection| match &connection.role {
            Role::DialledLink { address, .. } => Some((address.as_str(), connection.name.as_str())),
            _ => None,
        })
        .collect();
    let peers = sources
        .mesh
        .dialers()
        .map(|(_, dialer)| {
            let peer_name = dialled_names
                .iter()
                .find(|(address, _)| *address == dialer.address)
                .map(|(_, name)| (*name).to_owned())
                .unwrap_or_default();
            PeerInfo {
                address: dialer.address.clone(),
                state: dialer.state.name(),
                peer_id: dialer.peer_id.clone().unwrap_or_default(),
                peer_name,
                dials: dialer.dials,
                reconnects: monitor.reconnects(&dialer.address),
                last_error: dialer
                    .last_failure
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            }
        })
        .collect();
    let links = links
        .into_iter()
        .map(|(key, connection)| {
            let (direction, peer_id, address, interest) = match &connection.role {
                Role::DialledLink { peer_id, address } => (
                    "dialled",
                    peer_id.clone(),
                    address.clone(),
                    sources.mesh.interest_len() as u64,
                ),
                Role::AcceptedLink { peer_id } => (
                    "accepted",
                    peer_id.clone(),
                    connection.address.to_string(),
                    connection.subscriptions.len() as u64,
                ),
                Role::Client { .. } => ("", None, String::new(), 0),
            };
            let (rates, up_ms) = rates_and_age(monitor, key, now);
            LinkInfo {
                id: connection.id,
                direction,
                peer_id: peer_id.unwrap_or_default(),
                peer_name: connection.name.clone(),
                address,
                protocol: protocol_number(connection.protocol),
                rtt_ms: monitor.rtt(key).map(|rtt| rtt.as_secs_f64() * 1000.0),
                pending_bytes: connection.outbound.pending() as u64,
                interest_patterns: interest,
                traffic: traffic_of(&connection.counters),
                rates,
                up_ms,
            }
        })
        .collect();
    MeshSnapshot {
        peers,
        links,
        links_omitted,
    }
}
