//! [`Received`]: a delivered message with its subject, reply subject and subscription.

use std::fmt;

use mm_wire::{Frame, Message};

/// A message delivered to a subscription (or a request's reply).
///
/// Cloning is cheap: the frame's bytes are shared, and the decoded message's strings and blobs
/// point into them (decoding copied no field).
#[derive(Clone)]
pub struct Received {
    /// The frame as received; the subject and reply subject are read from it.
    frame: Frame,
    /// The decoded body.
    message: Message,
}

impl Received {
    /// Wraps a frame whose body decoded to `message`. Precondition: the frame's subject and reply
    /// subject are UTF-8 (the engine checks before building one).
    pub(crate) fn new(frame: Frame, message: Message) -> Received {
        Received { frame, message }
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

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The message, by value.
    pub fn into_message(self) -> Message {
        self.message
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
            .field("message", &self.message)
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
        write!(f, " {}", self.message)
    }
}
