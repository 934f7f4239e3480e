//! What every source hands the dataflow: ticks of upserts at logical times.
//!
//! A source runs on every worker and produces, tick by tick, the rows of the keys that worker
//! owns ([`owner_of`]). Within one tick a key appears at most once — the last row of the key in
//! source order wins — because differential's upsert arrangement breaks ties between updates
//! at the same time by value, not by arrival. The rows and their logical times are a function of
//! the source's options only, never of the number of workers, so any worker count computes the
//! same warehouse, and a replay after a crash feeds the same rows at the same times.
//!
//! The sources: the generator (the source's DataGen), a CSV replay, scripted ticks; the
//! merging of ticks a lagging wall-clock worker has fallen behind on ([`coalesce`]).
//!
//! May use: the model.

pub mod coalesce;
pub mod csv_replay;
pub mod csv_scan;
pub mod dense_replay;
pub mod generator;
pub mod position;
pub mod scripted;

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use crate::model::rows::{Consumption, ConsumptionId, User, UserId};
use crate::model::Time;

pub use position::{GeneratorPosition, SourcePosition};

/// A logged position that a fresh source cannot be moved to.
#[derive(Debug, thiserror::Error)]
pub enum PositionError {
    #[error("{position:?} is not a position of {kind}")]
    OtherSource {
        position: Box<SourcePosition>,
        kind: &'static str,
    },
    /// The position is this source's kind, but not of these options or this input.
    #[error("{0}")]
    DoesNotFit(String),
}

/// An upsert: the key and its new row, or `None` to delete the key (a tombstone).
pub type Upsert<K, R> = (K, Option<R>);

/// The rows one worker introduces at one logical time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tick {
    /// The logical time of every row in the tick: the source clock at the tick's end, in epoch
    /// milliseconds, which is also the instant processing-time columns report for it.
    pub time: Time,
    pub users: Vec<Upsert<UserId, User>>,
    pub consumption: Vec<Upsert<ConsumptionId, Consumption>>,
}

impl Tick {
    /// How many rows the tick carries.
    pub fn len(&self) -> usize {
        self.users.len() + self.consumption.len()
    }

    /// Whether the tick carries no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Something that produces one worker's share of the input, tick by tick.
pub trait Source {
    /// The next tick, or `None` when the input is exhausted (bounded input only).
    /// Ticks come in strictly increasing time order.
    fn next_tick(&mut self) -> Option<Tick>;

    /// Where the source stands: what a restarted job needs to go on producing exactly the
    /// ticks this source would have produced next.
    fn position(&self) -> SourcePosition;

    /// Moves a fresh source (of the same options, worker and peers) to `position`; an error
    /// says why the position cannot be this source's.
    fn resume(&mut self, position: SourcePosition) -> Result<(), PositionError>;
}

/// The worker (of `peers`) that reads and owns a key. Any deterministic function would do;
/// keys are spread round-robin so a sequence of ids spreads evenly.
pub fn owner_of(key: i64, peers: usize) -> usize {
    key.rem_euclid(peers as i64) as usize
}

/// Keeps the last upsert of each key, in the order keys were first seen.
///
/// Sources call this on each tick's rows before sending them, so the upsert arrangement never
/// sees two updates of one key at one time.
pub fn last_upsert_wins<K: Copy + Eq + Hash, R>(rows: Vec<Upsert<K, R>>) -> Vec<Upsert<K, R>> {
    let mut position: HashMap<K, usize> = HashMap::with_capacity(rows.len());
    let mut kept: Vec<Upsert<K, R>> = Vec::with_capacity(rows.len());
    for (key, row) in rows {
        match position.get(&key) {
            Some(&index) => kept[index].1 = row,
            None => {
                position.insert(key, kept.len());
                kept.push((key, row));
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_row_of_a_key_wins_within_a_tick() {
        let rows = vec![(1, Some("a")), (2, Some("b")), (1, None), (1, Some("c"))];
        assert_eq!(last_upsert_wins(rows), vec![(1, Some("c")), (2, Some("b"))]);
        let rows = vec![(1, Some("a")), (1, None)];
        assert_eq!(last_upsert_wins(rows), vec![(1, None)]);
    }

    #[test]
    fn owners_cover_every_worker_for_negative_keys_too() {
        assert_eq!(owner_of(5, 4), 1);
        assert_eq!(owner_of(-1, 4), 3);
        assert_eq!(owner_of(7, 1), 0);
    }
}
