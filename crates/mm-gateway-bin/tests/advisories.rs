//! Advisories on `_MM.ADVISORY.>` from real gateway processes: a client refused for asking too
//! fast, and mesh links going down and coming back, as a subscriber of the service sees them.

use std::time::{Duration, Instant};

use mm_testkit::{GatewayProcess, MeshProcesses, PATIENCE, RawClient};
use mm_wire::{Action, Message};

const SERVICE: &str = "ADVISED";

/// A client of `gateway` subscribed to every advisory (confirmed).
fn watcher(address: std::net::SocketAddr) -> RawClient {
    let mut watcher = RawClient::mm2(address, SERVICE);
    watcher.subscribe(1, "_MM.ADVISORY.>");
    watcher.flush();
    watcher
}

/// Advisories received until `done` says so (or the deadline passes): (subject, body).
fn advisories_until(
    watcher: &mut RawClient,
    mut done: impl FnMut(&[(String, Message)]) -> bool,
) -> Vec<(String, Message)> {
    let deadline = Instant::now() + PATIENCE;
    let mut received = Vec::new();
    while !done(&received) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "advisories so far: {received:#?}");
        let Some(frame) = watcher.recv(left.min(Duration::from_millis(200))) else {
            continue;
        };
        if frame.action() == Some(Action::SendMessage) {
            received.push((
                String::from_utf8_lossy(frame.subject()).into_owned(),
                frame.message().expect("an advisory decodes"),
            ));
        }
    }
    received
}

#[test]
fn a_client_asking_for_stats_too_fast_is_advised_as_refused() {
    let gateway = GatewayProcess::start(&[]);
    let mut watcher = watcher(gateway.address());
    let mut eager = RawClient::connect(
        gateway.address(),
        mm_testkit::RawClientOptions {
            name: "eager".into(),
            ..mm_testkit::RawClientOptions::mm2(SERVICE)
        },
    );
    eager.subscribe(1, "_INBOX.eager.*");
    for n in 0..12 {
        eager.publish("_MM.STATS", &format!("_INBOX.eager.{n}"), &Message::new());
    }
    let received = advisories_until(&mut watcher, |received| !received.is_empty());
    let (subject, advisory) = &received[0];
    assert_eq!(subject, "_MM.ADVISORY.WARN.CLIENT.REFUSED");
    assert_eq!(advisory.try_string("code"), Some("RATE_LIMITED"));
    assert_eq!(advisory.try_string("name"), Some("eager"));
    assert_eq!(advisory.try_string("subject"), Some("_MM.STATS"));
    assert_eq!(advisory.try_string("service"), Some(SERVICE));
    let stats = watcher.stats(9);
    assert!(
        stats.get_u64("advisories_published").unwrap() >= 1,
        "{stats:#}"
    );
}

#[test]
fn mesh_links_going_down_and_coming_back_are_advised() {
    let mut mesh = MeshProcesses::start(2, SERVICE, "");
    assert!(mesh.wait_fully_linked(PATIENCE));
    let mut watcher = watcher(mesh.gateways[0].address());
    let from_gw1 = |advisories: &[(String, Message)], subject: &str, direction: &str| {
        advisories.iter().any(|(got, advisory)| {
            got == subject
                && advisory.try_string("gateway_name") == Some("gw1")
                && advisory.try_string("peer_name") == Some("gw2")
                && advisory.try_string("direction") == Some(direction)
        })
    };
    mesh.gateways[1].kill();
    let down = advisories_until(&mut watcher, |received| {
        from_gw1(received, "_MM.ADVISORY.WARN.LINK.DOWN", "dialled")
            && from_gw1(received, "_MM.ADVISORY.WARN.LINK.DOWN", "accepted")
    });
    assert!(
        down.iter()
            .all(|(_, advisory)| advisory.try_string("reason").is_some()),
        "{down:#?}"
    );
    mesh.restart(1);
    advisories_until(&mut watcher, |received| {
        from_gw1(received, "_MM.ADVISORY.INFO.LINK.UP", "dialled")
            && from_gw1(received, "_MM.ADVISORY.INFO.LINK.UP", "accepted")
    });
}
