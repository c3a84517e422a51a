//! The service loop: one thread, one single-threaded event loop, all of a service's connections
//! and its subject index. This is the hot path.
//!
//! A batch starts when a connection's socket becomes readable. **Socket to frames**: one read goes
//! into the service's shared read buffer (an idle connection owns no read buffer; only an
//! incomplete frame is carried over in the connection). **Validate before acting**: each complete
//! frame's length is checked before anything is done with it, and its header is parsed in place —
//! the body of a SEND_MESSAGE is never decoded; a bad frame closes only its own connection, with a
//! reason. **Match and enqueue**: a publish's subject is looked up in the subject trie (cache
//! first) and the frame is appended to the output buffer of every matching subscription's
//! connection, with bytes 4..7 patched to that subscription's id — once per subscription for
//! clients, once per link for mesh peers. **Flush once per batch**: after the whole read is
//! processed, every touched connection is written once, so many frames leave in one syscall.
//! **Bounded buffers**: a connection whose queue is above 75 % of its bound pauses the publisher
//! that fed it for a few milliseconds; one past its bound is cut off as a slow consumer.
//!
//! Everything here runs on the service's thread. The state sits in an `Rc<RefCell<_>>` shared by
//! the connection tasks; a borrow lasts exactly one batch and never spans an `.await`, so there is
//! no lock on the routing path and no way for two batches to interleave.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mm_wire::handshake::{AckInfo, ConnectOptions, ErrorCode, PeerHello, Protocol};
use mm_wire::subject::{
    is_gateway_subject, validate_pattern_bytes, validate_reply_subject_bytes,
    validate_subject_bytes,
};
use mm_wire::{
    Action, DecodeError, Frame, Header, HeaderView, Message, encode_control_frame, encode_frame,
    frame_length, patch_subscription_id,
};
use slab::Slab;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tracing::{debug, info, warn};

use crate::config::GatewayConfig;
use crate::connection::{
    CloseReason, Connection, ConnectionHandle, Role, Slot, SubscriptionEntry, drive,
};
use crate::mesh::MeshState;
use crate::stats::{ConnectionStats, ServiceStats};
use crate::subject_trie::SubjectTrie;

/// Size of the shared read buffer: one read takes at most this much from a socket.
const READ_BUFFER_BYTES: usize = 128 * 1024;

/// Reads per batch while each read fills the buffer: at most 1 MiB is processed before the
/// batch's output is written, which bounds the latency a burst adds.
const MAX_READS_PER_BATCH: usize = 8;

/// A backlog this large, once drained, makes the service hand freed memory back to the system.
const RETURN_MEMORY_AFTER_BYTES: usize = 32 * 1024 * 1024;

/// "Drained": all connections together have less than this queued.
const RETURN_MEMORY_BELOW_BYTES: usize = 1024 * 1024;

/// Housekeeping rounds (250 ms each) a backlog must stay drained before memory is handed back.
const DRAINED_CHECKS_BEFORE_RETURN: u32 = 4;

/// How long a connection must have been quiet before its buffers are freed.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// How often heartbeats and idle buffers are checked.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);

/// What the whole gateway shares with its services. Read-only after start, except the id counter.
#[derive(Debug)]
pub struct GatewayContext {
    /// The configuration.
    pub config: GatewayConfig,
    /// This gateway's identity on mesh links: 32 lowercase hex characters, new at every start.
    pub gateway_id: String,
    /// The address the gateway listens on.
    pub listen_address: SocketAddr,
    /// Source of connection ids, unique across services.
    pub(crate) connection_ids: AtomicU64,
}

impl GatewayContext {
    /// A context with a fresh random `gateway_id`.
    pub fn new(config: GatewayConfig, listen_address: SocketAddr) -> Self {
        GatewayContext {
            config,
            gateway_id: format!("{:032x}", rand::random::<u128>()),
            listen_address,
            connection_ids: AtomicU64::new(1),
        }
    }
}

/// A subscription in the subject trie: which connection, and the id to stamp into delivered
/// frames (for links: the id the peer chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubscriberKey {
    /// The connection's slot. Every key of a connection is removed before its slot is freed.
    pub(crate) slot: u32,
    /// The subscription id.
    pub(crate) subscription_id: u32,
}

/// A connection handed over by the acceptor after its first frame (CONNECT or
/// CONNECT_MESH_PEER).
pub(crate) struct Incoming {
    /// The socket, detached from the acceptor's runtime.
    pub(crate) stream: std::net::TcpStream,
    /// The peer's address.
    pub(crate) address: SocketAddr,
    /// The first frame.
    pub(crate) first_frame: Frame,
    /// Its decoded body (CONNECT options or peer identity).
    pub(crate) body: Message,
    /// Bytes that arrived behind the first frame; processed in order before anything else.
    pub(crate) leftover: BytesMut,
}

/// Requests from outside the service's thread.
pub(crate) enum ServiceCommand {
    /// Take over a connection.
    Attach(Box<Incoming>),
    /// Close everything and end the thread.
    Shutdown,
}

/// How one read went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadResult {
    /// The read filled the space it was given: more is probably waiting.
    Filled,
    /// The read returned less than the space given: the socket is drained for now.
    Drained,
    /// Nothing to read.
    WouldBlock,
    /// The connection closed (end of stream, error, or a protocol error in the bytes read).
    Closed,
}

impl ReadResult {
    fn read(read: usize, space: usize) -> ReadResult {
        if read >= space {
            ReadResult::Filled
        } else {
            ReadResult::Drained
        }
    }
}

/// What a read left the connection's task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Keep reading.
    Continue,
    /// A subscriber fed by this batch is above 75 % of its bound: pause reading briefly.
    Stall,
}

/// Where a frame being routed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// A local client.
    Client(Slot),
    /// A mesh peer (goes to local clients only: no relay).
    Peer(Slot),
    /// The gateway itself (answers to `_MM.` requests): goes everywhere a client's publish would.
    Gateway,
}

/// The state of one service, owned by its thread.
pub(crate) struct ServiceState {
    /// The service name.
    pub(crate) name: String,
    /// Shared gateway context.
    pub(crate) context: Arc<GatewayContext>,
    /// Live connections (clients and links).
    pub(crate) connections: Slab<Connection>,
    /// Every subscription of every connection, by pattern.
    pub(crate) trie: SubjectTrie<SubscriberKey>,
    /// Connections with output queued during the current batch. Invariant: a slot is listed
    /// at most once, exactly when its `queued_for_flush` is true.
    flush_list: Vec<Slot>,
    /// The shared read buffer (taken out while a batch runs).
    read_buffer: Vec<u8>,
    /// Where frames the gateway builds are encoded before they are queued.
    frame_scratch: Vec<u8>,
    /// Incremented for every routed message; lets a link receive each message at most once.
    publish_sequence: u64,
    /// Whether the publisher of the current batch should pause.
    stall_publisher: bool,
    /// The connection whose read started the current batch (registered with subscribers it
    /// pushes past 75 % of their bound, which wake it when they drain).
    batch_origin: Option<Rc<ConnectionHandle>>,
    /// Counters.
    pub(crate) stats: ServiceStats,
    /// Mesh links, interest and flushes.
    pub(crate) mesh: MeshState,
    /// Connection tasks still running (they linger after close).
    running_tasks: usize,
    /// Signalled when `running_tasks` drops to zero.
    tasks_done: Rc<Notify>,
    /// Set when the service is shutting down: no new connections.
    shutting_down: bool,
    /// The most output queued at once (all connections) since memory was last handed back.
    queued_high_water: usize,
    /// Consecutive housekeeping rounds that found almost nothing queued.
    drained_checks: u32,
}

impl ServiceState {
    fn new(name: String, context: Arc<GatewayContext>) -> Self {
        let mesh = MeshState::new(context.config.mesh_for(&name));
        ServiceState {
            name,
            context,
            connections: Slab::new(),
            trie: SubjectTrie::new(),
            flush_list: Vec::new(),
            read_buffer: vec![0; READ_BUFFER_BYTES],
            frame_scratch: Vec::new(),
            publish_sequence: 0,
            stall_publisher: false,
            batch_origin: None,
            stats: ServiceStats::new(),
            mesh,
            running_tasks: 0,
            tasks_done: Rc::new(Notify::new()),
            shutting_down: false,
            queued_high_water: 0,
            drained_checks: 0,
        }
    }

    pub(crate) fn config(&self) -> &GatewayConfig {
        &self.context.config
    }

    /// The connection at `handle`'s slot, if it is still that connection.
    pub(crate) fn slot_of(&self, handle: &Rc<ConnectionHandle>) -> Option<Slot> {
        if handle.closed.get() {
            return None;
        }
        let slot = handle.slot.get();
        self.connections
            .get(slot)
            .filter(|connection| Rc::ptr_eq(&connection.handle, handle))
            .map(|_| slot)
    }

    /// Whether the connection has output waiting for the socket to become writable.
    pub(crate) fn wants_write(&self, handle: &Rc<ConnectionHandle>) -> bool {
        self.slot_of(handle)
            .is_some_and(|slot| !self.connections[slot].outbound.is_empty())
    }

    // ---------------------------------------------------------------------------------------
    // Attaching connections
    // ---------------------------------------------------------------------------------------

    /// Adds a connection and returns its slot. The caller spawns its task.
    pub(crate) fn insert_connection(
        &mut self,
        handle: Rc<ConnectionHandle>,
        address: SocketAddr,
        name: String,
        role: Role,
        protocol: Protocol,
        peer_heartbeat: Duration,
    ) -> Slot {
        let output_bound = if role.is_link() {
            self.config().link_output_bound()
        } else {
            self.config().client_output_bound()
        };
        let now = Instant::now();
        let id = self.context.connection_ids.fetch_add(1, Ordering::Relaxed);
        let slot = self.connections.insert(Connection {
            id,
            handle: handle.clone(),
            address,
            name,
            role,
            protocol,
            peer_heartbeat,
            subscriptions: Default::default(),
            subscription_sequence: 0,
            outbound: Default::default(),
            inbound_partial: BytesMut::new(),
            output_bound,
            stats: ConnectionStats::default(),
            last_received: now,
            last_sent: now,
            delivered_sequence: 0,
            queued_for_flush: false,
            stalled_publishers: Vec::new(),
            last_publish: Default::default(),
        });
        handle.slot.set(slot);
        self.stats.connections_total += 1;
        self.running_tasks += 1;
        slot
    }

    /// Attaches a connection handed over by the acceptor: answers its CONNECT (or
    /// CONNECT_MESH_PEER) with ACK, then processes the frames that arrived behind it, in order.
    fn attach(state: &Rc<RefCell<ServiceState>>, incoming: Incoming) {
        let Incoming {
            stream,
            address,
            first_frame,
            body,
            leftover,
        } = incoming;
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%address, %error, "cannot register connection with the service loop");
                return;
            }
        };
        let handle = ConnectionHandle::new(stream);
        let mut service = state.borrow_mut();
        if service.shutting_down {
            return;
        }
        let header = first_frame.header();
        let name = String::from_utf8_lossy(header.reply_subject).into_owned();
        let slot = if first_frame.action() == Some(Action::ConnectMeshPeer) {
            let hello = PeerHello::from_message(&body);
            let Some(slot) = service.attach_accepted_link(handle.clone(), address, name, &hello)
            else {
                // A link to ourselves: answered and closing.
                drop(service);
                spawn_task(state, handle);
                return;
            };
            slot
        } else {
            let (options, warning) = ConnectOptions::from_message(&body);
            if let Some(warning) = warning {
                warn!(%address, client = %name, "{warning}");
            }
            let protocol = options.protocol();
            let slot = service.insert_connection(
                handle.clone(),
                address,
                name,
                Role::Client {
                    no_responders: protocol == Protocol::Mm2 && options.no_responders,
                },
                protocol,
                Duration::from_millis(options.heartbeat_ms as u64),
            );
            let ack = match protocol {
                Protocol::Mm2 => service.ack_info(None).client_message(),
                Protocol::Mm1 => Message::new(),
            };
            service.send_frame(slot, &Header::new(Action::Ack), &ack);
            info!(
                service = %service.name,
                connection = %service.connections[slot].describe(),
                protocol = %protocol,
                client_library = options.client_name.as_deref().unwrap_or(""),
                "client connected"
            );
            slot
        };
        if !leftover.is_empty() {
            service.process_leftover(slot, leftover);
        }
        service.flush_batch();
        drop(service);
        spawn_task(state, handle);
    }

    /// Processes bytes that arrived behind a handshake frame, before the connection's task runs.
    pub(crate) fn process_leftover(&mut self, slot: Slot, leftover: BytesMut) {
        self.note_read(slot);
        self.process_bytes(slot, leftover);
    }

    /// Counts the task of a connection that was closed before it was attached (a link to
    /// ourselves), so shutdown waits for it too.
    pub(crate) fn running_tasks_for_unattached(&mut self) {
        self.running_tasks += 1;
    }

    /// The ACK body for this gateway (MM/2), with the id for mesh links.
    pub(crate) fn ack_info(&self, gateway_id: Option<&str>) -> AckInfo {
        AckInfo {
            protocol_version: mm_wire::handshake::PROTOCOL_VERSION,
            gateway_name: self.config().name.clone(),
            gateway_id: gateway_id.map(str::to_owned),
            max_frame: self.config().max_frame,
            heartbeat_ms: self.config().heartbeat.as_millis().min(i32::MAX as u128) as i32,
        }
    }

    // ---------------------------------------------------------------------------------------
    // The batch: read, process every frame, flush
    // ---------------------------------------------------------------------------------------

    /// The socket is readable: read once, process every complete frame, flush every touched
    /// connection.
    pub(crate) fn on_readable(&mut self, handle: &Rc<ConnectionHandle>) -> ReadOutcome {
        let Some(slot) = self.slot_of(handle) else {
            return ReadOutcome::Continue;
        };
        self.stall_publisher = false;
        self.batch_origin = Some(handle.clone());
        // Keep reading while reads fill the buffer (more is waiting): a bigger batch means fewer
        // writes per message to every subscriber, so fewer wakeups on both sides.
        for _ in 0..MAX_READS_PER_BATCH {
            if self.read_once(slot, handle) != ReadResult::Filled {
                break;
            }
        }
        self.flush_batch();
        self.batch_origin = None;
        if self.stall_publisher {
            ReadOutcome::Stall
        } else {
            ReadOutcome::Continue
        }
    }

    /// One read from the socket, and every complete frame it completes.
    fn read_once(&mut self, slot: Slot, handle: &Rc<ConnectionHandle>) -> ReadResult {
        let connection = &mut self.connections[slot];
        if connection.inbound_partial.is_empty() {
            // The common case: read into the shared buffer, keep only an incomplete tail.
            let mut buffer = std::mem::take(&mut self.read_buffer);
            let result = match handle.stream.try_read(&mut buffer) {
                Ok(0) => {
                    self.close(slot, CloseReason::PeerClosed);
                    ReadResult::Closed
                }
                Ok(read) => {
                    self.note_read(slot);
                    match self.process_frames(slot, &buffer[..read]) {
                        Some(consumed) => {
                            if consumed < read {
                                self.connections[slot]
                                    .inbound_partial
                                    .extend_from_slice(&buffer[consumed..read]);
                            }
                            ReadResult::read(read, buffer.len())
                        }
                        None => ReadResult::Closed,
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    ReadResult::WouldBlock
                }
                Err(error) => {
                    debug!(%error, "read failed");
                    self.close(slot, CloseReason::ReadError);
                    ReadResult::Closed
                }
            };
            self.read_buffer = buffer;
            result
        } else {
            // An incomplete frame is waiting: read into the connection's own buffer, sized for
            // the rest of that frame (bounded by max_frame, checked when the length arrived).
            let mut partial = std::mem::take(&mut connection.inbound_partial);
            let wanted = frame_length_hint(&partial).saturating_sub(partial.len());
            partial.reserve(wanted.clamp(4096, READ_BUFFER_BYTES.max(wanted)));
            let spare = partial.capacity() - partial.len();
            match handle.stream.try_read_buf(&mut partial) {
                Ok(0) => {
                    self.close(slot, CloseReason::PeerClosed);
                    ReadResult::Closed
                }
                Ok(read) => {
                    self.note_read(slot);
                    if self.process_bytes(slot, partial) {
                        ReadResult::read(read, spare)
                    } else {
                        ReadResult::Closed
                    }
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    self.connections[slot].inbound_partial = partial;
                    ReadResult::WouldBlock
                }
                Err(error) => {
                    debug!(%error, "read failed");
                    self.close(slot, CloseReason::ReadError);
                    ReadResult::Closed
                }
            }
        }
    }

    fn note_read(&mut self, slot: Slot) {
        let connection = &mut self.connections[slot];
        connection.stats.read_calls += 1;
        connection.last_received = Instant::now();
    }

    /// Processes every complete frame of `bytes` (an owned buffer) and keeps the incomplete tail
    /// in the connection. Returns false if the connection was closed.
    fn process_bytes(&mut self, slot: Slot, mut bytes: BytesMut) -> bool {
        let Some(consumed) = self.process_frames(slot, &bytes) else {
            return false;
        };
        bytes.advance_to(consumed);
        if bytes.is_empty() {
            // Do not keep a large buffer for an idle connection.
            bytes = BytesMut::new();
        }
        self.connections[slot].inbound_partial = bytes;
        true
    }

    /// Processes every complete frame at the start of `bytes`. Returns how many bytes were
    /// consumed, or `None` if the connection was closed.
    fn process_frames(&mut self, slot: Slot, bytes: &[u8]) -> Option<usize> {
        let max_frame = self.config().max_frame;
        let mut offset = 0;
        loop {
            match frame_length(&bytes[offset..], max_frame) {
                Ok(Some(length)) => {
                    let frame = &bytes[offset..offset + length];
                    offset += length;
                    if self.on_frame(slot, frame).is_err() {
                        return None;
                    }
                }
                Ok(None) => return Some(offset),
                Err(error) => {
                    self.reject_stream(slot, error);
                    return None;
                }
            }
        }
    }

    /// One frame. `Err` means the connection is now closed.
    fn on_frame(&mut self, slot: Slot, frame: &[u8]) -> Result<(), ()> {
        let header = match HeaderView::parse(frame) {
            Ok(header) => header,
            Err(error) => {
                self.reject_stream(slot, error);
                return Err(());
            }
        };
        let connection = &mut self.connections[slot];
        connection.stats.frames_in += 1;
        connection.stats.bytes_in += frame.len() as u64;
        match header.action() {
            Some(Action::SendMessage) => {
                let origin = if connection.role.is_link() {
                    Origin::Peer(slot)
                } else {
                    Origin::Client(slot)
                };
                self.on_publish(origin, frame, &header);
            }
            Some(Action::Subscribe) => self.on_subscribe(slot, &header),
            Some(Action::Unsubscribe) => self.on_unsubscribe(slot, &header),
            Some(Action::Ping) => self.on_ping(slot, frame, &header),
            Some(Action::Pong) => self.on_pong(slot, frame, &header),
            Some(Action::Disconnect) => {
                if connection.role.is_link() {
                    self.close(slot, CloseReason::PeerClosed);
                } else {
                    self.close(slot, CloseReason::Disconnect);
                }
                return Err(());
            }
            Some(Action::Connect | Action::ConnectMeshPeer) => {
                self.misuse(slot, ErrorCode::Protocol, 0, &[], "second CONNECT ignored");
            }
            Some(Action::Error) => {
                let text = Frame::parse(bytes::Bytes::copy_from_slice(frame))
                    .and_then(|frame| frame.message())
                    .map(|message| message.to_string())
                    .unwrap_or_default();
                warn!(connection = %self.connections[slot].describe(), error = %text, "peer sent ERROR");
            }
            Some(Action::Ack | Action::NoResponders | Action::None) => {}
            None => {
                debug!(
                    connection = %connection.describe(),
                    action = header.action_byte,
                    "unknown action ignored"
                );
            }
        }
        Ok(())
    }

    // ---------------------------------------------------------------------------------------
    // Publish: match and enqueue
    // ---------------------------------------------------------------------------------------

    fn on_publish(&mut self, origin: Origin, frame: &[u8], header: &HeaderView<'_>) {
        let publisher = match origin {
            Origin::Client(slot) | Origin::Peer(slot) => Some(slot),
            Origin::Gateway => None,
        };
        // Validate before acting: subject and reply subject (SPEC §6.1). The publisher's last
        // subject was valid, and is usually this one.
        let known = publisher.is_some_and(|slot| {
            self.connections[slot].last_publish.subject.as_slice() == header.subject
        });
        if !known {
            if let Err(error) = validate_subject_bytes(header.subject) {
                if let Some(slot) = publisher {
                    self.misuse(
                        slot,
                        ErrorCode::InvalidSubject,
                        0,
                        header.subject,
                        &error.to_string(),
                    );
                }
                return;
            }
        }
        if let Err(error) = validate_reply_subject_bytes(header.reply_subject) {
            if let Some(slot) = publisher {
                self.misuse(
                    slot,
                    ErrorCode::InvalidSubject,
                    0,
                    header.reply_subject,
                    &format!("reply subject: {error}"),
                );
            }
            return;
        }
        if let Origin::Client(slot) = origin {
            if is_gateway_subject(header.subject) {
                self.on_gateway_request(slot, header);
                return;
            }
        }
        self.route(origin, frame, header.subject, header.reply_subject);
    }

    /// Delivers `frame` to every matching subscription: local clients get one copy per
    /// subscription; a link gets one copy however many of its patterns match, and only for
    /// messages that did not come from a peer.
    fn route(&mut self, origin: Origin, frame: &[u8], subject: &[u8], reply_subject: &[u8]) {
        self.publish_sequence += 1;
        let sequence = self.publish_sequence;
        let from_peer = matches!(origin, Origin::Peer(_));
        let publisher = match origin {
            Origin::Client(slot) | Origin::Peer(slot) => Some(slot),
            Origin::Gateway => None,
        };
        // The matches: the publisher's remembered ones if its subject and the trie are unchanged,
        // else from the trie (and remembered). Taken out of the connection while delivering,
        // because delivering borrows the other connections.
        let mut last = publisher
            .map(|slot| std::mem::take(&mut self.connections[slot].last_publish))
            .unwrap_or_default();
        let generation = self.trie.generation();
        if last.subject.as_slice() != subject || last.generation != generation {
            last.subject.clear();
            last.subject.extend_from_slice(subject);
            last.generation = generation;
            last.matches.clear();
            last.matches.extend_from_slice(self.trie.matches(subject));
        }
        let mut delivered = false;
        for key in &last.matches {
            let slot = key.slot as usize;
            let connection = &mut self.connections[slot];
            let subscription_id = if connection.role.is_link() {
                if from_peer || connection.delivered_sequence == sequence {
                    continue;
                }
                connection.delivered_sequence = sequence;
                0
            } else {
                key.subscription_id
            };
            patch_subscription_id(connection.outbound.push(frame), subscription_id);
            connection.stats.frames_out += 1;
            connection.stats.bytes_out += frame.len() as u64;
            if !connection.queued_for_flush {
                connection.queued_for_flush = true;
                self.flush_list.push(slot);
            }
            delivered = true;
        }
        let no_match = last.matches.is_empty();
        if let Some(slot) = publisher {
            // Delivering never closes a connection (bounds are enforced at flush time).
            self.connections[slot].last_publish = last;
        }
        if !delivered {
            self.stats.unmatched_publishes += 1;
            if let Origin::Client(slot) = origin {
                if !reply_subject.is_empty() && no_match {
                    self.send_no_responders(slot, subject, reply_subject);
                }
            }
        }
    }

    /// NO_RESPONDERS (SPEC §7.4) to a client that asked for it.
    fn send_no_responders(&mut self, slot: Slot, subject: &[u8], reply_subject: &[u8]) {
        let Role::Client {
            no_responders: true,
        } = self.connections[slot].role
        else {
            return;
        };
        // The id of the requester's subscription that matches the reply subject, if any.
        let subscription_id = self
            .trie
            .matches(reply_subject)
            .iter()
            .find(|key| key.slot as usize == slot)
            .map_or(0, |key| key.subscription_id);
        let header = Header {
            subscription_id,
            subject: reply_subject,
            reply_subject: subject,
            action: Action::NoResponders,
        };
        self.send_frame(slot, &header, &Message::new());
        self.stats.no_responders_sent += 1;
    }

    // ---------------------------------------------------------------------------------------
    // Subscriptions
    // ---------------------------------------------------------------------------------------

    fn on_subscribe(&mut self, slot: Slot, header: &HeaderView<'_>) {
        let id = header.subscription_id;
        if id == 0 {
            self.misuse(
                slot,
                ErrorCode::Protocol,
                0,
                header.subject,
                "subscription id 0",
            );
            return;
        }
        if self.connections[slot].subscriptions.contains_key(&id) {
            self.misuse(
                slot,
                ErrorCode::DuplicateSubscriptionId,
                id,
                header.subject,
                &format!("subscription id {id} is already in use"),
            );
            return;
        }
        if let Err(error) = validate_pattern_bytes(header.subject) {
            self.misuse(
                slot,
                ErrorCode::InvalidSubject,
                id,
                header.subject,
                &error.to_string(),
            );
            return;
        }
        let connection = &mut self.connections[slot];
        connection.subscription_sequence += 1;
        connection.subscriptions.insert(
            id,
            SubscriptionEntry {
                pattern: header.subject.into(),
                sequence: connection.subscription_sequence,
            },
        );
        let is_client = !connection.role.is_link();
        self.trie.insert(
            header.subject,
            SubscriberKey {
                slot: slot as u32,
                subscription_id: id,
            },
        );
        if is_client {
            self.interest_added(header.subject);
        }
    }

    fn on_unsubscribe(&mut self, slot: Slot, header: &HeaderView<'_>) {
        let connection = &mut self.connections[slot];
        let id = header.subscription_id;
        let found = if connection.subscriptions.contains_key(&id) {
            Some(id)
        } else if !header.subject.is_empty() {
            // MM/1: an unknown id with a subject removes the oldest subscription with that
            // pattern (SPEC §6.2).
            connection
                .subscriptions
                .iter()
                .filter(|(_, entry)| &*entry.pattern == header.subject)
                .min_by_key(|(_, entry)| entry.sequence)
                .map(|(&id, _)| id)
        } else {
            None
        };
        match found {
            Some(id) => self.remove_subscription(slot, id),
            None => self.misuse(
                slot,
                ErrorCode::UnknownSubscriptionId,
                id,
                header.subject,
                &format!("unknown subscription id {id}"),
            ),
        }
    }

    fn remove_subscription(&mut self, slot: Slot, id: u32) {
        let connection = &mut self.connections[slot];
        let Some(entry) = connection.subscriptions.remove(&id) else {
            return;
        };
        let is_client = !connection.role.is_link();
        self.forget_subscription(slot, id, &entry.pattern, is_client);
    }

    /// Takes a removed subscription out of the trie and, for a client, out of the mesh interest.
    fn forget_subscription(&mut self, slot: Slot, id: u32, pattern: &[u8], is_client: bool) {
        self.trie.remove(
            pattern,
            SubscriberKey {
                slot: slot as u32,
                subscription_id: id,
            },
        );
        if is_client {
            self.interest_removed(pattern);
        }
    }

    // ---------------------------------------------------------------------------------------
    // PING / PONG (heartbeats and flush, SPEC §7.3, §7.5)
    // ---------------------------------------------------------------------------------------

    fn on_ping(&mut self, slot: Slot, frame: &[u8], header: &HeaderView<'_>) {
        let connection = &self.connections[slot];
        if connection.protocol == Protocol::Mm1 {
            debug!(connection = %connection.describe(), "PING from an MM/1 peer ignored");
            return;
        }
        let body = &frame[header.body_offset..];
        // Everything this connection sent before the PING has been processed (frames are handled
        // in order), so the PONG can go now — unless the client asks for a mesh-wide flush.
        if !connection.role.is_link() && mm_wire::handshake::is_mesh_flush(&decode_or_empty(body)) {
            self.start_mesh_flush(slot, body);
            return;
        }
        self.send_frame_with_body(slot, &Header::new(Action::Pong), body);
    }

    fn on_pong(&mut self, slot: Slot, frame: &[u8], header: &HeaderView<'_>) {
        if self.connections[slot].role.is_link() {
            let body = decode_or_empty(&frame[header.body_offset..]);
            self.on_link_pong(slot, &body);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gateway requests (`_MM.`, SPEC §9)
    // ---------------------------------------------------------------------------------------

    fn on_gateway_request(&mut self, slot: Slot, header: &HeaderView<'_>) {
        if header.reply_subject.is_empty() {
            self.misuse(
                slot,
                ErrorCode::InvalidSubject,
                0,
                header.subject,
                "publishing to _MM. subjects is reserved to the gateway",
            );
            return;
        }
        let answer = match header.subject {
            b"_MM.STATS" => self.stats_message(),
            _ => {
                self.misuse(
                    slot,
                    ErrorCode::InvalidSubject,
                    0,
                    header.subject,
                    "the gateway does not answer this _MM. subject",
                );
                return;
            }
        };
        let mut frame = Vec::new();
        let header = Header {
            subscription_id: 0,
            subject: header.reply_subject,
            reply_subject: &[],
            action: Action::SendMessage,
        };
        if encode_frame(&mut frame, &header, &answer).is_ok() {
            let subject = header.subject.to_vec();
            self.route(Origin::Gateway, &frame, &subject, &[]);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Sending, flushing, bounds
    // ---------------------------------------------------------------------------------------

    /// Queues a frame the gateway builds (ACK, ERROR, PONG, NO_RESPONDERS, …) for `slot`.
    pub(crate) fn send_frame(&mut self, slot: Slot, header: &Header<'_>, message: &Message) {
        self.frame_scratch.clear();
        if encode_frame(&mut self.frame_scratch, header, message).is_ok() {
            self.queue_built_frame(slot);
        }
    }

    /// Queues a frame whose body is already encoded.
    pub(crate) fn send_frame_with_body(&mut self, slot: Slot, header: &Header<'_>, body: &[u8]) {
        self.frame_scratch.clear();
        if mm_wire::encode_frame_with_body(&mut self.frame_scratch, header, body).is_ok() {
            self.queue_built_frame(slot);
        }
    }

    /// Queues a control frame (empty body).
    pub(crate) fn send_control(&mut self, slot: Slot, header: &Header<'_>) {
        self.frame_scratch.clear();
        if encode_control_frame(&mut self.frame_scratch, header).is_ok() {
            self.queue_built_frame(slot);
        }
    }

    /// Queues the frame in `frame_scratch` for `slot`.
    fn queue_built_frame(&mut self, slot: Slot) {
        let connection = &mut self.connections[slot];
        connection.outbound.push(&self.frame_scratch);
        connection.stats.frames_out += 1;
        connection.stats.bytes_out += self.frame_scratch.len() as u64;
        self.queue_flush(slot);
    }

    fn queue_flush(&mut self, slot: Slot) {
        let connection = &mut self.connections[slot];
        if !connection.queued_for_flush {
            connection.queued_for_flush = true;
            self.flush_list.push(slot);
        }
    }

    /// Writes every connection touched by the batch, once. Enforces the bounds: past 75 % the
    /// publisher of this batch is asked to pause; past 100 % the connection is a slow consumer.
    pub(crate) fn flush_batch(&mut self) {
        let mut list = std::mem::take(&mut self.flush_list);
        for slot in list.drain(..) {
            let Some(connection) = self.connections.get_mut(slot) else {
                continue;
            };
            connection.queued_for_flush = false;
            if let Err(reason) = write_some(connection) {
                self.close(slot, reason);
                continue;
            }
            let connection = &mut self.connections[slot];
            let pending = connection.outbound.pending();
            if pending > connection.output_bound {
                self.cut_off_slow(slot);
            } else if pending > 0 {
                // The socket is full: the connection's task waits for it to become writable.
                connection.handle.wake.notify_one();
                if pending > connection.output_bound / 4 * 3 {
                    if let Some(origin) = &self.batch_origin {
                        if !Rc::ptr_eq(origin, &connection.handle) {
                            if !connection
                                .stalled_publishers
                                .iter()
                                .any(|stalled| Rc::ptr_eq(stalled, origin))
                            {
                                connection.stalled_publishers.push(origin.clone());
                            }
                            self.stall_publisher = true;
                        }
                    }
                }
            }
        }
        self.flush_list = list;
    }

    /// The socket became writable: write queued output; wake publishers stalled on this
    /// connection once it is below half its bound.
    pub(crate) fn on_writable(&mut self, handle: &Rc<ConnectionHandle>) {
        let Some(slot) = self.slot_of(handle) else {
            return;
        };
        let connection = &mut self.connections[slot];
        if let Err(reason) = write_some(connection) {
            self.close(slot, reason);
            return;
        }
        if connection.outbound.pending() <= connection.output_bound / 2 {
            for publisher in connection.stalled_publishers.drain(..) {
                publisher.wake.notify_one();
            }
        }
    }

    /// Closes a connection whose queue passed its bound (SPEC §6.3).
    fn cut_off_slow(&mut self, slot: Slot) {
        let connection = &mut self.connections[slot];
        let (dropped_bytes, dropped_frames) = connection.outbound.discard();
        let is_link = connection.role.is_link();
        warn!(
            service = %self.name,
            connection = %connection.describe(),
            dropped_bytes,
            dropped_frames,
            bound = connection.output_bound,
            "slow consumer: queue passed its bound, discarding it and closing"
        );
        self.stats.dropped_bytes += dropped_bytes as u64;
        self.stats.dropped_frames += dropped_frames as u64;
        if is_link {
            self.stats.slow_links += 1;
        } else {
            self.stats.slow_consumers += 1;
        }
        if self.connections[slot].protocol == Protocol::Mm2 {
            self.send_frame(
                slot,
                &Header::new(Action::Error),
                &ErrorCode::SlowConsumer.message("output queue passed its bound"),
            );
        }
        self.close(slot, CloseReason::SlowConsumer);
    }

    // ---------------------------------------------------------------------------------------
    // Errors and closing
    // ---------------------------------------------------------------------------------------

    /// A frame that cannot be processed but leaves the stream in sync (SPEC §5.2): MM/2 gets an
    /// ERROR, MM/1 a log line.
    fn misuse(
        &mut self,
        slot: Slot,
        code: ErrorCode,
        subscription_id: u32,
        subject: &[u8],
        text: &str,
    ) {
        self.stats.rejected_frames += 1;
        let connection = &self.connections[slot];
        warn!(
            service = %self.name,
            connection = %connection.describe(),
            code = %code,
            subject = %String::from_utf8_lossy(subject),
            "{text}"
        );
        if connection.protocol == Protocol::Mm2 {
            let header = Header {
                subscription_id,
                subject,
                reply_subject: &[],
                action: Action::Error,
            };
            self.send_frame(slot, &header, &code.message(text));
        }
    }

    /// A frame that breaks the stream (bad length, truncated header): ERROR for MM/2, then close.
    fn reject_stream(&mut self, slot: Slot, error: DecodeError) {
        self.stats.protocol_errors += 1;
        let (code, reason) = match error {
            DecodeError::FrameTooLarge { .. } => {
                (ErrorCode::FrameTooLarge, CloseReason::FrameTooLarge)
            }
            _ => (ErrorCode::Protocol, CloseReason::MalformedFrame),
        };
        warn!(
            service = %self.name,
            connection = %self.connections[slot].describe(),
            %error,
            "closing connection"
        );
        if self.connections[slot].protocol == Protocol::Mm2 {
            self.send_frame(
                slot,
                &Header::new(Action::Error),
                &code.message(&error.to_string()),
            );
        }
        self.close(slot, reason);
    }

    /// Closes the connection of `handle`, if it is still open.
    pub(crate) fn close_handle(&mut self, handle: &Rc<ConnectionHandle>, reason: CloseReason) {
        if let Some(slot) = self.slot_of(handle) {
            self.close(slot, reason);
        }
    }

    /// Closes a connection: removes its subscriptions (withdrawing mesh interest), keeps what
    /// must still be sent for the lingering task, and counts it.
    pub(crate) fn close(&mut self, slot: Slot, reason: CloseReason) {
        let Some(mut connection) = self.connections.try_remove(slot) else {
            return;
        };
        let is_client = !connection.role.is_link();
        for (id, entry) in connection.subscriptions.drain() {
            self.forget_subscription(slot, id, &entry.pattern, is_client);
        }
        // Whatever is still queued goes out while the task lingers (an ERROR, or the output a
        // disconnecting client has not received yet); a slow consumer's backlog was discarded.
        let remaining = connection.outbound.take();
        if !remaining.is_empty() {
            connection
                .handle
                .final_bytes
                .borrow_mut()
                .extend_from_slice(&remaining);
        }
        connection.handle.closed.set(true);
        connection
            .handle
            .shutting_down
            .set(reason == CloseReason::Shutdown);
        connection.handle.wake.notify_one();
        for publisher in connection.stalled_publishers.drain(..) {
            publisher.wake.notify_one();
        }
        self.stats.closed_connections.add(&connection.stats);
        let level_is_info = matches!(
            reason,
            CloseReason::Disconnect | CloseReason::PeerClosed | CloseReason::Shutdown
        );
        if level_is_info {
            info!(service = %self.name, connection = %connection.describe(), %reason, "connection closed");
        } else {
            warn!(service = %self.name, connection = %connection.describe(), %reason, "connection closed");
        }
        if connection.role.is_link() {
            self.link_closed(slot, &connection, reason);
        }
    }

    /// A connection task ended.
    pub(crate) fn task_finished(&mut self) {
        self.running_tasks -= 1;
        if self.running_tasks == 0 {
            self.tasks_done.notify_one();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Housekeeping: heartbeats, idle buffers
    // ---------------------------------------------------------------------------------------

    fn housekeeping(&mut self) {
        let now = Instant::now();
        let heartbeat = self.config().heartbeat;
        let mut dead = Vec::new();
        let mut pings = Vec::new();
        let mut queued = 0;
        for (slot, connection) in self.connections.iter_mut() {
            queued += connection.outbound.pending();
            if !connection.peer_heartbeat.is_zero()
                && now.duration_since(connection.last_received) > connection.peer_heartbeat * 2
            {
                dead.push(slot);
                continue;
            }
            if connection.protocol == Protocol::Mm2
                && !heartbeat.is_zero()
                && now.duration_since(connection.last_sent) >= heartbeat
            {
                pings.push(slot);
            }
            // An idle connection gives its buffers back.
            if now.duration_since(connection.last_sent) >= IDLE_RELEASE
                && now.duration_since(connection.last_received) >= IDLE_RELEASE
            {
                connection.outbound.release();
                if connection.inbound_partial.is_empty() {
                    connection.inbound_partial = BytesMut::new();
                }
                connection.last_publish = Default::default();
            }
        }
        for slot in dead {
            self.close(slot, CloseReason::HeartbeatTimeout);
        }
        for slot in pings {
            self.send_control(slot, &Header::new(Action::Ping));
            self.connections[slot].last_sent = now;
        }
        self.check_one_sided_links();
        self.flush_batch();
        self.return_memory_after_burst(queued);
    }

    /// After a burst has drained (a large backlog queued, now almost nothing), asks the allocator
    /// to give freed memory back to the operating system: the 64 KiB output chunks of a backlog
    /// come from the heap, and glibc otherwise keeps their pages, so an idle gateway would go on
    /// showing the burst's peak resident size.
    fn return_memory_after_burst(&mut self, queued: usize) {
        self.queued_high_water = self.queued_high_water.max(queued);
        if queued >= RETURN_MEMORY_BELOW_BYTES {
            self.drained_checks = 0;
            return;
        }
        // Drained, and it stays so: under sustained overload a backlog empties for an instant now
        // and then, and giving memory back each time would only make it fault back in.
        self.drained_checks += 1;
        if self.drained_checks >= DRAINED_CHECKS_BEFORE_RETURN
            && self.queued_high_water > RETURN_MEMORY_AFTER_BYTES
        {
            self.queued_high_water = 0;
            release_free_memory();
        }
    }

    /// Closes every connection (gateway shutdown).
    fn close_all(&mut self) {
        self.shutting_down = true;
        let slots: Vec<Slot> = self.connections.iter().map(|(slot, _)| slot).collect();
        for slot in slots {
            self.close(slot, CloseReason::Shutdown);
        }
    }
}

/// Writes as much queued output as the socket takes, with one vectored `write`.
fn write_some(connection: &mut Connection) -> Result<(), CloseReason> {
    if connection.outbound.is_empty() {
        return Ok(());
    }
    let stream = &connection.handle.stream;
    match connection
        .outbound
        .write_with(|slices| stream.try_write_vectored(slices))
    {
        Ok(_) => {
            connection.stats.write_calls += 1;
            connection.last_sent = Instant::now();
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
        Err(error) => {
            debug!(%error, "write failed");
            Err(CloseReason::WriteError)
        }
    }
}

/// Returns freed heap memory to the operating system (glibc only; elsewhere the allocator does
/// it on its own or not at all).
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of the heap to the kernel; it does not touch
    // allocated memory and may be called at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The length of the frame at the start of `bytes`, if its prefix has arrived.
fn frame_length_hint(bytes: &[u8]) -> usize {
    bytes
        .first_chunk::<4>()
        .map_or(0, |prefix| i32::from_le_bytes(*prefix).max(0) as usize)
}

/// Decodes a control frame's body; an undecodable one counts as empty.
fn decode_or_empty(body: &[u8]) -> Message {
    Message::decode_from_slice(body).unwrap_or_default()
}

trait AdvanceTo {
    fn advance_to(&mut self, consumed: usize);
}

impl AdvanceTo for BytesMut {
    fn advance_to(&mut self, consumed: usize) {
        bytes::Buf::advance(self, consumed);
    }
}

/// Spawns a connection's task on the service's thread.
pub(crate) fn spawn_task(state: &Rc<RefCell<ServiceState>>, handle: Rc<ConnectionHandle>) {
    tokio::task::spawn_local(drive(state.clone(), handle));
}

/// A running service: its command channel and thread.
pub(crate) struct ServiceHandle {
    /// Commands to the service's loop.
    pub(crate) commands: mpsc::Sender<ServiceCommand>,
    /// The thread; joined at shutdown.
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a service on its own thread.
pub(crate) fn start(name: &str, context: Arc<GatewayContext>) -> std::io::Result<ServiceHandle> {
    let (commands, receiver) = mpsc::channel(1024);
    let service_name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("svc-{name}"))
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(error) => {
                    warn!(service = %service_name, %error, "cannot start the service's event loop");
                    return;
                }
            };
            let local = tokio::task::LocalSet::new();
            local.block_on(&runtime, run(service_name, context, receiver));
        })?;
    Ok(ServiceHandle {
        commands,
        thread: Some(thread),
    })
}

/// The service's main task: takes commands, runs housekeeping, starts the mesh.
async fn run(
    name: String,
    context: Arc<GatewayContext>,
    mut commands: mpsc::Receiver<ServiceCommand>,
) {
    info!(service = %name, "service started");
    let state = Rc::new(RefCell::new(ServiceState::new(name.clone(), context)));
    let tasks_done = state.borrow().tasks_done.clone();
    crate::mesh::start_dialers(&state);
    let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(ServiceCommand::Attach(incoming)) => ServiceState::attach(&state, *incoming),
                Some(ServiceCommand::Shutdown) | None => break,
            },
            _ = ticker.tick() => state.borrow_mut().housekeeping(),
        }
    }
    state.borrow_mut().close_all();
    crate::mesh::stop_dialers(&state);
    // Connection tasks linger briefly to deliver their last bytes.
    let wait = async {
        while state.borrow().running_tasks > 0 {
            tasks_done.notified().await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    info!(service = %name, "service stopped");
}
