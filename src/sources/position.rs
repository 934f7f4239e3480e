//! Where a source stands: what the input log records at each checkpoint so that a restarted job
//! goes on producing exactly the ticks its source would have produced next.
//!
//! The serialized form of [`SourcePosition`] is part of the input log's format
//! (`docs/durability.md`).

use serde::{Deserialize, Serialize};

use crate::model::rows::{Cents, Millis, RegionId};

/// Where a source stands, as the input log records it at each checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourcePosition {
    /// The generator's counters, clock and per-user state.
    Generator(Box<GeneratorPosition>),
    /// The next batch of a CSV replay.
    Replay { next_batch: usize },
    /// The next tick of a scripted source.
    Scripted { next_tick: usize },
}

/// Where a generator stands: its clock (the next tick), its sequence counters and the state
/// its next rows depend on. Every row draws from its own random stream, seeded by its index,
/// so the counters are also the position in the random streams.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GeneratorPosition {
    /// The next tick to produce.
    pub(super) next_tick: u64,
    /// The next index of the user and consumption sequences.
    pub(super) next_user: u64,
    pub(super) next_consumption: u64,
    /// Every user's current state (`None`: not inserted yet, or deleted), by `user_id - 1`.
    pub(super) users: Vec<Option<UserState>>,
    /// The current meter reading of each owned user, by `user_id - 1` (`None`: no row yet).
    pub(super) meters: Vec<Option<Cents>>,
}

/// The current state of one user, compact: its strings are derived when it is emitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct UserState {
    /// `Some(j)` after a rename by user row `j`: the name is then `用户{id:04}-{j}`.
    pub(super) rename: Option<u64>,
    pub(super) usage: usize,
    pub(super) region: RegionId,
    /// The nine digits after `13`.
    pub(super) phone: u32,
    pub(super) create_time: Millis,
    pub(super) update_time: Millis,
}
