//! The monitor's exits from the dataflow: the live dashboard and the corrections feed. Both
//! leave as soon as a logical time completes — not after it is durable, as the database sinks'
//! changes do — and both are built on every worker of every process (timely matches operators
//! by the order they are built), with only worker 0 of process 0 keeping what arrives.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Arc, PoisonError};
use std::time::Instant;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::StreamVec;

use super::corrections::{
    correction, tally, Effect, SharedCorrections, Tally, UserChange, UserSide,
};
use super::live::{LiveSink, SharedLive, TOP_USERS};
use crate::dataflows::dws::Member;
use crate::dataflows::sink::{sink, TableRow};
use crate::dataflows::{Indexed, Table};
use crate::earliest::Earliest;
use crate::metrics::Metrics;
use crate::rows::{Dashboard, Dim, Millis, RegionId, User, UserId, UserRanking};
use crate::source::Time;

/// Feeds the live dashboard: dashboard rows and the top of each ranking, to worker 0.
pub fn live_dashboard<'scope>(
    dashboards: Table<'scope, Dashboard>,
    rankings: Table<'scope, UserRanking>,
    live: Option<SharedLive>,
) {
    let scope = dashboards.inner.scope();
    let rows = differential_dataflow::collection::concatenate(
        scope,
        vec![
            dashboards.map(TableRow::Dashboard),
            rankings
                .filter(|ranking| ranking.ranking <= TOP_USERS)
                .map(TableRow::Ranking),
        ],
    );
    let live = live.map(|live| Rc::new(RefCell::new(LiveSink(live))));
    sink(rows, None, live, |_| {});
}

/// Feeds the corrections log: each worker tallies what the users changed at a time moved among
/// its own rows ([`tally`]), and worker 0 sums the tallies into corrections.
pub fn corrections<'scope>(
    users: Indexed<'scope, UserId, User>,
    members: Table<'scope, ((Millis, RegionId), Member)>,
    rankings: Table<'scope, UserRanking>,
    dashboards: Table<'scope, Dashboard>,
    log: Option<SharedCorrections>,
    metrics: Arc<Metrics>,
) {
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
    let scope = members.inner.scope();
    let effects = scope.concatenate(vec![
        members.inner.flat_map(|((_, member), time, diff)| {
            (diff > 0).then_some((
                Effect::Member {
                    user_id: member.user_id,
                    rows: member.partial.count * diff as i64,
                },
                time,
            ))
        }),
        rankings.inner.map(|(ranking, time, diff)| {
            let effect = Effect::Ranking {
                window: ranking.stat_date,
                region_id: ranking.region_id,
                user_id: ranking.user_id,
                retracted: diff < 0,
            };
            (effect, time)
        }),
        dashboards.inner.map(|(dashboard, time, _)| {
            let effect = Effect::Dashboard {
                window: dashboard.stat_date,
                region_id: dashboard.region_id,
            };
            (effect, time)
        }),
    ]);
    let tallies = tally_per_worker(changes, effects);
    record(tallies, log, metrics);
}

/// The user changes of a time, kept until both inputs have passed it.
type ChangesByTime = BTreeMap<Time, Vec<((UserId, UserSide), isize)>>;

/// On every worker: holds the user changes (all of them, broadcast) and the local effects of
/// each time until both are complete, then tallies them. Effects of a time without user
/// changes are dropped as soon as the users' frontier shows there are none.
fn tally_per_worker<'scope>(
    changes: StreamVec<'scope, Time, ((UserId, UserSide), Time, isize)>,
    effects: StreamVec<'scope, Time, (Effect, Time)>,
) -> StreamVec<'scope, Time, Tally> {
    changes.binary_frontier::<_, CapacityContainerBuilder<Vec<Tally>>, _, _, _, _>(
        effects,
        Pipeline,
        Pipeline,
        "ui.corrections.tally",
        |_, _| {
            let mut changes_by_time: ChangesByTime = BTreeMap::new();
            let mut effects_by_time: BTreeMap<Time, Vec<Effect>> = BTreeMap::new();
            let mut held = Earliest::default();
            move |(changes, changes_frontier), (effects, effects_frontier), output| {
                changes.for_each(|capability, data| {
                    held.hold(&capability);
                    for (change, time, diff) in data.drain(..) {
                        changes_by_time
                            .entry(time)
                            .or_default()
                            .push((change, diff));
                    }
                });
                effects.for_each(|capability, data| {
                    for (effect, time) in data.drain(..) {
                        let no_changes = !changes_frontier.less_equal(&time)
                            && !changes_by_time.contains_key(&time);
                        if !no_changes {
                            held.hold(&capability);
                            effects_by_time.entry(time).or_default().push(effect);
                        }
                    }
                });
                let complete = |time: &Time| {
                    !changes_frontier.less_equal(time) && !effects_frontier.less_equal(time)
                };
                while let Some((&time, _)) = changes_by_time.first_key_value() {
                    if !complete(&time) {
                        break;
                    }
                    let by_user = user_changes(changes_by_time.remove(&time).unwrap_or_default());
                    // Effects of earlier times had no user changes.
                    while effects_by_time
                        .first_key_value()
                        .is_some_and(|(&t, _)| t < time)
                    {
                        effects_by_time.pop_first();
                    }
                    let effects = effects_by_time.remove(&time).unwrap_or_default();
                    let tallies = tally(time, &by_user, &effects);
                    if let (false, Some(capability)) = (tallies.is_empty(), held.get()) {
                        output
                            .session(&capability.delayed(&time))
                            .give_iterator(tallies.into_iter());
                    }
                }
                // Effects of complete times that had no user changes.
                while effects_by_time
                    .first_key_value()
                    .is_some_and(|(t, _)| complete(t) && !changes_by_time.contains_key(t))
                {
                    effects_by_time.pop_first();
                }
                let next = [changes_by_time.keys().next(), effects_by_time.keys().next()]
                    .into_iter()
                    .flatten()
                    .min()
                    .copied();
                held.advance(next);
            }
        },
    )
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
                    if let Some(correction) = correction(user, consistent_after) {
                        log.push(correction);
                        Metrics::add(&metrics.corrections, 1);
                    }
                }
            }
        },
    );
}
