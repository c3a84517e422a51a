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

use bytes::{Buf, BytesMut};

/// Queued output of one connection.
///
/// Invariants: `0 <= pending() <= bound` after every flush, or the connection is being closed as
/// a slow consumer; `bytes` holds `frames` frames, the first of which has only its last
/// `front_remaining` bytes left when `front_remaining > 0` (it was partly written).
#[derive(Debug, Default)]
pub(crate) struct OutboundBuffer {
    /// Bytes not yet written. The front is the next byte to write.
    bytes: BytesMut,
    /// Frames (whole or, at the front, partly written) in `bytes`.
    frames: usize,
    /// Bytes of the front frame still to write; 0 when the front is at a frame boundary.
    front_remaining: usize,
}

impl OutboundBuffer {
    /// Appends a whole frame and returns the offset where it starts, so the caller can patch it.
    #[inline]
    pub(crate) fn push(&mut self, frame: &[u8]) -> usize {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(frame);
        self.frames += 1;
        start
    }

    /// Records that one whole frame was encoded into [`OutboundBuffer::buffer_mut`].
    #[inline]
    pub(crate) fn note_encoded_frame(&mut self) {
        self.frames += 1;
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
        self.frames
    }

    /// Marks `written` bytes as sent, keeping count of whole frames by walking their length
    /// prefixes (one 4-byte read per frame written).
    pub(crate) fn consume(&mut self, mut written: usize) {
        while written > 0 {
            if self.front_remaining == 0 {
                // The front is at a frame boundary and the whole frame is queued.
                let prefix = self.bytes.first_chunk::<4>().copied().unwrap_or_default();
                self.front_remaining = i32::from_le_bytes(prefix).max(1) as usize;
            }
            let step = written.min(self.front_remaining);
            self.bytes.advance(step);
            self.front_remaining -= step;
            written -= step;
            if self.front_remaining == 0 {
                self.frames -= 1;
            }
        }
    }

    /// Drops every queued frame not yet started (a slow consumer's backlog) and frees the
    /// memory. The rest of a partly written front frame is kept, so that the stream stays
    /// aligned on frame boundaries and a frame queued afterwards (the ERROR) is read as one.
    /// Returns the bytes and frames dropped.
    pub(crate) fn discard(&mut self) -> (usize, usize) {
        let keep = self.front_remaining.min(self.bytes.len());
        let kept_frames = usize::from(keep > 0);
        let dropped = (self.bytes.len() - keep, self.frames - kept_frames);
        let front = BytesMut::from(&self.bytes[..keep]);
        self.bytes = front;
        self.frames = kept_frames;
        dropped
    }

    /// Takes everything queued, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> BytesMut {
        self.frames = 0;
        self.front_remaining = 0;
        std::mem::take(&mut self.bytes)
    }

    /// Frees the allocation of an idle connection once everything has been written. (A drained
    /// `BytesMut` still holds its allocation even though its view's capacity reads 0.)
    pub(crate) fn release(&mut self) {
        if self.bytes.is_empty() {
            self.bytes = BytesMut::new();
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
