//! Client-side advisories (docs/protocol.md, "Advisories"): events only this connection knows
//! of, delivered as messages to its own subscriptions, as Rendezvous client libraries deliver
//! their local warnings. Today one: a subscription passed its pending limit and dropped messages
//! ([`MESSAGES_DROPPED`]). The gateway's advisories (`_MM.ADVISORY.>`) arrive like any message.
//!
//! This module builds the message and limits the rate; the engine delivers it.

use std::sync::{Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mm_wire::Message;

use crate::params::PendingLimits;

/// The subject of the advisory a connection delivers to its own subscriptions when one of them
/// passes its pending limit and drops messages.
pub const MESSAGES_DROPPED: &str = "_MM.ADVISORY.WARN.LOCAL.MESSAGES_DROPPED";

/// Local advisories delivered per second, at most.
const PER_SECOND: f64 = 5.0;

/// Local advisories delivered at once, at most.
const BURST: f64 = 20.0;

/// A connection's rate limit on local advisories: a token bucket, and how many were left out
/// since the last one delivered.
#[derive(Debug)]
pub(crate) struct AdvisoryLimit {
    state: Mutex<LimitState>,
}

#[derive(Debug)]
struct LimitState {
    tokens: f64,
    last: Option<Instant>,
    suppressed: u64,
}

impl Default for AdvisoryLimit {
    fn default() -> Self {
        AdvisoryLimit {
            state: Mutex::new(LimitState {
                tokens: BURST,
                last: None,
                suppressed: 0,
            }),
        }
    }
}

impl AdvisoryLimit {
    /// `Some(suppressed)` — the number left out since the last one — if an advisory may be
    /// delivered now; `None` (counted) if not.
    pub(crate) fn take(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(last) = state.last {
            let earned = now.saturating_duration_since(last).as_secs_f64() * PER_SECOND;
            state.tokens = (state.tokens + earned).min(BURST);
        }
        state.last = Some(now);
        if state.tokens >= 1.0 {
            state.tokens -= 1.0;
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }
}

/// What a [`MESSAGES_DROPPED`] advisory says.
pub(crate) struct Dropped<'a> {
    pub(crate) service: &'a str,
    pub(crate) client_name: &'a str,
    pub(crate) subscription_id: u32,
    pub(crate) pattern: &'a str,
    pub(crate) dropped: u64,
    pub(crate) limits: &'a PendingLimits,
    pub(crate) suppressed: u64,
}

/// The [`MESSAGES_DROPPED`] advisory's body.
pub(crate) fn messages_dropped(dropped: &Dropped<'_>) -> Message {
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    Message::new()
        .add_string("service", dropped.service)
        .add_string("client_name", dropped.client_name)
        .add_u64("time_ms", time_ms)
        .add_u32("subscription_id", dropped.subscription_id)
        .add_string("pattern", dropped.pattern)
        .add_u64("dropped", dropped.dropped)
        .add_u64("limit_messages", dropped.limits.messages as u64)
        .add_u64("limit_bytes", dropped.limits.bytes as u64)
        .add_string(
            "text",
            format!(
                "subscription {} (`{}`) passed its pending limit ({} messages or {} bytes); {} \
                 messages dropped so far",
                dropped.subscription_id,
                dropped.pattern,
                dropped.limits.messages,
                dropped.limits.bytes,
                dropped.dropped
            ),
        )
        .add_u64("suppressed", dropped.suppressed)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_then_the_rate_and_the_next_one_counts_what_was_left_out() {
        let limit = AdvisoryLimit::default();
        let start = Instant::now();
        let delivered = (0..30).filter(|_| limit.take(start).is_some()).count();
        assert_eq!(delivered, BURST as usize);
        assert_eq!(limit.take(start + Duration::from_secs(1)), Some(10));
        assert_eq!(limit.take(start + Duration::from_secs(1)), Some(0));
    }

    #[test]
    fn the_subject_is_a_reserved_literal() {
        assert_eq!(mm_wire::subject::validate_subject(MESSAGES_DROPPED), Ok(()));
        assert!(mm_wire::subject::is_gateway_subject(
            MESSAGES_DROPPED.as_bytes()
        ));
    }
}
