//! One worker's life, in phases: [`start`] (loggers, what the job's processes agree to build,
//! the source, a restart's state), [`build`] (the warehouse and its exits), then driving it
//! ([`super::drive`]) and [`finish`] (closing inputs and draining). Every worker of every
//! process goes through the same phases and builds the same dataflows in the same order, even
//! when it has failed: a worker that stopped early would leave the others waiting for it.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::AsCollection;
use timely::dataflow::operators::vec::input::Handle as InputHandle;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::operators::Leave;
use timely::dataflow::ProbeHandle;

use super::config::{RunConfig, SourceSpec};
use super::control::{Control, Failure, Shape};
use super::drive::{drive, Reporter};
use super::error::RunError;
use super::inputs::Inputs;
use super::restore::{local_workers, Durable, Logs};
use crate::dataflows::warehouse;
use crate::metrics::Metrics;
use crate::model::{RowError, Time};
use crate::operators::upsert::StateCounts;
use crate::sinks::exits::{route, Exits, Handoff};
use crate::sinks::ChangeSink;
use crate::sources::csv_replay::CsvReplay;
use crate::sources::generator::Generator;
use crate::sources::scripted::Scripted;
use crate::sources::Source;
use crate::ui::gather::CountersFeed;
use crate::ui::Monitor;

/// What every worker of the process reads: the run's configuration, its source, the sink's
/// maker, the counters, the failure slot and the opened logs.
pub struct Shared<F> {
    pub config: RunConfig,
    pub source: SourceSpec,
    pub make_sink: Option<F>,
    pub metrics: Arc<Metrics>,
    pub failure: Failure,
    pub logs: Logs,
}

/// Runs one worker through its phases and returns its sink (worker 0's, if it has one). A
/// panic is recorded as the job's failure, with its message, and then goes on unwinding.
pub fn run_worker<S, F>(worker: &mut timely::worker::Worker, shared: &Shared<F>) -> Option<S>
where
    S: ChangeSink + 'static,
    F: Fn() -> S,
{
    let index = worker.index();
    let body = AssertUnwindSafe(|| {
        let mut started = start(worker, shared);
        let built = build(worker, shared, &started);
        let sink = built.sink.clone();
        let inputs = feed(worker, shared, &mut started, built);
        finish(worker, shared, started, inputs);
        sink.and_then(|sink| match Rc::try_unwrap(sink) {
            Ok(cell) => Some(cell.into_inner()),
            Err(_) => None,
        })
    });
    std::panic::catch_unwind(body).unwrap_or_else(|payload| {
        shared.failure.record(RunError::Panicked {
            worker: index,
            message: panic_message(payload.as_ref()),
        });
        std::panic::resume_unwind(payload)
    })
}

/// A started worker: what it agreed with the job, its source, its durable part, and the small
/// dataflows it built before the warehouse.
struct Started<'a> {
    shape: Shape,
    control: Control,
    source: Box<dyn Source>,
    /// Malformed rows the source found while loading (a replay's), reported by this worker.
    errors: Vec<RowError>,
    durable: Option<Durable<'a>>,
    counters: CountersFeed,
    /// What the UI keeps from this worker's exits (only worker 0 keeps the shared views).
    monitor: Monitor,
}

/// Phase one: the loggers, the job's agreement, the source, a restart's state and the counters'
/// dataflow — in that order on every worker.
fn start<'a, F>(worker: &mut timely::worker::Worker, shared: &'a Shared<F>) -> Started<'a> {
    let config = &shared.config;
    let (index, peers) = (worker.index(), worker.peers());
    let local = local_workers(&config.timely);
    // The loggers must be in place before the first dataflow is built.
    if let Some(dataflow) = config.monitor.as_ref().and_then(|m| m.dataflow.clone()) {
        crate::ui::dataflow_log::register(worker, dataflow, index - local.start);
    }
    let process = local.start / local.len().max(1);
    let mut control = Control::build(
        worker,
        process,
        index == local.start,
        shared.failure.clone(),
    );
    let proposed = Shape {
        changes: shared.make_sink.is_some(),
        ods_and_dwd: config.sink_ods_and_dwd,
        monitor: config.monitor.is_some(),
        durable: config.durability.is_some(),
    };
    let shape = control.agree(worker, proposed);
    if shape.durable != proposed.durable && index == local.start {
        let difference = if proposed.durable {
            "keeps a state dir while process 0 is --ephemeral"
        } else {
            "is --ephemeral while process 0 keeps a state dir"
        };
        shared.failure.record(RunError::Mismatch {
            process,
            difference: difference.to_string(),
        });
    }

    let (mut source, errors) = open_source(&shared.source, index, peers).unwrap_or_else(|error| {
        shared.failure.record(error);
        (
            Box::new(Scripted::new(Vec::new(), index, peers)),
            Vec::new(),
        )
    });
    let mut durable = None;
    match (&config.durability, shape.durable) {
        (Some(durability), true) => {
            match Durable::restore(worker, durability, &shared.logs, &mut *source) {
                Ok((restored, resumed)) => {
                    if let Err(error) = resumed {
                        shared.failure.record(error);
                    }
                    durable = Some(restored);
                }
                Err(error) => shared.failure.record(error),
            }
        }
        // Not durable here while the job is: the progress feed is built all the same.
        (None, true) => crate::durable::feed::ProgressFeed::build(worker).close(),
        (_, false) => {}
    }
    // Every worker builds the gathering dataflow; worker 0 keeps what it hears.
    let gathered = (index == 0).then(|| config.gathered.clone()).flatten();
    let counters = CountersFeed::build(worker, local.len(), gathered);
    let monitor = match &config.monitor {
        Some(monitor) if index == 0 => monitor.clone(),
        _ => Monitor::default(),
    };
    Started {
        shape,
        control,
        source,
        errors,
        durable,
        counters,
        monitor,
    }
}

/// The source of worker `index` of `peers`, and the malformed rows it found while loading.
fn open_source(
    spec: &SourceSpec,
    index: usize,
    peers: usize,
) -> Result<(Box<dyn Source>, Vec<RowError>), RunError> {
    Ok(match spec {
        SourceSpec::Generator(generator) => (
            Box::new(Generator::new(generator.clone(), index, peers)),
            Vec::new(),
        ),
        SourceSpec::Replay(replay) => {
            let mut replay = CsvReplay::load(replay.clone(), index, peers)?;
            let errors = replay.take_errors();
            (Box::new(replay), errors)
        }
        SourceSpec::Scripted(ticks) => (
            Box::new(Scripted::new(ticks.clone(), index, peers)),
            Vec::new(),
        ),
    })
}

/// The warehouse's dataflow as a worker holds it: its inputs, its probe and worker 0's sink.
struct Built<S> {
    inputs: Inputs,
    errors: InputHandle<Time, (RowError, Time, isize)>,
    probe: ProbeHandle<Time>,
    sink: Option<Rc<RefCell<S>>>,
}

/// Phase two: the warehouse (`dataflows/`) and its exits (`src/sinks/exits.rs`), as the job's
/// shape says.
fn build<S, F>(
    worker: &mut timely::worker::Worker,
    shared: &Shared<F>,
    started: &Started<'_>,
) -> Built<S>
where
    S: ChangeSink + 'static,
    F: Fn() -> S,
{
    let (index, peers) = (worker.index(), worker.peers());
    let shape = started.shape;
    let config = &shared.config;
    let sink = match (index, &shared.make_sink) {
        (0, Some(make)) if shape.changes => Some(Rc::new(RefCell::new(make()))),
        _ => None,
    };
    let mut inputs = Inputs {
        users: InputHandle::new(),
        consumption: InputHandle::new(),
        marks: shape.durable.then(InputHandle::new),
    };
    let mut errors = InputHandle::new();
    let probe = ProbeHandle::new();
    let retention = config.retention;
    let metrics = shared.metrics.clone();
    let monitor = shape.monitor.then(|| started.monitor.clone());
    worker.dataflow::<Time, _, _>(|scope| {
        // The sources' rows, the malformed ones, and a durable job's durability marks.
        let (users, consumption, error_rows, marks) = scope.region_named("sources", |region| {
            let users = region.input_from(&mut inputs.users).leave(scope);
            let consumption = region.input_from(&mut inputs.consumption).leave(scope);
            let errors = region.input_from(&mut errors).leave(scope).as_collection();
            let marks = inputs
                .marks
                .as_mut()
                .map(|marks| region.input_from(marks).leave(scope));
            (users, consumption, errors, marks)
        });
        let counted = metrics.clone();
        let layers = warehouse(
            users,
            consumption,
            retention,
            move |counts: StateCounts| {
                Metrics::add(&counted.expired_rows, counts.expired);
                counted.add_live_consumption(counts.live_delta);
            },
            shape.ods_and_dwd,
        );
        let failure = shared.failure.clone();
        let handoff = shape.changes.then(|| Handoff {
            sink: sink.clone(),
            marks: marks.map(|marks| (marks, peers)),
            on_failure: move |error| failure.record(error),
        });
        let exits = Exits {
            metrics,
            probe: probe.clone(),
            monitor,
            handoff,
        };
        route(layers, error_rows, retention, exits);
    });
    Built {
        inputs,
        errors,
        probe,
        sink,
    }
}

/// Phase three: reports the malformed rows the source found while loading, then drives the
/// dataflow until the source ends or the job stops; returns the inputs, to be closed.
fn feed<S, F>(
    worker: &mut timely::worker::Worker,
    shared: &Shared<F>,
    started: &mut Started<'_>,
    built: Built<S>,
) -> Inputs {
    let Built {
        mut inputs,
        mut errors,
        probe,
        ..
    } = built;
    // Malformed rows are reported once, by the worker that found them, at the first time.
    let found = std::mem::take(&mut started.errors);
    Metrics::add(&shared.metrics.malformed_rows, found.len() as u64);
    for error in found {
        tracing::warn!("malformed row {error}");
        errors.send((error, 0, 1));
    }
    drop(errors);
    let reporter = Reporter {
        metrics: &shared.metrics,
        progress: worker.index() == 0,
        counters: &mut started.counters,
        sealed: started.monitor.corrections.clone(),
        control: &mut started.control,
    };
    let driven = drive(
        worker,
        &mut *started.source,
        &mut inputs,
        started.durable.as_mut(),
        &probe,
        &shared.config,
        reporter,
    );
    if let Err(error) = driven {
        shared.failure.record(error);
    }
    inputs
}

/// Phase four: closes the inputs and the durable log, and steps until every dataflow is done —
/// the control dataflow last, so a failure while draining still reaches the other processes.
fn finish<F>(
    worker: &mut timely::worker::Worker,
    shared: &Shared<F>,
    started: Started<'_>,
    inputs: Inputs,
) {
    let Started {
        mut control,
        mut counters,
        durable,
        ..
    } = started;
    drop(inputs);
    counters.close(&shared.metrics);
    if let Some(durable) = durable {
        if let Err(error) = durable.close() {
            shared.failure.record(error);
        }
    }
    // The control dataflow is the first one built: every other one finishing is the job done.
    while worker.installed_dataflows().len() > 1 {
        worker.step_or_park(None);
        control.poll();
    }
    control.close();
    while worker.has_dataflows() {
        worker.step_or_park(None);
    }
}

/// The message of a panic payload (a `String` or `&str`, as `panic!` makes them).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else if let Some(message) = payload.downcast_ref::<&str>() {
        message.to_string()
    } else {
        "a worker panicked".to_string()
    }
}
