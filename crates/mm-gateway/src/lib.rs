//! The Messaging Mesh gateway: the broker, and the mesh between gateways.
//!
//! Clients connect over TCP to a named **service**. Each service runs on its own thread with a
//! single-threaded event loop that owns the service's connections and its subject index, so the
//! routing path takes no lock; the acceptor only reads each connection's CONNECT and hands the
//! socket over. Gateways of a service connect to each other in a full mesh and propagate their
//! clients' interest, so a message crosses the network at most once per destination gateway.
//!
//! # Design
//!
//! A thread per service, rather than a work-stealing runtime for everything: a service's state
//! (subscriptions, output buffers) is touched only by its own thread, so a publish is matched and
//! copied into every subscriber's buffer without locks or atomics, and each touched socket is
//! written once per batch. Services are isolated from each other by construction. The price — one
//! service cannot use more than one core — is the right one for RV-style deployments with a few
//! services per host.
//!
//! # Where to find things
//!
//! * [`config`] — defaults, the JSON configuration file.
//! * `context` — what the whole gateway shares with its services.
//! * `listener` — accepting connections, CONNECT, hand-over to services.
//! * `service` — the per-service event loop: the hot path. It owns and wires the parts below.
//! * `socket` — the task that drives one connection's socket, and lingering on close.
//! * `inbound` — socket to frames: reads through the service's shared buffer.
//! * `connection` — one connection's state; connections are named by generational keys.
//! * `router` — the subject index, routing, publishers' memos, and the flush set (`flush_set`).
//! * `outbound` — per-connection output buffers.
//! * [`subject_trie`] — the subscription index and its match cache.
//! * `mesh` — links to peer gateways, interest propagation, mesh-wide flush: a state machine
//!   that returns effects; `mesh::dial` dials.
//! * `discovery` — finding mesh peers through etcd and DNS; sends each service its peer sets.
//! * `subscriptions` — one connection's subscriptions, indexed by id and by pattern.
//! * `counters`, `stats` — counters, and the `_MM.STATS` answer built from them.
//! * `advisory` — `_MM.ADVISORY.>` messages (slow consumers, refused clients, mesh links up and
//!   down): built and rate limited there, published by `service`.
//! * `memory` — handing memory back to the system after a burst.
//! * [`security`] — TLS, mesh authentication and users in force (reloaded on SIGHUP); `auth`
//!   (credentials, argon2id), `permissions` (subject permissions, private replies, per-user
//!   limits), [`tls`] (certificates, rustls configurations), `transport` (TLS on a connection's
//!   socket, sans I/O), `mesh::auth` (the mesh challenge–response), `listener::handshake` (TLS,
//!   the first frame, authentication). docs/security.md tells the whole story.
//! * `log_limit`, `rate_limit` — warnings a few at a time, subjects cut short in logs; how often
//!   a connection may ask for something costly.
//! * `monitoring` — what a service keeps to be watched (rates, top subjects counted by
//!   `subject_tally`, link round trips, `events`) and the snapshots it hands out;
//!   `monitoring_server` — the HTTP server (JSON, Prometheus, dashboard) that asks for them;
//!   `coordinator_stats` — the statistics published on `_COORDINATOR` (SPEC §11).
//!
//! Dependencies between these modules point one way — `service` uses the parts, the parts never
//! use `service` — and docs/architecture.md draws the picture.

/// This crate's README: its code blocks are compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod advisory;
mod auth;
pub mod config;
mod connection;
mod context;
mod coordinator_stats;
mod counters;
mod discovery;
mod events;
mod flush_set;
mod inbound;
mod listener;
mod log_limit;
pub mod memory;
mod mesh;
mod monitoring;
mod monitoring_server;
mod outbound;
mod permissions;
mod rate_limit;
mod router;
pub mod security;
mod segmented_table;
mod service;
mod socket;
mod stats;
mod subject_tally;
pub mod subject_trie;
mod subscriptions;
#[cfg(test)]
mod test_io;
pub mod tls;
mod transport;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use auth::hash_secret;
pub use config::{ConfigError, GatewayConfig, Limits, MeshConfig};
pub use context::GatewayContext;
pub use security::{SecurityError, SecurityReloader};

/// A gateway that failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The monitoring server's socket could not be bound.
    #[error("cannot listen for monitoring on {address}")]
    MonitoringBind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Mesh discovery cannot work as configured (a certificate or password file that cannot be
    /// read, an unreadable resolver configuration).
    #[error("mesh discovery: {0}")]
    Discovery(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The security settings (certificates, keys, the mesh secret) cannot be used.
    #[error("security settings")]
    Security(#[from] SecurityError),
    /// A configured service could not be started.
    #[error("cannot start service `{service}`")]
    Service {
        /// The service.
        service: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A bound gateway, ready to run.
pub struct Gateway {
    listener: TcpListener,
    local_address: SocketAddr,
    registry: Arc<listener::ServiceRegistry>,
    context: Arc<GatewayContext>,
    shutdown: CancellationToken,
    /// The monitoring server, bound, if it is on.
    monitoring: Option<monitoring_server::MonitoringServer>,
    /// Statistics for `_COORDINATOR`, if they are published.
    coordinator_outbox: Option<tokio::sync::mpsc::Receiver<context::CoordinatorMessage>>,
    discovery: Option<discovery::Discovery>,
}

/// Connections the kernel may hold for the acceptor (capped by `net.core.somaxconn`, 4 096 on
/// current Linux). The usual 128 overflows when thousands of clients connect at once — after a
/// gateway restart, say — and each connection dropped from a full queue waits a whole second for
/// its client to try again.
const LISTEN_BACKLOG: u32 = 4096;

/// The client port, bound and listening with [`LISTEN_BACKLOG`].
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

impl Gateway {
    /// Binds the listening socket and starts the services listed in the configuration's
    /// `StartupMeshes` (which dial their peers at once). Must be called inside a tokio runtime.
    pub async fn bind(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let address = SocketAddr::new(config.bind, config.port);
        let listener = listen(address).map_err(|source| GatewayError::Bind { address, source })?;
        let local_address = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { address, source })?;
        let monitoring = match config.http_address() {
            Some(address) => Some(
                monitoring_server::MonitoringServer::bind(address)
                    .map_err(|source| GatewayError::MonitoringBind { address, source })?,
            ),
            None => None,
        };
        let security = security::SecurityState::load(&config.security)?;
        startup_warnings(&config, local_address, &security);
        let context = Arc::new(GatewayContext::with_security(
            config,
            local_address,
            security,
        ));
        let coordinator_outbox = if context.config.coordinator_stats {
            let (sender, receiver) = coordinator_stats::outbox();
            let _ = context.coordinator_outbox.set(sender);
            Some(receiver)
        } else {
            None
        };
        let discovery = discovery::Discovery::new(&context, local_address)
            .map_err(|error| GatewayError::Discovery(Box::new(error)))?;
        let shutdown = CancellationToken::new();
        let registry = Arc::new(listener::ServiceRegistry::new(
            context.clone(),
            shutdown.clone(),
        ));
        for mesh in &context.config.meshes {
            // The `*` entry applies to services as they start; it is no service of its own.
            if mesh.service == config::EVERY_SERVICE {
                continue;
            }
            if let Err(error) = registry.start_configured(&mesh.service) {
                registry.shutdown().await;
                return Err(GatewayError::Service {
                    service: mesh.service.clone(),
                    source: Box::new(error),
                });
            }
        }
        Ok(Gateway {
            listener,
            local_address,
            registry,
            context,
            shutdown,
            monitoring,
            coordinator_outbox,
            discovery: (!discovery.is_empty()).then_some(discovery),
        })
    }

    /// The address of the monitoring HTTP server, if it is on (with the real port when 0 was
    /// asked for).
    pub fn monitoring_addr(&self) -> Option<SocketAddr> {
        self.monitoring
            .as_ref()
            .map(monitoring_server::MonitoringServer::local_addr)
    }

    /// The address the gateway listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_address
    }

    /// Puts new security settings in force while the gateway runs (SIGHUP).
    pub fn security_reloader(&self) -> SecurityReloader {
        SecurityReloader {
            context: self.context.clone(),
        }
    }

    /// This gateway's `gateway_id`.
    pub fn gateway_id(&self) -> &str {
        &self.context.gateway_id
    }

    /// Accepts connections (and runs mesh discovery) until `shutdown` completes, then closes
    /// every connection and stops every service. One cancellation token reaches everything: the
    /// acceptor, handshakes in progress, discovery, every service loop and its dials; each waits
    /// for its tasks through a `TaskTracker`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let acceptor = tokio::spawn(listener::accept_loop(
            self.listener,
            self.registry.clone(),
            self.shutdown.clone(),
        ));
        let forwarder = self.coordinator_outbox.map(|outbox| {
            tokio::spawn(coordinator_stats::forward(
                outbox,
                self.registry.clone(),
                self.shutdown.clone(),
            ))
        });
        let monitoring = self.monitoring.and_then(|server| {
            server
                .start(self.registry.clone(), self.shutdown.clone())
                .map_err(|error| tracing::warn!(%error, "cannot start the monitoring server"))
                .ok()
        });
        let discovery = self.discovery.map(|discovery| {
            tokio::spawn(discovery.run(self.registry.clone(), self.shutdown.clone()))
        });
        shutdown.await;
        info!("shutting down");
        self.shutdown.cancel();
        let _ = acceptor.await;
        if let Some(forwarder) = forwarder {
            let _ = forwarder.await;
        }
        if let Some(thread) = monitoring {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(discovery) = discovery {
            // Withdraws the etcd registration (bounded to about a second).
            let _ = discovery.await;
        }
        self.registry.shutdown().await;
        info!("stopped");
    }
}

/// Warns about security settings that leave something open or cannot work: a gateway listening
/// beyond loopback with a service open to everyone who can reach the port, unauthenticated mesh
/// links, a TLS-only port with peers dialled in plaintext (docs/security.md).
fn startup_warnings(
    config: &GatewayConfig,
    address: SocketAddr,
    security: &security::SecurityState,
) {
    if !config.meshes.is_empty()
        && config.security.mesh_tls.is_none()
        && config
            .security
            .tls
            .as_ref()
            .is_some_and(|tls| !tls.allow_plaintext)
    {
        tracing::warn!(
            "the port accepts TLS only, but without MeshTls this gateway dials its mesh peers in \
             plaintext, which their TLS-only ports refuse: configure MeshTls (docs/security.md)"
        );
    }
    if address.ip().is_loopback() {
        return;
    }
    let every_service_authenticates = config.security.authenticates_every_service()
        || config.allowed_services.as_ref().is_some_and(|allowed| {
            allowed
                .iter()
                .all(|service| security.service(service).is_some())
        });
    if !every_service_authenticates {
        tracing::warn!(
            %address,
            "listening on a non-loopback address without authentication: anyone who can reach \
             this port can join services, subscribe to anything and read replies; configure \
             ServiceSecurity (docs/security.md)"
        );
    }
    if !config.meshes.is_empty() && !security.mesh_authenticated() {
        tracing::warn!(
            %address,
            "mesh links are not authenticated: configure MeshSecretFile or MeshTls \
             (docs/security.md)"
        );
    }
}
