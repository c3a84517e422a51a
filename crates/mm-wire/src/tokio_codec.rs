//! A `tokio_util::codec` Decoder/Encoder for frames (cargo feature `tokio-codec`).
//!
//! For code that frames a tokio stream with `tokio_util::codec::Framed`. Off by default: the wire
//! format needs no I/O runtime, and the gateway and the Rust client drive the plain
//! [`FrameDecoder`](crate::FrameDecoder) themselves, so they do not compile tokio-util.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::frame::decode_from;
use crate::{DecodeError, EncodeError, Frame, Header, Message, encode_frame};

/// Errors of the codec: bad input, bad output, or the transport's I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent something that is not a frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A frame could not be encoded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The underlying transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Frames over a byte stream, for `tokio_util::codec::Framed`.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_frame: u32,
}

impl FrameCodec {
    /// A codec that rejects incoming frames longer than `max_frame` bytes.
    pub fn new(max_frame: u32) -> FrameCodec {
        FrameCodec { max_frame }
    }
}

impl Default for FrameCodec {
    fn default() -> Self {
        FrameCodec::new(crate::DEFAULT_MAX_FRAME)
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = CodecError;

    fn decode(&mut self, buffer: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
        Ok(decode_from(buffer, self.max_frame)?)
    }
}

/// Writes an already-encoded frame as it is.
impl Encoder<Frame> for FrameCodec {
    type Error = CodecError;

    fn encode(&mut self, frame: Frame, out: &mut BytesMut) -> Result<(), CodecError> {
        out.extend_from_slice(frame.as_bytes());
        Ok(())
    }
}

/// Encodes a header and a Message into one frame.
impl Encoder<(Header<'_>, &Message)> for FrameCodec {
    type Error = CodecError;

    fn encode(
        &mut self,
        (header, message): (Header<'_>, &Message),
        out: &mut BytesMut,
    ) -> Result<(), CodecError> {
        encode_frame(out, &header, message)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn round_trip_through_codec() {
        let mut codec = FrameCodec::default();
        let mut buffer = BytesMut::new();
        let message = Message::new().add_i32("#", 7);
        codec
            .encode((Header::send_message("A.B"), &message), &mut buffer)
            .unwrap();
        let mut partial = buffer.split_to(10);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.unsplit(buffer);
        let frame = codec.decode(&mut partial).unwrap().unwrap();
        assert_eq!(frame.action(), Some(Action::SendMessage));
        assert_eq!(frame.message().unwrap(), message);
        assert!(codec.decode(&mut partial).unwrap().is_none());
    }
}
