//! A real etcd server for discovery tests: one member on loopback, ports chosen at start, data in
//! a temporary directory deleted with it. Debian's `etcd-server` package provides the binary
//! (`scripts/test.sh` installs it); `$MM_ETCD_BIN` names another.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::child_process::ChildProcess;
use crate::{free_port, wait_until};

/// How long etcd may take to elect itself and serve clients.
const READY_PATIENCE: Duration = Duration::from_secs(30);

/// TLS files for [`EtcdServer::start_tls`] (PEM).
#[derive(Debug, Clone)]
pub struct EtcdTls {
    /// The server's certificate (valid for 127.0.0.1).
    pub cert_file: PathBuf,
    /// Its key.
    pub key_file: PathBuf,
    /// The CA that signed client certificates; clients must present one.
    pub client_ca_file: PathBuf,
}

/// A running single-member etcd. Stopped (SIGTERM) on drop; the data directory goes with it.
pub struct EtcdServer {
    process: Option<ChildProcess>,
    binary: PathBuf,
    data: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    tls: Option<EtcdTls>,
    log: Arc<Mutex<String>>,
}

impl EtcdServer {
    /// Where the etcd binary is: `$MM_ETCD_BIN`, else `etcd` on the `PATH`.
    pub fn binary() -> Result<PathBuf, String> {
        if let Some(path) = std::env::var_os("MM_ETCD_BIN") {
            return Ok(PathBuf::from(path));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
            .map(|directory| directory.join("etcd"))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| {
                "etcd not found: install Debian's etcd-server (scripts/test.sh does), or set \
                 MM_ETCD_BIN"
                    .to_owned()
            })
    }

    /// Starts a plain-HTTP etcd and waits until it serves clients. Panics (with the reason) if it
    /// cannot.
    pub fn start() -> EtcdServer {
        Self::start_with(None).unwrap_or_else(|error| panic!("etcd did not start: {error}"))
    }

    /// Starts an etcd that speaks TLS only and requires client certificates.
    pub fn start_tls(tls: EtcdTls) -> EtcdServer {
        Self::start_with(Some(tls)).unwrap_or_else(|error| panic!("etcd did not start: {error}"))
    }

    fn start_with(tls: Option<EtcdTls>) -> Result<EtcdServer, String> {
        let binary = Self::binary()?;
        let mut last_error = String::new();
        for _attempt in 0..5 {
            let data = tempfile::Builder::new()
                .prefix("mm-test-etcd-")
                .tempdir()
                .map_err(|error| format!("temporary directory: {error}"))?;
            let mut server = EtcdServer {
                process: None,
                binary: binary.clone(),
                data,
                client_port: free_port(),
                peer_port: free_port(),
                tls: tls.clone(),
                log: Arc::default(),
            };
            match server.launch() {
                Ok(()) => return Ok(server),
                // Another test took a port between our look and etcd's bind: new ports.
                Err(error) if error.contains("address already in use") => last_error = error,
                Err(error) => return Err(error),
            }
        }
        Err(last_error)
    }

    /// Starts the process on this server's ports and data directory, and waits until ready.
    fn launch(&mut self) -> Result<(), String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let client_url = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&self.binary);
        command
            .arg("--name=mmtest")
            .arg(format!("--data-dir={}", self.data.path().display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=mmtest={peer_url}"))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr");
        if let Some(tls) = &self.tls {
            command
                .arg(format!("--cert-file={}", tls.cert_file.display()))
                .arg(format!("--key-file={}", tls.key_file.display()))
                .arg(format!(
                    "--trusted-ca-file={}",
                    tls.client_ca_file.display()
                ))
                .arg("--client-cert-auth");
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("spawn {}: {error}", self.binary.display()))?;
        let stderr = child.stderr.take().expect("piped stderr");
        let log = self.log.clone();
        let echo = std::env::var_os("MM_TEST_ECHO").is_some();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if echo {
                    eprintln!("[etcd] {line}");
                }
                if let Ok(mut log) = log.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let mut process = ChildProcess::new(child);
        let start = self.log().len();
        let ready = wait_until(READY_PATIENCE, || {
            let log = self.log();
            let this_run = &log[start.min(log.len())..];
            (this_run.contains("serving client traffic")
                && this_run.contains("published local member to cluster"))
                || !process.is_running()
        });
        if ready && process.is_running() {
            self.process = Some(process);
            return Ok(());
        }
        process.kill();
        let log = self.log();
        Err(format!(
            "not ready within {READY_PATIENCE:?}; log:\n{}",
            &log[start.min(log.len())..]
        ))
    }

    /// The client URL, as a gateway's `Etcd.Endpoints` lists it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.client_port)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data.path()
    }

    /// Everything etcd logged (every run).
    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|process| process.is_running())
    }

    /// Stops etcd (SIGTERM) and waits for it to exit; its data stays for [`EtcdServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate();
        }
    }

    /// SIGKILL, as in a crash; its data stays.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Starts etcd again on the same ports with the same data (after stop or kill), and waits
    /// until it serves clients.
    pub fn restart(&mut self) {
        self.stop();
        let mut last_error = String::new();
        for _ in 0..50 {
            match self.launch() {
                Ok(()) => return,
                // The old sockets may linger for a moment.
                Err(error) if error.contains("address already in use") => {
                    last_error = error;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("etcd did not restart: {error}"),
            }
        }
        panic!("etcd did not restart: {last_error}");
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
