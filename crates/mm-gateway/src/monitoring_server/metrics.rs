//! `/metrics`: the Prometheus text format (prometheus-client), built from the overview at each
//! scrape.
//!
//! **Bounded cardinality.** Labels are `service` (at most `MaxServices` values) and, for links,
//! `service`, `peer` and `direction` (at most `MAX_LISTED_LINKS` per service). Nothing is
//! labelled by connection, client or subject: those are unbounded and belong to the JSON
//! endpoints.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use super::ServerState;
use super::api::gateway_info;

/// The content type of the text format.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GatewayLabels {
    version: String,
    name: String,
    gateway_id: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServiceLabels {
    service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LinkLabels {
    service: String,
    peer: String,
    direction: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    service: String,
    address: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// A gauge with no labels, registered and set.
fn gauge(registry: &mut Registry, name: &str, help: &str, unit: Option<Unit>, value: f64) {
    let metric = FloatGauge::default();
    metric.set(value);
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, metric),
        None => registry.register(name, help, metric),
    }
}

/// A counter with no labels, registered and set.
fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric: Counter = Counter::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

/// Per-service metric families, filled from every snapshot and registered at the end.
struct ServiceFamilies {
    gauges: Vec<(
        &'static str,
        &'static str,
        Family<ServiceLabels, FloatGauge>,
    )>,
    counters: Vec<(&'static str, &'static str, Family<ServiceLabels, Counter>)>,
}

impl ServiceFamilies {
    fn gauge(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &ServiceLabels,
        value: f64,
    ) {
        let family = match self.gauges.iter().position(|(known, _, _)| *known == name) {
            Some(index) => &self.gauges[index].2,
            None => {
                self.gauges.push((name, help, Family::default()));
                &self.gauges.last().expect("just pushed").2
            }
        };
        family.get_or_create(labels).set(value);
    }

    fn counter(
        &mut self,
        name: &'static str,
        help: &'static str,
        labels: &ServiceLabels,
        value: u64,
    ) {
        let family = match self
            .counters
            .iter()
            .position(|(known, _, _)| *known == name)
        {
            Some(index) => &self.counters[index].2,
            None => {
                self.counters.push((name, help, Family::default()));
                &self.counters.last().expect("just pushed").2
            }
        };
        family.get_or_create(labels).inc_by(value);
    }
}

/// The whole exposition.
pub(crate) async fn exposition(state: &ServerState) -> String {
    let overview = state.overview().await;
    let info = gateway_info(state, &overview);
    let mut registry = Registry::default();
    registry.register(
        "mm_gateway",
        "The gateway: version, name and id (value 1)",
        Info::new(GatewayLabels {
            version: info.version.to_owned(),
            name: info.name.clone(),
            gateway_id: info.gateway_id.clone(),
        }),
    );
    gauge(
        &mut registry,
        "mm_gateway_uptime",
        "Time since the gateway started",
        Some(Unit::Seconds),
        info.uptime_ms as f64 / 1000.0,
    );
    gauge(
        &mut registry,
        "mm_gateway_resident_memory",
        "Resident set size of the gateway process",
        Some(Unit::Bytes),
        info.memory.resident_bytes as f64,
    );
    gauge(
        &mut registry,
        "mm_gateway_queued_output",
        "Output queued for all connections of all services",
        Some(Unit::Bytes),
        info.memory.queued_output_bytes as f64,
    );
    gauge(
        &mut registry,
        "mm_gateway_partial_input",
        "Incomplete frames held while they are received",
        Some(Unit::Bytes),
        info.memory.partial_input_bytes as f64,
    );
    gauge(
        &mut registry,
        "mm_gateway_services",
        "Services running",
        None,
        info.totals.services as f64,
    );
    gauge(
        &mut registry,
        "mm_gateway_unresponsive_services",
        "Services that did not answer the scrape in time",
        None,
        info.totals.unresponsive_services as f64,
    );
    counter(
        &mut registry,
        "mm_gateway_refused_connections",
        "Connections refused before reaching a service (service not allowed, limit, invalid name)",
        info.totals.refused_connections,
    );

    let mut families = ServiceFamilies {
        gauges: Vec::new(),
        counters: Vec::new(),
    };
    let link_up = Family::<LinkLabels, FloatGauge>::default();
    let link_rtt = Family::<LinkLabels, FloatGauge>::default();
    let link_pending = Family::<LinkLabels, FloatGauge>::default();
    let link_interest = Family::<LinkLabels, FloatGauge>::default();
    let link_messages_in = Family::<LinkLabels, Counter>::default();
    let link_messages_out = Family::<LinkLabels, Counter>::default();
    let link_bytes_in = Family::<LinkLabels, Counter>::default();
    let link_bytes_out = Family::<LinkLabels, Counter>::default();
    let peer_up = Family::<PeerLabels, FloatGauge>::default();
    let peer_reconnects = Family::<PeerLabels, Counter>::default();
    let peer_dials = Family::<PeerLabels, Counter>::default();
    for entry in overview.iter() {
        let Some(snapshot) = &entry.snapshot else {
            continue;
        };
        let labels = ServiceLabels {
            service: entry.name.clone(),
        };
        let f = &mut families;
        f.gauge(
            "mm_service_clients",
            "Clients connected",
            &labels,
            snapshot.clients as f64,
        );
        f.gauge(
            "mm_service_links",
            "Mesh links up",
            &labels,
            snapshot.links as f64,
        );
        f.gauge(
            "mm_service_subscriptions",
            "Entries in the subject index (clients' and peers')",
            &labels,
            snapshot.subscriptions as f64,
        );
        f.gauge(
            "mm_service_interest_patterns",
            "Distinct local patterns propagated to mesh peers",
            &labels,
            snapshot.interest_patterns as f64,
        );
        f.gauge(
            "mm_service_pending_bytes",
            "Bytes queued for sending, all connections of the service",
            &labels,
            snapshot.pending_bytes as f64,
        );
        f.gauge(
            "mm_service_top_subject_window_messages",
            "Messages published by local clients in the last top-subjects window",
            &labels,
            snapshot.top_subjects.total_messages as f64,
        );
        let totals = &snapshot.totals;
        f.counter(
            "mm_service_messages_in",
            "Frames received",
            &labels,
            totals.messages_in,
        );
        f.counter(
            "mm_service_bytes_in",
            "Bytes received",
            &labels,
            totals.bytes_in,
        );
        f.counter(
            "mm_service_messages_out",
            "Frames sent (queued)",
            &labels,
            totals.messages_out,
        );
        f.counter(
            "mm_service_bytes_out",
            "Bytes sent (queued)",
            &labels,
            totals.bytes_out,
        );
        let counters = &snapshot.counters;
        f.counter(
            "mm_service_connections",
            "Connections attached since the service started",
            &labels,
            counters.connections_total,
        );
        f.counter(
            "mm_service_slow_consumers",
            "Clients cut off because their queue passed its bound",
            &labels,
            counters.slow_consumers,
        );
        f.counter(
            "mm_service_slow_links",
            "Mesh links closed because their queue passed its bound",
            &labels,
            counters.slow_links,
        );
        f.counter(
            "mm_service_dropped_messages",
            "Frames discarded from the queues of slow consumers and links",
            &labels,
            counters.dropped_frames,
        );
        f.counter(
            "mm_service_dropped_bytes",
            "Bytes discarded from the queues of slow consumers and links",
            &labels,
            counters.dropped_bytes,
        );
        f.counter(
            "mm_service_rejected_frames",
            "Frames refused (invalid subjects, misuse)",
            &labels,
            counters.rejected_frames,
        );
        f.counter(
            "mm_service_protocol_errors",
            "Connections closed for protocol errors",
            &labels,
            counters.protocol_errors,
        );
        f.counter(
            "mm_service_unmatched_publishes",
            "Publishes that matched no subscription",
            &labels,
            counters.unmatched_publishes,
        );
        f.counter(
            "mm_service_output_budget_cuts",
            "Connections cut off because the gateway's output budget was exceeded",
            &labels,
            counters.output_budget_cuts,
        );
        f.counter(
            "mm_service_link_dials",
            "Mesh dial attempts",
            &labels,
            counters.link_dials,
        );
        for link in &snapshot.mesh.links {
            let labels = LinkLabels {
                service: entry.name.clone(),
                peer: if link.peer_name.is_empty() {
                    link.address.clone()
                } else {
                    link.peer_name.clone()
                },
                direction: link.direction.to_owned(),
            };
            link_up.get_or_create(&labels).set(1.0);
            if let Some(rtt) = link.rtt_ms {
                link_rtt.get_or_create(&labels).set(rtt / 1000.0);
            }
            link_pending
                .get_or_create(&labels)
                .set(link.pending_bytes as f64);
            link_interest
                .get_or_create(&labels)
                .set(link.interest_patterns as f64);
            link_messages_in
                .get_or_create(&labels)
                .inc_by(link.traffic.messages_in);
            link_messages_out
                .get_or_create(&labels)
                .inc_by(link.traffic.messages_out);
            link_bytes_in
                .get_or_create(&labels)
                .inc_by(link.traffic.bytes_in);
            link_bytes_out
                .get_or_create(&labels)
                .inc_by(link.traffic.bytes_out);
        }
        for peer in snapshot
            .mesh
            .peers
            .iter()
            .filter(|peer| peer.state != "self")
        {
            let labels = PeerLabels {
                service: entry.name.clone(),
                address: peer.address.clone(),
            };
            peer_up
                .get_or_create(&labels)
                .set(if peer.state == "up" { 1.0 } else { 0.0 });
            peer_reconnects
                .get_or_create(&labels)
                .inc_by(peer.reconnects);
            peer_dials.get_or_create(&labels).inc_by(peer.dials);
        }
    }
    for (name, help, family) in families.gauges {
        registry.register(name, help, family);
    }
    for (name, help, family) in families.counters {
        registry.register(name, help, family);
    }
    registry.register("mm_link_up", "A mesh link that is up (1)", link_up);
    registry.register_with_unit(
        "mm_link_rtt",
        "Round-trip time of the link's last probe PING",
        Unit::Seconds,
        link_rtt,
    );
    registry.register_with_unit(
        "mm_link_pending",
        "Bytes queued for the peer",
        Unit::Bytes,
        link_pending,
    );
    registry.register(
        "mm_link_interest_patterns",
        "Interest patterns on the link (sent on dialled links, registered by the peer on accepted ones)",
        link_interest,
    );
    registry.register(
        "mm_link_messages_in",
        "Frames received on the link",
        link_messages_in,
    );
    registry.register(
        "mm_link_messages_out",
        "Frames sent on the link",
        link_messages_out,
    );
    registry.register(
        "mm_link_bytes_in",
        "Bytes received on the link",
        link_bytes_in,
    );
    registry.register(
        "mm_link_bytes_out",
        "Bytes sent on the link",
        link_bytes_out,
    );
    registry.register(
        "mm_peer_up",
        "Whether the dialler of a configured peer address has its link up",
        peer_up,
    );
    registry.register(
        "mm_peer_reconnects",
        "Times the link to a configured peer came up again after the first",
        peer_reconnects,
    );
    registry.register(
        "mm_peer_dials",
        "Dial attempts to a configured peer",
        peer_dials,
    );
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text.clear();
    }
    text
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let text = exposition(&state).await;
    if text.is_empty() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, CONTENT_TYPE),
            (header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response()
}
