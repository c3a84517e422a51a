//! TLS on a connection's socket, driven without I/O of its own (rustls is sans-I/O): the
//! service loop reads ciphertext from the socket into the session and plaintext out of it, and
//! hands plaintext in and ciphertext out when it writes. The session is handed over with the
//! socket after the handshake (the acceptor's, or a dialler's), so it works on whichever event
//! loop owns the connection.
//!
//! A plain connection has no session and does not come here: its reads and writes go straight
//! to the socket, as before TLS existed.
//!
//! rustls takes ciphertext at most 4 KiB at a time; reading the socket that way would cost a
//! syscall per 4 KiB (16 for one 64 KiB message). So the session keeps a ciphertext buffer: one
//! read takes up to [`CIPHERTEXT_READ`] from the socket, and rustls is fed from it.

use std::io::{self, IoSlice, Read, Write};

use tokio::net::TcpStream;

/// Most ciphertext a session holds for the socket before it stops taking plaintext: the
/// connection's own output buffer stays the place where backlog is counted and bounded.
pub(crate) const TLS_SEND_BUFFER: usize = 256 * 1024;

/// Most ciphertext one socket read takes.
const CIPHERTEXT_READ: usize = 64 * 1024;

/// A TLS session over a connection's socket, with the ciphertext read but not yet given to it.
pub(crate) struct TlsSession {
    connection: rustls::Connection,
    /// Ciphertext read from the socket; `ciphertext[consumed..]` is not yet in `connection`.
    ciphertext: Vec<u8>,
    consumed: usize,
}

impl TlsSession {
    /// Takes over a session after its handshake.
    pub(crate) fn new(mut connection: rustls::Connection) -> TlsSession {
        connection.set_buffer_limit(Some(TLS_SEND_BUFFER));
        TlsSession {
            connection,
            ciphertext: Vec::new(),
            consumed: 0,
        }
    }

    /// Whether it holds ciphertext the socket has not taken yet.
    pub(crate) fn wants_write(&self) -> bool {
        self.connection.wants_write()
    }

    /// Gives rustls more ciphertext: what is buffered, else one read from the socket. `Ok(0)` at
    /// the end of the stream.
    fn feed(&mut self, stream: &TcpStream) -> io::Result<usize> {
        if self.consumed == self.ciphertext.len() {
            self.ciphertext.resize(CIPHERTEXT_READ, 0);
            self.consumed = 0;
            let read = stream.try_read(&mut self.ciphertext);
            let read = match read {
                Ok(read) => read,
                Err(error) => {
                    self.ciphertext.clear();
                    return Err(error);
                }
            };
            self.ciphertext.truncate(read);
            if read == 0 {
                // Tells rustls about the end of the stream.
                return self.connection.read_tls(&mut io::empty());
            }
        }
        let mut rest = &self.ciphertext[self.consumed..];
        let taken = self.connection.read_tls(&mut rest)?;
        self.consumed += taken;
        if self.consumed == self.ciphertext.len() && self.ciphertext.capacity() > CIPHERTEXT_READ {
            self.ciphertext = Vec::new();
        }
        Ok(taken.max(1))
    }
}

/// A non-blocking socket as `std::io` for rustls.
struct Socket<'a>(&'a TcpStream);

impl Write for Socket<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }

    fn write_vectored(&mut self, slices: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(slices)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads plaintext into `buffer`: what the session has decrypted already, then as much as the
/// socket gives, until `buffer` is full or the socket would block. `Ok(0)` is the end of the
/// stream (with or without the peer's close_notify).
pub(crate) fn read(
    tls: &mut TlsSession,
    stream: &TcpStream,
    buffer: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    let mut end_of_stream = false;
    loop {
        let session = &mut tls.connection;
        match session.reader().read(&mut buffer[filled..]) {
            Ok(0) => return Ok(filled),
            Ok(read) => {
                filled += read;
                if filled == buffer.len() {
                    return Ok(filled);
                }
                continue;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            // The peer closed TCP without close_notify: an end of stream like any other.
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
            Err(error) => return if filled > 0 { Ok(filled) } else { Err(error) },
        }
        if end_of_stream {
            return Ok(filled);
        }
        match tls.feed(stream) {
            Ok(0) => end_of_stream = true,
            Ok(_) => {
                if let Err(error) = tls.connection.process_new_packets() {
                    // Send the alert rustls queued, best effort.
                    let _ = tls.connection.write_tls(&mut Socket(stream));
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
                if tls.connection.wants_write() {
                    // Post-handshake messages (key updates): best effort now, else with the next
                    // write.
                    let _ = flush(tls, stream);
                }
            }
            Err(error) => return if filled > 0 { Ok(filled) } else { Err(error) },
        }
    }
}

/// Sends ciphertext the session holds until it has none or the socket would block.
pub(crate) fn flush(tls: &mut TlsSession, stream: &TcpStream) -> io::Result<()> {
    let session = &mut tls.connection;
    while session.wants_write() {
        session.write_tls(&mut Socket(stream))?;
    }
    Ok(())
}

/// Encrypts as much of `slices` as the session takes and sends what the socket takes. Returns
/// the plaintext bytes taken; `WouldBlock` when earlier ciphertext is still waiting for the
/// socket.
pub(crate) fn write_vectored(
    tls: &mut TlsSession,
    stream: &TcpStream,
    slices: &[IoSlice<'_>],
) -> io::Result<usize> {
    flush(tls, stream)?;
    let taken = tls.connection.writer().write_vectored(slices)?;
    match flush(tls, stream) {
        Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
        _ => Ok(taken),
    }
}

/// The ciphertext to send when closing: everything still held, `plaintext` (a last ERROR, say),
/// and close_notify.
pub(crate) fn seal_final(tls: &mut TlsSession, plaintext: &[u8]) -> Vec<u8> {
    let session = &mut tls.connection;
    session.set_buffer_limit(None);
    if !plaintext.is_empty() {
        let _ = session.writer().write_all(plaintext);
    }
    session.send_close_notify();
    let mut ciphertext = Vec::new();
    while session.wants_write() {
        if session.write_tls(&mut ciphertext).is_err() {
            break;
        }
    }
    ciphertext
}
