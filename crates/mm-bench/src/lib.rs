//! `mm bench`: load generation and measurement against Messaging Mesh — and, for comparison,
//! NATS — with the same workloads and the same method.
//!
//! * `pub`, `sub`, `pubsub`, `fanout`: throughput. A payload of N bytes is one BLOB field `p` of N
//!   bytes on subject `bench.x` (NATS: `PUB bench.x N`); `--int32` sends the classic one-int32-field
//!   message instead. Throughput is messages received by every subscriber, from the first send to
//!   the last receipt; a run in which any message is missing fails.
//! * `request`: synchronous round trips into an HDR histogram (p50/p90/p99/p99.9/max), back to back
//!   or at a fixed rate (`--rate`, latency measured from each request's due time so that coordinated
//!   omission cannot hide stalls).
//! * `compare`: the side-by-side harness — both brokers on loopback, every workload through each,
//!   a ratio table, JSON, and an SVG chart.
//!
//! Several `--gateway` options target a mesh: publishers (and requesters) use the first, subscribers
//! (and responders) the others.

//! The `mm` tool's `bench` subcommand is a thin wrapper around [`BenchArgs`] and [`run`]. This
//! crate is not published: it is the measuring instrument, not part of the product. Brokers are
//! started through the test kit's process handling (`mm_testkit::GatewayLauncher`,
//! `MeshProcesses`, `ChildProcess`), so tests and benchmarks start gateways the same way.

/// This crate's README: its code blocks are compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod broker;
mod chart;
mod cli;
mod compare;
mod counter;
mod driver;
mod latency;
mod mm_raw;
mod nats;
mod progress;
mod read_buffer;
mod scale;
mod throughput;
mod workload;

pub use cli::{BenchArgs, run};
