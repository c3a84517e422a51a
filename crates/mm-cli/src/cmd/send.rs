//! `mm send`: publish a message.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{GatewayArgs, Lifetime, connect};
use crate::fields;

/// How long to wait for the gateway to confirm it processed the messages.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Publish a message.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Fields: name=value infers the type (true/false: bool, integer: i32, or \
i64/u64 when larger, decimal: f64, else string); name:TYPE=value sets it, TYPE one of i32, u32, \
i64, u64, f64, bool, str, blob (hex digits, or @FILE for a file's bytes).\n\n\
Examples:\n  \
mm send PRICES.IBM sym=IBM px=123.4 qty:u32=100\n  \
mm send ORDERS.NEW --json '{\"sym\":\"IBM\",\"legs\":{\"qty\":100}}'\n  \
mm send CONFIG.UPDATE data:blob=@settings.bin\n  \
mm send Service.Ping --reply MY.INBOX\n  \
mm send LOAD.TEST n=1 --count 1000 -q\n\n\
Once the gateway has confirmed the messages, a line on stderr says what was sent (-q: nothing)."
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Subject to publish to (no wildcards).
    #[arg(value_name = "SUBJECT")]
    subject: String,
    /// Fields: name=value or name:TYPE=value.
    #[arg(value_name = "FIELD")]
    fields: Vec<String>,
    /// The message as a JSON object instead of FIELD arguments.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// Reply subject for receivers to answer on.
    #[arg(long, value_name = "SUBJECT")]
    reply: Option<String>,
    /// Send the message this many times.
    #[arg(long, value_name = "N", default_value_t = 1)]
    count: u64,
    /// Do not say what was sent.
    #[arg(long, short)]
    quiet: bool,
}

/// Publishes the message `--count` times, waits until the gateway has processed them, and says
/// what was sent (unless `--quiet`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    messaging_mesh::validate_subject(&args.subject)?;
    let message = fields::message_from(&args.fields, args.json.as_deref())?;
    let connection = connect(&args.gateway, "send", Lifetime::OneShot)?;
    let reply = args.reply.as_deref().unwrap_or("");
    for _ in 0..args.count {
        connection.send_with_reply(&args.subject, reply, &message)?;
    }
    connection
        .flush(CONFIRM_TIMEOUT)
        .context("the gateway did not confirm the messages")?;
    connection.close();
    if !args.quiet {
        eprintln!(
            "mm: sent {}{}{} {message} (service {} at {})",
            match args.count {
                1 => String::new(),
                count => format!("{count} × "),
            },
            args.subject,
            args.reply
                .as_deref()
                .map(|reply| format!(" reply={reply}"))
                .unwrap_or_default(),
            args.gateway.service,
            args.gateway.gateway,
        );
    }
    Ok(ExitCode::SUCCESS)
}
