//! Bugs planted on purpose, so that the tests (and a sceptical reader) can see `gridflow verify`
//! catch them: `gridflow verify --plant-bug BUG` switches one on for that process, and nothing
//! else ever does (docs/verify.md). Off, each costs one relaxed atomic load where it sits.
//!
//! One sits in code only the dataflow runs, which the batch twin must catch; the other in a
//! helper the twin shares with the dataflow (`rows::window_start`), which the twin cannot see
//! and only PostgreSQL, sharing no code with gridflow, catches.

use std::sync::atomic::{AtomicU8, Ordering};

/// A planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[repr(u8)]
pub enum Bug {
    /// DWS counts a user's partial (its rows in one window and hour) as one row, so
    /// `avg_consumption` is wrong wherever a user has two rows in one window-hour. In
    /// `dataflows/dws.rs` only: the twin catches it.
    PartialCount = 1,
    /// `window_start` puts a row exactly on a window boundary into the previous window
    /// (windows `(s, s + w]`, an off-by-one). The twin shares the helper: only PostgreSQL's
    /// `date_bin` catches it.
    WindowBoundary = 2,
}

static PLANTED: AtomicU8 = AtomicU8::new(0);

/// Switches `bug` on for the rest of the process.
pub fn plant(bug: Bug) {
    PLANTED.store(bug as u8, Ordering::Relaxed);
}

/// Whether `bug` is planted.
#[inline]
pub fn planted(bug: Bug) -> bool {
    PLANTED.load(Ordering::Relaxed) == bug as u8
}
