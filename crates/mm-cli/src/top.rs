//! `mm top`: a live terminal view of a gateway — services, top subjects, connections, mesh
//! links — from its monitoring HTTP server, for servers without a browser.
//!
//! One refresh reads `/api/gateway`, `/api/services` and a page of the selected service's
//! connections, and turns them into [`Section`]s; `view` draws those with ratatui, `text` prints
//! them once (`--once`, for scripts and tests).

mod text;
mod view;

use std::process::ExitCode;
use std::time::Duration;

use crate::cmd::parse_seconds;
use crate::monitoring_api::{ConnectionPage, Gateway, HttpArgs, MonitoringClient, Service};

/// Connections shown.
const CONNECTIONS_SHOWN: usize = 20;

/// Subjects shown.
const SUBJECTS_SHOWN: usize = 10;

/// Live view of a gateway: services, top subjects, connections, links.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads the gateway's monitoring server (start the gateway with --http PORT).\n\n\
Keys: Tab / → next service, Shift-Tab / ← previous, s sort connections (rate, pending, \
subscriptions, bytes), q quit.\n\n\
Examples:\n  \
mm top --http 127.0.0.1:8222\n  \
mm top --http gw1:8222 --service VULCAN\n  \
mm top --once --http 127.0.0.1:8222     print one screen as text and exit"
)]
pub struct Args {
    #[command(flatten)]
    http: HttpArgs,
    /// Service to show in detail (default: the first one).
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// Sort connections by: rate, pending, subscriptions, bytes.
    #[arg(long, default_value = "rate", value_parser = ["rate", "pending", "subscriptions", "bytes"])]
    sort: String,
    /// Seconds between refreshes.
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_seconds)]
    interval: Duration,
    /// Print one screen as text and exit.
    #[arg(long)]
    once: bool,
}

/// Sort keys, in the order `s` cycles through them.
pub(crate) const SORTS: [&str; 4] = ["rate", "pending", "subscriptions", "bytes"];

/// What one refresh shows.
pub(crate) struct Snapshot {
    pub(crate) gateway: Gateway,
    pub(crate) services: Vec<Service>,
    /// Index of the service shown in detail.
    pub(crate) selected: Option<usize>,
    pub(crate) connections: ConnectionPage,
    pub(crate) sort: String,
}

/// A titled table.
pub(crate) struct Section {
    pub(crate) title: String,
    pub(crate) headers: Vec<&'static str>,
    /// Right-aligned columns.
    pub(crate) numeric: Vec<bool>,
    pub(crate) rows: Vec<Vec<String>>,
}

/// Reads what one screen shows. `wanted` is the service to detail, if it exists.
pub(crate) fn fetch(
    client: &MonitoringClient,
    wanted: Option<&str>,
    sort: &str,
) -> anyhow::Result<Snapshot> {
    let gateway = client.gateway()?;
    let services = client.services()?;
    let selected = wanted
        .and_then(|name| services.iter().position(|s| s.name == name))
        .or_else(|| services.iter().position(|s| !s.name.starts_with('_')))
        .or(if services.is_empty() { None } else { Some(0) });
    let connections = match selected {
        Some(index) if services[index].responsive => {
            client.connections(&services[index].name, sort, CONNECTIONS_SHOWN)?
        }
        _ => ConnectionPage::default(),
    };
    Ok(Snapshot {
        gateway,
        services,
        selected,
        connections,
        sort: sort.to_owned(),
    })
}

/// Runs `mm top`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let client = MonitoringClient::new(&args.http);
    if args.once {
        let snapshot = fetch(&client, args.service.as_deref(), &args.sort)?;
        text::print(&snapshot)?;
        return Ok(ExitCode::SUCCESS);
    }
    view::run(&client, args.service, args.sort, args.interval)?;
    Ok(ExitCode::SUCCESS)
}

/// The header line.
pub(crate) fn headline(snapshot: &Snapshot) -> String {
    let gateway = &snapshot.gateway;
    format!(
        "{} (mm-gateway {}) · up {} · memory {} · clients {} · links {} · in {} msg/s · out {} msg/s · slow consumers {} · refused {}",
        gateway.name,
        gateway.version,
        duration(gateway.uptime_ms),
        bytes(gateway.memory.resident_bytes as f64),
        gateway.totals.clients,
        gateway.totals.links,
        rate(gateway.totals.rates.messages_in),
        rate(gateway.totals.rates.messages_out),
        gateway.totals.slow_consumers,
        gateway.totals.refused_connections,
    )
}

/// Every table of a screen.
pub(crate) fn sections(snapshot: &Snapshot) -> Vec<Section> {
    let mut sections = vec![Section {
        title: format!("SERVICES ({})", snapshot.services.len()),
        headers: vec![
            "service",
            "clients",
            "links",
            "subs",
            "in msg/s",
            "out msg/s",
            "in B/s",
            "out B/s",
            "pending",
            "slow",
        ],
        numeric: vec![false, true, true, true, true, true, true, true, true, true],
        rows: snapshot
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| {
                let marker = if Some(index) == snapshot.selected {
                    "▸ "
                } else {
                    "  "
                };
                if !service.responsive {
                    let mut row = vec![format!("{marker}{}", service.name), "(no answer)".into()];
                    row.resize(10, String::new());
                    return row;
                }
                vec![
                    format!("{marker}{}", service.name),
                    service.clients.to_string(),
                    service.links.to_string(),
                    service.subscriptions.to_string(),
                    rate(service.rates.messages_in),
                    rate(service.rates.messages_out),
                    bytes(service.rates.bytes_in),
                    bytes(service.rates.bytes_out),
                    bytes(service.pending_bytes as f64),
                    service.counters.slow_consumers.to_string(),
                ]
            })
            .collect(),
    }];
    let Some(service) = snapshot.selected.map(|index| &snapshot.services[index]) else {
        return sections;
    };
    let top = &service.top_subjects;
    let mut subjects: Vec<&crate::monitoring_api::SubjectRate> = top.by_messages.iter().collect();
    for entry in &top.by_bytes {
        if !subjects.iter().any(|known| known.subject == entry.subject) {
            subjects.push(entry);
        }
    }
    subjects.truncate(SUBJECTS_SHOWN);
    sections.push(Section {
        title: format!(
            "TOP SUBJECTS — {} (last {:.1} s)",
            service.name, top.window_seconds
        ),
        headers: vec!["subject", "msg/s", "bytes/s"],
        numeric: vec![false, true, true],
        rows: subjects
            .iter()
            .map(|entry| {
                vec![
                    entry.subject.clone(),
                    rate(entry.messages_per_second),
                    bytes(entry.bytes_per_second),
                ]
            })
            .collect(),
    });
    sections.push(Section {
        title: format!(
            "CONNECTIONS — {} (busiest {} of {}, by {})",
            service.name,
            snapshot.connections.connections.len(),
            snapshot.connections.total,
            snapshot.sort
        ),
        headers: vec![
            "id",
            "kind",
            "name",
            "address",
            "in msg/s",
            "out msg/s",
            "subs",
            "pending",
        ],
        numeric: vec![true, false, false, false, true, true, true, true],
        rows: snapshot
            .connections
            .connections
            .iter()
            .map(|connection| {
                vec![
                    connection.id.to_string(),
                    connection.kind.clone(),
                    connection.name.clone(),
                    connection.address.clone(),
                    rate(connection.rates.messages_in),
                    rate(connection.rates.messages_out),
                    connection.subscriptions.to_string(),
                    bytes(connection.pending_bytes as f64),
                ]
            })
            .collect(),
    });
    if !service.mesh.peers.is_empty() || !service.mesh.links.is_empty() {
        sections.push(Section {
            title: format!("LINKS — {}", service.name),
            headers: vec![
                "direction",
                "peer",
                "address",
                "rtt ms",
                "in msg/s",
                "out msg/s",
                "pending",
                "interest",
            ],
            numeric: vec![false, false, false, true, true, true, true, true],
            rows: service
                .mesh
                .links
                .iter()
                .map(|link| {
                    vec![
                        link.direction.clone(),
                        link.peer_name.clone(),
                        link.address.clone(),
                        link.rtt_ms
                            .map_or_else(|| "-".into(), |rtt| format!("{rtt:.2}")),
                        rate(link.rates.messages_in),
                        rate(link.rates.messages_out),
                        bytes(link.pending_bytes as f64),
                        link.interest_patterns.to_string(),
                    ]
                })
                .collect(),
        });
        sections.push(Section {
            title: format!("PEERS — {}", service.name),
            headers: vec!["address", "state", "peer", "reconnects", "last error"],
            numeric: vec![false, false, false, true, false],
            rows: service
                .mesh
                .peers
                .iter()
                .map(|peer| {
                    vec![
                        peer.address.clone(),
                        peer.state.clone(),
                        peer.peer_name.clone(),
                        peer.reconnects.to_string(),
                        peer.last_error.clone(),
                    ]
                })
                .collect(),
        });
    }
    sections
}

/// A rate for people: `12.3 k`.
pub(crate) fn rate(value: f64) -> String {
    if value >= 1e6 {
        format!("{:.2} M", value / 1e6)
    } else if value >= 1e4 {
        format!("{:.1} k", value / 1e3)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Bytes for people: `1.5 MiB`.
pub(crate) fn bytes(value: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = value;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{value:.0} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `1h 2m 3s`.
pub(crate) fn duration(ms: u64) -> String {
    let seconds = ms / 1000;
    match (
        seconds / 86_400,
        seconds % 86_400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    ) {
        (0, 0, 0, s) => format!("{s}s"),
        (0, 0, m, s) => format!("{m}m {s}s"),
        (0, h, m, s) => format!("{h}h {m}m {s}s"),
        (d, h, m, s) => format!("{d}d {h}h {m}m {s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_for_people() {
        assert_eq!(rate(0.5), "0.5");
        assert_eq!(rate(1234.0), "1234");
        assert_eq!(rate(12_345.0), "12.3 k");
        assert_eq!(rate(2_500_000.0), "2.50 M");
        assert_eq!(bytes(100.0), "100 B");
        assert_eq!(bytes(1536.0), "1.5 KiB");
        assert_eq!(duration(3_723_000), "1h 2m 3s");
    }

    #[test]
    fn sections_show_the_selected_service() {
        let snapshot = Snapshot {
            gateway: Gateway::default(),
            services: vec![
                Service {
                    name: "A".into(),
                    responsive: true,
                    clients: 3,
                    ..Service::default()
                },
                Service {
                    name: "B".into(),
                    ..Service::default()
                },
            ],
            selected: Some(0),
            connections: ConnectionPage::default(),
            sort: "rate".into(),
        };
        let sections = sections(&snapshot);
        assert_eq!(
            sections.len(),
            3,
            "services, subjects, connections (no mesh)"
        );
        assert_eq!(sections[0].rows[0][0], "▸ A");
        assert_eq!(sections[0].rows[0][1], "3");
        assert_eq!(sections[0].rows[1][1], "(no answer)");
        assert!(sections[1].title.starts_with("TOP SUBJECTS — A"));
    }
}
