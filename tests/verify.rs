//! `gridflow verify` as a user runs it: on the fixture against the batch twin and the test
//! PostgreSQL, on random cases, and with a planted bug (`--plant-bug`) that each oracle must
//! catch — one in dataflow-only code, which the twin catches, and one in a helper the twin
//! shares with the dataflow, which the twin cannot see and PostgreSQL catches.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{fixture_dir, scratch_dir};
use crate::postgres_scratch::{postgres_url, ScratchSchema};

/// `gridflow verify` with no ambient PostgreSQL (a test that wants one says `--against`).
fn verify() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gridflow"));
    command
        .arg("verify")
        .arg("--no-progress")
        .env_remove("DATABASE_URL")
        .env_remove("GRIDFLOW_VERIFY_SCHEMA");
    command
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether the schema exists on the test server.
fn schema_exists(name: &str) -> bool {
    let mut client = postgres::Client::connect(&postgres_url(), postgres::NoTls).unwrap();
    client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
            &[&name],
        )
        .unwrap()
        .get(0)
}

/// A small replay whose rows sit on and next to 5 s window boundaries, with two rows of user 1
/// in one window and hour, a user that never exists (3), and a late user (2, in the second
/// batch after its reading).
fn boundary_replay(name: &str) -> std::path::PathBuf {
    let dir = scratch_dir(name);
    std::fs::create_dir_all(dir.join("users")).unwrap();
    std::fs::create_dir_all(dir.join("consumption")).unwrap();
    std::fs::write(
        dir.join("users/users.csv"),
        "1,张三,居民,1,东城供电区,,,,\n2,李四,工业,2,西城供电区,,,,\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("consumption/readings.csv"),
        "1,1,1.00,0.55,2024-01-01 00:00:05.000,,,\n\
         2,1,2.00,1.10,2024-01-01 00:00:04.999,,,\n\
         3,2,3.00,1.65,2024-01-01 00:00:07.250,,,\n\
         4,3,4.00,2.20,2024-01-01 00:00:10.000,,,\n",
    )
    .unwrap();
    dir
}

#[test]
fn the_fixture_verifies_against_the_twin_and_postgres_at_every_time() {
    let scratch = ScratchSchema::new("verify_fixture");
    let output = verify()
        .arg("--input")
        .arg(fixture_dir().join("input"))
        .args(["--replay-batch", "400", "-w", "2", "-z", "--every", "4"])
        .args([
            "--against",
            &postgres_url(),
            "--against-schema",
            &scratch.name,
        ])
        .output()
        .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // 3 batches of 400 users and 13 of 400 readings: 13 times, checked at 4, 8, 12 and 13, and
    // PostgreSQL at the same times.
    assert!(
        stdout.starts_with("verified: 4 of 13 logical times checked against the twin"),
        "{report}"
    );
    assert!(stdout.contains("; 4 against PostgreSQL"), "{report}");
    assert!(
        !schema_exists(&scratch.name),
        "the schema is dropped: {report}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_bug_in_dataflow_only_code_is_caught_by_the_twin() {
    let output = verify()
        .arg("--input")
        .arg(fixture_dir().join("input"))
        .args(["--window", "1h", "--replay-batch", "1000"])
        .args(["--plant-bug", "partial-count"])
        .output()
        .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("gridflow and the batch twin differ at logical time 1704067201000"),
        "{report}"
    );
    assert!(stdout.contains("  dws_region_daily_stats ("), "{report}");
    assert!(stdout.contains("    twin     only: "), "{report}");
    assert!(stdout.contains("    gridflow only: "), "{report}");
    // At most a screenful of rows, then a count.
    let shown = stdout.lines().filter(|l| l.contains(" only")).count();
    assert_eq!(shown, 30, "{report}");
    assert!(stdout.contains("more differing rows"), "{report}");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("error:"));
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_bug_in_a_helper_the_twin_shares_passes_the_twin_and_is_caught_by_postgres() {
    let dir = boundary_replay("verify_boundary");
    // The twin computes windows with the same (broken) helper: it cannot see the bug.
    let twin_only = verify()
        .arg("--input")
        .arg(&dir)
        .args(["--replay-batch", "1", "--plant-bug", "window-boundary"])
        .output()
        .unwrap();
    assert_eq!(twin_only.status.code(), Some(0), "{}", text(&twin_only));

    let scratch = ScratchSchema::new("verify_boundary");
    let output = verify()
        .arg("--input")
        .arg(&dir)
        .args(["--replay-batch", "1", "--plant-bug", "window-boundary"])
        .args([
            "--against",
            &postgres_url(),
            "--against-schema",
            &scratch.name,
        ])
        .output()
        .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.starts_with("gridflow and PostgreSQL differ at logical time 1704067204000"),
        "{report}"
    );
    // The reading at 00:00:05.000 belongs to the window of 00:00:05 (date_bin), not 00:00:00.
    assert!(
        stdout.contains("postgres only: 1,张三,1,东城供电区,2024-01-01 00:00:05.000,1.00,0.55,1"),
        "{report}"
    );
    // After a difference the schema stays for a person to look at; the scratch drops it.
    assert!(schema_exists(&scratch.name), "{report}");

    // Without the bug both oracles agree with gridflow on the same input.
    let clean = verify()
        .arg("--input")
        .arg(&dir)
        .args(["--replay-batch", "1"])
        .args([
            "--against",
            &postgres_url(),
            "--against-schema",
            &scratch.name,
        ])
        .output()
        .unwrap();
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
}

#[test]
fn random_cases_verify() {
    let scratch = ScratchSchema::new("verify_random");
    let output = verify()
        .args(["--random", "--cases", "6", "--seed", "11"])
        .args([
            "--against",
            &postgres_url(),
            "--against-schema",
            &scratch.name,
        ])
        .output()
        .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(0), "{report}");
    assert!(
        String::from_utf8_lossy(&output.stdout).starts_with("verified: 6 random cases (seed 11)"),
        "{report}"
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_random_failure_is_shrunk_and_written_as_a_replay_that_reproduces_it() {
    let failure = scratch_dir("verify_random_failure").join("case");
    let output = verify()
        .args(["--random", "--cases", "64", "--seed", "3"])
        .args(["--plant-bug", "partial-count", "--failure-dir"])
        .arg(&failure)
        .output()
        .unwrap();
    let report = text(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("gridflow and the batch twin differ"),
        "{report}"
    );
    let command = stdout
        .lines()
        .last()
        .filter(|line| line.starts_with("gridflow verify --input "))
        .unwrap_or_else(|| panic!("no command to reproduce it: {report}"));
    assert!(failure.join("users/part-0.csv").exists(), "{report}");
    assert!(failure.join("consumption/part-0.csv").exists(), "{report}");
    let readme = std::fs::read_to_string(failure.join("README.md")).unwrap();
    assert!(readme.contains(command), "{readme}");

    // The written replay fails the same way with the bug, and passes without it.
    let rerun = |extra: &str| {
        let binary = Path::new(env!("CARGO_BIN_EXE_gridflow"));
        let line = command.replacen("gridflow", &binary.display().to_string(), 1);
        Command::new("sh")
            .arg("-c")
            .arg(format!("{line} --no-progress {extra}"))
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let again = rerun("--plant-bug partial-count");
    assert_eq!(again.status.code(), Some(1), "{}", text(&again));
    let first_line = |out: &Output| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        first_line(&again),
        stdout.lines().next().unwrap_or_default()
    );
    let fixed = rerun("");
    assert_eq!(fixed.status.code(), Some(0), "{}", text(&fixed));
}

#[test]
fn a_failure_to_verify_is_one_error_line_and_exit_7() {
    let output = verify().args(["--clock", "simulated"]).output().unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim(),
        "error: verify needs bounded input: give --consumptions N or --input DIR"
    );

    let output = verify()
        .args(["--clock", "simulated", "--consumptions", "100"])
        .args(["--against", "postgresql://postgres@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: PostgreSQL failed while connecting"),
        "{stderr}"
    );
}

#[test]
fn verify_refuses_a_schema_it_did_not_create() {
    let mut scratch = ScratchSchema::new("verify_foreign");
    scratch
        .client
        .batch_execute(&format!(
            "CREATE SCHEMA {0}; CREATE TABLE {0}.ads_power_dashboard (x int)",
            scratch.name
        ))
        .unwrap();
    let output = verify()
        .arg("--input")
        .arg(fixture_dir().join("input"))
        .args([
            "--against",
            &postgres_url(),
            "--against-schema",
            &scratch.name,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    let kept: i64 = scratch
        .client
        .query_one(
            &format!("SELECT count(*) FROM {}.ads_power_dashboard", scratch.name),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(kept, 0);
}
