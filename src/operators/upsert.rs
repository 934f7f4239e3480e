//! An upsert table whose rows expire: the maintained ODS state under retention (SPEC §4a).
//!
//! Differential's `arrange_from_upsert` keeps the last row of every key forever. This operator
//! keeps each key's current row only until the row's expiry time (its window's freeze), and then
//! retracts it, at exactly that logical time, so every layer built on it forgets the row too.
//! Rows arriving already expired are not applied (they are counted), a delete of a key the state
//! does not hold changes nothing, and a key whose row expired is new when it arrives again.
//!
//! Work is per row: each arrival costs a hash-map update, each expiry one entry of a time-ordered
//! queue. The operator holds one capability, at the earliest time it may still emit at (a pending
//! input or a pending expiry), so the dataflow's frontier waits for expiries as for inputs.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::StreamVec;

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};

use crate::model::Time;
use crate::operators::earliest::Earliest;
use crate::operators::Table;

/// What one activation of the upsert operator did to its state, for the job's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Arriving rows that were expired on arrival (`expiry <= arrival time`) and not applied.
    pub expired: u64,
    /// How the number of rows the state holds changed (insertions minus retractions).
    pub live_delta: i64,
}

/// Maintains the current row of every key from a stream of `(key, row or delete, time)`,
/// retracting each row at the time `expiry` gives it (`None`: never). `on_counts` is told, after
/// each activation that changed anything, how many arriving rows were expired and how the
/// number of rows held changed.
pub fn upsert_with_expiry<'scope, K, R>(
    stream: StreamVec<'scope, Time, (K, Option<R>, Time)>,
    name: &str,
    expiry: impl Fn(&R) -> Option<Time> + 'static,
    on_counts: impl Fn(StateCounts) + 'static,
) -> Table<'scope, R>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    R: ExchangeData,
{
    let by_key = Exchange::new(|(key, _, _): &(K, Option<R>, Time)| key.hashed());
    stream
        .unary_frontier(by_key, name, move |_, _| {
            let mut state = Expiring::new(expiry);
            // At or before every time this operator may still emit at.
            let mut held = Earliest::default();
            let mut changes = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    held.hold(&capability);
                    for (key, row, time) in data.drain(..) {
                        state.arrive(time, key, row);
                    }
                });
                let expired = state.advance(|time| !frontier.less_equal(time), &mut changes);
                let live_delta = changes.iter().map(|(_, _, diff)| *diff as i64).sum();
                if expired > 0 || live_delta != 0 {
                    on_counts(StateCounts {
                        expired,
                        live_delta,
                    });
                }
                if let (Some(capability), false) = (held.get(), changes.is_empty()) {
                    output.session(capability).give_iterator(changes.drain(..));
                }
                held.advance(state.next_time());
            }
        })
        .as_collection()
}

/// The operator's state, apart from capabilities: a plain, testable upsert table with expiry.
struct Expiring<K, R, E> {
    expiry: E,
    /// The current row of each key; only rows that have not expired.
    rows: HashMap<K, R>,
    /// The keys whose row expires at each time (entries go stale when a key changes: they are
    /// checked against the key's current row when their time comes).
    expiries: BTreeMap<Time, Vec<K>>,
    /// Arrived upserts not yet applied, by time.
    arrivals: BTreeMap<Time, Vec<(K, Option<R>)>>,
}

impl<K, R, E> Expiring<K, R, E>
where
    K: Clone + Ord + Hash,
    R: Clone + Ord,
    E: Fn(&R) -> Option<Time>,
{
    fn new(expiry: E) -> Self {
        Expiring {
            expiry,
            rows: HashMap::new(),
            expiries: BTreeMap::new(),
            arrivals: BTreeMap::new(),
        }
    }

    fn arrive(&mut self, time: Time, key: K, row: Option<R>) {
        self.arrivals.entry(time).or_default().push((key, row));
    }

    /// The earliest time with work left: arrivals to apply or expiries to carry out.
    fn next_time(&self) -> Option<Time> {
        let arrival = self.arrivals.keys().next();
        let expiry = self.expiries.keys().next();
        arrival.into_iter().chain(expiry).min().copied()
    }

    /// Applies every time that `complete` says no more input can arrive at, in time order: first
    /// the expiries due at that time, then its arrivals. Appends the changes and returns how many
    /// arrivals were expired on arrival.
    fn advance(
        &mut self,
        complete: impl Fn(&Time) -> bool,
        changes: &mut Vec<(R, Time, isize)>,
    ) -> u64 {
        let mut expired = 0;
        while let Some(time) = self.next_time().filter(|time| complete(time)) {
            if let Some(keys) = self.expiries.remove(&time) {
                for key in keys {
                    let due = self
                        .rows
                        .get(&key)
                        .is_some_and(|row| (self.expiry)(row) == Some(time));
                    if due {
                        let row = self.rows.remove(&key).expect("checked above");
                        changes.push((row, time, -1));
                    }
                }
            }
            if let Some(mut arrivals) = self.arrivals.remove(&time) {
                // One upsert per key and time: the sources send no more, and should two arrive
                // anyway the greatest wins, as in differential's own upsert.
                arrivals.sort();
                let mut arrivals = arrivals.into_iter().peekable();
                while let Some((key, row)) = arrivals.next() {
                    if arrivals.peek().is_none_or(|(next, _)| *next != key) {
                        expired += self.apply(time, key, row, changes);
                    }
                }
            }
        }
        expired
    }

    /// Applies one upsert at `time`; returns 1 if the row was expired on arrival.
    fn apply(
        &mut self,
        time: Time,
        key: K,
        row: Option<R>,
        changes: &mut Vec<(R, Time, isize)>,
    ) -> u64 {
        let expires = row.as_ref().map(|row| (self.expiry)(row));
        if let Some(Some(expires)) = expires {
            if expires <= time {
                return 1;
            }
        }
        if let Some(old) = self.rows.remove(&key) {
            changes.push((old, time, -1));
        }
        if let (Some(row), Some(expires)) = (row, expires) {
            if let Some(expires) = expires {
                self.expiries.entry(expires).or_default().push(key.clone());
            }
            changes.push((row.clone(), time, 1));
            self.rows.insert(key, row);
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows are `(value, expiry)`; expiry 0 means never.
    type Row = (i64, Time);

    fn table() -> Expiring<i64, Row, impl Fn(&Row) -> Option<Time>> {
        Expiring::new(|row: &Row| (row.1 > 0).then_some(row.1))
    }

    fn advance_to(
        table: &mut Expiring<i64, Row, impl Fn(&Row) -> Option<Time>>,
        frontier: Time,
    ) -> (Vec<(Row, Time, isize)>, u64) {
        let mut changes = Vec::new();
        let expired = table.advance(|time| *time < frontier, &mut changes);
        (changes, expired)
    }

    #[test]
    fn rows_are_retracted_at_their_expiry_and_not_before_the_frontier_passes_it() {
        let mut t = table();
        t.arrive(10, 1, Some((100, 50)));
        t.arrive(10, 2, Some((200, 0)));
        assert_eq!(
            advance_to(&mut t, 11),
            (vec![((100, 50), 10, 1), ((200, 0), 10, 1)], 0)
        );
        assert_eq!(t.next_time(), Some(50));
        assert_eq!(advance_to(&mut t, 50), (vec![], 0));
        assert_eq!(advance_to(&mut t, 51), (vec![((100, 50), 50, -1)], 0));
        assert_eq!(t.next_time(), None);
    }

    #[test]
    fn an_update_replaces_the_row_and_its_expiry() {
        let mut t = table();
        t.arrive(10, 1, Some((100, 50)));
        t.arrive(20, 1, Some((101, 90)));
        assert_eq!(
            advance_to(&mut t, 60),
            (
                vec![((100, 50), 10, 1), ((100, 50), 20, -1), ((101, 90), 20, 1)],
                0
            )
        );
        assert_eq!(advance_to(&mut t, 100), (vec![((101, 90), 90, -1)], 0));
    }

    #[test]
    fn expired_arrivals_change_nothing_and_are_counted() {
        let mut t = table();
        t.arrive(10, 1, Some((100, 50)));
        // Already expired on arrival: the earlier row of the key stays.
        t.arrive(20, 1, Some((101, 20)));
        t.arrive(20, 2, Some((102, 5)));
        assert_eq!(advance_to(&mut t, 21), (vec![((100, 50), 10, 1)], 2));
    }

    #[test]
    fn after_expiry_a_key_is_new_and_a_delete_of_it_changes_nothing() {
        let mut t = table();
        t.arrive(10, 1, Some((100, 30)));
        t.arrive(40, 1, None);
        t.arrive(50, 1, Some((101, 90)));
        assert_eq!(
            advance_to(&mut t, 60),
            (
                vec![((100, 30), 10, 1), ((100, 30), 30, -1), ((101, 90), 50, 1)],
                0
            )
        );
    }

    #[test]
    fn an_arrival_at_the_expiry_time_sees_the_old_row_gone() {
        let mut t = table();
        t.arrive(10, 1, Some((100, 30)));
        t.arrive(30, 1, Some((101, 90)));
        assert_eq!(
            advance_to(&mut t, 31),
            (
                vec![((100, 30), 10, 1), ((100, 30), 30, -1), ((101, 90), 30, 1)],
                0
            )
        );
    }
}
