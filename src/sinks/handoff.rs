//! The handoff: where the tables' changes leave the dataflow, one completed logical time at a
//! time.
//!
//! Every table's changes (and the malformed input rows, which travel beside them as an error
//! collection) are routed to worker 0, held until the dataflow's frontier passes their time,
//! consolidated, and handed to a [`ChangeSink`] in time order. A change set is therefore final:
//! it is exactly the difference between the tables at the previous completed time and at this
//! one.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use super::{ChangeSink, SinkError};
use crate::model::{TableRow, Time};
use crate::operators::Table;

/// Routes `rows` to worker 0 and hands each completed time's changes to `sink` there. Every
/// worker builds the operator; only worker 0 passes a sink. A sink that fails is handed to
/// `on_failure` with its error and gets nothing more.
///
/// With `durability`, a durable job's marks — `(worker, time)`: every input of that worker up
/// to `time` is in its durable log, [`crate::durable`] — hold a completed change set back until
/// every one of the `peers` workers has made its time durable: a sink never commits what a
/// restart could not reproduce.
pub fn hand_off<'scope, S: ChangeSink + 'static>(
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
