//! Tells every worker of a job, in every process, how far the sinks have committed.
//!
//! The sinks live on worker 0 (in process 0), but every worker needs their progress: at a
//! restart to know which logged times it may feed as one, and during the run so its compactor
//! folds only segments every sink has committed. Worker 0 publishes the progress into a small
//! dataflow of its own that broadcasts it; the other workers only listen.

use std::cell::Cell;
use std::rc::Rc;

use timely::dataflow::operators::vec::input::Handle as InputHandle;
use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;

use crate::model::Time;

/// Worker 0's side publishes; every worker's side reads the latest value.
pub struct ProgressFeed {
    /// Worker 0's input; `None` on every other worker.
    input: Option<InputHandle<u64, Time>>,
    epoch: u64,
    published: Option<Time>,
    latest: Rc<Cell<Option<Time>>>,
}

impl ProgressFeed {
    /// Builds the feed's dataflow on `worker` (every worker must, in the same order as the
    /// warehouse's dataflow).
    pub fn build(worker: &mut timely::worker::Worker) -> ProgressFeed {
        let latest: Rc<Cell<Option<Time>>> = Rc::default();
        let seen = latest.clone();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope.region_named("durable.sinks_progress", |region| {
                region
                    .input_from(&mut input)
                    .broadcast()
                    .inspect(move |committed: &Time| {
                        seen.set(Some(seen.get().map_or(*committed, |s| s.max(*committed))));
                    });
            });
        });
        ProgressFeed {
            input: (worker.index() == 0).then_some(input),
            epoch: 0,
            published: None,
            latest,
        }
    }

    /// On worker 0: publishes `committed` if it moved (a no-op on the other workers).
    pub fn publish(&mut self, committed: Time) {
        if let Some(input) = &mut self.input {
            if self.published != Some(committed) {
                input.send(committed);
                self.epoch += 1;
                input.advance_to(self.epoch);
                input.flush();
                self.published = Some(committed);
            }
        }
    }

    /// The latest progress received, if any.
    pub fn latest(&self) -> Option<Time> {
        self.latest.get()
    }

    /// Steps `worker` until a progress has been received.
    pub fn wait(&self, worker: &mut timely::worker::Worker) -> Time {
        loop {
            if let Some(committed) = self.latest() {
                return committed;
            }
            worker.step_or_park(None);
        }
    }

    /// Closes worker 0's input, so the feed's dataflow can finish.
    pub fn close(&mut self) {
        self.input = None;
    }
}
