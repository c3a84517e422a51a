//! TLS to the gateway (rustls): which CAs to trust, and the client certificate to present.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// TLS settings that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A file could not be read, or holds no usable PEM item.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the material (a key that does not match its certificate, say).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certificates)
}

/// How to reach the gateway over TLS: the rustls client configuration, and the name to check
/// the gateway's certificate against (default: the host of the gateway address).
#[derive(Clone, Debug)]
pub struct TlsParams {
    pub(crate) config: Arc<rustls::ClientConfig>,
    pub(crate) server_name: Option<String>,
}

impl TlsParams {
    /// Trusts the CAs in `ca_file` (PEM); presents the client certificate `cert_file` with key
    /// `key_file` (PEM) when both are given (mutual TLS).
    pub fn from_files(
        ca_file: &Path,
        client: Option<(&Path, &Path)>,
    ) -> Result<TlsParams, TlsSetupError> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in certificates(ca_file)? {
            roots
                .add(certificate)
                .map_err(|error| file_error(ca_file, error))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => builder.with_client_auth_cert(
                certificates(cert_file)?,
                PrivateKeyDer::from_pem_file(key_file)
                    .map_err(|error| file_error(key_file, error))?,
            )?,
        };
        Ok(TlsParams::from_config(Arc::new(config)))
    }

    /// Uses a rustls client configuration as it is.
    pub fn from_config(config: Arc<rustls::ClientConfig>) -> TlsParams {
        TlsParams {
            config,
            server_name: None,
        }
    }

    /// Checks the gateway's certificate against `name` instead of the address's host.
    #[must_use]
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name to check for a gateway at `address` (`host:port`).
    pub(crate) fn name_for(&self, address: &str) -> Result<ServerName<'static>, String> {
        let host = match &self.server_name {
            Some(name) => name.as_str(),
            None => address
                .rsplit_once(':')
                .map_or(address, |(host, _)| host)
                .trim_start_matches('[')
                .trim_end_matches(']'),
        };
        ServerName::try_from(host.to_owned())
            .map_err(|error| format!("`{host}` is not a server name: {error}"))
    }
}
