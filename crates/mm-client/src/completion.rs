//! [`Completion`]: one answer, given once by the engine and awaited by whoever asked for it —
//! a blocking caller (which polls briefly, then sleeps) or an async task (a future). Requests and
//! flushes of both front ends wait on this one type.
//!
//! The engine holds the [`Completer`]; completing it never blocks (one short lock and at most one
//! wake-up). A completer dropped without an answer ends the wait as [`WaitFailed::Abandoned`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::spin::SpinPolicy;

/// A new completion: the engine's end and the waiter's end.
pub(crate) fn channel<T>() -> (Completer<T>, Completion<T>) {
    let slot = Arc::new(Slot {
        done: AtomicBool::new(false),
        state: Mutex::new(SlotState {
            answer: None,
            finished: false,
            sleeping: false,
            waker: None,
        }),
        wakeup: Condvar::new(),
    });
    (Completer { slot: slot.clone() }, Completion { slot })
}

/// Why a wait ended without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WaitFailed {
    /// The timeout passed first.
    #[error("no answer in time")]
    Timeout,
    /// The completer was dropped without an answer.
    #[error("the answer was abandoned")]
    Abandoned,
}

struct Slot<T> {
    /// Mirrors `SlotState::finished`, so that a spinning waiter polls without the lock.
    done: AtomicBool,
    state: Mutex<SlotState<T>>,
    /// A blocking waiter sleeps here.
    wakeup: Condvar,
}

struct SlotState<T> {
    /// The answer, until the waiter takes it.
    answer: Option<T>,
    /// The completer has answered or is gone: nothing more will come.
    finished: bool,
    /// A blocking waiter sleeps on `wakeup`.
    sleeping: bool,
    /// An async waiter's waker.
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn lock(&self) -> MutexGuard<'_, SlotState<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The engine's end: gives the answer once.
pub(crate) struct Completer<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Completer<T> {
    /// Gives the answer and wakes the waiter. A waiter that gave up simply never takes it.
    pub(crate) fn complete(self, answer: T) {
        self.finish(Some(answer));
    }

    fn finish(&self, answer: Option<T>) {
        let mut state = self.slot.lock();
        if state.finished {
            return;
        }
        state.answer = answer;
        state.finished = true;
        self.slot.done.store(true, Ordering::Release);
        let sleeping = state.sleeping;
        let waker = state.waker.take();
        drop(state);
        if sleeping {
            self.slot.wakeup.notify_one();
        }
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        if !self.slot.done.load(Ordering::Acquire) {
            self.finish(None);
        }
    }
}

/// The waiter's end. Also a [`Future`] of the answer.
pub(crate) struct Completion<T> {
    slot: Arc<Slot<T>>,
}

impl<T> Completion<T> {
    /// Whether the wait is over (answered or abandoned).
    pub(crate) fn is_done(&self) -> bool {
        self.slot.done.load(Ordering::Acquire)
    }

    /// Blocks the thread until the answer comes or `timeout` after `start` passes: polls for up
    /// to the spin window first (see [`SpinPolicy`]), then sleeps.
    pub(crate) fn wait_blocking(
        &self,
        spin: &SpinPolicy,
        start: Instant,
        timeout: Duration,
    ) -> Result<T, WaitFailed> {
        if !self.is_done() {
            spin.spin(start, timeout, || self.is_done());
        }
        let deadline = start.checked_add(timeout);
        let mut state = self.slot.lock();
        loop {
            if state.finished {
                return state.answer.take().ok_or(WaitFailed::Abandoned);
            }
            state.sleeping = true;
            state = match deadline {
                None => self
                    .slot
                    .wakeup
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.sleeping = false;
                        return Err(WaitFailed::Timeout);
                    }
                    self.slot
                        .wakeup
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            state.sleeping = false;
        }
    }

    /// The answer if it has come (for a waiter that just gave up: an answer that raced the
    /// timeout is still taken).
    pub(crate) fn try_take(&self) -> Option<T> {
        self.slot.lock().answer.take()
    }
}

impl<T> Future for Completion<T> {
    type Output = Result<T, WaitFailed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.slot.lock();
        if state.finished {
            return Poll::Ready(state.answer.take().ok_or(WaitFailed::Abandoned));
        }
        match &mut state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            waker => *waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_spin() -> SpinPolicy {
        SpinPolicy::new(Duration::ZERO)
    }

    #[test]
    fn a_blocking_waiter_gets_an_answer_given_while_it_sleeps() {
        let (completer, completion) = channel();
        let answerer = std::thread::spawn(move || {
            // Answer only once the waiter is asleep, to exercise the wake-up.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !completer.slot.lock().sleeping && Instant::now() < deadline {
                std::thread::yield_now();
            }
            completer.complete(42);
        });
        let got = completion.wait_blocking(&no_spin(), Instant::now(), Duration::from_secs(30));
        assert_eq!(got, Ok(42));
        answerer.join().unwrap();
    }

    #[test]
    fn a_blocking_wait_times_out_and_a_dropped_completer_abandons() {
        let (completer, completion) = channel::<u32>();
        let got = completion.wait_blocking(&no_spin(), Instant::now(), Duration::from_millis(1));
        assert_eq!(got, Err(WaitFailed::Timeout));
        // An answer that raced the timeout is still there to take.
        completer.complete(7);
        assert_eq!(completion.try_take(), Some(7));

        let (completer, completion) = channel::<u32>();
        drop(completer);
        let got = completion.wait_blocking(&no_spin(), Instant::now(), Duration::from_secs(5));
        assert_eq!(got, Err(WaitFailed::Abandoned));
    }

    #[test]
    fn an_answer_given_before_the_wait_is_taken_at_once() {
        let (completer, completion) = channel();
        completer.complete("yes");
        let got = completion.wait_blocking(&no_spin(), Instant::now(), Duration::ZERO);
        assert_eq!(got, Ok("yes"));
    }

    #[tokio::test]
    async fn an_async_waiter_is_woken_by_the_answer() {
        let (completer, completion) = channel();
        let answerer = std::thread::spawn(move || completer.complete(5u8));
        assert_eq!(completion.await, Ok(5));
        answerer.join().unwrap();

        let (completer, mut completion) = channel::<u8>();
        let timed_out = tokio::time::timeout(Duration::from_millis(1), &mut completion).await;
        assert!(timed_out.is_err());
        drop(completer);
        assert_eq!(completion.await, Err(WaitFailed::Abandoned));
    }
}
