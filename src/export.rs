//! The export contract: the final state of each table as CSV, exactly as external tools read it.
//!
//! One file per table, a header row, the columns in the contract's order, rows sorted by the
//! table's key, decimals with exactly two places, timestamps `YYYY-MM-DD HH:MM:SS.mmm`, NULL as
//! an empty field, UTF-8. Malformed input rows go to `errors.csv` beside them.

use std::fs;
use std::io;
use std::path::Path;

use crate::csv_input::RowError;
use crate::reference::Warehouse;
use crate::rows::{Dashboard, Millis, RegionId};
use crate::values::{format_cents, format_compact_seconds, format_millis};

/// The export file of each table, in layer order.
pub const TABLE_FILES: [&str; 6] = [
    "ods_power_user.csv",
    "ods_power_consumption.csv",
    "dwd_power_consumption_detail.csv",
    "dws_region_daily_stats.csv",
    "dws_user_ranking.csv",
    "ads_power_dashboard.csv",
];

/// `'DASHBOARD_' || region_id || '_' || to_char(stat_date, 'YYYYMMDDHH24MISS')`.
pub fn dashboard_id(region_id: RegionId, stat_date: Millis) -> String {
    format!(
        "DASHBOARD_{region_id}_{}",
        format_compact_seconds(stat_date)
    )
}

fn text(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

fn optional<T>(value: Option<T>, format: impl Fn(T) -> String) -> String {
    value.map(format).unwrap_or_default()
}

/// Writes the six tables of `warehouse` into `dir` (created if absent).
pub fn write_warehouse(dir: &Path, warehouse: &Warehouse) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    write_csv(
        &dir.join(TABLE_FILES[0]),
        &[
            "user_id",
            "user_name",
            "usage_type",
            "region_id",
            "region_name",
            "address",
            "phone",
            "create_time",
            "update_time",
        ],
        warehouse.users.iter().map(|u| {
            vec![
                u.user_id.to_string(),
                text(&u.user_name),
                text(&u.usage_type),
                optional(u.region_id, |r| r.to_string()),
                text(&u.region_name),
                text(&u.address),
                text(&u.phone),
                optional(u.create_time, format_millis),
                optional(u.update_time, format_millis),
            ]
        }),
    )?;
    write_csv(
        &dir.join(TABLE_FILES[1]),
        &[
            "consumption_id",
            "user_id",
            "consumption_amount",
            "consumption_cost",
            "consumption_date",
            "meter_reading_before",
            "meter_reading_after",
            "remark",
        ],
        warehouse.consumption.iter().map(|c| {
            vec![
                c.consumption_id.to_string(),
                c.user_id.to_string(),
                format_cents(c.consumption_amount),
                format_cents(c.consumption_cost),
                format_millis(c.consumption_date),
                optional(c.meter_reading_before, format_cents),
                optional(c.meter_reading_after, format_cents),
                text(&c.remark),
            ]
        }),
    )?;
    write_csv(
        &dir.join(TABLE_FILES[2]),
        &[
            "consumption_id",
            "user_id",
            "user_name",
            "consumption_amount",
            "consumption_cost",
            "consumption_date",
            "region_id",
            "region_name",
            "usage_type",
        ],
        warehouse.details.iter().map(|d| {
            vec![
                d.fact.consumption_id.to_string(),
                d.fact.user_id.to_string(),
                d.dim.user_name.to_string(),
                format_cents(d.fact.amount),
                format_cents(d.fact.cost),
                format_millis(d.fact.date),
                d.dim.region_id.to_string(),
                d.dim.region_name.to_string(),
                d.dim.usage_type.to_string(),
            ]
        }),
    )?;
    write_csv(
        &dir.join(TABLE_FILES[3]),
        &[
            "region_id",
            "region_name",
            "stat_date",
            "total_consumption",
            "total_cost",
            "user_count",
            "avg_consumption",
            "max_consumption",
            "min_consumption",
        ],
        warehouse.region_stats.iter().map(|s| {
            vec![
                s.region_id.to_string(),
                s.region_name.to_string(),
                format_millis(s.stat_date),
                format_cents(s.total_consumption),
                format_cents(s.total_cost),
                s.user_count.to_string(),
                format_cents(s.avg_consumption),
                format_cents(s.max_consumption),
                format_cents(s.min_consumption),
            ]
        }),
    )?;
    write_csv(
        &dir.join(TABLE_FILES[4]),
        &[
            "user_id",
            "user_name",
            "region_id",
            "region_name",
            "stat_date",
            "total_consumption",
            "total_cost",
            "ranking",
        ],
        warehouse.rankings.iter().map(|r| {
            vec![
                r.user_id.to_string(),
                r.user_name.to_string(),
                r.region_id.to_string(),
                r.region_name.to_string(),
                format_millis(r.stat_date),
                format_cents(r.total_consumption),
                format_cents(r.total_cost),
                r.ranking.to_string(),
            ]
        }),
    )?;
    let mut dashboards: Vec<(String, &Dashboard)> = warehouse
        .dashboards
        .iter()
        .map(|d| (dashboard_id(d.region_id, d.stat_date), d))
        .collect();
    dashboards.sort();
    write_csv(
        &dir.join(TABLE_FILES[5]),
        &[
            "dashboard_id",
            "stat_date",
            "region_id",
            "region_name",
            "total_consumption",
            "total_cost",
            "user_count",
            "avg_consumption",
            "peak_hour",
            "peak_consumption",
            "top_user_id",
            "top_user_name",
            "top_user_consumption",
        ],
        dashboards.into_iter().map(|(id, d)| {
            vec![
                id,
                format_millis(d.stat_date),
                d.region_id.to_string(),
                d.region_name.to_string(),
                format_cents(d.total_consumption),
                format_cents(d.total_cost),
                d.user_count.to_string(),
                format_cents(d.avg_consumption),
                d.peak_hour.to_string(),
                format_cents(d.peak_consumption),
                d.top_user_id.to_string(),
                d.top_user_name.to_string(),
                format_cents(d.top_user_consumption),
            ]
        }),
    )
}

/// Writes `errors.csv`: one row per malformed input row, sorted by file and line.
pub fn write_errors(dir: &Path, errors: &[RowError]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut errors = errors.to_vec();
    errors.sort();
    write_csv(
        &dir.join("errors.csv"),
        &["file", "line", "reason"],
        errors.iter().map(|e| {
            vec![
                e.file.display().to_string(),
                e.line.to_string(),
                e.reason.clone(),
            ]
        }),
    )
}

/// Writes one CSV file: the header, then the rows, quoting only fields that need it.
fn write_csv(
    path: &Path,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> io::Result<()> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_path(path)?;
    writer.write_record(header)?;
    for row in rows {
        writer.write_record(&row)?;
    }
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_ids_follow_the_source_format() {
        assert_eq!(
            dashboard_id(3, 1_704_067_245_000),
            "DASHBOARD_3_20240101000045"
        );
        assert_eq!(
            dashboard_id(10, 1_704_067_200_000),
            "DASHBOARD_10_20240101000000"
        );
    }
}
