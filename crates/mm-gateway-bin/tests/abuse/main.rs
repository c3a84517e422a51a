//! Abuse: what one hostile or careless client can do to a gateway. One test per row of the
//! hardening issue's table, each against a real `mm-gateway` process, with healthy clients (a
//! publisher, two subscribers) on another subject of the same service watching for loss,
//! reordering and stalls, and the gateway's memory, threads and descriptors read from `/proc`.
//!
//! The suite runs them scaled down to seconds. `MM_ABUSE_SCALE=full` runs the issue's sizes
//! (`bash bench/reliability.sh` does, against a release build); `MM_ABUSE_REPORT=FILE` appends
//! each scenario's figures to FILE as a JSON line, for `docs/reliability.md`. Every scenario
//! runs under a memory guard: a gateway whose resident size passes the cap (2 GiB in the suite,
//! 8 GiB at full scale, `MM_ABUSE_RSS_CAP_MIB`) is killed and the scenario fails.
//!
//! A scenario records every check, passed or failed, with the figures it measured, and fails at
//! the end listing all failed checks — so one run says everything that is wrong. A healthy
//! client's stall leaves out the time the shared machine kept the gateway's service thread (or
//! both healthy subscribers) waiting for a CPU: see `mm_testkit::HealthyStream`.
//!
//! `scenario` holds the harness (scale, checks, report, healthy clients); `connections` the raw
//! frames and connections the abusers use.

mod connections;
mod scenario;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mm_testkit::mesh::links;
use mm_testkit::{
    GatewayProcess, HealthyStream, HealthyStreamOptions, MeshProcesses, RawClient, Received,
    wait_until, wait_until_every,
};
use mm_wire::{Action, Field, Header, Message};

use connections::{
    RawLink, ServiceAnswer, closed_within, connect_bytes, connect_to_service, disconnect,
    error_code, fresh_stats, mm1_flush, open_idle_clients, open_with_timeout, push_frame,
    push_publish, push_subscribe, raise_open_file_limit, stat, write_or_closed,
};
use scenario::{HEALTHY, MIB, SERVICE, Scale, Scenario, THREAD_SLACK, healthy_stream, mib, run};

#[test]
fn row_01_fan_out_to_200k_subscriptions_of_one_client_is_bounded() {
    let scale = Scale::get();
    let subscriptions = scale.pick(20_000u32, 200_000);
    let publishes = scale.pick(16, 253);
    let (config, bound_kib) = match scale {
        Scale::Ci => (
            r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 1048576}"#,
            MIB,
        ),
        Scale::Full => ("{}", 128 * MIB),
    };
    run(
        1,
        "row_01_fan_out_to_200k_subscriptions_of_one_client_is_bounded",
        format!(
            "one client holds {subscriptions} subscriptions to one subject, then publishes \
             {publishes} × 1 KiB to it"
        ),
        config,
        |s| {
            let mut gateway = s.gateway(config);
            let healthy = healthy_stream(&gateway);
            let baseline = s.baseline(&gateway);
            let mut abuser = RawClient::mm2(gateway.address(), SERVICE);
            let mut bytes = Vec::new();
            for id in 1..=subscriptions {
                push_subscribe(&mut bytes, id, "FANOUT");
            }
            let started = Instant::now();
            abuser.send_bytes(&bytes);
            assert!(
                abuser.try_flush(scale.patience()),
                "subscriptions processed"
            );
            s.note(format!(
                "{subscriptions} subscriptions processed in {} ms",
                started.elapsed().as_millis()
            ));
            s.healthy(" while the abuser subscribes", healthy.finish());
            let healthy = healthy_stream(&gateway);
            let with_subscriptions = gateway.status().rss_kib;
            gateway.reset_peak_rss();

            let started = Instant::now();
            let mut bytes = Vec::new();
            for n in 0..publishes {
                push_publish(
                    &mut bytes,
                    "FANOUT",
                    "",
                    &Message::new()
                        .add_i32("#", n)
                        .add_blob("p", vec![0x42u8; 1024]),
                );
            }
            let _ = abuser.try_send_bytes(&bytes);
            let (closed, frames) = abuser.wait_closed(scale.patience());
            let cut_off_after = started.elapsed();
            let last_error = frames.iter().rev().find_map(error_code);
            s.note(format!(
                "the abuser received {} frames before the end of its stream, {} ms after it \
                 published",
                frames.len(),
                cut_off_after.as_millis()
            ));
            s.check(
                closed && last_error.as_deref() == Some("SLOW_CONSUMER"),
                format!(
                    "the abuser is cut off: ERROR SLOW_CONSUMER then close — closed {closed}, \
                     last ERROR {last_error:?}"
                ),
            );
            drop(abuser);
            s.check_peak(&gateway, with_subscriptions, 2 * bound_kib + 32 * MIB);
            if !Scenario::alive(&gateway) {
                s.healthy(" while the abuser publishes", healthy.finish());
                s.survived(&mut gateway);
                return;
            }
            s.rss_recovers(&gateway, baseline, "the abuser was cut off");
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let stats = fresh_stats(&mut observer);
            s.check(
                stat(&stats, "slow_consumers") == 1,
                format!("slow_consumers = 1: {}", stat(&stats, "slow_consumers")),
            );
            s.healthy(" while the abuser publishes", healthy.finish());
            s.survived(&mut gateway);
            s.sigterm(&mut gateway, "afterwards");
        },
    );
}

#[test]
fn row_02_made_up_service_names_are_capped_and_stop_when_idle() {
    let scale = Scale::get();
    let max_services = scale.pick(8usize, 256);
    let idle_stop = scale.pick(Duration::from_millis(500), Duration::from_secs(30));
    let held = max_services + 8;
    let churn = scale.pick(100usize, 5_000);
    let config = match scale {
        Scale::Ci => r#"{"MaxServices": 8, "ServiceIdleStopMs": 500}"#,
        Scale::Full => "{}",
    };
    run(
        2,
        "row_02_made_up_service_names_are_capped_and_stop_when_idle",
        format!(
            "one client holds connections to {held} made-up service names, then connects to \
             {churn} more one after another"
        ),
        config,
        |s| {
            raise_open_file_limit(2 * held as u64 + 100);
            let mut gateway = s.gateway(config);
            let healthy = healthy_stream(&gateway);
            let baseline_threads = gateway.status().threads;
            let baseline_fds = gateway.open_fds();
            let baseline = s.baseline(&gateway);

            // Held: past the limit, CONNECT is refused.
            let mut clients = Vec::new();
            let (mut accepted, mut refused, mut other) = (0, 0, Vec::new());
            for n in 0..held {
                let (client, answer) = connect_to_service(gateway.address(), &format!("MADEUP{n}"));
                match answer {
                    ServiceAnswer::Accepted => accepted += 1,
                    ServiceAnswer::Refused => refused += 1,
                    ServiceAnswer::Other(what) => other.push(what),
                }
                clients.push(client);
            }
            let peak_threads = gateway.status().threads;
            s.note(format!(
                "{held} services asked for while held: {accepted} accepted, {refused} refused; \
                 threads {baseline_threads} → {peak_threads}"
            ));
            s.check(
                accepted < max_services && refused == held - accepted && other.is_empty(),
                format!(
                    "with MaxServices = {max_services}, CONNECTs that would create one more \
                     service get ERROR SERVICE_REFUSED and close: {accepted} accepted, {refused} \
                     refused, other answers {other:?}"
                ),
            );
            s.check(
                peak_threads <= baseline_threads + max_services as u64 + THREAD_SLACK,
                format!(
                    "threads stay within one per allowed service: {baseline_threads} → \
                     {peak_threads}"
                ),
            );

            // Idle services stop.
            drop(clients);
            let mut threads = peak_threads;
            let stopped = wait_until_every(
                idle_stop + Duration::from_secs(5),
                Duration::from_millis(50),
                || {
                    threads = gateway.status().threads;
                    threads <= baseline_threads + THREAD_SLACK
                },
            );
            s.check(
                stopped,
                format!(
                    "services without connections stop after ServiceIdleStopMs: threads \
                     {peak_threads} → {threads} (baseline {baseline_threads})"
                ),
            );

            // Churn: one made-up name after another; each is answered, ACK or SERVICE_REFUSED.
            let (mut accepted, mut refused, mut other) = (0, 0, Vec::new());
            let mut peak_threads = 0;
            for n in 0..churn {
                let (link, answer) = connect_to_service(gateway.address(), &format!("CHURN{n}"));
                if answer == ServiceAnswer::Accepted
                    && let Some(mut link) = link
                {
                    disconnect(&mut link);
                }
                if matches!(answer, ServiceAnswer::Other(_)) && other.len() >= 4 {
                    other.push("…".to_owned());
                    s.note(format!(
                        "gave up after {} names: the gateway stopped answering",
                        n + 1
                    ));
                    break;
                }
                match answer {
                    ServiceAnswer::Accepted => accepted += 1,
                    ServiceAnswer::Refused => refused += 1,
                    ServiceAnswer::Other(what) => other.push(what),
                }
                if n % 16 == 0 {
                    peak_threads = peak_threads.max(gateway.status().threads);
                }
            }
            peak_threads = peak_threads.max(gateway.status().threads);
            s.note(format!(
                "{churn} made-up names one after another: {accepted} accepted, {refused} \
                 refused; peak threads {peak_threads}"
            ));
            s.check(
                other.is_empty(),
                format!(
                    "every CONNECT is answered (ACK or SERVICE_REFUSED): {} otherwise, first \
                     {:?}",
                    other.len(),
                    other.first()
                ),
            );
            s.check(
                peak_threads <= baseline_threads + max_services as u64 + THREAD_SLACK,
                format!(
                    "threads during the churn stay within one per allowed service: peak \
                     {peak_threads} (baseline {baseline_threads})"
                ),
            );
            let mut threads = peak_threads;
            let stopped = wait_until_every(
                idle_stop + Duration::from_secs(5),
                Duration::from_millis(50),
                || {
                    threads = gateway.status().threads;
                    threads <= baseline_threads + THREAD_SLACK
                },
            );
            s.check(
                stopped,
                format!("after the churn, idle services stop: threads {threads} (baseline {baseline_threads})"),
            );
            let fds = gateway.open_fds();
            s.check(
                fds <= baseline_fds + 4,
                format!("descriptors come back: {baseline_fds} → {fds}"),
            );
            let (_client, answer) = connect_to_service(gateway.address(), "FRESHNAME");
            s.check(
                answer == ServiceAnswer::Accepted,
                format!("a new service can be created afterwards: {answer:?}"),
            );
            s.rss_recovers(&gateway, baseline, "the made-up services stopped");
            s.healthy("", healthy.finish());
            s.peak(&gateway);
            s.survived(&mut gateway);
        },
    );
}

#[test]
fn row_02_the_acceptor_survives_descriptor_exhaustion() {
    let scale = Scale::get();
    let limit = scale.pick(160u64, 4096);
    let flood = scale.pick(250usize, 5_000);
    let window = scale.pick(Duration::from_secs(3), Duration::from_secs(10));
    // Lines the gateway may write while out of descriptors, whatever the number of connections.
    let allowed_lines = scale.pick(10, 20);
    run(
        2,
        "row_02_the_acceptor_survives_descriptor_exhaustion",
        format!(
            "with the gateway limited to {limit} descriptors, one client opens {flood} \
             connections, then keeps trying to open more for {} s",
            window.as_secs()
        ),
        &format!("RLIMIT_NOFILE {limit}"),
        |s| {
            raise_open_file_limit(flood as u64 + 1_500);
            let mut gateway = GatewayProcess::start_with_open_file_limit(limit, &[]);
            s.guard(&gateway);
            let healthy = healthy_stream(&gateway);
            let baseline = s.baseline(&gateway);
            let connect = connect_bytes(SERVICE, true);
            let address = gateway.address();
            // Open until `flood` are open, or connecting keeps failing (the accept queue is full).
            let mut streams = Vec::new();
            let mut failures_in_a_row = 0;
            while streams.len() < flood && failures_in_a_row < 20 {
                match open_with_timeout(address, &connect, Duration::from_millis(100)) {
                    Some(stream) => {
                        streams.push(stream);
                        failures_in_a_row = 0;
                    }
                    None => failures_in_a_row += 1,
                }
            }
            let mut fds = 0;
            let exhausted = wait_until(Duration::from_secs(10), || {
                fds = gateway.open_fds();
                fds + 8 >= limit
            });
            s.note(format!(
                "{} connections opened; the gateway holds {fds} of {limit} descriptors",
                streams.len()
            ));
            if !exhausted {
                s.note("the gateway kept some descriptors in reserve");
            }
            // The connections that did get descriptors are attached (their log lines written).
            let mut log_len: Option<usize> = None;
            wait_until_every(Duration::from_secs(10), Duration::from_millis(500), || {
                let now = gateway.log_len();
                let quiet = log_len
                    .is_some_and(|before| !gateway.log_since(before).contains("client connected"));
                log_len = Some(now);
                quiet
            });

            let log_start = gateway.log_len();
            let window_started = Instant::now();
            let mut attempts = 0;
            while window_started.elapsed() < window {
                attempts += 1;
                if let Some(stream) =
                    open_with_timeout(address, &connect, Duration::from_millis(20))
                {
                    streams.push(stream);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let log = gateway.log_since(log_start);
            let lines = log.lines().count();
            let accept_lines = log.lines().filter(|line| line.contains("accept")).count();
            s.note(format!(
                "{} s out of descriptors, {attempts} more connection attempts: {lines} log \
                 lines ({accept_lines} about accept), {} bytes; first: {:?}",
                window.as_secs(),
                log.len(),
                log.lines().next().unwrap_or_default()
            ));
            s.check(
                lines <= allowed_lines,
                format!(
                    "the log is not flooded while out of descriptors: {lines} lines in {} s \
                     (at most {allowed_lines})",
                    window.as_secs()
                ),
            );
            drop(streams);
            let started = Instant::now();
            let mut answers = (ServiceAnswer::Accepted, ServiceAnswer::Accepted);
            let recovered =
                wait_until_every(Duration::from_secs(15), Duration::from_millis(200), || {
                    answers = (
                        connect_to_service(address, SERVICE).1,
                        connect_to_service(address, "NEWSERVICE").1,
                    );
                    answers == (ServiceAnswer::Accepted, ServiceAnswer::Accepted)
                });
            s.check(
                recovered,
                format!(
                    "once the connections close, new ones are accepted again without a restart \
                     (existing and new service): {answers:?} after {} ms",
                    started.elapsed().as_millis()
                ),
            );
            s.healthy(" (existing connections keep working)", healthy.finish());
            s.peak(&gateway);
            s.rss_recovers(&gateway, baseline, "the connections closed");
            s.survived(&mut gateway);
        },
    );
}

/// An unexpected frame in a few words: its ERROR code, or its action.
fn describe(frame: &mm_wire::Frame) -> String {
    error_code(frame).map_or_else(
        || format!("{:?}", frame.action()),
        |code| format!("ERROR {code}"),
    )
}

/// What a flood of `_MM.STATS` requests got back.
#[derive(Debug, Default)]
struct StatsFlood {
    answers: usize,
    rate_limited: usize,
    /// Other frames: ERROR codes, or actions.
    other: Vec<String>,
    closed: bool,
    most_entries: usize,
    answers_without_omitted_count: usize,
    elapsed: Duration,
}

/// Sends `requests` `_MM.STATS` requests in one write and reads what comes back (until every
/// request is answered, or `patience` passes).
fn stats_flood(address: SocketAddr, requests: usize, patience: Duration) -> StatsFlood {
    let mut client = RawClient::mm2(address, SERVICE);
    client.subscribe(1, "_INBOX.abuse.*");
    client.flush();
    let mut writer = client.stream().try_clone().expect("clone the socket");
    let reader = std::thread::spawn(move || {
        let mut flood = StatsFlood::default();
        let started = Instant::now();
        while flood.answers + flood.rate_limited < requests && started.elapsed() < patience {
            match client.recv_event(patience.saturating_sub(started.elapsed())) {
                Received::Frame(frame) if frame.action() == Some(Action::SendMessage) => {
                    flood.answers += 1;
                    if let Ok(stats) = frame.message() {
                        let entries = stats
                            .iter()
                            .filter(|field| field.name() == "connection")
                            .count();
                        flood.most_entries = flood.most_entries.max(entries);
                        if !stats.contains("connections_omitted") {
                            flood.answers_without_omitted_count += 1;
                        }
                    }
                }
                Received::Frame(frame) if error_code(&frame).as_deref() == Some("RATE_LIMITED") => {
                    flood.rate_limited += 1;
                }
                Received::Frame(frame) if frame.action() == Some(Action::Ping) => {}
                Received::Frame(frame) => flood.other.push(describe(&frame)),
                Received::Timeout => break,
                Received::Closed => {
                    flood.closed = true;
                    break;
                }
            }
        }
        flood.elapsed = started.elapsed();
        flood
    });
    let mut bytes = Vec::new();
    for n in 0..requests {
        push_publish(
            &mut bytes,
            "_MM.STATS",
            &format!("_INBOX.abuse.{n}"),
            &Message::new(),
        );
    }
    let _ = writer.write_all(&bytes);
    reader.join().expect("the flood's reader")
}

#[test]
fn row_03_stats_requests_with_many_idle_connections_are_cheap() {
    let scale = Scale::get();
    let idle = scale.pick(1_000usize, 5_000);
    let requests = scale.pick(100usize, 3_000);
    run(
        3,
        "row_03_stats_requests_with_many_idle_connections_are_cheap",
        format!(
            "with {idle} idle connections in the service, one client sends {requests} `_MM.STATS` requests"
        ),
        "",
        |s| {
            raise_open_file_limit(2 * idle as u64 + 200);
            let mut gateway = s.gateway("{}");
            let healthy = healthy_stream(&gateway);
            let baseline = s.baseline(&gateway);
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let mut idle_clients = open_idle_clients(gateway.address(), SERVICE, idle);
            let attached = |observer: &mut RawClient, others: u64| {
                let mut clients = 0;
                let attached =
                    wait_until_every(scale.patience(), Duration::from_millis(300), || {
                        clients = stat(
                            &observer.try_stats(0xab00, Duration::from_secs(10)),
                            "clients",
                        );
                        clients >= idle as u64 + others
                    });
                assert!(attached, "the idle clients are attached: {clients} clients");
            };
            attached(&mut observer, 3);
            let with_idle = gateway.status().rss_kib;
            s.note(format!(
                "RSS {:.0} MiB → {:.0} MiB with {idle} idle connections",
                mib(baseline),
                mib(with_idle)
            ));
            gateway.reset_peak_rss();

            let flood = stats_flood(gateway.address(), requests, scale.patience());
            s.note(format!(
                "{requests} requests: {} answers, {} RATE_LIMITED, other {:?}{}, in {} ms; the \
                 largest answer had {} connection entries",
                flood.answers,
                flood.rate_limited,
                flood.other,
                if flood.closed { ", then closed" } else { "" },
                flood.elapsed.as_millis(),
                flood.most_entries
            ));
            let allowed = 8 + 4 * flood.elapsed.as_secs() as usize + 4;
            s.check(
                flood.answers <= allowed && flood.answers + flood.rate_limited == requests,
                format!(
                    "every request is answered, at most 4 per second (burst 8), the rest with \
                     ERROR RATE_LIMITED: {} answers + {} RATE_LIMITED of {requests} in {} ms",
                    flood.answers,
                    flood.rate_limited,
                    flood.elapsed.as_millis()
                ),
            );
            s.check(
                flood.most_entries <= 100 && flood.answers_without_omitted_count == 0,
                format!(
                    "answers list at most 100 connections and count the others \
                     (connections_omitted): largest {}, {} answers without the count",
                    flood.most_entries, flood.answers_without_omitted_count
                ),
            );
            s.check_peak(&gateway, with_idle, 64 * MIB);
            s.healthy("", healthy.finish());
            if !Scenario::alive(&gateway) {
                s.survived(&mut gateway);
                return;
            }

            // Memory comes back once the connections are gone.
            idle_clients.clear();
            let mut clients = 0;
            wait_until_every(scale.patience(), Duration::from_millis(300), || {
                clients = stat(
                    &observer.try_stats(0xab01, Duration::from_secs(10)),
                    "clients",
                );
                clients <= 2
            });
            s.rss_recovers(&gateway, baseline, "the idle connections closed");

            // SIGTERM while a flood is being answered.
            idle_clients = open_idle_clients(gateway.address(), SERVICE, idle);
            attached(&mut observer, 1);
            let mut abuser = RawClient::mm2(gateway.address(), SERVICE);
            abuser.subscribe(1, "_INBOX.abuse.*");
            let mut bytes = Vec::new();
            for n in 0..requests {
                push_publish(
                    &mut bytes,
                    "_MM.STATS",
                    &format!("_INBOX.abuse.{n}"),
                    &Message::new(),
                );
            }
            abuser.send_bytes(&bytes);
            s.survived(&mut gateway);
            s.sigterm(
                &mut gateway,
                &format!("during a flood of {requests} requests"),
            );
            drop(idle_clients);
        },
    );
}

#[test]
fn row_04_unsubscribe_by_subject_and_removal_of_1m_subscriptions_never_stall_others() {
    let scale = Scale::get();
    let subscriptions = scale.pick(100_000u32, 1_000_000);
    let unsubscribes = scale.pick(200u32, 2_000);
    run(
        4,
        "row_04_unsubscribe_by_subject_and_removal_of_1m_subscriptions_never_stall_others",
        format!(
            "one MM/1 client holds {subscriptions} subscriptions, sends {unsubscribes} \
             UNSUBSCRIBEs with unknown ids and a subject, then disconnects"
        ),
        "",
        |s| {
            let mut gateway = s.gateway("{}");
            let baseline = s.baseline(&gateway);
            let mut abuser = RawClient::mm1(gateway.address(), SERVICE);
            let inbox = "_INBOX.abuser.flush";
            let mut bytes = Vec::new();
            for id in 1..=subscriptions {
                push_subscribe(&mut bytes, id, &format!("U.{id}"));
            }
            push_subscribe(&mut bytes, subscriptions + 1, inbox);
            let healthy = healthy_stream(&gateway);
            let started = Instant::now();
            abuser.send_bytes(&bytes);
            assert!(
                mm1_flush(&mut abuser, inbox, scale.patience()),
                "subscriptions processed"
            );
            let with_subscriptions = gateway.status().rss_kib;
            s.note(format!(
                "{subscriptions} subscriptions in {} ms: RSS {:.0} → {:.0} MiB",
                started.elapsed().as_millis(),
                mib(baseline),
                mib(with_subscriptions)
            ));
            s.healthy(" while the abuser subscribes", healthy.finish());

            // UNSUBSCRIBE with an unknown id and a subject (as MM/1 clients send it).
            let healthy = healthy_stream(&gateway);
            let mut bytes = Vec::new();
            for n in 1..=unsubscribes {
                push_frame(
                    &mut bytes,
                    &Header::new(Action::Unsubscribe)
                        .with_subscription_id(0x8000_0000 + n)
                        .with_subject(&format!("U.{n}")),
                    &Message::new(),
                );
            }
            let started = Instant::now();
            abuser.send_bytes(&bytes);
            let processed = mm1_flush(&mut abuser, inbox, scale.patience());
            let elapsed = started.elapsed();
            s.note(format!(
                "{unsubscribes} UNSUBSCRIBEs by subject processed in {} ms ({:.2} ms each)",
                elapsed.as_millis(),
                elapsed.as_secs_f64() * 1000.0 / f64::from(unsubscribes)
            ));
            s.healthy(" during the UNSUBSCRIBEs", healthy.finish());
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let stats = fresh_stats(&mut observer);
            // The abuser's own entry (the only MM/1 connection): its subscriptions and its inbox.
            let expected = subscriptions - unsubscribes + 1;
            let held = stats
                .as_ref()
                .and_then(|stats| {
                    stats
                        .iter()
                        .filter(|field| field.name() == "connection")
                        .filter_map(Field::as_message)
                        .find(|entry| entry.try_i32("protocol") == Some(1))
                        .and_then(|entry| entry.try_u32("subscriptions"))
                })
                .unwrap_or(0);
            s.check(
                processed && held == expected,
                format!(
                    "each UNSUBSCRIBE removed the subscription with that subject: {held} left, \
                     {expected} expected"
                ),
            );

            // Disconnect: every subscription goes, without stalling anyone.
            let healthy = healthy_stream(&gateway);
            // The stream is flowing before the abuser leaves.
            wait_until(Duration::from_secs(5), || healthy.sent() >= 100);
            let started = Instant::now();
            drop(abuser);
            let mut left = u64::MAX;
            let removed = wait_until_every(scale.patience(), Duration::from_millis(300), || {
                left = stat(
                    &observer.try_stats(0xab11, Duration::from_secs(30)),
                    "subscriptions",
                );
                left <= 3
            });
            s.note(format!(
                "all subscriptions removed {} ms after the disconnect",
                started.elapsed().as_millis()
            ));
            s.check(
                removed,
                format!("all subscriptions are removed: {left} left"),
            );
            s.healthy(" during the removal", healthy.finish());
            s.peak(&gateway);
            s.rss_recovers(&gateway, baseline, "the subscriptions were removed");
            s.survived(&mut gateway);
        },
    );
}

/// Link ids per gateway, and the dial counts.
fn link_identity(client: &mut RawClient) -> (Vec<u64>, u64) {
    let Some(stats) = fresh_stats(client) else {
        return (Vec::new(), u64::MAX);
    };
    let mut ids: Vec<u64> = links(&stats)
        .iter()
        .filter_map(|link| link.try_u64("id"))
        .collect();
    ids.sort_unstable();
    (ids, stats.try_u64("link_dials").unwrap_or(0))
}

/// What a flood of mesh-wide flush PINGs got back.
#[derive(Debug, Default)]
struct FlushFlood {
    pongs: usize,
    limit_exceeded: usize,
    /// Other frames: ERROR codes, or actions.
    other: Vec<String>,
    closed: bool,
    elapsed: Duration,
}

fn mesh_flush_flood(address: SocketAddr, pings: usize, patience: Duration) -> FlushFlood {
    let mut client = RawClient::mm2(address, SERVICE);
    let mut writer = client.stream().try_clone().expect("clone the socket");
    let reader = std::thread::spawn(move || {
        let mut flood = FlushFlood::default();
        let started = Instant::now();
        while flood.pongs + flood.limit_exceeded < pings && started.elapsed() < patience {
            match client.recv_event(patience.saturating_sub(started.elapsed())) {
                Received::Frame(frame) if frame.action() == Some(Action::Pong) => flood.pongs += 1,
                Received::Frame(frame)
                    if error_code(&frame).as_deref() == Some("LIMIT_EXCEEDED") =>
                {
                    flood.limit_exceeded += 1
                }
                Received::Frame(frame) if frame.action() == Some(Action::Ping) => {}
                Received::Frame(frame) => flood.other.push(describe(&frame)),
                Received::Timeout => break,
                Received::Closed => {
                    flood.closed = true;
                    break;
                }
            }
        }
        flood.elapsed = started.elapsed();
        flood
    });
    let ping = {
        let mut bytes = Vec::new();
        push_frame(
            &mut bytes,
            &Header::new(Action::Ping),
            &Message::new().add_bool("mesh", true),
        );
        bytes
    };
    let _ = writer.write_all(&ping.repeat(pings));
    reader.join().expect("the flood's reader")
}

#[test]
fn row_05_mesh_flush_pings_are_capped_and_never_delay_others() {
    let scale = Scale::get();
    let pings = scale.pick(10_000usize, 100_000);
    let heartbeat_ms = scale.pick(500u64, 5_000);
    run(
        5,
        "row_05_mesh_flush_pings_are_capped_and_never_delay_others",
        format!("one client of a two-gateway mesh sends {pings} mesh-wide flush PINGs"),
        &format!("HeartbeatMs {heartbeat_ms}"),
        |s| {
            let mesh =
                MeshProcesses::start(2, SERVICE, &format!(r#""HeartbeatMs": {heartbeat_ms}"#));
            for gateway in &mesh.gateways {
                s.guard(gateway);
            }
            assert!(
                mesh.wait_fully_linked(Duration::from_secs(30)),
                "the mesh links up"
            );
            let baseline = s.baseline(&mesh.gateways[0]);
            let mut observers: Vec<RawClient> = (0..2).map(|index| mesh.client(index)).collect();
            let before: Vec<(Vec<u64>, u64)> = observers.iter_mut().map(link_identity).collect();
            let healthy = HealthyStream::start(HealthyStreamOptions {
                subscribe_at: mesh.gateways[1].address(),
                gateway_pids: mesh.gateways.iter().map(GatewayProcess::pid).collect(),
                ..HealthyStreamOptions::new(mesh.gateways[0].address(), SERVICE, HEALTHY)
            });
            // A healthy client of the same gateway flushes the mesh every 50 ms.
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flusher = {
                let stop = stop.clone();
                let mut client = mesh.client(0);
                std::thread::spawn(move || {
                    let (mut slowest, mut failed, mut count) = (Duration::ZERO, 0, 0);
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let started = Instant::now();
                        if !client.try_mesh_flush(Duration::from_secs(10)) {
                            failed += 1;
                        }
                        slowest = slowest.max(started.elapsed());
                        count += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    (slowest, failed, count)
                })
            };
            let flood = mesh_flush_flood(mesh.gateways[0].address(), pings, scale.patience());
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let (slowest, failed, count) = flusher.join().expect("the flusher");
            s.note(format!(
                "{pings} PINGs: {} PONGs, {} LIMIT_EXCEEDED, other {:?}{}, in {} ms",
                flood.pongs,
                flood.limit_exceeded,
                flood.other,
                if flood.closed { ", then closed" } else { "" },
                flood.elapsed.as_millis()
            ));
            // A burst of mesh flushes with no interest change between them waits for one link
            // PING, so they complete as fast as the peer answers and rarely reach the cap of 256
            // in progress (the cap itself is tested in the mesh's unit tests): either answer is
            // right, none may be lost.
            s.check(
                flood.pongs + flood.limit_exceeded == pings,
                format!(
                    "every PING is answered, with PONG or (past 256 pending) ERROR \
                     LIMIT_EXCEEDED: {} PONGs + {} LIMIT_EXCEEDED of {pings}",
                    flood.pongs, flood.limit_exceeded
                ),
            );
            s.check(
                failed == 0 && slowest < scale.stall(),
                format!(
                    "a healthy client's mesh flushes are answered promptly: slowest {} ms of \
                     {count}, {failed} unanswered",
                    slowest.as_millis()
                ),
            );
            s.healthy(" (across the mesh)", healthy.finish());
            let after: Vec<(Vec<u64>, u64)> = observers.iter_mut().map(link_identity).collect();
            s.check(
                before == after,
                format!("no mesh link was dropped: links and dials {before:?} → {after:?}"),
            );
            s.check_peak(&mesh.gateways[0], baseline, 64 * MIB);
            let mut gateways = mesh.gateways;
            for gateway in &mut gateways {
                s.survived(gateway);
            }
            // SIGTERM with flushes pending.
            let address = gateways[0].address();
            let mut abuser = RawClient::mm2(address, SERVICE);
            let mut bytes = Vec::new();
            push_frame(
                &mut bytes,
                &Header::new(Action::Ping),
                &Message::new().add_bool("mesh", true),
            );
            abuser.send_bytes(&bytes.repeat(pings));
            s.sigterm(
                &mut gateways[0],
                &format!("after {pings} more mesh flush PINGs"),
            );
        },
    );
}

#[test]
fn row_06_the_empty_subject_is_rejected_on_every_path() {
    run(
        6,
        "row_06_the_empty_subject_is_rejected_on_every_path",
        "publishes to the empty subject (first publish of a connection, and after valid ones), \
         and to other invalid subjects"
            .to_owned(),
        "",
        |s| {
            let mut gateway = s.gateway("{}");
            s.baseline(&gateway);
            let mut wildcard = RawClient::mm2(gateway.address(), SERVICE);
            wildcard.subscribe(1, ">");
            wildcard.subscribe(2, "*");
            wildcard.flush();
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let rejected_before = stat(&fresh_stats(&mut observer), "rejected_frames");

            let mut errors = Vec::new();
            // MM/2, the empty subject first; then after a valid publish; then every other kind
            // of invalid subject, and invalid reply subjects.
            let mut first = RawClient::mm2(gateway.address(), SERVICE);
            first.publish("", "", &Message::new().add_i32("#", 1));
            first.publish("VALID", "", &Message::new().add_i32("#", 2));
            first.publish("", "", &Message::new().add_i32("#", 3));
            let long = "x".repeat(300);
            let invalid: [&[u8]; 11] = [
                b"A..B",
                b"A.",
                b".A",
                b"A.*",
                b"A.>",
                b"",
                b"A B",
                b"A\x01B",
                b"\xff\xfe",
                long.as_bytes(),
                b"VALID",
            ];
            for (index, subject) in invalid.iter().enumerate() {
                let reply: &[u8] = if index == invalid.len() - 1 {
                    b"_INBOX.*"
                } else {
                    b""
                };
                first.send(
                    &Header {
                        subscription_id: 0,
                        subject,
                        reply_subject: reply,
                        action: Action::SendMessage,
                    },
                    &Message::new().add_i32("#", 4),
                );
            }
            let sent_mm2 = 2 + invalid.len();
            first.flush();
            while let Some(frame) = first.recv(Duration::ZERO) {
                if frame.action() == Some(Action::Error) {
                    errors.push((error_code(&frame), frame.subject().to_vec()));
                }
            }
            // MM/1, the empty subject first (dropped, no ERROR).
            let mut legacy = RawClient::mm1(gateway.address(), SERVICE);
            legacy.publish("", "", &Message::new().add_i32("#", 5));
            // The MM/1 client's frames are processed in order: its own echo marks the point.
            legacy.subscribe(1, "_INBOX.legacy.mark");
            assert!(mm1_flush(
                &mut legacy,
                "_INBOX.legacy.mark",
                Duration::from_secs(10)
            ));

            // A first-implementation gateway's link, the empty subject first.
            let mut peer =
                RawClient::mesh_peer(gateway.address(), SERVICE, "legacy-gw", &Message::new());
            peer.publish("", "", &Message::new().add_i32("#", 6));
            peer.publish("B.", "", &Message::new().add_i32("#", 7));

            let stats = fresh_stats(&mut observer);
            let rejected = stat(&stats, "rejected_frames") - rejected_before;
            let invalid_subject_errors = errors
                .iter()
                .filter(|(code, _)| code.as_deref() == Some("INVALID_SUBJECT"))
                .count();
            let empty_echoed = errors
                .iter()
                .filter(|(code, subject)| {
                    code.as_deref() == Some("INVALID_SUBJECT") && subject.is_empty()
                })
                .count();
            s.check(
                invalid_subject_errors == sent_mm2 && empty_echoed == 3,
                format!(
                    "MM/2: every invalid subject gets ERROR INVALID_SUBJECT, the empty one with \
                     the empty subject in the header (3 of them, the first publish included): \
                     {invalid_subject_errors} of {sent_mm2} ERRORs, {empty_echoed} for the \
                     empty subject"
                ),
            );
            // MM/2 and MM/1 clients' invalid publishes (the peer's may be counted too).
            s.check(
                rejected > sent_mm2 as u64,
                format!(
                    "rejected_frames counts every invalid publish of clients: +{rejected} for \
                     {} invalid publishes",
                    sent_mm2 + 1
                ),
            );
            // Nothing but the valid publish reached the wildcard subscribers (peer frames
            // included: the PONG of this flush comes after whatever they caused).
            let mut peer_flush = RawClient::mm2(gateway.address(), SERVICE);
            peer_flush.flush();
            wildcard.flush();
            let mut delivered = Vec::new();
            while let Some(frame) = wildcard.recv(Duration::ZERO) {
                // Replies and the gateway's advisories (docs/protocol.md) match `>` too.
                if frame.action() == Some(Action::SendMessage)
                    && !frame.subject().starts_with(b"_INBOX.")
                    && !frame.subject().starts_with(b"_MM.ADVISORY.")
                {
                    delivered.push(String::from_utf8_lossy(frame.subject()).into_owned());
                }
            }
            s.check(
                delivered == ["VALID", "VALID"],
                format!(
                    "`>` and `*` subscribers get only the valid publish (once each): {delivered:?}"
                ),
            );
            s.survived(&mut gateway);
            s.peak(&gateway);
        },
    );
}

#[test]
fn row_07_incomplete_frames_cost_only_what_arrived_and_time_out() {
    let scale = Scale::get();
    let connections = scale.pick(12usize, 20);
    let frame_mib = scale.pick(8usize, 64);
    let progress_timeout = scale.pick(Duration::from_secs(2), Duration::from_secs(10));
    let budget_mib = scale.pick(16u64, 0);
    let config = match scale {
        Scale::Ci => r#"{"MaxFrameBytes": 8388608, "FrameProgressTimeoutMs": 2000, "MaxTotalPartialBytes": 16777216}"#.to_owned(),
        Scale::Full => "{}".to_owned(),
    };
    run(
        7,
        "row_07_incomplete_frames_cost_only_what_arrived_and_time_out",
        format!(
            "{connections} connections send all but the last byte of {frame_mib} MiB frames \
             (after an MM/1 CONNECT); one sends a {frame_mib} MiB first frame before CONNECT"
        ),
        &config,
        |s| {
            let mut gateway = s.gateway(&config);
            let healthy = healthy_stream(&gateway);
            let frame_bytes = frame_mib * 1024 * 1024;
            let length_prefix = (frame_bytes as i32).to_le_bytes();

            // Before CONNECT, a first frame larger than 64 KiB is refused at once.
            let mut early = TcpStream::connect(gateway.address()).expect("connect");
            let started = Instant::now();
            let _ = early.write_all(&length_prefix);
            let _ = early.write_all(&[0u8; 1024]);
            let refused = closed_within(&mut early, Duration::from_secs(5));
            s.check(
                refused && started.elapsed() < Duration::from_secs(2),
                format!(
                    "a first frame claiming {frame_mib} MiB (over 64 KiB) before CONNECT is \
                     refused at once: closed {refused} after {} ms",
                    started.elapsed().as_millis()
                ),
            );

            // After an MM/1 CONNECT: the length of a big frame and 1 KiB of it, in pieces.
            let connect = connect_bytes(SERVICE, false);
            let mut streams: Vec<TcpStream> = (0..connections)
                .map(|_| {
                    let mut stream = TcpStream::connect(gateway.address()).expect("connect");
                    stream.write_all(&connect).expect("CONNECT");
                    let mut ack = [0u8; 64];
                    stream
                        .set_read_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    let _ = stream.read(&mut ack);
                    stream
                        .set_write_timeout(Some(Duration::from_secs(10)))
                        .unwrap();
                    stream
                })
                .collect();
            let baseline = s.baseline(&gateway);
            let baseline_data = gateway.status().data_kib;
            let mut open = vec![true; connections];
            for (index, stream) in streams.iter_mut().enumerate() {
                open[index] = write_or_closed(stream, &length_prefix);
            }
            for _piece in 0..4 {
                for (index, stream) in streams.iter_mut().enumerate() {
                    open[index] = open[index] && write_or_closed(stream, &[0x55u8; 256]);
                }
                // Separate reads at the gateway: each piece arrives on its own.
                std::thread::sleep(Duration::from_millis(20));
            }
            let mut data = baseline_data;
            wait_until_every(
                Duration::from_millis(500),
                Duration::from_millis(20),
                || {
                    data = data.max(gateway.status().data_kib);
                    false
                },
            );
            s.check(
                data <= baseline_data + 24 * MIB,
                format!(
                    "{connections} incomplete frames with 1 KiB received cost about 1 KiB each: \
                     data segment {:.0} → {:.0} MiB",
                    mib(baseline_data),
                    mib(data)
                ),
            );

            // All but the last byte, round robin in 256 KiB pieces.
            let chunk = vec![0x55u8; 256 * 1024];
            let mut remaining = frame_bytes - 4 - 1024 - 1;
            let progress_started = Instant::now();
            while remaining > 0 {
                let piece = remaining.min(chunk.len());
                for (index, stream) in streams.iter_mut().enumerate() {
                    open[index] = open[index] && write_or_closed(stream, &chunk[..piece]);
                }
                remaining -= piece;
                if open.iter().all(|open| !open) {
                    break;
                }
            }
            let sent_in = progress_started.elapsed();
            let cut_while_sending = open.iter().filter(|open| !**open).count();
            s.note(format!(
                "all but the last byte sent in {} ms; {cut_while_sending} of {connections} \
                 connections closed by the gateway meanwhile",
                sent_in.as_millis()
            ));
            if budget_mib > 0 {
                s.check_peak(&gateway, baseline, (budget_mib + 24) * MIB);
            } else {
                s.peak(&gateway);
            }
            let last_progress = Instant::now();
            let all_closed = streams
                .iter_mut()
                .all(|stream| closed_within(stream, progress_timeout + Duration::from_secs(4)));
            s.check(
                all_closed,
                format!(
                    "connections whose frame makes no progress for {} s are closed: all closed \
                     {all_closed}, {} ms after the last byte",
                    progress_timeout.as_secs(),
                    last_progress.elapsed().as_millis()
                ),
            );
            drop(streams);
            s.rss_recovers(&gateway, baseline, "the connections were closed");
            s.healthy("", healthy.finish());
            s.survived(&mut gateway);
        },
    );
}

#[test]
fn row_08_subscribers_that_never_read_are_capped_in_total() {
    let scale = Scale::get();
    let subscribers = 20usize;
    let (config, budget_kib, per_connection_kib, publish_mib) = match scale {
        Scale::Ci => (
            r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 8388608, "MaxTotalPendingBytes": 16777216}"#,
            16 * MIB,
            8 * MIB,
            24usize,
        ),
        Scale::Full => (
            r#"{"MaxTotalPendingBytes": 1073741824}"#,
            1024 * MIB,
            128 * MIB,
            200,
        ),
    };
    run(
        8,
        "row_08_subscribers_that_never_read_are_capped_in_total",
        format!(
            "{subscribers} subscribers that never read, {:.0} MiB each allowed, while {publish_mib} \
             MiB is published to them",
            mib(per_connection_kib)
        ),
        config,
        |s| {
            let mut gateway = s.gateway(config);
            let healthy = healthy_stream(&gateway);
            let mut stuck: Vec<RawClient> = (0..subscribers)
                .map(|_| {
                    let mut client = RawClient::mm2(gateway.address(), SERVICE);
                    client.subscribe(1, "FLOOD");
                    client.flush();
                    client
                })
                .collect();
            let baseline = s.baseline(&gateway);
            let mut publisher = RawClient::mm2(gateway.address(), SERVICE);
            let mut bytes = Vec::new();
            for n in 0..publish_mib * 1024 {
                push_publish(
                    &mut bytes,
                    "FLOOD",
                    "",
                    &Message::new()
                        .add_i32("#", n as i32)
                        .add_blob("p", vec![7u8; 1000]),
                );
            }
            let started = Instant::now();
            let published =
                publisher.try_send_bytes(&bytes).is_ok() && publisher.try_flush(scale.patience());
            s.note(format!(
                "{publish_mib} MiB published in {} ms",
                started.elapsed().as_millis()
            ));
            s.check(
                published,
                "the publisher is not cut off and its flush is answered",
            );
            let cut_off = stuck
                .iter_mut()
                .map(|client| {
                    let (closed, frames) = client.wait_closed(Duration::from_secs(10));
                    closed
                        && frames.iter().rev().find_map(error_code).as_deref()
                            == Some("SLOW_CONSUMER")
                })
                .filter(|cut_off| *cut_off)
                .count();
            s.check(
                cut_off == subscribers,
                format!("every stuck subscriber is cut off with ERROR SLOW_CONSUMER: {cut_off} of {subscribers}"),
            );
            s.check_peak(&gateway, baseline, budget_kib + 32 * MIB);
            if !Scenario::alive(&gateway) {
                s.healthy("", healthy.finish());
                s.survived(&mut gateway);
                return;
            }
            drop(stuck);
            s.rss_recovers(&gateway, baseline, "the subscribers were cut off");
            s.healthy("", healthy.finish());
            s.survived(&mut gateway);
        },
    );
}

#[test]
fn row_09_memory_comes_back_after_each_abuse() {
    let scale = Scale::get();
    let fan_out = scale.pick(20_000u32, 200_000);
    let subscriptions = scale.pick(150_000u32, 1_000_000);
    let connections = scale.pick(3_000usize, 11_000);
    let config = match scale {
        Scale::Ci => r#"{"MaxFrameBytes": 65536, "MaxPendingBytes": 1048576}"#,
        Scale::Full => "{}",
    };
    run(
        9,
        "row_09_memory_comes_back_after_each_abuse",
        format!(
            "on one gateway, one after another: a client with {fan_out} subscriptions to one \
             subject publishes until cut off; a client with {subscriptions} subscriptions \
             disconnects; {connections} connections open and close"
        ),
        config,
        |s| {
            raise_open_file_limit(connections as u64 + 200);
            let mut gateway = s.gateway(config);
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            observer.flush();
            let baseline = s.baseline(&gateway);

            // Fan-out, cut off.
            let mut abuser = RawClient::mm2(gateway.address(), SERVICE);
            let mut bytes = Vec::new();
            for id in 1..=fan_out {
                push_subscribe(&mut bytes, id, "FANOUT");
            }
            abuser.send_bytes(&bytes);
            assert!(
                abuser.try_flush(scale.patience()),
                "subscriptions processed"
            );
            bytes.clear();
            for n in 0..scale.pick(16, 253) {
                push_publish(
                    &mut bytes,
                    "FANOUT",
                    "",
                    &Message::new()
                        .add_i32("#", n)
                        .add_blob("p", vec![1u8; 1024]),
                );
            }
            let _ = abuser.try_send_bytes(&bytes);
            let (closed, _) = abuser.wait_closed(scale.patience());
            if !Scenario::alive(&gateway) {
                let peak = s.peak(&gateway);
                s.note(format!("fan-out: peak {:.0} MiB", mib(peak)));
                s.survived(&mut gateway);
                return;
            }
            assert!(closed, "the fan-out client is cut off");
            drop(abuser);
            let peak = s.peak(&gateway);
            s.note(format!("fan-out: peak {:.0} MiB", mib(peak)));
            s.rss_recovers(&gateway, baseline, "the fan-out client was cut off");

            // Many subscriptions, disconnected.
            gateway.reset_peak_rss();
            let mut abuser = RawClient::mm2(gateway.address(), SERVICE);
            let mut bytes = Vec::new();
            for id in 1..=subscriptions {
                push_subscribe(&mut bytes, id, &format!("M.{id}.x"));
            }
            abuser.send_bytes(&bytes);
            assert!(
                abuser.try_flush(scale.patience()),
                "subscriptions processed"
            );
            let peak = s.peak(&gateway);
            s.note(format!(
                "{subscriptions} subscriptions: peak {:.0} MiB",
                mib(peak)
            ));
            abuser.disconnect();
            drop(abuser);
            wait_until_every(scale.patience(), Duration::from_millis(300), || {
                stat(
                    &observer.try_stats(0xab40, Duration::from_secs(30)),
                    "subscriptions",
                ) <= 2
            });
            s.rss_recovers(&gateway, baseline, "the subscriptions were removed");

            // Many connections, closed.
            gateway.reset_peak_rss();
            let clients = open_idle_clients(gateway.address(), SERVICE, connections);
            wait_until_every(scale.patience(), Duration::from_millis(300), || {
                stat(
                    &observer.try_stats(0xab41, Duration::from_secs(30)),
                    "clients",
                ) > connections as u64
            });
            let peak = s.peak(&gateway);
            s.note(format!(
                "{connections} connections: peak {:.0} MiB",
                mib(peak)
            ));
            drop(clients);
            wait_until_every(scale.patience(), Duration::from_millis(300), || {
                stat(
                    &observer.try_stats(0xab42, Duration::from_secs(30)),
                    "clients",
                ) <= 1
            });
            s.rss_recovers(&gateway, baseline, "the connections closed");
            s.survived(&mut gateway);
        },
    );
}

#[test]
fn row_10_invalid_subscribes_cannot_flood_the_log() {
    let scale = Scale::get();
    let invalid = scale.pick(20_000usize, 200_000);
    let long = 3usize;
    let long_bytes = 10 * 1024;
    run(
        10,
        "row_10_invalid_subscribes_cannot_flood_the_log",
        format!("{invalid} invalid SUBSCRIBEs, the first {long} with {long_bytes}-byte patterns"),
        "",
        |s| {
            let mut gateway = s.gateway("{}");
            let healthy = healthy_stream(&gateway);
            s.baseline(&gateway);
            let log_start = gateway.log_len();
            let mut abuser = RawClient::mm2(gateway.address(), SERVICE);
            let mut writer = abuser.stream().try_clone().expect("clone the socket");
            let total = invalid + long;
            let reader = std::thread::spawn(move || {
                let (mut errors, mut longest_echo) = (0usize, 0usize);
                let started = Instant::now();
                while errors < total && started.elapsed() < Duration::from_secs(120) {
                    match abuser.recv_event(Duration::from_secs(10)) {
                        Received::Frame(frame) if frame.action() == Some(Action::Error) => {
                            errors += 1;
                            longest_echo = longest_echo.max(frame.subject().len());
                        }
                        Received::Frame(_) => {}
                        Received::Timeout | Received::Closed => break,
                    }
                }
                (errors, longest_echo)
            });
            let mut bytes = Vec::new();
            let long_pattern = format!("A..{}", "x".repeat(long_bytes));
            for id in 1..=long {
                push_subscribe(&mut bytes, id as u32, &long_pattern);
            }
            for n in 0..invalid {
                push_subscribe(&mut bytes, (long + n + 1) as u32, &format!("bad..{n}"));
            }
            let started = Instant::now();
            let _ = writer.write_all(&bytes);
            let (errors, longest_echo) = reader.join().expect("the reader");
            let elapsed = started.elapsed();
            let log = gateway.log_since(log_start);
            let longest_line = log.lines().map(str::len).max().unwrap_or(0);
            s.note(format!(
                "{total} invalid SUBSCRIBEs ({} KB) answered in {} ms; {} bytes of log in {} \
                 lines, the longest {longest_line} bytes",
                bytes.len() / 1000,
                elapsed.as_millis(),
                log.len(),
                log.lines().count()
            ));
            s.check(
                log.len() < 200_000,
                format!("the log stays small: {} bytes (under 200 000)", log.len()),
            );
            s.check(
                longest_line <= 1024,
                format!("subjects in log lines are cut: longest line {longest_line} bytes"),
            );
            s.check(
                errors == total,
                format!("every invalid SUBSCRIBE gets its ERROR: {errors} of {total}"),
            );
            s.check(
                longest_echo <= 256 + 32,
                format!("subjects echoed in ERROR headers are cut at 256 bytes plus a marker: longest {longest_echo} bytes"),
            );
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let stats = fresh_stats(&mut observer);
            let suppressed = stats
                .as_ref()
                .and_then(|stats| stats.try_u64("log_lines_suppressed"));
            s.check(
                suppressed.is_some_and(|count| count > 0),
                format!("_MM.STATS counts the suppressed log lines (log_lines_suppressed): {suppressed:?}"),
            );
            s.check(
                stat(&stats, "rejected_frames") >= total as u64,
                format!(
                    "rejected_frames counts them: {}",
                    stat(&stats, "rejected_frames")
                ),
            );
            s.healthy("", healthy.finish());
            s.peak(&gateway);
            s.survived(&mut gateway);
        },
    );
}

/// Frames of `subject_prefix` a receiver got within `patience`, until `sentinel` arrives.
fn numbers_until(
    client: &mut RawClient,
    sentinel: &[u8],
    patience: Duration,
) -> Option<Vec<(String, i32)>> {
    let deadline = Instant::now() + patience;
    let mut seen = Vec::new();
    loop {
        match client.recv_event(deadline.saturating_duration_since(Instant::now())) {
            Received::Frame(frame) if frame.action() == Some(Action::SendMessage) => {
                if frame.subject() == sentinel {
                    return Some(seen);
                }
                let number = frame
                    .message()
                    .ok()
                    .and_then(|m| m.try_i32("#"))
                    .unwrap_or(-1);
                seen.push((
                    String::from_utf8_lossy(frame.subject()).into_owned(),
                    number,
                ));
            }
            Received::Frame(_) => {}
            Received::Timeout | Received::Closed => return None,
        }
    }
}

#[test]
fn row_11_a_first_implementation_gateway_can_mesh_with_ours() {
    run(
        11,
        "row_11_a_first_implementation_gateway_can_mesh_with_ours",
        "a first-implementation (MM/1) gateway dials ours, forwards its clients' SUBSCRIBEs with \
         their own ids (several `id 1`), answers requests"
            .to_owned(),
        "",
        |s| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let config = format!(
                r#"{{"StartupMeshes": [{{"Name": "{SERVICE}", "MeshGateways": ["{}"]}}]}}"#,
                listener.local_addr().expect("address")
            );
            let mut gateway = s.gateway(&config);
            s.baseline(&gateway);
            // Our gateway dials the legacy one: accept, answer with an MM/1 (empty) ACK.
            let (stream, _) = listener.accept().expect("our gateway dials");
            let mut dialled_by_us = RawLink {
                stream,
                decoder: mm_wire::FrameDecoder::new(mm_wire::DEFAULT_MAX_FRAME),
            };
            let hello = dialled_by_us
                .next(Duration::from_secs(10))
                .expect("CONNECT_MESH_PEER");
            assert_eq!(hello.action(), Some(Action::ConnectMeshPeer));
            let mut ack = Vec::new();
            push_frame(&mut ack, &Header::new(Action::Ack), &Message::new());
            dialled_by_us.stream.write_all(&ack).expect("ACK");

            // The legacy gateway dials ours (empty CONNECT_MESH_PEER body) and forwards its
            // clients' subscriptions with their own ids.
            let mut legacy =
                RawClient::mesh_peer(gateway.address(), SERVICE, "legacy-gw", &Message::new());
            for (id, pattern) in [
                (1, "ORDERS.>"),
                (2, "PRICES.*"),
                (1, "PRICES.*"),
                (1, "SVC.REQUEST"),
                (3, "ORDERS.>"),
                (1, "NEWS.>"),
            ] {
                legacy.subscribe(id, pattern);
            }
            let mut requester = RawClient::mm2(gateway.address(), SERVICE);
            // The last `id 1` pattern becomes live (the link's frames are processed in order).
            let live = wait_until_every(Duration::from_secs(3), Duration::from_millis(100), || {
                requester.publish("NEWS.probe", "", &Message::new().add_i32("#", 0));
                matches!(legacy.recv_event(Duration::from_millis(100)), Received::Frame(frame) if frame.subject() == b"NEWS.probe")
            });
            s.check(
                live,
                "a message matching the peer's last `id 1` pattern (NEWS.>) reaches it",
            );
            requester.publish("ORDERS.new", "", &Message::new().add_i32("#", 1));
            requester.publish("PRICES.eur", "", &Message::new().add_i32("#", 2));
            requester.publish("UNRELATED", "", &Message::new().add_i32("#", 3));
            requester.publish("ORDERS.end", "", &Message::new());
            let received = numbers_until(&mut legacy, b"ORDERS.end", Duration::from_secs(10));
            let received: Option<Vec<i32>> = received.map(|seen| {
                seen.into_iter()
                    .filter(|(subject, _)| subject != "NEWS.probe")
                    .map(|(_, number)| number)
                    .collect()
            });
            s.check(
                received.as_deref() == Some(&[1, 2][..]),
                format!(
                    "messages matching any of the peer's patterns reach it once each (ORDERS.>, \
                     PRICES.* held twice): {received:?}"
                ),
            );

            // A request across the mixed mesh: our client → our gateway → the legacy gateway.
            requester.subscribe(9, "_INBOX.mixed.*");
            requester.flush();
            let interest = {
                let deadline = Instant::now() + Duration::from_secs(10);
                let mut found = false;
                while let Some(frame) =
                    dialled_by_us.next(deadline.saturating_duration_since(Instant::now()))
                {
                    if frame.action() == Some(Action::Subscribe)
                        && frame.subject() == b"_INBOX.mixed.*"
                    {
                        found = true;
                        break;
                    }
                }
                found
            };
            s.check(
                interest,
                "our gateway tells the legacy one about the requester's inbox",
            );
            requester.publish(
                "SVC.REQUEST",
                "_INBOX.mixed.1",
                &Message::new().add_i32("q", 7),
            );
            let request = loop {
                match legacy.recv_event(Duration::from_secs(5)) {
                    Received::Frame(frame) if frame.subject() == b"SVC.REQUEST" => {
                        break Some(frame);
                    }
                    Received::Frame(_) => {}
                    _ => break None,
                }
            };
            if let Some(request) = &request {
                let mut reply = Vec::new();
                push_publish(
                    &mut reply,
                    &String::from_utf8_lossy(request.reply_subject()),
                    "",
                    &Message::new().add_i32("a", 7),
                );
                dialled_by_us.stream.write_all(&reply).expect("reply");
            }
            let answer = loop {
                match requester.recv_event(Duration::from_secs(5)) {
                    Received::Frame(frame)
                        if frame.action() == Some(Action::SendMessage)
                            && frame.subject() == b"_INBOX.mixed.1" =>
                    {
                        break Some("reply".to_owned());
                    }
                    Received::Frame(frame) if frame.action() == Some(Action::NoResponders) => {
                        break Some("NO_RESPONDERS".to_owned());
                    }
                    Received::Frame(_) => {}
                    _ => break None,
                }
            };
            s.check(
                answer.as_deref() == Some("reply"),
                format!("a request across the mixed mesh is answered: {answer:?}"),
            );
            let mut observer = RawClient::mm2(gateway.address(), SERVICE);
            let stats = fresh_stats(&mut observer);
            s.check(
                stat(&stats, "rejected_frames") == 0
                    && !gateway.log().contains("DUPLICATE_SUBSCRIPTION_ID"),
                format!(
                    "a repeated id from an MM/1 peer is not a duplicate: rejected_frames {}",
                    stat(&stats, "rejected_frames")
                ),
            );
            // When its link drops, its interest goes.
            drop(legacy);
            let gone = wait_until(Duration::from_secs(10), || {
                requester.publish("SVC.REQUEST", "_INBOX.mixed.2", &Message::new());
                matches!(requester.recv_event(Duration::from_millis(200)), Received::Frame(frame) if frame.action() == Some(Action::NoResponders))
            });
            s.check(
                gone,
                "when the legacy gateway's link drops, its interest is forgotten (NO_RESPONDERS)",
            );
            s.survived(&mut gateway);
            s.peak(&gateway);
        },
    );
}
