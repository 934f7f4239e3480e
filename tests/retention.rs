//! Retention with an id that comes back after its row froze (SPEC §4a): outside the dataflow
//! every table stays keyed. The new live row replaces the frozen row's ODS and DWD values in
//! the export and in a sink writing ODS and DWD, and a later delete of the live row deletes the
//! id's row there. The expected rows are written out here by hand from the input.

use std::path::Path;
use std::process::Output;

use crate::common::{gridflow, scratch_dir};
use crate::sinks::table_as_csv;
use gridflow::sinks::tables::ALL;

/// One user in region 1; consumption rows one per logical time (a minute apart, from
/// 00:01:00), 5-second windows, a five-minute horizon. Consumption id 1 is read at 00:00:01
/// (its window freezes at 00:05:05), ids 10..=13 follow, then id 1 comes back at logical time
/// 00:06:00 with a reading in a live window, and — when `delete` — is deleted at 00:07:00.
fn write_replay(dir: &Path, delete: bool) {
    std::fs::create_dir_all(dir.join("users")).unwrap();
    std::fs::create_dir_all(dir.join("consumption")).unwrap();
    std::fs::write(
        dir.join("users/users.csv"),
        "1,用户0001,居民,1,东城供电区,东城路1号,13800000001,2024-01-01 00:00:00,2024-01-01 00:00:00\n",
    )
    .unwrap();
    let mut rows = vec![
        "1,1,10.00,5.00,2024-01-01 00:00:01,0.00,10.00,first".to_string(),
        "10,1,1.00,0.50,2024-01-01 00:01:59,10.00,11.00,".to_string(),
        "11,1,1.00,0.50,2024-01-01 00:02:59,11.00,12.00,".to_string(),
        "12,1,1.00,0.50,2024-01-01 00:03:59,12.00,13.00,".to_string(),
        "13,1,1.00,0.50,2024-01-01 00:04:59,13.00,14.00,".to_string(),
        "1,1,20.00,10.00,2024-01-01 00:05:30,14.00,34.00,again".to_string(),
    ];
    if delete {
        rows.push("1".to_string());
    }
    std::fs::write(dir.join("consumption/readings.csv"), rows.join("\n") + "\n").unwrap();
}

/// Runs the replay into `export` and the SQLite file `database`, ODS and DWD included.
fn run(name: &str, delete: bool) -> (Output, std::path::PathBuf, std::path::PathBuf) {
    let input = scratch_dir(&format!("{name}_input"));
    write_replay(&input, delete);
    let export = scratch_dir(&format!("{name}_export"));
    let database = scratch_dir(&format!("{name}_db")).join("warehouse.db");
    let output = gridflow(&scratch_dir(&format!("{name}_state")))
        .args(["run", "--status-interval", "0", "--input"])
        .arg(&input)
        .args(["--replay-batch", "1", "--tick", "1m", "--window", "5s"])
        .args(["--retention", "5m", "--sink-ods-dwd", "--sink"])
        .arg(format!("sqlite://{}", database.display()))
        .arg("--export")
        .arg(&export)
        .output()
        .unwrap();
    (output, export, database)
}

/// The rows of an exported table whose first column is `key`.
fn rows_with_key(export: &Path, table: &str, key: &str) -> Vec<String> {
    std::fs::read_to_string(export.join(format!("{table}.csv")))
        .unwrap()
        .lines()
        .skip(1)
        .filter(|line| line.split(',').next() == Some(key))
        .map(str::to_string)
        .collect()
}

#[test]
fn an_id_reused_after_its_row_froze_replaces_that_row_outside_the_dataflow() {
    let (output, export, database) = run("reused_id", false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        rows_with_key(&export, "ods_power_consumption", "1"),
        ["1,1,20.00,10.00,2024-01-01 00:05:30.000,14.00,34.00,again"],
        "{stderr}"
    );
    let details = rows_with_key(&export, "dwd_power_consumption_detail", "1");
    assert_eq!(details.len(), 1, "{details:?}");
    assert!(
        details[0].starts_with("1,1,用户0001,20.00,10.00,2024-01-01 00:05:30.000,1,东城供电区,"),
        "{details:?}"
    );
    // The frozen window keeps what it had: id 1's first reading, alone in its window.
    let frozen = std::fs::read_to_string(export.join("dws_region_daily_stats.csv")).unwrap();
    assert!(
        frozen.contains("1,东城供电区,2024-01-01 00:00:00.000,10.00,5.00,1,10.00,10.00,10.00"),
        "{frozen}"
    );
    // The sink holds what the export holds, table by table.
    for table in &ALL {
        let exported = std::fs::read_to_string(export.join(format!("{}.csv", table.name))).unwrap();
        assert_eq!(table_as_csv(&database, table), exported, "{}", table.name);
    }
}

#[test]
fn a_delete_of_the_reused_id_deletes_its_row_outside_the_dataflow() {
    let (output, export, database) = run("reused_id_deleted", true);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(rows_with_key(&export, "ods_power_consumption", "1").is_empty());
    assert!(rows_with_key(&export, "dwd_power_consumption_detail", "1").is_empty());
    assert_eq!(
        rows_with_key(&export, "ods_power_consumption", "13").len(),
        1,
        "{stderr}"
    );
    for table in &ALL {
        let exported = std::fs::read_to_string(export.join(format!("{}.csv", table.name))).unwrap();
        assert_eq!(table_as_csv(&database, table), exported, "{}", table.name);
    }
}

/// Writes consumption id 1, then — in a later transaction, as a later run of change sets — a new
/// row of the same id with no retraction before it (the id came back after its row froze):
/// the database holds the new row, once.
fn a_reused_id_replaces_its_row_in(database: &mut dyn gridflow::sinks::database::Database) {
    use gridflow::model::TableRow;
    use gridflow::sinks::net::NetOp;
    let first = gridflow::check::testing::reading(1, 1, 1_000, 1_704_067_201_000);
    let again = gridflow::check::testing::reading(1, 1, 2_000, 1_704_067_530_000);
    assert!(database.acquire("job", 0, None).unwrap());
    let first = TableRow::Consumption(first);
    database
        .apply(&[vec![NetOp::Insert(&first, 60_000)]], 60_000, "job")
        .unwrap();
    let again = TableRow::Consumption(again);
    database
        .apply(&[vec![NetOp::Insert(&again, 360_000)]], 360_000, "job")
        .unwrap();
    assert_eq!(database.progress().unwrap(), Some(360_000));
}

#[test]
fn sqlite_takes_a_reused_id_as_an_upsert() {
    let path = scratch_dir("reused_id_sqlite").join("warehouse.db");
    let mut sqlite = gridflow::sinks::sqlite::Sqlite::open(&path).unwrap();
    a_reused_id_replaces_its_row_in(&mut sqlite);
    let rows = table_as_csv(&path, ALL[1]);
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.contains("\n1,1,20.00,"), "{rows}");
}

#[test]
fn postgresql_takes_a_reused_id_as_an_upsert() {
    let mut schema = crate::postgres_scratch::ScratchSchema::new("reused_id");
    let url = crate::postgres_scratch::postgres_url();
    let mut postgres = gridflow::sinks::postgres::Postgres::connect(&url, &schema.name).unwrap();
    a_reused_id_replaces_its_row_in(&mut postgres);
    let rows = crate::sinks::postgres_table_as_csv(&mut schema.client, &schema.name, ALL[1]);
    assert_eq!(rows.lines().count(), 2, "{rows}");
    assert!(rows.contains("\n1,1,20.00,"), "{rows}");
}
