//! `mm-gateway`: the Messaging Mesh broker.
//!
//! Parses the command line, sets up logging, loads the configuration, and runs the gateway until
//! SIGINT or SIGTERM. The first line on stdout is `mm-gateway listening on ADDR:PORT`, printed once
//! the socket accepts connections.

use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use mm_gateway::{Gateway, GatewayConfig, config};
use tracing::warn;

/// Exit code for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;

/// The Messaging Mesh gateway.
#[derive(Debug, Parser)]
#[command(
    name = "mm-gateway",
    version,
    about = "The Messaging Mesh gateway: pub/sub broker and mesh node",
    after_help = "Examples:\n  mm-gateway                      listen on 0.0.0.0:5050\n  mm-gateway --port 0             pick a free port (printed on the first line)\n  mm-gateway --config mesh.json   start the meshes listed in the file\n\nLogging: --log-level or RUST_LOG (e.g. RUST_LOG=mm_gateway=debug)."
)]
struct Args {
    /// TCP port to listen on; 0 picks a free one.
    #[arg(short, long)]
    port: Option<u16>,
    /// Address to listen on: an IP address or a host name (`localhost`), resolved at start.
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    bind: Option<IpAddr>,
    /// JSON configuration file (`//` comments allowed).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Gateway name sent to clients and peers (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Largest frame accepted, in bytes (default 67108864).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<u64>,
    /// Log level: error, warn, info, debug, trace (RUST_LOG overrides).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

fn main() -> ExitCode {
    // Before any thread starts: one malloc arena, so freed memory can go back to the system.
    mm_gateway::memory::use_single_arena();
    let args = Args::parse();
    init_logging(&args.log_level);
    let mut config = GatewayConfig::default();
    if let Some(path) = &args.config {
        match config.apply_file(path) {
            Ok(warnings) => {
                for warning in warnings {
                    warn!("{}: {warning}", path.display());
                }
            }
            Err(error) => {
                eprintln!("mm-gateway: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    if let Some(name) = args.name {
        config.name = name;
    }
    if let Some(max_frame) = args.max_frame {
        match config::check_max_frame(max_frame) {
            Ok(max_frame) => config.max_frame = max_frame,
            Err(message) => {
                eprintln!("mm-gateway: --max-frame {message}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    match run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mm-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// An IP address, or a host name resolved to its first IPv4 address (else its first address).
fn parse_bind(text: &str) -> Result<IpAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let addresses: Vec<IpAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(text, 0))
        .map_err(|error| format!("cannot resolve `{text}`: {error}"))?
        .map(|address| address.ip())
        .collect();
    addresses
        .iter()
        .find(|address| address.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn run(config: GatewayConfig) -> anyhow::Result<()> {
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    runtime.block_on(async {
        let gateway = Gateway::bind(config).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mm-gateway listening on {}", gateway.local_addr())?;
        stdout.flush()?;
        drop(stdout);
        gateway.run_until(shutdown_signal()).await;
        Ok(())
    })
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        warn!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Raises the soft limit on open files to the hard limit: every connection is a descriptor.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => warn!(%error, "cannot raise the open file limit"),
    }
}
