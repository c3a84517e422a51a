//! What the connection tells the application besides messages: [`Notification`]s for the
//! notification hook, and log lines for the [`Logger`].
//!
//! Both are delivered by one library thread per connection (the notifier), fed by a bounded
//! channel: the engine that reads the socket only queues an event and never waits for the
//! application's hook (SPEC §6.4: the socket reader never blocks on the application).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mm_wire::DecodeError;
use mm_wire::handshake::Protocol;

use crate::error::InvalidUtf8;

/// The notification hook: told about every [`Notification`] of a connection. Set with
/// [`ConnectionParams::with_notification_hook`](crate::ConnectionParams::with_notification_hook).
pub type NotificationHook = Arc<dyn Fn(&Notification) + Send + Sync>;

/// The logger: given the library's log lines for a connection, as a level and a line of text,
/// alongside the `tracing` events they are also emitted as. Set with
/// [`ConnectionParams::with_logger`](crate::ConnectionParams::with_logger).
pub type Logger = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

/// How many events may wait for the notifier thread; past that, events are counted as lost
/// rather than making the engine wait.
const EVENT_QUEUE_CAPACITY: usize = 4096;

/// Something that happened to a connection, for the notification hook
/// ([`ConnectionParams::with_notification_hook`](crate::ConnectionParams::with_notification_hook)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Notification {
    /// The first connection is open (the gateway ACKed).
    Connected {
        /// The gateway's address.
        address: SocketAddr,
        /// The protocol spoken: MM/1 for an old gateway (empty ACK).
        protocol: Protocol,
    },
    /// The connection to the gateway was lost; requests in flight have failed.
    Disconnected {
        /// Why, for people.
        reason: String,
    },
    /// A redial is scheduled.
    Reconnecting {
        /// Redial number, from 1.
        attempt: u32,
        /// Delay before it, jitter included.
        delay: Duration,
    },
    /// A redial failed.
    ReconnectFailed {
        /// Redial number, from 1.
        attempt: u32,
        /// Why, for people.
        error: String,
    },
    /// The connection is back: subscriptions were renewed and buffered publishes replayed.
    Reconnected {
        /// The gateway's address.
        address: SocketAddr,
        /// The protocol spoken.
        protocol: Protocol,
        /// Subscriptions renewed (the request inbox not counted).
        subscriptions: usize,
        /// Bytes of publishes buffered while disconnected and now sent.
        replayed_bytes: usize,
    },
    /// The connection is closed for good (by the application, or after giving up reconnecting).
    Closed,
    /// The gateway sent an ERROR (MM/2, SPEC §5.1).
    GatewayError {
        /// The stable code, e.g. `INVALID_SUBJECT`.
        code: String,
        /// The text, for people.
        text: String,
        /// The subject concerned, or empty.
        subject: String,
        /// The subscription concerned, or 0.
        subscription_id: u32,
    },
    /// A subscription passed its pending limit and messages were dropped. Reported once per
    /// overflow: again only after its queue has drained.
    MessagesDropped {
        /// The subscription.
        subscription_id: u32,
        /// Its pattern.
        pattern: String,
        /// Messages dropped on this subscription so far.
        dropped: u64,
    },
    /// A delivered message's body does not decode; it was dropped and the connection carries on.
    UndecodableMessage {
        /// The message's subject.
        subject: String,
        /// The subscription it was delivered to.
        subscription_id: u32,
        /// What was wrong.
        error: DecodeError,
    },
    /// A delivered message's subject or reply subject is not UTF-8; it was dropped (a request's
    /// reply of that kind also fails its request) and the connection carries on.
    InvalidUtf8 {
        /// The subscription it was delivered to.
        subscription_id: u32,
        /// Which subject, and what it holds.
        error: InvalidUtf8,
    },
    /// A subscription callback panicked; dispatch went on with the next message.
    CallbackPanicked {
        /// The subscription.
        subscription_id: u32,
        /// Its pattern.
        pattern: String,
        /// The panic message.
        panic: String,
    },
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notification::Connected { address, protocol } => {
                write!(f, "connected to {address} ({protocol})")
            }
            Notification::Disconnected { reason } => write!(f, "disconnected: {reason}"),
            Notification::Reconnecting { attempt, delay } => {
                write!(f, "reconnecting (attempt {attempt}) in {delay:?}")
            }
            Notification::ReconnectFailed { attempt, error } => {
                write!(f, "reconnect attempt {attempt} failed: {error}")
            }
            Notification::Reconnected {
                address,
                protocol,
                subscriptions,
                replayed_bytes,
            } => write!(
                f,
                "reconnected to {address} ({protocol}): {subscriptions} subscriptions renewed, \
                 {replayed_bytes} buffered bytes replayed"
            ),
            Notification::Closed => f.write_str("closed"),
            Notification::GatewayError {
                code,
                text,
                subject,
                ..
            } => {
                write!(f, "gateway error {code}: {text}")?;
                if !subject.is_empty() {
                    write!(f, " (subject `{subject}`)")?;
                }
                Ok(())
            }
            Notification::MessagesDropped {
                subscription_id,
                pattern,
                dropped,
            } => write!(
                f,
                "subscription {subscription_id} (`{pattern}`) passed its pending limit; \
                 {dropped} messages dropped so far"
            ),
            Notification::UndecodableMessage {
                subject,
                subscription_id,
                error,
            } => write!(
                f,
                "dropped an undecodable message on `{subject}` (subscription {subscription_id}): {error}"
            ),
            Notification::InvalidUtf8 {
                subscription_id,
                error,
            } => write!(
                f,
                "dropped a message for subscription {subscription_id}: {error}"
            ),
            Notification::CallbackPanicked {
                subscription_id,
                pattern,
                panic,
            } => write!(
                f,
                "callback of subscription {subscription_id} (`{pattern}`) panicked: {panic}"
            ),
        }
    }
}

/// The level of a log line given to the logger
/// ([`ConnectionParams::with_logger`](crate::ConnectionParams::with_logger)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something odd that the connection recovered from.
    Warn,
    /// Connection life cycle.
    Info,
    /// Details for debugging.
    Debug,
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Error => "ERROR",
            LogLevel::Warn => "WARN",
            LogLevel::Info => "INFO",
            LogLevel::Debug => "DEBUG",
        })
    }
}

/// One thing for the notifier thread to deliver.
enum Event {
    Notification(Notification),
    Log(LogLevel, String),
    /// The connection is closed: deliver what is queued and end the thread.
    Stop,
}

/// The sending side of the notifier. Owned by the connection's shared state; the notifier thread
/// owns the receiving side and ends after [`Notifier::stop`].
pub(crate) struct Notifier {
    /// `None` when the application gave neither a hook nor a logger (then no thread exists), and
    /// after [`Notifier::stop`].
    sender: Mutex<Option<SyncSender<Event>>>,
    /// Whether a logger was given (log lines are only formatted for it then).
    has_logger: bool,
    /// Events that could not be queued because the queue was full.
    lost: AtomicU64,
}

impl Notifier {
    /// Starts the notifier thread if there is anything to notify.
    pub(crate) fn start(
        hook: Option<NotificationHook>,
        logger: Option<Logger>,
    ) -> std::io::Result<Notifier> {
        let has_logger = logger.is_some();
        if hook.is_none() && logger.is_none() {
            return Ok(Notifier {
                sender: Mutex::new(None),
                has_logger,
                lost: AtomicU64::new(0),
            });
        }
        let (sender, receiver) = std::sync::mpsc::sync_channel(EVENT_QUEUE_CAPACITY);
        std::thread::Builder::new()
            .name("mm-notify".into())
            .spawn(move || deliver(receiver, hook, logger))?;
        Ok(Notifier {
            sender: Mutex::new(Some(sender)),
            has_logger,
            lost: AtomicU64::new(0),
        })
    }

    /// Queues a notification for the hook (never waits).
    pub(crate) fn notify(&self, notification: Notification) {
        self.send(Event::Notification(notification));
    }

    /// Whether log lines should be formatted for the logger.
    pub(crate) fn has_logger(&self) -> bool {
        self.has_logger
    }

    /// Queues a log line for the logger (never waits).
    pub(crate) fn log(&self, level: LogLevel, line: String) {
        if self.has_logger {
            self.send(Event::Log(level, line));
        }
    }

    /// Events lost because the hook fell behind.
    pub(crate) fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    fn send(&self, event: Event) {
        let sender = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = sender.as_ref() {
            if let Err(TrySendError::Full(_)) = sender.try_send(event) {
                self.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Delivers the queued events, then ends the thread. Waits for room in the queue (the last
    /// event must not be lost); only called when the connection is finished.
    pub(crate) fn stop(&self) {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(Event::Stop);
        }
    }
}

/// The notifier thread: calls the hook and the logger, one event at a time, catching panics so
/// that one bad call does not end notifications.
fn deliver(receiver: Receiver<Event>, hook: Option<NotificationHook>, logger: Option<Logger>) {
    while let Ok(event) = receiver.recv() {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &event {
            Event::Notification(notification) => {
                if let Some(hook) = &hook {
                    hook(notification);
                }
            }
            Event::Log(level, line) => {
                if let Some(logger) = &logger {
                    logger(*level, line);
                }
            }
            Event::Stop => {}
        }));
        if outcome.is_err() {
            tracing::error!("the notification hook or logger panicked");
        }
        if matches!(event, Event::Stop) {
            break;
        }
    }
}
