//! A failure of a run as a whole, and its exit code.

use thiserror::Error;

use crate::durable::StateError;
use crate::model::exit;
use crate::sinks::SinkError;
use crate::sources::csv_replay::ReplayError;

/// A failure of a run as a whole (bad rows are not failures: they are counted and reported).
#[derive(Debug, Error)]
pub enum RunError {
    /// Timely could not start the workers (its error is a sentence).
    #[error("cannot start the workers: {0}")]
    Start(String),
    /// A worker panicked: a bug.
    #[error("worker {worker} panicked: {message}")]
    Panicked { worker: usize, message: String },
    /// The replay directory cannot be read.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The sink failed; the job stopped reading input and drained.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The state dir could not be read or written; the job stopped reading input and drained.
    #[error(transparent)]
    State(#[from] StateError),
    /// The processes of a job do not build the same dataflow.
    #[error("process {process} {difference}: give every process of a job the same options")]
    Mismatch { process: usize, difference: String },
    /// Another process of the job failed; this one stopped with it.
    #[error("process {process} of the job failed: {message}")]
    Peer {
        process: usize,
        /// The exit code the failure has in its own process.
        code: u8,
        message: String,
    },
}

impl RunError {
    /// The exit code of this failure (`docs/durability.md`): a peer's failure has the code it
    /// has in its own process, so every process of a job exits alike.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::Sink(error) => error.exit_code(),
            RunError::State(error) => error.exit_code(),
            RunError::Peer { code, .. } => *code,
            RunError::Start(_)
            | RunError::Panicked { .. }
            | RunError::Replay(_)
            | RunError::Mismatch { .. } => exit::FAILED,
        }
    }
}
