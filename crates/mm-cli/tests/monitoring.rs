//! `mm top --once` and `mm stats --http` against a real gateway's monitoring server.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mm_testkit::{GatewayProcess, MeshProcesses, PATIENCE, RawClient, wait_until_every};

const SERVICE: &str = "TOPTEST";

fn mm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mm"))
        .args(args)
        .env_remove("MM_GATEWAY_HTTP_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run mm")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn top_once_shows_services_subjects_connections_and_links() {
    let mesh = MeshProcesses::start(2, SERVICE, r#""HttpPort": 0"#);
    assert!(mesh.wait_fully_linked(PATIENCE));
    let http = mesh.gateways[0].http().to_string();
    let mut subscriber = mesh.client(0);
    subscriber.subscribe(1, "QUOTES.>");
    subscriber.flush();
    let mut publisher = mesh.client(0);
    // Keep publishing until a window shows the subject (windows close every 2 s).
    let mut screen = String::new();
    let shown = wait_until_every(Duration::from_secs(20), Duration::from_millis(200), || {
        for n in 0..100 {
            publisher.publish("QUOTES.IBM", "", &mm_wire::Message::new().add_i32("n", n));
        }
        publisher.flush();
        let output = mm(&["top", "--once", "--http", &http]);
        assert!(output.status.success(), "{}", text(&output));
        screen = String::from_utf8_lossy(&output.stdout).into_owned();
        screen.contains("QUOTES.IBM") && screen.contains("rtt ms") && !screen.contains("     -  ")
    });
    assert!(shown, "{screen}");
    assert!(screen.starts_with("gw1 (mm-gateway "), "{screen}");
    for expected in [
        "SERVICES (1)",
        &format!("▸ {SERVICE}"),
        &format!("TOP SUBJECTS — {SERVICE}"),
        &format!("CONNECTIONS — {SERVICE}"),
        "client",
        &format!("LINKS — {SERVICE}"),
        "dialled",
        "accepted",
        "gw2",
        &format!("PEERS — {SERVICE}"),
        "self",
    ] {
        assert!(screen.contains(expected), "{expected:?} in\n{screen}");
    }
    // Sorting and an unknown service fall back to the first service.
    let sorted = mm(&[
        "top",
        "--once",
        "--http",
        &http,
        "--sort",
        "subscriptions",
        "--service",
        "NOPE",
    ]);
    assert!(sorted.status.success());
    assert!(
        text(&sorted).contains("by subscriptions"),
        "{}",
        text(&sorted)
    );
}

#[test]
fn top_and_stats_explain_a_missing_token_and_an_unreachable_server() {
    let gateway = GatewayProcess::start(&["--http", "0", "--http-token", "t0ken"]);
    let http = gateway.http().to_string();
    let _client = RawClient::mm2(gateway.address(), SERVICE);
    let refused = mm(&["top", "--once", "--http", &http]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("requires a token"),
        "{}",
        text(&refused)
    );
    let allowed = mm(&["top", "--once", "--http", &http, "--http-token", "t0ken"]);
    assert!(allowed.status.success(), "{}", text(&allowed));
    let by_variable = Command::new(env!("CARGO_BIN_EXE_mm"))
        .args(["stats", "--http", &http, "--service", SERVICE])
        .env("MM_GATEWAY_HTTP_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert!(by_variable.status.success(), "{}", text(&by_variable));
    drop(gateway);
    let gone = mm(&["top", "--once", "--http", &http]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone).contains("cannot reach the monitoring server"),
        "{}",
        text(&gone)
    );
}

#[test]
fn stats_reads_the_http_endpoint() {
    let gateway = GatewayProcess::start(&["--http", "0"]);
    let http = gateway.http().to_string();
    let mut client = RawClient::mm2(gateway.address(), SERVICE);
    client.subscribe(1, "A.>");
    client.flush();
    let output = mm(&["stats", "--http", &http, "--service", SERVICE]);
    assert!(output.status.success(), "{}", text(&output));
    let report = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "name ",
        SERVICE,
        "clients",
        "rates.messages_in",
        "CONNECTIONS (1)",
        "subscription_summary.total",
    ] {
        assert!(report.contains(expected), "{expected:?} in\n{report}");
    }
    let json = mm(&["stats", "--http", &http, "--service", SERVICE, "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["name"], SERVICE);
    assert_eq!(value["connections"][0]["subscriptions"], 1);
    let missing = mm(&["stats", "--http", &http, "--service", "NOPE"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing).contains("no service `NOPE`"),
        "{}",
        text(&missing)
    );
}
