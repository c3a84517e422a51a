//! Subscriptions and how their messages reach the application (SPEC §6.4).
//!
//! The engine validates each delivered frame and looks its subscription id up in the
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

use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedSender;

use crate::error::DispatchError;
use crate::params::PendingLimits;
use crate::received::{FrameParts, Received};

/// A subscription callback. `FnMut` so that callbacks can keep state; one subscription's
/// callback never runs twice at once (it sits behind a mutex). It takes each message by value,
/// so a callback that keeps it (a foreign-language binding handing it on) needs no copy.
pub(crate) type Callback = Box<dyn FnMut(Received) + Send>;

thread_local! {
    /// The subscription (its entry's address) whose callbacks this thread is running; 0: none.
    static RUNNING: Cell<usize> = const { Cell::new(0) };
}

/// Marks this thread as running a subscription's callbacks until dropped (restoring what it
/// was: a callback may itself dispatch, in queue mode).
struct Running(usize);

impl Running {
    fn enter(entry: usize) -> Running {
        Running(RUNNING.with(|running| running.replace(entry)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.with(|running| running.set(self.0));
    }
}

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

    /// Application side, after [`deactivate`](Self::deactivate): waits until a callback of this
    /// subscription running on another thread has returned, so that none runs once the caller
    /// goes on (later runs see the subscription inactive before their first message). From
    /// inside the subscription's own callback it does not wait (that would never end).
    pub(crate) fn wait_for_callback(&self) {
        if let Sink::Callback(callback) = &self.sink
            && RUNNING.with(Cell::get) != self.address()
        {
            // A run holds the lock from its first message to its last.
            drop(callback.lock());
        }
    }

    /// Identifies this entry among live ones (for [`RUNNING`]).
    fn address(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Engine side: whether a message of `size` bytes may be queued, given what is pending and
    /// `batch` = (messages, bytes) already admitted in the read batch not yet handed over. A
    /// message always fits into an empty queue, however large. Admitted messages are counted as
    /// pending by [`SubscriptionEntry::add_pending`] when their batch is handed over (once per
    /// run, not per message), so the limit holds to within one read batch.
    pub(crate) fn admit(
        &self,
        size: usize,
        limits: &PendingLimits,
        batch: (usize, usize),
    ) -> Admit {
        let messages = self.pending_messages.load(Ordering::Acquire) + batch.0;
        let bytes = self.pending_bytes.load(Ordering::Acquire) + batch.1;
        if messages > 0 && (messages >= limits.messages || bytes + size > limits.bytes) {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            let report = !self.overflowing.swap(true, Ordering::AcqRel);
            return Admit::Dropped { report, dropped };
        }
        Admit::Accepted
    }

    /// Engine side: counts admitted messages as pending, before they are handed over.
    pub(crate) fn add_pending(&self, count: usize, bytes: usize) {
        self.pending_messages.fetch_add(count, Ordering::AcqRel);
        self.pending_bytes.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Consumer side: a message of `size` bytes is no longer pending.
    pub(crate) fn release(&self, size: usize) {
        self.release_many(1, size);
    }

    /// Consumer side: `count` messages of `bytes` bytes in all are no longer pending.
    pub(crate) fn release_many(&self, count: usize, bytes: usize) {
        if count == 0 {
            return;
        }
        self.pending_bytes.fetch_sub(bytes, Ordering::AcqRel);
        if self.pending_messages.fetch_sub(count, Ordering::AcqRel) == count {
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

/// One message waiting for its callback, with its subscription (the async streams' path).
pub(crate) type QueuedMessage = (Arc<SubscriptionEntry>, Received);

/// Consecutive queued messages of one subscription: its entry is shared once per run, not once
/// per message, and its counters and callback lock are touched once per run.
pub(crate) struct Run {
    /// The subscription.
    pub(crate) entry: Arc<SubscriptionEntry>,
    /// How many of the queue's messages, in order, belong to it.
    pub(crate) count: usize,
    /// Their size in bytes (whole frames), for the pending count.
    pub(crate) bytes: usize,
}

/// One message of a [`DispatchBatch`]: where its frame is in the read's buffer, and where the
/// frame's parts are (found by the engine's one header parse).
#[derive(Clone, Copy)]
struct QueuedFrame {
    offset: u32,
    length: u32,
    parts: FrameParts,
}

/// Messages of one read for callback subscriptions, grouped in runs. Built by the engine
/// without any lock — positions in the read's buffer, not frames — and handed over whole with
/// one. Invariant: the runs' counts sum to `frames.len()`, and every position lies in `chunk`.
#[derive(Default)]
pub(crate) struct DispatchBatch {
    /// The read's buffer, shared.
    chunk: Bytes,
    /// Each message's frame in `chunk`, in arrival order.
    frames: Vec<QueuedFrame>,
    runs: Vec<Run>,
}

impl DispatchBatch {
    /// Appends the frame at `offset..offset + length` of the read, whose parts are `parts`, for
    /// `entry`, extending the last run when it is the same subscription.
    #[inline]
    pub(crate) fn push(
        &mut self,
        entry: &Arc<SubscriptionEntry>,
        offset: usize,
        length: usize,
        parts: FrameParts,
    ) {
        match self.runs.last_mut() {
            Some(run) if Arc::ptr_eq(&run.entry, entry) => {
                run.count += 1;
                run.bytes += length;
            }
            _ => self.runs.push(Run {
                entry: entry.clone(),
                count: 1,
                bytes: length,
            }),
        }
        // Frames are at most 2 GiB and reads far smaller: positions fit in u32.
        self.frames.push(QueuedFrame {
            offset: offset as u32,
            length: length as u32,
            parts,
        });
    }

    /// Sets the read's buffer, once every frame of it is pushed.
    pub(crate) fn set_chunk(&mut self, chunk: Bytes) {
        self.chunk = chunk;
    }

    /// Whether the batch holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// (messages, bytes) of the batch's last run if it is `entry`'s: what this batch has
    /// admitted for it so far (earlier, interleaved runs are not counted).
    pub(crate) fn admitted_for(&self, entry: &Arc<SubscriptionEntry>) -> (usize, usize) {
        match self.runs.last() {
            Some(run) if Arc::ptr_eq(&run.entry, entry) => (run.count, run.bytes),
            _ => (0, 0),
        }
    }

    /// The message at `index`, built from the shared buffer (on the dispatching thread) without
    /// parsing anything again.
    fn received(&self, index: usize) -> Option<Received> {
        let frame = self.frames.get(index)?;
        let start = frame.offset as usize;
        let bytes = self.chunk.slice(start..start + frame.length as usize);
        Some(Received::new(bytes, frame.parts))
    }
}

struct QueueState {
    /// Batches waiting, in arrival order; each one whole read's messages, moved in (not copied
    /// message by message).
    batches: VecDeque<DispatchBatch>,
    /// Messages in `batches`.
    messages: usize,
    /// Emptied batches handed back for reuse, so the engine does not allocate per read.
    spare: Vec<DispatchBatch>,
    /// Set by `wake_up`; consumed by the next waiting `process_message_queue`.
    woken: bool,
    closed: bool,
    /// Threads waiting on `ready`.
    waiting: usize,
}

/// How many emptied batches are kept for reuse.
const SPARE_BATCHES: usize = 4;

impl QueueState {
    /// Takes up to `max` messages (0 = all) from the front, splitting a batch (and a run) if
    /// needed.
    fn take(&mut self, max: usize, taken: &mut VecDeque<DispatchBatch>) {
        let mut left = if max == 0 {
            self.messages
        } else {
            max.min(self.messages)
        };
        while left > 0 {
            let Some(front) = self.batches.front_mut() else {
                break;
            };
            let size = front.frames.len();
            if size <= left {
                left -= size;
                self.messages -= size;
                if let Some(batch) = self.batches.pop_front() {
                    taken.push_back(batch);
                }
            } else {
                taken.push_back(front.split_front(left));
                self.messages -= left;
                left = 0;
            }
        }
    }
}

impl DispatchBatch {
    /// Splits off the first `count` messages (and their runs).
    fn split_front(&mut self, count: usize) -> DispatchBatch {
        let mut front = DispatchBatch {
            chunk: self.chunk.clone(),
            ..DispatchBatch::default()
        };
        let mut left = count;
        while left > 0 {
            let Some(run) = self.runs.first_mut() else {
                break;
            };
            if run.count <= left {
                left -= run.count;
                front.runs.push(self.runs.remove(0));
            } else {
                let first = count - left;
                let share: usize = self.frames[first..count]
                    .iter()
                    .map(|frame| frame.length as usize)
                    .sum();
                run.count -= left;
                run.bytes -= share;
                front.runs.push(Run {
                    entry: run.entry.clone(),
                    count: left,
                    bytes: share,
                });
                left = 0;
            }
        }
        front.frames = self.frames.drain(..count).collect();
        front
    }
}

/// Messages waiting for their callbacks, in arrival order, for all callback subscriptions of a
/// connection.
pub(crate) struct DispatchQueue {
    state: Mutex<QueueState>,
    ready: Condvar,
    /// Mirrors `QueueState::closed`, for the dispatcher to check between runs of a batch it
    /// holds outside the lock.
    closed: AtomicBool,
}

/// A callback that panicked: (subscription id, pattern, panic message).
pub(crate) type Panicked = (u32, String, String);

impl DispatchQueue {
    pub(crate) fn new() -> DispatchQueue {
        DispatchQueue {
            state: Mutex::new(QueueState {
                batches: VecDeque::new(),
                messages: 0,
                spare: Vec::new(),
                woken: false,
                closed: false,
                waiting: 0,
            }),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Engine side: hands over a batch of admitted messages (one lock, no copying) and leaves
    /// `batch` empty and ready for reuse.
    pub(crate) fn push_batch(&self, batch: &mut DispatchBatch) {
        for run in &batch.runs {
            run.entry.add_pending(run.count, run.bytes);
        }
        let mut state = self.lock();
        if state.closed {
            *batch = DispatchBatch::default();
            return;
        }
        let replacement = state.spare.pop().unwrap_or_default();
        state.messages += batch.frames.len();
        let full = std::mem::replace(batch, replacement);
        state.batches.push_back(full);
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.ready.notify_all();
        }
    }

    /// Dispatch side: gives emptied batches back for reuse.
    fn recycle(&self, batches: &mut VecDeque<DispatchBatch>) {
        let mut state = self.lock();
        while let Some(mut batch) = batches.pop_front() {
            if state.spare.len() >= SPARE_BATCHES {
                break;
            }
            batch.frames.clear();
            batch.runs.clear();
            batch.chunk = Bytes::new();
            state.spare.push(batch);
        }
        drop(state);
        batches.clear();
    }

    /// Makes one waiting (or the next) `process_message_queue` return at once.
    pub(crate) fn wake_up(&self) {
        self.lock().woken = true;
        self.ready.notify_all();
    }

    /// Ends dispatch: queued messages are discarded, waiters return.
    pub(crate) fn close(&self) {
        let discarded = {
            let mut state = self.lock();
            state.closed = true;
            self.closed.store(true, Ordering::Relaxed);
            state.messages = 0;
            std::mem::take(&mut state.batches)
        };
        self.ready.notify_all();
        // Dropped outside the lock: a callback's captures may do anything when dropped.
        drop(discarded);
    }

    /// Messages waiting now.
    pub(crate) fn len(&self) -> usize {
        self.lock().messages
    }

    /// Waits until messages are waiting and takes up to `max` of them (0 = all). `Ok(false)`
    /// when `deadline` passed or `wake_up` was called first.
    fn wait_and_take(
        &self,
        deadline: Option<Instant>,
        max: usize,
        taken: &mut VecDeque<DispatchBatch>,
    ) -> Result<bool, DispatchError> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(DispatchError::Closed);
            }
            if state.messages > 0 {
                state.take(max, taken);
                return Ok(true);
            }
            if state.woken {
                state.woken = false;
                return Ok(false);
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
                        return Ok(false);
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

    /// The dispatch thread's loop: runs callbacks until the queue is closed. `on_panic` is told
    /// about callbacks that panicked.
    ///
    /// Takes everything queued under one lock and runs it without the lock, so the reader and
    /// the dispatcher meet once per batch, not once per message. Closing stops the batch in
    /// progress at the next run.
    pub(crate) fn run(&self, on_panic: &dyn Fn(Panicked)) {
        let mut taken = VecDeque::new();
        while let Ok(took) = self.wait_and_take(None, 0, &mut taken) {
            if took {
                self.dispatch_all(&mut taken, on_panic);
                self.recycle(&mut taken);
            }
        }
    }

    /// `process_message_queue`: waits up to `timeout` for a first message, then runs callbacks
    /// for the messages already waiting, up to `max` in all (0 = no limit). Returns
    /// `Ok((processed, remaining))`; fails if the queue is closed and nothing was done.
    pub(crate) fn process(
        &self,
        timeout: Duration,
        max: usize,
        on_panic: &dyn Fn(Panicked),
    ) -> Result<(usize, usize), DispatchError> {
        let deadline = Instant::now().checked_add(timeout);
        let mut taken = VecDeque::new();
        if !self.wait_and_take(deadline, max, &mut taken)? {
            return Ok((0, self.len()));
        }
        let processed = taken.iter().map(|batch| batch.frames.len()).sum();
        self.dispatch_all(&mut taken, on_panic);
        Ok((processed, self.len()))
    }

    /// Runs the callbacks of taken batches, run by run.
    fn dispatch_all(&self, taken: &mut VecDeque<DispatchBatch>, on_panic: &dyn Fn(Panicked)) {
        for batch in taken.iter_mut() {
            let mut next = 0;
            let runs = std::mem::take(&mut batch.runs);
            for run in runs {
                if self.closed.load(Ordering::Relaxed) {
                    // Discarded (outside the lock, as in `close`).
                    return;
                }
                let first = next;
                next += run.count;
                run.entry.call_run(
                    (first..next).filter_map(|index| batch.received(index)),
                    run.count,
                    run.bytes,
                    on_panic,
                );
            }
        }
    }
}

impl SubscriptionEntry {
    /// Runs the callback for each message of a run (taking the callback's lock once), catching
    /// panics; then counts the run's `count` messages of `bytes` bytes as no longer pending.
    /// Messages of a subscription that ended meanwhile are discarded.
    fn call_run(
        &self,
        messages: impl Iterator<Item = Received>,
        count: usize,
        bytes: usize,
        on_panic: &dyn Fn(Panicked),
    ) {
        let mut delivered = 0;
        if let Sink::Callback(callback) = &self.sink {
            let mut callback = callback.lock().unwrap_or_else(PoisonError::into_inner);
            let _running = Running::enter(self.address());
            for received in messages {
                if !self.is_active() {
                    break;
                }
                delivered += 1;
                if let Err(panic) =
                    std::panic::catch_unwind(AssertUnwindSafe(|| (callback)(received)))
                {
                    let text = panic
                        .downcast_ref::<&str>()
                        .map(|text| (*text).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "(not a string)".to_owned());
                    on_panic((self.id, self.pattern.clone(), text));
                }
            }
        }
        self.delivered.fetch_add(delivered, Ordering::Relaxed);
        self.release_many(count, bytes);
    }
}
