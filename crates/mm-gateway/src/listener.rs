//! The acceptor: takes TCP connections, reads each one's first frame (CONNECT or
//! CONNECT_MESH_PEER), and hands the connection to its service's thread.
//!
//! The acceptor runs on the main runtime, one small task per connection still in its handshake.
//! It decodes only what it must: the first frame and its body. Whatever arrived behind that frame
//! travels with the socket to the service, which processes it in order before reading anything
//! else, so frames pipelined right behind CONNECT are never lost.
//!
//! Services are created on demand (unless the configuration restricts them) and each gets its own
//! thread: see [`crate::service`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mm_wire::handshake::{ConnectOptions, ErrorCode, PeerHello, Protocol};
use mm_wire::subject::validate_service_name_bytes;
use mm_wire::{Action, Frame, FrameDecoder, Header, encode_frame};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::context::GatewayContext;
use crate::service::{self, Incoming, ServiceCommand, ServiceHandle};
use crate::socket::send_and_close;

/// Pause after a failed `accept` (typically: out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(100);

/// The services of this gateway, by name.
pub(crate) struct ServiceRegistry {
    context: Arc<GatewayContext>,
    /// Locked only by the acceptor when a CONNECT names a service, and at shutdown — never on the
    /// routing path.
    services: Mutex<HashMap<String, ServiceHandle>>,
    /// Cancelled at shutdown; every service runs under a child of it.
    shutdown: CancellationToken,
}

/// Why a service cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceUnavailable {
    /// The configuration does not allow it.
    #[error("this gateway does not serve that service")]
    Refused,
    /// Its thread or event loop could not be started.
    #[error("cannot start the service: {0}")]
    CannotStart(#[source] std::io::Error),
    /// The registry's lock was poisoned by a panic elsewhere.
    #[error("the service registry is unusable after an internal error")]
    Poisoned,
}

impl ServiceRegistry {
    pub(crate) fn new(context: Arc<GatewayContext>, shutdown: CancellationToken) -> Self {
        ServiceRegistry {
            context,
            services: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// The command channel of `name`, starting the service if needed.
    pub(crate) fn service(
        &self,
        name: &str,
    ) -> Result<mpsc::Sender<ServiceCommand>, ServiceUnavailable> {
        if !self.context.config.allows_service(name) {
            return Err(ServiceUnavailable::Refused);
        }
        let mut services = self
            .services
            .lock()
            .map_err(|_| ServiceUnavailable::Poisoned)?;
        if let Some(handle) = services.get(name) {
            return Ok(handle.commands.clone());
        }
        let handle = service::start(name, self.context.clone(), self.shutdown.child_token())
            .map_err(ServiceUnavailable::CannotStart)?;
        let commands = handle.commands.clone();
        services.insert(name.to_owned(), handle);
        Ok(commands)
    }

    /// Stops every service (cancels the shutdown token) and waits for their threads.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        let handles: Vec<ServiceHandle> = match self.services.lock() {
            Ok(mut services) => services.drain().map(|(_, handle)| handle).collect(),
            Err(_) => Vec::new(),
        };
        for mut handle in handles {
            if let Some(thread) = handle.thread.take() {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}

/// Accepts connections until `shutdown` is cancelled; handshakes still in progress then end.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    registry: Arc<ServiceRegistry>,
    shutdown: CancellationToken,
) {
    let handshakes = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, address)) => {
                    let registry = registry.clone();
                    let shutdown = shutdown.clone();
                    handshakes.spawn(async move {
                        shutdown.run_until_cancelled(handshake(stream, address, registry)).await;
                    });
                }
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                }
            },
            _ = shutdown.cancelled() => break,
        }
    }
    handshakes.close();
    handshakes.wait().await;
}

/// Reads the first frame and hands the connection to its service.
async fn handshake(stream: TcpStream, address: SocketAddr, registry: Arc<ServiceRegistry>) {
    let config = &registry.context.config;
    if let Err(error) = stream.set_nodelay(true) {
        debug!(%address, %error, "cannot set TCP_NODELAY");
    }
    let mut decoder = FrameDecoder::new(config.max_frame);
    let first =
        match tokio::time::timeout(config.handshake_timeout, read_frame(&stream, &mut decoder))
            .await
        {
            Err(_) => {
                info!(%address, "no CONNECT within the handshake timeout: closing");
                return;
            }
            Ok(Err(reason)) => {
                info!(%address, "closing before CONNECT: {reason}");
                return;
            }
            Ok(Ok(frame)) => frame,
        };
    let action = first.action();
    if !matches!(action, Some(Action::Connect | Action::ConnectMeshPeer)) {
        warn!(
            %address,
            action = first.header().action_byte,
            "frame before CONNECT: closing"
        );
        return;
    }
    let body = match first.message() {
        Ok(body) => body,
        Err(error) => {
            warn!(%address, %error, "undecodable CONNECT body: closing");
            return;
        }
    };
    let protocol = if action == Some(Action::Connect) {
        ConnectOptions::from_message(&body).0.protocol()
    } else {
        PeerHello::from_message(&body).protocol()
    };
    let service_name = first.subject();
    if let Err(error) = validate_service_name_bytes(service_name) {
        warn!(%address, service = %String::from_utf8_lossy(service_name), %error, "invalid service name: closing");
        refuse(
            &stream,
            protocol,
            ErrorCode::InvalidSubject,
            service_name,
            &format!("service name: {error}"),
        )
        .await;
        return;
    }
    // Validated above: a service name is UTF-8.
    let service_name = String::from_utf8_lossy(service_name).into_owned();
    let commands = match registry.service(&service_name) {
        Ok(commands) => commands,
        Err(unavailable) => {
            let text = unavailable.to_string();
            warn!(%address, service = %service_name, "{text}: refusing connection");
            refuse(
                &stream,
                protocol,
                ErrorCode::ServiceRefused,
                service_name.as_bytes(),
                &text,
            )
            .await;
            return;
        }
    };
    let leftover = decoder.buffer_mut().split();
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(error) => {
            warn!(%address, %error, "cannot hand the connection over");
            return;
        }
    };
    let incoming = Incoming {
        stream,
        address,
        first_frame: first,
        body,
        leftover,
    };
    if commands
        .send(ServiceCommand::Attach(Box::new(incoming)))
        .await
        .is_err()
    {
        warn!(%address, service = %service_name, "service stopped: connection dropped");
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
    /// The bytes are not a valid frame.
    #[error("malformed first frame: {0}")]
    Malformed(#[from] mm_wire::DecodeError),
}

/// Reads until one whole frame is decoded.
async fn read_frame(
    stream: &TcpStream,
    decoder: &mut FrameDecoder,
) -> Result<Frame, HandshakeError> {
    loop {
        if let Some(frame) = decoder.next_frame()? {
            return Ok(frame);
        }
        stream.readable().await?;
        let buffer = decoder.buffer_mut();
        buffer.reserve(4096);
        match stream.try_read_buf(buffer) {
            Ok(0) => return Err(HandshakeError::PeerClosed),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.into()),
        }
    }
}

/// Sends an ERROR to an MM/2 peer (best effort), then lets the socket close. MM/1 peers are just
/// closed.
async fn refuse(
    stream: &TcpStream,
    protocol: Protocol,
    code: ErrorCode,
    subject: &[u8],
    text: &str,
) {
    if protocol == Protocol::Mm1 {
        return;
    }
    let mut frame = Vec::new();
    let header = Header {
        subscription_id: 0,
        subject,
        reply_subject: &[],
        action: Action::Error,
    };
    if encode_frame(&mut frame, &header, &code.message(text)).is_err() {
        return;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), send_and_close(stream, &frame)).await;
}
