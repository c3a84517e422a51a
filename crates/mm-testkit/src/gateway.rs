//! Real `mm-gateway` processes for tests.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::PATIENCE;
use crate::child_process::ChildProcess;

/// Where the `name` binary is: `$NAME_BIN` (`MM_GATEWAY_BIN` for `mm-gateway`), or next to the
/// test executable's `deps/` directory (`target/<profile>/name`). Cargo builds a package's own
/// binaries before its integration tests (the gateway's end-to-end tests live in
/// `mm-gateway-bin` for that reason); tests of other packages need `cargo build --workspace
/// --bins` first, which `scripts/test.sh` does.
pub fn binary_path(name: &str) -> PathBuf {
    let variable = format!("{}_BIN", name.to_uppercase().replace('-', "_"));
    if let Some(path) = std::env::var_os(variable) {
        return PathBuf::from(path);
    }
    let executable = std::env::current_exe().expect("test executable path");
    let mut directory = executable.parent().expect("deps directory").to_path_buf();
    if directory.ends_with("deps") {
        directory.pop();
    }
    let path = directory.join(name);
    assert!(
        path.exists(),
        "{} not found: run `cargo build --workspace --bins` first (scripts/test.sh does), or set {}_BIN",
        path.display(),
        name.to_uppercase().replace('-', "_")
    );
    path
}

/// A port that was free a moment ago (for tests that must know ports up front, like meshes).
/// Callers retry when the port turns out to be taken.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("bind an ephemeral port")
}

/// Writes a configuration file into a fresh temporary directory; both are deleted when the
/// returned [`ConfigFile`] is dropped, so keep it for as long as a gateway may read it.
pub fn write_config(name: &str, text: &str) -> ConfigFile {
    let directory = tempfile::Builder::new()
        .prefix(&format!("mm-test-{name}-"))
        .tempdir()
        .expect("create temp dir");
    let path = directory.path().join("gateway.json");
    std::fs::write(&path, text).expect("write config");
    ConfigFile {
        path,
        _directory: directory,
    }
}

/// A configuration file in its own temporary directory, removed on drop. Dereferences to its path.
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    _directory: tempfile::TempDir,
}

impl ConfigFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ConfigFile {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ConfigFile {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for ConfigFile {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

/// How to start `mm-gateway`: which binary, fixed leading arguments, an optional network
/// namespace, and where its log goes. [`GatewayLauncher::new`] gives what tests use; tools (the
/// benchmarks) pick their own binary and logging.
#[derive(Debug, Clone)]
pub struct GatewayLauncher {
    binary: PathBuf,
    args: Vec<String>,
    namespace: Option<String>,
    log_filter: Option<String>,
    echo_prefix: Option<String>,
    open_file_limit: Option<u64>,
}

impl Default for GatewayLauncher {
    fn default() -> Self {
        GatewayLauncher::new()
    }
}

impl GatewayLauncher {
    /// The binary [`binary_path`] finds, `RUST_LOG` from `$MM_TEST_LOG` (default `info`), and the
    /// log echoed to stderr (prefixed `[gateway]`) when `$MM_TEST_ECHO` is set.
    pub fn new() -> GatewayLauncher {
        GatewayLauncher::with_binary(binary_path("mm-gateway"))
            .log_filter(Some(
                &std::env::var("MM_TEST_LOG").unwrap_or_else(|_| "info".into()),
            ))
            .echo_log(std::env::var_os("MM_TEST_ECHO").map(|_| "[gateway] "))
    }

    /// Starts `binary`, with the environment's `RUST_LOG` (if any) and no echo.
    pub fn with_binary(binary: impl Into<PathBuf>) -> GatewayLauncher {
        GatewayLauncher {
            binary: binary.into(),
            args: Vec::new(),
            namespace: None,
            open_file_limit: None,
            log_filter: None,
            echo_prefix: None,
        }
    }

    /// Arguments that go before the ones given to [`GatewayLauncher::start`] on every start.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> GatewayLauncher {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Runs the gateway inside network namespace `namespace` (`ip netns exec`).
    pub fn in_namespace(mut self, namespace: &str) -> GatewayLauncher {
        self.namespace = Some(namespace.to_owned());
        self
    }

    /// Sets `RUST_LOG` for the gateway; `None` leaves it as this process has it (so that
    /// `--log-level` decides unless the caller's environment says otherwise).
    pub fn log_filter(mut self, filter: Option<&str>) -> GatewayLauncher {
        self.log_filter = filter.map(str::to_owned);
        self
    }

    /// Copies each line the gateway logs to this process's stderr as it comes, after `prefix`;
    /// `None` keeps the log only in memory ([`GatewayProcess::log`]).
    pub fn echo_log(mut self, prefix: Option<&str>) -> GatewayLauncher {
        self.echo_prefix = prefix.map(str::to_owned);
        self
    }

    /// Runs the gateway with at most `limit` open descriptors: soft and hard `RLIMIT_NOFILE` are
    /// both set before it runs (the gateway raises its soft limit to the hard one at start, so the
    /// hard limit is what counts).
    pub fn open_file_limit(mut self, limit: u64) -> GatewayLauncher {
        self.open_file_limit = Some(limit);
        self
    }

    /// Starts the gateway with the fixed arguments plus `args`, and waits for its
    /// `mm-gateway listening on ADDR:PORT` line; the error carries the gateway's stderr.
    pub fn start(&self, args: &[&str]) -> Result<GatewayProcess, String> {
        let mut command = match &self.namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        command.args(&self.args).args(args);
        if let Some(filter) = &self.log_filter {
            command.env("RUST_LOG", filter);
        }
        if let Some(limit) = self.open_file_limit {
            use std::os::unix::process::CommandExt;
            let limit = libc::rlimit {
                rlim_cur: limit as libc::rlim_t,
                rlim_max: limit as libc::rlim_t,
            };
            // SAFETY: the closure runs in the forked child before exec and only calls
            // setrlimit, which is async-signal-safe, on a struct it owns; it allocates nothing.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("spawn {}: {error}", self.binary.display()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        let echo_prefix = self.echo_prefix.clone();
        let stderr_reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Some(prefix) = &echo_prefix {
                    eprint!("{prefix}{line}");
                }
                if let Ok(mut log) = sink.lock() {
                    log.push_str(&line);
                }
                line.clear();
            }
        });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut process = ChildProcess::new(child);
        let (sender, receiver) = std::sync::mpsc::channel();
        let later_lines = Arc::new(Mutex::new(Vec::new()));
        let later_sink = later_lines.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut first = String::new();
            let _ = reader.read_line(&mut first);
            let _ = sender.send(first);
            // Later lines (the monitoring address) are kept, a few; the rest is drained so the
            // gateway never blocks on stdout.
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                if let Ok(mut lines) = later_sink.lock()
                    && lines.len() < 16
                {
                    lines.push(line.trim().to_owned());
                }
                line.clear();
            }
            let mut rest = Vec::new();
            let _ = reader.read_to_end(&mut rest);
        });
        let first = receiver.recv_timeout(PATIENCE).unwrap_or_default();
        let Some(address) = first
            .trim()
            .strip_prefix("mm-gateway listening on ")
            .and_then(|address| address.parse::<SocketAddr>().ok())
        else {
            let status = process.kill();
            // The child is gone, so its stderr reaches EOF and the reader ends.
            let _ = stderr_reader.join();
            let log = log.lock().map(|log| log.clone()).unwrap_or_default();
            return Err(format!(
                "first line {first:?}, exit {status:?}, stderr:\n{log}"
            ));
        };
        let address = if address.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], address.port()))
        } else {
            address
        };
        Ok(GatewayProcess {
            process,
            address,
            stdout_lines: later_lines,
            log,
            args: self
                .args
                .iter()
                .cloned()
                .chain(args.iter().map(|arg| arg.to_string()))
                .collect(),
        })
    }
}

/// A running `mm-gateway`. Stopped with SIGTERM (then SIGKILL) on drop.
pub struct GatewayProcess {
    process: ChildProcess,
    /// The address it listens on, with 127.0.0.1 for a wildcard bind.
    address: SocketAddr,
    /// Lines it printed on stdout after the first.
    stdout_lines: Arc<Mutex<Vec<String>>>,
    /// Everything it wrote to stderr.
    log: Arc<Mutex<String>>,
    args: Vec<String>,
}

impl GatewayProcess {
    /// Starts `mm-gateway --port 0 --bind 127.0.0.1` plus `args`.
    pub fn start(args: &[&str]) -> GatewayProcess {
        let mut all = vec!["--port", "0", "--bind", "127.0.0.1"];
        all.extend_from_slice(args);
        Self::start_exact(&all).unwrap_or_else(|error| panic!("gateway did not start: {error}"))
    }

    /// Starts `mm-gateway` with exactly `args`; the error carries the gateway's stderr.
    pub fn start_exact(args: &[&str]) -> Result<GatewayProcess, String> {
        GatewayLauncher::new().start(args)
    }

    /// Starts `mm-gateway --port 0 --bind 127.0.0.1` plus `args` with at most `limit` open
    /// descriptors: soft and hard `RLIMIT_NOFILE` are both set before it runs (the gateway raises
    /// its soft limit to the hard one at start, so the hard limit is what counts).
    pub fn start_with_open_file_limit(limit: u64, args: &[&str]) -> GatewayProcess {
        let mut all = vec!["--port", "0", "--bind", "127.0.0.1"];
        all.extend_from_slice(args);
        GatewayLauncher::new()
            .open_file_limit(limit)
            .start(&all)
            .unwrap_or_else(|error| panic!("gateway did not start: {error}"))
    }

    /// Starts `mm-gateway` inside network namespace `namespace` (`ip netns exec`).
    pub fn start_in_namespace(namespace: &str, args: &[&str]) -> Result<GatewayProcess, String> {
        GatewayLauncher::new().in_namespace(namespace).start(args)
    }

    /// The address to connect to.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// `host:port` to connect to.
    pub fn address_string(&self) -> String {
        self.address.to_string()
    }

    /// The monitoring server's address, from the gateway's `mm-gateway monitoring on
    /// http://ADDR` line (waits for it; `None` if monitoring is off). A wildcard address is
    /// given as 127.0.0.1.
    pub fn monitoring_address(&self) -> Option<SocketAddr> {
        let mut found = None;
        crate::wait_until(PATIENCE, || {
            found = self.stdout_lines.lock().ok().and_then(|lines| {
                lines.iter().find_map(|line| {
                    line.strip_prefix("mm-gateway monitoring on http://")
                        .and_then(|address| address.parse::<SocketAddr>().ok())
                })
            });
            found.is_some()
                || !self
                    .args
                    .iter()
                    .any(|arg| arg == "--http" || arg == "--config")
        });
        found.map(|address| {
            if address.ip().is_unspecified() {
                SocketAddr::from(([127, 0, 0, 1], address.port()))
            } else {
                address
            }
        })
    }

    /// The monitoring server's address; panics if monitoring is off.
    pub fn http(&self) -> SocketAddr {
        self.monitoring_address()
            .expect("the gateway prints its monitoring address (started with --http?)")
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The arguments it was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> String {
        self.log.lock().map(|log| log.clone()).unwrap_or_default()
    }

    /// Bytes the gateway has written to stderr so far (cheap: no copy).
    pub fn log_len(&self) -> usize {
        self.log.lock().map(|log| log.len()).unwrap_or(0)
    }

    /// What the gateway logged after the first `offset` bytes (see [`GatewayProcess::log_len`]).
    pub fn log_since(&self, offset: usize) -> String {
        self.log
            .lock()
            .map(|log| log.get(offset..).unwrap_or_default().to_owned())
            .unwrap_or_default()
    }

    /// Waits until the log contains `text`.
    pub fn wait_for_log(&self, text: &str, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.log().contains(text))
    }

    /// Resident set size in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// Memory and threads, from `/proc/PID/status`.
    pub fn status(&self) -> crate::ProcessStatus {
        crate::ProcessStatus::read(self.pid())
    }

    /// Open file descriptors, from `/proc/PID/fd`.
    pub fn open_fds(&self) -> u64 {
        crate::process::open_fds(self.pid())
    }

    /// Resets the peak resident size the kernel reports (`VmHWM`) to the current size.
    pub fn reset_peak_rss(&self) -> bool {
        crate::process::reset_peak_rss(self.pid())
    }

    /// The exit status, if the process has ended (by itself, or killed).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.process.try_wait()
    }

    /// Sends SIGTERM and waits up to `limit` for the exit. `Ok((status, elapsed))` if it exited
    /// by itself in time; otherwise it is killed with SIGKILL and `Err(limit)` comes back.
    pub fn terminate_within(
        &mut self,
        limit: Duration,
    ) -> Result<(ExitStatus, Duration), Duration> {
        self.process.terminate_within(limit)
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.process.terminate()
    }

    /// Sends SIGINT and waits for the exit status.
    pub fn interrupt(&mut self) -> Option<ExitStatus> {
        self.process.interrupt()
    }

    /// SIGKILL, as in a crash.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGSTOP: the process freezes (its sockets stay open but nothing is read or answered).
    pub fn pause(&self) {
        self.process.pause();
    }

    /// SIGCONT after [`GatewayProcess::pause`].
    pub fn resume(&self) {
        self.process.resume();
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }
}
