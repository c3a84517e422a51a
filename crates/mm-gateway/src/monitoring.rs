//! Monitoring, the service side: what a service keeps so that it can be watched, and the
//! snapshots it hands out.
//!
//! [`Monitor`] is owned by the service loop, like every other part. It keeps only what must be
//! remembered between two looks: the rates of the last second (from the counters the service
//! keeps anyway), a ring of per-second rates for the last [`HISTORY_SECONDS`], the top subjects of
//! the last window (counted by the router on its publisher memos, see `crate::subject_tally`),
//! round-trip times of mesh links, and a bounded log of events. The service's housekeeping calls
//! [`Monitor::due`] every 250 ms; the work it then does is one pass over the connections per
//! second and one fold of the publisher memos per [`WINDOW`].
//!
//! Nothing outside the service's thread reads any of it: the monitoring server sends the service
//! a command and gets back a [`ServiceSnapshot`](snapshot::ServiceSnapshot) — an owned, bounded
//! copy built by [`build::service_snapshot`].
//!
//! When monitoring is off (no HTTP server, no statistics for `_COORDINATOR`), the monitor does
//! nothing at all but keep its event log.

pub(crate) mod build;
pub(crate) mod service_stats;
pub mod snapshot;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use mm_wire::Message;
use slotmap::SecondaryMap;

use crate::connection::{ConnectionKey, Connections};
use crate::counters::ConnectionCounters;
use crate::events::{EventKind, EventLog, unix_ms};
use crate::subject_tally::TallyWindow;
use snapshot::{RateSample, Rates, SubjectRate, TopSubjects, Traffic};

/// How often rates are sampled.
pub(crate) const SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The top-subjects window, the RTT probe interval, and the interval of the statistics published
/// on `_COORDINATOR` (SPEC §11: every 2 s).
pub(crate) const WINDOW: Duration = Duration::from_secs(2);

/// Seconds of rate history kept (one sample a second).
pub(crate) const HISTORY_SECONDS: usize = 300;

/// Field of a probe PING's body, echoed in the PONG.
pub(crate) const PROBE_FIELD: &str = "rtt_probe";

/// What is due in this housekeeping round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Due {
    /// Sample rates (call [`Monitor::sample`]).
    pub(crate) sample: bool,
    /// Close the top-subjects window (call [`Monitor::close_window`]), probe links, publish
    /// statistics for `_COORDINATOR`.
    pub(crate) window: bool,
}

/// Rates of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionRate {
    /// When the monitor first saw it (about when it connected).
    pub(crate) since: Instant,
    /// Its traffic at the last sample.
    last: Traffic,
    /// Its rates over the last second.
    pub(crate) rates: Rates,
}

/// The last RTT probe of a link.
#[derive(Debug, Clone, Copy, Default)]
struct Probe {
    /// The probe in flight: its sequence number and when it left.
    in_flight: Option<(u64, Instant)>,
    /// The last measured round trip.
    rtt: Option<Duration>,
}

/// A service's monitoring state. Owned by the service loop.
#[derive(Debug)]
pub(crate) struct Monitor {
    /// Whether rates, windows and probes are kept at all.
    enabled: bool,
    /// When rates were last sampled.
    last_sample: Instant,
    /// Service traffic at the last sample.
    last_totals: Traffic,
    /// Service rates over the last second.
    pub(crate) rates: Rates,
    /// Rates of the last [`HISTORY_SECONDS`], oldest first.
    history: VecDeque<RateSample>,
    /// Rates per connection (entries of closed connections go at the next sample).
    connection_rates: SecondaryMap<ConnectionKey, ConnectionRate>,
    /// When the current top-subjects window started.
    window_started: Instant,
    /// The last closed window.
    pub(crate) top_subjects: TopSubjects,
    /// The last closed window as counted (for the `_COORDINATOR` statistics).
    pub(crate) last_window: TallyWindow,
    /// RTT probes per link.
    probes: SecondaryMap<ConnectionKey, Probe>,
    /// Sequence of the next probe.
    next_probe: u64,
    /// Times a link came up, per configured peer address (bounded by the configuration).
    link_ups: Vec<(String, u64)>,
    /// Recent events.
    pub(crate) events: EventLog,
    /// Whether the service has said that its `_COORDINATOR` subject is invalid.
    pub(crate) coordinator_subject_warned: bool,
}

impl Monitor {
    /// A monitor; `enabled` says whether it keeps anything but events.
    pub(crate) fn new(enabled: bool) -> Monitor {
        let now = Instant::now();
        Monitor {
            enabled,
            last_sample: now,
            last_totals: Traffic::default(),
            rates: Rates::default(),
            history: VecDeque::new(),
            connection_rates: SecondaryMap::new(),
            window_started: now,
            top_subjects: TopSubjects::default(),
            last_window: TallyWindow::default(),
            probes: SecondaryMap::new(),
            next_probe: 1,
            link_ups: Vec::new(),
            events: EventLog::default(),
            coordinator_subject_warned: false,
        }
    }

    /// What is due now.
    pub(crate) fn due(&self, now: Instant) -> Due {
        if !self.enabled {
            return Due::default();
        }
        Due {
            sample: now.duration_since(self.last_sample) >= SAMPLE_INTERVAL,
            window: now.duration_since(self.window_started) >= WINDOW,
        }
    }

    /// Samples rates: one pass over the connections. `closed` holds the counters of connections
    /// that have closed.
    pub(crate) fn sample(
        &mut self,
        now: Instant,
        connections: &Connections,
        closed: &ConnectionCounters,
    ) {
        let seconds = now.duration_since(self.last_sample).as_secs_f64();
        let mut totals = traffic_of(closed);
        for (key, connection) in connections {
            let traffic = traffic_of(&connection.counters);
            totals.add(&traffic);
            let Some(entry) = self.connection_rates.entry(key) else {
                continue;
            };
            let rate = entry.or_insert(ConnectionRate {
                since: now,
                last: traffic,
                rates: Rates::default(),
            });
            rate.rates = traffic.rates_since(&rate.last, seconds);
            rate.last = traffic;
        }
        self.connection_rates
            .retain(|key, _| connections.contains_key(key));
        self.probes.retain(|key, _| connections.contains_key(key));
        self.rates = totals.rates_since(&self.last_totals, seconds);
        self.last_totals = totals;
        self.last_sample = now;
        if self.history.len() >= HISTORY_SECONDS {
            self.history.pop_front();
        }
        self.history.push_back(RateSample {
            at_ms: unix_ms(),
            rates: self.rates,
        });
    }

    /// Closes the top-subjects window with what the router counted in it.
    pub(crate) fn close_window(&mut self, now: Instant, window: TallyWindow) {
        let seconds = now.duration_since(self.window_started).as_secs_f64();
        self.window_started = now;
        let rated = |list: &[crate::subject_tally::RankedSubject]| -> Vec<SubjectRate> {
            list.iter()
                .map(|entry| SubjectRate {
                    subject: entry.subject.clone(),
                    messages: entry.count.messages,
                    bytes: entry.count.bytes,
                    messages_per_second: per_second(entry.count.messages, seconds),
                    bytes_per_second: per_second(entry.count.bytes, seconds),
                })
                .collect()
        };
        self.top_subjects = TopSubjects {
            window_seconds: seconds,
            closed_at_ms: unix_ms(),
            total_messages: window.total.messages,
            total_bytes: window.total.bytes,
            subjects: window.subjects,
            pruned: window.pruned,
            by_messages: rated(&window.by_messages),
            by_bytes: rated(&window.by_bytes),
        };
        self.last_window = window;
    }

    /// Rates and first sighting of a connection (none before its first sample).
    pub(crate) fn connection_rate(&self, key: ConnectionKey) -> Option<&ConnectionRate> {
        self.connection_rates.get(key)
    }

    /// The rate history, oldest first.
    pub(crate) fn history(&self) -> Vec<RateSample> {
        self.history.iter().copied().collect()
    }

    // -------------------------------------------------------------------------------------------
    // Round-trip times of mesh links
    // -------------------------------------------------------------------------------------------

    /// The body of a probe PING for `link`, recording it as in flight (a probe still unanswered is
    /// replaced: the link is slow, and its last RTT stays).
    pub(crate) fn probe(&mut self, link: ConnectionKey, now: Instant) -> Option<Message> {
        let sequence = self.next_probe;
        self.next_probe += 1;
        let entry = self.probes.entry(link)?.or_default();
        entry.in_flight = Some((sequence, now));
        Some(Message::new().add_u64(PROBE_FIELD, sequence))
    }

    /// A PONG on a link: if it answers the probe in flight, the round trip is measured.
    pub(crate) fn link_pong(&mut self, link: ConnectionKey, body: &Message, now: Instant) {
        let Some(sequence) = body.try_u64(PROBE_FIELD) else {
            return;
        };
        if let Some(probe) = self.probes.get_mut(link)
            && let Some((sent_sequence, sent)) = probe.in_flight
            && sent_sequence == sequence
        {
            probe.rtt = Some(now.duration_since(sent));
            probe.in_flight = None;
        }
    }

    /// The last round trip measured on a link.
    pub(crate) fn rtt(&self, link: ConnectionKey) -> Option<Duration> {
        self.probes.get(link).and_then(|probe| probe.rtt)
    }

    // -------------------------------------------------------------------------------------------
    // Events
    // -------------------------------------------------------------------------------------------

    /// A mesh link came up; `dialled_address` is the configured address of a link we dialled.
    pub(crate) fn link_up(&mut self, service: &str, link: String, dialled_address: Option<&str>) {
        if let Some(address) = dialled_address {
            match self.link_ups.iter_mut().find(|(known, _)| known == address) {
                Some((_, ups)) => *ups += 1,
                None => self.link_ups.push((address.to_owned(), 1)),
            }
        }
        self.events
            .record(EventKind::LinkUp, Some(service), link, String::new());
    }

    /// Times the link to a configured address came up again after its first time.
    pub(crate) fn reconnects(&self, address: &str) -> u64 {
        self.link_ups
            .iter()
            .find(|(known, _)| known == address)
            .map_or(0, |(_, ups)| ups.saturating_sub(1))
    }
}

/// A connection's counters as traffic.
pub(crate) fn traffic_of(counters: &ConnectionCounters) -> Traffic {
    Traffic {
        messages_in: counters.frames_in,
        bytes_in: counters.bytes_in,
        messages_out: counters.frames_out,
        bytes_out: counters.bytes_out,
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subject_tally::{RankedSubject, SubjectCount};

    #[test]
    fn nothing_is_due_when_disabled() {
        let monitor = Monitor::new(false);
        assert_eq!(
            monitor.due(Instant::now() + Duration::from_secs(60)),
            Due::default()
        );
    }

    #[test]
    fn due_every_second_and_every_window() {
        let monitor = Monitor::new(true);
        let start = monitor.last_sample;
        assert_eq!(monitor.due(start), Due::default());
        let due = monitor.due(start + SAMPLE_INTERVAL);
        assert!(due.sample && !due.window);
        let due = monitor.due(start + WINDOW);
        assert!(due.sample && due.window);
    }

    #[test]
    fn a_window_becomes_rates() {
        let mut monitor = Monitor::new(true);
        let closed_at = monitor.window_started + Duration::from_secs(2);
        let count = SubjectCount {
            messages: 100,
            bytes: 3400,
        };
        monitor.close_window(
            closed_at,
            TallyWindow {
                total: count,
                by_messages: vec![RankedSubject {
                    subject: "A.B".into(),
                    count,
                }],
                by_bytes: Vec::new(),
                subjects: 1,
                pruned: 0,
            },
        );
        let top = &monitor.top_subjects;
        assert_eq!(top.window_seconds, 2.0);
        assert_eq!(top.by_messages[0].messages_per_second, 50.0);
        assert_eq!(top.by_messages[0].bytes_per_second, 1700.0);
        assert_eq!(top.total_messages, 100);
    }

    #[test]
    fn reconnects_count_link_ups_after_the_first() {
        let mut monitor = Monitor::new(true);
        assert_eq!(monitor.reconnects("b:1"), 0);
        monitor.link_up("S", "link".into(), Some("b:1"));
        assert_eq!(monitor.reconnects("b:1"), 0);
        monitor.link_up("S", "link".into(), Some("b:1"));
        monitor.link_up("S", "accepted".into(), None);
        assert_eq!(monitor.reconnects("b:1"), 1);
        assert_eq!(monitor.events.recent(10).len(), 3);
    }
}
