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
        self.batch_work += outcome.visited;
        self.after_route(outcome.dropped, frame.len());
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mm_wire::{Action, Header, Message};

    use crate::config::GatewayConfig;
    use crate::monitoring::PROBE_FIELD;
    use crate::monitoring::snapshot::{ConnectionQuery, ConnectionSort, SnapshotRequest};
    use crate::monitoring::{SAMPLE_INTERVAL, WINDOW};
    use crate::service::test_harness::{SERVICE, TestPeer, TestService, run};

    fn monitored() -> GatewayConfig {
        GatewayConfig {
            name: "gw.one".into(),
            http_port: Some(0),
            coordinator_stats: true,
            ..GatewayConfig::default()
        }
    }

    async fn sync(peer: &mut TestPeer) {
        peer.send(&Header::new(Action::Ping), &Message::new().add_i32("k", 1))
            .await;
        while peer.next_frame().await.action() != Some(Action::Pong) {}
    }

    fn subscribe(id: u32, pattern: &str) -> Header<'_> {
        Header {
            subscription_id: id,
            subject: pattern.as_bytes(),
            reply_subject: &[],
            action: Action::Subscribe,
        }
    }

    #[test]
    fn snapshots_page_connections_and_windows_become_top_subjects_and_coordinator_stats() {
        run(async {
            let service = TestService::start(monitored());
            let (outbox, mut received) = tokio::sync::mpsc::channel(4);
            service
                .service
                .borrow()
                .context
                .coordinator_outbox
                .set(outbox)
                .unwrap();
            let (_, mut many) = service.client("many").await;
            for (id, pattern) in [(1, "X.*"), (2, "X.1"), (3, "Y")] {
                many.send(&subscribe(id, pattern), &Message::new()).await;
            }
            sync(&mut many).await;
            let (_, mut one) = service.client("one").await;
            one.send(&subscribe(1, "X.2"), &Message::new()).await;
            sync(&mut one).await;
            let (_, mut publisher) = service.client("publisher").await;
            for subject in ["X.1", "X.1", "X.1", "X.2", "X.2"] {
                publisher
                    .send(
                        &Header::send_message(subject),
                        &Message::new().add_i32("n", 1),
                    )
                    .await;
            }
            sync(&mut publisher).await;

            let page = |service: &TestService, sort, offset, limit| {
                service
                    .service
                    .borrow_mut()
                    .snapshot(&SnapshotRequest {
                        connections: Some(ConnectionQuery {
                            sort,
                            offset,
                            limit,
                        }),
                        ..SnapshotRequest::default()
                    })
                    .connections
                    .unwrap()
            };
            let first = page(&service, ConnectionSort::Subscriptions, 0, 2);
            assert_eq!(first.total, 3);
            let names: Vec<&str> = first.connections.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, ["many", "one"]);
            let rest = page(&service, ConnectionSort::Subscriptions, 2, 2);
            assert_eq!(rest.connections.len(), 1);
            assert_eq!(rest.connections[0].name, "publisher");
            let by_id = page(&service, ConnectionSort::Id, 0, 10);
            let ids: Vec<u64> = by_id.connections.iter().map(|c| c.id).collect();
            assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
            assert!(
                page(&service, ConnectionSort::Pending, 5, 10)
                    .connections
                    .is_empty()
            );

            // Housekeeping a window later: rates sampled, the window closed, stats published.
            let later = std::time::Instant::now() + WINDOW + SAMPLE_INTERVAL;
            service.service.borrow_mut().monitor_housekeeping(later);
            let snapshot = service.service.borrow_mut().snapshot(&SnapshotRequest {
                history: true,
                subscriptions: true,
                ..SnapshotRequest::default()
            });
            let top: Vec<(&str, u64)> = snapshot
                .top_subjects
                .by_messages
                .iter()
                .map(|entry| (entry.subject.as_str(), entry.messages))
                .collect();
            assert_eq!(top, [("X.1", 3), ("X.2", 2)]);
            assert_eq!(snapshot.history.as_ref().map(Vec::len), Some(1));
            let summary = snapshot.subscription_summary.unwrap();
            assert_eq!((summary.total, summary.clients), (4, 4));
            assert_eq!(summary.top_patterns.len(), 4);
            assert_eq!(snapshot.totals.messages_in, 3 + 1 + 1 + 1 + 5 + 1);

            let (subject, body) = received.try_recv().expect("statistics for _COORDINATOR");
            assert_eq!(subject, format!("GATEWAY.STATS.gw-one.{SERVICE}"));
            let message = Message::decode_from_slice(&body).unwrap();
            let json: serde_json::Value =
                serde_json::from_str(message.get_string("SERVICE_STATS").unwrap()).unwrap();
            assert_eq!(json["Total"]["MessagesProcessed"], 5);
            assert_eq!(json["TopSubjects_MessagesPerSecond"][0]["Subject"], "X.1");
            service.stop().await;
        });
    }

    #[test]
    fn links_are_probed_and_their_round_trip_measured() {
        run(async {
            let service = TestService::start(monitored());
            let (key, mut link) = service
                .accepted_link("0000000000000000000000000000000f")
                .await;
            assert!(service.service.borrow().monitor.rtt(key).is_none());
            let later = std::time::Instant::now() + WINDOW;
            service.service.borrow_mut().monitor_housekeeping(later);
            // Housekeeping flushes after its parts.
            service.service.borrow_mut().flush();
            let ping = link.expect(Action::Ping).await;
            let body = ping.message().unwrap();
            assert!(body.try_u64(PROBE_FIELD).is_some(), "{body}");
            link.send(&Header::new(Action::Pong), &body).await;
            service
                .wait_until("the round trip is measured", |service| {
                    service.monitor.rtt(key).is_some()
                })
                .await;
            let snapshot = service
                .service
                .borrow_mut()
                .snapshot(&SnapshotRequest::default());
            assert!(snapshot.mesh.links[0].rtt_ms.is_some());
            // A PONG that answers no probe changes nothing.
            link.send(
                &Header::new(Action::Pong),
                &Message::new().add_u64(PROBE_FIELD, 999_999),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(service.service.borrow().monitor.rtt(key).is_some());
            service.stop().await;
        });
    }
}
