//! How long a blocking request (or flush) polls for its answer before its thread sleeps.
//!
//! A round trip through a gateway on the same host or LAN takes tens of microseconds. Putting the
//! waiting thread to sleep and waking it when the engine has the reply costs about as much again:
//! a futex wake, a context switch and — on a virtual machine — waking an idle virtual CPU. So a
//! blocking waiter first polls its answer (a `Completion`, which uses this policy) for up to the
//! connection's spin window (default [`DEFAULT_REQUEST_SPIN`](crate::DEFAULT_REQUEST_SPIN)) and
//! sleeps only if the answer has not arrived.
//!
//! The spin is bounded three ways, so that it never costs much more than it saves:
//!
//! * **the window**: a reply that takes longer costs at most one window of CPU;
//! * **adaptively**: after [`MISSES_BEFORE_BACKOFF`] waits in a row whose outcome did not arrive
//!   within the window (a slow responder, a remote gateway), the connection sleeps straight away
//!   for the next [`BACKOFF_WAITS`] waits, then tries spinning again;
//! * **across the process**: at most one spinning thread fewer than there are CPUs (none on one
//!   CPU), so the engine threads that deliver replies always have a CPU to run on.
//!
//! Async requests never spin: their task simply awaits and the runtime runs other work.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Consecutive waits that outlast the window before spinning pauses.
pub(crate) const MISSES_BEFORE_BACKOFF: u32 = 8;

/// Waits that sleep straight away once spinning has paused.
pub(crate) const BACKOFF_WAITS: u32 = 256;

/// A connection's spin policy for blocking waiters, with its adaptive state.
#[derive(Debug)]
pub(crate) struct SpinPolicy {
    /// Longest busy-wait; zero never spins.
    window: Duration,
    /// Waits in a row that outlasted the window.
    misses: AtomicU32,
    /// Waits still to sleep straight away.
    backoff: AtomicU32,
    /// Waits whose outcome arrived while spinning.
    hits: AtomicU64,
    /// Waits that spun for the whole window, then slept.
    total_misses: AtomicU64,
    /// Counts spinning threads process-wide.
    slots: &'static SpinSlots,
}

impl SpinPolicy {
    /// A policy spinning up to `window` per wait, sharing the process-wide spinner limit.
    pub(crate) fn new(window: Duration) -> SpinPolicy {
        SpinPolicy::with_slots(window, &PROCESS_SLOTS)
    }

    fn with_slots(window: Duration, slots: &'static SpinSlots) -> SpinPolicy {
        SpinPolicy {
            window,
            misses: AtomicU32::new(0),
            backoff: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            total_misses: AtomicU64::new(0),
            slots,
        }
    }

    /// Waits whose outcome arrived while spinning.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Waits that spun for the whole window, then slept.
    pub(crate) fn misses(&self) -> u64 {
        self.total_misses.load(Ordering::Relaxed)
    }

    /// Whether the next wait may spin (not paused by misses).
    #[cfg(test)]
    pub(crate) fn spinning(&self) -> bool {
        !self.window.is_zero() && self.backoff.load(Ordering::Relaxed) == 0
    }

    /// Polls `ready` until it is true or the window (counted from `start`, and never past
    /// `timeout` after it) ends. Returns whether it became true; false means: sleep now.
    pub(crate) fn spin(&self, start: Instant, timeout: Duration, ready: impl Fn() -> bool) -> bool {
        if self.window.is_zero() {
            return false;
        }
        // One sleeping wait fewer to go while paused; a racing decrement is harmless.
        if self
            .backoff
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return false;
        }
        let Some(_slot) = self.slots.take() else {
            return false;
        };
        let window = self.window.min(timeout);
        loop {
            if ready() {
                self.misses.store(0, Ordering::Relaxed);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return true;
            }
            if start.elapsed() >= window {
                break;
            }
            std::hint::spin_loop();
        }
        self.total_misses.fetch_add(1, Ordering::Relaxed);
        if self.misses.fetch_add(1, Ordering::Relaxed) + 1 >= MISSES_BEFORE_BACKOFF {
            self.misses.store(0, Ordering::Relaxed);
            self.backoff.store(BACKOFF_WAITS, Ordering::Relaxed);
        }
        false
    }
}

/// Threads spinning now, against a limit.
#[derive(Debug)]
pub(crate) struct SpinSlots {
    active: AtomicUsize,
    limit: usize,
}

/// The process-wide limit: one spinner fewer than the CPUs this process may use.
static PROCESS_SLOTS: LazyLock<SpinSlots> = LazyLock::new(|| {
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    SpinSlots::new(cpus.saturating_sub(1))
});

impl SpinSlots {
    const fn new(limit: usize) -> SpinSlots {
        SpinSlots {
            active: AtomicUsize::new(0),
            limit,
        }
    }

    /// A slot if fewer than `limit` threads spin; released when dropped.
    fn take(&self) -> Option<SpinSlot<'_>> {
        self.active
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |active| {
                (active < self.limit).then_some(active + 1)
            })
            .ok()
            .map(|_| SpinSlot { slots: self })
    }
}

/// A taken spin slot.
struct SpinSlot<'a> {
    slots: &'a SpinSlots,
}

impl Drop for SpinSlot<'_> {
    fn drop(&mut self) {
        self.slots.active.fetch_sub(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    static TWO_SLOTS: SpinSlots = SpinSlots::new(2);
    static NO_SLOTS: SpinSlots = SpinSlots::new(0);

    #[test]
    fn an_outcome_that_arrives_within_the_window_is_seen_while_spinning() {
        static OWN_SLOTS: SpinSlots = SpinSlots::new(1);
        let policy = SpinPolicy::with_slots(Duration::from_secs(5), &OWN_SLOTS);
        let ready = std::sync::Arc::new(AtomicBool::new(false));
        let setter = ready.clone();
        let sent = std::thread::spawn(move || {
            // The waiter holds the only slot while it spins.
            let deadline = Instant::now() + Duration::from_secs(4);
            while OWN_SLOTS.active.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
                std::thread::yield_now();
            }
            let seen_spinning = OWN_SLOTS.active.load(Ordering::Acquire) == 1;
            setter.store(true, Ordering::Release);
            seen_spinning
        });
        let got = policy.spin(Instant::now(), Duration::from_secs(10), || {
            ready.load(Ordering::Acquire)
        });
        assert!(got);
        assert!(sent.join().unwrap(), "the waiter was not seen spinning");
        assert_eq!((policy.hits(), policy.misses()), (1, 0));
        assert_eq!(OWN_SLOTS.active.load(Ordering::Relaxed), 0, "slot released");
        assert!(policy.spinning());
    }

    #[test]
    fn waits_that_outlast_the_window_pause_spinning_then_it_resumes() {
        let policy = SpinPolicy::with_slots(Duration::from_micros(50), &TWO_SLOTS);
        for _ in 0..MISSES_BEFORE_BACKOFF {
            assert!(policy.spinning());
            assert!(!policy.spin(Instant::now(), Duration::from_millis(1), || false));
        }
        assert!(!policy.spinning());
        assert_eq!(policy.misses(), u64::from(MISSES_BEFORE_BACKOFF));
        for _ in 0..BACKOFF_WAITS {
            assert!(!policy.spinning());
            assert!(!policy.spin(Instant::now(), Duration::ZERO, || true));
        }
        assert!(policy.spinning());
    }

    #[test]
    fn a_zero_window_never_spins() {
        let policy = SpinPolicy::with_slots(Duration::ZERO, &TWO_SLOTS);
        assert!(!policy.spin(Instant::now(), Duration::from_secs(1), || true));
        assert_eq!((policy.hits(), policy.misses()), (0, 0));
    }

    #[test]
    fn no_free_slot_means_no_spin_and_no_miss() {
        let policy = SpinPolicy::with_slots(Duration::from_micros(50), &NO_SLOTS);
        for _ in 0..MISSES_BEFORE_BACKOFF * 2 {
            assert!(!policy.spin(Instant::now(), Duration::ZERO, || true));
        }
        assert!(policy.spinning(), "waits that never spun are not misses");
        assert_eq!((policy.hits(), policy.misses()), (0, 0));
    }

    #[test]
    fn slots_are_limited_and_released() {
        let slots = SpinSlots::new(1);
        let first = slots.take();
        assert!(first.is_some());
        assert!(slots.take().is_none());
        drop(first);
        assert!(slots.take().is_some());
    }
}
