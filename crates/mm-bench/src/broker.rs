//! Broker processes the comparison harness starts, on loopback, stopped on drop: `mm-gateway`
//! (alone or as a mesh) through the test kit's launcher, and `nats-server` as a test-kit child
//! process.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use mm_testkit::{ChildProcess, GatewayLauncher, GatewayProcess, MeshProcesses};

/// How long a broker may take to start or a mesh to link up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker process.
pub struct Broker {
    /// `host:port` to connect to.
    pub address: String,
    process: BrokerProcess,
}

/// What runs behind a [`Broker`]; either one is stopped when dropped.
enum BrokerProcess {
    Gateway(GatewayProcess),
    Nats(ChildProcess),
}

impl Broker {
    /// Starts `mm-gateway` on a free loopback port.
    pub fn gateway(binary: &Path, extra_args: &[&str]) -> Result<Broker> {
        let mut args = vec!["--port", "0", "--bind", "127.0.0.1"];
        args.extend_from_slice(extra_args);
        let gateway = launcher(binary)
            .start(&args)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("start {}", binary.display()))?;
        Ok(Broker {
            address: gateway.address_string(),
            process: BrokerProcess::Gateway(gateway),
        })
    }

    /// Starts `nats-server` on a free loopback port and waits until it accepts connections.
    pub fn nats(binary: &Path) -> Result<Broker> {
        let port = mm_testkit::free_port();
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let mut process = ChildProcess::new(child);
        let address = format!("127.0.0.1:{port}");
        let up = mm_testkit::wait_until_every(START_TIMEOUT, Duration::from_millis(20), || {
            !process.is_running() || TcpStream::connect(&address).is_ok()
        });
        if !process.is_running() {
            bail!("nats-server exited at start (port {port} taken?)");
        }
        if !up {
            bail!("nats-server did not accept connections within {START_TIMEOUT:?}");
        }
        Ok(Broker {
            address,
            process: BrokerProcess::Nats(process),
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        match &self.process {
            BrokerProcess::Gateway(gateway) => gateway.pid(),
            BrokerProcess::Nats(process) => process.pid(),
        }
    }
}

/// Starts `count` gateways meshed for `service` on free loopback ports; returns once every
/// gateway has its links up.
pub fn mesh(binary: &Path, count: usize, service: &str) -> Result<MeshProcesses> {
    let mesh = MeshProcesses::start_with(&launcher(binary), count, service, "")
        .map_err(anyhow::Error::msg)
        .context("start the benchmark mesh")?;
    wait_for_mesh(&mesh, count - 1)?;
    Ok(mesh)
}

/// Gateways log warnings and errors only, straight to our stderr, as they come.
fn launcher(binary: &Path) -> GatewayLauncher {
    GatewayLauncher::with_binary(binary)
        .args(["--log-level", "warn"])
        .echo_log(Some(""))
}

/// Waits until each gateway reports `peers` dialled links in `_MM.STATS`.
fn wait_for_mesh(mesh: &MeshProcesses, peers: usize) -> Result<()> {
    use messaging_mesh::{Connection, ConnectionParams, Message};
    let deadline = Instant::now() + START_TIMEOUT;
    for gateway in &mesh.gateways {
        let connection = Connection::connect(ConnectionParams::new(
            gateway.address_string(),
            &mesh.service,
        ))?;
        loop {
            let stats = connection
                .send_request("_MM.STATS", &Message::new(), Duration::from_secs(5))?
                .into_message();
            let (dialled, _) = mm_testkit::mesh::link_counts(&stats);
            if dialled >= peers {
                break;
            }
            if Instant::now() > deadline {
                bail!("the benchmark mesh did not link up");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}
