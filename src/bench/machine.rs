//! The machine and the build a benchmark ran on: cores, CPU model, memory, the commit and the
//! date, printed with every figure.

use std::process::Command;

/// Where and on what a bench invocation ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    pub cores: usize,
    pub cpu_model: String,
    pub memory_gib: u64,
    /// `git describe` of the working tree (`-dirty` when it has changes), or `unknown`.
    pub commit: String,
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
}

impl Machine {
    /// Reads the machine this process runs on.
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(
                || "unknown CPU".to_string(),
                |(_, model)| model.trim().to_string(),
            );
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: u64 = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gib: (memory_kib as f64 / (1024.0 * 1024.0)).round() as u64,
            commit: commit(),
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
        }
    }

    /// One line for a document: `2 cores, Intel … , 24 GiB, commit abc1234, 2026-12-01`.
    pub fn describe(&self) -> String {
        format!(
            "{} cores ({}), {} GiB, commit {}, {}",
            self.cores, self.cpu_model, self.memory_gib, self.commit, self.date
        )
    }

    /// The columns every CSV row ends with.
    pub const CSV_HEADER: [&'static str; 4] = ["cores", "cpu_model", "commit", "date"];

    /// This machine's values of [`Machine::CSV_HEADER`].
    pub fn csv_values(&self) -> Vec<String> {
        vec![
            self.cores.to_string(),
            self.cpu_model.clone(),
            self.commit.clone(),
            self.date.clone(),
        ]
    }
}

/// The commit of the working tree, from git; `GRIDFLOW_COMMIT` overrides it (a build outside
/// a checkout).
fn commit() -> String {
    if let Ok(commit) = std::env::var("GRIDFLOW_COMMIT") {
        return commit;
    }
    let output = Command::new("git")
        .args(["describe", "--always", "--dirty", "--abbrev=7"])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).trim().to_string()
        }
        _ => "unknown".to_string(),
    }
}
