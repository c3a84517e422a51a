//! `mm stats`: the gateway's `_MM.STATS` answer as a readable table — or, with `--http`, the
//! service's snapshot from the gateway's monitoring server (rates, top subjects, connections,
//! mesh), in the same layout.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use messaging_mesh::{FieldValue, Message};

use super::{GatewayArgs, Lifetime, connect, parse_seconds};
use crate::monitoring_api::{HttpArgs, MonitoringClient};

/// Connections listed with `--http`.
const HTTP_CONNECTIONS: usize = 100;

/// Print the gateway's statistics for a service.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the service's totals, then one table per kind of entry \
(connections, mesh links, peers). Field names are those of the gateway's _MM.STATS answer. \
The gateway lists the busiest 100 connections and links; --subscriptions adds up to 100 \
patterns of each.\n\n\
With --http, reads the gateway's monitoring server instead (mm-gateway --http PORT): rates, \
top subjects, connections and mesh links of the service, as docs/monitoring.md names them.\n\n\
Examples:\n  \
mm stats\n  \
mm stats --subscriptions                  who subscribes to what\n  \
mm stats --gateway gw1:5050 --service ORDERS\n  \
mm stats --json | jq '.connection'\n  \
mm stats --http gw1:8222 --service ORDERS"
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Print the answer as JSON (repeated entries as arrays).
    #[arg(long)]
    json: bool,
    /// Also list each connection's and link's subscriptions (at most 100 each).
    #[arg(long)]
    subscriptions: bool,
    /// Seconds to wait for the gateway's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    timeout: Duration,
    /// Read the gateway's monitoring HTTP server at HOST:PORT instead of asking _MM.STATS.
    #[arg(long, value_name = "HOST:PORT")]
    http: Option<String>,
    /// Token for the monitoring server (default: the MM_GATEWAY_HTTP_TOKEN variable); `--token`
    /// is the client's credential for the gateway itself.
    #[arg(
        id = "http_token",
        long = "http-token",
        value_name = "TOKEN",
        requires = "http"
    )]
    http_token: Option<String>,
}

/// Asks the gateway and prints its answer.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(address) = &args.http {
        return run_http(&args, address);
    }
    let connection = connect(&args.gateway, "stats", Lifetime::OneShot)?;
    let mut request = Message::new();
    if args.subscriptions {
        request.push("subscriptions", true);
    }
    let reply = connection
        .send_request("_MM.STATS", &request, args.timeout)
        .context("the gateway did not answer _MM.STATS")?;
    connection.close();
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut line = String::new();
        crate::json::write_message(&mut line, reply.message());
        writeln!(out, "{line}")?;
    } else {
        out.write_all(table(reply.message()).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// `mm stats --http`: the service's snapshot and its busiest connections.
fn run_http(args: &Args, address: &str) -> anyhow::Result<ExitCode> {
    let client = MonitoringClient::new(&HttpArgs {
        address: address.to_owned(),
        token: args.http_token.clone(),
    });
    let service = &args.gateway.service;
    let mut snapshot: serde_json::Value = client.get(&format!("/api/services/{service}"))?;
    let connections: serde_json::Value = client.get(&format!(
        "/api/services/{service}/connections?sort=bytes&limit={HTTP_CONNECTIONS}"
    ))?;
    if let Some(object) = snapshot.as_object_mut() {
        object.remove("history");
        object.insert("connections".into(), connections["connections"].clone());
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{snapshot}")?;
    } else {
        out.write_all(json_report(&snapshot).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A JSON snapshot as text: `name  value` lines for its scalars (nested objects as
/// `outer.inner`), then one table per array of objects.
pub fn json_report(value: &serde_json::Value) -> String {
    let mut scalars = Vec::new();
    let mut tables = Vec::new();
    collect_json(value, "", &mut scalars, &mut tables);
    let width = scalars
        .iter()
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (name, value) in &scalars {
        text.push_str(&format!("{name:<width$}  {value}\n"));
    }
    for (name, rows) in tables {
        text.push_str(&format!("\n{} ({})\n", name.to_uppercase(), rows.len()));
        let messages: Vec<Message> = rows
            .iter()
            .map(|row| {
                let mut message = Message::new();
                let mut cells = Vec::new();
                flatten_row(row, "", &mut cells);
                for (column, cell) in cells {
                    message.push(column.as_str(), cell.as_str());
                }
                message
            })
            .collect();
        let references: Vec<&Message> = messages.iter().collect();
        text.push_str(&entry_table(&references));
    }
    text
}

fn json_scalar(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => match number.as_f64() {
            Some(float) if number.is_f64() => format!("{float:.2}"),
            _ => number.to_string(),
        },
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn collect_json(
    value: &serde_json::Value,
    prefix: &str,
    scalars: &mut Vec<(String, String)>,
    tables: &mut Vec<(String, Vec<serde_json::Value>)>,
) {
    let Some(object) = value.as_object() else {
        return;
    };
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_json::Value::Object(_) => collect_json(value, &name, scalars, tables),
            serde_json::Value::Array(items) if items.iter().all(|item| item.is_object()) => {
                if !items.is_empty() {
                    tables.push((name, items.clone()));
                }
            }
            other => scalars.push((name, json_scalar(other))),
        }
    }
}

fn flatten_row(value: &serde_json::Value, prefix: &str, cells: &mut Vec<(String, String)>) {
    let Some(object) = value.as_object() else {
        return;
    };
    for (key, value) in object {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_json::Value::Object(_) => flatten_row(value, &name, cells),
            serde_json::Value::Array(_) => {}
            other => cells.push((name, json_scalar(other))),
        }
    }
}

/// The answer as text: `name  value` lines for the totals, then a table per repeated entry.
pub fn table(message: &Message) -> String {
    let mut text = String::new();
    let totals: Vec<(String, String)> = message
        .iter()
        .filter(|field| !matches!(field.value(), FieldValue::Message(_)))
        .map(|field| {
            let name = field.name().to_string_lossy().into_owned();
            let mut value = cell(field.value());
            if name == "uptime_ms"
                && let FieldValue::U64(ms) = field.value()
            {
                value = format!("{value} ({})", human_duration(*ms));
            }
            (name, value)
        })
        .collect();
    let width = totals.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in &totals {
        text.push_str(&format!("{name:<width$}  {value}\n"));
    }
    let mut groups: Vec<(String, Vec<&Message>)> = Vec::new();
    for field in message {
        if let FieldValue::Message(entry) = field.value() {
            let name = field.name().to_string_lossy().into_owned();
            match groups.iter_mut().find(|(group, _)| *group == name) {
                Some((_, entries)) => entries.push(entry),
                None => groups.push((name, vec![entry])),
            }
        }
    }
    for (name, entries) in &groups {
        text.push_str(&format!("\n{} ({})\n", name.to_uppercase(), entries.len()));
        text.push_str(&entry_table(entries));
    }
    let listed: Vec<String> = groups
        .iter()
        .flat_map(|(name, entries)| {
            entries
                .iter()
                .filter_map(|entry| patterns_line(name, entry))
        })
        .collect();
    if !listed.is_empty() {
        text.push_str("\nSUBSCRIPTIONS\n");
        for line in listed {
            text.push_str(&line);
            text.push('\n');
        }
    }
    text
}

/// Fields listed under SUBSCRIPTIONS rather than as table columns.
const PATTERN_FIELDS: [&str; 2] = ["pattern", "patterns_omitted"];

/// `connection 7 (mm-listen@host:42): A.> B.*`, for an entry that lists its patterns.
fn patterns_line(kind: &str, entry: &Message) -> Option<String> {
    let omitted = entry.try_u64("patterns_omitted")?;
    let patterns: Vec<String> = entry
        .iter()
        .filter(|field| field.name() == "pattern")
        .map(|field| cell(field.value()))
        .collect();
    let mut line = format!(
        "{kind} {} ({}):",
        entry
            .field("id")
            .map_or_else(String::new, |field| cell(field.value())),
        entry.try_string("name").unwrap_or_default()
    );
    if patterns.is_empty() && omitted == 0 {
        line.push_str(" none");
    }
    for pattern in patterns {
        line.push(' ');
        line.push_str(&pattern);
    }
    if omitted > 0 {
        line.push_str(&format!(" (and {omitted} more)"));
    }
    Some(line)
}

/// A table with one row per entry and one column per field name (in order of appearance).
pub fn entry_table(entries: &[&Message]) -> String {
    let mut columns: Vec<String> = Vec::new();
    for entry in entries {
        for field in *entry {
            let name = field.name().to_string_lossy().into_owned();
            if !columns.contains(&name) && !PATTERN_FIELDS.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|entry| {
            columns
                .iter()
                .map(|column| {
                    entry
                        .field(column)
                        .map_or_else(|| "-".to_owned(), |field| cell(field.value()))
                })
                .collect()
        })
        .collect();
    let numeric: Vec<bool> = (0..columns.len())
        .map(|index| {
            rows.iter()
                .all(|row| row[index].parse::<f64>().is_ok() || row[index] == "-")
        })
        .collect();
    let widths: Vec<usize> = (0..columns.len())
        .map(|index| {
            rows.iter()
                .map(|row| row[index].chars().count())
                .chain([columns[index].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut text = String::new();
    let mut line = |cells: &[String]| {
        let mut parts = Vec::with_capacity(cells.len());
        for (index, value) in cells.iter().enumerate() {
            let width = widths[index];
            parts.push(if numeric[index] {
                format!("{value:>width$}")
            } else {
                format!("{value:<width$}")
            });
        }
        text.push_str(parts.join("  ").trim_end());
        text.push('\n');
    };
    line(&columns);
    for row in &rows {
        line(row);
    }
    text
}

/// One value as table text.
fn cell(value: &FieldValue) -> String {
    match value {
        FieldValue::String(text) => text.to_string_lossy().into_owned(),
        FieldValue::I32(value) => value.to_string(),
        FieldValue::U32(value) => value.to_string(),
        FieldValue::I64(value) => value.to_string(),
        FieldValue::U64(value) => value.to_string(),
        FieldValue::F64(value) => value.to_string(),
        FieldValue::Bool(value) => value.to_string(),
        FieldValue::Blob(blob) => blob.iter().map(|byte| format!("{byte:02x}")).collect(),
        FieldValue::Message(nested) => nested.to_string(),
    }
}

/// `1d 2h 3m 4s`, leaving out leading zero units.
fn human_duration(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, hours, minutes, seconds) = (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{seconds}s"),
        (0, 0, _) => format!("{minutes}m {seconds}s"),
        (0, _, _) => format!("{hours}h {minutes}m {seconds}s"),
        _ => format!("{days}d {hours}h {minutes}m {seconds}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_then_one_table_per_entry_kind() {
        let message = Message::new()
            .add_string("service", "TEST")
            .add_u64("uptime_ms", 83_000)
            .add_u32("clients", 2)
            .add_message(
                "connection",
                Message::new()
                    .add_u64("id", 1)
                    .add_string("name", "mm")
                    .add_u64("frames_in", 12),
            )
            .add_message(
                "connection",
                Message::new()
                    .add_u64("id", 22)
                    .add_string("name", "feed")
                    .add_u64("frames_in", 3456),
            );
        assert_eq!(
            table(&message),
            "service    TEST\n\
             uptime_ms  83000 (1m 23s)\n\
             clients    2\n\
             \n\
             CONNECTION (2)\n\
             id  name  frames_in\n\
             \x201  mm           12\n\
             22  feed       3456\n"
        );
    }

    #[test]
    fn json_snapshot_as_text() {
        let snapshot = serde_json::json!({
            "name": "TEST",
            "rates": {"messages_in": 1.5},
            "mesh": {"links": [], "peers": [{"address": "b:1", "state": "up"}]},
            "connections": [{"id": 1, "rates": {"messages_in": 2.0}}],
        });
        assert_eq!(
            json_report(&snapshot),
            "name               TEST\n\
             rates.messages_in  1.50\n\
             \n\
             CONNECTIONS (1)\n\
             id  rates.messages_in\n\
             \x201               2.00\n\
             \n\
             MESH.PEERS (1)\n\
             address  state\n\
             b:1      up\n"
        );
    }

    #[test]
    fn subscriptions_are_listed_apart_from_the_table() {
        let message = Message::new()
            .add_message(
                "connection",
                Message::new()
                    .add_u64("id", 1)
                    .add_string("name", "feed")
                    .add_string("pattern", "A.>")
                    .add_string("pattern", "B.*")
                    .add_u64("patterns_omitted", 3),
            )
            .add_message(
                "connection",
                Message::new()
                    .add_u64("id", 2)
                    .add_string("name", "idle")
                    .add_u64("patterns_omitted", 0),
            );
        assert_eq!(
            table(&message),
            "\nCONNECTION (2)\n\
             id  name\n\
             \x201  feed\n\
             \x202  idle\n\
             \n\
             SUBSCRIPTIONS\n\
             connection 1 (feed): A.> B.* (and 3 more)\n\
             connection 2 (idle): none\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(999), "0s");
        assert_eq!(human_duration(3_723_000), "1h 2m 3s");
        assert_eq!(human_duration(90_061_000), "1d 1h 1m 1s");
    }
}
