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
//! * `subscriptions` — one connection's subscriptions, indexed by id and by pattern.
//! * `counters`, `stats` — counters, and the `_MM.STATS` answer built from them.
//! * `advisory` — `_MM.ADVISORY.>` messages (slow consumers, refused clients, mesh links up and
//!   down): built and rate limited there, published by `service`.
//! * `memory` — handing memory back to the system after a burst.
//! * `log_limit`, `rate_limit` — warnings a few at a time, subjects cut short in logs; how often
//!   a connection may ask for something costly.
//!
//! Dependencies between these modules point one way — `service` uses the parts, the parts never
//! use `service` — and docs/architecture.md draws the picture.

/// This crate's README: its code blocks are compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod advisory;
pub mod config;
mod connection;
mod context;
mod counters;
mod flush_set;
mod inbound;
mod listener;
mod log_limit;
pub mod memory;
mod mesh;
mod outbound;
mod rate_limit;
mod router;
mod service;
mod socket;
mod stats;
pub mod subject_trie;
mod subscriptions;
#[cfg(test)]
mod test_harness;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::{ConfigError, GatewayConfig, Limits, MeshConfig};
pub use context::GatewayContext;

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
}

impl Gateway {
    /// Binds the listening socket and starts the services listed in the configuration's
    /// `StartupMeshes` (which dial their peers at once). Must be called inside a tokio runtime.
    pub async fn bind(config: GatewayConfig) -> Result<Gateway, GatewayError> {
        let address = SocketAddr::new(config.bind, config.port);
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| GatewayError::Bind { address, source })?;
        let local_address = listener
            .local_addr()
            .map_err(|source| GatewayError::Bind { address, source })?;
        let context = Arc::new(GatewayContext::new(config, local_address));
        let shutdown = CancellationToken::new();
        let registry = Arc::new(listener::ServiceRegistry::new(
            context.clone(),
            shutdown.clone(),
        ));
        for mesh in &context.config.meshes {
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
        })
    }

    /// The address the gateway listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_address
    }

    /// This gateway's `gateway_id`.
    pub fn gateway_id(&self) -> &str {
        &self.context.gateway_id
    }

    /// Accepts connections until `shutdown` completes, then closes every connection and stops
    /// every service. One cancellation token reaches everything: the acceptor, handshakes in
    /// progress, every service loop and its dials; each waits for its tasks through a
    /// `TaskTracker`.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let acceptor = tokio::spawn(listener::accept_loop(
            self.listener,
            self.registry.clone(),
            self.shutdown.clone(),
        ));
        shutdown.await;
        info!("shutting down");
        self.shutdown.cancel();
        let _ = acceptor.await;
        self.registry.shutdown().await;
        info!("stopped");
    }
}
