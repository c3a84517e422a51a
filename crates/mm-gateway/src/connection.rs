//! One connection of a service — a client or a mesh link — as the service loop sees it.
//!
//! Connections live in a [`Connections`] map owned by the service loop and are named one way
//! only: by a [`ConnectionKey`], a generational key. A key whose connection has closed never
//! reaches another connection that later reuses its slot, so anything may hold a key (a pending
//! mesh flush, a stalled publisher, a connection's socket task) without keeping the connection
//! alive and without a pointer comparison.
//!
//! The socket itself and the flags its task shares with the loop are in
//! [`ConnectionHandle`](crate::socket::ConnectionHandle).

use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mm_wire::handshake::Protocol;
use slotmap::SlotMap;

use crate::counters::ConnectionCounters;
use crate::log_limit::WarningBudget;
use crate::outbound::OutboundBuffer;
use crate::permissions::Access;
use crate::rate_limit::TokenBucket;
use crate::socket::ConnectionHandle;
use crate::subscriptions::Subscriptions;

/// Warnings logged per connection per window (`log_limit::WARNING_WINDOW`); the rest are counted.
const WARNINGS_PER_WINDOW: u32 = 5;

/// `_MM.STATS` answers a connection may have per second, and saved up.
const STATS_PER_SECOND: f64 = 4.0;
const STATS_BURST: f64 = 8.0;

slotmap::new_key_type! {
    /// Names a connection of a service. Generational: once the connection is closed the key
    /// matches nothing, even when its slot holds a newer connection.
    pub(crate) struct ConnectionKey;
}

/// Every live connection of a service, by key.
pub(crate) type Connections = SlotMap<ConnectionKey, Connection>;

/// What is on the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// An application client (CONNECT).
    Client {
        /// The client asked for NO_RESPONDERS (MM/2 only).
        no_responders: bool,
    },
    /// A peer gateway that dialled us (CONNECT_MESH_PEER). It registers interest here; we send it
    /// our local clients' messages that match.
    AcceptedLink {
        /// The peer's `gateway_id` (absent for MM/1 peers).
        peer_id: Option<String>,
    },
    /// A link we dialled to a peer. We register our local interest on it; the peer sends us
    /// messages for our clients.
    DialledLink {
        /// The peer's `gateway_id` (absent for MM/1 peers).
        peer_id: Option<String>,
        /// The configured address we dialled.
        address: String,
    },
}

impl Role {
    /// Whether this is a mesh link (either direction).
    #[inline]
    pub(crate) fn is_link(&self) -> bool {
        !matches!(self, Role::Client { .. })
    }

    /// A short name for logs and stats.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Role::Client { .. } => "client",
            Role::AcceptedLink { .. } => "accepted-link",
            Role::DialledLink { .. } => "dialled-link",
        }
    }
}

/// Why a connection was closed. Logged with the connection, and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// The client sent DISCONNECT.
    Disconnect,
    /// End of stream.
    PeerClosed,
    /// Reading the socket failed.
    ReadError,
    /// Writing the socket failed.
    WriteError,
    /// A frame longer than `max_frame`.
    FrameTooLarge,
    /// A frame shorter than 21 bytes, or a header that does not fit its frame.
    MalformedFrame,
    /// The queued output passed its bound (SPEC §6.3).
    SlowConsumer,
    /// Nothing arrived for twice the peer's heartbeat interval.
    HeartbeatTimeout,
    /// A newer link to the same peer replaced this one (SPEC §8).
    ReplacedByNewerLink,
    /// An incomplete frame received nothing for `FrameProgressTimeoutMs`.
    IncompleteFrameTimeout,
    /// The gateway's budget for incomplete frames was exceeded and this connection held the most.
    InputBudget,
    /// The gateway's budget for queued output was exceeded and this connection had the largest
    /// backlog.
    OutputBudget,
    /// The gateway is shutting down.
    Shutdown,
    /// Discovery (etcd, DNS) no longer lists the peer this link was dialled to.
    NoLongerDiscovered,
}

impl CloseReason {
    /// Whether this is an ordinary end (logged at info level, not as a warning).
    pub(crate) fn is_ordinary(self) -> bool {
        matches!(
            self,
            CloseReason::Disconnect
                | CloseReason::PeerClosed
                | CloseReason::Shutdown
                | CloseReason::NoLongerDiscovered
        )
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CloseReason::Disconnect => "client disconnected",
            CloseReason::PeerClosed => "peer closed the connection",
            CloseReason::ReadError => "read error",
            CloseReason::WriteError => "write error",
            CloseReason::FrameTooLarge => "frame too large",
            CloseReason::MalformedFrame => "malformed frame",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::HeartbeatTimeout => "heartbeat timeout",
            CloseReason::ReplacedByNewerLink => "replaced by a newer link to the same peer",
            CloseReason::IncompleteFrameTimeout => "incomplete frame made no progress",
            CloseReason::InputBudget => "gateway budget for incomplete frames exceeded",
            CloseReason::OutputBudget => "gateway budget for queued output exceeded",
            CloseReason::Shutdown => "gateway shutting down",
            CloseReason::NoLongerDiscovered => "peer no longer discovered",
        })
    }
}

/// A connection's state, owned by the service loop.
pub(crate) struct Connection {
    /// Unique for the life of the gateway; used in logs and stats.
    pub(crate) id: u64,
    /// Shared with the connection's task.
    pub(crate) handle: Rc<ConnectionHandle>,
    /// The peer's address.
    pub(crate) address: SocketAddr,
    /// Client name, or peer gateway name.
    pub(crate) name: String,
    /// What is on the other end.
    pub(crate) role: Role,
    /// The negotiated protocol.
    pub(crate) protocol: Protocol,
    /// The peer's announced heartbeat interval; zero = the peer sends none and expects none.
    pub(crate) peer_heartbeat: Duration,
    /// Live subscriptions (for links: the patterns the peer registered).
    pub(crate) subscriptions: Subscriptions,
    /// Queued output. Bound: `output_bound`, enforced as frames are queued (router) and after
    /// each write (service loop).
    pub(crate) outbound: OutboundBuffer,
    /// `outbound.pending()` as last added to the service's total of queued output.
    pub(crate) counted_pending: usize,
    /// `inbound_partial`'s capacity as last added to the service's total of incomplete input.
    pub(crate) counted_partial: usize,
    /// Set (with why) when the router finds the connection past its bound: nothing more is
    /// queued for it, and the service closes it after the frame being routed.
    pub(crate) cut_off: Option<CloseReason>,
    /// Warnings about this connection: a few per window, then counted.
    pub(crate) warnings: WarningBudget,
    /// How often it may ask for `_MM.STATS`.
    pub(crate) stats_requests: TokenBucket,
    /// Bytes of an incomplete frame carried over between reads; empty (and unallocated) most of
    /// the time, because reads go through the service's shared read buffer.
    pub(crate) inbound_partial: bytes::BytesMut,
    /// Bound of `outbound`.
    pub(crate) output_bound: usize,
    /// Counters.
    pub(crate) counters: ConnectionCounters,
    /// When bytes last arrived.
    pub(crate) last_received: Instant,
    /// When bytes were last written.
    pub(crate) last_sent: Instant,
    /// Owned by the router: the publish sequence this link last received a copy of, so a message
    /// goes to a link at most once however many of the link's patterns match it.
    pub(crate) delivered_sequence: u64,
    /// Publishers stalled on this connection's backlog, woken when it drains below half its
    /// bound. At most one entry per publisher.
    pub(crate) stalled_publishers: Vec<ConnectionKey>,
    /// What the client may do, when its service has security on (`None`: everything, as
    /// without security; always `None` for mesh links).
    pub(crate) access: Option<Box<Access>>,
    /// Largest frame accepted from it.
    pub(crate) max_frame: u32,
}

/// What a new connection is, as the service loop attaches it.
pub(crate) struct NewConnection {
    /// The socket's handle.
    pub(crate) handle: Rc<ConnectionHandle>,
    /// The peer's address.
    pub(crate) address: SocketAddr,
    /// Client name, or peer gateway name.
    pub(crate) name: String,
    /// What is on the other end.
    pub(crate) role: Role,
    /// The negotiated protocol.
    pub(crate) protocol: Protocol,
    /// The peer's announced heartbeat interval.
    pub(crate) peer_heartbeat: Duration,
    /// What the client may do (security on).
    pub(crate) access: Option<Box<Access>>,
    /// Largest frame accepted from it.
    pub(crate) max_frame: u32,
}

impl Connection {
    /// A connection with nothing queued and no subscriptions.
    pub(crate) fn new(id: u64, new: NewConnection, output_bound: usize) -> Connection {
        let now = Instant::now();
        Connection {
            id,
            handle: new.handle,
            address: new.address,
            name: new.name,
            role: new.role,
            protocol: new.protocol,
            peer_heartbeat: new.peer_heartbeat,
            subscriptions: Subscriptions::default(),
            outbound: OutboundBuffer::default(),
            counted_pending: 0,
            counted_partial: 0,
            cut_off: None,
            warnings: WarningBudget::new(WARNINGS_PER_WINDOW),
            stats_requests: TokenBucket::new(STATS_PER_SECOND, STATS_BURST),
            inbound_partial: bytes::BytesMut::new(),
            output_bound,
            counters: ConnectionCounters::default(),
            last_received: now,
            last_sent: now,
            delivered_sequence: 0,
            stalled_publishers: Vec::new(),
            access: new.access,
            max_frame: new.max_frame,
        }
    }

    /// The connection's id, name and address (and user), for log lines.
    pub(crate) fn describe(&self) -> String {
        match &self.access {
            Some(access) => format!(
                "{} #{} `{}` at {} (user {})",
                self.role.kind(),
                self.id,
                self.name,
                self.address,
                access.grant.who()
            ),
            None => format!(
                "{} #{} `{}` at {}",
                self.role.kind(),
                self.id,
                self.name,
                self.address
            ),
        }
    }

    /// Queues a whole frame the gateway built, and counts it.
    pub(crate) fn queue(&mut self, frame: &[u8]) {
        self.outbound.push(frame);
        self.counters.frames_out += 1;
        self.counters.bytes_out += frame.len() as u64;
    }

    /// Writes as much queued output as the socket takes, with one vectored `write` (through
    /// the TLS session, if any, which may also hold ciphertext of earlier writes).
    pub(crate) fn write_some(&mut self) -> Result<(), CloseReason> {
        if self.outbound.is_empty() {
            if self.handle.tls_wants_write() {
                return self.handle.flush_tls().map_err(|error| {
                    tracing::debug!(%error, "write failed");
                    CloseReason::WriteError
                });
            }
            return Ok(());
        }
        let handle = &self.handle;
        match self
            .outbound
            .write_with(|slices| handle.write_vectored(slices))
        {
            Ok(_) => {
                self.counters.write_calls += 1;
                self.last_sent = Instant::now();
                Ok(())
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
            Err(error) => {
                tracing::debug!(%error, "write failed");
                Err(CloseReason::WriteError)
            }
        }
    }

    /// Registers `publisher` to be woken when this connection drains; returns false if it is this
    /// connection itself (a connection never stalls on its own backlog).
    pub(crate) fn stall(&mut self, publisher: ConnectionKey, own_key: ConnectionKey) -> bool {
        if publisher == own_key {
            return false;
        }
        if !self.stalled_publishers.contains(&publisher) {
            self.stalled_publishers.push(publisher);
        }
        true
    }
}
