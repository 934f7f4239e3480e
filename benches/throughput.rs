//! End-to-end throughput and peak memory of the warehouse, no sink.
//!
//! Run: `cargo bench --bench throughput` (add `-- ROWS` to change the row count; default
//! 1,000,000 consumption rows with the default users and their updates, simulated clock, all
//! four layers). For 1 and 2 workers it runs the release binary three times and reports the
//! median consumption rows/s and the peak resident memory. Under `cargo test` it runs one tiny
//! round so the suite checks it still works.

use std::process::Command;
use std::time::Instant;

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(if benchmarking { 1_000_000 } else { 2_000 });
    let rounds = if benchmarking { 3 } else { 1 };
    let tick = std::env::var("GRIDFLOW_TICK").unwrap_or_else(|_| "1s".to_string());
    println!("consumption rows: {rows}, tick {tick}, rounds per worker count: {rounds}");
    for workers in [1, 2] {
        let mut rates = Vec::new();
        let mut peaks = Vec::new();
        for _ in 0..rounds {
            let started = Instant::now();
            let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
                .args([
                    "run",
                    "--clock",
                    "simulated",
                    "--status-interval",
                    "0",
                    "--sink",
                    "none",
                ])
                .args([
                    "--consumptions",
                    &rows.to_string(),
                    "--tick",
                    &tick,
                    "-w",
                    &workers.to_string(),
                ])
                .output()
                .expect("cannot start gridflow");
            let seconds = started.elapsed().as_secs_f64();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "gridflow failed: {stderr}");
            rates.push(rows as f64 / seconds);
            let peak = stderr
                .split("peak memory ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|mib| mib.parse::<u64>().ok())
                .unwrap_or(0);
            peaks.push(peak);
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let peak = peaks.iter().max().copied().unwrap_or(0);
        println!("workers {workers}: median {median:.0} consumption rows/s (runs: {rates:.0?}), peak memory {peak} MiB");
    }
}
