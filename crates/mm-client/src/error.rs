//! Errors, one type per operation, so that callers match on what can actually go wrong there:
//! [`ConnectError`], [`PublishError`], [`SubscribeError`], [`RequestError`] (with distinct
//! [`RequestError::Timeout`] and [`RequestError::NoResponders`]), [`FlushError`] and
//! [`DispatchError`]; and [`InvalidUtf8`] for a received frame whose subject or reply subject is
//! not text. Every enum is `#[non_exhaustive]`: new failure modes are not breaking changes.
//!
//! Each message is complete on its own (it includes the underlying error's text), so no error
//! here also returns that underlying error as its `source`: printing the chain never repeats
//! itself.

use std::fmt;
use std::time::Duration;

use mm_wire::{DecodeError, EncodeError, SubjectError};

/// A subject, pattern or name that breaks the subject grammar (SPEC §6.1). Its `Display` names
/// the offending token, e.g. ``invalid subject `A..B`: empty token at position 2``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSubject {
    /// What was being checked: "subject", "reply subject", "pattern" or "service name".
    what: &'static str,
    /// The text as given.
    subject: String,
    /// Why it is invalid.
    reason: SubjectError,
}

impl InvalidSubject {
    pub(crate) fn new(what: &'static str, subject: &str, reason: SubjectError) -> Self {
        InvalidSubject {
            what,
            subject: subject.to_owned(),
            reason,
        }
    }

    /// The subject (or pattern, or name) as given.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Why it is invalid.
    pub fn reason(&self) -> SubjectError {
        self.reason
    }

    /// The token that breaks the grammar, when the reason is about one token.
    pub fn offending_token(&self) -> Option<&str> {
        self.reason.offending_token(&self.subject)
    }
}

impl fmt::Display for InvalidSubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} `{}`: {}",
            self.what, self.subject, self.reason
        )?;
        match self.offending_token() {
            Some(token) if !token.is_empty() => write!(f, " (`{token}`)"),
            _ => Ok(()),
        }
    }
}

/// The reason is part of the message (and available from [`InvalidSubject::reason`]), so it is
/// not repeated as a `source`.
impl std::error::Error for InvalidSubject {}

/// A subject in a received frame that is not UTF-8 text (SPEC §6.1: header strings that are not
/// UTF-8 make the subject invalid). Such a message is dropped and reported through the
/// notification hook ([`Notification::InvalidUtf8`](crate::Notification::InvalidUtf8)); a
/// request's reply of that kind fails the request ([`RequestError::InvalidUtf8Reply`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidUtf8 {
    /// The subject.
    #[error("the subject `{lossy}` is not valid UTF-8 (from byte {valid_up_to})")]
    Subject {
        /// The subject, invalid sequences replaced by U+FFFD.
        lossy: String,
        /// How many of its bytes are valid UTF-8.
        valid_up_to: usize,
    },
    /// The reply subject.
    #[error("the reply subject `{lossy}` is not valid UTF-8 (from byte {valid_up_to})")]
    ReplySubject {
        /// The reply subject, invalid sequences replaced by U+FFFD.
        lossy: String,
        /// How many of its bytes are valid UTF-8.
        valid_up_to: usize,
    },
}

impl InvalidUtf8 {
    /// `Err` naming `bytes` as the subject when they are not UTF-8.
    pub(crate) fn check_subject(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        std::str::from_utf8(bytes)
            .map(|_| ())
            .map_err(|error| InvalidUtf8::Subject {
                lossy: String::from_utf8_lossy(bytes).into_owned(),
                valid_up_to: error.valid_up_to(),
            })
    }

    /// `Err` naming `bytes` as the reply subject when they are not UTF-8.
    pub(crate) fn check_reply_subject(bytes: &[u8]) -> Result<(), InvalidUtf8> {
        std::str::from_utf8(bytes)
            .map(|_| ())
            .map_err(|error| InvalidUtf8::ReplySubject {
                lossy: String::from_utf8_lossy(bytes).into_owned(),
                valid_up_to: error.valid_up_to(),
            })
    }
}

/// [`Connection::connect`](crate::Connection::connect) failed: no connection was opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The service name is not a single valid token.
    #[error(transparent)]
    InvalidServiceName(InvalidSubject),
    /// The client name is longer than 255 bytes.
    #[error("client name is {length} bytes long; the maximum is 255")]
    ClientNameTooLong {
        /// Its length in bytes.
        length: usize,
    },
    /// The gateway address could not be resolved or reached.
    #[error("cannot connect to {address}: {error}")]
    Io {
        /// The address as given.
        address: String,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// No ACK arrived within the connect timeout.
    #[error("no answer from {address} within {timeout:?}")]
    Timeout {
        /// The address as given.
        address: String,
        /// The connect timeout.
        timeout: Duration,
    },
    /// The gateway answered the CONNECT with an ERROR (for example `SERVICE_REFUSED`).
    #[error("gateway {address} refused the connection: {code}: {text}")]
    Refused {
        /// The address as given.
        address: String,
        /// The ERROR code.
        code: String,
        /// The ERROR text.
        text: String,
    },
    /// The TLS handshake with the gateway failed (an untrusted certificate, or a gateway that
    /// does not speak TLS on that port).
    #[error("TLS handshake with {address} failed: {error}")]
    Tls {
        /// The address as given.
        address: String,
        /// What failed.
        error: String,
    },
    /// The gateway closed the connection before its ACK.
    #[error("gateway {address} closed the connection during the handshake")]
    ClosedDuringHandshake {
        /// The address as given.
        address: String,
    },
    /// The gateway sent bytes that are not a frame.
    #[error("gateway {address} sent a malformed frame: {error}")]
    Protocol {
        /// The address as given.
        address: String,
        /// What was wrong.
        error: DecodeError,
    },
    /// The CONNECT frame cannot be encoded (its options do not fit the wire format).
    #[error("the CONNECT frame cannot be encoded: {0}")]
    Encode(EncodeError),
    /// The operating system's secure random source failed (the request inbox needs it).
    #[deprecated(note = "never returned; the library returns `ConnectError::SecureRandom`")]
    #[error("no secure random source for the request inbox: {0}")]
    NoSecureRandom(String),
    /// The operating system's secure random source failed (the request inbox needs it).
    #[error("no secure random source for the request inbox: {0}")]
    SecureRandom(std::io::Error),
    /// The connection's engine thread could not be started.
    #[error("cannot start the connection thread: {0}")]
    Thread(std::io::Error),
    /// The connection's engine thread ended before the handshake did (it panicked).
    #[error("the connection thread ended during connect")]
    EngineEnded,
}

/// A publish ([`Connection::send`](crate::Connection::send) and friends) failed: nothing was
/// sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The subject is not a valid literal subject.
    #[error(transparent)]
    InvalidSubject(InvalidSubject),
    /// The reply subject is not a valid literal subject.
    #[error(transparent)]
    InvalidReplySubject(InvalidSubject),
    /// Plain publishes to `_MM.` subjects are reserved to the gateway (requests are allowed).
    #[error("subject `{subject}` is reserved to the gateway (only requests may be sent there)")]
    ReservedSubject {
        /// The subject.
        subject: String,
    },
    /// [`send_reply`](crate::Connection::send_reply) to a message that has no reply subject.
    #[error("the message on `{subject}` has no reply subject to answer")]
    NoReplySubject {
        /// The subject of the message that was to be answered.
        subject: String,
    },
    /// The message cannot be encoded (too deep, or a value too long).
    #[error("message cannot be encoded: {0}")]
    Encode(EncodeError),
    /// The frame is larger than the gateway accepts (`max_frame` from its ACK).
    #[error("frame of {size} bytes exceeds the gateway's maximum of {max} bytes")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The gateway's `max_frame`.
        max: u32,
    },
    /// The connection is down and the publishes buffered while it reconnects already fill the
    /// reconnect buffer ([`ReconnectPolicy::buffer_bytes`](crate::ReconnectPolicy)).
    #[error(
        "not connected and the reconnect buffer is full ({limit} bytes); the message was not sent"
    )]
    ReconnectBufferFull {
        /// The buffer's bound in bytes.
        limit: usize,
    },
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// [`subscribe`](crate::Connection::subscribe) failed: no subscription was made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscribeError {
    /// The pattern breaks the subject grammar.
    #[error(transparent)]
    InvalidPattern(InvalidSubject),
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// A request ([`send_request`](crate::Connection::send_request)) got no reply.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// No reply arrived within the timeout.
    #[error("no reply to `{subject}` within {timeout:?}")]
    Timeout {
        /// The request's subject.
        subject: String,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// Nobody is subscribed to the subject (MM/2 gateways say so at once, SPEC §7.4).
    #[error("no responders for `{subject}`")]
    NoResponders {
        /// The request's subject.
        subject: String,
    },
    /// The request could not be sent.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The connection was lost while the request was in flight, or is down (reconnecting).
    #[error("the connection to the gateway is down")]
    Disconnected,
    /// The reply arrived but its body does not decode.
    #[error("the reply to `{subject}` does not decode: {error}")]
    UndecodableReply {
        /// The request's subject.
        subject: String,
        /// What was wrong.
        error: DecodeError,
    },
    /// The reply arrived but its reply subject is not UTF-8.
    #[error("the reply to `{subject}` is malformed: {error}")]
    InvalidUtf8Reply {
        /// The request's subject.
        subject: String,
        /// What was wrong.
        error: InvalidUtf8,
    },
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

impl RequestError {
    /// Whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RequestError::Timeout { .. })
    }

    /// Whether the gateway said nobody listens on the subject.
    pub fn is_no_responders(&self) -> bool {
        matches!(self, RequestError::NoResponders { .. })
    }
}

/// A flush ([`flush`](crate::Connection::flush), [`flush_mesh`](crate::Connection::flush_mesh))
/// did not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The gateway did not confirm within the timeout.
    #[error("flush not confirmed within {timeout:?}")]
    Timeout {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The connection was lost during the flush, or is down (reconnecting).
    #[error("the connection to the gateway is down")]
    Disconnected,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

/// [`process_message_queue`](crate::Connection::process_message_queue) cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The connection dispatches on its own thread ([`DispatchMode::Callbacks`](crate::DispatchMode)).
    #[error("the connection dispatches callbacks on its own thread; there is no queue to process")]
    NotQueueMode,
    /// The connection is closed.
    #[error("the connection is closed")]
    Closed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_subject_names_the_token() {
        let error = mm_wire::subject::validate_subject("A.b c.D").unwrap_err();
        let invalid = InvalidSubject::new("subject", "A.b c.D", error);
        assert_eq!(invalid.offending_token(), Some("b c"));
        assert_eq!(
            invalid.to_string(),
            "invalid subject `A.b c.D`: token 2 contains white space (`b c`)"
        );
        let error = mm_wire::subject::validate_subject("A..B").unwrap_err();
        assert_eq!(
            InvalidSubject::new("subject", "A..B", error).to_string(),
            "invalid subject `A..B`: empty token at position 2"
        );
    }
}
