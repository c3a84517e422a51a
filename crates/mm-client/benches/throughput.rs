#![allow(missing_docs)] // criterion_group! generates undocumented items.

//! Publish and pub/sub throughput against a real gateway process, in bytes of payload per
//! second.
//!
//! Needs the gateway binary of the same profile: `cargo build --release --bins` first (or set
//! `MM_GATEWAY_BIN`), then `cargo bench -p messaging-mesh --bench throughput`.
//!
//! * `publish/<size>`: one connection publishes; nobody subscribes (the gateway drops them). The
//!   time includes a flush, so every message reached the gateway.
//! * `pubsub/<size>`: one connection publishes, another one receives every message in a callback.
//!   The publisher stays at most [`WINDOW`] messages ahead of the callback (below the pending
//!   limit, so nothing is dropped): this measures the sustained end-to-end rate.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use messaging_mesh::{Connection, ConnectionParams, Message};
use mm_testkit::GatewayProcess;

const SIZES: &[(usize, &str)] = &[(32, "32B"), (1024, "1KiB"), (8192, "8KiB")];

/// How far the pub/sub publisher may run ahead of the subscriber's callback, in messages.
const WINDOW: u64 = 20_000;

/// Longest wait for the subscriber before the benchmark fails instead of hanging.
const STALL_LIMIT: Duration = Duration::from_secs(30);

fn connect(gateway: &GatewayProcess) -> Connection {
    Connection::connect(ConnectionParams::new(gateway.address_string(), "BENCH"))
        .expect("connect to the gateway")
}

fn payload(size: usize) -> Message {
    Message::new().add_blob("data", vec![0x5au8; size])
}

fn publish(c: &mut Criterion) {
    let gateway = GatewayProcess::start(&[]);
    let publisher = connect(&gateway);
    let mut group = c.benchmark_group("publish");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for &(size, name) in SIZES {
        let message = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iterations| {
                let started = Instant::now();
                for _ in 0..iterations {
                    publisher.send("BENCH.PUB", &message).unwrap();
                }
                publisher.flush(Duration::from_secs(60)).unwrap();
                started.elapsed()
            });
        });
    }
    group.finish();
}

fn pubsub(c: &mut Criterion) {
    let gateway = GatewayProcess::start(&[]);
    let publisher = connect(&gateway);
    let subscriber = connect(&gateway);
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let subscription = subscriber
        .subscribe("BENCH.SUB", move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    subscriber.flush(Duration::from_secs(10)).unwrap();
    let mut group = c.benchmark_group("pubsub");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    for &(size, name) in SIZES {
        let message = payload(size);
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_custom(|iterations| {
                let base = received.load(Ordering::Relaxed);
                let wait_until = |count: u64| {
                    let stalled = Instant::now() + STALL_LIMIT;
                    while received.load(Ordering::Relaxed) < base + count {
                        assert_eq!(subscription.dropped(), 0, "the subscriber dropped messages");
                        assert!(Instant::now() < stalled, "the subscriber stalled");
                        std::thread::yield_now();
                    }
                };
                let started = Instant::now();
                for sent in 1..=iterations {
                    publisher.send("BENCH.SUB", &message).unwrap();
                    if sent % 1000 == 0 && sent > WINDOW {
                        wait_until(sent - WINDOW);
                    }
                }
                wait_until(iterations);
                started.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, publish, pubsub);
criterion_main!(benches);
