//! A scenario: its scale, its checks and figures, the memory guard on its gateways, the healthy
//! clients that watch them, and its report.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use mm_testkit::reliability::ScenarioReport;
use mm_testkit::{
    GatewayProcess, HealthyStream, HealthyStreamOptions, MemoryGuard, StreamReport,
    wait_until_every, write_config,
};

/// The service every scenario abuses.
pub(crate) const SERVICE: &str = "ABUSE";

/// The healthy clients' subject.
pub(crate) const HEALTHY: &str = "HEALTHY.TICK";

/// KiB in a MiB (sizes from `/proc` are in KiB).
pub(crate) const MIB: u64 = 1024;

/// "Memory comes back": within this much of where it started…
pub(crate) const RSS_SLACK_KIB: u64 = 32 * MIB;

/// …within this long after the abuser is gone.
pub(crate) const RSS_RECOVERY: Duration = Duration::from_secs(5);

/// SIGTERM must end the gateway within 2 s; tests allow 3.
pub(crate) const SIGTERM_LIMIT: Duration = Duration::from_secs(3);

/// Threads a gateway may keep beyond one per service (a helper thread that joins stopped ones).
pub(crate) const THREAD_SLACK: u64 = 2;

/// How big the scenarios are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scale {
    /// The suite's sizes: seconds per scenario.
    Ci,
    /// The sizes (`MM_ABUSE_SCALE=full`).
    Full,
}

impl Scale {
    pub(crate) fn get() -> Scale {
        match std::env::var("MM_ABUSE_SCALE").as_deref() {
            Ok("full") => Scale::Full,
            _ => Scale::Ci,
        }
    }

    pub(crate) fn pick<T>(self, ci: T, full: T) -> T {
        match self {
            Scale::Ci => ci,
            Scale::Full => full,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        self.pick("ci", "full")
    }

    /// The longest stall a healthy client may see: generous in the suite (shared machine), the
    /// issue's 100 ms at full scale.
    pub(crate) fn stall(self) -> Duration {
        self.pick(Duration::from_millis(250), Duration::from_millis(100))
    }

    /// How long abuse may take before the scenario gives up waiting.
    pub(crate) fn patience(self) -> Duration {
        self.pick(Duration::from_secs(30), Duration::from_secs(180))
    }

    pub(crate) fn memory_cap_kib(self) -> u64 {
        std::env::var("MM_ABUSE_RSS_CAP_MIB")
            .ok()
            .and_then(|mib| mib.parse::<u64>().ok())
            .unwrap_or(self.pick(2048, 8192))
            * MIB
    }
}

/// One scenario in progress: its checks, figures and memory guards.
pub(crate) struct Scenario {
    pub(crate) scale: Scale,
    pub(crate) report: ScenarioReport,
    started: Instant,
    guards: Vec<MemoryGuard>,
}

pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Scenario {
    /// Starts a gateway with `config` (JSON) under this scenario's memory guard.
    pub(crate) fn gateway(&mut self, config: &str) -> GatewayProcess {
        let path = write_config("abuse", config);
        let gateway = GatewayProcess::start(&["--config", path.to_str().expect("utf-8 path")]);
        self.guard(&gateway);
        gateway
    }

    pub(crate) fn guard(&mut self, gateway: &GatewayProcess) {
        self.guards.push(MemoryGuard::start(
            gateway.pid(),
            self.scale.memory_cap_kib(),
            Duration::from_millis(20),
        ));
    }

    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        println!("note: {text}");
        self.report.notes.push(text);
    }

    /// Records a check; `text` says what was expected and what was measured.
    pub(crate) fn check(&mut self, ok: bool, text: impl Into<String>) -> bool {
        let text = text.into();
        println!("{} {text}", if ok { "ok:  " } else { "FAIL:" });
        if ok {
            self.report.passed_checks.push(text);
        } else {
            self.report.failed_checks.push(text);
        }
        ok
    }

    /// The gateway's resident size now, recorded as the baseline; its peak is reset so that
    /// [`Scenario::peak`] reports the peak of what follows.
    pub(crate) fn baseline(&mut self, gateway: &GatewayProcess) -> u64 {
        let rss = gateway.status().rss_kib;
        gateway.reset_peak_rss();
        self.report.baseline_rss_mib = mib(rss);
        rss
    }

    /// The peak resident size since [`Scenario::baseline`] (the kernel's high-water mark, or
    /// what the guard sampled if the process is gone).
    pub(crate) fn peak(&mut self, gateway: &GatewayProcess) -> u64 {
        let sampled = self
            .guards
            .iter()
            .map(|guard| guard.report().peak_sampled_kib)
            .max()
            .unwrap_or(0);
        let status = gateway.status();
        let peak = if status.peak_rss_kib > 0 {
            status.peak_rss_kib
        } else {
            sampled
        };
        self.report.peak_rss_mib = self.report.peak_rss_mib.max(mib(peak));
        peak
    }

    /// Checks that the peak stayed within `allowed_kib` of `baseline`.
    pub(crate) fn check_peak(&mut self, gateway: &GatewayProcess, baseline: u64, allowed_kib: u64) {
        let peak = self.peak(gateway);
        self.check(
            peak <= baseline + allowed_kib,
            format!(
                "peak RSS within {:.0} MiB of the baseline: {:.0} → {:.0} MiB",
                mib(allowed_kib),
                mib(baseline),
                mib(peak)
            ),
        );
    }

    /// Checks the healthy clients's report: nothing lost, reordered or repeated, no stall.
    pub(crate) fn healthy(&mut self, label: &str, stream: StreamReport) {
        let stall = self.scale.stall();
        let stall_ms = stream.longest_stall.as_millis() as u64;
        let raw_ms = stream.longest_raw_stall.as_millis() as u64;
        self.report.longest_stall_ms =
            Some(self.report.longest_stall_ms.unwrap_or(0).max(stall_ms));
        self.report.longest_raw_stall_ms =
            Some(self.report.longest_raw_stall_ms.unwrap_or(0).max(raw_ms));
        self.report.healthy_lost = Some(self.report.healthy_lost.unwrap_or(0) + stream.lost);
        self.report.healthy_sent = Some(self.report.healthy_sent.unwrap_or(0) + stream.sent);
        self.check(
            stream.is_healthy(stall),
            format!(
                "healthy clients{label}: no loss, order kept, no stall ≥ {} ms — {stream}",
                stall.as_millis()
            ),
        );
    }

    /// Checks that the resident size comes back within [`RSS_SLACK_KIB`] of `baseline` within
    /// [`RSS_RECOVERY`].
    pub(crate) fn rss_recovers(
        &mut self,
        gateway: &GatewayProcess,
        baseline: u64,
        after: &str,
    ) -> bool {
        let started = Instant::now();
        if !Self::alive(gateway) {
            return self.check(false, format!("RSS after {after}: the gateway is gone"));
        }
        let mut rss = gateway.status().rss_kib;
        let recovered = wait_until_every(RSS_RECOVERY, Duration::from_millis(50), || {
            rss = gateway.status().rss_kib;
            rss <= baseline + RSS_SLACK_KIB
        });
        self.report.rss_after_mib = Some(mib(rss));
        self.check(
            recovered,
            format!(
                "RSS back within 32 MiB of {:.0} MiB within 5 s after {after}: {:.0} MiB after {:.1} s",
                mib(baseline),
                mib(rss),
                started.elapsed().as_secs_f64()
            ),
        )
    }

    /// SIGTERM, and the exit must come within [`SIGTERM_LIMIT`].
    pub(crate) fn sigterm(&mut self, gateway: &mut GatewayProcess, load: &str) {
        match gateway.terminate_within(SIGTERM_LIMIT) {
            Ok((status, elapsed)) => {
                self.check(
                    status.success(),
                    format!("SIGTERM {load}: {status} after {} ms", elapsed.as_millis()),
                );
            }
            Err(limit) => {
                self.check(
                    false,
                    format!(
                        "SIGTERM {load}: still running after {} s (killed)",
                        limit.as_secs()
                    ),
                );
            }
        }
    }

    /// Whether the gateway process still runs (without recording anything).
    pub(crate) fn alive(gateway: &GatewayProcess) -> bool {
        gateway.status().alive
    }

    /// Records whether the gateway is still running.
    pub(crate) fn survived(&mut self, gateway: &mut GatewayProcess) -> bool {
        let killed = self.guards.iter().any(MemoryGuard::killed_at_cap);
        let status = gateway.exit_status();
        self.report.gateway = if killed {
            format!(
                "killed at the memory cap ({} MiB)",
                self.scale.memory_cap_kib() / MIB
            )
        } else if let Some(status) = status {
            format!("died ({status})")
        } else {
            "survived".to_owned()
        };
        let gateway_state = self.report.gateway.clone();
        self.check(
            !killed && status.is_none(),
            format!("the gateway is still running: {gateway_state}"),
        )
    }

    pub(crate) fn finish(mut self) {
        if self.guards.iter().any(MemoryGuard::killed_at_cap) {
            self.report.gateway = format!(
                "killed at the memory cap ({} MiB)",
                self.scale.memory_cap_kib() / MIB
            );
        } else if self.report.gateway.is_empty() {
            self.report.gateway = "unknown".to_owned();
        }
        self.report.duration_s = self.started.elapsed().as_secs_f64();
        if let Some(path) = std::env::var_os("MM_ABUSE_REPORT")
            && let Err(error) = self.report.append_to(std::path::Path::new(&path))
        {
            eprintln!("cannot write the report: {error}");
        }
        let failed = &self.report.failed_checks;
        assert!(
            failed.is_empty(),
            "{} of {} checks failed:\n  - {}",
            failed.len(),
            failed.len() + self.report.passed_checks.len(),
            failed.join("\n  - ")
        );
    }
}

/// Runs a scenario; a panic inside it becomes a failed check (so the report is still written).
pub(crate) fn run(
    row: u32,
    name: &str,
    abuse: String,
    settings: &str,
    body: impl FnOnce(&mut Scenario),
) {
    let scale = Scale::get();
    let mut scenario = Scenario {
        scale,
        report: ScenarioReport {
            row,
            name: name.to_owned(),
            scale: scale.name().to_owned(),
            abuse,
            settings: settings.to_owned(),
            ..ScenarioReport::default()
        },
        started: Instant::now(),
        guards: Vec::new(),
    };
    println!("scenario {row}: {}", scenario.report.abuse);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| body(&mut scenario)));
    if let Err(panic) = outcome {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned());
        scenario
            .report
            .failed_checks
            .push(format!("the scenario stopped: {message}"));
    }
    scenario.finish();
}

/// The healthy clients on the scenario's gateway.
pub(crate) fn healthy_stream(gateway: &GatewayProcess) -> HealthyStream {
    HealthyStream::start(HealthyStreamOptions {
        gateway_pids: vec![gateway.pid()],
        ..HealthyStreamOptions::new(gateway.address(), SERVICE, HEALTHY)
    })
}
