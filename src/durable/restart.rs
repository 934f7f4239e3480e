//! What a restarted worker feeds before its source goes on.
//!
//! The sinks skip every change set at or below their progress, so nothing the dataflow emits
//! up to it needs to be right time by time — only the state it reaches. The snapshot and the
//! logged ticks up to that point therefore go in as one tick at that time (collapsed: one
//! logical time instead of one per tick, each key's last upsert winning), and only the logged
//! ticks after it, which the sinks have not applied, keep their own times.

use super::error::StateError;
use super::log::Recovered;
use crate::model::Time;
use crate::sources::{last_upsert_wins, Tick, Upsert};

/// The ticks worker `worker` feeds on a restart, given how far every sink has `committed`
/// (`Time::MAX` when the job has no sink): the first is the collapsed tick, at the smaller
/// of `committed` and the worker's last checkpoint.
pub fn replay_ticks(
    worker: usize,
    recovered: Recovered,
    committed: Time,
) -> Result<Vec<Tick>, StateError> {
    let Some((durable, _)) = recovered.checkpoint else {
        return Ok(Vec::new());
    };
    let collapse_at = committed.min(durable);
    if let Some(snapshot) = &recovered.snapshot {
        if snapshot.time > collapse_at {
            return Err(StateError::SinkBehindSnapshot {
                worker,
                snapshot: snapshot.time,
                committed,
            });
        }
    }
    let split = recovered
        .ticks
        .partition_point(|tick| tick.time <= collapse_at);
    let mut ticks = recovered.ticks;
    let later = ticks.split_off(split);
    let mut users: Vec<Upsert<_, _>> = Vec::new();
    let mut consumption: Vec<Upsert<_, _>> = Vec::new();
    if let Some(snapshot) = recovered.snapshot {
        users.extend(snapshot.users.into_iter().map(|(k, r)| (k, Some(r))));
        consumption.extend(snapshot.consumption.into_iter().map(|(k, r)| (k, Some(r))));
    }
    for tick in ticks {
        users.extend(tick.users);
        consumption.extend(tick.consumption);
    }
    let mut replay = Vec::with_capacity(later.len() + 1);
    if !users.is_empty() || !consumption.is_empty() {
        replay.push(Tick {
            time: collapse_at,
            users: last_upsert_wins(users),
            consumption: last_upsert_wins(consumption),
        });
    }
    replay.extend(later);
    Ok(replay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{reading, user};
    use crate::durable::snapshot::Snapshot;
    use crate::sources::SourcePosition;

    fn tick(time: Time, id: i64, amount: i64) -> Tick {
        Tick {
            time,
            users: vec![],
            consumption: vec![(id, Some(reading(id, 1, amount, 0)))],
        }
    }

    fn recovered(snapshot_time: Option<Time>, ticks: Vec<Tick>, durable: Time) -> Recovered {
        let position = SourcePosition::Scripted { next_tick: 0 };
        Recovered {
            snapshot: snapshot_time.map(|time| Snapshot {
                time,
                covers_segment: 0,
                position: position.clone(),
                users: vec![(1, user(1, "u", 1, "r"))],
                consumption: vec![(1, reading(1, 1, 5, 0))],
            }),
            ticks,
            checkpoint: Some((durable, position)),
            dropped_tail: None,
        }
    }

    #[test]
    fn what_the_sinks_applied_goes_in_as_one_time_and_the_rest_at_its_own() {
        let ticks = vec![
            tick(20, 1, 6),
            tick(30, 2, 7),
            tick(40, 1, 8),
            tick(50, 3, 9),
        ];
        let replay = replay_ticks(0, recovered(Some(10), ticks, 50), 40).unwrap();
        let times: Vec<Time> = replay.iter().map(|t| t.time).collect();
        assert_eq!(times, vec![40, 50]);
        // id 1's last row wins over the snapshot's and the earlier tick's
        let mut collapsed = replay[0].consumption.clone();
        collapsed.sort();
        assert_eq!(
            collapsed,
            vec![
                (1, Some(reading(1, 1, 8, 0))),
                (2, Some(reading(2, 1, 7, 0)))
            ]
        );
        assert_eq!(replay[0].users.len(), 1);
    }

    #[test]
    fn without_sinks_everything_durable_collapses_and_a_sink_behind_the_snapshot_fails() {
        let ticks = vec![tick(20, 1, 6), tick(30, 2, 7)];
        let replay = replay_ticks(0, recovered(None, ticks.clone(), 30), Time::MAX).unwrap();
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].time, 30);
        // nothing committed and no snapshot: every tick keeps its time
        let replay = replay_ticks(0, recovered(None, ticks.clone(), 30), 0).unwrap();
        assert_eq!(replay, ticks);
        assert!(matches!(
            replay_ticks(0, recovered(Some(25), vec![], 30), 20),
            Err(StateError::SinkBehindSnapshot { .. })
        ));
    }
}
