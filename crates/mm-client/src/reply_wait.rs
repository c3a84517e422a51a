//! How a blocking request (or flush) waits for its outcome: a short busy-wait, then sleep.
//!
//! A round trip through a gateway on the same host or LAN takes tens of microseconds. Putting the
//! waiting thread to sleep and waking it when the engine has the reply costs about as much again:
//! a futex wake, a context switch and — on a virtual machine — waking an idle virtual CPU. So a
//! blocking waiter first polls for its outcome for up to the connection's spin window (default
//! [`DEFAULT_REQUEST_SPIN`](crate::DEFAULT_REQUEST_SPIN)) and sleeps only if it has not arrived.
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
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

/// Consecutive waits that outlast the window before spinning pauses.
pub(crate) const MISSES_BEFORE_BACKOFF: u32 = 8;

/// Waits that sleep straight away once spinning has paused.
pub(crate) const BACKOFF_WAITS: u32 = 256;

/// Why a blocking wait ended without an outcome.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum WaitFailed {
    /// The timeout passed (and nothing raced it).
    Timeout,
    /// The engine is gone: the connection closed.
    Closed,
}

/// A connection's spin policy for blocking waiters, with its adaptive state.
#[derive(Debug)]
pub(crate) struct ReplyWait {
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

impl ReplyWait {
    /// A policy spinning up to `window` per wait, sharing the process-wide spinner limit.
    pub(crate) fn new(window: Duration) -> ReplyWait {
        ReplyWait::with_slots(window, &PROCESS_SLOTS)
    }

    fn with_slots(window: Duration, slots: &'static SpinSlots) -> ReplyWait {
        ReplyWait {
            window,
            misses: AtomicU32::new(0),
            backoff: AtomicU32::new(0),
            hits: AtomicU64::new(0),
            total_misses: AtomicU64::new(0),
            slots,
        }
    }

    /// Waits until `timeout` after `start` for the outcome. On timeout it calls `cancel` (which
    /// unregisters the waiter) and still returns an outcome that raced it.
    pub(crate) fn wait<T>(
        &self,
        receiver: &Receiver<T>,
        start: Instant,
        timeout: Duration,
        cancel: impl FnOnce(),
    ) -> Result<T, WaitFailed> {
        match self.spin(receiver, start, timeout) {
            Ok(outcome) => return Ok(outcome),
            Err(TryRecvError::Disconnected) => return Err(WaitFailed::Closed),
            Err(TryRecvError::Empty) => {}
        }
        match receiver.recv_timeout(timeout.saturating_sub(start.elapsed())) {
            Ok(outcome) => Ok(outcome),
            Err(RecvTimeoutError::Timeout) => {
                cancel();
                receiver.try_recv().map_err(|_| WaitFailed::Timeout)
            }
            Err(RecvTimeoutError::Disconnected) => Err(WaitFailed::Closed),
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

    /// Polls for the outcome until the window (or the timeout) ends; `Empty` means: sleep now.
    fn spin<T>(
        &self,
        receiver: &Receiver<T>,
        start: Instant,
        timeout: Duration,
    ) -> Result<T, TryRecvError> {
        if self.window.is_zero() {
            return Err(TryRecvError::Empty);
        }
        // One sleeping wait fewer to go while paused; a racing decrement is harmless.
        if self
            .backoff
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            })
            .is_ok()
        {
            return Err(TryRecvError::Empty);
        }
        let Some(_slot) = self.slots.take() else {
            return Err(TryRecvError::Empty);
        };
        let window = self.window.min(timeout);
        loop {
            match receiver.try_recv() {
                Ok(outcome) => {
                    self.misses.store(0, Ordering::Relaxed);
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(outcome);
                }
                Err(TryRecvError::Disconnected) => return Err(TryRecvError::Disconnected),
                Err(TryRecvError::Empty) => {}
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
        Err(TryRecvError::Empty)
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
    use std::sync::mpsc::sync_channel;

    static TWO_SLOTS: SpinSlots = SpinSlots::new(2);
    static NO_SLOTS: SpinSlots = SpinSlots::new(0);

    #[test]
    fn an_outcome_that_arrives_within_the_window_is_taken_while_spinning() {
        static OWN_SLOTS: SpinSlots = SpinSlots::new(1);
        let wait = ReplyWait::with_slots(Duration::from_secs(5), &OWN_SLOTS);
        let (sender, receiver) = sync_channel(1);
        let sent = std::thread::spawn(move || {
            // The waiter holds the only slot while it spins.
            let deadline = Instant::now() + Duration::from_secs(4);
            while OWN_SLOTS.active.load(Ordering::Acquire) == 0 && Instant::now() < deadline {
                std::thread::yield_now();
            }
            let seen_spinning = OWN_SLOTS.active.load(Ordering::Acquire) == 1;
            sender.send(7u32).unwrap();
            seen_spinning
        });
        let got = wait.wait(&receiver, Instant::now(), Duration::from_secs(10), || {});
        assert_eq!(got, Ok(7));
        assert!(sent.join().unwrap(), "the waiter was not seen spinning");
        assert_eq!((wait.hits(), wait.misses()), (1, 0));
        assert_eq!(OWN_SLOTS.active.load(Ordering::Relaxed), 0, "slot released");
        assert!(wait.spinning());
    }

    #[test]
    fn waits_that_outlast_the_window_pause_spinning_then_it_resumes() {
        let wait = ReplyWait::with_slots(Duration::from_micros(50), &TWO_SLOTS);
        let (_sender, receiver) = sync_channel::<u32>(1);
        for _ in 0..MISSES_BEFORE_BACKOFF {
            assert!(wait.spinning());
            let got = wait.wait(&receiver, Instant::now(), Duration::from_millis(1), || {});
            assert_eq!(got, Err(WaitFailed::Timeout));
        }
        assert!(!wait.spinning());
        assert_eq!(wait.misses(), u64::from(MISSES_BEFORE_BACKOFF));
        for _ in 0..BACKOFF_WAITS {
            assert!(!wait.spinning());
            let got = wait.wait(&receiver, Instant::now(), Duration::ZERO, || {});
            assert_eq!(got, Err(WaitFailed::Timeout));
        }
        assert!(wait.spinning());
    }

    #[test]
    fn a_timeout_cancels_and_still_takes_an_outcome_that_raced_it() {
        let wait = ReplyWait::with_slots(Duration::ZERO, &TWO_SLOTS);
        let (sender, receiver) = sync_channel(1);
        let got = wait.wait(&receiver, Instant::now(), Duration::ZERO, || {
            sender.send(3u32).unwrap()
        });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn a_closed_channel_is_reported_as_closed() {
        let wait = ReplyWait::with_slots(Duration::from_millis(1), &TWO_SLOTS);
        let (sender, receiver) = sync_channel::<u32>(1);
        drop(sender);
        let got = wait.wait(&receiver, Instant::now(), Duration::from_secs(1), || {});
        assert_eq!(got, Err(WaitFailed::Closed));
    }

    #[test]
    fn no_free_slot_means_no_spin_and_no_miss() {
        let wait = ReplyWait::with_slots(Duration::from_micros(50), &NO_SLOTS);
        let (_sender, receiver) = sync_channel::<u32>(1);
        for _ in 0..MISSES_BEFORE_BACKOFF * 2 {
            let got = wait.wait(&receiver, Instant::now(), Duration::ZERO, || {});
            assert_eq!(got, Err(WaitFailed::Timeout));
        }
        assert!(wait.spinning(), "waits that never spun are not misses");
        assert_eq!((wait.hits(), wait.misses()), (0, 0));
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
