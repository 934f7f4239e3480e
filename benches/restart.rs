//! Restart time of a durable job against its age (issue 8): how long `gridflow run` takes from
//! process start to having caught up with its durable log, after 6 hours, 1, 3 and 7 days of
//! default-rate input (5 consumption rows/s, 432,000 a day) under `--retention 3h`, into the
//! default SQLite sink.
//!
//! Each age is a bounded job run to its end on the simulated clock; the restart is the same
//! command again, which resumes the finished job: it loads the snapshot, replays the log's
//! tail, finds nothing more to read and skips every change set the sink already holds — the
//! whole of a restart, and nothing else. Reports the job's first run, the restart, and what the
//! state dir held. Run: `cargo bench --bench restart [-- AGE…]` (ages: 6h 1d 3d 7d). Under
//! `cargo test` it runs one tiny round so the suite checks it still works.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Consumption rows of a day at the default rate.
const ROWS_PER_DAY: f64 = 432_000.0;

const AGES: &[(&str, f64)] = &[("6h", 0.25), ("1d", 1.0), ("3d", 3.0), ("7d", 7.0)];

/// Runs the job once; returns the seconds it took and its stderr.
fn run(dir: &Path, rows: u64) -> (f64, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .current_dir(dir)
        .args([
            "run",
            "--clock",
            "simulated",
            "--retention",
            "3h",
            "-w",
            "2",
        ])
        .args([
            "--status-interval",
            "0",
            "--consumptions",
            &rows.to_string(),
        ])
        // checkpoints every second, so a run of seconds folds snapshots as a wall-clock job
        // does over its hours
        .args(["--checkpoint-interval", "1s"])
        .output()
        .expect("cannot start gridflow");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "gridflow failed: {stderr}");
    (seconds, stderr)
}

/// The bytes of the files under `dir` whose names end with `suffix`.
fn bytes_of(dir: &Path, suffix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            total += bytes_of(&path, suffix);
        } else if path.to_string_lossy().ends_with(suffix) {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    total
}

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let scratch = std::env::temp_dir().join(format!("gridflow-restart-{}", std::process::id()));
    println!(
        "{:>4} {:>10} {:>12} {:>10} {:>14} {:>12}",
        "age", "rows", "first run s", "restart s", "snapshots MiB", "log MiB"
    );
    for (age, days) in AGES {
        if !chosen.is_empty() && !chosen.iter().any(|name| name == age) {
            continue;
        }
        let rows = if benchmarking {
            (days * ROWS_PER_DAY) as u64
        } else {
            2_000
        };
        let dir = scratch.join(age);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        let (first, _) = run(&dir, rows);
        let state = dir.join("gridflow-state");
        let snapshots = bytes_of(&state, "snapshot.bin");
        let log = bytes_of(&state, ".segment");
        let (restart, stderr) = run(&dir, rows);
        assert!(stderr.contains("resuming job"), "{stderr}");
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        println!(
            "{age:>4} {rows:>10} {first:>12.2} {restart:>10.2} {:>14.1} {:>12.1}",
            mib(snapshots),
            mib(log)
        );
        if !benchmarking {
            break;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
