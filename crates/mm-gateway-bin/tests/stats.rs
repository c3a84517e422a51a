//! `_MM.STATS` counters, and the proof that writes are coalesced: many frames leave in one
//! syscall.

use mm_testkit::{GatewayProcess, RawClient};
use mm_wire::{Action, Field, Header, Message, encode_frame};

const SERVICE: &str = "TEST";

fn connection_named<'a>(stats: &'a Message, name: &str) -> &'a Message {
    stats
        .iter()
        .filter(|field| field.name() == "connection")
        .filter_map(Field::as_message)
        .find(|entry| entry.get_string("name") == Ok(name))
        .unwrap_or_else(|| panic!("no connection named {name} in {stats:#}"))
}

#[test]
fn stats_report_service_and_connection_counters() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "S.>");
    subscriber.subscribe(2, "S.x");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    for n in 0..10 {
        publisher.publish("S.x", "", &Message::new().add_i32("#", n));
    }
    for _ in 0..20 {
        subscriber.expect_action(Action::SendMessage);
    }
    let stats = publisher.stats(77);
    for field in [
        "uptime_ms",
        "frames_in",
        "bytes_in",
        "frames_out",
        "bytes_out",
        "write_calls",
        "read_calls",
        "slow_consumers",
        "dropped_frames",
        "connections_total",
    ] {
        assert!(stats.get_u64(field).is_ok(), "{field} in {stats:#}");
    }
    assert_eq!(stats.get_u32("clients"), Ok(2));
    assert_eq!(stats.get_u64("slow_consumers"), Ok(0));
    let entry = connection_named(&stats, "raw");
    assert!(entry.get_u64("id").is_ok());
    assert!(
        entry
            .get_string("address")
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(entry.get_i32("protocol"), Ok(2));
    let subscriber_entry = stats
        .iter()
        .filter(|field| field.name() == "connection")
        .filter_map(Field::as_message)
        .find(|entry| entry.get_u32("subscriptions") == Ok(2))
        .expect("the subscriber's entry");
    // ACK + 20 deliveries + the PONG of its flush.
    assert_eq!(subscriber_entry.get_u64("frames_out"), Ok(22));
    // SUBSCRIBE ×2 + PING + CONNECT is not counted (handled by the acceptor).
    assert_eq!(subscriber_entry.get_u64("frames_in"), Ok(3));
}

#[test]
fn writes_are_coalesced_many_frames_per_syscall() {
    let gateway = GatewayProcess::start(&[]);
    let mut subscriber = RawClient::mm2(gateway.address(), SERVICE);
    subscriber.subscribe(1, "BURST");
    subscriber.flush();
    let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
    const FRAMES: usize = 50_000;
    let mut burst = Vec::new();
    for n in 0..FRAMES as i32 {
        encode_frame(
            &mut burst,
            &Header::send_message("BURST"),
            &Message::new().add_i32("#", n),
        )
        .unwrap();
    }
    publisher.send_bytes(&burst);
    for n in 0..FRAMES as i32 {
        let frame = subscriber.expect_action(Action::SendMessage);
        assert_eq!(frame.message().unwrap().get_i32("#"), Ok(n));
    }
    let stats = publisher.stats(2);
    let entry = stats
        .iter()
        .filter(|field| field.name() == "connection")
        .filter_map(Field::as_message)
        .find(|entry| {
            entry.get_u32("subscriptions") == Ok(1)
                && entry.get_u64("frames_out").unwrap() > FRAMES as u64
        })
        .expect("subscriber entry");
    let frames = entry.get_u64("frames_out").unwrap();
    let writes = entry.get_u64("write_calls").unwrap();
    println!("subscriber: {frames} frames in {writes} write calls");
    // The whole burst is in the kernel before the subscriber reads anything, so each gateway
    // read takes up to a full read buffer (thousands of frames) whatever the scheduling: about
    // 1 200 frames per write measured, with both cores of a 2-core machine busy elsewhere too.
    // A gateway that wrote frame by frame would make at least one write per frame.
    assert!(
        writes * 20 < frames,
        "expected far fewer writes than frames: {writes} writes for {frames} frames"
    );
}

/// `_MM.STATS` with `body`, answered to a fresh inbox (the first answer: nothing is rate limited
/// for a new connection).
fn stats_with(client: &mut RawClient, body: &Message) -> Message {
    let inbox = client.new_inbox();
    client.subscribe(90, &inbox);
    client.publish("_MM.STATS", &inbox, body);
    loop {
        let frame = client.expect_frame();
        if frame.action() == Some(Action::SendMessage) && frame.subject() == inbox.as_bytes() {
            client.unsubscribe(90);
            return frame.message().expect("stats decode");
        }
    }
}

fn patterns(entry: &Message) -> Vec<&str> {
    entry
        .iter()
        .filter(|field| field.name() == "pattern")
        .map(|field| field.as_str().expect("a string pattern"))
        .collect()
}

#[test]
fn stats_list_each_connections_patterns_only_when_asked_and_at_most_100() {
    let gateway = GatewayProcess::start(&[]);
    let mut many = RawClient::connect(
        gateway.address(),
        mm_testkit::RawClientOptions {
            name: "many".into(),
            ..mm_testkit::RawClientOptions::mm2(SERVICE)
        },
    );
    for id in 1..=150u32 {
        many.subscribe(id, &format!("MANY.{id:03}"));
    }
    many.flush();
    let mut few = RawClient::connect(
        gateway.address(),
        mm_testkit::RawClientOptions {
            name: "few".into(),
            ..mm_testkit::RawClientOptions::mm2(SERVICE)
        },
    );
    few.subscribe(1, "ORDERS.*");
    few.subscribe(2, "A.>");
    few.flush();

    let mut asker = RawClient::mm2(gateway.address(), SERVICE);
    let plain = stats_with(&mut asker, &Message::new());
    let entry = connection_named(&plain, "few");
    assert_eq!(entry.get_u32("subscriptions"), Ok(2));
    assert!(patterns(entry).is_empty(), "{entry:#}");
    assert!(entry.field("patterns_omitted").is_none());

    let detailed = stats_with(&mut asker, &Message::new().add_bool("subscriptions", true));
    let entry = connection_named(&detailed, "few");
    assert_eq!(patterns(entry), ["A.>", "ORDERS.*"]);
    assert_eq!(entry.get_u64("patterns_omitted"), Ok(0));
    let entry = connection_named(&detailed, "many");
    let listed = patterns(entry);
    assert_eq!(listed.len(), 100);
    assert!(listed.iter().all(|pattern| pattern.starts_with("MANY.")));
    assert!(listed.is_sorted());
    assert_eq!(entry.get_u64("patterns_omitted"), Ok(50));
}
