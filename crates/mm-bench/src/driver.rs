//! Load-generating clients for both systems, behind one interface, so that every workload runs
//! the same way against Messaging Mesh and NATS.
//!
//! * `mm`: Messaging Mesh through the `messaging-mesh` client library — what applications use.
//! * `mm-raw`: Messaging Mesh through [`crate::mm_raw`], a raw protocol client.
//! * `nats`: NATS through [`crate::nats`], a raw protocol client with the same I/O discipline as
//!   `mm-raw`: pipelined and batched writes (64 KiB per syscall), 1 MiB reads, no per-message
//!   allocation. `mm-raw` against `nats` compares the brokers alone.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use messaging_mesh::{Connection, ConnectionParams, Message, PendingLimits, ReconnectPolicy};

use crate::counter::Counter;
use crate::workload::{Payload, System};
use crate::{mm_raw, nats};

/// Connection parameters for benchmark clients: no reconnect (a lost connection fails the run),
/// large pending limits (16 M messages, 1 GiB) so that a burst is measured, not dropped — a drop
/// would fail the run as missing messages.
///
/// TLS and credentials come from the environment, as for the other `mm` commands: `MM_TLS_CA`
/// (with `MM_TLS_CERT` and `MM_TLS_KEY` for a client certificate), `MM_USER` and `MM_PASSWORD`,
/// or `MM_TOKEN`.
fn mm_params(address: &str, service: &str, name: &str) -> Result<ConnectionParams> {
    let mut params = ConnectionParams::new(address, service)
        .with_client_name(name)
        .with_reconnect(ReconnectPolicy::disabled())
        .with_pending_limits(PendingLimits {
            messages: 16 << 20,
            bytes: 1 << 30,
        });
    let variable = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(ca) = variable("MM_TLS_CA") {
        let cert = variable("MM_TLS_CERT");
        let key = variable("MM_TLS_KEY");
        let client = cert
            .as_deref()
            .zip(key.as_deref())
            .map(|(cert, key)| (std::path::Path::new(cert), std::path::Path::new(key)));
        params = params.with_tls(
            messaging_mesh::TlsParams::from_files(std::path::Path::new(&ca), client)
                .context("MM_TLS_CA")?,
        );
    }
    if let (Some(user), Some(password)) = (
        std::env::var("MM_USER").ok(),
        std::env::var("MM_PASSWORD").ok(),
    ) {
        params = params.with_user(user, password);
    }
    if let Ok(token) = std::env::var("MM_TOKEN") {
        params = params.with_token(token);
    }
    Ok(params)
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
                connection: Connection::connect(mm_params(address, service, "bench-pub")?)
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
                let connection = Connection::connect(mm_params(address, service, "bench-sub")?)
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
                    Connection::connect(mm_params(address, service, "bench-responder")?)?;
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
                let mut params = mm_params(address, service, "bench-requester")?;
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
