//! The monitor's exits from the dataflow: the live dashboard and the corrections feed. Both
//! leave as soon as a logical time completes — not after it is durable, as the database sinks'
//! changes do — and both are built on every worker of every process (timely matches operators
//! by the order they are built), with only worker 0 of process 0 keeping what arrives.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::{Operator, OutputBuilder, OutputBuilderSession};
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::{Scope, StreamVec};
use timely::progress::frontier::MutableAntichain;

use differential_dataflow::consolidation::consolidate;
use foldhash::{HashMap, HashMapExt};

use super::corrections::{
    correction, corrects, SharedCorrections, Tally, TimeTally, UserChange, UserSide,
};
use super::live::{is_recent, RegionDelta, SharedLive, TOP_USERS};
use crate::metrics::Metrics;
use crate::model::rows::Member;
use crate::model::rows::{Dashboard, Dim, Millis, RegionId, User, UserId, UserRanking};
use crate::model::TableRow;
use crate::model::Time;
use crate::operators::earliest::Earliest;
use crate::operators::{Indexed, Table};

/// What a worker sends the live dashboard: a region's summed changes, or a row of the latest
/// windows, with its logical time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum LiveUpdate {
    Region(RegionId, RegionDelta),
    Row(TableRow, isize),
}

/// Builds the monitor's exits from the tables it watches: the live dashboard and the
/// corrections. One operator per worker reads each table once (so a table watched adds no copy
/// of its updates when nothing else reads it), folds them as they arrive, and sends worker 0
/// region deltas and rows of the latest windows ([`LiveUpdate`]) and per-user tallies
/// ([`Tally`]).
///
/// - **Live dashboard**: each worker folds its dashboard changes into region deltas and keeps
///   only the rows (dashboard rows, the top of each ranking) of the latest windows it has seen.
/// - **Corrections**: each worker holds the user changes (all of them, broadcast) and folds its
///   own effects of each time ([`TimeTally`]) until the time is complete; effects of a time
///   without user changes are dropped as soon as the users' frontier shows there are none.
///
/// `views` holds the shared live dashboard and corrections on the worker that keeps them
/// (worker 0 of the UI's process) and nothing on every other worker.
pub fn monitor(
    watched: Watched<'_>,
    window_length: Millis,
    views: super::Monitor,
    metrics: Arc<Metrics>,
) {
    let scope = watched.members.inner.scope();
    scope.region_named("ui.monitor", |region| {
        build(watched.enter_region(region), window_length, views, metrics)
    });
}

/// The tables the monitor watches.
pub struct Watched<'scope> {
    /// `ods_power_user`, by user id.
    pub users: Indexed<'scope, UserId, User>,
    /// The DWS partials joined with their users, by partition.
    pub members: Table<'scope, ((Millis, RegionId), Member)>,
    pub rankings: Table<'scope, UserRanking>,
    pub dashboards: Table<'scope, Dashboard>,
}

impl Watched<'_> {
    /// The same tables in the region `region`.
    fn enter_region<'inner>(self, region: Scope<'inner, Time>) -> Watched<'inner> {
        Watched {
            users: self.users.enter_region(region),
            members: self.members.enter_region(region),
            rankings: self.rankings.enter_region(region),
            dashboards: self.dashboards.enter_region(region),
        }
    }
}

/// Builds the monitor's operators, in the region [`monitor`] made for them.
fn build(
    watched: Watched<'_>,
    window_length: Millis,
    views: super::Monitor,
    metrics: Arc<Metrics>,
) {
    let Watched {
        users,
        members,
        rankings,
        dashboards,
    } = watched;
    let (live, log) = (views.live, views.corrections);
    let changes = users
        .as_collection(|&user_id, user| {
            let dim = Dim::of(Some(user));
            let side = UserSide {
                region_id: dim.region_id,
                user_name: dim.user_name.to_string(),
            };
            (user_id, side)
        })
        .inner
        .broadcast();
    let mut builder = OperatorBuilder::new("ui.monitor".to_string(), members.inner.scope());
    let mut changes_input = builder.new_input(changes, Pipeline);
    let mut members_input = builder.new_input(members.inner, Pipeline);
    let mut rankings_input = builder.new_input(rankings.inner, Pipeline);
    let mut dashboards_input = builder.new_input(dashboards.inner, Pipeline);
    let (tallies_output, tallies) = builder.new_output();
    let mut tallies_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<Tally>>>::from(tallies_output);
    let (live_output, live_updates) = builder.new_output();
    let mut live_output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<(LiveUpdate, Time)>>>::from(live_output);
    builder.build(move |_| {
        let mut state = Corrections::default();
        // The newest window this worker has seen: rows older than the latest windows below it
        // cannot be among the job's latest either.
        let mut newest: Option<Millis> = None;
        // Ranking changes of times whose user changes are not all in yet.
        let mut waiting: Vec<(UserRanking, Time, isize)> = Vec::new();
        move |frontiers| {
            let mut tallies_output = tallies_output.activate();
            let mut live_output = live_output.activate();
            let users_frontier = &frontiers[0];
            changes_input.for_each(|capability, data| {
                state.held.hold(&capability);
                for (change, time, diff) in data.drain(..) {
                    state.changes.entry(time).or_default().push((change, diff));
                }
            });
            members_input.for_each(|_, data| {
                for ((_, member), time, diff) in data.drain(..) {
                    if diff > 0 {
                        if let Some((tally, changed)) = state.fold(time, users_frontier) {
                            let rows = member.partial.count * diff as i64;
                            tally.add_member(member.user_id, rows, changed);
                        }
                    }
                }
            });
            rankings_input.for_each(|capability, data| {
                let mut updates = Vec::new();
                for (ranking, time, diff) in data.drain(..) {
                    if ranking.ranking <= TOP_USERS
                        && newest.is_none_or(|n| is_recent(ranking.stat_date, n, window_length))
                    {
                        let row = TableRow::Ranking(ranking.clone());
                        updates.push((LiveUpdate::Row(row, diff), time));
                    }
                    // The users' changes of a time are usually in before its rankings are,
                    // but progress can lag behind data: until they are, its rankings wait.
                    if users_frontier.less_equal(&time) {
                        waiting.push((ranking, time, diff));
                    } else if let Some((tally, changed)) = state.fold(time, users_frontier) {
                        let partition = (ranking.stat_date, ranking.region_id);
                        tally.add_ranking(partition, ranking.user_id, diff < 0, changed);
                    }
                }
                live_output
                    .session(&capability)
                    .give_iterator(updates.into_iter());
            });
            waiting.retain(|(ranking, time, diff)| {
                if users_frontier.less_equal(time) {
                    return true;
                }
                if let Some((tally, changed)) = state.fold(*time, users_frontier) {
                    let partition = (ranking.stat_date, ranking.region_id);
                    tally.add_ranking(partition, ranking.user_id, *diff < 0, changed);
                }
                false
            });
            dashboards_input.for_each(|capability, data| {
                let mut deltas: HashMap<(Time, RegionId), RegionDelta> = HashMap::new();
                let mut updates = Vec::new();
                for (dashboard, time, diff) in data.drain(..) {
                    let partition = (dashboard.stat_date, dashboard.region_id);
                    if diff < 0 {
                        if let Some((tally, _)) = state.fold(time, users_frontier) {
                            tally.add_region_retraction(partition);
                        }
                    }
                    deltas
                        .entry((time, dashboard.region_id))
                        .or_default()
                        .add(&dashboard, diff);
                    if diff > 0 {
                        newest = Some(
                            newest.map_or(dashboard.stat_date, |n| n.max(dashboard.stat_date)),
                        );
                    }
                    if newest.is_none_or(|n| is_recent(dashboard.stat_date, n, window_length)) {
                        updates.push((LiveUpdate::Row(TableRow::Dashboard(dashboard), diff), time));
                    }
                }
                updates.extend(
                    deltas
                        .into_iter()
                        .map(|((time, region), delta)| (LiveUpdate::Region(region, delta), time)),
                );
                live_output
                    .session(&capability)
                    .give_iterator(updates.into_iter());
            });
            let earliest_waiting = waiting.iter().map(|(_, time, _)| *time).min();
            let complete = |time: &Time| {
                frontiers.iter().all(|f| !f.less_equal(time))
                    && earliest_waiting.is_none_or(|waiting| waiting > *time)
            };
            state.finish_complete(complete, &mut tallies_output);
        }
    });
    record(tallies, log, metrics);
    apply_live(live_updates, live);
}

/// The user changes of a time, kept until both inputs have passed it.
type ChangesByTime = BTreeMap<Time, Vec<((UserId, UserSide), isize)>>;

/// One worker's corrections in progress: the user changes of each time, and its effects folded.
#[derive(Default)]
struct Corrections {
    changes: ChangesByTime,
    /// The changed users of times whose user changes are all in, once worked out.
    known: BTreeMap<Time, BTreeMap<UserId, UserChange>>,
    tallies: BTreeMap<Time, TimeTally>,
    /// At or before every time with user changes (only those get tallies).
    held: Earliest,
}

impl Corrections {
    /// Where an effect at `time` goes: `None` when no user changed then (it is dropped), else
    /// the time's tally and its changed users when they are known (all of them are kept while
    /// not).
    fn fold(
        &mut self,
        time: Time,
        users_frontier: &MutableAntichain<Time>,
    ) -> Option<(&mut TimeTally, Option<&BTreeMap<UserId, UserChange>>)> {
        let changed =
            if users_frontier.less_equal(&time) {
                None
            } else {
                if !self.changes.contains_key(&time) && !self.known.contains_key(&time) {
                    return None;
                }
                let changes = &self.changes;
                Some(&*self.known.entry(time).or_insert_with(|| {
                    user_changes(changes.get(&time).cloned().unwrap_or_default())
                }))
            };
        Some((self.tallies.entry(time).or_default(), changed))
    }

    /// Tallies every complete time that had user changes, and forgets the effects of complete
    /// times without any.
    fn finish_complete(
        &mut self,
        complete: impl Fn(&Time) -> bool,
        output: &mut OutputBuilderSession<'_, Time, CapacityContainerBuilder<Vec<Tally>>>,
    ) {
        while let Some((&time, _)) = self.changes.first_key_value() {
            if !complete(&time) {
                break;
            }
            let changes = self.changes.remove(&time).unwrap_or_default();
            let changed = self
                .known
                .remove(&time)
                .unwrap_or_else(|| user_changes(changes));
            while self
                .tallies
                .first_key_value()
                .is_some_and(|(&t, _)| t < time)
            {
                self.tallies.pop_first();
            }
            let tallies = self
                .tallies
                .remove(&time)
                .unwrap_or_default()
                .finish(time, &changed);
            if let (false, Some(capability)) = (tallies.is_empty(), self.held.get()) {
                output
                    .session(&capability.delayed(&time))
                    .give_iterator(tallies.into_iter());
            }
        }
        while self
            .tallies
            .first_key_value()
            .is_some_and(|(t, _)| complete(t) && !self.changes.contains_key(t))
        {
            self.tallies.pop_first();
        }
        while self
            .known
            .first_key_value()
            .is_some_and(|(t, _)| complete(t))
        {
            self.known.pop_first();
        }
        self.held.advance(self.changes.keys().next().copied());
    }
}

/// A time's user changes by user: the version retracted and the version inserted.
fn user_changes(changes: Vec<((UserId, UserSide), isize)>) -> BTreeMap<UserId, UserChange> {
    let mut by_user: BTreeMap<UserId, UserChange> = BTreeMap::new();
    for ((user_id, side), diff) in changes {
        let change = by_user.entry(user_id).or_default();
        if diff < 0 {
            change.before = Some(side);
        } else {
            change.after = Some(side);
        }
    }
    // A row replaced by an identical one changed nothing the dashboard shows.
    by_user.retain(|_, change| change.before != change.after);
    by_user
}

/// On worker 0: sums each time's tallies into corrections once the time is complete.
fn record(
    tallies: StreamVec<'_, Time, Tally>,
    log: Option<SharedCorrections>,
    metrics: Arc<Metrics>,
) {
    let to_worker_zero = Exchange::new(|_: &Tally| 0);
    let mut pending: BTreeMap<Time, Vec<Tally>> = BTreeMap::new();
    tallies.sink(
        to_worker_zero,
        "ui.corrections.record",
        move |(input, frontier)| {
            input.for_each(|_, data| {
                for tally in data.drain(..) {
                    pending.entry(tally.time).or_default().push(tally);
                }
            });
            while let Some(entry) = pending.first_entry() {
                if frontier.less_equal(entry.key()) {
                    break;
                }
                let (time, mut tallies) = entry.remove_entry();
                let Some(log) = &log else { continue };
                let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                let consistent_after = log.consistent_after(time, Instant::now());
                tallies.sort_by_key(|tally| tally.user_id);
                for user in tallies.chunk_by(|a, b| a.user_id == b.user_id) {
                    if !user.iter().any(|tally| tally.tracked) {
                        if corrects(user) {
                            log.count();
                            Metrics::add(&metrics.corrections, 1);
                        }
                    } else if let Some(correction) = correction(user, consistent_after) {
                        log.push(correction);
                        Metrics::add(&metrics.corrections, 1);
                    }
                }
            }
        },
    );
}

/// On worker 0: applies each completed time's region deltas and rows to the live view.
fn apply_live(updates: StreamVec<'_, Time, (LiveUpdate, Time)>, live: Option<SharedLive>) {
    let to_worker_zero = Exchange::new(|_: &(LiveUpdate, Time)| 0);
    type Pending = (HashMap<RegionId, RegionDelta>, Vec<(TableRow, isize)>);
    let mut pending: BTreeMap<Time, Pending> = BTreeMap::new();
    updates.sink(to_worker_zero, "ui.live.apply", move |(input, frontier)| {
        input.for_each(|_, data| {
            for (update, time) in data.drain(..) {
                let (deltas, rows) = pending.entry(time).or_default();
                match update {
                    LiveUpdate::Region(region, delta) => {
                        deltas.entry(region).or_default().merge(delta)
                    }
                    LiveUpdate::Row(row, diff) => rows.push((row, diff)),
                }
            }
        });
        while let Some(entry) = pending.first_entry() {
            if frontier.less_equal(entry.key()) {
                break;
            }
            let (time, (deltas, mut rows)) = entry.remove_entry();
            let Some(live) = &live else { continue };
            consolidate(&mut rows);
            let mut live = live.lock().unwrap_or_else(PoisonError::into_inner);
            live.apply_deltas(deltas);
            live.apply_rows(time, &rows);
        }
    });
}
