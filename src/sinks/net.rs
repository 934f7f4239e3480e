//! Change sets merged by key into the net operations one transaction writes: for each key,
//! whether the table held it before the merged times, and its state after them. Writing the net
//! operations leaves the tables exactly as writing every change set in order would, with one
//! write per key — a dashboard row updated at each of a hundred times is written once, and a row
//! inserted and deleted within the merged times is not written at all.
//!
//! Merging is a sort by (key, time) that keeps, per key, at most two changes: the retraction at
//! the key's first time (the table held the key before) and the version at its last time (the
//! table holds the key after). The result has the shape of a change set again, so further change
//! sets merge into it the same way, and its size is bounded by the number of distinct keys,
//! however often they changed.

use std::cmp::Ordering;

use super::keys::{is_sunk, key_of};
use crate::model::TableRow;
use crate::model::Time;
use crate::sinks::ChangeSet;

/// What the merged times do to one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetOp<'a> {
    /// The table did not hold the key; now it holds this version, written at this logical time
    /// (its processing-time stamp).
    Insert(&'a TableRow, Time),
    /// The table held the key; now it holds this version, written at this time.
    Update(&'a TableRow, Time),
    /// The table held the key and no longer does; the retracted version carries the key.
    Delete(&'a TableRow),
}

impl<'a> NetOp<'a> {
    /// The row the operation carries.
    pub fn row(&self) -> &'a TableRow {
        match self {
            NetOp::Insert(row, _) | NetOp::Update(row, _) | NetOp::Delete(row) => row,
        }
    }
}

/// Completed change sets of consecutive times, merged by key on demand.
#[derive(Debug)]
pub struct Net {
    /// Whether the ODS and DWD tables are written; rows of other tables are dropped when merged.
    ods_and_dwd: bool,
    /// The merged changes, sorted by key: per key, the retraction of the version the table held
    /// before (if it held one) and the version it holds after with that version's time (if any).
    merged: Vec<(TableRow, Time, isize)>,
    /// Change sets pushed since the last merge, in time order: pushing is a move, no per-row work.
    unmerged: Vec<ChangeSet>,
    /// Row changes held, merged or not.
    rows: usize,
    /// The last time pushed: the progress a transaction writing these changes records.
    last: Option<Time>,
}

/// The order of merged changes: by table and key, then time, a retraction before the version of
/// the same time.
fn by_key_then_time(a: &(TableRow, Time, isize), b: &(TableRow, Time, isize)) -> Ordering {
    (key_of(&a.0), a.1, a.2).cmp(&(key_of(&b.0), b.1, b.2))
}

impl Net {
    /// Nothing pushed yet. With `ods_and_dwd` the ODS and DWD tables are written too.
    pub fn new(ods_and_dwd: bool) -> Net {
        Net {
            ods_and_dwd,
            merged: Vec::new(),
            unmerged: Vec::new(),
            rows: 0,
            last: None,
        }
    }

    /// An empty set for the same tables.
    pub fn empty_like(&self) -> Net {
        Net::new(self.ods_and_dwd)
    }

    /// Adds the consolidated change set of `time`, later than every time pushed before.
    pub fn push(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        debug_assert!(self.last.is_none_or(|last| last < time), "times in order");
        self.last = Some(time);
        self.rows += changes.len();
        if !changes.is_empty() {
            self.unmerged.push((time, changes));
        }
    }

    /// Whether no change set was pushed (an empty change set still advances the progress).
    pub fn is_empty(&self) -> bool {
        self.last.is_none()
    }

    /// The last time pushed.
    pub fn last(&self) -> Option<Time> {
        self.last
    }

    /// Row changes held: after [`Net::merge`], at most two per key.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Merges the change sets pushed since the last merge into the merged changes. Costs a sort
    /// of everything held (the merged part is one sorted run, which the sort takes as it is).
    pub fn merge(&mut self) {
        if self.unmerged.is_empty() {
            return;
        }
        let ods_and_dwd = self.ods_and_dwd;
        self.merged.reserve(self.rows - self.merged.len());
        for (time, changes) in self.unmerged.drain(..) {
            let sunk = changes
                .into_iter()
                .filter(|(row, _)| is_sunk(row, ods_and_dwd));
            self.merged
                .extend(sunk.map(|(row, diff)| (row, time, diff)));
        }
        self.merged.sort_by(by_key_then_time);
        // Per key, in place: a table holds one version per key at each time, so a key's changes
        // alternate between retraction and version. It was held before iff its first change is
        // a retraction (kept: it carries the key), and is held after iff its last change is a
        // version (kept, with its time).
        let changes = &mut self.merged;
        let (mut kept, mut first) = (0, 0);
        while first < changes.len() {
            let key = key_of(&changes[first].0);
            let mut last = first;
            while last + 1 < changes.len() && key_of(&changes[last + 1].0) == key {
                last += 1;
            }
            if first == last || changes[first].2 < 0 {
                changes.swap(kept, first);
                kept += 1;
            }
            if first < last && changes[last].2 > 0 {
                changes.swap(kept, last);
                kept += 1;
            }
            first = last + 1;
        }
        changes.truncate(kept);
        self.rows = self.merged.len();
    }

    /// The net operations, grouped by table in layer order, keys in key order, each key once.
    /// Call [`Net::merge`] first.
    pub fn ops(&self) -> Vec<Vec<NetOp<'_>>> {
        debug_assert!(self.unmerged.is_empty(), "merged before writing");
        let mut groups: Vec<Vec<NetOp<'_>>> = Vec::new();
        let mut changes = self.merged.iter().peekable();
        while let Some((row, time, diff)) = changes.next() {
            let op = if *diff > 0 {
                NetOp::Insert(row, *time)
            } else if let Some((new, time, _)) =
                changes.next_if(|(next, _, diff)| *diff > 0 && key_of(next) == key_of(row))
            {
                NetOp::Update(new, *time)
            } else {
                NetOp::Delete(row)
            };
            match groups.last_mut() {
                Some(group) if same_table(group[0].row(), row) => group.push(op),
                _ => groups.push(vec![op]),
            }
        }
        groups
    }
}

fn same_table(a: &TableRow, b: &TableRow) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::rows::{Text, UserRanking};
    use crate::sinks::database::tests::{write_in_order, Tables};

    fn stats(region_id: i32, total: i64) -> TableRow {
        crate::sinks::database::tests::stats(region_id, 0, total)
    }

    fn ranking(user_id: i64, ranking: i64) -> TableRow {
        TableRow::Ranking(UserRanking {
            user_id,
            stat_date: 0,
            user_name: Text::from("u"),
            region_id: 1,
            region_name: Text::from("r"),
            total_consumption: 1,
            total_cost: 1,
            ranking: ranking as u64,
        })
    }

    fn merged(sets: Vec<ChangeSet>) -> Net {
        let mut net = Net::new(false);
        for (time, changes) in sets {
            net.push(time, changes);
        }
        net.merge();
        net
    }

    #[test]
    fn the_last_version_of_a_key_wins_and_what_the_table_held_decides_insert_or_update() {
        let (a1, a2, b1, c0, c1, d0) = (
            stats(1, 10),
            stats(1, 20),
            stats(2, 5),
            stats(3, 6),
            stats(3, 7),
            stats(4, 1),
        );
        // a and b are new; c and d were held before.
        let net = merged(vec![
            (
                1,
                vec![(a1.clone(), 1), (b1.clone(), 1), (c0, -1), (c1.clone(), 1)],
            ),
            // d goes; a changes; b goes.
            (
                2,
                vec![(d0.clone(), -1), (a1, -1), (a2.clone(), 1), (b1, -1)],
            ),
            // d comes back as it was; c goes.
            (3, vec![(d0.clone(), 1), (c1.clone(), -1)]),
        ]);
        // b was inserted and deleted within the run: nothing to write. d was held, so it is
        // updated (its stamp moves to 3), and c's delete carries the version it retracted last.
        assert_eq!(
            net.ops(),
            vec![vec![
                NetOp::Insert(&a2, 2),
                NetOp::Delete(&stats(3, 6)),
                NetOp::Update(&d0, 3),
            ]]
        );
        assert_eq!(net.rows(), 4);
        assert_eq!(net.last(), Some(3));
    }

    #[test]
    fn tables_stay_apart_in_layer_order_and_errors_and_ods_rows_are_dropped() {
        let (old, new) = (stats(1, 10), stats(1, 30));
        let net = merged(vec![
            (1, vec![(ranking(1, 1), 1), (old.clone(), -1)]),
            (2, vec![(new.clone(), 1)]),
            (
                3,
                vec![(
                    TableRow::User(crate::check::testing::user(1, "u", 1, "r")),
                    1,
                )],
            ),
        ]);
        assert_eq!(
            net.ops(),
            vec![
                vec![NetOp::Update(&new, 2)],
                vec![NetOp::Insert(&ranking(1, 1), 1)]
            ]
        );
        assert_eq!(
            net.last(),
            Some(3),
            "a time with nothing to write still counts"
        );
    }

    /// A tiny deterministic generator, so the test needs no seed plumbing.
    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn write_net(state: &mut Tables, net: &Net) {
        for op in net.ops().into_iter().flatten() {
            let key = key_of(op.row());
            let held = state.contains_key(&key);
            match op {
                NetOp::Insert(row, time) => {
                    assert!(!held, "insert of a held key {key:?}");
                    state.insert(key, (row.clone(), time));
                }
                NetOp::Update(row, time) => {
                    assert!(held, "update of a key not held {key:?}");
                    state.insert(key, (row.clone(), time));
                }
                NetOp::Delete(_) => {
                    assert!(held, "delete of a key not held {key:?}");
                    state.remove(&key);
                }
            }
        }
    }

    #[test]
    fn merging_at_any_points_leaves_the_tables_as_writing_every_change_set_in_order() {
        let mut random = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            // Random versions (or absence) of a few keys of two tables over random times.
            let mut current: BTreeMap<(bool, i64), TableRow> = BTreeMap::new();
            let mut sets = Vec::new();
            for time in 1..=random.below(30) + 1 {
                let mut keys: Vec<(bool, i64)> = (0..random.below(5))
                    .map(|_| (random.below(2) == 0, random.below(4) as i64))
                    .collect();
                keys.sort();
                keys.dedup();
                let mut changes = Vec::new();
                for key in keys {
                    let new = (random.below(3) > 0).then(|| row_of(key, random.below(3) as i64));
                    let old = current.remove(&key);
                    if old == new {
                        current.extend(old.map(|row| (key, row)));
                        continue;
                    }
                    changes.extend(old.map(|row| (row, -1)));
                    if let Some(row) = new {
                        changes.push((row.clone(), 1));
                        current.insert(key, row);
                    }
                }
                sets.push((time, changes));
            }
            let mut expected = Tables::new();
            let mut written = Tables::new();
            let mut net = Net::new(false);
            for set in &sets {
                write_in_order(&mut expected, set);
                net.push(set.0, set.1.clone());
                match random.below(4) {
                    0 => net.merge(),
                    1 => {
                        net.merge();
                        write_net(&mut written, &net);
                        net = net.empty_like();
                    }
                    _ => {}
                }
            }
            net.merge();
            write_net(&mut written, &net);
            assert_eq!(written, expected, "change sets {sets:#?}");
        }
    }

    fn row_of((is_stats, key): (bool, i64), version: i64) -> TableRow {
        if is_stats {
            stats(key as i32, version)
        } else {
            ranking(key, version)
        }
    }
}
