//! The output buffer that publishers write frames into and the engine writes to the socket.
//!
//! Publishing costs one short lock and one encode: the publisher encodes its frame straight into
//! [`OutboundState::queued`] and wakes the engine only when that goes from empty to non-empty.
//! The engine swaps the whole buffer out for its spare one and writes it with as few syscalls as
//! the kernel allows, so under load one `write` carries many frames (the connection's counters
//! show it: `frames_out` against `write_calls`).
//!
//! The rejected alternative is async-nats's: a `Command` per publish sent over a channel to the
//! task that owns the socket. That costs a channel send, and often a wake-up, per message, and the
//! message has to be moved or copied once more on the other side.
//!
//! **Direct writes.** Waking the engine costs a thread hand-off — several microseconds that a
//! request/reply round trip pays twice on each side. So when a frame lands in an empty buffer,
//! no write is in progress, and the socket has been quiet for [`QUIET_BEFORE_DIRECT_WRITE`], the
//! publishing thread writes the frame itself (non-blocking). Under load the socket is never quiet
//! that long, so bursts still go through the engine and coalesce. Whatever the kernel does not
//! take of a direct write becomes [`OutboundState::unfinished`]: the rest of a frame whose
//! beginning is already on the socket, kept apart from the whole frames queued behind it.
//!
//! # Invariants
//!
//! With `H` the high-water mark, `R` the reconnect bound and `F` the size of the largest frame
//! (at most the gateway's `max_frame`):
//!
//! 1. **Frame boundaries.** `queued` is a sequence of whole frames that no writer has begun: it
//!    starts and ends on a frame boundary. Replay ([`keep_publishes`]) reads only `queued`, so it
//!    never parses from the middle of a frame.
//! 2. **The partly written head.** `unfinished` is empty, or it is the unwritten rest of a direct
//!    write that began on the current session's socket: its first byte lies inside a frame, it
//!    ends on a frame boundary, and `0 < unfinished.len() < F` (a direct write carries exactly one
//!    frame: it is claimed only when that frame found `queued` empty, under the same lock).
//! 3. **Order.** The socket receives `unfinished` before anything in `queued`: a writer takes
//!    `unfinished` first, and a direct write is claimed only while `unfinished` is empty.
//! 4. **One writer.** `writing` is true exactly while one party — the engine between
//!    [`Outbound::take`] and [`Outbound::write_finished`], or a direct writer — holds bytes taken
//!    from this buffer for the socket; nobody takes anything while it is set.
//! 5. **Sessions.** `unfinished` is non-empty only while connected, and only for the session
//!    numbered `session`. Opening or losing a session clears it and advances `session`; a direct
//!    writer that returns under an older session number changes nothing (its bytes went to a
//!    socket that is gone). Losing a session keeps the publishes of `queued` for replay and drops
//!    `unfinished`: once a writer has begun a frame, that frame belongs to that socket, exactly as
//!    the frames the engine had taken when the link broke.
//! 6. **Bounds.** Connected: a publish is admitted while `queued.len() < H`, so
//!    `queued.len() < H + F`; at or above `H` publishers wait until the engine takes the buffer.
//!    The engine holds at most one taken buffer (`< H + F`), so unwritten output stays below
//!    `2 × (H + F) + F`. Reconnecting: a publish is kept while `queued.len() <= R` after it, then
//!    refused. Closed: nothing is admitted; the engine writes what is left, then DISCONNECT.
//!
//! The lock is a `std::sync::Mutex`, not an async one: it is held only to append or swap, never
//! across an `.await` or a syscall, and the blocking API must not need a runtime.

use std::io::Write;
use std::net::TcpStream as StdTcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use mm_wire::{Action, EncodeError, HeaderView, frame_length};
use tokio::sync::Notify;

/// Initial capacity of each of the two buffers.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// How long the socket must have been quiet before a publisher writes directly. Shorter than a
/// loopback round trip (so sequential requests and replies write directly), longer than the gap
/// between writes of a busy stream (so bursts keep coalescing in the engine).
const QUIET_BEFORE_DIRECT_WRITE: Duration = Duration::from_micros(20);

/// Where the connection to the gateway stands, as far as output is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Frames are written as they come.
    Connected,
    /// The gateway was lost; publishes are buffered (up to the reconnect bound) for replay.
    Reconnecting,
    /// Closed for good: nothing more is admitted.
    Closed,
}

/// What kind of frame is being queued, which decides what happens when the link is not up or
/// the buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// A user publish: waits at the high-water mark; kept for replay while reconnecting.
    Publish,
    /// SUBSCRIBE / UNSUBSCRIBE: never waits; dropped while reconnecting, because the engine
    /// renews every subscription from the table after the next ACK.
    Interest,
    /// PING / PONG: never waits; refused unless connected.
    Control,
}

/// Why a frame was not queued.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushError {
    /// At the high-water mark: wait for the engine and try again (publishes only).
    #[error("the output buffer is at its high-water mark")]
    Full,
    /// Closed.
    #[error("the connection is closed")]
    Closed,
    /// A control frame while reconnecting.
    #[error("not connected")]
    NotConnected,
    /// Reconnecting and the reconnect buffer is full.
    #[error("the reconnect buffer is full ({limit} bytes)")]
    ReconnectBufferFull {
        /// The bound.
        limit: usize,
    },
    /// The message cannot be encoded.
    #[error("cannot encode: {0}")]
    Encode(EncodeError),
    /// Larger than the gateway's `max_frame`.
    #[error("frame of {size} bytes exceeds the gateway's maximum of {max}")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The gateway's limit.
        max: u32,
    },
}

/// What a successful push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// The frame is queued.
    Queued,
    /// Not queued, on purpose: an interest change while reconnecting.
    Skipped,
}

/// The mutable part, behind the mutex. See the module doc for the invariants.
pub(crate) struct OutboundState {
    /// Whole frames that no writer has begun, in order. The engine swaps it with its spare
    /// buffer.
    queued: BytesMut,
    /// The rest of a frame that a direct writer began on the current socket (empty: none). Goes
    /// out before `queued`; never replayed.
    unfinished: BytesMut,
    /// Link state; decides admission.
    link: LinkState,
    /// Advances whenever a session is opened or lost: tells a direct writer that returns late
    /// whether its socket is still the current one.
    session: u64,
    /// The gateway's `max_frame` (from its ACK).
    max_frame: u32,
    /// Frames queued since the connection was opened.
    frames: u64,
    /// Bytes queued since the connection was opened.
    bytes: u64,
    /// Blocking publishers waiting on [`Outbound::drained`].
    waiting: usize,
    /// The session's socket, for direct writes (a second handle to it). `None` unless connected.
    socket: Option<Arc<StdTcpStream>>,
    /// Whether someone holds the socket for writing (the engine or a direct writer).
    writing: bool,
    /// When the last write finished.
    last_write: Instant,
}

/// A direct write claimed under the lock, done outside it.
struct DirectWrite {
    socket: Arc<StdTcpStream>,
    /// The session the socket belongs to.
    session: u64,
    /// Exactly one whole frame.
    bytes: BytesMut,
}

/// The shared output buffer with its wake-ups. One per connection, inside the shared state.
pub(crate) struct Outbound {
    state: Mutex<OutboundState>,
    /// Blocking publishers wait here at the high-water mark; signalled when the engine takes the
    /// buffer or the link state changes.
    drained: Condvar,
    /// The same, for async publishers.
    drained_async: Notify,
    /// Wakes the engine's writer: signalled when there is something to write after a time
    /// without, and on close.
    pub(crate) wake_engine: Notify,
    /// Publishers wait at this many queued bytes.
    high_water: usize,
    /// Bound on publishes kept while reconnecting.
    reconnect_limit: usize,
    /// `write` calls made by direct writers (the engine counts its own).
    pub(crate) direct_write_calls: AtomicU64,
    /// Bytes written by direct writers.
    pub(crate) direct_bytes_written: AtomicU64,
}

impl Outbound {
    /// A buffer for a connection that is about to be opened (state `Reconnecting` until the
    /// first ACK, so that nothing is admitted before the handshake).
    pub(crate) fn new(high_water: usize, reconnect_limit: usize) -> Outbound {
        Outbound {
            state: Mutex::new(OutboundState {
                queued: BytesMut::with_capacity(INITIAL_CAPACITY),
                unfinished: BytesMut::new(),
                link: LinkState::Reconnecting,
                session: 0,
                max_frame: mm_wire::DEFAULT_MAX_FRAME,
                frames: 0,
                bytes: 0,
                waiting: 0,
                socket: None,
                writing: false,
                last_write: Instant::now(),
            }),
            drained: Condvar::new(),
            drained_async: Notify::new(),
            wake_engine: Notify::new(),
            high_water,
            reconnect_limit,
            direct_write_calls: AtomicU64::new(0),
            direct_bytes_written: AtomicU64::new(0),
        }
    }

    /// After a push that found the buffer empty: claims the socket for a direct write if nobody
    /// is writing, no frame is unfinished, and the socket has been quiet (see the module doc).
    /// Called under the lock; `queued` then holds exactly the frame just pushed.
    fn claim_direct(state: &mut OutboundState) -> Option<DirectWrite> {
        if state.writing
            || !state.unfinished.is_empty()
            || state.last_write.elapsed() < QUIET_BEFORE_DIRECT_WRITE
        {
            return None;
        }
        let socket = state.socket.clone()?;
        state.writing = true;
        Some(DirectWrite {
            socket,
            session: state.session,
            bytes: state.queued.split(),
        })
    }

    /// Does a claimed direct write (outside the lock). What the kernel does not take becomes the
    /// unfinished head, and the engine is woken for it and for anything queued meanwhile.
    fn write_direct(&self, direct: DirectWrite) {
        let DirectWrite {
            socket,
            session,
            mut bytes,
        } = direct;
        let written = match (&*socket).write(&bytes) {
            Ok(written) => {
                self.direct_write_calls.fetch_add(1, Ordering::Relaxed);
                self.direct_bytes_written
                    .fetch_add(written as u64, Ordering::Relaxed);
                written
            }
            // Would block, or failed: the engine retries, and sees the failure if it persists.
            Err(_) => 0,
        };
        let mut state = self.lock();
        if state.session != session {
            // The session was lost (and maybe replaced) meanwhile: the rest of this frame died
            // with its socket, and `writing` is no longer ours to clear.
            return;
        }
        state.writing = false;
        state.last_write = Instant::now();
        if written < bytes.len() {
            bytes.advance(written);
            debug_assert!(state.unfinished.is_empty());
            state.unfinished = bytes;
        }
        let wake = !state.unfinished.is_empty() || !state.queued.is_empty();
        drop(state);
        if wake {
            self.wake_engine.notify_one();
        }
    }

    /// After a push that found the buffer empty: write directly, or wake the engine.
    fn after_first_frame(&self, mut state: MutexGuard<'_, OutboundState>) {
        match Self::claim_direct(&mut state) {
            Some(direct) => {
                drop(state);
                self.write_direct(direct);
            }
            None => {
                drop(state);
                self.wake_engine.notify_one();
            }
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, OutboundState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The link state.
    pub(crate) fn link(&self) -> LinkState {
        self.lock().link
    }

    /// Whole frames waiting now, in bytes.
    pub(crate) fn pending(&self) -> usize {
        self.lock().queued.len()
    }

    /// (frames, bytes) queued so far, and bytes waiting now (an unfinished frame included).
    pub(crate) fn counters(&self) -> (u64, u64, usize) {
        let state = self.lock();
        (
            state.frames,
            state.bytes,
            state.queued.len() + state.unfinished.len(),
        )
    }

    /// Tries to queue one frame written by `encode`, under the lock. Returns whether `queued`
    /// was empty before, while connected (the caller then writes directly or wakes the engine).
    fn try_push(
        &self,
        state: &mut OutboundState,
        admission: Admission,
        encode: &mut dyn FnMut(&mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<(Pushed, bool), PushError> {
        match (state.link, admission) {
            (LinkState::Closed, _) => return Err(PushError::Closed),
            (LinkState::Reconnecting, Admission::Interest) => return Ok((Pushed::Skipped, false)),
            (LinkState::Reconnecting, Admission::Control) => return Err(PushError::NotConnected),
            (LinkState::Connected, Admission::Publish) if state.queued.len() >= self.high_water => {
                return Err(PushError::Full);
            }
            _ => {}
        }
        let before = state.queued.len();
        let size = encode(&mut state.queued).map_err(PushError::Encode)?;
        if size > state.max_frame as usize {
            state.queued.truncate(before);
            return Err(PushError::TooLarge {
                size,
                max: state.max_frame,
            });
        }
        if state.link == LinkState::Reconnecting && state.queued.len() > self.reconnect_limit {
            state.queued.truncate(before);
            return Err(PushError::ReconnectBufferFull {
                limit: self.reconnect_limit,
            });
        }
        state.frames += 1;
        state.bytes += size as u64;
        Ok((
            Pushed::Queued,
            before == 0 && state.link == LinkState::Connected,
        ))
    }

    /// Queues a frame, waiting (blocking the thread) at the high-water mark.
    pub(crate) fn push_blocking(
        &self,
        admission: Admission,
        mut encode: impl FnMut(&mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<Pushed, PushError> {
        let mut state = self.lock();
        loop {
            match self.try_push(&mut state, admission, &mut encode) {
                Err(PushError::Full) => {
                    state.waiting += 1;
                    state = self
                        .drained
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                    state.waiting -= 1;
                }
                Ok((pushed, first)) => {
                    if first {
                        self.after_first_frame(state);
                    }
                    return Ok(pushed);
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Queues a frame, waiting (asynchronously) at the high-water mark.
    pub(crate) async fn push_async(
        &self,
        admission: Admission,
        mut encode: impl FnMut(&mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<Pushed, PushError> {
        loop {
            let drained = self.drained_async.notified();
            tokio::pin!(drained);
            // Registered before the check, so a take between the check and the await is not
            // missed.
            drained.as_mut().enable();
            {
                let mut state = self.lock();
                match self.try_push(&mut state, admission, &mut encode) {
                    Err(PushError::Full) => {}
                    Ok((pushed, first)) => {
                        // A direct write is a non-blocking syscall: fine on a runtime thread.
                        if first {
                            self.after_first_frame(state);
                        }
                        return Ok(pushed);
                    }
                    Err(error) => return Err(error),
                }
            }
            drained.await;
        }
    }

    /// Queues an interest change (SUBSCRIBE / UNSUBSCRIBE), running `update` (the change to the
    /// subscription table) under the same lock, so that a reconnect's table snapshot sees either
    /// both the change and its frame, or neither. Never waits. Fails only when closed.
    pub(crate) fn push_interest(
        &self,
        update: impl FnOnce(),
        mut encode: impl FnMut(&mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<Pushed, PushError> {
        let mut state = self.lock();
        if state.link == LinkState::Closed {
            return Err(PushError::Closed);
        }
        update();
        let (pushed, first) = self.try_push(&mut state, Admission::Interest, &mut encode)?;
        if first {
            self.after_first_frame(state);
        }
        Ok(pushed)
    }

    /// Queues a frame from the engine itself (never waits; only while connected).
    pub(crate) fn push_control(
        &self,
        encode: impl FnMut(&mut BytesMut) -> Result<usize, EncodeError>,
    ) -> Result<(), PushError> {
        self.push_blocking(Admission::Control, encode).map(|_| ())
    }

    /// Engine side: swaps the next bytes to write into `spare` (which must be empty) — the
    /// unfinished head if there is one, else every queued frame — and holds the socket for
    /// writing until [`Outbound::write_finished`]. Returns false if there was nothing to take, or
    /// a direct writer holds the socket (it wakes the engine when done).
    pub(crate) fn take(&self, spare: &mut BytesMut) -> bool {
        debug_assert!(spare.is_empty());
        let mut state = self.lock();
        if state.writing {
            return false;
        }
        if !state.unfinished.is_empty() {
            state.writing = true;
            // Rare (a direct write the kernel took in part): the spare's capacity is not worth
            // keeping in `unfinished`.
            *spare = std::mem::take(&mut state.unfinished);
            return true;
        }
        if state.queued.is_empty() {
            return false;
        }
        state.writing = true;
        std::mem::swap(&mut state.queued, spare);
        let waiting = state.waiting > 0;
        drop(state);
        self.wake_publishers(waiting);
        true
    }

    /// Whether someone holds the socket for writing.
    pub(crate) fn is_writing(&self) -> bool {
        self.lock().writing
    }

    /// Engine side: the write of what [`Outbound::take`] gave is done (or failed).
    pub(crate) fn write_finished(&self) {
        let mut state = self.lock();
        state.writing = false;
        state.last_write = Instant::now();
    }

    fn wake_publishers(&self, blocking: bool) {
        if blocking {
            self.drained.notify_all();
        }
        self.drained_async.notify_waiters();
    }

    /// The current session's number: it changes whenever a session is opened or lost.
    pub(crate) fn session(&self) -> u64 {
        self.lock().session
    }

    /// After an ACK: puts `prefix` (the renewed subscriptions) in front of whatever was buffered
    /// while reconnecting, and opens the link. `build_prefix` runs under the lock, so no interest
    /// change can slip between the table snapshot and the link opening; it returns how many
    /// frames it wrote. Returns the number of replayed bytes.
    pub(crate) fn open(
        &self,
        max_frame: u32,
        socket: Option<StdTcpStream>,
        build_prefix: impl FnOnce(&mut BytesMut) -> u64,
    ) -> usize {
        let mut state = self.lock();
        state.socket = socket.map(Arc::new);
        state.session += 1;
        state.writing = false;
        state.unfinished.clear();
        let replay = state.queued.split();
        state.frames += build_prefix(&mut state.queued);
        state.bytes += state.queued.len() as u64;
        state.queued.extend_from_slice(&replay);
        state.link = LinkState::Connected;
        state.max_frame = max_frame;
        let waiting = state.waiting > 0;
        drop(state);
        self.wake_engine.notify_one();
        self.wake_publishers(waiting);
        replay.len()
    }

    /// After losing the gateway: keeps only publishes (up to the reconnect bound) for replay, or
    /// nothing when the connection will not come back. A frame a writer had begun is dropped
    /// with its socket.
    pub(crate) fn lose(&self, next: LinkState) {
        let mut state = self.lock();
        state.link = next;
        state.socket = None;
        state.session += 1;
        state.unfinished = BytesMut::new();
        if next == LinkState::Reconnecting {
            let kept = keep_publishes(&state.queued, self.reconnect_limit);
            state.queued = kept;
        } else {
            state.queued.clear();
        }
        let waiting = state.waiting > 0;
        drop(state);
        self.wake_publishers(waiting);
    }

    /// Stops admitting frames. What is queued (an unfinished frame included) stays, for the
    /// engine to write before DISCONNECT (when connected) or to discard. Returns the previous
    /// state.
    pub(crate) fn close(&self) -> LinkState {
        let mut state = self.lock();
        let previous = state.link;
        state.link = LinkState::Closed;
        state.socket = None;
        if previous != LinkState::Connected {
            state.queued.clear();
            state.unfinished.clear();
        }
        let waiting = state.waiting > 0;
        drop(state);
        self.wake_publishers(waiting);
        self.wake_engine.notify_one();
        previous
    }
}

/// The SEND_MESSAGE frames of `queued`, in order, as long as they fit in `limit` bytes.
/// Precondition (invariant 1): `queued` is a sequence of whole frames that we encoded.
fn keep_publishes(queued: &[u8], limit: usize) -> BytesMut {
    let mut kept = BytesMut::new();
    let mut rest = queued;
    while let Ok(Some(length)) = frame_length(rest, mm_wire::frame::MAX_FRAME_LIMIT) {
        let frame = &rest[..length];
        let is_publish = HeaderView::parse(frame)
            .is_ok_and(|header| header.action() == Some(Action::SendMessage));
        if is_publish {
            if kept.len() + length > limit {
                break;
            }
            kept.extend_from_slice(frame);
        }
        rest = &rest[length..];
    }
    debug_assert!(
        rest.is_empty() || kept.len() + rest.len() > limit,
        "the queued output does not end on a frame boundary"
    );
    kept
}

#[cfg(test)]
mod tests {
    use mm_wire::{Frame, Header, Message, encode_control_frame, encode_frame};

    use super::*;

    fn publish(out: &mut BytesMut, subject: &str) -> Result<usize, EncodeError> {
        encode_frame(out, &Header::send_message(subject), &Message::new())
    }

    #[test]
    fn losing_the_link_keeps_publishes_only() {
        let outbound = Outbound::new(1 << 20, 1 << 20);
        outbound.open(mm_wire::DEFAULT_MAX_FRAME, None, |_| 0);
        outbound
            .push_blocking(Admission::Publish, |out| publish(out, "A"))
            .unwrap();
        outbound
            .push_blocking(Admission::Interest, |out| {
                encode_control_frame(
                    out,
                    &Header::new(Action::Subscribe)
                        .with_subscription_id(2)
                        .with_subject("B"),
                )
            })
            .unwrap();
        outbound
            .push_blocking(Admission::Publish, |out| publish(out, "C"))
            .unwrap();
        outbound.lose(LinkState::Reconnecting);
        let mut spare = BytesMut::new();
        // Nothing is taken while reconnecting... but the buffer holds the two publishes.
        let state = outbound.lock();
        let mut decoder = mm_wire::FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME);
        decoder.feed(&state.queued);
        drop(state);
        let mut subjects = Vec::new();
        while let Some(frame) = decoder.next_frame().unwrap() {
            subjects.push(String::from_utf8(frame.subject().to_vec()).unwrap());
        }
        assert_eq!(subjects, ["A", "C"]);
        // Interest changes are skipped, control frames refused, publishes buffered.
        assert_eq!(
            outbound
                .push_blocking(Admission::Interest, |out| publish(out, "X"))
                .unwrap(),
            Pushed::Skipped
        );
        assert!(matches!(
            outbound.push_control(|out| publish(out, "X")),
            Err(PushError::NotConnected)
        ));
        let replayed = outbound.open(mm_wire::DEFAULT_MAX_FRAME, None, |_| 0);
        assert!(replayed > 0);
        assert!(outbound.take(&mut spare));
        assert_eq!(spare.len(), replayed);
    }

    /// Subjects of the frames queued for replay.
    fn queued_subjects(outbound: &Outbound) -> Vec<String> {
        let state = outbound.lock();
        let mut decoder = mm_wire::FrameDecoder::new(mm_wire::frame::MAX_FRAME_LIMIT);
        decoder.feed(&state.queued);
        drop(state);
        let mut subjects = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("whole frames") {
            subjects.push(String::from_utf8_lossy(frame.subject()).into_owned());
        }
        subjects
    }

    /// A direct write the kernel takes only in part leaves the rest of its frame to be written
    /// first; losing the link then must still keep the publishes queued behind it.
    #[test]
    fn a_partly_written_frame_does_not_hide_the_publishes_behind_it() {
        const BIG: usize = 32 * 1024 * 1024;
        let (outbound, _peer) = stalled_session();
        let big = Message::new().add_blob("p", vec![0u8; BIG]);
        outbound
            .push_blocking(Admission::Publish, |out| {
                encode_frame(out, &Header::send_message("BIG"), &big)
            })
            .unwrap();
        let written = outbound.direct_bytes_written.load(Ordering::Relaxed) as usize;
        assert!(
            written > 0 && written < BIG,
            "the direct write took {written} bytes: not a partial write"
        );
        outbound
            .push_blocking(Admission::Publish, |out| publish(out, "B"))
            .unwrap();
        outbound.lose(LinkState::Reconnecting);
        assert_eq!(queued_subjects(&outbound), ["B"]);
        // After the next ACK, B is replayed whole and nothing of the lost frame goes out.
        let replayed = outbound.open(mm_wire::frame::MAX_FRAME_LIMIT, None, |_| 0);
        let mut spare = BytesMut::new();
        assert!(outbound.take(&mut spare));
        assert_eq!(spare.len(), replayed);
        assert_eq!(Frame::parse(spare.freeze()).unwrap().subject(), b"B");
    }

    /// A connected output whose socket has been quiet for a while, and the socket's peer, which
    /// never reads: the kernel takes a few MiB at most.
    fn stalled_session() -> (Outbound, StdTcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = StdTcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        socket.set_nonblocking(true).unwrap();
        let outbound = Outbound::new(1 << 30, 1 << 20);
        outbound.open(mm_wire::frame::MAX_FRAME_LIMIT, Some(socket), |_| 0);
        outbound.lock().last_write = Instant::now() - Duration::from_secs(1);
        (outbound, peer)
    }

    #[test]
    fn the_rest_of_a_partly_written_frame_goes_out_before_anything_queued_after_it() {
        const BIG: usize = 32 * 1024 * 1024;
        let (outbound, _peer) = stalled_session();
        let big = Message::new().add_blob("p", vec![7u8; BIG]);
        outbound
            .push_blocking(Admission::Publish, |out| {
                encode_frame(out, &Header::send_message("BIG"), &big)
            })
            .unwrap();
        let written = outbound.direct_bytes_written.load(Ordering::Relaxed) as usize;
        assert!(written > 0 && written < BIG, "{written}");
        outbound
            .push_blocking(Admission::Publish, |out| publish(out, "B"))
            .unwrap();
        // No second direct write may start while the head is unfinished.
        assert_eq!(outbound.direct_write_calls.load(Ordering::Relaxed), 1);
        let encoded_big = Frame::new(&Header::send_message("BIG"), &big).unwrap();
        let mut spare = BytesMut::new();
        assert!(outbound.take(&mut spare));
        assert_eq!(&spare[..], &encoded_big.as_bytes()[written..]);
        assert!(!outbound.take(&mut BytesMut::new()), "one writer at a time");
        outbound.write_finished();
        let mut next = BytesMut::new();
        assert!(outbound.take(&mut next));
        assert_eq!(Frame::parse(next.freeze()).unwrap().subject(), b"B");
    }

    #[test]
    fn a_direct_writer_that_returns_after_its_session_ended_changes_nothing() {
        let (outbound, _peer) = stalled_session();
        let mut state = outbound.lock();
        publish(&mut state.queued, "OLD").unwrap();
        let direct = Outbound::claim_direct(&mut state).expect("a quiet, idle socket");
        drop(state);
        // The session is lost and a new one opened while the direct write is under way.
        outbound.lose(LinkState::Reconnecting);
        outbound.open(mm_wire::DEFAULT_MAX_FRAME, None, |_| 0);
        let mut spare = BytesMut::new();
        publish(&mut outbound.lock().queued, "NEW").unwrap();
        assert!(
            outbound.take(&mut spare),
            "the engine writes the new session"
        );
        outbound.write_direct(direct);
        let state = outbound.lock();
        assert!(state.writing, "the engine still holds the new socket");
        assert!(state.unfinished.is_empty());
        drop(state);
        assert_eq!(Frame::parse(spare.freeze()).unwrap().subject(), b"NEW");
    }

    #[test]
    fn reconnect_buffer_is_bounded() {
        let outbound = Outbound::new(1 << 20, 100);
        let mut accepted = 0;
        loop {
            match outbound.push_blocking(Admission::Publish, |out| publish(out, "SUBJECT")) {
                Ok(_) => accepted += 1,
                Err(PushError::ReconnectBufferFull { limit }) => {
                    assert_eq!(limit, 100);
                    break;
                }
                Err(other) => panic!("{other:?}"),
            }
        }
        // Each frame is 28 bytes: length 4, id 4, subject 4 + 7, reply 4, action 1, body 4.
        assert_eq!(accepted, 100 / 28);
    }
}
