//! `mm`: the Messaging Mesh command-line tool.
//!
//! `main` parses the command line, runs one subcommand (one module each under `cmd/`), and turns
//! the outcome into an exit code: 0 for success (a closed stdout pipe included), 1 for an error
//! (printed as one line with its causes), 2 for bad usage, and the request command's own codes
//! for a timeout (3) and no responders (4).

mod cmd;
mod defaults;
mod fields;
mod json;
mod monitoring_api;
mod render;
mod top;

use std::io::ErrorKind;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit code for errors.
const EXIT_ERROR: u8 = 1;

/// The Messaging Mesh command-line tool.
#[derive(Debug, Parser)]
#[command(
    name = "mm",
    version,
    about = "Messaging Mesh command-line tool: listen, send, request, reply, gateway stats, mesh membership, benchmarks",
    after_help = "Examples (two terminals):\n  \
        mm listen 'PRICES.>'\n  \
        mm send PRICES.IBM sym=IBM px=123.4 qty:u32=100\n\n  \
        mm reply Service.Echo\n  \
        mm request Service.Echo text=hello --timeout 2\n\n  \
        mm stats --gateway gw1:5050 --service ORDERS\n  \
        mm top --http gw1:8222                 (gateway started with --http 8222)\n\n  \
        mm mesh --gateway gw1:5050 --service ORDERS\n\n  \
        mm bench pubsub --size 16 --count 5000000\n\n\
        Every command takes --gateway HOST[:PORT] (default 127.0.0.1:5050; a host alone means port \
        5050) and --service NAME (default DEFAULT). Their defaults come, in this order, from the \
        command line, the environment (MM_GATEWAY, MM_SERVICE), the config file \
        (~/.config/mm/config.json, or the file MM_CONFIG names: {\"gateway\": \"gw1\", \
        \"service\": \"PRICES\"}), then the built-in defaults.\n\
        Run `mm help COMMAND` for a command's options and examples."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands. Each lives in its own module under `cmd/` with an `Args` struct and a
/// `run` function; a new subcommand (`mm bench`, for one) is a new module plus one variant here
/// and one arm in [`run`].
#[derive(Debug, Subcommand)]
enum Command {
    /// Print every message on one or more subjects (like tibrvlisten).
    Listen(cmd::listen::Args),
    /// Publish a message.
    Send(cmd::send::Args),
    /// Send a request and print the reply.
    Request(cmd::request::Args),
    /// Answer requests on a subject (echo, or fixed fields).
    Reply(cmd::reply::Args),
    /// Print the gateway's statistics for a service.
    Stats(cmd::stats::Args),
    /// Live view of a gateway (services, top subjects, connections, links) from its HTTP server.
    Top(top::Args),
    /// Show a service's mesh membership as the gateway sees it: peers, how each was found, links.
    Mesh(cmd::mesh::Args),
    /// Measure throughput and latency (also against NATS, side by side).
    Bench(cmd::bench::Args),
}

fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("mm: {error:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mm: {error:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Parses the command line, with the defaults from the environment and the config file wired in
/// (`defaults`). Usage errors and `--help` exit here, as clap does.
fn parse() -> anyhow::Result<Cli> {
    let file = defaults::ConfigFile::load()?;
    let mut matches = defaults::apply(Cli::command(), &file).get_matches();
    Ok(Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|error| error.exit()))
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Listen(args) => cmd::listen::run(args),
        Command::Send(args) => cmd::send::run(args),
        Command::Request(args) => cmd::request::run(args),
        Command::Reply(args) => cmd::reply::run(args),
        Command::Stats(args) => cmd::stats::run(args),
        Command::Top(args) => top::run(args),
        Command::Mesh(args) => cmd::mesh::run(args),
        Command::Bench(args) => cmd::bench::run(args),
    }
}

/// Whether the error is stdout's reader going away (`mm listen | head`): not a failure.
fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|error| error.kind() == ErrorKind::BrokenPipe)
    })
}
