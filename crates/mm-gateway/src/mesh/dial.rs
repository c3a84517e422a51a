//! Dialling a mesh peer: TCP connect, CONNECT_MESH_PEER, wait for the ACK. The I/O half of a
//! dialler; the state (when to dial, what the result means) is in [`Mesh`](super::Mesh).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use mm_wire::handshake::{AckInfo, PeerHello};
use mm_wire::{Action, DecodeError, EncodeError, FrameDecoder, Header, encode_frame};
use tokio::net::TcpStream;

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
}

/// A link that completed its handshake.
#[derive(Debug)]
pub(crate) struct Dialled {
    /// The socket.
    pub(crate) stream: TcpStream,
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
}

/// TCP connect, CONNECT_MESH_PEER, wait for ACK.
pub(crate) async fn dial(request: &DialRequest) -> Result<Dialled, LinkError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&request.address))
        .await
        .map_err(|_| LinkError::ConnectTimeout)?
        .map_err(LinkError::Connect)?;
    stream.set_nodelay(true).map_err(LinkError::Io)?;
    let peer_address = stream.peer_addr().map_err(LinkError::Io)?;
    let mut hello_frame = Vec::new();
    let header = Header {
        subscription_id: 0,
        subject: request.service.as_bytes(),
        reply_subject: request.hello.gateway_name.as_bytes(),
        action: Action::ConnectMeshPeer,
    };
    encode_frame(&mut hello_frame, &header, &request.hello.to_message())
        .map_err(LinkError::Encode)?;
    write_all(&stream, &hello_frame).await?;
    let mut decoder = FrameDecoder::new(request.max_frame);
    let ack = tokio::time::timeout(request.handshake_timeout, read_ack(&stream, &mut decoder))
        .await
        .map_err(|_| LinkError::HandshakeTimeout)??;
    let leftover = decoder.buffer_mut().split();
    Ok(Dialled {
        stream,
        peer_address,
        ack,
        leftover,
    })
}

/// Reads frames until the ACK (skipping anything else).
async fn read_ack(
    stream: &TcpStream,
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
                stream.readable().await.map_err(LinkError::Io)?;
                let buffer = decoder.buffer_mut();
                buffer.reserve(4096);
                match stream.try_read_buf(buffer) {
                    Ok(0) => return Err(LinkError::ClosedBeforeAck),
                    Ok(_) => {}
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(error) => return Err(LinkError::Io(error)),
                }
            }
        }
    }
}

/// Writes all of `bytes` to a non-blocking stream.
async fn write_all(stream: &TcpStream, bytes: &[u8]) -> Result<(), LinkError> {
    let mut written = 0;
    while written < bytes.len() {
        stream.writable().await.map_err(LinkError::Io)?;
        match stream.try_write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(LinkError::Io(error)),
        }
    }
    Ok(())
}
