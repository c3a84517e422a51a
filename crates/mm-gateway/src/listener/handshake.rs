//! One new connection's way into its service: TLS (when the port has it), the first frame
//! (CONNECT or CONNECT_MESH_PEER), authentication — a client's credentials or certificate, a
//! mesh peer's certificate or challenge–response — and the hand-over.
//!
//! The first bytes tell TLS from plaintext (`tls::looks_like_tls`), so one port serves both when
//! allowed: a plaintext client on a TLS-only port gets ERROR `TLS_REQUIRED` (MM/2) in plaintext
//! and is closed; a TLS client on a port without TLS gets a TLS alert. Either way both sides know
//! at once, and the gateway logs why.
//!
//! Everything here runs on the acceptor's runtime, under the handshake timeout. Password and
//! token checks run off the event loop (`spawn_blocking`), a few at a time. The TLS session
//! travels to the service with the socket.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::BytesMut;
use mm_wire::handshake::{ConnectOptions, ErrorCode, MeshAuthFields, PeerHello, Protocol};
use mm_wire::subject::validate_service_name_bytes;
use mm_wire::{Action, Frame, FrameDecoder, Header, Message, encode_frame};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, info, warn};

use super::{ServiceRegistry, ServiceUnavailable};
use crate::advisory::RefusedConnect;
use crate::auth::{AuthFailure, Credentials};
use crate::config::MAX_HANDSHAKE_FRAME_BYTES;
use crate::log_limit::shown;
use crate::mesh::auth::{NONCE_BYTES, Side, Transcript, nonce};
use crate::permissions::Grant;
use crate::security::SecurityState;
use crate::service::Incoming;
use crate::socket::send_and_close;
use crate::tls::{HANDSHAKE_FAILURE_ALERT, looks_like_tls};

/// A connection in its handshake: plain, or TLS after the TLS handshake.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl Stream {
    async fn read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read_buf(buffer).await,
            Stream::Tls(stream) => stream.read_buf(buffer).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.write_all(bytes).await,
            Stream::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }

    /// The peer's certificate chain (TLS with a client certificate), end entity first.
    fn peer_certificates(&self) -> Vec<CertificateDer<'static>> {
        match self {
            Stream::Plain(_) => Vec::new(),
            Stream::Tls(stream) => stream
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| chain.to_vec())
                .unwrap_or_default(),
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Sends `bytes` (an ERROR) and closes, waiting briefly for the peer to close its side.
    async fn send_and_close(self, bytes: &[u8]) {
        let close = async {
            match self {
                Stream::Plain(stream) => send_and_close(&stream, bytes).await,
                Stream::Tls(mut stream) => {
                    let _ = stream.write_all(bytes).await;
                    let _ = stream.shutdown().await;
                    let mut discard = [0u8; 4096];
                    while matches!(stream.read(&mut discard).await, Ok(read) if read > 0) {}
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    }

    /// The socket and TLS session, for the service.
    fn into_parts(self) -> (TcpStream, Option<rustls::Connection>) {
        match self {
            Stream::Plain(stream) => (stream, None),
            Stream::Tls(stream) => {
                let (stream, session) = stream.into_inner();
                (stream, Some(rustls::Connection::Server(session)))
            }
        }
    }
}

/// Why a connection ended before its first frame.
#[derive(Debug, thiserror::Error)]
enum HandshakeError {
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    PeerClosed,
    /// Reading failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
    /// The bytes are not a valid frame (or the first frame is larger than a handshake may be).
    #[error("malformed first frame: {0}")]
    Malformed(#[from] mm_wire::DecodeError),
}

/// Reads until one whole frame is decoded.
async fn read_frame(
    stream: &mut Stream,
    decoder: &mut FrameDecoder,
) -> Result<Frame, HandshakeError> {
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(frame);
        }
        let buffer = decoder.buffer_mut();
        buffer.reserve(4096);
        if stream.read_buf(buffer).await? == 0 {
            return Err(HandshakeError::PeerClosed);
        }
    }
}

/// Waits until the first three bytes have arrived (or the peer closed) and returns them,
/// without taking them from the socket.
async fn peek_start(stream: &TcpStream) -> std::io::Result<Vec<u8>> {
    let mut start = [0u8; 3];
    loop {
        let seen = stream.peek(&mut start).await?;
        if seen >= start.len() || seen == 0 {
            return Ok(start[..seen].to_vec());
        }
        // A sender that trickles its first bytes: look again shortly.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads the first frame and hands the connection to its service — all within the handshake
/// timeout.
pub(super) async fn handshake(
    stream: TcpStream,
    address: SocketAddr,
    registry: Arc<ServiceRegistry>,
) {
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%address, %error, "cannot set TCP_NODELAY");
    }
    let timeout = registry.context.config.handshake_timeout;
    if tokio::time::timeout(timeout, admit(stream, address, &registry))
        .await
        .is_err()
        && registry.warning_allowed()
    {
        info!(%address, "handshake not completed within the handshake timeout: closing");
    }
}

/// A frame sent in the handshake.
fn encoded(header: &Header<'_>, message: &Message) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = encode_frame(&mut bytes, header, message);
    bytes
}

/// An ERROR frame.
fn error_frame(code: ErrorCode, subject: &[u8], text: &str) -> Vec<u8> {
    let header = Header {
        subscription_id: 0,
        subject,
        reply_subject: &[],
        action: Action::Error,
    };
    encoded(&header, &code.message(text))
}

/// Sends an ERROR to an MM/2 peer (best effort), then closes. MM/1 peers are just closed.
async fn refuse(stream: Stream, protocol: Protocol, code: ErrorCode, subject: &[u8], text: &str) {
    if protocol == Protocol::Mm1 {
        stream.send_and_close(&[]).await;
        return;
    }
    stream
        .send_and_close(&error_frame(code, subject, text))
        .await;
}

async fn admit(stream: TcpStream, address: SocketAddr, registry: &Arc<ServiceRegistry>) {
    let security = registry.context.security.current();
    let start = match peek_start(&stream).await {
        Ok(start) => start,
        Err(error) => {
            debug!(%address, %error, "closing before CONNECT");
            return;
        }
    };
    let tls_hello = looks_like_tls(&start);
    let mut stream = match (&security.port_tls, tls_hello) {
        (Some(port), true) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(port.server.clone());
            match acceptor.accept(stream).await {
                Ok(stream) => Stream::Tls(Box::new(stream)),
                Err(error) => {
                    if registry.warning_allowed() {
                        warn!(%address, %error, "TLS handshake failed: closing");
                    }
                    return;
                }
            }
        }
        (None, true) => {
            if registry.warning_allowed() {
                warn!(%address, "TLS connection on a port without TLS: closing (configure Tls, or connect without TLS)");
            }
            send_and_close(&stream, &HANDSHAKE_FAILURE_ALERT).await;
            return;
        }
        (_, false) => Stream::Plain(stream),
    };
    let config = &registry.context.config;
    let mut decoder = FrameDecoder::new(config.max_frame.min(MAX_HANDSHAKE_FRAME_BYTES));
    let first = match read_frame(&mut stream, &mut decoder).await {
        Ok(frame) => frame,
        Err(reason) => {
            if registry.warning_allowed() {
                info!(%address, "closing before CONNECT: {reason}");
            }
            return;
        }
    };
    let action = first.action();
    if !matches!(action, Some(Action::Connect | Action::ConnectMeshPeer)) {
        if registry.warning_allowed() {
            warn!(
                %address,
                action = first.header().action_byte,
                "frame before CONNECT: closing"
            );
        }
        return;
    }
    let body = match first.message() {
        Ok(body) => body,
        Err(error) => {
            if registry.warning_allowed() {
                warn!(%address, %error, "undecodable CONNECT body: closing");
            }
            return;
        }
    };
    let is_client = action == Some(Action::Connect);
    let (options, hello) = if is_client {
        (ConnectOptions::from_message(&body).0, None)
    } else {
        (
            ConnectOptions::default(),
            Some(PeerHello::from_message(&body)),
        )
    };
    let protocol = match &hello {
        None => options.protocol(),
        Some(hello) => hello.protocol(),
    };
    if !stream.is_tls() {
        let plaintext_refused = match &security.port_tls {
            Some(port) => !port.allow_plaintext || (!is_client && security.mesh_tls),
            None => false,
        };
        if plaintext_refused {
            if registry.warning_allowed() {
                warn!(%address, "plaintext connection on a TLS-only port: refusing (TLS_REQUIRED)");
            }
            refuse(
                stream,
                protocol,
                ErrorCode::TlsRequired,
                &[],
                "this gateway accepts TLS connections only: connect with TLS",
            )
            .await;
            return;
        }
    }
    let service_name = first.subject();
    if let Err(error) = validate_service_name_bytes(service_name) {
        if registry.warning_allowed() {
            warn!(%address, service = %shown(service_name), %error, "invalid service name: closing");
        }
        record_refusal(
            registry,
            address,
            shown(service_name).as_ref(),
            &format!("invalid service name: {error}"),
        );
        refuse(
            stream,
            protocol,
            ErrorCode::InvalidSubject,
            &crate::log_limit::echoed(service_name),
            &format!("service name: {error}"),
        )
        .await;
        return;
    }
    // Validated above: a service name is UTF-8.
    let service_name = String::from_utf8_lossy(service_name).into_owned();
    let client_name = String::from_utf8_lossy(first.header().reply_subject).into_owned();
    let mut mesh_ack_sent = false;
    let grant = match &hello {
        None => {
            match authenticate_client(&stream, &options, &service_name, &security, registry).await {
                Ok(grant) => grant,
                Err(failure) => {
                    registry
                        .context
                        .authentication_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if registry.auth_warning_allowed() {
                        warn!(
                            %address,
                            service = %service_name,
                            client = %shown(first.header().reply_subject),
                            reason = %failure,
                            "client authentication failed: closing"
                        );
                    }
                    let text = match failure {
                        ClientRefusal::Auth(AuthFailure::AnonymousRefused) => {
                            "this service requires authentication: user and password, token, or \
                             client certificate"
                        }
                        ClientRefusal::CertificateRequired => {
                            "this gateway requires a client certificate from its client CA"
                        }
                        _ => "authentication failed",
                    };
                    record_refusal(registry, address, &service_name, text);
                    registry.advise_refused(
                        &service_name,
                        RefusedConnect {
                            name: client_name.clone(),
                            address,
                            code: ErrorCode::AuthenticationFailed,
                            text: text.to_owned(),
                        },
                    );
                    refuse(
                        stream,
                        protocol,
                        ErrorCode::AuthenticationFailed,
                        service_name.as_bytes(),
                        text,
                    )
                    .await;
                    return;
                }
            }
        }
        Some(hello) => {
            match authenticate_peer(
                &mut stream,
                &mut decoder,
                hello,
                &service_name,
                &security,
                registry,
            )
            .await
            {
                Ok(ack_sent) => {
                    mesh_ack_sent = ack_sent;
                    None
                }
                Err(reason) => {
                    registry
                        .context
                        .mesh_authentication_failures
                        .fetch_add(1, Ordering::Relaxed);
                    if registry.auth_warning_allowed() {
                        warn!(
                            %address,
                            service = %service_name,
                            peer = %shown(first.header().reply_subject),
                            claimed_id = hello.gateway_id.as_deref().unwrap_or(""),
                            %reason,
                            "mesh peer authentication failed: closing"
                        );
                    }
                    refuse(
                        stream,
                        protocol,
                        ErrorCode::AuthenticationFailed,
                        service_name.as_bytes(),
                        "mesh authentication failed",
                    )
                    .await;
                    return;
                }
            }
        }
    };
    let ticket = match registry.ticket(&service_name) {
        Ok(ticket) => ticket,
        Err(unavailable) => {
            refuse_service(
                registry,
                stream,
                address,
                protocol,
                (&service_name, &client_name),
                &unavailable,
            )
            .await;
            return;
        }
    };
    let leftover = decoder.buffer_mut().split();
    let (tcp, tls) = stream.into_parts();
    let std_stream = match tcp.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            ticket.load.arriving.fetch_sub(1, Ordering::SeqCst);
            warn!(%address, %error, "cannot hand the connection over");
            return;
        }
    };
    let incoming = Incoming {
        stream: std_stream,
        tls,
        address,
        first_frame: first,
        body,
        leftover,
        grant,
        mesh_ack_sent,
    };
    if let Err((unavailable, incoming)) = registry.hand_over(&service_name, ticket, incoming).await
    {
        if incoming.tls.is_some() {
            return;
        }
        if let Ok(stream) = TcpStream::from_std(incoming.stream) {
            refuse_service(
                registry,
                Stream::Plain(stream),
                address,
                protocol,
                (&service_name, &client_name),
                &unavailable,
            )
            .await;
        }
    }
}

/// Why a client was refused.
#[derive(Debug, thiserror::Error)]
enum ClientRefusal {
    /// Its credentials.
    #[error(transparent)]
    Auth(#[from] AuthFailure),
    /// The port requires a client certificate and it has none (from the client CA).
    #[error("no client certificate from the client CA")]
    CertificateRequired,
    /// The verification task failed.
    #[error("credentials could not be checked")]
    Internal,
}

/// A client's permissions: `None` on a service without security; an error when it may not in.
async fn authenticate_client(
    stream: &Stream,
    options: &ConnectOptions,
    service: &str,
    security: &SecurityState,
    registry: &ServiceRegistry,
) -> Result<Option<Arc<Grant>>, ClientRefusal> {
    let names = match &security.port_tls {
        Some(port) => port.client_names(&stream.peer_certificates()),
        None => Vec::new(),
    };
    if security
        .port_tls
        .as_ref()
        .is_some_and(|port| port.require_client_certificate)
        && names.is_empty()
    {
        return Err(ClientRefusal::CertificateRequired);
    }
    let Some(users) = security.service(service) else {
        return Ok(None);
    };
    let credentials = Credentials::from_connect(options, names);
    if credentials.is_empty() {
        // Nothing to verify: no need to wait for a verification slot.
        return users
            .authenticate(&credentials)
            .map(Some)
            .map_err(Into::into);
    }
    let _slot = registry
        .verifications
        .acquire()
        .await
        .map_err(|_| ClientRefusal::Internal)?;
    tokio::task::spawn_blocking(move || users.authenticate(&credentials))
        .await
        .map_err(|_| ClientRefusal::Internal)?
        .map(Some)
        .map_err(Into::into)
}

/// Checks a mesh peer: its certificate (mesh TLS), and its proof of the mesh secret (a
/// challenge–response, `crate::mesh::auth`). Returns whether the ACK has been sent (it carries
/// the challenge).
async fn authenticate_peer(
    stream: &mut Stream,
    decoder: &mut FrameDecoder,
    hello: &PeerHello,
    service: &str,
    security: &SecurityState,
    registry: &ServiceRegistry,
) -> Result<bool, String> {
    let context = &registry.context;
    if !security.mesh_authenticated() {
        return Ok(false);
    }
    // A link from this gateway to itself: the service answers and closes it.
    if hello.gateway_id.as_deref() == Some(context.gateway_id.as_str()) {
        return Ok(false);
    }
    if security.mesh_tls {
        let member = security
            .port_tls
            .as_ref()
            .is_some_and(|port| port.is_mesh_member(&stream.peer_certificates()));
        if !member {
            return Err("no certificate from the mesh CA".into());
        }
    }
    let Some(secret) = &security.mesh_secret else {
        return Ok(false);
    };
    let dialler_id = hello
        .gateway_id
        .as_deref()
        .ok_or("no gateway_id (an MM/1 peer cannot authenticate)")?;
    let dialler_nonce = hello
        .mesh_auth
        .as_ref()
        .and_then(|auth| auth.nonce.as_deref())
        .filter(|nonce| nonce.len() == NONCE_BYTES)
        .ok_or("no auth_nonce: the peer has no mesh secret configured")?;
    let acceptor_nonce = nonce();
    let transcript = Transcript {
        service,
        dialler_id,
        acceptor_id: &context.gateway_id,
        dialler_nonce,
        acceptor_nonce: &acceptor_nonce,
    };
    let mut ack = context.ack_info(true);
    ack.mesh_auth = Some(MeshAuthFields {
        nonce: Some(acceptor_nonce.clone()),
        proof: Some(secret.proof(Side::Acceptor, &transcript)),
    });
    stream
        .write_all(&encoded(&Header::new(Action::Ack), &ack.mesh_message()))
        .await
        .map_err(|error| format!("cannot send the challenge: {error}"))?;
    let answer = read_frame(stream, decoder)
        .await
        .map_err(|error| format!("no answer to the challenge: {error}"))?;
    if answer.action() != Some(Action::ConnectMeshPeer) {
        return Err("the answer to the challenge is not CONNECT_MESH_PEER".into());
    }
    let proof = answer
        .message()
        .ok()
        .and_then(|body| MeshAuthFields::from_message(&body))
        .and_then(|auth| auth.proof)
        .ok_or("the answer carries no auth_proof")?;
    if !secret.verify(Side::Dialler, &transcript, &proof) {
        return Err("wrong proof of the mesh secret".into());
    }
    Ok(true)
}

/// Logs (within the warning budget) and answers SERVICE_REFUSED.
async fn refuse_service(
    registry: &ServiceRegistry,
    stream: Stream,
    address: SocketAddr,
    protocol: Protocol,
    (service_name, client_name): (&str, &str),
    unavailable: &ServiceUnavailable,
) {
    if registry.warning_allowed() {
        warn!(%address, service = %service_name, "{unavailable}: refusing connection");
    }
    registry.advise_refused(
        service_name,
        RefusedConnect {
            name: client_name.to_owned(),
            address,
            code: ErrorCode::ServiceRefused,
            text: unavailable.to_string(),
        },
    );
    record_refusal(registry, address, service_name, &unavailable.to_string());
    refuse(
        stream,
        protocol,
        ErrorCode::ServiceRefused,
        service_name.as_bytes(),
        &unavailable.to_string(),
    )
    .await;
}

/// Counts a refused connection and keeps it in the refusals log (for monitoring).
fn record_refusal(registry: &ServiceRegistry, address: SocketAddr, service: &str, why: &str) {
    let context = &registry.context;
    context.refused_connections.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut refusals) = context.refusals.lock() {
        refusals.record(
            crate::events::EventKind::Refused,
            Some(service),
            address.to_string(),
            why.to_owned(),
        );
    }
}
