//! Socket to frames: one read from a connection's socket, split into whole frames.
//!
//! Reads go into one buffer shared by the whole service, so an idle connection owns no read
//! buffer. Only an incomplete frame at the end of a read is copied into the connection's own
//! `partial` buffer, and the next read goes there until that frame is whole. Needing more bytes is
//! not an error. Each frame's length is checked against `max_frame` before anything is done with
//! it (SPEC §1).

use bytes::{Buf, BytesMut};
use mm_wire::{DecodeError, frame_length};
use tokio::net::TcpStream;

/// Size of the shared read buffer: one read takes at most this much from a socket.
pub(crate) const READ_BUFFER_BYTES: usize = 128 * 1024;

/// What the frame handler wants after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFrame {
    /// Go on with the next frame.
    Continue,
    /// The connection was closed: stop.
    Stop,
}

/// How one read went.
#[derive(Debug)]
pub(crate) enum ReadStatus {
    /// The read filled the space it was given: more is probably waiting.
    Filled,
    /// The read returned less than the space given: the socket is drained for now.
    Drained,
    /// Nothing to read.
    WouldBlock,
    /// End of stream.
    PeerClosed,
    /// The read failed.
    Failed(std::io::Error),
    /// The bytes are not a valid frame stream (bad length); nothing after it was processed.
    Malformed(DecodeError),
    /// The frame handler closed the connection.
    Stopped,
}

/// The result of one read: its status, and how many bytes it brought.
#[derive(Debug)]
pub(crate) struct ReadResult {
    /// How it went.
    pub(crate) status: ReadStatus,
    /// Bytes read from the socket (0 unless something arrived).
    pub(crate) bytes: usize,
}

impl ReadResult {
    fn without_data(status: ReadStatus) -> ReadResult {
        ReadResult { status, bytes: 0 }
    }
}

/// Reads once from `stream` — into `shared` when no frame is incomplete, else into `partial` —
/// and hands every complete frame to `on_frame`, in order. The incomplete tail, if any, is left
/// in `partial`.
pub(crate) fn read_frames(
    stream: &TcpStream,
    partial: &mut BytesMut,
    shared: &mut [u8],
    max_frame: u32,
    mut on_frame: impl FnMut(&[u8]) -> AfterFrame,
) -> ReadResult {
    if partial.is_empty() {
        // The common case: read into the shared buffer, keep only an incomplete tail.
        let read = match stream.try_read(shared) {
            Ok(0) => return ReadResult::without_data(ReadStatus::PeerClosed),
            Ok(read) => read,
            Err(error) => return ReadResult::without_data(failed(error)),
        };
        let status = match split_frames(&shared[..read], max_frame, &mut on_frame) {
            Ok(consumed) => {
                partial.extend_from_slice(&shared[consumed..read]);
                filled_or_drained(read, shared.len())
            }
            Err(status) => status,
        };
        ReadResult {
            status,
            bytes: read,
        }
    } else {
        // An incomplete frame is waiting: read into the connection's own buffer, sized for the
        // rest of that frame (its length was checked against max_frame when it arrived).
        let wanted = frame_length_hint(partial).saturating_sub(partial.len());
        partial.reserve(wanted.clamp(4096, READ_BUFFER_BYTES.max(wanted)));
        let spare = partial.capacity() - partial.len();
        let read = match stream.try_read_buf(partial) {
            Ok(0) => return ReadResult::without_data(ReadStatus::PeerClosed),
            Ok(read) => read,
            Err(error) => return ReadResult::without_data(failed(error)),
        };
        let status = match split_frames(partial, max_frame, &mut on_frame) {
            Ok(consumed) => {
                partial.advance(consumed);
                if partial.is_empty() {
                    // Do not keep a large buffer for an idle connection.
                    *partial = BytesMut::new();
                }
                filled_or_drained(read, spare)
            }
            Err(status) => status,
        };
        ReadResult {
            status,
            bytes: read,
        }
    }
}

/// Hands every complete frame at the start of `bytes` to `on_frame`; returns how many bytes
/// they took, or why it stopped.
pub(crate) fn split_frames(
    bytes: &[u8],
    max_frame: u32,
    on_frame: &mut impl FnMut(&[u8]) -> AfterFrame,
) -> Result<usize, ReadStatus> {
    let mut offset = 0;
    loop {
        match frame_length(&bytes[offset..], max_frame) {
            Ok(Some(length)) => {
                let frame = &bytes[offset..offset + length];
                offset += length;
                if on_frame(frame) == AfterFrame::Stop {
                    return Err(ReadStatus::Stopped);
                }
            }
            Ok(None) => return Ok(offset),
            Err(error) => return Err(ReadStatus::Malformed(error)),
        }
    }
}

fn failed(error: std::io::Error) -> ReadStatus {
    if error.kind() == std::io::ErrorKind::WouldBlock {
        ReadStatus::WouldBlock
    } else {
        ReadStatus::Failed(error)
    }
}

fn filled_or_drained(read: usize, space: usize) -> ReadStatus {
    if read >= space {
        ReadStatus::Filled
    } else {
        ReadStatus::Drained
    }
}

/// The length of the frame at the start of `bytes`, if its prefix has arrived.
fn frame_length_hint(bytes: &[u8]) -> usize {
    bytes
        .first_chunk::<4>()
        .map_or(0, |prefix| i32::from_le_bytes(*prefix).max(0) as usize)
}
