//! Several gateways of one service in a full mesh, on loopback.

use std::time::Duration;

use mm_wire::{Field, Message};

use crate::{
    ConfigFile, GatewayLauncher, GatewayProcess, RawClient, free_port, wait_until, write_config,
};

/// A mesh of gateways started with ports chosen up front (each configuration lists every
/// gateway, itself included).
pub struct MeshProcesses {
    /// The gateways, in configuration order.
    pub gateways: Vec<GatewayProcess>,
    /// Their ports.
    pub ports: Vec<u16>,
    /// The configuration file they share (deleted with the mesh).
    pub config: ConfigFile,
    /// The service.
    pub service: String,
    /// How the gateways were started (restarts start them the same way).
    launcher: GatewayLauncher,
}

impl MeshProcesses {
    /// Starts `count` gateways meshed for `service`. `extra` is added to the JSON configuration
    /// (e.g. `"HeartbeatMs": 500`). Retries with new ports when one turns out to be taken.
    pub fn start(count: usize, service: &str, extra: &str) -> MeshProcesses {
        Self::start_with(&GatewayLauncher::new(), count, service, extra)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`MeshProcesses::start`] with gateways started by `launcher`; an error instead of a panic
    /// when they do not start.
    pub fn start_with(
        launcher: &GatewayLauncher,
        count: usize,
        service: &str,
        extra: &str,
    ) -> Result<MeshProcesses, String> {
        for _attempt in 0..5 {
            let ports: Vec<u16> = (0..count).map(|_| free_port()).collect();
            let addresses: Vec<String> = ports
                .iter()
                .enumerate()
                .map(|(index, port)| {
                    // Mix spellings: identity is by gateway_id, not by address.
                    if index % 2 == 0 {
                        format!("\"127.0.0.1:{port}\"")
                    } else {
                        format!("\"localhost:{port}\"")
                    }
                })
                .collect();
            let config = format!(
                r#"{{
                    "CoordinatorGateway": "",
                    "StartupMeshes": [{{"Name": "{service}", "DiscoverMeshUsingCoordinator": false,
                        "MeshGateways": [{}]}}]{}{}
                }}"#,
                addresses.join(", "),
                if extra.is_empty() { "" } else { ", " },
                extra
            );
            let config = write_config("mesh", &config);
            let mut gateways = Vec::new();
            let mut failed = false;
            for (index, port) in ports.iter().enumerate() {
                match start_one(launcher, &config, *port, index) {
                    Ok(gateway) => gateways.push(gateway),
                    Err(error) if error.contains("in use") => {
                        failed = true;
                        break;
                    }
                    Err(error) => return Err(format!("gateway {index} did not start: {error}")),
                }
            }
            if !failed {
                return Ok(MeshProcesses {
                    gateways,
                    ports,
                    config,
                    service: service.to_owned(),
                    launcher: launcher.clone(),
                });
            }
        }
        Err("could not find free ports for the mesh".into())
    }

    /// Restarts gateway `index` on its port (after [`GatewayProcess::kill`] or terminate).
    pub fn restart(&mut self, index: usize) {
        for _ in 0..50 {
            match start_one(&self.launcher, &self.config, self.ports[index], index) {
                Ok(gateway) => {
                    self.gateways[index] = gateway;
                    return;
                }
                // The old socket may linger for a moment.
                Err(error) if error.contains("in use") => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                Err(error) => panic!("gateway {index} did not restart: {error}"),
            }
        }
        panic!("port {} stayed in use", self.ports[index]);
    }

    /// An MM/2 raw client of gateway `index`.
    pub fn client(&self, index: usize) -> RawClient {
        RawClient::mm2(self.gateways[index].address(), &self.service)
    }

    /// Waits until every gateway has a dialled and an accepted link to every other one.
    pub fn wait_fully_linked(&self, timeout: Duration) -> bool {
        let gateways: Vec<&GatewayProcess> = self.gateways.iter().collect();
        wait_fully_linked(&gateways, &self.service, timeout)
    }
}

/// Waits until each of `gateways` has, for `service`, a dialled and an accepted link to every
/// other one (and no more).
pub fn wait_fully_linked(gateways: &[&GatewayProcess], service: &str, timeout: Duration) -> bool {
    let expected = gateways.len() - 1;
    let mut clients: Vec<RawClient> = gateways
        .iter()
        .map(|gateway| RawClient::mm2(gateway.address(), service))
        .collect();
    wait_until(timeout, || {
        clients.iter_mut().all(|client| {
            let stats = client.stats(0xfff0);
            let (dialled, accepted) = link_counts(&stats);
            dialled == expected && accepted == expected
        })
    })
}

fn start_one(
    launcher: &GatewayLauncher,
    config: &ConfigFile,
    port: u16,
    index: usize,
) -> Result<GatewayProcess, String> {
    let port = port.to_string();
    let name = format!("gw{}", index + 1);
    let config = config
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", config.display()))?;
    launcher.start(&[
        "--port",
        &port,
        "--bind",
        "127.0.0.1",
        "--name",
        &name,
        "--config",
        config,
    ])
}

/// (dialled, accepted) links in a `_MM.STATS` answer.
pub fn link_counts(stats: &Message) -> (usize, usize) {
    let links: Vec<&Message> = links(stats);
    let dialled = links
        .iter()
        .filter(|link| link.get_string("direction") == Ok("dialled"))
        .count();
    (dialled, links.len() - dialled)
}

/// The `link` entries of a `_MM.STATS` answer.
pub fn links(stats: &Message) -> Vec<&Message> {
    stats
        .iter()
        .filter(|field| field.name() == "link")
        .filter_map(Field::as_message)
        .collect()
}

/// The `discovery` entries of a `_MM.STATS` answer.
pub fn discovery_sources(stats: &Message) -> Vec<&Message> {
    stats
        .iter()
        .filter(|field| field.name() == "discovery")
        .filter_map(Field::as_message)
        .collect()
}

/// The `peer` entries of a `_MM.STATS` answer.
pub fn peers(stats: &Message) -> Vec<&Message> {
    stats
        .iter()
        .filter(|field| field.name() == "peer")
        .filter_map(Field::as_message)
        .collect()
}
