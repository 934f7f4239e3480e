//! Printing a query result: an aligned table for a person, or CSV for a program.

use std::io::Write;

use clap::ValueEnum;
use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{CellAlignment, Table};

use super::queries::ResultTable;

/// How `gridflow query` prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns with a header, numbers right-aligned, and the row count.
    #[default]
    Table,
    /// CSV with a header row; NULL is an empty field.
    Csv,
}

/// Writes `result` to `out` in `format`.
pub fn write(result: &ResultTable, format: Format, out: &mut impl Write) -> std::io::Result<()> {
    match format {
        Format::Table => write_table(result, out),
        Format::Csv => write_csv(result, out),
    }
}

fn is_number(cell: &str) -> bool {
    !cell.is_empty() && cell.parse::<f64>().is_ok()
}

fn write_table(result: &ResultTable, out: &mut impl Write) -> std::io::Result<()> {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_header(result.columns.clone());
    for row in &result.rows {
        table.add_row(row.iter().map(|cell| cell.as_deref().unwrap_or("")));
    }
    for (index, column) in table.column_iter_mut().enumerate() {
        let numeric = !result.rows.is_empty()
            && result
                .rows
                .iter()
                .all(|row| row[index].as_deref().is_none_or(is_number));
        if numeric {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    writeln!(out, "{table}")?;
    let rows = result.rows.len();
    writeln!(out, "({rows} row{})", if rows == 1 { "" } else { "s" })
}

fn write_csv(result: &ResultTable, out: &mut impl Write) -> std::io::Result<()> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(&result.columns)?;
    for row in &result.rows {
        writer.write_record(row.iter().map(|cell| cell.as_deref().unwrap_or("")))?;
    }
    writer.flush()
}
