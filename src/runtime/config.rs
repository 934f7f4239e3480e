//! What a run is given: its source, its configuration and, for a durable job, its state.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::clock::Clock;
use crate::durable::StateDir;
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::sources::csv_replay::ReplayConfig;
use crate::sources::generator::GeneratorConfig;
use crate::sources::Tick;
use crate::ui::gather::JobCounters;
use crate::ui::Monitor;

/// Where the rows come from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    Generator(GeneratorConfig),
    Replay(ReplayConfig),
    /// Ticks given in advance, split among the workers by key.
    Scripted(Vec<Tick>),
}

/// Everything a run needs besides its source and sink.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Threads, processes and serialization of timely.
    pub timely: timely::Config,
    /// The tumbling window and the retention horizon.
    pub retention: Retention,
    pub clock: Clock,
    /// On the simulated clock, how many sealed batches may be in the dataflow at once.
    pub max_inflight: usize,
    /// On the simulated clock, how many rows a worker sends before it advances the input
    /// frontier (the rows keep their own logical times); a user row counts as
    /// [`super::USER_ROW_WEIGHT`] rows.
    pub progress_rows: usize,
    /// Which tables go to the sink: with `false`, only DWS and ADS (and errors).
    pub sink_ods_and_dwd: bool,
    /// Set to stop the sources: every worker stops reading input, and the run ends once the
    /// dataflow has caught up with what was read (Ctrl-C on an unbounded run, or a failure).
    pub stop: Arc<AtomicBool>,
    /// A durable job: input log, checkpoints, snapshots and restart. `None`: nothing outlives
    /// the process.
    pub durability: Option<Durability>,
    /// Where worker 0 keeps every process's latest counters (the web UI reads them).
    pub gathered: Option<JobCounters>,
    /// The web UI's exits and logging; `None` when this process has no UI. Process 0 decides
    /// for the job whether the dataflow has the UI's exits (`runtime/control.rs`).
    pub monitor: Option<Monitor>,
}

/// How a durable job keeps its state ([`crate::durable`]).
#[derive(Clone, Debug)]
pub struct Durability {
    /// This process's state dir, locked.
    pub state: Arc<StateDir>,
    /// Processing time between checkpoints of each worker's log.
    pub checkpoint_interval: Duration,
    /// Committed log bytes that pile up before a worker folds them into its snapshot.
    pub fold_min_bytes: u64,
    /// On process 0: how far each sink has committed (0: nothing yet), kept current by the
    /// sinks. Empty when the job has no sink.
    pub committed: Vec<Arc<AtomicU64>>,
}

impl Durability {
    /// How far every sink has committed; `Time::MAX` when there is none.
    pub(super) fn committed(&self) -> Time {
        self.committed
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(Time::MAX)
    }
}
