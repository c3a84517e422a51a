//! One module per subcommand, each with its `Args` and its `run`; what they share (the gateway
//! options, connecting, reporting notifications) lives here.

pub mod bench;
pub mod listen;
pub mod mesh;
pub mod reply;
pub mod request;
pub mod send;
pub mod stats;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use messaging_mesh::{Connection, ConnectionParams, Notification, ReconnectPolicy, TlsParams};

/// How long connecting may take before the command gives up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Options every subcommand takes. Their defaults can also come from the environment and the
/// config file (`crate::defaults`).
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayArgs {
    /// Gateway to connect to; a host alone means port 5050.
    #[arg(long, value_name = "HOST[:PORT]", default_value = "127.0.0.1:5050")]
    pub gateway: String,
    /// Service (the group of clients that see each other's messages).
    #[arg(long, value_name = "NAME", default_value = messaging_mesh::DEFAULT_SERVICE)]
    pub service: String,
    /// Connect over TLS, trusting the CAs in this PEM file.
    #[arg(long, value_name = "FILE", env = "MM_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) to present over TLS (with --tls-key).
    #[arg(long, value_name = "FILE", env = "MM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", env = "MM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// User name, for services with users (with --password).
    #[arg(long, env = "MM_USER", requires = "password")]
    pub user: Option<String>,
    /// Password of --user (prefer the environment variable: command lines are visible to
    /// other users of the machine).
    #[arg(long, env = "MM_PASSWORD", hide_env_values = true, requires = "user")]
    pub password: Option<String>,
    /// Bearer token, for services with users.
    #[arg(
        long,
        env = "MM_TOKEN",
        hide_env_values = true,
        conflicts_with = "user"
    )]
    pub token: Option<String>,
}

impl GatewayArgs {
    /// Adds the TLS and credential options to `params`.
    pub fn secure(&self, mut params: ConnectionParams) -> anyhow::Result<ConnectionParams> {
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (Some(ca), cert, key) => {
                let client = cert.as_deref().zip(key.as_deref());
                params = params.with_tls(TlsParams::from_files(ca, client)?);
            }
            (None, Some(_), _) => anyhow::bail!("--tls-cert needs --tls-ca (the gateway's CA)"),
            (None, None, _) => {}
        }
        if let (Some(user), Some(password)) = (&self.user, &self.password) {
            params = params.with_user(user, password);
        }
        if let Some(token) = &self.token {
            params = params.with_token(token);
        }
        Ok(params)
    }
}

/// Whether a command runs until stopped (and so should ride out a gateway restart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Does one thing and exits: fail fast when the gateway goes away.
    OneShot,
    /// Runs until interrupted: reconnect, and say so on stderr.
    LongRunning,
}

/// Connects to the gateway as `mm-COMMAND@HOST:PID` (so `mm stats` tells the tool's connections
/// apart); notifications worth an operator's attention go to stderr.
pub fn connect(
    args: &GatewayArgs,
    command: &str,
    lifetime: Lifetime,
) -> anyhow::Result<Connection> {
    let mut params = ConnectionParams::new(&args.gateway, &args.service)
        .with_client_name(client_name(command))
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_notification_hook(move |notification| report(lifetime, notification));
    if lifetime == Lifetime::OneShot {
        params = params.with_reconnect(ReconnectPolicy::disabled());
    }
    let params = args.secure(params)?;
    Connection::connect(params).with_context(|| format!("service {}", args.service))
}

/// `mm-listen@host:4242`: the command, this host, this process.
fn client_name(command: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("mm-{command}@{host}:{}", std::process::id())
}

/// Failed redials reported while reconnecting: the first, then every tenth (the delay between
/// redials grows to 2 s, so about one line every 20 s while the gateway stays away).
const REPORT_EVERY_FAILED_REDIAL: u32 = 10;

/// Prints the notifications an operator wants to see. A long-running command says that it is
/// reconnecting, how that goes, and when it is back.
fn report(lifetime: Lifetime, notification: &Notification) {
    match notification {
        Notification::Connected { .. } | Notification::Closed => {}
        Notification::Reconnecting { .. } => {}
        Notification::Disconnected { reason } if lifetime == Lifetime::LongRunning => {
            eprintln!("mm: disconnected ({reason}) — reconnecting");
        }
        Notification::ReconnectFailed { attempt, error } => {
            if *attempt == 1 || attempt % REPORT_EVERY_FAILED_REDIAL == 0 {
                eprintln!("mm: still reconnecting: attempt {attempt} failed: {error}");
            }
        }
        other => eprintln!("mm: {other}"),
    }
}

/// Parses a number of seconds (`2`, `0.5`) for `--timeout`.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds.is_nan() || seconds <= 0.0 {
        return Err(format!("`{text}`: the timeout must be greater than 0"));
    }
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("`{text}` is not a usable number of seconds"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_must_be_positive() {
        assert_eq!(parse_seconds("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_seconds("0").unwrap_err().contains("greater than 0"));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("abc").is_err());
    }
}
