//! Job control: the job's one failure slot, and the small dataflow every worker of every process
//! builds first, through which process 0 says what the job's dataflow holds ([`Shape`]) and any
//! process tells the others that it failed.
//!
//! Every process must build the same dataflow (timely matches operators by the order they are
//! built), but what leaves it is process 0's business: its sink, its export, its UI. So process
//! 0 decides, and the others build what it says — instead of every process building every exit
//! in case process 0 wants it (which made process 0 of a `-n 2` job gather every table's
//! changes for no one).
//!
//! A failure anywhere stops the whole job: the process where it happens records it, and its
//! first worker sends it to every other process, which records it as a peer's failure with the
//! same exit code, and stops too.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::vec::input::Handle as InputHandle;
use timely::dataflow::operators::vec::{Broadcast, Input as _};
use timely::dataflow::operators::Inspect;

use super::error::RunError;

/// The first failure of the job in this process — its own, or a peer's — shared by the
/// process's workers, the sink operator and the sink's thread.
#[derive(Clone, Debug)]
pub struct Failure {
    first: Arc<Mutex<Option<RunError>>>,
    stop: Arc<AtomicBool>,
}

impl Failure {
    /// No failure yet; a failure will set `stop`, which stops every worker's source.
    pub fn new(stop: Arc<AtomicBool>) -> Failure {
        Failure {
            first: Arc::default(),
            stop,
        }
    }

    /// Records `error` unless a failure came first, and stops the job.
    pub fn record(&self, error: impl Into<RunError>) {
        let error = error.into();
        let mut first = self.first.lock().unwrap_or_else(PoisonError::into_inner);
        if first.is_none() {
            tracing::debug!("the job stops: {error}");
            *first = Some(error);
        }
        drop(first);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// The failure, taken out of the slot.
    pub fn take(&self) -> Option<RunError> {
        self.first
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The failure as the other processes should hear it: its exit code and its message —
    /// unless there is none, or it is itself a peer's.
    fn to_announce(&self) -> Option<(u8, String)> {
        match &*self.first.lock().unwrap_or_else(PoisonError::into_inner) {
            None | Some(RunError::Peer { .. }) => None,
            Some(error) => Some((error.exit_code(), error.to_string())),
        }
    }
}

/// What process 0 decides for the whole job: the parts of the dataflow every process builds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Whether the tables' changes are gathered on worker 0 at all (a sink or an export wants
    /// them).
    pub changes: bool,
    /// Whether the ODS and DWD tables leave the dataflow (the export, `--sink-ods-dwd`,
    /// verify); the DWD detail rows are built only then.
    pub ods_and_dwd: bool,
    /// Whether the web UI's exits are built (process 0 serves the UI).
    pub monitor: bool,
    /// Whether the job is durable: the sink then waits for every worker's durability marks.
    pub durable: bool,
}

/// What travels on the control dataflow.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Message {
    /// Process 0's decision, sent once at the start.
    Shape(Shape),
    /// A process failed.
    Failed {
        process: usize,
        code: u8,
        message: String,
    },
}

/// One worker's end of the control dataflow.
pub struct Control {
    input: Option<InputHandle<u64, Message>>,
    epoch: u64,
    heard: Rc<RefCell<Vec<Message>>>,
    process: usize,
    /// Whether this worker speaks for its process (its first worker does).
    speaks: bool,
    announced: bool,
    failure: Failure,
}

impl Control {
    /// Builds the control dataflow on `worker` — before any other dataflow, in every process —
    /// for process `process`, whose first worker speaks for it.
    pub fn build(
        worker: &mut timely::worker::Worker,
        process: usize,
        speaks: bool,
        failure: Failure,
    ) -> Control {
        let heard: Rc<RefCell<Vec<Message>>> = Rc::default();
        let sink = heard.clone();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            scope.region_named("job.control", |region| {
                region
                    .input_from(&mut input)
                    .broadcast()
                    .inspect(move |message: &Message| sink.borrow_mut().push(message.clone()));
            });
        });
        Control {
            input: Some(input),
            epoch: 0,
            heard,
            process,
            speaks,
            announced: false,
            failure,
        }
    }

    fn send(&mut self, message: Message) {
        if let Some(input) = &mut self.input {
            input.send(message);
            self.epoch += 1;
            input.advance_to(self.epoch);
            input.flush();
        }
    }

    /// Worker 0 sends `proposed`; every worker steps until it hears process 0's shape, and
    /// returns it.
    pub fn agree(&mut self, worker: &mut timely::worker::Worker, proposed: Shape) -> Shape {
        if worker.index() == 0 {
            self.send(Message::Shape(proposed));
        }
        loop {
            let shape = self
                .heard
                .borrow()
                .iter()
                .find_map(|message| match message {
                    Message::Shape(shape) => Some(*shape),
                    Message::Failed { .. } => None,
                });
            if let Some(shape) = shape {
                return shape;
            }
            worker.step_or_park(None);
        }
    }

    /// Records the failures other processes announced, and announces this process's own (once,
    /// from the worker that speaks for it). Cheap: call it whenever the worker has stepped.
    pub fn poll(&mut self) {
        for message in self.heard.borrow_mut().drain(..) {
            if let Message::Failed {
                process,
                code,
                message,
            } = message
            {
                if process != self.process {
                    self.failure.record(RunError::Peer {
                        process,
                        code,
                        message,
                    });
                }
            }
        }
        if self.speaks && !self.announced {
            if let Some((code, message)) = self.failure.to_announce() {
                self.announced = true;
                let process = self.process;
                self.send(Message::Failed {
                    process,
                    code,
                    message,
                });
            }
        }
    }

    /// Announces a last failure and closes this worker's input, so the control dataflow can
    /// finish once every worker has closed its own.
    pub fn close(&mut self) {
        self.poll();
        self.input = None;
    }
}
