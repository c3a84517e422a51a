//! [`GatewayContext`]: what the whole gateway shares with its services.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use mm_wire::handshake::{AckInfo, PeerHello};

use crate::config::GatewayConfig;
use crate::events::EventLog;

/// A message for the `_COORDINATOR` service: subject and encoded body.
pub(crate) type CoordinatorMessage = (String, Vec<u8>);
use crate::security::{Security, SecurityState};

/// What the whole gateway shares with its services. Read-only after start, except the id counter.
#[derive(Debug)]
pub struct GatewayContext {
    /// The configuration.
    pub config: GatewayConfig,
    /// This gateway's identity on mesh links: 32 lowercase hex characters, new at every start.
    pub gateway_id: String,
    /// The address the gateway listens on.
    pub listen_address: SocketAddr,
    /// Source of connection ids, unique across services.
    connection_ids: AtomicU64,
    /// Output queued by all services, as each last reported it (once per batch): checked against
    /// `Limits::max_total_pending_bytes`.
    pub(crate) queued_output: AtomicUsize,
    /// Memory held for incomplete frames by all services, as each last reported it: checked
    /// against `Limits::max_total_partial_bytes`.
    pub(crate) partial_input: AtomicUsize,
    /// When the gateway started.
    pub(crate) started: Instant,
    /// Connections the acceptor refused, the last few (locked only when one is refused, and by
    /// the monitoring server).
    pub(crate) refusals: Mutex<EventLog>,
    /// Connections the acceptor refused since the start.
    pub(crate) refused_connections: AtomicU64,
    /// Where services leave their statistics for `_COORDINATOR` (SPEC §11); set while they are
    /// published.
    pub(crate) coordinator_outbox: OnceLock<tokio::sync::mpsc::Sender<CoordinatorMessage>>,
    /// TLS, mesh authentication and users in force.
    pub(crate) security: Security,
    /// Clients refused for bad or missing credentials, all services.
    pub(crate) authentication_failures: AtomicU64,
    /// Mesh peers refused for failing authentication.
    pub(crate) mesh_authentication_failures: AtomicU64,
}

impl GatewayContext {
    /// A context with a fresh random `gateway_id` and no security in force (see
    /// [`crate::Gateway::bind`] for a gateway that applies its configuration's).
    pub fn new(config: GatewayConfig, listen_address: SocketAddr) -> Self {
        Self::with_security(config, listen_address, SecurityState::default())
    }

    /// A context with `security` in force.
    pub(crate) fn with_security(
        config: GatewayConfig,
        listen_address: SocketAddr,
        security: SecurityState,
    ) -> Self {
        GatewayContext {
            security: Security::new(security),
            authentication_failures: AtomicU64::new(0),
            mesh_authentication_failures: AtomicU64::new(0),
            config,
            gateway_id: format!("{:032x}", rand::random::<u128>()),
            listen_address,
            connection_ids: AtomicU64::new(1),
            queued_output: AtomicUsize::new(0),
            partial_input: AtomicUsize::new(0),
            started: Instant::now(),
            refusals: Mutex::new(EventLog::default()),
            refused_connections: AtomicU64::new(0),
            coordinator_outbox: OnceLock::new(),
        }
    }

    /// A new connection id, unique in this gateway.
    pub(crate) fn next_connection_id(&self) -> u64 {
        self.connection_ids.fetch_add(1, Ordering::Relaxed)
    }

    /// The heartbeat interval announced to peers, in milliseconds.
    fn heartbeat_ms(&self) -> i32 {
        self.config.heartbeat.as_millis().min(i32::MAX as u128) as i32
    }

    /// The ACK body for this gateway (MM/2), with our id for mesh links.
    pub(crate) fn ack_info(&self, for_mesh_link: bool) -> AckInfo {
        AckInfo {
            protocol_version: mm_wire::handshake::PROTOCOL_VERSION,
            gateway_name: self.config.name.clone(),
            gateway_id: for_mesh_link.then(|| self.gateway_id.clone()),
            max_frame: self.config.max_frame,
            heartbeat_ms: self.heartbeat_ms(),
            inbox_prefix: None,
            mesh_auth: None,
        }
    }

    /// Our CONNECT_MESH_PEER body.
    pub(crate) fn peer_hello(&self) -> PeerHello {
        PeerHello {
            protocol_version: Some(mm_wire::handshake::PROTOCOL_VERSION),
            gateway_name: self.config.name.clone(),
            gateway_id: Some(self.gateway_id.clone()),
            heartbeat_ms: self.heartbeat_ms(),
            mesh_auth: None,
        }
    }
}
