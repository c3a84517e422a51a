//! A blocking client that speaks raw frames: for protocol conformance tests and for playing an
//! MM/1 client from the first implementation.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mm_wire::handshake::{AckInfo, ConnectOptions};
use mm_wire::{Action, DEFAULT_MAX_FRAME, Frame, FrameDecoder, Header, Message, encode_frame};

use crate::PATIENCE;

/// How long [`RawClient::stats`] waits before asking again a gateway that rate-limited it.
const STATS_RETRY: Duration = Duration::from_millis(300);

/// How a [`RawClient`] connects.
#[derive(Debug, Clone)]
pub struct RawClientOptions {
    /// Service name (CONNECT subject).
    pub service: String,
    /// Client name (CONNECT reply subject).
    pub name: String,
    /// CONNECT body; an empty one (the default for [`RawClientOptions::mm1`]) means MM/1.
    pub options: ConnectOptions,
    /// Wait for the ACK before returning.
    pub wait_for_ack: bool,
}

impl RawClientOptions {
    /// An MM/2 client that wants NO_RESPONDERS and sends no heartbeats.
    pub fn mm2(service: &str) -> Self {
        let mut options = ConnectOptions::mm2("raw-test 0");
        options.no_responders = true;
        RawClientOptions {
            service: service.to_owned(),
            name: "raw".to_owned(),
            options,
            wait_for_ack: true,
        }
    }

    /// An MM/1 client: empty CONNECT body.
    pub fn mm1(service: &str) -> Self {
        RawClientOptions {
            service: service.to_owned(),
            name: "legacy".to_owned(),
            options: ConnectOptions::default(),
            wait_for_ack: true,
        }
    }
}

/// What [`RawClient::recv_event`] got.
#[derive(Debug)]
pub enum Received {
    /// A frame.
    Frame(Frame),
    /// Nothing within the timeout.
    Timeout,
    /// The gateway closed the connection (or it failed).
    Closed,
}

/// The socket of a [`RawClient`]: plain TCP, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Transport {
    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(stream) => stream,
            Transport::Tls(stream) => &stream.sock,
        }
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> std::io::Result<()> {
        self.socket().set_read_timeout(timeout)
    }

    fn shutdown(&self, how: Shutdown) -> std::io::Result<()> {
        self.socket().shutdown(how)
    }

    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buffer),
            Transport::Tls(stream) => stream.read(buffer),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.write_all(bytes),
            Transport::Tls(stream) => {
                stream.write_all(bytes)?;
                stream.flush()
            }
        }
    }
}

/// A connection that sends and receives whole frames.
pub struct RawClient {
    stream: Transport,
    decoder: FrameDecoder,
    /// Frames received while waiting for something else (a PONG, say), in order.
    backlog: VecDeque<Frame>,
    /// The ACK's body (`None` until received, or for an MM/1 ACK).
    ack: Option<AckInfo>,
    ping_counter: i32,
    inbox_counter: u64,
}

impl RawClient {
    /// Opens TCP (no CONNECT sent).
    pub fn open(address: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(address).expect("connect to gateway");
        stream.set_nodelay(true).expect("nodelay");
        RawClient::over(Transport::Plain(stream))
    }

    /// Opens TCP and completes a TLS handshake with `config` (no CONNECT sent); the error is the
    /// TLS handshake's.
    pub fn open_tls(
        address: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> std::io::Result<RawClient> {
        let stream = TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a DNS name");
        let connection = rustls::ClientConnection::new(config, name)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidInput, error))?;
        let mut tls = rustls::StreamOwned::new(connection, stream);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).map(|_| ())?;
        }
        Ok(RawClient::over(Transport::Tls(Box::new(tls))))
    }

    /// [`RawClient::connect`] over TLS; the error is the TLS handshake's.
    pub fn connect_tls(
        address: SocketAddr,
        config: std::sync::Arc<rustls::ClientConfig>,
        options: RawClientOptions,
    ) -> std::io::Result<RawClient> {
        let mut client = RawClient::open_tls(address, config)?;
        client.handshake(options);
        Ok(client)
    }

    fn over(stream: Transport) -> RawClient {
        RawClient {
            stream,
            decoder: FrameDecoder::new(DEFAULT_MAX_FRAME),
            backlog: VecDeque::new(),
            ack: None,
            ping_counter: 0,
            inbox_counter: 0,
        }
    }

    /// Connects and completes the handshake.
    pub fn connect(address: SocketAddr, options: RawClientOptions) -> RawClient {
        let mut client = RawClient::open(address);
        client.handshake(options);
        client
    }

    /// Sends CONNECT and (if asked) waits for the ACK.
    fn handshake(&mut self, options: RawClientOptions) {
        let client = self;
        let header = Header {
            subscription_id: 0,
            subject: options.service.as_bytes(),
            reply_subject: options.name.as_bytes(),
            action: Action::Connect,
        };
        client.send(&header, &options.options.to_message());
        if options.wait_for_ack {
            let ack = client.expect_action(Action::Ack);
            client.ack = AckInfo::from_message(&ack.message().expect("ACK body decodes"));
        }
    }

    /// An MM/2 client of `service`.
    pub fn mm2(address: SocketAddr, service: &str) -> RawClient {
        RawClient::connect(address, RawClientOptions::mm2(service))
    }

    /// An MM/1 client of `service`.
    pub fn mm1(address: SocketAddr, service: &str) -> RawClient {
        RawClient::connect(address, RawClientOptions::mm1(service))
    }

    /// The MM/2 ACK info, if the gateway sent one.
    pub fn ack(&self) -> Option<&AckInfo> {
        self.ack.as_ref()
    }

    /// The socket (for tests that need raw access; under TLS, the TCP socket).
    pub fn stream(&self) -> &TcpStream {
        self.stream.socket()
    }

    /// Sends one frame.
    pub fn send(&mut self, header: &Header<'_>, message: &Message) {
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, header, message).expect("encode");
        self.send_bytes(&bytes);
    }

    /// Sends raw bytes.
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to gateway");
    }

    /// Tries to send raw bytes (the gateway may have closed the connection).
    pub fn try_send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// SUBSCRIBE.
    pub fn subscribe(&mut self, id: u32, pattern: &str) {
        let header = Header::new(Action::Subscribe)
            .with_subscription_id(id)
            .with_subject(pattern);
        self.send(&header, &Message::new());
    }

    /// UNSUBSCRIBE by id (empty subject, as MM/1 clients send it).
    pub fn unsubscribe(&mut self, id: u32) {
        self.send(
            &Header::new(Action::Unsubscribe).with_subscription_id(id),
            &Message::new(),
        );
    }

    /// SEND_MESSAGE.
    pub fn publish(&mut self, subject: &str, reply_subject: &str, message: &Message) {
        let header = Header::send_message(subject).with_reply_subject(reply_subject);
        self.send(&header, message);
    }

    /// DISCONNECT.
    pub fn disconnect(&mut self) {
        self.send(&Header::new(Action::Disconnect), &Message::new());
    }

    /// Half-closes the socket (no more sends).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// A mesh peer (as another gateway dials): CONNECT_MESH_PEER with `hello` as its body (an
    /// empty one means MM/1, as the first implementation's gateways send it), then its ACK.
    pub fn mesh_peer(address: SocketAddr, service: &str, name: &str, hello: &Message) -> RawClient {
        let mut client = RawClient::open(address);
        let header = Header {
            subscription_id: 0,
            subject: service.as_bytes(),
            reply_subject: name.as_bytes(),
            action: Action::ConnectMeshPeer,
        };
        client.send(&header, hello);
        let ack = client.expect_action(Action::Ack);
        client.ack = AckInfo::from_message(&ack.message().expect("ACK body decodes"));
        client
    }

    /// [`RawClient::flush`] that gives up after `timeout`: true if the PONG came. Frames that
    /// arrive before it stay queued for [`RawClient::recv`].
    pub fn try_flush(&mut self, timeout: Duration) -> bool {
        self.try_flush_with(Message::new(), timeout)
    }

    /// [`RawClient::mesh_flush`] that gives up after `timeout`: true if the PONG came.
    pub fn try_mesh_flush(&mut self, timeout: Duration) -> bool {
        self.try_flush_with(Message::new().add_bool("mesh", true), timeout)
    }

    fn try_flush_with(&mut self, mut body: Message, timeout: Duration) -> bool {
        self.ping_counter += 1;
        let token = self.ping_counter;
        body.push("k", token);
        let mut bytes = Vec::new();
        encode_frame(&mut bytes, &Header::new(Action::Ping), &body).expect("encode");
        if self.try_send_bytes(&bytes).is_err() {
            return false;
        }
        let deadline = Instant::now() + timeout;
        let mut held = VecDeque::new();
        let answered = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.read_event(remaining) {
                Received::Frame(frame) => {
                    if frame.action() == Some(Action::Pong)
                        && frame.message().ok().and_then(|m| m.try_i32("k")) == Some(token)
                    {
                        break true;
                    }
                    held.push_back(frame);
                }
                Received::Timeout | Received::Closed => break false,
            }
        };
        self.backlog.extend(held);
        answered
    }

    /// The next frame, a timeout, or the end of the connection — told apart, unlike
    /// [`RawClient::recv`].
    pub fn recv_event(&mut self, timeout: Duration) -> Received {
        if let Some(frame) = self.backlog.pop_front() {
            return Received::Frame(frame);
        }
        self.read_event(timeout)
    }

    /// MM/2 flush: PING, then wait for its PONG. Frames that arrive before it stay queued for
    /// [`RawClient::recv`], in order.
    pub fn flush(&mut self) {
        self.flush_with(Message::new())
    }

    /// Mesh-wide flush: PING with `mesh` = true.
    pub fn mesh_flush(&mut self) {
        self.flush_with(Message::new().add_bool("mesh", true))
    }

    fn flush_with(&mut self, mut body: Message) {
        self.ping_counter += 1;
        let token = self.ping_counter;
        body.push("k", token);
        self.send(&Header::new(Action::Ping), &body);
        let deadline = Instant::now() + PATIENCE;
        let mut held = VecDeque::new();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let frame = self
                .read_frame(remaining)
                .unwrap_or_else(|| panic!("no PONG for flush {token}"));
            if frame.action() == Some(Action::Pong)
                && frame.message().ok().and_then(|m| m.try_i32("k")) == Some(token)
            {
                break;
            }
            held.push_back(frame);
        }
        self.backlog.extend(held);
    }

    /// The next frame, or `None` after `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Option<Frame> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        self.read_frame(timeout)
    }

    /// The next frame, which must arrive within [`PATIENCE`].
    pub fn expect_frame(&mut self) -> Frame {
        self.recv(PATIENCE)
            .expect("a frame within the patience timeout")
    }

    /// The next frame, which must have `action` (heartbeat PINGs are answered and skipped).
    pub fn expect_action(&mut self, action: Action) -> Frame {
        loop {
            let frame = self.expect_frame();
            if frame.action() == Some(Action::Ping) && action != Action::Ping {
                continue;
            }
            assert_eq!(
                frame.action(),
                Some(action),
                "expected {action}, got {frame:?}"
            );
            return frame;
        }
    }

    /// Asserts that nothing (other than heartbeats) arrives before a flush completes: the
    /// gateway processed everything we sent and had nothing for us.
    pub fn assert_nothing_pending(&mut self) {
        self.flush();
        while let Some(frame) = self.backlog.pop_front() {
            assert_eq!(
                frame.action(),
                Some(Action::Ping),
                "unexpected frame {frame:?}"
            );
        }
    }

    /// Reads until EOF or error within `timeout`; returns whether the gateway closed the
    /// connection, and the frames that arrived before.
    pub fn wait_closed(&mut self, timeout: Duration) -> (bool, Vec<Frame>) {
        let deadline = Instant::now() + timeout;
        let mut frames: Vec<Frame> = self.backlog.drain(..).collect();
        loop {
            while let Ok(Some(frame)) = self.decoder.next_frame() {
                frames.push(frame);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return (false, frames);
            }
            self.stream
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut buffer = [0u8; 65536];
            match self.stream.read(&mut buffer) {
                Ok(0) => return (true, frames),
                Ok(read) => self.decoder.feed(&buffer[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (true, frames),
            }
        }
    }

    fn read_event(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Received::Frame(frame),
                Ok(None) => {}
                Err(error) => panic!("gateway sent a bad frame: {error}"),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Received::Timeout;
            }
            if self
                .stream
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
                .is_err()
            {
                return Received::Closed;
            }
            let mut buffer = [0u8; 65536];
            match self.stream.read(&mut buffer) {
                Ok(0) => return Received::Closed,
                Ok(read) => self.decoder.feed(&buffer[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Received::Timeout;
                }
                Err(_) => return Received::Closed,
            }
        }
    }

    fn read_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.decoder.next_frame() {
                Ok(Some(frame)) => return Some(frame),
                Ok(None) => {}
                Err(error) => panic!("gateway sent a bad frame: {error}"),
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
                .expect("timeout");
            let mut buffer = [0u8; 65536];
            match self.stream.read(&mut buffer) {
                Ok(0) => return None,
                Ok(read) => self.decoder.feed(&buffer[..read]),
                Err(error)
                    if matches!(
                        error.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// A fresh inbox subject for requests: under the inbox prefix the gateway assigned, if it
    /// did (security on), else under a made-up one.
    pub fn new_inbox(&mut self) -> String {
        self.inbox_counter += 1;
        if let Some(prefix) = self
            .ack
            .as_ref()
            .and_then(|ack| ack.inbox_prefix.as_deref())
        {
            return format!("{prefix}.{}", self.inbox_counter);
        }
        format!(
            "_INBOX.rawtest{:016x}.{}",
            std::process::id() as u64,
            self.inbox_counter
        )
    }

    /// `_MM.STATS`, computed after this call began: everything this test did before is in it.
    /// (A service reuses an answer for up to 250 ms, so this asks until the gateway's `uptime_ms`
    /// in the answer moves past the first answer's: that one was computed after the first request
    /// was answered.)
    pub fn stats(&mut self, reply_id: u32) -> Message {
        let first = self.stats_once(reply_id);
        let first_computed = first.get_u64("uptime_ms").expect("uptime_ms");
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let next = self.stats_once(reply_id);
            if next.get_u64("uptime_ms").expect("uptime_ms") > first_computed {
                return next;
            }
        }
    }

    /// Sends `_MM.STATS` and returns the answer, which may be up to 250 ms old. Subscribes
    /// `reply_id` to a fresh inbox first. A gateway that rate-limits `_MM.STATS` (ERROR
    /// `RATE_LIMITED`) is asked again a little later, within [`PATIENCE`].
    pub fn stats_once(&mut self, reply_id: u32) -> Message {
        self.try_stats(reply_id, PATIENCE)
            .expect("a _MM.STATS answer within the patience timeout")
    }

    /// [`RawClient::stats_once`] that gives up after `timeout` (or when the connection closes).
    pub fn try_stats(&mut self, reply_id: u32, timeout: Duration) -> Option<Message> {
        let deadline = Instant::now() + timeout;
        let inbox = self.new_inbox();
        self.subscribe(reply_id, &inbox);
        let mut held = Vec::new();
        let mut answer = None;
        'ask: while Instant::now() < deadline {
            self.publish("_MM.STATS", &inbox, &Message::new());
            loop {
                let remaining = deadline.saturating_duration_since(Instant::now());
                let frame = match self.read_event(remaining) {
                    Received::Frame(frame) => frame,
                    Received::Timeout | Received::Closed => break 'ask,
                };
                match frame.action() {
                    Some(Action::SendMessage) if frame.subject() == inbox.as_bytes() => {
                        answer = frame.message().ok();
                        break 'ask;
                    }
                    Some(Action::Error)
                        if frame.subject() == b"_MM.STATS"
                            && frame.message().ok().and_then(|m| {
                                m.try_string("code").map(|code| code == "RATE_LIMITED")
                            }) == Some(true) =>
                    {
                        std::thread::sleep(STATS_RETRY);
                        continue 'ask;
                    }
                    Some(Action::Ping) => {}
                    _ => held.push(frame),
                }
            }
        }
        self.backlog.extend(held);
        self.unsubscribe(reply_id);
        answer
    }
}
