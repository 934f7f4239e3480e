//! The export contract: the final state of each table as CSV, exactly as external tools read it.
//!
//! One file per table, a header row, the columns in the contract's order, rows sorted by the
//! table's key, decimals with exactly two places, timestamps `YYYY-MM-DD HH:MM:SS.mmm`, NULL as
//! an empty field, UTF-8. Malformed input rows go to `errors.csv` beside them.

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::Path;

use crate::model::values::{dashboard_id, format_cents, format_millis};
use crate::model::RowError;
use crate::model::TableRow;
use crate::model::Warehouse;
use crate::sinks::tables::{
    table_and_values, Table, Value, ADS_POWER_DASHBOARD, ALL, DWD_POWER_CONSUMPTION_DETAIL,
    DWS_REGION_DAILY_STATS, DWS_USER_RANKING, ODS_POWER_CONSUMPTION, ODS_POWER_USER,
};

/// The export file of `table`.
pub fn file_name(table: &Table) -> String {
    format!("{}.csv", table.name)
}

/// The export files of every table, in layer order.
pub fn table_files() -> impl Iterator<Item = String> {
    ALL.iter().map(|table| file_name(table))
}

/// A value as the export writes it: NULL is an empty field.
fn field(value: &Value<'_>) -> Cow<'static, str> {
    match value {
        Value::Integer(n) => Cow::Owned(n.to_string()),
        Value::Text(text) => Cow::Owned(text.to_string()),
        Value::OwnedText(text) => Cow::Owned(text.clone()),
        Value::Cents(cents) => Cow::Owned(format_cents(*cents)),
        Value::Millis(millis) => Cow::Owned(format_millis(*millis)),
        Value::Null => Cow::Borrowed(""),
    }
}

/// Writes the six tables of `warehouse` into `dir` (created if absent), each in its key order
/// (the dashboard by its id).
pub fn write_warehouse(dir: &Path, warehouse: &Warehouse) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let mut dashboards: Vec<(String, TableRow)> = warehouse
        .dashboards
        .iter()
        .map(|d| {
            let id = dashboard_id(d.region_id, d.stat_date);
            (id, TableRow::Dashboard(d.clone()))
        })
        .collect();
    dashboards.sort_by(|(a, _), (b, _)| a.cmp(b));
    let tables: [(&Table, Vec<TableRow>); 6] = [
        (
            &ODS_POWER_USER,
            warehouse
                .users
                .iter()
                .cloned()
                .map(TableRow::User)
                .collect(),
        ),
        (
            &ODS_POWER_CONSUMPTION,
            warehouse
                .consumption
                .iter()
                .cloned()
                .map(TableRow::Consumption)
                .collect(),
        ),
        (
            &DWD_POWER_CONSUMPTION_DETAIL,
            warehouse
                .details
                .iter()
                .cloned()
                .map(TableRow::Detail)
                .collect(),
        ),
        (
            &DWS_REGION_DAILY_STATS,
            warehouse
                .region_stats
                .iter()
                .cloned()
                .map(TableRow::RegionStats)
                .collect(),
        ),
        (
            &DWS_USER_RANKING,
            warehouse
                .rankings
                .iter()
                .cloned()
                .map(TableRow::Ranking)
                .collect(),
        ),
        (
            &ADS_POWER_DASHBOARD,
            dashboards.into_iter().map(|(_, row)| row).collect(),
        ),
    ];
    for (table, rows) in &tables {
        write_table(dir, table, rows)?;
    }
    Ok(())
}

/// Writes one table's export file: its exported columns, the rows in the order given.
fn write_table(dir: &Path, table: &Table, rows: &[TableRow]) -> io::Result<()> {
    let header: Vec<&str> = table.exported_columns().collect();
    let exported: Vec<usize> = table
        .columns
        .iter()
        .enumerate()
        .filter(|(_, (name, _))| header.contains(name))
        .map(|(position, _)| position)
        .collect();
    write_csv(
        &dir.join(file_name(table)),
        &header,
        rows.iter().map(|row| {
            let (_, values) = table_and_values(row, 0).expect("an exported row is a table row");
            exported
                .iter()
                .map(|&position| field(&values[position]).into_owned())
                .collect()
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
