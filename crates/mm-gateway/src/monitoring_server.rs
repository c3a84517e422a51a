//! The monitoring HTTP server: JSON endpoints, `/metrics` for Prometheus, a live dashboard, and
//! a health check (docs/monitoring.md lists every endpoint).
//!
//! It runs on a thread of its own (a current-thread tokio runtime serving axum), so neither the
//! acceptor nor any service loop ever formats JSON or waits for a browser. It reads nothing of a
//! service's state: it sends the service a `ServiceCommand::Snapshot` and awaits the owned,
//! bounded answer with a timeout — a service that does not answer in time is reported as
//! unresponsive, never waited for.
//!
//! **Bounded.** Snapshots of every service (the overview) are computed at most every
//! [`OVERVIEW_REUSE`] however many clients ask; other requests to services go through a
//! semaphore of [`SNAPSHOTS_IN_FLIGHT`]; live dashboards are limited to [`MAX_LIVE_STREAMS`].
//!
//! **Access.** The server listens on loopback unless told otherwise. With a token configured,
//! every endpoint but `/healthz` and the dashboard's static files requires it (see `auth`); the
//! token is compared in constant time and is never shown by any endpoint or log line.

mod api;
mod auth;
mod dashboard;
mod live;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures_util::future::join_all;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Secret;
use crate::context::GatewayContext;
use crate::listener::ServiceRegistry;
use crate::monitoring::snapshot::{ServiceSnapshot, SnapshotRequest};
use crate::service::ServiceCommand;

/// How long the server waits for a service's snapshot.
pub(crate) const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the overview (every service's summary) is reused.
pub(crate) const OVERVIEW_REUSE: Duration = Duration::from_millis(250);

/// Snapshot requests (other than the overview) waiting for services at once.
pub(crate) const SNAPSHOTS_IN_FLIGHT: usize = 4;

/// Live dashboards (server-sent event streams) at once.
pub(crate) const MAX_LIVE_STREAMS: usize = 16;

/// One service in an overview: its snapshot, or `None` if it did not answer in time.
#[derive(Debug, Clone)]
pub(crate) struct ServiceEntry {
    /// The service.
    pub(crate) name: String,
    /// Its snapshot.
    pub(crate) snapshot: Option<Arc<ServiceSnapshot>>,
}

/// What the handlers share.
pub(crate) struct ServerState {
    /// The running services.
    registry: Arc<ServiceRegistry>,
    /// The gateway.
    pub(crate) context: Arc<GatewayContext>,
    /// The token every data endpoint requires, if any.
    pub(crate) token: Option<Secret>,
    /// Bounds snapshot requests in flight.
    snapshots: Semaphore,
    /// Bounds live streams.
    pub(crate) live_streams: Arc<Semaphore>,
    /// The last overview and when it was taken.
    overview: tokio::sync::Mutex<Option<(Instant, Arc<Vec<ServiceEntry>>)>>,
    /// Cancelled at shutdown: live streams end.
    pub(crate) shutdown: CancellationToken,
}

/// Why a service's snapshot could not be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SnapshotError {
    /// No such service is running.
    NotRunning,
    /// It did not answer within [`SNAPSHOT_TIMEOUT`].
    Unresponsive,
}

impl ServerState {
    /// Every running service's summary (no extras), reused for [`OVERVIEW_REUSE`].
    pub(crate) async fn overview(&self) -> Arc<Vec<ServiceEntry>> {
        let mut cached = self.overview.lock().await;
        if let Some((taken, overview)) = cached.as_ref()
            && taken.elapsed() < OVERVIEW_REUSE
        {
            return overview.clone();
        }
        let running = self.registry.running();
        let answers = join_all(
            running
                .iter()
                .map(|(_, commands)| ask(commands, SnapshotRequest::default())),
        )
        .await;
        let overview = Arc::new(entries(running, answers));
        *cached = Some((Instant::now(), overview.clone()));
        overview
    }

    /// One service's snapshot with what `request` asks for.
    pub(crate) async fn snapshot(
        &self,
        service: &str,
        request: SnapshotRequest,
    ) -> Result<Box<ServiceSnapshot>, SnapshotError> {
        let commands = self
            .registry
            .running_service(service)
            .ok_or(SnapshotError::NotRunning)?;
        let _permit = self
            .snapshots
            .acquire()
            .await
            .map_err(|_| SnapshotError::Unresponsive)?;
        ask(&commands, request).await
    }

    /// Snapshots of every running service with what `request` asks for (one request in flight
    /// per service, under the same semaphore as single snapshots).
    pub(crate) async fn snapshots(&self, request: SnapshotRequest) -> Vec<ServiceEntry> {
        let Ok(_permit) = self.snapshots.acquire().await else {
            return Vec::new();
        };
        let running = self.registry.running();
        let answers = join_all(
            running
                .iter()
                .map(|(_, commands)| ask(commands, request.clone())),
        )
        .await;
        entries(running, answers)
    }
}

/// Services and their answers as entries; a service that stopped meanwhile (an idle on-demand
/// service) is left out rather than reported as unresponsive.
fn entries(
    running: Vec<(String, mpsc::Sender<ServiceCommand>)>,
    answers: Vec<Result<Box<ServiceSnapshot>, SnapshotError>>,
) -> Vec<ServiceEntry> {
    running
        .into_iter()
        .zip(answers)
        .filter_map(|((name, _), answer)| match answer {
            Ok(snapshot) => Some(ServiceEntry {
                name,
                snapshot: Some(Arc::from(snapshot)),
            }),
            Err(SnapshotError::Unresponsive) => Some(ServiceEntry {
                name,
                snapshot: None,
            }),
            Err(SnapshotError::NotRunning) => None,
        })
        .collect()
}

/// Sends a service a snapshot request and waits (bounded) for the answer. A service whose loop
/// has ended (its channel is closed, or it dropped the request) is `NotRunning`.
async fn ask(
    commands: &mpsc::Sender<ServiceCommand>,
    request: SnapshotRequest,
) -> Result<Box<ServiceSnapshot>, SnapshotError> {
    let (reply, answer) = oneshot::channel();
    tokio::time::timeout(SNAPSHOT_TIMEOUT, async {
        commands
            .send(ServiceCommand::Snapshot { request, reply })
            .await
            .map_err(|_| SnapshotError::NotRunning)?;
        answer.await.map_err(|_| SnapshotError::NotRunning)
    })
    .await
    .unwrap_or(Err(SnapshotError::Unresponsive))
}

/// A bound monitoring server, not yet serving.
pub(crate) struct MonitoringServer {
    listener: std::net::TcpListener,
    local_address: SocketAddr,
}

impl MonitoringServer {
    /// Binds the server's socket (so a bad address fails the gateway's start).
    pub(crate) fn bind(address: SocketAddr) -> std::io::Result<MonitoringServer> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let local_address = listener.local_addr()?;
        Ok(MonitoringServer {
            listener,
            local_address,
        })
    }

    /// The address it listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_address
    }

    /// Serves on a thread of its own until `shutdown` is cancelled.
    pub(crate) fn start(
        self,
        registry: Arc<ServiceRegistry>,
        shutdown: CancellationToken,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let context = registry.context().clone();
        let state = Arc::new(ServerState {
            token: context.config.http_token.clone(),
            context,
            registry,
            snapshots: Semaphore::new(SNAPSHOTS_IN_FLIGHT),
            live_streams: Arc::new(Semaphore::new(MAX_LIVE_STREAMS)),
            overview: tokio::sync::Mutex::new(None),
            shutdown: shutdown.clone(),
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let MonitoringServer {
            listener,
            local_address,
        } = self;
        std::thread::Builder::new()
            .name("monitoring".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => listener,
                        Err(error) => {
                            warn!(%error, "monitoring server cannot start");
                            return;
                        }
                    };
                    info!(address = %local_address, token = state.token.is_some(), "monitoring server listening");
                    let app = routes(state);
                    let served = axum::serve(listener, app)
                        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
                    // Connections still open at shutdown get a moment, then go.
                    tokio::select! {
                        result = served => {
                            if let Err(error) = result {
                                warn!(%error, "monitoring server stopped");
                            }
                        }
                        _ = async {
                            shutdown.cancelled().await;
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        } => {}
                    }
                })
            })
    }
}

/// Every route.
fn routes(state: Arc<ServerState>) -> Router {
    let data = Router::new()
        .route("/api/gateway", get(api::gateway))
        .route("/api/services", get(api::services))
        .route("/api/services/{service}", get(api::service))
        .route("/api/services/{service}/connections", get(api::connections))
        .route(
            "/api/services/{service}/subscriptions",
            get(api::subscriptions),
        )
        .route("/api/services/{service}/subjects", get(api::subjects))
        .route("/api/services/{service}/mesh", get(api::service_mesh))
        .route("/api/mesh", get(api::mesh))
        .route("/api/events", get(api::events))
        .route("/api/live", get(live::live))
        .route("/metrics", get(metrics::metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(dashboard::index))
        .route("/dashboard.js", get(dashboard::script))
        .route("/dashboard.css", get(dashboard::style))
        .route("/healthz", get(api::health))
        .merge(data)
        .fallback(api::not_found)
        .with_state(state)
}

/// Resident set size of the process in bytes (0 if /proc cannot be read).
pub(crate) fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// The acceptor's log of refused connections.
pub(crate) fn refusals(context: &GatewayContext) -> Vec<crate::events::Event> {
    context
        .refusals
        .lock()
        .map(|log| log.recent(crate::events::EVENTS_KEPT))
        .unwrap_or_default()
}
