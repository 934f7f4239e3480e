//! The runtime: starts the timely workers and takes each through the phases of its life
//! ([`worker`]) — its source and a restart's replay, what the job's processes agree to build,
//! the warehouse with its exits, feeding it tick by tick ([`drive`]), draining — and returns the
//! job's first failure, or worker 0's sink.
//!
//! A job stops as a whole: the first failure anywhere, in any process, is recorded in one slot
//! and stops every worker of every process ([`control`]); each then drains what it has, and
//! returns that failure (a peer's, in the processes where it did not happen).
//!
//! May use: the model, the operators, the warehouse (to build it and hand it to the sinks'
//! exits), the sources, the metrics, the UI's monitor, the sinks and the durable state.

pub mod clock;
pub mod config;
mod control;
mod drive;
pub mod error;
mod inputs;
mod restore;
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::sinks::ChangeSink;

pub use clock::Clock;
pub use config::{Durability, RunConfig, SourceSpec};
pub use drive::USER_ROW_WEIGHT;
pub use error::RunError;

/// What a finished run leaves: worker 0's sink (in process 0), and how long it ran.
pub struct RunOutcome<S> {
    pub sink: Option<S>,
    pub elapsed: Duration,
}

/// Runs the warehouse over `source` until the source is exhausted (or forever, for an unbounded
/// one), or until the job fails. `make_sink`, if given, makes the sink on worker 0; with `None`
/// the tables' changes go nowhere (benchmarks).
pub fn run<S, F>(
    config: RunConfig,
    source: SourceSpec,
    make_sink: Option<F>,
    metrics: Arc<Metrics>,
) -> Result<RunOutcome<S>, RunError>
where
    S: ChangeSink + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let started = Instant::now();
    let failure = control::Failure::new(config.stop.clone());
    let logs = restore::open_logs(&config)?;
    let shared = Arc::new(worker::Shared {
        config,
        source,
        make_sink,
        metrics,
        failure: failure.clone(),
        logs,
    });
    let guards = timely::execute(shared.config.timely.clone(), move |worker| {
        worker::run_worker(worker, &shared)
    })
    .map_err(RunError::Start)?;
    let mut sink = None;
    for (worker, result) in guards.join().into_iter().enumerate() {
        match result {
            Ok(Some(worker_sink)) => sink = Some(worker_sink),
            Ok(None) => {}
            // A panicking worker recorded its message in the failure slot first.
            Err(message) => failure.record(RunError::Panicked { worker, message }),
        }
    }
    match failure.take() {
        Some(error) => Err(error),
        None => Ok(RunOutcome {
            sink,
            elapsed: started.elapsed(),
        }),
    }
}
