//! The monitoring server of a real gateway: every JSON endpoint, `/metrics` parsed as Prometheus
//! text, the live feed, the token, loopback by default, and the statistics contract on
//! `_COORDINATOR` (SPEC §11).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mm_testkit::{
    GatewayProcess, MeshProcesses, PATIENCE, RawClient, http_get, wait_until_every, write_config,
};
use mm_wire::{Action, Header, Message, encode_frame};
use serde_json::Value;

const SERVICE: &str = "TEST";

/// Long enough for a few 2 s windows on a loaded machine.
const WINDOWS: Duration = Duration::from_secs(20);

/// `GET path`, which must answer 200 with JSON.
fn get_json(http: SocketAddr, path: &str) -> Value {
    let response = http_get(http, path, &[]);
    assert_eq!(response.status, 200, "{path}: {}", response.body);
    assert_eq!(response.header("cache-control"), Some("no-store"), "{path}");
    serde_json::from_str(&response.body).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Polls `path` until `accept` holds for its JSON; returns that JSON.
fn poll_json(http: SocketAddr, path: &str, accept: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    let found = wait_until_every(WINDOWS, Duration::from_millis(100), || {
        last = get_json(http, path);
        accept(&last)
    });
    assert!(found, "{path} never matched; last answer: {last:#}");
    last
}

fn publish_many(client: &mut RawClient, subject: &str, count: usize) {
    let mut batch = Vec::new();
    for n in 0..count {
        encode_frame(
            &mut batch,
            &Header::send_message(subject),
            &Message::new().add_i32("#", n as i32),
        )
        .unwrap();
    }
    client.send_bytes(&batch);
    client.flush();
}

#[test]
fn json_endpoints_report_gateway_services_connections_subjects_and_subscriptions() {
    let gateway = GatewayProcess::start(&["--http", "0", "--name", "gw-mon"]);
    let http = gateway.http();
    assert!(http.ip().is_loopback());

    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "S.>");
    subscriber.subscribe(2, "S.a");
    subscriber.subscribe(3, "T.*");
    subscriber.flush();
    let mut other = RawClient::mm2(gateway.address(), SERVICE);
    other.subscribe(1, "S.>");
    other.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    publish_many(&mut publisher, "S.a", 300);
    publish_many(&mut publisher, "S.b", 100);

    // Top subjects of the window that saw the burst (it may straddle two windows).
    let mut seen: HashMap<String, u64> = HashMap::new();
    let found = wait_until_every(WINDOWS, Duration::from_millis(200), || {
        let subjects = get_json(http, &format!("/api/services/{SERVICE}/subjects"));
        let closed_at = subjects["closed_at_ms"].as_u64().unwrap();
        for entry in subjects["by_messages"].as_array().unwrap() {
            let key = format!("{closed_at}/{}", entry["subject"].as_str().unwrap());
            seen.insert(key, entry["messages"].as_u64().unwrap());
        }
        let total = |subject: &str| -> u64 {
            seen.iter()
                .filter(|(key, _)| key.ends_with(&format!("/{subject}")))
                .map(|(_, count)| count)
                .sum()
        };
        total("S.a") == 300 && total("S.b") == 100
    });
    assert!(found, "top subjects never showed the burst: {seen:?}");
    let subjects = poll_json(http, &format!("/api/services/{SERVICE}/subjects"), |v| {
        v["by_messages"]
            .as_array()
            .is_some_and(|list| list.is_empty())
    });
    assert_eq!(
        subjects["window_seconds"].as_f64().map(f64::round),
        Some(2.0)
    );

    let info = get_json(http, "/api/gateway");
    assert_eq!(info["name"], "gw-mon");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["gateway_id"].as_str().unwrap().len(), 32);
    assert_eq!(info["totals"]["services"], 1);
    assert_eq!(info["totals"]["clients"], 3);
    assert!(info["totals"]["messages_in"].as_u64().unwrap() >= 400);
    assert!(info["memory"]["resident_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(info["limits"]["max_frame"], 67_108_864);
    assert_eq!(info["monitoring"]["token_required"], false);

    let services = get_json(http, "/api/services");
    let entry = &services["services"][0];
    assert_eq!(entry["name"], SERVICE);
    assert_eq!(entry["responsive"], true);
    assert_eq!(entry["clients"], 3);
    assert_eq!(entry["subscriptions"], 4);
    // 400 published, 300 + 100 to the first subscriber twice over for S.a, once for S.b, and
    // 400 to the other.
    assert_eq!(entry["counters"]["unmatched_publishes"], 0);

    // Rates and history come from the per-second samples.
    let detail = poll_json(http, &format!("/api/services/{SERVICE}"), |v| {
        v["history"].as_array().is_some_and(|h| h.len() >= 2)
    });
    assert!(detail["history"][0]["at_ms"].as_u64().unwrap() > 0);
    assert_eq!(detail["subscription_summary"]["clients"], 4);

    let subscriptions = get_json(http, &format!("/api/services/{SERVICE}/subscriptions"));
    assert_eq!(subscriptions["total"], 4);
    assert_eq!(subscriptions["distinct_client_patterns"], 3);
    assert_eq!(subscriptions["top_patterns"][0]["pattern"], "S.>");
    assert_eq!(subscriptions["top_patterns"][0]["subscriptions"], 2);

    // Connections: sorted by subscriptions, paged.
    let path = |query: &str| format!("/api/services/{SERVICE}/connections?{query}");
    let page = get_json(http, &path("sort=subscriptions&limit=2"));
    assert_eq!(page["total"], 3);
    let held: Vec<u64> = page["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["subscriptions"].as_u64().unwrap())
        .collect();
    assert_eq!(held, [3, 1]);
    let rest = get_json(http, &path("sort=subscriptions&offset=2&limit=2"));
    assert_eq!(rest["connections"].as_array().unwrap().len(), 1);
    assert_eq!(rest["connections"][0]["subscriptions"], 0);
    let by_bytes = get_json(http, &path("sort=bytes"));
    let first = &by_bytes["connections"][0];
    assert_eq!(first["subscriptions"], 3, "the busiest: {by_bytes:#}");
    assert_eq!(first["kind"], "client");
    assert!(first["address"].as_str().unwrap().starts_with("127.0.0.1:"));
    for query in ["sort=colour", "limit=0", "limit=100000"] {
        let response = http_get(http, &path(query), &[]);
        assert_eq!(response.status, 400, "{query}: {}", response.body);
    }
    let missing = http_get(http, "/api/services/NOPE/connections", &[]);
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("NOPE"));
    assert_eq!(http_get(http, "/api/nothing-here", &[]).status, 404);

    let health = get_json(http, "/healthz");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["services"], 1);
}

/// Checks the Prometheus text format line by line; returns samples by name and labels.
fn parse_prometheus(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut declared = Vec::new();
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    };
    assert_eq!(text.lines().last(), Some("# EOF"));
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_default();
            match kind {
                "HELP" | "UNIT" => assert!(name_ok(name), "{line}"),
                "TYPE" => {
                    assert!(name_ok(name), "{line}");
                    let metric_type = parts.next().unwrap();
                    assert!(
                        ["counter", "gauge", "info"].contains(&metric_type),
                        "{line}"
                    );
                    declared.push(name.to_owned());
                }
                "EOF" => {}
                _ => panic!("unexpected comment {line}"),
            }
            continue;
        }
        if line == "# EOF" {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(name_ok(name), "{line}");
        assert!(
            declared
                .iter()
                .any(|family| name.starts_with(family.as_str())),
            "{name} has no TYPE"
        );
        if let Some(labels) = series.strip_prefix(name)
            && !labels.is_empty()
        {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .expect("braces");
            for pair in inner.split("\",") {
                let (key, quoted) = pair.split_once('=').expect("label=value");
                assert!(name_ok(key), "{line}");
                assert!(quoted.starts_with('"'), "{line}");
            }
        }
        samples.insert(series.to_owned(), value);
    }
    samples
}

#[test]
fn metrics_are_prometheus_text_with_service_and_link_labels() {
    let mesh = MeshProcesses::start(2, SERVICE, r#""HttpPort": 0"#);
    assert!(mesh.wait_fully_linked(PATIENCE));
    let http = mesh.gateways[0].http();
    let mut subscriber = mesh.client(1);
    subscriber.subscribe(1, "M.>");
    subscriber.flush();
    let mut publisher = mesh.client(0);
    publisher.mesh_flush();
    publish_many(&mut publisher, "M.x", 50);
    for _ in 0..50 {
        subscriber.expect_action(Action::SendMessage);
    }
    // Wait for a round-trip time on both links (probes every 2 s).
    let mut samples = HashMap::new();
    let found = wait_until_every(WINDOWS, Duration::from_millis(200), || {
        let response = http_get(http, "/metrics", &[]);
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/openmetrics-text"))
        );
        samples = parse_prometheus(&response.body);
        samples
            .keys()
            .filter(|series| series.starts_with("mm_link_rtt_seconds{"))
            .count()
            == 2
    });
    assert!(found, "no RTT for both links: {samples:#?}");
    let service = format!("{{service=\"{SERVICE}\"}}");
    assert_eq!(
        samples[&format!("mm_service_clients{service}")],
        1.0,
        "the publisher"
    );
    assert!(samples[&format!("mm_service_messages_in_total{service}")] >= 50.0);
    assert_eq!(samples["mm_gateway_services"], 1.0);
    assert_eq!(samples["mm_gateway_refused_connections_total"], 0.0);
    assert!(samples["mm_gateway_resident_memory_bytes"] > 0.0);
    let info = samples
        .keys()
        .find(|series| series.starts_with("mm_gateway_info{"))
        .expect("info");
    assert!(info.contains("name=\"gw1\""), "{info}");
    let link = format!(
        "mm_link_messages_out_total{{service=\"{SERVICE}\",peer=\"gw2\",direction=\"accepted\"}}"
    );
    assert!(samples[&link] >= 50.0, "{link}");
    for (series, value) in &samples {
        if series.starts_with("mm_link_rtt_seconds{") {
            assert!(*value > 0.0 && *value < 5.0, "{series} {value}");
        }
        if series.starts_with("mm_peer_up{") {
            assert!(series.contains("address=\""), "{series}");
        }
    }
    // No per-connection or per-subject series: cardinality stays bounded.
    assert!(
        !samples
            .keys()
            .any(|s| s.contains("M.x") || s.contains("127.0.0.1:") && !s.starts_with("mm_peer_"))
    );
}

#[test]
fn mesh_endpoint_follows_links_down_and_up_with_events_and_reconnects() {
    let mut mesh = MeshProcesses::start(2, SERVICE, r#""HttpPort": 0"#);
    assert!(mesh.wait_fully_linked(PATIENCE));
    let http = mesh.gateways[0].http();
    let path = format!("/api/services/{SERVICE}/mesh");
    let up = poll_json(http, &path, |v| {
        let links = v["links"].as_array().unwrap();
        links.len() == 2 && links.iter().all(|link| link["rtt_ms"].is_number())
    });
    let peers = up["peers"].as_array().unwrap();
    assert_eq!(peers.len(), 2, "both addresses, one of them this gateway");
    let peer = peers
        .iter()
        .find(|peer| peer["state"] == "up")
        .expect("the peer is up");
    assert_eq!(peer["peer_name"], "gw2");
    assert_eq!(peer["reconnects"], 0);
    assert!(peers.iter().any(|peer| peer["state"] == "self"));
    let directions: Vec<&str> = up["links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["direction"].as_str().unwrap())
        .collect();
    assert!(directions.contains(&"dialled") && directions.contains(&"accepted"));

    let all = get_json(http, "/api/mesh");
    assert_eq!(all["gateway"]["name"], "gw1");
    assert_eq!(all["services"][0]["service"], SERVICE);

    mesh.gateways[1].kill();
    poll_json(http, &path, |v| {
        v["links"].as_array().unwrap().is_empty()
            && v["peers"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] != "up")
    });
    mesh.restart(1);
    let again = poll_json(http, &path, |v| {
        v["peers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["state"] == "up" && p["reconnects"] == 1)
    });
    assert_eq!(again["links"].as_array().unwrap().len(), 2, "{again:#}");
    let events = get_json(http, "/api/events");
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"link_down"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|kind| **kind == "link_up").count() >= 4,
        "{kinds:?}"
    );
}

#[test]
fn events_report_refused_connections_and_slow_consumers() {
    let config = write_config(
        "monitoring-events",
        r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 1048576, "AllowedServices": ["TEST"],
            "HttpPort": 0}"#,
    );
    let gateway = GatewayProcess::start(&["--config", config.to_str().unwrap()]);
    let http = gateway.http();

    let mut refused = RawClient::open(gateway.address());
    refused.send(
        &Header {
            subscription_id: 0,
            subject: b"ELSEWHERE",
            reply_subject: b"intruder",
            action: Action::Connect,
        },
        &mm_wire::handshake::ConnectOptions::mm2("test").to_message(),
    );
    refused.expect_action(Action::Error);

    let mut slow = RawClient::mm2(gateway.address(), SERVICE);
    slow.subscribe(1, "FLOOD");
    slow.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    let payload = vec![7u8; 1024];
    let mut batch = Vec::new();
    for n in 0..16 * 1024 {
        encode_frame(
            &mut batch,
            &Header::send_message("FLOOD"),
            &Message::new()
                .add_i32("#", n)
                .add_blob("p", payload.clone()),
        )
        .unwrap();
    }
    publisher.send_bytes(&batch);
    publisher.flush();

    let events = poll_json(http, "/api/events", |v| {
        let events = v["events"].as_array().unwrap();
        events.iter().any(|e| e["kind"] == "refused")
            && events.iter().any(|e| e["kind"] == "slow_consumer")
    });
    let events = events["events"].as_array().unwrap();
    let refusal = events.iter().find(|e| e["kind"] == "refused").unwrap();
    assert_eq!(refusal["service"], "ELSEWHERE");
    assert!(
        refusal["detail"]
            .as_str()
            .unwrap()
            .contains("does not serve")
    );
    let slow_event = events
        .iter()
        .find(|e| e["kind"] == "slow_consumer")
        .unwrap();
    assert_eq!(slow_event["service"], SERVICE);
    assert!(slow_event["detail"].as_str().unwrap().contains("dropped"));
    let limited = get_json(http, "/api/events?limit=1");
    assert_eq!(limited["events"].as_array().unwrap().len(), 1);
    let info = get_json(http, "/api/gateway");
    assert_eq!(info["totals"]["refused_connections"], 1);
    assert_eq!(info["totals"]["slow_consumers"], 1);
}

#[test]
fn a_token_guards_every_data_endpoint_and_is_never_shown() {
    const TOKEN: &str = "Zm9vYmFyLXNlY3JldC10b2tlbg";
    let gateway = GatewayProcess::start(&["--http", "0", "--http-token", TOKEN]);
    let http = gateway.http();
    let _client = RawClient::mm2(gateway.address(), SERVICE);
    let bearer = format!("Bearer {TOKEN}");
    let cookie = format!("mm_token={TOKEN}");
    for path in [
        "/api/gateway",
        "/api/services",
        &format!("/api/services/{SERVICE}"),
        &format!("/api/services/{SERVICE}/connections"),
        &format!("/api/services/{SERVICE}/subjects"),
        &format!("/api/services/{SERVICE}/subscriptions"),
        &format!("/api/services/{SERVICE}/mesh"),
        "/api/mesh",
        "/api/events",
        "/metrics",
    ] {
        let none = http_get(http, path, &[]);
        assert_eq!(none.status, 401, "{path} without a token");
        assert!(none.header("www-authenticate").is_some());
        let wrong = http_get(
            http,
            path,
            &[("Authorization", "Bearer Zm9vYmFyLXNlY3JldC10b2tlbH")],
        );
        assert_eq!(wrong.status, 401, "{path} with the wrong token");
        let right = http_get(http, path, &[("Authorization", &bearer)]);
        assert_eq!(right.status, 200, "{path}: {}", right.body);
        assert!(!right.body.contains(TOKEN), "{path} shows the token");
        let by_cookie = http_get(http, path, &[("Cookie", &cookie)]);
        assert_eq!(by_cookie.status, 200, "{path} by cookie");
    }
    // Health and the dashboard's files are open; the page holds no data.
    assert_eq!(http_get(http, "/healthz", &[]).status, 200);
    let page = http_get(http, "/", &[]);
    assert_eq!(page.status, 200);
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(http_get(http, "/dashboard.js", &[]).status, 200);
    // The browser's way in: the token becomes an HttpOnly cookie, and the address bar loses it.
    let login = http_get(http, &format!("/?token={TOKEN}"), &[]);
    assert_eq!(login.status, 303);
    assert_eq!(login.header("location"), Some("/"));
    let set_cookie = login.header("set-cookie").unwrap();
    assert!(set_cookie.starts_with(&cookie) && set_cookie.contains("HttpOnly"));
    assert_eq!(http_get(http, "/?token=wrong", &[]).status, 401);
    let info = get_json_with(http, "/api/gateway", &bearer);
    assert_eq!(info["monitoring"]["token_required"], true);
    assert!(!gateway.log().contains(TOKEN), "the log shows the token");
}

fn get_json_with(http: SocketAddr, path: &str, authorization: &str) -> Value {
    let response = http_get(http, path, &[("Authorization", authorization)]);
    assert_eq!(response.status, 200, "{path}");
    serde_json::from_str(&response.body).unwrap()
}

#[test]
fn monitoring_listens_on_loopback_unless_told_otherwise() {
    let gateway =
        GatewayProcess::start_exact(&["--port", "0", "--bind", "0.0.0.0", "--http", "0"]).unwrap();
    let line_address = gateway.http();
    assert!(line_address.ip().is_loopback(), "{line_address}");
    let wide = GatewayProcess::start(&["--http", "0", "--http-bind", "0.0.0.0"]);
    // Printed as the wildcard address, which the test kit turns into 127.0.0.1.
    assert_eq!(http_get(wide.http(), "/healthz", &[]).status, 200);
    assert!(wide.wait_for_log("without a token", PATIENCE));
}

#[test]
fn a_monitoring_port_in_use_fails_the_start_with_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let error = GatewayProcess::start_exact(&["--port", "0", "--http", &port])
        .err()
        .expect("the gateway must not start");
    assert!(
        error.contains("cannot listen for monitoring on 127.0.0.1:"),
        "{error}"
    );
}

#[test]
fn live_feed_streams_updates_with_the_selected_service() {
    let mut gateway = GatewayProcess::start(&["--http", "0"]);
    let http = gateway.http();
    let _client = RawClient::mm2(gateway.address(), SERVICE);
    let mut stream = TcpStream::connect(http).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET /api/live?service={SERVICE} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut updates = Vec::new();
    let mut line = String::new();
    let mut content_type = String::new();
    while updates.len() < 2 {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "stream ended");
        if line.to_lowercase().starts_with("content-type:") {
            content_type = line.clone();
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            updates.push(serde_json::from_str::<Value>(data).unwrap());
        }
    }
    assert!(content_type.contains("text/event-stream"), "{content_type}");
    let first = &updates[0];
    assert_eq!(first["services"][0]["name"], SERVICE);
    assert_eq!(first["selected"]["name"], SERVICE);
    assert!(
        first["selected"]["history"].is_array(),
        "history in the first update"
    );
    assert!(first["selected"]["connections"]["connections"].is_array());
    assert!(
        updates[1]["selected"].get("history").is_none(),
        "only in the first"
    );
    assert!(
        first["gateway"]["uptime_ms"].as_u64().unwrap()
            <= updates[1]["gateway"]["uptime_ms"].as_u64().unwrap()
    );
    // A stream still open does not hold up shutdown.
    let status = gateway.terminate().expect("exit status");
    assert!(status.success(), "{status:?}");
}

#[test]
fn statistics_contract_on_coordinator_every_two_seconds() {
    let gateway = GatewayProcess::start(&["--coordinator-stats", "--name", "gw.a b"]);
    let mut coordinator = RawClient::mm2(gateway.address(), "_COORDINATOR");
    coordinator.subscribe(1, "GATEWAY.STATS.>");
    coordinator.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    publish_many(&mut publisher, "X.y", 120);
    publish_many(&mut publisher, "X.z", 30);

    let mut seen_y = 0;
    let mut windows = 0;
    let mut last_duration = 0.0;
    while seen_y < 120 || windows < 2 {
        let frame = coordinator
            .recv(WINDOWS)
            .expect("statistics arrive every 2 s");
        if frame.action() != Some(Action::SendMessage) {
            continue;
        }
        let subject = String::from_utf8_lossy(frame.header().subject).into_owned();
        let message = frame.message().unwrap();
        let json: Value =
            serde_json::from_str(message.get_string("SERVICE_STATS").unwrap()).unwrap();
        assert_eq!(message.len(), 1, "one field");
        let service = json["ServiceName"].as_str().unwrap().to_owned();
        assert_eq!(subject, format!("GATEWAY.STATS.gw-a-b.{service}"));
        assert_eq!(json["GatewayName"], "gw.a b");
        if service != SERVICE {
            continue;
        }
        windows += 1;
        last_duration = json["DurationSeconds"].as_f64().unwrap();
        let total = &json["Total"];
        for field in [
            "Subject",
            "MessagesProcessed",
            "BytesProcessed",
            "MessagesPerSecond",
            "MegaBitsPerSecond",
        ] {
            assert!(!total[field].is_null(), "Total.{field} in {json}");
        }
        let by_messages = json["TopSubjects_MessagesPerSecond"].as_array().unwrap();
        let by_bits = json["TopSubjects_MegaBitsPerSecond"].as_array().unwrap();
        assert!(by_messages.len() <= 15 && by_bits.len() <= 15);
        for entry in by_messages {
            if entry["Subject"] == "X.y" {
                seen_y += entry["MessagesProcessed"].as_u64().unwrap();
                let bytes = entry["BytesProcessed"].as_u64().unwrap();
                let messages = entry["MessagesProcessed"].as_u64().unwrap();
                assert_eq!(bytes % messages, 0, "whole frames of one size");
                let rate = entry["MessagesPerSecond"].as_f64().unwrap();
                assert!((rate - messages as f64 / last_duration).abs() < 1e-6);
                let megabits = entry["MegaBitsPerSecond"].as_f64().unwrap();
                let expected = bytes as f64 * 8.0 / 1_048_576.0 / last_duration;
                assert!((megabits - expected).abs() < 1e-9);
            }
        }
    }
    assert_eq!(seen_y, 120);
    assert!(
        (1.5..4.0).contains(&last_duration),
        "DurationSeconds {last_duration}"
    );
}
