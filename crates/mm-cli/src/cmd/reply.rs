//! `mm reply`: answer requests on a subject.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::{GatewayArgs, Lifetime, connect};
use crate::fields;
use crate::render::{Format, print_received};

/// How long to wait for the gateway to confirm the subscription, and the last replies.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Answer requests on a subject (echo, or fixed fields).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Each request is printed as `mm listen` prints it, then answered: with \
the request's own message (echo), or with the fields given on the line (as for `mm send`).\n\n\
Examples:\n  \
mm reply Service.Echo                     echo every request\n  \
mm reply 'Service.Status.*' status=up load:f64=0.25\n  \
mm reply Service.Config --json '{\"mode\":\"fast\"}' --count 1"
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Subject or pattern to answer on.
    #[arg(value_name = "SUBJECT")]
    subject: String,
    /// Fixed reply fields: name=value or name:TYPE=value (default: echo the request).
    #[arg(value_name = "FIELD")]
    fields: Vec<String>,
    /// The fixed reply as a JSON object.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// Exit after answering this many requests.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

/// Answers requests until interrupted (or `--count`).
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    messaging_mesh::validate_pattern(&args.subject)?;
    let fixed = if args.fields.is_empty() && args.json.is_none() {
        None
    } else {
        Some(fields::message_from(&args.fields, args.json.as_deref())?)
    };
    let connection = connect(&args.gateway, "reply", Lifetime::LongRunning)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let subscription = connection.subscribe(&args.subject, move |message| {
        let _ = sender.send(message.clone());
    })?;
    connection
        .flush(CONFIRM_TIMEOUT)
        .context("the gateway did not confirm the subscription")?;
    eprintln!(
        "mm: answering requests on {} (service {} at {})",
        args.subject, args.gateway.service, args.gateway.gateway
    );
    let mut out = std::io::stdout().lock();
    let mut answered = 0u64;
    while args.count.is_none_or(|count| answered < count) {
        let Ok(request) = receiver.recv() else { break };
        if request.reply_subject().is_none() {
            eprintln!(
                "mm: the message on `{}` has no reply subject; not answered",
                request.subject()
            );
            continue;
        }
        let reply = fixed.as_ref().unwrap_or(request.message());
        connection.send_reply(&request, reply)?;
        answered += 1;
        print_received(&mut out, Format::Text, &request)?;
        out.flush()?;
    }
    drop(subscription);
    connection
        .flush(CONFIRM_TIMEOUT)
        .context("the gateway did not confirm the replies")?;
    connection.close();
    Ok(ExitCode::SUCCESS)
}
