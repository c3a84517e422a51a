//! A raw NATS protocol client for the comparison: the same I/O discipline as our own client —
//! pipelined, batched writes (one syscall per 64 KiB), large reads (1 MiB), no allocation per
//! message — so that the comparison measures brokers, not load generators.
//!
//! Only what the benchmarks need: CONNECT, PUB, SUB, MSG, PING/PONG.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::counter::Counter;
use crate::read_buffer::{ReadBuffer, ShutdownOnDrop};
use crate::workload::Payload;

/// Bytes buffered before a publisher writes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

const CONNECT_LINE: &[u8] = b"CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"name\":\"mm-bench\",\"lang\":\"rust\",\"version\":\"0.1.0\",\"protocol\":1,\"echo\":true}\r\n";

/// Opens a connection, reads INFO, sends CONNECT and waits for the PONG of a PING.
fn open(address: &str) -> Result<(TcpStream, LineReader)> {
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("connect to NATS at {address}"))?;
    stream.set_nodelay(true)?;
    let mut reader = LineReader::new(stream.try_clone()?);
    let info = reader.line(Duration::from_secs(10))?;
    if !info.starts_with(b"INFO ") {
        bail!("NATS server did not send INFO");
    }
    stream.write_all(CONNECT_LINE)?;
    stream.write_all(b"PING\r\n")?;
    reader.wait_for_pong(&mut stream, Duration::from_secs(10))?;
    Ok((stream, reader))
}

/// Reads protocol lines and payloads from a socket.
struct LineReader {
    input: ReadBuffer,
}

impl LineReader {
    fn new(stream: TcpStream) -> Self {
        LineReader {
            input: ReadBuffer::new(stream),
        }
    }

    fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.input.fill(deadline)
    }

    /// The next line (without CRLF), copied.
    fn line(&mut self, timeout: Duration) -> Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let available = self.input.available();
            if let Some(position) = memchr::memmem::find(available, b"\r\n") {
                let line = available[..position].to_vec();
                self.input.consume(position + 2);
                return Ok(line);
            }
            self.fill(Some(deadline))?;
        }
    }

    fn wait_for_pong(&mut self, stream: &mut TcpStream, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let line = self.line(deadline.saturating_duration_since(Instant::now()))?;
            match line.as_slice() {
                b"PONG" => return Ok(()),
                b"PING" => stream.write_all(b"PONG\r\n")?,
                line if line.starts_with(b"-ERR") => {
                    bail!("NATS error: {}", String::from_utf8_lossy(line))
                }
                _ => {}
            }
        }
    }

    /// Processes every complete operation in the buffer. `on_message(subject, reply, payload)`
    /// is called for each MSG. Returns false when more bytes are needed.
    fn for_each_operation(
        &mut self,
        stream: &mut TcpStream,
        mut on_message: impl FnMut(&[u8], &[u8], &[u8]),
    ) -> Result<()> {
        loop {
            let available = self.input.available();
            let Some(line_end) = memchr::memmem::find(available, b"\r\n") else {
                return Ok(());
            };
            let line = &available[..line_end];
            if let Some(arguments) = line.strip_prefix(b"MSG ") {
                // MSG <subject> <sid> [reply] <size>
                let mut parts = arguments.split(|&byte| byte == b' ');
                let subject = parts.next().unwrap_or_default();
                let _sid = parts.next();
                let third = parts.next().unwrap_or_default();
                let (reply, size) = match parts.next() {
                    Some(size) => (third, size),
                    None => (&[][..], third),
                };
                let size: usize = std::str::from_utf8(size)
                    .ok()
                    .and_then(|size| size.parse().ok())
                    .context("bad MSG size")?;
                let total = line_end + 2 + size + 2;
                if available.len() < total {
                    return Ok(());
                }
                on_message(
                    subject,
                    reply,
                    &available[line_end + 2..line_end + 2 + size],
                );
                self.input.consume(total);
            } else {
                match line {
                    b"PING" => stream.write_all(b"PONG\r\n")?,
                    line if line.starts_with(b"-ERR") => {
                        bail!("NATS error: {}", String::from_utf8_lossy(line))
                    }
                    _ => {}
                }
                self.input.consume(line_end + 2);
            }
        }
    }
}

/// Publishes with writes batched to 64 KiB.
pub struct NatsPublisher {
    stream: TcpStream,
    reader: LineReader,
    buffer: Vec<u8>,
    payload: Vec<u8>,
    /// The last subject and its `PUB <subject> <size>\r\n<payload>\r\n` bytes: publishing to
    /// the same subject again copies bytes, as the raw Messaging Mesh publisher does.
    cached: Option<(String, Vec<u8>)>,
}

impl NatsPublisher {
    /// Connects.
    pub fn connect(address: &str, payload: Payload) -> Result<Self> {
        let (stream, reader) = open(address)?;
        Ok(NatsPublisher {
            stream,
            reader,
            buffer: Vec::with_capacity(WRITE_BATCH_BYTES * 2),
            payload: payload.nats_bytes(),
            cached: None,
        })
    }

    /// Queues one PUB; writes when the batch is full.
    #[inline]
    pub fn publish(&mut self, subject: &str) -> Result<()> {
        match &self.cached {
            Some((cached, bytes)) if cached == subject => self.buffer.extend_from_slice(bytes),
            _ => {
                let mut bytes = Vec::with_capacity(subject.len() + self.payload.len() + 16);
                bytes.extend_from_slice(b"PUB ");
                bytes.extend_from_slice(subject.as_bytes());
                bytes.push(b' ');
                let mut digits = itoa::Buffer::new();
                bytes.extend_from_slice(digits.format(self.payload.len()).as_bytes());
                bytes.extend_from_slice(b"\r\n");
                bytes.extend_from_slice(&self.payload);
                bytes.extend_from_slice(b"\r\n");
                self.buffer.extend_from_slice(&bytes);
                self.cached = Some((subject.to_owned(), bytes));
            }
        }
        if self.buffer.len() >= WRITE_BATCH_BYTES {
            self.stream.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes what is buffered, then PING and waits for PONG: the server has processed
    /// everything.
    pub fn flush(&mut self, timeout: Duration) -> Result<()> {
        self.buffer.extend_from_slice(b"PING\r\n");
        self.stream.write_all(&self.buffer)?;
        self.buffer.clear();
        self.reader.wait_for_pong(&mut self.stream, timeout)
    }
}

/// Counts MSGs on a reader thread.
pub struct NatsSubscriber {
    counter: Arc<Counter>,
    _stream: ShutdownOnDrop,
}

impl NatsSubscriber {
    /// Connects, subscribes, waits until the subscription is live (PING/PONG), and starts the
    /// reader thread.
    pub fn connect(address: &str, subject: &str, counter: Arc<Counter>) -> Result<Self> {
        let (mut stream, mut reader) = open(address)?;
        stream.write_all(format!("SUB {subject} 1\r\nPING\r\n").as_bytes())?;
        reader.wait_for_pong(&mut stream, Duration::from_secs(10))?;
        let hits = counter.clone();
        let mut writer = stream.try_clone()?;
        std::thread::Builder::new()
            .name("nats-sub".into())
            .spawn(move || {
                loop {
                    if reader.fill(None).is_err() {
                        return;
                    }
                    if reader
                        .for_each_operation(&mut writer, |_, _, _| hits.hit())
                        .is_err()
                    {
                        return;
                    }
                }
            })?;
        Ok(NatsSubscriber {
            counter,
            _stream: ShutdownOnDrop(stream),
        })
    }

    /// The counter.
    pub fn counter(&self) -> &Arc<Counter> {
        &self.counter
    }
}

/// Answers every request with a reply of the workload's payload, one write per read batch.
pub struct NatsResponder {
    _stream: ShutdownOnDrop,
}

impl NatsResponder {
    /// Connects, subscribes and starts answering.
    pub fn start(address: &str, subject: &str, payload: Payload) -> Result<Self> {
        let (mut stream, mut reader) = open(address)?;
        stream.write_all(format!("SUB {subject} 1\r\nPING\r\n").as_bytes())?;
        reader.wait_for_pong(&mut stream, Duration::from_secs(10))?;
        let mut writer = stream.try_clone()?;
        let payload = payload.nats_bytes();
        std::thread::Builder::new()
            .name("nats-responder".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(WRITE_BATCH_BYTES);
                let mut control = writer.try_clone().expect("clone socket");
                loop {
                    if reader.fill(None).is_err() {
                        return;
                    }
                    let result = reader.for_each_operation(&mut control, |_, reply, _| {
                        if !reply.is_empty() {
                            out.extend_from_slice(b"PUB ");
                            out.extend_from_slice(reply);
                            out.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
                            out.extend_from_slice(&payload);
                            out.extend_from_slice(b"\r\n");
                        }
                    });
                    if result.is_err() || writer.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                }
            })?;
        Ok(NatsResponder {
            _stream: ShutdownOnDrop(stream),
        })
    }
}

/// Sends synchronous requests over one inbox subscription (as the NATS clients do).
pub struct NatsRequester {
    stream: TcpStream,
    reader: LineReader,
    inbox: String,
    counter: u64,
    out: Vec<u8>,
    payload: Vec<u8>,
}

impl NatsRequester {
    /// Connects and subscribes its inbox.
    pub fn connect(address: &str, payload: Payload) -> Result<Self> {
        let (mut stream, mut reader) = open(address)?;
        let inbox = format!("_INBOX.{:016x}", rand::random::<u64>());
        stream.write_all(format!("SUB {inbox}.* 1\r\nPING\r\n").as_bytes())?;
        reader.wait_for_pong(&mut stream, Duration::from_secs(10))?;
        Ok(NatsRequester {
            stream,
            reader,
            inbox,
            counter: 0,
            out: Vec::new(),
            payload: payload.nats_bytes(),
        })
    }

    /// One round trip.
    pub fn request(&mut self, subject: &str, timeout: Duration) -> Result<()> {
        self.counter += 1;
        self.out.clear();
        self.out.extend_from_slice(
            format!(
                "PUB {subject} {}.{} {}\r\n",
                self.inbox,
                self.counter,
                self.payload.len()
            )
            .as_bytes(),
        );
        self.out.extend_from_slice(&self.payload);
        self.out.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.out)?;
        let deadline = Instant::now() + timeout;
        let mut answered = false;
        loop {
            self.reader
                .for_each_operation(&mut self.stream, |_, _, _| answered = true)?;
            if answered {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("request timed out");
            }
            self.reader.fill(Some(deadline))?;
        }
    }
}
