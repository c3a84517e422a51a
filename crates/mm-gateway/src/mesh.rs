//! The mesh (SPEC §8) as a state machine: links to the other gateways of a service, their
//! diallers, interest propagation, and the mesh-wide flush.
//!
//! [`Mesh`] does no I/O and never touches a connection. Each event (a local client's interest
//! changed, a link came up or went down, a dial finished, a link answered a PING) goes in as a
//! method call; what must happen comes back as [`MeshEffect`]s in a [`MeshOutput`]: frames to
//! queue, links to close, dials to start. The service loop applies them, and
//! the dialling itself is in [`dial`]. So the mesh is tested in memory (`mesh/tests.rs`), and
//! data flows one way: event in, effects out.
//!
//! Between two gateways of a service there are two links, one dialled by each. Each direction
//! carries one thing:
//!
//! * **Interest travels from dialler to acceptor.** After the ACK, the dialler sends one SUBSCRIBE
//!   for every pattern at least one of its *local clients* holds, then SUBSCRIBE/UNSUBSCRIBE when
//!   that count goes 0→1 / 1→0. Patterns learned from peers are never counted, so interest never
//!   echoes around the mesh.
//! * **Messages travel from acceptor to dialler.** The acceptor keeps the dialler's patterns in
//!   its subject index, keyed by the link (that is the router's job); a local client's publish
//!   that matches goes down the link once. A message from a peer goes to local clients only (no
//!   relay), so it crosses the network at most once per destination gateway.
//!
//! Diallers have the states below. Nothing is queued for a link that is not up; a link that comes
//! up gets a full replay of interest, so a link that drops loses nothing but the messages in
//! flight.
//!
//! | dialler state | meaning |
//! |---|---|
//! | `Connecting` | TCP connect and CONNECT_MESH_PEER / ACK in progress |
//! | `Up` | ACK received, interest replayed, link live |
//! | `Backoff` | waiting to redial: 100 ms + jitter, doubling, capped (default 2 s), reset by an ACK |
//! | `Suppressed` | another configured address reached the same peer (`gateway_id`) and that link is up: this address waits, so aliases never make links flap |
//! | `IsSelf` | the address leads back to this gateway: never dialled again |
//!
//! **Membership changes while the service runs.** Diallers come from the configuration's
//! `MeshGateways` and from discovery (etcd, DNS): [`Mesh::peers_changed`] takes the whole set of
//! addresses one source lists now. A new address gets a dialler that dials at once; one listed by
//! several sources (say the configuration and etcd) has one dialler that records them all. An
//! address no source lists any more is *leaving*: after the grace period (`DiscoveryGraceMs`) its
//! dialler is dropped — its link closed, no more redials — unless a source lists it again first,
//! so a flapping registration never makes a link flap. Diallers are named by generational keys, so
//! a timer or dial of a dropped dialler matches nothing, even when a new one takes its slot.
//!
//! Identity is the `gateway_id` exchanged in the handshake (new random 128 bits at every start),
//! not the configured address, so `localhost:PORT`, several gateways per host and DNS aliases all
//! work. At most one link per direction per peer id: the newer wins.
//!
//! **Mesh-wide flush.** A client PING with `mesh` = true is answered only after every dialled link
//! that is up has answered a PING of its own sent after the interest changes the client's earlier
//! frames caused — the acceptor answers a PING only after processing everything before it, so the
//! client then knows its subscriptions are live at every peer.

pub(crate) mod auth;
pub(crate) mod dial;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slotmap::{SecondaryMap, SlotMap};

use mm_wire::handshake::Protocol;
use mm_wire::{Action, Header, Message};
use tracing::{debug, info, warn};

use crate::config::MeshConfig;
use crate::connection::{CloseReason, ConnectionKey};
use crate::segmented_table::SegmentedTable;
use dial::LinkError;

/// First redial delay (SPEC §8).
pub(crate) const FIRST_REDIAL: Duration = Duration::from_millis(100);

/// How long an accepted link may be up before the gateway warns that it does not dial that peer
/// back (a peer missing from this gateway's `MeshGateways`).
const ONE_SIDED_GRACE: Duration = Duration::from_secs(5);

slotmap::new_key_type! {
    /// Names a dialler (one per peer address). Once the dialler is dropped its id matches
    /// nothing, even after a new dialler takes the same slot.
    pub(crate) struct DialerId;
}

/// How a peer address was found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum PeerSource {
    /// `MeshGateways` in the configuration.
    Config,
    /// The etcd registry.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    Etcd,
    /// A `dns:` entry of `MeshGateways`: the name and port, re-resolved periodically.
    Dns(Arc<str>),
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerSource::Config => f.write_str("config"),
            PeerSource::Etcd => f.write_str("etcd"),
            PeerSource::Dns(entry) => write!(f, "dns:{entry}"),
        }
    }
}

/// What a discovery source tells a service's mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DiscoveryReport {
    /// Every address the source lists for the service now (`host:port`).
    Peers(PeerSource, Vec<String>),
    /// The source cannot reach its registry (why), or can again (`None`). Its last peer set
    /// stays in force meanwhile.
    Health(PeerSource, Option<String>),
}

/// A discovery source as this service last heard from it (for `_MM.STATS`).
#[derive(Debug, Clone)]
pub(crate) struct SourceRecord {
    /// The source.
    pub(crate) source: PeerSource,
    /// Addresses in its last peer set (None before the first).
    pub(crate) peers: Option<usize>,
    /// Why it cannot reach its registry now; None while it can.
    pub(crate) error: Option<String>,
}

/// Shortest time between two replacements of the accepted link from one peer id: two gateways
/// claiming the same id (or a peer redialling in a loop) cannot make a link flap faster.
pub(crate) const LINK_REPLACEMENT_INTERVAL: Duration = Duration::from_secs(5);

/// Why an accepted link was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkRefused {
    /// The link from that peer id was replaced too recently.
    #[error(
        "the link from gateway {0} was replaced less than {secs} s ago: keeping the current one",
        secs = LINK_REPLACEMENT_INTERVAL.as_secs()
    )]
    ReplacedTooRecently(String),
}

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
    /// The state's name in stats.
    pub(crate) fn name(self) -> &'static str {
        match self {
            DialState::Connecting => "connecting",
            DialState::Up => "up",
            DialState::Backoff => "backoff",
            DialState::Suppressed => "suppressed",
            DialState::IsSelf => "self",
        }
    }
}

/// Why a dialler's last attempt or link ended.
#[derive(Debug)]
pub(crate) enum LinkFailure {
    /// The dial or handshake failed.
    Dial(LinkError),
    /// The link was up and closed.
    Closed(CloseReason),
}

impl std::fmt::Display for LinkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkFailure::Dial(error) => error.fmt(f),
            LinkFailure::Closed(reason) => reason.fmt(f),
        }
    }
}

/// One peer address and its dialler.
#[derive(Debug)]
pub(crate) struct Dialer {
    /// `host:port`, from the configuration or discovery.
    pub(crate) address: String,
    /// The sources that list the address now; empty while it is leaving.
    pub(crate) sources: Vec<PeerSource>,
    /// While no source lists the address: the sources that last did. The dialler is dropped after
    /// the grace period unless one lists it again.
    pub(crate) leaving: Option<Vec<PeerSource>>,
    /// Current state.
    pub(crate) state: DialState,
    /// Dial attempts so far.
    pub(crate) dials: u64,
    /// The peer's `gateway_id` from the last ACK (None for MM/1 peers or before the first).
    pub(crate) peer_id: Option<String>,
    /// Why the last attempt or link failed.
    pub(crate) last_failure: Option<LinkFailure>,
    /// The link while `Up`.
    link: Option<ConnectionKey>,
    /// Current redial delay (before jitter).
    backoff: Duration,
    /// Failed attempts in a row (the first is logged as a warning, the rest at debug level).
    failures: u64,
    /// Identifies the dialler's current timer or dial; effects of an older attempt are ignored.
    attempt: u64,
    /// Identifies the dialler's current departure; a drop timer of an older one is ignored.
    departure: u64,
    /// Whether a link of this dialler has ever been up.
    ever_up: bool,
}

impl Dialer {
    fn new(address: String, source: PeerSource) -> Dialer {
        Dialer {
            address,
            sources: vec![source],
            leaving: None,
            state: DialState::Backoff,
            dials: 0,
            peer_id: None,
            last_failure: None,
            link: None,
            backoff: FIRST_REDIAL,
            failures: 0,
            attempt: 0,
            departure: 0,
            ever_up: false,
        }
    }

    /// Whether the dialler is still on its first attempt (scheduled or connecting): a
    /// mesh-wide flush waits for it, so a service that has just started (or a peer just
    /// discovered) does not answer a flush before its first link could carry interest.
    fn first_attempt_pending(&self) -> bool {
        !self.ever_up
            && self.failures == 0
            && self.leaving.is_none()
            && matches!(self.state, DialState::Backoff | DialState::Connecting)
    }

    /// How the address was found: its sources (or, while leaving, those that last listed it),
    /// comma-separated.
    pub(crate) fn found_by(&self) -> String {
        let sources = self.leaving.as_ref().unwrap_or(&self.sources);
        let names: Vec<String> = sources.iter().map(ToString::to_string).collect();
        names.join(",")
    }
}

/// A local pattern and the id it has on every dialled link.
#[derive(Debug)]
struct InterestEntry {
    /// The pattern.
    pattern: Box<[u8]>,
    /// Local client subscriptions with this pattern. Invariant: `count >= 1` while present.
    count: u32,
    /// Subscription id used on the links for this pattern; never reused.
    link_subscription_id: u32,
}

/// A link we dialled that is up.
#[derive(Debug)]
struct DialledLink {
    key: ConnectionKey,
    peer_id: Option<String>,
    protocol: Protocol,
    dialer: DialerId,
    /// Sequence of the last flush PING sent on the link (0: none yet).
    flush_sent: u64,
    /// Highest flush PING sequence the peer has answered.
    flush_answered: u64,
    /// Interest frames were queued on the link after its last flush PING: the next flush needs a
    /// PING of its own, behind them.
    interest_since_ping: bool,
}

/// A link a peer dialled.
#[derive(Debug)]
struct AcceptedLink {
    key: ConnectionKey,
    peer_id: Option<String>,
    /// The peer's name and address, for the one-sided warning.
    describe: String,
    /// When it came up; `None` once the one-sided check has run.
    check_after: Option<Instant>,
}

/// A client's mesh-wide flush waiting for links to confirm.
#[derive(Debug)]
struct PendingFlush {
    /// The client; if it is gone by then, the PONG goes nowhere.
    client: ConnectionKey,
    /// The client's PING body, echoed in the PONG.
    body: Vec<u8>,
    /// Per link: the flush PING whose answer confirms this flush. A link that closes no longer
    /// counts.
    waiting: Vec<(ConnectionKey, u64)>,
    /// Diallers on their first attempt when the flush was asked for: once one's link is up, its
    /// flush PING joins `waiting`; one that fails, or turns out to be this gateway, no longer
    /// counts (the connect timeout bounds the wait).
    first_dials: Vec<DialerId>,
}

/// Mesh-wide flushes one connection may have in progress.
pub(crate) const MAX_PENDING_FLUSHES_PER_CONNECTION: u32 = 256;

/// Largest PING body a mesh-wide flush keeps to echo (a real one carries a few fields).
pub(crate) const MAX_FLUSH_BODY_BYTES: usize = 1024;

/// Why a mesh-wide flush was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlushRefused {
    /// The connection already has [`MAX_PENDING_FLUSHES_PER_CONNECTION`] in progress.
    #[error("{MAX_PENDING_FLUSHES_PER_CONNECTION} mesh-wide flushes are already in progress")]
    TooMany,
    /// The PING body is longer than [`MAX_FLUSH_BODY_BYTES`].
    #[error("a mesh-wide flush PING body may have at most {MAX_FLUSH_BODY_BYTES} bytes")]
    BodyTooLarge,
}

/// Something the service loop must do for the mesh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MeshEffect {
    /// Queue the frame at `MeshOutput::frame(range)` for a connection (skipped if it is gone).
    Send {
        /// The connection.
        to: ConnectionKey,
        /// Where the frame is in the output's bytes.
        frame: Range<usize>,
    },
    /// Close a link.
    Close {
        /// The link.
        link: ConnectionKey,
        /// Why.
        reason: CloseReason,
    },
    /// Call [`Mesh::drop_due`] for this dialler after `delay` (the grace period of a peer that
    /// no source lists any more).
    DropAfter {
        /// The dialler.
        dialer: DialerId,
        /// Passed back to `drop_due`.
        departure: u64,
        /// How long to wait.
        delay: Duration,
    },
    /// Call [`Mesh::dial_due`] for this dialler after `delay`.
    DialAfter {
        /// The dialler.
        dialer: DialerId,
        /// Passed back to `dial_due`.
        attempt: u64,
        /// How long to wait.
        delay: Duration,
    },
    /// Dial `address` (see [`dial::dial`]), then call [`Mesh::dial_failed`] or
    /// [`Mesh::dial_succeeded`].
    Connect {
        /// The dialler.
        dialer: DialerId,
        /// Passed back with the result.
        attempt: u64,
        /// `host:port`.
        address: String,
    },
}

/// Effects of mesh events, in order, with the bytes of the frames they send. Reused: the service
/// loop drains it after each event.
#[derive(Debug, Default)]
pub(crate) struct MeshOutput {
    /// What to do, in order.
    pub(crate) effects: Vec<MeshEffect>,
    /// Encoded frames referred to by `MeshEffect::Send`.
    bytes: Vec<u8>,
}

impl MeshOutput {
    /// The bytes of a frame named by a `Send` effect.
    pub(crate) fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.bytes[range]
    }

    /// Whether there is nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.effects.is_empty()
    }

    /// Forgets everything (after it has been applied), keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.effects.clear();
        self.bytes.clear();
    }

    fn send(&mut self, to: ConnectionKey, header: &Header<'_>, body: &Message) {
        let start = self.bytes.len();
        if mm_wire::encode_frame(&mut self.bytes, header, body).is_ok() {
            let frame = start..self.bytes.len();
            self.effects.push(MeshEffect::Send { to, frame });
        } else {
            self.bytes.truncate(start);
        }
    }

    fn send_with_body(&mut self, to: ConnectionKey, header: &Header<'_>, body: &[u8]) {
        let start = self.bytes.len();
        if mm_wire::encode_frame_with_body(&mut self.bytes, header, body).is_ok() {
            let frame = start..self.bytes.len();
            self.effects.push(MeshEffect::Send { to, frame });
        } else {
            self.bytes.truncate(start);
        }
    }

    fn send_interest(&mut self, link: ConnectionKey, action: Action, id: u32, pattern: &[u8]) {
        let header = Header {
            subscription_id: id,
            subject: pattern,
            reply_subject: &[],
            action,
        };
        let start = self.bytes.len();
        if mm_wire::encode_control_frame(&mut self.bytes, &header).is_ok() {
            let frame = start..self.bytes.len();
            self.effects.push(MeshEffect::Send { to: link, frame });
        } else {
            self.bytes.truncate(start);
        }
    }
}

/// What to do with a link that completed its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialVerdict {
    /// Attach it, then call [`Mesh::dialled_link_up`].
    Attach,
    /// It leads back to this gateway: close it; the address is never dialled again.
    IsSelf,
    /// The dialler has moved on (an older attempt): close it.
    Stale,
}

/// The mesh side of a service.
#[derive(Debug)]
pub(crate) struct Mesh {
    /// The service, for log lines.
    service: String,
    /// This gateway's `gateway_id`.
    gateway_id: String,
    /// Whether the service is listed in `StartupMeshes` (else accepted links are one-sided).
    configured: bool,
    /// Cap of the redial backoff.
    redial_max: Duration,
    /// How long a peer no source lists any more keeps its dialler and link.
    discovery_grace: Duration,
    /// Whether the diallers have been started ([`Mesh::start`]); diallers added later dial at once.
    started: bool,
    /// One per peer address.
    dialers: SlotMap<DialerId, Dialer>,
    /// The dialler of each address.
    by_address: HashMap<String, DialerId>,
    /// Discovery sources that reported to this service, in order of first report.
    sources: Vec<SourceRecord>,
    /// Local interest by pattern (segmented: a client with a million patterns grows it with no
    /// long insert).
    interest: SegmentedTable<InterestEntry>,
    /// Hashes `interest`'s patterns; seeded at random, as clients choose them.
    interest_hasher: foldhash::fast::RandomState,
    /// Next link subscription id.
    next_link_subscription_id: u32,
    /// Dialled links that are up, oldest first.
    dialled: Vec<DialledLink>,
    /// Accepted links, oldest first.
    accepted: Vec<AcceptedLink>,
    /// Mesh-wide flushes in progress, oldest first. Ordered also by what they wait for: per link,
    /// a later flush never waits for an earlier PING than an earlier flush does, so flushes
    /// complete from the front.
    pending_flushes: VecDeque<PendingFlush>,
    /// Flushes in progress per client (bounded by [`MAX_PENDING_FLUSHES_PER_CONNECTION`]).
    flushes_per_client: SecondaryMap<ConnectionKey, u32>,
    /// Next link PING sequence.
    next_flush_sequence: u64,
    /// Dial attempts started (first dials and redials).
    link_dials: u64,
    /// When the accepted link from each peer id was last replaced (entries older than
    /// [`LINK_REPLACEMENT_INTERVAL`] are dropped).
    replacements: std::collections::HashMap<String, Instant>,
}

impl Mesh {
    /// The mesh of `service`, with a dialler per configured address. Peers that discovery stops
    /// listing keep their link for `discovery_grace`.
    pub(crate) fn new(
        service: &str,
        gateway_id: &str,
        config: Option<&MeshConfig>,
        redial_max: Duration,
        discovery_grace: Duration,
    ) -> Mesh {
        let mut dialers = SlotMap::with_key();
        let mut by_address = HashMap::new();
        for address in config.iter().flat_map(|mesh| &mesh.gateways) {
            by_address.entry(address.clone()).or_insert_with(|| {
                dialers.insert(Dialer::new(address.clone(), PeerSource::Config))
            });
        }
        Mesh {
            service: service.to_owned(),
            gateway_id: gateway_id.to_owned(),
            configured: config.is_some(),
            redial_max,
            discovery_grace,
            started: false,
            dialers,
            by_address,
            sources: Vec::new(),
            interest: SegmentedTable::new(),
            interest_hasher: Default::default(),
            next_link_subscription_id: 1,
            dialled: Vec::new(),
            accepted: Vec::new(),
            pending_flushes: VecDeque::new(),
            flushes_per_client: SecondaryMap::new(),
            next_flush_sequence: 1,
            link_dials: 0,
            replacements: std::collections::HashMap::new(),
        }
    }

    /// Number of distinct local patterns propagated to peers.
    pub(crate) fn interest_len(&self) -> usize {
        self.interest.len()
    }

    /// Local patterns and how many local subscriptions hold each (for monitoring).
    pub(crate) fn interest_counts(&self) -> impl Iterator<Item = (&[u8], u32)> {
        self.interest
            .iter()
            .map(|entry| (&entry.pattern[..], entry.count))
    }

    /// The peer addresses and their diallers.
    pub(crate) fn dialers(&self) -> impl Iterator<Item = (DialerId, &Dialer)> {
        self.dialers.iter()
    }

    /// One dialler (None once it has been dropped).
    pub(crate) fn dialer(&self, dialer: DialerId) -> Option<&Dialer> {
        self.dialers.get(dialer)
    }

    /// The discovery sources that reported to this service.
    pub(crate) fn sources(&self) -> &[SourceRecord] {
        &self.sources
    }

    /// Dial attempts started.
    pub(crate) fn link_dials(&self) -> u64 {
        self.link_dials
    }

    /// Whether `peer_id` is this gateway.
    pub(crate) fn is_self(&self, peer_id: Option<&str>) -> bool {
        peer_id == Some(self.gateway_id.as_str())
    }

    // ---------------------------------------------------------------------------------------
    // Interest (local clients only)
    // ---------------------------------------------------------------------------------------

    /// A local client subscribed to `pattern`: on 0→1, tell every dialled link.
    pub(crate) fn interest_added(&mut self, pattern: &[u8], out: &mut MeshOutput) {
        let hasher = &self.interest_hasher;
        let (entry, added) = self.interest.find_or_insert_with(
            hasher.hash_one(pattern),
            |entry| *entry.pattern == *pattern,
            |entry| hasher.hash_one(&entry.pattern),
            || InterestEntry {
                pattern: pattern.into(),
                count: 0,
                link_subscription_id: 0,
            },
        );
        entry.count += 1;
        if !added {
            return;
        }
        let id = self.next_link_subscription_id;
        self.next_link_subscription_id = self.next_link_subscription_id.wrapping_add(1).max(1);
        entry.link_subscription_id = id;
        for link in &mut self.dialled {
            out.send_interest(link.key, Action::Subscribe, id, pattern);
            link.interest_since_ping = true;
        }
    }

    /// A local client's subscription to `pattern` ended: on 1→0, tell every dialled link.
    pub(crate) fn interest_removed(&mut self, pattern: &[u8], out: &mut MeshOutput) {
        let hasher = &self.interest_hasher;
        let hash = hasher.hash_one(pattern);
        let Some(entry) = self
            .interest
            .find_mut(hash, |entry| *entry.pattern == *pattern)
        else {
            debug_assert!(false, "interest removed that was never added");
            return;
        };
        entry.count -= 1;
        if entry.count > 0 {
            return;
        }
        let id = entry.link_subscription_id;
        // The table gives its memory back as it empties, one segment at a time.
        self.interest.remove(
            hash,
            |entry| *entry.pattern == *pattern,
            |entry| hasher.hash_one(&entry.pattern),
        );
        for link in &mut self.dialled {
            out.send_interest(link.key, Action::Unsubscribe, id, pattern);
            link.interest_since_ping = true;
        }
    }

    /// How many local subscriptions hold `pattern` (0 if none).
    #[cfg(test)]
    pub(crate) fn interest_count(&self, pattern: &[u8]) -> u32 {
        self.interest
            .find(self.interest_hasher.hash_one(pattern), |entry| {
                *entry.pattern == *pattern
            })
            .map_or(0, |entry| entry.count)
    }

    // ---------------------------------------------------------------------------------------
    // Diallers
    // ---------------------------------------------------------------------------------------

    /// Whether [`Mesh::start`] has been called.
    pub(crate) fn is_started(&self) -> bool {
        self.started
    }

    /// The service started: dial every known address now.
    pub(crate) fn start(&mut self, out: &mut MeshOutput) {
        self.started = true;
        let dialers: Vec<DialerId> = self.dialers.keys().collect();
        for dialer in dialers {
            self.schedule_dial(dialer, Duration::ZERO, out);
        }
    }

    fn schedule_dial(&mut self, dialer: DialerId, delay: Duration, out: &mut MeshOutput) {
        let Some(entry) = self.dialers.get_mut(dialer) else {
            return;
        };
        entry.attempt += 1;
        out.effects.push(MeshEffect::DialAfter {
            dialer,
            attempt: entry.attempt,
            delay,
        });
    }

    /// A dialler's timer fired: dial, unless another address already links to the same peer.
    pub(crate) fn dial_due(&mut self, dialer: DialerId, attempt: u64, out: &mut MeshOutput) {
        let Some(entry) = self.dialers.get(dialer) else {
            return;
        };
        if entry.attempt != attempt || entry.state == DialState::IsSelf {
            return;
        }
        if let Some(peer_id) = &entry.peer_id
            && self.has_dialled_link_to(peer_id)
        {
            self.dialers[dialer].state = DialState::Suppressed;
            return;
        }
        let Some(entry) = self.dialers.get_mut(dialer) else {
            return;
        };
        entry.state = DialState::Connecting;
        entry.dials += 1;
        entry.attempt += 1;
        self.link_dials += 1;
        out.effects.push(MeshEffect::Connect {
            dialer,
            attempt: entry.attempt,
            address: entry.address.clone(),
        });
    }

    /// A dial or its handshake failed: back off and redial.
    pub(crate) fn dial_failed(
        &mut self,
        dialer: DialerId,
        attempt: u64,
        error: LinkError,
        out: &mut MeshOutput,
    ) {
        let Some(entry) = self.dialers.get_mut(dialer) else {
            return;
        };
        if entry.attempt != attempt {
            return;
        }
        entry.failures += 1;
        if entry.failures == 1 {
            warn!(service = %self.service, address = %entry.address, %error, "cannot reach mesh peer; will keep redialling");
        } else {
            debug!(service = %self.service, address = %entry.address, %error, "mesh redial failed");
        }
        entry.state = DialState::Backoff;
        entry.last_failure = Some(LinkFailure::Dial(error));
        let delay = with_jitter(entry.backoff);
        entry.backoff = (entry.backoff * 2).min(self.redial_max);
        self.schedule_dial(dialer, delay, out);
        self.complete_flushes(out);
    }

    /// A dial completed its handshake; `peer_id` is from the peer's ACK (None for MM/1).
    pub(crate) fn dial_succeeded(
        &mut self,
        dialer: DialerId,
        attempt: u64,
        peer_id: Option<&str>,
    ) -> DialVerdict {
        let is_self = self.is_self(peer_id);
        let Some(entry) = self.dialers.get_mut(dialer) else {
            return DialVerdict::Stale;
        };
        if entry.attempt != attempt {
            return DialVerdict::Stale;
        }
        if is_self {
            entry.state = DialState::IsSelf;
            entry.peer_id = peer_id.map(str::to_owned);
            info!(service = %self.service, address = %entry.address, "configured mesh address is this gateway: not dialling it");
            return DialVerdict::IsSelf;
        }
        DialVerdict::Attach
    }

    /// A dialled link was attached as `key`: retire an older link to the same peer, replay every
    /// local pattern on it.
    pub(crate) fn dialled_link_up(
        &mut self,
        dialer: DialerId,
        key: ConnectionKey,
        peer_id: Option<String>,
        protocol: Protocol,
        out: &mut MeshOutput,
    ) {
        if let Some(peer_id) = &peer_id {
            for older in self
                .dialled
                .iter()
                .filter(|link| link.peer_id.as_ref() == Some(peer_id))
            {
                out.effects.push(MeshEffect::Close {
                    link: older.key,
                    reason: CloseReason::ReplacedByNewerLink,
                });
            }
        }
        let Some(entry) = self.dialers.get_mut(dialer) else {
            // Dropped while its dial was in flight: the service checks `dial_succeeded` first,
            // so this does not happen; close the link rather than keep it unowned.
            out.effects.push(MeshEffect::Close {
                link: key,
                reason: CloseReason::NoLongerDiscovered,
            });
            return;
        };
        entry.state = DialState::Up;
        entry.ever_up = true;
        entry.peer_id = peer_id.clone();
        entry.link = Some(key);
        entry.last_failure = None;
        entry.backoff = FIRST_REDIAL;
        entry.failures = 0;
        info!(
            service = %self.service,
            address = %entry.address,
            %protocol,
            interest = self.interest.len(),
            "mesh link up"
        );
        let mut link = DialledLink {
            key,
            peer_id,
            protocol,
            dialer,
            flush_sent: 0,
            flush_answered: 0,
            interest_since_ping: true,
        };
        for entry in self.interest.iter() {
            out.send_interest(
                key,
                Action::Subscribe,
                entry.link_subscription_id,
                &entry.pattern,
            );
        }
        // Flushes that waited for this first dial now wait for the replayed interest to be
        // confirmed (an MM/1 peer cannot confirm: they stop waiting for it).
        let waited = self
            .pending_flushes
            .iter()
            .any(|flush| flush.first_dials.contains(&dialer));
        if waited && protocol == Protocol::Mm2 {
            link.flush_sent = self.next_flush_sequence;
            self.next_flush_sequence += 1;
            link.interest_since_ping = false;
            let ping = Message::new().add_u64("flush", link.flush_sent);
            out.send(key, &Header::new(Action::Ping), &ping);
        }
        for flush in &mut self.pending_flushes {
            if let Some(index) = flush.first_dials.iter().position(|&id| id == dialer) {
                flush.first_dials.swap_remove(index);
                if protocol == Protocol::Mm2 {
                    flush.waiting.push((key, link.flush_sent));
                }
            }
        }
        self.dialled.push(link);
        if waited {
            self.complete_flushes(out);
        }
    }

    /// Whether a new link from `peer_id` may be accepted now: a link that would replace an
    /// existing one is refused if the last replacement for that id was less than
    /// [`LINK_REPLACEMENT_INTERVAL`] ago. (Only authenticated peers get this far when the mesh
    /// is authenticated.)
    pub(crate) fn may_accept_link(
        &mut self,
        peer_id: Option<&str>,
        now: Instant,
    ) -> Result<(), LinkRefused> {
        let Some(peer_id) = peer_id else {
            return Ok(());
        };
        if !self
            .accepted
            .iter()
            .any(|link| link.peer_id.as_deref() == Some(peer_id))
        {
            return Ok(());
        }
        if let Some(last) = self.replacements.get(peer_id)
            && now.saturating_duration_since(*last) < LINK_REPLACEMENT_INTERVAL
        {
            return Err(LinkRefused::ReplacedTooRecently(peer_id.to_owned()));
        }
        self.replacements
            .retain(|_, last| now.saturating_duration_since(*last) < LINK_REPLACEMENT_INTERVAL);
        self.replacements.insert(peer_id.to_owned(), now);
        Ok(())
    }

    /// A peer's link was attached as `key` (after its ACK was queued): retire an older accepted
    /// link from the same peer.
    pub(crate) fn accepted_link_up(
        &mut self,
        key: ConnectionKey,
        peer_id: Option<String>,
        describe: String,
        out: &mut MeshOutput,
    ) {
        if let Some(peer_id) = &peer_id {
            for older in self
                .accepted
                .iter()
                .filter(|link| link.peer_id.as_ref() == Some(peer_id))
            {
                out.effects.push(MeshEffect::Close {
                    link: older.key,
                    reason: CloseReason::ReplacedByNewerLink,
                });
            }
        }
        let check_after = if self.configured && !self.started {
            info!(
                service = %self.service,
                peer = %describe,
                "mesh peer connected (this gateway dials its peers once the service has a client here)"
            );
            None
        } else if self.configured {
            info!(service = %self.service, peer = %describe, "mesh peer connected");
            peer_id.as_ref().map(|_| Instant::now() + ONE_SIDED_GRACE)
        } else {
            warn!(
                service = %self.service,
                peer = %describe,
                "one-sided mesh peer: it dials this gateway, but this gateway does not list the \
                 service in StartupMeshes and will not dial back"
            );
            None
        };
        self.accepted.push(AcceptedLink {
            key,
            peer_id,
            describe,
            check_after,
        });
    }

    /// A link closed (its patterns have already left the subject index). A dialled link's
    /// dialler backs off and redials; diallers waiting on the same peer re-check; flushes stop
    /// waiting for it.
    pub(crate) fn link_closed(
        &mut self,
        key: ConnectionKey,
        reason: CloseReason,
        out: &mut MeshOutput,
    ) {
        if let Some(index) = self.accepted.iter().position(|link| link.key == key) {
            self.accepted.remove(index);
            return;
        }
        let Some(index) = self.dialled.iter().position(|link| link.key == key) else {
            return;
        };
        let link = self.dialled.remove(index);
        // A dropped dialler's link closes for good: no redial.
        if let Some(entry) = self.dialers.get_mut(link.dialer)
            && entry.link == Some(key)
        {
            entry.link = None;
            entry.state = DialState::Backoff;
            entry.last_failure = Some(LinkFailure::Closed(reason));
            self.schedule_dial(link.dialer, with_jitter(FIRST_REDIAL), out);
        }
        if let Some(peer_id) = &link.peer_id {
            let waiting: Vec<DialerId> = self
                .dialers
                .iter()
                .filter(|(_, entry)| {
                    entry.state == DialState::Suppressed && entry.peer_id.as_ref() == Some(peer_id)
                })
                .map(|(dialer, _)| dialer)
                .collect();
            for dialer in waiting {
                self.schedule_dial(dialer, Duration::ZERO, out);
            }
        }
        // A closed link no longer holds up mesh flushes.
        self.complete_flushes(out);
    }

    // ---------------------------------------------------------------------------------------
    // Membership: discovery adds and removes peers
    // ---------------------------------------------------------------------------------------

    /// A discovery source's report: a new peer set, or its health.
    pub(crate) fn discovery_report(&mut self, report: DiscoveryReport, out: &mut MeshOutput) {
        match report {
            DiscoveryReport::Peers(source, addresses) => {
                self.peers_changed(source, &addresses, out);
            }
            DiscoveryReport::Health(source, error) => {
                let service = self.service.clone();
                let record = self.source_record(&source);
                if record.error.is_some() && error.is_none() {
                    info!(%service, %source, "discovery source reachable again");
                }
                record.error = error;
            }
        }
    }

    /// `source` lists exactly `addresses` now. New addresses get a dialler that dials at once (an
    /// address another source already lists gets this source added); addresses this source no
    /// longer lists lose it, and those no source lists any more start leaving: they are dropped
    /// after the grace period ([`MeshEffect::DropAfter`]) unless listed again before.
    pub(crate) fn peers_changed(
        &mut self,
        source: PeerSource,
        addresses: &[String],
        out: &mut MeshOutput,
    ) {
        let wanted: HashSet<&str> = addresses.iter().map(String::as_str).collect();
        self.source_record(&source).peers = Some(wanted.len());
        let vanished: Vec<DialerId> = self
            .dialers
            .iter()
            .filter(|(_, entry)| {
                entry.sources.contains(&source) && !wanted.contains(entry.address.as_str())
            })
            .map(|(dialer, _)| dialer)
            .collect();
        for dialer in vanished {
            let entry = &mut self.dialers[dialer];
            entry.sources.retain(|listed| *listed != source);
            if !entry.sources.is_empty() {
                continue;
            }
            entry.leaving = Some(vec![source.clone()]);
            entry.departure += 1;
            info!(
                service = %self.service,
                address = %entry.address,
                %source,
                grace_ms = self.discovery_grace.as_millis() as u64,
                "mesh peer no longer discovered: dropping it after the grace period"
            );
            out.effects.push(MeshEffect::DropAfter {
                dialer,
                departure: entry.departure,
                delay: self.discovery_grace,
            });
        }
        let mut seen = HashSet::new();
        for address in addresses {
            if !seen.insert(address.as_str()) {
                continue;
            }
            if let Some(&dialer) = self.by_address.get(address) {
                let entry = &mut self.dialers[dialer];
                if !entry.sources.contains(&source) {
                    entry.sources.push(source.clone());
                }
                if entry.leaving.take().is_some() {
                    entry.departure += 1;
                    info!(service = %self.service, %address, %source, "mesh peer discovered again: kept");
                }
                continue;
            }
            let dialer = self
                .dialers
                .insert(Dialer::new(address.clone(), source.clone()));
            self.by_address.insert(address.clone(), dialer);
            info!(service = %self.service, %address, %source, "mesh peer discovered");
            if self.started {
                self.schedule_dial(dialer, Duration::ZERO, out);
            }
        }
    }

    /// A leaving dialler's grace period is over: unless a source listed its address again, drop
    /// it — close its link, never redial.
    pub(crate) fn drop_due(&mut self, dialer: DialerId, departure: u64, out: &mut MeshOutput) {
        let due = self
            .dialers
            .get(dialer)
            .is_some_and(|entry| entry.leaving.is_some() && entry.departure == departure);
        if !due {
            return;
        }
        let Some(entry) = self.dialers.remove(dialer) else {
            return;
        };
        self.by_address.remove(&entry.address);
        info!(
            service = %self.service,
            address = %entry.address,
            found_by = %entry.found_by(),
            "mesh peer dropped: no longer discovered"
        );
        if let Some(link) = entry.link {
            out.effects.push(MeshEffect::Close {
                link,
                reason: CloseReason::NoLongerDiscovered,
            });
        }
    }

    /// The record of `source`, created on its first report.
    fn source_record(&mut self, source: &PeerSource) -> &mut SourceRecord {
        let index = match self
            .sources
            .iter()
            .position(|record| record.source == *source)
        {
            Some(index) => index,
            None => {
                self.sources.push(SourceRecord {
                    source: source.clone(),
                    peers: None,
                    error: None,
                });
                self.sources.len() - 1
            }
        };
        &mut self.sources[index]
    }

    fn has_dialled_link_to(&self, peer_id: &str) -> bool {
        self.dialled
            .iter()
            .any(|link| link.peer_id.as_deref() == Some(peer_id))
    }

    // ---------------------------------------------------------------------------------------
    // Mesh-wide flush
    // ---------------------------------------------------------------------------------------

    /// A client's PING with `mesh` = true: answered once every MM/2 dialled link that is up has
    /// answered a PING sent behind the interest changes already queued on it. A link with no
    /// interest queued since its last flush PING needs no new one: that PING (answered or not)
    /// already stands behind everything, so a burst of flushes costs one PING per link.
    pub(crate) fn start_flush(
        &mut self,
        client: ConnectionKey,
        body: &[u8],
        out: &mut MeshOutput,
    ) -> Result<(), FlushRefused> {
        if body.len() > MAX_FLUSH_BODY_BYTES {
            return Err(FlushRefused::BodyTooLarge);
        }
        let in_progress = self.flushes_per_client.get(client).copied().unwrap_or(0);
        if in_progress >= MAX_PENDING_FLUSHES_PER_CONNECTION {
            return Err(FlushRefused::TooMany);
        }
        let mut waiting = Vec::new();
        for link in &mut self.dialled {
            if link.protocol != Protocol::Mm2 {
                continue;
            }
            if link.interest_since_ping || link.flush_sent == 0 {
                link.flush_sent = self.next_flush_sequence;
                self.next_flush_sequence += 1;
                link.interest_since_ping = false;
                let ping = Message::new().add_u64("flush", link.flush_sent);
                out.send(link.key, &Header::new(Action::Ping), &ping);
            }
            if link.flush_answered < link.flush_sent {
                waiting.push((link.key, link.flush_sent));
            }
        }
        let first_dials: Vec<DialerId> = if self.started {
            self.dialers
                .iter()
                .filter(|(_, dialer)| dialer.first_attempt_pending())
                .map(|(id, _)| id)
                .collect()
        } else {
            Vec::new()
        };
        if waiting.is_empty() && first_dials.is_empty() && self.pending_flushes.is_empty() {
            out.send_with_body(client, &Header::new(Action::Pong), body);
            return Ok(());
        }
        if let Some(count) = self.flushes_per_client.entry(client) {
            *count.or_insert(0) += 1;
        }
        self.pending_flushes.push_back(PendingFlush {
            client,
            body: body.to_vec(),
            waiting,
            first_dials,
        });
        // Queued behind earlier flushes: answered in order.
        self.complete_flushes(out);
        Ok(())
    }

    /// A PONG on a link: a flush PING answered (heartbeat PONGs carry no `flush`).
    pub(crate) fn link_pong(&mut self, link: ConnectionKey, body: &Message, out: &mut MeshOutput) {
        let Some(sequence) = body.try_u64("flush") else {
            return;
        };
        if let Some(entry) = self.dialled.iter_mut().find(|entry| entry.key == link) {
            entry.flush_answered = entry.flush_answered.max(sequence);
        }
        self.complete_flushes(out);
    }

    /// Answers the flushes at the front of the queue that are confirmed: O(1) per answered
    /// flush, plus one look at the first that is not.
    fn complete_flushes(&mut self, out: &mut MeshOutput) {
        while let Some(front) = self.pending_flushes.front() {
            let confirmed = front.waiting.iter().all(|&(key, sequence)| {
                self.dialled
                    .iter()
                    .find(|link| link.key == key)
                    .is_none_or(|link| link.flush_answered >= sequence)
            }) && front.first_dials.iter().all(|&dialer| {
                self.dialers
                    .get(dialer)
                    .is_none_or(|entry| !entry.first_attempt_pending())
            });
            if !confirmed {
                return;
            }
            let Some(flush) = self.pending_flushes.pop_front() else {
                return;
            };
            if let Some(count) = self.flushes_per_client.get_mut(flush.client) {
                *count -= 1;
                if *count == 0 {
                    self.flushes_per_client.remove(flush.client);
                }
            }
            out.send_with_body(flush.client, &Header::new(Action::Pong), &flush.body);
        }
    }

    /// Answers the flushes that no longer wait for anything (after a dialler found that its
    /// address is this gateway).
    pub(crate) fn recheck_flushes(&mut self, out: &mut MeshOutput) {
        self.complete_flushes(out);
    }

    /// Flushes still waiting for links.
    #[cfg(test)]
    pub(crate) fn pending_flushes(&self) -> usize {
        self.pending_flushes.len()
    }

    // ---------------------------------------------------------------------------------------
    // Housekeeping
    // ---------------------------------------------------------------------------------------

    /// Warns once about each accepted link whose peer this gateway does not dial back, once the
    /// diallers have had time to reach every configured address.
    pub(crate) fn check_one_sided_links(&mut self, now: Instant) {
        for link in &mut self.accepted {
            let Some(check_after) = link.check_after else {
                continue;
            };
            if now < check_after {
                continue;
            }
            link.check_after = None;
            let Some(peer_id) = &link.peer_id else {
                continue;
            };
            let dialled_back = self
                .dialers
                .values()
                .any(|dialer| dialer.peer_id.as_deref() == Some(peer_id.as_str()));
            if !dialled_back {
                warn!(
                    service = %self.service,
                    peer = %link.describe,
                    "one-sided mesh peer: it dials this gateway, but is not among this gateway's \
                     peers (MeshGateways, etcd, DNS), so this gateway does not send it interest"
                );
            }
        }
    }
}

/// `delay` plus up to 25 % random jitter, so gateways restarted together do not redial in step.
fn with_jitter(delay: Duration) -> Duration {
    delay + delay.mul_f64(rand::random::<f64>() * 0.25)
}
