//! `mm_connection_params`: everything a connection is opened with — gateway address, service,
//! dispatch mode, timeouts, the reconnect policy, pending limits, the notification callback and
//! the logger.

use std::ffi::{c_char, c_void};
use std::sync::Arc;
use std::time::Duration;

use messaging_mesh::{
    ConnectionParams, DispatchMode, LogLevel, Notification, PendingLimits, ReconnectPolicy,
};

use crate::args;
use crate::handle::{self, Handle};
use crate::status::{Failure, MmStatus, ffi, ffi_void};
use crate::user_data::{MmFreeCallback, UserData};

/// Connection parameters (opaque; `mm_connection_params` in C).
#[repr(C)]
pub struct MmConnectionParams {
    tag: u64,
    /// The parameters.
    pub params: ConnectionParams,
}

// SAFETY: `#[repr(C)]` with the u64 tag first.
unsafe impl Handle for MmConnectionParams {
    const TAG: u64 = 0x4d4d_5f50_4152_414d;
    const NAME: &'static str = "mm_connection_params";
    fn tag_mut(&mut self) -> &mut u64 {
        &mut self.tag
    }
}

/// Where subscription callbacks run.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmDispatchMode {
    /// On one library thread per connection, in arrival order (the default).
    Callbacks = 0,
    /// In `mm_connection_process_message_queue`, on the calling thread.
    Queue = 1,
}

/// What happened to a connection (`mm_notification.kind`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmNotificationKind {
    /// The first connection is open.
    Connected = 0,
    /// The gateway was lost; requests in flight failed. Reconnecting follows if enabled.
    Disconnected = 1,
    /// A redial is scheduled (`attempt`, `delay_ms`).
    Reconnecting = 2,
    /// A redial failed (`attempt`).
    ReconnectFailed = 3,
    /// The connection is back; subscriptions renewed (`count`), buffered publishes replayed.
    Reconnected = 4,
    /// The connection is closed for good.
    Closed = 5,
    /// The gateway sent an ERROR (`code`, `subscription_id`).
    GatewayError = 6,
    /// A subscription passed its pending limit (`subscription_id`, `count` dropped so far).
    MessagesDropped = 7,
    /// A delivered message did not decode and was dropped (`subscription_id`).
    UndecodableMessage = 8,
    /// A subscription callback failed (`subscription_id`).
    CallbackFailed = 9,
    /// Something newer than this header; `text` says what.
    Other = 10,
}

/// A notification, valid for the duration of the callback. `text` describes it for people
/// (not NUL-terminated); the other members are set for the kinds that name them, else 0/empty.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmNotification {
    /// What happened.
    pub kind: MmNotificationKind,
    /// A description for people.
    pub text: *const c_char,
    /// Its length.
    pub text_len: usize,
    /// Redial number, from 1 (RECONNECTING, RECONNECT_FAILED).
    pub attempt: u32,
    /// The subscription concerned (GATEWAY_ERROR, MESSAGES_DROPPED, UNDECODABLE_MESSAGE,
    /// CALLBACK_FAILED).
    pub subscription_id: u32,
    /// Messages dropped so far (MESSAGES_DROPPED) or subscriptions renewed (RECONNECTED).
    pub count: u64,
    /// Delay before the redial in milliseconds (RECONNECTING).
    pub delay_ms: u64,
    /// The gateway's error code, e.g. "INVALID_SUBJECT" (GATEWAY_ERROR).
    pub code: *const c_char,
    /// Its length.
    pub code_len: usize,
}

/// Severity of a log line.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmLogLevel {
    /// Details for debugging.
    Debug = 0,
    /// Connection life cycle.
    Info = 1,
    /// Something odd the connection recovered from.
    Warn = 2,
    /// Something failed.
    Error = 3,
}

/// Told about every notification of a connection, on a library thread of its own (never the
/// socket reader). `notification` is valid for the duration of the call.
pub type MmNotificationCallback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, notification: *const MmNotification)>;

/// Given the library's log lines for a connection (not NUL-terminated), on the same thread as
/// the notification callback.
pub type MmLogCallback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        level: MmLogLevel,
        line: *const c_char,
        len: usize,
    ),
>;

/// The reconnect policy (`mm_connection_params_set_reconnect`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct MmReconnectPolicy {
    /// Whether to reconnect at all; when false, losing the gateway closes the connection.
    pub enabled: bool,
    /// Delay before the first redial, in milliseconds (default 100).
    pub initial_delay_ms: u64,
    /// Longest delay between redials, in milliseconds (default 2000).
    pub max_delay_ms: u64,
    /// Give up (and close) after this many failed redials; 0 never gives up (the default).
    pub max_attempts: u32,
    /// Bound on publishes buffered while disconnected, in bytes (default 8 MiB).
    pub buffer_bytes: usize,
}

/// Calls `change` on the parameters behind `params`.
///
/// # Safety
///
/// As for [`handle::borrow_mut`].
unsafe fn update(
    params: *mut MmConnectionParams,
    change: impl FnOnce(ConnectionParams) -> Result<ConnectionParams, Failure>,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let handle = unsafe { handle::borrow_mut(params)? };
        handle.params = change(handle.params.clone())?;
        Ok(())
    })
}

/// New parameters for the gateway at `address` (`host:port`) and `service` (e.g. "DEFAULT"),
/// with defaults for everything else; owned by the caller (free with
/// `mm_connection_params_free`). Nothing is checked until `mm_connect`.
///
/// # Safety
///
/// Strings as described in the header; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_new(
    address: *const c_char,
    address_len: usize,
    service: *const c_char,
    service_len: usize,
    out: *mut *mut MmConnectionParams,
) -> MmStatus {
    ffi(|| {
        // SAFETY: forwarded contract.
        let (address, service) = unsafe {
            (
                args::text(address, address_len, "the gateway address")?,
                args::text(service, service_len, "the service")?,
            )
        };
        let params = MmConnectionParams {
            tag: MmConnectionParams::TAG,
            params: ConnectionParams::new(address, service),
        };
        // SAFETY: forwarded contract.
        unsafe { args::write(out, handle::into_raw(params), "out") }
    })
}

/// Frees parameters (NULL is ignored). Connections opened with them are not affected.
///
/// # Safety
///
/// `params` is NULL or a live handle, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_free(params: *mut MmConnectionParams) {
    // SAFETY: forwarded contract.
    ffi_void(|| unsafe { handle::free(params) });
}

/// The name the gateway shows for this client (default: the program's name; at most 255 bytes).
///
/// # Safety
///
/// `params` is a live handle; the string as described in the header.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_client_name(
    params: *mut MmConnectionParams,
    name: *const c_char,
    name_len: usize,
) -> MmStatus {
    // SAFETY: forwarded contract.
    let name = match unsafe { args::text(name, name_len, "the client name") } {
        Ok(name) => name.to_owned(),
        Err(failure) => return ffi(|| Err(failure)),
    };
    // SAFETY: forwarded contract.
    unsafe { update(params, |p| Ok(p.with_client_name(name))) }
}

/// Where callbacks run (default `MM_DISPATCH_MODE_CALLBACKS`).
///
/// # Safety
///
/// `params` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_dispatch_mode(
    params: *mut MmConnectionParams,
    mode: MmDispatchMode,
) -> MmStatus {
    let mode = match mode {
        MmDispatchMode::Callbacks => DispatchMode::Callbacks,
        MmDispatchMode::Queue => DispatchMode::Queue,
    };
    // SAFETY: forwarded contract.
    unsafe { update(params, |p| Ok(p.with_dispatch_mode(mode))) }
}

/// How long connecting may take, for the first connection and each redial (default 30 000 ms).
///
/// # Safety
///
/// `params` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_connect_timeout_ms(
    params: *mut MmConnectionParams,
    timeout_ms: u64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        update(params, |p| {
            Ok(p.with_connect_timeout(Duration::from_millis(timeout_ms)))
        })
    }
}

/// The heartbeat interval announced to the gateway (default 5000 ms; 0 sends none).
///
/// # Safety
///
/// `params` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_heartbeat_ms(
    params: *mut MmConnectionParams,
    interval_ms: u64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        update(params, |p| {
            Ok(p.with_heartbeat(Duration::from_millis(interval_ms)))
        })
    }
}

/// The reconnect policy (default: reconnect forever, 100 ms to 2 s, 8 MiB buffered).
///
/// # Safety
///
/// `params` is a live handle; `policy` is readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_reconnect(
    params: *mut MmConnectionParams,
    policy: *const MmReconnectPolicy,
) -> MmStatus {
    if policy.is_null() {
        return ffi(|| Err(Failure::null("policy")));
    }
    // SAFETY: checked for NULL; the caller guarantees it is readable.
    let policy = unsafe { *policy };
    let reconnect = ReconnectPolicy {
        enabled: policy.enabled,
        initial_delay: Duration::from_millis(policy.initial_delay_ms),
        max_delay: Duration::from_millis(policy.max_delay_ms),
        max_attempts: (policy.max_attempts > 0).then_some(policy.max_attempts),
        buffer_bytes: policy.buffer_bytes,
        ..ReconnectPolicy::default()
    };
    // SAFETY: forwarded contract.
    unsafe { update(params, |p| Ok(p.with_reconnect(reconnect))) }
}

/// Per-subscription pending limits: how many delivered messages (and bytes) may wait for their
/// callback before further ones are dropped (defaults 65 536 and 64 MiB).
///
/// # Safety
///
/// `params` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_pending_limits(
    params: *mut MmConnectionParams,
    messages: usize,
    bytes: usize,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        update(params, |p| {
            Ok(p.with_pending_limits(PendingLimits { messages, bytes }))
        })
    }
}

/// How long a blocking request or flush busy-waits for its answer before sleeping, in
/// microseconds (default 200; 0 never spins).
///
/// # Safety
///
/// `params` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_request_spin_us(
    params: *mut MmConnectionParams,
    window_us: u64,
) -> MmStatus {
    // SAFETY: forwarded contract.
    unsafe {
        update(params, |p| {
            Ok(p.with_request_spin(Duration::from_micros(window_us)))
        })
    }
}

/// Sets the notification callback. `user_data` is passed to it and released with
/// `free_user_data` (may be NULL) once no connection uses it any more.
///
/// # Safety
///
/// `params` is a live handle; `callback` and `user_data` may be used from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_notification_callback(
    params: *mut MmConnectionParams,
    callback: MmNotificationCallback,
    user_data: *mut c_void,
    free_user_data: MmFreeCallback,
) -> MmStatus {
    let user = Arc::new(UserData::new(user_data, free_user_data));
    let Some(callback) = callback else {
        return ffi(|| Err(Failure::null("callback")));
    };
    // SAFETY: forwarded contract.
    unsafe {
        update(params, move |p| {
            Ok(p.with_notification_hook(move |notification| notify(callback, &user, notification)))
        })
    }
}

/// Sets the logger. `user_data` as for the notification callback.
///
/// # Safety
///
/// `params` is a live handle; `callback` and `user_data` may be used from any thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mm_connection_params_set_logger(
    params: *mut MmConnectionParams,
    callback: MmLogCallback,
    user_data: *mut c_void,
    free_user_data: MmFreeCallback,
) -> MmStatus {
    let user = Arc::new(UserData::new(user_data, free_user_data));
    let Some(callback) = callback else {
        return ffi(|| Err(Failure::null("callback")));
    };
    let logger = move |level: LogLevel, line: &str| {
        let level = match level {
            LogLevel::Error => MmLogLevel::Error,
            LogLevel::Warn => MmLogLevel::Warn,
            LogLevel::Info => MmLogLevel::Info,
            LogLevel::Debug => MmLogLevel::Debug,
        };
        // SAFETY: the caller of `mm_connection_params_set_logger` provided a function that
        // accepts this user pointer from any thread; the line outlives the call.
        unsafe {
            callback(
                user.ptr(),
                level,
                line.as_ptr().cast::<c_char>(),
                line.len(),
            )
        };
    };
    // SAFETY: forwarded contract.
    unsafe { update(params, move |p| Ok(p.with_logger(logger))) }
}

/// Calls the notification callback with a view of `notification`.
fn notify(
    callback: unsafe extern "C" fn(*mut c_void, *const MmNotification),
    user: &UserData,
    notification: &Notification,
) {
    let text = notification.to_string();
    let mut view = MmNotification {
        kind: MmNotificationKind::Other,
        text: text.as_ptr().cast::<c_char>(),
        text_len: text.len(),
        attempt: 0,
        subscription_id: 0,
        count: 0,
        delay_ms: 0,
        code: std::ptr::null(),
        code_len: 0,
    };
    match notification {
        Notification::Connected { .. } => view.kind = MmNotificationKind::Connected,
        Notification::Disconnected { .. } => view.kind = MmNotificationKind::Disconnected,
        Notification::Reconnecting { attempt, delay } => {
            view.kind = MmNotificationKind::Reconnecting;
            view.attempt = *attempt;
            view.delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        }
        Notification::ReconnectFailed { attempt, .. } => {
            view.kind = MmNotificationKind::ReconnectFailed;
            view.attempt = *attempt;
        }
        Notification::Reconnected { subscriptions, .. } => {
            view.kind = MmNotificationKind::Reconnected;
            view.count = *subscriptions as u64;
        }
        Notification::Closed => view.kind = MmNotificationKind::Closed,
        Notification::GatewayError {
            code,
            subscription_id,
            ..
        } => {
            view.kind = MmNotificationKind::GatewayError;
            view.code = code.as_ptr().cast::<c_char>();
            view.code_len = code.len();
            view.subscription_id = *subscription_id;
        }
        Notification::MessagesDropped {
            subscription_id,
            dropped,
            ..
        } => {
            view.kind = MmNotificationKind::MessagesDropped;
            view.subscription_id = *subscription_id;
            view.count = *dropped;
        }
        Notification::UndecodableMessage {
            subscription_id, ..
        } => {
            view.kind = MmNotificationKind::UndecodableMessage;
            view.subscription_id = *subscription_id;
        }
        Notification::CallbackPanicked {
            subscription_id, ..
        } => {
            view.kind = MmNotificationKind::CallbackFailed;
            view.subscription_id = *subscription_id;
        }
        _ => {}
    }
    // SAFETY: the caller of `mm_connection_params_set_notification_callback` provided a function
    // that accepts this user pointer from any thread; `view` and the strings it points to live
    // until the call returns.
    unsafe { callback(user.ptr(), &view) };
}
