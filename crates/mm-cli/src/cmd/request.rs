//! `mm request`: send a request and print the reply.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use messaging_mesh::RequestError;

use super::{GatewayArgs, Lifetime, connect, parse_seconds};
use crate::fields;
use crate::render::{Format, print_received};

/// Exit code when no reply came in time.
pub const EXIT_TIMEOUT: u8 = 3;

/// Exit code when the gateway said nobody listens on the subject.
pub const EXIT_NO_RESPONDERS: u8 = 4;

/// Send a request and print the reply.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Fields as for `mm send`. Exit codes: 0 reply printed, 1 error, \
3 timeout, 4 no responders.\n\n\
Examples:\n  \
mm request Service.Add A=0.5 B=1.5\n  \
mm request Service.Lookup --json '{\"sym\":\"IBM\"}' --timeout 0.5\n  \
mm request _MM.STATS                      ask the gateway itself"
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Subject to send the request to (no wildcards).
    #[arg(value_name = "SUBJECT")]
    subject: String,
    /// Fields: name=value or name:TYPE=value.
    #[arg(value_name = "FIELD")]
    fields: Vec<String>,
    /// The message as a JSON object instead of FIELD arguments.
    #[arg(long, value_name = "JSON")]
    json: Option<String>,
    /// Seconds to wait for the reply.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    timeout: Duration,
    /// Print the reply as one JSON object.
    #[arg(long)]
    json_output: bool,
}

/// Sends the request; prints the reply, or says why there is none.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    messaging_mesh::validate_subject(&args.subject)?;
    let message = fields::message_from(&args.fields, args.json.as_deref())?;
    let connection = connect(&args.gateway, "request", Lifetime::OneShot)?;
    let result = connection.send_request(&args.subject, &message, args.timeout);
    connection.close();
    match result {
        Ok(reply) => {
            let format = if args.json_output {
                Format::Json
            } else {
                Format::Text
            };
            let mut out = std::io::stdout().lock();
            print_received(&mut out, format, &reply)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(RequestError::Timeout { subject, timeout }) => {
            eprintln!("mm: timeout: no reply to `{subject}` within {timeout:?}");
            Ok(ExitCode::from(EXIT_TIMEOUT))
        }
        Err(RequestError::NoResponders { subject }) => {
            eprintln!("mm: no responders for `{subject}`");
            Ok(ExitCode::from(EXIT_NO_RESPONDERS))
        }
        Err(error) => Err(error.into()),
    }
}
