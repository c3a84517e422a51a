//! `mm bench`: throughput and latency, also side by side with NATS. The workloads, load generators
//! and comparison harness are the `mm-bench` crate; this is only its place among the subcommands.

use std::process::ExitCode;

/// Options of `mm bench` (its subcommands).
pub type Args = mm_bench::BenchArgs;

/// Runs `mm bench`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    mm_bench::run(args).map(|()| ExitCode::SUCCESS)
}
