//! The frame header (SPEC §3): reading it without touching the body, writing it, and patching the
//! subscription id in place.
//!
//! ```text
//! offset 0  i32  frame length (whole frame, these 4 bytes included)
//! offset 4  u32  subscription_id          <- patched in place by the gateway
//! offset 8  str  subject
//!           str  reply_subject
//!           u8   action
//!           ...  Message (body)
//! ```

use crate::reader::Reader;
use crate::{Action, DecodeError};

/// Offset of the `subscription_id` field in every frame.
pub const SUBSCRIPTION_ID_OFFSET: usize = 4;

/// Size of the length prefix.
pub const LENGTH_PREFIX_SIZE: usize = 4;

/// The smallest legal frame: length, id, two empty strings, action and an empty Message.
pub const MIN_FRAME_SIZE: usize = 4 + 4 + 4 + 4 + 1 + 4;

/// A parsed header that borrows from the frame: what the gateway reads on its hot path.
///
/// Parsing checks only that the header fits in the frame; subjects are raw bytes, validated
/// separately with [`crate::subject`] where it matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView<'a> {
    /// Subscription id (0 = none).
    pub subscription_id: u32,
    /// Subject, pattern, or service name (CONNECT), as sent.
    pub subject: &'a [u8],
    /// Reply subject, or client name (CONNECT), as sent.
    pub reply_subject: &'a [u8],
    /// The raw action byte; see [`HeaderView::action`].
    pub action_byte: u8,
    /// Offset of the body (the Message) from the start of the frame.
    pub body_offset: usize,
}

impl<'a> HeaderView<'a> {
    /// Parses the header of `frame`, a whole frame starting with its length prefix.
    ///
    /// Only the header is read; the length prefix is not checked against `frame.len()` (that is
    /// the frame decoder's job). Fails if the header runs past the end of `frame`.
    #[inline]
    pub fn parse(frame: &'a [u8]) -> Result<HeaderView<'a>, DecodeError> {
        let mut reader = Reader::new(frame, 0);
        reader.take(LENGTH_PREFIX_SIZE, "frame length")?;
        let subscription_id = reader.u32("subscription id")?;
        let subject = reader.length_prefixed("subject")?;
        let reply_subject = reader.length_prefixed("reply subject")?;
        let action_byte = reader.u8("action")?;
        Ok(HeaderView {
            subscription_id,
            subject: &frame[subject],
            reply_subject: &frame[reply_subject],
            action_byte,
            body_offset: reader.position(),
        })
    }

    /// The action, or `None` for a byte this library does not know (receivers ignore those).
    #[inline]
    pub fn action(&self) -> Option<Action> {
        Action::from_byte(self.action_byte)
    }

    /// Checks that the body of `frame` — the frame this header was parsed from — decodes,
    /// without decoding it (see [`crate::Message::validate`]). Error offsets count from the start
    /// of the frame.
    pub fn validate_body(&self, frame: &[u8]) -> Result<(), DecodeError> {
        let body = frame.get(self.body_offset..).unwrap_or_default();
        crate::body::validate(body, self.body_offset)
    }

    /// The subject as text, if it is valid UTF-8.
    pub fn subject_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.subject).ok()
    }

    /// The reply subject as text, if it is valid UTF-8.
    pub fn reply_subject_str(&self) -> Option<&'a str> {
        std::str::from_utf8(self.reply_subject).ok()
    }
}

/// The header of a frame to be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// Subscription id (0 = none).
    pub subscription_id: u32,
    /// Subject, pattern, or service name.
    pub subject: &'a [u8],
    /// Reply subject, or client name; empty for none.
    pub reply_subject: &'a [u8],
    /// The action.
    pub action: Action,
}

impl<'a> Header<'a> {
    /// A header with the given action and everything else empty.
    pub const fn new(action: Action) -> Self {
        Header {
            subscription_id: 0,
            subject: &[],
            reply_subject: &[],
            action,
        }
    }

    /// A SEND_MESSAGE header for `subject`.
    pub fn send_message(subject: &'a str) -> Self {
        Header::new(Action::SendMessage).with_subject(subject)
    }

    /// Sets the subscription id.
    #[must_use]
    pub const fn with_subscription_id(mut self, subscription_id: u32) -> Self {
        self.subscription_id = subscription_id;
        self
    }

    /// Sets the subject.
    #[must_use]
    pub fn with_subject(mut self, subject: &'a str) -> Self {
        self.subject = subject.as_bytes();
        self
    }

    /// Sets the reply subject.
    #[must_use]
    pub fn with_reply_subject(mut self, reply_subject: &'a str) -> Self {
        self.reply_subject = reply_subject.as_bytes();
        self
    }

    /// Number of bytes this header occupies after the length prefix.
    #[inline]
    pub fn encoded_len(&self) -> usize {
        4 + 4 + self.subject.len() + 4 + self.reply_subject.len() + 1
    }
}

/// Overwrites bytes 4..7 of `frame` with `subscription_id`: how the gateway stamps a delivered
/// copy for each matching subscription.
///
/// # Panics
///
/// Never for a frame of at least [`MIN_FRAME_SIZE`] bytes; a shorter slice is a caller bug and
/// panics.
#[inline]
pub fn patch_subscription_id(frame: &mut [u8], subscription_id: u32) {
    frame[SUBSCRIPTION_ID_OFFSET..SUBSCRIPTION_ID_OFFSET + 4]
        .copy_from_slice(&subscription_id.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscribe_vector_header() {
        let frame = include_bytes!("../../../testdata/vectors/subscribe.bin");
        let header = HeaderView::parse(frame).unwrap();
        assert_eq!(header.subscription_id, 1);
        assert_eq!(header.subject, b"A.B");
        assert_eq!(header.reply_subject, b"");
        assert_eq!(header.action(), Some(Action::Subscribe));
        assert_eq!(header.body_offset, frame.len() - 4);
    }

    #[test]
    fn truncated_header_names_the_part() {
        let mut frame = include_bytes!("../../../testdata/vectors/subscribe.bin").to_vec();
        // Subject length larger than the frame.
        frame[8] = 200;
        assert_eq!(
            HeaderView::parse(&frame),
            Err(DecodeError::Truncated {
                what: "subject",
                offset: 8
            })
        );
        frame[8..12].copy_from_slice(&(-1i32).to_le_bytes());
        assert_eq!(
            HeaderView::parse(&frame),
            Err(DecodeError::Negative {
                what: "subject",
                value: -1,
                offset: 8
            })
        );
    }

    #[test]
    fn patch_changes_only_bytes_4_to_7() {
        let mut frame = include_bytes!("../../../testdata/vectors/send-message.bin").to_vec();
        patch_subscription_id(&mut frame, 5);
        assert_eq!(
            frame.as_slice(),
            include_bytes!("../../../testdata/vectors/send-message-delivered-sub5.bin")
        );
    }
}
