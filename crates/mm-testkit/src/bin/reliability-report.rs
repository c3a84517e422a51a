//! Renders `docs/reliability.md` from the abuse scenarios' figures.
//!
//! Usage: `reliability-report RESULTS_DIR OUTPUT.md`. Reads `RESULTS_DIR/reliability-before.jsonl`
//! and `reliability-after.jsonl` (either may be missing: its column says "to be measured") and
//! `reliability-<column>.txt` (where and when that column was measured).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mm_testkit::reliability::{Column, ScenarioReport, render_page};

const COLUMNS: [&str; 2] = ["before", "after"];

fn main() -> ExitCode {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [results, output] = arguments.as_slice() else {
        eprintln!("usage: reliability-report RESULTS_DIR OUTPUT.md");
        return ExitCode::from(2);
    };
    let results = PathBuf::from(results);
    let mut reports = Vec::new();
    let mut provenance = Vec::new();
    for label in COLUMNS {
        match ScenarioReport::read_all(&file(&results, label, "jsonl")) {
            Ok(column) => reports.push(column),
            Err(error) => {
                eprintln!("reliability-report: {error}");
                return ExitCode::FAILURE;
            }
        }
        provenance.push(
            std::fs::read_to_string(file(&results, label, "txt"))
                .map(|text| text.trim().to_owned())
                .unwrap_or_default(),
        );
    }
    let columns: Vec<Column<'_>> = COLUMNS
        .iter()
        .zip(&reports)
        .zip(&provenance)
        .map(|((label, reports), provenance)| Column {
            label,
            reports,
            provenance,
        })
        .collect();
    if let Err(error) = std::fs::write(output, render_page(&columns)) {
        eprintln!("reliability-report: cannot write {output}: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn file(results: &Path, label: &str, extension: &str) -> PathBuf {
    results.join(format!("reliability-{label}.{extension}"))
}
