//! The balance of a verification: the multiset of rows gridflow's tables hold minus the multiset
//! the oracle's hold. Both sides only ever add their changes, so it costs what changed, not
//! what the tables hold; it is empty exactly when the two sides are equal.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::model::TableRow;
use crate::model::Warehouse;

/// Rows of gridflow's tables (positive counts) not matched by the oracle's (negative counts).
#[derive(Debug, Default)]
pub struct Balance {
    rows: HashMap<TableRow, isize>,
}

impl Balance {
    /// Adds `diff` copies of `row` (negative: removes them).
    pub fn add(&mut self, row: TableRow, diff: isize) {
        if diff == 0 {
            return;
        }
        match self.rows.entry(row) {
            Entry::Occupied(mut entry) => {
                *entry.get_mut() += diff;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
            Entry::Vacant(entry) => {
                entry.insert(diff);
            }
        }
    }

    /// Whether the two sides are equal.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows the two sides disagree on, with how many more copies gridflow holds (negative:
    /// fewer), sorted (so a table's rows are together, in key order).
    pub fn differences(&self) -> Vec<(&TableRow, isize)> {
        let mut rows: Vec<(&TableRow, isize)> =
            self.rows.iter().map(|(row, count)| (row, *count)).collect();
        rows.sort();
        rows
    }

    /// Records that the oracle's tables went from `before` to `after` (each table sorted).
    pub fn oracle_changed(&mut self, before: &Warehouse, after: &Warehouse) {
        self.step(&before.users, &after.users, TableRow::User);
        self.step(
            &before.consumption,
            &after.consumption,
            TableRow::Consumption,
        );
        self.step(&before.details, &after.details, TableRow::Detail);
        self.step(
            &before.region_stats,
            &after.region_stats,
            TableRow::RegionStats,
        );
        self.step(&before.rankings, &after.rankings, TableRow::Ranking);
        self.step(&before.dashboards, &after.dashboards, TableRow::Dashboard);
    }

    /// Records that the oracle's tables changed by `changes` (rows with their multiplicities).
    pub fn oracle_frozen(&mut self, changes: Vec<(TableRow, isize)>) {
        for (row, diff) in changes {
            self.add(row, -diff);
        }
    }

    /// Walks two sorted tables side by side: rows only `after` has join the oracle's side,
    /// rows only `before` has leave it.
    fn step<T: Ord + Clone>(&mut self, before: &[T], after: &[T], wrap: fn(T) -> TableRow) {
        let (mut i, mut j) = (0, 0);
        while i < before.len() || j < after.len() {
            match (before.get(i), after.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    self.add(wrap(a.clone()), 1);
                    i += 1;
                }
                (Some(_), Some(b)) => {
                    self.add(wrap(b.clone()), -1);
                    j += 1;
                }
                (Some(a), None) => {
                    self.add(wrap(a.clone()), 1);
                    i += 1;
                }
                (None, Some(b)) => {
                    self.add(wrap(b.clone()), -1);
                    j += 1;
                }
                (None, None) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{reading, user};

    #[test]
    fn equal_sides_balance_and_a_difference_shows_on_both_sides() {
        let before = Warehouse::default();
        let after = Warehouse {
            users: vec![user(1, "a", 1, "东区"), user(2, "b", 1, "东区")],
            consumption: vec![reading(1, 1, 100, 0)],
            ..Warehouse::default()
        };
        let mut balance = Balance::default();
        balance.add(TableRow::User(user(1, "a", 1, "东区")), 1);
        balance.add(TableRow::User(user(2, "b", 2, "西区")), 1);
        balance.add(TableRow::Consumption(reading(1, 1, 100, 0)), 1);
        balance.oracle_changed(&before, &after);
        assert_eq!(
            balance.differences(),
            vec![
                (&TableRow::User(user(2, "b", 1, "东区")), -1),
                (&TableRow::User(user(2, "b", 2, "西区")), 1),
            ]
        );
        // The oracle moves user 2 too: the sides agree.
        let moved = Warehouse {
            users: vec![user(1, "a", 1, "东区"), user(2, "b", 2, "西区")],
            ..after.clone()
        };
        balance.oracle_changed(&after, &moved);
        assert!(balance.is_empty(), "{:?}", balance.differences());
    }
}
