//! [`Received`]: a delivered message with its subject, reply subject and subscription; and
//! [`FrameParts`], where the engine found the parts of a received frame.

use std::fmt;
use std::sync::OnceLock;

use bytes::Bytes;
use mm_wire::header::SUBSCRIPTION_ID_OFFSET;
use mm_wire::{Action, Frame, HeaderView, Message};

/// Where the header fields of a received frame lie, as found by the engine's one parse of the
/// header. Nothing downstream parses the header again: a [`Received`] reads its subject, reply
/// subject and body through these offsets.
///
/// The header is `length i32 | subscription_id u32 | subject str | reply_subject str | action u8`
/// with `str` = an `i32` byte count and the bytes (SPEC §3): the subject always starts at byte
/// [`SUBJECT_OFFSET`], so the ends of the two strings — the only two things a parse finds out —
/// place every field. Two integers keep the dispatch batch and [`Received`] small. Invariant:
/// `SUBJECT_OFFSET <= subject_end`, `subject_end + 4 <= reply_end < frame length` for the frame
/// they were found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameParts {
    /// Offset just past the subject.
    subject_end: u32,
    /// Offset just past the reply subject; the action byte is there.
    reply_end: u32,
}

/// Where the subject starts in every frame: after the length, the subscription id and the
/// subject's own length.
pub(crate) const SUBJECT_OFFSET: usize = SUBSCRIPTION_ID_OFFSET + 4 + STR_LENGTH_SIZE;

/// Size of a string's length prefix.
const STR_LENGTH_SIZE: usize = 4;

impl FrameParts {
    /// The parts of `frame` (one whole frame, at most `i32::MAX` bytes), from `header`, parsed
    /// from that very slice.
    pub(crate) fn of(frame: &[u8], header: &HeaderView<'_>) -> FrameParts {
        let base = frame.as_ptr() as usize;
        let end = |part: &[u8]| part.as_ptr() as usize - base + part.len();
        let parts = FrameParts {
            subject_end: end(header.subject) as u32,
            reply_end: end(header.reply_subject) as u32,
        };
        debug_assert_eq!(parts.header(frame), *header, "the header layout of SPEC §3");
        parts
    }

    /// The header of `frame`, the frame these parts were found in, without parsing it again.
    pub(crate) fn header<'a>(&self, frame: &'a [u8]) -> HeaderView<'a> {
        HeaderView {
            subscription_id: self.subscription_id(frame),
            subject: self.subject(frame),
            reply_subject: self.reply_subject(frame),
            action_byte: self.action_byte(frame),
            body_offset: self.reply_end as usize + 1,
        }
    }

    /// The action of `frame`, or `None` for an unknown action byte.
    pub(crate) fn action(&self, frame: &[u8]) -> Option<Action> {
        Action::from_byte(self.action_byte(frame))
    }

    /// The raw action byte of `frame`.
    pub(crate) fn action_byte(&self, frame: &[u8]) -> u8 {
        frame
            .get(self.reply_end as usize)
            .copied()
            .unwrap_or_default()
    }

    /// The subscription id in the header of `frame` (a fixed field: read, not parsed).
    pub(crate) fn subscription_id(&self, frame: &[u8]) -> u32 {
        frame
            .get(SUBSCRIPTION_ID_OFFSET..SUBSCRIPTION_ID_OFFSET + 4)
            .and_then(|bytes| bytes.try_into().ok())
            .map_or(0, u32::from_le_bytes)
    }

    /// The subject bytes of `frame`, the frame these parts were found in.
    pub(crate) fn subject<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(SUBJECT_OFFSET..self.subject_end as usize)
            .unwrap_or_default()
    }

    /// The reply subject bytes of `frame` (empty for none).
    pub(crate) fn reply_subject<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        frame
            .get(self.subject_end as usize + STR_LENGTH_SIZE..self.reply_end as usize)
            .unwrap_or_default()
    }

    /// The body of `frame`: every byte after the header, shared.
    pub(crate) fn body(&self, frame: &Bytes) -> Bytes {
        frame.slice((self.reply_end as usize + 1).min(frame.len())..)
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
    /// The frame as an `mm_wire::Frame`, once asked for (boxed: rarely asked for, and a
    /// `Received` is moved on every delivery).
    frame: OnceLock<Box<Frame>>,
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

    /// The subject's bytes (UTF-8, as checked before delivery): for bindings that hand the
    /// subject on as bytes.
    pub fn subject_bytes(&self) -> &[u8] {
        self.parts.subject(&self.bytes)
    }

    /// The reply subject's bytes (empty for none; UTF-8, as checked before delivery).
    pub fn reply_subject_bytes(&self) -> &[u8] {
        self.parts.reply_subject(&self.bytes)
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
        self.parts.subscription_id(&self.bytes)
    }

    /// The frame as received, header included, as an [`mm_wire::Frame`]. That view is built on
    /// the first call (the message's own accessors never need it).
    pub fn frame(&self) -> &Frame {
        self.frame.get_or_init(|| {
            Box::new(
                Frame::parse(self.bytes.clone())
                    .expect("the engine parsed these very bytes as one whole frame"),
            )
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
        assert_eq!(received.subject_bytes(), b"PRICES.IBM");
        assert_eq!(received.reply_subject_bytes(), b"_INBOX.x.1");
        assert_eq!(received.message().get_i32("n"), Ok(3));
        assert_eq!(received.size(), bytes.len());
        assert_eq!(received.frame().as_bytes(), &bytes[..]);
        assert_eq!(received.frame().subject(), b"PRICES.IBM");
        assert_eq!(received.frame_bytes().as_ref(), &bytes[..]);
        assert_eq!(parts.header(&bytes), view);
        assert_eq!(parts.action(&bytes), Some(Action::SendMessage));
        assert_eq!(parts.subscription_id(&bytes), 9);
    }
}
