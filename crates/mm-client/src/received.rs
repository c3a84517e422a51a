//! [`Received`]: a delivered message with its subject, reply subject and subscription.

use std::fmt;
use std::sync::OnceLock;

use mm_wire::{Frame, Message};

/// A message delivered to a subscription (or a request's reply).
///
/// The body is decoded the first time [`Received::message`] is called, on the thread that calls
/// it — usually the dispatch thread, never the connection's reader — and at most once. The
/// reader has already checked that it decodes (undecodable bodies never reach a callback), so
/// decoding cannot fail. A callback that only looks at the subject, or forwards the frame, costs
/// no decoding at all.
///
/// Cloning is cheap: the frame's bytes are shared, and the decoded message's strings and blobs
/// point into them (decoding copies no field).
#[derive(Clone)]
pub struct Received {
    /// The frame as received; the subject and reply subject are read from it.
    frame: Frame,
    /// The decoded body, once asked for.
    message: OnceLock<Message>,
}

impl Received {
    /// Wraps a frame whose body has been validated ([`Frame::validate_message`]). Precondition:
    /// the frame's subject and reply subject are UTF-8 (the engine checks before building one).
    pub(crate) fn new(frame: Frame) -> Received {
        Received {
            frame,
            message: OnceLock::new(),
        }
    }

    /// Wraps a frame whose body is already decoded.
    pub(crate) fn with_message(frame: Frame, message: Message) -> Received {
        Received {
            frame,
            message: OnceLock::from(message),
        }
    }

    /// Decodes the body. Validated bodies always decode; should that ever fail, the message
    /// reads as empty rather than bringing the application down.
    fn decode(&self) -> Message {
        self.frame.message().unwrap_or_default()
    }

    /// The subject the message was published to.
    pub fn subject(&self) -> &str {
        std::str::from_utf8(self.frame.subject()).unwrap_or_default()
    }

    /// The reply subject the publisher gave, if any (requests carry one).
    pub fn reply_subject(&self) -> Option<&str> {
        let reply = self.frame.reply_subject();
        if reply.is_empty() {
            None
        } else {
            std::str::from_utf8(reply).ok()
        }
    }

    /// The message (decoded on first access).
    pub fn message(&self) -> &Message {
        self.message.get_or_init(|| self.decode())
    }

    /// The message, by value.
    pub fn into_message(mut self) -> Message {
        match self.message.take() {
            Some(message) => message,
            None => self.decode(),
        }
    }

    /// The id of the subscription it was delivered to (as stamped by the gateway).
    pub fn subscription_id(&self) -> u32 {
        self.frame.subscription_id()
    }

    /// The frame as received, header included.
    pub fn frame(&self) -> &Frame {
        &self.frame
    }

    /// Size of the whole frame in bytes.
    pub fn size(&self) -> usize {
        self.frame.len()
    }
}

impl fmt::Debug for Received {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("subject", &self.subject())
            .field("reply_subject", &self.reply_subject())
            .field("subscription_id", &self.subscription_id())
            .field("message", self.message())
            .finish()
    }
}

impl fmt::Display for Received {
    /// `subject [reply] message`, e.g. `PRICES.IBM {sym="IBM" px=123.4}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.subject())?;
        if let Some(reply) = self.reply_subject() {
            write!(f, " reply={reply}")?;
        }
        write!(f, " {}", self.message())
    }
}
