//! [`OutboundBuffer`]: a connection's queued output, written to the socket in as few syscalls as
//! possible.
//!
//! Deliveries append whole frames; the service loop writes the buffer once per batch (one
//! `write` for everything queued since the last one), so under load many frames leave in one
//! syscall. The buffer has a byte bound (SPEC §6.3), enforced by the service loop: this type only
//! reports how full it is.
//!
//! An idle connection should cost almost nothing, so the service releases the buffers of
//! connections that have written nothing for a while ([`OutboundBuffer::release`]).

use std::collections::VecDeque;

use bytes::{Buf, BytesMut};

/// Queued output of one connection.
///
/// Invariants: `0 <= pending() <= bound` after every flush, or the connection is being closed as
/// a slow consumer; `frame_lengths` lists the frames in `bytes`, front first, and their sum minus
/// `front_written` equals `bytes.len()`.
#[derive(Debug, Default)]
pub(crate) struct OutboundBuffer {
    /// Bytes not yet written. The front is the next byte to write.
    bytes: BytesMut,
    /// Length of every queued frame, front first. Kept beside the bytes (4 bytes per frame,
    /// contiguous) rather than found by reading each frame's length prefix when it is written:
    /// that walk touched one cache line per frame and showed up in profiles.
    frame_lengths: VecDeque<u32>,
    /// Bytes of the front frame already written (0 when the front is at a frame boundary).
    front_written: usize,
}

impl OutboundBuffer {
    /// Appends a whole frame and returns the offset where it starts, so the caller can patch it.
    #[inline]
    pub(crate) fn push(&mut self, frame: &[u8]) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frame_lengths.push_back(frame.len() as u32);
        start
    }

    /// Records that one whole frame of `length` bytes was encoded into
    /// [`OutboundBuffer::buffer_mut`].
    #[inline]
    pub(crate) fn note_encoded_frame(&mut self, length: usize) {
        self.frame_lengths.push_back(length as u32);
    }

    /// Mutable access to the queued bytes from `start` on (for patching a frame just pushed).
    #[inline]
    pub(crate) fn tail_mut(&mut self, start: usize) -> &mut [u8] {
        &mut self.bytes[start..]
    }

    /// The buffer, for encoding a whole frame straight into it (then call
    /// [`OutboundBuffer::note_encoded_frame`]).
    #[inline]
    pub(crate) fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.bytes
    }

    /// Bytes queued and not yet written.
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The bytes to write next.
    #[inline]
    pub(crate) fn chunk(&self) -> &[u8] {
        &self.bytes
    }

    /// Frames queued (the front one possibly partly written).
    #[inline]
    pub(crate) fn frames(&self) -> usize {
        self.frame_lengths.len()
    }

    /// Marks `written` bytes as sent.
    pub(crate) fn consume(&mut self, written: usize) {
        self.bytes.advance(written);
        if self.bytes.is_empty() {
            // Everything went out (the common case): no per-frame work.
            self.frame_lengths.clear();
            self.front_written = 0;
            return;
        }
        let mut written = written + self.front_written;
        while let Some(&length) = self.frame_lengths.front() {
            let length = length as usize;
            if written < length {
                break;
            }
            written -= length;
            self.frame_lengths.pop_front();
        }
        self.front_written = written;
    }

    /// Drops every queued frame not yet started (a slow consumer's backlog) and frees the
    /// memory. The rest of a partly written front frame is kept, so that the stream stays
    /// aligned on frame boundaries and a frame queued afterwards (the ERROR) is read as one.
    /// Returns the bytes and frames dropped.
    pub(crate) fn discard(&mut self) -> (usize, usize) {
        let keep = if self.front_written > 0 {
            self.frame_lengths
                .front()
                .map_or(0, |&length| length as usize - self.front_written)
        } else {
            0
        };
        let kept_frames = usize::from(keep > 0);
        let dropped = (
            self.bytes.len() - keep,
            self.frame_lengths.len() - kept_frames,
        );
        self.bytes = BytesMut::from(&self.bytes[..keep]);
        self.frame_lengths.truncate(kept_frames);
        self.frame_lengths.shrink_to_fit();
        dropped
    }

    /// Takes everything queued, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> BytesMut {
        self.frame_lengths.clear();
        self.front_written = 0;
        std::mem::take(&mut self.bytes)
    }

    /// Frees the allocation of an idle connection once everything has been written. (A drained
    /// `BytesMut` still holds its allocation even though its view's capacity reads 0.)
    pub(crate) fn release(&mut self) {
        if self.bytes.is_empty() {
            self.bytes = BytesMut::new();
            self.frame_lengths = VecDeque::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(length: usize, fill: u8) -> Vec<u8> {
        let mut frame = vec![fill; length];
        frame[..4].copy_from_slice(&(length as i32).to_le_bytes());
        frame
    }

    #[test]
    fn push_patch_consume_counts_frames() {
        let mut buffer = OutboundBuffer::default();
        let start = buffer.push(&frame(25, 1));
        buffer.tail_mut(start)[4] = b'X';
        assert_eq!(buffer.chunk()[4], b'X');
        buffer.push(&frame(30, 2));
        buffer.push(&frame(21, 3));
        assert_eq!(buffer.frames(), 3);
        buffer.consume(10);
        assert_eq!(buffer.frames(), 3);
        buffer.consume(15);
        assert_eq!(buffer.frames(), 2);
        buffer.consume(40);
        assert_eq!(buffer.frames(), 1);
        assert_eq!(buffer.pending(), 11);
        // The front frame is partly written: it is kept.
        assert_eq!(buffer.discard(), (0, 0));
        assert_eq!(buffer.pending(), 11);
        buffer.consume(11);
        assert!(buffer.is_empty());
        assert_eq!(buffer.frames(), 0);
    }

    #[test]
    fn discard_keeps_the_rest_of_a_partly_written_frame() {
        let mut buffer = OutboundBuffer::default();
        buffer.push(&frame(25, 1));
        buffer.push(&frame(30, 2));
        buffer.push(&frame(40, 3));
        buffer.consume(10);
        assert_eq!(buffer.discard(), (70, 2));
        assert_eq!(buffer.pending(), 15);
        assert_eq!(buffer.frames(), 1);
        buffer.push(&frame(21, 4));
        buffer.consume(15);
        assert_eq!(buffer.frames(), 1);
        assert_eq!(buffer.chunk()[..4], 21i32.to_le_bytes());
    }

    #[test]
    fn release_only_when_drained() {
        let mut buffer = OutboundBuffer::default();
        buffer.push(&frame(100, 0));
        buffer.release();
        assert_eq!(buffer.pending(), 100);
        buffer.consume(100);
        buffer.release();
        assert_eq!(buffer.frames(), 0);
        buffer.push(&frame(30, 1));
        assert_eq!(buffer.pending(), 30);
    }
}
