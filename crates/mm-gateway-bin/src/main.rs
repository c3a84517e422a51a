//! `mm-gateway`: the Messaging Mesh broker.
//!
//! Parses the command line, sets up logging, loads the configuration, and runs the gateway until
//! SIGINT or SIGTERM; SIGHUP reloads the security settings of the configuration file
//! (certificates, keys, the mesh secret, users). The first line on stdout is `mm-gateway
//! listening on ADDR:PORT`, printed once the socket accepts connections; with `--http`, the second
//! is `mm-gateway monitoring on http://ADDR:PORT`. `mm-gateway passwd` prints the hash of a
//! password or token for the configuration file.

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

/// Environment variable that may hold the monitoring token (kept off the command line, where
/// other users of the machine could read it).
const TOKEN_VARIABLE: &str = "MM_GATEWAY_HTTP_TOKEN";

/// The Messaging Mesh gateway.
#[derive(Debug, Parser)]
#[command(
    name = "mm-gateway",
    version,
    about = "The Messaging Mesh gateway: pub/sub broker and mesh node",
    after_help = "Examples:\n  mm-gateway                      listen on 0.0.0.0:5050\n  mm-gateway --port 0             pick a free port (printed on the first line)\n  mm-gateway --config mesh.json   start the meshes listed in the file\n  mm-gateway --mesh gw1:5050,gw2:5050,gw3:5050\n                                  mesh every service with these gateways\n  mm-gateway --http 8222          monitoring on http://127.0.0.1:8222 (dashboard, /metrics)\n  mm-gateway passwd               print the hash of a password (read from stdin)\n\nLogging: --log-level or RUST_LOG (e.g. RUST_LOG=mm_gateway=debug).\nSIGHUP reloads certificates, keys, the mesh secret and users from --config."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TCP port to listen on; 0 picks a free one.
    #[arg(short, long)]
    port: Option<u16>,
    /// Address to listen on: an IP address or a host name (`localhost`), resolved at start.
    #[arg(long, value_name = "ADDR", value_parser = parse_bind)]
    bind: Option<IpAddr>,
    /// JSON configuration file (`//` comments allowed).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Mesh every service, on-demand ones included, with these gateways (HOST:PORT, repeated or
    /// comma-separated; this gateway's own address may be among them): the `*` entry of
    /// StartupMeshes.
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    mesh: Vec<String>,
    /// Gateway name sent to clients and peers (default: the host name).
    #[arg(long)]
    name: Option<String>,
    /// Largest frame accepted, in bytes (default 67108864).
    #[arg(long, value_name = "BYTES")]
    max_frame: Option<u64>,
    /// Serve monitoring (dashboard, JSON, /metrics) on this port; 0 picks a free one.
    #[arg(long, value_name = "PORT")]
    http: Option<u16>,
    /// Address of the monitoring server (default 127.0.0.1: this host only).
    #[arg(long, value_name = "ADDR")]
    http_bind: Option<IpAddr>,
    /// Token the monitoring server requires (prefer the MM_GATEWAY_HTTP_TOKEN variable: a
    /// command line is visible to other users).
    #[arg(long, value_name = "TOKEN")]
    http_token: Option<String>,
    /// Publish each service's statistics on service _COORDINATOR every 2 s.
    #[arg(long)]
    coordinator_stats: bool,
    /// Log level: error, warn, info, debug, trace (RUST_LOG overrides).
    #[arg(long, value_name = "LEVEL", default_value = "info")]
    log_level: String,
}

/// Other things the binary does.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Prints the argon2id hash of a password or token (read from stdin, one line) for
    /// `PasswordHash` or `TokenHash` in the configuration file.
    Passwd {
        /// Generate a random token instead of reading one, and print it (first line) and its
        /// hash (second line).
        #[arg(long)]
        generate_token: bool,
    },
}

fn main() -> ExitCode {
    // Before any thread starts: one malloc arena, so freed memory can go back to the system.
    mm_gateway::memory::use_single_arena();
    let args = Args::parse();
    if let Some(Command::Passwd { generate_token }) = args.command {
        return passwd(generate_token);
    }
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
    if !args.mesh.is_empty()
        && let Err(error) = config.mesh_every_service_with(&args.mesh)
    {
        eprintln!("mm-gateway: {error}");
        return ExitCode::from(EXIT_CONFIG);
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
    if let Some(port) = args.http {
        config.http_port = Some(port);
    }
    if let Some(bind) = args.http_bind {
        config.http_bind = bind;
    }
    let token = args.http_token.or_else(|| {
        std::env::var(TOKEN_VARIABLE)
            .ok()
            .filter(|token| !token.is_empty())
    });
    if let Some(token) = token {
        match config::Secret::token(&token) {
            Ok(secret) => config.http_token = Some(secret),
            Err(message) => {
                eprintln!("mm-gateway: monitoring token {message}");
                return ExitCode::from(EXIT_CONFIG);
            }
        }
    }
    if args.coordinator_stats {
        config.coordinator_stats = true;
    }
    if config.http_port.is_some() && config.http_token.is_none() && !config.http_bind.is_loopback()
    {
        warn!(
            bind = %config.http_bind,
            "the monitoring server listens beyond this host without a token: anyone who can reach it sees the gateway's clients and traffic"
        );
    }
    match run(config, args.config) {
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

/// `mm-gateway passwd`.
fn passwd(generate_token: bool) -> ExitCode {
    let secret = if generate_token {
        use std::fmt::Write as _;
        let bytes: [u8; 24] = rand_bytes();
        bytes.iter().fold(String::new(), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
    } else {
        if std::io::stdin().is_terminal() {
            eprint!("password: ");
        }
        let mut line = String::new();
        if let Err(error) = std::io::stdin().read_line(&mut line) {
            eprintln!("mm-gateway: cannot read the password: {error}");
            return ExitCode::FAILURE;
        }
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        if line.is_empty() {
            eprintln!("mm-gateway: empty password");
            return ExitCode::from(EXIT_CONFIG);
        }
        line
    };
    match mm_gateway::hash_secret(&secret) {
        Ok(hash) => {
            if generate_token {
                println!("{secret}");
            }
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mm-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Random bytes from the operating system.
fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Ok(mut random) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut random, &mut bytes);
    }
    bytes
}

fn run(config: GatewayConfig, config_path: Option<PathBuf>) -> anyhow::Result<()> {
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the event loop")?;
    runtime.block_on(async {
        let gateway = Gateway::bind(config).await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "mm-gateway listening on {}", gateway.local_addr())?;
        if let Some(address) = gateway.monitoring_addr() {
            writeln!(stdout, "mm-gateway monitoring on http://{address}")?;
        }
        stdout.flush()?;
        drop(stdout);
        if let Some(path) = config_path {
            tokio::spawn(reload_on_hangup(path, gateway.security_reloader()));
        }
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

/// On each SIGHUP: reads the configuration file again and puts its security settings in force
/// (other settings need a restart). A file that cannot be used changes nothing.
async fn reload_on_hangup(path: PathBuf, reloader: mm_gateway::SecurityReloader) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler: no reloading");
        return;
    };
    while hangup.recv().await.is_some() {
        let mut config = GatewayConfig::default();
        let result = config
            .apply_file(&path)
            .map_err(anyhow::Error::from)
            .and_then(|_| {
                reloader
                    .reload(&config.security)
                    .map_err(anyhow::Error::from)
            });
        match result {
            Ok(()) => tracing::info!(file = %path.display(), "security settings reloaded"),
            Err(error) => {
                warn!(file = %path.display(), "reload failed, nothing changed: {error:#}")
            }
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every connection is a descriptor.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(error) => warn!(%error, "cannot raise the open file limit"),
    }
}
