//! Gateway configuration: defaults, the JSON configuration file, and validation.
//!
//! The file is JSON with `//` (and `/* */`) comments. Its keys include those of the first Messaging
//! Mesh implementation — `CoordinatorGateway` and `StartupMeshes` — plus our own settings, all in
//! the same PascalCase style:
//!
//! ```json
//! {
//!   // Mesh: every gateway listed dials every other one for that service.
//!   "CoordinatorGateway": "",
//!   "StartupMeshes": [
//!     { "Name": "VULCAN", "DiscoverMeshUsingCoordinator": false,
//!       "MeshGateways": ["hostA:5050", "hostB:5050", "hostC:5050"] }
//!   ],
//!   "GatewayName": "hostA",
//!   "Port": 5050, "Bind": "0.0.0.0",
//!   "MaxFrameBytes": 67108864,
//!   "MaxPendingBytes": 134217728,
//!   "LinkMaxPendingBytes": 268435456,
//!   "HeartbeatMs": 5000,
//!   "RedialMaxMs": 2000,
//!   "HandshakeTimeoutMs": 10000,
//!   "AllowedServices": ["VULCAN"],
//!   // Monitoring (docs/monitoring.md): HTTP server, statistics on _COORDINATOR.
//!   "HttpPort": 8222, "HttpBind": "127.0.0.1",
//!   "PublishCoordinatorStats": true
//! }
//! ```
//!
//! Unknown keys are warnings (so a file written for a newer gateway still loads); a file that is
//! not JSON, or a value of the wrong type or out of range, is an error. Command-line options
//! override the file. Mesh discovery (etcd, DNS) has its keys in [`discovery`].

pub mod security;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mm_wire::subject::validate_service_name;
use serde::Deserialize;
use serde_json::Value;

pub mod discovery;

pub use discovery::{DiscoveryConfig, EtcdConfig};

/// Default TCP port.
pub const DEFAULT_PORT: u16 = 5050;

/// Default bound of a client connection's queued output: 128 MiB, twice the default `max_frame`
/// (SPEC §6.3).
pub const DEFAULT_MAX_PENDING_BYTES: usize = 128 * 1024 * 1024;

/// Default bound of a mesh link's queued output: 256 MiB (SPEC §6.3).
pub const DEFAULT_LINK_MAX_PENDING_BYTES: usize = 256 * 1024 * 1024;

/// Default heartbeat interval announced to MM/2 clients and peers (SPEC §7.2).
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(5000);

/// Default cap of the mesh redial backoff (SPEC §8).
pub const DEFAULT_REDIAL_MAX: Duration = Duration::from_millis(2000);

/// How long a new connection may take to send CONNECT before it is closed.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default limit on subscriptions per connection: twice the million the scale benchmark holds on
/// one connection, far above any real client, and a bound on what one client can make a service
/// index (about 0.5 KiB of gateway memory each).
pub const DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 2 * 1024 * 1024;

/// Default limit on services: RV-style deployments run a handful per gateway; each costs a thread.
pub const DEFAULT_MAX_SERVICES: usize = 256;

/// How long a service started on demand (not configured) lives on with no connection.
pub const DEFAULT_SERVICE_IDLE_STOP: Duration = Duration::from_secs(30);

/// How long an incomplete frame may go without receiving a byte before its connection is closed.
pub const DEFAULT_FRAME_PROGRESS_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest first frame (CONNECT or CONNECT_MESH_PEER) accepted from a new connection: a handshake
/// body is a few fields, so nobody may make the gateway hold megabytes before it knows who they
/// are.
pub const MAX_HANDSHAKE_FRAME_BYTES: u32 = 64 * 1024;

/// Default address of the monitoring HTTP server: loopback only.
pub const DEFAULT_HTTP_BIND: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Longest monitoring token accepted.
pub const MAX_HTTP_TOKEN_LEN: usize = 256;

/// A credential: shown as `<redacted>` by `Debug`, so it never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// A token: 1 to [`MAX_HTTP_TOKEN_LEN`] letters, digits and `._~+/=-` (it travels in an HTTP
    /// header and a cookie; base64 and hex tokens fit).
    pub fn token(text: &str) -> Result<Secret, &'static str> {
        if text.is_empty() {
            Err("must not be empty")
        } else if text.len() > MAX_HTTP_TOKEN_LEN {
            Err("must be at most 256 characters")
        } else if !text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"._~+/=-".contains(&byte))
        {
            Err("may hold only letters, digits and . _ ~ + / = -")
        } else {
            Ok(Secret(text.to_owned()))
        }
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Bounds on what clients, together, can make the gateway hold (issue #12). Per-connection
/// bounds are in [`GatewayConfig`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Gateway-wide budget for queued output, all connections of all services. Past it, the
    /// largest backlogs are cut off first.
    pub max_total_pending_bytes: usize,
    /// Gateway-wide budget for incomplete frames being received. Past it, the connection holding
    /// the largest is closed first.
    pub max_total_partial_bytes: usize,
    /// Subscriptions one connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Services the gateway runs at once (configured ones included).
    pub max_services: usize,
    /// An on-demand service with no connection stops after this long.
    pub service_idle_stop: Duration,
    /// An incomplete frame that receives nothing for this long closes its connection.
    pub frame_progress_timeout: Duration,
}

impl Default for Limits {
    /// Budgets sized for the machine: queued output 1/8 of physical memory (at least 256 MiB),
    /// incomplete input 1/16 (at least 128 MiB).
    fn default() -> Self {
        let memory = physical_memory();
        Limits {
            max_total_pending_bytes: (memory / 8).max(256 << 20),
            max_total_partial_bytes: (memory / 16).max(128 << 20),
            max_subscriptions_per_connection: DEFAULT_MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_services: DEFAULT_MAX_SERVICES,
            service_idle_stop: DEFAULT_SERVICE_IDLE_STOP,
            frame_progress_timeout: DEFAULT_FRAME_PROGRESS_TIMEOUT,
        }
    }
}

/// Physical memory in bytes (4 GiB if it cannot be read).
fn physical_memory() -> usize {
    // SAFETY: sysconf only reads system configuration values.
    let (pages, page_size) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    if pages > 0 && page_size > 0 {
        (pages as u128 * page_size as u128).min(usize::MAX as u128) as usize
    } else {
        4 << 30
    }
}

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// This gateway's name, sent to clients and peers in ACKs. Defaults to the host name.
    pub name: String,
    /// Largest frame accepted from anyone (SPEC §1).
    pub max_frame: u32,
    /// Bound of each client connection's queued output; never less than twice `max_frame`.
    pub max_pending_bytes: usize,
    /// Bound of each mesh link's queued output; never less than twice `max_frame`.
    pub link_max_pending_bytes: usize,
    /// Heartbeat interval announced to MM/2 clients and peers; zero disables heartbeats.
    pub heartbeat: Duration,
    /// Cap of the mesh redial backoff.
    pub redial_max: Duration,
    /// How long a new connection may take to send CONNECT.
    pub handshake_timeout: Duration,
    /// If set, only these services may be used; CONNECTs to others get `SERVICE_REFUSED`.
    pub allowed_services: Option<Vec<String>>,
    /// Services that start with the gateway, with the mesh peers they dial.
    pub meshes: Vec<MeshConfig>,
    /// Gateway-wide bounds.
    pub limits: Limits,
    /// Port of the monitoring HTTP server; `None` = no server, 0 = a free port.
    pub http_port: Option<u16>,
    /// Address of the monitoring HTTP server (default loopback).
    pub http_bind: IpAddr,
    /// Token the monitoring server requires (`Authorization: Bearer`); `None` = none.
    pub http_token: Option<Secret>,
    /// Publish each service's statistics on `_COORDINATOR` every 2 s (SPEC §11).
    pub coordinator_stats: bool,
    /// Where peers reach this gateway (`host:port`), as registered with etcd. None: the listening
    /// address, or the gateway name and port when listening on every interface.
    pub advertise_address: Option<String>,
    /// How mesh peers are discovered besides the listed addresses: etcd, DNS.
    pub discovery: DiscoveryConfig,
    /// TLS, mesh authentication, users and permissions (none by default).
    pub security: security::SecurityConfig,
}

/// The `StartupMeshes` name of the entry that applies to every service not listed by name,
/// services started on demand included.
pub const EVERY_SERVICE: &str = "*";

/// One entry of `StartupMeshes`: a service and the gateways of its mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshConfig {
    /// The service name, or [`EVERY_SERVICE`].
    pub service: String,
    /// `host:port` of every gateway in the mesh; this gateway may be among them (it finds and
    /// skips itself by `gateway_id`).
    pub gateways: Vec<String>,
    /// Whether the gateways of the mesh also find each other through etcd
    /// (`DiscoverMeshUsingEtcd`).
    pub etcd: bool,
    /// `dns:` entries of `MeshGateways`, as `name:port`: every address the name resolves to is a
    /// gateway of the mesh, resolved again every `DnsRefreshMs`.
    pub dns: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            bind: IpAddr::from([0, 0, 0, 0]),
            port: DEFAULT_PORT,
            name: default_gateway_name(),
            max_frame: mm_wire::DEFAULT_MAX_FRAME,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            link_max_pending_bytes: DEFAULT_LINK_MAX_PENDING_BYTES,
            heartbeat: DEFAULT_HEARTBEAT,
            redial_max: DEFAULT_REDIAL_MAX,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            allowed_services: None,
            meshes: Vec::new(),
            limits: Limits::default(),
            http_port: None,
            http_bind: DEFAULT_HTTP_BIND,
            http_token: None,
            coordinator_stats: false,
            advertise_address: None,
            discovery: DiscoveryConfig::default(),
            security: security::SecurityConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// The effective bound of a client's queued output: at least twice `max_frame`.
    pub fn client_output_bound(&self) -> usize {
        self.max_pending_bytes.max(2 * self.max_frame as usize)
    }

    /// The effective bound of a mesh link's queued output: at least twice `max_frame`.
    pub fn link_output_bound(&self) -> usize {
        self.link_max_pending_bytes.max(2 * self.max_frame as usize)
    }

    /// Whether CONNECTs to `service` are accepted.
    pub fn allows_service(&self, service: &str) -> bool {
        match &self.allowed_services {
            None => true,
            Some(allowed) => allowed.iter().any(|name| name == service),
        }
    }

    /// Where the monitoring HTTP server listens, if it is on.
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        self.http_port
            .map(|port| std::net::SocketAddr::new(self.http_bind, port))
    }

    /// Whether services keep monitoring state (rates, top subjects, link RTTs): when the HTTP
    /// server is on or statistics are published on `_COORDINATOR`.
    pub fn monitoring_enabled(&self) -> bool {
        self.http_port.is_some() || self.coordinator_stats
    }

    /// The mesh of `service`: its own entry, else the `*` entry (if any).
    pub fn mesh_for(&self, service: &str) -> Option<&MeshConfig> {
        self.configured_mesh(service).or_else(|| {
            self.meshes
                .iter()
                .find(|mesh| mesh.service == EVERY_SERVICE)
        })
    }

    /// The entry that names `service` itself: such a service runs from start to shutdown.
    pub fn configured_mesh(&self, service: &str) -> Option<&MeshConfig> {
        self.meshes.iter().find(|mesh| mesh.service == service)
    }

    /// Adds `gateways` to the `*` entry (created if needed): every service meshes with them.
    /// What `mm-gateway --mesh` does.
    pub fn mesh_every_service_with(&mut self, gateways: &[String]) -> Result<(), ConfigError> {
        for gateway in gateways {
            check_host_port(gateway)
                .map_err(|message| invalid("--mesh", &format!("`{gateway}`: {message}")))?;
        }
        match self
            .meshes
            .iter_mut()
            .find(|mesh| mesh.service == EVERY_SERVICE)
        {
            Some(mesh) => mesh.gateways.extend(gateways.iter().cloned()),
            None => self.meshes.push(MeshConfig {
                service: EVERY_SERVICE.to_owned(),
                gateways: gateways.to_vec(),
                ..MeshConfig::default()
            }),
        }
        Ok(())
    }

    /// Whether any service finds its peers through etcd or DNS.
    pub fn uses_discovery(&self) -> bool {
        self.meshes
            .iter()
            .any(|mesh| mesh.etcd || !mesh.dns.is_empty())
    }

    /// Applies a configuration file on top of `self`. Returns the warnings to log (unknown keys,
    /// unsupported coordinator discovery).
    pub fn apply_file(&mut self, path: &Path) -> Result<Vec<String>, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.apply_json_in(&text, path.parent())
            .map_err(|error| match error {
                ConfigError::Syntax { message, .. } => ConfigError::Syntax {
                    path: path.to_owned(),
                    message,
                },
                other => other,
            })
    }

    /// Applies configuration text (JSON with comments). See [`GatewayConfig::apply_file`].
    pub fn apply_json(&mut self, text: &str) -> Result<Vec<String>, ConfigError> {
        self.apply_json_in(text, None)
    }

    /// Applies configuration text whose relative paths are relative to `base`.
    fn apply_json_in(
        &mut self,
        text: &str,
        base: Option<&Path>,
    ) -> Result<Vec<String>, ConfigError> {
        let stripped = strip_comments(text);
        let file: ConfigFile =
            serde_json::from_str(&stripped).map_err(|error| ConfigError::Syntax {
                path: PathBuf::new(),
                message: error.to_string(),
            })?;
        let mut warnings = Vec::new();
        for key in file.unknown.keys() {
            warnings.push(format!("unknown configuration key `{key}` ignored"));
        }
        if file
            .coordinator_gateway
            .as_deref()
            .is_some_and(|c| !c.is_empty())
        {
            warnings.push(
                "`CoordinatorGateway` is set, but coordinator discovery is not supported yet: ignored"
                    .to_owned(),
            );
        }
        if let Some(name) = file.gateway_name {
            if name.is_empty() {
                return Err(invalid("GatewayName", "must not be empty"));
            }
            self.name = name;
        }
        if let Some(port) = file.port {
            self.port = port;
        }
        if let Some(bind) = file.bind {
            self.bind = bind
                .parse()
                .map_err(|_| invalid("Bind", &format!("`{bind}` is not an IP address")))?;
        }
        if let Some(max_frame) = file.max_frame_bytes {
            self.max_frame = check_max_frame(max_frame).map_err(|m| invalid("MaxFrameBytes", m))?;
        }
        if let Some(bytes) = file.max_pending_bytes {
            self.max_pending_bytes = positive(bytes).map_err(|m| invalid("MaxPendingBytes", m))?;
        }
        if let Some(bytes) = file.link_max_pending_bytes {
            self.link_max_pending_bytes =
                positive(bytes).map_err(|m| invalid("LinkMaxPendingBytes", m))?;
        }
        if let Some(ms) = file.heartbeat_ms {
            if !(0..=i32::MAX as u64).contains(&ms) {
                return Err(invalid("HeartbeatMs", "out of range"));
            }
            self.heartbeat = Duration::from_millis(ms);
        }
        if let Some(ms) = file.redial_max_ms {
            if ms < 100 {
                return Err(invalid("RedialMaxMs", "must be at least 100"));
            }
            self.redial_max = Duration::from_millis(ms);
        }
        if let Some(ms) = file.handshake_timeout_ms {
            if ms == 0 {
                return Err(invalid("HandshakeTimeoutMs", "must be positive"));
            }
            self.handshake_timeout = Duration::from_millis(ms);
        }
        if let Some(bytes) = file.max_total_pending_bytes {
            self.limits.max_total_pending_bytes =
                positive(bytes).map_err(|m| invalid("MaxTotalPendingBytes", m))?;
        }
        if let Some(bytes) = file.max_total_partial_bytes {
            self.limits.max_total_partial_bytes =
                positive(bytes).map_err(|m| invalid("MaxTotalPartialBytes", m))?;
        }
        if let Some(count) = file.max_subscriptions_per_connection {
            self.limits.max_subscriptions_per_connection = usize::try_from(count)
                .ok()
                .filter(|&count| count > 0)
                .ok_or_else(|| invalid("MaxSubscriptionsPerConnection", "must be positive"))?;
        }
        if let Some(count) = file.max_services {
            self.limits.max_services = usize::try_from(count)
                .ok()
                .filter(|&count| count > 0)
                .ok_or_else(|| invalid("MaxServices", "must be positive"))?;
        }
        if let Some(ms) = file.service_idle_stop_ms {
            self.limits.service_idle_stop = Duration::from_millis(ms);
        }
        if let Some(ms) = file.frame_progress_timeout_ms {
            if ms == 0 {
                return Err(invalid("FrameProgressTimeoutMs", "must be positive"));
            }
            self.limits.frame_progress_timeout = Duration::from_millis(ms);
        }
        if let Some(port) = file.http_port {
            self.http_port = Some(port);
        }
        if let Some(bind) = file.http_bind {
            self.http_bind = bind
                .parse()
                .map_err(|_| invalid("HttpBind", &format!("`{bind}` is not an IP address")))?;
        }
        if let Some(token) = file.http_token {
            self.http_token = Some(Secret::token(&token).map_err(|m| invalid("HttpToken", m))?);
        }
        if let Some(publish) = file.publish_coordinator_stats {
            self.coordinator_stats = publish;
        }
        if let Some(address) = file.advertise_address {
            check_host_port(&address).map_err(|message| {
                invalid("AdvertiseAddress", &format!("`{address}`: {message}"))
            })?;
            self.advertise_address = Some(address);
        }
        discovery::apply(
            &mut self.discovery,
            discovery::DiscoveryKeys {
                etcd: file.etcd,
                dns_servers: file.dns_servers,
                dns_refresh_ms: file.dns_refresh_ms,
                discovery_grace_ms: file.discovery_grace_ms,
            },
            &mut warnings,
        )?;
        if let Some(services) = file.allowed_services {
            for service in &services {
                validate_service_name(service).map_err(|error| {
                    invalid("AllowedServices", &format!("`{service}`: {error}"))
                })?;
            }
            self.allowed_services = Some(services);
        }
        for (index, mesh) in file
            .startup_meshes
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let key = format!("StartupMeshes[{index}]");
            for unknown in mesh.unknown.keys() {
                warnings.push(format!("unknown key `{unknown}` in {key} ignored"));
            }
            if mesh.name != EVERY_SERVICE {
                validate_service_name(&mesh.name).map_err(|error| {
                    invalid(&format!("{key}.Name"), &format!("`{}`: {error}", mesh.name))
                })?;
            }
            if mesh.discover_mesh_using_coordinator {
                warnings.push(format!(
                    "{key} (`{}`) asks for coordinator discovery, which is not supported yet: \
                     using MeshGateways only",
                    mesh.name
                ));
            }
            let mut gateways = Vec::new();
            let mut dns = Vec::new();
            for gateway in &mesh.mesh_gateways {
                match discovery::dns_entry(gateway) {
                    Ok(Some(name_port)) => dns.push(name_port.to_owned()),
                    Ok(None) => gateways.push(gateway.clone()),
                    Err(message) => {
                        return Err(invalid(
                            &format!("{key}.MeshGateways"),
                            &format!("`{gateway}`: {message}"),
                        ));
                    }
                }
            }
            if mesh.name == EVERY_SERVICE && (mesh.discover_mesh_using_etcd || !dns.is_empty()) {
                return Err(invalid(
                    &key,
                    "the `*` entry (every service) takes `host:port` addresses only: etcd and \
                     `dns:` discovery need a service listed by name",
                ));
            }
            if mesh.discover_mesh_using_etcd && self.discovery.etcd.is_none() {
                return Err(invalid(
                    &format!("{key}.DiscoverMeshUsingEtcd"),
                    "needs an `Etcd` section with the registry's `Endpoints`",
                ));
            }
            if self
                .meshes
                .iter()
                .any(|existing| existing.service == mesh.name)
            {
                return Err(invalid(
                    &key,
                    &format!("service `{}` is listed twice", mesh.name),
                ));
            }
            self.meshes.push(MeshConfig {
                service: mesh.name,
                gateways,
                etcd: mesh.discover_mesh_using_etcd,
                dns,
            });
        }
        security::SecurityKeys {
            tls: file.tls,
            mesh_tls: file.mesh_tls,
            mesh_secret_file: file.mesh_secret_file,
            mesh_secret: file.mesh_secret,
            service_security: file.service_security,
        }
        .apply(&mut self.security, base, &mut warnings)?;
        Ok(warnings)
    }
}

/// The host name, or `mm-gateway` if it cannot be read.
pub fn default_gateway_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "mm-gateway".to_owned())
}

/// Checks a `max_frame` value: at least the smallest frame, at most what an `i32` can express.
pub fn check_max_frame(value: u64) -> Result<u32, &'static str> {
    if value < 1024 {
        Err("must be at least 1024")
    } else if value > u64::from(mm_wire::frame::MAX_FRAME_LIMIT) {
        Err("must be at most 2147483647")
    } else {
        Ok(value as u32)
    }
}

fn positive(value: u64) -> Result<usize, &'static str> {
    usize::try_from(value)
        .ok()
        .filter(|&value| value > 0)
        .ok_or("must be a positive number of bytes")
}

fn check_host_port(address: &str) -> Result<(), &'static str> {
    let (host, port) = address.rsplit_once(':').ok_or("expected host:port")?;
    if host.is_empty() {
        return Err("empty host");
    }
    port.parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .map(|_| ())
        .ok_or("invalid port")
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        message: message.to_owned(),
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid JSON (after removing comments), or a value has the wrong type.
    #[error("malformed configuration file {path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("invalid configuration value {key}: {message}")]
    Invalid {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The file's shape. Every key is optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigFile {
    coordinator_gateway: Option<String>,
    startup_meshes: Option<Vec<StartupMesh>>,
    gateway_name: Option<String>,
    port: Option<u16>,
    bind: Option<String>,
    max_frame_bytes: Option<u64>,
    max_pending_bytes: Option<u64>,
    link_max_pending_bytes: Option<u64>,
    heartbeat_ms: Option<u64>,
    redial_max_ms: Option<u64>,
    handshake_timeout_ms: Option<u64>,
    allowed_services: Option<Vec<String>>,
    max_total_pending_bytes: Option<u64>,
    max_total_partial_bytes: Option<u64>,
    max_subscriptions_per_connection: Option<u64>,
    max_services: Option<u64>,
    service_idle_stop_ms: Option<u64>,
    frame_progress_timeout_ms: Option<u64>,
    http_port: Option<u16>,
    http_bind: Option<String>,
    http_token: Option<String>,
    publish_coordinator_stats: Option<bool>,
    advertise_address: Option<String>,
    etcd: Option<discovery::EtcdSection>,
    dns_servers: Option<Vec<String>>,
    dns_refresh_ms: Option<u64>,
    discovery_grace_ms: Option<u64>,
    tls: Option<security::TlsFile>,
    mesh_tls: Option<security::MeshTlsFile>,
    mesh_secret_file: Option<String>,
    mesh_secret: Option<String>,
    service_security: Option<BTreeMap<String, security::ServiceFile>>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StartupMesh {
    name: String,
    #[serde(default)]
    discover_mesh_using_coordinator: bool,
    #[serde(default)]
    discover_mesh_using_etcd: bool,
    #[serde(default)]
    mesh_gateways: Vec<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// Replaces `//` and `/* */` comments outside strings with spaces (keeping line numbers, so the
/// JSON parser's positions stay right).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match c {
                '\\' => {
                    if let Some(escaped) = chars.next() {
                        out.push(escaped);
                    }
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for next in chars.by_ref() {
                    if next == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut previous = ' ';
                for next in chars.by_ref() {
                    if next == '\n' {
                        out.push('\n');
                    }
                    if previous == '*' && next == '/' {
                        break;
                    }
                    previous = next;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_implementation_format_with_comments() {
        let mut config = GatewayConfig::default();
        let warnings = config
            .apply_json(
                r#"{
                // the coordinator is not used
                "CoordinatorGateway": "",
                "StartupMeshes": [{"Name": "VULCAN", "DiscoverMeshUsingCoordinator": false,
                   "MeshGateways": ["hostA:5050", "hostB:5050", "localhost:5051"]}] /* three */
            }"#,
            )
            .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(
            config.meshes,
            vec![MeshConfig {
                service: "VULCAN".into(),
                gateways: vec![
                    "hostA:5050".into(),
                    "hostB:5050".into(),
                    "localhost:5051".into()
                ],
                ..MeshConfig::default()
            }]
        );
    }

    #[test]
    fn a_star_entry_meshes_every_service_not_listed_by_name() {
        let mut config = GatewayConfig::default();
        config
            .apply_json(
                r#"{"StartupMeshes": [
                    {"Name": "*", "MeshGateways": ["a:5050", "b:5050"]},
                    {"Name": "ORDERS", "MeshGateways": ["c:5050"]}]}"#,
            )
            .unwrap();
        assert_eq!(config.mesh_for("ORDERS").unwrap().gateways, ["c:5050"]);
        assert_eq!(
            config.mesh_for("ANYTHING").unwrap().gateways,
            ["a:5050", "b:5050"]
        );
        assert!(config.configured_mesh("ANYTHING").is_none());
        assert!(config.configured_mesh("ORDERS").is_some());
        // `--mesh` adds to the same entry.
        config.mesh_every_service_with(&["d:5050".into()]).unwrap();
        assert_eq!(
            config.mesh_for("X").unwrap().gateways,
            ["a:5050", "b:5050", "d:5050"]
        );
        let error = config
            .mesh_every_service_with(&["no-port".into()])
            .unwrap_err();
        assert!(error.to_string().contains("--mesh"), "{error}");
        // Without a `*` entry, unlisted services are not meshed.
        let mut plain = GatewayConfig::default();
        plain.mesh_every_service_with(&[]).unwrap();
        assert!(
            plain
                .mesh_for("X")
                .is_some_and(|mesh| mesh.gateways.is_empty())
        );
        assert!(GatewayConfig::default().mesh_for("X").is_none());
        // Discovery needs a named service.
        let mut dns = GatewayConfig::default();
        let error = dns
            .apply_json(r#"{"StartupMeshes": [{"Name": "*", "MeshGateways": ["dns:gw:5050"]}]}"#)
            .unwrap_err();
        assert!(error.to_string().contains("`*`"), "{error}");
    }

    #[test]
    fn our_settings() {
        let mut config = GatewayConfig::default();
        config
            .apply_json(
                r#"{"GatewayName": "gw-a", "MaxFrameBytes": 1048576, "MaxPendingBytes": 1000,
                    "HeartbeatMs": 0, "AllowedServices": ["A", "B"], "Port": 0, "Bind": "127.0.0.1"}"#,
            )
            .unwrap();
        assert_eq!(config.name, "gw-a");
        assert_eq!(config.max_frame, 1 << 20);
        // Never less than twice max_frame.
        assert_eq!(config.client_output_bound(), 2 << 20);
        assert_eq!(config.heartbeat, Duration::ZERO);
        assert!(config.allows_service("A") && !config.allows_service("C"));
        assert_eq!(config.port, 0);
    }

    #[test]
    fn warnings_for_unknown_keys_and_coordinator() {
        let mut config = GatewayConfig::default();
        let warnings = config
            .apply_json(
                r#"{"CoordinatorGateway": "coord:1", "Colour": "blue",
                    "StartupMeshes": [{"Name": "V", "DiscoverMeshUsingCoordinator": true, "X": 1}]}"#,
            )
            .unwrap();
        assert_eq!(warnings.len(), 4, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("`Colour`")));
        assert!(warnings.iter().any(|w| w.contains("CoordinatorGateway")));
    }

    #[test]
    fn errors() {
        for (text, expected) in [
            ("{", "malformed"),
            (r#"{"Port": "x"}"#, "malformed"),
            (r#"{"MaxFrameBytes": 10}"#, "MaxFrameBytes"),
            (
                r#"{"StartupMeshes": [{"Name": "A.B"}]}"#,
                "StartupMeshes[0].Name",
            ),
            (
                r#"{"StartupMeshes": [{"Name": "A", "MeshGateways": ["nohost"]}]}"#,
                "MeshGateways",
            ),
            (r#"{"AllowedServices": ["a b"]}"#, "AllowedServices"),
            (r#"{"Bind": "localhost"}"#, "Bind"),
        ] {
            let error = GatewayConfig::default().apply_json(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn monitoring_settings() {
        let mut config = GatewayConfig::default();
        assert!(!config.monitoring_enabled());
        assert_eq!(config.http_address(), None);
        config
            .apply_json(
                r#"{"HttpPort": 8222, "HttpToken": "s3cret-token", "PublishCoordinatorStats": true}"#,
            )
            .unwrap();
        assert_eq!(
            config.http_address(),
            Some("127.0.0.1:8222".parse().unwrap()),
            "loopback unless told otherwise"
        );
        assert!(config.monitoring_enabled() && config.coordinator_stats);
        assert_eq!(
            config.http_token.as_ref().map(Secret::expose),
            Some("s3cret-token")
        );
        // The token never shows in a debug print of the configuration.
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cret") && debug.contains("<redacted>"),
            "{debug}"
        );
        config.apply_json(r#"{"HttpBind": "0.0.0.0"}"#).unwrap();
        assert_eq!(config.http_address(), Some("0.0.0.0:8222".parse().unwrap()));
        for (text, expected) in [
            (r#"{"HttpToken": ""}"#, "HttpToken"),
            (r#"{"HttpToken": "has space"}"#, "HttpToken"),
            (r#"{"HttpBind": "nowhere"}"#, "HttpBind"),
        ] {
            let error = GatewayConfig::default().apply_json(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
            assert!(!error.to_string().contains("has space"), "{error}");
        }
    }

    #[test]
    fn comments_inside_strings_are_kept() {
        assert_eq!(
            strip_comments(r#"{"a": "x//y"} // c"#).trim(),
            r#"{"a": "x//y"}"#
        );
        assert_eq!(strip_comments("{\"a\": \"\\\"//\"}"), "{\"a\": \"\\\"//\"}");
    }
}
