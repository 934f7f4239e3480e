//! Fault injection for the crash tests: with `GRIDFLOW_KILL_AT=POINT:N` the process kills itself
//! with SIGKILL the `N`-th time it passes `POINT` — in the middle of a checkpoint, a sink
//! transaction or a snapshot fold, moments a kill from outside hits only by luck.
//!
//! The points: `checkpoint` (a log's checkpoint record buffered, nothing of it synced),
//! `commit` (a sink transaction's writes made, not committed), `committed` (committed, not
//! yet acknowledged to the job), `fold` (a new snapshot in place, the segments it replaces
//! not yet deleted). A point is a `fault_point!(NAME)` (defined in `lib.rs`): only a build with
//! the `test-hooks` feature (the test command's) has them; in any other build a point is
//! nothing at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The point to die at and after how many passes, read from the environment once.
fn target() -> &'static Option<(String, u64)> {
    static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
    TARGET.get_or_init(|| {
        let value = std::env::var("GRIDFLOW_KILL_AT").ok()?;
        let (point, count) = value.split_once(':')?;
        Some((point.to_string(), count.parse().ok()?))
    })
}

/// Passes the point `name`: the `N`-th pass of the point `GRIDFLOW_KILL_AT` names kills the
/// process.
pub fn point(name: &str) {
    static PASSES: AtomicU64 = AtomicU64::new(0);
    if let Some((point, count)) = target() {
        if point == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *count {
            tracing::warn!("GRIDFLOW_KILL_AT: killed at {name} pass {count}");
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            // `kill` missing: die as abruptly another way.
            std::process::abort();
        }
    }
}
