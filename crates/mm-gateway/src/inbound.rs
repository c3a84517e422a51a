//! Socket to frames: one read from a connection's socket, split into whole frames.
//!
//! Reads go into one buffer shared by the whole service, so an idle connection owns no read
//! buffer. Only an incomplete frame at the end of a read is copied into the connection's own
//! `partial` buffer, and the next read goes there until that frame is whole. Needing more bytes is
//! not an error. Each frame's length is checked against `max_frame` before anything is done with
//! it (SPEC §1), but an incomplete frame's buffer grows only with the bytes that actually arrive
//! (issue #12: a peer announcing 64 MiB frames and sending a few bytes of each used to make the
//! gateway reserve 64 MiB apiece).
//!
//! The frame handler may pause the batch (it has worked long enough): the frames not yet
//! processed stay in `partial`, and the next call processes them before reading again.

use bytes::{Buf, BytesMut};
use mm_wire::{DecodeError, frame_length};

use crate::socket::ConnectionHandle;

/// Size of the shared read buffer: one read takes at most this much from a socket.
pub(crate) const READ_BUFFER_BYTES: usize = 128 * 1024;

/// What the frame handler wants after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFrame {
    /// Go on with the next frame.
    Continue,
    /// The batch has worked long enough: keep the remaining frames for the next call.
    Pause,
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
    /// The frame handler paused: complete frames are waiting in `partial`.
    Paused,
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

/// Processes the complete frames waiting in `partial` (left by a paused batch), then reads once
/// from the connection's socket (through its TLS session, if any) — into `shared` when no frame is incomplete, else into `partial` — and hands
/// every complete frame to `on_frame`, in order. What is left (an incomplete frame, or frames a
/// pause left unprocessed) stays in `partial`.
pub(crate) fn read_frames(
    socket: &ConnectionHandle,
    partial: &mut BytesMut,
    shared: &mut [u8],
    max_frame: u32,
    mut on_frame: impl FnMut(&[u8]) -> AfterFrame,
) -> ReadResult {
    if !partial.is_empty() {
        match split_frames(partial, max_frame, &mut on_frame) {
            Split::Complete(consumed) => advance(partial, consumed),
            Split::Paused(consumed) => {
                advance(partial, consumed);
                return ReadResult::without_data(ReadStatus::Paused);
            }
            Split::Stopped => return ReadResult::without_data(ReadStatus::Stopped),
            Split::Malformed(error) => {
                return ReadResult::without_data(ReadStatus::Malformed(error));
            }
        }
    }
    if partial.is_empty() {
        // The common case: read into the shared buffer, keep only an incomplete tail.
        let read = match socket.read(shared) {
            Ok(0) => return ReadResult::without_data(ReadStatus::PeerClosed),
            Ok(read) => read,
            Err(error) => return ReadResult::without_data(failed(error)),
        };
        let status = match split_frames(&shared[..read], max_frame, &mut on_frame) {
            Split::Complete(consumed) => {
                partial.extend_from_slice(&shared[consumed..read]);
                filled_or_drained(read, shared.len())
            }
            Split::Paused(consumed) => {
                partial.extend_from_slice(&shared[consumed..read]);
                ReadStatus::Paused
            }
            Split::Stopped => ReadStatus::Stopped,
            Split::Malformed(error) => ReadStatus::Malformed(error),
        };
        ReadResult {
            status,
            bytes: read,
        }
    } else {
        // An incomplete frame is waiting: read into the connection's own buffer, which grows
        // with what arrives (at most a read buffer's worth at a time), not by the length the
        // frame announces.
        let wanted = frame_length_hint(partial).saturating_sub(partial.len());
        partial.reserve(wanted.clamp(4096, READ_BUFFER_BYTES));
        // One read takes at most a read buffer's worth even when the buffer has more room (a
        // doubled buffer has megabytes): a batch of reads then costs about the same whether
        // frames are small or large, and others wait no longer for a large frame's bytes.
        let spare = (partial.capacity() - partial.len()).min(READ_BUFFER_BYTES);
        let read = match socket.read_buf(partial, spare) {
            Ok(0) => return ReadResult::without_data(ReadStatus::PeerClosed),
            Ok(read) => read,
            Err(error) => return ReadResult::without_data(failed(error)),
        };
        let status = match split_frames(partial, max_frame, &mut on_frame) {
            Split::Complete(consumed) => {
                advance(partial, consumed);
                filled_or_drained(read, spare)
            }
            Split::Paused(consumed) => {
                advance(partial, consumed);
                ReadStatus::Paused
            }
            Split::Stopped => ReadStatus::Stopped,
            Split::Malformed(error) => ReadStatus::Malformed(error),
        };
        ReadResult {
            status,
            bytes: read,
        }
    }
}

/// Drops `consumed` processed bytes from the front of `partial`; an emptied buffer gives its
/// memory back (an idle connection keeps no read buffer).
fn advance(partial: &mut BytesMut, consumed: usize) {
    partial.advance(consumed);
    if partial.is_empty() {
        *partial = BytesMut::new();
    }
}

/// How handing out the frames of a buffer ended.
#[derive(Debug)]
pub(crate) enum Split {
    /// Every complete frame was handled; they took this many bytes.
    Complete(usize),
    /// The handler paused after frames that took this many bytes.
    Paused(usize),
    /// The handler closed the connection.
    Stopped,
    /// A bad length: the stream is broken.
    Malformed(DecodeError),
}

/// Hands every complete frame at the start of `bytes` to `on_frame`, in order.
pub(crate) fn split_frames(
    bytes: &[u8],
    max_frame: u32,
    on_frame: &mut impl FnMut(&[u8]) -> AfterFrame,
) -> Split {
    let mut offset = 0;
    loop {
        match frame_length(&bytes[offset..], max_frame) {
            Ok(Some(length)) => {
                let frame = &bytes[offset..offset + length];
                offset += length;
                match on_frame(frame) {
                    AfterFrame::Continue => {}
                    AfterFrame::Pause => return Split::Paused(offset),
                    AfterFrame::Stop => return Split::Stopped,
                }
            }
            Ok(None) => return Split::Complete(offset),
            Err(error) => return Split::Malformed(error),
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

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt;

    use super::*;
    use crate::test_io::{run, socket_pair};

    /// A large frame's bytes are read at most a read buffer's worth at a time, however much room
    /// its (doubled) buffer has and however much the socket holds: one read of megabytes into
    /// fresh memory held the service loop for milliseconds.
    #[test]
    fn a_large_frame_is_read_a_read_buffer_at_a_time() {
        run(async {
            let (gateway_end, mut test_end) = socket_pair().await;
            let socket = ConnectionHandle::new(gateway_end, None);
            let frame_bytes = 8 * 1024 * 1024;
            let mut sent = (frame_bytes as i32).to_le_bytes().to_vec();
            sent.resize(2 * 1024 * 1024, 0x55);
            test_end.write_all(&sent[4..]).await.expect("write");
            socket.stream.readable().await.expect("readable");

            let mut partial = BytesMut::with_capacity(frame_bytes);
            partial.extend_from_slice(&sent[..4]);
            let mut shared = vec![0u8; READ_BUFFER_BYTES];
            let mut received = 4;
            let mut frames = 0;
            while received < sent.len() {
                let result = read_frames(&socket, &mut partial, &mut shared, u32::MAX, |_| {
                    frames += 1;
                    AfterFrame::Continue
                });
                match result.status {
                    ReadStatus::Filled | ReadStatus::Drained => {}
                    ReadStatus::WouldBlock => {
                        socket.stream.readable().await.expect("readable");
                        continue;
                    }
                    status => panic!("unexpected read status {status:?}"),
                }
                assert!(
                    result.bytes <= READ_BUFFER_BYTES,
                    "one read took {} bytes",
                    result.bytes
                );
                received += result.bytes;
                assert_eq!(partial.len(), received);
            }
            assert_eq!(frames, 0);
            assert!(partial[..] == sent[..], "the bytes kept are the bytes sent");
        });
    }
}
