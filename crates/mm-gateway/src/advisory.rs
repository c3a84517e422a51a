//! Advisories, as Rendezvous daemons publish `_RV.WARN.>` / `_RV.INFO.>`: events a service's
//! applications may want to act on, published by the gateway as ordinary messages on reserved
//! subjects in the affected service (docs/protocol.md, "Advisories").
//!
//! | subject | when |
//! |---|---|
//! | `_MM.ADVISORY.WARN.CLIENT.SLOW_CONSUMER` | a connection was cut off: its queued output passed its bound (or the gateway's budget) |
//! | `_MM.ADVISORY.WARN.CLIENT.REFUSED` | a client was refused something: a limit, a rate, the service |
//! | `_MM.ADVISORY.INFO.LINK.UP` | a mesh link came up |
//! | `_MM.ADVISORY.WARN.LINK.DOWN` | a mesh link went down |
//!
//! This module builds the messages and limits their rate; it does no I/O. [`Advisories`] keeps
//! them until the service loop publishes them (like an `_MM.STATS` answer: from the gateway, to
//! every matching subscription, local and at mesh peers). Each kind may publish
//! [`ADVISORIES_PER_SECOND`] a second ([`ADVISORY_BURST`] in a burst); the ones past that are
//! counted, and the next one of the kind says how many in its `suppressed` field.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mm_wire::Message;
use mm_wire::handshake::{ErrorCode, Protocol};

use crate::connection::{CloseReason, Connection, Role};
use crate::rate_limit::TokenBucket;

/// Advisories of one kind published per second, at most.
pub(crate) const ADVISORIES_PER_SECOND: f64 = 5.0;

/// Advisories of one kind published at once, at most.
pub(crate) const ADVISORY_BURST: f64 = 20.0;

/// What an advisory is about. Each kind has its subject and its own rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdvisoryKind {
    /// A connection was cut off for not reading its output.
    SlowConsumer,
    /// A client was refused something.
    ClientRefused,
    /// A mesh link came up.
    LinkUp,
    /// A mesh link went down.
    LinkDown,
}

impl AdvisoryKind {
    const COUNT: usize = 4;

    /// The subject it is published on.
    pub(crate) fn subject(self) -> &'static str {
        match self {
            AdvisoryKind::SlowConsumer => "_MM.ADVISORY.WARN.CLIENT.SLOW_CONSUMER",
            AdvisoryKind::ClientRefused => "_MM.ADVISORY.WARN.CLIENT.REFUSED",
            AdvisoryKind::LinkUp => "_MM.ADVISORY.INFO.LINK.UP",
            AdvisoryKind::LinkDown => "_MM.ADVISORY.WARN.LINK.DOWN",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// A client refused before it joined a service (by the acceptor), for
/// [`Advisories::client_refused_at_connect`].
#[derive(Debug, Clone)]
pub(crate) struct RefusedConnect {
    /// The client's name from its CONNECT.
    pub(crate) name: String,
    /// Its address.
    pub(crate) address: SocketAddr,
    /// The ERROR code it was refused with.
    pub(crate) code: ErrorCode,
    /// Why, for people.
    pub(crate) text: String,
}

/// One service's advisories: rate limits per kind, and the messages waiting to be published.
#[derive(Debug)]
pub(crate) struct Advisories {
    service: String,
    gateway_name: String,
    gateway_id: String,
    buckets: [TokenBucket; AdvisoryKind::COUNT],
    /// Per kind: advisories not published since the last one that was.
    suppressed: [u64; AdvisoryKind::COUNT],
    /// Built and waiting for the service loop, in order.
    pending: Vec<(AdvisoryKind, Message)>,
    /// Advisories published (handed to the service loop) since the service started.
    published_total: u64,
    /// Advisories not published because of the rate limit since the service started.
    suppressed_total: u64,
}

impl Advisories {
    /// Advisories of `service` at the gateway `gateway_name` / `gateway_id`.
    pub(crate) fn new(service: &str, gateway_name: &str, gateway_id: &str) -> Advisories {
        Advisories {
            service: service.to_owned(),
            gateway_name: gateway_name.to_owned(),
            gateway_id: gateway_id.to_owned(),
            buckets: std::array::from_fn(|_| {
                TokenBucket::new(ADVISORIES_PER_SECOND, ADVISORY_BURST)
            }),
            suppressed: [0; AdvisoryKind::COUNT],
            pending: Vec::new(),
            published_total: 0,
            suppressed_total: 0,
        }
    }

    /// Whether advisories wait to be published.
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The advisories waiting, oldest first, for the service loop to publish.
    pub(crate) fn take_pending(&mut self) -> Vec<(AdvisoryKind, Message)> {
        std::mem::take(&mut self.pending)
    }

    /// Advisories published since the service started.
    pub(crate) fn published_total(&self) -> u64 {
        self.published_total
    }

    /// Advisories left out by the rate limit since the service started.
    pub(crate) fn suppressed_total(&self) -> u64 {
        self.suppressed_total
    }

    /// `connection` was cut off: its queue passed its bound (or it had the largest backlog when
    /// the gateway's budget was exceeded); `dropped_frames` / `dropped_bytes` were discarded.
    pub(crate) fn slow_consumer(
        &mut self,
        now: Instant,
        connection: &Connection,
        reason: CloseReason,
        dropped_frames: usize,
        dropped_bytes: usize,
    ) {
        let Some(mut message) = self.start(AdvisoryKind::SlowConsumer, now) else {
            return;
        };
        connection_fields(&mut message, connection);
        let cause = if reason == CloseReason::OutputBudget {
            "gateway_budget"
        } else {
            "bound"
        };
        message
            .push("cause", cause)
            .push("bound", connection.output_bound as u64)
            .push("dropped_frames", dropped_frames as u64)
            .push("dropped_bytes", dropped_bytes as u64)
            .push(
                "text",
                format!(
                    "{} cut off as a slow consumer ({reason}): {dropped_frames} queued frames \
                     ({dropped_bytes} bytes) discarded",
                    connection.describe()
                ),
            );
        self.finish(AdvisoryKind::SlowConsumer, message);
    }

    /// `connection` was refused something (a frame answered with ERROR `code`): `subject` is
    /// what it concerned (may be empty).
    pub(crate) fn client_refused(
        &mut self,
        now: Instant,
        connection: &Connection,
        code: ErrorCode,
        subject: &[u8],
        text: &str,
    ) {
        let Some(mut message) = self.start(AdvisoryKind::ClientRefused, now) else {
            return;
        };
        connection_fields(&mut message, connection);
        message
            .push("code", code.as_str())
            .push("subject", String::from_utf8_lossy(subject).as_ref())
            .push(
                "text",
                format!("{} refused: {code}: {text}", connection.describe()),
            );
        self.finish(AdvisoryKind::ClientRefused, message);
    }

    /// A client was refused at CONNECT (before it joined the service).
    pub(crate) fn client_refused_at_connect(&mut self, now: Instant, refused: &RefusedConnect) {
        let Some(mut message) = self.start(AdvisoryKind::ClientRefused, now) else {
            return;
        };
        message
            .push("name", refused.name.as_str())
            .push("address", refused.address.to_string())
            .push("role", "client")
            .push("code", refused.code.as_str())
            .push("subject", self.service.as_str())
            .push(
                "text",
                format!(
                    "{} ({}) refused at connect: {}: {}",
                    refused.name, refused.address, refused.code, refused.text
                ),
            );
        self.finish(AdvisoryKind::ClientRefused, message);
    }

    /// The mesh link `connection` came up.
    pub(crate) fn link_up(&mut self, now: Instant, connection: &Connection) {
        let Some(mut message) = self.start(AdvisoryKind::LinkUp, now) else {
            return;
        };
        link_fields(&mut message, connection);
        message.push("text", format!("mesh link up: {}", connection.describe()));
        self.finish(AdvisoryKind::LinkUp, message);
    }

    /// The mesh link `connection` went down, for `reason`.
    pub(crate) fn link_down(&mut self, now: Instant, connection: &Connection, reason: CloseReason) {
        let Some(mut message) = self.start(AdvisoryKind::LinkDown, now) else {
            return;
        };
        link_fields(&mut message, connection);
        message.push("reason", reason.to_string()).push(
            "text",
            format!("mesh link down: {} ({reason})", connection.describe()),
        );
        self.finish(AdvisoryKind::LinkDown, message);
    }

    /// The fields every advisory starts with, or `None` when the kind is over its rate (the
    /// advisory is then counted as suppressed).
    fn start(&mut self, kind: AdvisoryKind, now: Instant) -> Option<Message> {
        let index = kind.index();
        if !self.buckets[index].take(now) {
            self.suppressed[index] += 1;
            self.suppressed_total += 1;
            return None;
        }
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis() as u64);
        Some(
            Message::new()
                .add_string("service", self.service.as_str())
                .add_string("gateway_name", self.gateway_name.as_str())
                .add_string("gateway_id", self.gateway_id.as_str())
                .add_u64("time_ms", time_ms),
        )
    }

    /// Adds `suppressed` and queues the advisory.
    fn finish(&mut self, kind: AdvisoryKind, mut message: Message) {
        let suppressed = std::mem::take(&mut self.suppressed[kind.index()]);
        message.push("suppressed", suppressed);
        self.published_total += 1;
        self.pending.push((kind, message));
    }
}

/// `connection_id`, `name`, `address`, `role`.
fn connection_fields(message: &mut Message, connection: &Connection) {
    message
        .push("connection_id", connection.id)
        .push("name", connection.name.as_str())
        .push("address", connection.address.to_string())
        .push("role", role_name(&connection.role));
}

/// A link's `connection_id`, `peer_name`, `peer_id`, `address`, `direction`, `protocol`.
fn link_fields(message: &mut Message, connection: &Connection) {
    let (direction, peer_id) = match &connection.role {
        Role::AcceptedLink { peer_id } => ("accepted", peer_id.as_deref()),
        Role::DialledLink { peer_id, .. } => ("dialled", peer_id.as_deref()),
        Role::Client { .. } => ("", None),
    };
    message
        .push("connection_id", connection.id)
        .push("peer_name", connection.name.as_str())
        .push("peer_id", peer_id.unwrap_or_default())
        .push("address", connection.address.to_string())
        .push("direction", direction)
        .push(
            "protocol",
            match connection.protocol {
                Protocol::Mm1 => 1i32,
                Protocol::Mm2 => 2i32,
            },
        );
}

/// `client` or `link`.
fn role_name(role: &Role) -> &'static str {
    if role.is_link() { "link" } else { "client" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_rate_limited_on_its_own_and_reports_what_it_left_out() {
        let mut advisories = Advisories::new("SVC", "gw", "id");
        let refused = RefusedConnect {
            name: "app".into(),
            address: "127.0.0.1:4000".parse().unwrap(),
            code: ErrorCode::ServiceRefused,
            text: "no".into(),
        };
        let start = Instant::now();
        for _ in 0..30 {
            advisories.client_refused_at_connect(start, &refused);
        }
        let burst = advisories.take_pending();
        assert_eq!(burst.len(), ADVISORY_BURST as usize);
        assert!(
            burst
                .iter()
                .all(|(kind, message)| *kind == AdvisoryKind::ClientRefused
                    && message.try_u64("suppressed") == Some(0))
        );
        assert_eq!(advisories.suppressed_total(), 10);
        // The next one, a second later, says how many were left out.
        advisories.client_refused_at_connect(start + std::time::Duration::from_secs(1), &refused);
        let next = advisories.take_pending();
        assert_eq!(next.len(), 1);
        let message = &next[0].1;
        assert_eq!(message.try_u64("suppressed"), Some(10));
        assert_eq!(message.try_string("service"), Some("SVC"));
        assert_eq!(message.try_string("gateway_name"), Some("gw"));
        assert_eq!(message.try_string("code"), Some("SERVICE_REFUSED"));
        assert_eq!(message.try_string("subject"), Some("SVC"));
        assert!(message.try_u64("time_ms").is_some_and(|ms| ms > 0));
        assert_eq!(advisories.published_total(), 21);
    }

    #[test]
    fn subjects_are_reserved_and_valid() {
        for kind in [
            AdvisoryKind::SlowConsumer,
            AdvisoryKind::ClientRefused,
            AdvisoryKind::LinkUp,
            AdvisoryKind::LinkDown,
        ] {
            assert!(kind.subject().starts_with("_MM.ADVISORY."));
            assert_eq!(mm_wire::subject::validate_subject(kind.subject()), Ok(()));
            assert!(mm_wire::subject::is_gateway_subject(
                kind.subject().as_bytes()
            ));
        }
    }
}
