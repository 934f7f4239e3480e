//! Corrections (`/api/corrections`): each user row that arrived late or changed, with what it
//! corrected downstream — the DWD rows it moved, the windows, ranking rows and dashboard rows it
//! changed — and how long until the output was consistent again. This is what the source's Flink
//! job cannot do: its windows drop such updates.
//!
//! Attribution is exact per logical time and worker, and summed at worker 0:
//! - a user's **DWD rows** are its consumption rows whose joined columns changed: the summed row
//!   counts of its DWS partials the DWD join emitted anew (these live on the user's worker);
//! - the **partitions** `(window, region)` it touched are those where its own ranking rows
//!   changed — the old region's and the new one's (these live on the partition's worker, with
//!   every other row of the partition);
//! - its **ranking rows** are the distinct users whose ranking rows changed in those
//!   partitions (the moved user and everyone it re-ranked), its **dashboard rows** the touched
//!   partitions whose region row changed, its **windows** their distinct windows.
//!
//! A user row *corrects* when output that was already emitted changes: one of its ranking rows
//! is retracted (it leaves region 0 on arriving late, moves, is renamed, is deleted), or, for a
//! user already known, its DWD rows change. Rows that arrive in the same logical time as the
//! user's first consumption rows correct nothing. Consumption rows arriving at the same logical
//! time in the same partitions count too: the figures are the output rows that changed there.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::rows::{Millis, RegionId, UserId};
use crate::source::Time;
use crate::values::format_millis;

/// How many corrections the log keeps (the newest).
pub const KEPT: usize = 200;

/// A user's columns that decide where its rows go.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserSide {
    pub region_id: RegionId,
    pub user_name: String,
}

/// A user row's change at one logical time: its version before and after (`None`: absent).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UserChange {
    pub before: Option<UserSide>,
    pub after: Option<UserSide>,
}

/// Something a logical time changed downstream of the users, as one worker saw it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Effect {
    /// The DWD join emitted a user's partial anew, covering `rows` consumption rows.
    Member { user_id: UserId, rows: i64 },
    /// A ranking row of `user_id` in partition `(window, region)` changed (`retracted`: a
    /// version emitted earlier was taken back).
    Ranking {
        window: Millis,
        region_id: RegionId,
        user_id: UserId,
        retracted: bool,
    },
    /// The region row (and dashboard row) of partition `(window, region)` changed.
    Dashboard { window: Millis, region_id: RegionId },
}

/// One worker's share of what one user row corrected at one logical time.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Tally {
    pub time: Time,
    pub user_id: UserId,
    pub change: UserChange,
    pub dwd_rows: i64,
    pub ranking_rows: u64,
    pub dashboard_rows: u64,
    /// The windows of the touched partitions whose region row changed.
    pub windows: Vec<Millis>,
    /// Whether one of the user's emitted ranking rows was taken back.
    pub retracted: bool,
}

/// What one worker's effects at `time` say each changed user corrected (users that moved
/// nothing on this worker get no tally).
pub fn tally(time: Time, changes: &BTreeMap<UserId, UserChange>, effects: &[Effect]) -> Vec<Tally> {
    let mut dwd_rows: HashMap<UserId, i64> = HashMap::new();
    // Per partition: the users whose ranking rows changed; which partitions' region rows did.
    let mut ranked: HashMap<(Millis, RegionId), HashSet<UserId>> = HashMap::new();
    let mut regions_changed: HashSet<(Millis, RegionId)> = HashSet::new();
    let mut touched: HashMap<UserId, (BTreeSet<(Millis, RegionId)>, bool)> = HashMap::new();
    for effect in effects {
        match *effect {
            Effect::Member { user_id, rows } => {
                if changes.contains_key(&user_id) {
                    *dwd_rows.entry(user_id).or_default() += rows;
                }
            }
            Effect::Ranking {
                window,
                region_id,
                user_id,
                retracted,
            } => {
                ranked
                    .entry((window, region_id))
                    .or_default()
                    .insert(user_id);
                if changes.contains_key(&user_id) {
                    let (partitions, any_retracted) = touched.entry(user_id).or_default();
                    partitions.insert((window, region_id));
                    *any_retracted |= retracted;
                }
            }
            Effect::Dashboard { window, region_id } => {
                regions_changed.insert((window, region_id));
            }
        }
    }
    let mut tallies = Vec::new();
    for (&user_id, change) in changes {
        let rows = dwd_rows.get(&user_id).copied().unwrap_or(0);
        let (partitions, retracted) = touched.remove(&user_id).unwrap_or_default();
        let ranking_rows = partitions
            .iter()
            .map(|partition| ranked.get(partition).map_or(0, HashSet::len) as u64)
            .sum();
        let changed: Vec<&(Millis, RegionId)> = partitions
            .iter()
            .filter(|partition| regions_changed.contains(partition))
            .collect();
        let mut windows: Vec<Millis> = changed.iter().map(|(window, _)| *window).collect();
        windows.dedup();
        if rows == 0 && partitions.is_empty() {
            continue;
        }
        tallies.push(Tally {
            time,
            user_id,
            change: change.clone(),
            dwd_rows: rows,
            ranking_rows,
            dashboard_rows: changed.len() as u64,
            windows,
            retracted,
        });
    }
    tallies
}

/// What kind of user row a correction was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A user's first row, arriving after consumption rows that were booked to region 0.
    Late,
    /// A user moved to another region.
    Move,
    /// Another column changed (name, usage type …).
    Update,
    /// The user row was deleted: its rows go back to region 0.
    Delete,
}

/// One correction, as `/api/corrections` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Correction {
    /// The logical time of the user row (epoch ms), and as text.
    pub time: Time,
    pub time_text: String,
    pub user_id: UserId,
    pub user_name: Option<String>,
    pub kind: Kind,
    pub region_before: RegionId,
    pub region_after: RegionId,
    pub dwd_rows: i64,
    pub windows: u64,
    pub ranking_rows: u64,
    pub dashboard_rows: u64,
    /// From the logical time's input being sealed to every output being consistent with it.
    pub consistent_after_ms: Option<f64>,
}

/// Every worker's tallies of one user row at one time, summed: a correction, or `None` when the
/// row corrected nothing already emitted.
pub fn correction(tallies: &[Tally], consistent_after: Option<Duration>) -> Option<Correction> {
    let first = tallies.first()?;
    let change = &first.change;
    let dwd_rows: i64 = tallies.iter().map(|t| t.dwd_rows).sum();
    let retracted = tallies.iter().any(|t| t.retracted);
    let corrected = retracted || (change.before.is_some() && dwd_rows > 0);
    if !corrected {
        return None;
    }
    let windows: BTreeSet<Millis> = tallies
        .iter()
        .flat_map(|t| t.windows.iter().copied())
        .collect();
    let region = |side: &Option<UserSide>| side.as_ref().map_or(0, |s| s.region_id);
    let kind = match (&change.before, &change.after) {
        (None, _) => Kind::Late,
        (Some(_), None) => Kind::Delete,
        (Some(before), Some(after)) if before.region_id != after.region_id => Kind::Move,
        (Some(_), Some(_)) => Kind::Update,
    };
    Some(Correction {
        time: first.time,
        time_text: format_millis(first.time as Millis),
        user_id: first.user_id,
        user_name: change
            .after
            .as_ref()
            .or(change.before.as_ref())
            .map(|s| s.user_name.clone()),
        kind,
        region_before: region(&change.before),
        region_after: region(&change.after),
        dwd_rows,
        windows: windows.len() as u64,
        ranking_rows: tallies.iter().map(|t| t.ranking_rows).sum(),
        dashboard_rows: tallies.iter().map(|t| t.dashboard_rows).sum(),
        consistent_after_ms: consistent_after.map(|d| d.as_secs_f64() * 1000.0),
    })
}

/// The newest corrections and when each logical time's input was sealed, shared between
/// worker 0 and the web UI.
pub type SharedCorrections = Arc<Mutex<CorrectionsLog>>;

/// The newest [`KEPT`] corrections, and the seal instants of the times still in flight.
#[derive(Debug, Default)]
pub struct CorrectionsLog {
    corrections: VecDeque<Correction>,
    total: u64,
    /// The last time of each sealed batch and when it was sealed, oldest first.
    sealed: VecDeque<(Time, Instant)>,
}

impl CorrectionsLog {
    /// Worker 0 sealed its input up to `time` at `at`.
    pub fn sealed(&mut self, time: Time, at: Instant) {
        self.sealed.push_back((time, at));
        // Bounded even if nothing ever asks (no user row corrects anything).
        while self.sealed.len() > 10_000 {
            self.sealed.pop_front();
        }
    }

    /// How long `time` took from its seal to `now`; forgets the seals of earlier batches.
    pub fn consistent_after(&mut self, time: Time, now: Instant) -> Option<Duration> {
        while self
            .sealed
            .front()
            .is_some_and(|&(sealed, _)| sealed < time)
        {
            self.sealed.pop_front();
        }
        self.sealed
            .front()
            .map(|&(_, at)| now.saturating_duration_since(at))
    }

    pub fn push(&mut self, correction: Correction) {
        self.total += 1;
        self.corrections.push_back(correction);
        while self.corrections.len() > KEPT {
            self.corrections.pop_front();
        }
    }

    /// How many corrections there have been.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The newest corrections, newest first.
    pub fn newest(&self, limit: usize) -> Vec<Correction> {
        self.corrections.iter().rev().take(limit).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(region_id: RegionId) -> Option<UserSide> {
        Some(UserSide {
            region_id,
            user_name: "张三".to_string(),
        })
    }

    fn ranking(window: Millis, region_id: RegionId, user_id: UserId, retracted: bool) -> Effect {
        Effect::Ranking {
            window,
            region_id,
            user_id,
            retracted,
        }
    }

    /// User 1 moves from region 2 to region 3 in windows 0 and 5000: in each window it leaves
    /// region 2 (re-ranking users 7 and 8 there) and joins region 3 (re-ranking user 9).
    fn a_move() -> (BTreeMap<UserId, UserChange>, Vec<Effect>) {
        let changes = BTreeMap::from([(
            1,
            UserChange {
                before: side(2),
                after: side(3),
            },
        )]);
        let mut effects = vec![
            Effect::Member {
                user_id: 1,
                rows: 4,
            },
            Effect::Member {
                user_id: 1,
                rows: 2,
            },
            // a partial of another user, changed by its own new row
            Effect::Member {
                user_id: 5,
                rows: 1,
            },
        ];
        for window in [0, 5000] {
            effects.extend([
                ranking(window, 2, 1, true),
                ranking(window, 2, 7, true),
                ranking(window, 2, 7, false),
                ranking(window, 2, 8, false),
                ranking(window, 3, 1, false),
                ranking(window, 3, 9, true),
                ranking(window, 3, 9, false),
                Effect::Dashboard {
                    window,
                    region_id: 2,
                },
                Effect::Dashboard {
                    window,
                    region_id: 3,
                },
            ]);
        }
        // a partition the user never touched
        effects.push(ranking(0, 4, 6, true));
        effects.push(Effect::Dashboard {
            window: 0,
            region_id: 4,
        });
        (changes, effects)
    }

    #[test]
    fn a_move_counts_its_rows_the_partitions_it_left_and_joined_and_nothing_else() {
        let (changes, effects) = a_move();
        let tallies = tally(10, &changes, &effects);
        assert_eq!(tallies.len(), 1);
        let correction = correction(&tallies, Some(Duration::from_millis(3))).unwrap();
        assert_eq!(correction.kind, Kind::Move);
        assert_eq!((correction.region_before, correction.region_after), (2, 3));
        assert_eq!(correction.dwd_rows, 6);
        assert_eq!(correction.windows, 2);
        // per window: users 1, 7, 8 in region 2 and users 1, 9 in region 3
        assert_eq!(correction.ranking_rows, 10);
        assert_eq!(correction.dashboard_rows, 4);
        assert_eq!(correction.consistent_after_ms, Some(3.0));
    }

    #[test]
    fn tallies_of_several_workers_sum_to_the_one_workers_figures() {
        let (changes, effects) = a_move();
        let whole = correction(&tally(10, &changes, &effects), None).unwrap();
        // Split as the dataflow splits them: members on the user's worker, each partition
        // whole on one worker (here window 0 on worker 0, window 5000 on worker 1).
        let on = |worker: usize| -> Vec<Effect> {
            effects
                .iter()
                .filter(|effect| match effect {
                    Effect::Member { .. } => worker == 1,
                    Effect::Ranking { window, .. } | Effect::Dashboard { window, .. } => {
                        (*window == 0) == (worker == 0)
                    }
                })
                .cloned()
                .collect()
        };
        let mut tallies = tally(10, &changes, &on(0));
        tallies.extend(tally(10, &changes, &on(1)));
        assert_eq!(correction(&tallies, None).unwrap(), whole);
    }

    #[test]
    fn a_first_row_corrects_only_what_was_booked_to_region_0_before() {
        let changes = BTreeMap::from([(
            4,
            UserChange {
                before: None,
                after: side(6),
            },
        )]);
        // Its rows arrived at this same time: nothing emitted earlier changes.
        let fresh = [
            Effect::Member {
                user_id: 4,
                rows: 3,
            },
            ranking(0, 6, 4, false),
        ];
        assert_eq!(correction(&tally(1, &changes, &fresh), None), None);
        // Its rows were in region 0 before.
        let late = [
            Effect::Member {
                user_id: 4,
                rows: 3,
            },
            ranking(0, 0, 4, true),
            ranking(0, 6, 4, false),
            Effect::Dashboard {
                window: 0,
                region_id: 0,
            },
            Effect::Dashboard {
                window: 0,
                region_id: 6,
            },
        ];
        let late = correction(&tally(1, &changes, &late), None).unwrap();
        assert_eq!(late.kind, Kind::Late);
        assert_eq!((late.region_before, late.region_after), (0, 6));
        assert_eq!(
            (late.dwd_rows, late.windows, late.dashboard_rows),
            (3, 1, 2)
        );
    }

    #[test]
    fn a_user_without_rows_corrects_nothing_and_a_delete_is_named() {
        let changes = BTreeMap::from([
            (
                8,
                UserChange {
                    before: side(1),
                    after: side(2),
                },
            ),
            (
                9,
                UserChange {
                    before: side(1),
                    after: None,
                },
            ),
        ]);
        let effects = [
            Effect::Member {
                user_id: 9,
                rows: 2,
            },
            ranking(0, 1, 9, true),
            ranking(0, 0, 9, false),
        ];
        let tallies = tally(3, &changes, &effects);
        assert_eq!(tallies.len(), 1, "user 8 has no rows: {tallies:?}");
        let deleted = correction(&tallies, None).unwrap();
        assert_eq!(deleted.kind, Kind::Delete);
        assert_eq!(deleted.region_after, 0);
        assert_eq!(deleted.user_name.as_deref(), Some("张三"));
    }

    #[test]
    fn the_log_keeps_the_newest_and_times_each_from_its_seal() {
        let mut log = CorrectionsLog::default();
        let start = Instant::now();
        log.sealed(10, start);
        log.sealed(20, start + Duration::from_millis(5));
        let after = log.consistent_after(15, start + Duration::from_millis(12));
        assert_eq!(
            after,
            Some(Duration::from_millis(7)),
            "time 15 went in with batch 20"
        );
        let (changes, effects) = a_move();
        for _ in 0..KEPT + 3 {
            log.push(correction(&tally(10, &changes, &effects), None).unwrap());
        }
        assert_eq!(log.total(), KEPT as u64 + 3);
        assert_eq!(log.newest(usize::MAX).len(), KEPT);
    }
}
