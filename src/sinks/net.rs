//! A run of change sets collapsed to its net effect on the tables: for each key, whether the
//! table held it before the run, and its state after the run. Applying the net operations in one
//! transaction leaves the tables exactly as applying every time's operations in order would, with
//! one write per key — a dashboard row updated at each of a run's hundred times is written once,
//! and a row inserted and deleted within the run is not written at all.

use std::collections::HashMap;
use std::mem::Discriminant;

use super::{key_of, RowKey, RowOps};
use crate::dataflows::sink::TableRow;
use crate::source::Time;

/// What the run does to one key.
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

/// One key's operations in a run: whether the table held it before, and the last operation.
struct KeyHistory<'a> {
    held_before: bool,
    sequence: usize,
    last: NetOp<'a>,
}

/// The net operations of `batch` (times in increasing order), grouped by table: the groups come
/// in the order their tables first appear, and keys within a group in the order of their last
/// operation.
pub fn net_ops<'a>(batch: &[(Time, RowOps<'a>)]) -> Vec<Vec<NetOp<'a>>> {
    let mut keys: HashMap<(Discriminant<TableRow>, RowKey), KeyHistory<'a>> = HashMap::new();
    let mut sequence = 0;
    for (time, ops) in batch {
        // Within one time a key has one operation (see `row_ops`).
        let deletes = ops.deletes.iter().map(|row| NetOp::Delete(row));
        let inserts = ops.inserts.iter().map(|row| NetOp::Insert(row, *time));
        let updates = ops.updates.iter().map(|row| NetOp::Update(row, *time));
        for op in deletes.chain(inserts).chain(updates) {
            let row = op.row();
            let held_before = !matches!(op, NetOp::Insert(..));
            keys.entry((std::mem::discriminant(row), key_of(row)))
                .and_modify(|history| {
                    history.sequence = sequence;
                    history.last = op;
                })
                .or_insert(KeyHistory {
                    held_before,
                    sequence,
                    last: op,
                });
            sequence += 1;
        }
    }
    let mut ops: Vec<(usize, NetOp<'a>)> = keys
        .into_values()
        .filter_map(|history| {
            let op = match (history.held_before, history.last) {
                (false, NetOp::Delete(_)) => return None,
                (false, NetOp::Insert(row, time) | NetOp::Update(row, time)) => {
                    NetOp::Insert(row, time)
                }
                (true, NetOp::Insert(row, time) | NetOp::Update(row, time)) => {
                    NetOp::Update(row, time)
                }
                (true, delete) => delete,
            };
            Some((history.sequence, op))
        })
        .collect();
    ops.sort_unstable_by_key(|(sequence, _)| *sequence);
    let mut groups: Vec<(Discriminant<TableRow>, Vec<NetOp<'a>>)> = Vec::new();
    for (_, op) in ops {
        let table = std::mem::discriminant(op.row());
        match groups.iter_mut().find(|(t, _)| *t == table) {
            Some((_, group)) => group.push(op),
            None => groups.push((table, vec![op])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{Text, UserRanking};

    fn stats(region_id: i32, total: i64) -> TableRow {
        crate::sinks::tests::stats(region_id, 0, total)
    }

    fn ops<'a>(
        inserts: &[&'a TableRow],
        updates: &[&'a TableRow],
        deletes: &[&'a TableRow],
    ) -> RowOps<'a> {
        RowOps {
            inserts: inserts.to_vec(),
            updates: updates.to_vec(),
            deletes: deletes.to_vec(),
        }
    }

    #[test]
    fn the_last_operation_on_a_key_wins_and_what_the_table_held_decides_insert_or_update() {
        let (a1, a2, b1, c1, d1) = (
            stats(1, 10),
            stats(1, 20),
            stats(2, 5),
            stats(3, 7),
            stats(4, 1),
        );
        let batch = vec![
            // a and b are new; c and d were held before the run.
            (1, ops(&[&a1, &b1], &[&c1], &[&d1])),
            // a changes; b goes; d comes back.
            (2, ops(&[&d1], &[&a2], &[&b1])),
            (3, ops(&[], &[], &[&c1])),
        ];
        // b was inserted and deleted within the run: nothing to write. d was held, so it is updated.
        assert_eq!(
            net_ops(&batch),
            vec![vec![
                NetOp::Update(&d1, 2),
                NetOp::Insert(&a2, 2),
                NetOp::Delete(&c1)
            ]]
        );
    }

    #[test]
    fn a_key_held_before_and_deleted_then_back_is_an_update_and_tables_stay_apart() {
        let (old, new) = (stats(1, 10), stats(1, 30));
        let ranking = TableRow::Ranking(UserRanking {
            user_id: 1,
            stat_date: 0,
            user_name: Text::from("u"),
            region_id: 1,
            region_name: Text::from("r"),
            total_consumption: 1,
            total_cost: 1,
            ranking: 1,
        });
        let batch = vec![
            (1, ops(&[&ranking], &[], &[&old])),
            (2, ops(&[&new], &[], &[])),
        ];
        assert_eq!(
            net_ops(&batch),
            vec![
                vec![NetOp::Insert(&ranking, 1)],
                vec![NetOp::Update(&new, 2)]
            ]
        );
    }
}
