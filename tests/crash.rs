//! Durable jobs against real crashes: `gridflow run` killed with SIGKILL — at random moments,
//! and at chosen ones (inside a checkpoint, inside a sink transaction, between a commit and its
//! acknowledgement, inside a snapshot fold) — and started again each time with the same
//! command, must leave exactly what an uninterrupted run leaves: in the sink and in the export,
//! no row lost, doubled or stale. And a wall-clock job stopped with Ctrl-C and started again
//! resumes, its sink's DWS and ADS tables a recomputation of its ODS tables.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use gridflow::check::twin::recompute;
use gridflow::durable::export_log::read_change_sets;
use gridflow::model::Time;
use gridflow::sinks::export::{table_files, write_warehouse};
use gridflow::sinks::tables::ALL;
use gridflow::sinks::ChangeSet;
use gridflow::sources::csv_replay::{CsvReplay, Interleave, ReplayConfig};
use gridflow::sources::Source;

use crate::common::{gridflow, scratch_dir};
use crate::postgres_scratch::{postgres_url, ScratchSchema};
use crate::processes::free_port;
use crate::sinks::{assert_postgres_tables_equal_the_export, postgres_table_as_csv, table_as_csv};

/// The job every crash test runs: the generator on the simulated clock under `--retention 3h`,
/// five and a half hours of source time, so windows freeze, rows expire and snapshots fold;
/// one-minute logical times and frequent checkpoints, so there are many of each to die in.
const JOB: [&str; 14] = [
    "--clock",
    "simulated",
    "--seed",
    "17",
    "--consumptions",
    "100000",
    "--retention",
    "3h",
    "--tick",
    "1m",
    "--progress-rows",
    "2000",
    "-w",
    "2",
];

/// How every run that is to be killed starts: frequent checkpoints, and snapshots folded from
/// a small log, so there are checkpoints and folds to die in.
const CRASHING_RUN: [&str; 7] = [
    "run",
    "--status-interval",
    "0",
    "--checkpoint-interval",
    "50ms",
    "--fold-min-bytes",
    "200000",
];

/// How each crashing run dies: at a fault point of the process (`GRIDFLOW_KILL_AT`), or by a
/// SIGKILL from outside once its export log has grown by some bytes — mid-job, by construction,
/// however fast the machine: a run that ends before it is killed fails the test.
#[derive(Clone, Copy, Debug)]
enum Death {
    At(&'static str),
    AfterGrowing(u64),
}

/// The deaths of one test: every fault point, and kills from outside at moments drawn from a
/// seed the failure message prints.
fn deaths(seed: u64) -> Vec<Death> {
    // splitmix64: a few well-spread amounts without a dependency
    let mut state = seed;
    let mut growth = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        // Of an export log of about 40 MB over the whole job.
        Death::AfterGrowing(500_000 + (z ^ (z >> 31)) % 3_000_000)
    };
    vec![
        Death::At("fold:1"),
        Death::At("checkpoint:3"),
        growth(),
        Death::At("commit:2"),
        Death::At("committed:2"),
        growth(),
        Death::At("fold:2"),
        Death::At("checkpoint:7"),
    ]
}

/// The `gridflow` of these tests: its export log keeps every change set (never rewritten as
/// its tables), so a job's change sets can be read back and compared time by time.
fn gridflow_keeping_change_sets(state: &Path) -> Command {
    let mut command = gridflow(state);
    command.env("GRIDFLOW_KEEP_EXPORT_LOG", "1");
    command
}

/// The size of a file, 0 when it does not exist yet.
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Kills `child` with SIGKILL once `log` has grown by `bytes`, unless it ends first.
fn kill_after_growing(child: &mut std::process::Child, log: &Path, bytes: u64) {
    let start = size(log);
    while size(log) < start + bytes && child.try_wait().unwrap().is_none() {
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill(); // SIGKILL
}

/// Runs the job once into `sink`, dying as `death` says (or not at all); returns how it ended
/// and its stderr.
fn run_and_die(
    state: &Path,
    sink: &[&str],
    export: &Path,
    death: Option<Death>,
) -> (ExitStatus, String) {
    let mut command = gridflow_keeping_change_sets(state);
    command
        .args(CRASHING_RUN)
        .args(JOB)
        .args(sink)
        .arg("--export")
        .arg(export)
        .stderr(Stdio::piped());
    if let Some(Death::At(point)) = death {
        command.env("GRIDFLOW_KILL_AT", point);
    }
    let mut child = command.spawn().unwrap();
    if let Some(Death::AfterGrowing(bytes)) = death {
        kill_after_growing(&mut child, &state.join("export.log"), bytes);
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The export an uninterrupted run of the job writes, and the change sets it committed to it
/// (its state dir's export log), time by time.
fn uninterrupted_export(name: &str) -> (std::path::PathBuf, Vec<ChangeSet>) {
    let export = scratch_dir(&format!("{name}_uninterrupted"));
    let state = scratch_dir(&format!("{name}_uninterrupted_state"));
    let output = gridflow_keeping_change_sets(&state)
        .args(["run", "--status-interval", "0", "--sink", "none"])
        .args(JOB)
        .arg("--export")
        .arg(&export)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (export, read_change_sets(&state.join("export.log")).unwrap())
}

/// The last logical time the export log at `path` holds, if any.
fn last_time(path: &Path) -> Option<Time> {
    read_change_sets(path)
        .unwrap()
        .last()
        .map(|(time, _)| *time)
}

/// Kills the job again and again, then lets it finish; returns the export of the last run and
/// the change sets the job committed to it across all its runs.
fn crash_and_finish(name: &str, sink: &[&str]) -> (std::path::PathBuf, Vec<ChangeSet>) {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let state = scratch_dir(&format!("{name}_state"));
    let export = scratch_dir(&format!("{name}_export"));
    let mut log = String::new();
    let mut killed_at = Vec::new();
    for death in deaths(seed) {
        let (status, stderr) = run_and_die(&state, sink, &export, Some(death));
        log.push_str(&format!("--- {death:?}: {status}\n{stderr}"));
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error:"),
            "a run failed instead of recovering (seed {seed}):\n{log}"
        );
        // Every run dies, at its fault point or at its kill: none ends first.
        assert!(
            status.signal() == Some(9) && !stderr.contains("done in"),
            "{death:?} ended as {status}, not killed mid-job (seed {seed}):\n{log}"
        );
        killed_at.push(last_time(&state.join("export.log")));
    }
    assert!(
        log.contains("GRIDFLOW_KILL_AT: killed at fold"),
        "no snapshot fold was interrupted (seed {seed}):\n{log}"
    );
    let (status, stderr) = run_and_die(&state, sink, &export, None);
    assert!(
        status.success(),
        "the last run failed (seed {seed}):\n{log}\n{stderr}"
    );
    assert!(stderr.contains("resuming job"), "{stderr}");
    let committed = read_change_sets(&state.join("export.log")).unwrap();
    let end = committed.last().map(|(time, _)| *time);
    assert!(
        killed_at.iter().all(|at| *at < end),
        "a kill landed after the job's last logical time {end:?}: {killed_at:?} (seed {seed})"
    );
    (export, committed)
}

/// Asserts that two jobs committed the same change sets at the same logical times, in order:
/// no change set lost, doubled or altered — even one whose rows a later change set overwrote,
/// which the final tables would not show.
fn assert_same_change_sets(actual: &[ChangeSet], expected: &[ChangeSet], context: &str) {
    for (index, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            a == e,
            "change set #{index} {context} differs from an uninterrupted run's: at logical time \
             {} with {} row changes, against {} with {}",
            a.0,
            a.1.len(),
            e.0,
            e.1.len()
        );
    }
    assert_eq!(
        actual.len(),
        expected.len(),
        "{context}: {} change sets against an uninterrupted run's {}",
        actual.len(),
        expected.len()
    );
}

/// Asserts that two exports hold the same files with the same contents.
fn assert_same_export(actual: &Path, expected: &Path, context: &str) {
    for file in table_files().chain(["errors.csv".to_string()]) {
        let expected_text = std::fs::read_to_string(expected.join(&file)).unwrap();
        let actual_text = std::fs::read_to_string(actual.join(&file)).unwrap();
        assert!(
            expected_text == actual_text,
            "{file} {context} differs from an uninterrupted run's: {} rows against {}",
            actual_text.lines().count(),
            expected_text.lines().count()
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_job_killed_again_and_again_into_sqlite_ends_exactly_as_an_uninterrupted_one() {
    let (expected, expected_sets) = uninterrupted_export("crash_sqlite");
    let database = scratch_dir("crash_sqlite_db").join("warehouse.db");
    let sink = format!("sqlite://{}", database.display());
    let (export, sets) = crash_and_finish("crash_sqlite", &["--sink", &sink]);
    assert_same_change_sets(&sets, &expected_sets, "after kills");
    assert_same_export(&export, &expected, "after kills");
    for table in &ALL[3..] {
        let wanted = std::fs::read_to_string(expected.join(format!("{}.csv", table.name))).unwrap();
        assert!(
            table_as_csv(&database, table) == wanted,
            "{} in SQLite differs from an uninterrupted run's",
            table.name
        );
    }
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_job_killed_again_and_again_into_postgresql_ends_exactly_as_an_uninterrupted_one() {
    let (expected, expected_sets) = uninterrupted_export("crash_postgres");
    let mut schema = ScratchSchema::new("crash");
    let url = postgres_url();
    let (export, sets) = crash_and_finish(
        "crash_postgres",
        &["--sink", &url, "--sink-schema", &schema.name],
    );
    assert_same_change_sets(&sets, &expected_sets, "after kills");
    assert_same_export(&export, &expected, "after kills");
    assert_postgres_tables_equal_the_export(
        &mut schema.client,
        &schema.name,
        &expected,
        "after kills",
    );
}

#[test]
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the test hooks: --features test-hooks"
)]
fn a_two_process_job_killed_in_both_processes_ends_exactly_as_an_uninterrupted_one() {
    let (expected, expected_sets) = uninterrupted_export("crash_processes");
    let cluster = scratch_dir("crash_processes_cluster");
    let export = cluster.join("export");
    let export_log = cluster.join("state").join("process-0").join("export.log");
    // Each run is killed once process 0's export log has grown by `bytes`; returns the last
    // logical time the log then holds.
    let run = |kill_after: Option<u64>| -> Option<Time> {
        let hostfile = cluster.join("hosts");
        let ports = [free_port(), free_port()];
        let hosts = format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]);
        std::fs::write(&hostfile, hosts).unwrap();
        let job: Vec<&str> = JOB
            .iter()
            .copied()
            .filter(|&a| a != "-w" && a != "2")
            .collect();
        let mut processes: Vec<std::process::Child> = (0..2)
            .map(|process| {
                let mut command = gridflow_keeping_change_sets(&cluster.join("state"));
                command
                    .args(CRASHING_RUN)
                    .args(["--sink", "none"])
                    .args(&job)
                    .args(["-n", "2", "-w", "1", "-p", &process.to_string()])
                    .arg("--hostfile")
                    .arg(&hostfile)
                    .stderr(Stdio::piped());
                if process == 0 {
                    command.arg("--export").arg(&export);
                }
                command.spawn().unwrap()
            })
            .collect();
        if let Some(bytes) = kill_after {
            kill_after_growing(&mut processes[0], &export_log, bytes);
            let _ = processes[1].kill();
        }
        let outputs: Vec<std::process::Output> = processes
            .into_iter()
            .map(|p| p.wait_with_output().unwrap())
            .collect();
        let stderr = |p: usize| String::from_utf8_lossy(&outputs[p].stderr).into_owned();
        match kill_after {
            // Process 0 died of the kill, mid-job. Its peer may die of the lost connection
            // before its own kill (timely's network thread panics): either way nothing of it
            // is committed past its log.
            Some(_) => assert!(
                outputs[0].status.signal() == Some(9) && !stderr(0).contains("done in"),
                "process 0 was not killed mid-job: {}\n{}",
                outputs[0].status,
                stderr(0)
            ),
            None => {
                for (p, output) in outputs.iter().enumerate() {
                    assert!(output.status.success(), "{}", stderr(p));
                    assert!(stderr(p).contains("resuming job"), "{}", stderr(p));
                    assert!(!stderr(p).contains("panicked"), "{}", stderr(p));
                }
            }
        }
        last_time(&export_log)
    };
    let killed_at = [run(Some(2_000_000)), run(Some(4_000_000))];
    let end = run(None);
    assert!(
        killed_at.iter().all(|at| at.is_some() && *at < end),
        "the kills did not land mid-job: {killed_at:?}, the job ended at {end:?}"
    );
    let sets = read_change_sets(&export_log).unwrap();
    assert_same_change_sets(
        &sets,
        &expected_sets,
        "after two processes were killed twice",
    );
    assert_same_export(&export, &expected, "after two processes were killed twice");
}

/// Sends SIGINT (Ctrl-C) to a run after `seconds` and waits for it; returns its stderr.
fn interrupt_after(mut command: Command, seconds: u64) -> String {
    let child = command.stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(seconds));
    let output = crate::common::ctrl_c(child);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_wall_clock_job_stopped_with_ctrl_c_resumes_and_its_sink_equals_a_recomputation() {
    let mut schema = ScratchSchema::new("ctrl_c");
    let url = postgres_url();
    let state = scratch_dir("ctrl_c_state");
    let job = || {
        let mut command = gridflow(&state);
        command
            .args(["run", "--status-interval", "0", "--clock", "wall"])
            .args([
                "--users",
                "60",
                "--user-rate",
                "20",
                "--consumption-rate",
                "300",
            ])
            .args(["--checkpoint-interval", "500ms", "-w", "2"])
            .args([
                "--sink",
                &url,
                "--sink-schema",
                &schema.name,
                "--sink-ods-dwd",
            ]);
        command
    };
    let first = interrupt_after(job(), 3);
    assert!(!first.contains("resuming job"), "{first}");
    // Down for a while: the restarted job produces the rows of the gap too, as an
    // uninterrupted one would have.
    std::thread::sleep(Duration::from_secs(1));
    let second = interrupt_after(job(), 3);
    assert!(second.contains("resuming job"), "{second}");

    // The ODS tables hold one job's rows: consumption ids 1..=N, once each.
    let (count, max): (i64, i64) = {
        let row = schema
            .client
            .query_one(
                &format!(
                    "SELECT COUNT(*), COALESCE(MAX(consumption_id), 0) FROM {}.ods_power_consumption",
                    schema.name
                ),
                &[],
            )
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert!(count > 1_000, "{count} consumption rows");
    assert_eq!(count, max, "the consumption ids are not one sequence");

    // DWS and ADS recomputed by the batch twin from the sink's own ODS tables.
    let input = scratch_dir("ctrl_c_ods");
    for (table, dir) in [(&ALL[0], "users"), (&ALL[1], "consumption")] {
        let csv = postgres_table_as_csv(&mut schema.client, &schema.name, table);
        let rows: Vec<&str> = csv.lines().skip(1).collect();
        std::fs::create_dir_all(input.join(dir)).unwrap();
        std::fs::write(input.join(dir).join("rows.csv"), rows.join("\n") + "\n").unwrap();
    }
    let mut replay = CsvReplay::load(
        ReplayConfig {
            dir: input,
            batch_rows: usize::MAX,
            interleave: Interleave::Alternate,
            start: 0,
            tick: 1,
        },
        0,
        1,
    )
    .unwrap();
    assert!(replay.take_errors().is_empty());
    let (mut users, mut consumption) = (BTreeMap::new(), BTreeMap::new());
    while let Some(tick) = replay.next_tick() {
        users.extend(tick.users.into_iter().map(|(k, r)| (k, r.unwrap())));
        consumption.extend(tick.consumption.into_iter().map(|(k, r)| (k, r.unwrap())));
    }
    let recomputed = scratch_dir("ctrl_c_recomputed");
    write_warehouse(&recomputed, &recompute(&users, &consumption, 5_000)).unwrap();
    assert_postgres_tables_equal_the_export(
        &mut schema.client,
        &schema.name,
        &recomputed,
        "recomputed from its ODS tables after a Ctrl-C and a restart",
    );
}
