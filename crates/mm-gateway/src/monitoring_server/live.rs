//! `/api/live`: the dashboard's feed, as server-sent events — one `update` event a second with
//! the gateway, every service's summary, the mesh, recent events and, for the service the
//! dashboard shows (`?service=NAME`), its busiest connections, subscription counts and (in the
//! first update only) its rate history.
//!
//! At most `MAX_LIVE_STREAMS` streams at once; each ends when the gateway shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ServerState;
use super::api::{
    GatewayInfo, ServiceListEntry, ServiceMesh, gateway_info, json, mesh_of, recent_events,
    service_list,
};
use crate::events::Event as GatewayEvent;
use crate::monitoring::snapshot::{
    ConnectionQuery, ConnectionSort, ServiceSnapshot, SnapshotRequest,
};

/// How often an update is sent.
const UPDATE_INTERVAL: Duration = Duration::from_secs(1);

/// Connections of the selected service in each update.
const LIVE_CONNECTIONS: usize = 20;

/// Events in each update.
const LIVE_EVENTS: usize = 50;

/// Query of `/api/live`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveParams {
    service: Option<String>,
}

/// One update.
#[derive(Debug, Serialize)]
struct LiveUpdate<'a> {
    gateway: GatewayInfo,
    services: Vec<ServiceListEntry<'a>>,
    mesh: Vec<ServiceMesh<'a>>,
    events: Vec<GatewayEvent>,
    /// The selected service in detail (absent if none is selected or it is gone).
    #[serde(skip_serializing_if = "Option::is_none")]
    selected: Option<Box<ServiceSnapshot>>,
}

/// One update as an SSE event.
async fn update(state: &ServerState, service: Option<&str>, first: bool) -> Option<Event> {
    let overview = state.overview().await;
    let selected = match service {
        Some(name) => state
            .snapshot(
                name,
                SnapshotRequest {
                    connections: Some(ConnectionQuery {
                        sort: ConnectionSort::Rate,
                        offset: 0,
                        limit: LIVE_CONNECTIONS,
                    }),
                    subscriptions: true,
                    history: first,
                    events: false,
                },
            )
            .await
            .ok(),
        None => None,
    };
    let live = LiveUpdate {
        gateway: gateway_info(state, &overview),
        services: service_list(&overview),
        mesh: mesh_of(&overview),
        events: recent_events(state, LIVE_EVENTS).await,
        selected,
    };
    Event::default().event("update").json_data(&live).ok()
}

/// `GET /api/live?service=NAME`.
pub(crate) async fn live(
    State(state): State<Arc<ServerState>>,
    Query(params): Query<LiveParams>,
) -> Response {
    let Ok(permit) = state.live_streams.clone().try_acquire_owned() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            &serde_json::json!({ "error": "too many live dashboards on this gateway" }),
        );
    };
    let stream = futures_util::stream::unfold(
        (state, params.service, true, permit),
        |(state, service, first, permit)| async move {
            if !first {
                tokio::select! {
                    _ = tokio::time::sleep(UPDATE_INTERVAL) => {}
                    _ = state.shutdown.cancelled() => return None,
                }
            }
            if state.shutdown.is_cancelled() {
                return None;
            }
            let event = update(&state, service.as_deref(), first)
                .await
                .unwrap_or_else(|| Event::default().comment("update failed"));
            Some((Ok::<_, Infallible>(event), (state, service, false, permit)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
