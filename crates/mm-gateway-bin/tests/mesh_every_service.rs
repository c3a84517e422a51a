//! `mm-gateway --mesh` (the `*` entry of `StartupMeshes`): services started on demand are meshed
//! too, a mesh-wide flush covers a service's first dials, and meshed on-demand services still
//! stop when no client uses them.

use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient, free_port, wait_until_every, write_config};
use mm_wire::{Action, Message};

/// A service no configuration names.
const SERVICE: &str = "ONDEMAND";
const IDLE_STOP: Duration = Duration::from_millis(400);

/// Two gateways, each started with `--mesh A,B` (its own address among them).
fn pair() -> (GatewayProcess, GatewayProcess) {
    let config = write_config(
        "mesh-every-service",
        &format!(r#"{{"ServiceIdleStopMs": {}}}"#, IDLE_STOP.as_millis()),
    );
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    for _attempt in 0..5 {
        let ports = [free_port(), free_port()];
        let peers = format!("127.0.0.1:{},localhost:{}", ports[0], ports[1]);
        let start = |port: u16| {
            GatewayProcess::start_exact(&[
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--mesh",
                &peers,
                "--config",
                &config,
            ])
        };
        match (start(ports[0]), start(ports[1])) {
            (Ok(a), Ok(b)) => return (a, b),
            (Err(error), _) | (_, Err(error)) if error.contains("in use") => continue,
            (Err(error), _) | (_, Err(error)) => panic!("gateway did not start: {error}"),
        }
    }
    panic!("no free ports for two gateways");
}

#[test]
fn an_on_demand_service_is_meshed_and_its_first_flush_covers_the_first_dial() {
    let (a, b) = pair();
    // The subscriber's CONNECT starts the service on B, which starts dialling A; its mesh-wide
    // flush is answered only once A has its interest (no waiting for links in between).
    let mut subscriber = RawClient::mm2(b.address(), SERVICE);
    subscriber.subscribe(1, "OD.>");
    subscriber.mesh_flush();
    let mut publisher = RawClient::mm2(a.address(), SERVICE);
    for n in 0..100 {
        publisher.publish("OD.price", "", &Message::new().add_i32("#", n));
    }
    for n in 0..100 {
        let frame = subscriber.expect_action(Action::SendMessage);
        assert_eq!(frame.subject(), b"OD.price");
        assert_eq!(frame.message().unwrap().get_i32("#").unwrap(), n);
    }
    // Both ways: B's publishes reach a subscriber on A once A has dialled B.
    let mut a_subscriber = RawClient::mm2(a.address(), SERVICE);
    a_subscriber.subscribe(2, "BACK");
    a_subscriber.mesh_flush();
    let mut b_publisher = RawClient::mm2(b.address(), SERVICE);
    b_publisher.publish("BACK", "", &Message::new().add_i32("#", 1));
    let frame = a_subscriber.expect_action(Action::SendMessage);
    assert_eq!(frame.subject(), b"BACK");

    // Every client leaves: the two services do not keep each other running through their
    // links, and nothing starts them again.
    drop((subscriber, publisher, a_subscriber, b_publisher));
    let counts = |gateway: &GatewayProcess| {
        let log = gateway.log();
        (
            log.matches("service started").count(),
            log.matches("service stopped").count(),
        )
    };
    for (gateway, name) in [(&a, "A"), (&b, "B")] {
        let mut seen = (0, 0);
        let stopped = wait_until_every(IDLE_STOP * 10, Duration::from_millis(20), || {
            seen = counts(gateway);
            seen.1 >= 1 && seen.0 == seen.1
        });
        assert!(
            stopped,
            "gateway {name}: the on-demand service stops without clients (started {}, stopped \
             {} times):\n{}",
            seen.0,
            seen.1,
            gateway.log()
        );
    }
    let settled = (counts(&a), counts(&b));
    // Observation window: a stopped service that a peer's redial started again would show here.
    std::thread::sleep(IDLE_STOP * 3);
    assert_eq!(
        (counts(&a), counts(&b)),
        settled,
        "no service started again"
    );
    assert_eq!(settled.0, (1, 1), "{}", a.log());
    assert_eq!(settled.1, (1, 1), "{}", b.log());
}
