//! Broker processes the comparison harness starts: `mm-gateway` (alone or as a mesh) and
//! `nats-server`, on loopback, stopped on drop.

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A broker process.
pub struct Broker {
    child: Child,
    /// `host:port` to connect to.
    pub address: String,
    /// Kept so the configuration file lives as long as the process.
    _config: Option<PathBuf>,
}

impl Broker {
    /// Starts `mm-gateway` on a free loopback port.
    pub fn gateway(binary: &Path, extra_args: &[&str]) -> Result<Broker> {
        let mut command = Command::new(binary);
        command
            .args(["--port", "0", "--bind", "127.0.0.1", "--log-level", "warn"])
            .args(extra_args);
        Self::gateway_from(command, None)
    }

    fn gateway_from(mut command: Command, config: Option<PathBuf>) -> Result<Broker> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("start mm-gateway")?;
        let stdout = child.stdout.take().context("gateway stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        std::thread::spawn(move || {
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let address = line
            .trim()
            .strip_prefix("mm-gateway listening on ")
            .context("gateway did not print its address")?
            .to_owned();
        Ok(Broker {
            child,
            address,
            _config: config,
        })
    }

    /// Starts `count` gateways meshed for `service` on free loopback ports; returns once every
    /// gateway has its links up.
    pub fn mesh(binary: &Path, count: usize, service: &str) -> Result<Vec<Broker>> {
        let ports: Vec<u16> = (0..count).map(|_| free_port()).collect::<Result<_>>()?;
        let list: Vec<String> = ports
            .iter()
            .map(|port| format!("\"127.0.0.1:{port}\""))
            .collect();
        let config =
            std::env::temp_dir().join(format!("mm-bench-mesh-{}.json", std::process::id()));
        std::fs::write(
            &config,
            format!(
                r#"{{"StartupMeshes": [{{"Name": "{service}", "MeshGateways": [{}]}}]}}"#,
                list.join(", ")
            ),
        )?;
        let mut brokers = Vec::new();
        for (index, port) in ports.iter().enumerate() {
            let mut command = Command::new(binary);
            command.args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--log-level",
                "warn",
                "--name",
                &format!("bench-gw{}", index + 1),
                "--config",
            ]);
            command.arg(&config);
            brokers.push(Self::gateway_from(command, Some(config.clone()))?);
        }
        wait_for_mesh(&brokers, service, count - 1)?;
        Ok(brokers)
    }

    /// Starts `nats-server` on a free loopback port and waits until it answers.
    pub fn nats(binary: &Path) -> Result<Broker> {
        let port = free_port()?;
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let address = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Broker {
            child,
            address,
            _config: None,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // SAFETY: kill with SIGTERM on our own child's pid touches no memory.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until each gateway reports `peers` dialled links in `_MM.STATS`.
fn wait_for_mesh(brokers: &[Broker], service: &str, peers: usize) -> Result<()> {
    use messaging_mesh::{Connection, ConnectionParams, Message};
    let deadline = Instant::now() + Duration::from_secs(30);
    for broker in brokers {
        let connection =
            Connection::connect(ConnectionParams::new(broker.address.clone(), service))?;
        loop {
            let stats = connection
                .send_request("_MM.STATS", &Message::new(), Duration::from_secs(5))?
                .into_message();
            let dialled = stats
                .iter()
                .filter(|field| field.name() == "link")
                .filter_map(|field| field.as_message())
                .filter(|link| link.get_string("direction") == Ok("dialled"))
                .count();
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
