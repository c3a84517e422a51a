//! The acceptor: takes TCP connections, reads each one's first frame (CONNECT or
//! CONNECT_MESH_PEER), and hands the connection to its service's thread.
//!
//! The acceptor runs on the main runtime, one small task per connection still in its handshake.
//! It decodes only what it must: the first frame (at most [`MAX_HANDSHAKE_FRAME_BYTES`]) and its
//! body. Whatever arrived behind that frame travels with the socket to the service, which
//! processes it in order before reading anything else, so frames pipelined right behind CONNECT
//! are never lost.
//!
//! Services are created on demand (unless the configuration restricts them), each with its own
//! thread (see the `service` module), up to `MaxServices`. A service started on demand stops
//! once it has had no connection for `ServiceIdleStopMs`, so made-up service names cost nothing
//! for long (issue #12). The registry decides that under its lock, counting connections still on
//! their way to the service, so a connection is never handed to a service that is stopping.
//!
//! Out of file descriptors, `accept` fails: the acceptor keeps one descriptor in reserve, gives it
//! up to accept and close the waiting connection (so its client fails at once rather than
//! hanging), backs off, and goes on by itself once descriptors are free again. Existing
//! connections are not affected.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::warn;

use crate::advisory::RefusedConnect;
use crate::context::GatewayContext;
use crate::log_limit::WarningBudget;
use crate::mesh::DiscoveryReport;
use crate::service::{self, Incoming, ServiceCommand, ServiceHandle};

mod handshake;

use handshake::handshake;

/// First pause after a failed `accept`; doubled while it keeps failing.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// Longest pause after failed `accept`s.
const ACCEPT_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How often idle on-demand services are looked for.
const IDLE_CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// Warnings about connections in their handshake, logged per window (the rest are counted).
const HANDSHAKE_WARNINGS_PER_WINDOW: u32 = 20;

/// Warnings about failed authentications, logged per window (the rest are counted).
const AUTH_WARNINGS_PER_WINDOW: u32 = 20;

/// The services of this gateway, by name.
pub(crate) struct ServiceRegistry {
    context: Arc<GatewayContext>,
    /// Locked only by the acceptor when a CONNECT names a service, by the idle check, and at
    /// shutdown — never on the routing path.
    services: Mutex<HashMap<String, ServiceHandle>>,
    /// Cancelled at shutdown; every service runs under a child of it.
    shutdown: CancellationToken,
    /// Warnings about connections in their handshake (from anyone who can reach the port).
    warnings: Mutex<WarningBudget>,
    /// Warnings about failed authentications (clients and mesh peers).
    auth_warnings: Mutex<WarningBudget>,
    /// Password and token verifications running at once (each is costly by design): at most one
    /// per core, off the event loop.
    verifications: Semaphore,
}

/// Why a service cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceUnavailable {
    /// The configuration does not allow it.
    #[error("this gateway does not serve that service")]
    Refused,
    /// Starting it would pass `MaxServices`.
    #[error("this gateway runs at most {0} services")]
    LimitReached(usize),
    /// Its thread or event loop could not be started.
    #[error("cannot start the service: {0}")]
    CannotStart(#[source] std::io::Error),
    /// The registry's lock was poisoned by a panic elsewhere.
    #[error("the service registry is unusable after an internal error")]
    Poisoned,
    /// The service stopped while the connection was handed to it, twice.
    #[error("the service stopped")]
    Stopped,
}

impl ServiceRegistry {
    pub(crate) fn new(context: Arc<GatewayContext>, shutdown: CancellationToken) -> Self {
        ServiceRegistry {
            context,
            services: Mutex::new(HashMap::new()),
            shutdown,
            warnings: Mutex::new(WarningBudget::new(HANDSHAKE_WARNINGS_PER_WINDOW)),
            auth_warnings: Mutex::new(WarningBudget::new(AUTH_WARNINGS_PER_WINDOW)),
            verifications: Semaphore::new(
                std::thread::available_parallelism().map_or(2, |cores| cores.get()),
            ),
        }
    }

    /// Starts a configured service (at gateway start).
    pub(crate) fn start_configured(&self, name: &str) -> Result<(), ServiceUnavailable> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| ServiceUnavailable::Poisoned)?;
        self.get_or_start(&mut services, name).map(|_| ())
    }

    /// The running service `name`, started if needed (within `MaxServices`).
    fn get_or_start<'a>(
        &self,
        services: &'a mut HashMap<String, ServiceHandle>,
        name: &str,
    ) -> Result<&'a ServiceHandle, ServiceUnavailable> {
        if !self.context.config.allows_service(name) {
            return Err(ServiceUnavailable::Refused);
        }
        if !services.contains_key(name) {
            let limit = self.context.config.limits.max_services;
            if services.len() >= limit {
                return Err(ServiceUnavailable::LimitReached(limit));
            }
            // A service that cannot start is not registered: the next CONNECT tries again.
            let handle = service::start(name, self.context.clone(), self.shutdown.child_token())
                .map_err(ServiceUnavailable::CannotStart)?;
            services.insert(name.to_owned(), handle);
        }
        services.get(name).ok_or(ServiceUnavailable::Stopped)
    }

    /// A place in service `name` (started if needed) for a connection about to be handed over:
    /// it counts as arriving, so the service is not stopped for idleness meanwhile.
    fn ticket(&self, name: &str) -> Result<Ticket, ServiceUnavailable> {
        let mut services = self
            .services
            .lock()
            .map_err(|_| ServiceUnavailable::Poisoned)?;
        let handle = self.get_or_start(&mut services, name)?;
        // Counted under the lock: the idle check never stops a service with a connection on its
        // way.
        handle.load.arriving.fetch_add(1, Ordering::SeqCst);
        Ok(Ticket {
            commands: handle.commands.clone(),
            load: handle.load.clone(),
            generation: handle.generation,
        })
    }

    /// Hands a connection to its service. If the service's thread has ended meanwhile, its
    /// entry is replaced and the hand-over tried once more; if that fails too, the connection
    /// comes back with why.
    async fn hand_over(
        &self,
        name: &str,
        mut ticket: Ticket,
        incoming: Incoming,
    ) -> Result<(), (ServiceUnavailable, Box<Incoming>)> {
        let mut incoming = Box::new(incoming);
        for attempt in 0..2 {
            match ticket.commands.send(ServiceCommand::Attach(incoming)).await {
                Ok(()) => return Ok(()),
                Err(tokio::sync::mpsc::error::SendError(command)) => {
                    ticket.load.arriving.fetch_sub(1, Ordering::SeqCst);
                    // Only an Attach was sent, so only an Attach comes back.
                    let ServiceCommand::Attach(back) = command else {
                        return Ok(());
                    };
                    incoming = back;
                }
            }
            if let Ok(mut services) = self.services.lock()
                && services
                    .get(name)
                    .is_some_and(|handle| handle.generation == ticket.generation)
            {
                services.remove(name);
            }
            if attempt == 0 {
                ticket = match self.ticket(name) {
                    Ok(ticket) => ticket,
                    Err(error) => return Err((error, incoming)),
                };
            }
        }
        Err((ServiceUnavailable::Stopped, incoming))
    }

    /// The running services, by name, with their command channels, sorted by name (for
    /// monitoring: at most `MaxServices`).
    pub(crate) fn running(&self) -> Vec<(String, tokio::sync::mpsc::Sender<ServiceCommand>)> {
        let Ok(services) = self.services.lock() else {
            return Vec::new();
        };
        let mut running: Vec<_> = services
            .iter()
            .map(|(name, handle)| (name.clone(), handle.commands.clone()))
            .collect();
        running.sort_by(|a, b| a.0.cmp(&b.0));
        running
    }

    /// The command channel of service `name`, if it is running (never starts it).
    pub(crate) fn running_service(
        &self,
        name: &str,
    ) -> Option<tokio::sync::mpsc::Sender<ServiceCommand>> {
        let services = self.services.lock().ok()?;
        services.get(name).map(|handle| handle.commands.clone())
    }

    /// The gateway's context.
    pub(crate) fn context(&self) -> &Arc<GatewayContext> {
        &self.context
    }

    /// Passes what discovery found to service `name`, if it runs (discovery serves configured
    /// services, which run from start to shutdown). Waits while the service's queue is full.
    pub(crate) async fn report_discovery(&self, name: &str, report: DiscoveryReport) {
        let commands = match self.services.lock() {
            Ok(services) => services.get(name).map(|handle| handle.commands.clone()),
            Err(_) => None,
        };
        if let Some(commands) = commands {
            // Fails only when the service is stopping: nothing to tell it then.
            let _ = commands.send(ServiceCommand::Discovered(report)).await;
        }
    }

    /// Tells service `name`, if it is running, that a client of it was refused, for its
    /// advisory. Never starts a service and never waits: a full command queue drops it.
    pub(super) fn advise_refused(&self, name: &str, refused: RefusedConnect) {
        let Ok(services) = self.services.lock() else {
            return;
        };
        if let Some(handle) = services.get(name) {
            let _ = handle
                .commands
                .try_send(ServiceCommand::Refused(Box::new(refused)));
        }
    }

    /// Stops the on-demand services that have had no connection for `ServiceIdleStopMs`.
    fn stop_idle_services(&self) {
        let idle_stop = self.context.config.limits.service_idle_stop;
        let now = Instant::now();
        let stopped: Vec<ServiceHandle> = {
            let Ok(mut services) = self.services.lock() else {
                return;
            };
            let mut idle = Vec::new();
            for (name, handle) in services.iter_mut() {
                if handle
                    .thread
                    .as_ref()
                    .is_none_or(|thread| thread.is_finished())
                {
                    // Its loop ended on its own: forget it, the next CONNECT starts it afresh.
                    idle.push(name.clone());
                    continue;
                }
                if self.context.config.configured_mesh(name).is_some() {
                    continue;
                }
                let busy = handle.load.is_busy();
                if busy {
                    handle.idle_since = None;
                    continue;
                }
                let since = *handle.idle_since.get_or_insert(now);
                if now.duration_since(since) >= idle_stop {
                    idle.push(name.clone());
                }
            }
            idle.into_iter()
                .filter_map(|name| services.remove(&name))
                .collect()
        };
        if stopped.is_empty() {
            return;
        }
        let threads: Vec<_> = stopped
            .into_iter()
            .filter_map(|mut handle| {
                handle.cancel.cancel();
                handle.thread.take()
            })
            .collect();
        // The threads end within the services' shutdown wait; joined off this runtime, then the
        // memory their arenas held goes back to the system.
        tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
            crate::memory::release_free_memory();
        });
    }

    /// Whether a warning about a connection in its handshake may be logged now.
    fn warning_allowed(&self) -> bool {
        self.warnings
            .lock()
            .map(|mut budget| budget.allow(Instant::now()))
            .unwrap_or(false)
    }

    /// Whether a warning about a failed authentication may be logged now.
    fn auth_warning_allowed(&self) -> bool {
        self.auth_warnings
            .lock()
            .map(|mut budget| budget.allow(Instant::now()))
            .unwrap_or(false)
    }

    /// Logs how many handshake warnings were suppressed, once their window is over.
    fn summarize_warnings(&self) {
        let suppressed = self
            .auth_warnings
            .lock()
            .ok()
            .and_then(|mut budget| budget.take_summary(Instant::now()));
        if let Some(suppressed) = suppressed {
            warn!(
                suppressed,
                "more warnings about failed authentications were suppressed"
            );
        }
        let suppressed = self
            .warnings
            .lock()
            .ok()
            .and_then(|mut budget| budget.take_summary(Instant::now()));
        if let Some(suppressed) = suppressed {
            warn!(
                suppressed,
                "more warnings about connections in their handshake were suppressed"
            );
        }
    }

    /// Stops every service (cancels the shutdown token) and waits for their threads.
    pub(crate) async fn shutdown(&self) {
        self.shutdown.cancel();
        let handles: Vec<ServiceHandle> = match self.services.lock() {
            Ok(mut services) => services.drain().map(|(_, handle)| handle).collect(),
            Err(_) => Vec::new(),
        };
        for mut handle in handles {
            if let Some(thread) = handle.thread.take() {
                let _ = tokio::task::spawn_blocking(move || thread.join()).await;
            }
        }
    }
}

/// A connection's place in a service, taken before it is handed over.
struct Ticket {
    commands: tokio::sync::mpsc::Sender<ServiceCommand>,
    load: Arc<service::ServiceLoad>,
    generation: u64,
}

/// One file descriptor held back for the moment `accept` fails for lack of descriptors.
struct ReserveDescriptor {
    held: Option<std::fs::File>,
}

impl ReserveDescriptor {
    fn new() -> ReserveDescriptor {
        let mut reserve = ReserveDescriptor { held: None };
        reserve.take();
        reserve
    }

    /// Gives the descriptor back to the system (one `accept` can then succeed).
    fn release(&mut self) {
        self.held = None;
    }

    /// Holds a descriptor again, if one is free.
    fn take(&mut self) {
        if self.held.is_none() {
            self.held = std::fs::File::open("/dev/null").ok();
        }
    }
}

/// Whether an `accept` error means the process or the system is out of descriptors.
fn out_of_descriptors(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// Accepts connections until `shutdown` is cancelled; handshakes still in progress then end.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    registry: Arc<ServiceRegistry>,
    shutdown: CancellationToken,
) {
    let handshakes = TaskTracker::new();
    let mut reserve = ReserveDescriptor::new();
    let mut backoff = ACCEPT_ERROR_BACKOFF;
    let mut idle_check = tokio::time::interval(IDLE_CHECK_INTERVAL);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, address)) => {
                    backoff = ACCEPT_ERROR_BACKOFF;
                    let registry = registry.clone();
                    let shutdown = shutdown.clone();
                    handshakes.spawn(async move {
                        shutdown.run_until_cancelled(handshake(stream, address, registry)).await;
                    });
                }
                Err(error) => {
                    if out_of_descriptors(&error) {
                        // Give up the reserve to take the waiting connection off the queue and
                        // close it: its client learns at once, and the queue does not fill.
                        reserve.release();
                        if let Ok(Ok((stream, _))) =
                            tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
                        {
                            drop(stream);
                        }
                        reserve.take();
                    }
                    if registry.warning_allowed() {
                        warn!(%error, "accept failed; backing off {} ms", backoff.as_millis());
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_ERROR_BACKOFF_MAX);
                }
            },
            _ = idle_check.tick() => {
                registry.stop_idle_services();
                registry.summarize_warnings();
            }
            _ = shutdown.cancelled() => break,
        }
    }
    handshakes.close();
    handshakes.wait().await;
}
