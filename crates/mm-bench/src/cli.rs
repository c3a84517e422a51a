//! The `mm bench` command line: subcommands and options, and the summary each prints (or one JSON
//! object with `--json`).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::compare;
use crate::driver::Subscriber;
use crate::latency;
use crate::throughput::{self, ThroughputResult, ThroughputSpec};
use crate::workload::{Amount, Payload, System};

/// `mm bench` and its subcommands.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mm bench pubsub --size 16 --count 5000000
  mm bench fanout --subscribers 4 --size 128
  mm bench pubsub --gateway 127.0.0.1:5050 --gateway 127.0.0.1:5051   (across a mesh)
  mm bench request --count 50000 --rate 5000
  mm bench pubsub --system nats --gateway 127.0.0.1:4222
  mm bench compare                                                   (needs nats-server)")]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Publish as fast as possible, no subscribers; rate until the broker processed everything.
    Pub(Common),
    /// Subscribe and count until --count messages arrived (start `mm bench pub` elsewhere).
    Sub(Common),
    /// N publishers and M subscribers in this process (default 1 → 1).
    Pubsub(Common),
    /// One publisher to several subscribers (default 4).
    Fanout(Common),
    /// Synchronous request/reply round trips with a latency histogram.
    Request(RequestArgs),
    /// Side-by-side comparison with NATS: ratio table, JSON and SVG chart.
    Compare(compare::CompareArgs),
}

#[derive(Debug, clap::Args)]
struct Target {
    /// Gateway (or NATS server) address; repeat to spread clients over a mesh.
    #[arg(
        long = "gateway",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:5050"
    )]
    gateways: Vec<String>,
    /// Service (Messaging Mesh).
    #[arg(long, default_value = "BENCH")]
    service: String,
    /// Which broker to load.
    #[arg(long, value_enum, default_value = "mm")]
    system: System,
    /// Payload bytes (one BLOB field `p`).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Send the classic message instead: one int32 field (34-byte frames).
    #[arg(long)]
    int32: bool,
    /// Print one JSON object instead of the summary table.
    #[arg(long)]
    json: bool,
}

impl Target {
    fn payload(&self) -> Payload {
        if self.int32 {
            Payload::Int32
        } else {
            Payload::Blob(self.size)
        }
    }
}

#[derive(Debug, clap::Args)]
struct Common {
    #[command(flatten)]
    target: Target,
    /// Publishers.
    #[arg(long, short = 'p', default_value_t = 1)]
    publishers: usize,
    /// Subscribers (fanout: default 4).
    #[arg(long, short = 's')]
    subscribers: Option<usize>,
    /// Messages per publisher.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    count: u64,
    /// Publish for this long instead of --count (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, clap::Args)]
struct RequestArgs {
    #[command(flatten)]
    target: Target,
    /// Round trips to measure.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    count: u64,
    /// Fixed rate in requests per second (latency measured from each request's due time).
    #[arg(long)]
    rate: Option<f64>,
    /// How long the library's blocking request spins for its reply before sleeping, in
    /// microseconds (`--system mm` only; 0 never spins; default: the library's, 200).
    #[arg(long, value_name = "MICROSECONDS")]
    request_spin_us: Option<u64>,
}

/// Runs `mm bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.command {
        BenchCommand::Pub(common) => throughput_command(common, 0),
        BenchCommand::Pubsub(common) => throughput_command(common, 1),
        BenchCommand::Fanout(common) => throughput_command(common, 4),
        BenchCommand::Sub(common) => sub_command(common),
        BenchCommand::Request(args) => request_command(args),
        BenchCommand::Compare(args) => compare::run(&args),
    }
}

fn throughput_command(common: Common, default_subscribers: usize) -> Result<()> {
    let subscribers = common.subscribers.unwrap_or(default_subscribers);
    if common.publishers == 0 {
        bail!("--publishers must be at least 1");
    }
    let spec = ThroughputSpec {
        system: common.target.system,
        addresses: common.target.gateways.clone(),
        service: common.target.service.clone(),
        publishers: common.publishers,
        subscribers,
        payload: common.target.payload(),
        amount: match common.duration {
            Some(duration) => Amount::Duration(duration),
            None => Amount::Count(common.count),
        },
        progress: !common.no_progress && !common.target.json && std::io::stderr().is_terminal(),
    };
    let result = throughput::run(&spec)?;
    if common.target.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print_throughput(&result);
    }
    Ok(())
}

fn print_throughput(result: &ThroughputResult) {
    println!("system        {}", result.system.name());
    println!("payload       {}", result.payload);
    println!(
        "clients       {} publisher(s) → {} subscriber(s)",
        result.publishers, result.subscribers
    );
    println!("published     {}", result.published);
    println!("received      {}", result.received);
    println!("elapsed       {:.3} s", result.seconds);
    println!(
        "throughput    {:.0} msg/s per subscriber ({:.1} MB/s of payload)",
        result.messages_per_second, result.payload_megabytes_per_second
    );
    println!("publish rate  {:.0} msg/s", result.publish_rate);
    if let Some(frames) = result.frames_per_write {
        println!("coalescing    {frames:.0} frames per write syscall (publisher)");
    }
}

fn sub_command(common: Common) -> Result<()> {
    let target = &common.target;
    let address = target
        .gateways
        .first()
        .map(String::as_str)
        .unwrap_or("127.0.0.1:5050");
    let subscriber = Subscriber::connect(
        target.system,
        address,
        &target.service,
        throughput::SUBJECT,
        false,
    )?;
    let counter = subscriber.counter().clone();
    eprintln!(
        "waiting for {} messages on {}",
        common.count,
        throughput::SUBJECT
    );
    let mut first = None;
    loop {
        let received = counter.received();
        if received > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if received >= common.count {
            break;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let seconds = first.map_or(0.0, |first| first.elapsed().as_secs_f64());
    let rate = common.count as f64 / seconds.max(1e-9);
    if target.json {
        println!(
            "{}",
            serde_json::json!({"system": target.system, "received": common.count, "seconds": seconds, "messages_per_second": rate})
        );
    } else {
        println!(
            "received {} messages in {seconds:.3} s: {rate:.0} msg/s",
            common.count
        );
    }
    Ok(())
}

fn request_command(args: RequestArgs) -> Result<()> {
    let result = latency::run(&latency::LatencySpec {
        system: args.target.system,
        addresses: args.target.gateways.clone(),
        service: args.target.service.clone(),
        payload: args.target.payload(),
        count: args.count,
        rate: args.rate,
        request_spin: args.request_spin_us.map(Duration::from_micros),
    })?;
    if args.target.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!("system        {}", result.system.name());
        println!("payload       {}", result.payload);
        match result.rate {
            Some(rate) => println!("mode          fixed rate, {rate:.0} requests/s"),
            None => println!("mode          back to back"),
        }
        println!(
            "round trips   {} ({:.0}/s)",
            result.count, result.round_trips_per_second
        );
        println!(
            "latency µs    p50 {:.1}   p90 {:.1}   p99 {:.1}   p99.9 {:.1}   max {:.1}   mean {:.1}",
            result.p50_us,
            result.p90_us,
            result.p99_us,
            result.p999_us,
            result.max_us,
            result.mean_us
        );
    }
    Ok(())
}

/// Parses `10s`, `500ms`, `2m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |index| text.split_at(index));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration `{text}`"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => {
            return Err(format!(
                "invalid duration unit in `{text}` (use ms, s or m)"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
