//! The SQLite sink against the PostgreSQL-computed fixture: every table it holds after a replay
//! must equal the expected export, and a second run of the same job must skip what the first
//! applied instead of applying it twice.

use std::path::Path;
use std::process::Command;

use gridflow::sinks::export::file_name;
use gridflow::sinks::tables::{Table, ALL};

use crate::common::{fixture_dir, gridflow, scratch_dir};
use crate::postgres_scratch::{postgres_url, ScratchSchema};

/// The columns of a table's export file, as its header line.
fn export_header(table: &Table) -> String {
    table.exported_columns().collect::<Vec<_>>().join(",")
}

/// A table of the SQLite file as export-format CSV text (values are stored in that format).
pub fn table_as_csv(database: &Path, table: &Table) -> String {
    let columns = export_header(table);
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection
        .prepare(&format!(
            "SELECT {columns} FROM {} ORDER BY {}",
            table.name,
            table.key.join(", ")
        ))
        .unwrap();
    let width = columns.split(',').count();
    let mut csv = format!("{columns}\n");
    let mut rows = statement.query([]).unwrap();
    while let Some(row) = rows.next().unwrap() {
        let fields: Vec<String> = (0..width)
            .map(|i| match row.get_ref(i).unwrap() {
                rusqlite::types::ValueRef::Null => String::new(),
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8(t.to_vec()).unwrap(),
                other => panic!("unexpected value {other:?} in {}", table.name),
            })
            .collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv
}

/// Replays the fixture into the sink at `url`, with `extra` options; returns the run's stderr.
fn replay_into_sink(url: &str, state: &Path, extra: &[&str]) -> String {
    let output = gridflow(state)
        .args([
            "run",
            "--status-interval",
            "0",
            "--replay-batch",
            "600",
            "--input",
        ])
        .arg(fixture_dir().join("input"))
        .args(["--sink", url])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Replays the fixture into the SQLite file `database`, the job's state beside it.
fn replay_into(database: &Path, extra: &[&str]) -> String {
    let state = database.with_extension("state");
    replay_into_sink(&format!("sqlite://{}", database.display()), &state, extra)
}

fn assert_tables_match_the_fixture(database: &Path, tables: &[&Table]) {
    for table in tables {
        let expected =
            std::fs::read_to_string(fixture_dir().join("expected").join(file_name(table))).unwrap();
        let actual = table_as_csv(database, table);
        assert!(
            expected == actual,
            "{} in the sink differs from the fixture",
            table.name
        );
    }
}

#[test]
fn the_sqlite_sink_holds_the_fixture_answer_in_every_table() {
    let dir = scratch_dir("sink_sqlite_all");
    let database = dir.join("warehouse.db");
    replay_into(&database, &["--sink-ods-dwd", "-w", "2"]);
    assert_tables_match_the_fixture(&database, &ALL);
}

#[test]
fn a_second_run_of_the_same_job_skips_what_the_first_applied() {
    let dir = scratch_dir("sink_sqlite_rerun");
    let database = dir.join("warehouse.db");
    let first = replay_into(&database, &[]);
    assert!(first.contains("(0 change sets skipped"), "{first}");
    let second = replay_into(&database, &[]);
    assert!(
        second.contains("earlier change sets are skipped"),
        "{second}"
    );
    assert!(!second.contains("(0 change sets skipped"), "{second}");
    // Applying a change set again would insert keys the tables hold: a plain INSERT fails, the
    // write is retried, and the retry finds the progress past it. None of that may happen.
    assert!(!second.contains("failed"), "{second}");
    // Only DWS and ADS are sunk by default; they are still exactly the answer.
    assert_tables_match_the_fixture(&database, &ALL[3..]);
    let connection = rusqlite::Connection::open(&database).unwrap();
    let users: i64 = connection
        .query_row("SELECT COUNT(*) FROM ods_power_user", [], |row| row.get(0))
        .unwrap();
    assert_eq!(users, 0, "ODS is not sunk unless asked");
}

#[test]
fn without_a_sink_option_the_run_writes_gridflow_db_in_the_working_directory() {
    let dir = scratch_dir("sink_default");
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("GRIDFLOW_SINK")
        .args([
            "run",
            "--status-interval",
            "0",
            "--clock",
            "simulated",
            "--consumptions",
            "500",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let connection = rusqlite::Connection::open(dir.join("gridflow.db")).unwrap();
    let dashboards: i64 = connection
        .query_row("SELECT COUNT(*) FROM ads_power_dashboard", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert!(dashboards > 0);
}

/// A table of `schema` as export-format CSV text, read with PostgreSQL's own formatting.
pub fn postgres_table_as_csv(client: &mut postgres::Client, schema: &str, table: &Table) -> String {
    use gridflow::sinks::tables::Kind;
    let columns = export_header(table);
    let select: Vec<String> = columns
        .split(',')
        .map(|column| {
            let kind = table
                .columns
                .iter()
                .find(|(name, _)| *name == column)
                .expect("a column")
                .1;
            match kind {
                Kind::Timestamp => format!("to_char({column}, 'YYYY-MM-DD HH24:MI:SS.MS')"),
                _ => format!("{column}::text"),
            }
        })
        .collect();
    // PostgreSQL sorts dashboard ids by its collation; the contract sorts them as bytes.
    let order = if table.name == "ads_power_dashboard" {
        "dashboard_id COLLATE \"C\"".to_string()
    } else {
        // Qualified, or PostgreSQL would sort by the text output columns of the same names.
        table
            .key
            .iter()
            .map(|column| format!("t.{column}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let sql = format!(
        "SELECT {} FROM {schema}.{} AS t ORDER BY {order}",
        select.join(", "),
        table.name,
    );
    let mut csv = format!("{columns}\n");
    for row in client.query(&sql, &[]).unwrap() {
        let fields: Vec<String> = (0..row.len())
            .map(|i| row.get::<_, Option<String>>(i).unwrap_or_default())
            .collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv
}

/// Asserts that the DWS and ADS tables in `schema` equal the export a run wrote to `export`.
pub fn assert_postgres_tables_equal_the_export(
    client: &mut postgres::Client,
    schema: &str,
    export: &Path,
    context: &str,
) {
    for table in &ALL[3..] {
        let name = table.name;
        let expected = std::fs::read_to_string(export.join(file_name(table))).unwrap();
        let actual = postgres_table_as_csv(client, schema, table);
        let first_difference = expected.lines().zip(actual.lines()).find(|(e, a)| e != a);
        assert!(
            expected == actual,
            "{name} in PostgreSQL differs from the run's export {context}: {} rows against {}, \
             first difference {first_difference:?}",
            actual.lines().count(),
            expected.lines().count()
        );
    }
}

#[test]
fn the_postgresql_sink_holds_the_fixture_answer_in_every_table_with_exact_types() {
    let mut schema = ScratchSchema::new("all");
    let url = postgres_url();
    replay_into_sink(
        &url,
        &scratch_dir("sink_postgres_all_state"),
        &["-w", "2", "--sink-ods-dwd", "--sink-schema", &schema.name],
    );
    for table in ALL {
        let name = table.name;
        let expected =
            std::fs::read_to_string(fixture_dir().join("expected").join(file_name(table))).unwrap();
        let actual = postgres_table_as_csv(&mut schema.client, &schema.name, table);
        let first_difference = expected.lines().zip(actual.lines()).find(|(e, a)| e != a);
        assert!(
            expected == actual,
            "{name} in PostgreSQL differs from the fixture: {first_difference:?}"
        );
    }
    let types: Vec<(String, String)> = schema
        .client
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns
             WHERE table_schema = $1 AND table_name = 'dws_region_daily_stats'
             AND column_name IN ('stat_date', 'total_consumption') ORDER BY column_name",
            &[&schema.name],
        )
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(
        types,
        vec![
            (
                "stat_date".to_string(),
                "timestamp without time zone".to_string()
            ),
            ("total_consumption".to_string(), "numeric".to_string())
        ]
    );
}

#[test]
fn the_postgresql_sink_survives_its_connection_being_killed_without_losing_or_doubling_a_change() {
    let mut schema = ScratchSchema::new("kill");
    let export = scratch_dir("sink_postgres_kill_export");
    let mut child = gridflow(&scratch_dir("sink_postgres_kill_state"))
        .args([
            "run",
            "--status-interval",
            "0",
            "--clock",
            "simulated",
            "--seed",
            "3",
        ])
        .args([
            "--consumptions",
            "6000",
            "--user-rate",
            "3",
            "--consumption-rate",
            "10",
            "--progress-rows",
            "20",
            // Many small transactions to kill the connection in (the default tick and
            // checkpoint interval would make this run a handful).
            "--tick",
            "1s",
            "--checkpoint-interval",
            "20ms",
        ])
        .args(["--sink", &postgres_url(), "--sink-schema", &schema.name])
        .arg("--export")
        .arg(&export)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Terminate the sink's backend a few times while the run writes.
    let mut killed = 0;
    for _ in 0..200 {
        if killed == 3 || child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(150));
        let rows = schema
            .client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = 'gridflow-sink/' || $1::text",
                &[&schema.name],
            )
            .unwrap();
        killed += rows.len();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        killed > 0,
        "the run ended before its backend could be terminated"
    );
    assert!(stderr.contains("retry 1 of 3"), "{stderr}");
    assert_postgres_tables_equal_the_export(
        &mut schema.client,
        &schema.name,
        &export,
        &format!("after {killed} kills"),
    );
}

#[test]
fn a_second_job_on_the_same_sink_fails_clearly_while_the_first_holds_it() {
    let dir = scratch_dir("sink_lease");
    let url = format!("sqlite://{}", dir.join("warehouse.db").display());
    let run = |state: &str, extra: &[&str]| {
        let mut command = gridflow(&dir.join(state));
        command
            .args(["run", "--status-interval", "0", "--sink", &url])
            .args(extra);
        command
    };
    let first = run(
        "first",
        &[
            "--clock",
            "wall",
            "--tick",
            "50ms",
            "--consumption-rate",
            "50",
        ],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let bounded = ["--clock", "simulated", "--consumptions", "200"];
    let second = run("second", &bounded).output().unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(
        second.status.code(),
        Some(3),
        "the second job ran beside the first: {stderr}"
    );
    assert!(stderr.contains("held by another running job"), "{stderr}");

    let first = crate::common::ctrl_c(first);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    // A clean exit gives the lease up, but the tables are the first job's: another job may
    // not mix its rows into them ...
    let third = run("third", &bounded).output().unwrap();
    let stderr = String::from_utf8_lossy(&third.stderr);
    assert_eq!(third.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.contains("holds the tables of another job"),
        "{stderr}"
    );
    // ... unless it starts over, clearing them; it starts at once, the lease being free.
    let fourth = run("third", &[&bounded[..], &["--reset"]].concat())
        .output()
        .unwrap();
    assert!(
        fourth.status.success(),
        "{}",
        String::from_utf8_lossy(&fourth.stderr)
    );
}

#[test]
fn a_job_whose_lease_was_taken_over_is_fenced_and_writes_nothing() {
    use gridflow::sinks::database::Database;
    use gridflow::sinks::sqlite::Sqlite;
    use gridflow::sinks::SinkError;
    let dir = scratch_dir("sink_fence");
    let path = dir.join("warehouse.db");
    let mut first = Sqlite::open(&path).unwrap();
    let mut second = Sqlite::open(&path).unwrap();
    assert!(first.acquire("first", 0, None).unwrap());
    first.apply(&[], 10, "first").unwrap();
    // The second job counts every holder as dead (as after a lapsed lease) and takes over.
    assert!(
        !second.acquire("second", 0, None).unwrap(),
        "a live holder keeps the lease"
    );
    assert!(second.acquire("second", i64::MAX, None).unwrap());
    assert!(matches!(
        first.apply(&[], 20, "first"),
        Err(SinkError::Fenced)
    ));
    assert_eq!(
        second.progress().unwrap(),
        Some(10),
        "the fenced write changed nothing"
    );
    second.apply(&[], 30, "second").unwrap();
    assert_eq!(first.progress().unwrap(), Some(30));
}

#[test]
fn a_constraint_error_is_retried_then_stops_the_job_naming_the_table_and_time() {
    constraint_error_stops_the_job("constraint", "1");
}

#[test]
fn a_constraint_error_stops_a_job_of_two_workers_the_same_way() {
    constraint_error_stops_the_job("constraint_w2", "2");
}

/// A job whose writes break a constraint: retried, then stopped with exit code 4 and one line
/// naming the time, the tables and the server's message; no panic, nothing half-written.
/// A scratch schema whose sink tables exist, empty and unclaimed, with a constraint that the
/// dashboard's rows break: a first run creates the tables; then they are emptied, the progress
/// forgotten, and the constraint added.
fn schema_refusing_dashboards(name: &str, url: &str) -> ScratchSchema {
    let mut schema = ScratchSchema::new(name);
    let first_state = scratch_dir(&format!("{name}_first_state"));
    replay_into_sink(url, &first_state, &["--sink-schema", &schema.name]);
    schema
        .client
        .batch_execute(&format!(
            "TRUNCATE {s}.dws_region_daily_stats, {s}.dws_user_ranking, {s}.ads_power_dashboard;
             DELETE FROM {s}.gridflow_progress;
             ALTER TABLE {s}.ads_power_dashboard ADD CONSTRAINT tiny CHECK (total_consumption < 1)",
            s = schema.name
        ))
        .unwrap();
    schema
}

fn constraint_error_stops_the_job(name: &str, workers: &str) {
    let url = postgres_url();
    let mut schema = schema_refusing_dashboards(name, &url);
    let output = gridflow(&scratch_dir(&format!("{name}_state")))
        .args(["run", "--status-interval", "0", "--input"])
        .arg(fixture_dir().join("input"))
        .args(["--sink", &url, "--sink-schema", &schema.name, "-w", workers])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: the sink stopped"), "{stderr}");
    assert!(stderr.contains("retry 3 of 3"), "{stderr}");
    assert!(
        stderr.contains("the sink stopped at logical time 17040672")
            && stderr.contains("after 3 retries")
            && stderr.contains("table ads_power_dashboard: ERROR: new row")
            && stderr.contains("violates check constraint \"tiny\""),
        "{stderr}"
    );
    // Nothing of the failed change set is in the tables: it was one transaction.
    let dashboards: i64 = schema
        .client
        .query_one(
            &format!(
                "SELECT COUNT(*) FROM {}.dws_region_daily_stats",
                schema.name
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(dashboards, 0);
}

/// A run of the generator into PostgreSQL through `url` and into an export.
fn run_through(url: &str, schema: &str, name: &str) -> (std::process::Output, std::path::PathBuf) {
    let export = scratch_dir(&format!("{name}_export"));
    let output = gridflow(&scratch_dir(&format!("{name}_state")))
        .args(["run", "--status-interval", "0", "--clock", "simulated"])
        .args(["--seed", "3", "--consumptions", "2000"])
        .args(["--sink", url, "--sink-schema", schema])
        .arg("--export")
        .arg(&export)
        .output()
        .unwrap();
    (output, export)
}

#[test]
fn the_postgresql_sink_opens_through_a_connection_cut_while_it_opens() {
    let mut schema = ScratchSchema::new("open_cut");
    let proxy = crate::cut_proxy::start(&postgres_url(), 1);
    let url = crate::cut_proxy::through(&postgres_url(), &proxy);
    let (output, export) = run_through(&url, &schema.name, "sink_open_cut");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("opening the sink failed") && stderr.contains("retry 1 of 3"),
        "{stderr}"
    );
    assert!(proxy.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert_postgres_tables_equal_the_export(
        &mut schema.client,
        &schema.name,
        &export,
        "after its connection was cut while it opened",
    );
}

#[test]
fn a_postgresql_sink_that_cannot_be_opened_after_its_retries_stops_the_job_with_exit_4() {
    let schema = ScratchSchema::new("open_never");
    let proxy = crate::cut_proxy::start(&postgres_url(), usize::MAX);
    let url = crate::cut_proxy::through(&postgres_url(), &proxy);
    let (output, _) = run_through(&url, &schema.name, "sink_open_never");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(4), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: cannot open the PostgreSQL sink: the sink cannot be opened")
            && last.contains("after 3 retries"),
        "{stderr}"
    );
    assert_eq!(proxy.accepted.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[test]
fn a_sink_failing_in_process_0_stops_every_process_of_a_wall_clock_job_with_its_exit_code() {
    let url = postgres_url();
    let schema = schema_refusing_dashboards("processes_fail", &url);
    let cluster = scratch_dir("processes_fail");
    let hostfile = cluster.join("hosts");
    let ports = [crate::processes::free_port(), crate::processes::free_port()];
    let hosts = format!("127.0.0.1:{}\n127.0.0.1:{}\n", ports[0], ports[1]);
    std::fs::write(&hostfile, hosts).unwrap();
    // A wall-clock job runs until it is stopped: only the failure can end it.
    let processes: Vec<std::process::Child> = (0..2)
        .map(|process| {
            gridflow(&cluster.join("state"))
                .args(["run", "--status-interval", "0", "--clock", "wall"])
                .args(["--consumption-rate", "50", "--checkpoint-interval", "200ms"])
                .args(["--sink", &url, "--sink-schema", &schema.name])
                .args(["-n", "2", "-p", &process.to_string(), "--hostfile"])
                .arg(&hostfile)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = std::time::Instant::now();
    let mut outputs = Vec::new();
    for mut process in processes {
        // The sink gives up after its retries (1 + 2 + 4 s); every process stops soon after.
        while process.try_wait().unwrap().is_none() && started.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = process.kill();
        outputs.push(process.wait_with_output().unwrap());
    }
    for (process, output) in outputs.iter().enumerate() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(4), "process {process}: {stderr}");
        assert!(!stderr.contains("panicked"), "process {process}: {stderr}");
    }
    let last = |output: &std::process::Output| {
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        stderr.lines().last().unwrap_or_default().to_string()
    };
    assert!(last(&outputs[0]).starts_with("error: the sink stopped"));
    assert!(
        last(&outputs[1]).starts_with("error: process 0 of the job failed: the sink stopped"),
        "{}",
        last(&outputs[1])
    );
}
