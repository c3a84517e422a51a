//! A raw Messaging Mesh protocol client with exactly the I/O discipline of the NATS one in
//! [`crate::nats`]: the publishing thread writes directly in 64 KiB batches, a reader thread reads
//! 1 MiB at a time and counts whole frames, requests are written and read on the calling thread.
//! With it, `mm bench --client raw` compares the brokers alone, each driven by an identical load
//! generator.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mm_wire::handshake::ConnectOptions;
use mm_wire::{Action, Header, HeaderView, Message, encode_frame, frame_length};

use crate::counter::Counter;
use crate::read_buffer::{ReadBuffer, ShutdownOnDrop};
use crate::workload::Payload;

/// Bytes buffered before a publisher writes.
const WRITE_BATCH_BYTES: usize = 64 * 1024;

/// A connection after CONNECT/ACK.
struct RawStream {
    stream: TcpStream,
    input: ReadBuffer,
}

impl RawStream {
    fn connect(address: &str, service: &str, name: &str) -> Result<RawStream> {
        let mut stream =
            TcpStream::connect(address).with_context(|| format!("connect to {address}"))?;
        stream.set_nodelay(true)?;
        let mut hello = Vec::new();
        encode_frame(
            &mut hello,
            &Header::new(Action::Connect)
                .with_subject(service)
                .with_reply_subject(name),
            &ConnectOptions::mm2("mm-bench raw").to_message(),
        )?;
        stream.write_all(&hello)?;
        let mut raw = RawStream {
            input: ReadBuffer::new(stream.try_clone()?),
            stream,
        };
        raw.until(Duration::from_secs(10), |action| action == Action::Ack)?;
        Ok(raw)
    }

    fn fill(&mut self, deadline: Option<Instant>) -> Result<()> {
        self.input.fill(deadline)
    }

    /// Calls `on_frame(action, frame)` for every complete frame buffered.
    fn for_each_frame(&mut self, mut on_frame: impl FnMut(Option<Action>, &[u8])) -> Result<()> {
        loop {
            let available = self.input.available();
            let Some(length) = frame_length(available, mm_wire::DEFAULT_MAX_FRAME)? else {
                return Ok(());
            };
            let frame = &available[..length];
            let header = HeaderView::parse(frame)?;
            on_frame(header.action(), frame);
            self.input.consume(length);
        }
    }

    /// Reads until a frame with an action `wanted` accepts arrives.
    fn until(&mut self, timeout: Duration, mut wanted: impl FnMut(Action) -> bool) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut found = false;
            self.for_each_frame(|action, _| {
                if action.is_some_and(&mut wanted) {
                    found = true;
                }
            })?;
            if found {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("timed out waiting for the gateway");
            }
            self.fill(Some(deadline))?;
        }
    }

    /// PING, then wait for the PONG: every frame sent before it has been handled — by every
    /// peer gateway too when `mesh` is set.
    fn ping(&mut self, timeout: Duration, mesh: bool) -> Result<()> {
        let body = if mesh {
            Message::new().add_bool("mesh", true)
        } else {
            Message::new()
        };
        let mut ping = Vec::new();
        encode_frame(&mut ping, &Header::new(Action::Ping), &body)?;
        self.stream.write_all(&ping)?;
        self.until(timeout, |action| action == Action::Pong)
    }

    /// Subscribes `subject` as subscription 1 and waits until the gateway (and, with `mesh`,
    /// every peer) has it.
    fn subscribe(&mut self, subject: &str, mesh: bool) -> Result<()> {
        let mut request = Vec::new();
        encode_frame(
            &mut request,
            &Header::new(Action::Subscribe)
                .with_subscription_id(1)
                .with_subject(subject),
            &Message::new(),
        )?;
        self.stream.write_all(&request)?;
        self.ping(Duration::from_secs(10), mesh)
    }
}

/// Publishes pre-encoded frames, written in 64 KiB batches.
pub struct RawPublisher {
    raw: RawStream,
    buffer: Vec<u8>,
    message: Message,
    /// The last subject and its encoded frame: publishing to the same subject copies bytes.
    cached: Option<(String, Vec<u8>)>,
}

impl RawPublisher {
    /// Connects.
    pub fn connect(address: &str, service: &str, payload: Payload) -> Result<Self> {
        Ok(RawPublisher {
            raw: RawStream::connect(address, service, "bench-raw-pub")?,
            buffer: Vec::with_capacity(WRITE_BATCH_BYTES * 2),
            message: payload.message(),
            cached: None,
        })
    }

    /// Queues one message; writes when the batch is full.
    #[inline]
    pub fn publish(&mut self, subject: &str) -> Result<()> {
        match &self.cached {
            Some((cached, frame)) if cached == subject => self.buffer.extend_from_slice(frame),
            _ => {
                let mut frame = Vec::new();
                encode_frame(&mut frame, &Header::send_message(subject), &self.message)?;
                self.buffer.extend_from_slice(&frame);
                self.cached = Some((subject.to_owned(), frame));
            }
        }
        if self.buffer.len() >= WRITE_BATCH_BYTES {
            self.raw.stream.write_all(&self.buffer)?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Writes the rest and waits for the PONG of a PING.
    pub fn flush(&mut self, timeout: Duration) -> Result<()> {
        self.raw.stream.write_all(&self.buffer)?;
        self.buffer.clear();
        self.raw.ping(timeout, false)
    }
}

/// Counts delivered frames on a reader thread.
pub struct RawSubscriber {
    counter: Arc<Counter>,
    _stream: ShutdownOnDrop,
}

impl RawSubscriber {
    /// Connects, subscribes, waits for the PONG (or mesh-wide PONG) and starts reading.
    pub fn connect(
        address: &str,
        service: &str,
        subject: &str,
        mesh: bool,
        counter: Arc<Counter>,
    ) -> Result<Self> {
        let mut raw = RawStream::connect(address, service, "bench-raw-sub")?;
        raw.subscribe(subject, mesh)?;
        let stream = raw.stream.try_clone()?;
        let hits = counter.clone();
        std::thread::Builder::new()
            .name("mm-raw-sub".into())
            .spawn(move || {
                loop {
                    if raw.fill(None).is_err() {
                        return;
                    }
                    let result = raw.for_each_frame(|action, _| {
                        if action == Some(Action::SendMessage) {
                            hits.hit();
                        }
                    });
                    if result.is_err() {
                        return;
                    }
                }
            })?;
        Ok(RawSubscriber {
            counter,
            _stream: ShutdownOnDrop(stream),
        })
    }

    /// The counter.
    pub fn counter(&self) -> &Arc<Counter> {
        &self.counter
    }
}

/// Answers every request on its reader thread, one write per read batch.
pub struct RawResponder {
    _stream: ShutdownOnDrop,
}

impl RawResponder {
    /// Connects, subscribes and starts answering.
    pub fn start(address: &str, service: &str, subject: &str, payload: Payload) -> Result<Self> {
        let mut raw = RawStream::connect(address, service, "bench-raw-responder")?;
        raw.subscribe(subject, false)?;
        let stream = raw.stream.try_clone()?;
        let mut writer = raw.stream.try_clone()?;
        let reply = payload.message();
        std::thread::Builder::new()
            .name("mm-raw-responder".into())
            .spawn(move || {
                let mut out = Vec::with_capacity(WRITE_BATCH_BYTES);
                loop {
                    if raw.fill(None).is_err() {
                        return;
                    }
                    let result = raw.for_each_frame(|action, frame| {
                        if action != Some(Action::SendMessage) {
                            return;
                        }
                        if let Ok(header) = HeaderView::parse(frame)
                            && !header.reply_subject.is_empty()
                        {
                            let _ = encode_frame(
                                &mut out,
                                &Header {
                                    subscription_id: 0,
                                    subject: header.reply_subject,
                                    reply_subject: &[],
                                    action: Action::SendMessage,
                                },
                                &reply,
                            );
                        }
                    });
                    if result.is_err() || writer.write_all(&out).is_err() {
                        return;
                    }
                    out.clear();
                }
            })?;
        Ok(RawResponder {
            _stream: ShutdownOnDrop(stream),
        })
    }
}

/// Synchronous requests over one inbox subscription.
pub struct RawRequester {
    raw: RawStream,
    inbox: String,
    counter: u64,
    out: Vec<u8>,
    message: Message,
}

impl RawRequester {
    /// Connects and subscribes its inbox.
    pub fn connect(address: &str, service: &str, payload: Payload) -> Result<Self> {
        let mut raw = RawStream::connect(address, service, "bench-raw-requester")?;
        let inbox = format!(
            "_INBOX.{:016x}{:08x}",
            rand::random::<u64>(),
            rand::random::<u32>()
        );
        raw.subscribe(&format!("{inbox}.*"), true)?;
        Ok(RawRequester {
            raw,
            inbox,
            counter: 0,
            out: Vec::new(),
            message: payload.message(),
        })
    }

    /// One round trip.
    pub fn request(&mut self, subject: &str, timeout: Duration) -> Result<()> {
        self.counter += 1;
        self.out.clear();
        let reply = format!("{}.{}", self.inbox, self.counter);
        encode_frame(
            &mut self.out,
            &Header::send_message(subject).with_reply_subject(&reply),
            &self.message,
        )?;
        self.raw.stream.write_all(&self.out)?;
        let deadline = Instant::now() + timeout;
        loop {
            let mut answered = false;
            let mut no_responders = false;
            self.raw.for_each_frame(|action, _| match action {
                Some(Action::SendMessage) => answered = true,
                Some(Action::NoResponders) => no_responders = true,
                _ => {}
            })?;
            if answered {
                return Ok(());
            }
            if no_responders {
                bail!("no responders");
            }
            if Instant::now() >= deadline {
                bail!("request timed out");
            }
            self.raw.fill(Some(deadline))?;
        }
    }
}
