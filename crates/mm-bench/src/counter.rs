//! Counting what subscribers receive, and waiting until every subscriber has everything.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Counts what a subscriber receives and remembers when it received its last expected message.
#[derive(Debug, Default)]
pub struct Counter {
    received: AtomicU64,
    /// Set by the test to the number of messages expected; 0 = unknown yet.
    expected: AtomicU64,
    /// Nanoseconds after `epoch` at which `expected` was reached.
    done_at_nanos: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Counter {
    /// A counter whose clock starts now.
    pub fn new() -> Arc<Counter> {
        let counter = Arc::new(Counter::default());
        let _ = counter.epoch.set(Instant::now());
        counter
    }

    /// Counts one message.
    #[inline]
    pub fn hit(&self) {
        let received = self.received.fetch_add(1, Ordering::Relaxed) + 1;
        let expected = self.expected.load(Ordering::Relaxed);
        if expected != 0 && received == expected {
            self.mark_done();
        }
    }

    fn mark_done(&self) {
        if let Some(epoch) = self.epoch.get() {
            let nanos = epoch.elapsed().as_nanos() as u64;
            let _ = self.done_at_nanos.compare_exchange(
                0,
                nanos.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Sets how many messages are expected (possibly after some have already arrived).
    pub fn expect(&self, expected: u64) {
        self.expected.store(expected, Ordering::Relaxed);
        if self.received() >= expected {
            self.mark_done();
        }
    }

    /// When the expected count was reached.
    pub fn done_at(&self) -> Option<Instant> {
        let nanos = self.done_at_nanos.load(Ordering::Relaxed);
        (nanos != 0).then(|| {
            self.epoch
                .get()
                .map(|epoch| *epoch + Duration::from_nanos(nanos))
        })?
    }
}

/// Waits until every counter reached its expectation, or fails naming what is missing.
pub fn wait_for_all(
    counters: &[Arc<Counter>],
    expected: u64,
    timeout: Duration,
) -> Result<Instant> {
    for counter in counters {
        counter.expect(expected);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let done: Vec<Option<Instant>> = counters.iter().map(|counter| counter.done_at()).collect();
        if done.iter().all(Option::is_some) {
            return Ok(done
                .into_iter()
                .flatten()
                .max()
                .unwrap_or_else(Instant::now));
        }
        if Instant::now() >= deadline {
            let missing: u64 = counters
                .iter()
                .map(|counter| expected.saturating_sub(counter.received()))
                .sum();
            bail!("{missing} messages missing after {timeout:?}: the run failed");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
