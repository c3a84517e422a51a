//! Test support for Messaging Mesh end-to-end tests.
//!
//! * [`GatewayProcess`] starts the real `mm-gateway` binary (port 0 by default), waits for its
//!   `mm-gateway listening on ADDR:PORT` line, keeps its log, and stops it on drop.
//!   [`GatewayLauncher`] chooses the binary, fixed arguments, namespace and logging (the
//!   benchmarks start gateways through it too); [`MeshProcesses`] starts several in a mesh.
//! * [`ChildProcess`] is any child process that is stopped (SIGTERM, then SIGKILL) on drop.
//! * [`write_config`] writes a gateway configuration into a temporary directory that is deleted
//!   when the returned [`ConfigFile`] is dropped: test runs leave nothing behind.
//! * [`RawClient`] speaks the wire protocol frame by frame over a blocking socket, built only on
//!   `mm-wire`: conformance tests see exactly the bytes the gateway sends.
//! * [`HealthyStream`] is a group of well-behaved clients (one publisher, two subscribers) that
//!   records loss, order and stalls while a test abuses the gateway; [`ProcessStatus`] and
//!   [`MemoryGuard`] read and cap what the gateway process costs.
//! * [`reliability`] holds the abuse scenarios' figures and renders `docs/reliability.md`.
//! * [`http_get`] asks the gateway's monitoring server (`GatewayProcess::monitoring_address`).
//! * [`EtcdServer`] runs a real single-member etcd on loopback for discovery tests.
//! * [`pki::TestPki`] makes a CA and certificates (rcgen) for TLS tests.
//! * [`wait_until`] polls a condition with a deadline, for the rare cases where no flush (PING/PONG)
//!   can serve as the synchronisation point.

mod child_process;
mod etcd;
mod gateway;
mod healthy_stream;
mod http;
pub mod mesh;
pub mod pki;
pub mod process;
mod raw_client;
pub mod reliability;

pub use child_process::ChildProcess;
pub use etcd::{EtcdServer, EtcdTls};
pub use gateway::{
    ConfigFile, GatewayLauncher, GatewayProcess, binary_path, free_port, write_config,
};
pub use healthy_stream::{HealthyStream, HealthyStreamOptions, StreamReport};
pub use http::{HttpResponse, http_get};
pub use mesh::MeshProcesses;
pub use process::{GuardReport, MemoryGuard, ProcessStatus};
pub use raw_client::{RawClient, RawClientOptions, Received};

use std::time::{Duration, Instant};

/// Default time a test waits for something that should happen promptly.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `condition` every few milliseconds until it is true or `timeout` passes; returns whether
/// it became true. Also serves to watch a window of time for something that must *not* happen
/// (`assert!(!wait_until(window, || bad_thing()))`).
pub fn wait_until(timeout: Duration, condition: impl FnMut() -> bool) -> bool {
    wait_until_every(timeout, Duration::from_millis(5), condition)
}

/// [`wait_until`], polling every `interval` (for conditions that are costly to check).
pub fn wait_until_every(
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(interval);
    }
}
