//! Throughput workloads: N publishers, M subscribers, one subject.
//!
//! Throughput is **messages received by every subscriber, from the first send to the last
//! receipt**; a run in which any subscriber misses a message fails. With no subscribers it is
//! messages published, from the first send until the broker has processed the last (a flush).

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::counter::wait_for_all;
use crate::driver::{Publisher, Subscriber};
use crate::progress::Progress;
use crate::workload::{Amount, Payload, System};

/// Subject every throughput workload publishes on.
pub const SUBJECT: &str = "bench.x";

/// One throughput run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputSpec {
    /// The broker.
    pub system: System,
    /// Where publishers connect (the first address) and subscribers connect (round-robin over
    /// the others, or the first when there is only one).
    pub addresses: Vec<String>,
    /// Service (Messaging Mesh only).
    pub service: String,
    /// Publishers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// The message.
    pub payload: Payload,
    /// How much each publisher sends.
    pub amount: Amount,
    /// Show progress on stderr.
    #[serde(skip)]
    pub progress: bool,
}

/// What a throughput run measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ThroughputResult {
    /// The broker.
    pub system: System,
    /// Payload label.
    pub payload: String,
    /// Publishers, subscribers.
    pub publishers: usize,
    /// Subscribers.
    pub subscribers: usize,
    /// Messages published in all.
    pub published: u64,
    /// Messages received in all (published × subscribers).
    pub received: u64,
    /// Seconds from the first send to the last receipt (or to the publishers' flush).
    pub seconds: f64,
    /// Messages per second received by each subscriber (published per second without
    /// subscribers).
    pub messages_per_second: f64,
    /// Megabytes (10^6) of payload per second per subscriber.
    pub payload_megabytes_per_second: f64,
    /// Messages per second published.
    pub publish_rate: f64,
    /// Publisher frames per write syscall (Messaging Mesh client only).
    pub frames_per_write: Option<f64>,
}

/// Runs one throughput workload.
pub fn run(spec: &ThroughputSpec) -> Result<ThroughputResult> {
    let publish_address = spec.addresses.first().context("no address")?;
    let subscriber_addresses: Vec<&String> = if spec.addresses.len() > 1 {
        spec.addresses[1..].iter().collect()
    } else {
        vec![publish_address]
    };
    let mesh = spec.addresses.len() > 1;
    let subscribers: Vec<Subscriber> = (0..spec.subscribers)
        .map(|index| {
            let address = subscriber_addresses[index % subscriber_addresses.len()];
            Subscriber::connect(spec.system, address, &spec.service, SUBJECT, mesh)
        })
        .collect::<Result<_>>()?;
    let counters: Vec<_> = subscribers.iter().map(|s| s.counter().clone()).collect();

    let mut publishers: Vec<Publisher> = (0..spec.publishers)
        .map(|_| Publisher::connect(spec.system, publish_address, &spec.service, spec.payload))
        .collect::<Result<_>>()?;

    let barrier = Arc::new(Barrier::new(spec.publishers + 1));
    let progress = Progress::new(spec.progress, spec.amount, spec.publishers);
    let handles: Vec<_> = publishers
        .drain(..)
        .map(|mut publisher| {
            let barrier = barrier.clone();
            let amount = spec.amount;
            let sent = progress.sent_counter();
            std::thread::spawn(move || -> Result<(Publisher, u64)> {
                barrier.wait();
                let started = Instant::now();
                let mut count = 0u64;
                loop {
                    match amount {
                        Amount::Count(total) if count >= total => break,
                        Amount::Duration(duration)
                            if count.is_multiple_of(1024) && started.elapsed() >= duration =>
                        {
                            break;
                        }
                        _ => {}
                    }
                    publisher.publish(SUBJECT)?;
                    count += 1;
                    if count.is_multiple_of(4096) {
                        sent.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                publisher.finish(Duration::from_secs(120))?;
                Ok((publisher, count))
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut published = 0;
    let mut finished_publishers = Vec::new();
    for handle in handles {
        let (publisher, count) = handle
            .join()
            .map_err(|_| anyhow::anyhow!("publisher thread panicked"))??;
        published += count;
        finished_publishers.push(publisher);
    }
    let publish_done = Instant::now();
    let end = if counters.is_empty() {
        publish_done
    } else {
        // Generous: 30 s plus 1 s per million messages.
        let timeout = Duration::from_secs(30 + published / 1_000_000);
        wait_for_all(&counters, published, timeout)?
    };
    progress.finish();
    let dropped: u64 = subscribers.iter().map(Subscriber::dropped).sum();
    anyhow::ensure!(dropped == 0, "subscribers dropped {dropped} messages");
    let seconds = end.duration_since(started).as_secs_f64();
    let publish_seconds = publish_done.duration_since(started).as_secs_f64();
    let messages_per_second = published as f64 / seconds;
    let payload_bytes = match spec.payload {
        Payload::Blob(size) => size,
        Payload::Int32 => 4,
    };
    let frames_per_write = finished_publishers
        .iter()
        .filter_map(Publisher::write_counts)
        .map(|(frames, writes)| (frames, writes.max(1)))
        .reduce(|a, b| (a.0 + b.0, a.1 + b.1))
        .map(|(frames, writes)| frames as f64 / writes as f64);
    Ok(ThroughputResult {
        system: spec.system,
        payload: spec.payload.label(),
        publishers: spec.publishers,
        subscribers: spec.subscribers,
        published,
        received: published * spec.subscribers as u64,
        seconds,
        messages_per_second,
        payload_megabytes_per_second: messages_per_second * payload_bytes as f64 / 1e6,
        publish_rate: published as f64 / publish_seconds,
        frames_per_write,
    })
}
