//! Configuration of mesh discovery: the etcd registry, DNS names, and how long a peer that is no
//! longer listed keeps its link.
//!
//! ```json
//! {
//!   "AdvertiseAddress": "hostA.example.com:5050",
//!   "Etcd": {
//!     "Endpoints": ["https://etcd1:2379", "https://etcd2:2379", "https://etcd3:2379"],
//!     "KeyPrefix": "/messaging-mesh/",
//!     "LeaseTtlSeconds": 10,
//!     "Username": "mm-gateway", "PasswordFile": "/etc/mm/etcd-password",
//!     "CaFile": "/etc/mm/etcd-ca.pem", "CertFile": "/etc/mm/gw.pem", "KeyFile": "/etc/mm/gw-key.pem"
//!   },
//!   "DnsServers": ["10.96.0.10:53"],
//!   "DnsRefreshMs": 5000,
//!   "DiscoveryGraceMs": 5000,
//!   "StartupMeshes": [
//!     { "Name": "VULCAN", "DiscoverMeshUsingEtcd": true,
//!       "MeshGateways": ["dns:mm-gateway.mm.svc.cluster.local:5050"] }
//!   ]
//! }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{ConfigError, check_host_port, invalid};

/// Default key prefix under which gateways register in etcd.
pub const DEFAULT_ETCD_KEY_PREFIX: &str = "/messaging-mesh/";

/// Default lease time-to-live of an etcd registration: a gateway that dies is forgotten this long
/// after its last keep-alive.
pub const DEFAULT_ETCD_LEASE_TTL: Duration = Duration::from_secs(10);

/// Default interval between two resolutions of a `dns:` entry.
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(5);

/// Default time a peer that discovery no longer lists keeps its link: long enough that a lease
/// renewed late, or a DNS answer briefly missing a name, does not drop a working link.
pub const DEFAULT_DISCOVERY_GRACE: Duration = Duration::from_secs(5);

/// Prefix of a `MeshGateways` entry that names a DNS name to resolve to every address it has.
pub const DNS_ENTRY_PREFIX: &str = "dns:";

/// How the gateways of a service find each other besides the addresses listed in the
/// configuration.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The etcd registry, used by the services with `DiscoverMeshUsingEtcd`.
    pub etcd: Option<EtcdConfig>,
    /// DNS servers (`ip:port`) that resolve `dns:` entries; empty: the system's resolver
    /// configuration (`/etc/resolv.conf`, `/etc/hosts`).
    pub dns_servers: Vec<SocketAddr>,
    /// How often `dns:` entries are resolved again.
    pub dns_refresh: Duration,
    /// How long a peer that no source lists any more keeps its dialler and link.
    pub grace: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            etcd: None,
            dns_servers: Vec::new(),
            dns_refresh: DEFAULT_DNS_REFRESH,
            grace: DEFAULT_DISCOVERY_GRACE,
        }
    }
}

/// Where the etcd registry is and how to talk to it.
#[derive(Clone)]
pub struct EtcdConfig {
    /// Client URLs (`http://host:2379`, `https://host:2379`, or `host:2379`).
    pub endpoints: Vec<String>,
    /// Keys are `<prefix><service>/<gateway_id>`; always ends with `/`.
    pub key_prefix: String,
    /// Lease time-to-live asked for (etcd may raise it to its minimum).
    pub lease_ttl: Duration,
    /// User name, if etcd has authentication enabled.
    pub username: Option<String>,
    /// Password, given inline.
    pub password: Option<String>,
    /// File holding the password (read at start; surrounding white space ignored).
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the etcd servers' certificates; enables TLS, and is
    /// required with it.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub key_file: Option<PathBuf>,
    /// Name to check the servers' certificates against, when it differs from the endpoints'
    /// host names.
    pub tls_domain: Option<String>,
}

impl EtcdConfig {
    /// Whether the connection to etcd uses TLS.
    pub fn uses_tls(&self) -> bool {
        self.ca_file.is_some()
            || self.cert_file.is_some()
            || self
                .endpoints
                .iter()
                .any(|endpoint| endpoint.starts_with("https://"))
    }
}

impl fmt::Debug for EtcdConfig {
    /// Everything but the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdConfig")
            .field("endpoints", &self.endpoints)
            .field("key_prefix", &self.key_prefix)
            .field("lease_ttl", &self.lease_ttl)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_file", &self.password_file)
            .field("ca_file", &self.ca_file)
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .field("tls_domain", &self.tls_domain)
            .finish()
    }
}

/// The `Etcd` section's shape.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct EtcdSection {
    #[serde(default)]
    endpoints: Vec<String>,
    key_prefix: Option<String>,
    lease_ttl_seconds: Option<u64>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    tls_domain: Option<String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

/// The discovery keys of the configuration file.
pub(super) struct DiscoveryKeys {
    pub(super) etcd: Option<EtcdSection>,
    pub(super) dns_servers: Option<Vec<String>>,
    pub(super) dns_refresh_ms: Option<u64>,
    pub(super) discovery_grace_ms: Option<u64>,
}

/// Applies the discovery keys on top of `config`; warnings go to `warnings`.
pub(super) fn apply(
    config: &mut DiscoveryConfig,
    keys: DiscoveryKeys,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    if let Some(section) = keys.etcd {
        config.etcd = Some(etcd_config(section, warnings)?);
    }
    if let Some(servers) = keys.dns_servers {
        config.dns_servers = servers
            .iter()
            .map(|server| {
                server.parse::<SocketAddr>().map_err(|_| {
                    invalid(
                        "DnsServers",
                        &format!("`{server}` is not an ip:port address"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(ms) = keys.dns_refresh_ms {
        if ms < 100 {
            return Err(invalid("DnsRefreshMs", "must be at least 100"));
        }
        config.dns_refresh = Duration::from_millis(ms);
    }
    if let Some(ms) = keys.discovery_grace_ms {
        config.grace = Duration::from_millis(ms);
    }
    Ok(())
}

fn etcd_config(
    section: EtcdSection,
    warnings: &mut Vec<String>,
) -> Result<EtcdConfig, ConfigError> {
    for key in section.unknown.keys() {
        warnings.push(format!("unknown key `{key}` in Etcd ignored"));
    }
    if section.endpoints.is_empty() {
        return Err(invalid("Etcd.Endpoints", "must list at least one endpoint"));
    }
    for endpoint in &section.endpoints {
        let host_port = endpoint
            .strip_prefix("http://")
            .or_else(|| endpoint.strip_prefix("https://"))
            .unwrap_or(endpoint)
            .trim_end_matches('/');
        check_host_port(host_port)
            .map_err(|message| invalid("Etcd.Endpoints", &format!("`{endpoint}`: {message}")))?;
    }
    let mut key_prefix = section
        .key_prefix
        .unwrap_or_else(|| DEFAULT_ETCD_KEY_PREFIX.to_owned());
    if key_prefix.is_empty() {
        return Err(invalid("Etcd.KeyPrefix", "must not be empty"));
    }
    if !key_prefix.ends_with('/') {
        key_prefix.push('/');
    }
    let lease_ttl = match section.lease_ttl_seconds {
        None => DEFAULT_ETCD_LEASE_TTL,
        Some(seconds @ 1..=86_400) => Duration::from_secs(seconds),
        Some(_) => {
            return Err(invalid(
                "Etcd.LeaseTtlSeconds",
                "must be between 1 and 86400",
            ));
        }
    };
    if section.password.is_some() && section.password_file.is_some() {
        return Err(invalid(
            "Etcd.Password",
            "give either Password or PasswordFile, not both",
        ));
    }
    if section.username.is_none() && (section.password.is_some() || section.password_file.is_some())
    {
        return Err(invalid("Etcd.Username", "a password needs a user name"));
    }
    if section.cert_file.is_some() != section.key_file.is_some() {
        return Err(invalid("Etcd.CertFile", "CertFile and KeyFile go together"));
    }
    let config = EtcdConfig {
        endpoints: section.endpoints,
        key_prefix,
        lease_ttl,
        username: section.username,
        password: section.password,
        password_file: section.password_file,
        ca_file: section.ca_file,
        cert_file: section.cert_file,
        key_file: section.key_file,
        tls_domain: section.tls_domain,
    };
    if config.uses_tls() && config.ca_file.is_none() {
        return Err(invalid(
            "Etcd.CaFile",
            "TLS to etcd needs the CA certificate that signed the servers' certificates",
        ));
    }
    if config.uses_tls()
        && config
            .endpoints
            .iter()
            .any(|endpoint| endpoint.starts_with("http://"))
    {
        return Err(invalid(
            "Etcd.Endpoints",
            "http:// endpoints cannot be used with TLS settings (use https:// or host:port)",
        ));
    }
    Ok(config)
}

/// Splits a `MeshGateways` entry: `Ok(Some(name:port))` for a `dns:` entry, `Ok(None)` for a
/// plain `host:port`.
pub(super) fn dns_entry(entry: &str) -> Result<Option<&str>, &'static str> {
    match entry.strip_prefix(DNS_ENTRY_PREFIX) {
        Some(name_port) => check_host_port(name_port).map(|()| Some(name_port)),
        None => check_host_port(entry).map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::config::{GatewayConfig, MeshConfig};

    #[test]
    fn etcd_dns_and_static_peers_side_by_side() {
        let mut config = GatewayConfig::default();
        let warnings = config
            .apply_json(
                r#"{
                "AdvertiseAddress": "gw-a.example:5050",
                "Etcd": {"Endpoints": ["http://127.0.0.1:2379", "etcd2:2379"],
                         "KeyPrefix": "/mm", "LeaseTtlSeconds": 4, "Username": "gw",
                         "Password": "secret", "Colour": 1},
                "DnsServers": ["127.0.0.1:8600"], "DnsRefreshMs": 250, "DiscoveryGraceMs": 0,
                "StartupMeshes": [{"Name": "V", "DiscoverMeshUsingEtcd": true,
                    "MeshGateways": ["hostA:5050", "dns:gw.mm.svc.cluster.local:5050"]}]
            }"#,
            )
            .unwrap();
        assert_eq!(warnings, vec!["unknown key `Colour` in Etcd ignored"]);
        assert_eq!(
            config.meshes,
            vec![MeshConfig {
                service: "V".into(),
                gateways: vec!["hostA:5050".into()],
                etcd: true,
                dns: vec!["gw.mm.svc.cluster.local:5050".into()],
            }]
        );
        assert!(config.uses_discovery());
        assert_eq!(
            config.advertise_address.as_deref(),
            Some("gw-a.example:5050")
        );
        let etcd = config.discovery.etcd.as_ref().unwrap();
        assert_eq!(etcd.key_prefix, "/mm/", "a prefix always ends with /");
        assert_eq!(etcd.lease_ttl, Duration::from_secs(4));
        assert!(!etcd.uses_tls());
        assert!(
            !format!("{etcd:?}").contains("secret"),
            "the password is not logged"
        );
        assert_eq!(config.discovery.dns_servers.len(), 1);
        assert_eq!(config.discovery.dns_refresh, Duration::from_millis(250));
        assert_eq!(config.discovery.grace, Duration::ZERO);
    }

    #[test]
    fn defaults() {
        let mut config = GatewayConfig::default();
        config
            .apply_json(r#"{"Etcd": {"Endpoints": ["https://etcd:2379"], "CaFile": "ca.pem"}}"#)
            .unwrap();
        let etcd = config.discovery.etcd.as_ref().unwrap();
        assert_eq!(etcd.key_prefix, super::DEFAULT_ETCD_KEY_PREFIX);
        assert_eq!(etcd.lease_ttl, super::DEFAULT_ETCD_LEASE_TTL);
        assert!(etcd.uses_tls());
        assert_eq!(config.discovery.grace, super::DEFAULT_DISCOVERY_GRACE);
        assert!(!config.uses_discovery(), "no service asks for it");
    }

    #[test]
    fn mistakes_are_errors_naming_the_key() {
        for (text, expected) in [
            (
                r#"{"StartupMeshes": [{"Name": "V", "DiscoverMeshUsingEtcd": true}]}"#,
                "StartupMeshes[0].DiscoverMeshUsingEtcd",
            ),
            (r#"{"Etcd": {}}"#, "Etcd.Endpoints"),
            (r#"{"Etcd": {"Endpoints": ["nohost"]}}"#, "Etcd.Endpoints"),
            (
                r#"{"Etcd": {"Endpoints": ["e:1"], "LeaseTtlSeconds": 0}}"#,
                "Etcd.LeaseTtlSeconds",
            ),
            (
                r#"{"Etcd": {"Endpoints": ["e:1"], "Password": "x"}}"#,
                "Etcd.Username",
            ),
            (
                r#"{"Etcd": {"Endpoints": ["e:1"], "Username": "u", "Password": "x", "PasswordFile": "f"}}"#,
                "Etcd.Password",
            ),
            (
                r#"{"Etcd": {"Endpoints": ["e:1"], "CertFile": "c.pem"}}"#,
                "Etcd.CertFile",
            ),
            (
                r#"{"Etcd": {"Endpoints": ["http://e:1"], "CaFile": "ca.pem"}}"#,
                "Etcd.Endpoints",
            ),
            (r#"{"Etcd": {"Endpoints": ["https://e:1"]}}"#, "Etcd.CaFile"),
            (r#"{"DnsServers": ["localhost:53"]}"#, "DnsServers"),
            (r#"{"DnsRefreshMs": 10}"#, "DnsRefreshMs"),
            (r#"{"AdvertiseAddress": "nohost"}"#, "AdvertiseAddress"),
            (
                r#"{"StartupMeshes": [{"Name": "V", "MeshGateways": ["dns:name"]}]}"#,
                "MeshGateways",
            ),
        ] {
            let error = GatewayConfig::default().apply_json(text).unwrap_err();
            assert!(error.to_string().contains(expected), "{text}: {error}");
        }
    }
}
