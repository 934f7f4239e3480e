//! A reduce for totally ordered times that keeps each key's input and no output.
//!
//! Differential's `reduce` arranges its input and its output, and replays a key's history to
//! find the output changes at each time. For the DWS partitions that is two indexed copies of
//! every ranking row. Here the times are totally ordered and complete one after another, so a
//! key's output *before* a time is a function of its input before it: at each completed time
//! this operator recomputes the output of every key that changed, before and after the time's
//! updates, and emits the difference. State is one sorted vector of values per key.
//!
//! The cost of a change is that of running `logic` twice on its key, which the DWS partitions
//! pay anyway (their ranking reads the whole partition); what it saves is the output
//! arrangement, the input arrangement's batches and their merging.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt};
use std::hash::Hash;

use smallvec::SmallVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use differential_dataflow::consolidation::consolidate;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, ExchangeData};

use crate::model::Time;
use crate::operators::earliest::Earliest;
use crate::operators::Table;

/// How many output updates are handed on at once.
const OUTPUT_BATCH: usize = 8_192;

/// How many input and output updates one activation handles before it yields, so that the
/// operators downstream take its output before it makes more (a logical time of a million rows
/// would otherwise queue all its output at once).
const WORK_PER_ACTIVATION: usize = 100_000;

/// Groups `input` by key and maintains `logic` of each group: `logic` gets the key and the
/// group's values, sorted, each with its (positive) multiplicity, and appends the group's output
/// rows. A key without values has no output.
pub fn reduce_in_time_order<'scope, K, V, O, L>(
    input: Table<'scope, (K, V)>,
    name: &str,
    mut logic: L,
) -> Table<'scope, O>
where
    K: ExchangeData + Hash + Hashable<Output = u64>,
    V: ExchangeData,
    O: ExchangeData,
    L: FnMut(&K, &[(V, isize)], &mut Vec<O>) + 'static,
{
    let by_key = Exchange::new(|((key, _), _, _): &((K, V), Time, isize)| key.hashed());
    let scope = input.inner.scope();
    input
        .inner
        .unary_frontier(by_key, name, move |_, info| {
            let activator = scope.activator_for(info.address.clone());
            // foldhash, not SipHash: hashing the key was a sixth of the partitions' time in a
            // correction (perf); the keys are ours, not an attacker's.
            let mut groups: HashMap<K, Group<V>> = HashMap::new();
            let mut pending: BTreeMap<Time, Vec<(K, V, isize)>> = BTreeMap::new();
            // The time whose updates are sorted (by key, descending) and partly applied.
            let mut started: Option<Time> = None;
            // At or before every pending time.
            let mut held = Earliest::default();
            let mut changes: Vec<(O, Time, isize)> = Vec::new();
            let mut rows: Vec<O> = Vec::new();
            let mut diffs: Vec<(O, isize)> = Vec::new();
            move |(input, frontier), output| {
                input.for_each(|capability, data| {
                    held.hold(&capability);
                    for ((key, value), time, diff) in data.drain(..) {
                        pending.entry(time).or_default().push((key, value, diff));
                    }
                });
                let mut fuel = WORK_PER_ACTIVATION;
                while let Some(mut entry) = pending.first_entry() {
                    let time = *entry.key();
                    if frontier.less_equal(&time) || fuel == 0 {
                        break;
                    }
                    let updates = entry.get_mut();
                    if started != Some(time) {
                        updates.sort_unstable_by(|a, b| b.0.cmp(&a.0));
                        started = Some(time);
                    }
                    // Keys from the end, so applied updates come off with a truncate.
                    while let Some((key, _, _)) = updates.last() {
                        if fuel == 0 {
                            break;
                        }
                        let start = updates.partition_point(|(k, _, _)| k > key);
                        let same_key = &updates[start..];
                        let group = groups.entry(key.clone()).or_default();
                        if !group.is_empty() {
                            logic(key, group, &mut rows);
                            diffs.extend(rows.drain(..).map(|row| (row, -1)));
                        }
                        for (_, value, diff) in same_key {
                            update(group, value, *diff);
                        }
                        if group.is_empty() {
                            groups.remove(key);
                        } else {
                            logic(key, group, &mut rows);
                            diffs.extend(rows.drain(..).map(|row| (row, 1)));
                        }
                        consolidate(&mut diffs);
                        fuel = fuel.saturating_sub(same_key.len() + diffs.len());
                        changes.extend(diffs.drain(..).map(|(row, diff)| (row, time, diff)));
                        updates.truncate(start);
                        // Hand output on as it is made, so a large time is not held whole.
                        if changes.len() >= OUTPUT_BATCH {
                            let capability = held.get().expect("held while work is pending");
                            output.session(capability).give_iterator(changes.drain(..));
                        }
                    }
                    if updates.is_empty() {
                        entry.remove();
                    }
                }
                if let (Some(capability), false) = (held.get(), changes.is_empty()) {
                    output.session(capability).give_iterator(changes.drain(..));
                }
                let next = pending.keys().next().copied();
                held.advance(next);
                // Out of fuel with complete work left: come back once downstream has taken what
                // this activation produced.
                if next.is_some_and(|next| !frontier.less_equal(&next)) {
                    activator.activate();
                }
            }
        })
        .as_collection()
}

/// A key's values, sorted, with their multiplicities. Most groups of the DWS partials hold one
/// value (a user's only reading in a 5-second window): it is kept inline, without an allocation.
type Group<V> = SmallVec<[(V, isize); 1]>;

/// Adds `diff` to the multiplicity of `value` in the sorted `group`, dropping it at zero.
fn update<V: Ord + Clone>(group: &mut Group<V>, value: &V, diff: isize) {
    match group.binary_search_by(|(v, _)| v.cmp(value)) {
        Ok(position) => {
            group[position].1 += diff;
            if group[position].1 == 0 {
                group.remove(position);
            }
        }
        Err(position) => group.insert(position, (value.clone(), diff)),
    }
}

#[cfg(test)]
mod tests {
    use super::update;

    #[test]
    fn groups_stay_sorted_and_drop_values_at_zero() {
        let mut group = super::Group::new();
        update(&mut group, &5, 1);
        update(&mut group, &2, 1);
        update(&mut group, &9, 2);
        assert_eq!(group.as_slice(), [(2, 1), (5, 1), (9, 2)]);
        update(&mut group, &5, -1);
        update(&mut group, &9, -1);
        assert_eq!(group.as_slice(), [(2, 1), (9, 1)]);
    }
}
