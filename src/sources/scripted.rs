//! A source that replays ticks given in advance: the tests', and inputs built by other tools.

use super::{last_upsert_wins, owner_of, PositionError, Source, SourcePosition, Tick};

/// A source that replays ticks given in advance (tests, and inputs built by other tools): each
/// worker keeps the rows of the keys it owns, the last row of a key in a tick winning.
pub struct Scripted {
    ticks: std::vec::IntoIter<Tick>,
    next_tick: usize,
    worker: usize,
    peers: usize,
}

impl Scripted {
    /// One worker's share of `ticks`, whose times must strictly increase.
    pub fn new(ticks: Vec<Tick>, worker: usize, peers: usize) -> Scripted {
        Scripted {
            ticks: ticks.into_iter(),
            next_tick: 0,
            worker,
            peers,
        }
    }
}

impl Source for Scripted {
    fn position(&self) -> SourcePosition {
        SourcePosition::Scripted {
            next_tick: self.next_tick,
        }
    }

    fn resume(&mut self, position: SourcePosition) -> Result<(), PositionError> {
        let SourcePosition::Scripted { next_tick } = position else {
            return Err(PositionError::OtherSource {
                position: Box::new(position),
                kind: "scripted input",
            });
        };
        while self.next_tick < next_tick {
            self.next_tick().ok_or_else(|| {
                PositionError::DoesNotFit("the position is past the end of the script".into())
            })?;
        }
        Ok(())
    }

    fn next_tick(&mut self) -> Option<Tick> {
        let tick = self.ticks.next()?;
        self.next_tick += 1;
        let (worker, peers) = (self.worker, self.peers);
        let users = tick
            .users
            .into_iter()
            .filter(|(key, _)| owner_of(*key, peers) == worker)
            .collect();
        let consumption = tick
            .consumption
            .into_iter()
            .filter(|(key, _)| owner_of(*key, peers) == worker)
            .collect();
        Some(Tick {
            time: tick.time,
            users: last_upsert_wins(users),
            consumption: last_upsert_wins(consumption),
        })
    }
}
