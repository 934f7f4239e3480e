//! Snapshots: the ODS state a worker's log adds up to at one logical time, so a restart loads
//! the live state instead of replaying the job's whole history.
//!
//! A snapshot is folded from the previous snapshot and the closed log segments after it, the
//! way the ODS layer maintains its tables: the last row of every key wins, a delete removes
//! it, and under retention (SPEC §4a) a consumption row arriving for a frozen window is not
//! applied, and the rows of windows frozen by the snapshot's time are dropped — exactly what
//! [`crate::operators::upsert`] does inside the dataflow, so the state stays bounded by retention.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::records::{sync_dir, write_record, RecordReader};
use crate::model::rows::{Consumption, ConsumptionId, User, UserId};
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::sources::{SourcePosition, Tick};

/// Rows per record of a snapshot file, so no record holds the whole state.
const ROWS_PER_RECORD: usize = 16_384;

/// The ODS state of one worker at a logical time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// The logical time the state is at: every logged tick up to it is folded in.
    pub time: Time,
    /// The last log segment folded in; later segments hold the ticks after `time`.
    pub covers_segment: u64,
    /// Where the source stood after the tick at `time`.
    pub position: SourcePosition,
    /// The current user rows, by key.
    pub users: Vec<(UserId, User)>,
    /// The current consumption rows of live windows, by key.
    pub consumption: Vec<(ConsumptionId, Consumption)>,
}

/// The records of a snapshot file, in order: a header, the rows, an end marker.
#[derive(Serialize, Deserialize)]
enum SnapshotRecord {
    Header {
        time: Time,
        covers_segment: u64,
        position: SourcePosition,
        users: u64,
        consumption: u64,
    },
    Users(Vec<(UserId, User)>),
    Consumption(Vec<(ConsumptionId, Consumption)>),
    End,
}

/// The snapshot file of a worker's directory.
pub fn path(dir: &Path) -> PathBuf {
    dir.join("snapshot.bin")
}

/// Reads the snapshot of a worker's directory, if it has one.
pub fn read(dir: &Path) -> Result<Option<Snapshot>, StateError> {
    let path = path(dir);
    if !path.exists() {
        return Ok(None);
    }
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut reader = RecordReader::open(&path).map_err(|source| StateError::io(&path, source))?;
    let mut next = || -> Result<SnapshotRecord, StateError> {
        reader
            .read()
            .map_err(|torn| corrupt(format!("at byte {}: {}", torn.offset, torn.reason)))?
            .ok_or_else(|| corrupt("it ends early".to_string()))
    };
    let SnapshotRecord::Header {
        time,
        covers_segment,
        position,
        users: user_count,
        consumption: consumption_count,
    } = next()?
    else {
        return Err(corrupt("it does not start with its header".to_string()));
    };
    let mut snapshot = Snapshot {
        time,
        covers_segment,
        position,
        users: Vec::with_capacity(user_count as usize),
        consumption: Vec::with_capacity(consumption_count as usize),
    };
    loop {
        match next()? {
            SnapshotRecord::Users(rows) => snapshot.users.extend(rows),
            SnapshotRecord::Consumption(rows) => snapshot.consumption.extend(rows),
            SnapshotRecord::End => break,
            SnapshotRecord::Header { .. } => return Err(corrupt("a second header".to_string())),
        }
    }
    if snapshot.users.len() as u64 != user_count
        || snapshot.consumption.len() as u64 != consumption_count
    {
        return Err(corrupt(
            "its row counts do not match its header".to_string(),
        ));
    }
    Ok(Some(snapshot))
}

/// Writes `snapshot` into a worker's directory, replacing the previous one atomically: a
/// crash leaves either the old snapshot or the new one, never a mix.
pub fn write(dir: &Path, snapshot: &Snapshot) -> Result<u64, StateError> {
    let target = path(dir);
    let temporary = dir.join("snapshot.tmp");
    let io = |source| StateError::io(&temporary, source);
    let file = File::create(&temporary).map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut scratch = Vec::new();
    let mut bytes = 0;
    let header = SnapshotRecord::Header {
        time: snapshot.time,
        covers_segment: snapshot.covers_segment,
        position: snapshot.position.clone(),
        users: snapshot.users.len() as u64,
        consumption: snapshot.consumption.len() as u64,
    };
    bytes += write_record(&mut out, &header, &mut scratch).map_err(io)?;
    for chunk in snapshot.users.chunks(ROWS_PER_RECORD) {
        let record = SnapshotRecord::Users(chunk.to_vec());
        bytes += write_record(&mut out, &record, &mut scratch).map_err(io)?;
    }
    for chunk in snapshot.consumption.chunks(ROWS_PER_RECORD) {
        let record = SnapshotRecord::Consumption(chunk.to_vec());
        bytes += write_record(&mut out, &record, &mut scratch).map_err(io)?;
    }
    bytes += write_record(&mut out, &SnapshotRecord::End, &mut scratch).map_err(io)?;
    out.flush().map_err(io)?;
    out.get_ref().sync_all().map_err(io)?;
    drop(out);
    std::fs::rename(&temporary, &target).map_err(|source| StateError::io(&target, source))?;
    sync_dir(dir).map_err(|source| StateError::io(dir, source))?;
    Ok(bytes)
}

/// The ODS state being folded: the snapshot's rows as maps, and the ticks after it applied.
pub struct Fold {
    retention: Retention,
    time: Time,
    users: HashMap<UserId, User>,
    consumption: HashMap<ConsumptionId, Consumption>,
    /// The keys whose row's window freezes at each time (stale once a key changes: checked
    /// against the key's row when due), so the state holds only live windows' rows however
    /// many ticks a fold applies.
    expiries: BTreeMap<Time, Vec<ConsumptionId>>,
    /// The time the fold will finish at, if known: a row whose window freezes by then only
    /// removes its key's earlier row (it will be gone itself by then), which saves keeping it.
    until: Option<Time>,
}

impl Fold {
    /// Starts from `snapshot` (or from nothing).
    pub fn new(snapshot: Option<Snapshot>, retention: Retention) -> Fold {
        let (time, users, consumption) = match snapshot {
            Some(snapshot) => (
                snapshot.time,
                snapshot.users.into_iter().collect(),
                snapshot.consumption.into_iter().collect(),
            ),
            None => (0, HashMap::new(), HashMap::new()),
        };
        let mut fold = Fold {
            retention,
            time,
            users,
            consumption,
            expiries: BTreeMap::new(),
            until: None,
        };
        let keys: Vec<(ConsumptionId, Option<Time>)> = fold
            .consumption
            .iter()
            .map(|(key, row)| (*key, fold.freezes_at(row)))
            .collect();
        for (key, freezes) in keys {
            if let Some(freezes) = freezes {
                fold.expiries.entry(freezes).or_default().push(key);
            }
        }
        fold
    }

    /// Declares the time [`Fold::finish`] will be called with.
    pub fn finishing_at(&mut self, until: Time) {
        self.until = Some(until);
    }

    fn freezes_at(&self, row: &Consumption) -> Option<Time> {
        self.retention.freezes_at_date(row.consumption_date)
    }

    /// Drops the rows of windows frozen at or before `time`.
    fn expire(&mut self, time: Time) {
        while let Some(entry) = self.expiries.first_entry() {
            if *entry.key() > time {
                break;
            }
            let (due, keys) = entry.remove_entry();
            for key in keys {
                let expired = self.consumption.get(&key).is_some_and(|row| {
                    self.retention.freezes_at_date(row.consumption_date) == Some(due)
                });
                if expired {
                    self.consumption.remove(&key);
                }
            }
        }
    }

    /// Applies one logged tick, as the ODS upserts would at its time: first the windows that
    /// froze by then leave, then its rows apply.
    pub fn apply(&mut self, tick: &Tick) {
        self.expire(tick.time);
        for (key, row) in &tick.users {
            match row {
                Some(row) => self.users.insert(*key, row.clone()),
                None => self.users.remove(key),
            };
        }
        for (key, row) in &tick.consumption {
            match row {
                // A row for a window frozen when it arrives is expired, and changes nothing.
                Some(row) if !self.is_live(row, tick.time) => {}
                Some(row) => match self.freezes_at(row) {
                    // Live now, frozen by the end: its only lasting effect is the delete.
                    Some(freezes) if self.until.is_some_and(|until| freezes <= until) => {
                        self.consumption.remove(key);
                    }
                    Some(freezes) => {
                        self.expiries.entry(freezes).or_default().push(*key);
                        self.consumption.insert(*key, row.clone());
                    }
                    None => {
                        self.consumption.insert(*key, row.clone());
                    }
                },
                None => {
                    self.consumption.remove(key);
                }
            }
        }
        self.time = self.time.max(tick.time);
    }

    fn is_live(&self, row: &Consumption, time: Time) -> bool {
        self.retention
            .freezes_at_date(row.consumption_date)
            .is_none_or(|frozen| time < frozen)
    }

    /// The state at `time` (not before any tick applied), with the rows of windows frozen by
    /// then dropped, sorted by key.
    pub fn finish(mut self, time: Time, covers_segment: u64, position: SourcePosition) -> Snapshot {
        debug_assert!(self.until.is_none_or(|until| until == time));
        self.expire(time);
        let Fold {
            retention,
            users,
            consumption,
            ..
        } = self;
        let mut users: Vec<(UserId, User)> = users.into_iter().collect();
        let mut consumption: Vec<(ConsumptionId, Consumption)> = consumption
            .into_iter()
            .filter(|(_, row)| {
                retention
                    .freezes_at_date(row.consumption_date)
                    .is_none_or(|frozen| time < frozen)
            })
            .collect();
        users.sort_unstable_by_key(|(key, _)| *key);
        consumption.sort_unstable_by_key(|(key, _)| *key);
        Snapshot {
            time,
            covers_segment,
            position,
            users,
            consumption,
        }
    }

    /// The latest tick time applied.
    pub fn time(&self) -> Time {
        self.time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{reading as consumption, user};

    fn retention(horizon: Option<i64>) -> Retention {
        Retention {
            window: 5_000,
            horizon,
        }
    }

    fn tick(time: Time, users: Vec<(UserId, Option<User>)>, rows: Vec<Consumption>) -> Tick {
        Tick {
            time,
            users,
            consumption: rows
                .into_iter()
                .map(|row| (row.consumption_id, Some(row)))
                .collect(),
        }
    }

    #[test]
    fn the_last_row_of_a_key_wins_and_deletes_remove_it() {
        let mut fold = Fold::new(None, retention(None));
        fold.apply(&tick(
            10_000,
            vec![
                (1, Some(user(1, "a", 1, "r"))),
                (2, Some(user(2, "b", 1, "r"))),
            ],
            vec![consumption(1, 1, 100, 1_000), consumption(2, 2, 100, 1_000)],
        ));
        fold.apply(&Tick {
            time: 20_000,
            users: vec![(2, None), (1, Some(user(1, "a2", 3, "s")))],
            consumption: vec![(1, None), (2, Some(consumption(2, 2, 700, 1_000)))],
        });
        let position = SourcePosition::Scripted { next_tick: 2 };
        let snapshot = fold.finish(20_000, 7, position);
        assert_eq!(snapshot.users, vec![(1, user(1, "a2", 3, "s"))]);
        assert_eq!(
            snapshot.consumption,
            vec![(2, consumption(2, 2, 700, 1_000))]
        );
    }

    #[test]
    fn under_retention_frozen_windows_leave_and_expired_arrivals_change_nothing() {
        // window [0, 5 s) freezes at 8 s with a 3 s horizon; [5 s, 10 s) at 13 s
        let mut fold = Fold::new(None, retention(Some(3_000)));
        fold.apply(&tick(
            6_000,
            vec![],
            vec![consumption(1, 1, 100, 1_000), consumption(2, 1, 100, 6_000)],
        ));
        // id 2 moves into the frozen window at 9 s: expired on arrival, so the 6 s row stays
        fold.apply(&tick(9_000, vec![], vec![consumption(2, 1, 300, 2_000)]));
        let position = SourcePosition::Scripted { next_tick: 2 };
        let snapshot = fold.finish(9_000, 1, position);
        assert_eq!(
            snapshot.consumption,
            vec![(2, consumption(2, 1, 100, 6_000))]
        );
    }

    #[test]
    fn a_fold_that_knows_its_end_gives_the_same_snapshot() {
        let ticks: Vec<Tick> = (1..=400i64)
            .map(|second| {
                let time = (second * 1_000) as Time;
                // ids reused every 5 rows (within the horizon), dates up to 9 s behind, some deletes
                let id = second % 5;
                let row = (second % 11 != 0)
                    .then(|| consumption(id, 1, second, time as i64 - (second % 9) * 1_000));
                Tick {
                    time,
                    users: vec![],
                    consumption: vec![(id, row)],
                }
            })
            .collect();
        let position = || SourcePosition::Scripted { next_tick: 0 };
        let mut plain = Fold::new(None, retention(Some(3_000)));
        let mut knowing = Fold::new(None, retention(Some(3_000)));
        knowing.finishing_at(400_000);
        for tick in &ticks {
            plain.apply(tick);
            knowing.apply(tick);
        }
        let plain = plain.finish(400_000, 0, position());
        assert!(!plain.consumption.is_empty());
        assert_eq!(knowing.finish(400_000, 0, position()), plain);

        // a row of a window frozen by the end replaces one that would outlive it: the key is
        // gone ([105 s, 110 s) freezes at 113 s, [100 s, 105 s) at 108 s)
        let late = [
            tick(107_000, vec![], vec![consumption(1, 1, 100, 106_000)]),
            tick(107_500, vec![], vec![consumption(1, 1, 200, 101_000)]),
        ];
        let mut knowing = Fold::new(None, retention(Some(3_000)));
        knowing.finishing_at(110_000);
        for tick in &late {
            knowing.apply(tick);
        }
        assert!(knowing
            .finish(110_000, 0, position())
            .consumption
            .is_empty());
    }

    #[test]
    fn a_long_fold_holds_only_the_rows_of_live_windows() {
        // a row a second for ten thousand seconds, windows freezing 3 s after they end: the
        // state never holds more than the last two windows and the horizon's rows
        let mut fold = Fold::new(None, retention(Some(3_000)));
        for second in 1..=10_000i64 {
            let time = (second * 1_000) as Time;
            fold.apply(&tick(
                time,
                vec![],
                vec![consumption(second, 1, 100, second * 1_000 - 1)],
            ));
            assert!(
                fold.consumption.len() <= 10,
                "{} rows",
                fold.consumption.len()
            );
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        let dir = std::env::temp_dir().join(format!("gridflow-snapshot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let snapshot = Snapshot {
            time: 42,
            covers_segment: 3,
            position: SourcePosition::Replay { next_batch: 9 },
            users: vec![(1, user(1, "a", 1, "r"))],
            consumption: (1..=40_000)
                .map(|id| (id, consumption(id, 1, 100, 1_000)))
                .collect(),
        };
        write(&dir, &snapshot).unwrap();
        assert_eq!(read(&dir).unwrap(), Some(snapshot));
        // a cut file is corrupt, not a smaller snapshot
        let bytes = std::fs::read(path(&dir)).unwrap();
        std::fs::write(path(&dir), &bytes[..bytes.len() / 2]).unwrap();
        assert!(matches!(read(&dir), Err(StateError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
