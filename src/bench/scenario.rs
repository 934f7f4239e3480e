//! What every scenario shares: the scenarios themselves, the bench's settings, and what a
//! scenario returns (its CSVs, its section of the document and its plots).

use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};

use super::machine::Machine;

/// One benchmark scenario of issue 10.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Scenario {
    /// Consumption rows/s through all four layers: 1M and 10M rows, 1 and 2 workers, 2
    /// processes, with and without user updates.
    Throughput,
    /// End-to-end latency percentiles and CCDF at fixed wall-clock input rates.
    Latency,
    /// Late user updates after N rows, one logical time each: the engine against the batch twin
    /// and PostgreSQL.
    Correction,
    /// Resident memory and bytes per live consumption row over a long run, with and without
    /// retention.
    Memory,
    /// Window sizes of 5 s, 1 h and 1 d: throughput and output changes per input row.
    Window,
    /// Batch size: throughput and latency against the span of a logical time (the tick).
    Batch,
}

impl Scenario {
    /// Every scenario, in the document's order.
    pub const ALL: [Scenario; 6] = [
        Scenario::Throughput,
        Scenario::Latency,
        Scenario::Correction,
        Scenario::Memory,
        Scenario::Window,
        Scenario::Batch,
    ];

    /// The scenario's name: its CSV's, its plots' and its section's.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Throughput => "throughput",
            Scenario::Latency => "latency",
            Scenario::Correction => "correction",
            Scenario::Memory => "memory",
            Scenario::Window => "window",
            Scenario::Batch => "batch",
        }
    }
}

/// How a bench invocation runs.
#[derive(Clone, Debug)]
pub struct Bench {
    /// The `gridflow` binary the child runs start.
    pub binary: PathBuf,
    /// Tiny sizes: a check that every scenario still works, not a measurement.
    pub quick: bool,
    /// Runs of each configuration.
    pub runs: usize,
    /// Where the CSVs go; run reports and logs go into its `runs/` folder.
    pub out: PathBuf,
    /// PostgreSQL, for the correction scenario's recomputation by SQL.
    pub database_url: Option<String>,
    pub machine: Machine,
}

/// A table of figures as CSV: one row per run (the machine's columns are added when it is
/// written).
#[derive(Clone, Debug, Default)]
pub struct Csv {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

/// An SVG plot of a section, written beside the document.
#[derive(Clone, Debug)]
pub struct Plot {
    /// The file name, `SCENARIO-WHAT.svg`.
    pub file: String,
    pub title: String,
    pub svg: String,
}

/// What a scenario produced: its CSVs (the first named after the scenario), the markdown of
/// its section (plots are linked by the document) and its plots.
#[derive(Clone, Debug)]
pub struct Section {
    pub scenario: Scenario,
    pub csvs: Vec<(String, Csv)>,
    pub markdown: String,
    pub plots: Vec<Plot>,
}

impl Bench {
    /// A progress bar over `runs` runs of `scenario` (hidden when stderr is not a terminal).
    pub fn progress(&self, scenario: Scenario, runs: usize) -> ProgressBar {
        let bar = ProgressBar::new(runs as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>11} [{bar:30}] {pos}/{len} runs, {elapsed} {wide_msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(scenario.name());
        bar
    }

    /// The folder where child runs keep their reports and logs.
    pub fn runs_dir(&self) -> PathBuf {
        self.out.join("runs")
    }

    /// `3 runs`, `1 run`: how many runs of each configuration, for a section's text.
    pub fn runs_phrase(&self) -> String {
        match self.runs {
            1 => "1 run (a single measurement)".to_string(),
            n => format!("{n} runs"),
        }
    }

    /// Pick `full` for a measurement, `quick` for a check.
    pub fn size<T>(&self, full: T, quick: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }
}
