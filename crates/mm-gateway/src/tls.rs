//! TLS material: certificates, keys and CAs from PEM files, and the rustls configurations built
//! from them — the listening port's (clients, and peers that dial it) and the diallers' (mesh
//! links). Built at start and again on SIGHUP; connections keep the configuration they started
//! with.
//!
//! One port, one server certificate: `Tls.CertFile`, or `MeshTls.CertFile` when only mesh links
//! use TLS. Client certificates are asked for when a client CA or a mesh CA is configured, and
//! verified against both during the handshake; afterwards each role checks its own CA — a peer's
//! certificate must come from the mesh CA, a client's from the client CA (and its name may
//! identify a user). Mesh CA certificates are not checked for host names: the mesh CA is meant
//! for the mesh alone, and any certificate it signed is a member.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::config::security::{MeshTlsConfig, TlsConfig};

/// TLS material that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no usable PEM item.
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
    /// A CA file gave a verifier that cannot be built.
    #[error("CA certificates: {0}")]
    Verifier(String),
}

fn file_error(path: &Path, message: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| file_error(path, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(path, error))?;
    if certificates.is_empty() {
        return Err(file_error(path, "no certificate in the file"));
    }
    Ok(certificates)
}

/// The first private key in a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| file_error(path, error))
}

fn roots(paths: &[&Path]) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for path in paths {
        for certificate in certificates(path)? {
            store
                .add(certificate)
                .map_err(|error| file_error(path, error))?;
        }
    }
    Ok(store)
}

fn client_verifier(paths: &[&Path]) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(paths)?), provider())
        .allow_unauthenticated()
        .build()
        .map_err(|error| TlsError::Verifier(error.to_string()))
}

/// The listening port's TLS.
#[derive(Debug)]
pub(crate) struct PortTls {
    /// The server configuration for the handshake.
    pub(crate) server: Arc<ServerConfig>,
    /// Whether plaintext connections are accepted too.
    pub(crate) allow_plaintext: bool,
    /// Whether clients must present a certificate from the client CA.
    pub(crate) require_client_certificate: bool,
    /// Verifies client certificates against the client CA only.
    client_ca: Option<Arc<dyn ClientCertVerifier>>,
    /// Verifies peer certificates against the mesh CA only.
    mesh_ca: Option<Arc<dyn ClientCertVerifier>>,
}

/// Whether `chain` (end entity first) is verified by `verifier`.
fn verified_by(verifier: &dyn ClientCertVerifier, chain: &[CertificateDer<'static>]) -> bool {
    match chain.split_first() {
        Some((end_entity, intermediates)) => verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok(),
        None => false,
    }
}

impl PortTls {
    /// Builds the port's TLS from the configuration: `Tls` for clients (and peers), else
    /// `MeshTls` for peers only (clients then stay plaintext). `None` when neither is set.
    pub(crate) fn load(
        tls: Option<&TlsConfig>,
        mesh: Option<&MeshTlsConfig>,
    ) -> Result<Option<PortTls>, TlsError> {
        let (cert_file, key_file) = match (tls, mesh) {
            (Some(tls), _) => (&tls.cert_file, &tls.key_file),
            (None, Some(mesh)) => (&mesh.cert_file, &mesh.key_file),
            (None, None) => return Ok(None),
        };
        let chain = certificates(cert_file)?;
        let key = private_key(key_file)?;
        let client_ca_file = tls.and_then(|tls| tls.client_ca_file.as_deref());
        let mesh_ca_file = mesh.map(|mesh| mesh.ca_file.as_path());
        let either: Vec<&Path> = client_ca_file.into_iter().chain(mesh_ca_file).collect();
        let builder = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = if either.is_empty() {
            builder.with_no_client_auth()
        } else {
            builder.with_client_cert_verifier(client_verifier(&either)?)
        };
        let mut server = builder.with_single_cert(chain, key)?;
        server.send_tls13_tickets = 0;
        Ok(Some(PortTls {
            server: Arc::new(server),
            allow_plaintext: tls.is_none_or(|tls| tls.allow_plaintext),
            require_client_certificate: tls.is_some_and(|tls| tls.require_client_certificate),
            client_ca: client_ca_file.map(|f| client_verifier(&[f])).transpose()?,
            mesh_ca: mesh_ca_file.map(|f| client_verifier(&[f])).transpose()?,
        }))
    }

    /// Whether a peer's certificate chain comes from the mesh CA.
    pub(crate) fn is_mesh_member(&self, chain: &[CertificateDer<'static>]) -> bool {
        self.mesh_ca
            .as_deref()
            .is_some_and(|verifier| verified_by(verifier, chain))
    }

    /// The names of a client certificate verified against the client CA (empty if there is none,
    /// or it is not from the client CA).
    pub(crate) fn client_names(&self, chain: &[CertificateDer<'static>]) -> Vec<String> {
        match &self.client_ca {
            Some(verifier) if verified_by(verifier.as_ref(), chain) => {
                chain.first().map(certificate_names).unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }
}

/// A certificate's subject common names, DNS and e-mail alternative names.
pub(crate) fn certificate_names(certificate: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(certificate.as_ref()) else {
        return Vec::new();
    };
    let mut names: Vec<String> = parsed
        .subject()
        .iter_common_name()
        .filter_map(|name| name.as_str().ok().map(str::to_owned))
        .collect();
    if let Ok(Some(alternative)) = parsed.subject_alternative_name() {
        for name in &alternative.value.general_names {
            match name {
                GeneralName::DNSName(name) | GeneralName::RFC822Name(name) => {
                    names.push((*name).to_owned())
                }
                _ => {}
            }
        }
    }
    names
}

/// The diallers' TLS: the mesh CA, and this gateway's certificate as a client certificate.
#[derive(Debug)]
pub(crate) struct DialTls {
    /// The client configuration.
    pub(crate) client: Arc<ClientConfig>,
}

impl DialTls {
    /// Builds the diallers' TLS from `MeshTls`.
    pub(crate) fn load(mesh: &MeshTlsConfig) -> Result<DialTls, TlsError> {
        let roots = Arc::new(roots(&[&mesh.ca_file])?);
        let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|error| TlsError::Verifier(error.to_string()))?;
        let client = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(MeshCaVerifier { inner }))
            .with_client_auth_cert(certificates(&mesh.cert_file)?, private_key(&mesh.key_file)?)?;
        Ok(DialTls {
            client: Arc::new(client),
        })
    }

    /// The name to present for `host` (an IP address, a DNS name, or a placeholder).
    pub(crate) fn server_name(host: &str) -> ServerName<'static> {
        ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .unwrap_or_else(|_| ServerName::try_from("mesh.invalid").expect("a valid DNS name"))
    }
}

/// Verifies a peer's server certificate against the mesh CA, without host names.
#[derive(Debug)]
struct MeshCaVerifier {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for MeshCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            // The chain is good (names are checked last): a member of the mesh.
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls12_signature(message, certificate, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner
            .verify_tls13_signature(message, certificate, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Whether the first bytes of a connection are a TLS handshake record (ClientHello). A plaintext
/// first frame that starts like this would be at least 66 326 bytes long, more than a handshake
/// frame may be, so the two never mix up.
pub(crate) fn looks_like_tls(first_bytes: &[u8]) -> bool {
    matches!(first_bytes, [0x16, 0x03, 0x01..=0x04, ..])
}

/// A TLS alert record (fatal, handshake_failure) for a TLS client on a port without TLS: its
/// library reports a handshake failure at once instead of waiting.
pub(crate) const HANDSHAKE_FAILURE_ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];
