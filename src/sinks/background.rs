//! A sink run on its own thread, so the dataflow computes the next times while the database
//! writes the last ones. Change sets reach the thread in order, a run at a time, and at most one
//! run waits while another is written: a slow database slows the dataflow down (backpressure)
//! instead of queueing without bound.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::thread::JoinHandle;

use crate::dataflows::sink::{ChangeSet, ChangeSink, TableRow};
use crate::source::Time;

/// Runs of change sets queued before `flush` blocks: one, written while the next is computed.
const QUEUED_RUNS: usize = 1;

/// A [`ChangeSink`] that hands each run of change sets to `S` on a writer thread.
pub struct Background<S: ChangeSink + Send + 'static> {
    /// The change sets of the run being collected.
    run: Vec<ChangeSet>,
    sender: Option<SyncSender<Vec<ChangeSet>>>,
    writer: Option<JoinHandle<S>>,
}

impl<S: ChangeSink + Send + 'static> Background<S> {
    /// Starts the writer thread, which owns `sink` until [`Background::finish`].
    pub fn start(mut sink: S) -> Background<S> {
        let (sender, receiver) = sync_channel::<Vec<ChangeSet>>(QUEUED_RUNS);
        let writer = std::thread::Builder::new()
            .name("sink-writer".into())
            .spawn(move || {
                for run in receiver {
                    for (time, changes) in run {
                        sink.apply(time, changes);
                    }
                    sink.flush();
                }
                sink
            })
            .expect("cannot start the sink's writer thread");
        Background {
            run: Vec::new(),
            sender: Some(sender),
            writer: Some(writer),
        }
    }

    /// Waits until everything handed over is written and returns the sink. A failure of the
    /// writer (its sink stops the job by panicking) is raised here, on the caller's thread.
    pub fn finish(mut self) -> S {
        self.flush();
        drop(self.sender.take());
        self.join()
    }

    fn join(&mut self) -> S {
        let writer = self.writer.take().expect("the writer is joined once");
        match writer.join() {
            Ok(sink) => sink,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<S: ChangeSink + Send + 'static> ChangeSink for Background<S> {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        self.run.push((time, changes));
    }

    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        let run = std::mem::take(&mut self.run);
        let sender = self.sender.as_ref().expect("flush before finish");
        if sender.send(run).is_err() {
            // The writer has stopped: only a failure does that. Raise it here.
            self.sender = None;
            self.join();
            unreachable!("the sink's writer stopped without a failure");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the runs it is given, to check order and grouping.
    #[derive(Default)]
    struct Runs {
        runs: Vec<Vec<Time>>,
        current: Vec<Time>,
    }

    impl ChangeSink for Runs {
        fn apply(&mut self, time: Time, _: Vec<(TableRow, isize)>) {
            self.current.push(time);
        }

        fn flush(&mut self) {
            self.runs.push(std::mem::take(&mut self.current));
        }
    }

    #[test]
    fn runs_reach_the_sink_in_order_and_whole() {
        let mut sink = Background::start(Runs::default());
        for run in [vec![1, 2], vec![3], vec![4, 5, 6]] {
            for time in run {
                sink.apply(time, Vec::new());
            }
            sink.flush();
        }
        sink.apply(7, Vec::new());
        let runs = sink.finish().runs;
        assert_eq!(runs, vec![vec![1, 2], vec![3], vec![4, 5, 6], vec![7]]);
    }

    struct Failing;

    impl ChangeSink for Failing {
        fn apply(&mut self, time: Time, _: Vec<(TableRow, isize)>) {
            panic!("the database refused time {time}");
        }
    }

    #[test]
    fn a_failure_of_the_writer_is_raised_on_the_callers_thread() {
        let mut sink = Background::start(Failing);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            sink.apply(3, Vec::new());
            sink.flush();
            // The writer may still be failing: the next flush or finish raises it.
            for time in 4..1000 {
                sink.apply(time, Vec::new());
                sink.flush();
            }
            sink.finish();
        }));
        let panic = outcome.expect_err("the failure is raised");
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert_eq!(message, "the database refused time 3");
    }
}
