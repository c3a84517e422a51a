//! The JSON endpoints (docs/monitoring.md has an example of each).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering;

use super::{ServerState, ServiceEntry, SnapshotError, refusals, resident_bytes};
use crate::events::Event;
use crate::monitoring::WINDOW;
use crate::monitoring::snapshot::{
    ConnectionQuery, ConnectionSort, MAX_CONNECTIONS_PER_PAGE, MeshSnapshot, Rates,
    SnapshotRequest, Traffic,
};

/// Events returned when no `limit` is given.
const DEFAULT_EVENTS: usize = 100;

/// Most events returned.
const MAX_EVENTS: usize = 1000;

/// Connections in a page when no `limit` is given.
const DEFAULT_CONNECTIONS: usize = 100;

/// A JSON answer that is never cached.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

fn error(status: StatusCode, message: &str) -> Response {
    json(status, &serde_json::json!({ "error": message }))
}

fn snapshot_error(service: &str, error: SnapshotError) -> Response {
    match error {
        SnapshotError::NotRunning => error_response(
            StatusCode::NOT_FOUND,
            format!("no service `{service}` is running on this gateway"),
        ),
        SnapshotError::Unresponsive => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("service `{service}` did not answer in time"),
        ),
    }
}

fn error_response(status: StatusCode, message: String) -> Response {
    error(status, &message)
}

/// Unknown path.
pub(crate) async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: see docs/monitoring.md (/api/gateway, /api/services, /metrics, /healthz, …)",
    )
}

// -----------------------------------------------------------------------------------------------
// Gateway
// -----------------------------------------------------------------------------------------------

/// Memory the gateway holds.
#[derive(Debug, Serialize)]
pub(crate) struct Memory {
    /// Resident set size of the process.
    pub(crate) resident_bytes: u64,
    /// Output queued for all connections (what the output budget limits).
    pub(crate) queued_output_bytes: u64,
    /// Incomplete frames being received (what the input budget limits).
    pub(crate) partial_input_bytes: u64,
}

/// Totals over every service.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Totals {
    /// Services running.
    pub(crate) services: usize,
    /// Services that did not answer in time.
    pub(crate) unresponsive_services: usize,
    /// Clients connected.
    pub(crate) clients: u64,
    /// Mesh links up.
    pub(crate) links: u64,
    /// Subscriptions in all subject indexes.
    pub(crate) subscriptions: u64,
    /// Traffic since each service started.
    #[serde(flatten)]
    pub(crate) traffic: Traffic,
    /// Rates over the last second.
    pub(crate) rates: Rates,
    /// Clients cut off as slow consumers.
    pub(crate) slow_consumers: u64,
    /// Links closed past their bound.
    pub(crate) slow_links: u64,
    /// Frames dropped from cut-off queues.
    pub(crate) dropped_frames: u64,
    /// Connections refused by the acceptor.
    pub(crate) refused_connections: u64,
}

/// The gateway's limits.
#[derive(Debug, Serialize)]
pub(crate) struct LimitsInfo {
    max_frame: u32,
    max_pending_bytes: usize,
    link_max_pending_bytes: usize,
    max_total_pending_bytes: usize,
    max_total_partial_bytes: usize,
    max_subscriptions_per_connection: usize,
    max_services: usize,
    service_idle_stop_ms: u64,
    heartbeat_ms: u64,
}

/// How monitoring is set up.
#[derive(Debug, Serialize)]
pub(crate) struct MonitoringInfo {
    /// Length of the top-subjects window.
    window_seconds: f64,
    /// Whether statistics are published on `_COORDINATOR`.
    coordinator_stats: bool,
    /// Whether this server requires a token (never the token itself).
    token_required: bool,
}

/// `/api/gateway`.
#[derive(Debug, Serialize)]
pub(crate) struct GatewayInfo {
    pub(crate) version: &'static str,
    pub(crate) name: String,
    pub(crate) gateway_id: String,
    pub(crate) listen_address: String,
    pub(crate) uptime_ms: u64,
    pub(crate) memory: Memory,
    pub(crate) totals: Totals,
    pub(crate) limits: LimitsInfo,
    pub(crate) monitoring: MonitoringInfo,
}

/// The gateway summary from an overview.
pub(crate) fn gateway_info(state: &ServerState, overview: &[ServiceEntry]) -> GatewayInfo {
    let context = &state.context;
    let config = &context.config;
    let mut totals = Totals {
        services: overview.len(),
        refused_connections: context.refused_connections.load(Ordering::Relaxed),
        ..Totals::default()
    };
    for entry in overview {
        let Some(snapshot) = &entry.snapshot else {
            totals.unresponsive_services += 1;
            continue;
        };
        totals.clients += snapshot.clients;
        totals.links += snapshot.links;
        totals.subscriptions += snapshot.subscriptions;
        totals.traffic.add(&snapshot.totals);
        totals.rates.messages_in += snapshot.rates.messages_in;
        totals.rates.bytes_in += snapshot.rates.bytes_in;
        totals.rates.messages_out += snapshot.rates.messages_out;
        totals.rates.bytes_out += snapshot.rates.bytes_out;
        totals.slow_consumers += snapshot.counters.slow_consumers;
        totals.slow_links += snapshot.counters.slow_links;
        totals.dropped_frames += snapshot.counters.dropped_frames;
    }
    GatewayInfo {
        version: env!("CARGO_PKG_VERSION"),
        name: config.name.clone(),
        gateway_id: context.gateway_id.clone(),
        listen_address: context.listen_address.to_string(),
        uptime_ms: context.started.elapsed().as_millis() as u64,
        memory: Memory {
            resident_bytes: resident_bytes(),
            queued_output_bytes: context.queued_output.load(Ordering::Relaxed) as u64,
            partial_input_bytes: context.partial_input.load(Ordering::Relaxed) as u64,
        },
        totals,
        limits: LimitsInfo {
            max_frame: config.max_frame,
            max_pending_bytes: config.client_output_bound(),
            link_max_pending_bytes: config.link_output_bound(),
            max_total_pending_bytes: config.limits.max_total_pending_bytes,
            max_total_partial_bytes: config.limits.max_total_partial_bytes,
            max_subscriptions_per_connection: config.limits.max_subscriptions_per_connection,
            max_services: config.limits.max_services,
            service_idle_stop_ms: config.limits.service_idle_stop.as_millis() as u64,
            heartbeat_ms: config.heartbeat.as_millis() as u64,
        },
        monitoring: MonitoringInfo {
            window_seconds: WINDOW.as_secs_f64(),
            coordinator_stats: config.coordinator_stats,
            token_required: state.token.is_some(),
        },
    }
}

/// `GET /api/gateway`: version, uptime, memory, totals, limits.
pub(crate) async fn gateway(State(state): State<Arc<ServerState>>) -> Response {
    let overview = state.overview().await;
    json(StatusCode::OK, &gateway_info(&state, &overview))
}

/// `GET /healthz`: 200 while every service answers, 503 otherwise. Needs no token.
pub(crate) async fn health(State(state): State<Arc<ServerState>>) -> Response {
    let overview = state.overview().await;
    let unresponsive: Vec<&str> = overview
        .iter()
        .filter(|entry| entry.snapshot.is_none())
        .map(|entry| entry.name.as_str())
        .collect();
    let ok = unresponsive.is_empty() && !state.shutdown.is_cancelled();
    json(
        if ok {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        &serde_json::json!({
            "status": if ok { "ok" } else { "unavailable" },
            "services": overview.len(),
            "unresponsive": unresponsive,
        }),
    )
}

// -----------------------------------------------------------------------------------------------
// Services
// -----------------------------------------------------------------------------------------------

/// One entry of `/api/services`: the snapshot with `"responsive": true`, or only the name.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum ServiceListEntry<'a> {
    /// It answered.
    Answered {
        /// Always true.
        responsive: bool,
        /// Its summary.
        #[serde(flatten)]
        snapshot: &'a crate::monitoring::snapshot::ServiceSnapshot,
    },
    /// It did not answer in time.
    Unresponsive {
        /// The service.
        name: &'a str,
        /// Always false.
        responsive: bool,
    },
}

/// The overview as list entries.
pub(crate) fn service_list(overview: &[ServiceEntry]) -> Vec<ServiceListEntry<'_>> {
    overview
        .iter()
        .map(|entry| match entry.snapshot.as_deref() {
            Some(snapshot) => ServiceListEntry::Answered {
                responsive: true,
                snapshot,
            },
            None => ServiceListEntry::Unresponsive {
                name: &entry.name,
                responsive: false,
            },
        })
        .collect()
}

/// `GET /api/services`: every running service's summary.
pub(crate) async fn services(State(state): State<Arc<ServerState>>) -> Response {
    let overview = state.overview().await;
    json(
        StatusCode::OK,
        &serde_json::json!({ "services": service_list(&overview) }),
    )
}

/// `GET /api/services/{service}`: the summary with rate history and subscription counts.
pub(crate) async fn service(
    State(state): State<Arc<ServerState>>,
    Path(service): Path<String>,
) -> Response {
    let request = SnapshotRequest {
        subscriptions: true,
        history: true,
        ..SnapshotRequest::default()
    };
    match state.snapshot(&service, request).await {
        Ok(snapshot) => json(StatusCode::OK, &snapshot),
        Err(failure) => snapshot_error(&service, failure),
    }
}

/// Query of `/api/services/{service}/connections`.
#[derive(Debug, Deserialize)]
pub(crate) struct ConnectionParams {
    sort: Option<String>,
    offset: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/services/{service}/connections?sort=rate|pending|subscriptions|bytes|id&offset=&limit=`.
pub(crate) async fn connections(
    State(state): State<Arc<ServerState>>,
    Path(service): Path<String>,
    Query(params): Query<ConnectionParams>,
) -> Response {
    let sort = match params.sort.as_deref() {
        None => ConnectionSort::Rate,
        Some(text) => match ConnectionSort::parse(text) {
            Some(sort) => sort,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "sort must be one of rate, pending, subscriptions, bytes, id",
                );
            }
        },
    };
    let limit = params.limit.unwrap_or(DEFAULT_CONNECTIONS);
    if limit == 0 || limit > MAX_CONNECTIONS_PER_PAGE {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("limit must be between 1 and {MAX_CONNECTIONS_PER_PAGE}"),
        );
    }
    let request = SnapshotRequest {
        connections: Some(ConnectionQuery {
            sort,
            offset: params.offset.unwrap_or(0),
            limit,
        }),
        ..SnapshotRequest::default()
    };
    match state.snapshot(&service, request).await {
        Ok(snapshot) => json(StatusCode::OK, &snapshot.connections),
        Err(failure) => snapshot_error(&service, failure),
    }
}

/// `GET /api/services/{service}/subscriptions`: counts and the top patterns.
pub(crate) async fn subscriptions(
    State(state): State<Arc<ServerState>>,
    Path(service): Path<String>,
) -> Response {
    let request = SnapshotRequest {
        subscriptions: true,
        ..SnapshotRequest::default()
    };
    match state.snapshot(&service, request).await {
        Ok(snapshot) => json(StatusCode::OK, &snapshot.subscription_summary),
        Err(failure) => snapshot_error(&service, failure),
    }
}

/// `GET /api/services/{service}/subjects`: top subjects of the last window.
pub(crate) async fn subjects(
    State(state): State<Arc<ServerState>>,
    Path(service): Path<String>,
) -> Response {
    match state.snapshot(&service, SnapshotRequest::default()).await {
        Ok(snapshot) => json(StatusCode::OK, &snapshot.top_subjects),
        Err(failure) => snapshot_error(&service, failure),
    }
}

/// `GET /api/services/{service}/mesh`: peers and links of one service.
pub(crate) async fn service_mesh(
    State(state): State<Arc<ServerState>>,
    Path(service): Path<String>,
) -> Response {
    match state.snapshot(&service, SnapshotRequest::default()).await {
        Ok(snapshot) => json(StatusCode::OK, &snapshot.mesh),
        Err(failure) => snapshot_error(&service, failure),
    }
}

/// One service's mesh in `/api/mesh`.
#[derive(Debug, Serialize)]
pub(crate) struct ServiceMesh<'a> {
    service: &'a str,
    #[serde(flatten)]
    mesh: &'a MeshSnapshot,
}

/// The mesh of every service in an overview.
pub(crate) fn mesh_of(overview: &[ServiceEntry]) -> Vec<ServiceMesh<'_>> {
    overview
        .iter()
        .filter_map(|entry| {
            entry.snapshot.as_ref().map(|snapshot| ServiceMesh {
                service: &entry.name,
                mesh: &snapshot.mesh,
            })
        })
        .filter(|mesh| !mesh.mesh.peers.is_empty() || !mesh.mesh.links.is_empty())
        .collect()
}

/// `GET /api/mesh`: this gateway and, per service, its peers and links.
pub(crate) async fn mesh(State(state): State<Arc<ServerState>>) -> Response {
    let overview = state.overview().await;
    json(
        StatusCode::OK,
        &serde_json::json!({
            "gateway": {
                "name": state.context.config.name,
                "gateway_id": state.context.gateway_id,
            },
            "services": mesh_of(&overview),
        }),
    )
}

// -----------------------------------------------------------------------------------------------
// Events
// -----------------------------------------------------------------------------------------------

/// Query of `/api/events`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventParams {
    limit: Option<usize>,
}

/// The last `limit` events of the gateway and every service, oldest first.
pub(crate) async fn recent_events(state: &ServerState, limit: usize) -> Vec<Event> {
    let request = SnapshotRequest {
        events: true,
        ..SnapshotRequest::default()
    };
    let mut events = refusals(&state.context);
    for entry in state.snapshots(request).await {
        if let Some(snapshot) = entry.snapshot {
            events.extend(snapshot.events.iter().flatten().cloned());
        }
    }
    events.sort_by_key(|event| event.at_ms);
    let skip = events.len().saturating_sub(limit);
    events.split_off(skip)
}

/// `GET /api/events?limit=N`: slow consumers, refusals, link changes, oldest first.
pub(crate) async fn events(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<EventParams>,
) -> Response {
    let limit = params.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    json(
        StatusCode::OK,
        &serde_json::json!({ "events": recent_events(&state, limit).await }),
    )
}
