//! Figures of the abuse scenarios (`crates/mm-gateway-bin/tests/abuse/`) and the page that shows
//! them, `docs/reliability.md`.
//!
//! Each scenario run appends one [`ScenarioReport`] as a JSON line to the file named by
//! `MM_ABUSE_REPORT` (if set). `bench/reliability.sh` runs every scenario at full scale against a
//! release build, keeps one such file per column (`before`: the gateway before the hardening,
//! `after`: with it) and renders both with [`render_page`].

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What one scenario measured. Sizes in MiB, durations in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// Row of the issue's table (1–11; 12 for the small command-line item).
    pub row: u32,
    /// The test's name.
    pub name: String,
    /// `ci` (scaled down, the test suite) or `full` (the issue's sizes).
    pub scale: String,
    /// What the abusive client did, with its sizes.
    pub abuse: String,
    /// Settings the gateway ran with (beyond the defaults).
    pub settings: String,
    /// What became of the gateway: `survived`, `killed at the memory cap (… MiB)`,
    /// `died (…)`.
    pub gateway: String,
    /// Resident size before the abuse.
    pub baseline_rss_mib: f64,
    /// Peak resident size during the abuse.
    pub peak_rss_mib: f64,
    /// Resident size 5 s after the abuser was gone (or when the check ended).
    pub rss_after_mib: Option<f64>,
    /// Longest stall a healthy client saw that the gateway is answerable for (time the
    /// machine kept the gateway's or the clients' threads waiting for a CPU left out).
    pub longest_stall_ms: Option<u64>,
    /// Longest stall a healthy client saw, as it saw it.
    #[serde(default)]
    pub longest_raw_stall_ms: Option<u64>,
    /// Messages healthy clients lost.
    pub healthy_lost: Option<u64>,
    /// Messages healthy clients sent.
    pub healthy_sent: Option<u64>,
    /// Scenario-specific figures, one sentence each.
    pub notes: Vec<String>,
    /// Checks that failed (empty: the scenario passed).
    pub failed_checks: Vec<String>,
    /// Checks that passed.
    pub passed_checks: Vec<String>,
    /// Wall time of the scenario, seconds.
    pub duration_s: f64,
}

impl ScenarioReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failed_checks.is_empty()
    }

    /// Appends the report as one JSON line to `path`.
    pub fn append_to(&self, path: &Path) -> std::io::Result<()> {
        let line = serde_json::to_string(self).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(file, "{line}")
    }

    /// Reads every report of a JSON-lines file; a missing file is an empty list. When a scenario
    /// appears more than once, the last run counts.
    pub fn read_all(path: &Path) -> std::io::Result<Vec<ScenarioReport>> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut reports: Vec<ScenarioReport> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let report: ScenarioReport = serde_json::from_str(line).map_err(|error| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}:{}: {error}", path.display(), index + 1),
                )
            })?;
            reports.retain(|existing| existing.name != report.name);
            reports.push(report);
        }
        reports.sort_by(|a, b| a.row.cmp(&b.row).then_with(|| a.name.cmp(&b.name)));
        Ok(reports)
    }
}

/// A column of the page: a label and the reports measured for it.
pub struct Column<'a> {
    /// `before` or `after`.
    pub label: &'a str,
    /// Its reports (possibly none yet).
    pub reports: &'a [ScenarioReport],
    /// What was measured: commit, machine, date.
    pub provenance: &'a str,
}

/// Renders `docs/reliability.md` from the columns (`before` and `after`, either may be empty).
pub fn render_page(columns: &[Column<'_>]) -> String {
    let mut page = String::new();
    page.push_str(PAGE_HEAD);
    let mut names: Vec<(u32, String, String)> = Vec::new();
    for column in columns {
        for report in column.reports {
            if !names.iter().any(|(_, name, _)| *name == report.name) {
                names.push((report.row, report.name.clone(), report.abuse.clone()));
            }
        }
    }
    names.sort();
    page.push_str("\n## Summary\n\n");
    page.push_str("| # | scenario |");
    for column in columns {
        page.push_str(&format!(
            " {0}: peak RSS | {0}: longest stall | {0}: lost | {0}: RSS after | {0}: result |",
            column.label
        ));
    }
    page.push('\n');
    page.push_str("|---|---|");
    for _ in columns {
        page.push_str("---|---|---|---|---|");
    }
    page.push('\n');
    for (row, name, abuse) in &names {
        page.push_str(&format!("| {row} | {} |", escape(abuse)));
        for column in columns {
            match column.reports.iter().find(|report| &report.name == name) {
                Some(report) => page.push_str(&format!(
                    " {} | {} | {} | {} | {} |",
                    format_mib(Some(report.peak_rss_mib), report.baseline_rss_mib),
                    match (report.longest_stall_ms, report.longest_raw_stall_ms) {
                        (Some(ms), Some(raw)) if raw > ms => format!("{ms} ms ({raw})"),
                        (Some(ms), _) => format!("{ms} ms"),
                        (None, _) => "—".to_owned(),
                    },
                    report
                        .healthy_lost
                        .map_or("—".to_owned(), |n| n.to_string()),
                    match report.rss_after_mib {
                        Some(mib) => format!("{mib:.0} MiB"),
                        None if report.gateway.starts_with("killed")
                            || report.gateway.starts_with("died") =>
                        {
                            format!("gateway {}", report.gateway)
                        }
                        None => "—".to_owned(),
                    },
                    if report.passed() {
                        "pass".to_owned()
                    } else {
                        format!("FAIL ({})", report.failed_checks.len())
                    }
                )),
                None => page.push_str(" *to be measured* | | | | |"),
            }
        }
        page.push('\n');
    }
    page.push_str(
        "\nPeak RSS is shown with the resident size before the abuse in brackets. \"Longest \
         stall\": the longest time the healthy subscribers waited for a message beyond the \
         publisher's own spacing, leaving out time the machine kept the gateway's service \
         thread or both subscribers waiting for a CPU (in brackets: as the clients saw it, when \
         different). \"Lost\": messages the healthy publisher sent that its \
         subscriber never received (must be 0). \"RSS after\": 5 s after the abuser was gone.\n",
    );
    page.push_str("\n## Scenarios\n");
    for (row, name, abuse) in &names {
        page.push_str(&format!(
            "\n### {row}. {}\n\nTest: `{name}`.\n",
            escape(abuse)
        ));
        for column in columns {
            let Some(report) = column.reports.iter().find(|report| &report.name == name) else {
                page.push_str(&format!("\n**{}**: *to be measured.*\n", column.label));
                continue;
            };
            page.push_str(&format!(
                "\n**{}** ({} scale, {:.0} s; gateway {}{}):\n\n",
                column.label,
                report.scale,
                report.duration_s,
                report.gateway,
                if report.settings.is_empty() {
                    String::new()
                } else {
                    format!("; settings: `{}`", report.settings)
                }
            ));
            for note in &report.notes {
                page.push_str(&format!("* {}\n", escape(note)));
            }
            for check in &report.failed_checks {
                page.push_str(&format!("* ✗ {}\n", escape(check)));
            }
            for check in &report.passed_checks {
                page.push_str(&format!("* ✓ {}\n", escape(check)));
            }
        }
    }
    page.push_str("\n## Where the figures come from\n\n");
    for column in columns {
        page.push_str(&format!(
            "* **{}**: {}\n",
            column.label,
            if column.provenance.is_empty() {
                "not measured yet"
            } else {
                column.provenance
            }
        ));
    }
    page
}

fn format_mib(peak: Option<f64>, baseline: f64) -> String {
    match peak {
        Some(peak) => format!("{peak:.0} MiB ({baseline:.0})"),
        None => "—".to_owned(),
    }
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The fixed part of the page: what is measured, the limits and their defaults, how to run.
const PAGE_HEAD: &str = r#"# Reliability under abuse

What one hostile or careless client can do to a gateway, measured. Each scenario is a row of the
hardening issue's table and runs against a real `mm-gateway` process (release build) on loopback,
with healthy clients (one publisher at 1 000 messages/s, two subscribers, on another subject of
the same service) watching for stalls and loss, and the gateway's memory read from `/proc`. The
same scenarios, scaled down to seconds, are end-to-end tests in the suite:
`crates/mm-gateway-bin/tests/abuse/`.

**How to run:** `bash bench/reliability.sh before` or `bash bench/reliability.sh after` (builds
the release binaries, runs every scenario at full scale, one at a time under a time limit, writes
`bench/results/reliability-<column>.jsonl` and re-renders this page from both columns). A
scenario never lets the gateway use more than 8 GiB: past that it is killed and the row says
"killed at the memory cap" (`MM_ABUSE_RSS_CAP_MIB` changes the cap).

## Limits and their defaults

| setting | default | what it bounds |
|---|---|---|
| `MaxPendingBytes` | 134217728 (128 MiB) | one connection's queued output; enforced as frames are queued: past it nothing more is copied and the connection is cut off as a slow consumer (ERROR `SLOW_CONSUMER`) |
| `MaxTotalPendingBytes` | 1/8 of physical memory, at least 256 MiB | queued output of all connections; past it the largest backlogs are cut off first |
| `MaxSubscriptionsPerConnection` | 2097152 | subscriptions of one connection; past it SUBSCRIBE gets ERROR `LIMIT_EXCEEDED` |
| `MaxServices` | 256 | services of the gateway; a CONNECT that would create one more gets ERROR `SERVICE_REFUSED` |
| `ServiceIdleStopMs` | 30000 | how long a service started on demand lives without connections |
| `FrameProgressTimeoutMs` | 10000 | how long an incomplete frame may go without new bytes before its connection is closed |
| `MaxTotalPartialBytes` | 1/16 of physical memory, at least 128 MiB | incomplete input of all connections; past it the largest holder is closed first |
| (fixed) | 64 KiB | largest first frame (before CONNECT) |
| (fixed) | 1 per second per service, 4 per second per connection (burst 8), 100 entries | `_MM.STATS`: computed at most once per interval and shared; rate-limited (ERROR `RATE_LIMITED`); at most 100 `connection` entries plus totals and `connections_omitted` |
| (fixed) | 256 per connection | mesh-wide flushes pending; past it the PING gets ERROR `LIMIT_EXCEEDED` |
| (fixed) | 256 bytes | subjects in log lines and ERROR echoes are cut there, with a marker |
| (fixed) | 4096 connections | the listen queue (the kernel caps it at `net.core.somaxconn`): a storm of connects after a restart is not dropped and retried a second later |

## How a service loop stays responsive

* **Batches have a deadline.** A connection gives way after 1 ms of reading; one publish's
  fan-out checks the clock every 4 096 subscribers and, past the batch's deadline, finishes in
  the loop's next turns before its publisher is read again.
* **Large frames are read in pieces.** A read takes at most 128 KiB even when an incomplete
  frame's buffer has megabytes of room, and a batch stops reading a large frame's bytes after
  1 ms: those reads fault in fresh memory, several times dearer than reads of small frames. With
  twenty connections each sending a 64 MiB frame, a healthy client's longest wait was 337–531 ms
  when one read could take a whole socket buffer, 154–183 ms with the 128 KiB cap, 62–79 ms with
  both.
* **Tables grow a segment at a time.** The tables a client can fill — a subject node's children,
  one subject's subscribers, a connection's subscriptions by id, the mesh's interest — keep their
  entries in segments of at most 3 584 and split one segment when it is full, so no insert moves
  more than that (a plain table moves all of its entries when it doubles: 35–160 ms at a million,
  and three of them doubled on the same SUBSCRIBE). They shrink a segment at a time as they empty.
* **Large removals are sliced.** A closing connection's subscriptions leave the subject index in
  slices between batches.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip_and_the_last_run_counts() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("before.jsonl");
        let mut first = ScenarioReport {
            row: 2,
            name: "row_02".into(),
            failed_checks: vec!["x".into()],
            ..ScenarioReport::default()
        };
        first.append_to(&path).unwrap();
        first.failed_checks.clear();
        first.append_to(&path).unwrap();
        ScenarioReport {
            row: 1,
            name: "row_01".into(),
            ..ScenarioReport::default()
        }
        .append_to(&path)
        .unwrap();
        let reports = ScenarioReport::read_all(&path).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].name, "row_01");
        assert!(reports[1].passed());
        let page = render_page(&[
            Column {
                label: "before",
                reports: &reports,
                provenance: "here",
            },
            Column {
                label: "after",
                reports: &[],
                provenance: "",
            },
        ]);
        assert!(page.contains("*to be measured*"));
        assert!(page.contains("| 2 |"));
        assert!(
            ScenarioReport::read_all(&directory.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
