//! Helpers shared by the integration tests: running the warehouse in-process, paths, and
//! comparing exports.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gridflow::metrics::Metrics;
use gridflow::operators::retention::Retention;
use gridflow::runtime::{run, Clock, RunConfig, SourceSpec};
use gridflow::sinks::export::{table_files, write_errors, write_warehouse};
use gridflow::sinks::materialized::Materialized;
use gridflow::sources::csv_replay::{Interleave, ReplayConfig};

/// The replay fixture computed by PostgreSQL, independent of gridflow.
pub fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay-5k")
}

/// A fresh scratch directory under the target directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The gridflow binary, keeping its job's state in `state` (`--state-dir`): each test its
/// own, so no two tests' jobs meet in one state dir; without its web UI.
pub fn gridflow(state: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gridflow"));
    // Tests run side by side: none takes the UI's port unless it asks for the UI.
    command
        .env("GRIDFLOW_STATE_DIR", state)
        .env("GRIDFLOW_NO_UI", "true");
    command
}

/// Sends Ctrl-C (SIGINT) to a running `gridflow` and waits for it to exit.
pub fn ctrl_c(child: std::process::Child) -> std::process::Output {
    signal(child, "INT")
}

/// Sends the signal `name` (`INT`, `TERM`, …) to a running `gridflow` and waits for it to exit.
pub fn signal(child: std::process::Child, name: &str) -> std::process::Output {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

/// A timely configuration of `workers` threads, serializing between them if asked.
pub fn timely_config(workers: usize, serialize: bool) -> timely::Config {
    use timely::CommunicationConfig;
    let communication = if serialize {
        CommunicationConfig::ProcessBinary(workers)
    } else if workers > 1 {
        CommunicationConfig::Process(workers)
    } else {
        CommunicationConfig::Thread
    };
    timely::Config {
        communication,
        worker: timely::WorkerConfig::default(),
    }
}

/// Runs `source` to completion in-process and exports every table into `out`.
pub fn run_and_export(
    source: SourceSpec,
    workers: usize,
    serialize: bool,
    window: i64,
    out: &Path,
) -> Metrics {
    run_and_export_with(source, workers, serialize, window, 1_000, out)
}

/// As [`run_and_export`], advancing the input frontier every `progress_rows` rows per worker.
pub fn run_and_export_with(
    source: SourceSpec,
    workers: usize,
    serialize: bool,
    window: i64,
    progress_rows: usize,
    out: &Path,
) -> Metrics {
    let config = RunConfig {
        timely: timely_config(workers, serialize),
        retention: Retention::unbounded(window),
        clock: Clock::Simulated,
        max_inflight: 4,
        progress_rows,
        sink_ods_and_dwd: true,
        stop: Default::default(),
        durability: None,
        gathered: None,
        monitor: None,
    };
    let metrics = Arc::new(Metrics::default());
    let retention = config.retention;
    let outcome = run(
        config,
        source,
        Some(move || Materialized::under(retention)),
        metrics.clone(),
    )
    .expect("the run fails");
    let sink = outcome.sink.expect("worker 0 returns its sink");
    assert!(
        sink.violations.is_empty(),
        "multiplicities other than 0 or 1: {:?}",
        &sink.violations[..1]
    );
    let (warehouse, errors) = sink.snapshot();
    write_warehouse(out, &warehouse).unwrap();
    write_errors(out, &errors).unwrap();
    Arc::try_unwrap(metrics).unwrap_or_default()
}

/// A replay of `dir` with the given batch size and interleaving.
pub fn replay(dir: &Path, batch_rows: usize, interleave: Interleave) -> SourceSpec {
    SourceSpec::Replay(ReplayConfig {
        dir: dir.to_path_buf(),
        batch_rows,
        interleave,
        start: gridflow::cli::DEFAULT_SIMULATED_START,
        tick: 1_000,
    })
}

/// Asserts that every table file of `actual` equals the one in `expected`, byte for byte.
pub fn assert_same_tables(expected: &Path, actual: &Path) {
    for file in table_files() {
        let want =
            std::fs::read_to_string(expected.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let got =
            std::fs::read_to_string(actual.join(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        if want != got {
            let line = want.lines().zip(got.lines()).position(|(a, b)| a != b);
            panic!(
                "{file} differs from {} (first differing line {:?}; {} vs {} lines)",
                expected.display(),
                line.map(|l| l + 1),
                want.lines().count(),
                got.lines().count()
            );
        }
    }
}
