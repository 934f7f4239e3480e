//! What a verification found, and how it is printed: the logical time, the oracle, and for each
//! table that differs the rows only gridflow has and the rows only the oracle has, as the export
//! would write them — at most a screenful, then a count.

use std::fmt;

use crate::check::oracle::TextRow;
use crate::model::values::{format_cents, format_millis};
use crate::model::TableRow;
use crate::model::Time;
use crate::sinks::tables::{table_and_values, Kind, Table, Value};

/// How many differing rows a report prints before it only counts them.
pub const SHOWN_ROWS: usize = 30;

/// The oracle gridflow's tables were held against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oracle {
    /// The batch twin, `check::twin::RetainedJob`.
    Twin,
    /// PostgreSQL running `docs/queries/layers.sql`.
    Postgres,
}

impl fmt::Display for Oracle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Oracle::Twin => "the batch twin",
            Oracle::Postgres => "PostgreSQL",
        })
    }
}

/// One differing row: its table, its text, and how many more copies gridflow holds than the
/// oracle (negative: fewer).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DifferingRow {
    pub table: &'static str,
    pub row: TextRow,
    pub surplus: isize,
}

/// The first difference a verification found.
#[derive(Clone, Debug)]
pub struct Difference {
    /// The logical time at which the tables differ.
    pub time: Time,
    /// Which logical time of the input it is (0-based), and how many the input has so far.
    pub tick: u64,
    pub oracle: Oracle,
    /// Every differing row, sorted by table (in layer order) and row.
    pub rows: Vec<DifferingRow>,
}

impl Difference {
    /// The names of the tables that differ, in layer order.
    pub fn tables(&self) -> Vec<&'static str> {
        let mut tables: Vec<&'static str> = self.rows.iter().map(|r| r.table).collect();
        tables.dedup();
        tables
    }
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gridflow and {} differ at logical time {} ({}), the input's time #{}, in {}:",
            self.oracle,
            self.time,
            format_millis(self.time as i64),
            self.tick,
            self.tables().join(", ")
        )?;
        let mut table = "";
        for row in self.rows.iter().take(SHOWN_ROWS) {
            if row.table != table {
                table = row.table;
                let columns = columns(table, self.oracle == Oracle::Twin);
                writeln!(f, "  {table} ({}):", columns.join(","))?;
            }
            let side = if row.surplus > 0 {
                "gridflow"
            } else {
                match self.oracle {
                    Oracle::Twin => "twin    ",
                    Oracle::Postgres => "postgres",
                }
            };
            let copies = match row.surplus.abs() {
                1 => String::new(),
                n => format!(" (×{n})"),
            };
            let fields: Vec<String> = row.row.iter().map(|v| csv_field(v.as_deref())).collect();
            writeln!(f, "    {side} only{copies}: {}", fields.join(","))?;
        }
        if self.rows.len() > SHOWN_ROWS {
            writeln!(
                f,
                "  … and {} more differing rows",
                self.rows.len() - SHOWN_ROWS
            )?;
        }
        Ok(())
    }
}

/// A field as CSV writes it: NULL empty, quoted when it must be.
fn csv_field(value: Option<&str>) -> String {
    match value {
        None => String::new(),
        Some(text) if text.contains([',', '"', '\n']) || text.is_empty() => {
            format!("\"{}\"", text.replace('"', "\"\""))
        }
        Some(text) => text.to_string(),
    }
}

/// The exported columns of the table called `name` (with `peak_hour`, region rows show the
/// peak hour they carry for the dashboard last, as [`text_row`] renders them for the twin).
fn columns(name: &str, peak_hour: bool) -> Vec<&'static str> {
    let Some(table) = crate::sinks::tables::ALL.iter().find(|t| t.name == name) else {
        return Vec::new();
    };
    let mut columns: Vec<&'static str> = table.exported_columns().collect();
    if peak_hour && name == crate::sinks::tables::DWS_REGION_DAILY_STATS.name {
        columns.push("(peak_hour)");
    }
    columns
}

/// A row as text in its table's exported columns; region rows with their peak hour last when
/// `peak_hour` (the dashboard's column, which region rows carry inside gridflow).
pub fn text_row(row: &TableRow, peak_hour: bool) -> Option<(&'static Table, TextRow)> {
    let (table, values) = table_and_values(row, 0)?;
    let mut text: TextRow = table
        .columns
        .iter()
        .zip(&values)
        .filter(|((_, kind), _)| *kind != Kind::Stamp)
        .map(|(_, value)| value_text(value))
        .collect();
    if let (TableRow::RegionStats(stats), true) = (row, peak_hour) {
        text.push(Some(stats.peak_hour.to_string()));
    }
    Some((table, text))
}

fn value_text(value: &Value<'_>) -> Option<String> {
    match value {
        Value::Integer(n) => Some(n.to_string()),
        Value::Text(text) => Some(text.to_string()),
        Value::OwnedText(text) => Some(text.clone()),
        Value::Cents(cents) => Some(format_cents(*cents)),
        Value::Millis(millis) => Some(format_millis(*millis)),
        Value::Null => None,
    }
}

/// The position of a table in layer order.
pub fn layer_order(name: &str) -> usize {
    crate::sinks::tables::ALL
        .iter()
        .position(|t| t.name == name)
        .unwrap_or(usize::MAX)
}

/// The differences of a balance as report rows, in layer order.
pub fn differing_rows<'a>(
    rows: impl IntoIterator<Item = (&'a TableRow, isize)>,
) -> Vec<DifferingRow> {
    let mut out: Vec<DifferingRow> = rows
        .into_iter()
        .filter_map(|(row, surplus)| {
            let (table, text) = text_row(row, true)?;
            Some(DifferingRow {
                table: table.name,
                row: text,
                surplus,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (layer_order(a.table), &a.row, a.surplus).cmp(&(layer_order(b.table), &b.row, b.surplus))
    });
    out
}
