//! The state dir of one process of a job: where its files are, and the lock that keeps a
//! second running job out.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::error::StateError;
use super::job::JobRecord;
use super::records;

/// The default state dir, relative to the working directory.
pub const DEFAULT_STATE_DIR: &str = "gridflow-state";

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
