//! Bugs planted on purpose, so that the tests (and a sceptical reader) can see `gridflow verify`
//! catch them: `gridflow verify --plant-bug BUG` switches one on for that process, and nothing
//! else ever does (docs/verify.md).
//!
//! Only a build with the `test-hooks` feature has them (the test command builds it): there a
//! planted-bug site (`planted!(Bug)`, defined in `lib.rs`) costs one relaxed atomic load; in
//! any other build it is the constant `false` and compiles away.
//!
//! One sits in code only the dataflow runs, which the batch twin must catch; the other in a
//! helper the twin shares with the dataflow (`model::rows::window_start`), which the twin cannot
//! see and only PostgreSQL, sharing no code with gridflow, catches.

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

/// Whether this build can plant bugs (it was built with the `test-hooks` feature).
pub const AVAILABLE: bool = cfg!(feature = "test-hooks");

#[cfg(feature = "test-hooks")]
static PLANTED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Switches `bug` on for the rest of the process; `false` (and nothing planted) in a build
/// without the `test-hooks` feature.
pub fn plant(bug: Bug) -> bool {
    #[cfg(feature = "test-hooks")]
    PLANTED.store(bug as u8, std::sync::atomic::Ordering::Relaxed);
    let _ = bug;
    AVAILABLE
}

/// Whether `bug` is planted (`planted!` calls this in a build with the `test-hooks` feature).
#[cfg(feature = "test-hooks")]
#[inline]
pub fn planted(bug: Bug) -> bool {
    PLANTED.load(std::sync::atomic::Ordering::Relaxed) == bug as u8
}
