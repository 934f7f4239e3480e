//! A failure of the state dir, as the user reads it: what failed and what to do.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// A failure of the state dir.
#[derive(Debug, Error)]
pub enum StateError {
    #[error("state dir: cannot use {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the state dir is corrupt: {}: {reason}; move the state dir away, or start over with --reset",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "the state dir {} is held by another running job ({holder}): stop it, or give another --state-dir",
        dir.display()
    )]
    Held { dir: PathBuf, holder: String },
    #[error(
        "the state dir {} holds job {id}, which has other options: {differences}; run with the job's options, or start a new job with --reset",
        dir.display()
    )]
    OtherJob {
        dir: PathBuf,
        id: String,
        differences: String,
    },
    #[error(
        "the state dir's snapshot of worker {worker} is at logical time {snapshot}, but the sinks have applied only up to {committed}: the history before the snapshot is gone; use the sink this job started with, or start over with --reset"
    )]
    SinkBehindSnapshot {
        worker: usize,
        snapshot: u64,
        committed: u64,
    },
}

impl StateError {
    /// The exit code of this failure ([`crate::model::exit`]).
    pub fn exit_code(&self) -> u8 {
        use crate::model::exit;
        match self {
            StateError::Held { .. } => exit::HELD,
            StateError::OtherJob { .. } => exit::OTHER_JOB,
            StateError::Io { .. }
            | StateError::Corrupt { .. }
            | StateError::SinkBehindSnapshot { .. } => exit::STATE_FAILED,
        }
    }

    /// A failure to read or write `path`.
    pub fn io(path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
