//! TLS on a connection's socket, driven without I/O of its own (rustls is sans-I/O): the
//! service loop reads ciphertext from the socket into the session and plaintext out of it, and
//! hands plaintext in and ciphertext out when it writes. The session is handed over with the
//! socket after the handshake (the acceptor's, or a dialler's), so it works on whichever event
//! loop owns the connection.
//!
//! A plain connection has no session and does not come here: its reads and writes go straight
//! to the socket, as before TLS existed.

use std::io::{self, IoSlice, Read, Write};

use tokio::net::TcpStream;

/// Most ciphertext a session holds for the socket before it stops taking plaintext: the
/// connection's own output buffer stays the place where backlog is counted and bounded.
pub(crate) const TLS_SEND_BUFFER: usize = 256 * 1024;

/// A non-blocking socket as `std::io` for rustls.
struct Socket<'a>(&'a TcpStream);

impl Read for Socket<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buffer)
    }
}

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

/// Prepares a session handed over after its handshake.
pub(crate) fn adopt(session: &mut rustls::Connection) {
    session.set_buffer_limit(Some(TLS_SEND_BUFFER));
}

/// Reads plaintext into `buffer`: what the session has decrypted already, then as much as the
/// socket gives, until `buffer` is full or the socket would block. `Ok(0)` is the end of the
/// stream (with or without the peer's close_notify).
pub(crate) fn read(
    session: &mut rustls::Connection,
    stream: &TcpStream,
    buffer: &mut [u8],
) -> io::Result<usize> {
    let mut filled = 0;
    let mut end_of_stream = false;
    loop {
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
        match session.read_tls(&mut Socket(stream)) {
            Ok(0) => end_of_stream = true,
            Ok(_) => {
                if let Err(error) = session.process_new_packets() {
                    // Send the alert rustls queued, best effort.
                    let _ = session.write_tls(&mut Socket(stream));
                    return Err(io::Error::new(io::ErrorKind::InvalidData, error));
                }
                if session.wants_write() {
                    // Post-handshake messages (key updates): best effort now, else with the next
                    // write.
                    let _ = flush(session, stream);
                }
            }
            Err(error) => return if filled > 0 { Ok(filled) } else { Err(error) },
        }
    }
}

/// Sends ciphertext the session holds until it has none or the socket would block.
pub(crate) fn flush(session: &mut rustls::Connection, stream: &TcpStream) -> io::Result<()> {
    while session.wants_write() {
        session.write_tls(&mut Socket(stream))?;
    }
    Ok(())
}

/// Encrypts as much of `slices` as the session takes and sends what the socket takes. Returns
/// the plaintext bytes taken; `WouldBlock` when earlier ciphertext is still waiting for the
/// socket.
pub(crate) fn write_vectored(
    session: &mut rustls::Connection,
    stream: &TcpStream,
    slices: &[IoSlice<'_>],
) -> io::Result<usize> {
    flush(session, stream)?;
    let taken = session.writer().write_vectored(slices)?;
    match flush(session, stream) {
        Err(error) if error.kind() != io::ErrorKind::WouldBlock => Err(error),
        _ => Ok(taken),
    }
}

/// The ciphertext to send when closing: everything still held, `plaintext` (a last ERROR, say),
/// and close_notify.
pub(crate) fn seal_final(session: &mut rustls::Connection, plaintext: &[u8]) -> Vec<u8> {
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
