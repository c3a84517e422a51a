//! [`Received`]: a delivered message with its subject, reply subject and subscription; and
//! [`FrameParts`], where the engine found the parts of a received frame.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use mm_wire::{Action, Frame, HeaderView, Message};

/// Where the header fields of a received frame lie, as found by the engine's one parse of the
/// header. Nothing downstream parses the header again: a [`Received`] reads its subject, reply
/// subject and body through these offsets. Offsets count from the first byte of the frame;
/// invariant: every range lies within the frame it was found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameParts {
    subscription_id: u32,
    subject: (u32, u32),
    reply_subject: (u32, u32),
    body_offset: u32,
    action_byte: u8,
}

impl FrameParts {
    /// The parts of `frame` (one whole frame, at most `i32::MAX` bytes), from `header`, parsed
    /// from that very slice.
    pub(crate) fn of(frame: &[u8], header: &HeaderView<'_>) -> FrameParts {
        let base = frame.as_ptr() as usize;
        let range = |part: &[u8]| {
            let start = part.as_ptr() as usize - base;
            (start as u32, (start + part.len()) as u32)
        };
        FrameParts {
            subscription_id: header.subscription_id,
            subject: range(header.subject),
            reply_subject: range(header.reply_subject),
            body_offset: header.body_offset as u32,
            action_byte: header.action_byte,
        }
    }

    /// The header of `frame`, the frame these parts were found in, without parsing it again.
    pub(crate) fn header<'a>(&self, frame: &'a [u8]) -> HeaderView<'a> {
        HeaderView {
            subscription_id: self.subscription_id,
            subject: self.subject(frame),
            reply_subject: self.reply_subject(frame),
            action_byte: self.action_byte,
            body_offset: self.body_offset as usize,
        }
    }

    /// The action, or `None` for an unknown action byte.
    pub(crate) fn action(&self) -> Option<Action> {
        Action::from_byte(self.action_byte)
    }

    /// The raw action byte.
    pub(crate) fn action_byte(&self) -> u8 {
        self.action_byte
    }

    /// The subscription id in the header.
    pub(crate) fn subscription_id(&self) -> u32 {
        self.subscription_id
    }

    /// The subject bytes of `frame`, the frame these parts were found in.
    pub(crate) fn subject<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.subject.0 as usize..self.subject.1 as usize)
            .unwrap_or_default()
    }

    /// The reply subject bytes of `frame` (empty for none).
    pub(crate) fn reply_subject<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.reply_subject.0 as usize..self.reply_subject.1 as usize)
            .unwrap_or_default()
    }

    /// The body of `frame`: every byte after the header, shared.
    pub(crate) fn body(&self, frame: &Bytes) -> Bytes {
        frame.slice((self.body_offset as usize).min(frame.len())..)
    }
}

/// A message delivered to a subscription (or a request's reply).
///
/// The body is decoded the first time [`Received::message`] is called, on the thread that calls
/// it — usually the dispatch thread, never the connection's reader — and at most once. The
/// reader has already checked that it decodes (undecodable bodies never reach a callback) and that
/// the subject and reply subject are UTF-8 (other frames are dropped and reported), so neither
/// can fail here. A callback that only looks at the subject, or forwards the frame, costs no
/// decoding at all.
///
/// Cloning is cheap: the frame's bytes are shared, and the decoded message's strings and blobs
/// point into them (decoding copies no field).
#[derive(Clone)]
pub struct Received {
    /// The whole frame as received.
    bytes: Bytes,
    /// Where its header fields are.
    parts: FrameParts,
    /// The decoded body, once asked for.
    message: OnceLock<Message>,
    /// The frame as an `mm_wire::Frame`, once asked for.
    frame: OnceLock<Frame>,
}

impl Received {
    /// Wraps a received frame. Preconditions (checked by the engine): `parts` were found in
    /// `bytes`, the body validates ([`Message::validate`]), and the subject and reply subject are
    /// UTF-8.
    pub(crate) fn new(bytes: Bytes, parts: FrameParts) -> Received {
        Received {
            bytes,
            parts,
            message: OnceLock::new(),
            frame: OnceLock::new(),
        }
    }

    /// Wraps a received frame whose body is already decoded (same preconditions otherwise).
    pub(crate) fn with_message(bytes: Bytes, parts: FrameParts, message: Message) -> Received {
        Received {
            message: OnceLock::from(message),
            ..Received::new(bytes, parts)
        }
    }

    /// Decodes the body. Validated bodies always decode; should that ever fail, the message
    /// reads as empty rather than bringing the application down.
    fn decode(&self) -> Message {
        Message::decode(&self.parts.body(&self.bytes)).unwrap_or_default()
    }

    /// The subject the message was published to.
    pub fn subject(&self) -> &str {
        std::str::from_utf8(self.parts.subject(&self.bytes)).unwrap_or_default()
    }

    /// The reply subject the publisher gave, if any (requests carry one).
    pub fn reply_subject(&self) -> Option<&str> {
        let reply = self.parts.reply_subject(&self.bytes);
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
        self.parts.subscription_id
    }

    /// The frame as received, header included, as an [`mm_wire::Frame`]. That view is built on
    /// the first call (the message's own accessors never need it).
    pub fn frame(&self) -> &Frame {
        self.frame.get_or_init(|| {
            Frame::parse(self.bytes.clone())
                .expect("the engine parsed these very bytes as one whole frame")
        })
    }

    /// The frame as received, header included, as raw bytes.
    pub fn frame_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Size of the whole frame in bytes.
    pub fn size(&self) -> usize {
        self.bytes.len()
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

#[cfg(test)]
mod tests {
    use mm_wire::{Header, encode_frame};

    use super::*;

    #[test]
    fn the_parts_found_once_give_every_field_and_the_same_frame() {
        let mut bytes = Vec::new();
        let header = Header::send_message("PRICES.IBM")
            .with_reply_subject("_INBOX.x.1")
            .with_subscription_id(9);
        encode_frame(&mut bytes, &header, &Message::new().add_i32("n", 3)).unwrap();
        let view = HeaderView::parse(&bytes).unwrap();
        let parts = FrameParts::of(&bytes, &view);
        let received = Received::new(Bytes::from(bytes.clone()), parts);
        assert_eq!(received.subject(), "PRICES.IBM");
        assert_eq!(received.reply_subject(), Some("_INBOX.x.1"));
        assert_eq!(received.subscription_id(), 9);
        assert_eq!(received.message().get_i32("n"), Ok(3));
        assert_eq!(received.size(), bytes.len());
        assert_eq!(received.frame().as_bytes(), &bytes[..]);
        assert_eq!(received.frame().subject(), b"PRICES.IBM");
        assert_eq!(received.frame_bytes().as_ref(), &bytes[..]);
        assert_eq!(parts.header(&bytes), view);
        assert_eq!(parts.action(), Some(Action::SendMessage));
    }
}
