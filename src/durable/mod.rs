//! Durable jobs: the state dir that lets a stopped or killed job start again where it was.
//!
//! A state dir holds one job: its identity and defining options ([`job`]), a lock held while
//! the job runs, and per worker a durable input log with snapshots ([`log`], [`snapshot`]);
//! process 0 also keeps the export's change log ([`export_log`]). The rules that make restarts
//! exact (`docs/durability.md`):
//!
//! - every input tick is logged before it enters the dataflow, and made durable at checkpoints;
//! - a sink commits a logical time only once every worker's log is durable past it
//!   ([`crate::dataflows::sink`] waits for the workers' durability marks);
//! - a snapshot is taken only at a time every sink has committed ([`feed`] tells every worker
//!   how far that is), so a restart feeds the snapshot and the log up to the sinks' progress
//!   as one logical time, whose changes the sinks skip, and the rest at their own times.

pub mod export_log;
pub mod feed;
pub mod job;
pub mod log;
pub mod records;
pub mod restart;
pub mod snapshot;

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use job::JobRecord;

/// The default state dir, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = "gridflow-state";

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
    pub fn io(path: &Path, source: std::io::Error) -> StateError {
        StateError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The state dir of one process of a job, locked while the job runs.
#[derive(Debug)]
pub struct StateDir {
    root: PathBuf,
    /// Held for as long as this value lives.
    _lock: File,
}

/// The lock file of a state dir.
const LOCK_FILE: &str = "LOCK";

impl StateDir {
    /// Opens (creating it) the state dir `dir` of process `process` of `processes`: `dir`
    /// itself for a single process, `dir/process-P` for each of several, so processes on one
    /// machine may share the option. Fails if another running job holds it.
    pub fn open(dir: &Path, process: usize, processes: usize) -> Result<StateDir, StateError> {
        let root = if processes > 1 {
            dir.join(format!("process-{process}"))
        } else {
            dir.to_path_buf()
        };
        std::fs::create_dir_all(&root).map_err(|source| StateError::io(&root, source))?;
        let lock_path = root.join(LOCK_FILE);
        let io = |source| StateError::io(&lock_path, source);
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                return Err(StateError::Held {
                    dir: root,
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        writeln!(lock, "pid {}", std::process::id()).map_err(io)?;
        Ok(StateDir { root, _lock: lock })
    }

    /// The directory of this process's files.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The job this state dir holds, if it holds one.
    pub fn job(&self) -> Result<Option<JobRecord>, StateError> {
        JobRecord::read(&self.root)
    }

    /// Records the job this state dir holds.
    pub fn write_job(&self, job: &JobRecord) -> Result<(), StateError> {
        job.write(&self.root)
    }

    /// The log and snapshot directory of worker `index` (its index in the whole job).
    pub fn worker_dir(&self, index: usize) -> PathBuf {
        self.root.join(format!("worker-{index:03}"))
    }

    /// The export's change log.
    pub fn export_log(&self) -> PathBuf {
        self.root.join("export.log")
    }

    /// Removes everything the state dir holds but its lock: the job starts over.
    pub fn clear(&self) -> Result<(), StateError> {
        let entries =
            std::fs::read_dir(&self.root).map_err(|source| StateError::io(&self.root, source))?;
        for entry in entries {
            let path = entry
                .map_err(|source| StateError::io(&self.root, source))?
                .path();
            if path.file_name().is_some_and(|name| name == LOCK_FILE) {
                continue;
            }
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|source| StateError::io(&path, source))?;
        }
        records::sync_dir(&self.root).map_err(|source| StateError::io(&self.root, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_dir_is_held_by_one_job_at_a_time() {
        let dir = std::env::temp_dir().join(format!("gridflow-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = StateDir::open(&dir, 0, 1).unwrap();
        let error = StateDir::open(&dir, 0, 1).unwrap_err();
        assert!(
            matches!(&error, StateError::Held { holder, .. } if holder.contains("pid")),
            "{error}"
        );
        // processes of one job keep apart
        let other_process = StateDir::open(&dir, 1, 2).unwrap();
        assert!(other_process.root().ends_with("process-1"));
        drop(first);
        StateDir::open(&dir, 0, 1).expect("free again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
