//! Subscriptions and how their messages reach the application (SPEC §6.4).
//!
//! The engine decodes each delivered frame once and looks its subscription id up in the
//! [`SubscriptionTable`]. What happens next depends on the subscription's [`Sink`]:
//!
//! * a callback: the message joins the connection's [`DispatchQueue`], drained either by the
//!   library's dispatch thread ([`DispatchMode::Callbacks`](crate::DispatchMode)) or by the
//!   application through `process_message_queue` ([`DispatchMode::Queue`](crate::DispatchMode));
//! * a stream (async API): the message goes into that subscription's own channel.
//!
//! Either way the engine only appends and moves on: it never waits for the application. Each
//! subscription counts what is waiting for it; past its [`PendingLimits`] further messages are
//! dropped, counted, and reported once per overflow through the notification hook.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::params::PendingLimits;
use crate::received::Received;

/// A subscription callback. `FnMut` so that callbacks can keep state; one subscription's
/// callback never runs twice at once (it sits behind a mutex).
pub(crate) type Callback = Box<dyn FnMut(&Received) + Send>;

/// Where a subscription's messages go.
pub(crate) enum Sink {
    /// Run a callback (through the dispatch queue).
    Callback(Mutex<Callback>),
    /// Send to an async stream. `None` once the subscription ended, so the stream sees its end.
    Stream(Mutex<Option<UnboundedSender<Received>>>),
}

/// One subscription. Shared (`Arc`) by the table, the application's handle, and every queued
/// message for it; the callback is dropped with the last of them.
pub(crate) struct SubscriptionEntry {
    /// Subscription id on the wire; unique within the connection, never reused.
    pub(crate) id: u32,
    /// The pattern, as validated.
    pub(crate) pattern: String,
    sink: Sink,
    /// False once unsubscribed: queued messages are then discarded, not dispatched.
    active: AtomicBool,
    /// Messages waiting for the callback or the stream reader.
    pending_messages: AtomicUsize,
    /// Bytes (whole frames) waiting.
    pending_bytes: AtomicUsize,
    /// Messages dropped at the pending limit, ever.
    dropped: AtomicU64,
    /// Set at the first drop of an overflow, cleared when the queue drains: one report each.
    overflowing: AtomicBool,
    /// Messages handed to the callback or the stream.
    delivered: AtomicU64,
}

/// The engine's verdict on one message for one subscription.
pub(crate) enum Admit {
    /// Counted as pending; deliver it.
    Accepted,
    /// Over the limit; dropped. `report` is true for the first drop of an overflow.
    Dropped {
        /// Whether to notify the application.
        report: bool,
        /// Drops so far.
        dropped: u64,
    },
}

impl SubscriptionEntry {
    pub(crate) fn new(id: u32, pattern: String, sink: Sink) -> SubscriptionEntry {
        SubscriptionEntry {
            id,
            pattern,
            sink,
            active: AtomicBool::new(true),
            pending_messages: AtomicUsize::new(0),
            pending_bytes: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            overflowing: AtomicBool::new(false),
            delivered: AtomicU64::new(0),
        }
    }

    /// Whether messages go to a callback (through the dispatch queue).
    pub(crate) fn is_callback(&self) -> bool {
        matches!(self.sink, Sink::Callback(_))
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Ends the subscription on the application side: queued messages are discarded and a stream
    /// sees its end. Returns whether it was active.
    pub(crate) fn deactivate(&self) -> bool {
        let was_active = self.active.swap(false, Ordering::AcqRel);
        if let Sink::Stream(sender) = &self.sink {
            sender.lock().unwrap_or_else(PoisonError::into_inner).take();
        }
        was_active
    }

    /// Engine side: counts a message of `size` bytes as pending, unless that would pass the
    /// limits. A message always fits into an empty queue, however large.
    pub(crate) fn admit(&self, size: usize, limits: &PendingLimits) -> Admit {
        let messages = self.pending_messages.load(Ordering::Acquire);
        let bytes = self.pending_bytes.load(Ordering::Acquire);
        if messages > 0 && (messages >= limits.messages || bytes + size > limits.bytes) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let report = !self.overflowing.swap(true, Ordering::AcqRel);
            return Admit::Dropped { report, dropped };
        }
        self.pending_messages.fetch_add(1, Ordering::AcqRel);
        self.pending_bytes.fetch_add(size, Ordering::AcqRel);
        Admit::Accepted
    }

    /// Consumer side: a message of `size` bytes is no longer pending.
    pub(crate) fn release(&self, size: usize) {
        self.pending_bytes.fetch_sub(size, Ordering::AcqRel);
        if self.pending_messages.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.overflowing.store(false, Ordering::Release);
        }
    }

    /// Engine side, for stream sinks: sends the (admitted) message to the stream.
    pub(crate) fn send_to_stream(&self, received: Received) {
        if let Sink::Stream(sender) = &self.sink {
            let size = received.size();
            let sender = sender.lock().unwrap_or_else(PoisonError::into_inner);
            let sent = sender
                .as_ref()
                .is_some_and(|sender| sender.send(received).is_ok());
            drop(sender);
            if !sent {
                self.release(size);
            }
        }
    }

    /// Counts a message handed to the application.
    pub(crate) fn count_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    /// (messages, bytes) waiting now.
    pub(crate) fn pending(&self) -> (usize, usize) {
        (
            self.pending_messages.load(Ordering::Acquire),
            self.pending_bytes.load(Ordering::Acquire),
        )
    }

    /// Messages dropped at the pending limit.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Messages handed to the application.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Runs the callback for one message, catching a panic. Returns the panic message if it
    /// panicked. Skips (returns `Ok`) if the subscription ended meanwhile.
    fn call(&self, received: &Received) -> Result<(), String> {
        let Sink::Callback(callback) = &self.sink else {
            return Ok(());
        };
        if !self.is_active() {
            return Ok(());
        }
        let mut callback = callback.lock().unwrap_or_else(PoisonError::into_inner);
        self.count_delivered();
        std::panic::catch_unwind(AssertUnwindSafe(|| (callback)(received))).map_err(|panic| {
            panic
                .downcast_ref::<&str>()
                .map(|text| (*text).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(not a string)".to_owned())
        })
    }
}

/// Live subscriptions by id. Lock order: the output buffer's lock, then this one.
#[derive(Default)]
pub(crate) struct SubscriptionTable {
    entries: Mutex<HashMap<u32, Arc<SubscriptionEntry>>>,
}

impl SubscriptionTable {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<u32, Arc<SubscriptionEntry>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes every subscription (on close), ending them all.
    pub(crate) fn clear(&self) {
        let entries: Vec<_> = self.lock().drain().map(|(_, entry)| entry).collect();
        for entry in &entries {
            entry.deactivate();
        }
    }
}

/// One message waiting for its callback.
pub(crate) type QueuedMessage = (Arc<SubscriptionEntry>, Received);

struct QueueState {
    items: VecDeque<QueuedMessage>,
    /// Set by `wake_up`; consumed by the next waiting `process_message_queue`.
    woken: bool,
    closed: bool,
    /// Threads waiting on `ready`.
    waiting: usize,
}

/// Messages waiting for their callbacks, in arrival order, for all callback subscriptions of a
/// connection.
pub(crate) struct DispatchQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

/// A callback that panicked: (subscription id, pattern, panic message).
pub(crate) type Panicked = (u32, String, String);

impl DispatchQueue {
    pub(crate) fn new() -> DispatchQueue {
        DispatchQueue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                woken: false,
                closed: false,
                waiting: 0,
            }),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Engine side: appends admitted messages (one lock for the whole batch).
    pub(crate) fn push_batch(&self, batch: impl IntoIterator<Item = QueuedMessage>) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        let before = state.items.len();
        state.items.extend(batch);
        let wake = state.waiting > 0 && state.items.len() > before;
        drop(state);
        if wake {
            self.ready.notify_all();
        }
    }

    /// Makes one waiting (or the next) `process_message_queue` return at once.
    pub(crate) fn wake_up(&self) {
        self.lock().woken = true;
        self.ready.notify_all();
    }

    /// Ends dispatch: queued messages are discarded, waiters return.
    pub(crate) fn close(&self) {
        let discarded: Vec<_> = {
            let mut state = self.lock();
            state.closed = true;
            state.items.drain(..).collect()
        };
        self.ready.notify_all();
        // Dropped outside the lock: a callback's captures may do anything when dropped.
        drop(discarded);
    }

    /// Messages waiting now.
    pub(crate) fn len(&self) -> usize {
        self.lock().items.len()
    }

    /// Waits for the next message: `None` when closed, or when `deadline` passed or `wake_up`
    /// was called (then `Some(Err(()))`).
    fn next(&self, deadline: Option<Instant>) -> Option<Result<QueuedMessage, ()>> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            if let Some(item) = state.items.pop_front() {
                return Some(Ok(item));
            }
            if state.woken {
                state.woken = false;
                return Some(Err(()));
            }
            state.waiting += 1;
            match deadline {
                None => {
                    state = self
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        state.waiting -= 1;
                        return Some(Err(()));
                    }
                    state = self
                        .ready
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
            state.waiting -= 1;
        }
    }

    /// Takes the next message without waiting.
    fn try_next(&self) -> Option<QueuedMessage> {
        self.lock().items.pop_front()
    }

    /// The dispatch thread's loop: runs callbacks until the queue is closed. `on_panic` is told
    /// about callbacks that panicked.
    pub(crate) fn run(&self, on_panic: &dyn Fn(Panicked)) {
        while let Some(next) = self.next(None) {
            if let Ok(item) = next {
                dispatch(item, on_panic);
            }
        }
    }

    /// `process_message_queue`: waits up to `timeout` for a first message, then runs callbacks
    /// for the messages already waiting, up to `max` in all (0 = no limit). Returns
    /// `Ok((processed, remaining))`, or `Err(())` if the queue is closed and nothing was done.
    pub(crate) fn process(
        &self,
        timeout: Duration,
        max: usize,
        on_panic: &dyn Fn(Panicked),
    ) -> Result<(usize, usize), ()> {
        let deadline = Instant::now().checked_add(timeout);
        let first = match self.next(deadline) {
            None => return Err(()),
            Some(Err(())) => return Ok((0, self.len())),
            Some(Ok(item)) => item,
        };
        dispatch(first, on_panic);
        let mut processed = 1;
        while max == 0 || processed < max {
            let Some(item) = self.try_next() else { break };
            dispatch(item, on_panic);
            processed += 1;
        }
        Ok((processed, self.len()))
    }
}

/// Runs one queued message's callback.
fn dispatch((entry, received): QueuedMessage, on_panic: &dyn Fn(Panicked)) {
    entry.release(received.size());
    if let Err(panic) = entry.call(&received) {
        on_panic((entry.id, entry.pattern.clone(), panic));
    }
}
