//! Framing (SPEC §1): finding frame boundaries in a byte stream, owned [`Frame`]s, and writing
//! whole frames.
//!
//! A stream is a sequence of frames, each starting with an `i32` length that counts the whole
//! frame, prefix included. [`frame_length`] peeks at a buffer and answers one of three things —
//! need more bytes, a malformed length, or "a frame of N bytes is complete" — and checks the length
//! against `max_frame` *before* anything is reserved for it. [`FrameDecoder`] builds on it for
//! callers that feed bytes split anywhere.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

use crate::body;
use crate::header::{Header, HeaderView, LENGTH_PREFIX_SIZE, MIN_FRAME_SIZE};
use crate::{Action, DecodeError, EncodeError, Message};

/// The default largest frame a receiver accepts: 64 MiB (SPEC §1).
pub const DEFAULT_MAX_FRAME: u32 = 64 * 1024 * 1024;

/// The largest `max_frame` a receiver may configure: what the `i32` prefix can express.
pub const MAX_FRAME_LIMIT: u32 = i32::MAX as u32;

/// Peeks at the frame at the start of `buffer`.
///
/// * `Ok(None)`: fewer than 4 bytes, or the frame is not complete yet (wait for more bytes).
/// * `Ok(Some(n))`: the first `n` bytes are one whole frame, `MIN_FRAME_SIZE <= n <= max_frame`.
/// * `Err(_)`: the length is below 21 or above `max_frame`; the stream cannot be resynchronised.
#[inline]
pub fn frame_length(buffer: &[u8], max_frame: u32) -> Result<Option<usize>, DecodeError> {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_SIZE>() else {
        return Ok(None);
    };
    let length = check_length(i32::from_le_bytes(*prefix), max_frame)?;
    Ok((buffer.len() >= length).then_some(length))
}

/// Checks a length prefix: `MIN_FRAME_SIZE <= length <= max_frame`.
#[inline]
fn check_length(length: i32, max_frame: u32) -> Result<usize, DecodeError> {
    if length < MIN_FRAME_SIZE as i32 {
        return Err(DecodeError::FrameTooShort { length });
    }
    // `length` is positive here.
    let length = length as u32;
    if length > max_frame {
        return Err(DecodeError::FrameTooLarge {
            length,
            max: max_frame,
        });
    }
    Ok(length as usize)
}

/// One whole frame, owned, with its header already located.
///
/// Cloning is cheap (the bytes are shared). A `Frame` always has a well-formed header (it fits in
/// the frame); its body has not been decoded — see [`Frame::message`].
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The whole frame, length prefix included.
    bytes: Bytes,
    /// Where the header fields are. Invariant: they lie within `bytes`.
    layout: HeaderLayout,
}

/// Offsets of the header fields inside a frame.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct HeaderLayout {
    subscription_id: u32,
    subject: (u32, u32),
    reply_subject: (u32, u32),
    action_byte: u8,
    body_offset: u32,
}

impl Frame {
    /// Wraps `bytes`, which must be exactly one whole frame: its length prefix equals
    /// `bytes.len()`, is at least 21, and the header fits.
    pub fn parse(bytes: Bytes) -> Result<Frame, DecodeError> {
        let length = check_length(
            i32::from_le_bytes(*bytes.first_chunk::<LENGTH_PREFIX_SIZE>().ok_or(
                DecodeError::Truncated {
                    what: "frame length",
                    offset: 0,
                },
            )?),
            MAX_FRAME_LIMIT,
        )?;
        if length != bytes.len() {
            return Err(DecodeError::Truncated {
                what: "frame",
                offset: bytes.len().min(length),
            });
        }
        let header = HeaderView::parse(&bytes)?;
        let range = |part: &[u8]| {
            let start = part.as_ptr() as usize - bytes.as_ptr() as usize;
            (start as u32, (start + part.len()) as u32)
        };
        let layout = HeaderLayout {
            subscription_id: header.subscription_id,
            subject: range(header.subject),
            reply_subject: range(header.reply_subject),
            action_byte: header.action_byte,
            body_offset: header.body_offset as u32,
        };
        Ok(Frame { bytes, layout })
    }

    /// Encodes a frame from a header and a Message.
    pub fn new(header: &Header<'_>, message: &Message) -> Result<Frame, EncodeError> {
        let mut out = Vec::new();
        encode_frame(&mut out, header, message)?;
        // Cannot fail: `encode_frame` wrote exactly one frame whose prefix equals its length
        // (at least 21, at most MAX_FRAME_LIMIT) and whose header fits.
        Ok(Frame::parse(Bytes::from(out)).expect("a frame we encoded parses"))
    }

    /// The header, borrowed from the frame.
    #[inline]
    pub fn header(&self) -> HeaderView<'_> {
        HeaderView {
            subscription_id: self.layout.subscription_id,
            subject: &self.bytes[range(self.layout.subject)],
            reply_subject: &self.bytes[range(self.layout.reply_subject)],
            action_byte: self.layout.action_byte,
            body_offset: self.layout.body_offset as usize,
        }
    }

    /// The action, or `None` for an unknown action byte.
    #[inline]
    pub fn action(&self) -> Option<Action> {
        Action::from_byte(self.layout.action_byte)
    }

    /// The subscription id in the header.
    #[inline]
    pub fn subscription_id(&self) -> u32 {
        self.layout.subscription_id
    }

    /// The subject bytes.
    pub fn subject(&self) -> &[u8] {
        &self.bytes[range(self.layout.subject)]
    }

    /// The reply subject bytes (empty for none).
    pub fn reply_subject(&self) -> &[u8] {
        &self.bytes[range(self.layout.reply_subject)]
    }

    /// The subject as a shared buffer (no copy).
    pub fn subject_bytes(&self) -> Bytes {
        self.bytes.slice(range(self.layout.subject))
    }

    /// The reply subject as a shared buffer (no copy).
    pub fn reply_subject_bytes(&self) -> Bytes {
        self.bytes.slice(range(self.layout.reply_subject))
    }

    /// The body: every byte after the header (the Message and anything after it).
    pub fn body(&self) -> Bytes {
        self.bytes.slice(self.layout.body_offset as usize..)
    }

    /// Decodes the body into a Message; strings and blobs share the frame's buffer. Error offsets
    /// count from the start of the frame.
    pub fn message(&self) -> Result<Message, DecodeError> {
        body::decode(&self.body(), self.layout.body_offset as usize)
    }

    /// Checks that the body decodes (see [`Message::validate`]) without decoding it. Error
    /// offsets count from the start of the frame.
    pub fn validate_message(&self) -> Result<(), DecodeError> {
        let offset = self.layout.body_offset as usize;
        body::validate(&self.bytes[offset..], offset)
    }

    /// The whole frame, length prefix included.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The whole frame as a shared buffer.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Length of the whole frame in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a frame has at least 21 bytes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        false
    }
}

fn range((start, end): (u32, u32)) -> Range<usize> {
    start as usize..end as usize
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let header = self.header();
        f.debug_struct("Frame")
            .field("length", &self.len())
            .field("action", &header.action_byte)
            .field("subscription_id", &header.subscription_id)
            .field("subject", &String::from_utf8_lossy(header.subject))
            .field(
                "reply_subject",
                &String::from_utf8_lossy(header.reply_subject),
            )
            .finish()
    }
}

/// Cuts whole frames out of a byte stream that arrives in arbitrary pieces.
///
/// Feed bytes with [`FrameDecoder::feed`] (or read straight into [`FrameDecoder::buffer_mut`]),
/// then call [`FrameDecoder::next_frame`] until it returns `Ok(None)`. After an error the stream
/// cannot be resynchronised: the caller closes the connection.
///
/// Buffer invariant: `buffered() < 4`, or the frame at the front has a valid length `L` and
/// `buffered() < L` (after `next_frame` returned `Ok(None)`).
#[derive(Debug)]
pub struct FrameDecoder {
    /// Bytes received and not yet returned as frames.
    buffer: BytesMut,
    /// Largest accepted frame.
    max_frame: u32,
}

impl FrameDecoder {
    /// A decoder that rejects frames longer than `max_frame` bytes.
    pub fn new(max_frame: u32) -> FrameDecoder {
        FrameDecoder {
            buffer: BytesMut::new(),
            max_frame,
        }
    }

    /// Appends received bytes.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The receive buffer, for reading into directly.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buffer
    }

    /// Number of bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// The largest accepted frame.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// The next whole frame, `Ok(None)` if more bytes are needed, or the reason the stream is bad.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        decode_from(&mut self.buffer, self.max_frame)
    }
}

/// Takes one frame off the front of `buffer` if it is complete. Shared by [`FrameDecoder`] and the
/// tokio codec.
pub(crate) fn decode_from(
    buffer: &mut BytesMut,
    max_frame: u32,
) -> Result<Option<Frame>, DecodeError> {
    match frame_length(buffer, max_frame)? {
        Some(length) => Frame::parse(buffer.split_to(length).freeze()).map(Some),
        None => {
            if let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_SIZE>() {
                // The length was valid (frame_length checked it): reserve room for the rest of
                // the frame so the next reads complete it without repeated growth. Bounded by
                // max_frame.
                let length = i32::from_le_bytes(*prefix) as usize;
                buffer.reserve(length - buffer.len());
            }
            Ok(None)
        }
    }
}

/// Appends one whole frame — length prefix, header, encoded Message — to `out` and returns its
/// length.
///
/// With a `Vec<u8>` or `BytesMut` that already has the capacity, this does not allocate.
pub fn encode_frame<B: BufMut>(
    out: &mut B,
    header: &Header<'_>,
    message: &Message,
) -> Result<usize, EncodeError> {
    let body_len = body::measure(message)?;
    let length = frame_size(header, body_len)?;
    write_header(out, header, length);
    body::write(message, out);
    Ok(length)
}

/// Appends one whole frame whose body is already encoded (`body` starts with a field count) and
/// returns its length.
pub fn encode_frame_with_body<B: BufMut>(
    out: &mut B,
    header: &Header<'_>,
    body: &[u8],
) -> Result<usize, EncodeError> {
    let length = frame_size(header, body.len())?;
    write_header(out, header, length);
    out.put_slice(body);
    Ok(length)
}

/// Appends a frame with an empty Message (a control frame) and returns its length.
pub fn encode_control_frame<B: BufMut>(
    out: &mut B,
    header: &Header<'_>,
) -> Result<usize, EncodeError> {
    encode_frame_with_body(out, header, &[0, 0, 0, 0])
}

fn frame_size(header: &Header<'_>, body_len: usize) -> Result<usize, EncodeError> {
    let length = LENGTH_PREFIX_SIZE as u64 + header.encoded_len() as u64 + body_len as u64;
    if length > u64::from(MAX_FRAME_LIMIT) {
        return Err(EncodeError::FrameTooLarge {
            length,
            max: u64::from(MAX_FRAME_LIMIT),
        });
    }
    Ok(length as usize)
}

/// Writes the length prefix and header. Precondition: `length` came from [`frame_size`], so every
/// length fits in an `i32`.
fn write_header<B: BufMut>(out: &mut B, header: &Header<'_>, length: usize) {
    body::put_len(out, length);
    out.put_u32_le(header.subscription_id);
    body::put_bytes(out, header.subject);
    body::put_bytes(out, header.reply_subject);
    out.put_u8(header.action.to_byte());
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBSCRIBE: &[u8] = include_bytes!("../../../testdata/vectors/subscribe.bin");

    #[test]
    fn frame_length_three_outcomes() {
        assert_eq!(frame_length(&SUBSCRIBE[..3], 100), Ok(None));
        assert_eq!(frame_length(&SUBSCRIBE[..23], 100), Ok(None));
        assert_eq!(frame_length(SUBSCRIBE, 100), Ok(Some(24)));
        assert_eq!(
            frame_length(&20i32.to_le_bytes(), 100),
            Err(DecodeError::FrameTooShort { length: 20 })
        );
        assert_eq!(
            frame_length(&(-5i32).to_le_bytes(), 100),
            Err(DecodeError::FrameTooShort { length: -5 })
        );
        assert_eq!(
            frame_length(&101i32.to_le_bytes(), 100),
            Err(DecodeError::FrameTooLarge {
                length: 101,
                max: 100
            })
        );
    }

    #[test]
    fn decoder_handles_every_split_point() {
        let mut stream = Vec::new();
        for _ in 0..3 {
            stream.extend_from_slice(SUBSCRIBE);
        }
        for split in 0..=stream.len() {
            let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
            let mut frames = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                decoder.feed(part);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames.len(), 3, "split at {split}");
            assert!(frames.iter().all(|frame| frame.as_bytes() == SUBSCRIBE));
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn huge_length_reserves_nothing() {
        let mut decoder = FrameDecoder::new(1024);
        decoder.feed(&i32::MAX.to_le_bytes());
        assert!(matches!(
            decoder.next_frame(),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert!(decoder.buffer_mut().capacity() < 1024);
    }

    #[test]
    fn frame_with_header_past_its_end_is_rejected() {
        // Length 21, subject length 9: the header does not fit.
        let mut frame = vec![21, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0];
        frame.resize(21, 0);
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME);
        decoder.feed(&frame);
        assert!(matches!(
            decoder.next_frame(),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn encode_control_frames_match_vectors() {
        let mut out = Vec::new();
        encode_control_frame(
            &mut out,
            &Header::new(Action::Subscribe)
                .with_subscription_id(1)
                .with_subject("A.B"),
        )
        .unwrap();
        assert_eq!(out, SUBSCRIBE);
    }
}
