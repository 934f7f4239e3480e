//! `gridflow query` against both sinks, held to answers computed here from the fixture's expected
//! tables (which PostgreSQL computed, independent of gridflow) by plain Rust versions of the
//! source's section 7 queries.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use rust_decimal::{Decimal, RoundingStrategy};

use crate::common::{fixture_dir, scratch_dir};
use crate::postgres_scratch::{postgres_url, ScratchSchema};

/// A table of the fixture's expected output: one map from column to value per row.
fn expected_table(name: &str) -> Vec<BTreeMap<String, String>> {
    let path = fixture_dir().join("expected").join(format!("{name}.csv"));
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|record| {
            let record = record.unwrap();
            headers
                .iter()
                .zip(record.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn decimal(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn two_places(value: Decimal) -> String {
    let mut value = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
    value.rescale(2);
    value.to_string()
}

fn integer(text: &str) -> i64 {
    text.parse().unwrap()
}

/// Rows of cells, as the query prints them in CSV.
type Rows = Vec<Vec<String>>;

/// 7.1 over the expected dashboard, without update_time (a processing time the fixture lacks).
fn load_monitoring(threshold: Decimal) -> Rows {
    let mut rows: Vec<_> = expected_table("ads_power_dashboard")
        .into_iter()
        .filter(|row| decimal(&row["total_consumption"]) > threshold)
        .collect();
    rows.sort_by(|a, b| {
        decimal(&b["total_consumption"])
            .cmp(&decimal(&a["total_consumption"]))
            .then(integer(&a["region_id"]).cmp(&integer(&b["region_id"])))
            .then(a["stat_date"].cmp(&b["stat_date"]))
    });
    rows.iter()
        .map(|row| {
            ["region_name", "stat_date", "total_consumption", "peak_hour"]
                .iter()
                .map(|column| row[*column].clone())
                .collect()
        })
        .collect()
}

/// 7.2 over the expected ranking.
fn top_users(top: i64) -> Rows {
    let mut rows: Vec<_> = expected_table("dws_user_ranking")
        .into_iter()
        .filter(|row| integer(&row["ranking"]) <= top)
        .collect();
    rows.sort_by_key(|row| {
        (
            integer(&row["region_id"]),
            row["stat_date"].clone(),
            integer(&row["ranking"]),
            integer(&row["user_id"]),
        )
    });
    rows.iter()
        .map(|row| {
            [
                "region_name",
                "stat_date",
                "ranking",
                "user_name",
                "total_consumption",
                "total_cost",
            ]
            .iter()
            .map(|column| row[*column].clone())
            .collect()
        })
        .collect()
}

/// 7.3 over every expected dashboard row (all of a short replay's updates fall on one day).
fn peak_hours() -> Rows {
    let mut hours: BTreeMap<i64, (i64, Decimal)> = BTreeMap::new();
    for row in expected_table("ads_power_dashboard") {
        let hour = hours.entry(integer(&row["peak_hour"])).or_default();
        hour.0 += 1;
        hour.1 += decimal(&row["peak_consumption"]);
    }
    let mut hours: Vec<_> = hours.into_iter().collect();
    hours.sort_by(|(hour_a, (_, a)), (hour_b, (_, b))| b.cmp(a).then(hour_a.cmp(hour_b)));
    hours
        .into_iter()
        .map(|(hour, (count, sum))| vec![hour.to_string(), count.to_string(), two_places(sum)])
        .collect()
}

/// 7.4 over the expected region stats from `since` (default: an hour before the newest window).
fn user_growth(since: Option<&str>) -> Rows {
    let stats = expected_table("dws_region_daily_stats");
    let newest = stats
        .iter()
        .map(|row| row["stat_date"].clone())
        .max()
        .unwrap();
    let since = since.map_or_else(
        || {
            let newest =
                chrono::NaiveDateTime::parse_from_str(&newest, "%Y-%m-%d %H:%M:%S%.f").unwrap();
            (newest - chrono::Duration::hours(1))
                .format("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        },
        str::to_string,
    );
    let mut regions: BTreeMap<i64, Vec<&BTreeMap<String, String>>> = BTreeMap::new();
    for row in stats.iter().filter(|row| row["stat_date"] >= since) {
        regions
            .entry(integer(&row["region_id"]))
            .or_default()
            .push(row);
    }
    let mut rows = Vec::new();
    for windows in regions.values_mut() {
        windows.sort_by(|a, b| a["stat_date"].cmp(&b["stat_date"]));
        let mut previous: Option<i64> = None;
        for row in windows.iter() {
            let users = integer(&row["user_count"]);
            let growth = previous.filter(|p| *p != 0).map(|p| {
                two_places(Decimal::from(users - p) * Decimal::from(100) / Decimal::from(p))
            });
            rows.push(vec![
                row["region_name"].clone(),
                row["stat_date"].clone(),
                users.to_string(),
                previous.map_or(String::new(), |p| p.to_string()),
                growth.unwrap_or_default(),
            ]);
            previous = Some(users);
        }
    }
    rows
}

/// The gridflow binary with `DATABASE_URL` set to `database_url`, or unset, and no sink from the
/// environment otherwise.
fn gridflow_command(database_url: Option<&str>) -> Command {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut command = crate::common::gridflow(&scratch_dir(&format!("queries_state_{run}")));
    command
        .env_remove("DATABASE_URL")
        .env_remove("GRIDFLOW_SINK");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    command
}

/// Runs `gridflow query` with `args`; its stdout, after checking it succeeded.
fn query(args: &[&str], database_url: Option<&str>) -> String {
    let output = gridflow_command(database_url)
        .arg("query")
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "gridflow query {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The CSV a query printed: its header and rows.
fn parse_csv(text: &str) -> (Vec<String>, Rows) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|record| record.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// Replays the fixture with 2 workers into the sink `--sink` names, or into `DATABASE_URL`.
fn replay(sink: Option<&str>, database_url: Option<&str>, extra: &[&str]) {
    let mut command = gridflow_command(database_url);
    command
        .args(["run", "--status-interval", "0", "-w", "2", "--input"])
        .arg(fixture_dir().join("input"))
        .args(extra);
    if let Some(sink) = sink {
        command.args(["--sink", sink]);
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every query, with default and explicit options, on the sink `sink_args` name.
fn assert_queries_answer_as_expected(sink_args: &[&str], database_url: Option<&str>) {
    let run = |name: &str, options: &[&str]| {
        let args: Vec<&str> = [name, "--format", "csv"]
            .iter()
            .chain(sink_args)
            .chain(options)
            .copied()
            .collect();
        parse_csv(&query(&args, database_url))
    };

    // The replay's logical times are 2024-01-01 00:00:01..05 (start + (batch + 1) × 1 s).
    let replay_times: Vec<String> = (1..=5)
        .map(|s| format!("2024-01-01 00:00:0{s}.000"))
        .collect();
    for threshold in ["500", "1500", "2383.20", "50000"] {
        let (header, rows) = run("load-monitoring", &["--threshold", threshold]);
        assert_eq!(
            header,
            [
                "region_name",
                "stat_date",
                "total_consumption",
                "peak_hour",
                "update_time"
            ]
        );
        let expected = load_monitoring(decimal(threshold));
        assert_eq!(rows.len(), expected.len(), "threshold {threshold}");
        for (row, expected) in rows.iter().zip(&expected) {
            assert_eq!(&row[..4], &expected[..], "threshold {threshold}");
            assert!(replay_times.contains(&row[4]), "update_time {}", row[4]);
        }
    }
    assert!(!load_monitoring(decimal("1500")).is_empty());
    assert!(load_monitoring(decimal("50000")).is_empty());

    assert_eq!(run("top-users", &[]).1, top_users(10));
    assert_eq!(run("top-users", &["--top", "2"]).1, top_users(2));
    assert_ne!(top_users(2), top_users(10));

    let (header, rows) = run("peak-hours", &[]);
    assert_eq!(header, ["hour", "region_count", "total_peak_cons"]);
    assert_eq!(rows, peak_hours());
    assert_eq!(run("peak-hours", &["--date", "2024-01-01"]).1, peak_hours());
    assert!(run("peak-hours", &["--date", "2024-01-02"]).1.is_empty());

    assert_eq!(run("user-growth", &[]).1, user_growth(None));
    let since = "2024-01-01 00:30:00.000";
    assert_eq!(
        run("user-growth", &["--since", "2024-01-01 00:30:00"]).1,
        user_growth(Some(since))
    );
    assert!(user_growth(None)
        .iter()
        .any(|row| !row[4].is_empty() && row[4] != "0.00"));
}

#[test]
fn business_queries_on_the_sqlite_sink_give_the_independently_computed_answers() {
    let dir = scratch_dir("queries_sqlite");
    let database = dir.join("warehouse.db");
    let url = format!("sqlite://{}", database.display());
    replay(Some(&url), None, &[]);
    assert_queries_answer_as_expected(&["--sink", &url], None);
}

#[test]
fn business_queries_on_the_postgresql_sink_named_by_database_url_give_the_same_answers() {
    let schema = ScratchSchema::new("queries");
    let url = postgres_url();
    // Neither the run nor the queries get --sink: DATABASE_URL names the sink.
    replay(None, Some(&url), &["--sink-schema", &schema.name]);
    assert_queries_answer_as_expected(&["--sink-schema", &schema.name], Some(&url));
}

#[test]
fn the_table_format_prints_a_header_the_rows_and_their_count() {
    let dir = scratch_dir("queries_table");
    let database = dir.join("warehouse.db");
    let url = format!("sqlite://{}", database.display());
    replay(Some(&url), None, &[]);
    let printed = query(&["peak-hours", "--sink", &url], None);
    let lines: Vec<&str> = printed.lines().collect();
    let expected = peak_hours();
    assert!(
        lines[0].contains("| hour | region_count | total_peak_cons |"),
        "{printed}"
    );
    assert_eq!(lines.len(), 2 + expected.len() + 1, "{printed}");
    for (line, row) in lines[2..].iter().zip(&expected) {
        let cells: Vec<&str> = line
            .split('|')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells, *row, "{printed}");
    }
    assert_eq!(
        lines.last().copied(),
        Some(format!("({} rows)", expected.len()).as_str())
    );
}

#[test]
fn a_query_on_a_missing_database_file_fails_naming_it() {
    let dir = scratch_dir("queries_missing");
    let missing = dir.join("nothing-here.db");
    let output = Command::new(env!("CARGO_BIN_EXE_gridflow"))
        .args(["query", "top-users", "--sink"])
        .arg(format!("sqlite://{}", missing.display()))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("nothing-here.db does not exist"),
        "{stderr}"
    );
    assert!(
        !Path::new(&missing).exists(),
        "a query never creates the file"
    );
}

#[test]
fn a_query_on_a_postgresql_schema_without_the_tables_fails_saying_how_to_create_them() {
    let schema = ScratchSchema::new("queries_empty");
    let output = gridflow_command(None)
        .args(["query", "peak-hours", "--sink", &postgres_url()])
        .args(["--sink-schema", &schema.name])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("relation \"ads_power_dashboard\" does not exist")
            && stderr.contains("created by `gridflow run` with the same --sink and --sink-schema"),
        "{stderr}"
    );
}
