//! The tables kept in memory: a [`ChangeSink`] that applies every change set to the current
//! state of every table (the export's sink, and the tests'), optionally logging the change
//! sets themselves.

use std::collections::HashMap;

use super::{ChangeSet, ChangeSink};
use crate::model::{RowError, TableRow, Time, Warehouse};

/// A sink that keeps the current state of every table, and optionally the log of change sets.
/// It is the export's sink and the tests'.
#[derive(Default)]
pub struct Materialized {
    rows: HashMap<TableRow, isize>,
    /// Every change set applied, when logging is on.
    pub log: Option<Vec<ChangeSet>>,
    /// Rows whose multiplicity left {0, 1} after some time: always empty in a correct engine.
    pub violations: Vec<(Time, TableRow, isize)>,
}

impl Materialized {
    /// Every row with its multiplicity (in no order).
    pub fn rows(&self) -> impl Iterator<Item = (&TableRow, isize)> {
        self.rows.iter().map(|(row, count)| (row, *count))
    }

    /// A sink that also records every change set.
    pub fn logging() -> Materialized {
        Materialized {
            log: Some(Vec::new()),
            ..Materialized::default()
        }
    }

    /// The current tables (each sorted by key) and the malformed rows (sorted by file, line).
    pub fn snapshot(&self) -> (Warehouse, Vec<RowError>) {
        snapshot(self.rows.iter().map(|(row, count)| (row, *count)))
    }
}

impl ChangeSink for Materialized {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        for (row, diff) in &changes {
            let count = self.rows.entry(row.clone()).or_insert(0);
            *count += diff;
            let count = *count;
            if count == 0 {
                self.rows.remove(row);
            } else if count != 1 {
                self.violations.push((time, row.clone(), count));
            }
        }
        if let Some(log) = &mut self.log {
            log.push((time, changes));
        }
    }
}

/// Sorts rows with positive multiplicity into tables (each row once per unit of multiplicity).
pub fn snapshot<'a>(
    rows: impl Iterator<Item = (&'a TableRow, isize)>,
) -> (Warehouse, Vec<RowError>) {
    let mut warehouse = Warehouse::default();
    let mut errors = Vec::new();
    for (row, count) in rows {
        for _ in 0..count.max(0) {
            match row.clone() {
                TableRow::User(r) => warehouse.users.push(r),
                TableRow::Consumption(r) => warehouse.consumption.push(r),
                TableRow::Detail(r) => warehouse.details.push(r),
                TableRow::RegionStats(r) => warehouse.region_stats.push(r),
                TableRow::Ranking(r) => warehouse.rankings.push(r),
                TableRow::Dashboard(r) => warehouse.dashboards.push(r),
                TableRow::Error(e) => errors.push(e),
            }
        }
    }
    warehouse.users.sort();
    warehouse.consumption.sort();
    warehouse.details.sort();
    warehouse.region_stats.sort();
    warehouse.rankings.sort();
    warehouse.dashboards.sort();
    errors.sort();
    (warehouse, errors)
}
