//! The SQLite sink against the PostgreSQL-computed fixture: every table it holds after a replay
//! must equal the expected export, and a second run of the same job must skip what the first
//! applied instead of applying it twice.

use std::path::Path;
use std::process::Command;

use crate::common::{fixture_dir, scratch_dir};

/// Each sunk table and the columns of its export file, in order, with its key order.
const TABLES: [(&str, &str, &str); 6] = [
    ("ods_power_user", "user_id,user_name,usage_type,region_id,region_name,address,phone,create_time,update_time", "user_id"),
    (
        "ods_power_consumption",
        "consumption_id,user_id,consumption_amount,consumption_cost,consumption_date,meter_reading_before,meter_reading_after,remark",
        "consumption_id",
    ),
    (
        "dwd_power_consumption_detail",
        "consumption_id,user_id,user_name,consumption_amount,consumption_cost,consumption_date,region_id,region_name,usage_type",
        "consumption_id",
    ),
    (
        "dws_region_daily_stats",
        "region_id,region_name,stat_date,total_consumption,total_cost,user_count,avg_consumption,max_consumption,min_consumption",
        "region_id, stat_date",
    ),
    (
        "dws_user_ranking",
        "user_id,user_name,region_id,region_name,stat_date,total_consumption,total_cost,ranking",
        "user_id, stat_date",
    ),
    (
        "ads_power_dashboard",
        "dashboard_id,stat_date,region_id,region_name,total_consumption,total_cost,user_count,avg_consumption,peak_hour,peak_consumption,top_user_id,top_user_name,top_user_consumption",
        "dashboard_id",
    ),
];

/// A table of the SQLite file as export-format CSV text (values are stored in that format).
fn table_as_csv(database: &Path, table: &str, columns: &str, order: &str) -> String {
    let connection = rusqlite::Connection::open(database).unwrap();
    let mut statement = connection
        .prepare(&format!("SELECT {columns} FROM {table} ORDER BY {order}"))
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
                other => panic!("unexpected value {other:?} in {table}"),
            })
            .collect();
        csv.push_str(&fields.join(","));
        csv.push('\n');
    }
    csv
}

fn replay_into(database: &Path, extra: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args([
            "run",
            "--status-interval",
            "0",
            "--replay-batch",
            "600",
            "--input",
        ])
        .arg(fixture_dir().join("input"))
        .arg("--sink")
        .arg(format!("sqlite://{}", database.display()))
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    stderr
}

fn assert_tables_match_the_fixture(database: &Path, tables: &[(&str, &str, &str)]) {
    for (table, columns, order) in tables {
        let expected =
            std::fs::read_to_string(fixture_dir().join("expected").join(format!("{table}.csv")))
                .unwrap();
        let actual = table_as_csv(database, table, columns, order);
        assert!(
            expected == actual,
            "{table} in the sink differs from the fixture"
        );
    }
}

#[test]
fn the_sqlite_sink_holds_the_fixture_answer_in_every_table() {
    let dir = scratch_dir("sink_sqlite_all");
    let database = dir.join("warehouse.db");
    replay_into(&database, &["--sink-ods-dwd", "-w", "2"]);
    assert_tables_match_the_fixture(&database, &TABLES);
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
    // Only DWS and ADS are sunk by default; they are still exactly the answer.
    assert_tables_match_the_fixture(&database, &TABLES[3..]);
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
