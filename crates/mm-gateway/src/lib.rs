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
//! * `listener` — accepting connections, CONNECT, hand-over to services.
//! * `service` — the per-service event loop: the hot path.
//! * `connection` — one connection's state and socket task.
//! * `outbound` — per-connection output buffers.
//! * [`subject_trie`] — the subscription index and its match cache.
//! * `mesh` — links to peer gateways, interest propagation, mesh-wide flush.
//! * `stats` — counters and the `_MM.STATS` answer.

pub mod config;
mod connection;
mod listener;
mod mesh;
mod outbound;
mod service;
mod stats;
pub mod subject_trie;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

pub use config::{ConfigError, GatewayConfig, MeshConfig};
pub use service::GatewayContext;

/// A gateway that failed to start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A configured service could not be started.
    #[error("cannot start service `{service}`: {message}")]
    Service {
        /// The service.
        service: String,
        /// Why.
        message: String,
    },
}

/// A bound gateway, ready to run.
pub struct Gateway {
    listener: TcpListener,
    local_address: SocketAddr,
    registry: Arc<listener::ServiceRegistry>,
    context: Arc<GatewayContext>,
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
        let registry = Arc::new(listener::ServiceRegistry::new(context.clone()));
        for mesh in &context.config.meshes {
            registry
                .service(&mesh.service)
                .map_err(|error| GatewayError::Service {
                    service: mesh.service.clone(),
                    message: format!("{error:?}"),
                })?;
        }
        Ok(Gateway {
            listener,
            local_address,
            registry,
            context,
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
    /// every service.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio::spawn(listener::accept_loop(
            self.listener,
            self.registry.clone(),
            stopped,
        ));
        shutdown.await;
        info!("shutting down");
        let _ = stop.send(true);
        let _ = acceptor.await;
        self.registry.shutdown().await;
        info!("stopped");
    }
}
