//! The export as a durable sink: every change set it receives is appended to a change log in
//! the state dir before it is applied, so a restarted bounded job still writes the whole
//! export, frozen windows and all, without recomputing what it had already seen.
//!
//! The log is made durable at most every checkpoint interval and at the end; its progress is
//! the last durable change set, and a restart skips the change sets up to it, like a database
//! sink's progress. A torn last record is cut off. When the log has grown to several times the
//! tables it adds up to, it is rewritten as those tables (one change set of insertions at its
//! last time), so it follows the size of the export rather than the churn that led to it.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::error::StateError;
use super::records::{write_record, RecordReader};
use crate::model::TableRow;
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::sinks::materialized::Materialized;
use crate::sinks::SinkError;
use crate::sinks::{ChangeSet, ChangeSink};

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
    /// The log's size, and its size when last rewritten.
    bytes: u64,
    compacted_bytes: u64,
}

/// The log is rewritten as its tables once it is this many times their size ...
const COMPACT_GROWTH: u64 = 4;
/// ... and at least this large.
const COMPACT_MIN_BYTES: u64 = 64 << 20;
/// Rows per record of a rewritten log.
const ROWS_PER_RECORD: usize = 65_536;

/// Whether the log keeps every change set, never rewritten as its tables: only for the crash
/// tests, which read the change sets a job committed back and compare them time by time
/// (`GRIDFLOW_KEEP_EXPORT_LOG`, in a build with the `test-hooks` feature).
fn keeps_every_change_set() -> bool {
    cfg!(feature = "test-hooks") && std::env::var_os("GRIDFLOW_KEEP_EXPORT_LOG").is_some()
}

/// A change set as written: the same layout as [`ChangeSet`], borrowing its changes.
#[derive(Serialize)]
struct ChangeSetRef<'a>(Time, &'a [(TableRow, isize)]);

impl DurableExport {
    /// Opens the change log at `path` (created if absent) and applies what it holds.
    pub fn open(
        path: &Path,
        interval: Duration,
        retention: Retention,
        committed: Arc<AtomicU64>,
    ) -> Result<DurableExport, StateError> {
        let mut materialized = Materialized::under(retention);
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
                        tracing::warn!(
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
            bytes: durable_bytes,
            compacted_bytes: durable_bytes,
        })
    }

    /// Rewrites the (synced) log as one change set at its last time inserting every row of the
    /// tables: a crash leaves the old log or the new one (written aside, synced, renamed).
    fn compact(&mut self) -> Result<(), StateError> {
        let Some(upto) = self.written_upto else {
            return Ok(());
        };
        let temporary = self.path.with_extension("log.tmp");
        let io = |source| StateError::io(&temporary, source);
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&temporary).map_err(io)?);
        let rows: Vec<(TableRow, isize)> = self
            .materialized
            .rows()
            .map(|(row, count)| (row.clone(), count))
            .collect();
        let mut bytes = 0;
        for chunk in rows.chunks(ROWS_PER_RECORD) {
            bytes += write_record(&mut out, &ChangeSetRef(upto, chunk), &mut self.scratch)
                .map_err(io)?;
        }
        out.flush().map_err(io)?;
        out.get_ref().sync_all().map_err(io)?;
        std::fs::rename(&temporary, &self.path)
            .map_err(|source| StateError::io(&self.path, source))?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        super::records::sync_dir(dir).map_err(|source| StateError::io(dir, source))?;
        // The old file is gone from the directory; appends go on at the end of the new one.
        self.out = out;
        self.bytes = bytes;
        self.compacted_bytes = bytes;
        Ok(())
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
            if self.bytes >= COMPACT_MIN_BYTES
                && self.bytes >= COMPACT_GROWTH * self.compacted_bytes
                && !keeps_every_change_set()
            {
                self.compact()?;
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

/// The change sets the export log at `path` holds, in order, up to a torn last one: what a job
/// committed to its export, change set by change set (a log rewritten as its tables holds them
/// as one change set at its last time, see [`DurableExport`]).
pub fn read_change_sets(path: &Path) -> Result<Vec<ChangeSet>, StateError> {
    let mut reader = RecordReader::open(path).map_err(|source| StateError::io(path, source))?;
    let mut change_sets = Vec::new();
    while let Ok(Some(change_set)) = reader.read::<ChangeSet>() {
        change_sets.push(change_set);
    }
    Ok(change_sets)
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
            Ok(bytes) => {
                self.written_upto = Some(time);
                self.unsynced = true;
                self.bytes += bytes;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::user;

    fn row(id: i64, name: &str) -> TableRow {
        TableRow::User(user(id, name, 1, "r"))
    }

    fn open(path: &Path) -> DurableExport {
        let retention = Retention::unbounded(5_000);
        DurableExport::open(path, Duration::ZERO, retention, Arc::new(AtomicU64::new(0))).unwrap()
    }

    fn tables(export: &DurableExport) -> Vec<(TableRow, isize)> {
        let mut rows: Vec<(TableRow, isize)> = export
            .materialized
            .rows()
            .map(|(r, c)| (r.clone(), c))
            .collect();
        rows.sort();
        rows
    }

    #[test]
    fn change_sets_come_back_after_a_restart_even_after_a_rewrite_and_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("gridflow-export-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("export.log");
        let mut export = open(&path);
        export.apply(1, vec![(row(1, "a"), 1), (row(2, "b"), 1)]);
        export.apply(2, vec![(row(1, "a"), -1), (row(1, "a2"), 1)]);
        export.flush().unwrap();
        let expected = tables(&export);
        drop(export);

        let mut export = open(&path);
        assert_eq!(export.recovered_upto(), Some(2));
        assert_eq!(tables(&export), expected);
        // what the log holds is skipped; what is new is applied
        export.apply(2, vec![(row(9, "skipped"), 1)]);
        export.apply(3, vec![(row(2, "b"), -1)]);
        export.flush().unwrap();
        let expected = tables(&export);
        export.compact().unwrap();
        export.apply(4, vec![(row(5, "e"), 1)]);
        export.flush().unwrap();
        let after = tables(&export);
        drop(export);

        // a crash in the middle of the next append
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3]);
        std::fs::write(&path, bytes).unwrap();
        let export = open(&path);
        assert_eq!(export.recovered_upto(), Some(4));
        assert_eq!(tables(&export), after);
        assert_ne!(after, expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
