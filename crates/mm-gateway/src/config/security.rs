//! The security part of the configuration file: TLS, mesh authentication, and per-service users
//! and permissions (docs/security.md).
//!
//! ```json
//! {
//!   "Tls": { "CertFile": "gateway.pem", "KeyFile": "gateway.key",
//!            "ClientCaFile": "clients-ca.pem", "RequireClientCertificate": false,
//!            "AllowPlaintext": false },
//!   "MeshTls": { "CaFile": "mesh-ca.pem", "CertFile": "mesh.pem", "KeyFile": "mesh.key" },
//!   "MeshSecretFile": "mesh.secret",
//!   "ServiceSecurity": {
//!     "ORDERS": {
//!       "Users": [
//!         { "Name": "alice", "PasswordHash": "$argon2id$v=19$m=19456,t=2,p=1$…",
//!           "Publish": { "Allow": ["Orders.>"] }, "Subscribe": { "Allow": ["Orders.>"] } },
//!         { "Name": "billing", "TokenHash": "$argon2id$…", "Certificate": "billing" }
//!       ],
//!       "Anonymous": { "Subscribe": { "Allow": ["Public.>"] }, "Publish": { "Allow": [] } }
//!     },
//!     "*": { "Users": [] }
//!   }
//! }
//! ```
//!
//! Paths are relative to the configuration file's folder. Everything here is validated when the
//! file is read (patterns, hashes); files (certificates, keys, the secret) are read when the
//! gateway starts and again on SIGHUP.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mm_wire::subject::{validate_pattern, validate_service_name};
use serde::Deserialize;
use serde_json::Value;

use argon2::Algorithm;
use argon2::password_hash::PasswordHash;

use super::{ConfigError, invalid};

/// Default time a response permission lasts (private replies).
pub const DEFAULT_RESPONSE_EXPIRY: Duration = Duration::from_secs(60);

/// Everything about security. The default is none: no TLS, no authentication, as before.
#[derive(Debug, Clone, Default)]
pub struct SecurityConfig {
    /// TLS for the listening port (clients, and peers that dial it).
    pub tls: Option<TlsConfig>,
    /// TLS for mesh links: the mesh CA and this gateway's certificate as a mesh member.
    pub mesh_tls: Option<MeshTlsConfig>,
    /// Shared-secret mesh authentication: where the secret is.
    pub mesh_secret: Option<SecretSource>,
    /// Per-service users and permissions; a service not listed uses the `*` entry, if any, and
    /// is open to everyone (as without security) if there is none.
    pub services: BTreeMap<String, ServiceSecurityConfig>,
}

impl SecurityConfig {
    /// The security settings of `service`, if it has any.
    pub fn service(&self, service: &str) -> Option<&ServiceSecurityConfig> {
        self.services
            .get(service)
            .or_else(|| self.services.get(WILDCARD_SERVICE))
    }

    /// Whether clients must authenticate on some service (for the startup warning).
    pub fn authenticates_every_service(&self) -> bool {
        self.services.contains_key(WILDCARD_SERVICE)
    }
}

/// The `ServiceSecurity` key that applies to services not listed by name.
pub const WILDCARD_SERVICE: &str = "*";

/// TLS on the listening port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The certificate chain (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
    /// CAs whose client certificates are verified (PEM); a verified certificate's name can
    /// identify a user.
    pub client_ca_file: Option<PathBuf>,
    /// Clients without a certificate from `client_ca_file` are refused.
    pub require_client_certificate: bool,
    /// Plaintext connections are accepted too (default false: the port is TLS only).
    pub allow_plaintext: bool,
}

/// TLS between gateways of a mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshTlsConfig {
    /// The mesh CA (PEM): peers must present a certificate it signed, both ways.
    pub ca_file: PathBuf,
    /// This gateway's certificate as a mesh member (PEM).
    pub cert_file: PathBuf,
    /// Its private key (PEM).
    pub key_file: PathBuf,
}

/// Where the mesh secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file whose content (trimmed) is the secret.
    File(PathBuf),
    /// Written in the configuration itself (`MeshSecret`).
    Inline(String),
}

/// Shortest mesh secret accepted, in bytes.
pub const MIN_MESH_SECRET_BYTES: usize = 16;

/// Users and anonymous access of one service.
#[derive(Debug, Clone, Default)]
pub struct ServiceSecurityConfig {
    /// The users.
    pub users: Vec<UserConfig>,
    /// What a client without credentials may do; `None`: such clients (and every MM/1 client)
    /// are refused.
    pub anonymous: Option<GrantConfig>,
}

/// One user.
#[derive(Debug, Clone)]
pub struct UserConfig {
    /// The name clients send as `user`, shown in logs.
    pub name: String,
    /// An argon2id hash (PHC string) of the password.
    pub password_hash: Option<String>,
    /// An argon2id hash (PHC string) of a bearer token.
    pub token_hash: Option<String>,
    /// A verified client certificate whose common name (or a DNS or e-mail alternative name)
    /// equals this is the user.
    pub certificate: Option<String>,
    /// What the user may do.
    pub grant: GrantConfig,
}

/// Permissions and limits of a user (or of anonymous clients).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantConfig {
    /// Subjects it may publish to.
    pub publish: PatternRules,
    /// Patterns it may subscribe to.
    pub subscribe: PatternRules,
    /// Connections at once (per service, per gateway).
    pub max_connections: Option<usize>,
    /// Subscriptions per connection.
    pub max_subscriptions: Option<usize>,
    /// Largest frame it may send.
    pub max_frame: Option<u32>,
    /// Replies to a request it received: how many per request.
    pub response_max_messages: u32,
    /// …and for how long.
    pub response_expiry: Duration,
}

impl GrantConfig {
    fn defaults() -> GrantConfig {
        GrantConfig {
            response_max_messages: 1,
            response_expiry: DEFAULT_RESPONSE_EXPIRY,
            ..GrantConfig::default()
        }
    }
}

/// Allow and deny lists of subject patterns. With no allow list everything not denied is
/// allowed; an empty allow list allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatternRules {
    /// Allowed patterns (`None`: everything).
    pub allow: Option<Vec<String>>,
    /// Denied patterns (win over allowed ones).
    pub deny: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// The file's shape
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct TlsFile {
    cert_file: String,
    key_file: String,
    client_ca_file: Option<String>,
    #[serde(default)]
    require_client_certificate: bool,
    #[serde(default)]
    allow_plaintext: bool,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct MeshTlsFile {
    ca_file: String,
    cert_file: String,
    key_file: String,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ServiceFile {
    #[serde(default)]
    users: Vec<UserFile>,
    anonymous: Option<GrantFile>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UserFile {
    name: String,
    password_hash: Option<String>,
    token_hash: Option<String>,
    certificate: Option<String>,
    #[serde(flatten)]
    grant: GrantFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GrantFile {
    publish: Option<RulesFile>,
    subscribe: Option<RulesFile>,
    max_connections: Option<u64>,
    max_subscriptions: Option<u64>,
    max_frame_bytes: Option<u64>,
    responses: Option<ResponsesFile>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RulesFile {
    allow: Option<Vec<String>>,
    #[serde(default)]
    deny: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ResponsesFile {
    max_messages: Option<u32>,
    expires_ms: Option<u64>,
}

/// The security keys of the file, as read.
#[derive(Debug, Default)]
pub(super) struct SecurityKeys {
    pub(super) tls: Option<TlsFile>,
    pub(super) mesh_tls: Option<MeshTlsFile>,
    pub(super) mesh_secret_file: Option<String>,
    pub(super) mesh_secret: Option<String>,
    pub(super) service_security: Option<BTreeMap<String, ServiceFile>>,
}

/// Resolves `path` against the configuration file's folder.
fn resolve(base: Option<&Path>, path: &str) -> PathBuf {
    let path = PathBuf::from(path);
    match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    }
}

impl SecurityKeys {
    /// Applies the keys that are present on top of `config`; `base` is the configuration file's
    /// folder. Unknown keys inside them become warnings.
    pub(super) fn apply(
        self,
        config: &mut SecurityConfig,
        base: Option<&Path>,
        warnings: &mut Vec<String>,
    ) -> Result<(), ConfigError> {
        if let Some(tls) = self.tls {
            unknown_keys("Tls", &tls.unknown, warnings);
            if tls.require_client_certificate && tls.client_ca_file.is_none() {
                return Err(invalid(
                    "Tls.RequireClientCertificate",
                    "needs Tls.ClientCaFile (the CA that signs client certificates)",
                ));
            }
            config.tls = Some(TlsConfig {
                cert_file: resolve(base, &tls.cert_file),
                key_file: resolve(base, &tls.key_file),
                client_ca_file: tls.client_ca_file.as_deref().map(|p| resolve(base, p)),
                require_client_certificate: tls.require_client_certificate,
                allow_plaintext: tls.allow_plaintext,
            });
        }
        if let Some(mesh) = self.mesh_tls {
            unknown_keys("MeshTls", &mesh.unknown, warnings);
            config.mesh_tls = Some(MeshTlsConfig {
                ca_file: resolve(base, &mesh.ca_file),
                cert_file: resolve(base, &mesh.cert_file),
                key_file: resolve(base, &mesh.key_file),
            });
        }
        match (self.mesh_secret_file, self.mesh_secret) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "MeshSecret",
                    "give MeshSecretFile or MeshSecret, not both",
                ));
            }
            (Some(file), None) => {
                config.mesh_secret = Some(SecretSource::File(resolve(base, &file)))
            }
            (None, Some(secret)) => {
                if secret.len() < MIN_MESH_SECRET_BYTES {
                    return Err(invalid(
                        "MeshSecret",
                        &format!("must be at least {MIN_MESH_SECRET_BYTES} bytes"),
                    ));
                }
                config.mesh_secret = Some(SecretSource::Inline(secret));
            }
            (None, None) => {}
        }
        if let Some(services) = self.service_security {
            for (service, file) in services {
                let key = format!("ServiceSecurity.{service}");
                if service != WILDCARD_SERVICE {
                    validate_service_name(&service)
                        .map_err(|error| invalid(&key, &format!("`{service}`: {error}")))?;
                }
                unknown_keys(&key, &file.unknown, warnings);
                let anonymous = file
                    .anonymous
                    .map(|grant| grant_config(&format!("{key}.Anonymous"), grant, warnings))
                    .transpose()?;
                let mut users: Vec<UserConfig> = Vec::new();
                for (index, user) in file.users.into_iter().enumerate() {
                    let key = format!("{key}.Users[{index}]");
                    users.push(user_config(&key, user, warnings)?);
                }
                for (index, user) in users.iter().enumerate() {
                    if users[..index].iter().any(|other| other.name == user.name) {
                        return Err(invalid(
                            &key,
                            &format!("user `{}` is listed twice", user.name),
                        ));
                    }
                }
                config
                    .services
                    .insert(service, ServiceSecurityConfig { users, anonymous });
            }
        }
        Ok(())
    }
}

fn unknown_keys(key: &str, unknown: &BTreeMap<String, Value>, warnings: &mut Vec<String>) {
    for name in unknown.keys() {
        warnings.push(format!("unknown key `{name}` in {key} ignored"));
    }
}

fn user_config(
    key: &str,
    user: UserFile,
    warnings: &mut Vec<String>,
) -> Result<UserConfig, ConfigError> {
    if user.name.is_empty() {
        return Err(invalid(&format!("{key}.Name"), "must not be empty"));
    }
    for (field, hash) in [
        ("PasswordHash", &user.password_hash),
        ("TokenHash", &user.token_hash),
    ] {
        if let Some(hash) = hash {
            check_hash(hash).map_err(|message| invalid(&format!("{key}.{field}"), &message))?;
        }
    }
    if user.password_hash.is_none() && user.token_hash.is_none() && user.certificate.is_none() {
        return Err(invalid(
            key,
            &format!(
                "user `{}` has no credential: give PasswordHash, TokenHash or Certificate",
                user.name
            ),
        ));
    }
    Ok(UserConfig {
        grant: grant_config(key, user.grant, warnings)?,
        name: user.name,
        password_hash: user.password_hash,
        token_hash: user.token_hash,
        certificate: user.certificate,
    })
}

fn grant_config(
    key: &str,
    grant: GrantFile,
    warnings: &mut Vec<String>,
) -> Result<GrantConfig, ConfigError> {
    unknown_keys(key, &grant.unknown, warnings);
    let mut config = GrantConfig::defaults();
    config.publish = rules(&format!("{key}.Publish"), grant.publish)?;
    config.subscribe = rules(&format!("{key}.Subscribe"), grant.subscribe)?;
    let positive = |name: &str, value: Option<u64>| -> Result<Option<usize>, ConfigError> {
        value
            .map(|value| {
                usize::try_from(value)
                    .ok()
                    .filter(|&value| value > 0)
                    .ok_or_else(|| invalid(&format!("{key}.{name}"), "must be positive"))
            })
            .transpose()
    };
    config.max_connections = positive("MaxConnections", grant.max_connections)?;
    config.max_subscriptions = positive("MaxSubscriptions", grant.max_subscriptions)?;
    config.max_frame = grant
        .max_frame_bytes
        .map(|value| {
            super::check_max_frame(value).map_err(|m| invalid(&format!("{key}.MaxFrameBytes"), m))
        })
        .transpose()?;
    if let Some(responses) = grant.responses {
        if let Some(max) = responses.max_messages {
            if max == 0 {
                return Err(invalid(
                    &format!("{key}.Responses.MaxMessages"),
                    "must be positive",
                ));
            }
            config.response_max_messages = max;
        }
        if let Some(ms) = responses.expires_ms {
            if ms == 0 {
                return Err(invalid(
                    &format!("{key}.Responses.ExpiresMs"),
                    "must be positive",
                ));
            }
            config.response_expiry = Duration::from_millis(ms);
        }
    }
    Ok(config)
}

fn rules(key: &str, file: Option<RulesFile>) -> Result<PatternRules, ConfigError> {
    let Some(file) = file else {
        return Ok(PatternRules::default());
    };
    for pattern in file.allow.iter().flatten().chain(&file.deny) {
        validate_pattern(pattern)
            .map_err(|error| invalid(key, &format!("`{pattern}`: {error}")))?;
    }
    Ok(PatternRules {
        allow: file.allow,
        deny: file.deny,
    })
}

/// Checks that `hash` is an argon2id PHC string.
pub(crate) fn check_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|error| {
        format!("not a PHC hash string ({error}): use `mm-gateway passwd` to make one")
    })?;
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return Err(format!(
            "algorithm `{}` is not argon2id: use `mm-gateway passwd` to make a hash",
            parsed.algorithm
        ));
    }
    Ok(())
}
