//! Load-generating clients for both systems, behind one interface, so that every workload runs
//! the same way against Messaging Mesh and NATS.
//!
//! * `mm`: Messaging Mesh through the `messaging-mesh` client library — what applications use.
//! * `mm-raw`: Messaging Mesh through [`super::mm_raw`], a raw protocol client.
//! * `nats`: NATS through [`super::nats`], a raw protocol client with the same I/O discipline as
//!   `mm-raw`: pipelined and batched writes (64 KiB per syscall), 1 MiB reads, no per-message
//!   allocation. `mm-raw` against `nats` compares the brokers alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use messaging_mesh::{Connection, ConnectionParams, Message, PendingLimits, ReconnectPolicy};

use super::{mm_raw, nats};

/// Which broker a workload runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum System {
    /// Messaging Mesh, through the `messaging-mesh` client library.
    Mm,
    /// Messaging Mesh, through the raw protocol client in this tool.
    MmRaw,
    /// NATS, through the raw protocol client in this tool.
    Nats,
}

impl System {
    /// The system's display name.
    pub fn name(self) -> &'static str {
        match self {
            System::Mm => "Messaging Mesh",
            System::MmRaw => "Messaging Mesh (raw client)",
            System::Nats => "NATS",
        }
    }
}

/// The message every workload sends: one BLOB field `p` of `size` bytes (NATS: a payload of
/// `size` bytes), or — for the classic workload — one int32 field `#`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Payload {
    /// One BLOB field `p` of this many bytes.
    Blob(usize),
    /// One int32 field `#` (34-byte frames); NATS sends the 4 bytes of the int.
    Int32,
}

impl Payload {
    /// Payload bytes as NATS sees them.
    pub fn nats_bytes(self) -> Vec<u8> {
        match self {
            Payload::Blob(size) => vec![0x5a; size],
            Payload::Int32 => 7i32.to_le_bytes().to_vec(),
        }
    }

    /// The Messaging Mesh message.
    pub fn message(self) -> Message {
        match self {
            Payload::Blob(size) => Message::new().add_blob("p", vec![0x5a; size]),
            Payload::Int32 => Message::new().add_i32("#", 7),
        }
    }

    /// A short label: `16 B`, `int32`.
    pub fn label(self) -> String {
        match self {
            Payload::Blob(size) if size >= 1024 && size % 1024 == 0 => {
                format!("{} KiB", size / 1024)
            }
            Payload::Blob(size) => format!("{size} B"),
            Payload::Int32 => "int32".to_owned(),
        }
    }
}

/// Connection parameters for benchmark clients: no reconnect (a lost connection fails the run),
/// large pending limits (16 M messages, 1 GiB) so that a burst is measured, not dropped — a drop
/// would fail the run as missing messages.
fn mm_params(address: &str, service: &str, name: &str) -> ConnectionParams {
    ConnectionParams::new(address, service)
        .with_client_name(name)
        .with_reconnect(ReconnectPolicy::disabled())
        .with_pending_limits(PendingLimits {
            messages: 16 << 20,
            bytes: 1 << 30,
        })
}

/// Publishes the workload's message as fast as the client allows.
pub enum Publisher {
    /// Messaging Mesh.
    Mm {
        /// The connection.
        connection: Connection,
        /// The message, built once.
        message: Message,
    },
    /// Messaging Mesh, raw client.
    MmRaw(mm_raw::RawPublisher),
    /// NATS.
    Nats(nats::NatsPublisher),
}

impl Publisher {
    /// Connects a publisher.
    pub fn connect(system: System, address: &str, service: &str, payload: Payload) -> Result<Self> {
        Ok(match system {
            System::Mm => Publisher::Mm {
                connection: Connection::connect(mm_params(address, service, "bench-pub"))
                    .with_context(|| format!("connect to {address}"))?,
                message: payload.message(),
            },
            System::MmRaw => {
                Publisher::MmRaw(mm_raw::RawPublisher::connect(address, service, payload)?)
            }
            System::Nats => Publisher::Nats(nats::NatsPublisher::connect(address, payload)?),
        })
    }

    /// Publishes one message on `subject`.
    #[inline]
    pub fn publish(&mut self, subject: &str) -> Result<()> {
        match self {
            Publisher::Mm {
                connection,
                message,
            } => connection.send(subject, message).context("publish"),
            Publisher::MmRaw(publisher) => publisher.publish(subject),
            Publisher::Nats(publisher) => publisher.publish(subject),
        }
    }

    /// Returns once the broker has processed everything published (flush / PING-PONG).
    pub fn finish(&mut self, timeout: Duration) -> Result<()> {
        match self {
            Publisher::Mm { connection, .. } => connection.flush(timeout).context("flush"),
            Publisher::MmRaw(publisher) => publisher.flush(timeout),
            Publisher::Nats(publisher) => publisher.flush(timeout),
        }
    }

    /// Frames written and write syscalls made, if the client counts them.
    pub fn write_counts(&self) -> Option<(u64, u64)> {
        match self {
            Publisher::Mm { connection, .. } => {
                let stats = connection.stats();
                Some((stats.frames_out, stats.write_calls))
            }
            Publisher::MmRaw(_) | Publisher::Nats(_) => None,
        }
    }
}

/// Counts what a subscriber receives and remembers when it received its last expected message.
#[derive(Debug, Default)]
pub struct Counter {
    received: AtomicU64,
    /// Set by the test to the number of messages expected; 0 = unknown yet.
    expected: AtomicU64,
    /// Nanoseconds after `epoch` at which `expected` was reached.
    done_at_nanos: AtomicU64,
    epoch: std::sync::OnceLock<Instant>,
}

impl Counter {
    fn new() -> Arc<Counter> {
        let counter = Arc::new(Counter::default());
        let _ = counter.epoch.set(Instant::now());
        counter
    }

    /// Counts one message.
    #[inline]
    pub fn hit(&self) {
        let received = self.received.fetch_add(1, Ordering::Relaxed) + 1;
        let expected = self.expected.load(Ordering::Relaxed);
        if expected != 0 && received == expected {
            self.mark_done();
        }
    }

    fn mark_done(&self) {
        if let Some(epoch) = self.epoch.get() {
            let nanos = epoch.elapsed().as_nanos() as u64;
            let _ = self.done_at_nanos.compare_exchange(
                0,
                nanos.max(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Messages received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Sets how many messages are expected (possibly after some have already arrived).
    pub fn expect(&self, expected: u64) {
        self.expected.store(expected, Ordering::Relaxed);
        if self.received() >= expected {
            self.mark_done();
        }
    }

    /// When the expected count was reached.
    pub fn done_at(&self) -> Option<Instant> {
        let nanos = self.done_at_nanos.load(Ordering::Relaxed);
        (nanos != 0).then(|| {
            self.epoch
                .get()
                .map(|epoch| *epoch + Duration::from_nanos(nanos))
        })?
    }
}

/// A subscriber that counts messages on one subject.
pub enum Subscriber {
    /// Messaging Mesh (the subscription lives as long as this value).
    Mm {
        /// The connection.
        connection: Connection,
        /// The subscription.
        _subscription: messaging_mesh::Subscription,
        /// What it counted.
        counter: Arc<Counter>,
    },
    /// Messaging Mesh, raw client.
    MmRaw(mm_raw::RawSubscriber),
    /// NATS.
    Nats(nats::NatsSubscriber),
}

impl Subscriber {
    /// Connects and subscribes to `subject`; returns once the subscription is live at the broker
    /// (for Messaging Mesh with several gateways: live across the mesh).
    pub fn connect(
        system: System,
        address: &str,
        service: &str,
        subject: &str,
        mesh: bool,
    ) -> Result<Self> {
        match system {
            System::Mm => {
                let connection = Connection::connect(mm_params(address, service, "bench-sub"))
                    .with_context(|| format!("connect to {address}"))?;
                let counter = Counter::new();
                let hits = counter.clone();
                let subscription = connection
                    .subscribe(subject, move |_| hits.hit())
                    .context("subscribe")?;
                if mesh {
                    connection
                        .flush_mesh(Duration::from_secs(10))
                        .context("mesh flush")?;
                } else {
                    connection.flush(Duration::from_secs(10)).context("flush")?;
                }
                Ok(Subscriber::Mm {
                    connection,
                    _subscription: subscription,
                    counter,
                })
            }
            System::MmRaw => Ok(Subscriber::MmRaw(mm_raw::RawSubscriber::connect(
                address,
                service,
                subject,
                mesh,
                Counter::new(),
            )?)),
            System::Nats => {
                let counter = Counter::new();
                Ok(Subscriber::Nats(nats::NatsSubscriber::connect(
                    address, subject, counter,
                )?))
            }
        }
    }

    /// The counter.
    pub fn counter(&self) -> &Arc<Counter> {
        match self {
            Subscriber::Mm { counter, .. } => counter,
            Subscriber::MmRaw(subscriber) => subscriber.counter(),
            Subscriber::Nats(subscriber) => subscriber.counter(),
        }
    }

    /// Messages dropped by the client (pending limits); always 0 for NATS.
    pub fn dropped(&self) -> u64 {
        match self {
            Subscriber::Mm { connection, .. } => connection.stats().messages_dropped,
            Subscriber::MmRaw(_) | Subscriber::Nats(_) => 0,
        }
    }
}

/// Answers requests on a subject with a same-size reply.
pub enum Responder {
    /// Messaging Mesh.
    Mm {
        /// The connection.
        _connection: Connection,
        /// The subscription.
        _subscription: messaging_mesh::Subscription,
    },
    /// Messaging Mesh, raw client.
    MmRaw {
        /// The responder (answers on its own thread while alive).
        _responder: mm_raw::RawResponder,
    },
    /// NATS.
    Nats {
        /// The responder (answers on its own thread while alive).
        _responder: nats::NatsResponder,
    },
}

impl Responder {
    /// Connects and starts answering requests on `subject`.
    pub fn start(
        system: System,
        address: &str,
        service: &str,
        subject: &str,
        payload: Payload,
    ) -> Result<Self> {
        match system {
            System::Mm => {
                let connection =
                    Connection::connect(mm_params(address, service, "bench-responder"))?;
                let reply_with = connection.clone();
                let reply = payload.message();
                let subscription = connection.subscribe(subject, move |request| {
                    let _ = reply_with.send_reply(request, &reply);
                })?;
                connection.flush(Duration::from_secs(10))?;
                Ok(Responder::Mm {
                    _connection: connection,
                    _subscription: subscription,
                })
            }
            System::MmRaw => Ok(Responder::MmRaw {
                _responder: mm_raw::RawResponder::start(address, service, subject, payload)?,
            }),
            System::Nats => Ok(Responder::Nats {
                _responder: nats::NatsResponder::start(address, subject, payload)?,
            }),
        }
    }
}

/// Sends synchronous requests.
pub enum Requester {
    /// Messaging Mesh.
    Mm {
        /// The connection.
        connection: Connection,
        /// The request, built once.
        message: Message,
    },
    /// Messaging Mesh, raw client.
    MmRaw(mm_raw::RawRequester),
    /// NATS.
    Nats(nats::NatsRequester),
}

impl Requester {
    /// Connects a requester; `spin` overrides the library's request spin window.
    pub fn connect(
        system: System,
        address: &str,
        service: &str,
        payload: Payload,
        spin: Option<Duration>,
    ) -> Result<Self> {
        Ok(match system {
            System::Mm => {
                let mut params = mm_params(address, service, "bench-requester");
                if let Some(spin) = spin {
                    params = params.with_request_spin(spin);
                }
                Requester::Mm {
                    connection: Connection::connect(params)?,
                    message: payload.message(),
                }
            }
            System::MmRaw => {
                Requester::MmRaw(mm_raw::RawRequester::connect(address, service, payload)?)
            }
            System::Nats => Requester::Nats(nats::NatsRequester::connect(address, payload)?),
        })
    }

    /// One round trip.
    #[inline]
    pub fn request(&mut self, subject: &str, timeout: Duration) -> Result<()> {
        match self {
            Requester::Mm {
                connection,
                message,
            } => {
                connection
                    .send_request(subject, message, timeout)
                    .context("request")?;
                Ok(())
            }
            Requester::MmRaw(requester) => requester.request(subject, timeout),
            Requester::Nats(requester) => requester.request(subject, timeout),
        }
    }
}

/// Waits until every counter reached its expectation, or fails naming what is missing.
pub fn wait_for_all(
    counters: &[Arc<Counter>],
    expected: u64,
    timeout: Duration,
) -> Result<Instant> {
    for counter in counters {
        counter.expect(expected);
    }
    let deadline = Instant::now() + timeout;
    loop {
        let done: Vec<Option<Instant>> = counters.iter().map(|counter| counter.done_at()).collect();
        if done.iter().all(Option::is_some) {
            return Ok(done
                .into_iter()
                .flatten()
                .max()
                .unwrap_or_else(Instant::now));
        }
        if Instant::now() >= deadline {
            let missing: u64 = counters
                .iter()
                .map(|counter| expected.saturating_sub(counter.received()))
                .sum();
            bail!("{missing} messages missing after {timeout:?}: the run failed");
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}
