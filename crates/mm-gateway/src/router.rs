//! [`Router`]: who receives a publish. The subject index, the routing of one frame to every
//! matching subscription, each publisher's memo of its last subject, and the set of connections
//! to write after the batch.
//!
//! Routing appends the publisher's frame, byte for byte, to the output buffer of every matching
//! subscription's connection, with bytes 4..7 patched to that subscription's id (SPEC §6.3) — once
//! per subscription for clients, once per message for a mesh link however many of its patterns
//! match (the link's peer fans it out), and never from one peer to another (no relay, SPEC §8).
//! Every connection that received something is marked in [`Router::flush`].
//!
//! Bounds hold while routing, not after (issue #12): a connection whose queue would pass twice
//! its bound gets one write attempt on the spot, and if that does not make room, nothing more is
//! copied for it — it is listed in [`Router::take_cut_offs`] and the service closes it after the
//! frame. So one client holding 200 000 subscriptions to a subject cannot make the gateway copy
//! 200 000 frames into its queue per publish.
//!
//! A publisher almost always repeats its subject, so each one has a memo: its last subject (which
//! was valid) and, while the index is unchanged, what that subject matched. A repeat skips both
//! the subject check and the lookup.
//!
//! The memo also counts what a local client published on its subject (two additions); the counts
//! go into the service's [`SubjectTally`] (top subjects) when the subject changes, when the memo
//! is dropped, and when the monitoring window closes — never per message.

use std::collections::VecDeque;
use std::time::Instant;

use mm_wire::patch_subscription_id;
use slotmap::SecondaryMap;

use crate::connection::{CloseReason, Connection, ConnectionKey, Connections};
use crate::flush_set::FlushSet;
use crate::subject_tally::{SubjectCount, SubjectTally, TallyWindow};
use crate::subject_trie::SubjectTrie;

/// A subscription in the index: which connection, and the id to stamp into delivered frames (for
/// links: the id the peer chose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Subscriber {
    /// The connection. Every subscriber of a connection leaves the index before the connection
    /// is removed, so this key is always live while it is in the index.
    pub(crate) connection: ConnectionKey,
    /// The subscription id.
    pub(crate) subscription_id: u32,
}

/// Where a frame being routed came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A local client.
    Client(ConnectionKey),
    /// A mesh peer: goes to local clients only (no relay).
    Peer(ConnectionKey),
    /// The gateway itself (answers to `_MM.` requests): goes everywhere a client's publish would.
    Gateway,
}

impl Origin {
    /// The connection the frame came from, if any.
    pub(crate) fn publisher(self) -> Option<ConnectionKey> {
        match self {
            Origin::Client(key) | Origin::Peer(key) => Some(key),
            Origin::Gateway => None,
        }
    }
}

/// What routing one frame did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RouteOutcome {
    /// At least one copy was queued.
    pub(crate) delivered: bool,
    /// At least one subscription matched (it may still have received nothing: a link does not
    /// get messages from peers).
    pub(crate) matched: bool,
    /// Subscriptions looked at: the work the frame cost.
    pub(crate) visited: usize,
    /// Copies not queued because their connection was past its bound.
    pub(crate) dropped: usize,
    /// The batch's time ran out before every subscription had its copy: the rest waits in the
    /// router for [`Router::resume`], and the publisher must not be read until it is done.
    pub(crate) unfinished: bool,
    /// Size of the frame routed.
    pub(crate) frame_len: usize,
}

/// How many subscriptions routing looks at between looks at the clock (when it has a deadline):
/// a few hundred microseconds of copying.
const SUBSCRIBERS_BETWEEN_CLOCK_CHECKS: usize = 4096;

/// A message whose fan-out outlasted its batch (one publish matching a few hundred thousand
/// subscriptions copies for tens of milliseconds): the subscriptions still to receive it, in
/// order, each connection's copies after the ones it already has.
#[derive(Debug)]
struct UnfinishedRoute {
    /// Who published it: not read again until this is done (its next frames come after it).
    publisher: Option<ConnectionKey>,
    frame: Vec<u8>,
    reply_subject: Vec<u8>,
    sequence: u64,
    /// The subscriptions still to receive it (each link at most once).
    rest: Vec<Subscriber>,
    /// How many of `rest` have been served.
    next: usize,
}

/// One message's fan-out, as [`fan_out`] needs it.
struct Fanout<'a> {
    frame: &'a [u8],
    reply_subject: &'a [u8],
    sequence: u64,
    from_peer: bool,
}

/// A publisher's last subject and what it matched.
#[derive(Debug, Default)]
struct PublishMemo {
    /// The subject: valid, because a memo is only written after the subject was checked.
    subject: Vec<u8>,
    /// Whether the check passed it for good ([`SubjectCheck::Repeatable`]): a repeat then needs
    /// no check. False after [`SubjectCheck::Once`]: the same subject is checked again.
    repeatable: bool,
    /// The index generation `matches` was computed at.
    generation: u64,
    /// The subscriptions the subject matched.
    matches: Vec<Subscriber>,
    /// Messages and bytes published on `subject` since they were last folded into the tally.
    unfolded: SubjectCount,
}

/// What the check of a publish's subject (validity, and permission when security is on) decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectCheck {
    /// Routed, and so is a repeat by the same publisher without another check.
    Repeatable,
    /// Routed this time only (an answer a request allows): a repeat is checked again.
    Once,
    /// Refused: nothing is routed.
    Refused,
}

/// The routing part of a service. Owned by the service loop.
#[derive(Debug)]
pub(crate) struct Router {
    /// Every subscription of every connection of the service, by pattern (local clients' and
    /// the patterns peers registered on their links).
    trie: SubjectTrie<Subscriber>,
    /// Each publisher's memo. A publisher without one has its subject checked in full.
    memos: SecondaryMap<ConnectionKey, PublishMemo>,
    /// Matches of a gateway-built frame (it has no memo).
    scratch: Vec<Subscriber>,
    /// Incremented for every routed message; lets a link receive each message at most once.
    publish_sequence: u64,
    /// Connections with output queued since they were last written.
    pub(crate) flush: FlushSet,
    /// Connections found past their bound (their `cut_off` is set), to be closed by the service.
    cut_offs: Vec<ConnectionKey>,
    /// Messages and bytes per subject published by local clients in the monitoring window.
    pub(crate) subjects: SubjectTally,
    /// Fan-outs that outlasted their batch, oldest first.
    unfinished: VecDeque<UnfinishedRoute>,
}

impl Router {
    /// An empty router.
    pub(crate) fn new() -> Router {
        Router {
            trie: SubjectTrie::new(),
            memos: SecondaryMap::new(),
            scratch: Vec::new(),
            publish_sequence: 0,
            flush: FlushSet::default(),
            cut_offs: Vec::new(),
            subjects: SubjectTally::new(false),
            unfinished: VecDeque::new(),
        }
    }

    /// An empty router that counts messages per subject when `count_subjects` is set.
    pub(crate) fn with_subject_tally(count_subjects: bool) -> Router {
        Router {
            subjects: SubjectTally::new(count_subjects),
            ..Router::new()
        }
    }

    /// Adds a subscription (the pattern is already validated).
    pub(crate) fn subscribe(&mut self, pattern: &[u8], subscriber: Subscriber) {
        self.trie.insert(pattern, subscriber);
    }

    /// Removes a subscription; false if it was not there.
    pub(crate) fn unsubscribe(&mut self, pattern: &[u8], subscriber: Subscriber) -> bool {
        self.trie.remove(pattern, subscriber)
    }

    /// Subscriptions in the index.
    pub(crate) fn subscriptions(&self) -> usize {
        self.trie.len()
    }

    /// Whether `subject` is the publisher's last subject, so known to be valid.
    #[cfg(test)]
    pub(crate) fn knows_subject(&self, publisher: ConnectionKey, subject: &[u8]) -> bool {
        self.memos
            .get(publisher)
            .is_some_and(|memo| memo.subject == subject)
    }

    /// Queues `frame` (whose subject is valid) for every matching subscription and marks the
    /// connections for flushing. Never closes a connection: those past their bound are listed for
    /// [`Router::take_cut_offs`]. Subscriptions of a connection that is already closed (its
    /// subscriptions are being retired in slices) are skipped.
    pub(crate) fn route(
        &mut self,
        origin: Origin,
        frame: &[u8],
        subject: &[u8],
        connections: &mut Connections,
    ) -> RouteOutcome {
        self.route_checked(origin, frame, subject, &[], connections, None, |_, _| {
            SubjectCheck::Repeatable
        })
        .unwrap_or_default()
    }

    /// [`Router::route`] for a subject not checked yet: a publisher's last subject passed, so
    /// `check` (given the connections, for the publisher's permissions) is called only when `subject` is another one (or the last one passed only once);
    /// if it refuses, nothing is routed (`None`) and the memo is left as it was. The common case
    /// costs one memo lookup and one comparison, security on or off. A client
    /// with permissions that receives a frame with a `reply_subject` may answer it (private
    /// replies, `crate::permissions`). With a `deadline`, a fan-out still going when it passes
    /// stops there and the rest waits for [`Router::resume`] (`unfinished` in the outcome).
    ///
    /// Always inlined, like [`fan_out`]: left to itself the compiler kept both out of line once
    /// fan-outs could be resumed, and a 16-byte message 1 → 1 cost the whole gateway 630
    /// instructions instead of 485 (callgrind), a fifth of its throughput.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn route_checked(
        &mut self,
        origin: Origin,
        frame: &[u8],
        subject: &[u8],
        reply_subject: &[u8],
        connections: &mut Connections,
        deadline: Option<Instant>,
        check: impl FnOnce(&[u8], &mut Connections) -> SubjectCheck,
    ) -> Option<RouteOutcome> {
        let generation = self.trie.generation();
        // Whether the memo is of this very subject (compared once, used twice).
        let mut same = false;
        let memo = match origin.publisher() {
            Some(publisher) => {
                let memo = self.memos.get_mut(publisher);
                same = memo.as_ref().is_some_and(|memo| memo.subject == subject);
                let known = same && memo.as_ref().is_some_and(|memo| memo.repeatable);
                let repeatable = known
                    || match check(subject, connections) {
                        SubjectCheck::Refused => return None,
                        SubjectCheck::Repeatable => true,
                        SubjectCheck::Once => false,
                    };
                let mut memo = match memo {
                    Some(memo) => Some(memo),
                    None => self.memos.entry(publisher).map(|entry| entry.or_default()),
                };
                if let Some(memo) = memo.as_deref_mut() {
                    memo.repeatable = repeatable;
                }
                memo
            }
            None => {
                if check(subject, connections) == SubjectCheck::Refused {
                    return None;
                }
                None
            }
        };
        self.publish_sequence += 1;
        let sequence = self.publish_sequence;
        let from_peer = matches!(origin, Origin::Peer(_));
        let matches: &[Subscriber] = match memo {
            Some(memo) => {
                if !same || memo.generation != generation {
                    if !same && memo.unfolded.messages > 0 {
                        self.subjects
                            .add(&memo.subject, std::mem::take(&mut memo.unfolded));
                    }
                    memo.subject.clear();
                    memo.subject.extend_from_slice(subject);
                    memo.generation = generation;
                    memo.matches.clear();
                    memo.matches.extend_from_slice(self.trie.matches(subject));
                }
                if !from_peer {
                    memo.unfolded.messages += 1;
                    memo.unfolded.bytes += frame.len() as u64;
                }
                &memo.matches
            }
            None => {
                self.scratch.clear();
                self.scratch.extend_from_slice(self.trie.matches(subject));
                &self.scratch
            }
        };
        let mut outcome = RouteOutcome {
            matched: !matches.is_empty(),
            frame_len: frame.len(),
            ..RouteOutcome::default()
        };
        let fanout = Fanout {
            frame,
            reply_subject,
            sequence,
            from_peer,
        };
        let done = fan_out(
            &fanout,
            matches,
            connections,
            &mut self.flush,
            &mut self.cut_offs,
            &mut outcome,
            deadline,
        );
        outcome.visited = done;
        if done < matches.len() {
            self.unfinished.push_back(unfinished_route(
                &fanout,
                origin,
                &matches[done..],
                connections,
            ));
            outcome.unfinished = true;
        }
        Some(outcome)
    }

    /// Goes on with the oldest unfinished fan-out until it is done or `deadline` passes (at
    /// least a few thousand subscriptions each call); `None` when there is none.
    pub(crate) fn resume(
        &mut self,
        connections: &mut Connections,
        deadline: Instant,
    ) -> Option<RouteOutcome> {
        let route = self.unfinished.front_mut()?;
        let mut outcome = RouteOutcome {
            matched: true,
            frame_len: route.frame.len(),
            ..RouteOutcome::default()
        };
        let fanout = Fanout {
            frame: &route.frame,
            reply_subject: &route.reply_subject,
            sequence: route.sequence,
            from_peer: false,
        };
        let done = fan_out(
            &fanout,
            &route.rest[route.next..],
            connections,
            &mut self.flush,
            &mut self.cut_offs,
            &mut outcome,
            Some(deadline),
        );
        route.next += done;
        outcome.visited = done;
        if route.next == route.rest.len() {
            self.unfinished.pop_front();
        } else {
            outcome.unfinished = true;
        }
        Some(outcome)
    }

    /// Whether a fan-out waits to be resumed.
    #[inline]
    pub(crate) fn has_unfinished(&self) -> bool {
        !self.unfinished.is_empty()
    }

    /// Whether a fan-out of `publisher`'s waits to be resumed (its next frames wait for it).
    pub(crate) fn is_unfinished_from(&self, publisher: ConnectionKey) -> bool {
        self.unfinished
            .iter()
            .any(|route| route.publisher == Some(publisher))
    }

    /// Whether routing found connections past their bound (to close with
    /// [`Router::take_cut_offs`]).
    #[inline]
    pub(crate) fn has_cut_offs(&self) -> bool {
        !self.cut_offs.is_empty()
    }

    /// Connections found past their bound since the last call, to be closed.
    pub(crate) fn take_cut_offs(&mut self) -> Vec<ConnectionKey> {
        std::mem::take(&mut self.cut_offs)
    }

    /// The id of `connection`'s subscription that matches `subject`, if any (the header of a
    /// NO_RESPONDERS names the requester's inbox subscription).
    pub(crate) fn subscription_matching(
        &mut self,
        connection: ConnectionKey,
        subject: &[u8],
    ) -> Option<u32> {
        self.trie
            .matches(subject)
            .iter()
            .find(|subscriber| subscriber.connection == connection)
            .map(|subscriber| subscriber.subscription_id)
    }

    /// Drops a publisher's memo (it closed, or has been idle: the memory goes back); what it
    /// counted goes into the tally first.
    pub(crate) fn forget_publisher(&mut self, publisher: ConnectionKey) {
        if let Some(memo) = self.memos.remove(publisher) {
            self.subjects.add(&memo.subject, memo.unfolded);
        }
    }

    /// Closes the monitoring window: folds every memo's counts into the tally, and returns the
    /// window's totals with its `top` heaviest subjects (the tally starts again empty).
    pub(crate) fn close_subject_window(&mut self, top: usize) -> TallyWindow {
        if self.subjects.enabled() {
            for (_, memo) in &mut self.memos {
                if memo.unfolded.messages > 0 {
                    self.subjects
                        .add(&memo.subject, std::mem::take(&mut memo.unfolded));
                }
            }
        }
        self.subjects.close_window(top)
    }
}

/// How much may be queued for a connection while a batch is routed: twice its bound. The bound
/// itself is judged when the batch is written, as it always was (a subscriber that keeps up but
/// whose client had not been scheduled yet when the batch began is not cut off); routing only
/// makes sure no batch can take a queue further than this.
#[inline]
fn routing_limit(connection: &Connection) -> usize {
    connection.output_bound.saturating_mul(2)
}

/// What is left of a fan-out that ran out of time: the rest of its subscribers, each link once
/// and only if it has not had its copy yet (a link's "already has it" mark is overwritten by the
/// messages routed in between). Out of line: the routing path must not pay for its size.
#[cold]
#[inline(never)]
fn unfinished_route(
    fanout: &Fanout<'_>,
    origin: Origin,
    rest: &[Subscriber],
    connections: &Connections,
) -> UnfinishedRoute {
    let mut links: Vec<ConnectionKey> = Vec::new();
    let rest = rest
        .iter()
        .filter(|subscriber| match connections.get(subscriber.connection) {
            Some(connection) if connection.role.is_link() => {
                let wanted = !fanout.from_peer
                    && connection.delivered_sequence != fanout.sequence
                    && !links.contains(&subscriber.connection);
                if wanted {
                    links.push(subscriber.connection);
                }
                wanted
            }
            Some(_) => true,
            None => false,
        })
        .copied()
        .collect();
    UnfinishedRoute {
        publisher: origin.publisher(),
        frame: fanout.frame.to_vec(),
        reply_subject: fanout.reply_subject.to_vec(),
        sequence: fanout.sequence,
        rest,
        next: 0,
    }
}

/// Queues `fanout`'s frame for `subscribers` in order, until done or — looking at the clock every
/// [`SUBSCRIBERS_BETWEEN_CLOCK_CHECKS`] — `deadline` has passed; returns how many were served.
/// Never closes a connection: those past their bound get `cut_off` and go into `cut_offs`.
#[inline(always)]
fn fan_out(
    fanout: &Fanout<'_>,
    subscribers: &[Subscriber],
    connections: &mut Connections,
    flush: &mut FlushSet,
    cut_offs: &mut Vec<ConnectionKey>,
    outcome: &mut RouteOutcome,
    deadline: Option<Instant>,
) -> usize {
    let frame = fanout.frame;
    let mut now = None;
    for (index, subscriber) in subscribers.iter().enumerate() {
        if index > 0
            && index % SUBSCRIBERS_BETWEEN_CLOCK_CHECKS == 0
            && deadline.is_some_and(|deadline| Instant::now() >= deadline)
        {
            return index;
        }
        let Some(connection) = connections.get_mut(subscriber.connection) else {
            continue;
        };
        let subscription_id = if connection.role.is_link() {
            if fanout.from_peer || connection.delivered_sequence == fanout.sequence {
                continue;
            }
            connection.delivered_sequence = fanout.sequence;
            0
        } else {
            subscriber.subscription_id
        };
        // A frame always fits an empty queue (SPEC §6.3).
        if connection.outbound.pending() + frame.len() > routing_limit(connection)
            && !connection.outbound.is_empty()
        {
            if connection.cut_off.is_none()
                && let Err(reason) = make_room(connection, frame.len())
            {
                connection.cut_off = Some(reason);
                cut_offs.push(subscriber.connection);
            }
            if connection.cut_off.is_some() {
                outcome.dropped += 1;
                continue;
            }
        }
        patch_subscription_id(connection.outbound.push(frame), subscription_id);
        if !fanout.reply_subject.is_empty()
            && let Some(access) = connection.access.as_deref_mut()
        {
            let now = *now.get_or_insert_with(Instant::now);
            access.record_request(fanout.reply_subject, now);
        }
        connection.counters.frames_out += 1;
        connection.counters.bytes_out += frame.len() as u64;
        flush.insert(subscriber.connection);
        outcome.delivered = true;
    }
    subscribers.len()
}

/// A connection about to pass its bound: writes what the socket takes now. `Ok` if `frame_len`
/// more bytes then fit; else why it must be closed.
fn make_room(connection: &mut Connection, frame_len: usize) -> Result<(), CloseReason> {
    connection.write_some()?;
    if connection.outbound.pending() + frame_len <= routing_limit(connection) {
        Ok(())
    } else {
        Err(CloseReason::SlowConsumer)
    }
}

#[cfg(test)]
mod tests;
