//! The generator across worker counts, threads and processes: the same options must export the
//! same bytes however the work is spread. Also the golden export of one fixed seed.

use std::path::Path;
use std::process::Command;

use gridflow::runtime::SourceSpec;
use gridflow::sources::generator::GeneratorConfig;

use crate::common::{assert_same_tables, run_and_export, scratch_dir};

fn generator(consumptions: u64) -> SourceSpec {
    SourceSpec::Generator(GeneratorConfig {
        seed: 7,
        users: 50,
        consumptions: Some(consumptions),
        user_rate: 5.0,
        consumption_rate: 20.0,
        start: gridflow::cli::DEFAULT_SIMULATED_START,
        tick: 1_000,
        ..GeneratorConfig::default()
    })
}

#[test]
fn generator_exports_the_same_bytes_with_1_2_and_4_workers() {
    let one = scratch_dir("gen_workers_1");
    run_and_export(generator(3_000), 1, false, 5_000, &one);
    for (workers, serialize) in [(2, false), (2, true), (4, false)] {
        let many = scratch_dir(&format!("gen_workers_{workers}_{serialize}"));
        run_and_export(generator(3_000), workers, serialize, 5_000, &many);
        assert_same_tables(&one, &many);
    }
}

/// The binary with the given `run` options, writing its sink into a fresh scratch file.
fn gridflow(args: &[&str]) -> Command {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let database = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("processes-{run}.db"));
    let _ = std::fs::remove_file(&database);
    let state = database.with_extension("state");
    let _ = std::fs::remove_dir_all(&state);
    let mut command = crate::common::gridflow(&state);
    command
        .args(["run", "--status-interval", "0", "--sink"])
        .arg(format!("sqlite://{}", database.display()))
        .args(args);
    command
}

/// The options both generator runs share: seed, users, rows, the simulated clock.
const COMMON_ARGS: [&str; 8] = [
    "--clock",
    "simulated",
    "--seed",
    "11",
    "--users",
    "40",
    "--consumptions",
    "2000",
];

/// Hour windows, 4 user rows a second.
const GENERATOR_ARGS: [&str; 4] = ["--user-rate", "4", "--window", "1h"];

/// About 70 minutes of source time with 5-minute windows that freeze 10 minutes after they
/// end: windows freeze during the run, and rows arrive expired.
const RETENTION_ARGS: [&str; 8] = [
    "--user-rate",
    "0.2",
    "--consumption-rate",
    "0.5",
    "--window",
    "5m",
    "--retention",
    "10m",
];

#[test]
fn two_processes_on_localhost_export_what_one_worker_does() {
    two_processes_export_what_one_worker_does("proc", &GENERATOR_ARGS);
}

#[test]
fn two_processes_under_retention_export_what_one_worker_does() {
    two_processes_export_what_one_worker_does("proc_retention", &RETENTION_ARGS);
}

fn two_processes_export_what_one_worker_does(name: &str, options: &[&str]) {
    let args = &[&COMMON_ARGS[..], options].concat();
    let single = scratch_dir(&format!("{name}_single"));
    let status = gridflow(args)
        .arg("--export")
        .arg(&single)
        .status()
        .unwrap();
    assert!(status.success());

    let cluster = scratch_dir(&format!("{name}_cluster"));
    let hostfile = cluster.join("hosts.txt");
    let ports = [free_port(), free_port()];
    std::fs::write(
        &hostfile,
        format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]),
    )
    .unwrap();
    let export = cluster.join("export");
    // As the README runs it: process 0 exports and writes its sink; process 1 has neither (it
    // must build the same dataflow all the same, or the two wait for each other forever).
    let mut zero = gridflow(args)
        .args(["-n", "2", "-p", "0", "-w", "1", "--hostfile"])
        .arg(&hostfile)
        .arg("--export")
        .arg(&export)
        .spawn()
        .unwrap();
    let mut one = crate::common::gridflow(&cluster.join("process-1-state"))
        .args(["run", "--status-interval", "0", "--sink", "none"])
        .args(args)
        .args(["-n", "2", "-p", "1", "-w", "1", "--hostfile"])
        .arg(&hostfile)
        .spawn()
        .unwrap();
    assert!(
        finishes_within_a_minute(&mut zero),
        "process 0 failed or hung"
    );
    assert!(
        finishes_within_a_minute(&mut one),
        "process 1 failed or hung"
    );
    assert_same_tables(&single, &export);
}

/// Whether `child` exits successfully within a minute (it is killed if not).
fn finishes_within_a_minute(child: &mut std::process::Child) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.success();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    false
}

/// A port that was free a moment ago on the loopback interface.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn export_needs_bounded_input() {
    let output = gridflow(&["--clock", "simulated", "--export", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--export needs bounded input"));
}

/// The golden export of seed 7, reviewed as a diff when it changes on purpose:
/// `GRIDFLOW_BLESS=1 cargo test golden` rewrites it.
#[test]
fn golden_export_of_seed_7() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/seed-7");
    let out = scratch_dir("golden_seed_7");
    run_and_export(generator(1_000), 2, false, 5_000, &out);
    if std::env::var_os("GRIDFLOW_BLESS").is_some() {
        std::fs::create_dir_all(&golden).unwrap();
        for file in gridflow::sinks::export::table_files() {
            std::fs::copy(out.join(&file), golden.join(&file)).unwrap();
        }
    }
    assert_same_tables(&golden, &out);
    // And the golden tables are what the batch twin computes from the golden ODS tables.
    let recomputed = scratch_dir("golden_seed_7_reference");
    let users = read_ods(
        &golden.join("ods_power_user.csv"),
        gridflow::sources::csv_replay::parse_user,
        |u| u.user_id,
    );
    let consumption = read_ods(
        &golden.join("ods_power_consumption.csv"),
        gridflow::sources::csv_replay::parse_consumption,
        |c| c.consumption_id,
    );
    let warehouse = gridflow::check::twin::recompute(&users, &consumption, 5_000);
    gridflow::sinks::export::write_warehouse(&recomputed, &warehouse).unwrap();
    assert_same_tables(&golden, &recomputed);
}

/// Reads an exported ODS table back into rows by key.
fn read_ods<R>(
    path: &Path,
    parse: fn(&csv::StringRecord) -> Result<R, gridflow::sources::csv_replay::RecordError>,
    key: fn(&R) -> i64,
) -> std::collections::BTreeMap<i64, R> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .records()
        .map(|record| parse(&record.unwrap()).unwrap())
        .map(|row| (key(&row), row))
        .collect()
}

#[test]
fn ctrl_c_stops_an_unbounded_run_with_its_totals() {
    a_signal_stops_an_unbounded_run_with_its_totals("INT");
}

#[test]
fn sigterm_stops_an_unbounded_run_as_ctrl_c_does() {
    a_signal_stops_an_unbounded_run_with_its_totals("TERM");
}

fn a_signal_stops_an_unbounded_run_with_its_totals(signal: &str) {
    let child = gridflow(&[
        "--clock",
        "wall",
        "--tick",
        "50ms",
        "--consumption-rate",
        "100",
    ])
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let output = crate::common::signal(child, signal);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let totals = stderr
        .lines()
        .find(|line| line.starts_with("done in"))
        .expect("a totals line");
    // About 1.5 s at 100 rows/s went in before the stop.
    let consumption: u64 = totals
        .split("consumption=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("a consumption count");
    assert!((50..=400).contains(&consumption), "{totals}");
}
