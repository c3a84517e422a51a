//! Idle connections are cheap: RSS of a gateway holding 10 000 idle clients (the clients live in
//! this test process, the gateway in its own).

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use mm_testkit::{GatewayProcess, RawClient, wait_until_every};
use mm_wire::{Action, Header, Message, encode_frame};

const CLIENTS: usize = 10_000;

fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write to / read from a valid rlimit struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(
        limit.rlim_cur as usize > CLIENTS + 100,
        "open file limit {} is too low for {CLIENTS} clients",
        limit.rlim_cur
    );
}

#[test]
fn ten_thousand_idle_clients_cost_little_memory() {
    raise_open_file_limit();
    let gateway = GatewayProcess::start(&[]);
    let mut observer = RawClient::mm2(gateway.address(), "IDLE");
    observer.flush();
    let before = gateway.rss_kib();

    // MM/2 CONNECT plus one subscription each, pipelined; no waiting per client.
    let mut connect = Vec::new();
    encode_frame(
        &mut connect,
        &Header::new(Action::Connect)
            .with_subject("IDLE")
            .with_reply_subject("idle"),
        &mm_wire::handshake::ConnectOptions::mm2("footprint").to_message(),
    )
    .unwrap();
    let connecting = std::time::Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for n in 0..CLIENTS {
        let mut stream = TcpStream::connect(gateway.address()).expect("connect");
        let mut bytes = connect.clone();
        encode_frame(
            &mut bytes,
            &Header::new(Action::Subscribe)
                .with_subscription_id(1)
                .with_subject(&format!("IDLE.{n}")),
            &Message::new(),
        )
        .unwrap();
        stream.write_all(&bytes).expect("send CONNECT");
        clients.push(stream);
    }
    // A connection storm fits the gateway's listen queue: with the usual 128 places the queue
    // overflowed, each dropped SYN waited a second for its retry, and these connects took 70 s.
    let connected_in = connecting.elapsed();
    assert!(
        connected_in < Duration::from_secs(30),
        "{CLIENTS} connects took {connected_in:?}"
    );
    // Each stats answer lists 10 000 connections: poll it gently.
    assert!(
        wait_until_every(Duration::from_secs(60), Duration::from_millis(200), || {
            observer.stats(0xf700).get_u64("subscriptions") == Ok(CLIENTS as u64 + 1)
        }),
        "all clients attached"
    );
    // Housekeeping frees the buffers of connections that have been quiet for a second: within
    // a few seconds the footprint must come down to the goal.
    let per_connection = |rss: u64| rss.saturating_sub(before) as f64 * 1024.0 / CLIENTS as f64;
    let mut after = gateway.rss_kib();
    let reached = wait_until_every(Duration::from_secs(10), Duration::from_millis(250), || {
        after = gateway.rss_kib();
        per_connection(after) <= 16.0 * 1024.0
    });
    println!(
        "RSS {before} KiB -> {after} KiB with {CLIENTS} idle clients: {:.0} bytes per connection",
        per_connection(after)
    );
    assert!(
        reached,
        "{:.0} bytes per idle connection",
        per_connection(after)
    );
    // They are alive: the gateway delivers to one of them.
    observer.publish("IDLE.77", "", &Message::new());
    observer.flush();
    drop(clients);
}
