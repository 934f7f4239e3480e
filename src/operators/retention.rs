//! Retention (SPEC §4a): when a window freezes, and the filter that keeps a frozen window's last
//! rows where they left the dataflow.
//!
//! Logical times are the source clock in epoch milliseconds, so a horizon `R` is measured on
//! that clock: the window `[s, s + w)` is live at logical times `t < s + w + R` and frozen from
//! `s + w + R` on. Inside the dataflow a frozen window's consumption rows leave the maintained
//! state (see [`crate::operators::upsert`]), which retracts everything they produced; outside it nothing is
//! retracted: [`until_frozen`] drops every update of a row at or after its window's freeze, so
//! the sink and the export keep the rows the window had at the last logical time before it froze.

use timely::dataflow::operators::vec::Filter;

use differential_dataflow::AsCollection;

use crate::model::rows::{window_start, Millis};
use crate::model::Time;
use crate::operators::Table;

/// The window size and the retention horizon of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The tumbling window, in milliseconds.
    pub window: Millis,
    /// How long after its end a window stays live; `None`: forever (no retention).
    pub horizon: Option<Millis>,
}

impl Retention {
    /// No retention: every window stays live forever.
    pub fn unbounded(window: Millis) -> Retention {
        Retention {
            window,
            horizon: None,
        }
    }

    /// The first logical time at which the window starting at `stat_date` is frozen, or `None`
    /// if it never freezes. A window that froze before time 0 freezes at 0.
    pub fn freezes_at(&self, stat_date: Millis) -> Option<Time> {
        let horizon = self.horizon?;
        let end = stat_date
            .saturating_add(self.window)
            .saturating_add(horizon);
        Some(u64::try_from(end).unwrap_or(0))
    }

    /// The first logical time at which the window holding `date` is frozen, or `None`.
    pub fn freezes_at_date(&self, date: Millis) -> Option<Time> {
        self.freezes_at(window_start(date, self.window))
    }

    /// Whether the window starting at `stat_date` is still live at logical time `time`.
    pub fn is_live(&self, stat_date: Millis, time: Time) -> bool {
        self.freezes_at(stat_date)
            .is_none_or(|frozen| time < frozen)
    }
}

/// The updates of `table` made while the row's window was live: an update at or after the
/// freeze of the window that `stat_date_of` names is dropped (rows without a window pass).
///
/// Inside the dataflow a window's rows are retracted when it freezes; this is what keeps those
/// retractions from reaching the sink, so a freeze never deletes a row outside the dataflow.
pub fn until_frozen<'scope, D: differential_dataflow::Data>(
    table: Table<'scope, D>,
    retention: Retention,
    stat_date_of: impl Fn(&D) -> Option<Millis> + 'static,
) -> Table<'scope, D> {
    if retention.horizon.is_none() {
        return table;
    }
    table
        .inner
        .filter(move |(row, time, _)| {
            stat_date_of(row).is_none_or(|stat_date| retention.is_live(stat_date, *time))
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_freezes_one_horizon_after_its_end() {
        let retention = Retention {
            window: 5_000,
            horizon: Some(60_000),
        };
        assert_eq!(retention.freezes_at(10_000), Some(75_000));
        assert_eq!(retention.freezes_at_date(12_345), Some(75_000));
        assert!(retention.is_live(10_000, 74_999));
        assert!(!retention.is_live(10_000, 75_000));
        // Windows that froze before the epoch freeze at time 0.
        assert_eq!(retention.freezes_at(-100_000), Some(0));
    }

    #[test]
    fn without_a_horizon_nothing_freezes() {
        let retention = Retention::unbounded(5_000);
        assert_eq!(retention.freezes_at(0), None);
        assert!(retention.is_live(0, u64::MAX));
    }
}
