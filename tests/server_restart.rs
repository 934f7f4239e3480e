//! The PostgreSQL sink against its server going away mid-run, on a private server the test
//! crashes (`pg_ctl stop -m immediate`) and starts again: a short outage is ridden out by the
//! retries, a long one stops the job with an error naming the time and tables, and running the
//! job again completes it — in both cases without losing or doubling a change.

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::scratch_dir;
use crate::private_postgres::PrivatePostgres;
use crate::sinks::assert_postgres_tables_equal_the_export;

/// Starts `gridflow run` into the sink at `url`, exporting to `export`, with `options`, its
/// job's state in `state`.
fn spawn_run(url: &str, export: &Path, state: &Path, options: &[&str]) -> Child {
    crate::common::gridflow(state)
        // Checkpoints (and with them the sink's commits) often, to crash the server between.
        .args([
            "run",
            "--status-interval",
            "0",
            "--checkpoint-interval",
            "100ms",
        ])
        .args(["--sink", url, "--export"])
        .arg(export)
        .args(options)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the sink has committed a change set (its progress row says so).
fn wait_for_first_commit(url: &str, run: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run ended before the test could interrupt it"
        );
        let committed = postgres::Client::connect(url, postgres::NoTls)
            .and_then(|mut client| {
                client.query_opt(
                    "SELECT 1 FROM gridflow_progress WHERE applied_upto IS NOT NULL",
                    &[],
                )
            })
            .is_ok_and(|row| row.is_some());
        if committed {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the sink committed nothing within a minute");
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn the_postgresql_sink_rides_out_a_server_crash_and_restart_without_losing_or_doubling_a_change() {
    let server = PrivatePostgres::start("restart");
    let url = server.url();
    let export = scratch_dir("server_restart_export");
    // About eight seconds of wall-clock input, a transaction every tick or so.
    let mut run = spawn_run(
        &url,
        &export,
        &scratch_dir("server_restart_state"),
        &[
            "--clock",
            "wall",
            "--user-rate",
            "100",
            "--consumption-rate",
            "2000",
            "--consumptions",
            "16000",
        ],
    );
    wait_for_first_commit(&url, &mut run);
    std::thread::sleep(Duration::from_millis(500));
    server.crash();
    std::thread::sleep(Duration::from_millis(500));
    server.start_again();
    let output = run.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("retry 1 of 3"), "no write failed: {stderr}");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_postgres_tables_equal_the_export(
        &mut client,
        "public",
        &export,
        "after a server restart",
    );
}

/// A deterministic run, long enough to be interrupted: one-second ticks, so it commits many
/// small transactions (the simulated clock's default tick would make it a handful).
const SIMULATED_RUN: [&str; 14] = [
    "--clock",
    "simulated",
    "--seed",
    "5",
    "--consumptions",
    "20000",
    "--user-rate",
    "3",
    "--consumption-rate",
    "10",
    "--progress-rows",
    "10",
    "--tick",
    "1s",
];

#[test]
fn a_server_down_past_the_retries_stops_the_job_clearly_and_a_rerun_completes_it_exactly() {
    let server = PrivatePostgres::start("outage");
    let url = server.url();
    let first_export = scratch_dir("server_outage_first");
    let two_workers = [&SIMULATED_RUN[..], &["-w", "2"]].concat();
    let state = scratch_dir("server_outage_state");
    let mut run = spawn_run(&url, &first_export, &state, &two_workers);
    wait_for_first_commit(&url, &mut run);
    server.crash();
    let output = run.wait_with_output().unwrap();
    let stderr = stderr_of(&output);
    assert_eq!(
        output.status.code(),
        Some(4),
        "the job went on without its sink: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert!(stderr.contains("retry 3 of 3"), "{stderr}");
    assert!(
        stderr.contains("the sink stopped at logical time")
            && stderr.contains("after 3 retries, writing table"),
        "{stderr}"
    );

    server.start_again();
    // The same command again resumes the job: it takes the sink over at once (the stopped
    // process held the job's state dir, so it is gone), replays its log past the sink's
    // progress, and completes the export.
    let export = scratch_dir("server_outage_rerun");
    let rerun = spawn_run(&url, &export, &state, &two_workers)
        .wait_with_output()
        .unwrap();
    let stderr = stderr_of(&rerun);
    assert!(rerun.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming job") && stderr.contains("earlier change sets are skipped"),
        "the rerun did not resume the job from the sink's progress: {stderr}"
    );
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_postgres_tables_equal_the_export(
        &mut client,
        "public",
        &export,
        "after an outage and a rerun",
    );
}
