//! A database sink run on its own thread, so the dataflow computes the next times while the
//! database writes the last ones.
//!
//! Completed change sets do not queue behind the writer as runs: they join one pending set that
//! the writer takes whole when it finishes a transaction. Merged by key ([`Net`]), that set holds
//! at most two row changes per key however much churn the dataflow produced while the writer was
//! busy, and the next transaction writes each changed key once with the last time as its
//! progress. The dataflow's thread only moves change sets into the set; it merges them itself
//! (the sort the writer would do anyway) only when the set has grown past a bound, and waits for
//! the writer (backpressure) only when the merged set is still large — a slow database slows the
//! dataflow down instead of letting memory grow without bound.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use super::database::{Database, DatabaseSink};
use super::net::Net;
use super::SinkError;
use crate::model::TableRow;
use crate::model::Time;
use crate::sinks::{ChangeSet, ChangeSink};

/// Row changes the pending set may hold before the dataflow's thread merges it by key; if it
/// still holds more than half as many after merging (that many distinct keys changed while the
/// writer was busy), the thread waits until the writer takes it.
///
/// A pending row change is a [`TableRow`] with its time and difference, under 200 bytes (the
/// names it carries are shared), so the pending set stays under about 50 MiB, and as much again
/// may be in the transaction being written. 2^18 is also far more than a run of the dataflow
/// produces at the source's rates (a few thousand row changes a second), so the bound only bites
/// when the writer has fallen behind a catch-up, where each merge collapses a lot of churn.
pub const MAX_PENDING_ROWS: usize = 1 << 18;

/// A [`ChangeSink`] that hands change sets to a [`DatabaseSink`] on a writer thread.
pub struct Background<D: Database + Send + 'static> {
    /// The change sets of the run being collected.
    run: Vec<ChangeSet>,
    /// The time up to which an earlier job applied everything: change sets at or below it are
    /// skipped here, before they are merged with any that are not.
    applied_upto: Option<Time>,
    skipped: u64,
    /// [`MAX_PENDING_ROWS`], smaller in tests.
    bound: usize,
    shared: Arc<Shared>,
    writer: Option<JoinHandle<DatabaseSink<D>>>,
}

/// What the dataflow's thread and the writer share.
struct Shared {
    state: Mutex<State>,
    /// Signalled when there is a pending set for the writer, or nothing more will come.
    work: Condvar,
    /// Signalled when the writer has taken the pending set, or has stopped.
    room: Condvar,
}

struct State {
    /// Change sets handed over and not yet taken by the writer.
    pending: Net,
    /// Nothing more will be handed over: the writer stops once it has written everything.
    closed: bool,
    /// The writer has stopped: once closed, or on a failure.
    stopped: bool,
    /// The writer stopped on a failure ...
    failed: bool,
    /// ... and why, until the dataflow's thread takes it.
    failure: Option<SinkError>,
}

impl State {
    /// The writer's failure, if it failed (its error the first time asked).
    fn failure(&mut self) -> Option<SinkError> {
        self.failed.then(|| {
            self.failure.take().unwrap_or_else(|| {
                SinkError::Config("the sink's writer stopped on an earlier failure".to_string())
            })
        })
    }
}

impl Shared {
    /// The state; a panic elsewhere cannot leave it half-changed, so a poisoned lock is taken.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a pending set and takes it, or returns `None` once closed with nothing pending.
    fn take(&self) -> Option<Net> {
        let mut state = self.lock();
        while state.pending.is_empty() && !state.closed {
            state = self
                .work
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.pending.is_empty() {
            return None;
        }
        let empty = state.pending.empty_like();
        let run = std::mem::replace(&mut state.pending, empty);
        self.room.notify_all();
        Some(run)
    }
}

/// Marks the writer stopped when its thread ends, however it ends, so nobody waits for it.
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.lock().stopped = true;
        self.0.room.notify_all();
    }
}

impl<D: Database + Send + 'static> Background<D> {
    /// Starts the writer thread, which owns `sink` until [`Background::finish`].
    pub fn start(sink: DatabaseSink<D>) -> Background<D> {
        Background::with_bound(sink, MAX_PENDING_ROWS)
    }

    fn with_bound(mut sink: DatabaseSink<D>, bound: usize) -> Background<D> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Net::new(sink.ods_and_dwd),
                closed: false,
                stopped: false,
                failed: false,
                failure: None,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let applied_upto = sink.applied_upto();
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || {
                let _stopped = Stopped(writer_shared.clone());
                while let Some(run) = writer_shared.take() {
                    if let Err(error) = sink.write(run) {
                        let mut state = writer_shared.lock();
                        state.failed = true;
                        state.failure = Some(error);
                        break;
                    }
                }
                sink
            })
            .expect("cannot start the sink's writer thread");
        Background {
            run: Vec::new(),
            applied_upto,
            skipped: 0,
            bound,
            shared,
            writer: Some(writer),
        }
    }

    /// Waits until everything handed over is written and returns the sink, or the failure that
    /// stopped the writer.
    pub fn finish(mut self) -> Result<DatabaseSink<D>, SinkError> {
        let flushed = self.flush();
        self.close();
        let mut sink = self.join();
        flushed?;
        if let Some(error) = self.shared.lock().failure() {
            return Err(error);
        }
        sink.skipped += self.skipped;
        Ok(sink)
    }

    /// Tells the writer that nothing more will come.
    fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
    }

    /// Waits for the writer to end (a panic there is a bug, and is raised here).
    fn join(&mut self) -> DatabaseSink<D> {
        let writer = self.writer.take().expect("the writer is joined once");
        match writer.join() {
            Ok(sink) => sink,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }

    /// Row changes handed over and not yet taken by the writer.
    #[cfg(test)]
    fn pending_rows(&self) -> usize {
        self.shared.lock().pending.rows()
    }
}

impl<D: Database + Send + 'static> ChangeSink for Background<D> {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if self.applied_upto.is_some_and(|upto| time <= upto) {
            self.skipped += 1;
            return;
        }
        self.run.push((time, changes));
    }

    /// Hands the run to the writer: it joins the pending set, whatever the writer is doing.
    /// Returns the writer's failure once it has stopped on one.
    fn flush(&mut self) -> Result<(), SinkError> {
        if self.run.is_empty() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        for (time, changes) in self.run.drain(..) {
            state.pending.push(time, changes);
        }
        // Wake the writer first: it may be idle, and it must be free to take the set.
        self.shared.work.notify_all();
        if state.pending.rows() > self.bound {
            // The writer is behind, or the run alone is large. Merging here (under the lock: the writer would merge the
            // same set first thing after taking it) collapses the churn; what remains is one
            // change or two per distinct key, and only if that is still a lot is there nothing
            // to do but wait.
            state.pending.merge();
            while state.pending.rows() > self.bound / 2 && !state.stopped {
                state = self
                    .shared
                    .room
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        // Only a failure stops the writer before it is closed.
        match state.failure() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl<D: Database + Send + 'static> Drop for Background<D> {
    /// Unwinding past an unfinished sink (the dataflow failed): the writer writes what it was
    /// handed and ends, and nobody waits for it.
    fn drop(&mut self) {
        if self.writer.is_some() {
            self.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::{channel, Receiver, Sender};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sinks::database::tests::{stats, write_in_order, Tables};
    use crate::sinks::keys::key_of;
    use crate::sinks::net::NetOp;
    use crate::sinks::SinkError;

    /// One operation a transaction wrote: `i`, `u` or `d`, the row, and its stamp (0 for a delete).
    type Written = (char, TableRow, Time);

    /// What a [`Fake`] database was asked to do.
    #[derive(Default)]
    struct Log {
        /// Each committed transaction: its progress and its operations.
        transactions: Vec<(Time, Vec<Written>)>,
        /// The tables as the transactions left them: key to version and its stamp.
        tables: Tables,
        progress: Option<Time>,
    }

    /// A database in memory that checks every insert is of a key it does not hold and every
    /// update and delete of one it does (as PostgreSQL's plain INSERT and the tests' reading of
    /// the tables would), and that can be held inside a transaction until the test lets it go —
    /// a deliberately slow database.
    struct Fake {
        log: Arc<Mutex<Log>>,
        /// When set, each transaction announces its progress and waits for a go (or for the
        /// test to drop its sender: then every transaction goes at once).
        gate: Option<(Sender<Time>, Receiver<()>)>,
        /// Refuse every transaction, as when another job has taken the sink over.
        fenced: bool,
        /// How many transactions commit but report a failure, as when the connection drops
        /// between the commit and its acknowledgement.
        lost_acks: usize,
    }

    /// A gated fake: its log, the channel on which transactions announce themselves, and the
    /// sender of goes.
    fn gated(progress: Option<Time>) -> (Fake, Arc<Mutex<Log>>, Receiver<Time>, Sender<()>) {
        let log = Arc::new(Mutex::new(Log {
            progress,
            ..Log::default()
        }));
        let (entered, entered_rx) = channel();
        let (go, go_rx) = channel();
        let fake = Fake {
            log: log.clone(),
            gate: Some((entered, go_rx)),
            fenced: false,
            lost_acks: 0,
        };
        (fake, log, entered_rx, go)
    }

    impl Database for Fake {
        fn progress(&mut self) -> Result<Option<Time>, SinkError> {
            Ok(self.log.lock().unwrap().progress)
        }

        fn apply(&mut self, ops: &[Vec<NetOp<'_>>], upto: Time, _: &str) -> Result<(), SinkError> {
            if let Some((entered, go)) = &self.gate {
                let _ = entered.send(upto);
                let _ = go.recv();
            }
            if self.fenced {
                return Err(SinkError::Fenced);
            }
            let mut log = self.log.lock().unwrap();
            let mut written = Vec::new();
            for &op in ops.iter().flatten() {
                let key = key_of(op.row());
                let held = log.tables.contains_key(&key);
                match op {
                    NetOp::Insert(row, time) => {
                        assert!(!held, "an insert of {key:?}, which the table holds");
                        log.tables.insert(key, (row.clone(), time));
                        written.push(('i', row.clone(), time));
                    }
                    NetOp::Update(row, time) => {
                        assert!(held, "an update of {key:?}, which the table does not hold");
                        log.tables.insert(key, (row.clone(), time));
                        written.push(('u', row.clone(), time));
                    }
                    NetOp::Delete(row) => {
                        assert!(held, "a delete of {key:?}, which the table does not hold");
                        log.tables.remove(&key);
                        written.push(('d', row.clone(), 0));
                    }
                }
            }
            log.transactions.push((upto, written));
            log.progress = Some(upto);
            if self.lost_acks > 0 {
                self.lost_acks -= 1;
                return Err(SinkError::Config(
                    "connection lost after commit".to_string(),
                ));
            }
            Ok(())
        }

        fn acquire(
            &mut self,
            _: &str,
            _: crate::model::rows::Millis,
            _: Option<&str>,
        ) -> Result<bool, SinkError> {
            Ok(true)
        }

        fn holder(&mut self) -> Result<Option<(String, crate::model::rows::Millis)>, SinkError> {
            Ok(None)
        }

        fn release(&mut self, _: &str) -> Result<(), SinkError> {
            Ok(())
        }

        fn job(&mut self) -> Result<Option<String>, SinkError> {
            Ok(None)
        }

        fn claim(&mut self, _: &str, _: &str) -> Result<(), SinkError> {
            Ok(())
        }

        fn holds_rows(&mut self) -> Result<bool, SinkError> {
            Ok(!self.log.lock().unwrap().tables.is_empty())
        }

        fn clear(&mut self, _: &str) -> Result<(), SinkError> {
            let mut log = self.log.lock().unwrap();
            log.tables.clear();
            log.progress = None;
            Ok(())
        }
    }

    /// Hands one completed time to `sink` and remembers it in `sets`.
    fn hand(
        sink: &mut impl ChangeSink,
        sets: &mut Vec<ChangeSet>,
        time: Time,
        changes: Vec<(TableRow, isize)>,
    ) {
        sets.push((time, changes.clone()));
        sink.apply(time, changes);
        sink.flush().unwrap();
    }

    /// The tables after writing every change set in order, one transaction each.
    fn in_order(sets: &[ChangeSet]) -> Tables {
        let mut tables = Tables::new();
        for set in sets {
            write_in_order(&mut tables, set);
        }
        tables
    }

    #[test]
    fn while_the_writer_is_busy_change_sets_merge_into_one_write_per_key() {
        let (fake, log, entered, go) = gated(None);
        let mut sink = Background::start(DatabaseSink::new(fake, false).unwrap());
        let mut sets = Vec::new();
        let version = |region, time: Time| stats(region, 0, time as i64);
        let transient = |time: Time| stats(100 + time as i32, 0, 1);
        hand(
            &mut sink,
            &mut sets,
            1,
            (1..=3).map(|r| (version(r, 1), 1)).collect(),
        );
        assert_eq!(entered.recv().unwrap(), 1, "the writer is busy with time 1");
        // Meanwhile every time rewrites the three regions, adds a transient row and takes the
        // previous time's away.
        for time in 2..=100 {
            let mut changes = vec![(transient(time), 1)];
            if time > 2 {
                changes.push((transient(time - 1), -1));
            }
            for region in 1..=3 {
                changes.push((version(region, time - 1), -1));
                changes.push((version(region, time), 1));
            }
            hand(&mut sink, &mut sets, time, changes);
        }
        drop(go);
        let sink = sink.finish().unwrap();
        let log = log.lock().unwrap();
        let progress: Vec<Time> = log.transactions.iter().map(|(upto, _)| *upto).collect();
        assert_eq!(progress, vec![1, 100], "99 change sets, one transaction");
        let mut second = log.transactions[1].1.clone();
        second.sort_by_key(|(_, row, _)| key_of(row));
        let mut expected: Vec<Written> = (1..=3).map(|r| ('u', version(r, 100), 100)).collect();
        expected.push(('i', transient(100), 100));
        assert_eq!(
            second, expected,
            "each key once, stamped with its last time"
        );
        assert_eq!(log.tables, in_order(&sets));
        assert_eq!(log.progress, Some(100));
        assert_eq!(sink.applied_upto(), Some(100));
    }

    /// Runs `work` on its own thread and waits for it at most ten seconds: a sink that hangs
    /// fails the test instead of hanging it.
    fn within_ten_seconds<T: Send + 'static>(
        work: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::Result<T> {
        let worker = std::thread::spawn(work);
        let started = Instant::now();
        while !worker.is_finished() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the sink hangs"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        worker.join()
    }

    #[test]
    fn churn_on_few_keys_never_blocks_the_dataflow_however_long_the_writer_takes() {
        let (fake, log, entered, go) = gated(None);
        let mut sink = Background::with_bound(DatabaseSink::new(fake, false).unwrap(), 20);
        let mut sets = Vec::new();
        hand(
            &mut sink,
            &mut sets,
            1,
            (1..=3).map(|r| (stats(r, 0, 1), 1)).collect(),
        );
        assert_eq!(entered.recv().unwrap(), 1);
        // Six row changes a time, 6,000 in all against a bound of 20, while the writer is held.
        let (sink, sets) = within_ten_seconds(move || {
            for time in 2..=1000 {
                let changes = (1..=3)
                    .flat_map(|r| [(stats(r, 0, time - 1), -1), (stats(r, 0, time), 1)])
                    .collect();
                hand(&mut sink, &mut sets, time as Time, changes);
                assert!(sink.pending_rows() <= 20);
            }
            (sink, sets)
        })
        .expect("the dataflow never waited for the writer");
        drop(go);
        sink.finish().unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.transactions.len(), 2);
        assert_eq!(log.transactions[1].1.len(), 3);
        assert_eq!(log.tables, in_order(&sets));
    }

    #[test]
    fn many_distinct_keys_block_the_dataflow_at_the_bound_until_the_writer_takes_them() {
        let (fake, log, entered, go) = gated(None);
        let mut sink = Background::with_bound(DatabaseSink::new(fake, false).unwrap(), 10);
        let shared = sink.shared.clone();
        let mut sets = Vec::new();
        hand(&mut sink, &mut sets, 1, vec![(stats(1, 0, 1), 1)]);
        assert_eq!(entered.recv().unwrap(), 1);
        let handed = Arc::new(AtomicUsize::new(0));
        let producer = {
            let handed = handed.clone();
            std::thread::spawn(move || {
                for time in 2..=50 {
                    hand(
                        &mut sink,
                        &mut sets,
                        time,
                        vec![(stats(time as i32, 0, 1), 1)],
                    );
                    handed.fetch_add(1, Ordering::SeqCst);
                }
                (sink, sets)
            })
        };
        std::thread::sleep(Duration::from_millis(300));
        // Ten new keys fit; the eleventh exceeds the bound, merging cannot shrink distinct keys,
        // so that flush waits.
        assert_eq!(handed.load(Ordering::SeqCst), 10, "the dataflow waits");
        assert_eq!(
            shared.lock().pending.rows(),
            11,
            "and the pending set stops growing"
        );
        assert!(!producer.is_finished());
        // The writer finishes time 1 and takes times 2 to 12; the dataflow goes on.
        go.send(()).unwrap();
        assert_eq!(entered.recv().unwrap(), 12);
        drop(go);
        let (sink, sets) = producer.join().unwrap();
        sink.finish().unwrap();
        let log = log.lock().unwrap();
        assert_eq!(log.transactions[1].1.len(), 11);
        assert_eq!(log.progress, Some(50));
        assert_eq!(log.tables, in_order(&sets));
    }

    #[test]
    fn a_run_past_the_bound_reaches_an_idle_writer() {
        let (fake, log, _entered, go) = gated(None);
        drop(go);
        let mut sink = Background::with_bound(DatabaseSink::new(fake, false).unwrap(), 4);
        within_ten_seconds(move || {
            for time in 1..=3 {
                sink.apply(
                    time,
                    (0..10).map(|r| (stats(r, time as i64, 1), 1)).collect(),
                );
                sink.flush().unwrap();
            }
            sink.finish().unwrap();
        })
        .expect("the dataflow's wait for room ends");
        assert_eq!(log.lock().unwrap().tables.len(), 30);
    }

    #[test]
    fn change_sets_an_earlier_job_applied_are_skipped_not_merged() {
        let (fake, log, _entered, go) = gated(Some(5));
        drop(go);
        let mut sink = Background::start(DatabaseSink::new(fake, false).unwrap());
        for time in 3..=8 {
            sink.apply(time, vec![(stats(time as i32, 0, 1), 1)]);
        }
        sink.flush().unwrap();
        let sink = sink.finish().unwrap();
        assert_eq!(sink.skipped, 3);
        let log = log.lock().unwrap();
        let written: Vec<_> = log.transactions[0]
            .1
            .iter()
            .map(|(_, row, _)| row)
            .collect();
        assert_eq!(
            written,
            vec![&stats(6, 0, 1), &stats(7, 0, 1), &stats(8, 0, 1)]
        );
        assert_eq!(log.progress, Some(8));
    }

    #[test]
    fn a_commit_whose_acknowledgement_is_lost_is_not_applied_again() {
        let (mut fake, log, _entered, go) = gated(None);
        drop(go);
        fake.lost_acks = 1;
        let mut sink = Background::start(DatabaseSink::new(fake, false).unwrap());
        let mut sets = Vec::new();
        for time in 1..=3 {
            let changes = vec![(stats(time as i32, 0, 1), 1)];
            sets.push((time, changes.clone()));
            sink.apply(time, changes);
        }
        sink.flush().unwrap();
        let sink = sink
            .finish()
            .expect("the retry sees the progress and succeeds");
        assert_eq!(sink.applied_upto(), Some(3));
        let log = log.lock().unwrap();
        // The fake asserts that no insert meets a key it holds; and one transaction it is.
        assert_eq!(log.transactions.len(), 1);
        assert_eq!(log.progress, Some(3));
        assert_eq!(log.tables, in_order(&sets));
    }

    #[test]
    fn a_failure_of_the_writer_is_returned_to_the_callers_thread() {
        let (mut fake, _, entered, go) = gated(None);
        fake.fenced = true;
        let mut sink = Background::start(DatabaseSink::new(fake, false).unwrap());
        sink.apply(3, Vec::new());
        sink.flush().unwrap();
        assert_eq!(entered.recv().unwrap(), 3);
        drop(go);
        let outcome = within_ten_seconds(move || {
            // The writer may still be failing: a later flush or the finish returns it.
            for time in 4..1000 {
                sink.apply(time, Vec::new());
                if let Err(error) = sink.flush() {
                    return error.to_string();
                }
            }
            sink.finish()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        })
        .expect("no panic");
        assert_eq!(
            outcome,
            "the sink stopped at logical time 3: another job has taken over this sink; this job \
             stops without writing"
        );
    }

    #[test]
    fn a_failure_of_the_writer_wakes_a_dataflow_waiting_at_the_bound() {
        let (mut fake, _, entered, go) = gated(None);
        fake.fenced = true;
        let mut sink = Background::with_bound(DatabaseSink::new(fake, false).unwrap(), 2);
        sink.apply(1, vec![(stats(1, 0, 1), 1)]);
        sink.flush().unwrap();
        assert_eq!(entered.recv().unwrap(), 1);
        // Let the writer fail once the dataflow waits at the bound.
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(go);
        });
        let outcome = within_ten_seconds(move || {
            for time in 2..1000 {
                sink.apply(time, vec![(stats(time as i32, 0, 1), 1)]);
                if let Err(error) = sink.flush() {
                    return error.to_string();
                }
            }
            String::new()
        })
        .expect("no panic");
        assert!(
            outcome.starts_with("the sink stopped at logical time 1:"),
            "{outcome}"
        );
    }
}
