//! One TCP connection of a service — a client or a mesh link — and the task that drives its socket.
//!
//! A connection has two halves:
//!
//! * [`ConnectionHandle`] (behind an `Rc`): the socket and the few flags that the connection's own
//!   task and the service loop both touch. It outlives the connection's entry in the service, so a
//!   closing connection can still send its last bytes.
//! * [`Connection`]: everything else — role, subscriptions, queued output, counters — owned by the
//!   service loop's slab. Other connections' deliveries append to its [`OutboundBuffer`].
//!
//! The task ([`drive`]) waits for the socket to become readable (or writable, when output is
//! queued) and calls into the service loop, which does all the work synchronously. Nothing here
//! holds a lock: the service runs on one thread, and the `RefCell` borrow lasts exactly as long
//! as one batch.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mm_wire::handshake::Protocol;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

use crate::outbound::OutboundBuffer;
use crate::service::{ReadOutcome, ServiceState};
use crate::stats::ConnectionStats;

/// Index of a connection in its service's slab.
pub(crate) type Slot = usize;

/// How long a connection reading from publishers pauses when a subscriber it feeds is above 75 %
/// of its bound (SPEC §6.3: "at most a few milliseconds at a time").
pub(crate) const STALL: Duration = Duration::from_millis(2);

/// How long a closing connection may take to send its last bytes and see the peer's EOF.
const LINGER: Duration = Duration::from_millis(1000);

/// How long a closing connection lingers when the whole gateway shuts down.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(200);

/// The part of a connection shared by its task and the service loop.
pub(crate) struct ConnectionHandle {
    /// The socket. Owned here; dropped (closed) when the task and the service entry are gone.
    pub(crate) stream: TcpStream,
    /// Wakes the task: output was queued while the socket was full, the connection was closed,
    /// or a subscriber this connection was waiting for has drained.
    pub(crate) wake: Notify,
    /// The connection's slot in the service. Valid while `closed` is false.
    pub(crate) slot: Cell<Slot>,
    /// Set once by [`ServiceState::close`]; the task then lingers and exits.
    pub(crate) closed: Cell<bool>,
    /// Bytes to send before the socket closes (an ERROR frame, or what was queued when the client
    /// said DISCONNECT). Written best effort while lingering.
    pub(crate) final_bytes: RefCell<Vec<u8>>,
    /// Whether the close comes from a gateway shutdown (shorter linger).
    pub(crate) shutting_down: Cell<bool>,
}

impl ConnectionHandle {
    /// A handle for a socket that will live at `slot`.
    pub(crate) fn new(stream: TcpStream) -> Rc<ConnectionHandle> {
        Rc::new(ConnectionHandle {
            stream,
            wake: Notify::new(),
            slot: Cell::new(usize::MAX),
            closed: Cell::new(false),
            final_bytes: RefCell::new(Vec::new()),
            shutting_down: Cell::new(false),
        })
    }
}

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
    /// The gateway is shutting down.
    Shutdown,
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
            CloseReason::Shutdown => "gateway shutting down",
        })
    }
}

/// A connection's subscriptions by id. Keys come from the peer, so the hasher is randomly
/// seeded per map.
pub(crate) type SubscriptionMap =
    hashbrown::HashMap<u32, SubscriptionEntry, foldhash::fast::RandomState>;

/// A live subscription of a connection.
#[derive(Debug)]
pub(crate) struct SubscriptionEntry {
    /// The pattern as received (validated).
    pub(crate) pattern: Box<[u8]>,
    /// Order of creation within the connection (MM/1 unsubscribe-by-subject removes the oldest).
    pub(crate) sequence: u64,
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
    /// Live subscriptions by id (for links: the patterns the peer registered).
    pub(crate) subscriptions: SubscriptionMap,
    /// Creation counter for `SubscriptionEntry::sequence`.
    pub(crate) subscription_sequence: u64,
    /// Queued output.
    pub(crate) outbound: OutboundBuffer,
    /// Bytes of an incomplete frame carried over between reads; empty (and unallocated) most of
    /// the time, because reads go through the service's shared read buffer.
    pub(crate) inbound_partial: bytes::BytesMut,
    /// Bound of `outbound`.
    pub(crate) output_bound: usize,
    /// Counters.
    pub(crate) stats: ConnectionStats,
    /// When bytes last arrived.
    pub(crate) last_received: Instant,
    /// When bytes were last written.
    pub(crate) last_sent: Instant,
    /// The publish sequence this link last received a copy of: a message goes to a link at most
    /// once, however many of the link's patterns match it.
    pub(crate) delivered_sequence: u64,
    /// Whether the connection is in the service's list of connections to flush after this batch.
    pub(crate) queued_for_flush: bool,
    /// Publishers stalled on this connection's backlog, woken when it drains below half its bound.
    pub(crate) stalled_publishers: Vec<Rc<ConnectionHandle>>,
    /// This connection's last publish: its subject (valid) and, while the trie is unchanged, the
    /// subscriptions it matched. A publisher almost always repeats its subject; then both the
    /// subject check and the trie lookup are skipped.
    pub(crate) last_publish: LastPublish,
}

/// See [`Connection::last_publish`].
#[derive(Debug, Default)]
pub(crate) struct LastPublish {
    /// The subject; empty when nothing is remembered (a valid subject is never empty).
    pub(crate) subject: Vec<u8>,
    /// The trie generation `matches` was computed at.
    pub(crate) generation: u64,
    /// The subscriptions the subject matched.
    pub(crate) matches: Vec<crate::service::SubscriberKey>,
}

impl Connection {
    /// The connection's id, name and address, for log lines.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} #{} `{}` at {}",
            self.role.kind(),
            self.id,
            self.name,
            self.address
        )
    }
}

/// Waits until the socket is ready for `interest`, or forever if there is no interest.
async fn ready(
    stream: &TcpStream,
    interest: Option<Interest>,
) -> std::io::Result<tokio::io::Ready> {
    match interest {
        Some(interest) => stream.ready(interest).await,
        None => std::future::pending().await,
    }
}

/// The task of one connection: waits for socket readiness and hands each event to the service
/// loop. Ends when the connection is closed, after lingering to deliver its last bytes.
pub(crate) async fn drive(service: Rc<RefCell<ServiceState>>, handle: Rc<ConnectionHandle>) {
    let mut stall_until: Option<tokio::time::Instant> = None;
    while !handle.closed.get() {
        let wants_write = service.borrow().wants_write(&handle);
        let interest = match (stall_until.is_none(), wants_write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        tokio::select! {
            biased;
            _ = handle.wake.notified() => {
                // Something changed: output queued, closed, or the subscriber we waited for
                // drained. Re-evaluate; a stall ends early.
                stall_until = None;
            }
            result = ready(&handle.stream, interest) => {
                let mut state = service.borrow_mut();
                match result {
                    Ok(readiness) => {
                        if readiness.is_writable() {
                            state.on_writable(&handle);
                        }
                        if readiness.is_readable() || readiness.is_read_closed() {
                            match state.on_readable(&handle) {
                                ReadOutcome::Continue => {}
                                ReadOutcome::Stall => {
                                    stall_until = Some(tokio::time::Instant::now() + STALL);
                                }
                            }
                        }
                    }
                    Err(error) => {
                        debug!(%error, "readiness failed");
                        state.close_handle(&handle, crate::connection::CloseReason::ReadError);
                    }
                }
            }
            _ = async {
                if let Some(deadline) = stall_until {
                    tokio::time::sleep_until(deadline).await;
                }
            }, if stall_until.is_some() => {
                stall_until = None;
            }
        }
    }
    linger(&handle).await;
    service.borrow_mut().task_finished();
}

/// Sends a closed connection's last bytes, half-closes it and waits briefly for the peer's EOF,
/// so that an ERROR sent just before closing is not lost to a TCP reset.
async fn linger(handle: &ConnectionHandle) {
    let limit = if handle.shutting_down.get() {
        SHUTDOWN_LINGER
    } else {
        LINGER
    };
    let deadline = tokio::time::Instant::now() + limit;
    let final_bytes = std::mem::take(&mut *handle.final_bytes.borrow_mut());
    let _ = tokio::time::timeout_at(deadline, async {
        let mut written = 0;
        while written < final_bytes.len() {
            if handle.stream.writable().await.is_err() {
                return;
            }
            match handle.stream.try_write(&final_bytes[written..]) {
                Ok(n) => written += n,
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
        let _ = socket2::SockRef::from(&handle.stream).shutdown(std::net::Shutdown::Write);
        let mut discard = [0u8; 4096];
        loop {
            if handle.stream.readable().await.is_err() {
                return;
            }
            match handle.stream.try_read(&mut discard) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
