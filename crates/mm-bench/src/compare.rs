//! The side-by-side comparison with NATS (`mm bench compare`): starts both brokers on loopback,
//! runs the same workloads through each with the same method, alternating which goes first, and
//! writes a table of Messaging Mesh / NATS ratios, the raw results as JSON, and an SVG chart of
//! throughput against payload size.
//!
//! Absolute figures drift on a shared machine; ratios measured back to back in the same run are
//! what the targets are about. Each throughput figure is the median of `--repeat` runs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::broker::{self, Broker};
use crate::chart::{self, Series};
use crate::latency::{self, LatencyResult, LatencySpec};
use crate::scale;
use crate::throughput::{self, ThroughputResult, ThroughputSpec};
use crate::workload::{Amount, Payload, System};

/// Options of `mm bench compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The `mm-gateway` binary (default: next to this `mm`).
    #[arg(long, value_name = "PATH")]
    pub gateway_bin: Option<PathBuf>,
    /// The `nats-server` binary.
    #[arg(long, value_name = "PATH", default_value = "nats-server")]
    pub nats_bin: PathBuf,
    /// Directory for results.json, results.md and throughput.svg.
    #[arg(long, value_name = "DIR", default_value = "bench/results")]
    pub out: PathBuf,
    /// Runs per throughput figure (the median is kept).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Smaller message counts (a quick look, not for the record).
    #[arg(long)]
    pub quick: bool,
    /// Skip the scale figures (10 000 connections, 1 M subscriptions, 100 000 subjects).
    #[arg(long)]
    pub skip_scale: bool,
}

/// One throughput workload of the comparison.
struct Workload {
    label: &'static str,
    publishers: usize,
    subscribers: usize,
    payload: Payload,
    /// Messages per publisher.
    messages: u64,
    /// Target Messaging Mesh / NATS throughput ratio.
    target: Option<f64>,
}

/// A target ratio.
#[derive(Debug, Clone, Copy, serde::Serialize)]
enum Target {
    /// Messaging Mesh / NATS must be at least this (throughput).
    AtLeast(f64),
    /// Messaging Mesh / NATS must be at most this (latency).
    AtMost(f64),
}

impl Target {
    fn met(self, ratio: f64) -> bool {
        match self {
            Target::AtLeast(target) => ratio >= target,
            Target::AtMost(target) => ratio <= target,
        }
    }

    fn label(self) -> String {
        match self {
            Target::AtLeast(target) => format!("≥ {target}"),
            Target::AtMost(target) => format!("≤ {target}"),
        }
    }
}

/// One row of the ratio table: figures for MM with the raw client, MM with the client library,
/// and NATS; ratios of the first two to NATS.
#[derive(Debug, serde::Serialize)]
struct Row {
    workload: String,
    figures: [String; 3],
    ratios: [f64; 2],
    target: Option<Target>,
}

impl Row {
    fn new(workload: &str, figures: [String; 3], ratios: [f64; 2], target: Option<Target>) -> Self {
        Row {
            workload: workload.to_owned(),
            figures,
            ratios,
            target,
        }
    }
}

/// Everything a compare run measured.
#[derive(Debug, Default, serde::Serialize)]
struct Report {
    machine: String,
    throughput: Vec<ThroughputResult>,
    latency: Vec<LatencyResult>,
    rows: Vec<Row>,
    scale: Vec<serde_json::Value>,
    mesh: Option<serde_json::Value>,
    rss_under_load: Option<serde_json::Value>,
    /// (payload bytes, MB/s for MM raw, MM library, NATS).
    sweep: Vec<(usize, f64, f64, f64)>,
}

/// Runs the comparison.
pub fn run(args: &CompareArgs) -> Result<()> {
    let gateway_bin = match &args.gateway_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary directory")?
            .join("mm-gateway"),
    };
    let nats_bin = which(&args.nats_bin)?;
    std::fs::create_dir_all(&args.out)?;
    let scale_factor = if args.quick { 0.2 } else { 1.0 };
    let count = |full: u64| ((full as f64 * scale_factor) as u64).max(1000);
    let mut report = Report {
        machine: describe_machine(),
        ..Report::default()
    };
    eprintln!("machine: {}", report.machine);

    let gateway = Broker::gateway(&gateway_bin, &[])?;
    let nats = Broker::nats(&nats_bin)?;
    let address = |system: System| match system {
        System::Mm | System::MmRaw => gateway.address.clone(),
        System::Nats => nats.address.clone(),
    };

    let workload = |label, publishers, subscribers, payload, messages, target| Workload {
        label,
        publishers,
        subscribers,
        payload,
        messages,
        target,
    };
    let workloads = [
        workload(
            "publish only, 16 B",
            1,
            0,
            Payload::Blob(16),
            count(5_000_000),
            None,
        ),
        workload(
            "1→1, 16 B",
            1,
            1,
            Payload::Blob(16),
            count(5_000_000),
            Some(1.5),
        ),
        workload(
            "1→1, 128 B",
            1,
            1,
            Payload::Blob(128),
            count(3_000_000),
            None,
        ),
        workload(
            "1→1, 1 KiB",
            1,
            1,
            Payload::Blob(1024),
            count(1_000_000),
            None,
        ),
        workload(
            "1→1, 64 KiB",
            1,
            1,
            Payload::Blob(65536),
            count(30_000),
            Some(2.0),
        ),
        workload(
            "1→4 fan-out, 128 B",
            1,
            4,
            Payload::Blob(128),
            count(1_000_000),
            Some(1.2),
        ),
        workload(
            "classic: 10 M × int32 (34-byte frames), 1→1",
            1,
            1,
            Payload::Int32,
            count(10_000_000),
            None,
        ),
    ];
    let systems = [System::MmRaw, System::Mm, System::Nats];
    for Workload {
        label,
        publishers,
        subscribers,
        payload,
        messages,
        target,
    } in workloads
    {
        let mut results: [Vec<ThroughputResult>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for repetition in 0..args.repeat {
            // Rotate the order so that no system always runs first (or last).
            for offset in 0..systems.len() {
                let index = (repetition + offset) % systems.len();
                let system = systems[index];
                eprintln!("{label}: {} (run {})", system.name(), repetition + 1);
                let result = throughput::run(&ThroughputSpec {
                    system,
                    addresses: vec![address(system)],
                    service: "BENCH".into(),
                    publishers,
                    subscribers,
                    payload,
                    amount: Amount::Count(messages),
                    progress: false,
                })
                .with_context(|| format!("{label} on {}", system.name()))?;
                results[index].push(result);
            }
        }
        let [raw, library, nats_result] = results.map(|mut runs| median_by_rate(&mut runs));
        report.rows.push(Row::new(
            label,
            [
                rate_label(&raw),
                rate_label(&library),
                rate_label(&nats_result),
            ],
            [
                raw.messages_per_second / nats_result.messages_per_second,
                library.messages_per_second / nats_result.messages_per_second,
            ],
            target.map(Target::AtLeast),
        ));
        report.throughput.extend([raw, library, nats_result]);
    }

    // Request/reply: back to back, then at a fixed rate; the median p50 of the repetitions.
    for rate in [None, Some(5_000.0)] {
        let mut runs: [Vec<LatencyResult>; 3] = [Vec::new(), Vec::new(), Vec::new()];
        for repetition in 0..args.repeat {
            for offset in 0..systems.len() {
                let index = (repetition + offset) % systems.len();
                let system = systems[index];
                eprintln!(
                    "request/reply {}: {} (run {})",
                    rate.map_or("back to back".into(), |r| format!("{r}/s")),
                    system.name(),
                    repetition + 1
                );
                runs[index].push(latency::run(&LatencySpec {
                    system,
                    addresses: vec![address(system)],
                    service: "BENCH".into(),
                    payload: Payload::Blob(16),
                    count: count(50_000),
                    rate,
                    request_spin: None,
                })?);
            }
        }
        let [raw, library, nats_result] = runs.map(|mut runs| {
            runs.sort_by(|a, b| a.p50_us.total_cmp(&b.p50_us));
            runs[runs.len() / 2].clone()
        });
        let label = match rate {
            None => "request/reply p50 round trip, 16 B".to_owned(),
            Some(rate) => format!("request/reply p50 at {rate:.0}/s, 16 B"),
        };
        let latency_label =
            |result: &LatencyResult| format!("{:.1} µs (p99 {:.1})", result.p50_us, result.p99_us);
        report.rows.push(Row::new(
            &label,
            [
                latency_label(&raw),
                latency_label(&library),
                latency_label(&nats_result),
            ],
            [
                raw.p50_us / nats_result.p50_us,
                library.p50_us / nats_result.p50_us,
            ],
            rate.is_none().then_some(Target::AtMost(0.8)),
        ));
        report.latency.extend([raw, library, nats_result]);
    }

    // Payload sweep for the chart: about 100 MB of payload per point.
    for size in [16usize, 64, 256, 1024, 4096, 16384, 65536] {
        let messages = count((100_000_000 / size as u64).clamp(20_000, 3_000_000));
        let mut figures = [0.0f64; 3];
        for (index, system) in systems.into_iter().enumerate() {
            eprintln!("sweep {size} B: {}", system.name());
            let result = throughput::run(&ThroughputSpec {
                system,
                addresses: vec![address(system)],
                service: "BENCH".into(),
                publishers: 1,
                subscribers: 1,
                payload: Payload::Blob(size),
                amount: Amount::Count(messages),
                progress: false,
            })?;
            figures[index] = result.payload_megabytes_per_second;
        }
        report
            .sweep
            .push((size, figures[0], figures[1], figures[2]));
    }
    let svg = chart::render(
        "1→1 throughput by payload size (same machine, same run)",
        &[
            Series {
                name: "Messaging Mesh (raw client)",
                colour: "#1f77b4",
                points: report
                    .sweep
                    .iter()
                    .map(|&(s, raw, _, _)| (s as f64, raw))
                    .collect(),
            },
            Series {
                name: "Messaging Mesh (Rust client library)",
                colour: "#2ca02c",
                points: report
                    .sweep
                    .iter()
                    .map(|&(s, _, library, _)| (s as f64, library))
                    .collect(),
            },
            Series {
                name: "NATS (raw client)",
                colour: "#d62728",
                points: report
                    .sweep
                    .iter()
                    .map(|&(s, _, _, nats)| (s as f64, nats))
                    .collect(),
            },
        ],
    );
    std::fs::write(args.out.join("throughput.svg"), svg)?;

    drop(gateway);
    drop(nats);

    // Gateway RSS under sustained load, on a fresh gateway (the overload runs above leave the
    // allocator holding memory it has not handed back yet).
    let fresh = Broker::gateway(&gateway_bin, &[])?;
    report.rss_under_load = Some(rss_under_load(&fresh, if args.quick { 6 } else { 20 })?);
    drop(fresh);

    // Scale figures, on fresh brokers.
    if !args.skip_scale {
        let gateway = Broker::gateway(&gateway_bin, &[])?;
        let nats = Broker::nats(&nats_bin)?;
        for system in [System::MmRaw, System::Nats] {
            let broker = match system {
                System::Mm | System::MmRaw => &gateway,
                System::Nats => &nats,
            };
            eprintln!("scale: idle connections, {}", system.name());
            let idle =
                scale::idle_connections(system, &broker.address, "IDLE", broker.pid(), 10_000)?;
            report.scale.push(serde_json::to_value(idle)?);
        }
        for system in [System::MmRaw, System::Nats] {
            let broker = match system {
                System::Mm | System::MmRaw => &gateway,
                System::Nats => &nats,
            };
            eprintln!("scale: subscriptions, {}", system.name());
            let subscriptions = scale::subscriptions(
                system,
                &broker.address,
                "SUBS",
                broker.pid(),
                count(1_000_000) as usize,
            )?;
            report.scale.push(serde_json::to_value(subscriptions)?);
            eprintln!("scale: 100 000 subjects, {}", system.name());
            let subjects = scale::many_subjects(
                system,
                &broker.address,
                "SUBJECTS",
                100_000,
                count(2_000_000),
            )?;
            report.scale.push(serde_json::to_value(subjects)?);
        }
    }

    // Mesh: 1 publisher at G1 → 1 subscriber at G2, against a single gateway.
    report.mesh = Some(mesh_figures(&gateway_bin, count(5_000_000), args.repeat)?);

    let table = render_table(&report);
    println!("{table}");
    std::fs::write(args.out.join("results.md"), &table)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}

fn median_by_rate(results: &mut [ThroughputResult]) -> ThroughputResult {
    results.sort_by(|a, b| a.messages_per_second.total_cmp(&b.messages_per_second));
    results[results.len() / 2].clone()
}

fn rate_label(result: &ThroughputResult) -> String {
    let rate = result.messages_per_second;
    let rate = if rate >= 1e6 {
        format!("{:.2} M msg/s", rate / 1e6)
    } else {
        format!("{:.0} k msg/s", rate / 1e3)
    };
    if result.payload_megabytes_per_second >= 100.0 {
        format!("{rate} ({:.0} MB/s)", result.payload_megabytes_per_second)
    } else {
        rate
    }
}

/// Samples the gateway's RSS while a 128-byte 1→1 stream runs for `seconds`.
fn rss_under_load(gateway: &Broker, seconds: u64) -> Result<serde_json::Value> {
    eprintln!("gateway RSS under {seconds} s of sustained load");
    let pid = gateway.pid();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(rss) = scale::rss_kib(pid) {
                    samples.push(rss);
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            samples
        })
    };
    let result = throughput::run(&ThroughputSpec {
        system: System::Mm,
        addresses: vec![gateway.address.clone()],
        service: "BENCH".into(),
        publishers: 1,
        subscribers: 1,
        payload: Payload::Blob(128),
        amount: Amount::Duration(Duration::from_secs(seconds)),
        progress: false,
    })?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    // Samples are 0.5 s apart. After a 2 s warm-up (queues reach their working size), flat
    // means the second half of the run peaks no higher than the first (5 % slack).
    let steady = samples.get(4..).unwrap_or_default();
    let (first_half, second_half) = steady.split_at(steady.len() / 2);
    let peak = |part: &[u64]| part.iter().copied().max().unwrap_or(0);
    Ok(serde_json::json!({
        "seconds": seconds,
        "messages": result.published,
        "messages_per_second": result.messages_per_second,
        "rss_start_kib": samples.first().copied().unwrap_or(0),
        "rss_peak_first_half_kib": peak(first_half),
        "rss_peak_second_half_kib": peak(second_half),
        "rss_last_kib": samples.last().copied().unwrap_or(0),
        "flat": peak(second_half) <= peak(first_half) + peak(first_half) / 20,
        "samples": samples,
    }))
}

/// Single gateway against a two-gateway mesh, 16-byte 1→1 through the client library, with CPU
/// time per message in each gateway: `repeat` alternating pairs of runs, median ratio.
fn mesh_figures(gateway_bin: &Path, messages: u64, repeat: usize) -> Result<serde_json::Value> {
    let run = |addresses: Vec<String>| {
        throughput::run(&ThroughputSpec {
            system: System::Mm,
            addresses,
            service: "MESH".into(),
            publishers: 1,
            subscribers: 1,
            payload: Payload::Blob(16),
            amount: Amount::Count(messages),
            progress: false,
        })
    };
    let single = Broker::gateway(gateway_bin, &[])?;
    let mesh = broker::mesh(gateway_bin, 2, "MESH")?;
    let per_message = |cpu: Duration| cpu.as_secs_f64() * 1e9 / messages as f64;
    let mut pairs = Vec::new();
    for repetition in 0..repeat {
        eprintln!("mesh: single gateway and G1 → G2 (run {})", repetition + 1);
        let cpu_before = scale::cpu_time(single.pid())?;
        let alone = run(vec![single.address.clone()])?;
        let single_cpu = scale::cpu_time(single.pid())? - cpu_before;
        let before: Vec<Duration> = mesh
            .gateways
            .iter()
            .map(|g| scale::cpu_time(g.pid()))
            .collect::<Result<_>>()?;
        let meshed = run(vec![
            mesh.gateways[0].address_string(),
            mesh.gateways[1].address_string(),
        ])?;
        let after: Vec<Duration> = mesh
            .gateways
            .iter()
            .map(|g| scale::cpu_time(g.pid()))
            .collect::<Result<_>>()?;
        pairs.push(serde_json::json!({
            "single_gateway_messages_per_second": alone.messages_per_second,
            "mesh_messages_per_second": meshed.messages_per_second,
            "ratio": meshed.messages_per_second / alone.messages_per_second,
            "single_gateway_cpu_ns_per_message": per_message(single_cpu),
            "g1_cpu_ns_per_message": per_message(after[0] - before[0]),
            "g2_cpu_ns_per_message": per_message(after[1] - before[1]),
        }));
    }
    pairs.sort_by(|a, b| {
        a["ratio"]
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b["ratio"].as_f64().unwrap_or(0.0))
    });
    let ratios: Vec<f64> = pairs
        .iter()
        .filter_map(|pair| pair["ratio"].as_f64())
        .collect();
    let mut median = pairs[pairs.len() / 2].clone();
    median["messages"] = messages.into();
    median["ratios_of_all_runs"] = ratios.into();
    Ok(median)
}

fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Machine: {}\n", report.machine);
    let _ = writeln!(
        out,
        "| workload | MM, raw client | MM, Rust client library | NATS, raw client | broker ratio (raw/NATS) | end-to-end ratio (library/NATS) | target |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|");
    for row in &report.rows {
        let verdict = |ratio: f64| match row.target {
            Some(target) if target.met(ratio) => " ✓",
            Some(_) => " ✗",
            None => "",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | **{:.2}**{} | {:.2}{} | {} |",
            row.workload,
            row.figures[0],
            row.figures[1],
            row.figures[2],
            row.ratios[0],
            verdict(row.ratios[0]),
            row.ratios[1],
            verdict(row.ratios[1]),
            row.target.map_or("—".into(), Target::label)
        );
    }
    if !report.scale.is_empty() {
        let _ = writeln!(out, "\nScale (raw clients on both sides):\n");
        for entry in &report.scale {
            let _ = writeln!(out, "- {entry}");
        }
    }
    if let Some(mesh) = &report.mesh {
        let _ = writeln!(
            out,
            "\nMesh (1 publisher at G1 → 1 subscriber at G2, 16 B, Rust client library): {mesh}"
        );
    }
    if let Some(rss) = &report.rss_under_load {
        let _ = writeln!(out, "\nGateway RSS under sustained load: {rss}");
    }
    let _ = writeln!(
        out,
        "\nPayload sweep, 1→1 (payload MB/s: MM raw, MM library, NATS raw):\n"
    );
    for (size, raw, library, nats) in &report.sweep {
        let _ = writeln!(
            out,
            "- {size} B: {raw:.1}, {library:.1}, {nats:.1} (raw/NATS {:.2}×, library/NATS {:.2}×)",
            raw / nats,
            library / nats
        );
    }
    out
}

/// CPU model, cores, kernel.
pub fn describe_machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|value| value.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|kernel| kernel.trim().to_owned())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}")
}

fn which(binary: &Path) -> Result<PathBuf> {
    if binary.components().count() > 1 {
        return Ok(binary.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|directory| directory.join(binary))
        .chain(
            ["/usr/sbin", "/usr/local/sbin", "/sbin"]
                .iter()
                .map(|d| Path::new(d).join(binary)),
        )
        .find(|candidate| candidate.exists())
        .with_context(|| format!("{} not found (install nats-server)", binary.display()))
}
