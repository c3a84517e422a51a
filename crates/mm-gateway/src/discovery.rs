//! Mesh discovery: how the gateways of a service find each other besides the addresses listed in
//! the configuration.
//!
//! * [`etcd`] — each gateway registers each service it serves under a lease it keeps alive,
//!   reads the registrations of the others and watches them change. The etcd cluster is the
//!   registry; there is no coordinator of our own.
//! * [`dns`] — a `dns:NAME:PORT` entry of `MeshGateways` resolves to many addresses (a
//!   Kubernetes headless service, a round-robin name); it is resolved again periodically.
//!
//! Discovery is I/O and runs on the gateway's main runtime, beside the acceptor. It never touches
//! a service's state: for each service it sends the whole peer set a source lists now (and the
//! source's health) to the service's thread as a `ServiceCommand`, through the service registry.
//! The service's mesh (`crate::mesh`) turns peer sets into diallers: new addresses are dialled at
//! once, addresses no source lists any more are dropped after a grace period.
//!
//! **Self-detection.** etcd registrations carry the gateway id, so a gateway skips its own
//! registration directly. A DNS name usually resolves to this gateway's address too: that
//! address is dialled once, the handshake returns our own id, and the dialler is marked `self`,
//! as for a configured address.
//!
//! **When the registry is away** the last peer set stays in force: links keep working and
//! diallers keep redialling the addresses they know. etcd discovery retries with backoff and, once
//! etcd answers again, registers anew and reads the whole peer set again; a gateway started while
//! etcd is down serves its local clients meanwhile and joins the mesh when etcd is back.

mod dns;
#[cfg(feature = "etcd")]
mod etcd;

use std::net::SocketAddr;
use std::sync::Arc;
#[cfg(feature = "etcd")]
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::GatewayContext;
use crate::listener::ServiceRegistry;

/// First pause after a registry could not be reached; doubled up to [`RETRY_MAX`].
#[cfg(feature = "etcd")]
const RETRY_FIRST: Duration = Duration::from_millis(100);

/// Longest pause between two attempts to reach a registry.
#[cfg(feature = "etcd")]
const RETRY_MAX: Duration = Duration::from_secs(2);

/// Why discovery cannot start (a configuration that cannot work).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DiscoveryError {
    /// A file named in the configuration could not be read.
    #[cfg(feature = "etcd")]
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration asks for etcd discovery, which this build leaves out.
    #[cfg(not(feature = "etcd"))]
    #[error(
        "the configuration asks for etcd discovery, but this mm-gateway was built without it \
         (build with `--features etcd`, which needs protoc)"
    )]
    EtcdNotBuilt,
    /// The system's resolver configuration could not be read.
    #[error("cannot read the system's DNS configuration: {0}")]
    ResolverConfig(String),
}

/// The discovery sources of a gateway, ready to run.
pub(crate) struct Discovery {
    #[cfg(feature = "etcd")]
    etcd: Option<etcd::EtcdDiscovery>,
    dns: Option<dns::DnsDiscovery>,
}

impl Discovery {
    /// Sets up the sources the configuration asks for (reading certificate and password files
    /// now, so a mistake stops the gateway at start). `listen_address` is the bound address.
    pub(crate) fn new(
        context: &GatewayContext,
        listen_address: SocketAddr,
    ) -> Result<Discovery, DiscoveryError> {
        let config = &context.config;
        let etcd_services: Vec<String> = config
            .meshes
            .iter()
            .filter(|mesh| mesh.etcd)
            .map(|mesh| mesh.service.clone())
            .collect();
        #[cfg(not(feature = "etcd"))]
        if config.discovery.etcd.is_some() && !etcd_services.is_empty() {
            let _ = listen_address;
            return Err(DiscoveryError::EtcdNotBuilt);
        }
        #[cfg(feature = "etcd")]
        let etcd = match &config.discovery.etcd {
            Some(etcd_config) if !etcd_services.is_empty() => {
                let address = advertise_address(context, listen_address);
                tracing::info!(
                    address = %address,
                    services = ?etcd_services,
                    endpoints = ?etcd_config.endpoints,
                    "etcd discovery: registering this gateway"
                );
                Some(etcd::EtcdDiscovery::new(
                    etcd_config,
                    etcd::Registration {
                        gateway_id: context.gateway_id.clone(),
                        gateway_name: config.name.clone(),
                        address,
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                    },
                    etcd_services,
                )?)
            }
            _ => None,
        };
        let dns_entries: Vec<(String, String)> = config
            .meshes
            .iter()
            .flat_map(|mesh| {
                mesh.dns
                    .iter()
                    .map(|entry| (mesh.service.clone(), entry.clone()))
            })
            .collect();
        let dns = if dns_entries.is_empty() {
            None
        } else {
            Some(dns::DnsDiscovery::new(&config.discovery, dns_entries)?)
        };
        Ok(Discovery {
            #[cfg(feature = "etcd")]
            etcd,
            dns,
        })
    }

    /// Whether there is anything to run.
    pub(crate) fn is_empty(&self) -> bool {
        #[cfg(feature = "etcd")]
        if self.etcd.is_some() {
            return false;
        }
        self.dns.is_none()
    }

    /// Runs every source until `shutdown` is cancelled (etcd then withdraws this gateway's
    /// registrations, so peers drop it without waiting for the lease to expire).
    pub(crate) async fn run(self, registry: Arc<ServiceRegistry>, shutdown: CancellationToken) {
        #[cfg(feature = "etcd")]
        let etcd = async {
            if let Some(etcd) = self.etcd {
                etcd.run(&registry, &shutdown).await;
            }
        };
        #[cfg(not(feature = "etcd"))]
        let etcd = async {};
        let dns = async {
            if let Some(dns) = self.dns {
                dns.run(&registry, &shutdown).await;
            }
        };
        tokio::join!(etcd, dns);
    }
}

#[cfg(feature = "etcd")]
/// The address registered for peers to dial: `AdvertiseAddress`, else the listening address,
/// else (listening on every interface) the gateway name with the listening port.
fn advertise_address(context: &GatewayContext, listen_address: SocketAddr) -> String {
    if let Some(address) = &context.config.advertise_address {
        return address.clone();
    }
    if listen_address.ip().is_unspecified() {
        format!("{}:{}", context.config.name, listen_address.port())
    } else {
        listen_address.to_string()
    }
}

/// `delay` plus up to 25 % random jitter, so gateways that lost the registry together do not
/// retry in step.
#[cfg(feature = "etcd")]
fn with_jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(rand::random::<f64>() * 0.25)
}
