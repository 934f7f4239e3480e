//! Durable jobs: the state dir that lets a stopped or killed job start again where it was.
//!
//! A state dir holds one job: its identity and defining options ([`job`]), a lock held while
//! the job runs, and per worker a durable input log with snapshots ([`log`], [`snapshot`]);
//! process 0 also keeps the export's change log ([`export_log`]). The rules that make restarts
//! exact (`docs/durability.md`):
//!
//! - every input tick is logged before it enters the dataflow, and made durable at checkpoints;
//! - a sink commits a logical time only once every worker's log is durable past it
//!   ([`crate::sinks::handoff`] waits for the workers' durability marks);
//! - a snapshot is taken only at a time every sink has committed ([`feed`] tells every worker
//!   how far that is), so a restart feeds the snapshot and the log up to the sinks' progress
//!   as one logical time, whose changes the sinks skip, and the rest at their own times.
//!
//! May use: the model, the operators, the sources and the sinks.

pub mod error;
pub mod export_log;
pub mod feed;
pub mod job;
pub mod log;
pub mod records;
pub mod restart;
pub mod snapshot;
pub mod state_dir;

pub use error::StateError;
pub use job::JobRecord;
pub use state_dir::{StateDir, DEFAULT_STATE_DIR};
