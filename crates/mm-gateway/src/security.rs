//! What the gateway enforces now: TLS, mesh authentication and every service's users, built
//! from the configuration's security part at start and again on SIGHUP ([`SecurityReloader`]).
//! New connections use the newest; connections keep what they authenticated with.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::auth::ServiceUsers;
use crate::config::security::{SecretSource, SecurityConfig, WILDCARD_SERVICE};
use crate::mesh::auth::MeshSecret;
use crate::tls::{DialTls, PortTls, TlsError};

/// Security settings that cannot be put in force.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// TLS material.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The mesh secret file.
    #[error("mesh secret {path}: {message}")]
    MeshSecret {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Everything security, as built from one configuration.
#[derive(Debug, Default)]
pub(crate) struct SecurityState {
    /// TLS on the listening port.
    pub(crate) port_tls: Option<PortTls>,
    /// TLS for the links this gateway dials.
    pub(crate) dial_tls: Option<Arc<DialTls>>,
    /// Whether peers must prove membership with a mesh CA certificate.
    pub(crate) mesh_tls: bool,
    /// The shared mesh secret.
    pub(crate) mesh_secret: Option<Arc<MeshSecret>>,
    /// Users per service.
    services: HashMap<String, Arc<ServiceUsers>>,
}

impl SecurityState {
    /// Reads the files the configuration names and builds everything.
    pub(crate) fn load(config: &SecurityConfig) -> Result<SecurityState, SecurityError> {
        let mesh_secret = match &config.mesh_secret {
            None => None,
            Some(SecretSource::Inline(secret)) => Some(MeshSecret::new(secret.as_bytes())),
            Some(SecretSource::File(path)) => {
                let error = |message: String| SecurityError::MeshSecret {
                    path: path.display().to_string(),
                    message,
                };
                let text = std::fs::read(path).map_err(|e| error(e.to_string()))?;
                let secret = text.trim_ascii();
                if secret.len() < crate::config::security::MIN_MESH_SECRET_BYTES {
                    return Err(error(format!(
                        "must hold at least {} bytes",
                        crate::config::security::MIN_MESH_SECRET_BYTES
                    )));
                }
                Some(MeshSecret::new(secret))
            }
        };
        Ok(SecurityState {
            port_tls: PortTls::load(config.tls.as_ref(), config.mesh_tls.as_ref())?,
            dial_tls: config
                .mesh_tls
                .as_ref()
                .map(DialTls::load)
                .transpose()?
                .map(Arc::new),
            mesh_tls: config.mesh_tls.is_some(),
            mesh_secret: mesh_secret.map(Arc::new),
            services: config
                .services
                .iter()
                .map(|(name, service)| (name.clone(), Arc::new(ServiceUsers::new(service))))
                .collect(),
        })
    }

    /// The users of `service`; `None`: the service is open to everyone.
    pub(crate) fn service(&self, service: &str) -> Option<Arc<ServiceUsers>> {
        self.services
            .get(service)
            .or_else(|| self.services.get(WILDCARD_SERVICE))
            .cloned()
    }

    /// Whether mesh peers must authenticate (mesh CA or shared secret).
    pub(crate) fn mesh_authenticated(&self) -> bool {
        self.mesh_tls || self.mesh_secret.is_some()
    }
}

/// The security state in force, swapped whole on reload.
#[derive(Debug)]
pub(crate) struct Security {
    current: RwLock<Arc<SecurityState>>,
}

impl Security {
    /// Security from the start-up configuration.
    pub(crate) fn new(state: SecurityState) -> Security {
        Security {
            current: RwLock::new(Arc::new(state)),
        }
    }

    /// The state in force.
    pub(crate) fn current(&self) -> Arc<SecurityState> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, state: SecurityState) {
        let state = Arc::new(state);
        match self.current.write() {
            Ok(mut current) => *current = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
    }
}

/// Puts new security settings in force (SIGHUP): certificates, keys, CAs, the mesh secret and
/// users. Connections already open keep what they have.
#[derive(Clone)]
pub struct SecurityReloader {
    pub(crate) context: Arc<crate::GatewayContext>,
}

impl SecurityReloader {
    /// Builds everything from `config` and swaps it in; on error nothing changes.
    pub fn reload(&self, config: &SecurityConfig) -> Result<(), SecurityError> {
        let state = SecurityState::load(config)?;
        self.context.security.replace(state);
        Ok(())
    }
}
