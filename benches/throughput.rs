//! End-to-end throughput and peak memory of the warehouse on the workloads of issue 7.
//!
//! Run: `cargo bench --bench throughput` (all workloads) or `cargo bench --bench throughput --
//! NAME…` (some of them). Each workload runs the release binary once, on the simulated clock with
//! 2 workers, and reports consumption rows/s, the peak resident memory (`VmHWM`, from the
//! binary's closing line) and the rates of the first and last status intervals (is the work per
//! row constant?). Under `cargo test` it runs one tiny round of each so the suite checks they
//! still work.

use std::process::Command;
use std::time::Instant;

/// A named run of `gridflow run`.
struct Workload {
    name: &'static str,
    rows: u64,
    args: &'static [&'static str],
}

const WORKLOADS: &[Workload] = &[
    // About a week of source time at the default rates, user updates and all.
    Workload {
        name: "retention-week",
        rows: 3_000_000,
        args: &["--retention", "3h", "--sink", "none"],
    },
    Workload {
        name: "retention-300k",
        rows: 300_000,
        args: &["--retention", "3h", "--sink", "none"],
    },
    // The source's DataGen: 1,000 users inserted once.
    Workload {
        name: "no-updates-10m",
        rows: 10_000_000,
        args: &["--no-user-updates", "--sink", "none"],
    },
    // Dense input: consumption dates over 2.4 h hold ~580 rows per 5 s window, 1,000 users and
    // a few hundred user updates, into no sink and into the default SQLite sink.
    Workload {
        name: "dense-no-sink",
        rows: 1_000_000,
        args: &[
            "--consumption-rate",
            "115",
            "--user-rate",
            "0.13",
            "--sink",
            "none",
        ],
    },
    Workload {
        name: "dense-sqlite",
        rows: 1_000_000,
        args: &["--consumption-rate", "115", "--user-rate", "0.13"],
    },
];

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let scratch = std::env::temp_dir().join(format!("gridflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("cannot create a scratch directory");
    for workload in WORKLOADS {
        if !chosen.is_empty() && !chosen.iter().any(|name| name == workload.name) {
            continue;
        }
        let rows = if benchmarking { workload.rows } else { 2_000 };
        let database = scratch.join(format!("{}.db", workload.name));
        let _ = std::fs::remove_file(&database);
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
            .current_dir(&scratch)
            .args(["run", "--clock", "simulated", "-w", "2"])
            .args(["--status-interval", "2"])
            .args(["--consumptions", &rows.to_string()])
            .args(workload.args)
            .env("DATABASE_URL", format!("sqlite://{}", database.display()))
            .output()
            .expect("cannot start gridflow");
        let seconds = started.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "gridflow failed: {stderr}");
        let peak = stderr
            .split("peak memory ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or("?");
        // The status lines' "(N rows/s)", closing line excluded.
        let rates: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("ods "))
            .filter_map(|line| line.split('(').nth(1)?.split(' ').next())
            .collect();
        let first_last = match (rates.first(), rates.last()) {
            (Some(first), Some(last)) => format!(", first interval {first} rows/s, last {last}"),
            _ => String::new(),
        };
        println!(
            "{}: {rows} rows in {seconds:.2} s = {:.0} rows/s, peak memory {peak} MiB{first_last}",
            workload.name,
            rows as f64 / seconds,
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
