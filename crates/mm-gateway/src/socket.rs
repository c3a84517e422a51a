//! The task that drives one connection's socket: wait for readiness, hand each event to the
//! service loop, and after the connection is closed, linger to deliver its last bytes.
//!
//! A connection has two halves:
//!
//! * [`ConnectionHandle`] (behind an `Rc`): the socket and the few flags that the connection's own
//!   task and the service loop both touch. It outlives the connection's entry in the service, so a
//!   closing connection can still send its last bytes.
//! * the connection's state (role, subscriptions, queued output, counters), owned by the service
//!   loop (the `connection` module).
//!
//! The task knows nothing of services: it calls the [`SocketEvents`] it was given, with the key it
//! was given. The service loop does all the work synchronously inside one `RefCell` borrow per
//! event — never across an `.await` — so there is no lock, and no two batches interleave.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tracing::debug;

/// How long a connection reading from publishers pauses when a subscriber it feeds is above 75 %
/// of its bound (SPEC §6.3: "at most a few milliseconds at a time").
pub(crate) const STALL: Duration = Duration::from_millis(2);

/// How long a closing connection may take to send its last bytes and see the peer's EOF.
const LINGER: Duration = Duration::from_millis(1000);

/// How long a slow consumer that was cut off may take: its ERROR waits behind everything the
/// kernel already holds for it, which it drains only as fast as it reads.
const SLOW_CONSUMER_LINGER: Duration = Duration::from_secs(5);

/// How long a closing connection lingers when the whole gateway shuts down.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(200);

/// How long a closed connection lingers to deliver its last bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Linger {
    /// An ordinary close.
    Normal,
    /// A slow consumer cut off: longer.
    SlowConsumer,
    /// The gateway is shutting down: shorter.
    Shutdown,
}

impl Linger {
    fn limit(self) -> Duration {
        match self {
            Linger::Normal => LINGER,
            Linger::SlowConsumer => SLOW_CONSUMER_LINGER,
            Linger::Shutdown => SHUTDOWN_LINGER,
        }
    }
}

/// The part of a connection shared by its task and the service loop.
pub(crate) struct ConnectionHandle {
    /// The socket. Dropped (closed) when both the task and the service's entry are gone.
    pub(crate) stream: TcpStream,
    /// The TLS session over the socket, if the connection uses TLS (`crate::transport`).
    /// Borrowed only for the length of one read or one write.
    tls: Option<RefCell<crate::transport::TlsSession>>,
    /// Wakes the task: output was queued while the socket was full, the connection was closed,
    /// or a subscriber this connection was waiting for has drained.
    pub(crate) wake: Notify,
    /// Set once, by the service loop, when it closes the connection; the task then lingers and
    /// ends.
    pub(crate) closed: Cell<bool>,
    /// Bytes to send before the socket closes (an ERROR frame, or what was queued when the client
    /// said DISCONNECT). Written best effort while lingering.
    pub(crate) final_bytes: RefCell<Vec<u8>>,
    /// How long to linger once closed.
    pub(crate) linger: Cell<Linger>,
}

impl ConnectionHandle {
    /// A handle for a connected socket, with its TLS session if it has one.
    pub(crate) fn new(stream: TcpStream, tls: Option<rustls::Connection>) -> Rc<ConnectionHandle> {
        Rc::new(ConnectionHandle {
            stream,
            tls: tls.map(|session| RefCell::new(crate::transport::TlsSession::new(session))),
            wake: Notify::new(),
            closed: Cell::new(false),
            final_bytes: RefCell::new(Vec::new()),
            linger: Cell::new(Linger::Normal),
        })
    }

    /// Reads what the socket has (plaintext: through the TLS session, if any).
    #[inline]
    pub(crate) fn read(&self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match &self.tls {
            None => self.stream.try_read(buffer),
            Some(tls) => crate::transport::read(&mut tls.borrow_mut(), &self.stream, buffer),
        }
    }

    /// Reads what the socket has into `buffer`, at most `max` bytes (at least 4 KiB: the buffer
    /// grows if it has less room). The cap bounds what one read costs: touching fresh pages of a
    /// large buffer is most of the cost of a read, and without it one read could take a whole
    /// socket buffer (megabytes) at once.
    #[inline]
    pub(crate) fn read_buf(
        &self,
        buffer: &mut bytes::BytesMut,
        max: usize,
    ) -> std::io::Result<usize> {
        let room = max.max(4096);
        match &self.tls {
            None => self
                .stream
                .try_read_buf(&mut bytes::BufMut::limit(&mut *buffer, room)),
            Some(tls) => {
                let start = buffer.len();
                buffer.resize(start + room, 0);
                let result = crate::transport::read(
                    &mut tls.borrow_mut(),
                    &self.stream,
                    &mut buffer[start..],
                );
                buffer.truncate(start + *result.as_ref().unwrap_or(&0));
                result
            }
        }
    }

    /// Writes plaintext `slices` (through the TLS session, if any); returns the bytes taken.
    #[inline]
    pub(crate) fn write_vectored(&self, slices: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
        match &self.tls {
            None => self.stream.try_write_vectored(slices),
            Some(tls) => {
                crate::transport::write_vectored(&mut tls.borrow_mut(), &self.stream, slices)
            }
        }
    }

    /// Whether the TLS session holds ciphertext the socket has not taken yet.
    #[inline]
    pub(crate) fn tls_wants_write(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| tls.borrow().wants_write())
    }

    /// Sends what the TLS session holds, as far as the socket takes it.
    pub(crate) fn flush_tls(&self) -> std::io::Result<()> {
        match &self.tls {
            None => Ok(()),
            Some(tls) => match crate::transport::flush(&mut tls.borrow_mut(), &self.stream) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                other => other,
            },
        }
    }

    /// Marks the handle closed with `final_bytes` still to send, and wakes its task.
    pub(crate) fn close_with(&self, final_bytes: &[u8], linger: Linger) {
        if let Some(tls) = &self.tls {
            let sealed = crate::transport::seal_final(&mut tls.borrow_mut(), final_bytes);
            self.final_bytes.borrow_mut().extend_from_slice(&sealed);
        } else if !final_bytes.is_empty() {
            self.final_bytes.borrow_mut().extend_from_slice(final_bytes);
        }
        self.linger.set(linger);
        self.closed.set(true);
        self.wake.notify_one();
    }
}

/// What a read left the connection's task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Keep reading.
    Continue,
    /// A subscriber fed by this batch is above 75 % of its bound: pause reading for [`STALL`]
    /// (or until that subscriber drains).
    Stall,
    /// The batch used up its time with frames still waiting: let other tasks run, then call
    /// again without waiting for the socket.
    Yield,
}

/// What the task calls when its socket is ready. Implemented by the service loop; every call
/// names the connection by the key the task was started with, which may be stale by then (the
/// implementation ignores stale keys).
pub(crate) trait SocketEvents {
    /// How the implementation names a connection.
    type Key: Copy;

    /// Whether output is waiting for the socket to become writable.
    fn wants_write(&self, key: Self::Key) -> bool;

    /// The socket is writable.
    fn on_writable(&mut self, key: Self::Key);

    /// The socket is readable (or closed for reading).
    fn on_readable(&mut self, key: Self::Key) -> ReadOutcome;

    /// Waiting for readiness failed: the connection is unusable.
    fn on_socket_error(&mut self, key: Self::Key);
}

/// Waits until the socket is ready for `interest`, or forever if there is no interest.
async fn ready(
    stream: &TcpStream,
    interest: Option<Interest>,
) -> std::io::Result<tokio::io::Ready> {
    match interest {
        Some(interest) => stream.ready(interest).await,
        None => std::future::pending().await,
    }
}

/// How long a connection task may go on reading a socket that is readable again at once before
/// it gives way to the service's other tasks, its command loop and the I/O driver. Giving way
/// after every read cost up to a fifth of the 1→1 throughput; this bounds what one connection
/// can hold the others up by to about this long per turn.
const GIVE_WAY_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// The task of one connection: waits for socket readiness and hands each event to `events`.
/// Ends when the connection is closed, after lingering to deliver its last bytes.
pub(crate) async fn drive<E: SocketEvents>(
    events: Rc<RefCell<E>>,
    handle: Rc<ConnectionHandle>,
    key: E::Key,
) {
    let mut stall_until: Option<tokio::time::Instant> = None;
    // Frames may already be waiting (behind the handshake, or left by a paused batch).
    let mut frames_waiting = true;
    // Set when this task has read for `GIVE_WAY_AFTER` without giving way: give way before
    // looking at the socket again (below).
    let mut give_way = false;
    let mut reading_since = std::time::Instant::now();
    while !handle.closed.get() {
        if give_way {
            // A socket that is readable again at once would otherwise be read in a loop within
            // one poll of this task until tokio's cooperative budget ran out (128 reads), then
            // again at once: the service's `LocalSet` polls its command loop and the runtime its
            // I/O driver only between rounds of task polls, so a client that never paused
            // publishing kept out new connections, requests' answers and monitoring snapshots
            // for as long as it went on. `yield_now` wakes this task only after the I/O driver
            // has been polled, so the other connections and the command loop go first.
            give_way = false;
            tokio::task::yield_now().await;
            reading_since = std::time::Instant::now();
            continue;
        }
        if frames_waiting && stall_until.is_none() {
            tokio::task::yield_now().await;
            reading_since = std::time::Instant::now();
            if handle.closed.get() {
                break;
            }
            let outcome = events.borrow_mut().on_readable(key);
            // After a stall, look again: a paused batch may have left frames behind.
            frames_waiting = outcome != ReadOutcome::Continue;
            if outcome == ReadOutcome::Stall {
                stall_until = Some(tokio::time::Instant::now() + STALL);
            }
            continue;
        }
        let wants_write = events.borrow().wants_write(key);
        let interest = match (stall_until.is_none(), wants_write) {
            (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
            (true, false) => Some(Interest::READABLE),
            (false, true) => Some(Interest::WRITABLE),
            (false, false) => None,
        };
        tokio::select! {
            biased;
            _ = handle.wake.notified() => {
                // Something changed: output queued, closed, or the subscriber we waited for
                // drained. Re-evaluate; a stall ends early.
                stall_until = None;
            }
            result = ready(&handle.stream, interest) => {
                let mut events = events.borrow_mut();
                match result {
                    Ok(readiness) => {
                        if readiness.is_writable() {
                            events.on_writable(key);
                        }
                        if readiness.is_readable() || readiness.is_read_closed() {
                            match events.on_readable(key) {
                                ReadOutcome::Continue => {
                                    give_way = reading_since.elapsed() >= GIVE_WAY_AFTER;
                                }
                                ReadOutcome::Stall => {
                                    stall_until = Some(tokio::time::Instant::now() + STALL);
                                    frames_waiting = true;
                                }
                                ReadOutcome::Yield => frames_waiting = true,
                            }
                        }
                    }
                    Err(error) => {
                        debug!(%error, "readiness failed");
                        events.on_socket_error(key);
                    }
                }
            }
            _ = async {
                if let Some(deadline) = stall_until {
                    tokio::time::sleep_until(deadline).await;
                }
            }, if stall_until.is_some() => {
                stall_until = None;
            }
        }
    }
    linger(&handle).await;
}

/// Sends a closed connection's last bytes, half-closes it and waits briefly for the peer's EOF,
/// so that an ERROR sent just before closing is not lost to a TCP reset.
pub(crate) async fn linger(handle: &ConnectionHandle) {
    let limit = handle.linger.get().limit();
    let final_bytes = std::mem::take(&mut *handle.final_bytes.borrow_mut());
    let _ = tokio::time::timeout(limit, send_and_close(&handle.stream, &final_bytes)).await;
}

/// Writes `bytes`, half-closes the socket and reads until the peer closes its side (or an error).
pub(crate) async fn send_and_close(stream: &TcpStream, bytes: &[u8]) {
    let mut written = 0;
    while written < bytes.len() {
        if stream.writable().await.is_err() {
            return;
        }
        match stream.try_write(&bytes[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
    let _ = socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write);
    let mut discard = [0u8; 4096];
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        match stream.try_read(&mut discard) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
