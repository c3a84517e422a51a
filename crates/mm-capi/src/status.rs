//! Status codes, the thread-local last error, and the wrapper every exported function runs its
//! body in: it turns a [`Failure`] into a status code and catches panics, so none crosses the C
//! boundary.

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};
use std::panic::AssertUnwindSafe;

use messaging_mesh::{
    ConnectError, DispatchError, FieldError, FlushError, PublishError, RequestError, SubscribeError,
};

/// What a call returned. `MM_STATUS_OK` (0) is success; every other value is a failure that
/// `mm_last_error()` describes.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmStatus {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// A handle argument is not a live handle of the expected type (wrong type, or freed).
    InvalidHandle = 2,
    /// An argument is out of range or not valid UTF-8 where UTF-8 is required.
    InvalidArgument = 3,
    /// A subject, reply subject or pattern breaks the subject grammar (or is reserved).
    InvalidSubject = 4,
    /// The caller's buffer is too small; the needed size was written to the length out-parameter.
    BufferTooSmall = 5,
    /// No field has that name (or no field at that index).
    FieldNotFound = 6,
    /// The field exists but has another type.
    WrongType = 7,
    /// Bytes that do not decode as a Message or frame.
    Decode = 8,
    /// A Message that cannot be encoded (too deep, or a value too long).
    Encode = 9,
    /// Connecting failed: unreachable gateway, handshake timeout, refused service.
    Connect = 10,
    /// No reply (or flush confirmation) within the timeout.
    Timeout = 11,
    /// A request's subject has no subscribers (MM/2 gateways say so at once).
    NoResponders = 12,
    /// The connection to the gateway is down (it is reconnecting).
    Disconnected = 13,
    /// The connection is closed.
    Closed = 14,
    /// The frame is larger than the gateway accepts.
    TooLarge = 15,
    /// Disconnected, and the publishes buffered meanwhile fill the reconnect buffer.
    ReconnectBufferFull = 16,
    /// `mm_connection_process_message_queue` on a connection that dispatches on its own thread.
    NotQueueMode = 17,
    /// A reply to a message that has no reply subject.
    NoReplySubject = 18,
    /// A bug in the library (a caught panic); the text says where.
    Internal = 19,
}

/// A failed call: its status and the text `mm_last_error()` will return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status returned to the caller.
    pub status: MmStatus,
    /// What went wrong, for people.
    pub text: String,
}

impl Failure {
    /// A failure with the given status and text.
    pub fn new(status: MmStatus, text: impl Into<String>) -> Failure {
        Failure {
            status,
            text: text.into(),
        }
    }

    /// A NULL where `what` was required.
    pub fn null(what: &str) -> Failure {
        Failure::new(MmStatus::NullArgument, format!("{what} is NULL"))
    }

    /// An argument out of range.
    pub fn invalid(text: impl Into<String>) -> Failure {
        Failure::new(MmStatus::InvalidArgument, text)
    }
}

thread_local! {
    /// The text of the last failure on this thread, NUL-terminated for `mm_last_error`.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `failure`'s text as this thread's last error and returns its status.
fn record(failure: Failure) -> MmStatus {
    // Interior NULs cannot be represented in a C string: show them as U+FFFD.
    let text = CString::new(failure.text.replace('\0', "\u{fffd}")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = text);
    failure.status
}

/// Runs the body of an exported function: success is `MM_STATUS_OK`, a [`Failure`] becomes its
/// status (and the last error), and a panic becomes `MM_STATUS_INTERNAL` instead of unwinding
/// into C.
pub fn ffi(body: impl FnOnce() -> Result<(), Failure>) -> MmStatus {
    match std::panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => MmStatus::Ok,
        Ok(Err(failure)) => record(failure),
        Err(panic) => record(Failure::new(
            MmStatus::Internal,
            format!("internal error: {}", panic_text(panic.as_ref())),
        )),
    }
}

/// Like [`ffi`] for functions that return nothing: failures are recorded and dropped.
pub fn ffi_void(body: impl FnOnce() -> Result<(), Failure>) {
    let _ = ffi(body);
}

/// The message of a caught panic.
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// The text of the most recent failed call on this thread ("" if none failed yet). The pointer
/// stays valid until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn mm_last_error() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

/// The name of a status code, e.g. "MM_STATUS_TIMEOUT" (a static string).
#[unsafe(no_mangle)]
pub extern "C" fn mm_status_name(status: MmStatus) -> *const c_char {
    status.name().as_ptr()
}

impl MmStatus {
    /// The status's name, as in the header.
    pub fn name(self) -> &'static CStr {
        match self {
            MmStatus::Ok => c"MM_STATUS_OK",
            MmStatus::NullArgument => c"MM_STATUS_NULL_ARGUMENT",
            MmStatus::InvalidHandle => c"MM_STATUS_INVALID_HANDLE",
            MmStatus::InvalidArgument => c"MM_STATUS_INVALID_ARGUMENT",
            MmStatus::InvalidSubject => c"MM_STATUS_INVALID_SUBJECT",
            MmStatus::BufferTooSmall => c"MM_STATUS_BUFFER_TOO_SMALL",
            MmStatus::FieldNotFound => c"MM_STATUS_FIELD_NOT_FOUND",
            MmStatus::WrongType => c"MM_STATUS_WRONG_TYPE",
            MmStatus::Decode => c"MM_STATUS_DECODE",
            MmStatus::Encode => c"MM_STATUS_ENCODE",
            MmStatus::Connect => c"MM_STATUS_CONNECT",
            MmStatus::Timeout => c"MM_STATUS_TIMEOUT",
            MmStatus::NoResponders => c"MM_STATUS_NO_RESPONDERS",
            MmStatus::Disconnected => c"MM_STATUS_DISCONNECTED",
            MmStatus::Closed => c"MM_STATUS_CLOSED",
            MmStatus::TooLarge => c"MM_STATUS_TOO_LARGE",
            MmStatus::ReconnectBufferFull => c"MM_STATUS_RECONNECT_BUFFER_FULL",
            MmStatus::NotQueueMode => c"MM_STATUS_NOT_QUEUE_MODE",
            MmStatus::NoReplySubject => c"MM_STATUS_NO_REPLY_SUBJECT",
            MmStatus::Internal => c"MM_STATUS_INTERNAL",
        }
    }
}

impl From<FieldError> for Failure {
    fn from(error: FieldError) -> Failure {
        let status = match error {
            FieldError::Missing { .. } => MmStatus::FieldNotFound,
            FieldError::WrongType { .. } => MmStatus::WrongType,
            // Not reachable through this API (strings are returned as bytes); keep it typed.
            _ => MmStatus::WrongType,
        };
        Failure::new(status, error.to_string())
    }
}

impl From<ConnectError> for Failure {
    fn from(error: ConnectError) -> Failure {
        let status = match error {
            ConnectError::InvalidServiceName(_) => MmStatus::InvalidSubject,
            ConnectError::ClientNameTooLong { .. } => MmStatus::InvalidArgument,
            _ => MmStatus::Connect,
        };
        Failure::new(status, error.to_string())
    }
}

impl From<PublishError> for Failure {
    fn from(error: PublishError) -> Failure {
        let status = match error {
            PublishError::InvalidSubject(_)
            | PublishError::InvalidReplySubject(_)
            | PublishError::ReservedSubject { .. } => MmStatus::InvalidSubject,
            PublishError::NoReplySubject { .. } => MmStatus::NoReplySubject,
            PublishError::Encode(_) => MmStatus::Encode,
            PublishError::TooLarge { .. } => MmStatus::TooLarge,
            PublishError::ReconnectBufferFull { .. } => MmStatus::ReconnectBufferFull,
            _ => MmStatus::Closed,
        };
        Failure::new(status, error.to_string())
    }
}

impl From<SubscribeError> for Failure {
    fn from(error: SubscribeError) -> Failure {
        let status = match error {
            SubscribeError::InvalidPattern(_) => MmStatus::InvalidSubject,
            _ => MmStatus::Closed,
        };
        Failure::new(status, error.to_string())
    }
}

impl From<RequestError> for Failure {
    fn from(error: RequestError) -> Failure {
        match error {
            RequestError::Publish(publish) => Failure::from(publish),
            error => {
                let status = match error {
                    RequestError::Timeout { .. } => MmStatus::Timeout,
                    RequestError::NoResponders { .. } => MmStatus::NoResponders,
                    RequestError::Disconnected => MmStatus::Disconnected,
                    RequestError::UndecodableReply { .. } => MmStatus::Decode,
                    _ => MmStatus::Closed,
                };
                Failure::new(status, error.to_string())
            }
        }
    }
}

impl From<FlushError> for Failure {
    fn from(error: FlushError) -> Failure {
        let status = match error {
            FlushError::Timeout { .. } => MmStatus::Timeout,
            FlushError::Disconnected => MmStatus::Disconnected,
            _ => MmStatus::Closed,
        };
        Failure::new(status, error.to_string())
    }
}

impl From<DispatchError> for Failure {
    fn from(error: DispatchError) -> Failure {
        let status = match error {
            DispatchError::NotQueueMode => MmStatus::NotQueueMode,
            _ => MmStatus::Closed,
        };
        Failure::new(status, error.to_string())
    }
}
