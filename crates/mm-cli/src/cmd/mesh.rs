//! `mm mesh`: a service's mesh membership as one gateway sees it — each peer, how it was found
//! (configuration, etcd, DNS), and the state of the links both ways — from its `_MM.STATS`
//! answer.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use messaging_mesh::{FieldValue, Message};

use super::{GatewayArgs, Lifetime, connect, parse_seconds};

/// Show a service's mesh membership as this gateway sees it.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "One row per peer address: how it was found (config, etcd, dns:NAME:PORT, \
several when more than one lists it; `leaving` while no source lists it any more and the \
grace period runs), the peer gateway's name, the link this gateway dialled (connecting, up, \
backoff, suppressed, self) and the link the peer dialled (up or -). Gateways that dial this one \
but are not in its peer set are listed too. Above the peers, each discovery source and its \
state.\n\n\
Examples:\n  \
mm mesh --gateway gw1:5050 --service VULCAN\n  \
mm mesh --json | jq '.peer'"
)]
pub struct Args {
    #[command(flatten)]
    gateway: GatewayArgs,
    /// Print the membership as JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for the gateway's answer.
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = parse_seconds)]
    timeout: Duration,
}

/// Asks the gateway and prints the membership.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let connection = connect(&args.gateway, "mesh", Lifetime::OneShot)?;
    let reply = connection
        .send_request("_MM.STATS", &Message::new(), args.timeout)
        .context("the gateway did not answer _MM.STATS")?;
    connection.close();
    let membership = membership(reply.message());
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut line = String::new();
        crate::json::write_message(&mut line, &membership);
        writeln!(out, "{line}")?;
    } else {
        out.write_all(text(&membership).as_bytes())?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The entries named `name` of a message.
fn entries<'a>(message: &'a Message, name: &str) -> Vec<&'a Message> {
    message
        .iter()
        .filter(|field| field.name().as_bytes() == name.as_bytes())
        .filter_map(|field| match field.value() {
            FieldValue::Message(entry) => Some(entry),
            _ => None,
        })
        .collect()
}

fn string<'a>(message: &'a Message, name: &str) -> &'a str {
    message.try_string(name).unwrap_or_default()
}

/// The membership, from a `_MM.STATS` answer: identity, one `discovery` entry per source, one
/// `peer` entry per peer address, then one per gateway that dials this one from outside its
/// peer set.
pub fn membership(stats: &Message) -> Message {
    let links = entries(stats, "link");
    let link_from = |peer_id: &str, direction: &str| {
        links.iter().copied().find(|link| {
            !peer_id.is_empty()
                && string(link, "peer_id") == peer_id
                && string(link, "direction") == direction
        })
    };
    let mut out = Message::new()
        .add_string("service", string(stats, "service"))
        .add_string("gateway_name", string(stats, "gateway_name"))
        .add_string("gateway_id", string(stats, "gateway_id"));
    for source in entries(stats, "discovery") {
        out.push("discovery", source.clone());
    }
    let peers = entries(stats, "peer");
    for peer in &peers {
        let peer_id = string(peer, "peer_id");
        let state = string(peer, "state");
        let mut found_by = string(peer, "source").to_owned();
        if peer.try_bool("leaving") == Some(true) {
            found_by.push_str(" (leaving)");
        }
        let gateway = if state == "self" {
            "(this gateway)".to_owned()
        } else {
            link_from(peer_id, "dialled")
                .or_else(|| link_from(peer_id, "accepted"))
                .map_or("-", |link| string(link, "name"))
                .to_owned()
        };
        let accepted = if link_from(peer_id, "accepted").is_some() {
            "up"
        } else {
            "-"
        };
        out.push(
            "peer",
            Message::new()
                .add_string("address", string(peer, "address"))
                .add_string("found_by", found_by)
                .add_string("gateway", gateway)
                .add_string("dialled", state)
                .add_string("accepted", accepted)
                .add_u64("dials", peer.try_u64("dials").unwrap_or(0))
                .add_string("peer_id", peer_id)
                .add_string("last_error", string(peer, "last_error")),
        );
    }
    // Gateways that dial this one but that none of its peer addresses reaches.
    for link in &links {
        let peer_id = string(link, "peer_id");
        let known = peers
            .iter()
            .any(|peer| !peer_id.is_empty() && string(peer, "peer_id") == peer_id);
        if string(link, "direction") != "accepted" || known {
            continue;
        }
        out.push(
            "peer",
            Message::new()
                .add_string("address", string(link, "address"))
                .add_string("found_by", "dials us")
                .add_string("gateway", string(link, "name"))
                .add_string("dialled", "-")
                .add_string("accepted", "up")
                .add_u64("dials", 0)
                .add_string("peer_id", peer_id)
                .add_string("last_error", ""),
        );
    }
    out
}

/// The membership as text: identity, the discovery sources, the peers.
pub fn text(membership: &Message) -> String {
    let peers = entries(membership, "peer");
    let both_ways = peers
        .iter()
        .filter(|peer| string(peer, "dialled") == "up" && string(peer, "accepted") == "up")
        .count();
    let others = peers
        .iter()
        .filter(|peer| string(peer, "dialled") != "self")
        .count();
    let mut text = format!(
        "service  {}\ngateway  {} (id {})\npeers    {others}, {both_ways} linked both ways\n",
        string(membership, "service"),
        string(membership, "gateway_name"),
        string(membership, "gateway_id"),
    );
    let sources = entries(membership, "discovery");
    if sources.is_empty() {
        text.push_str("\nDISCOVERY: none (peers from the configuration only)\n");
    } else {
        text.push_str("\nDISCOVERY\n");
        text.push_str(&super::stats::entry_table(&sources));
    }
    if peers.is_empty() {
        text.push_str("\nPEERS: none\n");
    } else {
        text.push_str("\nPEERS\n");
        text.push_str(&super::stats::entry_table(&peers));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(address: &str, source: &str, state: &str, peer_id: &str) -> Message {
        Message::new()
            .add_string("address", address)
            .add_string("source", source)
            .add_bool("leaving", source.starts_with("dns"))
            .add_string("state", state)
            .add_u64("dials", 1)
            .add_string("peer_id", peer_id)
            .add_string("last_error", "")
    }

    fn link(direction: &str, name: &str, peer_id: &str) -> Message {
        Message::new()
            .add_string("name", name)
            .add_string("address", "127.0.0.1:40000")
            .add_string("direction", direction)
            .add_string("peer_id", peer_id)
    }

    #[test]
    fn peers_with_how_they_were_found_and_both_links() {
        let stats = Message::new()
            .add_string("service", "V")
            .add_string("gateway_name", "gw1")
            .add_string("gateway_id", "aa")
            .add_message("link", link("dialled", "gw2", "bb"))
            .add_message("link", link("accepted", "gw2", "bb"))
            .add_message("link", link("accepted", "gw9", "ff"))
            .add_message("peer", peer("h1:1", "etcd", "self", "aa"))
            .add_message("peer", peer("h2:1", "config,etcd", "up", "bb"))
            .add_message("peer", peer("h3:1", "dns:g:1", "backoff", ""))
            .add_message(
                "discovery",
                Message::new()
                    .add_string("source", "etcd")
                    .add_string("state", "ok")
                    .add_u32("peers", 2)
                    .add_string("last_error", ""),
            );
        let text = text(&membership(&stats));
        assert!(
            text.starts_with("service  V\ngateway  gw1 (id aa)\npeers    3, 1 linked both ways\n"),
            "{text}"
        );
        let rows: Vec<&str> = text
            .lines()
            .skip_while(|line| *line != "PEERS")
            .skip(1)
            .collect();
        assert!(rows[0].starts_with("address"), "{text}");
        assert!(rows[1].contains("(this gateway)") && rows[1].contains("self"));
        assert!(
            rows[2].contains("config,etcd") && rows[2].contains("gw2") && rows[2].contains(" up "),
            "{text}"
        );
        assert!(rows[3].contains("dns:g:1 (leaving)") && rows[3].contains("backoff"));
        assert!(
            rows[4].contains("dials us") && rows[4].contains("gw9"),
            "a gateway outside the peer set: {text}"
        );
        assert!(text.contains("DISCOVERY\nsource  state  peers"), "{text}");
    }

    #[test]
    fn configuration_only() {
        let stats = Message::new().add_string("service", "V");
        let text = text(&membership(&stats));
        assert!(text.contains("DISCOVERY: none"), "{text}");
        assert!(text.contains("PEERS: none"), "{text}");
    }
}
