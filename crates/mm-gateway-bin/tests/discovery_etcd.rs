//! Mesh discovery through a real etcd (Debian's `etcd-server`, one member on loopback ports, data
//! in a temporary directory): gateways with no peer address in their configuration find each
//! other, join and leave without restarts, and ride out the registry's outages.
//!
//! Leases live 2 s and a peer no longer registered is dropped 300 ms later, so a dead gateway is
//! gone within about 3 s.
#![cfg(feature = "etcd")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use mm_testkit::mesh::{discovery_sources, link_counts, peers, wait_fully_linked};
use mm_testkit::{
    ConfigFile, EtcdServer, EtcdTls, GatewayProcess, RawClient, wait_until, wait_until_every,
    write_config,
};
use mm_wire::{Action, Message};

const SERVICE: &str = "DISCO";
const LINK_PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

/// A configuration whose only way to find peers is etcd at `endpoint`. `etcd_extra` goes into
/// the `Etcd` section.
fn etcd_config(endpoint: &str, etcd_extra: &str) -> ConfigFile {
    etcd_and_static_config(endpoint, etcd_extra, &[])
}

/// [`etcd_config`] with `addresses` in `MeshGateways` too.
fn etcd_and_static_config(endpoint: &str, etcd_extra: &str, addresses: &[String]) -> ConfigFile {
    let listed: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    let listed = listed.join(", ");
    write_config(
        "etcd",
        &format!(
            r#"{{
                "Etcd": {{"Endpoints": ["{endpoint}"], "LeaseTtlSeconds": 2{etcd_extra}}},
                "DiscoveryGraceMs": 300,
                "RedialMaxMs": 200,
                "StartupMeshes": [{{"Name": "{SERVICE}", "DiscoverMeshUsingEtcd": true,
                    "MeshGateways": [{listed}]}}]
            }}"#
        ),
    )
}

fn start(config: &ConfigFile, name: &str) -> GatewayProcess {
    GatewayProcess::start(&["--name", name, "--config", config.to_str().unwrap()])
}

fn client(gateway: &GatewayProcess) -> RawClient {
    RawClient::mm2(gateway.address(), SERVICE)
}

fn linked(gateways: &[&GatewayProcess]) -> bool {
    wait_fully_linked(gateways, SERVICE, LINK_PATIENCE)
}

fn number(frame: &mm_wire::Frame) -> i32 {
    frame.message().unwrap().get_i32("#").unwrap()
}

/// The state of the etcd source in a `_MM.STATS` answer ("" if it has not reported).
fn etcd_state(stats: &Message) -> String {
    discovery_sources(stats)
        .iter()
        .find(|source| source.get_string("source") == Ok("etcd"))
        .map(|source| source.get_string("state").unwrap().to_owned())
        .unwrap_or_default()
}

/// Whether `address` is among the peers of a `_MM.STATS` answer.
fn lists(stats: &Message, address: &str) -> bool {
    peers(stats)
        .iter()
        .any(|peer| peer.get_string("address") == Ok(address))
}

/// Dial attempts towards `addresses`, as a `_MM.STATS` answer counts them.
fn dials_to(stats: &Message, addresses: &[String]) -> u64 {
    peers(stats)
        .iter()
        .filter(|peer| {
            addresses
                .iter()
                .any(|a| peer.get_string("address") == Ok(a))
        })
        .map(|peer| peer.get_u64("dials").unwrap())
        .sum()
}

#[test]
fn three_gateways_mesh_through_etcd_and_a_fourth_joins_within_two_seconds() {
    let etcd = EtcdServer::start();
    let config = etcd_config(&etcd.endpoint(), "");
    let mut first: Vec<GatewayProcess> = (1..=3)
        .map(|index| start(&config, &format!("gw{index}")))
        .collect();
    assert!(
        linked(&first.iter().collect::<Vec<_>>()),
        "three gateways with no peer addresses configured mesh through etcd"
    );
    for gateway in &first {
        let stats = client(gateway).stats(0xe000);
        let found = peers(&stats);
        assert_eq!(found.len(), 2, "{stats:#}");
        for peer in found {
            assert_eq!(peer.get_string("source"), Ok("etcd"), "{stats:#}");
            assert_eq!(peer.get_string("state"), Ok("up"), "{stats:#}");
            assert_eq!(peer.get_bool("leaving"), Ok(false));
        }
        let sources = discovery_sources(&stats);
        assert_eq!(sources.len(), 1, "{stats:#}");
        assert_eq!(sources[0].get_string("state"), Ok("ok"));
        assert_eq!(sources[0].get_u32("peers"), Ok(2));
    }

    // A fourth gateway, started later, which also lists the first one in its configuration
    // (static addresses and etcd combine): everyone links with it, nobody restarts. Polled every
    // 100 ms (a gateway answers a connection's first 8 stats requests at once, then 4 a second)
    // through answers that may be 250 ms old, so the time measured is an upper bound.
    let mut clients: Vec<RawClient> = first.iter().map(client).collect();
    let combined = etcd_and_static_config(&etcd.endpoint(), "", &[first[0].address_string()]);
    let begin = Instant::now();
    let fourth = start(&combined, "gw4");
    clients.push(client(&fourth));
    let meshed = wait_until_every(LINK_PATIENCE, Duration::from_millis(100), || {
        clients.iter_mut().all(|client| {
            let (dialled, accepted) = link_counts(&client.stats_once(0xe001));
            dialled == 3 && accepted == 3
        })
    });
    let elapsed = begin.elapsed();
    assert!(meshed, "the fourth gateway joins the mesh");
    eprintln!(
        "fourth gateway meshed {} ms after its start",
        elapsed.as_millis()
    );
    assert!(
        elapsed < Duration::from_secs(2),
        "meshed within 2 s of its start, took {elapsed:?}"
    );
    let stats = client(&fourth).stats(0xe002);
    let mut found_by: Vec<(String, String)> = peers(&stats)
        .iter()
        .map(|peer| {
            let address = peer.get_string("address").unwrap().to_owned();
            (address, peer.get_string("source").unwrap().to_owned())
        })
        .collect();
    found_by.sort();
    let mut expected: Vec<(String, String)> = first
        .iter()
        .enumerate()
        .map(|(index, gateway)| {
            let source = if index == 0 { "config,etcd" } else { "etcd" };
            (gateway.address_string(), source.to_owned())
        })
        .collect();
    expected.sort();
    assert_eq!(found_by, expected, "one dialler per address, however found");

    // It receives traffic from every other gateway, and its publishes reach them.
    let mut at_fourth = client(&fourth);
    at_fourth.subscribe(1, "JOIN.>");
    at_fourth.mesh_flush();
    for (index, gateway) in first.iter().enumerate() {
        client(gateway).publish("JOIN.x", "", &Message::new().add_i32("#", index as i32));
        assert_eq!(
            number(&at_fourth.expect_action(Action::SendMessage)),
            index as i32
        );
    }
    let mut at_first = client(&first[0]);
    at_first.subscribe(1, "FROM.FOURTH");
    at_first.mesh_flush();
    at_fourth.publish("FROM.FOURTH", "", &Message::new().add_i32("#", 4));
    assert_eq!(number(&at_first.expect_action(Action::SendMessage)), 4);
    assert!(first.iter_mut().all(GatewayProcess::is_running));
}

#[test]
fn a_killed_gateway_is_dropped_when_its_lease_expires_and_its_interest_with_it() {
    let etcd = EtcdServer::start();
    let config = etcd_config(&etcd.endpoint(), "");
    let mut gateways: Vec<GatewayProcess> = (1..=3)
        .map(|index| start(&config, &format!("gw{index}")))
        .collect();
    assert!(linked(&gateways.iter().collect::<Vec<_>>()));
    let mut at_victim = client(&gateways[2]);
    at_victim.subscribe(1, "VICTIM.>");
    at_victim.mesh_flush();
    let mut observer = client(&gateways[0]);
    // The victim's interest is known: a request finds a responder (no NO_RESPONDERS).
    observer.publish("VICTIM.a", "_INBOX.observer.1", &Message::new());
    observer.assert_nothing_pending();
    at_victim.expect_action(Action::SendMessage);

    let victim = gateways[2].address_string();
    gateways[2].kill();
    let killed = Instant::now();
    // Its links end at once (end of stream), and its clients' interest with them.
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        link_counts(&observer.stats_once(0xe100)) == (1, 1)
    }));
    observer.publish("VICTIM.a", "_INBOX.observer.2", &Message::new());
    assert_eq!(
        observer.expect_action(Action::NoResponders).subject(),
        b"_INBOX.observer.2"
    );
    // Its registration outlives it until the lease expires: it is still a peer (redialled).
    let stats = observer.stats_once(0xe101);
    if killed.elapsed() < Duration::from_secs(1) {
        assert!(lists(&stats, &victim), "{stats:#}");
    }
    // Then etcd deletes it, and every survivor drops it.
    let mut second = client(&gateways[1]);
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        !lists(&observer.stats_once(0xe102), &victim)
    }));
    let dropped_after = killed.elapsed();
    eprintln!(
        "killed gateway dropped {} ms after SIGKILL",
        dropped_after.as_millis()
    );
    assert!(
        dropped_after >= Duration::from_secs(1),
        "dropped when its lease expired (2 s), not before: {dropped_after:?}"
    );
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        !lists(&second.stats_once(0xe103), &victim)
    }));
    let stats = observer.stats(0xe104);
    assert_eq!(peers(&stats).len(), 1, "{stats:#}");
    assert_eq!(discovery_sources(&stats)[0].get_u32("peers"), Ok(1));
    // The survivors still talk.
    let mut at_second = client(&gateways[1]);
    at_second.subscribe(1, "ALIVE");
    at_second.mesh_flush();
    observer.publish("ALIVE", "", &Message::new().add_i32("#", 7));
    assert_eq!(number(&at_second.expect_action(Action::SendMessage)), 7);
}

#[test]
fn etcd_stopped_and_restarted_mid_traffic_loses_no_message_and_a_late_gateway_joins() {
    let mut etcd = EtcdServer::start();
    let config = etcd_config(&etcd.endpoint(), "");
    let gateways: Vec<GatewayProcess> = (1..=3)
        .map(|index| start(&config, &format!("gw{index}")))
        .collect();
    assert!(linked(&gateways.iter().collect::<Vec<_>>()));
    let addresses: Vec<String> = gateways.iter().map(|g| g.address_string()).collect();
    let dials_before: Vec<u64> = gateways
        .iter()
        .map(|gateway| dials_to(&client(gateway).stats(0xe200), &addresses))
        .collect();
    let mut subscribers: Vec<RawClient> = gateways[1..].iter().map(client).collect();
    for subscriber in &mut subscribers {
        subscriber.subscribe(1, "TICK");
        subscriber.mesh_flush();
    }

    // A publisher on the first gateway, about one message a millisecond, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicI32::new(0));
    let mut publisher = client(&gateways[0]);
    let publishing = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                publisher.publish("TICK", "", &Message::new().add_i32("#", n));
                n += 1;
                sent.store(n, Ordering::SeqCst);
                if n % 256 == 0 {
                    publisher.flush();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            publisher.flush();
            n
        })
    };
    assert!(wait_until(LINK_PATIENCE, || sent.load(Ordering::SeqCst) >= 200));

    etcd.stop();
    let mut observers: Vec<RawClient> = gateways.iter().map(client).collect();
    assert!(
        wait_until_every(LINK_PATIENCE, POLL, || {
            observers
                .iter_mut()
                .all(|observer| etcd_state(&observer.stats_once(0xe201)) == "unreachable")
        }),
        "the gateways notice that etcd is gone"
    );

    // A gateway started while etcd is down serves its local clients.
    let late = start(&config, "gw4");
    let mut local = client(&late);
    local.subscribe(1, "LOCAL");
    local.flush();
    client(&late).publish("LOCAL", "", &Message::new().add_i32("#", 1));
    assert_eq!(number(&local.expect_action(Action::SendMessage)), 1);
    let stats = local.stats(0xe202);
    assert_eq!(link_counts(&stats), (0, 0), "{stats:#}");
    assert_eq!(etcd_state(&stats), "unreachable", "{stats:#}");

    // Longer than a lease (2 s) without etcd: the links between the first three stay up.
    let dropped = wait_until_every(Duration::from_secs(3), POLL, || {
        observers
            .iter_mut()
            .any(|observer| link_counts(&observer.stats_once(0xe203)) != (2, 2))
    });
    assert!(!dropped, "links stay up while etcd is away");

    etcd.restart();
    let all: Vec<&GatewayProcess> = gateways.iter().chain([&late]).collect();
    assert!(linked(&all), "the late gateway joins once etcd is back");
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        observers
            .iter_mut()
            .all(|observer| etcd_state(&observer.stats_once(0xe204)) == "ok")
    }));
    let after_restart = sent.load(Ordering::SeqCst);
    assert!(wait_until(LINK_PATIENCE, || {
        sent.load(Ordering::SeqCst) >= after_restart + 200
    }));
    stop.store(true, Ordering::SeqCst);
    let total = publishing.join().expect("publisher thread");

    for subscriber in &mut subscribers {
        for n in 0..total {
            let frame = subscriber.expect_action(Action::SendMessage);
            assert_eq!(number(&frame), n, "message {n} of {total}");
        }
        subscriber.assert_nothing_pending();
    }
    eprintln!("{total} messages across the etcd outage, none lost");
    // The links among the first three were never redialled.
    for (gateway, before) in gateways.iter().zip(dials_before) {
        assert_eq!(dials_to(&client(gateway).stats(0xe205), &addresses), before);
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, in `directory`.
fn certificates(directory: &std::path::Path) -> (EtcdTls, [std::path::PathBuf; 3]) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let write = |name: &str, text: &str| {
        let path = directory.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "mm test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let ca_file = write("ca.pem", &ca.pem());

    let issue = |name: &str, purpose: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![purpose];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        (
            write(&format!("{name}.pem"), &cert.pem()),
            write(&format!("{name}-key.pem"), &key.serialize_pem()),
        )
    };
    let (server_cert, server_key) = issue("etcd-server", ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) = issue("mm-gateway", ExtendedKeyUsagePurpose::ClientAuth);
    (
        EtcdTls {
            cert_file: server_cert,
            key_file: server_key,
            client_ca_file: ca_file.clone(),
        },
        [ca_file, client_cert, client_key],
    )
}

/// Turns authentication on, with user `mm-gateway` (`password`) allowed to read and write the
/// keys under `/messaging-mesh/` only, as docs/deployment.md sets it up.
fn enable_authentication(endpoint: &str, files: &[std::path::PathBuf; 3], password: &str) {
    use etcd_client::{Certificate, Client, ConnectOptions, Identity, Permission, TlsOptions};
    let read = |path: &std::path::PathBuf| std::fs::read(path).unwrap();
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(read(&files[0])))
        .identity(Identity::from_pem(read(&files[1]), read(&files[2])));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let options = ConnectOptions::new().with_tls(tls);
        let mut etcd = Client::connect([endpoint], Some(options)).await.unwrap();
        etcd.user_add("root", "root-only", None).await.unwrap();
        etcd.user_grant_role("root", "root").await.unwrap();
        etcd.role_add("mm-gateway").await.unwrap();
        etcd.role_grant_permission(
            "mm-gateway",
            Permission::read_write("/messaging-mesh/").with_prefix(),
        )
        .await
        .unwrap();
        etcd.user_add("mm-gateway", password, None).await.unwrap();
        etcd.user_grant_role("mm-gateway", "mm-gateway")
            .await
            .unwrap();
        etcd.auth_enable().await.unwrap();
    });
}

#[test]
fn etcd_over_tls_with_a_client_certificate_and_a_password() {
    let directory = tempfile::tempdir().unwrap();
    let (server_tls, files) = certificates(directory.path());
    let etcd = EtcdServer::start_tls(server_tls);
    enable_authentication(&etcd.endpoint(), &files, "s3cret");
    let password_file = directory.path().join("password");
    std::fs::write(&password_file, "s3cret\n").unwrap();
    let [ca, cert, key] = files.map(|path| path.to_str().unwrap().to_owned());
    let tls = format!(r#", "CaFile": "{ca}", "CertFile": "{cert}", "KeyFile": "{key}""#);
    let from_file = etcd_config(
        &etcd.endpoint(),
        &format!(
            r#"{tls}, "Username": "mm-gateway", "PasswordFile": "{}""#,
            password_file.display()
        ),
    );
    let inline = etcd_config(
        &etcd.endpoint(),
        &format!(r#"{tls}, "Username": "mm-gateway", "Password": "s3cret""#),
    );
    let wrong = etcd_config(
        &etcd.endpoint(),
        &format!(r#"{tls}, "Username": "mm-gateway", "Password": "wrong""#),
    );
    let first = start(&from_file, "gw1");
    let second = start(&inline, "gw2");
    assert!(
        linked(&[&first, &second]),
        "they mesh through etcd over TLS"
    );
    let stats = client(&first).stats(0xe300);
    assert_eq!(peers(&stats)[0].get_string("source"), Ok("etcd"));

    // A gateway with the wrong password cannot register: it says why, and serves locally.
    let outsider = start(&wrong, "gw3");
    assert!(outsider.wait_for_log("cannot register with etcd", LINK_PATIENCE));
    let mut at_outsider = client(&outsider);
    let stats = at_outsider.stats(0xe301);
    let source = &discovery_sources(&stats)[0];
    assert_eq!(source.get_string("state"), Ok("unreachable"));
    assert!(
        source
            .get_string("last_error")
            .unwrap()
            .contains("authentication failed"),
        "{stats:#}"
    );
    assert_eq!(link_counts(&stats), (0, 0));
    at_outsider.subscribe(1, "LOCAL");
    at_outsider.flush();
    client(&outsider).publish("LOCAL", "", &Message::new().add_i32("#", 3));
    assert_eq!(number(&at_outsider.expect_action(Action::SendMessage)), 3);
    assert_eq!(peers(&client(&first).stats(0xe302)).len(), 1);
}
