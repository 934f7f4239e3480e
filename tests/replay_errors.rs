//! Malformed replay rows: each is reported with its file, line and reason, and every other row
//! is still processed.

use std::fs;

use gridflow::sources::csv_replay::Interleave;

use crate::common::{replay, run_and_export, scratch_dir};

#[test]
fn malformed_rows_are_reported_and_the_rest_is_processed() {
    let input = scratch_dir("malformed_input");
    fs::create_dir_all(input.join("users")).unwrap();
    fs::create_dir_all(input.join("consumption")).unwrap();
    fs::write(
        input.join("users/a.csv"),
        "1,Ann,居民,1,东城供电区,addr,123,2024-01-01 00:00:00,2024-01-01 00:00:00\n\
         2,Bob,工业,2,西城供电区\n\
         ,NoKey,居民,1,东城供电区,,,,\n\
         3,Cat,商业,x,东城供电区,,,,\n\
         4,Dan,农业,1,东城供电区,,,2024-02-30 00:00:00,\n",
    )
    .unwrap();
    fs::write(
        input.join("consumption/a.csv"),
        "10,1,1.50,0.83,2024-01-01 00:00:01.250,,,\n\
         11,1,100000000.00,1.00,2024-01-01 00:00:01,,,\n\
         12,1,abc,1.00,2024-01-01 00:00:01,,,\n\
         13,,1.00,1.00,2024-01-01 00:00:01,,,\n\
         14,1,2.50,1.38,2024-01-01 00:00:02,,,ok\n\
         x15,1,2.50,1.38,2024-01-01 00:00:02,,,\n",
    )
    .unwrap();
    let out = scratch_dir("malformed_output");
    for workers in [1, 2] {
        let metrics = run_and_export(
            replay(&input, 2, Interleave::Alternate),
            workers,
            false,
            5_000,
            &out,
        );
        assert_eq!(metrics.malformed_rows.into_inner(), 8);
        let mut reader = csv::Reader::from_path(out.join("errors.csv")).unwrap();
        assert_eq!(reader.headers().unwrap(), vec!["file", "line", "reason"]);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        let expected_prefixes = [
            (
                "consumption/a.csv",
                2,
                "consumption_amount: 100000000.00 is outside DECIMAL(10,2)",
            ),
            (
                "consumption/a.csv",
                3,
                "consumption_amount: \"abc\" is not a decimal number",
            ),
            ("consumption/a.csv", 4, "user_id is NULL"),
            ("consumption/a.csv", 6, "key \"x15\" is not a whole number"),
            (
                "users/a.csv",
                2,
                "expected 9 fields (or 1 for a delete), found 5",
            ),
            ("users/a.csv", 3, "the key (first field) is missing"),
            (
                "users/a.csv",
                4,
                "region_id: \"x\" is not a whole number in range",
            ),
            (
                "users/a.csv",
                5,
                "create_time: \"2024-02-30 00:00:00\" is not a timestamp",
            ),
        ];
        assert_eq!(rows.len(), expected_prefixes.len(), "{rows:?}");
        for (row, (file, number, reason)) in rows.iter().zip(expected_prefixes) {
            assert_eq!(&row[0], input.join(file).display().to_string());
            assert_eq!(row[1], number.to_string());
            assert!(
                row[2].starts_with(reason),
                "{:?} should start with {reason:?}",
                &row[2]
            );
        }
        let consumption = fs::read_to_string(out.join("ods_power_consumption.csv")).unwrap();
        assert_eq!(
            consumption,
            "consumption_id,user_id,consumption_amount,consumption_cost,consumption_date,meter_reading_before,meter_reading_after,remark\n\
             10,1,1.50,0.83,2024-01-01 00:00:01.250,,,\n\
             14,1,2.50,1.38,2024-01-01 00:00:02.000,,,ok\n"
        );
        let users = fs::read_to_string(out.join("ods_power_user.csv")).unwrap();
        assert_eq!(users.lines().count(), 2, "{users}");
        let stats = fs::read_to_string(out.join("dws_region_daily_stats.csv")).unwrap();
        assert_eq!(
            stats.lines().nth(1),
            Some("1,东城供电区,2024-01-01 00:00:00.000,4.00,2.21,1,2.00,2.50,1.50")
        );
    }
}

#[test]
fn a_record_holding_only_its_key_deletes_it() {
    let input = scratch_dir("delete_input");
    fs::create_dir_all(input.join("users")).unwrap();
    fs::create_dir_all(input.join("consumption")).unwrap();
    fs::write(
        input.join("users/a.csv"),
        "1,Ann,居民,1,东城供电区,,,,\n1\n",
    )
    .unwrap();
    fs::write(
        input.join("consumption/a.csv"),
        "10,1,1.50,0.83,2024-01-01 00:00:01,,,\n",
    )
    .unwrap();
    let out = scratch_dir("delete_output");
    // One row per batch: the user is inserted at one time and deleted at the next.
    run_and_export(
        replay(&input, 1, Interleave::Alternate),
        1,
        false,
        5_000,
        &out,
    );
    let details = fs::read_to_string(out.join("dwd_power_consumption_detail.csv")).unwrap();
    assert_eq!(
        details.lines().nth(1),
        Some("10,1,未知用户,1.50,0.83,2024-01-01 00:00:01.000,0,未知地区,未知")
    );
}
