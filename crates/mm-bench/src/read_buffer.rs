//! What the raw load generators share: a read buffer over a blocking socket, and a socket that
//! is shut down when its owner goes (ending the owner's reader thread).

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// Size of the read buffer.
pub const READ_BUFFER_BYTES: usize = 1 << 20;

/// Bytes read from a socket and not yet consumed: `buffer[start..end]`.
pub struct ReadBuffer {
    /// The socket (a clone of the writer's).
    pub stream: TcpStream,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    /// An empty buffer over `stream`.
    pub fn new(stream: TcpStream) -> Self {
        ReadBuffer {
            stream,
            buffer: vec![0; READ_BUFFER_BYTES],
            start: 0,
            end: 0,
        }
    }

    /// Unconsumed bytes.
    #[inline]
    pub fn available(&self) -> &[u8] {
        &self.buffer[self.start..self.end]
    }

    /// Marks `count` bytes consumed.
    #[inline]
    pub fn consume(&mut self, count: usize) {
        self.start += count;
    }

    /// Reads more bytes (waiting until `deadline`, or forever), keeping unconsumed ones.
    pub fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        if self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buffer.len() {
            self.buffer.resize(self.buffer.len() * 2, 0);
        }
        let timeout = deadline.map(|deadline| {
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        self.stream.set_read_timeout(timeout)?;
        let read = self.stream.read(&mut self.buffer[self.end..])?;
        if read == 0 {
            bail!("the broker closed the connection");
        }
        self.end += read;
        Ok(())
    }
}

/// A socket shut down on drop, which ends the reader thread blocked on it.
pub struct ShutdownOnDrop(pub TcpStream);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        let _ = self.0.shutdown(std::net::Shutdown::Both);
    }
}
