//! `mm_connection`: one connection to a gateway — publish, subscribe, request/reply, flush,
//! queue-mode dispatch. Thread-safe: any thread may use a connection at once, including from
//! inside a subscription callback.

use std::ffi::{c_char, c_void};
use std::time::Duration;

use messaging_mesh::{Connection, ConnectionStatus};

use crate::args;
use crate::handle::{self, Handle};
use crate::message::MmMessage;
use crate::params::MmConnectionParams;
use crate::received::MmReceived;
use crate::status::{Failure, MmStatus, ffi, ffi_void};
use crate::subscription::{MmMessageCallback, MmSubscription, bridge};
use crate::user_data::{MmFreeCallback, UserData};

/// A connection (opaque; `mm_connection` in C).
#[repr(C)]
pub struct MmConnection {
    tag: u64,
    connection: Connection,
}

// SAFETY: `#[repr(C)]` with the u64 tag first.
unsafe impl Handle for MmConnection {
    const TAG: u64 = 0x4d4d_5f43_4f4e_4e43;
    const NAME: &'static str = "mm_connection";
    fn tag_mut(&mut self) -> &mut u64 {
        &mut self.tag
    }
}

impl Drop for MmConnection {
    fn drop(&mut self) {
        self.connection.close();
    }
}

/// Where a connection stands.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmConnectionStatus {
    /// Connected to a gateway.
    Connected = 0,
    /// The gateway was lost; redialling. Publishes are buffered; requests and flushes fail.
    Reconnecting = 1,
    /// Closed for good.
    Closed = 2,
}

/// A connection's counters since it was opened.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct MmConnectionStats {
    /// Frames queued for the gateway.
    pub frames_out: u64,
    /// Bytes of those frames.
    pub bytes_out: u64,
    /// `write` system calls on the socket.
    pub write_calls: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Messages dropped at a subscription's pending limit.
    pub messages_dropped: u64,
    /// Successful reconnections.
    pub reconnects: u64,
    /// Requests and flushes waiting for an answer.
    pub requests_in_flight: u64,
}

/// The connection behind a handle.
///
/// # Safety
///
/// As for [`handle::borrow`].
unsafe fn connection<'a>(ptr: *const MmConnection) -> Result<&'a Connection, Failure> {
    // SAFETY: forwarded contract.
    Ok(unsafe { &handle::borrow(ptr)?.connection })
}

/// A message argument.
///
/// # Safety
///
/// As for [`handle::borrow`].
unsafe fn message_arg<'a>(ptr: *const MmMessage) -> Result<&'a messaging_mesh::Message, Failure> {
    // SAFETY: forwarded contract.
    Ok(unsafe { &handle::borrow(ptr)?.message })
}

/// A timeout in milliseconds as a duration; negative values mean "wait (practically) forever".
fn wait_time(timeout_ms: i64) -> Duration {
    // A year: long enough to mean forever, short enough not to overflow `Instant` arithmetic.
    const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);
    u64::try_from(timeout_ms)
        .map(Duration::from_millis)
        .unwrap_or(FOREVER)
        .min(FOREVER)
}

/// Connects to the gateway and completes the handshake (waiting up to the connect timeout).
/// `*out` gets the connection, owned by the caller: `mm_connection_free` closes and frees it.
/// `MM_STATUS_CONNECT` when the gateway cannot be reached or refuses.
///
/// # Safety
///
/// `params` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connect(
    params: *const MmConnectionParams,
    out: *mut *mut MmConnection,
) -> MmStatus {
    ffi(|| {
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: forwarded contract.
        let params = unsafe { handle::borrow(params)? }.params.clone();
        let connection = Connection::connect(params)?;
        let handle = handle::into_raw(MmConnection {
            tag: MmConnection::TAG,
            connection,
        });
        // SAFETY: forwarded contract.
        unsafe { args::write(out, handle, "out") }
    })
}

/// Closes the connection: writes queued output, says goodbye to the gateway, fails requests in
/// flight, ends subscriptions (their handles stay valid until freed). Closing twice is harmless.
/// The handle stays valid until `mm_connection_free`; calls on it fail with
/// `MM_STATUS_CLOSED`.
///
/// # Safety
///
/// `connection` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_close(connection: *const MmConnection) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        unsafe { self::connection(connection)? }.close();
        Ok(())
    })
}

/// Closes (if still open) and frees the connection (NULL is ignored).
///
/// # Safety
///
/// `connection` is NULL or a live handle, not used afterwards (by any thread).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_free(connection: *mut MmConnection) {
    // SAFETY: forwarded contract.
    ffi_void(|| unsafe { handle::free(connection) });
}

/// Publishes `message` on `subject`, with a reply subject unless `reply_subject_len` is 0.
/// Returns once the frame is queued (waits only when the output is at its high-water mark);
/// while reconnecting, publishes are buffered up to the reconnect bound.
///
/// # Safety
///
/// `connection` and `message` are live handles; strings as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_send(
    connection: *const MmConnection,
    subject: *const c_char,
    subject_len: usize,
    reply_subject: *const c_char,
    reply_subject_len: usize,
    message: *const MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (connection, subject, message) = unsafe {
            (
                self::connection(connection)?,
                args::text(subject, subject_len, "the subject")?,
                message_arg(message)?,
            )
        };
        if reply_subject_len == 0 {
            connection.send(subject, message)?;
        } else {
            // SAFETY: forwarded contract.
            let reply_subject =
                unsafe { args::text(reply_subject, reply_subject_len, "the reply subject")? };
            connection.send_with_reply(subject, reply_subject, message)?;
        }
        Ok(())
    })
}

/// Answers `request` by publishing `message` on its reply subject
/// (`MM_STATUS_NO_REPLY_SUBJECT` if it has none).
///
/// # Safety
///
/// All three are live handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_send_reply(
    connection: *const MmConnection,
    request: *const MmReceived,
    message: *const MmMessage,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (connection, request, message) = unsafe {
            (
                self::connection(connection)?,
                handle::borrow(request)?,
                message_arg(message)?,
            )
        };
        let reply_subject = std::str::from_utf8(request.reply_subject())
            .map_err(|_| Failure::invalid("the request's reply subject is not UTF-8"))?;
        if reply_subject.is_empty() {
            let subject = String::from_utf8_lossy(request.subject());
            return Err(Failure::new(
                MmStatus::NoReplySubject,
                format!("the message on `{subject}` has no reply subject to answer"),
            ));
        }
        connection.send(reply_subject, message)?;
        Ok(())
    })
}

/// Subscribes to `pattern` (wildcards allowed). `callback` runs for every message, on the
/// library's dispatch thread or in `mm_connection_process_message_queue`; it may call any
/// function of this API (publish, subscribe, even `mm_connection_request`). `user_data` is
/// passed to it and released with `free_user_data` (may be NULL) after the last call. `*out`
/// gets the subscription, owned by the caller: `mm_subscription_free` ends it. Renewed
/// automatically after a reconnect; `mm_connection_flush` tells when the gateway has it.
///
/// # Safety
///
/// `connection` is a live handle; `callback` and `user_data` may be used on library threads;
/// `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_subscribe(
    connection: *const MmConnection,
    pattern: *const c_char,
    pattern_len: usize,
    callback: MmMessageCallback,
    user_data: *mut c_void,
    free_user_data: MmFreeCallback,
    out: *mut *mut MmSubscription,
) -> MmStatus {
    // Owned from here on, so that every failure below releases it.
    let user = UserData::new(user_data, free_user_data);
    ffi(move || {
        let callback = callback.ok_or_else(|| Failure::null("callback"))?;
        if out.is_null() {
            return Err(Failure::null("out"));
        }
        // SAFETY: forwarded contract.
        let (connection, pattern) = unsafe {
            (
                self::connection(connection)?,
                args::text(pattern, pattern_len, "the pattern")?,
            )
        };
        let subscription = connection.subscribe_owned(pattern, bridge(callback, user))?;
        let handle = handle::into_raw(MmSubscription::new(subscription));
        // SAFETY: checked for NULL above; the caller guarantees it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Sends a request and waits up to `timeout_ms` for the first reply; `*reply` gets it, owned by
/// the caller (free with `mm_received_free`). `MM_STATUS_TIMEOUT` when none comes in time,
/// `MM_STATUS_NO_RESPONDERS` as soon as the gateway says nobody is subscribed,
/// `MM_STATUS_DISCONNECTED` when the connection is down. Works from any thread, including
/// inside a subscription callback and in queue mode.
///
/// # Safety
///
/// `connection` and `message` are live handles; the subject as described in the header;
/// `reply` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_request(
    connection: *const MmConnection,
    subject: *const c_char,
    subject_len: usize,
    message: *const MmMessage,
    timeout_ms: u64,
    reply: *mut *mut MmReceived,
) -> MmStatus {
    ffi(|| {
        if reply.is_null() {
            return Err(Failure::null("reply"));
        }
        // SAFETY: forwarded contract.
        let (connection, subject, message) = unsafe {
            (
                self::connection(connection)?,
                args::text(subject, subject_len, "the subject")?,
                message_arg(message)?,
            )
        };
        let received =
            connection.send_request(subject, message, Duration::from_millis(timeout_ms))?;
        // SAFETY: checked for NULL above; the caller guarantees it is writable.
        unsafe { reply.write(handle::into_raw(MmReceived::new(received))) };
        Ok(())
    })
}

/// Waits until the gateway has processed everything this connection sent before (its
/// subscriptions included), or `timeout_ms` passes (`MM_STATUS_TIMEOUT`). With `mesh`, also
/// waits until every mesh link of the gateway has confirmed this connection's interest
/// changes: after it, a publish anywhere in the mesh reaches its subscriptions.
///
/// # Safety
///
/// `connection` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_flush(
    connection: *const MmConnection,
    timeout_ms: u64,
    mesh: bool,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let connection = unsafe { self::connection(connection)? };
        let timeout = Duration::from_millis(timeout_ms);
        if mesh {
            connection.flush_mesh(timeout)?;
        } else {
            connection.flush(timeout)?;
        }
        Ok(())
    })
}

/// Queue mode: waits up to `timeout_ms` (negative: no limit) for a message, then runs the
/// callbacks of the waiting messages on this thread, at most `max_messages` (0: no limit).
/// `*processed` and `*remaining` (each may be NULL) get the callbacks run and the messages still
/// queued. Returns early after `mm_connection_wake_up`. `MM_STATUS_NOT_QUEUE_MODE` in callback
/// mode.
///
/// # Safety
///
/// `connection` is a live handle; the out-parameters are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_process_message_queue(
    connection: *const MmConnection,
    timeout_ms: i64,
    max_messages: usize,
    processed: *mut usize,
    remaining: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let connection = unsafe { self::connection(connection)? };
        let (done, left) = connection.process_message_queue(wait_time(timeout_ms), max_messages)?;
        // SAFETY: forwarded contract (each is NULL or writable).
        unsafe {
            if !processed.is_null() {
                processed.write(done);
            }
            if !remaining.is_null() {
                remaining.write(left);
            }
        }
        Ok(())
    })
}

/// Makes a waiting `mm_connection_process_message_queue` (or the next one) return at once.
///
/// # Safety
///
/// `connection` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_wake_up(connection: *const MmConnection) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        unsafe { self::connection(connection)? }.wake_up();
        Ok(())
    })
}

/// Messages waiting in the dispatch queue.
///
/// # Safety
///
/// `connection` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_queued_messages(
    connection: *const MmConnection,
    out: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let queued = unsafe { self::connection(connection)? }.queued_messages();
        // SAFETY: forwarded contract.
        unsafe { args::write(out, queued, "out") }
    })
}

/// A new unique inbox subject, for the application's own subscriptions, copied into
/// `(buf, cap)` with a NUL when there is room; `*len` gets its length.
/// `MM_STATUS_BUFFER_TOO_SMALL` when it does not fit (64 bytes always do).
///
/// # Safety
///
/// `connection` is a live handle; `buf` is writable for `cap` bytes; `len` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_create_inbox(
    connection: *const MmConnection,
    buf: *mut c_char,
    cap: usize,
    len: *mut usize,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let inbox = unsafe { self::connection(connection)? }.create_inbox();
        // SAFETY: forwarded contract.
        unsafe { args::copy_out(buf.cast::<u8>(), cap, len, inbox.as_bytes()) }
    })
}

/// Where the connection stands.
///
/// # Safety
///
/// `connection` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_get_status(
    connection: *const MmConnection,
    out: *mut MmConnectionStatus,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let status = match unsafe { self::connection(connection)? }.status() {
            ConnectionStatus::Connected => MmConnectionStatus::Connected,
            ConnectionStatus::Reconnecting => MmConnectionStatus::Reconnecting,
            _ => MmConnectionStatus::Closed,
        };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, status, "out") }
    })
}

/// The connection's counters.
///
/// # Safety
///
/// `connection` is a live handle; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_get_stats(
    connection: *const MmConnection,
    out: *mut MmConnectionStats,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let stats = unsafe { self::connection(connection)? }.stats();
        let view = MmConnectionStats {
            frames_out: stats.frames_out,
            bytes_out: stats.bytes_out,
            write_calls: stats.write_calls,
            frames_in: stats.frames_in,
            bytes_in: stats.bytes_in,
            messages_dropped: stats.messages_dropped,
            reconnects: stats.reconnects,
            requests_in_flight: stats.requests_in_flight as u64,
        };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, view, "out") }
    })
}
