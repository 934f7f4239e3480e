//! A job's identity, as a user meets it: restarting with other options, pointing a second job
//! at a sink, and a corrupt state dir are one-line errors with their documented exit codes, and
//! `--reset` starts over.

use std::path::Path;
use std::process::Output;

use crate::common::{gridflow, scratch_dir};

/// Runs a small bounded job with `seed` into `database`, its state in `state`.
fn run(state: &Path, database: &Path, seed: &str, extra: &[&str]) -> Output {
    gridflow(state)
        .args(["run", "--status-interval", "0", "--clock", "simulated"])
        .args(["--consumptions", "3000", "--tick", "10s", "--seed", seed])
        .args(["--checkpoint-interval", "1ms"])
        .arg("--sink")
        .arg(format!("sqlite://{}", database.display()))
        .args(extra)
        .output()
        .unwrap()
}

/// The run's stderr, after checking that it failed with `code` and one `error:` line, last.
fn failure(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    last.to_string()
}

fn dashboard_rows(database: &Path) -> i64 {
    rusqlite::Connection::open(database)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM ads_power_dashboard", [], |row| {
            row.get(0)
        })
        .unwrap()
}

#[test]
fn other_options_another_job_and_a_corrupt_state_dir_are_refused_and_reset_starts_over() {
    let dir = scratch_dir("jobs");
    let (state, database) = (dir.join("state"), dir.join("warehouse.db"));
    let first = run(&state, &database, "17", &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let rows = dashboard_rows(&database);
    assert!(rows > 0);

    // The same state dir with another seed: the job's options are not these.
    let error = failure(&run(&state, &database, "18", &[]), 6);
    assert!(
        error.contains("holds job") && error.contains("--seed is 17 in the job, 18 now"),
        "{error}"
    );
    // Another state dir, so another job, on the first job's sink.
    let error = failure(&run(&dir.join("other"), &database, "18", &[]), 6);
    assert!(error.contains("holds the tables of another job"), "{error}");
    assert_eq!(dashboard_rows(&database), rows, "a refused job wrote");

    // A flipped bit in a closed segment of the log: corrupt, not silently skipped.
    let worker = state.join("worker-000");
    let mut segments: Vec<_> = std::fs::read_dir(&worker)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "segment"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 2, "{segments:?}");
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&segments[0], bytes).unwrap();
    let error = failure(&run(&state, &database, "17", &[]), 5);
    assert!(error.contains("the state dir is corrupt"), "{error}");

    // --reset: the state dir and the sink's tables are cleared, and the new job runs.
    let reset = run(&state, &database, "18", &["--reset"]);
    let stderr = String::from_utf8_lossy(&reset.stderr);
    assert!(reset.status.success(), "{stderr}");
    assert!(!stderr.contains("resuming job"), "{stderr}");
    let again = run(&state, &database, "18", &[]);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && stderr.contains("resuming job"),
        "{stderr}"
    );
    assert!(dashboard_rows(&database) > 0);
}
