//! etcd discovery: register this gateway for each of its services, watch the others.
//!
//! Layout: one key per (service, gateway), `<KeyPrefix><service>/<gateway_id>`, whose value is
//! JSON — `{"GatewayId": …, "GatewayName": …, "Address": "host:port", "Version": …}` — attached
//! to a lease this gateway keeps alive (a keep-alive every third of the lease's time-to-live). A
//! gateway that dies stops renewing: etcd deletes its keys when the lease expires, and every
//! watcher sees them go.
//!
//! A **session** is one connection's worth of work: grant a lease, put our keys, read everything
//! under the prefix at revision R, watch the prefix from R + 1 (so no change is missed between
//! the read and the watch), and send each service the peer addresses listed for it whenever
//! they change. Any failure — etcd unreachable, a request unanswered within
//! [`REQUEST_TIMEOUT`], keep-alives unanswered for a whole time-to-live, the lease gone, the
//! watch cancelled — ends the session: the services keep their last peer set (links stay up),
//! are told etcd is unreachable, and a new session is tried after a backoff (100 ms doubling to
//! 2 s, with jitter). A new session registers afresh (a new lease; putting the same keys moves
//! them to it) and reads the whole peer set again, so anything that changed meanwhile is seen.
//!
//! At shutdown the lease is revoked, which deletes our keys at once: peers drop this gateway
//! after their grace period instead of waiting for the lease to expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, KeyValue, PutOptions,
    TlsOptions, WatchOptions,
};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{DiscoveryError, RETRY_FIRST, RETRY_MAX, with_jitter};
use crate::config::EtcdConfig;
use crate::listener::ServiceRegistry;
use crate::mesh::{DiscoveryReport, PeerSource};

/// How long one request to etcd may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting to an etcd endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// HTTP/2 keep-alive on the connection to etcd: a connection that stops answering is noticed
/// within this interval plus the same again.
const CONNECTION_KEEP_ALIVE: Duration = Duration::from_secs(3);

/// How long revoking the lease may hold up shutdown.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(1);

/// What this gateway registers for each service.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Registration {
    /// Its identity on mesh links.
    pub(crate) gateway_id: String,
    /// Its name.
    #[serde(default)]
    pub(crate) gateway_name: String,
    /// Where peers dial it (`host:port`).
    pub(crate) address: String,
    /// The gateway's version.
    #[serde(default)]
    pub(crate) version: String,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    /// A request failed.
    #[error("etcd {what} failed: {}", describe(source))]
    Request {
        /// Which request.
        what: &'static str,
        /// Why.
        source: etcd_client::Error,
    },
    /// A request got no answer in time.
    #[error("etcd did not answer {what} within {} s", REQUEST_TIMEOUT.as_secs(), what = .0)]
    Timeout(&'static str),
    /// Keep-alives went unanswered for a whole time-to-live.
    #[error("etcd answered no lease keep-alive for {0} s")]
    KeepAliveUnanswered(u64),
    /// The lease expired or was revoked.
    #[error("the registration lease expired")]
    LeaseLost,
    /// etcd closed a stream.
    #[error("etcd closed the {0} stream")]
    StreamEnded(&'static str),
    /// etcd cancelled the watch.
    #[error("etcd cancelled the watch: {0}")]
    WatchCancelled(String),
}

/// What went wrong, briefly: a gRPC status's message and its root cause (a transport error's
/// own text is a debug dump), or any other error with its causes.
fn describe(error: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return chain(error);
    };
    let mut text = if status.message().is_empty() {
        status.code().description().to_owned()
    } else {
        status.message().to_owned()
    };
    let mut root = None;
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        root = Some(cause);
        source = cause.source();
    }
    if let Some(root) = root {
        let root = root.to_string();
        if !text.contains(&root) {
            text.push_str(": ");
            text.push_str(&root);
        }
    }
    text
}

/// An error and its causes, `: `-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Awaits an etcd request for at most [`REQUEST_TIMEOUT`].
async fn within<T>(
    what: &'static str,
    request: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => result.map_err(|source| SessionError::Request { what, source }),
        Err(_) => Err(SessionError::Timeout(what)),
    }
}

/// What the services have been told, kept across sessions so that a new session sends only what
/// changed.
#[derive(Debug, Default)]
struct Reported {
    /// Per service, the peer addresses last sent.
    peers: HashMap<String, Vec<String>>,
    /// The error last reported (None: etcd reachable, or never tried).
    error: Option<String>,
    /// Whether a session ever got as far as reading the peer set.
    connected_once: bool,
}

/// The registrations seen under the prefix, for our services: per service, key → address.
#[derive(Debug, Default)]
struct Members {
    by_service: HashMap<String, BTreeMap<Vec<u8>, String>>,
    /// Keys with values that could not be understood, already warned about.
    warned: BTreeSet<Vec<u8>>,
}

/// etcd discovery for the services that ask for it.
pub(crate) struct EtcdDiscovery {
    endpoints: Vec<String>,
    options: ConnectOptions,
    prefix: String,
    lease_ttl_seconds: i64,
    registration: Registration,
    /// The value put under each of our keys.
    value: Vec<u8>,
    services: Vec<String>,
}

impl EtcdDiscovery {
    /// Reads the password and TLS files, and prepares the connection options.
    pub(crate) fn new(
        config: &EtcdConfig,
        registration: Registration,
        services: Vec<String>,
    ) -> Result<EtcdDiscovery, DiscoveryError> {
        let read = |what: &'static str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| DiscoveryError::ReadFile {
                what,
                path: path.to_owned(),
                source,
            })
        };
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(CONNECTION_KEEP_ALIVE, CONNECTION_KEEP_ALIVE)
            .with_keep_alive_while_idle(true);
        if let Some(user) = &config.username {
            let password = match (&config.password, &config.password_file) {
                (Some(password), _) => password.clone(),
                (None, Some(path)) => String::from_utf8_lossy(&read("etcd password file", path)?)
                    .trim()
                    .to_owned(),
                (None, None) => String::new(),
            };
            options = options
                .with_user(user.clone(), password)
                .with_auto_token_refresh(true);
        }
        if config.uses_tls() {
            let mut tls = TlsOptions::new();
            if let Some(path) = &config.ca_file {
                tls = tls.ca_certificate(Certificate::from_pem(read("etcd CA file", path)?));
            }
            if let (Some(cert), Some(key)) = (&config.cert_file, &config.key_file) {
                tls = tls.identity(Identity::from_pem(
                    read("etcd client certificate", cert)?,
                    read("etcd client key", key)?,
                ));
            }
            if let Some(domain) = &config.tls_domain {
                tls = tls.domain_name(domain.clone());
            }
            options = options.with_tls(tls);
        }
        // Serializing four strings cannot fail.
        let value = serde_json::to_vec(&registration).unwrap_or_default();
        Ok(EtcdDiscovery {
            endpoints: config.endpoints.clone(),
            options,
            prefix: config.key_prefix.clone(),
            lease_ttl_seconds: config.lease_ttl.as_secs().max(1) as i64,
            registration,
            value,
            services,
        })
    }

    /// Registers, watches, and starts over after each failure, until `shutdown`.
    pub(crate) async fn run(self, registry: &ServiceRegistry, shutdown: &CancellationToken) {
        let mut reported = Reported::default();
        let mut delay = RETRY_FIRST;
        loop {
            let error = match self
                .session(registry, shutdown, &mut reported, &mut delay)
                .await
            {
                Ok(()) => return,
                Err(error) => error.to_string(),
            };
            if reported.error.is_none() {
                if reported.connected_once {
                    warn!(
                        %error,
                        "etcd unreachable: mesh links stay up, the last peer set stays in force; \
                         retrying"
                    );
                } else {
                    warn!(%error, "cannot register with etcd; serving local clients, retrying");
                }
            } else {
                debug!(%error, "etcd still unreachable");
            }
            if reported.error.as_deref() != Some(error.as_str()) {
                self.report_health(registry, Some(error.clone())).await;
                reported.error = Some(error);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(with_jitter(delay)) => {}
            }
            delay = (delay * 2).min(RETRY_MAX);
        }
    }

    /// One session (see the module doc). Ok at shutdown.
    async fn session(
        &self,
        registry: &ServiceRegistry,
        shutdown: &CancellationToken,
        reported: &mut Reported,
        delay: &mut Duration,
    ) -> Result<(), SessionError> {
        // Connecting and registering can wait on an unreachable etcd for a while: shutdown does
        // not wait for it.
        let setup = async {
            let mut client = within(
                "connect",
                Client::connect(&self.endpoints, Some(self.options.clone())),
            )
            .await?;
            let lease = within(
                "lease grant",
                client.lease_grant(self.lease_ttl_seconds, None),
            )
            .await?;
            let lease_id = lease.id();
            let ttl = Duration::from_secs(lease.ttl().max(1) as u64);
            for service in &self.services {
                self.register(&mut client, service, lease_id).await?;
            }
            let (keeper, keep_alives) =
                within("lease keep-alive", client.lease_keep_alive(lease_id)).await?;
            let snapshot = within(
                "read",
                client.get(self.prefix.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
            let revision = snapshot.header().map_or(0, |header| header.revision());
            let watch = within(
                "watch",
                client.watch(
                    self.prefix.as_str(),
                    Some(
                        WatchOptions::new()
                            .with_prefix()
                            .with_start_revision(revision + 1),
                    ),
                ),
            )
            .await?;
            let mut members = Members::default();
            for service in &self.services {
                members.by_service.insert(service.clone(), BTreeMap::new());
            }
            for kv in snapshot.kvs() {
                self.apply_put(&mut members, kv);
            }
            Ok::<_, SessionError>((client, lease_id, ttl, keeper, keep_alives, watch, members))
        };
        let (mut client, lease_id, ttl, mut keeper, mut keep_alives, mut watch, mut members) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            setup = setup => setup?,
        };
        *delay = RETRY_FIRST;
        if reported.error.take().is_some() {
            info!(
                lease = lease_id,
                "etcd reachable again: registered anew, peer set read again"
            );
        } else {
            info!(
                lease = lease_id,
                ttl_s = ttl.as_secs(),
                "registered with etcd"
            );
        }
        reported.connected_once = true;
        self.report_health(registry, None).await;
        self.report_peers(registry, &members, reported).await;

        let keep_alive_every = (ttl / 3).max(Duration::from_millis(100));
        let mut ticker = tokio::time::interval_at(
            tokio::time::Instant::now() + keep_alive_every,
            keep_alive_every,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_answer = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Deletes our keys at once; best effort.
                    let revoked =
                        tokio::time::timeout(REVOKE_TIMEOUT, client.lease_revoke(lease_id)).await;
                    if let Ok(Ok(_)) = revoked {
                        info!("etcd registration withdrawn");
                    }
                    return Ok(());
                }
                _ = ticker.tick() => {
                    if last_answer.elapsed() > ttl {
                        return Err(SessionError::KeepAliveUnanswered(ttl.as_secs()));
                    }
                    within("lease keep-alive", keeper.keep_alive()).await?;
                }
                answer = keep_alives.message() => {
                    let answer = answer.map_err(|source| SessionError::Request {
                        what: "lease keep-alive",
                        source,
                    })?;
                    match answer {
                        Some(answer) if answer.ttl() > 0 => last_answer = Instant::now(),
                        Some(_) => return Err(SessionError::LeaseLost),
                        None => return Err(SessionError::StreamEnded("lease keep-alive")),
                    }
                }
                response = watch.message() => {
                    let response = response
                        .map_err(|source| SessionError::Request { what: "watch", source })?
                        .ok_or(SessionError::StreamEnded("watch"))?;
                    if response.canceled() {
                        return Err(SessionError::WatchCancelled(
                            response.cancel_reason().to_owned(),
                        ));
                    }
                    let mut reregister = Vec::new();
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        match event.event_type() {
                            EventType::Put => self.apply_put(&mut members, kv),
                            EventType::Delete => {
                                if let Some(service) = self.apply_delete(&mut members, kv) {
                                    reregister.push(service);
                                }
                            }
                        }
                    }
                    for service in reregister {
                        info!(%service, "our etcd registration was deleted: registering again");
                        self.register(&mut client, &service, lease_id).await?;
                    }
                    self.report_peers(registry, &members, reported).await;
                }
            }
        }
    }

    /// Puts our key for `service`, attached to the lease.
    async fn register(
        &self,
        client: &mut Client,
        service: &str,
        lease_id: i64,
    ) -> Result<(), SessionError> {
        let key = format!(
            "{}{}/{}",
            self.prefix, service, self.registration.gateway_id
        );
        within(
            "register",
            client.put(
                key,
                self.value.clone(),
                Some(PutOptions::new().with_lease(lease_id)),
            ),
        )
        .await?;
        Ok(())
    }

    /// The service a key is for and whether it is our own, if it is for one of our services.
    fn classify<'a>(&self, key: &'a [u8]) -> Option<(&'a str, bool)> {
        let rest = key.strip_prefix(self.prefix.as_bytes())?;
        let rest = std::str::from_utf8(rest).ok()?;
        let (service, gateway_id) = rest.split_once('/')?;
        if !self.services.iter().any(|ours| ours == service) {
            return None;
        }
        Some((service, gateway_id == self.registration.gateway_id))
    }

    /// A registration appeared or changed.
    fn apply_put(&self, members: &mut Members, kv: &KeyValue) {
        let Some((service, own)) = self.classify(kv.key()) else {
            return;
        };
        if own {
            return;
        }
        let Some(peers) = members.by_service.get_mut(service) else {
            return;
        };
        match serde_json::from_slice::<Registration>(kv.value()) {
            Ok(registration) if registration.gateway_id == self.registration.gateway_id => {}
            Ok(registration) => {
                peers.insert(kv.key().to_vec(), registration.address);
            }
            Err(error) => {
                peers.remove(kv.key());
                if members.warned.insert(kv.key().to_vec()) {
                    warn!(
                        key = %String::from_utf8_lossy(kv.key()),
                        %error,
                        "etcd registration not understood: ignored"
                    );
                }
            }
        }
    }

    /// A registration went away (deleted, or its lease expired). Returns the service if the key
    /// was our own (someone deleted it: register again).
    fn apply_delete(&self, members: &mut Members, kv: &KeyValue) -> Option<String> {
        let (service, own) = self.classify(kv.key())?;
        if own {
            return Some(service.to_owned());
        }
        if let Some(peers) = members.by_service.get_mut(service) {
            peers.remove(kv.key());
        }
        None
    }

    /// Sends each service whose peer set changed since it was last told.
    async fn report_peers(
        &self,
        registry: &ServiceRegistry,
        members: &Members,
        reported: &mut Reported,
    ) {
        for (service, peers) in &members.by_service {
            let addresses: Vec<String> = peers
                .values()
                .cloned()
                .collect::<BTreeSet<String>>()
                .into_iter()
                .collect();
            if reported.peers.get(service) == Some(&addresses) {
                continue;
            }
            debug!(%service, peers = ?addresses, "etcd peer set changed");
            reported.peers.insert(service.clone(), addresses.clone());
            registry
                .report_discovery(service, DiscoveryReport::Peers(PeerSource::Etcd, addresses))
                .await;
        }
    }

    /// Tells every service whether etcd can be reached.
    async fn report_health(&self, registry: &ServiceRegistry, error: Option<String>) {
        for service in &self.services {
            registry
                .report_discovery(
                    service,
                    DiscoveryReport::Health(PeerSource::Etcd, error.clone()),
                )
                .await;
        }
    }
}
