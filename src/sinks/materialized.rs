//! The tables kept in memory: a [`ChangeSink`] that applies every change set to the current
//! state of every table (the export's sink, and the tests'), optionally logging the change
//! sets themselves.
//!
//! The tables outside the dataflow are keyed (SPEC §4a): a consumption id that comes back after
//! its row froze brings an insertion that retracts nothing, and its new row replaces the frozen
//! one ([`ReusedKeys`]). The change sets kept here are the exact differences of the tables,
//! those replacements' retractions included.

use std::collections::HashMap;

use super::handoff::consolidate_rows;
use super::keys::{key_of, RowKey};
use super::{ChangeSet, ChangeSink};
use crate::model::rows::window_start;
use crate::model::{RowError, TableRow, Time, Warehouse};
use crate::operators::retention::Retention;

/// The rows of the tables whose keys come back after their rows froze — ODS consumption and
/// DWD detail, by consumption id — as the tables outside hold them: what an insertion that
/// retracts nothing replaces.
#[derive(Debug, Default)]
pub struct ReusedKeys {
    rows: HashMap<RowKey, TableRow>,
    /// The job's retention: a row may be replaced only once its window has frozen. Without
    /// one, nothing freezes and every replacement is wrong.
    retention: Option<Retention>,
}

/// What a change set did that no correct engine does.
#[derive(Debug, Default)]
pub struct Wrong {
    /// Retractions of rows the tables do not hold.
    pub unheld: Vec<(TableRow, isize)>,
    /// Rows an insertion replaced without retracting them while their window was live.
    pub live_replaced: Vec<TableRow>,
}

/// Whether `row` is of a table whose keys come back after their rows froze (the tables that
/// `tables::Table::keys_reused` marks).
pub fn keys_come_back(row: &TableRow) -> bool {
    matches!(row, TableRow::Consumption(_) | TableRow::Detail(_))
}

impl ReusedKeys {
    /// Holds the rows of a job under `retention` (`None`: no retention).
    pub fn under(retention: Option<Retention>) -> ReusedKeys {
        ReusedKeys {
            rows: HashMap::new(),
            retention,
        }
    }

    /// Makes `changes`, the consolidated change set of logical time `time`, the exact
    /// difference of the tables: for each insertion whose key holds a row the set does not
    /// retract, adds that row's retraction. Returns what no correct engine emits.
    pub fn complete(&mut self, time: Time, changes: &mut Vec<(TableRow, isize)>) -> Wrong {
        let mut wrong = Wrong::default();
        let mut replaced = Vec::new();
        // Retractions first, so an update's new version never meets its old one.
        for (row, diff) in changes
            .iter()
            .filter(|(row, diff)| *diff < 0 && keys_come_back(row))
        {
            let key = key_of(row);
            match self.rows.get(&key) {
                Some(held) if held == row && *diff == -1 => {
                    self.rows.remove(&key);
                }
                _ => wrong.unheld.push((row.clone(), *diff)),
            }
        }
        for (row, _) in changes
            .iter()
            .filter(|(row, diff)| *diff > 0 && keys_come_back(row))
        {
            if let Some(held) = self.rows.insert(key_of(row), row.clone()) {
                if !self.frozen(&held, time) {
                    wrong.live_replaced.push(held.clone());
                }
                replaced.push((held, -1));
            }
        }
        if !replaced.is_empty() {
            changes.extend(replaced);
            *changes = consolidate_rows(std::mem::take(changes));
        }
        wrong
    }

    /// Whether the window of `row` (a consumption or detail row) is frozen at `time`.
    fn frozen(&self, row: &TableRow, time: Time) -> bool {
        let date = match row {
            TableRow::Consumption(c) => c.consumption_date,
            TableRow::Detail(d) => d.fact.date,
            _ => return false,
        };
        self.retention
            .is_some_and(|retention| !retention.is_live(window_start(date, retention.window), time))
    }

    /// The rows held.
    pub fn rows(&self) -> impl Iterator<Item = &TableRow> {
        self.rows.values()
    }
}

/// A sink that keeps the current state of every table, and optionally the log of change sets.
/// It is the export's sink and the tests'.
#[derive(Default)]
pub struct Materialized {
    /// The rows of every table but those [`ReusedKeys`] holds, with their multiplicities.
    rows: HashMap<TableRow, isize>,
    keyed: ReusedKeys,
    /// Every change set applied (completed by [`ReusedKeys::complete`]), when logging is on.
    pub log: Option<Vec<ChangeSet>>,
    /// Rows whose multiplicity left {0, 1} after some time (a live row replaced without its
    /// retraction counts as 2): always empty in a correct engine.
    pub violations: Vec<(Time, TableRow, isize)>,
}

impl Materialized {
    /// Every row with its multiplicity (in no order).
    pub fn rows(&self) -> impl Iterator<Item = (&TableRow, isize)> {
        let keyed = self.keyed.rows().map(|row| (row, 1));
        self.rows
            .iter()
            .map(|(row, count)| (row, *count))
            .chain(keyed)
    }

    /// A sink that also records every change set.
    pub fn logging() -> Materialized {
        Materialized {
            log: Some(Vec::new()),
            ..Materialized::default()
        }
    }

    /// The tables of a job under `retention`: a consumption id that comes back after its row
    /// froze replaces that row (SPEC §4a). Without it, nothing freezes.
    pub fn under(retention: Retention) -> Materialized {
        Materialized {
            keyed: ReusedKeys::under(Some(retention)),
            ..Materialized::default()
        }
    }

    /// As [`Materialized::under`], recording every change set too.
    pub fn logging_under(retention: Retention) -> Materialized {
        Materialized {
            log: Some(Vec::new()),
            ..Materialized::under(retention)
        }
    }

    /// The current tables (each sorted by key) and the malformed rows (sorted by file, line).
    pub fn snapshot(&self) -> (Warehouse, Vec<RowError>) {
        snapshot(self.rows())
    }
}

impl ChangeSink for Materialized {
    fn apply(&mut self, time: Time, mut changes: Vec<(TableRow, isize)>) {
        let wrong = self.keyed.complete(time, &mut changes);
        self.violations.extend(
            wrong
                .unheld
                .into_iter()
                .map(|(row, diff)| (time, row, diff)),
        );
        let replaced = wrong.live_replaced.into_iter();
        self.violations.extend(replaced.map(|row| (time, row, 2)));
        for (row, diff) in changes.iter().filter(|(row, _)| !keys_come_back(row)) {
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
