//! [`ConnectionParams`]: everything a connection is opened with, and the policies it follows.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::notification::{LogLevel, Logger, Notification, NotificationHook};

/// The gateway's port when an address names only a host (`gw1`, `127.0.0.1`, `[::1]`).
pub const DEFAULT_PORT: u16 = 5050;

/// The service every Messaging Mesh tool and example joins unless told otherwise.
pub const DEFAULT_SERVICE: &str = "DEFAULT";

/// Default time to wait for the gateway's ACK (SPEC §7: 30 s).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Default heartbeat interval announced to the gateway: the gateway's own default, so both sides
/// notice a dead peer within the same ten seconds.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// Default pending limit per subscription, in messages (SPEC §6.4).
pub const DEFAULT_PENDING_MESSAGES: usize = 65_536;

/// Default pending limit per subscription, in bytes (SPEC §6.4).
pub const DEFAULT_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// Default bound on publishes buffered while the connection is down: 8 MiB.
pub const DEFAULT_RECONNECT_BUFFER_BYTES: usize = 8 * 1024 * 1024;

/// Default output high-water mark: publishers wait when this much is queued and not yet written.
/// 4 MiB is enough for the engine to write large batches with one syscall and small enough that a
/// stalled gateway costs a bounded amount of memory.
pub const DEFAULT_WRITE_HIGH_WATER: usize = 4 * 1024 * 1024;

/// Default longest busy-wait of a blocking request or flush for its outcome before its thread
/// sleeps: 200 µs covers a round trip through a gateway on the same host or LAN.
pub const DEFAULT_REQUEST_SPIN: Duration = Duration::from_micros(200);

/// Where subscription callbacks run (SPEC §6.4). Request replies never go through either: the
/// connection's engine completes them at once, so a blocking request works from anywhere,
/// including from inside a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DispatchMode {
    /// Callbacks run on one library thread per connection, in arrival order.
    #[default]
    Callbacks,
    /// Messages wait in a queue until the application calls
    /// [`Connection::process_message_queue`](crate::Connection::process_message_queue); callbacks
    /// run on the calling thread.
    Queue,
}

/// What the connection does when it loses the gateway.
///
/// With reconnection enabled (the default) the connection redials after `initial_delay` plus
/// jitter, doubling the delay up to `max_delay`, until it succeeds or `max_attempts` failed; it then
/// resubscribes everything and replays the publishes it buffered (up to `buffer_bytes`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Whether to reconnect at all; when false, losing the gateway closes the connection.
    pub enabled: bool,
    /// Delay before the first redial (default 100 ms).
    pub initial_delay: Duration,
    /// Longest delay between redials (default 2 s).
    pub max_delay: Duration,
    /// Random extra delay, as a fraction of the delay (default 0.5: up to half again), so that
    /// many clients of a restarted gateway do not all redial at the same instant.
    pub jitter: f64,
    /// Give up (and close) after this many failed redials; `None` (the default) never gives up.
    pub max_attempts: Option<u32>,
    /// Bound on publishes buffered while disconnected (default 8 MiB); past it publishes fail with
    /// [`PublishError::ReconnectBufferFull`](crate::PublishError::ReconnectBufferFull).
    pub buffer_bytes: usize,
}

impl ReconnectPolicy {
    /// Never reconnect: losing the gateway closes the connection.
    pub fn disabled() -> Self {
        ReconnectPolicy {
            enabled: false,
            ..ReconnectPolicy::default()
        }
    }

    /// The delay before redial number `attempt` (from 0), without jitter.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            enabled: true,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            jitter: 0.5,
            max_attempts: None,
            buffer_bytes: DEFAULT_RECONNECT_BUFFER_BYTES,
        }
    }
}

/// Per-subscription pending limits (SPEC §6.4): how many delivered messages may wait for their
/// callback (or stream reader) before further ones are dropped. Either bound triggers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingLimits {
    /// Most messages waiting (default 65 536).
    pub messages: usize,
    /// Most bytes waiting, counted as whole frames (default 64 MiB).
    pub bytes: usize,
}

impl Default for PendingLimits {
    fn default() -> Self {
        PendingLimits {
            messages: DEFAULT_PENDING_MESSAGES,
            bytes: DEFAULT_PENDING_BYTES,
        }
    }
}

/// How to open a connection: gateway address and service, plus options with sensible defaults.
///
/// ```
/// use std::time::Duration;
/// use messaging_mesh::{ConnectionParams, DispatchMode, ReconnectPolicy};
///
/// let params = ConnectionParams::new("127.0.0.1:5050", "DEFAULT")
///     .with_client_name("pricing-feed")
///     .with_dispatch_mode(DispatchMode::Queue)
///     .with_connect_timeout(Duration::from_secs(5))
///     .with_reconnect(ReconnectPolicy::disabled())
///     .with_notification_hook(|event| eprintln!("mesh: {event}"));
/// ```
#[derive(Clone)]
pub struct ConnectionParams {
    pub(crate) address: String,
    pub(crate) service: String,
    pub(crate) client_name: String,
    pub(crate) dispatch_mode: DispatchMode,
    pub(crate) connect_timeout: Duration,
    pub(crate) heartbeat: Duration,
    pub(crate) reconnect: ReconnectPolicy,
    pub(crate) pending_limits: PendingLimits,
    pub(crate) write_high_water: usize,
    pub(crate) request_spin: Duration,
    pub(crate) notification_hook: Option<NotificationHook>,
    pub(crate) logger: Option<Logger>,
    pub(crate) user: Option<(String, String)>,
    pub(crate) token: Option<String>,
    pub(crate) tls: Option<crate::TlsParams>,
}

impl ConnectionParams {
    /// Parameters for the gateway at `address` and `service`, with defaults for everything
    /// else. `address` is `host:port`, or a host alone for [`DEFAULT_PORT`] (`gw1`,
    /// `localhost`, `127.0.0.1`, `::1`, `[::1]`); host names are resolved when connecting.
    /// Nothing is checked until [`Connection::connect`](crate::Connection::connect).
    pub fn new(address: impl Into<String>, service: impl Into<String>) -> Self {
        ConnectionParams {
            address: with_default_port(address.into()),
            service: service.into(),
            client_name: default_client_name(),
            dispatch_mode: DispatchMode::default(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            heartbeat: DEFAULT_HEARTBEAT,
            reconnect: ReconnectPolicy::default(),
            pending_limits: PendingLimits::default(),
            write_high_water: DEFAULT_WRITE_HIGH_WATER,
            request_spin: DEFAULT_REQUEST_SPIN,
            notification_hook: None,
            logger: None,
            user: None,
            token: None,
            tls: None,
        }
    }

    /// Authenticates as `user` with `password` (services with users; send it over TLS).
    #[must_use]
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user = Some((user.into(), password.into()));
        self
    }

    /// Authenticates with a bearer token.
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Connects over TLS.
    #[must_use]
    pub fn with_tls(mut self, tls: crate::TlsParams) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The name the gateway shows for this client (default: the program's name). Informational.
    #[must_use]
    pub fn with_client_name(mut self, name: impl Into<String>) -> Self {
        self.client_name = name.into();
        self
    }

    /// Where callbacks run (default [`DispatchMode::Callbacks`]).
    #[must_use]
    pub fn with_dispatch_mode(mut self, mode: DispatchMode) -> Self {
        self.dispatch_mode = mode;
        self
    }

    /// How long connecting (resolve, TCP, CONNECT, ACK) may take, for the first connection and
    /// for each redial (default 30 s).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The heartbeat interval announced to the gateway (default 5 s; zero sends none, SPEC §7.3).
    /// The connection PINGs whenever it has sent nothing for this long.
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }

    /// The reconnect policy (default: reconnect forever, 100 ms to 2 s, 8 MiB buffered).
    #[must_use]
    pub fn with_reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Pending limits for every subscription of this connection.
    #[must_use]
    pub fn with_pending_limits(mut self, limits: PendingLimits) -> Self {
        self.pending_limits = limits;
        self
    }

    /// How many bytes of unwritten output make publishers wait (default 4 MiB).
    #[must_use]
    pub fn with_write_high_water(mut self, bytes: usize) -> Self {
        self.write_high_water = bytes.max(1);
        self
    }

    /// How long a blocking [`send_request`](crate::Connection::send_request) or
    /// [`flush`](crate::Connection::flush) busy-waits for its outcome before its thread sleeps
    /// (default [`DEFAULT_REQUEST_SPIN`]; zero never spins). Waking a sleeping thread costs about
    /// as much as a round trip on one host, so a short spin roughly halves request latency there.
    /// The spin pauses by itself when replies keep outlasting it, and at most one thread fewer
    /// than there are CPUs spins at a time, process-wide.
    #[must_use]
    pub fn with_request_spin(mut self, window: Duration) -> Self {
        self.request_spin = window;
        self
    }

    /// A function told about every [`Notification`]: connected, disconnected, reconnecting,
    /// reconnected, closed, gateway errors, dropped and undecodable messages, panicking callbacks.
    ///
    /// It runs on a library thread of its own, never on the thread that reads the socket, so a
    /// slow hook delays other notifications only.
    #[must_use]
    pub fn with_notification_hook(
        mut self,
        hook: impl Fn(&Notification) + Send + Sync + 'static,
    ) -> Self {
        self.notification_hook = Some(Arc::new(hook));
        self
    }

    /// A function given the library's log lines (level and text) for this connection, as well as
    /// the `tracing` events they are also emitted as. Runs on the same thread as the notification
    /// hook.
    #[must_use]
    pub fn with_logger(mut self, logger: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        self.logger = Some(Arc::new(logger));
        self
    }

    /// The gateway address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The service name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The client name.
    pub fn client_name(&self) -> &str {
        &self.client_name
    }
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionParams")
            .field("address", &self.address)
            .field("service", &self.service)
            .field("client_name", &self.client_name)
            .field("dispatch_mode", &self.dispatch_mode)
            .field("connect_timeout", &self.connect_timeout)
            .field("heartbeat", &self.heartbeat)
            .field("reconnect", &self.reconnect)
            .field("pending_limits", &self.pending_limits)
            .field("write_high_water", &self.write_high_water)
            .field("request_spin", &self.request_spin)
            .field("notification_hook", &self.notification_hook.is_some())
            .field("logger", &self.logger.is_some())
            .field("user", &self.user.as_ref().map(|(user, _)| user))
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The program's file name, or `rust` when it cannot be found.
fn default_client_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "rust".to_owned())
}

/// `address` with [`DEFAULT_PORT`] added when it names only a host. A bare IPv6 address gets
/// its brackets.
fn with_default_port(address: String) -> String {
    if address.is_empty() {
        return address;
    }
    if let Some(inside) = address.strip_prefix('[') {
        return if inside.ends_with(']') {
            format!("{address}:{DEFAULT_PORT}")
        } else {
            address
        };
    }
    match address.matches(':').count() {
        0 => format!("{address}:{DEFAULT_PORT}"),
        1 => address,
        _ if address.parse::<std::net::Ipv6Addr>().is_ok() => {
            format!("[{address}]:{DEFAULT_PORT}")
        }
        _ => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_alone_means_the_default_port() {
        for (given, used) in [
            ("gw1", "gw1:5050"),
            ("localhost", "localhost:5050"),
            ("127.0.0.1", "127.0.0.1:5050"),
            ("::1", "[::1]:5050"),
            ("[::1]", "[::1]:5050"),
            ("gw1:6000", "gw1:6000"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("[::1]:6000", "[::1]:6000"),
            ("", ""),
        ] {
            assert_eq!(ConnectionParams::new(given, "S").address, used, "{given}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = ReconnectPolicy::default();
        let delays: Vec<u128> = (0..7).map(|n| policy.delay(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(2));
    }
}
