//! What the service loop does for monitoring: sampling rates and closing the top-subjects window
//! in housekeeping, probing mesh links for their round-trip time, publishing the statistics for
//! `_COORDINATOR` (SPEC §11), answering snapshot requests, and recording events.
//!
//! The state is in [`Monitor`](crate::monitoring::Monitor) and the router's subject tally; this
//! is only the wiring, on the service's thread like everything else.

use std::time::Instant;

use mm_wire::handshake::Protocol;
use mm_wire::subject::validate_subject;
use mm_wire::{Action, Header};
use tracing::warn;

use super::Service;
use crate::connection::{CloseReason, Connection, ConnectionKey};
use crate::events::EventKind;
use crate::monitoring::build::{SnapshotSources, service_snapshot};
use crate::monitoring::service_stats::{
    TOP_LISTED, service_stats_json, service_stats_message, stats_subject,
};
use crate::monitoring::snapshot::{ServiceSnapshot, SnapshotRequest, TOP_SUBJECTS};
use crate::router::Origin;

impl Service {
    /// Every housekeeping round: what monitoring has due (nothing when it is off).
    pub(super) fn monitor_housekeeping(&mut self, now: Instant) {
        let due = self.monitor.due(now);
        if due.sample {
            self.monitor
                .sample(now, &self.connections, &self.counters.closed_connections);
        }
        if due.window {
            let window = self
                .router
                .close_subject_window(TOP_SUBJECTS.max(TOP_LISTED));
            self.monitor.close_window(now, window);
            self.probe_links(now);
            self.publish_coordinator_stats();
        }
    }

    /// Sends a probe PING on every MM/2 link; its PONG gives the link's round-trip time.
    fn probe_links(&mut self, now: Instant) {
        let links: Vec<ConnectionKey> = self
            .connections
            .iter()
            .filter(|(_, connection)| {
                connection.role.is_link() && connection.protocol == Protocol::Mm2
            })
            .map(|(key, _)| key)
            .collect();
        for key in links {
            if let Some(body) = self.monitor.probe(key, now) {
                self.send_frame(key, &Header::new(Action::Ping), &body);
            }
        }
    }

    /// Leaves the last window's statistics for `_COORDINATOR`, if they are published.
    fn publish_coordinator_stats(&mut self) {
        if !self.context.config.coordinator_stats {
            return;
        }
        let Some(outbox) = self.context.coordinator_outbox.get() else {
            return;
        };
        let gateway_name = &self.context.config.name;
        let Some(subject) = stats_subject(gateway_name, &self.name) else {
            if !self.monitor.coordinator_subject_warned {
                self.monitor.coordinator_subject_warned = true;
                warn!(service = %self.name, gateway = %gateway_name, "the gateway name does not make a valid GATEWAY.STATS subject: statistics are not published on _COORDINATOR");
            }
            return;
        };
        let json = service_stats_json(
            &self.name,
            gateway_name,
            &self.monitor.last_window,
            self.monitor.top_subjects.window_seconds,
        );
        let mut body = Vec::new();
        if service_stats_message(&json).encode(&mut body).is_ok() {
            // A full outbox means the forwarder is behind: this window is skipped.
            let _ = outbox.try_send((subject, body));
        }
    }

    /// A snapshot of the service.
    pub(super) fn snapshot(&mut self, request: &SnapshotRequest) -> ServiceSnapshot {
        service_snapshot(
            &SnapshotSources {
                service: &self.name,
                connections: &self.connections,
                router: &self.router,
                mesh: &self.mesh,
                counters: &self.counters,
                monitor: &self.monitor,
                pending_bytes: self.queued_total,
            },
            request,
            Instant::now(),
        )
    }

    /// Publishes a message the gateway built to every matching subscription, local and on the
    /// mesh, like an `_MM.STATS` answer.
    pub(super) fn publish_from_gateway(&mut self, subject: &str, body: &[u8]) {
        if validate_subject(subject).is_err() {
            return;
        }
        let header = Header {
            subscription_id: 0,
            subject: subject.as_bytes(),
            reply_subject: &[],
            action: Action::SendMessage,
        };
        let mut frame = Vec::new();
        if mm_wire::encode_frame_with_body(&mut frame, &header, body).is_err() {
            return;
        }
        self.start_batch();
        let outcome = self.router.route(
            Origin::Gateway,
            &frame,
            subject.as_bytes(),
            &mut self.connections,
        );
        self.after_route(outcome.visited, outcome.dropped, frame.len());
        self.flush();
    }

    /// A connection was cut off (slow consumer, slow link, output budget).
    pub(super) fn record_cut_off(
        &mut self,
        key: ConnectionKey,
        reason: CloseReason,
        is_link: bool,
        dropped_bytes: usize,
        dropped_frames: usize,
    ) {
        let kind = match (reason, is_link) {
            (CloseReason::OutputBudget, _) => EventKind::OutputBudget,
            (_, true) => EventKind::SlowLink,
            (_, false) => EventKind::SlowConsumer,
        };
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        let subject = connection.describe();
        self.monitor.events.record(
            kind,
            Some(&self.name),
            subject,
            format!("{reason}: dropped {dropped_frames} frames, {dropped_bytes} bytes"),
        );
    }

    /// A mesh link closed.
    pub(super) fn record_link_down(&mut self, connection: &Connection, reason: CloseReason) {
        self.monitor.events.record(
            EventKind::LinkDown,
            Some(&self.name),
            connection.describe(),
            reason.to_string(),
        );
    }
}
