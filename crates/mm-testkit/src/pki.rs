//! Certificates for TLS tests, made on the spot with rcgen: a CA, and server or client
//! certificates it signs, written as PEM files into a temporary directory (deleted on drop).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A test CA with its files in a temporary directory.
pub struct TestPki {
    directory: tempfile::TempDir,
    ca_file: PathBuf,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl TestPki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> TestPki {
        let directory = tempfile::Builder::new()
            .prefix(&format!("mm-pki-{name}-"))
            .tempdir()
            .expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = params.self_signed(&ca_key).expect("self-signed CA");
        let ca_file = directory.path().join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, ca.pem()).expect("write CA");
        TestPki {
            directory,
            ca_file,
            ca,
            ca_key,
        }
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The directory the files are in.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }

    /// A certificate for `common_name` (also valid for `localhost` and 127.0.0.1, for servers
    /// and clients alike), written as `<stem>.pem` and `<stem>.key`.
    pub fn issue(&self, stem: &str, common_name: &str) -> CertFiles {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params
            .signed_by(&key, &self.ca, &self.ca_key)
            .expect("sign");
        let files = CertFiles {
            cert: self.directory.path().join(format!("{stem}.pem")),
            key: self.directory.path().join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, certificate.pem()).expect("write certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("write key");
        files
    }

    /// A client configuration that trusts this CA, presenting `identity` if given.
    pub fn client_config(&self, identity: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
        client_config(&self.ca_file, identity)
    }
}

/// A client configuration that trusts the CAs in `ca_file`, presenting `identity` if given.
pub fn client_config(ca_file: &Path, identity: Option<&CertFiles>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_file_iter(ca_file).expect("CA file") {
        roots.add(certificate.expect("CA PEM")).expect("add CA");
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(files) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&files.cert)
                    .expect("certificate file")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("certificate PEM"),
                PrivateKeyDer::from_pem_file(&files.key).expect("key PEM"),
            )
            .expect("client certificate"),
    };
    Arc::new(config)
}
