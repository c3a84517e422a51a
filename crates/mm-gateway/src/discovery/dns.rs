//! DNS discovery: a `dns:NAME:PORT` entry of `MeshGateways` stands for every address `NAME`
//! resolves to (A records, else AAAA), each with `PORT` — a Kubernetes headless service, or a
//! round-robin name.
//!
//! Every `DnsRefreshMs` each name is resolved again (answers are cached no longer than that, even
//! when their TTL is longer) and the service is sent the addresses whenever they change. A name
//! that does not exist or has no addresses is an empty set (its peers leave after the grace
//! period). A resolution that fails — no server answers, a server error — changes nothing: the
//! last set stays in force and the service is told the source is unreachable until a resolution
//! succeeds again.
//!
//! Resolution uses `DnsServers` when set (any port: a Consul agent, a test's own server), else
//! the system's configuration (`/etc/resolv.conf` with its search domains, and `/etc/hosts`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfig, ResolverConfig, ResolverOpts, ServerOrderingStrategy,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::proto::{ProtoError, ProtoErrorKind};
use hickory_resolver::{ResolveError, Resolver, TokioResolver};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::DiscoveryError;
use crate::config::DiscoveryConfig;
use crate::listener::ServiceRegistry;
use crate::mesh::{DiscoveryReport, PeerSource};

/// How long one query may wait for a server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// One `dns:` entry of one service.
struct DnsEntry {
    service: String,
    /// The name, without brackets for an IPv6 literal.
    name: String,
    port: u16,
    source: PeerSource,
    /// The addresses last sent (None before the first resolution).
    last: Option<Vec<String>>,
    /// The error last reported (None while resolutions succeed).
    error: Option<String>,
}

/// The `dns:` entries of every service, and the resolver for them.
pub(crate) struct DnsDiscovery {
    resolver: TokioResolver,
    entries: Vec<DnsEntry>,
    refresh: Duration,
}

impl DnsDiscovery {
    /// A resolver per the configuration, for `entries` — (service, `name:port`) pairs, checked
    /// when the configuration was read.
    pub(crate) fn new(
        config: &DiscoveryConfig,
        entries: Vec<(String, String)>,
    ) -> Result<DnsDiscovery, DiscoveryError> {
        let mut builder = if config.dns_servers.is_empty() {
            Resolver::builder_tokio()
                .map_err(|error| DiscoveryError::ResolverConfig(error.to_string()))?
        } else {
            let mut servers = ResolverConfig::new();
            for &server in &config.dns_servers {
                servers.add_name_server(NameServerConfig::new(server, Protocol::Udp));
            }
            // TCP after UDP, for answers too large for a datagram.
            for &server in &config.dns_servers {
                servers.add_name_server(NameServerConfig::new(server, Protocol::Tcp));
            }
            let mut builder =
                Resolver::builder_with_config(servers, TokioConnectionProvider::default());
            builder.options_mut().server_ordering_strategy =
                ServerOrderingStrategy::UserProvidedOrder;
            builder
        };
        let options: &mut ResolverOpts = builder.options_mut();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 2;
        options.positive_max_ttl = Some(config.dns_refresh);
        options.negative_max_ttl = Some(config.dns_refresh);
        let entries = entries
            .into_iter()
            .filter_map(|(service, name_port)| {
                let (name, port) = name_port.rsplit_once(':')?;
                let port = port.parse().ok()?;
                let name = name
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned();
                Some(DnsEntry {
                    service,
                    name,
                    port,
                    source: PeerSource::Dns(Arc::from(name_port.as_str())),
                    last: None,
                    error: None,
                })
            })
            .collect();
        Ok(DnsDiscovery {
            resolver: builder.build(),
            entries,
            refresh: config.dns_refresh,
        })
    }

    /// Resolves every entry now and every `refresh` after, until `shutdown`.
    pub(crate) async fn run(mut self, registry: &ServiceRegistry, shutdown: &CancellationToken) {
        let mut ticker = tokio::time::interval(self.refresh);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = ticker.tick() => {}
            }
            for entry in &mut self.entries {
                let resolved = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    resolved = resolve(&self.resolver, entry) => resolved,
                };
                report(registry, entry, resolved).await;
            }
        }
    }
}

/// The entry's addresses, sorted: `Ok(empty)` when the name has none; `Err` when resolution
/// failed.
async fn resolve(resolver: &TokioResolver, entry: &DnsEntry) -> Result<Vec<String>, String> {
    match resolver.lookup_ip(entry.name.as_str()).await {
        Ok(lookup) => {
            let mut addresses: Vec<String> = lookup
                .iter()
                .map(|ip| SocketAddr::new(ip, entry.port).to_string())
                .collect();
            addresses.sort();
            addresses.dedup();
            Ok(addresses)
        }
        Err(error) if has_no_addresses(&error) => Ok(Vec::new()),
        Err(error) => Err(error.to_string()),
    }
}

/// Whether the answer says the name has no addresses (it does not exist, or has no A/AAAA
/// records) — as opposed to a server failing to answer (SERVFAIL, REFUSED, a timeout), which
/// says nothing about the peers.
fn has_no_addresses(error: &ResolveError) -> bool {
    matches!(
        error.proto().map(ProtoError::kind),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        })
    )
}

/// Tells the entry's service what changed: its health, its peer set.
async fn report(
    registry: &ServiceRegistry,
    entry: &mut DnsEntry,
    resolved: Result<Vec<String>, String>,
) {
    match resolved {
        Ok(addresses) => {
            if entry.error.take().is_some() {
                info!(service = %entry.service, source = %entry.source, "DNS name resolves again");
                registry
                    .report_discovery(
                        &entry.service,
                        DiscoveryReport::Health(entry.source.clone(), None),
                    )
                    .await;
            }
            if entry.last.as_ref() == Some(&addresses) {
                return;
            }
            if addresses.is_empty() {
                info!(service = %entry.service, source = %entry.source, "DNS name has no addresses");
            } else {
                debug!(service = %entry.service, source = %entry.source, ?addresses, "DNS peer set changed");
            }
            entry.last = Some(addresses.clone());
            registry
                .report_discovery(
                    &entry.service,
                    DiscoveryReport::Peers(entry.source.clone(), addresses),
                )
                .await;
        }
        Err(error) => {
            if entry.error.as_ref() == Some(&error) {
                return;
            }
            if entry.error.is_none() {
                warn!(
                    service = %entry.service,
                    source = %entry.source,
                    %error,
                    "cannot resolve mesh DNS name: keeping its last addresses; retrying"
                );
            }
            entry.error = Some(error.clone());
            registry
                .report_discovery(
                    &entry.service,
                    DiscoveryReport::Health(entry.source.clone(), Some(error)),
                )
                .await;
        }
    }
}
