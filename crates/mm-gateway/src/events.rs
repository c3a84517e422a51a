//! [`EventLog`]: the last few things an operator wants to know about — slow consumers cut off,
//! connections refused, mesh links up and down — in a ring of fixed size.
//!
//! Each service keeps its own log (owned by its thread, handed out in snapshots); the acceptor
//! keeps one for refusals, behind a lock taken only when a connection is refused. A flood of
//! events overwrites the oldest: the log's memory never grows, and the counters (which are
//! exact) say how many there were.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Events kept per log.
pub(crate) const EVENTS_KEPT: usize = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A client's queue passed its bound: cut off.
    SlowConsumer,
    /// A mesh link's queue passed its bound: closed.
    SlowLink,
    /// The gateway's output budget was exceeded: the largest backlog was cut off.
    OutputBudget,
    /// A connection was refused (service not allowed, limit reached, invalid name).
    Refused,
    /// A mesh link came up.
    LinkUp,
    /// A mesh link went down.
    LinkDown,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Increasing within its log (a dashboard uses it to show each event once).
    pub sequence: u64,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What happened.
    pub kind: EventKind,
    /// The service, if the event belongs to one.
    pub service: Option<String>,
    /// The connection or link (kind, id, name, address), or the refused peer's address.
    pub subject: String,
    /// Details (why, how much was dropped).
    pub detail: String,
}

/// A bounded log of events, newest last.
#[derive(Debug, Default)]
pub(crate) struct EventLog {
    events: VecDeque<Event>,
    next_sequence: u64,
}

impl EventLog {
    /// Records an event, dropping the oldest if the log is full.
    pub(crate) fn record(
        &mut self,
        kind: EventKind,
        service: Option<&str>,
        subject: String,
        detail: String,
    ) {
        if self.events.len() >= EVENTS_KEPT {
            self.events.pop_front();
        }
        self.next_sequence += 1;
        self.events.push_back(Event {
            sequence: self.next_sequence,
            at_ms: unix_ms(),
            kind,
            service: service.map(str::to_owned),
            subject,
            detail,
        });
    }

    /// The last `limit` events, oldest first.
    pub(crate) fn recent(&self, limit: usize) -> Vec<Event> {
        let skip = self.events.len().saturating_sub(limit);
        self.events.iter().skip(skip).cloned().collect()
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_its_bound() {
        let mut log = EventLog::default();
        for n in 0..(EVENTS_KEPT + 10) {
            log.record(EventKind::Refused, None, format!("peer {n}"), String::new());
        }
        let all = log.recent(usize::MAX);
        assert_eq!(all.len(), EVENTS_KEPT);
        assert_eq!(all[0].subject, "peer 10");
        assert_eq!(
            all.last().map(|event| event.sequence),
            Some(EVENTS_KEPT as u64 + 10)
        );
        let last_two = log.recent(2);
        assert_eq!(last_two.len(), 2);
        assert!(last_two[0].sequence < last_two[1].sequence);
    }
}
