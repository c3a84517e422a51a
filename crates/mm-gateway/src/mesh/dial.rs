//! Dialling a mesh peer: TCP connect (and TLS with the mesh CA, when configured),
//! CONNECT_MESH_PEER, wait for the ACK — and with a mesh secret, check the peer's proof and send
//! ours (`super::auth`). The I/O half of a dialler; the state (when to dial, what the result
//! means) is in [`Mesh`](super::Mesh).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mm_wire::handshake::{AckInfo, MeshAuthFields, PeerHello};
use mm_wire::{Action, DecodeError, EncodeError, FrameDecoder, Header, Message, encode_frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::auth::{MeshSecret, Side, Transcript, nonce};
use crate::tls::DialTls;

/// How long a TCP connect to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a dial or its handshake failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LinkError {
    /// The TCP connect did not complete in time.
    #[error("connect timed out")]
    ConnectTimeout,
    /// The TCP connect failed (refused, unreachable, name not resolved).
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    /// Reading or writing the socket failed during the handshake.
    #[error("socket error during the handshake: {0}")]
    Io(#[source] std::io::Error),
    /// Our CONNECT_MESH_PEER could not be encoded (a gateway name longer than a frame allows).
    #[error("cannot encode CONNECT_MESH_PEER: {0}")]
    Encode(#[source] EncodeError),
    /// The peer sent bytes that are not a valid frame.
    #[error("malformed frame from the peer: {0}")]
    Malformed(#[source] DecodeError),
    /// The peer answered ERROR.
    #[error("the peer refused the link: {0}")]
    Refused(String),
    /// The peer closed the connection before its ACK.
    #[error("the peer closed the link before ACK")]
    ClosedBeforeAck,
    /// No ACK in time.
    #[error("no ACK within the handshake timeout")]
    HandshakeTimeout,
    /// The TLS handshake failed (an untrusted certificate, say).
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] std::io::Error),
    /// The peer did not prove that it knows the mesh secret.
    #[error("the peer failed mesh authentication: {0}")]
    Authentication(&'static str),
}

/// A link that completed its handshake.
#[derive(Debug)]
pub(crate) struct Dialled {
    /// The socket.
    pub(crate) stream: TcpStream,
    /// Its TLS session (mesh TLS).
    pub(crate) tls: Option<rustls::Connection>,
    /// The peer's address.
    pub(crate) peer_address: SocketAddr,
    /// The peer's ACK info (None for an MM/1 peer: empty ACK).
    pub(crate) ack: Option<AckInfo>,
    /// Bytes that arrived behind the ACK; processed before anything else read from the link.
    pub(crate) leftover: BytesMut,
}

/// What a dialler sends and how long it waits.
#[derive(Debug, Clone)]
pub(crate) struct DialRequest {
    /// `host:port`.
    pub(crate) address: String,
    /// The service the link is for.
    pub(crate) service: String,
    /// Our identity.
    pub(crate) hello: PeerHello,
    /// How long the peer may take to answer ACK.
    pub(crate) handshake_timeout: Duration,
    /// Largest frame accepted from the peer.
    pub(crate) max_frame: u32,
    /// Mesh TLS.
    pub(crate) tls: Option<Arc<DialTls>>,
    /// The mesh secret.
    pub(crate) secret: Option<Arc<MeshSecret>>,
}

/// A link in its handshake.
enum DialStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl DialStream {
    async fn read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            DialStream::Plain(stream) => stream.read_buf(buffer).await,
            DialStream::Tls(stream) => stream.read_buf(buffer).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let result = match self {
            DialStream::Plain(stream) => stream.write_all(bytes).await,
            DialStream::Tls(stream) => match stream.write_all(bytes).await {
                Ok(()) => stream.flush().await,
                Err(error) => Err(error),
            },
        };
        result.map_err(LinkError::Io)
    }
}

/// TCP connect (TLS), CONNECT_MESH_PEER, wait for ACK (and authenticate).
pub(crate) async fn dial(request: &DialRequest) -> Result<Dialled, LinkError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&request.address))
        .await
        .map_err(|_| LinkError::ConnectTimeout)?
        .map_err(LinkError::Connect)?;
    stream.set_nodelay(true).map_err(LinkError::Io)?;
    let peer_address = stream.peer_addr().map_err(LinkError::Io)?;
    tokio::time::timeout(
        request.handshake_timeout,
        handshake(request, stream, peer_address),
    )
    .await
    .map_err(|_| LinkError::HandshakeTimeout)?
}

async fn handshake(
    request: &DialRequest,
    stream: TcpStream,
    peer_address: SocketAddr,
) -> Result<Dialled, LinkError> {
    let mut stream = match &request.tls {
        None => DialStream::Plain(stream),
        Some(tls) => {
            let host = request
                .address
                .rsplit_once(':')
                .map_or(request.address.as_str(), |(host, _)| host);
            let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
            let stream = connector
                .connect(DialTls::server_name(host), stream)
                .await
                .map_err(LinkError::Tls)?;
            DialStream::Tls(Box::new(stream))
        }
    };
    let mut hello = request.hello.clone();
    let dialler_nonce = request.secret.as_ref().map(|_| nonce());
    if let Some(nonce) = &dialler_nonce {
        hello.mesh_auth = Some(MeshAuthFields {
            nonce: Some(nonce.clone()),
            proof: None,
        });
    }
    let header = Header {
        subscription_id: 0,
        subject: request.service.as_bytes(),
        reply_subject: request.hello.gateway_name.as_bytes(),
        action: Action::ConnectMeshPeer,
    };
    let mut hello_frame = Vec::new();
    encode_frame(&mut hello_frame, &header, &hello.to_message()).map_err(LinkError::Encode)?;
    stream.write_all(&hello_frame).await?;
    let mut decoder = FrameDecoder::new(request.max_frame);
    let ack = read_ack(&mut stream, &mut decoder).await?;
    if let (Some(secret), Some(dialler_nonce)) = (&request.secret, &dialler_nonce) {
        let own_id = request.hello.gateway_id.as_deref().unwrap_or_default();
        let ack_info = ack
            .as_ref()
            .ok_or(LinkError::Authentication("the peer speaks MM/1"))?;
        let acceptor_id = ack_info.gateway_id.as_deref().unwrap_or_default();
        // A link to ourselves is recognised by the id alone (and closed by the caller).
        if acceptor_id != own_id {
            let auth = ack_info
                .mesh_auth
                .as_ref()
                .ok_or(LinkError::Authentication(
                    "no challenge: the peer has no mesh secret",
                ))?;
            let (Some(acceptor_nonce), Some(proof)) = (&auth.nonce, &auth.proof) else {
                return Err(LinkError::Authentication("incomplete challenge"));
            };
            let transcript = Transcript {
                service: &request.service,
                dialler_id: own_id,
                acceptor_id,
                dialler_nonce,
                acceptor_nonce,
            };
            if !secret.verify(Side::Acceptor, &transcript, proof) {
                return Err(LinkError::Authentication("wrong proof of the mesh secret"));
            }
            let mut answer =
                Message::new().add_i32("protocol_version", mm_wire::handshake::PROTOCOL_VERSION);
            MeshAuthFields {
                nonce: None,
                proof: Some(secret.proof(Side::Dialler, &transcript)),
            }
            .write(&mut answer);
            let mut frame = Vec::new();
            encode_frame(&mut frame, &header, &answer).map_err(LinkError::Encode)?;
            stream.write_all(&frame).await?;
        }
    }
    let leftover = decoder.buffer_mut().split();
    let (stream, tls) = match stream {
        DialStream::Plain(stream) => (stream, None),
        DialStream::Tls(stream) => {
            let (stream, session) = stream.into_inner();
            (stream, Some(rustls::Connection::Client(session)))
        }
    };
    Ok(Dialled {
        stream,
        tls,
        peer_address,
        ack,
        leftover,
    })
}

/// Reads frames until the ACK (skipping anything else).
async fn read_ack(
    stream: &mut DialStream,
    decoder: &mut FrameDecoder,
) -> Result<Option<AckInfo>, LinkError> {
    loop {
        match decoder.next_frame().map_err(LinkError::Malformed)? {
            Some(frame) => match frame.action() {
                Some(Action::Ack) => {
                    let body = frame.message().map_err(LinkError::Malformed)?;
                    return Ok(AckInfo::from_message(&body));
                }
                Some(Action::Error) => {
                    let body = frame.message().unwrap_or_default();
                    return Err(LinkError::Refused(body.to_string()));
                }
                _ => continue,
            },
            None => {
                let buffer = decoder.buffer_mut();
                buffer.reserve(4096);
                match stream.read_buf(buffer).await {
                    Ok(0) => return Err(LinkError::ClosedBeforeAck),
                    Ok(_) => {}
                    Err(error) => return Err(LinkError::Io(error)),
                }
            }
        }
    }
}
