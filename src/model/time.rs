//! Logical time, and the wall clock it is read from.
//!
//! A logical time is the source clock in epoch milliseconds (`docs/semantics.md`): sources map
//! their clock onto it, retention measures on it, and processing-time columns report it.

use std::time::{SystemTime, UNIX_EPOCH};

use super::rows::Millis;

/// A logical time of the dataflow. Sources map their clock onto it (`docs/semantics.md`).
pub type Time = u64;

/// The wall clock in epoch milliseconds.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}
