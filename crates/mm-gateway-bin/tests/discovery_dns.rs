//! DNS discovery: a `dns:NAME:PORT` entry of `MeshGateways`, resolved through a DNS server this
//! test runs on loopback (`DnsServers`), whose answers it changes as it goes. The gateways listen
//! on 127.0.0.2, .3 and .4 with one port, like pods behind a Kubernetes headless service.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Message as DnsMessage, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use mm_testkit::mesh::{discovery_sources, link_counts, peers, wait_fully_linked};
use mm_testkit::{
    ConfigFile, GatewayProcess, RawClient, free_port, wait_until_every, write_config,
};
use mm_wire::{Action, Message};

const SERVICE: &str = "DNSMESH";
const NAME: &str = "gateways.mm.test";
const LINK_PATIENCE: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(250);

/// A DNS server on 127.0.0.1 that answers A queries from a table the test changes, or fails
/// every query (SERVFAIL) on demand. Stops when dropped.
struct DnsStub {
    address: SocketAddr,
    records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>,
    failing: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsStub {
    fn start() -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind the DNS stub");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let address = socket.local_addr().unwrap();
        let records: Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>> = Arc::default();
        let failing = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (records, failing, stop) = (records.clone(), failing.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((length, from)) = socket.recv_from(&mut buffer) else {
                        continue;
                    };
                    let Ok(query) = DnsMessage::from_vec(&buffer[..length]) else {
                        continue;
                    };
                    let answer = answer(&query, &records.lock().unwrap(), &failing);
                    if let Ok(bytes) = answer.to_bytes() {
                        let _ = socket.send_to(&bytes, from);
                    }
                }
            })
        };
        DnsStub {
            address,
            records,
            failing,
            stop,
            thread: Some(thread),
        }
    }

    fn set(&self, name: &str, addresses: &[Ipv4Addr]) {
        self.records
            .lock()
            .unwrap()
            .insert(name.to_owned(), addresses.to_vec());
    }
}

impl Drop for DnsStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The answer to `query`: the table's A records (TTL 0), NXDOMAIN for unknown names.
fn answer(
    query: &DnsMessage,
    records: &HashMap<String, Vec<Ipv4Addr>>,
    failing: &AtomicBool,
) -> DnsMessage {
    let mut answer = DnsMessage::new();
    answer
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    let mut code = ResponseCode::NoError;
    for question in query.queries() {
        answer.add_query(question.clone());
        let name = question.name().to_ascii().to_lowercase();
        match records.get(name.trim_end_matches('.')) {
            None => code = ResponseCode::NXDomain,
            Some(addresses) if question.query_type() == RecordType::A => {
                for &address in addresses {
                    answer.add_answer(Record::from_rdata(
                        question.name().clone(),
                        0,
                        RData::A(A(address)),
                    ));
                }
            }
            Some(_) => {}
        }
    }
    if failing.load(Ordering::SeqCst) {
        code = ResponseCode::ServFail;
    }
    answer.set_response_code(code);
    answer
}

fn host(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn config(stub: &DnsStub, port: u16) -> ConfigFile {
    write_config(
        "dns",
        &format!(
            r#"{{
                "DnsServers": ["{}"], "DnsRefreshMs": 200, "DiscoveryGraceMs": 300,
                "RedialMaxMs": 200,
                "StartupMeshes": [{{"Name": "{SERVICE}", "MeshGateways": ["dns:{NAME}:{port}"]}}]
            }}"#,
            stub.address
        ),
    )
}

fn start(config: &ConfigFile, port: u16, last: u8) -> Result<GatewayProcess, String> {
    GatewayProcess::start_exact(&[
        "--port",
        &port.to_string(),
        "--bind",
        &host(last).to_string(),
        "--name",
        &format!("gw{last}"),
        "--config",
        config.to_str().unwrap(),
    ])
}

fn client(gateway: &GatewayProcess) -> RawClient {
    RawClient::mm2(gateway.address(), SERVICE)
}

fn number(frame: &mm_wire::Frame) -> i32 {
    frame.message().unwrap().get_i32("#").unwrap()
}

/// (address, source, state) of each peer in a `_MM.STATS` answer, sorted.
fn peer_rows(stats: &Message) -> Vec<(String, String, String)> {
    let mut rows: Vec<(String, String, String)> = peers(stats)
        .iter()
        .map(|peer| {
            (
                peer.get_string("address").unwrap().to_owned(),
                peer.get_string("source").unwrap().to_owned(),
                peer.get_string("state").unwrap().to_owned(),
            )
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_dns_name_with_many_addresses_is_resolved_again_as_gateways_come_and_go() {
    let stub = DnsStub::start();
    stub.set(NAME, &[host(2), host(3)]);
    // One port on three loopback addresses; try another port if one is taken.
    let (port, config, second, third) = (0..5)
        .find_map(|_| {
            let port = free_port();
            let config = config(&stub, port);
            let second = start(&config, port, 2).ok()?;
            let third = start(&config, port, 3).ok()?;
            Some((port, config, second, third))
        })
        .expect("a port free on 127.0.0.2 and 127.0.0.3");
    assert!(wait_fully_linked(
        &[&second, &third],
        SERVICE,
        LINK_PATIENCE
    ));
    let source = format!("dns:{NAME}:{port}");
    let at = |last: u8| format!("127.0.0.{last}:{port}");
    let stats = client(&second).stats(0xd000);
    assert_eq!(
        peer_rows(&stats),
        vec![
            (at(2), source.clone(), "self".to_owned()),
            (at(3), source.clone(), "up".to_owned()),
        ],
        "its own address found by gateway id; the other linked"
    );

    // A new address appears in DNS: a gateway there joins without restarts.
    stub.set(NAME, &[host(2), host(3), host(4)]);
    let fourth = start(&config, port, 4).expect("a gateway on 127.0.0.4");
    assert!(wait_fully_linked(
        &[&second, &third, &fourth],
        SERVICE,
        LINK_PATIENCE
    ));
    let mut at_fourth = client(&fourth);
    at_fourth.subscribe(1, "DNS.>");
    at_fourth.mesh_flush();
    client(&second).publish("DNS.hello", "", &Message::new().add_i32("#", 2));
    assert_eq!(number(&at_fourth.expect_action(Action::SendMessage)), 2);

    // An address leaves DNS (its gateway still runs): after the grace period the others drop it.
    stub.set(NAME, &[host(2), host(4)]);
    let mut observer = client(&second);
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        let stats = observer.stats_once(0xd001);
        !peer_rows(&stats).iter().any(|row| row.0 == at(3)) && link_counts(&stats).0 == 1
    }));
    let stats = observer.stats(0xd002);
    assert_eq!(
        peer_rows(&stats),
        vec![
            (at(2), source.clone(), "self".to_owned()),
            (at(4), source.clone(), "up".to_owned()),
        ]
    );
    let dns = &discovery_sources(&stats)[0];
    assert_eq!(dns.get_string("source"), Ok(source.as_str()));
    assert_eq!(dns.get_string("state"), Ok("ok"));
    assert_eq!(dns.get_u32("peers"), Ok(2));

    // The DNS server fails: the last addresses stay in force, the links stay up.
    stub.failing.store(true, Ordering::SeqCst);
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        let stats = observer.stats_once(0xd003);
        discovery_sources(&stats)[0].get_string("state") == Ok("unreachable")
    }));
    let stats = observer.stats(0xd004);
    assert_eq!(link_counts(&stats).0, 1, "{stats:#}");
    assert_eq!(peer_rows(&stats).len(), 2, "{stats:#}");
    stub.failing.store(false, Ordering::SeqCst);
    assert!(wait_until_every(LINK_PATIENCE, POLL, || {
        let stats = observer.stats_once(0xd005);
        discovery_sources(&stats)[0].get_string("state") == Ok("ok")
    }));
    client(&second).publish("DNS.again", "", &Message::new().add_i32("#", 4));
    assert_eq!(number(&at_fourth.expect_action(Action::SendMessage)), 4);
    drop(third);
}
