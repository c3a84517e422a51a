//! The gateway's monitoring HTTP API, as `mm top` and `mm stats --http` read it: a blocking
//! client (ureq) and the parts of the JSON they use. Fields the tools do not know are ignored,
//! missing ones take defaults, so a newer gateway still works.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Environment variable with the monitoring token (the gateway reads the same one).
pub const TOKEN_VARIABLE: &str = "MM_GATEWAY_HTTP_TOKEN";

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Options of commands that read the monitoring server.
#[derive(Debug, Clone, clap::Args)]
pub struct HttpArgs {
    /// The gateway's monitoring server (`mm-gateway --http PORT`).
    #[arg(
        long = "http",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:8222"
    )]
    pub address: String,
    /// Token of the monitoring server, if it requires one (default: the MM_GATEWAY_HTTP_TOKEN
    /// variable). Named like the gateway's `--http-token`; `--token` is a client's credential.
    #[arg(id = "http_token", long = "http-token", value_name = "TOKEN")]
    pub token: Option<String>,
}

/// A client of one gateway's monitoring server.
pub struct MonitoringClient {
    agent: ureq::Agent,
    base: String,
    authorization: Option<String>,
}

impl MonitoringClient {
    /// A client for `args.address` (`host:port` or `http://host:port`).
    pub fn new(args: &HttpArgs) -> MonitoringClient {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(REQUEST_TIMEOUT))
            .http_status_as_error(false)
            .build();
        let address = args.address.trim_end_matches('/');
        let base = if address.starts_with("http://") || address.starts_with("https://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        };
        let token = args
            .token
            .clone()
            .or_else(|| std::env::var(TOKEN_VARIABLE).ok().filter(|t| !t.is_empty()));
        MonitoringClient {
            agent: ureq::Agent::new_with_config(config),
            base,
            authorization: token.map(|token| format!("Bearer {token}")),
        }
    }

    /// `GET path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.base);
        let mut request = self.agent.get(&url);
        if let Some(authorization) = &self.authorization {
            request = request.header("Authorization", authorization);
        }
        let mut response = request
            .call()
            .with_context(|| format!("cannot reach the monitoring server at {}", self.base))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .with_context(|| format!("reading {url}"))?;
        match status {
            200 => {
                serde_json::from_str(&body).with_context(|| format!("unexpected answer from {url}"))
            }
            401 => {
                bail!(
                    "the monitoring server requires a token: --http-token TOKEN or {TOKEN_VARIABLE}"
                )
            }
            _ => {
                let message = serde_json::from_str::<ErrorBody>(&body)
                    .map(|error| error.error)
                    .unwrap_or(body);
                bail!("{url}: {status}: {message}")
            }
        }
    }

    /// The gateway.
    pub fn gateway(&self) -> anyhow::Result<Gateway> {
        self.get("/api/gateway")
    }

    /// Every service's summary.
    pub fn services(&self) -> anyhow::Result<Vec<Service>> {
        Ok(self.get::<ServiceList>("/api/services")?.services)
    }

    /// A page of a service's connections.
    pub fn connections(
        &self,
        service: &str,
        sort: &str,
        limit: usize,
    ) -> anyhow::Result<ConnectionPage> {
        self.get(&format!(
            "/api/services/{}/connections?sort={sort}&limit={limit}",
            encode_path(service)
        ))
    }
}

/// A service name in a URL path (service names are one subject token; `%`-encode the rest).
fn encode_path(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
}

#[derive(Debug, Deserialize)]
struct ServiceList {
    services: Vec<Service>,
}

/// Rates per second.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Rates {
    /// Messages in.
    pub messages_in: f64,
    /// Bytes in.
    pub bytes_in: f64,
    /// Messages out.
    pub messages_out: f64,
    /// Bytes out.
    pub bytes_out: f64,
}

/// `/api/gateway`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Gateway {
    /// Version.
    pub version: String,
    /// Name.
    pub name: String,
    /// Uptime.
    pub uptime_ms: u64,
    /// Memory.
    pub memory: Memory,
    /// Totals.
    pub totals: Totals,
}

/// Memory of the gateway.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Memory {
    /// Resident set size.
    pub resident_bytes: u64,
    /// Output queued.
    pub queued_output_bytes: u64,
}

/// Totals over services.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Totals {
    /// Services.
    pub services: u64,
    /// Clients.
    pub clients: u64,
    /// Links.
    pub links: u64,
    /// Rates.
    pub rates: Rates,
    /// Slow consumers.
    pub slow_consumers: u64,
    /// Refused connections.
    pub refused_connections: u64,
}

/// A service's summary.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Service {
    /// Name.
    pub name: String,
    /// Answered in time.
    pub responsive: bool,
    /// Clients.
    pub clients: u64,
    /// Links.
    pub links: u64,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Bytes queued.
    pub pending_bytes: u64,
    /// Rates.
    pub rates: Rates,
    /// Counters.
    pub counters: Counters,
    /// Top subjects.
    pub top_subjects: TopSubjects,
    /// Mesh.
    pub mesh: Mesh,
}

/// Service counters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Slow consumers.
    pub slow_consumers: u64,
    /// Dropped frames.
    pub dropped_frames: u64,
}

/// Top subjects of the last window.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TopSubjects {
    /// Window length.
    pub window_seconds: f64,
    /// By messages.
    pub by_messages: Vec<SubjectRate>,
    /// By bytes.
    pub by_bytes: Vec<SubjectRate>,
}

/// A subject's rates.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SubjectRate {
    /// Subject.
    pub subject: String,
    /// Messages per second.
    pub messages_per_second: f64,
    /// Bytes per second.
    pub bytes_per_second: f64,
}

/// A service's mesh.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Mesh {
    /// Configured peers.
    pub peers: Vec<Peer>,
    /// Links up.
    pub links: Vec<Link>,
}

/// A configured peer.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Peer {
    /// Address.
    pub address: String,
    /// Dialler state.
    pub state: String,
    /// Peer name.
    pub peer_name: String,
    /// Reconnects.
    pub reconnects: u64,
    /// Last error.
    pub last_error: String,
}

/// A link.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Link {
    /// Direction.
    pub direction: String,
    /// Peer name.
    pub peer_name: String,
    /// Address.
    pub address: String,
    /// RTT.
    pub rtt_ms: Option<f64>,
    /// Bytes queued.
    pub pending_bytes: u64,
    /// Interest patterns.
    pub interest_patterns: u64,
    /// Rates.
    pub rates: Rates,
}

/// A page of connections.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ConnectionPage {
    /// Connections of the service.
    pub total: u64,
    /// The page.
    pub connections: Vec<Connection>,
}

/// A connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Connection {
    /// Id.
    pub id: u64,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// Subscriptions.
    pub subscriptions: u64,
    /// Bytes queued.
    pub pending_bytes: u64,
    /// Rates.
    pub rates: Rates,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_paths() {
        let client = MonitoringClient::new(&HttpArgs {
            address: "gw1:8222/".into(),
            token: Some("t".into()),
        });
        assert_eq!(client.base, "http://gw1:8222");
        assert_eq!(client.authorization.as_deref(), Some("Bearer t"));
        assert_eq!(encode_path("A_b-1"), "A_b-1");
        assert_eq!(encode_path("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn unknown_and_missing_fields_are_fine() {
        let service: Service =
            serde_json::from_str(r#"{"name": "S", "clients": 2, "new_field": [1]}"#).unwrap();
        assert_eq!((service.name.as_str(), service.clients), ("S", 2));
        assert!(service.mesh.links.is_empty());
    }
}
