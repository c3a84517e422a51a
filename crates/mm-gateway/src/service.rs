//! The service loop: one thread, one single-threaded event loop, all of a service's connections
//! and its subject index. This is the hot path.
//!
//! A batch starts when a connection's socket becomes readable. **Socket to frames**
//! (`crate::inbound`): one read goes into the service's shared read buffer; only an incomplete
//! frame is carried over in the connection. **Validate before acting**: each frame's length is
//! checked before anything is done with it, and its header is parsed in place — the body of a
//! SEND_MESSAGE is never decoded; a bad frame closes only its own connection, with a reason.
//! **Match and enqueue** (`crate::router`): a publish's subject is looked up in the subject index
//! (the publisher's memo first) and the frame is appended to the output buffer of every matching
//! subscription's connection. **Flush once per batch**: after the whole read is processed, every
//! touched connection is written once, so many frames leave in one syscall. **Bounded buffers**:
//! a connection whose queue is above 75 % of its bound pauses the publisher that fed it for a few
//! milliseconds; one past its bound is cut off as a slow consumer.
//!
//! The service owns its parts and wires them; each part owns one thing:
//!
//! | part | owns |
//! |---|---|
//! | [`Connections`] | every connection (clients and links), by generational key |
//! | [`Router`] | the subject index, routing, publishers' memos, the flush set |
//! | [`Mesh`] | links, diallers, interest counting, mesh-wide flush — returns effects |
//! | [`ServiceCounters`] | counters; `crate::stats` builds `_MM.STATS` from the parts |
//!
//! Data flows one way: socket → frames → this loop → output buffers → sockets. The mesh never
//! calls back: it returns [`MeshEffect`]s, which [`Service::apply_mesh_output`] carries out.
//! Every entry point (a readable or writable socket, an attach, a dial result, housekeeping) ends
//! with [`Service::flush`], which writes until nothing is marked.
//!
//! Everything here runs on the service's thread. The state sits in an `Rc<RefCell<_>>` shared by
//! the connection tasks; a borrow lasts exactly one event and never spans an `.await`, so there
//! is no lock on the routing path and no way for two batches to interleave.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mm_wire::handshake::{ConnectOptions, ErrorCode, PeerHello, Protocol};
use mm_wire::subject::{
    is_gateway_subject, validate_pattern_bytes, validate_reply_subject_bytes,
    validate_subject_bytes,
};
use mm_wire::{
    Action, DecodeError, Frame, Header, HeaderView, Message, encode_control_frame, encode_frame,
};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::advisory::{Advisories, RefusedConnect};
use crate::config::GatewayConfig;
use crate::connection::{CloseReason, Connection, ConnectionKey, Connections, NewConnection, Role};
use crate::context::GatewayContext;
use crate::counters::ServiceCounters;
use crate::inbound::{AfterFrame, READ_BUFFER_BYTES, ReadStatus, Split, read_frames};
use crate::log_limit::{echoed, shown};
use crate::memory::{MemoryReturn, release_free_memory};
use crate::mesh::dial::{DialRequest, Dialled, LinkError, dial};
use crate::mesh::{DialVerdict, DialerId, DiscoveryReport, Mesh, MeshEffect, MeshOutput};
use crate::monitoring::Monitor;
use crate::monitoring::snapshot::{ServiceSnapshot, SnapshotRequest};
use crate::permissions::{Access, Grant, PublishVerdict};
use crate::router::{Origin, Router, SubjectCheck, Subscriber};
use crate::socket::{ConnectionHandle, Linger, ReadOutcome, SocketEvents, drive, linger};
use crate::stats::{StatsSources, stats_message};
use crate::subscriptions::Retired;

/// Reads per batch while each read fills the buffer: at most 1 MiB is processed before the
/// batch's output is written, which bounds the latency a burst adds.
const MAX_READS_PER_BATCH: usize = 8;

/// How long one batch goes on reading the bytes of a large frame (more than a read buffer's
/// worth held so far). Such reads go into memory touched for the first time, and faulting it in
/// makes them several times dearer than reads of small frames (3–4 ms for a batch's 1 MiB
/// measured on a 2-core VM): with twenty connections each sending a 64 MiB frame, a healthy
/// client's longest wait was 154–183 ms before this bound, 62–79 ms after.
const LARGE_FRAME_READING_PER_BATCH: Duration = Duration::from_millis(1);

/// How long a connection must have been quiet before its buffers are freed.
const IDLE_RELEASE: Duration = Duration::from_secs(1);

/// How often heartbeats and idle buffers are checked.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_millis(250);

/// How long a stopping service waits for its connections to deliver their last bytes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// How long one batch may hold the service loop before it pauses to let others run (issue #12:
/// "no batch holds a service loop more than ~20 ms"). Checked every
/// [`WORK_BETWEEN_CLOCK_CHECKS`] units of work (a frame, a subscription looked at).
const BATCH_TIME_BUDGET: Duration = Duration::from_millis(10);

/// Units of work between two looks at the clock in a batch.
const WORK_BETWEEN_CLOCK_CHECKS: usize = 2048;

/// Subscriptions of a closing connection taken out of the subject index at once; more are
/// retired in slices between batches, each at most [`RETIRE_SLICE_TIME`] long, so a connection
/// leaving with a million subscriptions does not stall the service (a removal costs 1–5 µs when
/// the index is large and cold in the caches).
const RETIRE_AT_ONCE: usize = 5_000;

/// How long one slice of retiring subscriptions may hold the service loop.
const RETIRE_SLICE_TIME: Duration = Duration::from_millis(5);

/// Estimated memory one idle connection holds in the gateway (measured about 8 KiB: its state,
/// the socket's registration, its task), for deciding when to hand memory back.
const CONNECTION_BYTES_ESTIMATE: usize = 8 * 1024;

/// Estimated memory one subscription holds (index, maps, interest: measured about 460 bytes
/// each at a million subscriptions), for deciding when to hand memory back.
const SUBSCRIPTION_BYTES_ESTIMATE: usize = 400;

/// How long a computed `_MM.STATS` answer is reused.
const STATS_REUSE: Duration = Duration::from_millis(250);

/// A backlog smaller than this is never cut off for the gateway-wide output budget: the budget is
/// about large backlogs.
const MIN_BACKLOG_CUT_FOR_BUDGET: usize = 1024 * 1024;

/// A closing connection's subscriptions still in the subject index.
struct Retiring {
    /// The closed connection.
    key: ConnectionKey,
    /// Whether it was a client (its patterns count as mesh interest).
    is_client: bool,
    /// What is left to take out.
    rest: Box<dyn Iterator<Item = Retired>>,
}

/// A connection handed over by the acceptor after its first frame (CONNECT or
/// CONNECT_MESH_PEER).
pub(crate) struct Incoming {
    /// The socket, detached from the acceptor's runtime.
    pub(crate) stream: std::net::TcpStream,
    /// Its TLS session, if it uses TLS.
    pub(crate) tls: Option<rustls::Connection>,
    /// The peer's address.
    pub(crate) address: SocketAddr,
    /// The first frame.
    pub(crate) first_frame: Frame,
    /// Its decoded body (CONNECT options or peer identity).
    pub(crate) body: Message,
    /// Bytes that arrived behind the first frame; processed in order before anything else.
    pub(crate) leftover: BytesMut,
    /// A client's permissions, when its service has security on.
    pub(crate) grant: Option<Arc<Grant>>,
    /// A mesh peer's ACK was sent already (it carried the authentication challenge).
    pub(crate) mesh_ack_sent: bool,
}

/// Requests from outside the service's thread. (Stopping is the service's cancellation token.)
pub(crate) enum ServiceCommand {
    /// Take over a connection.
    Attach(Box<Incoming>),
    /// Answer with a snapshot of the service (for monitoring).
    Snapshot {
        /// What to include.
        request: SnapshotRequest,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Box<ServiceSnapshot>>,
    },
    /// Publish a message the gateway built, as an `_MM.STATS` answer is published (statistics
    /// for `_COORDINATOR`, SPEC §11).
    Publish {
        /// The subject (valid).
        subject: String,
        /// The encoded body.
        body: Vec<u8>,
    },
    /// What discovery (etcd, DNS) found for this service: a new peer set, or its health.
    Discovered(DiscoveryReport),
    /// The acceptor refused a client of this service: publish the advisory.
    Refused(Box<RefusedConnect>),
}

/// The state of one service, owned by its thread.
pub(crate) struct Service {
    /// The service name.
    name: String,
    /// Shared gateway context.
    context: Arc<GatewayContext>,
    /// Live connections (clients and links).
    pub(crate) connections: Connections,
    /// Subject index, routing, flush set.
    pub(crate) router: Router,
    /// Links, diallers, interest, mesh-wide flush.
    pub(crate) mesh: Mesh,
    /// Effects of mesh events not yet applied.
    mesh_output: MeshOutput,
    /// The allocation of an applied `mesh_output`, kept for reuse.
    spare_mesh_output: MeshOutput,
    /// Set while effects are being applied (effects they cause are applied by the same loop).
    applying_mesh_output: bool,
    /// Counters.
    pub(crate) counters: ServiceCounters,
    /// Rates, top subjects, link round trips and events, for monitoring.
    pub(crate) monitor: Monitor,
    /// Advisories waiting to be published, and their rate limits.
    pub(crate) advisories: Advisories,
    /// The shared read buffer (taken out while a read runs).
    read_buffer: Vec<u8>,
    /// Where frames the gateway builds are encoded before they are queued.
    frame_scratch: Vec<u8>,
    /// The connection whose read started the current batch (registered with subscribers it
    /// pushes past 75 % of their bound, which wake it when they drain).
    batch_origin: Option<ConnectionKey>,
    /// Whether the publisher of the current batch should pause.
    stall_publisher: bool,
    /// The connection whose frames are being processed now.
    reading: Option<ConnectionKey>,
    /// Set when `reading` is closed while its frames are processed: stop processing them.
    reading_closed: bool,
    /// When the current batch should pause.
    batch_deadline: Instant,
    /// Work done in the current batch (frames, subscriptions looked at).
    batch_work: usize,
    /// `batch_work` at which to look at the clock next.
    next_clock_check: usize,
    /// Closed connections whose subscriptions are still being taken out of the index, oldest
    /// first.
    retiring: VecDeque<Retiring>,
    /// Whether the task that retires them in slices is running.
    retiring_task: bool,
    /// The last `_MM.STATS` answer body and when it was computed: without patterns, with them.
    stats_cache: [Option<(Instant, Vec<u8>)>; 2],
    /// Output queued by this service's connections (sum of their `counted_pending`).
    queued_total: usize,
    /// `queued_total` as last added to the gateway-wide total.
    queued_reported: usize,
    /// Memory held for incomplete frames (sum of `counted_partial`).
    partial_total: usize,
    /// `partial_total` as last added to the gateway-wide total.
    partial_reported: usize,
    /// When to hand memory back after a burst.
    memory: MemoryReturn,
    /// Whether the task that resumes unfinished fan-outs runs.
    resuming: bool,
    /// Every task of the service: connections (while they run and linger), dials, timers.
    tasks: TaskTracker,
    /// Cancelled when the service stops; dials and timers end with it.
    cancel: CancellationToken,
    /// Set when the service is shutting down: no new connections.
    shutting_down: bool,
    /// How busy the service is, for the acceptor.
    load: Arc<ServiceLoad>,
    /// Client connections per user (security on), for users' connection limits.
    user_connections: std::collections::HashMap<Option<String>, usize>,
    /// This service, for the tasks it starts.
    this: Weak<RefCell<Service>>,
}

impl Service {
    /// A service with no connections. Its mesh diallers start with [`Service::start_mesh`].
    pub(crate) fn new(
        name: String,
        context: Arc<GatewayContext>,
        tasks: TaskTracker,
        cancel: CancellationToken,
        load: Arc<ServiceLoad>,
    ) -> Rc<RefCell<Service>> {
        let monitoring = context.config.monitoring_enabled();
        let mesh = Mesh::new(
            &name,
            &context.gateway_id,
            context.config.mesh_for(&name),
            context.config.redial_max,
            context.config.discovery.grace,
        );
        let advisories = Advisories::new(&name, &context.config.name, &context.gateway_id);
        Rc::new_cyclic(|this| {
            RefCell::new(Service {
                name,
                context,
                advisories,
                connections: Connections::with_key(),
                router: Router::with_subject_tally(monitoring),
                mesh,
                mesh_output: MeshOutput::default(),
                spare_mesh_output: MeshOutput::default(),
                applying_mesh_output: false,
                counters: ServiceCounters::new(),
                monitor: Monitor::new(monitoring),
                read_buffer: vec![0; READ_BUFFER_BYTES],
                frame_scratch: Vec::new(),
                batch_origin: None,
                stall_publisher: false,
                reading: None,
                reading_closed: false,
                batch_deadline: Instant::now(),
                batch_work: 0,
                next_clock_check: 0,
                retiring: VecDeque::new(),
                retiring_task: false,
                stats_cache: [None, None],
                queued_total: 0,
                queued_reported: 0,
                partial_total: 0,
                partial_reported: 0,
                memory: MemoryReturn::default(),
                resuming: false,
                tasks,
                cancel,
                shutting_down: false,
                load,
                user_connections: std::collections::HashMap::new(),
                this: this.clone(),
            })
        })
    }

    fn config(&self) -> &GatewayConfig {
        &self.context.config
    }

    // ---------------------------------------------------------------------------------------
    // Attaching connections
    // ---------------------------------------------------------------------------------------

    /// Adds a connection; the caller queues its ACK and starts its task.
    fn insert_connection(&mut self, new: NewConnection) -> ConnectionKey {
        let output_bound = if new.role.is_link() {
            self.config().link_output_bound()
        } else {
            self.config().client_output_bound()
        };
        let id = self.context.next_connection_id();
        self.counters.connections_total += 1;
        let is_client = !new.role.is_link();
        let key = self
            .connections
            .insert(Connection::new(id, new, output_bound));
        self.load
            .connections
            .store(self.connections.len(), Ordering::SeqCst);
        if is_client {
            self.load.clients.fetch_add(1, Ordering::SeqCst);
            if !self.mesh.is_started() {
                // Meshed by the `*` entry: the first client starts the diallers.
                self.start_mesh();
            }
        }
        key
    }

    /// Attaches a connection handed over by the acceptor: answers its CONNECT (or
    /// CONNECT_MESH_PEER) with ACK, then processes the frames that arrived behind it, in order.
    /// Returns its key (None if it was not attached).
    pub(crate) fn attach(&mut self, incoming: Incoming) -> Option<ConnectionKey> {
        let Incoming {
            stream,
            tls,
            address,
            first_frame,
            body,
            leftover,
            grant,
            mesh_ack_sent,
        } = incoming;
        if self.shutting_down {
            return None;
        }
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(error) => {
                warn!(%address, %error, "cannot register connection with the service loop");
                return None;
            }
        };
        let handle = ConnectionHandle::new(stream, tls);
        let name = String::from_utf8_lossy(first_frame.header().reply_subject).into_owned();
        let key = if first_frame.action() == Some(Action::ConnectMeshPeer) {
            self.attach_accepted_link(
                handle.clone(),
                address,
                name,
                &PeerHello::from_message(&body),
                mesh_ack_sent,
            )
        } else {
            self.attach_client(handle.clone(), address, name, &body, grant)
        };
        match key {
            Some(key) => self.start_connection(key, handle, leftover),
            // A link to ourselves: answered, and closing.
            None => {
                self.tasks.spawn_local(async move { linger(&handle).await });
            }
        }
        self.flush();
        key
    }

    fn attach_client(
        &mut self,
        handle: Rc<ConnectionHandle>,
        address: SocketAddr,
        name: String,
        body: &Message,
        grant: Option<Arc<Grant>>,
    ) -> Option<ConnectionKey> {
        let (options, warning) = ConnectOptions::from_message(body);
        if let Some(warning) = warning {
            warn!(%address, client = %name, "{warning}");
        }
        let protocol = options.protocol();
        let max_frame = grant
            .as_ref()
            .and_then(|grant| grant.max_frame)
            .map_or(self.config().max_frame, |max| {
                max.min(self.config().max_frame)
            });
        let over_limit = grant.as_ref().and_then(|grant| {
            let limit = grant.max_connections?;
            let held = self.user_connections.get(&grant.user).copied().unwrap_or(0);
            (held >= limit).then_some(limit)
        });
        let access = grant.map(|grant| Box::new(Access::new(grant, protocol == Protocol::Mm2)));
        if let (Some(limit), Some(access)) = (over_limit, &access) {
            warn!(
                service = %self.name,
                %address,
                client = %name,
                user = access.grant.who(),
                limit,
                "the user's connection limit is reached: refusing connection"
            );
            if protocol == Protocol::Mm2 {
                let mut bytes = Vec::new();
                let _ = encode_frame(
                    &mut bytes,
                    &Header::new(Action::Error),
                    &ErrorCode::LimitExceeded.message(&format!(
                        "user `{}` may have at most {limit} connections",
                        access.grant.who()
                    )),
                );
                handle.close_with(&bytes, Linger::Normal);
            } else {
                handle.close_with(&[], Linger::Normal);
            }
            return None;
        }
        if let Some(access) = &access {
            *self
                .user_connections
                .entry(access.grant.user.clone())
                .or_insert(0) += 1;
        }
        let mut ack = self.context.ack_info(false);
        ack.max_frame = max_frame;
        ack.inbox_prefix = access
            .as_ref()
            .and_then(|access| access.inbox_prefix())
            .map(str::to_owned);
        let key = self.insert_connection(NewConnection {
            handle,
            address,
            name,
            role: Role::Client {
                no_responders: protocol == Protocol::Mm2 && options.no_responders,
            },
            protocol,
            peer_heartbeat: Duration::from_millis(options.heartbeat_ms.max(0) as u64),
            access,
            max_frame,
        });
        let ack = match protocol {
            Protocol::Mm2 => ack.client_message(),
            Protocol::Mm1 => Message::new(),
        };
        self.send_frame(key, &Header::new(Action::Ack), &ack);
        info!(
            service = %self.name,
            connection = %self.connections[key].describe(),
            protocol = %protocol,
            client_library = options.client_name.as_deref().unwrap_or(""),
            "client connected"
        );
        Some(key)
    }

    /// A peer dialled us. Returns `None` for a link to ourselves, which is answered (so the
    /// dialler learns it) and closed.
    fn attach_accepted_link(
        &mut self,
        handle: Rc<ConnectionHandle>,
        address: SocketAddr,
        name: String,
        hello: &PeerHello,
        ack_sent: bool,
    ) -> Option<ConnectionKey> {
        let protocol = hello.protocol();
        let ack = match protocol {
            Protocol::Mm2 => self.context.ack_info(true).mesh_message(),
            Protocol::Mm1 => Message::new(),
        };
        if self.mesh.is_self(hello.gateway_id.as_deref()) {
            info!(service = %self.name, %address, "mesh link from this gateway to itself: closing");
            let mut bytes = Vec::new();
            let _ = encode_frame(&mut bytes, &Header::new(Action::Ack), &ack);
            handle.close_with(&bytes, Linger::Normal);
            return None;
        }
        if let Err(refused) = self
            .mesh
            .may_accept_link(hello.gateway_id.as_deref(), Instant::now())
        {
            warn!(service = %self.name, %address, peer = %name, "mesh link refused: {refused}");
            let mut bytes = Vec::new();
            if protocol == Protocol::Mm2 {
                let _ = encode_frame(
                    &mut bytes,
                    &Header::new(Action::Error),
                    &ErrorCode::RateLimited.message(&refused.to_string()),
                );
            }
            handle.close_with(&bytes, Linger::Normal);
            return None;
        }
        let key = self.insert_connection(NewConnection {
            handle,
            address,
            name,
            role: Role::AcceptedLink {
                peer_id: hello.gateway_id.clone(),
            },
            protocol,
            peer_heartbeat: Duration::from_millis(hello.heartbeat_ms.max(0) as u64),
            access: None,
            max_frame: self.config().max_frame,
        });
        if !ack_sent {
            self.send_frame(key, &Header::new(Action::Ack), &ack);
        }
        self.advisories
            .link_up(Instant::now(), &self.connections[key]);
        let describe = format!("{} ({protocol})", self.connections[key].describe());
        self.monitor.link_up(&self.name, describe.clone(), None);
        self.mesh.accepted_link_up(
            key,
            hello.gateway_id.clone(),
            describe,
            &mut self.mesh_output,
        );
        self.apply_mesh_output();
        Some(key)
    }

    /// Processes what arrived behind a connection's handshake, then starts its task.
    fn start_connection(
        &mut self,
        key: ConnectionKey,
        handle: Rc<ConnectionHandle>,
        leftover: BytesMut,
    ) {
        if !leftover.is_empty() {
            self.process_leftover(key, leftover);
        }
        if let Some(this) = self.this.upgrade() {
            self.tasks.spawn_local(drive(this, handle, key));
        }
    }

    /// Processes bytes that arrived behind a handshake frame, before the connection's task runs
    /// (what a pause leaves is processed by the task first).
    fn process_leftover(&mut self, key: ConnectionKey, leftover: BytesMut) {
        let mut max_frame = self.config().max_frame;
        if let Some(connection) = self.connections.get_mut(key) {
            max_frame = connection.max_frame;
            connection.counters.read_calls += 1;
            connection.last_received = Instant::now();
        }
        self.start_batch();
        self.reading = Some(key);
        self.reading_closed = false;
        let mut on_frame = |frame: &[u8]| self.on_frame(key, frame);
        let split = crate::inbound::split_frames(&leftover, max_frame, &mut on_frame);
        self.reading = None;
        let rest = match split {
            Split::Complete(consumed) | Split::Paused(consumed) => consumed,
            Split::Stopped => return,
            Split::Malformed(error) => {
                self.reject_stream(key, error);
                return;
            }
        };
        if let Some(connection) = self.connections.get_mut(key) {
            connection
                .inbound_partial
                .extend_from_slice(&leftover[rest..]);
        }
        self.count_partial(key);
    }

    /// Starts a batch's time budget.
    fn start_batch(&mut self) {
        self.batch_deadline = Instant::now() + BATCH_TIME_BUDGET;
        self.batch_work = 0;
        self.next_clock_check = WORK_BETWEEN_CLOCK_CHECKS;
    }

    /// Whether the batch has used up its time (looks at the clock only every so much work).
    fn batch_over(&mut self) -> bool {
        if self.batch_work < self.next_clock_check {
            return false;
        }
        self.next_clock_check = self.batch_work + WORK_BETWEEN_CLOCK_CHECKS;
        Instant::now() >= self.batch_deadline
    }

    // ---------------------------------------------------------------------------------------
    // Mesh: starting, dialling, applying effects
    // ---------------------------------------------------------------------------------------

    /// Starts the mesh diallers: at start for a service listed by name in `StartupMeshes`, with
    /// the first client for one meshed by the `*` entry (so peers' links alone never make two
    /// gateways keep each other's on-demand services running).
    pub(crate) fn start_mesh(&mut self) {
        if self.context.config.mesh_for(&self.name).is_some() {
            self.load.dialling.store(true, Ordering::SeqCst);
        }
        self.mesh.start(&mut self.mesh_output);
        self.apply_mesh_output();
    }

    /// Whether the diallers start with the service (else with its first client).
    fn dials_from_start(&self) -> bool {
        let config = &self.context.config;
        config.configured_mesh(&self.name).is_some() || config.mesh_for(&self.name).is_none()
    }

    /// Carries out what mesh events asked for. Effects caused by applying effects (closing a
    /// replaced link withdraws flushes waiting on it) are applied by the same call, in order.
    fn apply_mesh_output(&mut self) {
        if self.applying_mesh_output || self.mesh_output.is_empty() {
            return;
        }
        self.applying_mesh_output = true;
        while !self.mesh_output.is_empty() {
            let spare = std::mem::take(&mut self.spare_mesh_output);
            let mut output = std::mem::replace(&mut self.mesh_output, spare);
            let effects = std::mem::take(&mut output.effects);
            for effect in &effects {
                match effect {
                    MeshEffect::Send { to, frame } => {
                        self.queue(*to, output.frame(frame.clone()));
                    }
                    MeshEffect::Close { link, reason } => self.close(*link, *reason),
                    MeshEffect::DialAfter {
                        dialer,
                        attempt,
                        delay,
                    } => {
                        let (dialer, attempt) = (*dialer, *attempt);
                        self.spawn_timer(*delay, move |service| service.dial_due(dialer, attempt));
                    }
                    MeshEffect::DropAfter {
                        dialer,
                        departure,
                        delay,
                    } => {
                        let (dialer, departure) = (*dialer, *departure);
                        self.spawn_timer(*delay, move |service| {
                            service.drop_due(dialer, departure)
                        });
                    }
                    MeshEffect::Connect {
                        dialer,
                        attempt,
                        address,
                    } => self.spawn_dial(*dialer, *attempt, address.clone()),
                }
            }
            output.effects = effects;
            output.clear();
            self.spare_mesh_output = output;
        }
        self.applying_mesh_output = false;
    }

    /// Starts the task that goes on with fan-outs that outlasted their batch, one batch's time
    /// at a time, giving way to every other task of the service in between (unless it runs).
    fn spawn_resumer(&mut self) {
        if self.resuming {
            return;
        }
        let Some(this) = self.this.upgrade() else {
            return;
        };
        self.resuming = true;
        let cancel = self.cancel.clone();
        self.tasks.spawn_local(async move {
            cancel
                .run_until_cancelled(async {
                    loop {
                        tokio::task::yield_now().await;
                        if this.borrow_mut().resume_routes() {
                            break;
                        }
                    }
                })
                .await;
        });
    }

    /// One batch of unfinished fan-outs; true when none is left (the resumer then ends).
    fn resume_routes(&mut self) -> bool {
        self.start_batch();
        while let Some(outcome) = self
            .router
            .resume(&mut self.connections, self.batch_deadline)
        {
            self.batch_work += outcome.visited;
            if outcome.dropped > 0 || self.router.has_cut_offs() {
                self.after_route(outcome.dropped, outcome.frame_len);
            }
            if outcome.unfinished {
                break;
            }
        }
        self.flush();
        let finished = !self.router.has_unfinished();
        if finished {
            self.resuming = false;
        }
        finished
    }

    /// Runs `due` on the service after `delay`, unless the service stops first (a mesh timer:
    /// the mesh decides what a late one means, so a stale timer is harmless).
    fn spawn_timer(&self, delay: Duration, due: impl FnOnce(&mut Service) + 'static) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let cancel = self.cancel.clone();
        self.tasks.spawn_local(async move {
            cancel
                .run_until_cancelled(async {
                    tokio::time::sleep(delay).await;
                    due(&mut this.borrow_mut());
                })
                .await;
        });
    }

    /// A leaving peer's grace period is over.
    fn drop_due(&mut self, dialer: DialerId, departure: u64) {
        self.mesh.drop_due(dialer, departure, &mut self.mesh_output);
        self.apply_mesh_output();
        self.flush();
    }

    /// Discovery reported on this service's peers.
    pub(crate) fn discovered(&mut self, report: DiscoveryReport) {
        self.mesh.discovery_report(report, &mut self.mesh_output);
        self.stats_cache = [None, None];
        self.apply_mesh_output();
        self.flush();
    }

    fn spawn_dial(&self, dialer: DialerId, attempt: u64, address: String) {
        let Some(this) = self.this.upgrade() else {
            return;
        };
        let security = self.context.security.current();
        let request = DialRequest {
            address,
            service: self.name.clone(),
            hello: self.context.peer_hello(),
            handshake_timeout: self.config().handshake_timeout,
            max_frame: self.config().max_frame,
            tls: security.dial_tls.clone(),
            secret: security.mesh_secret.clone(),
        };
        let cancel = self.cancel.clone();
        self.tasks.spawn_local(async move {
            cancel
                .run_until_cancelled(async {
                    let result = dial(&request).await;
                    this.borrow_mut().dial_finished(dialer, attempt, result);
                })
                .await;
        });
    }

    /// A dialler's timer fired.
    fn dial_due(&mut self, dialer: DialerId, attempt: u64) {
        self.mesh.dial_due(dialer, attempt, &mut self.mesh_output);
        self.apply_mesh_output();
        self.flush();
    }

    /// A dial finished: attach the link, or back off.
    fn dial_finished(
        &mut self,
        dialer: DialerId,
        attempt: u64,
        result: Result<Dialled, LinkError>,
    ) {
        match result {
            Err(error) => {
                self.mesh
                    .dial_failed(dialer, attempt, error, &mut self.mesh_output);
                self.apply_mesh_output();
            }
            Ok(dialled) => self.attach_dialled_link(dialer, attempt, dialled),
        }
        self.flush();
    }

    /// A dialled link got its ACK: attach it, unless it leads back to us or is stale.
    fn attach_dialled_link(&mut self, dialer: DialerId, attempt: u64, dialled: Dialled) {
        let Dialled {
            stream,
            tls,
            peer_address,
            ack,
            leftover,
        } = dialled;
        let peer_id = ack.as_ref().and_then(|ack| ack.gateway_id.clone());
        match self
            .mesh
            .dial_succeeded(dialer, attempt, peer_id.as_deref())
        {
            DialVerdict::Attach => {}
            DialVerdict::IsSelf => {
                // Flushes that waited for this dialler's first attempt wait no more.
                self.mesh.recheck_flushes(&mut self.mesh_output);
                self.apply_mesh_output();
                return;
            }
            DialVerdict::Stale => return,
        }
        if self.shutting_down {
            return;
        }
        let Some(configured_address) = self.mesh.dialer(dialer).map(|entry| entry.address.clone())
        else {
            return;
        };
        let (protocol, peer_heartbeat, name) = match &ack {
            Some(ack) => (
                Protocol::Mm2,
                Duration::from_millis(ack.heartbeat_ms.max(0) as u64),
                ack.gateway_name.clone(),
            ),
            None => (Protocol::Mm1, Duration::ZERO, configured_address.clone()),
        };
        let handle = ConnectionHandle::new(stream, tls);
        let key = self.insert_connection(NewConnection {
            handle: handle.clone(),
            address: peer_address,
            name,
            role: Role::DialledLink {
                peer_id: peer_id.clone(),
                address: configured_address,
            },
            protocol,
            peer_heartbeat,
            access: None,
            max_frame: self.config().max_frame,
        });
        let describe = self.connections[key].describe();
        let address = self
            .mesh
            .dialer(dialer)
            .map(|dialer| dialer.address.clone());
        self.monitor
            .link_up(&self.name, describe, address.as_deref());
        self.advisories
            .link_up(Instant::now(), &self.connections[key]);
        self.mesh
            .dialled_link_up(dialer, key, peer_id, protocol, &mut self.mesh_output);
        self.apply_mesh_output();
        self.start_connection(key, handle, leftover);
    }

    // ---------------------------------------------------------------------------------------
    // The batch: read, process every frame, flush
    // ---------------------------------------------------------------------------------------

    /// Whether the connection holds more than a read buffer's worth of an incomplete frame.
    fn receiving_large_frame(&self, key: ConnectionKey) -> bool {
        self.connections
            .get(key)
            .is_some_and(|connection| connection.inbound_partial.len() > READ_BUFFER_BYTES)
    }

    /// One read from the socket, and every complete frame it completes.
    fn read_once(&mut self, key: ConnectionKey) -> ReadProgress {
        let Some(connection) = self.connections.get_mut(key) else {
            return ReadProgress::Done;
        };
        let handle = connection.handle.clone();
        let mut partial = std::mem::take(&mut connection.inbound_partial);
        let max_frame = connection.max_frame;
        let mut shared = std::mem::take(&mut self.read_buffer);
        self.reading = Some(key);
        self.reading_closed = false;
        let result = read_frames(&handle, &mut partial, &mut shared, max_frame, |frame| {
            self.on_frame(key, frame)
        });
        self.reading = None;
        self.read_buffer = shared;
        if let Some(connection) = self.connections.get_mut(key) {
            connection.inbound_partial = partial;
            if result.bytes > 0 {
                connection.counters.read_calls += 1;
                connection.last_received = Instant::now();
            }
        }
        self.count_partial(key);
        match result.status {
            ReadStatus::Filled => ReadProgress::More,
            ReadStatus::Paused => ReadProgress::Paused,
            status => {
                self.read_ended(key, status);
                ReadProgress::Done
            }
        }
    }

    /// Acts on how a read (or the processing of handshake leftovers) ended.
    fn read_ended(&mut self, key: ConnectionKey, status: ReadStatus) {
        match status {
            ReadStatus::Filled | ReadStatus::Drained | ReadStatus::WouldBlock => {}
            ReadStatus::Paused | ReadStatus::Stopped => {}
            ReadStatus::PeerClosed => self.close(key, CloseReason::PeerClosed),
            ReadStatus::Failed(error) => {
                debug!(%error, "read failed");
                self.close(key, CloseReason::ReadError);
            }
            ReadStatus::Malformed(error) => self.reject_stream(key, error),
        }
    }

    /// One frame.
    fn on_frame(&mut self, key: ConnectionKey, frame: &[u8]) -> AfterFrame {
        let header = match HeaderView::parse(frame) {
            Ok(header) => header,
            Err(error) => {
                self.reject_stream(key, error);
                return AfterFrame::Stop;
            }
        };
        let Some(connection) = self.connections.get_mut(key) else {
            return AfterFrame::Stop;
        };
        connection.counters.frames_in += 1;
        connection.counters.bytes_in += frame.len() as u64;
        let is_link = connection.role.is_link();
        let secured = connection.access.is_some();
        match header.action() {
            Some(Action::SendMessage) => {
                let origin = if is_link {
                    Origin::Peer(key)
                } else {
                    Origin::Client(key)
                };
                // Security on: a publish without a reply subject has its subject checked by the
                // router's check (a repeat of an allowed subject costs nothing more); one with a
                // reply subject is checked whole first.
                if !secured {
                    self.on_publish(origin, frame, &header, Permission::Unchecked);
                } else if header.reply_subject.is_empty() {
                    self.on_publish(origin, frame, &header, Permission::Check);
                } else if let Some(verdict) = self.publish_permitted(key, &header) {
                    self.on_publish(origin, frame, &header, Permission::Decided(verdict));
                }
                // (Refused: answered; the next frame goes on.)
            }
            Some(Action::Subscribe) => self.on_subscribe(key, &header),
            Some(Action::Unsubscribe) => self.on_unsubscribe(key, &header),
            Some(Action::Ping) => self.on_ping(key, frame, &header),
            Some(Action::Pong) => self.on_pong(key, frame, &header),
            Some(Action::Disconnect) => {
                let reason = if is_link {
                    CloseReason::PeerClosed
                } else {
                    CloseReason::Disconnect
                };
                self.close(key, reason);
            }
            Some(Action::Connect | Action::ConnectMeshPeer) => {
                self.misuse(key, ErrorCode::Protocol, 0, &[], "second CONNECT ignored");
            }
            Some(Action::Error) => {
                if connection.warnings.allow(Instant::now()) {
                    let text = Frame::parse(bytes::Bytes::copy_from_slice(frame))
                        .and_then(|frame| frame.message())
                        .map(|message| message.to_string())
                        .unwrap_or_default();
                    warn!(connection = %connection.describe(), error = %shown(text.as_bytes()), "peer sent ERROR");
                } else {
                    self.counters.log_lines_suppressed += 1;
                }
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
        self.batch_work += 1;
        if self.reading_closed {
            AfterFrame::Stop
        } else if self.batch_over()
            || (self.router.has_unfinished() && self.router.is_unfinished_from(key))
        {
            AfterFrame::Pause
        } else {
            AfterFrame::Continue
        }
    }

    // ---------------------------------------------------------------------------------------
    // Publish: validate, then route
    // ---------------------------------------------------------------------------------------

    /// Whether a client with permissions may publish this frame with its reply subject: the
    /// subject (checked once each and cached), and the reply subject (the client's own inbox, or
    /// a subject it may publish to). A refused frame is answered PERMISSION_DENIED (MM/2) or
    /// logged (MM/1): `None`. Invalid subjects pass, for the router's check to report them.
    fn publish_permitted(
        &mut self,
        key: ConnectionKey,
        header: &HeaderView<'_>,
    ) -> Option<PublishVerdict> {
        let Some(access) = self
            .connections
            .get_mut(key)
            .and_then(|connection| connection.access.as_deref_mut())
        else {
            return Some(PublishVerdict::Allowed);
        };
        let verdict = access.check_publish(header.subject, Instant::now);
        if verdict == PublishVerdict::Denied {
            if validate_subject_bytes(header.subject).is_err() {
                return Some(PublishVerdict::Allowed);
            }
            self.deny(
                key,
                0,
                header.subject,
                "not allowed to publish to this subject",
            );
            return None;
        }
        if !header.reply_subject.is_empty() && !access.check_reply_subject(header.reply_subject) {
            if validate_reply_subject_bytes(header.reply_subject).is_err() {
                return Some(verdict);
            }
            self.deny(
                key,
                0,
                header.reply_subject,
                "reply subject not allowed: use your own inbox (the ACK's inbox_prefix) or a \
                 subject you may publish to",
            );
            return None;
        }
        Some(verdict)
    }

    fn on_publish(
        &mut self,
        origin: Origin,
        frame: &[u8],
        header: &HeaderView<'_>,
        permission: Permission,
    ) {
        let publisher = origin.publisher();
        // Validate before acting (SPEC §6.1): the reply subject, then the subject (and, security
        // on, whether the client may publish to it) — unless it is the publisher's last one,
        // which passed (the router's memo; the common case costs one lookup and one comparison).
        if !header.reply_subject.is_empty()
            && let Err(error) = validate_reply_subject_bytes(header.reply_subject)
        {
            if let Some(key) = publisher {
                self.misuse(
                    key,
                    ErrorCode::InvalidSubject,
                    0,
                    header.reply_subject,
                    &format!("reply subject: {error}"),
                );
            }
            return;
        }
        let mut refused = None;
        let deadline = Some(self.batch_deadline);
        let routed = self.router.route_checked(
            origin,
            frame,
            header.subject,
            header.reply_subject,
            &mut self.connections,
            deadline,
            |subject, connections| {
                if let Err(error) = validate_subject_bytes(subject) {
                    refused = Some(Refused::Invalid(error));
                    return SubjectCheck::Refused;
                }
                let verdict = match permission {
                    Permission::Check => publisher
                        .and_then(|key| connections.get_mut(key))
                        .and_then(|connection| connection.access.as_deref_mut())
                        .map_or(PublishVerdict::Allowed, |access| {
                            access.check_publish(subject, Instant::now)
                        }),
                    Permission::Decided(verdict) => verdict,
                    Permission::Unchecked => PublishVerdict::Allowed,
                };
                if verdict == PublishVerdict::Denied {
                    refused = Some(Refused::Denied);
                    return SubjectCheck::Refused;
                }
                if matches!(origin, Origin::Client(_)) && is_gateway_subject(subject) {
                    refused = Some(Refused::GatewayRequest);
                    return SubjectCheck::Refused;
                }
                if verdict == PublishVerdict::Response {
                    SubjectCheck::Once
                } else {
                    SubjectCheck::Repeatable
                }
            },
        );
        let Some(outcome) = routed else {
            match (refused, publisher) {
                (Some(Refused::GatewayRequest), Some(key)) => {
                    self.on_gateway_request(key, frame, header)
                }
                (Some(Refused::Denied), Some(key)) => self.deny(
                    key,
                    0,
                    header.subject,
                    "not allowed to publish to this subject",
                ),
                (Some(Refused::Invalid(error)), Some(key)) => self.misuse(
                    key,
                    ErrorCode::InvalidSubject,
                    0,
                    header.subject,
                    &error.to_string(),
                ),
                _ => {}
            }
            return;
        };
        self.batch_work += outcome.visited;
        if outcome.dropped > 0 || self.router.has_cut_offs() {
            self.after_route(outcome.dropped, frame.len());
        }
        if outcome.unfinished {
            self.spawn_resumer();
        }
        if !outcome.delivered {
            self.counters.unmatched_publishes += 1;
            if let Origin::Client(key) = origin
                && !header.reply_subject.is_empty()
                && !outcome.matched
            {
                self.send_no_responders(key, header.subject, header.reply_subject);
            }
        }
    }

    /// Counts what routing dropped, and closes the connections it found past their bound.
    #[cold]
    fn after_route(&mut self, dropped: usize, frame_len: usize) {
        if dropped > 0 {
            self.counters.dropped_frames += dropped as u64;
            self.counters.dropped_bytes += (dropped * frame_len) as u64;
        }
        for key in self.router.take_cut_offs() {
            match self
                .connections
                .get(key)
                .and_then(|connection| connection.cut_off)
            {
                Some(CloseReason::SlowConsumer) => {
                    self.cut_off_slow(key, CloseReason::SlowConsumer)
                }
                Some(reason) => self.close(key, reason),
                None => {}
            }
        }
    }

    /// NO_RESPONDERS (SPEC §7.4) to a client that asked for it.
    fn send_no_responders(&mut self, key: ConnectionKey, subject: &[u8], reply_subject: &[u8]) {
        let asked = self.connections.get(key).is_some_and(|connection| {
            connection.role
                == Role::Client {
                    no_responders: true,
                }
        });
        if !asked {
            return;
        }
        let subscription_id = self
            .router
            .subscription_matching(key, reply_subject)
            .unwrap_or(0);
        let header = Header {
            subscription_id,
            subject: reply_subject,
            reply_subject: subject,
            action: Action::NoResponders,
        };
        self.send_frame(key, &header, &Message::new());
        self.counters.no_responders_sent += 1;
    }

    // ---------------------------------------------------------------------------------------
    // Subscriptions
    // ---------------------------------------------------------------------------------------

    fn on_subscribe(&mut self, key: ConnectionKey, header: &HeaderView<'_>) {
        let id = header.subscription_id;
        let limit = self.config().limits.max_subscriptions_per_connection;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let counted = counts_patterns(connection);
        if !counted {
            if id == 0 {
                self.misuse(
                    key,
                    ErrorCode::Protocol,
                    0,
                    header.subject,
                    "subscription id 0",
                );
                return;
            }
            if connection.subscriptions.contains(id) {
                self.misuse(
                    key,
                    ErrorCode::DuplicateSubscriptionId,
                    id,
                    header.subject,
                    &format!("subscription id {id} is already in use"),
                );
                return;
            }
        }
        let limit = connection
            .access
            .as_ref()
            .and_then(|access| access.grant.max_subscriptions)
            .map_or(limit, |user_limit| user_limit.min(limit));
        if connection.subscriptions.len() >= limit {
            self.misuse(
                key,
                ErrorCode::LimitExceeded,
                id,
                header.subject,
                &format!("a connection may hold at most {limit} subscriptions"),
            );
            return;
        }
        if let Err(error) = validate_pattern_bytes(header.subject) {
            self.misuse(
                key,
                ErrorCode::InvalidSubject,
                id,
                header.subject,
                &error.to_string(),
            );
            return;
        }
        if connection
            .access
            .as_ref()
            .is_some_and(|access| !access.check_subscribe(header.subject))
        {
            self.deny(
                key,
                id,
                header.subject,
                "not allowed to subscribe to this pattern",
            );
            return;
        }
        if counted {
            // An MM/1 gateway's link: its ids mean nothing; the pattern is counted.
            if connection.subscriptions.add_reference(header.subject) {
                self.router.subscribe(
                    header.subject,
                    Subscriber {
                        connection: key,
                        subscription_id: 0,
                    },
                );
            }
            return;
        }
        connection.subscriptions.insert(id, header.subject);
        let is_client = !connection.role.is_link();
        self.router.subscribe(
            header.subject,
            Subscriber {
                connection: key,
                subscription_id: id,
            },
        );
        if is_client {
            self.mesh
                .interest_added(header.subject, &mut self.mesh_output);
            self.apply_mesh_output();
        }
    }

    fn on_unsubscribe(&mut self, key: ConnectionKey, header: &HeaderView<'_>) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if counts_patterns(connection) {
            // An MM/1 gateway's link: one reference less to the pattern, whatever the id.
            if connection.subscriptions.remove_reference(header.subject) == Some(true) {
                self.router.unsubscribe(
                    header.subject,
                    Subscriber {
                        connection: key,
                        subscription_id: 0,
                    },
                );
            }
            return;
        }
        let id = header.subscription_id;
        let found = if connection.subscriptions.contains(id) {
            Some(id)
        } else if !header.subject.is_empty() {
            // MM/1: an unknown id with a subject removes the oldest subscription with that
            // pattern (SPEC §6.2), found through an index, not a scan.
            connection.subscriptions.oldest_with_pattern(header.subject)
        } else {
            None
        };
        match found {
            Some(id) => self.remove_subscription(key, id),
            None => self.misuse(
                key,
                ErrorCode::UnknownSubscriptionId,
                id,
                header.subject,
                &format!("unknown subscription id {id}"),
            ),
        }
    }

    fn remove_subscription(&mut self, key: ConnectionKey, id: u32) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let Some(pattern) = connection.subscriptions.remove(id) else {
            return;
        };
        let is_client = !connection.role.is_link();
        self.forget_subscription(key, id, &pattern, is_client);
        self.apply_mesh_output();
    }

    /// Takes a removed subscription out of the index and, for a client, out of the mesh
    /// interest (the caller applies the mesh output).
    fn forget_subscription(
        &mut self,
        key: ConnectionKey,
        id: u32,
        pattern: &[u8],
        is_client: bool,
    ) {
        self.router.unsubscribe(
            pattern,
            Subscriber {
                connection: key,
                subscription_id: id,
            },
        );
        if is_client {
            self.mesh.interest_removed(pattern, &mut self.mesh_output);
        }
    }

    // ---------------------------------------------------------------------------------------
    // PING / PONG (heartbeats and flush, SPEC §7.3, §7.5)
    // ---------------------------------------------------------------------------------------

    fn on_ping(&mut self, key: ConnectionKey, frame: &[u8], header: &HeaderView<'_>) {
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        if connection.protocol == Protocol::Mm1 {
            debug!(connection = %connection.describe(), "PING from an MM/1 peer ignored");
            return;
        }
        let body = &frame[header.body_offset..];
        // Everything this connection sent before the PING has been processed (frames are handled
        // in order), so the PONG can go now — unless the client asks for a mesh-wide flush.
        if !connection.role.is_link() && mm_wire::handshake::is_mesh_flush(&decode_or_empty(body)) {
            if let Err(refused) = self.mesh.start_flush(key, body, &mut self.mesh_output) {
                self.misuse(key, ErrorCode::LimitExceeded, 0, &[], &refused.to_string());
            }
            self.apply_mesh_output();
            return;
        }
        self.send_frame_with_body(key, &Header::new(Action::Pong), body);
    }

    fn on_pong(&mut self, key: ConnectionKey, frame: &[u8], header: &HeaderView<'_>) {
        if self
            .connections
            .get(key)
            .is_some_and(|connection| connection.role.is_link())
        {
            let body = decode_or_empty(&frame[header.body_offset..]);
            self.monitor.link_pong(key, &body, Instant::now());
            self.mesh.link_pong(key, &body, &mut self.mesh_output);
            self.apply_mesh_output();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Gateway requests (`_MM.`, SPEC §9)
    // ---------------------------------------------------------------------------------------

    fn on_gateway_request(&mut self, key: ConnectionKey, frame: &[u8], header: &HeaderView<'_>) {
        if header.reply_subject.is_empty() {
            self.misuse(
                key,
                ErrorCode::InvalidSubject,
                0,
                header.subject,
                "publishing to _MM. subjects is reserved to the gateway",
            );
            return;
        }
        if header.subject != b"_MM.STATS" {
            self.misuse(
                key,
                ErrorCode::InvalidSubject,
                0,
                header.subject,
                "the gateway does not answer this _MM. subject",
            );
            return;
        }
        let now = Instant::now();
        let allowed = self
            .connections
            .get_mut(key)
            .is_some_and(|connection| connection.stats_requests.take(now));
        if !allowed {
            self.counters.stats_requests_refused += 1;
            self.misuse(
                key,
                ErrorCode::RateLimited,
                0,
                header.subject,
                "at most 4 _MM.STATS answers a second (8 in a burst)",
            );
            return;
        }
        // `{subscriptions: true}` asks for every listed connection's patterns too.
        let with_patterns = decode_or_empty(&frame[header.body_offset..])
            .try_bool("subscriptions")
            .unwrap_or(false);
        self.refresh_stats(now, with_patterns);
        let Some((_, body)) = &self.stats_cache[usize::from(with_patterns)] else {
            return;
        };
        let mut frame = Vec::new();
        let reply = Header {
            subscription_id: 0,
            subject: header.reply_subject,
            reply_subject: &[],
            action: Action::SendMessage,
        };
        if mm_wire::encode_frame_with_body(&mut frame, &reply, body).is_ok() {
            let outcome = self.router.route(
                Origin::Gateway,
                &frame,
                header.reply_subject,
                &mut self.connections,
            );
            self.batch_work += outcome.visited;
            self.after_route(outcome.dropped, frame.len());
        }
    }

    /// Computes the `_MM.STATS` answer (with or without patterns), unless the last one is recent
    /// enough to reuse: however many clients ask, a service computes each at most once per
    /// [`STATS_REUSE`].
    fn refresh_stats(&mut self, now: Instant, with_patterns: bool) {
        let cache = &mut self.stats_cache[usize::from(with_patterns)];
        if cache
            .as_ref()
            .is_some_and(|(computed, _)| now.duration_since(*computed) < STATS_REUSE)
        {
            return;
        }
        let answer = stats_message(&StatsSources {
            service: &self.name,
            context: &self.context,
            connections: &self.connections,
            router: &self.router,
            mesh: &self.mesh,
            counters: &self.counters,
            advisories: &self.advisories,
            with_patterns,
        });
        let cache = &mut self.stats_cache[usize::from(with_patterns)];
        let mut body = cache.take().map(|(_, body)| body).unwrap_or_default();
        body.clear();
        if answer.encode(&mut body).is_ok() {
            *cache = Some((now, body));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Sending, flushing, bounds
    // ---------------------------------------------------------------------------------------

    /// Queues a frame the gateway builds (ACK, ERROR, PONG, NO_RESPONDERS, …) for `key`.
    fn send_frame(&mut self, key: ConnectionKey, header: &Header<'_>, message: &Message) {
        let mut scratch = std::mem::take(&mut self.frame_scratch);
        scratch.clear();
        if encode_frame(&mut scratch, header, message).is_ok() {
            self.queue(key, &scratch);
        }
        self.frame_scratch = scratch;
    }

    /// Queues a frame whose body is already encoded.
    fn send_frame_with_body(&mut self, key: ConnectionKey, header: &Header<'_>, body: &[u8]) {
        let mut scratch = std::mem::take(&mut self.frame_scratch);
        scratch.clear();
        if mm_wire::encode_frame_with_body(&mut scratch, header, body).is_ok() {
            self.queue(key, &scratch);
        }
        self.frame_scratch = scratch;
    }

    /// Queues a control frame (empty body).
    fn send_control(&mut self, key: ConnectionKey, header: &Header<'_>) {
        let mut scratch = std::mem::take(&mut self.frame_scratch);
        scratch.clear();
        if encode_control_frame(&mut scratch, header).is_ok() {
            self.queue(key, &scratch);
        }
        self.frame_scratch = scratch;
    }

    /// Queues a whole frame for `key` (if it is still open) and marks it for flushing.
    fn queue(&mut self, key: ConnectionKey, frame: &[u8]) {
        if let Some(connection) = self.connections.get_mut(key) {
            connection.queue(frame);
            self.router.flush.insert(key);
        }
    }

    /// Writes every marked connection once, until nothing is marked — including connections
    /// marked while this runs (a cut-off slow consumer withdraws interest from peers, a closed
    /// link completes mesh flushes). Enforces the bounds: past 75 % the publisher of this batch
    /// is asked to pause; past 100 % the connection is a slow consumer. Then the gateway-wide
    /// budgets: past them, the largest backlogs go first.
    pub(crate) fn flush(&mut self) {
        loop {
            self.publish_advisories();
            self.drain_flush_set();
            self.report_totals();
            if !self.enforce_budgets() && !self.advisories.has_pending() {
                break;
            }
        }
    }

    /// Publishes the advisories raised since the last flush, from the gateway, as an `_MM.STATS`
    /// answer travels: to every matching subscription here and at mesh peers.
    fn publish_advisories(&mut self) {
        if !self.advisories.has_pending() {
            return;
        }
        for (kind, message) in self.advisories.take_pending() {
            let subject = kind.subject().as_bytes();
            let mut frame = std::mem::take(&mut self.frame_scratch);
            frame.clear();
            let header = Header {
                subscription_id: 0,
                subject,
                reply_subject: &[],
                action: Action::SendMessage,
            };
            if encode_frame(&mut frame, &header, &message).is_ok() {
                let outcome =
                    self.router
                        .route(Origin::Gateway, &frame, subject, &mut self.connections);
                self.batch_work += outcome.visited;
                if outcome.dropped > 0 || self.router.has_cut_offs() {
                    self.after_route(outcome.dropped, frame.len());
                }
            }
            self.frame_scratch = frame;
        }
    }

    /// The acceptor refused a client of this service (SERVICE_REFUSED, …): advise.
    pub(crate) fn refused_at_connect(&mut self, refused: &RefusedConnect) {
        self.advisories
            .client_refused_at_connect(Instant::now(), refused);
        self.flush();
    }

    fn drain_flush_set(&mut self) {
        while let Some(key) = self.router.flush.pop() {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            if let Err(reason) = connection.write_some() {
                self.close(key, reason);
                continue;
            }
            let pending = connection.outbound.pending();
            if pending > connection.output_bound {
                self.cut_off_slow(key, CloseReason::SlowConsumer);
                continue;
            }
            if pending > 0 || connection.handle.tls_wants_write() {
                // The socket is full: the connection's task waits for it to become writable.
                connection.handle.wake.notify_one();
                if pending > connection.output_bound / 4 * 3
                    && let Some(origin) = self.batch_origin
                    && connection.stall(origin, key)
                {
                    self.stall_publisher = true;
                }
            }
            self.count_pending(key);
        }
        debug_assert!(self.router.flush.is_empty());
    }

    /// Brings `queued_total` up to date with a connection's queue.
    fn count_pending(&mut self, key: ConnectionKey) {
        if let Some(connection) = self.connections.get_mut(key) {
            let pending = connection.outbound.pending();
            self.queued_total = self.queued_total - connection.counted_pending + pending;
            connection.counted_pending = pending;
        }
    }

    /// Brings `partial_total` up to date with a connection's incomplete frame.
    fn count_partial(&mut self, key: ConnectionKey) {
        if let Some(connection) = self.connections.get_mut(key) {
            let held = connection.inbound_partial.capacity();
            self.partial_total = self.partial_total - connection.counted_partial + held;
            connection.counted_partial = held;
        }
    }

    /// Adds what changed since the last report to the gateway-wide totals (two atomic additions
    /// per batch at most).
    fn report_totals(&mut self) {
        report(
            &self.context.queued_output,
            &mut self.queued_reported,
            self.queued_total,
        );
        report(
            &self.context.partial_input,
            &mut self.partial_reported,
            self.partial_total,
        );
    }

    /// When the gateway is over a budget, closes this service's largest holder (of queued output,
    /// of incomplete input). True if it closed one (and the totals must be looked at again).
    fn enforce_budgets(&mut self) -> bool {
        let limits = &self.context.config.limits;
        if self.context.queued_output.load(Ordering::Relaxed) > limits.max_total_pending_bytes {
            let largest = self
                .connections
                .iter()
                .filter(|(_, connection)| connection.counted_pending >= MIN_BACKLOG_CUT_FOR_BUDGET)
                .max_by_key(|(_, connection)| connection.counted_pending)
                .map(|(key, _)| key);
            if let Some(key) = largest {
                self.cut_off_slow(key, CloseReason::OutputBudget);
                return true;
            }
        }
        if self.context.partial_input.load(Ordering::Relaxed) > limits.max_total_partial_bytes {
            let largest = self
                .connections
                .iter()
                .filter(|(_, connection)| connection.counted_partial > 0)
                .max_by_key(|(_, connection)| connection.counted_partial)
                .map(|(key, _)| key);
            if let Some(key) = largest {
                self.counters.input_budget_closes += 1;
                self.close(key, CloseReason::InputBudget);
                return true;
            }
        }
        false
    }

    /// Closes a connection whose queue passed its bound (SPEC §6.3), or the largest backlog when
    /// the gateway's output budget is exceeded: its backlog is discarded, it gets ERROR
    /// SLOW_CONSUMER (MM/2), and it is counted.
    fn cut_off_slow(&mut self, key: ConnectionKey, reason: CloseReason) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        let (dropped_bytes, dropped_frames) = connection.outbound.discard();
        let is_link = connection.role.is_link();
        let protocol = connection.protocol;
        let why = if reason == CloseReason::OutputBudget {
            "the gateway's budget for queued output is exceeded and this connection has the \
             largest backlog: discarding it and closing"
        } else {
            "slow consumer: queue passed its bound, discarding it and closing"
        };
        warn!(
            service = %self.name,
            connection = %connection.describe(),
            dropped_bytes,
            dropped_frames,
            bound = connection.output_bound,
            "{why}"
        );
        self.advisories.slow_consumer(
            Instant::now(),
            connection,
            reason,
            dropped_frames,
            dropped_bytes,
        );
        self.counters.dropped_bytes += dropped_bytes as u64;
        self.counters.dropped_frames += dropped_frames as u64;
        self.record_cut_off(key, reason, is_link, dropped_bytes, dropped_frames);
        if reason == CloseReason::OutputBudget {
            self.counters.output_budget_cuts += 1;
        }
        if is_link {
            self.counters.slow_links += 1;
        } else {
            self.counters.slow_consumers += 1;
        }
        if protocol == Protocol::Mm2 {
            let text = if reason == CloseReason::OutputBudget {
                "the gateway's budget for queued output is exceeded"
            } else {
                "output queue passed its bound"
            };
            self.send_frame(
                key,
                &Header::new(Action::Error),
                &ErrorCode::SlowConsumer.message(text),
            );
        }
        self.close(key, reason);
    }

    // ---------------------------------------------------------------------------------------
    // Errors and closing
    // ---------------------------------------------------------------------------------------

    /// A frame that cannot be processed but leaves the stream in sync (SPEC §5.2): MM/2 gets an
    /// ERROR, MM/1 a log line. Warnings about one connection are limited (a few per window, then
    /// a count); subjects are cut short in the log and in the ERROR.
    fn misuse(
        &mut self,
        key: ConnectionKey,
        code: ErrorCode,
        subscription_id: u32,
        subject: &[u8],
        text: &str,
    ) {
        self.counters.rejected_frames += 1;
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if connection.warnings.allow(Instant::now()) {
            warn!(
                service = %self.name,
                connection = %connection.describe(),
                code = %code,
                subject = %shown(subject),
                "{text}"
            );
        } else {
            self.counters.log_lines_suppressed += 1;
        }
        if matches!(code, ErrorCode::LimitExceeded | ErrorCode::RateLimited) {
            self.advisories
                .client_refused(Instant::now(), connection, code, subject, text);
        }
        if connection.protocol == Protocol::Mm2 {
            let subject = echoed(subject);
            let header = Header {
                subscription_id,
                subject: &subject,
                reply_subject: &[],
                action: Action::Error,
            };
            self.send_frame(key, &header, &code.message(text));
        }
    }

    /// A frame the connection's permissions refuse: ERROR `PERMISSION_DENIED` (MM/2) or a log
    /// line (MM/1), counted; the connection stays.
    fn deny(&mut self, key: ConnectionKey, subscription_id: u32, subject: &[u8], text: &str) {
        self.counters.permission_denied += 1;
        self.misuse(
            key,
            ErrorCode::PermissionDenied,
            subscription_id,
            subject,
            text,
        );
    }

    /// A frame that breaks the stream (bad length, truncated header): ERROR for MM/2, then close.
    fn reject_stream(&mut self, key: ConnectionKey, error: DecodeError) {
        self.counters.protocol_errors += 1;
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        let (code, reason) = match error {
            DecodeError::FrameTooLarge { .. } => {
                (ErrorCode::FrameTooLarge, CloseReason::FrameTooLarge)
            }
            _ => (ErrorCode::Protocol, CloseReason::MalformedFrame),
        };
        warn!(
            service = %self.name,
            connection = %connection.describe(),
            %error,
            "closing connection"
        );
        if connection.protocol == Protocol::Mm2 {
            self.send_frame(
                key,
                &Header::new(Action::Error),
                &code.message(&error.to_string()),
            );
        }
        self.close(key, reason);
    }

    /// Closes a connection: takes its subscriptions out of the index (withdrawing mesh
    /// interest) — at once if they are few, else in slices between batches — hands what must
    /// still be sent to its lingering task, counts it, and tells the mesh if it was a link.
    pub(crate) fn close(&mut self, key: ConnectionKey, reason: CloseReason) {
        let Some(mut connection) = self.connections.remove(key) else {
            return;
        };
        if self.reading == Some(key) {
            self.reading_closed = true;
        }
        self.load
            .connections
            .store(self.connections.len(), Ordering::SeqCst);
        self.queued_total -= connection.counted_pending;
        self.partial_total -= connection.counted_partial;
        let is_client = !connection.role.is_link();
        if is_client {
            self.load.clients.fetch_sub(1, Ordering::SeqCst);
        }
        if let Some(access) = &connection.access
            && let Some(count) = self.user_connections.get_mut(&access.grant.user)
        {
            *count -= 1;
            if *count == 0 {
                self.user_connections.remove(&access.grant.user);
            }
        }
        let count = connection.subscriptions.len();
        self.memory.freed(
            CONNECTION_BYTES_ESTIMATE
                + connection.outbound.pending()
                + connection.inbound_partial.capacity(),
        );
        let retired = connection.subscriptions.retire();
        if count <= RETIRE_AT_ONCE {
            self.memory.freed(count * SUBSCRIPTION_BYTES_ESTIMATE);
            for subscription in retired {
                self.forget_subscription(key, subscription.id, &subscription.pattern, is_client);
            }
        } else {
            self.retiring.push_back(Retiring {
                key,
                is_client,
                rest: Box::new(retired),
            });
            self.start_retiring();
        }
        self.router.forget_publisher(key);
        // Whatever is still queued goes out while the task lingers (an ERROR, or the output a
        // disconnecting client has not received yet); a slow consumer's backlog was discarded.
        let remaining = connection.outbound.take();
        let linger = match reason {
            CloseReason::Shutdown => Linger::Shutdown,
            CloseReason::SlowConsumer | CloseReason::OutputBudget => Linger::SlowConsumer,
            _ => Linger::Normal,
        };
        connection.handle.close_with(&remaining, linger);
        for publisher in connection.stalled_publishers.drain(..) {
            if let Some(publisher) = self.connections.get(publisher) {
                publisher.handle.wake.notify_one();
            }
        }
        self.counters.closed_connections.add(&connection.counters);
        if reason.is_ordinary() {
            info!(service = %self.name, connection = %connection.describe(), %reason, subscriptions = count, "connection closed");
        } else {
            warn!(service = %self.name, connection = %connection.describe(), %reason, subscriptions = count, "connection closed");
        }
        if connection.role.is_link() {
            self.record_link_down(&connection, reason);
            if !self.shutting_down {
                self.advisories
                    .link_down(Instant::now(), &connection, reason);
            }
            self.mesh.link_closed(key, reason, &mut self.mesh_output);
        }
        self.apply_mesh_output();
    }

    /// Starts the task that retires closed connections' subscriptions, a slice at a time with
    /// other work in between.
    fn start_retiring(&mut self) {
        if self.retiring_task {
            return;
        }
        let Some(this) = self.this.upgrade() else {
            return;
        };
        self.retiring_task = true;
        let cancel = self.cancel.clone();
        self.tasks.spawn_local(async move {
            cancel
                .run_until_cancelled(async {
                    loop {
                        tokio::task::yield_now().await;
                        if !this.borrow_mut().retire_slice() {
                            break;
                        }
                    }
                })
                .await;
        });
    }

    /// Takes subscriptions of closed connections out of the index for at most
    /// [`RETIRE_SLICE_TIME`]. False when none are left.
    fn retire_slice(&mut self) -> bool {
        const CLOCK_EVERY: usize = 256;
        let deadline = Instant::now() + RETIRE_SLICE_TIME;
        'slice: while let Some(front) = self.retiring.front_mut() {
            let (key, is_client) = (front.key, front.is_client);
            let batch: Vec<Retired> = front.rest.by_ref().take(CLOCK_EVERY).collect();
            if batch.len() < CLOCK_EVERY {
                self.retiring.pop_front();
            }
            self.memory.freed(batch.len() * SUBSCRIPTION_BYTES_ESTIMATE);
            for subscription in batch {
                self.forget_subscription(key, subscription.id, &subscription.pattern, is_client);
            }
            if Instant::now() >= deadline {
                break 'slice;
            }
        }
        self.apply_mesh_output();
        self.flush();
        let more = !self.retiring.is_empty();
        if !more {
            self.retiring_task = false;
        }
        more
    }

    // ---------------------------------------------------------------------------------------
    // Housekeeping: heartbeats, idle buffers, stalled frames, warning summaries
    // ---------------------------------------------------------------------------------------

    /// Every [`HOUSEKEEPING_INTERVAL`]: heartbeats (send PINGs, close the silent), incomplete
    /// frames that stopped arriving, free the buffers of idle connections, summaries of
    /// suppressed warnings, the mesh's one-sided check, memory after a burst.
    pub(crate) fn housekeeping(&mut self) {
        let now = Instant::now();
        let heartbeat = self.config().heartbeat;
        let frame_timeout = self.config().limits.frame_progress_timeout;
        let mut dead = Vec::new();
        let mut stalled = Vec::new();
        let mut pings = Vec::new();
        let mut idle = Vec::new();
        let mut queued = 0;
        for (key, connection) in &mut self.connections {
            queued += connection.outbound.pending();
            if let Some(suppressed) = connection.warnings.take_summary(now) {
                warn!(
                    service = %self.name,
                    connection = %connection.describe(),
                    suppressed,
                    "more warnings about this connection were suppressed in the last {} s",
                    crate::log_limit::WARNING_WINDOW.as_secs()
                );
            }
            if !connection.peer_heartbeat.is_zero()
                && now.duration_since(connection.last_received) > connection.peer_heartbeat * 2
            {
                dead.push(key);
                continue;
            }
            if !connection.inbound_partial.is_empty()
                && now.duration_since(connection.last_received) > frame_timeout
            {
                stalled.push(key);
                continue;
            }
            if connection.protocol == Protocol::Mm2
                && !heartbeat.is_zero()
                && now.duration_since(connection.last_sent) >= heartbeat
            {
                pings.push(key);
            }
            // An idle connection gives its buffers back.
            if now.duration_since(connection.last_sent) >= IDLE_RELEASE
                && now.duration_since(connection.last_received) >= IDLE_RELEASE
            {
                connection.outbound.release();
                if connection.inbound_partial.is_empty() {
                    connection.inbound_partial = BytesMut::new();
                }
                idle.push(key);
            }
        }
        for key in idle {
            self.router.forget_publisher(key);
            self.count_partial(key);
        }
        for key in dead {
            self.close(key, CloseReason::HeartbeatTimeout);
        }
        for key in stalled {
            self.close(key, CloseReason::IncompleteFrameTimeout);
        }
        for key in pings {
            self.send_control(key, &Header::new(Action::Ping));
            if let Some(connection) = self.connections.get_mut(key) {
                connection.last_sent = now;
            }
        }
        self.mesh.check_one_sided_links(now);
        self.monitor_housekeeping(now);
        self.flush();
        // Not while subscriptions are still being retired: the memory is not free yet.
        if self.retiring.is_empty() && self.memory.observe(queued) {
            release_free_memory();
        }
    }

    /// Closes every connection (gateway shutdown), and gives back what this service counted in the
    /// gateway-wide totals.
    pub(crate) fn close_all(&mut self) {
        self.shutting_down = true;
        let keys: Vec<ConnectionKey> = self.connections.keys().collect();
        for key in keys {
            self.close(key, CloseReason::Shutdown);
        }
        self.report_totals();
    }
}

/// Why a publish's subject was not routed.
enum Refused {
    /// Not a valid subject (SPEC §6.1).
    Invalid(mm_wire::subject::SubjectError),
    /// The client may not publish to it (security on).
    Denied,
    /// A request to the gateway itself (`_MM.`, SPEC §9).
    GatewayRequest,
}

/// How a publish's permission is decided.
#[derive(Debug, Clone, Copy)]
enum Permission {
    /// Security off (or a peer's link): any valid subject.
    Unchecked,
    /// Security on, no reply subject: the router's subject check asks the client's access.
    Check,
    /// Security on, decided before routing (a publish with a reply subject).
    Decided(PublishVerdict),
}

/// How a read went, for the batch.
enum ReadProgress {
    /// The read filled the buffer: more is probably waiting.
    More,
    /// Done for now (socket drained, or the connection closed).
    Done,
    /// The batch used up its time with frames still waiting.
    Paused,
}

/// Whether the connection's subscriptions are counted by pattern rather than named by id: a link
/// from a first-implementation (MM/1) gateway, which forwards its clients' own ids (issue #12).
fn counts_patterns(connection: &Connection) -> bool {
    connection.protocol == Protocol::Mm1 && matches!(connection.role, Role::AcceptedLink { .. })
}

/// Adds `total - *reported` to a gateway-wide counter.
fn report(counter: &std::sync::atomic::AtomicUsize, reported: &mut usize, total: usize) {
    if total > *reported {
        counter.fetch_add(total - *reported, Ordering::Relaxed);
    } else if total < *reported {
        counter.fetch_sub(*reported - total, Ordering::Relaxed);
    }
    *reported = total;
}

impl SocketEvents for Service {
    type Key = ConnectionKey;

    fn wants_write(&self, key: ConnectionKey) -> bool {
        self.connections.get(key).is_some_and(|connection| {
            !connection.outbound.is_empty() || connection.handle.tls_wants_write()
        })
    }

    /// Writes queued output; wakes publishers stalled on this connection once it is below half
    /// its bound.
    fn on_writable(&mut self, key: ConnectionKey) {
        let Some(connection) = self.connections.get_mut(key) else {
            return;
        };
        if let Err(reason) = connection.write_some() {
            self.close(key, reason);
        } else if connection.outbound.pending() <= connection.output_bound / 2 {
            for publisher in std::mem::take(&mut connection.stalled_publishers) {
                if let Some(publisher) = self.connections.get(publisher) {
                    publisher.handle.wake.notify_one();
                }
            }
        }
        self.count_pending(key);
        self.flush();
    }

    /// The socket is readable: read (up to [`MAX_READS_PER_BATCH`] times while reads fill the
    /// buffer), process every complete frame, flush every touched connection.
    fn on_readable(&mut self, key: ConnectionKey) -> ReadOutcome {
        if !self.connections.contains_key(key) {
            return ReadOutcome::Continue;
        }
        if self.router.has_unfinished() && self.router.is_unfinished_from(key) {
            // Its last message is still being fanned out (by the resumer task): its next
            // frames come after that.
            return ReadOutcome::Stall;
        }
        self.stall_publisher = false;
        self.batch_origin = Some(key);
        self.start_batch();
        // Keep reading while reads fill the buffer (more is waiting): a bigger batch means fewer
        // writes per message to every subscriber, so fewer wakeups on both sides.
        let mut paused = false;
        let reading_since = Instant::now();
        for _ in 0..MAX_READS_PER_BATCH {
            match self.read_once(key) {
                ReadProgress::More => {
                    if self.receiving_large_frame(key)
                        && reading_since.elapsed() >= LARGE_FRAME_READING_PER_BATCH
                    {
                        break;
                    }
                }
                ReadProgress::Done => break,
                ReadProgress::Paused => {
                    paused = true;
                    break;
                }
            }
        }
        self.flush();
        self.batch_origin = None;
        if self.stall_publisher {
            ReadOutcome::Stall
        } else if paused {
            ReadOutcome::Yield
        } else {
            ReadOutcome::Continue
        }
    }

    fn on_socket_error(&mut self, key: ConnectionKey) {
        self.close(key, CloseReason::ReadError);
        self.flush();
    }
}

/// Decodes a control frame's body; an undecodable one counts as empty.
fn decode_or_empty(body: &[u8]) -> Message {
    Message::decode_from_slice(body).unwrap_or_default()
}

/// How busy a running service is, shared with the acceptor (which decides when an idle
/// on-demand service stops). Written only when connections come and go, never per frame.
#[derive(Debug, Default)]
pub(crate) struct ServiceLoad {
    /// Connections attached now (clients and links). Written by the service.
    pub(crate) connections: AtomicUsize,
    /// Of those, clients. Written by the service.
    pub(crate) clients: AtomicUsize,
    /// Whether the service dials its mesh peers. A service meshed by the `*` entry starts
    /// dialling with its first client; until then its links are peers' links to it.
    pub(crate) dialling: AtomicBool,
    /// Connections handed over and not attached yet: incremented by the acceptor under the
    /// registry's lock, decremented by the service once it has attached one (after updating
    /// `connections`), so a service with a connection on its way never looks idle.
    pub(crate) arriving: AtomicUsize,
}

impl ServiceLoad {
    /// Whether an on-demand service is in use: a client, a connection on its way, or — while
    /// it does not dial — a peer's link to it (the peer has clients that may need this
    /// gateway's). A service that dials is idle without clients: otherwise two gateways' links
    /// would keep each other's services running for ever.
    pub(crate) fn is_busy(&self) -> bool {
        let connections = self.connections.load(Ordering::SeqCst);
        let clients = self.clients.load(Ordering::SeqCst);
        self.arriving.load(Ordering::SeqCst) > 0
            || clients > 0
            || (connections > clients && !self.dialling.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod load_tests {
    use super::*;

    fn load(connections: usize, clients: usize, arriving: usize, dialling: bool) -> ServiceLoad {
        ServiceLoad {
            connections: AtomicUsize::new(connections),
            clients: AtomicUsize::new(clients),
            arriving: AtomicUsize::new(arriving),
            dialling: AtomicBool::new(dialling),
        }
    }

    #[test]
    fn peers_links_keep_a_service_only_while_it_does_not_dial() {
        assert!(!load(0, 0, 0, false).is_busy(), "nothing at all");
        assert!(load(0, 0, 1, true).is_busy(), "a connection on its way");
        assert!(load(3, 1, 0, true).is_busy(), "a client");
        // Only peers' links: they need this gateway while it does not dial them...
        assert!(load(2, 0, 0, false).is_busy());
        // ...but two dialling gateways would keep each other's services for ever.
        assert!(!load(2, 0, 0, true).is_busy());
    }
}

/// A running service, as the registry keeps it.
pub(crate) struct ServiceHandle {
    /// Commands to the service's loop.
    pub(crate) commands: mpsc::Sender<ServiceCommand>,
    /// The thread; joined at shutdown.
    pub(crate) thread: Option<std::thread::JoinHandle<()>>,
    /// How busy it is.
    pub(crate) load: Arc<ServiceLoad>,
    /// Stops it.
    pub(crate) cancel: CancellationToken,
    /// Tells this start of the service from a later one of the same name.
    pub(crate) generation: u64,
    /// Since when it has been idle (kept by the registry's idle check).
    pub(crate) idle_since: Option<Instant>,
}

/// Starts a service on its own thread. It runs until `cancel` is cancelled.
pub(crate) fn start(
    name: &str,
    context: Arc<GatewayContext>,
    cancel: CancellationToken,
) -> std::io::Result<ServiceHandle> {
    static GENERATIONS: AtomicU64 = AtomicU64::new(1);
    let (commands, receiver) = mpsc::channel(1024);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let service_name = name.to_owned();
    let load = Arc::new(ServiceLoad::default());
    let service_load = load.clone();
    let service_cancel = cancel.clone();
    let thread = std::thread::Builder::new()
        .name(format!("svc-{name}"))
        .spawn(move || {
            let local = tokio::task::LocalSet::new();
            local.block_on(
                &runtime,
                run(
                    service_name,
                    context,
                    receiver,
                    service_cancel,
                    service_load,
                ),
            );
        })?;
    Ok(ServiceHandle {
        commands,
        thread: Some(thread),
        load,
        cancel,
        generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        idle_since: None,
    })
}

/// The service's main task: takes commands, runs housekeeping, starts the mesh; at the end closes
/// every connection and waits (briefly) for their tasks to deliver their last bytes.
async fn run(
    name: String,
    context: Arc<GatewayContext>,
    mut commands: mpsc::Receiver<ServiceCommand>,
    cancel: CancellationToken,
    load: Arc<ServiceLoad>,
) {
    info!(service = %name, "service started");
    let tasks = TaskTracker::new();
    let state = Service::new(
        name.clone(),
        context,
        tasks.clone(),
        cancel.clone(),
        load.clone(),
    );
    if state.borrow().dials_from_start() {
        state.borrow_mut().start_mesh();
    }
    let mut ticker = tokio::time::interval(HOUSEKEEPING_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            command = commands.recv() => match command {
                Some(ServiceCommand::Attach(incoming)) => {
                    state.borrow_mut().attach(*incoming);
                    load.arriving.fetch_sub(1, Ordering::SeqCst);
                }
                Some(ServiceCommand::Snapshot { request, reply }) => {
                    let snapshot = state.borrow_mut().snapshot(&request);
                    let _ = reply.send(Box::new(snapshot));
                }
                Some(ServiceCommand::Publish { subject, body }) => {
                    state.borrow_mut().publish_from_gateway(&subject, &body);
                }
                Some(ServiceCommand::Discovered(report)) => state.borrow_mut().discovered(report),
                Some(ServiceCommand::Refused(refused)) => {
                    state.borrow_mut().refused_at_connect(&refused);
                }
                None => break,
            },
            _ = ticker.tick() => state.borrow_mut().housekeeping(),
        }
    }
    // Refuse what is still queued (the acceptor gets the connections back and retries them), then
    // close everything.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        if let ServiceCommand::Attach(_) = command {
            load.arriving.fetch_sub(1, Ordering::SeqCst);
        }
    }
    state.borrow_mut().close_all();
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_WAIT, tasks.wait())
        .await
        .is_err()
    {
        debug!(service = %name, "some connections did not finish lingering");
    }
    info!(service = %name, "service stopped");
}

#[cfg(test)]
mod advisory_tests;
mod observe;
#[cfg(test)]
pub(crate) mod test_harness;
#[cfg(test)]
mod tests;
