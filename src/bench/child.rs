//! One measured run of `gridflow run` in child processes: started with `--report`, waited for,
//! its report read back. A multi-process run starts every process of the job on localhost.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context};

use super::scenario::Bench;
use crate::metrics::report::RunReport;

/// What one run measured, over all its processes.
#[derive(Clone, Debug)]
pub struct Measured {
    /// Process 0's report (its latency, its samples).
    pub first: RunReport,
    /// The slowest process's elapsed time.
    pub elapsed_s: f64,
    /// Consumption rows the processes introduced together.
    pub consumption_rows: u64,
    /// The processes' peak resident memory, summed.
    pub peak_memory_bytes: u64,
}

impl Measured {
    /// Consumption rows per second through all four layers.
    pub fn rows_per_second(&self) -> f64 {
        self.consumption_rows as f64 / self.elapsed_s.max(1e-9)
    }
}

/// Runs `gridflow run ARGS` as `processes` processes of one job (each with the workers `args`
/// give), named `name` in the runs folder, and reads their reports. Every run is ephemeral, into
/// no sink, with no status lines and no web UI, unless `args` say otherwise.
pub fn run(
    bench: &Bench,
    name: &str,
    args: &[String],
    processes: usize,
) -> anyhow::Result<Measured> {
    let dir = bench.runs_dir();
    let hostfile = if processes > 1 {
        let path = dir.join(format!("{name}.hosts"));
        let hosts: Vec<String> = free_ports(processes)?
            .into_iter()
            .map(|port| format!("127.0.0.1:{port}"))
            .collect();
        std::fs::write(&path, hosts.join("\n") + "\n")?;
        Some(path)
    } else {
        None
    };
    let mut children: Vec<(Child, PathBuf, PathBuf)> = Vec::new();
    for process in 0..processes {
        let report = dir.join(format!("{name}.p{process}.json"));
        let log = dir.join(format!("{name}.p{process}.log"));
        let _ = std::fs::remove_file(&report);
        let mut command = Command::new(&bench.binary);
        command
            .arg("run")
            .args([
                "--sink",
                "none",
                "--ephemeral",
                "--no-ui",
                "--status-interval",
                "0",
            ])
            .args(args)
            .arg("--report")
            .arg(&report);
        if let Some(hostfile) = &hostfile {
            command
                .args(["-n", &processes.to_string(), "-p", &process.to_string()])
                .arg("--hostfile")
                .arg(hostfile);
        }
        let stderr = std::fs::File::create(&log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let child = command
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot start {}", bench.binary.display()))?;
        children.push((child, report, log));
    }
    let mut reports = Vec::new();
    let mut failure = None;
    for (mut child, report, log) in children {
        let status = child.wait()?;
        if !status.success() {
            failure.get_or_insert_with(|| {
                format!(
                    "`gridflow run {}` exited with {status}: {}",
                    args.join(" "),
                    last_line(&log)
                )
            });
            continue;
        }
        reports.push(
            RunReport::read(&report)
                .with_context(|| format!("cannot read the report {}", report.display()))?,
        );
    }
    if let Some(failure) = failure {
        bail!(failure);
    }
    let first = reports[0].clone();
    Ok(Measured {
        elapsed_s: reports.iter().map(|r| r.elapsed_s).fold(0.0, f64::max),
        consumption_rows: reports
            .iter()
            .map(|r| r.counters.ods_consumption_rows)
            .sum(),
        peak_memory_bytes: reports.iter().filter_map(|r| r.peak_memory_bytes).sum(),
        first,
    })
}

/// `processes` distinct free ports on localhost (free when asked: a race with other programs
/// is possible, and then the run fails and says so).
fn free_ports(processes: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..processes)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot find free ports on localhost")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// The last non-empty line of a log: a failed run's `error: …`.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("(no output)")
        .to_string()
}

/// `value` as an argument.
pub fn arg(value: impl ToString) -> String {
    value.to_string()
}

/// A list of arguments from string slices.
pub fn args(values: &[&str]) -> Vec<String> {
    values.iter().map(|v| v.to_string()).collect()
}
