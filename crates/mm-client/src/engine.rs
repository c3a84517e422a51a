//! The engine: one thread per connection, running a private current-thread tokio runtime, that
//! owns the socket.
//!
//! A session (one TCP connection to a gateway) runs three futures in one task, and ends when the
//! first of them does:
//!
//! 1. **read** — reads at least [`READ_CHUNK`] bytes at a time and handles each frame in place: a
//!    message for a callback subscription is checked against its pending limit, validated (not
//!    decoded) and recorded by position, and the whole read goes to the dispatch thread as one
//!    shared buffer; a request's reply completes its waiter at once; a stream's message goes to
//!    its stream; PING is answered, PONG completes a flush, ERROR and undecodable bodies go to the
//!    hook. It never waits for the application.
//! 2. **write** — takes everything publishers queued in the shared output buffer (one swap) and
//!    writes it; sleeps until the buffer goes from empty to non-empty. On close it writes what is
//!    left, then DISCONNECT.
//! 3. **heartbeat** — PINGs when nothing was sent for our interval, and declares the gateway dead
//!    when nothing arrived for twice its interval (SPEC §7.3).
//!
//! When a session is lost the engine fails requests in flight, keeps buffered publishes for
//! replay, and redials with backoff and jitter; after the new ACK it renews every subscription and
//! replays. Reading and writing run concurrently (two halves of the socket), so a large write
//! never stops the engine from reading — which matters when the gateway pauses a publisher that
//! is also a subscriber.
//!
//! The engine has its own thread rather than being a task on the application's runtime so that
//! the blocking API needs no runtime at all, and the async API works on any tokio runtime (the
//! two meet only through `std` locks and runtime-agnostic `tokio::sync` primitives).

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use mm_wire::handshake::{AckInfo, ConnectOptions, Protocol};
use mm_wire::{
    Action, DEFAULT_MAX_FRAME, DecodeError, FrameDecoder, Header, HeaderView, Message,
    encode_control_frame, encode_frame, encode_frame_with_body, frame_length,
    patch_subscription_id,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::advisory::{self, Dropped, MESSAGES_DROPPED};
use crate::dispatch::{Admit, DispatchBatch, QueuedMessage, SubscriptionEntry};
use crate::error::{ConnectError, InvalidUtf8};
use crate::notification::Notification;
use crate::outbound::LinkState;
use crate::params::{ConnectionParams, DispatchMode};
use crate::received::{FrameParts, Received};
use crate::requests::{INBOX_SUBSCRIPTION_ID, Outcome};
use crate::shared::{Shared, log};
use crate::status::{Counters, GatewayInfo};

/// The least free space offered to each `read`: large reads mean few syscalls under load.
pub(crate) const READ_CHUNK: usize = 128 * 1024;

/// A spare write buffer that grew beyond this is replaced by a small one after use, so that one
/// burst does not pin memory forever.
const SPARE_KEEP_BYTES: usize = 16 * 1024 * 1024;

/// Below this many queued bytes, the writer yields its CPU once before taking them (see
/// `write_loop`).
const SMALL_BATCH_BYTES: usize = 16 * 1024;

/// The shortest heartbeat check period.
const MIN_HEARTBEAT_CHECK: Duration = Duration::from_millis(10);

/// Where the first connection attempt's result goes.
pub(crate) enum Ready {
    /// A blocking `connect` waiting in `recv`.
    Blocking(std::sync::mpsc::SyncSender<Result<(), ConnectError>>),
    /// An async `connect`.
    Async(oneshot::Sender<Result<(), ConnectError>>),
}

impl Ready {
    fn send(self, result: Result<(), ConnectError>) {
        match self {
            Ready::Blocking(sender) => {
                let _ = sender.send(result);
            }
            Ready::Async(sender) => {
                let _ = sender.send(result);
            }
        }
    }
}

/// Creates the shared state and starts the engine (and, in callback mode, the dispatch thread).
/// The first connection's outcome is sent to `ready`.
pub(crate) fn start(params: ConnectionParams, ready: Ready) -> Result<Arc<Shared>, ConnectError> {
    let dispatch_thread = params.dispatch_mode == DispatchMode::Callbacks;
    let shared = Arc::new(Shared::new(params)?);
    let engine_shared = shared.clone();
    std::thread::Builder::new()
        .name("mm-engine".into())
        .spawn(move || {
            let shared = engine_shared;
            let _ = shared.engine_thread.set(std::thread::current().id());
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(run(&shared, ready)),
                Err(error) => {
                    ready.send(Err(ConnectError::Thread(error)));
                    shared.finish();
                }
            }
        })
        .map_err(ConnectError::Thread)?;
    if dispatch_thread {
        let dispatch_shared = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("mm-dispatch".into())
            .spawn(move || {
                let shared = dispatch_shared;
                shared.dispatch.run(&|panicked| shared.on_panic(panicked));
            });
        if let Err(error) = spawned {
            shared.request_close();
            return Err(ConnectError::Thread(error));
        }
    }
    Ok(shared)
}

/// The socket of a session: plain TCP, or TLS over it. Under TLS the socket is read through a
/// 64 KiB buffer: rustls asks for 4 KiB at a time, which read straight from the socket would cost
/// a syscall each.
enum SessionStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::io::BufReader<TcpStream>>>),
}

impl SessionStream {
    async fn read_buf(&mut self, buffer: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            SessionStream::Plain(stream) => stream.read_buf(buffer).await,
            SessionStream::Tls(stream) => stream.read_buf(buffer).await,
        }
    }

    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            SessionStream::Plain(stream) => stream.write_all(bytes).await,
            SessionStream::Tls(stream) => {
                stream.write_all(bytes).await?;
                stream.flush().await
            }
        }
    }
}

/// A TCP connection that completed the handshake.
struct Session {
    stream: SessionStream,
    /// Holds any bytes that arrived right behind the ACK.
    decoder: FrameDecoder,
    /// The MM/2 ACK body; `None` for an MM/1 gateway (empty ACK).
    ack: Option<AckInfo>,
    address: SocketAddr,
}

/// How a session ended.
enum SessionEnd {
    /// Closed by the application: output written, DISCONNECT sent.
    Closed,
    /// The gateway was lost, for this reason.
    Lost(SessionLost),
}

/// Why a session with the gateway ended without the application closing it. Its text is the
/// `reason` of [`Notification::Disconnected`].
#[derive(Debug, thiserror::Error)]
enum SessionLost {
    /// The gateway closed the connection (EOF).
    #[error("the gateway closed the connection")]
    ClosedByGateway,
    /// Reading the socket failed.
    #[error("read failed: {0}")]
    Read(std::io::Error),
    /// Writing the socket failed.
    #[error("write failed: {0}")]
    Write(std::io::Error),
    /// The gateway sent bytes that are not a frame: the stream cannot be read any further.
    #[error("the gateway sent a malformed frame: {0}")]
    MalformedFrame(DecodeError),
    /// Nothing arrived for twice the gateway's heartbeat interval (SPEC §7.3).
    #[error("nothing received from the gateway for {silent:?} (its heartbeat is {heartbeat:?})")]
    GatewaySilent {
        /// How long nothing arrived.
        silent: Duration,
        /// The gateway's heartbeat interval.
        heartbeat: Duration,
    },
}

/// The engine's life: connect, run sessions, reconnect, finish.
async fn run(shared: &Arc<Shared>, ready: Ready) {
    let mut session = match dial(shared).await {
        Ok(session) => session,
        Err(error) => {
            ready.send(Err(error));
            shared.finish();
            return;
        }
    };
    let (address, protocol, _, _) = activate(shared, &session);
    log!(shared, Info, "connected to {address} ({protocol})");
    shared
        .notifier
        .notify(Notification::Connected { address, protocol });
    ready.send(Ok(()));
    loop {
        match run_session(shared, session).await {
            SessionEnd::Closed => break,
            SessionEnd::Lost(reason) => {
                let reconnect = shared.params.reconnect.enabled && !shared.is_closing();
                shared.outbound.lose(if reconnect {
                    LinkState::Reconnecting
                } else {
                    LinkState::Closed
                });
                shared.requests.fail_all(|| Outcome::Disconnected);
                log!(shared, Warn, "disconnected: {reason}");
                shared.notifier.notify(Notification::Disconnected {
                    reason: reason.to_string(),
                });
                if !reconnect {
                    break;
                }
                match redial(shared).await {
                    Some(next) => {
                        session = next;
                        let (address, protocol, subscriptions, replayed_bytes) =
                            activate(shared, &session);
                        Counters::add(&shared.counters.reconnects, 1);
                        log!(
                            shared,
                            Info,
                            "reconnected to {address} ({protocol}): {subscriptions} subscriptions renewed, {replayed_bytes} bytes replayed"
                        );
                        shared.notifier.notify(Notification::Reconnected {
                            address,
                            protocol,
                            subscriptions,
                            replayed_bytes,
                        });
                    }
                    None => break,
                }
            }
        }
    }
    shared.finish();
}

/// Opens TCP and completes the handshake within the connect timeout.
async fn dial(shared: &Shared) -> Result<Session, ConnectError> {
    let params = &shared.params;
    match tokio::time::timeout(params.connect_timeout, handshake(params)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout {
            address: params.address.clone(),
            timeout: params.connect_timeout,
        }),
    }
}

/// TCP (TCP_NODELAY), CONNECT, wait for ACK (SPEC §7).
async fn handshake(params: &ConnectionParams) -> Result<Session, ConnectError> {
    let io_error = |error| ConnectError::Io {
        address: params.address.clone(),
        error,
    };
    let stream = TcpStream::connect(params.address.as_str())
        .await
        .map_err(io_error)?;
    let _ = stream.set_nodelay(true);
    let address = stream.peer_addr().map_err(io_error)?;
    let mut stream = match &params.tls {
        None => SessionStream::Plain(stream),
        Some(tls) => {
            let tls_error = |error: String| ConnectError::Tls {
                address: params.address.clone(),
                error,
            };
            let name = tls.name_for(&params.address).map_err(tls_error)?;
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector
                .connect(name, tokio::io::BufReader::with_capacity(64 * 1024, stream))
                .await
                .map_err(|error| tls_error(error.to_string()))?;
            SessionStream::Tls(Box::new(stream))
        }
    };
    let mut options = ConnectOptions::mm2(format!("rust {}", env!("CARGO_PKG_VERSION")));
    options.heartbeat_ms = i32::try_from(params.heartbeat.as_millis()).unwrap_or(i32::MAX);
    options.no_responders = true;
    if let Some((user, password)) = &params.user {
        options.user = Some(user.clone());
        options.password = Some(password.clone());
    }
    options.token = params.token.clone();
    let header = Header {
        subscription_id: 0,
        subject: params.service.as_bytes(),
        reply_subject: params.client_name.as_bytes(),
        action: Action::Connect,
    };
    let mut connect = Vec::new();
    encode_frame(&mut connect, &header, &options.to_message()).map_err(ConnectError::Encode)?;
    stream.write_all(&connect).await.map_err(io_error)?;
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
    let protocol_error = |error| ConnectError::Protocol {
        address: params.address.clone(),
        error,
    };
    loop {
        while let Some(frame) = decoder.next_frame().map_err(protocol_error)? {
            match frame.action() {
                Some(Action::Ack) => {
                    let body = frame.message().map_err(protocol_error)?;
                    let ack = AckInfo::from_message(&body);
                    // The gateway may deliver frames as large as it accepts.
                    let max_frame = ack.as_ref().map_or(DEFAULT_MAX_FRAME, |ack| ack.max_frame);
                    if max_frame > DEFAULT_MAX_FRAME {
                        let mut larger = FrameDecoder::new(max_frame);
                        larger.feed(decoder.buffer_mut());
                        decoder = larger;
                    }
                    return Ok(Session {
                        stream,
                        decoder,
                        ack,
                        address,
                    });
                }
                Some(Action::Error) => {
                    let body = frame.message().unwrap_or_default();
                    return Err(ConnectError::Refused {
                        address: params.address.clone(),
                        code: body.try_string("code").unwrap_or_default().to_owned(),
                        text: body.try_string("text").unwrap_or_default().to_owned(),
                    });
                }
                _ => {}
            }
        }
        let buffer = decoder.buffer_mut();
        buffer.reserve(READ_CHUNK);
        if stream.read_buf(buffer).await.map_err(io_error)? == 0 {
            return Err(ConnectError::ClosedDuringHandshake {
                address: params.address.clone(),
            });
        }
    }
}

/// After an ACK: records the gateway, renews the inbox and every subscription ahead of the
/// buffered publishes, and opens the output. Returns (address, protocol, subscriptions renewed,
/// bytes replayed).
fn activate(shared: &Shared, session: &Session) -> (SocketAddr, Protocol, usize, usize) {
    let (protocol, name, max_frame, heartbeat) = match &session.ack {
        Some(ack) => (
            Protocol::Mm2,
            ack.gateway_name.clone(),
            ack.max_frame,
            Duration::from_millis(ack.heartbeat_ms.max(0) as u64),
        ),
        None => (
            Protocol::Mm1,
            String::new(),
            DEFAULT_MAX_FRAME,
            Duration::ZERO,
        ),
    };
    *shared.gateway() = Some(GatewayInfo {
        address: session.address,
        protocol,
        name,
        max_frame,
        heartbeat,
    });
    // Under security the gateway assigns the inbox prefix (docs/security.md).
    shared.requests.set_assigned_prefix(
        session
            .ack
            .as_ref()
            .and_then(|ack| ack.inbox_prefix.as_deref()),
    );
    let inbox = shared.requests.pattern();
    let mut renewed = 0;
    // A second handle on the socket, for direct writes by publishing threads (see outbound.rs);
    // none under TLS, where every byte goes through the session.
    let direct = match &session.stream {
        SessionStream::Plain(stream) => stream
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(std::net::TcpStream::from),
        SessionStream::Tls(_) => None,
    };
    let replayed = shared.outbound.open(max_frame, direct, |buffer| {
        let mut subscribe = |id: u32, pattern: &str| {
            let header = Header::new(Action::Subscribe)
                .with_subscription_id(id)
                .with_subject(pattern);
            // Cannot fail: a control frame with a validated pattern of at most 255 bytes.
            let _ = encode_control_frame(buffer, &header);
        };
        subscribe(INBOX_SUBSCRIPTION_ID, &inbox);
        let table = shared.subscriptions.lock();
        let mut entries: Vec<&Arc<SubscriptionEntry>> = table.values().collect();
        entries.sort_by_key(|entry| entry.id);
        for entry in entries {
            subscribe(entry.id, &entry.pattern);
            renewed += 1;
        }
        renewed as u64 + 1
    });
    (session.address, protocol, renewed, replayed)
}

/// Redials with backoff and jitter until it works, the policy gives up, or the application
/// closes. `None` means: finish.
async fn redial(shared: &Arc<Shared>) -> Option<Session> {
    let policy = shared.params.reconnect.clone();
    let mut attempt = 0u32;
    loop {
        if shared.is_closing() {
            return None;
        }
        if policy.max_attempts.is_some_and(|max| attempt >= max) {
            log!(shared, Warn, "giving up after {attempt} reconnect attempts");
            return None;
        }
        let base = policy.delay(attempt);
        let jitter = base.mul_f64(policy.jitter.clamp(0.0, 1.0) * rand::random::<f64>());
        let delay = base + jitter;
        attempt += 1;
        shared
            .notifier
            .notify(Notification::Reconnecting { attempt, delay });
        log!(shared, Debug, "reconnect attempt {attempt} in {delay:?}");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shared.close_requested.notified() => return None,
        }
        if shared.is_closing() {
            return None;
        }
        let result = tokio::select! {
            result = dial(shared) => result,
            _ = shared.close_requested.notified() => return None,
        };
        match result {
            Ok(session) => return Some(session),
            Err(error) => {
                log!(shared, Debug, "reconnect attempt {attempt} failed: {error}");
                shared.notifier.notify(Notification::ReconnectFailed {
                    attempt,
                    error: error.to_string(),
                });
            }
        }
    }
}

/// Runs one session until it is lost or closed.
async fn run_session(shared: &Arc<Shared>, session: Session) -> SessionEnd {
    let Session {
        stream,
        decoder,
        ack,
        ..
    } = session;
    let (gateway_heartbeat, own_heartbeat) = match &ack {
        Some(ack) => (
            Duration::from_millis(ack.heartbeat_ms.max(0) as u64),
            shared.params.heartbeat,
        ),
        // MM/1: no PINGs either way.
        None => (Duration::ZERO, Duration::ZERO),
    };
    match stream {
        SessionStream::Plain(stream) => {
            let (reader, writer) = stream.into_split();
            run_halves(
                shared,
                reader,
                writer,
                decoder,
                own_heartbeat,
                gateway_heartbeat,
            )
            .await
        }
        SessionStream::Tls(stream) => {
            let (reader, writer) = tokio::io::split(*stream);
            run_halves(
                shared,
                reader,
                writer,
                decoder,
                own_heartbeat,
                gateway_heartbeat,
            )
            .await
        }
    }
}

/// Runs a session's reading, writing and heartbeats until one of them ends it.
async fn run_halves(
    shared: &Arc<Shared>,
    reader: impl AsyncRead + Unpin,
    writer: impl AsyncWrite + Unpin,
    decoder: FrameDecoder,
    own_heartbeat: Duration,
    gateway_heartbeat: Duration,
) -> SessionEnd {
    let last_received = Cell::new(Instant::now());
    let last_sent = Cell::new(Instant::now());
    tokio::select! {
        reason = read_loop(shared, reader, decoder, &last_received) => SessionEnd::Lost(reason),
        end = write_loop(shared, writer, &last_sent) => end,
        reason = heartbeat_loop(shared, &last_received, &last_sent, own_heartbeat, gateway_heartbeat) => {
            SessionEnd::Lost(reason)
        }
    }
}

// -----------------------------------------------------------------------------------------
// Writing
// -----------------------------------------------------------------------------------------

/// Writes whatever publishers queued, one swap at a time; on close, the rest and DISCONNECT.
async fn write_loop(
    shared: &Shared,
    mut writer: impl AsyncWrite + Unpin,
    last_sent: &Cell<Instant>,
) -> SessionEnd {
    let mut spare = BytesMut::with_capacity(READ_CHUNK);
    loop {
        if shared.outbound.take(&mut spare) {
            let result = write_counted(shared, &mut writer, &spare).await;
            shared.outbound.write_finished();
            if let Err(error) = result {
                return SessionEnd::Lost(SessionLost::Write(error));
            }
            last_sent.set(Instant::now());
            spare.clear();
            if spare.capacity() > SPARE_KEEP_BYTES {
                spare = BytesMut::with_capacity(READ_CHUNK);
            }
            // Publishers are still at it but have queued little since the write began: give a
            // publisher that shares this CPU the rest of our time slice, so that the next write
            // carries more than a handful of frames. Returns at once when nobody else is runnable.
            let pending = shared.outbound.pending();
            if pending > 0 && pending < SMALL_BATCH_BYTES {
                std::thread::yield_now();
            }
            continue;
        }
        if shared.outbound.link() == LinkState::Closed {
            if shared.outbound.is_writing() {
                // A direct writer is finishing; what it leaves goes out before DISCONNECT.
                tokio::task::yield_now().await;
                continue;
            }
            let mut goodbye = Vec::new();
            let _ = encode_control_frame(&mut goodbye, &Header::new(Action::Disconnect));
            let _ = write_counted(shared, &mut writer, &goodbye).await;
            let _ = writer.shutdown().await;
            return SessionEnd::Closed;
        }
        shared.outbound.wake_engine.notified().await;
    }
}

/// Writes all of `bytes`, counting each `write` call.
async fn write_counted(
    shared: &Shared,
    writer: &mut (impl AsyncWrite + Unpin),
    mut bytes: &[u8],
) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let written = writer.write(bytes).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        Counters::add(&shared.counters.write_calls, 1);
        Counters::add(&shared.counters.bytes_written, written as u64);
        bytes = &bytes[written..];
    }
    // TLS holds what it encrypted until flushed (a plain socket has nothing to flush).
    writer.flush().await
}

// -----------------------------------------------------------------------------------------
// Heartbeats
// -----------------------------------------------------------------------------------------

/// PINGs when we have been quiet for `own`; returns (the session is lost) when the gateway has
/// been silent for twice `gateway` (SPEC §7.3). Zero intervals switch either side off.
async fn heartbeat_loop(
    shared: &Shared,
    last_received: &Cell<Instant>,
    last_sent: &Cell<Instant>,
    own: Duration,
    gateway: Duration,
) -> SessionLost {
    let Some(shortest) = [own, gateway * 2]
        .into_iter()
        .filter(|interval| !interval.is_zero())
        .min()
    else {
        return std::future::pending().await;
    };
    let mut ticker = tokio::time::interval((shortest / 4).max(MIN_HEARTBEAT_CHECK));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now = Instant::now();
        let silent = now.duration_since(last_received.get());
        if !gateway.is_zero() && silent > gateway * 2 {
            return SessionLost::GatewaySilent {
                silent,
                heartbeat: gateway,
            };
        }
        if !own.is_zero() && now.duration_since(last_sent.get()) >= own {
            let _ = shared
                .outbound
                .push_control(|out| encode_control_frame(out, &Header::new(Action::Ping)));
            // Counts as sent: the writer picks the PING up at once.
            last_sent.set(now);
        }
    }
}

// -----------------------------------------------------------------------------------------
// Reading
// -----------------------------------------------------------------------------------------

/// Reads and handles frames until the gateway goes away; returns why.
///
/// Each frame's header is parsed once, here, in the read buffer; what routing found (the
/// [`FrameParts`]) travels with the frame, so that nothing parses it again. A message for a
/// callback subscription — the bulk of the traffic — costs that parse, a body validation and a
/// few integers recording where it is; the message itself is built later by the dispatch thread,
/// from the whole read handed over as one shared buffer, so that no per-message reference count
/// is shared between the two threads. Everything else (replies, stream messages, control frames)
/// is handled after the read's callback messages have been handed over, from slices of that
/// buffer.
async fn read_loop(
    shared: &Shared,
    mut reader: impl AsyncRead + Unpin,
    mut decoder: FrameDecoder,
    last_received: &Cell<Instant>,
) -> SessionLost {
    let mut batch = Batch::default();
    let max_frame = decoder.max_frame();
    let mut buffer = std::mem::take(decoder.buffer_mut());
    loop {
        let mut offset = 0;
        loop {
            let rest = &buffer[offset..];
            match frame_length(rest, max_frame) {
                Ok(Some(length)) => {
                    let frame = &rest[..length];
                    match HeaderView::parse(frame) {
                        Ok(header) => batch.handle_in_place(shared, offset, frame, &header),
                        Err(error) => return SessionLost::MalformedFrame(error),
                    }
                    offset += length;
                }
                Ok(None) => break,
                Err(error) => return SessionLost::MalformedFrame(error),
            }
        }
        if offset > 0 {
            let chunk = buffer.split_to(offset).freeze();
            batch.deliver(shared, &chunk);
        }
        // Room for at least READ_CHUNK, or for the rest of a large frame already started.
        let wanted = buffer
            .first_chunk::<4>()
            .map_or(0, |prefix| i32::from_le_bytes(*prefix).max(0) as usize)
            .saturating_sub(buffer.len())
            .max(READ_CHUNK);
        if buffer.capacity() - buffer.len() < wanted {
            buffer.reserve(wanted);
        }
        match reader.read_buf(&mut buffer).await {
            Ok(0) => return SessionLost::ClosedByGateway,
            Ok(read) => {
                Counters::add(&shared.counters.read_calls, 1);
                Counters::add(&shared.counters.bytes_in, read as u64);
                last_received.set(Instant::now());
            }
            Err(error) => return SessionLost::Read(error),
        }
    }
}

/// A frame of the read handled after the callback messages were handed over.
struct Deferred {
    /// Where it is in the read's buffer.
    offset: usize,
    length: usize,
    /// Its header, as found by the one parse.
    parts: FrameParts,
}

/// The frames of one read, delivered together: one dispatch-queue lock per read, not per
/// message.
#[derive(Default)]
struct Batch {
    /// For callbacks, through the dispatch queue: positions in the read's buffer.
    queued: DispatchBatch,
    /// Frames handled once the read's buffer is shared.
    deferred: Vec<Deferred>,
    /// For async streams.
    streamed: Vec<QueuedMessage>,
    /// The last subscription looked up (consecutive messages are often for the same one).
    last: Option<Arc<SubscriptionEntry>>,
    /// The last subject found to be UTF-8.
    last_valid_subject: Vec<u8>,
    /// Frames handled since the last delivery (added to the shared counter once per batch).
    frames: u64,
}

impl Batch {
    /// Handles one frame at `offset` in the read buffer: messages for callback subscriptions
    /// right here, the rest later (see [`read_loop`]).
    fn handle_in_place(
        &mut self,
        shared: &Shared,
        offset: usize,
        frame: &[u8],
        header: &HeaderView<'_>,
    ) {
        self.frames += 1;
        let parts = FrameParts::of(frame, header);
        if header.action() == Some(Action::SendMessage)
            && header.subscription_id != INBOX_SUBSCRIPTION_ID
            && self.select(shared, header.subscription_id)
            && self.last.as_ref().is_some_and(|entry| entry.is_callback())
        {
            self.queue_for_callback(shared, offset, frame, header, parts);
        } else {
            self.deferred.push(Deferred {
                offset,
                length: frame.len(),
                parts,
            });
        }
    }

    /// A message for the callback subscription in `last`: admitted against its pending limit,
    /// checked (subjects UTF-8, body decodes), and recorded by position.
    fn queue_for_callback(
        &mut self,
        shared: &Shared,
        offset: usize,
        frame: &[u8],
        header: &HeaderView<'_>,
        parts: FrameParts,
    ) {
        let utf8 = self.subjects_are_utf8(header.subject, header.reply_subject);
        let Some(entry) = &self.last else {
            return;
        };
        let size = frame.len();
        let limits = &shared.params.pending_limits;
        if let Admit::Dropped { report, dropped } =
            entry.admit(size, limits, self.queued.admitted_for(entry))
        {
            report_dropped(shared, entry, report, dropped);
            return;
        }
        if !utf8 {
            let error = invalid_utf8(header.subject, header.reply_subject);
            report_invalid_utf8(shared, header.subscription_id, error);
            return;
        }
        match header.validate_body(frame) {
            Ok(()) => self.queued.push(entry, offset, size, parts),
            Err(error) => report_undecodable(shared, header, error),
        }
    }

    /// Handles one frame from the gateway that was not handled in place.
    fn handle(&mut self, shared: &Shared, frame: Bytes, parts: FrameParts) {
        match parts.action(&frame) {
            Some(Action::SendMessage) => self.on_message(shared, frame, parts),
            Some(Action::Ping) => {
                let body = parts.body(&frame);
                let _ = shared.outbound.push_control(|out| {
                    encode_frame_with_body(out, &Header::new(Action::Pong), &body)
                });
            }
            Some(Action::Pong) => {
                let body = Message::decode(&parts.body(&frame));
                if let Some(number) = body.ok().and_then(|body| body.try_u64("k")) {
                    shared.requests.complete_pong(number);
                }
            }
            Some(Action::Error) => on_error(shared, &frame, parts),
            Some(Action::NoResponders) => {
                if let Some(number) = shared.requests.reply_number(parts.subject(&frame)) {
                    shared
                        .requests
                        .complete_reply(number, Outcome::NoResponders);
                }
            }
            other => {
                log!(
                    shared,
                    Debug,
                    "ignored a frame with action {}",
                    other.map_or_else(|| parts.action_byte(&frame).to_string(), |a| a.to_string())
                );
            }
        }
    }

    /// A message not handled in place: a request's reply, or one for an async stream.
    fn on_message(&mut self, shared: &Shared, frame: Bytes, parts: FrameParts) {
        let header = parts.header(&frame);
        let subscription_id = header.subscription_id;
        let utf8 = self.check_utf8(header.subject, header.reply_subject);
        if subscription_id == INBOX_SUBSCRIPTION_ID {
            Self::on_reply(shared, frame, parts, utf8);
            return;
        }
        if !self.select(shared, subscription_id) {
            // Unsubscribed meanwhile: the gateway had already sent it.
            return;
        }
        let Some(entry) = &self.last else {
            return;
        };
        let size = frame.len();
        if let Admit::Dropped { report, dropped } =
            entry.admit(size, &shared.params.pending_limits, (0, 0))
        {
            report_dropped(shared, entry, report, dropped);
            return;
        }
        match utf8.map(|()| header.validate_body(&frame)) {
            Ok(Ok(())) => {
                entry.add_pending(1, size);
                self.streamed
                    .push((entry.clone(), Received::new(frame, parts)));
            }
            Ok(Err(error)) => report_undecodable(shared, &header, error),
            Err(error) => report_invalid_utf8(shared, subscription_id, error),
        }
    }

    /// A message on the request inbox: completes the request it answers.
    fn on_reply(shared: &Shared, frame: Bytes, parts: FrameParts, utf8: Result<(), InvalidUtf8>) {
        let header = parts.header(&frame);
        let Some(number) = shared.requests.reply_number(header.subject) else {
            match utf8 {
                Err(error) => report_invalid_utf8(shared, header.subscription_id, error),
                Ok(()) => log!(
                    shared,
                    Debug,
                    "dropped an inbox message that answers no request"
                ),
            }
            return;
        };
        let outcome = match utf8 {
            Err(error) => {
                report_invalid_utf8(shared, header.subscription_id, error.clone());
                Outcome::InvalidUtf8(error)
            }
            Ok(()) => match Message::decode(&parts.body(&frame)) {
                Ok(message) => Outcome::Reply(Received::with_message(frame, parts, message)),
                Err(error) => {
                    // The same error, with its offset counted from the start of the frame.
                    let error = header.validate_body(&frame).err().unwrap_or(error);
                    report_undecodable(shared, &header, error);
                    Outcome::Undecodable(error)
                }
            },
        };
        if !shared.requests.complete_reply(number, outcome) {
            log!(
                shared,
                Debug,
                "dropped a reply nobody waits for (number {number})"
            );
        }
    }

    /// Checks that a frame's subject and reply subject are UTF-8.
    #[inline]
    fn check_utf8(&mut self, subject: &[u8], reply: &[u8]) -> Result<(), InvalidUtf8> {
        if self.subjects_are_utf8(subject, reply) {
            Ok(())
        } else {
            Err(invalid_utf8(subject, reply))
        }
    }

    /// Whether a frame's subject and reply subject are UTF-8. Consecutive messages usually
    /// share a subject: the last one found valid is remembered and compared first.
    #[inline]
    fn subjects_are_utf8(&mut self, subject: &[u8], reply: &[u8]) -> bool {
        if self.last_valid_subject.as_slice() != subject {
            if std::str::from_utf8(subject).is_err() {
                return false;
            }
            self.last_valid_subject.clear();
            self.last_valid_subject.extend_from_slice(subject);
        }
        reply.is_empty() || std::str::from_utf8(reply).is_ok()
    }

    /// Makes `last` the live subscription with this id; false if there is none.
    #[inline]
    fn select(&mut self, shared: &Shared, id: u32) -> bool {
        if let Some(last) = &self.last
            && last.id == id
            && last.is_active()
        {
            return true;
        }
        self.last = shared.subscriptions.lock().get(&id).cloned();
        self.last.is_some()
    }

    /// Hands the read's callback messages to the dispatch queue, then handles the deferred
    /// frames and feeds the streams. `chunk` is the read's buffer.
    fn deliver(&mut self, shared: &Shared, chunk: &Bytes) {
        if self.frames > 0 {
            Counters::add(&shared.counters.frames_in, std::mem::take(&mut self.frames));
        }
        if !self.queued.is_empty() {
            self.queued.set_chunk(chunk.clone());
            shared.dispatch.push_batch(&mut self.queued);
        }
        let mut deferred = std::mem::take(&mut self.deferred);
        for frame in deferred.drain(..) {
            let bytes = chunk.slice(frame.offset..frame.offset + frame.length);
            self.handle(shared, bytes, frame.parts);
        }
        self.deferred = deferred;
        for (entry, received) in self.streamed.drain(..) {
            entry.send_to_stream(received);
        }
        // Do not keep a subscription alive between reads.
        self.last = None;
    }
}

/// A message dropped at `entry`'s pending limit: counted; the first drop of an overflow is also
/// logged, handed to the hook and advised to the connection's own subscriptions.
#[cold]
fn report_dropped(shared: &Shared, entry: &SubscriptionEntry, report: bool, dropped: u64) {
    note_dropped(shared, entry, report, dropped);
    if report {
        deliver_messages_dropped(shared, entry, dropped);
    }
}

/// Counts a dropped message; the first drop of an overflow is logged and handed to the hook
/// (later ones are only counted).
#[cold]
fn note_dropped(shared: &Shared, entry: &SubscriptionEntry, report: bool, dropped: u64) {
    Counters::add(&shared.counters.messages_dropped, 1);
    if !report {
        return;
    }
    let limits = &shared.params.pending_limits;
    log!(
        shared,
        Warn,
        "subscription {} (`{}`) passed its pending limit ({} messages or {} bytes); dropping messages",
        entry.id,
        entry.pattern,
        limits.messages,
        limits.bytes
    );
    shared.notifier.notify(Notification::MessagesDropped {
        subscription_id: entry.id,
        pattern: entry.pattern.clone(),
        dropped,
    });
}

/// The [`MESSAGES_DROPPED`] advisory for `entry`'s overflow, delivered (within the connection's
/// advisory rate) to the connection's other subscriptions whose pattern matches it, each against
/// its own pending limit. Never sent to the gateway; a drop here is counted, not advised again.
#[cold]
fn deliver_messages_dropped(shared: &Shared, entry: &SubscriptionEntry, dropped: u64) {
    let targets: Vec<Arc<SubscriptionEntry>> = shared
        .subscriptions
        .lock()
        .values()
        .filter(|target| {
            target.id != entry.id
                && target.is_active()
                && mm_wire::subject::matches(&target.pattern, MESSAGES_DROPPED)
        })
        .cloned()
        .collect();
    if targets.is_empty() {
        return;
    }
    let Some(suppressed) = shared.advisories.take(Instant::now()) else {
        return;
    };
    let body = advisory::messages_dropped(&Dropped {
        service: &shared.params.service,
        client_name: &shared.params.client_name,
        subscription_id: entry.id,
        pattern: &entry.pattern,
        dropped,
        limits: &shared.params.pending_limits,
        suppressed,
    });
    let mut frame = Vec::new();
    if encode_frame(&mut frame, &Header::send_message(MESSAGES_DROPPED), &body).is_err() {
        return;
    }
    for target in targets {
        let mut copy = frame.clone();
        patch_subscription_id(&mut copy, target.id);
        let bytes = Bytes::from(copy);
        let Ok(header) = HeaderView::parse(&bytes) else {
            continue;
        };
        let parts = FrameParts::of(&bytes, &header);
        let size = bytes.len();
        if let Admit::Dropped { report, dropped } =
            target.admit(size, &shared.params.pending_limits, (0, 0))
        {
            note_dropped(shared, &target, report, dropped);
            continue;
        }
        if target.is_callback() {
            let mut batch = DispatchBatch::default();
            batch.push(&target, 0, size, parts);
            batch.set_chunk(bytes);
            shared.dispatch.push_batch(&mut batch);
        } else {
            target.add_pending(1, size);
            target.send_to_stream(Received::new(bytes, parts));
        }
    }
}

/// An ERROR from the gateway: logged and handed to the hook.
fn on_error(shared: &Shared, frame: &Bytes, parts: FrameParts) {
    let body = Message::decode(&parts.body(frame)).unwrap_or_default();
    let code = body.try_string("code").unwrap_or_default().to_owned();
    let text = body.try_string("text").unwrap_or_default().to_owned();
    let subject = String::from_utf8_lossy(parts.subject(frame)).into_owned();
    let subscription_id = parts.subscription_id(frame);
    log!(
        shared,
        Warn,
        "gateway error {code}: {text} (subject `{subject}`, subscription {subscription_id})"
    );
    shared.notifier.notify(Notification::GatewayError {
        code,
        text,
        subject,
        subscription_id,
    });
}

/// Which of a frame's subjects is not UTF-8 (one of them is not).
#[cold]
fn invalid_utf8(subject: &[u8], reply: &[u8]) -> InvalidUtf8 {
    match InvalidUtf8::check_subject(subject) {
        Err(error) => error,
        Ok(()) => {
            InvalidUtf8::check_reply_subject(reply)
                .err()
                .unwrap_or(InvalidUtf8::ReplySubject {
                    lossy: String::from_utf8_lossy(reply).into_owned(),
                    valid_up_to: reply.len(),
                })
        }
    }
}

/// A delivered message whose body does not decode: counted, logged, handed to the hook.
#[cold]
fn report_undecodable(shared: &Shared, header: &HeaderView<'_>, error: DecodeError) {
    Counters::add(&shared.counters.undecodable_messages, 1);
    let subject = String::from_utf8_lossy(header.subject).into_owned();
    log!(
        shared,
        Warn,
        "dropped an undecodable message on `{subject}`: {error}"
    );
    shared.notifier.notify(Notification::UndecodableMessage {
        subject,
        subscription_id: header.subscription_id,
        error,
    });
}

/// A delivered message whose subject or reply subject is not UTF-8: counted (as undecodable),
/// logged, handed to the hook.
#[cold]
fn report_invalid_utf8(shared: &Shared, subscription_id: u32, error: InvalidUtf8) {
    Counters::add(&shared.counters.undecodable_messages, 1);
    log!(
        shared,
        Warn,
        "dropped a message for subscription {subscription_id}: {error}"
    );
    shared.notifier.notify(Notification::InvalidUtf8 {
        subscription_id,
        error,
    });
}
