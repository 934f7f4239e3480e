//! Sink throughput: the same run with no sink, into SQLite and into PostgreSQL, reporting the
//! row changes the sink committed per second of sink time and the end-to-end slowdown.
//!
//! Run: `cargo bench --bench sinks` (add `-- ROWS` to change the row count; default 1,000,000
//! consumption rows; `GRIDFLOW_NO_USER_UPDATES=true` for the source's DataGen users). Each sink
//! runs three times with 2 workers on the simulated clock; the medians are reported. PostgreSQL
//! is `GRIDFLOW_TEST_DATABASE_URL`, else `DATABASE_URL`, else the local server, in a scratch
//! schema dropped after each run. Under `cargo test` it runs one tiny round of each.

use std::process::Command;
use std::time::Instant;

/// One run's figures.
struct Round {
    seconds: f64,
    changes: u64,
    sink_seconds: f64,
}

fn postgres_url() -> String {
    ["GRIDFLOW_TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|url| !url.is_empty()))
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/postgres".to_string())
}

const SCHEMA: &str = "gridflow_bench_sinks";

fn drop_schema(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|error| panic!("PostgreSQL at {url} cannot be reached: {error}"));
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .unwrap();
}

/// The number after `label` in `text` (digits only, commas allowed).
fn number_after(text: &str, label: &str) -> Option<f64> {
    let rest = text.split(label).nth(1)?;
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    digits.parse().ok()
}

fn run(sink: &str, rows: u64) -> Round {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args([
            "run",
            "--clock",
            "simulated",
            "--status-interval",
            "0",
            "-w",
            "2",
            // the dataflow and the sink alone, each round a fresh job on a cleared sink
            "--ephemeral",
            "--reset",
        ])
        .args(["--consumptions", &rows.to_string()])
        .args(["--sink", sink, "--sink-schema", SCHEMA])
        .output()
        .expect("cannot start gridflow");
    let seconds = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "gridflow failed: {stderr}");
    Round {
        seconds,
        changes: number_after(&stderr, "): ").unwrap_or(0.0) as u64,
        sink_seconds: number_after(&stderr, "transactions, ").unwrap_or(0.0),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let benchmarking = std::env::args().any(|arg| arg == "--bench");
    let rows: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(if benchmarking { 1_000_000 } else { 2_000 });
    let rounds = if benchmarking { 3 } else { 1 };
    let scratch = std::env::temp_dir().join(format!("gridflow-bench-sinks-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let sqlite = scratch.join("bench.db");
    let postgres = postgres_url();
    println!("consumption rows: {rows}, 2 workers, simulated clock, rounds per sink: {rounds}");
    let mut baseline = None;
    for (name, url) in [
        ("none", "none".to_string()),
        ("sqlite", format!("sqlite://{}", sqlite.display())),
        ("postgresql", postgres.clone()),
    ] {
        let mut rounds_of_sink = Vec::new();
        for _ in 0..rounds {
            let _ = std::fs::remove_file(&sqlite);
            if name == "postgresql" {
                drop_schema(&postgres);
            }
            rounds_of_sink.push(run(&url, rows));
        }
        if name == "postgresql" {
            drop_schema(&postgres);
        }
        let seconds = median(rounds_of_sink.iter().map(|r| r.seconds).collect());
        let baseline_seconds = *baseline.get_or_insert(seconds);
        if name == "none" {
            println!("{name:>10}: {seconds:.2} s end to end");
            continue;
        }
        let changes = rounds_of_sink[0].changes;
        let rates: Vec<f64> = rounds_of_sink
            .iter()
            .map(|r| r.changes as f64 / r.sink_seconds.max(1e-9))
            .collect();
        println!(
            "{name:>10}: {seconds:.2} s end to end ({:.2}x no sink), {changes} row changes, \
             median {:.0} row changes/s of sink time (runs: {rates:.0?})",
            seconds / baseline_seconds,
            median(rates.clone()),
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}
