//! Carries each service's statistics (SPEC §11) to the `_COORDINATOR` service.
//!
//! Services leave `(subject, body)` in the context's bounded outbox every 2 s (a full outbox
//! skips a window, it never blocks a service); this task, on the main runtime, hands each one to
//! the `_COORDINATOR` service as a `ServiceCommand::Publish`, which routes it like a gateway
//! answer — to local subscribers, and to the mesh if `_COORDINATOR` is meshed. When no
//! `_COORDINATOR` service runs on this gateway (nobody connected to it, and it is not in
//! `StartupMeshes`), nobody could receive the message, and it is dropped.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::context::CoordinatorMessage;
use crate::listener::ServiceRegistry;
use crate::monitoring::service_stats::COORDINATOR_SERVICE;
use crate::service::ServiceCommand;

/// Messages waiting in the outbox at most.
pub(crate) const OUTBOX_CAPACITY: usize = 256;

/// A new outbox: the sender goes into the context, the receiver to [`forward`].
pub(crate) fn outbox() -> (
    mpsc::Sender<CoordinatorMessage>,
    mpsc::Receiver<CoordinatorMessage>,
) {
    mpsc::channel(OUTBOX_CAPACITY)
}

/// Forwards the outbox to `_COORDINATOR` until `shutdown`.
pub(crate) async fn forward(
    mut outbox: mpsc::Receiver<CoordinatorMessage>,
    registry: Arc<ServiceRegistry>,
    shutdown: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            message = outbox.recv() => message,
            _ = shutdown.cancelled() => None,
        };
        let Some((subject, body)) = message else {
            break;
        };
        if let Some(commands) = registry.running_service(COORDINATOR_SERVICE) {
            // A service that is this far behind drops statistics rather than queueing them.
            let _ = commands.try_send(ServiceCommand::Publish { subject, body });
        }
    }
}
