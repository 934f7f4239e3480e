//! The export as a durable sink: every change set it receives is appended to a change log in
//! the state dir before it is applied, so a restarted bounded job still writes the whole
//! export, frozen windows and all, without recomputing what it had already seen.
//!
//! The log is made durable at most every checkpoint interval and at the end; its progress is
//! the last durable change set, and a restart skips the change sets up to it, like a database
//! sink's progress. A torn last record is cut off.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::records::{write_record, RecordReader};
use super::StateError;
use crate::dataflows::sink::{ChangeSet, ChangeSink, Materialized, TableRow};
use crate::sinks::SinkError;
use crate::source::Time;

/// A [`Materialized`] export whose change sets survive the process.
pub struct DurableExport {
    materialized: Materialized,
    path: PathBuf,
    out: BufWriter<File>,
    scratch: Vec<u8>,
    /// The last change set read back at the start: later runs skip up to it.
    recovered_upto: Option<Time>,
    /// The last change set appended, and whether it is durable yet.
    written_upto: Option<Time>,
    unsynced: bool,
    /// The last durable change set, shared with the job (0: none yet).
    committed: Arc<AtomicU64>,
    interval: Duration,
    last_sync: Instant,
    /// A failed append: the job stops at the next flush.
    failure: Option<String>,
}

/// A change set as written: the same layout as [`ChangeSet`], borrowing its changes.
#[derive(Serialize)]
struct ChangeSetRef<'a>(Time, &'a [(TableRow, isize)]);

impl DurableExport {
    /// Opens the change log at `path` (created if absent) and applies what it holds.
    pub fn open(
        path: &Path,
        interval: Duration,
        committed: Arc<AtomicU64>,
    ) -> Result<DurableExport, StateError> {
        let mut materialized = Materialized::default();
        let mut recovered_upto = None;
        let mut durable_bytes = 0;
        if path.exists() {
            let mut reader =
                RecordReader::open(path).map_err(|source| StateError::io(path, source))?;
            loop {
                match reader.read::<ChangeSet>() {
                    Ok(Some((time, changes))) => {
                        materialized.apply(time, changes);
                        recovered_upto = Some(time);
                    }
                    Ok(None) => break,
                    Err(torn) => {
                        eprintln!(
                            "{}: dropped a torn last change set at byte {} ({})",
                            path.display(),
                            torn.offset,
                            torn.reason
                        );
                        break;
                    }
                }
            }
            durable_bytes = reader.offset();
        }
        let io = |source| StateError::io(path, source);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(io)?;
        file.set_len(durable_bytes).map_err(io)?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        std::io::Seek::seek(&mut out, std::io::SeekFrom::End(0)).map_err(io)?;
        committed.store(recovered_upto.unwrap_or(0), Ordering::Release);
        Ok(DurableExport {
            materialized,
            path: path.to_path_buf(),
            out,
            scratch: Vec::new(),
            recovered_upto,
            written_upto: recovered_upto,
            unsynced: false,
            committed,
            interval,
            last_sync: Instant::now(),
            failure: None,
        })
    }

    /// The last change set an earlier run made durable.
    pub fn recovered_upto(&self) -> Option<Time> {
        self.recovered_upto
    }

    /// Makes every appended change set durable.
    fn sync(&mut self) -> Result<(), StateError> {
        if self.unsynced {
            let io = |source| StateError::io(&self.path, source);
            self.out.flush().map_err(io)?;
            self.out.get_ref().sync_data().map_err(io)?;
            self.unsynced = false;
            if let Some(upto) = self.written_upto {
                self.committed.store(upto, Ordering::Release);
            }
        }
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Makes the log durable and hands back the tables.
    pub fn finish(mut self) -> Result<Materialized, StateError> {
        if let Some(failure) = self.failure.take() {
            return Err(StateError::Io {
                path: self.path.clone(),
                source: std::io::Error::other(failure),
            });
        }
        self.sync()?;
        Ok(self.materialized)
    }
}

impl ChangeSink for DurableExport {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if self.recovered_upto.is_some_and(|upto| time <= upto) {
            return;
        }
        let written = write_record(
            &mut self.out,
            &ChangeSetRef(time, &changes),
            &mut self.scratch,
        );
        match written {
            Ok(_) => {
                self.written_upto = Some(time);
                self.unsynced = true;
            }
            // Reported by the next flush, which stops the job.
            Err(error) => {
                let error = StateError::io(&self.path, error).to_string();
                self.failure.get_or_insert(error);
            }
        }
        self.materialized.apply(time, changes);
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(failure) = &self.failure {
            return Err(SinkError::Config(failure.clone()));
        }
        if self.last_sync.elapsed() >= self.interval {
            self.sync()
                .map_err(|error| SinkError::Config(error.to_string()))?;
        }
        Ok(())
    }
}
