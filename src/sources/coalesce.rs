//! On the wall clock, a job that has fallen behind merges the ticks already due into one
//! logical time, so that it catches up instead of falling further behind.
//!
//! Each logical time costs the dataflow work of its own: every partition a time touches is
//! re-ranked once, and its changes leave the dataflow once. At 100k rows/s in 10 ms ticks that
//! was 165 ranking changes per input row, far more work than the rows themselves, so a job that
//! lagged never caught up (`docs/benchmarks.md`). When the ticks waiting are already due, one
//! time for all of them gives the same tables at its end, with the churn between them collapsed
//! inside it.
//!
//! Merging happens before a tick is logged, so a durable job's log holds the merged tick and a
//! restart replays the same times. The simulated clock never merges: its times are a function
//! of the options alone (`docs/semantics.md`).

use crate::model::Time;
use crate::sources::{last_upsert_wins, Source, SourcePosition, Tick};

/// A source whose due ticks are merged, up to `max_rows` rows per merged tick.
pub struct Coalescing<'a> {
    source: &'a mut dyn Source,
    /// A tick read ahead that was not due yet, and the source's position before it.
    held: Option<(Tick, SourcePosition)>,
    max_rows: usize,
}

impl<'a> Coalescing<'a> {
    pub fn new(source: &'a mut dyn Source, max_rows: usize) -> Coalescing<'a> {
        Coalescing {
            source,
            held: None,
            max_rows: max_rows.max(1),
        }
    }

    /// The next tick, and the time of the first tick merged into it (its own time when none
    /// was). With `now` (the wall clock, epoch milliseconds), a tick that is due — whose time is
    /// at or before `now` — takes every following due tick into it, up to `max_rows` rows;
    /// without it, ticks come as the source makes them.
    pub fn next_tick(&mut self, now: Option<Time>) -> Option<(Tick, Time)> {
        let mut tick = match self.held.take() {
            Some((tick, _)) => tick,
            None => self.source.next_tick()?,
        };
        let first = tick.time;
        let Some(now) = now else {
            return Some((tick, first));
        };
        let mut rows = tick.len();
        let mut merged = false;
        while tick.time <= now && rows < self.max_rows {
            let before = self.source.position();
            let Some(next) = self.source.next_tick() else {
                break;
            };
            if next.time > now {
                self.held = Some((next, before));
                break;
            }
            rows += next.len();
            tick.time = next.time;
            tick.users.extend(next.users);
            tick.consumption.extend(next.consumption);
            merged = true;
        }
        if merged {
            // Once for the whole merged tick: the later row of a key wins.
            tick.users = last_upsert_wins(tick.users);
            tick.consumption = last_upsert_wins(tick.consumption);
        }
        Some((tick, first))
    }

    /// Where a restart must resume the source: before the tick read ahead, which no log holds.
    pub fn position(&self) -> SourcePosition {
        match &self.held {
            Some((_, before)) => before.clone(),
            None => self.source.position(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Coalescing;
    use crate::check::testing::{reading, user};
    use crate::sources::scripted::Scripted;
    use crate::sources::{Source, SourcePosition, Tick};

    fn ticks() -> Vec<Tick> {
        (1..=4)
            .map(|i| Tick {
                time: 10 * i,
                users: vec![(1, Some(user(1, &format!("name {i}"), 1, "a")))],
                consumption: vec![(i as i64, Some(reading(i as i64, 1, 100, 0)))],
            })
            .collect()
    }

    #[test]
    fn due_ticks_merge_and_the_last_row_of_a_key_wins() {
        let mut script = Scripted::new(ticks(), 0, 1);
        let mut source = Coalescing::new(&mut script, 1_000);
        let (merged, first) = source.next_tick(Some(25)).expect("a tick");
        assert_eq!((merged.time, first), (20, 10));
        assert_eq!(merged.users, vec![(1, Some(user(1, "name 2", 1, "a")))]);
        assert_eq!(merged.consumption.len(), 2);
        // The tick at 30 was read ahead: a restart must read it again.
        assert_eq!(source.position(), SourcePosition::Scripted { next_tick: 2 });
        // Not due at 25: it comes alone, and waits for the clock.
        let (alone, first) = source.next_tick(Some(25)).expect("a tick");
        assert_eq!((alone.time, first, alone.consumption.len()), (30, 30, 1));
        assert_eq!(source.position(), SourcePosition::Scripted { next_tick: 3 });
    }

    #[test]
    fn merging_stops_at_the_row_limit_and_the_simulated_clock_never_merges() {
        let mut script = Scripted::new(ticks(), 0, 1);
        // Each tick has two rows: the limit of three stops after the second tick.
        let mut source = Coalescing::new(&mut script, 3);
        assert_eq!(source.next_tick(Some(100)).map(|t| t.0.time), Some(20));
        assert_eq!(source.next_tick(None).map(|t| t.0.time), Some(30));
        assert_eq!(source.next_tick(None).map(|t| t.0.time), Some(40));
        assert_eq!(source.next_tick(None), None);
        let mut script = Scripted::new(ticks(), 0, 1);
        let mut source = Coalescing::new(&mut script, 1_000);
        let (everything, first) = source.next_tick(Some(100)).expect("a tick");
        assert_eq!(
            (everything.time, first, everything.consumption.len()),
            (40, 10, 4)
        );
        assert_eq!(source.next_tick(Some(100)), None);
        assert!(script.next_tick().is_none());
    }
}
