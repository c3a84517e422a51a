//! The mesh (SPEC §8): links to the other gateways of a service, interest propagation, and the
//! mesh-wide flush.
//!
//! Between two gateways of a service there are two links, one dialled by each. Each direction
//! carries one thing:
//!
//! * **Interest travels from dialler to acceptor.** After the ACK, the dialler sends one SUBSCRIBE
//!   for every pattern at least one of its *local clients* holds, then SUBSCRIBE/UNSUBSCRIBE when
//!   that count goes 0→1 / 1→0. Patterns learned from peers are never counted, so interest never
//!   echoes around the mesh.
//! * **Messages travel from acceptor to dialler.** The acceptor keeps the dialler's patterns in
//!   its subject trie, keyed by the link; a local client's publish that matches goes down the link
//!   once, however many of its patterns match. A message from a peer goes to local clients only
//!   (no relay), so it crosses the network at most once per destination gateway.
//!
//! Links have the states below. Nothing is queued for a link that is not up; a link that comes up
//! gets a full replay of interest, so a link that drops loses nothing but the messages in flight.
//!
//! | dialler state | meaning |
//! |---|---|
//! | `Connecting` | TCP connect and CONNECT_MESH_PEER / ACK in progress |
//! | `Up` | ACK received, interest replayed, link live |
//! | `Backoff` | waiting to redial: 100 ms + jitter, doubling, capped (default 2 s), reset by an ACK |
//! | `Suppressed` | another configured address reached the same peer (`gateway_id`) and that link is up: this address waits, so aliases never make links flap |
//! | `IsSelf` | the address leads back to this gateway: never dialled again |
//!
//! Identity is the `gateway_id` exchanged in the handshake (new random 128 bits at every start),
//! not the configured address, so `localhost:PORT`, several gateways per host and DNS aliases all
//! work. At most one link per direction per peer id: the newer wins.
//!
//! **Mesh-wide flush.** A client PING with `mesh` = true is answered only after every dialled link
//! that is up has answered a PING of its own sent after the interest changes the client's earlier
//! frames caused — the acceptor answers a PING only after processing everything before it, so the
//! client then knows its subscriptions are live at every peer.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::BytesMut;
use mm_wire::handshake::{AckInfo, PeerHello, Protocol};
use mm_wire::{Action, FrameDecoder, Header, Message, encode_frame};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::MeshConfig;
use crate::connection::{CloseReason, Connection, ConnectionHandle, Role, Slot};
use crate::service::{ServiceState, spawn_task};

/// First redial delay (SPEC §8).
const FIRST_REDIAL: Duration = Duration::from_millis(100);

/// How long an accepted link may be up before the gateway warns that it does not dial that peer
/// back (a peer missing from this gateway's `MeshGateways`).
const ONE_SIDED_GRACE: Duration = Duration::from_secs(5);

/// How long a TCP connect to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a dialler is doing (see the module doc's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialState {
    /// Connecting or waiting for ACK.
    Connecting,
    /// Link up.
    Up,
    /// Waiting to redial.
    Backoff,
    /// Another address reached the same peer; waiting for that link to drop.
    Suppressed,
    /// The address is this gateway.
    IsSelf,
}

impl DialState {
    fn name(self) -> &'static str {
        match self {
            DialState::Connecting => "connecting",
            DialState::Up => "up",
            DialState::Backoff => "backoff",
            DialState::Suppressed => "suppressed",
            DialState::IsSelf => "self",
        }
    }
}

/// One configured peer address and its dialler.
pub(crate) struct PeerDialer {
    /// `host:port` from the configuration.
    pub(crate) address: String,
    /// Current state.
    pub(crate) state: DialState,
    /// Dial attempts so far.
    pub(crate) dials: u64,
    /// The peer's `gateway_id` from the last ACK (None for MM/1 peers or before the first).
    pub(crate) peer_id: Option<String>,
    /// The link's slot while `Up`.
    pub(crate) link: Option<Slot>,
    /// Why the last attempt or link failed, for stats.
    pub(crate) last_error: Option<String>,
    /// Signalled when this dialler's link closes.
    link_down: Rc<Notify>,
    /// Why this dialler's last link closed.
    last_close: Option<CloseReason>,
    /// The dialler task.
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A local pattern and the id it has on every dialled link.
struct InterestEntry {
    /// Local client subscriptions with this pattern. Invariant: `count >= 1` while present.
    count: u32,
    /// Subscription id used on the links for this pattern; never reused.
    link_subscription_id: u32,
}

/// A client's mesh-wide flush waiting for links to confirm.
struct PendingFlush {
    /// The client; the PONG is dropped if it is gone.
    client: Rc<ConnectionHandle>,
    /// The client's PING body, echoed in the PONG.
    body: Vec<u8>,
    /// Sequence of the link PINGs sent for this flush.
    sequence: u64,
    /// Links that have not answered yet.
    waiting: Vec<Slot>,
}

/// The mesh side of a service.
pub(crate) struct MeshState {
    /// Configured peer addresses (empty when the service is not in `StartupMeshes`).
    pub(crate) dialers: Vec<PeerDialer>,
    /// Whether the service is listed in `StartupMeshes` (else accepted links are one-sided).
    pub(crate) configured: bool,
    /// Local interest by pattern.
    interest: hashbrown::HashMap<Box<[u8]>, InterestEntry, foldhash::fast::RandomState>,
    /// Next link subscription id.
    next_link_subscription_id: u32,
    /// Dialled links that are up.
    pub(crate) dialled_links: Vec<Slot>,
    /// Accepted links, with when they came up and whether the one-sided check has run.
    pub(crate) accepted_links: Vec<Slot>,
    /// Accepted links not yet checked for a matching dialled link: (slot, connection id, since).
    one_sided_checks: Vec<(Slot, u64, std::time::Instant)>,
    /// Mesh-wide flushes in progress.
    pending_flushes: Vec<PendingFlush>,
    /// Next link PING sequence.
    next_flush_sequence: u64,
    /// Signalled whenever a dialled link goes down (suppressed diallers re-check).
    links_changed: Rc<Notify>,
}

impl MeshState {
    /// The mesh state for a service, with a dialler per configured address.
    pub(crate) fn new(config: Option<&MeshConfig>) -> Self {
        MeshState {
            dialers: config
                .map(|mesh| {
                    mesh.gateways
                        .iter()
                        .map(|address| PeerDialer {
                            address: address.clone(),
                            state: DialState::Backoff,
                            dials: 0,
                            peer_id: None,
                            link: None,
                            last_error: None,
                            link_down: Rc::new(Notify::new()),
                            last_close: None,
                            task: None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            configured: config.is_some(),
            interest: Default::default(),
            next_link_subscription_id: 1,
            dialled_links: Vec::new(),
            accepted_links: Vec::new(),
            one_sided_checks: Vec::new(),
            pending_flushes: Vec::new(),
            next_flush_sequence: 1,
            links_changed: Rc::new(Notify::new()),
        }
    }

    /// Number of distinct local patterns propagated to peers.
    pub(crate) fn interest_len(&self) -> usize {
        self.interest.len()
    }
}

impl ServiceState {
    // ---------------------------------------------------------------------------------------
    // Interest (local clients only)
    // ---------------------------------------------------------------------------------------

    /// A local client subscribed to `pattern`: on 0→1, tell every dialled link.
    pub(crate) fn interest_added(&mut self, pattern: &[u8]) {
        let mesh = &mut self.mesh;
        if let Some(entry) = mesh.interest.get_mut(pattern) {
            entry.count += 1;
            return;
        }
        let id = mesh.next_link_subscription_id;
        mesh.next_link_subscription_id = mesh.next_link_subscription_id.wrapping_add(1).max(1);
        mesh.interest.insert(
            pattern.into(),
            InterestEntry {
                count: 1,
                link_subscription_id: id,
            },
        );
        let links = self.mesh.dialled_links.clone();
        for link in links {
            self.send_interest(link, Action::Subscribe, id, pattern);
        }
    }

    /// A local client's subscription to `pattern` ended: on 1→0, tell every dialled link.
    pub(crate) fn interest_removed(&mut self, pattern: &[u8]) {
        let Some(entry) = self.mesh.interest.get_mut(pattern) else {
            return;
        };
        entry.count -= 1;
        if entry.count > 0 {
            return;
        }
        let id = entry.link_subscription_id;
        self.mesh.interest.remove(pattern);
        let links = self.mesh.dialled_links.clone();
        for link in links {
            self.send_interest(link, Action::Unsubscribe, id, pattern);
        }
    }

    fn send_interest(&mut self, link: Slot, action: Action, id: u32, pattern: &[u8]) {
        let header = Header {
            subscription_id: id,
            subject: pattern,
            reply_subject: &[],
            action,
        };
        self.send_control(link, &header);
    }

    /// Sends every local pattern on a link that just came up.
    fn replay_interest(&mut self, link: Slot) {
        let entries: Vec<(Box<[u8]>, u32)> = self
            .mesh
            .interest
            .iter()
            .map(|(pattern, entry)| (pattern.clone(), entry.link_subscription_id))
            .collect();
        for (pattern, id) in entries {
            self.send_interest(link, Action::Subscribe, id, &pattern);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Links
    // ---------------------------------------------------------------------------------------

    /// A peer dialled us. Returns `None` for a link to ourselves, which is answered (so the
    /// dialler learns it) and closed.
    pub(crate) fn attach_accepted_link(
        &mut self,
        handle: Rc<ConnectionHandle>,
        address: SocketAddr,
        name: String,
        hello: &PeerHello,
    ) -> Option<Slot> {
        let protocol = hello.protocol();
        let ack = match protocol {
            Protocol::Mm2 => self.ack_info(Some(&self.context.gateway_id)).mesh_message(),
            Protocol::Mm1 => Message::new(),
        };
        if hello.gateway_id.as_deref() == Some(self.context.gateway_id.as_str()) {
            info!(service = %self.name, %address, "mesh link from this gateway to itself: closing");
            let mut bytes = Vec::new();
            let _ = encode_frame(&mut bytes, &Header::new(Action::Ack), &ack);
            *handle.final_bytes.borrow_mut() = bytes;
            handle.closed.set(true);
            self.running_tasks_for_unattached();
            return None;
        }
        // At most one accepted link per peer id: the newer wins.
        if let Some(peer_id) = &hello.gateway_id {
            let older: Vec<Slot> = self
                .mesh
                .accepted_links
                .iter()
                .copied()
                .filter(|&slot| {
                    matches!(&self.connections[slot].role,
                        Role::AcceptedLink { peer_id: Some(id) } if id == peer_id)
                })
                .collect();
            for slot in older {
                self.close(slot, CloseReason::ReplacedByNewerLink);
            }
        }
        let slot = self.insert_connection(
            handle,
            address,
            name.clone(),
            Role::AcceptedLink {
                peer_id: hello.gateway_id.clone(),
            },
            protocol,
            Duration::from_millis(hello.heartbeat_ms as u64),
        );
        self.mesh.accepted_links.push(slot);
        self.send_frame(slot, &Header::new(Action::Ack), &ack);
        if self.mesh.configured {
            info!(service = %self.name, peer = %name, %address, %protocol, "mesh peer connected");
            if hello.gateway_id.is_some() {
                let id = self.connections[slot].id;
                self.mesh
                    .one_sided_checks
                    .push((slot, id, std::time::Instant::now()));
            }
        } else {
            warn!(
                service = %self.name,
                peer = %name,
                %address,
                "one-sided mesh peer: it dials this gateway, but this gateway does not list the \
                 service in StartupMeshes and will not dial back"
            );
        }
        Some(slot)
    }

    /// A dialled link got its ACK: attach it, replay interest, and retire an older link to the
    /// same peer.
    fn attach_dialled_link(
        &mut self,
        dialer: usize,
        handle: Rc<ConnectionHandle>,
        address: SocketAddr,
        ack: Option<AckInfo>,
    ) -> Slot {
        let peer_id = ack.as_ref().and_then(|ack| ack.gateway_id.clone());
        let (protocol, heartbeat, name) = match &ack {
            Some(ack) => (
                Protocol::Mm2,
                Duration::from_millis(ack.heartbeat_ms as u64),
                ack.gateway_name.clone(),
            ),
            None => (
                Protocol::Mm1,
                Duration::ZERO,
                self.mesh.dialers[dialer].address.clone(),
            ),
        };
        if let Some(peer_id) = &peer_id {
            let older: Vec<Slot> = self
                .mesh
                .dialled_links
                .iter()
                .copied()
                .filter(|&slot| {
                    matches!(&self.connections[slot].role,
                        Role::DialledLink { peer_id: Some(id), .. } if id == peer_id)
                })
                .collect();
            for slot in older {
                self.close(slot, CloseReason::ReplacedByNewerLink);
            }
        }
        let configured_address = self.mesh.dialers[dialer].address.clone();
        let slot = self.insert_connection(
            handle,
            address,
            name.clone(),
            Role::DialledLink {
                peer_id: peer_id.clone(),
                address: configured_address.clone(),
            },
            protocol,
            heartbeat,
        );
        let entry = &mut self.mesh.dialers[dialer];
        entry.state = DialState::Up;
        entry.peer_id = peer_id;
        entry.link = Some(slot);
        entry.last_error = None;
        self.mesh.dialled_links.push(slot);
        self.replay_interest(slot);
        info!(
            service = %self.name,
            peer = %name,
            address = %configured_address,
            %protocol,
            interest = self.mesh.interest.len(),
            "mesh link up"
        );
        slot
    }

    /// Bookkeeping when a link closes (its patterns already left the trie).
    pub(crate) fn link_closed(&mut self, slot: Slot, connection: &Connection, reason: CloseReason) {
        match &connection.role {
            Role::AcceptedLink { .. } => self.mesh.accepted_links.retain(|&s| s != slot),
            Role::DialledLink { .. } => {
                self.mesh.dialled_links.retain(|&s| s != slot);
                for dialer in &mut self.mesh.dialers {
                    if dialer.link == Some(slot) {
                        dialer.link = None;
                        dialer.state = DialState::Backoff;
                        dialer.last_close = Some(reason);
                        dialer.last_error = Some(reason.to_string());
                        dialer.link_down.notify_one();
                    }
                }
                // A closed link no longer holds up mesh flushes.
                for flush in &mut self.mesh.pending_flushes {
                    flush.waiting.retain(|&s| s != slot);
                }
                self.complete_flushes();
                self.mesh.links_changed.notify_waiters();
            }
            Role::Client { .. } => {}
        }
    }

    /// Whether a dialled link to `peer_id` is up.
    fn has_dialled_link_to(&self, peer_id: &str) -> bool {
        self.mesh.dialled_links.iter().any(|&slot| {
            matches!(&self.connections[slot].role,
                Role::DialledLink { peer_id: Some(id), .. } if id == peer_id)
        })
    }

    // ---------------------------------------------------------------------------------------
    // Mesh-wide flush
    // ---------------------------------------------------------------------------------------

    /// A client's PING with `mesh` = true: PING every MM/2 dialled link that is up (behind the
    /// interest changes already queued on it), and answer the client when all have answered.
    pub(crate) fn start_mesh_flush(&mut self, client: Slot, body: &[u8]) {
        let links: Vec<Slot> = self
            .mesh
            .dialled_links
            .iter()
            .copied()
            .filter(|&slot| self.connections[slot].protocol == Protocol::Mm2)
            .collect();
        if links.is_empty() {
            self.send_frame_with_body(client, &Header::new(Action::Pong), body);
            return;
        }
        let sequence = self.mesh.next_flush_sequence;
        self.mesh.next_flush_sequence += 1;
        let ping = Message::new().add_u64("flush", sequence);
        for &link in &links {
            self.send_frame(link, &Header::new(Action::Ping), &ping);
        }
        self.mesh.pending_flushes.push(PendingFlush {
            client: self.connections[client].handle.clone(),
            body: body.to_vec(),
            sequence,
            waiting: links,
        });
    }

    /// A PONG on a link: a flush PING answered (heartbeat PONGs carry no `flush`).
    pub(crate) fn on_link_pong(&mut self, link: Slot, body: &Message) {
        let Some(sequence) = body.try_u64("flush") else {
            return;
        };
        for flush in &mut self.mesh.pending_flushes {
            if flush.sequence <= sequence {
                flush.waiting.retain(|&slot| slot != link);
            }
        }
        self.complete_flushes();
    }

    fn complete_flushes(&mut self) {
        let mut index = 0;
        while index < self.mesh.pending_flushes.len() {
            if self.mesh.pending_flushes[index].waiting.is_empty() {
                let flush = self.mesh.pending_flushes.remove(index);
                if let Some(slot) = self.slot_of(&flush.client) {
                    self.send_frame_with_body(slot, &Header::new(Action::Pong), &flush.body);
                }
            } else {
                index += 1;
            }
        }
    }

    /// Warns once about each accepted link whose peer this gateway does not dial back, once the
    /// diallers have had time to reach every configured address. Called by housekeeping.
    pub(crate) fn check_one_sided_links(&mut self) {
        let now = std::time::Instant::now();
        let mut checks = std::mem::take(&mut self.mesh.one_sided_checks);
        checks.retain(|&(slot, id, since)| {
            let Some(connection) = self.connections.get(slot).filter(|c| c.id == id) else {
                return false;
            };
            if now.duration_since(since) < ONE_SIDED_GRACE {
                return true;
            }
            let Role::AcceptedLink {
                peer_id: Some(peer_id),
            } = &connection.role
            else {
                return false;
            };
            let dialled_back = self
                .mesh
                .dialers
                .iter()
                .any(|dialer| dialer.peer_id.as_deref() == Some(peer_id.as_str()));
            if !dialled_back {
                warn!(
                    service = %self.name,
                    peer = %connection.name,
                    address = %connection.address,
                    "one-sided mesh peer: it dials this gateway, but is not among this gateway's \
                     MeshGateways, so this gateway does not send it interest"
                );
            }
            false
        });
        self.mesh.one_sided_checks = checks;
    }

    /// Stats entries for links and configured peers.
    pub(crate) fn mesh_stats(&self, message: &mut Message) {
        for dialer in &self.mesh.dialers {
            message.push(
                "peer",
                Message::new()
                    .add_string("address", dialer.address.as_str())
                    .add_string("state", dialer.state.name())
                    .add_u64("dials", dialer.dials)
                    .add_string("peer_id", dialer.peer_id.as_deref().unwrap_or_default())
                    .add_string(
                        "last_error",
                        dialer.last_error.as_deref().unwrap_or_default(),
                    ),
            );
        }
    }
}

// -------------------------------------------------------------------------------------------
// Diallers
// -------------------------------------------------------------------------------------------

/// Starts one dialler task per configured address.
pub(crate) fn start_dialers(state: &Rc<RefCell<ServiceState>>) {
    let count = state.borrow().mesh.dialers.len();
    for index in 0..count {
        let task = tokio::task::spawn_local(dial_loop(state.clone(), index));
        state.borrow_mut().mesh.dialers[index].task = Some(task);
    }
}

/// Stops every dialler (service shutdown).
pub(crate) fn stop_dialers(state: &Rc<RefCell<ServiceState>>) {
    for dialer in &mut state.borrow_mut().mesh.dialers {
        if let Some(task) = dialer.task.take() {
            task.abort();
        }
    }
}

/// Dials one configured address forever: connect, handshake, attach, wait for the link to drop,
/// back off, redial.
async fn dial_loop(state: Rc<RefCell<ServiceState>>, index: usize) {
    let mut delay = FIRST_REDIAL;
    let mut failures = 0u64;
    loop {
        wait_while_suppressed(&state, index).await;
        let (address, hello, service, handshake_timeout, max_frame) = {
            let mut service = state.borrow_mut();
            service.stats.link_dials += 1;
            let hello = PeerHello {
                protocol_version: Some(mm_wire::handshake::PROTOCOL_VERSION),
                gateway_name: service.config().name.clone(),
                gateway_id: Some(service.context.gateway_id.clone()),
                heartbeat_ms: service.config().heartbeat.as_millis().min(i32::MAX as u128) as i32,
            };
            let entry = &mut service.mesh.dialers[index];
            entry.state = DialState::Connecting;
            entry.dials += 1;
            (
                entry.address.clone(),
                hello,
                service.name.clone(),
                service.config().handshake_timeout,
                service.config().max_frame,
            )
        };
        match dial(&address, &service, &hello, handshake_timeout, max_frame).await {
            Ok(Dialled {
                stream,
                peer_address,
                ack,
                leftover,
            }) => {
                let is_self = ack.as_ref().and_then(|ack| ack.gateway_id.as_deref())
                    == Some(state.borrow().context.gateway_id.as_str());
                if is_self {
                    let mut service = state.borrow_mut();
                    let entry = &mut service.mesh.dialers[index];
                    entry.state = DialState::IsSelf;
                    entry.peer_id = ack.and_then(|ack| ack.gateway_id);
                    info!(service = %service.name, %address, "configured mesh address is this gateway: not dialling it");
                    return;
                }
                failures = 0;
                delay = FIRST_REDIAL;
                let link_down = state.borrow().mesh.dialers[index].link_down.clone();
                let handle = ConnectionHandle::new(stream);
                {
                    let mut service = state.borrow_mut();
                    let slot =
                        service.attach_dialled_link(index, handle.clone(), peer_address, ack);
                    if !leftover.is_empty() {
                        service.process_leftover(slot, leftover);
                    }
                    service.flush_batch();
                }
                spawn_task(&state, handle);
                link_down.notified().await;
            }
            Err(error) => {
                failures += 1;
                let mut service = state.borrow_mut();
                if failures == 1 {
                    warn!(service = %service.name, %address, %error, "cannot reach mesh peer; will keep redialling");
                } else {
                    debug!(service = %service.name, %address, %error, "mesh redial failed");
                }
                let entry = &mut service.mesh.dialers[index];
                entry.state = DialState::Backoff;
                entry.last_error = Some(error);
            }
        }
        let jitter = delay.mul_f64(rand::random::<f64>() * 0.25);
        tokio::time::sleep(delay + jitter).await;
        let cap = state.borrow().config().redial_max;
        delay = (delay * 2).min(cap);
    }
}

/// While another configured address holds a link to the peer this address reached last time,
/// wait (so aliases never make links flap).
async fn wait_while_suppressed(state: &Rc<RefCell<ServiceState>>, index: usize) {
    loop {
        let changed = {
            let mut service = state.borrow_mut();
            let Some(peer_id) = service.mesh.dialers[index].peer_id.clone() else {
                return;
            };
            if !service.has_dialled_link_to(&peer_id) {
                return;
            }
            service.mesh.dialers[index].state = DialState::Suppressed;
            service.mesh.links_changed.clone()
        };
        changed.notified().await;
    }
}

/// A link that completed its handshake.
struct Dialled {
    stream: TcpStream,
    peer_address: SocketAddr,
    ack: Option<AckInfo>,
    leftover: BytesMut,
}

/// TCP connect, CONNECT_MESH_PEER, wait for ACK. Errors are strings for the stats and logs.
async fn dial(
    address: &str,
    service: &str,
    hello: &PeerHello,
    handshake_timeout: Duration,
    max_frame: u32,
) -> Result<Dialled, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|error| error.to_string())?;
    stream
        .set_nodelay(true)
        .map_err(|error| error.to_string())?;
    let peer_address = stream.peer_addr().map_err(|error| error.to_string())?;
    let mut hello_frame = Vec::new();
    let header = Header {
        subscription_id: 0,
        subject: service.as_bytes(),
        reply_subject: hello.gateway_name.as_bytes(),
        action: Action::ConnectMeshPeer,
    };
    encode_frame(&mut hello_frame, &header, &hello.to_message()).map_err(|e| e.to_string())?;
    write_all(&stream, &hello_frame).await?;
    let mut decoder = FrameDecoder::new(max_frame);
    let ack = tokio::time::timeout(handshake_timeout, async {
        loop {
            match decoder.next_frame().map_err(|error| error.to_string())? {
                Some(frame) => match frame.action() {
                    Some(Action::Ack) => {
                        let body = frame.message().map_err(|error| error.to_string())?;
                        return Ok(AckInfo::from_message(&body));
                    }
                    Some(Action::Error) => {
                        let body = frame.message().unwrap_or_default();
                        return Err(format!("peer refused the link: {body}"));
                    }
                    _ => continue,
                },
                None => {
                    stream.readable().await.map_err(|error| error.to_string())?;
                    let buffer = decoder.buffer_mut();
                    buffer.reserve(4096);
                    match stream.try_read_buf(buffer) {
                        Ok(0) => return Err("peer closed the link before ACK".to_owned()),
                        Ok(_) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(error) => return Err(error.to_string()),
                    }
                }
            }
        }
    })
    .await
    .map_err(|_| "no ACK within the handshake timeout".to_owned())??;
    let leftover = decoder.buffer_mut().split();
    Ok(Dialled {
        stream,
        peer_address,
        ack,
        leftover,
    })
}

/// Writes all of `bytes` to a non-blocking stream.
async fn write_all(stream: &TcpStream, bytes: &[u8]) -> Result<(), String> {
    let mut written = 0;
    while written < bytes.len() {
        stream.writable().await.map_err(|error| error.to_string())?;
        match stream.try_write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(())
}
