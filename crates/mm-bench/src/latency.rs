//! Request/reply latency: synchronous round trips recorded in an HDR histogram.
//!
//! In fixed-rate mode, request *i* is due at `start + i / rate` and its latency is measured from
//! that due time, not from when it was actually sent: if one reply is slow, the requests queued
//! behind it carry the wait too. This avoids coordinated omission — a slow broker cannot hide its
//! stalls by slowing the load generator down.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

use crate::driver::{Requester, Responder};
use crate::workload::{Payload, System};

/// Subject requests go to.
pub const REQUEST_SUBJECT: &str = "bench.req";

/// One latency run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencySpec {
    /// The broker.
    pub system: System,
    /// Requester address (first) and responder address (last; the same with one address).
    pub addresses: Vec<String>,
    /// Service (Messaging Mesh only).
    pub service: String,
    /// Request and reply payload.
    pub payload: Payload,
    /// Round trips to measure (after a warm-up of 10 %).
    pub count: u64,
    /// Requests per second in fixed-rate mode; `None` = back to back.
    pub rate: Option<f64>,
    /// The library requester's spin window; `None` = the library's default.
    pub request_spin: Option<Duration>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LatencyResult {
    /// The broker.
    pub system: System,
    /// Payload label.
    pub payload: String,
    /// Round trips measured.
    pub count: u64,
    /// Fixed rate, if any.
    pub rate: Option<f64>,
    /// Round trips per second achieved.
    pub round_trips_per_second: f64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// Largest.
    pub max_us: f64,
    /// Mean.
    pub mean_us: f64,
}

/// Runs round trips and records their latency.
pub fn run(spec: &LatencySpec) -> Result<LatencyResult> {
    let requester_address = spec.addresses.first().context("no address")?;
    let responder_address = spec.addresses.last().context("no address")?;
    let _responder = Responder::start(
        spec.system,
        responder_address,
        &spec.service,
        REQUEST_SUBJECT,
        spec.payload,
    )?;
    let mut requester = Requester::connect(
        spec.system,
        requester_address,
        &spec.service,
        spec.payload,
        spec.request_spin,
    )?;
    let timeout = Duration::from_secs(10);
    // Warm-up: connections, caches, the inbox subscription's propagation.
    for _ in 0..(spec.count / 10).max(100) {
        requester.request(REQUEST_SUBJECT, timeout)?;
    }
    let mut histogram =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram bounds")?;
    let interval = spec.rate.map(|rate| Duration::from_secs_f64(1.0 / rate));
    let started = Instant::now();
    for index in 0..spec.count {
        let due = match interval {
            Some(interval) => {
                let due = started + interval.mul_f64(index as f64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                due
            }
            None => Instant::now(),
        };
        requester.request(REQUEST_SUBJECT, timeout)?;
        let micros = due.elapsed().as_micros().max(1) as u64;
        histogram.saturating_record(micros);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let percentile = |q: f64| histogram.value_at_quantile(q) as f64;
    Ok(LatencyResult {
        system: spec.system,
        payload: spec.payload.label(),
        count: spec.count,
        rate: spec.rate,
        round_trips_per_second: spec.count as f64 / elapsed,
        p50_us: percentile(0.5),
        p90_us: percentile(0.9),
        p99_us: percentile(0.99),
        p999_us: percentile(0.999),
        max_us: histogram.max() as f64,
        mean_us: histogram.mean(),
    })
}
