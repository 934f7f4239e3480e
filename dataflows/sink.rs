//! Sink: where the tables' changes leave the dataflow, one completed logical time at a time.
//!
//! Every table's changes (and the malformed input rows, which travel beside them as an error
//! collection) are routed to worker 0, held until the dataflow's frontier passes their time,
//! consolidated, and handed to a [`ChangeSink`] in time order. A change set is therefore final:
//! it is exactly the difference between the tables at the previous completed time and at this
//! one. The export, the tests and the database sinks are all `ChangeSink`s.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::{Layers, Table};
use crate::csv_input::RowError;
use crate::reference::Warehouse;
use crate::retention::{until_frozen, Retention};
use crate::rows::{window_start, Consumption, Dashboard, Detail, RegionStats, User, UserRanking};
use crate::sinks::SinkError;
use crate::source::Time;

/// A row of any warehouse table, or a malformed input row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TableRow {
    User(User),
    Consumption(Consumption),
    Detail(Detail),
    RegionStats(RegionStats),
    Ranking(UserRanking),
    Dashboard(Dashboard),
    Error(RowError),
}

/// The warehouse's tables as they leave the dataflow. Under retention a frozen window keeps, in
/// every table, the rows it had at the last logical time before it froze (SPEC §4a): inside the
/// dataflow its rows leave the maintained state, but those retractions stop here.
pub struct Leaving<'scope> {
    /// ODS and DWD, when the DWD layer was built with its detail rows.
    pub ods_and_dwd: Option<OdsAndDwd<'scope>>,
    pub region_stats: Table<'scope, RegionStats>,
    pub rankings: Table<'scope, UserRanking>,
    pub dashboards: Table<'scope, Dashboard>,
}

/// The ODS and DWD tables as they leave the dataflow.
pub struct OdsAndDwd<'scope> {
    pub users: Table<'scope, User>,
    pub consumption: Table<'scope, Consumption>,
    pub details: Table<'scope, Detail>,
}

/// The tables of `layers` as they leave the dataflow under `retention`.
pub fn leaving<'scope>(layers: Layers<'scope>, retention: Retention) -> Leaving<'scope> {
    let window = retention.window;
    let ods = layers.ods;
    Leaving {
        ods_and_dwd: layers
            .dwd
            .details
            .zip(ods.consumption)
            .map(|(details, consumption)| OdsAndDwd {
                users: ods.users.as_collection(|_, user| user.clone()),
                consumption: until_frozen(consumption, retention, move |c| {
                    Some(window_start(c.consumption_date, window))
                }),
                details: until_frozen(details, retention, move |d| {
                    Some(window_start(d.fact.date, window))
                }),
            }),
        region_stats: until_frozen(layers.dws.region_stats, retention, |r| Some(r.stat_date)),
        rankings: until_frozen(layers.dws.rankings, retention, |r| Some(r.stat_date)),
        dashboards: until_frozen(layers.ads.dashboards, retention, |d| Some(d.stat_date)),
    }
}

/// Receives the consolidated changes of each completed logical time, in time order.
pub trait ChangeSink {
    /// Applies the changes that make the tables at `time` out of the tables before it. The sink
    /// owns them from here: one that keeps them (to write later, or on another thread) does not
    /// copy them.
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>);
    /// Called after a run of consecutive completed times has been applied: a sink that
    /// batches writes them now. An error stops the job: the sink cannot take more.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Routes `rows` to worker 0 and hands each completed time's changes to `sink` there. Every
/// worker builds the operator; only worker 0 passes a sink. A sink that fails is handed to
/// `on_failure` with its error and gets nothing more.
///
/// With `durability`, a durable job's marks — `(worker, time)`: every input of that worker up
/// to `time` is in its durable log, [`crate::durable`] — hold a completed change set back until
/// every one of the `peers` workers has made its time durable: a sink never commits what a
/// restart could not reproduce.
pub fn sink<'scope, S: ChangeSink + 'static>(
    rows: Table<'scope, TableRow>,
    durability: Option<Marks<'scope>>,
    sink: Option<Rc<RefCell<S>>>,
    on_failure: impl FnMut(SinkError) + 'static,
) {
    let to_worker_zero = Exchange::new(|_: &(TableRow, Time, isize)| 0);
    let mut handoff = Handoff {
        pending: BTreeMap::new(),
        sink,
        on_failure,
    };
    match durability {
        None => {
            rows.inner
                .sink(to_worker_zero, "sink.changes", move |(input, frontier)| {
                    input.for_each(|_, data| handoff.receive(data));
                    handoff.hand_over(|time| !frontier.less_equal(time));
                });
        }
        Some((marks, peers)) => {
            let marks_to_worker_zero = Exchange::new(|_: &(usize, Time)| 0);
            // The latest durable time of each worker (none yet: nothing is durable).
            let mut durable: Vec<Option<Time>> = vec![None; peers];
            rows.inner
                .binary_frontier::<_, CapacityContainerBuilder<Vec<()>>, _, _, _, _>(
                    marks,
                    to_worker_zero,
                    marks_to_worker_zero,
                    "sink.changes",
                    move |capability, _| {
                        drop(capability);
                        move |(input, frontier), (marks, _), _| {
                            input.for_each(|_, data| handoff.receive(data));
                            marks.for_each(|_, data| {
                                for (worker, time) in data.drain(..) {
                                    let latest = &mut durable[worker];
                                    *latest = Some(latest.map_or(time, |l| l.max(time)));
                                }
                            });
                            let everywhere = durable.iter().copied().min().flatten();
                            handoff.hand_over(|time| {
                                !frontier.less_equal(time)
                                    && everywhere.is_some_and(|durable| *time <= durable)
                            });
                        }
                    },
                );
        }
    }
}

/// The sink operator's state: the changes not handed over yet, and the sink they go to.
struct Handoff<S, F> {
    /// Changes not yet handed over, by time; the ones ready are always a prefix.
    pending: BTreeMap<Time, Vec<(TableRow, isize)>>,
    sink: Option<Rc<RefCell<S>>>,
    on_failure: F,
}

impl<S: ChangeSink, F: FnMut(SinkError)> Handoff<S, F> {
    fn receive(&mut self, data: &mut Vec<(TableRow, Time, isize)>) {
        for (row, time, diff) in data.drain(..) {
            self.pending.entry(time).or_default().push((row, diff));
        }
    }

    /// Hands every ready time's consolidated changes to the sink, in time order, then flushes.
    fn hand_over(&mut self, ready: impl Fn(&Time) -> bool) {
        let mut applied = false;
        while let Some(entry) = self.pending.first_entry() {
            if !ready(entry.key()) {
                break;
            }
            let (time, changes) = entry.remove_entry();
            let changes = consolidate_rows(changes);
            if let (Some(sink), false) = (&self.sink, changes.is_empty()) {
                sink.borrow_mut().apply(time, changes);
                applied = true;
            }
        }
        if let (Some(failing), true) = (&self.sink, applied) {
            let flushed = failing.borrow_mut().flush();
            if let Err(error) = flushed {
                self.sink = None;
                (self.on_failure)(error);
            }
        }
    }
}

/// Sorts `changes` by row and sums the multiplicities of equal rows, dropping those at zero.
///
/// A row is a hundred bytes and more: differential's `consolidate` sorts the rows themselves,
/// and moving them was a third of worker 0's time while it applied a late user update
/// (measured with perf, `docs/benchmarks.md`). This sorts their positions instead, and moves
/// each row twice, once to take it out and once into its place.
pub fn consolidate_rows<R: Ord>(changes: Vec<(R, isize)>) -> Vec<(R, isize)> {
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_unstable_by(|&a, &b| changes[a].0.cmp(&changes[b].0));
    let mut slots: Vec<Option<(R, isize)>> = changes.into_iter().map(Some).collect();
    let mut consolidated: Vec<(R, isize)> = Vec::with_capacity(slots.len());
    for position in order {
        let (row, diff) = slots[position].take().expect("each position once");
        match consolidated.last_mut() {
            Some((last, sum)) if *last == row => *sum += diff,
            _ => {
                if consolidated.last().is_some_and(|(_, sum)| *sum == 0) {
                    consolidated.pop();
                }
                consolidated.push((row, diff));
            }
        }
    }
    if consolidated.last().is_some_and(|(_, sum)| *sum == 0) {
        consolidated.pop();
    }
    consolidated
}

/// Durability marks, `(worker, time)`, and how many workers send them.
pub type Marks<'scope> = (StreamVec<'scope, Time, (usize, Time)>, usize);

/// The consolidated changes of one completed logical time.
pub type ChangeSet = (Time, Vec<(TableRow, isize)>);

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

#[cfg(test)]
mod tests {
    use differential_dataflow::consolidation::consolidate;
    use proptest::prelude::*;

    use super::consolidate_rows;

    proptest! {
        /// Held against differential's own `consolidate`, which sorts the rows themselves.
        #[test]
        fn consolidating_by_position_agrees_with_differential(
            changes in proptest::collection::vec((0u8..20, -2isize..=2), 0..200)
        ) {
            let mut expected = changes.clone();
            consolidate(&mut expected);
            prop_assert_eq!(consolidate_rows(changes), expected);
        }
    }
}
