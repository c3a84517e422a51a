//! The state of one connection that its engine thread, its dispatch thread and its front ends
//! share: the output buffer, the subscription table, the dispatch queue, the request inbox, the
//! notifier, the counters, and how closing is signalled. The operations the front ends use live in
//! `client.rs`, above this module; the engine reads and writes this state directly.
//!
//! Who holds it: an `Arc<Shared>` is held by the engine thread, the dispatch thread (callback
//! mode), every `Client` (so every application handle), every
//! subscription handle and every async stream. It is dropped when the last of them is gone —
//! after the connection is closed, since the engine thread only returns then.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use mm_wire::handshake::Protocol;
use mm_wire::subject;
use tokio::sync::Notify;

use crate::advisory::AdvisoryLimit;
use crate::dispatch::{DispatchQueue, Panicked, SubscriptionTable};
use crate::error::{ConnectError, InvalidSubject};
use crate::notification::{LogLevel, Notification, Notifier};
use crate::outbound::{LinkState, Outbound};
use crate::params::ConnectionParams;
use crate::requests::{INBOX_SUBSCRIPTION_ID, Outcome, Requests};
use crate::spin::SpinPolicy;
use crate::status::{ConnectionStats, ConnectionStatus, Counters, GatewayInfo};

/// How long `close` waits for the engine to write what is queued and say DISCONNECT.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Emits a log line as a `tracing` event and, if the application gave a logger, to it.
macro_rules! log {
    ($shared:expr, $level:ident, $($arg:tt)+) => {
        $crate::shared::Shared::log(&$shared, $crate::notification::LogLevel::$level, format_args!($($arg)+))
    };
}
pub(crate) use log;

/// Shared state of one connection; see the module doc for who holds it.
pub(crate) struct Shared {
    /// The parameters the connection was opened with.
    pub(crate) params: ConnectionParams,
    /// Frames queued for the gateway.
    pub(crate) outbound: Outbound,
    /// Live subscriptions by id.
    pub(crate) subscriptions: SubscriptionTable,
    /// Messages waiting for their callbacks.
    pub(crate) dispatch: DispatchQueue,
    /// The request inbox and everyone waiting for a reply or a PONG.
    pub(crate) requests: Requests,
    /// How long blocking requests and flushes poll for their answer before sleeping.
    pub(crate) spin: SpinPolicy,
    /// Delivers notifications and log lines on its own thread.
    pub(crate) notifier: Notifier,
    /// The engine's counters.
    pub(crate) counters: Counters,
    /// The rate limit of advisories delivered to the connection's own subscriptions.
    pub(crate) advisories: AdvisoryLimit,
    /// The next subscription id (ids are never reused within a connection).
    pub(crate) next_subscription_id: AtomicU32,
    /// The current gateway, from its last ACK.
    pub(crate) gateway: Mutex<Option<GatewayInfo>>,
    /// The session (`Outbound::session`) in which the request inbox was confirmed live across
    /// the mesh; 0 = none yet.
    pub(crate) inbox_confirmed: AtomicU64,
    /// Set once `close` was asked for (or the connection gave up).
    closing: AtomicBool,
    /// Wakes the engine out of a reconnect delay or dial when `close` is asked for.
    pub(crate) close_requested: Notify,
    /// True once the engine has finished (everything failed, hooks told).
    finished: Mutex<bool>,
    finished_signal: Condvar,
    finished_async: Notify,
    /// The engine thread's id: `close` from that thread (a callback's captures dropped there)
    /// must not wait for itself.
    pub(crate) engine_thread: OnceLock<ThreadId>,
}

impl Shared {
    /// Shared state for a connection about to be opened: validates the names, draws the inbox
    /// token and starts the notifier.
    pub(crate) fn new(params: ConnectionParams) -> Result<Shared, ConnectError> {
        subject::validate_service_name(&params.service).map_err(|reason| {
            ConnectError::InvalidServiceName(InvalidSubject::new(
                "service name",
                &params.service,
                reason,
            ))
        })?;
        if params.client_name.len() > subject::MAX_CLIENT_NAME_LEN {
            return Err(ConnectError::ClientNameTooLong {
                length: params.client_name.len(),
            });
        }
        let requests = Requests::new()
            .map_err(|error| ConnectError::SecureRandom(std::io::Error::from(error)))?;
        let notifier = Notifier::start(params.notification_hook.clone(), params.logger.clone())
            .map_err(ConnectError::Thread)?;
        Ok(Shared {
            outbound: Outbound::new(params.write_high_water, params.reconnect.buffer_bytes),
            subscriptions: SubscriptionTable::default(),
            dispatch: DispatchQueue::new(),
            requests,
            spin: SpinPolicy::new(params.request_spin),
            notifier,
            counters: Counters::default(),
            advisories: AdvisoryLimit::default(),
            next_subscription_id: AtomicU32::new(INBOX_SUBSCRIPTION_ID + 1),
            gateway: Mutex::new(None),
            inbox_confirmed: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            close_requested: Notify::new(),
            finished: Mutex::new(false),
            finished_signal: Condvar::new(),
            finished_async: Notify::new(),
            engine_thread: OnceLock::new(),
            params,
        })
    }

    /// Emits a log line (use the `log!` macro).
    pub(crate) fn log(&self, level: LogLevel, args: fmt::Arguments<'_>) {
        let service = self.params.service.as_str();
        match level {
            LogLevel::Error => tracing::error!(service, "{args}"),
            LogLevel::Warn => tracing::warn!(service, "{args}"),
            LogLevel::Info => tracing::info!(service, "{args}"),
            LogLevel::Debug => tracing::debug!(service, "{args}"),
        }
        if self.notifier.has_logger() {
            self.notifier.log(level, args.to_string());
        }
    }

    /// Tells the application about a callback that panicked.
    pub(crate) fn on_panic(&self, (subscription_id, pattern, panic): Panicked) {
        log!(
            self,
            Error,
            "callback of subscription {subscription_id} (`{pattern}`) panicked: {panic}"
        );
        self.notifier.notify(Notification::CallbackPanicked {
            subscription_id,
            pattern,
            panic,
        });
    }

    // -------------------------------------------------------------------------------------
    // Status
    // -------------------------------------------------------------------------------------

    pub(crate) fn gateway(&self) -> MutexGuard<'_, Option<GatewayInfo>> {
        self.gateway.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The protocol of the current (or last) gateway.
    pub(crate) fn protocol(&self) -> Protocol {
        self.gateway()
            .as_ref()
            .map_or(Protocol::Mm2, |gateway| gateway.protocol)
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    pub(crate) fn status(&self) -> ConnectionStatus {
        match self.outbound.link() {
            LinkState::Connected => ConnectionStatus::Connected,
            LinkState::Reconnecting if !self.is_closing() => ConnectionStatus::Reconnecting,
            _ => ConnectionStatus::Closed,
        }
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        let (frames_out, bytes_out, pending_output_bytes) = self.outbound.counters();
        let counters = &self.counters;
        ConnectionStats {
            frames_out,
            bytes_out,
            write_calls: Counters::get(&counters.write_calls)
                + Counters::get(&self.outbound.direct_write_calls),
            bytes_written: Counters::get(&counters.bytes_written)
                + Counters::get(&self.outbound.direct_bytes_written),
            pending_output_bytes,
            frames_in: Counters::get(&counters.frames_in),
            bytes_in: Counters::get(&counters.bytes_in),
            read_calls: Counters::get(&counters.read_calls),
            messages_dropped: Counters::get(&counters.messages_dropped),
            undecodable_messages: Counters::get(&counters.undecodable_messages),
            reconnects: Counters::get(&counters.reconnects),
            requests_in_flight: self.requests.in_flight(),
            spin_hits: self.spin.hits(),
            spin_misses: self.spin.misses(),
            notifications_lost: self.notifier.lost(),
        }
    }

    // -------------------------------------------------------------------------------------
    // Closing
    // -------------------------------------------------------------------------------------

    /// Asks the engine to write what is queued, say DISCONNECT and finish. Returns at once.
    pub(crate) fn request_close(&self) {
        if self.closing.swap(true, Ordering::AcqRel) {
            return;
        }
        self.outbound.close();
        self.close_requested.notify_one();
    }

    fn on_engine_thread(&self) -> bool {
        self.engine_thread.get() == Some(&std::thread::current().id())
    }

    /// Closes and waits (up to [`CLOSE_TIMEOUT`]) for the engine to finish.
    pub(crate) fn close_blocking(&self) {
        self.request_close();
        if self.on_engine_thread() {
            return;
        }
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        let mut finished = self.finished.lock().unwrap_or_else(PoisonError::into_inner);
        while !*finished {
            let now = Instant::now();
            if now >= deadline {
                log!(
                    self,
                    Warn,
                    "close: the engine did not finish within {CLOSE_TIMEOUT:?}"
                );
                return;
            }
            finished = self
                .finished_signal
                .wait_timeout(finished, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Closes and waits asynchronously (up to [`CLOSE_TIMEOUT`]) for the engine to finish.
    pub(crate) async fn close_async(&self) {
        self.request_close();
        let wait = async {
            loop {
                let notified = self.finished_async.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if *self.finished.lock().unwrap_or_else(PoisonError::into_inner) {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(CLOSE_TIMEOUT, wait).await.is_err() {
            log!(
                self,
                Warn,
                "close: the engine did not finish within {CLOSE_TIMEOUT:?}"
            );
        }
    }

    /// Engine side, last act: fails whatever waits, ends dispatch and subscriptions, tells the
    /// application, and wakes `close` callers.
    pub(crate) fn finish(&self) {
        self.closing.store(true, Ordering::Release);
        self.outbound.lose(LinkState::Closed);
        self.requests.fail_all(|| Outcome::Closed);
        self.dispatch.close();
        self.subscriptions.clear();
        log!(self, Info, "connection closed");
        self.notifier.notify(Notification::Closed);
        self.notifier.stop();
        *self.finished.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.finished_signal.notify_all();
        self.finished_async.notify_waiters();
    }
}
