//! An in-process harness: a real [`Service`] on the test's own thread, its connections over
//! loopback socket pairs, and the far ends of those sockets in the test's hands as [`TestPeer`]s.
//! No binary is spawned; a test can look inside the service between events.
//!
//! Tests run on a current-thread runtime inside a `LocalSet` (the service's tasks are local), so
//! everything the test awaits lets the service's tasks run: [`run`] sets that up.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use mm_wire::handshake::{AckInfo, ConnectOptions, PeerHello};
use mm_wire::{Action, Frame, FrameDecoder, Header, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::GatewayConfig;
use crate::connection::ConnectionKey;
use crate::context::GatewayContext;
use crate::service::{Incoming, Service};
pub(crate) use crate::test_io::{frame, run, socket_pair};

/// How long a test waits for something that should happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// The service name every harness uses.
pub(crate) const SERVICE: &str = "TEST";

/// A service under test.
pub(crate) struct TestService {
    /// The service, as its tasks share it.
    pub(crate) service: Rc<RefCell<Service>>,
    tasks: TaskTracker,
    cancel: CancellationToken,
}

impl TestService {
    /// A service named [`SERVICE`] with `config` (its mesh diallers started).
    pub(crate) fn start(config: GatewayConfig) -> TestService {
        let context = Arc::new(GatewayContext::new(
            config,
            SocketAddr::from(([127, 0, 0, 1], 1)),
        ));
        let tasks = TaskTracker::new();
        let cancel = CancellationToken::new();
        let service = Service::new(
            SERVICE.into(),
            context,
            tasks.clone(),
            cancel.clone(),
            Default::default(),
        );
        service.borrow_mut().start_mesh();
        TestService {
            service,
            tasks,
            cancel,
        }
    }

    /// Attaches a connection whose first frame is `first` and returns its key and the test's end
    /// (the ACK not yet read). `gateway_send_buffer` sets the gateway end's SO_SNDBUF.
    pub(crate) async fn attach(
        &self,
        first: &[u8],
        gateway_send_buffer: Option<usize>,
    ) -> (ConnectionKey, TestPeer) {
        let (gateway_end, test_end) = socket_pair().await;
        if let Some(size) = gateway_send_buffer {
            socket2::SockRef::from(&gateway_end)
                .set_send_buffer_size(size)
                .expect("SO_SNDBUF");
        }
        let address = gateway_end.peer_addr().expect("address");
        let first_frame = Frame::parse(bytes::Bytes::copy_from_slice(first)).expect("a frame");
        let body = first_frame.message().expect("a body");
        let incoming = Incoming {
            stream: gateway_end.into_std().expect("std socket"),
            tls: None,
            address,
            first_frame,
            body,
            leftover: BytesMut::new(),
            grant: None,
            mesh_ack_sent: false,
        };
        let key = self
            .service
            .borrow_mut()
            .attach(incoming)
            .expect("attached");
        (key, TestPeer::new(test_end))
    }

    /// An MM/2 client, its ACK read.
    pub(crate) async fn client(&self, name: &str) -> (ConnectionKey, TestPeer) {
        self.client_with(name, None).await
    }

    /// An MM/2 client whose gateway end has a small send buffer (so its output queues up in the
    /// gateway as soon as the test stops reading).
    pub(crate) async fn client_with(
        &self,
        name: &str,
        gateway_send_buffer: Option<usize>,
    ) -> (ConnectionKey, TestPeer) {
        let options = ConnectOptions {
            protocol_version: Some(mm_wire::handshake::PROTOCOL_VERSION),
            client_name: Some("harness".into()),
            heartbeat_ms: 0,
            no_responders: true,
            ..ConnectOptions::default()
        };
        let connect = frame(
            &Header {
                subscription_id: 0,
                subject: SERVICE.as_bytes(),
                reply_subject: name.as_bytes(),
                action: Action::Connect,
            },
            &options.to_message(),
        );
        let (key, mut peer) = self.attach(&connect, gateway_send_buffer).await;
        peer.expect(Action::Ack).await;
        (key, peer)
    }

    /// A peer gateway that dialled this one (its ACK read).
    pub(crate) async fn accepted_link(&self, peer_id: &str) -> (ConnectionKey, TestPeer) {
        let hello = PeerHello {
            protocol_version: Some(mm_wire::handshake::PROTOCOL_VERSION),
            gateway_name: "peer".into(),
            gateway_id: Some(peer_id.into()),
            heartbeat_ms: 0,
            mesh_auth: None,
        };
        let connect = frame(
            &Header {
                subscription_id: 0,
                subject: SERVICE.as_bytes(),
                reply_subject: b"peer",
                action: Action::ConnectMeshPeer,
            },
            &hello.to_message(),
        );
        let (key, mut peer) = self.attach(&connect, None).await;
        peer.expect(Action::Ack).await;
        (key, peer)
    }

    /// Waits until `condition` holds for the service, or panics after [`PATIENCE`].
    pub(crate) async fn wait_until(&self, what: &str, condition: impl Fn(&Service) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !condition(&self.service.borrow()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting until {what}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Closes everything and waits for the service's tasks.
    pub(crate) async fn stop(self) {
        self.cancel.cancel();
        self.service.borrow_mut().close_all();
        self.tasks.close();
        let _ = tokio::time::timeout(PATIENCE, self.tasks.wait()).await;
    }
}

/// A fake peer gateway listening for this service's diallers.
pub(crate) struct FakePeerListener {
    listener: TcpListener,
}

impl FakePeerListener {
    /// Listens on an ephemeral loopback port.
    pub(crate) async fn bind() -> FakePeerListener {
        FakePeerListener {
            listener: TcpListener::bind("127.0.0.1:0").await.expect("bind"),
        }
    }

    /// `host:port` to put in the mesh configuration.
    pub(crate) fn address(&self) -> String {
        self.listener.local_addr().expect("address").to_string()
    }

    /// Accepts the service's dial, reads its CONNECT_MESH_PEER and answers an MM/2 ACK with
    /// `peer_id`: the link is up.
    pub(crate) async fn accept(&self, peer_id: &str) -> TestPeer {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("the service dials within the patience")
            .expect("accept");
        stream.set_nodelay(true).expect("nodelay");
        let mut peer = TestPeer::new(stream);
        let hello = peer.next_frame().await;
        assert_eq!(hello.action(), Some(Action::ConnectMeshPeer));
        let ack = AckInfo {
            protocol_version: mm_wire::handshake::PROTOCOL_VERSION,
            gateway_name: "fake-peer".into(),
            gateway_id: Some(peer_id.into()),
            max_frame: mm_wire::DEFAULT_MAX_FRAME,
            heartbeat_ms: 0,
            inbox_prefix: None,
            mesh_auth: None,
        };
        peer.send(&Header::new(Action::Ack), &ack.mesh_message())
            .await;
        peer
    }
}

/// The test's end of a connection.
pub(crate) struct TestPeer {
    stream: TcpStream,
    decoder: FrameDecoder,
}

impl TestPeer {
    fn new(stream: TcpStream) -> TestPeer {
        TestPeer {
            stream,
            decoder: FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME),
        }
    }

    /// Sends one frame.
    pub(crate) async fn send(&mut self, header: &Header<'_>, message: &Message) {
        self.send_bytes(&frame(header, message)).await;
    }

    /// Sends raw bytes.
    pub(crate) async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next frame, or None if none arrives within `within` (or the connection ended).
    pub(crate) async fn try_next_frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = self.decoder.next_frame().expect("valid frames") {
                return Some(frame);
            }
            let buffer = self.decoder.buffer_mut();
            buffer.reserve(64 * 1024);
            match tokio::time::timeout_at(deadline, self.stream.read_buf(buffer)).await {
                Ok(Ok(0)) | Err(_) => return None,
                Ok(Ok(_)) => {}
                Ok(Err(error)) => panic!("read failed: {error}"),
            }
        }
    }

    /// The next frame; panics if none arrives within [`PATIENCE`].
    pub(crate) async fn next_frame(&mut self) -> Frame {
        self.try_next_frame(PATIENCE)
            .await
            .expect("a frame within the patience")
    }

    /// The next frame, which must have `action`.
    pub(crate) async fn expect(&mut self, action: Action) -> Frame {
        let frame = self.next_frame().await;
        assert_eq!(frame.action(), Some(action), "unexpected frame {frame:?}");
        frame
    }

    /// Reads until the connection ends; panics if it does not within [`PATIENCE`].
    pub(crate) async fn expect_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut discard = vec![0u8; 64 * 1024];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut discard)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
                Err(_) => panic!("the connection was not closed"),
            }
        }
    }
}
