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
//!   every other row of the partition); its **windows** are their distinct windows;
//! - its **ranking rows** and **dashboard rows** are the versions of those partitions' ranking
//!   rows and region rows that had been emitted and were taken back: the user's own old rows
//!   and every row it re-ranked or re-summed.
//!
//! A user row *corrects* when output that was already emitted changes: one of its ranking rows
//! is retracted (it leaves region 0 on arriving late, moves, is renamed, is deleted), or, for a
//! user already known, its DWD rows change. Rows that arrive in the same logical time as the
//! user's first consumption rows correct nothing. Consumption rows arriving at the same logical
//! time in the same partitions count too: the figures are the output rows that changed there.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use foldhash::{HashMap, HashSet};
use serde::{Deserialize, Serialize};

use crate::model::rows::{Millis, RegionId, UserId};
use crate::model::values::format_millis;
use crate::model::Time;

/// How many corrections the log keeps (the newest).
pub const KEPT: usize = 200;

/// Per logical time, how many of the changed users (the lowest ids) get the full figures; the
/// others are only counted. A catch-up time can change thousands of users, more than the feed
/// shows, and tallying every one would cost a share of the whole job.
pub const TRACKED_PER_TIME: usize = 64;

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

/// Something a logical time changed downstream of the users, as one worker saw it: what the
/// monitor folds with [`TimeTally`]'s `add_*` methods, as one value for the tests' inputs.
#[cfg(test)]
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
    /// The region row (and dashboard row) of partition `(window, region)` emitted earlier was
    /// taken back.
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
    /// The windows of the touched partitions.
    pub windows: Vec<Millis>,
    /// Whether one of the user's emitted ranking rows was taken back.
    pub retracted: bool,
    /// Whether the figures were tallied (one of the time's [`TRACKED_PER_TIME`] users), or only
    /// `dwd_rows` and `retracted`.
    pub tracked: bool,
}

/// What one partition's changes at one time took back.
#[derive(Clone, Copy, Debug, Default)]
struct PartitionCounts {
    ranking_retractions: u64,
    region_retracted: bool,
}

/// One worker's effects of one logical time, folded as they arrive: per partition only counts,
/// and per user only what concerns the users that changed (all of it while those are not known
/// yet). Nothing is kept per row.
#[derive(Debug, Default)]
pub struct TimeTally {
    partitions: HashMap<(Millis, RegionId), PartitionCounts>,
    /// The partition whose ranking changes are arriving (they come partition by partition),
    /// counted here before they go into `partitions`.
    run: Option<((Millis, RegionId), u64)>,
    /// Ranking changes of (possibly) tracked users: user, partition, taken back.
    touches: Vec<(UserId, (Millis, RegionId), bool)>,
    /// (Possibly) changed users one of whose emitted ranking rows was taken back.
    retracted: HashSet<UserId>,
    members: HashMap<UserId, i64>,
    /// The highest tracked user id, once the changed users are known.
    tracked_upto: Option<Option<UserId>>,
}

/// The highest user id of the [`TRACKED_PER_TIME`] lowest changed ones.
fn tracked_upto(changes: &BTreeMap<UserId, UserChange>) -> Option<UserId> {
    changes
        .keys()
        .nth(TRACKED_PER_TIME - 1)
        .or(changes.keys().last())
        .copied()
}

impl TimeTally {
    /// Folds one effect in; `changed` is the time's changed users when they are known.
    #[cfg(test)]
    pub fn add(&mut self, effect: &Effect, changed: Option<&BTreeMap<UserId, UserChange>>) {
        match *effect {
            Effect::Member { user_id, rows } => self.add_member(user_id, rows, changed),
            Effect::Ranking {
                window,
                region_id,
                user_id,
                retracted,
            } => self.add_ranking((window, region_id), user_id, retracted, changed),
            Effect::Dashboard { window, region_id } => {
                self.add_region_retraction((window, region_id))
            }
        }
    }

    /// The DWD join emitted a partial of `user_id` anew, covering `rows` consumption rows.
    pub fn add_member(
        &mut self,
        user_id: UserId,
        rows: i64,
        changed: Option<&BTreeMap<UserId, UserChange>>,
    ) {
        if changed.is_none_or(|c| c.contains_key(&user_id)) {
            *self.members.entry(user_id).or_default() += rows;
        }
    }

    /// A ranking row of `user_id` in `partition` changed (`retracted`: an emitted version was
    /// taken back).
    pub fn add_ranking(
        &mut self,
        partition: (Millis, RegionId),
        user_id: UserId,
        retracted: bool,
        changed: Option<&BTreeMap<UserId, UserChange>>,
    ) {
        if retracted {
            match &mut self.run {
                Some((current, count)) if *current == partition => *count += 1,
                _ => {
                    self.end_run();
                    self.run = Some((partition, 1));
                }
            }
        }
        let (concerns, tracked) = match changed {
            None => (true, true),
            Some(changes) => {
                let upto = *self
                    .tracked_upto
                    .get_or_insert_with(|| tracked_upto(changes));
                let concerns = changes.contains_key(&user_id);
                (
                    concerns,
                    concerns && upto.is_some_and(|upto| user_id <= upto),
                )
            }
        };
        if concerns && retracted {
            self.retracted.insert(user_id);
        }
        if tracked {
            self.touches.push((user_id, partition, retracted));
        }
    }

    /// Moves the counted run of ranking retractions into `partitions`.
    fn end_run(&mut self) {
        if let Some((partition, count)) = self.run.take() {
            self.partitions
                .entry(partition)
                .or_default()
                .ranking_retractions += count;
        }
    }

    /// The region row of `partition` emitted earlier was taken back.
    pub fn add_region_retraction(&mut self, partition: (Millis, RegionId)) {
        self.partitions
            .entry(partition)
            .or_default()
            .region_retracted = true;
    }

    /// What each changed user corrected among this worker's effects (users that moved nothing
    /// here get no tally).
    pub fn finish(mut self, time: Time, changes: &BTreeMap<UserId, UserChange>) -> Vec<Tally> {
        self.end_run();
        let upto = tracked_upto(changes);
        let tracks = |user_id: UserId| upto.is_some_and(|upto| user_id <= upto);
        self.touches
            .retain(|(user_id, _, _)| changes.contains_key(user_id) && tracks(*user_id));
        self.touches.sort_unstable();
        let mut tallies = Vec::new();
        for (&user_id, change) in changes {
            let rows = self.members.get(&user_id).copied().unwrap_or(0);
            let retracted = self.retracted.contains(&user_id);
            if !tracks(user_id) {
                if rows != 0 || retracted {
                    tallies.push(Tally {
                        time,
                        user_id,
                        change: change.clone(),
                        dwd_rows: rows,
                        retracted,
                        ..Tally::default()
                    });
                }
                continue;
            }
            let start = self.touches.partition_point(|(u, _, _)| *u < user_id);
            let end = self.touches.partition_point(|(u, _, _)| *u <= user_id);
            let touches = &self.touches[start..end];
            if rows == 0 && touches.is_empty() {
                continue;
            }
            let mut partitions: Vec<(Millis, RegionId)> =
                touches.iter().map(|(_, partition, _)| *partition).collect();
            partitions.dedup();
            let counts = |partition: &(Millis, RegionId)| {
                self.partitions.get(partition).copied().unwrap_or_default()
            };
            let mut windows: Vec<Millis> = partitions.iter().map(|(window, _)| *window).collect();
            windows.dedup();
            tallies.push(Tally {
                time,
                user_id,
                change: change.clone(),
                dwd_rows: rows,
                ranking_rows: partitions
                    .iter()
                    .map(|p| counts(p).ranking_retractions)
                    .sum(),
                dashboard_rows: partitions
                    .iter()
                    .filter(|p| counts(p).region_retracted)
                    .count() as u64,
                windows,
                retracted,
                tracked: true,
            });
        }
        tallies
    }
}

/// What one worker's effects at `time` say each changed user corrected.
#[cfg(test)]
pub fn tally(time: Time, changes: &BTreeMap<UserId, UserChange>, effects: &[Effect]) -> Vec<Tally> {
    let mut folded = TimeTally::default();
    for effect in effects {
        folded.add(effect, Some(changes));
    }
    folded.finish(time, changes)
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

/// Whether every worker's tallies of one user row at one time say it corrected output already
/// emitted (tracked or not).
pub fn corrects(tallies: &[Tally]) -> bool {
    let Some(first) = tallies.first() else {
        return false;
    };
    let dwd_rows: i64 = tallies.iter().map(|t| t.dwd_rows).sum();
    tallies.iter().any(|t| t.retracted) || (first.change.before.is_some() && dwd_rows > 0)
}

/// Every worker's tallies of one user row at one time, summed: a correction, or `None` when the
/// row corrected nothing already emitted.
pub fn correction(tallies: &[Tally], consistent_after: Option<Duration>) -> Option<Correction> {
    let first = tallies.first()?;
    let change = &first.change;
    let dwd_rows: i64 = tallies.iter().map(|t| t.dwd_rows).sum();
    if !corrects(tallies) {
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

    /// Counts a correction whose figures were not tallied (not among the tracked users).
    pub fn count(&mut self) {
        self.total += 1;
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
        // per window: the old rows of users 1 and 7 in region 2, and of user 9 in region 3
        assert_eq!(correction.ranking_rows, 6);
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
    fn beyond_the_tracked_users_only_dwd_rows_and_the_retraction_are_tallied() {
        let users = TRACKED_PER_TIME as UserId + 10;
        let changes: BTreeMap<UserId, UserChange> = (1..=users)
            .map(|user_id| {
                let change = UserChange {
                    before: side(1),
                    after: side(2),
                };
                (user_id, change)
            })
            .collect();
        let effects: Vec<Effect> = (1..=users)
            .flat_map(|user_id| {
                [
                    Effect::Member { user_id, rows: 1 },
                    ranking(0, 1, user_id, true),
                    ranking(0, 2, user_id, false),
                ]
            })
            .collect();
        let tallies = tally(1, &changes, &effects);
        assert_eq!(tallies.len(), users as usize);
        let (tracked, untracked): (Vec<&Tally>, Vec<&Tally>) =
            tallies.iter().partition(|t| t.tracked);
        assert_eq!(tracked.len(), TRACKED_PER_TIME);
        assert!(tracked
            .iter()
            .all(|t| t.user_id <= TRACKED_PER_TIME as UserId));
        assert!(tracked.iter().all(|t| t.ranking_rows == users as u64));
        assert!(untracked
            .iter()
            .all(|t| t.retracted && t.dwd_rows == 1 && t.ranking_rows == 0));
        assert!(untracked.iter().all(|t| corrects(std::slice::from_ref(*t))));
    }

    #[test]
    fn effects_folded_before_the_users_are_known_tally_the_same() {
        let (changes, effects) = a_move();
        let mut unknown = TimeTally::default();
        for effect in &effects {
            unknown.add(effect, None);
        }
        assert_eq!(unknown.finish(10, &changes), tally(10, &changes, &effects));
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
