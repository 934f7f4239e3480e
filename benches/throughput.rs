//! End-to-end throughput and peak memory of the warehouse on the workloads of issue 7.
//!
//! Run: `cargo bench --bench throughput` (all workloads) or `cargo bench --bench throughput --
//! NAME…` (some of them). Each workload runs the release binary once, on the simulated clock with
//! 2 workers, and reports consumption rows/s, the peak resident memory (`VmHWM`, from the
//! binary's closing line) and the rates of the first and last status intervals (is the work per
//! row constant?). Every workload runs with the web UI on, as `gridflow run` does, except the
//! `-no-ui` ones, which measure what watching the job costs. Under `cargo test` it runs one tiny round of each so the suite checks they
//! still work.
//!
//! With `GRIDFLOW_BENCH_BASELINE=/path/to/an/older/gridflow`, each workload runs with that
//! binary and with this build alternately, `GRIDFLOW_BENCH_PAIRS` pairs (default 3) after one
//! untimed warm-up run, and the ratio of their summed elapsed times closes it: a before/after
//! figure from one invocation.

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
    // The same with the job durable: its input logged and checkpointed every 10 s (the cost
    // of logging against the run above).
    Workload {
        name: "retention-week-durable",
        rows: 3_000_000,
        args: &["--retention", "3h", "--sink", "none", "--reset"],
    },
    // The same without the web UI, its exits and the dataflow's logging (every other workload
    // runs with them, as `gridflow run` does by default): the cost of watching the job.
    Workload {
        name: "retention-week-no-ui",
        rows: 3_000_000,
        args: &["--retention", "3h", "--sink", "none", "--no-ui"],
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
    // The dense replay (written by `gridflow::sources::dense_replay::write_dense_replay`), default options, into no sink and
    // into the default SQLite sink; and with every user arriving after all the readings.
    Workload {
        name: "dense-replay-no-sink",
        rows: 1_000_000,
        args: &["--input", DENSE, "--sink", "none"],
    },
    Workload {
        name: "dense-replay-no-sink-no-ui",
        rows: 1_000_000,
        args: &["--input", DENSE, "--sink", "none", "--no-ui"],
    },
    Workload {
        name: "dense-replay-sqlite",
        rows: 1_000_000,
        args: &["--input", DENSE],
    },
    Workload {
        name: "dense-replay-sqlite-durable",
        rows: 1_000_000,
        args: &["--input", DENSE, "--reset"],
    },
    Workload {
        name: "dense-replay-consumption-first",
        rows: 1_000_000,
        args: &[
            "--input",
            DENSE,
            "--interleave",
            "consumption-first",
            "--sink",
            "none",
        ],
    },
];

/// The directory, inside the scratch directory, of the dense replay.
const DENSE: &str = "dense";

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    // Another build of gridflow to run beside this one, pair by pair (old, new), for a ratio
    // from one invocation: `GRIDFLOW_BENCH_BASELINE=/path/to/old/gridflow`.
    let baseline = std::env::var_os("GRIDFLOW_BENCH_BASELINE");
    let pairs: usize = std::env::var("GRIDFLOW_BENCH_PAIRS")
        .ok()
        .and_then(|pairs| pairs.parse().ok())
        .unwrap_or(3);
    let scratch = std::env::temp_dir().join(format!("gridflow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("cannot create a scratch directory");
    let mut dense_written = false;
    for workload in WORKLOADS {
        if !chosen.is_empty() && !chosen.iter().any(|name| name == workload.name) {
            continue;
        }
        let rows = if benchmarking { workload.rows } else { 2_000 };
        if workload.args.contains(&DENSE) && !dense_written {
            gridflow::sources::dense_replay::write_dense_replay(&scratch.join(DENSE), rows)
                .expect("cannot write the dense replay");
            dense_written = true;
        }
        let this_build = std::ffi::OsStr::new(env!("CARGO_BIN_EXE_gridflow"));
        let Some(baseline) = &baseline else {
            println!("{}", run(this_build, workload, rows, &scratch).1);
            continue;
        };
        // One untimed run first, so neither binary's first run pays for a cold page cache.
        run(this_build, workload, rows, &scratch);
        let (mut old_total, mut new_total) = (0.0, 0.0);
        for _ in 0..pairs {
            let (old, report) = run(baseline, workload, rows, &scratch);
            println!("baseline   {report}");
            let (new, report) = run(this_build, workload, rows, &scratch);
            println!("this build {report}");
            old_total += old;
            new_total += new;
        }
        println!(
            "{}: {pairs} pairs, baseline {old_total:.2} s, this build {new_total:.2} s: this build / baseline = {:.3}",
            workload.name,
            new_total / old_total
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Runs `workload` once with the binary `gridflow`; returns the elapsed seconds and a line
/// reporting them.
fn run(
    gridflow: &std::ffi::OsStr,
    workload: &Workload,
    rows: u64,
    scratch: &std::path::Path,
) -> (f64, String) {
    let database = scratch.join(format!("{}.db", workload.name));
    let _ = std::fs::remove_file(&database);
    let started = Instant::now();
    let output = Command::new(gridflow)
        .current_dir(scratch)
        .args(["run", "--clock", "simulated", "-w", "2"])
        .args(["--status-interval", "2"])
        // the web UI on a port of its own (`--no-ui` workloads have none)
        .args(["--ui-addr", "127.0.0.1:0"])
        // the dataflow alone, unless the workload measures a durable job (`--reset`)
        .args(
            ["--ephemeral"]
                .iter()
                .filter(|_| !workload.args.contains(&"--reset")),
        )
        .args(
            ["--consumptions", &rows.to_string()]
                .iter()
                .filter(|_| !workload.args.contains(&DENSE)),
        )
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
    let report = format!(
        "{}: {rows} rows in {seconds:.2} s = {:.0} rows/s, peak memory {peak} MiB{first_last}",
        workload.name,
        rows as f64 / seconds,
    );
    (seconds, report)
}
