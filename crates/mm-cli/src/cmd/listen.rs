//! `mm listen`: print every message on one or more subjects, like tibrvlisten.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::{GatewayArgs, Lifetime, connect};
use crate::render::{Format, print_received};

/// How long to wait for the gateway to confirm the subscriptions.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Print every message on one or more subjects (like tibrvlisten).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Output: time, subject, reply subject (if any), and the fields with \
their types, nested messages indented:\n  \
2024-05-01 12:00:00.123Z subject=PRICES.IBM message={\n      \
sym:str=\"IBM\"\n      \
px:f64=123.4\n  \
}\n\n\
Examples:\n  \
mm listen 'PRICES.>'                      everything under PRICES\n  \
mm listen 'ORDERS.*' 'TRADES.>'           several patterns\n  \
mm listen --json '>' | jq .subject        one JSON object per line\n  \
mm listen --count 1 Service.Status        exit after the first message"
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Subjects or patterns: `*` matches one token, a final `>` one or more.
    #[arg(required = true, value_name = "SUBJECT")]
    subjects: Vec<String>,
    /// Print one JSON object per line: {"time","subject","reply","message"}.
    #[arg(long)]
    json: bool,
    /// Exit after this many messages.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// Subscribes to every subject and prints what arrives until interrupted (or `--count`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for subject in &args.subjects {
        messaging_mesh::validate_pattern(subject)?;
    }
    let connection = connect(&args.gateway, "listen", Lifetime::LongRunning)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let mut subscriptions = Vec::with_capacity(args.subjects.len());
    for subject in &args.subjects {
        let sender = sender.clone();
        subscriptions.push(connection.subscribe(subject, move |message| {
            let _ = sender.send(message.clone());
        })?);
    }
    drop(sender);
    connection
        .flush(CONFIRM_TIMEOUT)
        .context("the gateway did not confirm the subscriptions")?;
    eprintln!(
        "mm: listening on {} (service {} at {})",
        args.subjects.join(" "),
        args.gateway.service,
        args.gateway.gateway
    );
    let format = if args.json {
        Format::Json
    } else {
        Format::Text
    };
    let mut out = std::io::stdout().lock();
    let mut printed = 0u64;
    while args.count.is_none_or(|count| printed < count) {
        let Ok(message) = receiver.recv() else { break };
        print_received(&mut out, format, &message)?;
        out.flush()?;
        printed += 1;
    }
    drop(subscriptions);
    connection.close();
    Ok(ExitCode::SUCCESS)
}
