//! [`OutboundBuffer`]: a connection's queued output, written to the socket in as few syscalls as
//! possible.
//!
//! Deliveries append whole frames; the service loop writes the buffer once per batch, so under
//! load many frames leave in one syscall. The buffer has a byte bound (SPEC §6.3), enforced by the
//! service loop: this type only reports how full it is.
//!
//! The bytes live in a queue of chunks of [`CHUNK_BYTES`] (a frame larger than that gets a chunk
//! of its own; frames never straddle chunks, so each one can be patched in place), written with
//! one vectored `write` of up to [`MAX_WRITE_CHUNKS`] chunks. The rejected alternative, one
//! contiguous buffer, has to grow by reallocating: a subscriber with 100 MiB queued held 256 MiB
//! of capacity, and every growth copied the whole backlog. With chunks, memory follows the queued
//! bytes — at most one partly filled chunk more — and nothing is ever copied after it is queued.
//! (nats-server's outbound queue is built the same way.)
//!
//! An idle connection should cost almost nothing, so the service releases the chunk kept by
//! connections that have written nothing for a while ([`OutboundBuffer::release`]).

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BytesMut};

/// Size of a chunk: large enough that a busy connection's write carries many frames per chunk,
/// small enough that a lightly used connection does not hold much.
pub(crate) const CHUNK_BYTES: usize = 64 * 1024;

/// Most chunks written by one `write` (64 × 64 KiB = 4 MiB, far above what a socket takes at
/// once; the kernel caps iovecs at 1024).
const MAX_WRITE_CHUNKS: usize = 64;

/// Queued output of one connection.
///
/// Invariants: `pending == Σ chunk.len()`; `0 <= pending <= bound` after every flush, or the
/// connection is being closed as a slow consumer; `frame_lengths` lists the queued frames, front
/// first, and `Σ frame_lengths − front_written == pending`; no frame straddles two chunks.
#[derive(Debug, Default)]
pub(crate) struct OutboundBuffer {
    /// Unwritten bytes, front first. The last chunk is the one being filled.
    chunks: VecDeque<BytesMut>,
    /// Bytes in `chunks`.
    pending: usize,
    /// Length of every queued frame, front first. Kept beside the bytes (4 bytes per frame,
    /// contiguous) rather than found by reading each frame's length prefix when it is written:
    /// that walk touched one cache line per frame and showed up in profiles.
    frame_lengths: VecDeque<u32>,
    /// Bytes of the front frame already written (0 when the front is at a frame boundary).
    front_written: usize,
}

impl OutboundBuffer {
    /// Appends a whole frame; returns it, in the buffer, for patching (bytes 4..7).
    #[inline]
    pub(crate) fn push(&mut self, frame: &[u8]) -> &mut [u8] {
        let needs_chunk = self
            .chunks
            .back()
            .is_none_or(|last| last.capacity() - last.len() < frame.len());
        if needs_chunk {
            self.chunks
                .push_back(BytesMut::with_capacity(CHUNK_BYTES.max(frame.len())));
        }
        self.pending += frame.len();
        self.frame_lengths.push_back(frame.len() as u32);
        // Cannot be `None`: a chunk was just ensured.
        let last = self.chunks.back_mut().expect("a chunk with room");
        let start = last.len();
        last.extend_from_slice(frame);
        &mut last[start..]
    }

    /// Bytes queued and not yet written.
    #[inline]
    pub(crate) fn pending(&self) -> usize {
        self.pending
    }

    /// Whether nothing is queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending == 0
    }

    /// Frames queued (the front one possibly partly written).
    #[inline]
    pub(crate) fn frames(&self) -> usize {
        self.frame_lengths.len()
    }

    /// Writes as much as `write` takes of the queued bytes, offered as one vectored write, and
    /// returns how many bytes it took. `write` is one `writev` on the socket.
    pub(crate) fn write_with(
        &mut self,
        write: impl FnOnce(&[IoSlice<'_>]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); MAX_WRITE_CHUNKS];
        let mut count = 0;
        for (slot, chunk) in slices.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(chunk);
            count += 1;
        }
        let written = write(&slices[..count])?;
        self.consume(written);
        Ok(written)
    }

    /// Marks `written` bytes as sent: drops written chunks (keeping the last one, emptied, for
    /// reuse) and keeps count of whole frames.
    fn consume(&mut self, written: usize) {
        self.pending -= written;
        let mut left = written;
        while left > 0 {
            let several = self.chunks.len() > 1;
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            if front.len() <= left {
                left -= front.len();
                if several {
                    self.chunks.pop_front();
                } else {
                    // Keep it for the next frames; `reserve` on an empty, unshared buffer
                    // reclaims the space already written instead of allocating.
                    front.clear();
                    front.reserve(CHUNK_BYTES);
                }
            } else {
                front.advance(left);
                left = 0;
            }
        }
        if self.pending == 0 {
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
        let dropped = (self.pending - keep, self.frame_lengths.len() - kept_frames);
        // Frames never straddle chunks: the rest of the front frame is at the front of the
        // first chunk.
        let front = self
            .chunks
            .front()
            .map(|chunk| BytesMut::from(&chunk[..keep.min(chunk.len())]))
            .unwrap_or_default();
        self.chunks.clear();
        if keep > 0 {
            self.chunks.push_back(front);
        }
        self.pending = keep;
        self.frame_lengths.truncate(kept_frames);
        self.frame_lengths.shrink_to_fit();
        dropped
    }

    /// Takes everything queued, as one buffer, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> BytesMut {
        let mut all = BytesMut::with_capacity(self.pending);
        for chunk in self.chunks.drain(..) {
            all.extend_from_slice(&chunk);
        }
        self.pending = 0;
        self.frame_lengths.clear();
        self.front_written = 0;
        all
    }

    /// Frees the memory of an idle connection once everything has been written.
    pub(crate) fn release(&mut self) {
        if self.is_empty() {
            *self = OutboundBuffer::default();
        }
    }

    /// Bytes allocated, for tests.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.chunks.iter().map(BytesMut::capacity).sum()
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

    /// Writes at most `limit` bytes, like a socket with that much room.
    fn write(buffer: &mut OutboundBuffer, limit: usize) -> Vec<u8> {
        let mut out = Vec::new();
        buffer
            .write_with(|slices| {
                for slice in slices {
                    let room = limit - out.len();
                    out.extend_from_slice(&slice[..slice.len().min(room)]);
                }
                Ok(out.len())
            })
            .unwrap();
        out
    }

    #[test]
    fn push_patch_write_counts_frames() {
        let mut buffer = OutboundBuffer::default();
        buffer.push(&frame(25, 1))[4] = b'X';
        buffer.push(&frame(30, 2));
        buffer.push(&frame(21, 3));
        assert_eq!(buffer.frames(), 3);
        let first = write(&mut buffer, 10);
        assert_eq!(first[4], b'X');
        assert_eq!(buffer.frames(), 3);
        write(&mut buffer, 15);
        assert_eq!(buffer.frames(), 2);
        write(&mut buffer, 40);
        assert_eq!(buffer.frames(), 1);
        assert_eq!(buffer.pending(), 11);
        // The front frame is partly written: it is kept.
        assert_eq!(buffer.discard(), (0, 0));
        assert_eq!(buffer.pending(), 11);
        write(&mut buffer, 11);
        assert!(buffer.is_empty());
        assert_eq!(buffer.frames(), 0);
    }

    #[test]
    fn discard_keeps_the_rest_of_a_partly_written_frame() {
        let mut buffer = OutboundBuffer::default();
        buffer.push(&frame(25, 1));
        buffer.push(&frame(30, 2));
        buffer.push(&frame(40, 3));
        write(&mut buffer, 10);
        assert_eq!(buffer.discard(), (70, 2));
        assert_eq!(buffer.pending(), 15);
        assert_eq!(buffer.frames(), 1);
        buffer.push(&frame(21, 4));
        let rest = write(&mut buffer, 1000);
        assert_eq!(rest.len(), 36);
        assert_eq!(rest[15..19], 21i32.to_le_bytes());
        assert!(buffer.is_empty());
    }

    #[test]
    fn memory_follows_the_queue_in_chunks() {
        let mut buffer = OutboundBuffer::default();
        let one = frame(1000, 7);
        for _ in 0..1000 {
            buffer.push(&one);
        }
        // ~1 MB queued: at most one partly filled chunk beyond it, never a doubled buffer.
        assert_eq!(buffer.pending(), 1_000_000);
        assert!(buffer.capacity() <= 1_000_000 + CHUNK_BYTES);
        // A frame larger than a chunk gets its own.
        buffer.push(&frame(200_000, 8));
        assert_eq!(buffer.pending(), 1_200_000);
        // Written in order across chunks.
        let mut written = Vec::new();
        while !buffer.is_empty() {
            written.extend(write(&mut buffer, 100_003));
        }
        assert_eq!(written.len(), 1_200_000);
        assert_eq!(
            written[999_996..1_000_004],
            [7, 7, 7, 7, 0x40, 0x0d, 0x03, 0]
        );
        // One emptied chunk is kept for reuse, released when idle.
        assert!(buffer.capacity() > 0);
        buffer.release();
        assert_eq!(buffer.capacity(), 0);
    }

    #[test]
    fn release_only_when_drained() {
        let mut buffer = OutboundBuffer::default();
        buffer.push(&frame(100, 0));
        buffer.release();
        assert_eq!(buffer.pending(), 100);
        write(&mut buffer, 100);
        buffer.release();
        assert_eq!(buffer.frames(), 0);
        buffer.push(&frame(30, 1));
        assert_eq!(buffer.pending(), 30);
    }
}
