//! The durable input log of one worker: every tick its source produced, appended before the
//! tick enters the dataflow, in segments of checksummed records; and its recovery.
//!
//! A checkpoint appends a record of the logical time reached and the source's position after
//! it, makes the segment durable (fsync) and closes it; the next tick opens a new segment. So
//! every closed segment ends with a checkpoint, and only the last segment can end torn. On
//! recovery the log is read up to its last checkpoint: a torn or unfinished tail after it is
//! cut off (the source produces those ticks again), and the snapshot plus the ticks after it
//! are handed back. Closed segments go to a [`Compactor`], which folds the ones every sink has
//! committed into the snapshot and deletes them.

use std::fs::{File, OpenOptions};
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::StateError;
use super::records::{sync_dir, write_record, RecordReader};
use super::snapshot::{self, Fold, Snapshot};
use crate::model::Time;
use crate::operators::retention::Retention;
use crate::sources::{SourcePosition, Tick};

/// A checkpoint is due after this many logged rows even before its interval has passed: it
/// bounds the change sets the sinks hold back until their input is durable.
pub const CHECKPOINT_ROWS: usize = 500_000;

/// A record of the input log.
#[derive(Debug, Serialize, Deserialize)]
pub enum LogRecord {
    /// A tick the source produced, with the logical time its rows entered at.
    Tick(Tick),
    /// Everything before this record is durable: the ticks up to `time`, after which the
    /// source stood at `position`.
    Checkpoint {
        time: Time,
        position: SourcePosition,
    },
}

/// What a worker's state dir holds after a restart.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The latest snapshot, if one was taken.
    pub snapshot: Option<Snapshot>,
    /// The logged ticks after the snapshot, up to the last checkpoint, in time order.
    pub ticks: Vec<Tick>,
    /// The last checkpoint: its time and the source's position after it.
    pub checkpoint: Option<(Time, SourcePosition)>,
    /// What was cut off after the last checkpoint, for the job's log.
    pub dropped_tail: Option<String>,
}

/// [`LogRecord`] as written: the same layout, borrowing the tick instead of copying it.
#[derive(Serialize)]
enum LogRecordRef<'a> {
    Tick(&'a Tick),
    Checkpoint {
        time: Time,
        position: &'a SourcePosition,
    },
}

/// A closed segment, as the compactor needs it.
#[derive(Clone, Debug)]
struct Closed {
    sequence: u64,
    path: PathBuf,
    bytes: u64,
    /// The checkpoint that closed it.
    time: Time,
    position: SourcePosition,
}

/// The log of one worker.
pub struct WorkerLog {
    dir: PathBuf,
    /// The open segment: its sequence number, writer and size.
    open: Option<(u64, BufWriter<File>, u64)>,
    next_sequence: u64,
    scratch: Vec<u8>,
    interval: Duration,
    last_checkpoint: Instant,
    rows_since_checkpoint: usize,
    /// The time of the last checkpoint written (durable once the syncer has synced it).
    checkpointed: Option<Time>,
    syncer: Syncer,
}

/// The segment file of `sequence`.
fn segment_path(dir: &Path, sequence: u64) -> PathBuf {
    dir.join(format!("{sequence:020}.segment"))
}

/// The segments of a worker's directory, by sequence number.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, StateError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|source| StateError::io(dir, source))?;
    for entry in entries {
        let path = entry.map_err(|source| StateError::io(dir, source))?.path();
        let sequence = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".segment"))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(sequence) = sequence {
            found.push((sequence, path));
        }
    }
    found.sort();
    Ok(found)
}

impl WorkerLog {
    /// Opens the log in `dir` (created if absent), recovering what it holds. Closed segments
    /// are folded into snapshots once `committed` (the time every sink has committed up to)
    /// has passed them, retention applied as the ODS layer applies it.
    pub fn open(
        dir: &Path,
        interval: Duration,
        fold_min_bytes: u64,
        retention: Retention,
        committed: Arc<AtomicU64>,
    ) -> Result<(WorkerLog, Recovered), StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::io(dir, source))?;
        let snapshot = snapshot::read(dir)?;
        let covered = snapshot.as_ref().map(|s| s.covers_segment);
        let mut recovered = Recovered {
            checkpoint: snapshot.as_ref().map(|s| (s.time, s.position.clone())),
            snapshot,
            ..Recovered::default()
        };
        let found = segments(dir)?;
        let mut closed = Vec::new();
        let mut next_sequence = covered.map_or(0, |c| c + 1);
        let last_index = found.len().checked_sub(1);
        for (index, (sequence, path)) in found.into_iter().enumerate() {
            if covered.is_some_and(|covered| sequence <= covered) {
                // Folded into the snapshot; the compactor died before deleting it.
                std::fs::remove_file(&path).map_err(|source| StateError::io(&path, source))?;
                continue;
            }
            next_sequence = sequence + 1;
            let is_last = Some(index) == last_index;
            let read = read_segment(&path)?;
            if let Some(reason) = &read.untrusted {
                if !is_last {
                    return Err(StateError::Corrupt {
                        path,
                        reason: reason.clone(),
                    });
                }
            }
            let Some((time, position)) = read.checkpoint.clone() else {
                // Nothing in it was made durable: the source produces it again.
                if !is_last {
                    return Err(StateError::Corrupt {
                        path,
                        reason: "a closed segment without a checkpoint".to_string(),
                    });
                }
                if read.total_bytes > 0 {
                    recovered.dropped_tail = Some(describe_tail(&path, &read));
                }
                std::fs::remove_file(&path).map_err(|source| StateError::io(&path, source))?;
                continue;
            };
            if read.durable_bytes < read.total_bytes {
                recovered.dropped_tail = Some(describe_tail(&path, &read));
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(|source| StateError::io(&path, source))?;
                file.set_len(read.durable_bytes)
                    .and_then(|()| file.sync_all())
                    .map_err(|source| StateError::io(&path, source))?;
            }
            recovered.ticks.extend(read.ticks);
            recovered.checkpoint = Some((time, position.clone()));
            closed.push(Closed {
                sequence,
                path,
                bytes: read.durable_bytes,
                time,
                position,
            });
        }
        sync_dir(dir).map_err(|source| StateError::io(dir, source))?;
        let compactor = Compactor::start(
            dir.to_path_buf(),
            retention,
            committed,
            fold_min_bytes,
            closed,
        )
        .map_err(|source| StateError::io(dir, source))?;
        let checkpointed = recovered.checkpoint.as_ref().map(|(time, _)| *time);
        let syncer = Syncer::start(dir.to_path_buf(), checkpointed, compactor)
            .map_err(|source| StateError::io(dir, source))?;
        let log = WorkerLog {
            dir: dir.to_path_buf(),
            open: None,
            next_sequence,
            scratch: Vec::new(),
            interval,
            last_checkpoint: Instant::now(),
            rows_since_checkpoint: 0,
            checkpointed,
            syncer,
        };
        Ok((log, recovered))
    }

    /// Appends a tick the source produced (buffered: durable at the next checkpoint).
    pub fn append(&mut self, tick: &Tick) -> Result<(), StateError> {
        self.rows_since_checkpoint += tick.len();
        self.write(&LogRecordRef::Tick(tick))
    }

    fn write(&mut self, record: &LogRecordRef<'_>) -> Result<(), StateError> {
        if self.open.is_none() {
            let sequence = self.next_sequence;
            self.next_sequence += 1;
            let path = segment_path(&self.dir, sequence);
            let file = File::create(&path).map_err(|source| StateError::io(&path, source))?;
            self.open = Some((sequence, BufWriter::with_capacity(1 << 20, file), 0));
        }
        let (sequence, writer, bytes) = self.open.as_mut().expect("opened above");
        *bytes += write_record(writer, record, &mut self.scratch)
            .map_err(|source| StateError::io(&segment_path(&self.dir, *sequence), source))?;
        Ok(())
    }

    /// Whether a checkpoint at `time` is due: many rows were logged, or the interval has
    /// passed and the durable time would advance (an idle worker advances it too, or the
    /// sinks would wait for it).
    pub fn checkpoint_due(&self, time: Time) -> bool {
        self.rows_since_checkpoint >= CHECKPOINT_ROWS
            || (self.last_checkpoint.elapsed() >= self.interval
                && self
                    .checkpointed
                    .is_none_or(|checkpointed| checkpointed < time))
    }

    /// Closes the segment with a checkpoint — the ticks up to `time`, after which the source
    /// stands at `position` — and hands it to the syncer thread, which makes it durable (the
    /// worker goes on meanwhile: [`WorkerLog::durable`] says when it is) and then to the
    /// compactor.
    pub fn checkpoint(&mut self, time: Time, position: SourcePosition) -> Result<(), StateError> {
        self.write(&LogRecordRef::Checkpoint {
            time,
            position: &position,
        })?;
        fault_point!("checkpoint");
        let (sequence, writer, bytes) = self.open.take().expect("written above");
        let path = segment_path(&self.dir, sequence);
        let file = writer
            .into_inner()
            .map_err(|error| StateError::io(&path, error.into_error()))?;
        self.checkpointed = Some(time);
        self.last_checkpoint = Instant::now();
        self.rows_since_checkpoint = 0;
        self.syncer.sync(
            file,
            Closed {
                sequence,
                path,
                bytes,
                time,
                position,
            },
        );
        self.syncer.failure()
    }

    /// The time of the last durable checkpoint: every tick up to it is durable.
    pub fn durable(&self) -> Option<Time> {
        Some(self.syncer.durable.load(Ordering::Acquire)).filter(|&time| time > 0)
    }

    /// The time of the last checkpoint written, durable or not yet.
    pub fn checkpointed(&self) -> Option<Time> {
        self.checkpointed
    }

    /// Waits until the last checkpoint is durable.
    pub fn wait_durable(&mut self) -> Result<(), StateError> {
        while self.durable() < self.checkpointed {
            self.syncer.failure()?;
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// Stops the syncer and the compactor (after the fold it is doing, if any).
    pub fn close(self) -> Result<(), StateError> {
        self.syncer.stop()
    }
}

/// A thread that makes closed segments durable in order (fsync of the file and of the
/// directory, for a new name) and passes them on to the compactor, so a worker never waits for
/// the disk.
struct Syncer {
    sender: Option<mpsc::Sender<(File, Closed)>>,
    thread: Option<std::thread::JoinHandle<Result<Compactor, StateError>>>,
    /// The time of the last durable checkpoint (0: none).
    durable: Arc<AtomicU64>,
}

impl Syncer {
    fn start(
        dir: PathBuf,
        durable: Option<Time>,
        mut compactor: Compactor,
    ) -> std::io::Result<Syncer> {
        let (sender, receiver) = mpsc::channel::<(File, Closed)>();
        let durable = Arc::new(AtomicU64::new(durable.unwrap_or(0)));
        let synced = durable.clone();
        let thread = std::thread::Builder::new()
            .name("gridflow-syncer".to_string())
            .spawn(move || -> Result<Compactor, StateError> {
                for (file, segment) in receiver {
                    file.sync_data()
                        .map_err(|source| StateError::io(&segment.path, source))?;
                    drop(file);
                    sync_dir(&dir).map_err(|source| StateError::io(&dir, source))?;
                    let time = segment.time;
                    compactor.closed(segment);
                    compactor.failure()?;
                    synced.store(time, Ordering::Release);
                }
                Ok(compactor)
            })?;
        Ok(Syncer {
            sender: Some(sender),
            thread: Some(thread),
            durable,
        })
    }

    fn sync(&mut self, file: File, segment: Closed) {
        if let Some(sender) = &self.sender {
            // A syncer that stopped on a failure reports it below.
            let _ = sender.send((file, segment));
        }
    }

    /// The syncer's (or the compactor's) failure, if it stopped on one.
    fn failure(&mut self) -> Result<(), StateError> {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            self.sender = None;
            return self.join().map(drop);
        }
        Ok(())
    }

    fn join(&mut self) -> Result<Option<Compactor>, StateError> {
        match self.thread.take().map(|thread| thread.join()) {
            None => Ok(None),
            Some(Ok(result)) => result.map(Some),
            Some(Err(_)) => Err(StateError::Corrupt {
                path: PathBuf::new(),
                reason: "the syncer thread panicked".to_string(),
            }),
        }
    }

    fn stop(mut self) -> Result<(), StateError> {
        self.sender = None;
        match self.join()? {
            Some(compactor) => compactor.stop(),
            None => Ok(()),
        }
    }
}

/// A segment as read back.
struct ReadSegment {
    ticks: Vec<Tick>,
    checkpoint: Option<(Time, SourcePosition)>,
    /// The bytes up to the end of the last checkpoint, and in all.
    durable_bytes: u64,
    total_bytes: u64,
    /// Why reading stopped before the end, if it did.
    untrusted: Option<String>,
}

/// Reads a segment up to its last checkpoint.
fn read_segment(path: &Path) -> Result<ReadSegment, StateError> {
    let total_bytes = std::fs::metadata(path)
        .map_err(|source| StateError::io(path, source))?
        .len();
    let mut reader = RecordReader::open(path).map_err(|source| StateError::io(path, source))?;
    let mut read = ReadSegment {
        ticks: Vec::new(),
        checkpoint: None,
        durable_bytes: 0,
        total_bytes,
        untrusted: None,
    };
    let mut pending = Vec::new();
    loop {
        match reader.read::<LogRecord>() {
            Ok(Some(LogRecord::Tick(tick))) => pending.push(tick),
            Ok(Some(LogRecord::Checkpoint { time, position })) => {
                read.ticks.append(&mut pending);
                read.checkpoint = Some((time, position));
                read.durable_bytes = reader.offset();
            }
            Ok(None) => break,
            Err(torn) => {
                read.untrusted = Some(format!("at byte {}: {}", torn.offset, torn.reason));
                break;
            }
        }
    }
    Ok(read)
}

fn describe_tail(path: &Path, read: &ReadSegment) -> String {
    let cut = read.total_bytes - read.durable_bytes;
    match &read.untrusted {
        Some(reason) => format!(
            "{}: dropped {cut} bytes after the last checkpoint, ending in a torn record ({reason})",
            path.display()
        ),
        None => format!(
            "{}: dropped {cut} bytes logged after the last checkpoint",
            path.display()
        ),
    }
}

/// A thread that folds closed segments into the snapshot once every sink has committed past
/// them, and deletes them: restart time then follows the live state, not the job's age.
struct Compactor {
    sender: Option<mpsc::Sender<Closed>>,
    thread: Option<std::thread::JoinHandle<Result<(), StateError>>>,
}

/// The folded segments must add up to at least the snapshot's size before a fold rewrites it:
/// the log tail a restart replays stays below the live state, and every logged byte is read
/// back about twice in all (once itself, once within later snapshots), not once per fold.
const FOLD_WHEN_TAIL_EXCEEDS: f64 = 1.0;

/// ... and a fold waits for at least this much (`--fold-min-bytes`), unless many segments have
/// piled up: about nine hours of input at the source's rates, replayed in well under a second.
pub const DEFAULT_FOLD_MIN_BYTES: u64 = 16 << 20;
const MAX_SEGMENTS: usize = 256;

impl Compactor {
    fn start(
        dir: PathBuf,
        retention: Retention,
        committed: Arc<AtomicU64>,
        fold_min_bytes: u64,
        mut queue: Vec<Closed>,
    ) -> std::io::Result<Compactor> {
        let (sender, receiver) = mpsc::channel::<Closed>();
        let thread = std::thread::Builder::new()
            .name("gridflow-compactor".to_string())
            .spawn(move || -> Result<(), StateError> {
                let mut snapshot_bytes =
                    std::fs::metadata(snapshot::path(&dir)).map_or(0, |m| m.len());
                loop {
                    match receiver.recv_timeout(Duration::from_secs(1)) {
                        Ok(segment) => queue.push(segment),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                    let upto = committed.load(Ordering::Acquire);
                    let foldable = queue.iter().take_while(|s| s.time <= upto).count();
                    let bytes: u64 = queue[..foldable].iter().map(|s| s.bytes).sum();
                    let worth = bytes >= fold_min_bytes
                        && bytes as f64 >= snapshot_bytes as f64 * FOLD_WHEN_TAIL_EXCEEDS;
                    if foldable > 0 && (worth || foldable >= MAX_SEGMENTS) {
                        let folded: Vec<Closed> = queue.drain(..foldable).collect();
                        snapshot_bytes = fold(&dir, retention, &folded)?;
                    }
                }
            })?;
        Ok(Compactor {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    fn closed(&mut self, segment: Closed) {
        if let Some(sender) = &self.sender {
            // A compactor that stopped on a failure reports it below.
            let _ = sender.send(segment);
        }
    }

    /// The compactor's failure, if it stopped on one.
    fn failure(&mut self) -> Result<(), StateError> {
        if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
            self.sender = None;
            return self.join();
        }
        Ok(())
    }

    fn join(&mut self) -> Result<(), StateError> {
        match self.thread.take().map(|thread| thread.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(error))) => Err(error),
            Some(Err(_)) => Err(StateError::Corrupt {
                path: PathBuf::new(),
                reason: "the compactor thread panicked".to_string(),
            }),
        }
    }

    fn stop(mut self) -> Result<(), StateError> {
        self.sender = None;
        self.join()
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        self.sender = None;
        let _ = self.join();
    }
}

/// Folds `segments` (consecutive, after the snapshot) into a new snapshot, then deletes them;
/// returns the new snapshot's size.
fn fold(dir: &Path, retention: Retention, segments: &[Closed]) -> Result<u64, StateError> {
    let last = segments.last().expect("at least one segment");
    let mut state = Fold::new(snapshot::read(dir)?, retention);
    state.finishing_at(last.time);
    for segment in segments {
        // Tick by tick as the records are read: a segment is never held in memory whole.
        let path = &segment.path;
        let mut reader = RecordReader::open(path).map_err(|source| StateError::io(path, source))?;
        loop {
            match reader.read::<LogRecord>() {
                Ok(Some(LogRecord::Tick(tick))) => state.apply(&tick),
                Ok(Some(LogRecord::Checkpoint { .. })) => {}
                Ok(None) => break,
                Err(torn) => {
                    return Err(StateError::Corrupt {
                        path: path.clone(),
                        reason: format!("at byte {}: {}", torn.offset, torn.reason),
                    })
                }
            }
        }
    }
    let snapshot = state.finish(last.time, last.sequence, last.position.clone());
    let bytes = snapshot::write(dir, &snapshot)?;
    fault_point!("fold");
    for segment in segments {
        std::fs::remove_file(&segment.path)
            .map_err(|source| StateError::io(&segment.path, source))?;
    }
    sync_dir(dir).map_err(|source| StateError::io(dir, source))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::testing::{reading, user};

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("gridflow-log-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn tick(time: Time, id: i64) -> Tick {
        Tick {
            time,
            users: vec![(id, Some(user(id, "u", 1, "r")))],
            consumption: vec![(id, Some(reading(id, id, 100, time as i64 - 1)))],
        }
    }

    fn position(next_tick: usize) -> SourcePosition {
        SourcePosition::Scripted { next_tick }
    }

    fn open(dir: &Path, committed: u64) -> (WorkerLog, Recovered) {
        WorkerLog::open(
            dir,
            Duration::from_secs(3600),
            DEFAULT_FOLD_MIN_BYTES,
            Retention::unbounded(5_000),
            Arc::new(AtomicU64::new(committed)),
        )
        .unwrap()
    }

    #[test]
    fn ticks_up_to_the_last_checkpoint_come_back_and_the_rest_is_dropped() {
        let dir = scratch("tail");
        let (mut log, recovered) = open(&dir, 0);
        assert!(recovered.ticks.is_empty() && recovered.checkpoint.is_none());
        log.append(&tick(1_000, 1)).unwrap();
        log.append(&tick(2_000, 2)).unwrap();
        log.checkpoint(2_000, position(2)).unwrap();
        log.append(&tick(3_000, 3)).unwrap();
        log.checkpoint(3_000, position(3)).unwrap();
        // logged after the last checkpoint, never made durable
        log.append(&tick(4_000, 4)).unwrap();
        drop(log);

        let (mut log, recovered) = open(&dir, 0);
        let times: Vec<Time> = recovered.ticks.iter().map(|t| t.time).collect();
        assert_eq!(times, vec![1_000, 2_000, 3_000]);
        assert_eq!(recovered.checkpoint, Some((3_000, position(3))));
        assert!(recovered.dropped_tail.is_some());
        // the log goes on after the durable part
        log.append(&tick(4_000, 4)).unwrap();
        log.checkpoint(4_000, position(4)).unwrap();
        drop(log);
        let (_, recovered) = open(&dir, 0);
        assert_eq!(recovered.ticks.len(), 4);
        assert_eq!(recovered.dropped_tail, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_record_in_the_last_segment_is_cut_off_and_in_an_earlier_one_is_corrupt() {
        let dir = scratch("torn");
        let (mut log, _) = open(&dir, 0);
        log.append(&tick(1_000, 1)).unwrap();
        log.checkpoint(1_000, position(1)).unwrap();
        log.append(&tick(2_000, 2)).unwrap();
        log.checkpoint(2_000, position(2)).unwrap();
        drop(log);
        let found = segments(&dir).unwrap();
        let (_, last) = &found[1];
        // a crash in the middle of appending to the last segment
        let mut bytes = std::fs::read(last).unwrap();
        bytes.extend_from_slice(&[7, 0, 0, 0, 1, 2]);
        std::fs::write(last, &bytes).unwrap();
        let (log, recovered) = open(&dir, 0);
        drop(log);
        assert_eq!(recovered.ticks.len(), 2);
        assert!(recovered.dropped_tail.unwrap().contains("torn"));

        // a flipped bit in a closed segment before it
        let (_, first) = &found[0];
        let mut bytes = std::fs::read(first).unwrap();
        bytes[12] ^= 0xff;
        std::fs::write(first, &bytes).unwrap();
        let error = WorkerLog::open(
            &dir,
            Duration::from_secs(3600),
            DEFAULT_FOLD_MIN_BYTES,
            Retention::unbounded(5_000),
            Arc::new(AtomicU64::new(0)),
        )
        .err()
        .expect("corrupt");
        assert!(matches!(error, StateError::Corrupt { .. }), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn committed_segments_fold_into_a_snapshot_and_leave() {
        let dir = scratch("fold");
        let committed = Arc::new(AtomicU64::new(0));
        let (mut log, _) = WorkerLog::open(
            &dir,
            Duration::from_secs(3600),
            DEFAULT_FOLD_MIN_BYTES,
            Retention::unbounded(5_000),
            committed.clone(),
        )
        .unwrap();
        // 300 segments: more than MAX_SEGMENTS, so they fold even though they are small
        for k in 1..=300u64 {
            log.append(&tick(k * 1_000, k as i64)).unwrap();
            log.checkpoint(k * 1_000, position(k as usize)).unwrap();
        }
        // only what every sink has committed may fold
        log.wait_durable().unwrap();
        committed.store(280_000, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(20);
        while segments(&dir).unwrap().len() > 20 {
            assert!(Instant::now() < deadline, "no fold");
            std::thread::sleep(Duration::from_millis(50));
        }
        log.close().unwrap();
        let (_, recovered) = open(&dir, 0);
        let snapshot = recovered.snapshot.expect("a snapshot");
        assert_eq!(snapshot.time, 280_000);
        assert_eq!(snapshot.users.len(), 280);
        assert_eq!(snapshot.consumption.len(), 280);
        let times: Vec<Time> = recovered.ticks.iter().map(|t| t.time).collect();
        assert_eq!(times, (281..=300).map(|k| k * 1_000).collect::<Vec<_>>());
        assert_eq!(recovered.checkpoint, Some((300_000, position(300))));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
