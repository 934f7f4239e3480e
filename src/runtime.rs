//! The runtime: starts the timely workers, builds the warehouse in each, feeds it from the
//! source tick by tick, paces it, and hands the changes to a sink on worker 0.
//!
//! Pacing: on the simulated clock ticks go in as fast as the dataflow absorbs them, with at most
//! `max_inflight` ticks not yet complete; on the wall clock a tick goes in once the wall clock
//! has reached its end, and a worker that lags merges the ticks already due into one
//! (`src/coalesce.rs`). A tick's end-to-end latency is the time from its input being sealed —
//! on the wall clock, from its earliest row being due, so time spent waiting behind a lagging
//! dataflow counts — to the dataflow's outputs having caught up with it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use thiserror::Error;
use timely::dataflow::operators::vec::input::Handle as InputHandle;
use timely::dataflow::operators::vec::Input as _;
use timely::dataflow::ProbeHandle;

use differential_dataflow::AsCollection;

use crate::coalesce::Coalescing;
use crate::csv_input::{CsvReplay, ReplayConfig, ReplayError, RowError};
use crate::dataflows::sink::{leaving, sink, ChangeSink, TableRow};
use crate::dataflows::{warehouse, Table};
use crate::durable::feed::ProgressFeed;
use crate::durable::log::{Recovered, WorkerLog};
use crate::durable::restart::replay_ticks;
use crate::durable::{StateDir, StateError};
use crate::generator::{Generator, GeneratorConfig};
use crate::late::count_late_rows;
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::rows::{Consumption, ConsumptionId, Millis, User, UserId};
use crate::sinks::SinkError;
use crate::source::{Scripted, Source, Tick, Time};
use crate::ui::corrections::SharedCorrections;
use crate::ui::dataflow_log::SharedDataflow;
use crate::ui::exits::monitor as watch;
use crate::ui::gather::{CountersFeed, JobCounters};
use crate::ui::live::SharedLive;
use crate::upsert::StateCounts;

/// Which clock paces the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Clock {
    /// Real time: a tick goes in when the wall clock reaches its end.
    Wall,
    /// As fast as the engine goes.
    Simulated,
}

/// Where the rows come from.
#[derive(Clone, Debug)]
pub enum SourceSpec {
    Generator(GeneratorConfig),
    Replay(ReplayConfig),
    /// Ticks given in advance, split among the workers by key.
    Scripted(Vec<crate::source::Tick>),
}

/// Everything a run needs besides its source and sink.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Threads, processes and serialization of timely.
    pub timely: timely::Config,
    /// The tumbling window and the retention horizon.
    pub retention: Retention,
    pub clock: Clock,
    /// On the simulated clock, how many sealed batches may be in the dataflow at once.
    pub max_inflight: usize,
    /// On the simulated clock, how many rows a worker sends before it advances the input
    /// frontier (the rows keep their own logical times); a user row counts as
    /// [`USER_ROW_WEIGHT`] rows.
    pub progress_rows: usize,
    /// Which tables go to the sink: with `false`, only DWS and ADS (and errors).
    pub sink_ods_and_dwd: bool,
    /// Set to stop the sources: every worker stops reading input, and the run ends once the
    /// dataflow has caught up with what was read (Ctrl-C on an unbounded run).
    pub stop: Arc<AtomicBool>,
    /// A durable job: input log, checkpoints, snapshots and restart. `None`: nothing outlives
    /// the process.
    pub durability: Option<Durability>,
    /// Where worker 0 keeps every process's latest counters (the web UI reads them).
    pub gathered: Option<JobCounters>,
    /// The web UI's exits and logging; `None` when the job has no UI. It must be `Some` in
    /// every process of a job whose process 0 has a UI (every process builds the same
    /// dataflow), with the shared views only where the UI runs.
    pub monitor: Option<Monitor>,
}

/// What the web UI reads from inside the dataflow ([`crate::ui`]): worker 0 keeps the live
/// dashboard and the corrections; every local worker's loggers sum up the dataflow's work.
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    pub live: Option<SharedLive>,
    pub corrections: Option<SharedCorrections>,
    pub dataflow: Option<SharedDataflow>,
}

/// How a durable job keeps its state ([`crate::durable`]).
#[derive(Clone, Debug)]
pub struct Durability {
    /// This process's state dir, locked.
    pub state: Arc<StateDir>,
    /// Processing time between checkpoints of each worker's log.
    pub checkpoint_interval: Duration,
    /// Committed log bytes that pile up before a worker folds them into its snapshot.
    pub fold_min_bytes: u64,
    /// On process 0: how far each sink has committed (0: nothing yet), kept current by the
    /// sinks. Empty when the job has no sink.
    pub committed: Vec<Arc<AtomicU64>>,
}

impl Durability {
    /// How far every sink has committed; `Time::MAX` when there is none.
    fn committed(&self) -> Time {
        self.committed
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(Time::MAX)
    }
}

/// The global indices of this process's workers.
fn local_workers(config: &timely::Config) -> std::ops::Range<usize> {
    use timely::CommunicationConfig;
    match &config.communication {
        CommunicationConfig::Thread => 0..1,
        CommunicationConfig::Process(threads) | CommunicationConfig::ProcessBinary(threads) => {
            0..*threads
        }
        CommunicationConfig::Cluster {
            threads, process, ..
        } => process * threads..(process + 1) * threads,
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

/// A failure of a run as a whole (bad rows are not failures: they are counted and reported).
#[derive(Debug, Error)]
pub enum RunError {
    #[error("cannot start the workers: {0}")]
    Start(String),
    #[error("a worker failed: {0}")]
    Worker(String),
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The sink failed; the job stopped reading input and drained.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The state dir could not be read or written; the job stopped reading input and drained.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What a finished run leaves: worker 0's sink (in process 0) and the process's counters.
pub struct RunOutcome<S> {
    pub sink: Option<S>,
    pub elapsed: Duration,
}

/// Runs the warehouse over `source` until the source is exhausted (or forever, for an unbounded
/// one). `make_sink`, if given, makes the sink on worker 0; with `None` the tables' changes go
/// nowhere (benchmarks).
pub fn run<S, F>(
    config: RunConfig,
    source: SourceSpec,
    make_sink: Option<F>,
    metrics: Arc<Metrics>,
) -> Result<RunOutcome<S>, RunError>
where
    S: ChangeSink + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    let started = Instant::now();
    let make_sink = Arc::new(make_sink);
    // Timely reports a worker's panic without its message; the workers record it here.
    let first_panic: Arc<Mutex<Option<String>>> = Arc::default();
    let worker_panic = first_panic.clone();
    // A sink failure, recorded on worker 0; the job then stops reading input.
    let sink_failure: Arc<Mutex<Option<SinkError>>> = Arc::default();
    let worker_sink_failure = sink_failure.clone();
    // A failure of a worker's log; the job then stops reading input.
    let state_failure: Arc<Mutex<Option<StateError>>> = Arc::default();
    let worker_state_failure = state_failure.clone();
    // How far the sinks have committed, as this process last heard: the compactors fold up to it.
    let heard_committed = Arc::new(AtomicU64::new(0));
    let logs = Arc::new(Mutex::new(open_logs(&config, &heard_committed)?));
    let guards = timely::execute(config.timely.clone(), move |worker| {
        let body = AssertUnwindSafe(|| -> Result<Option<S>, String> {
            let index = worker.index();
            let peers = worker.peers();
            // The loggers must be in place before the first dataflow is built.
            let monitor = config.monitor.clone();
            if let Some(shared) = monitor.as_ref().and_then(|m| m.dataflow.clone()) {
                let local = index - local_workers(&config.timely).start;
                crate::ui::dataflow_log::register(worker, shared, local);
            }
            let (mut source, errors): (Box<dyn Source>, Vec<RowError>) = match &source {
                SourceSpec::Generator(generator) => (
                    Box::new(Generator::new(generator.clone(), index, peers)),
                    Vec::new(),
                ),
                SourceSpec::Replay(replay) => {
                    let mut replay =
                        CsvReplay::load(replay.clone(), index, peers).map_err(|e| e.to_string())?;
                    let errors = replay.take_errors();
                    (Box::new(replay), errors)
                }
                SourceSpec::Scripted(ticks) => (
                    Box::new(Scripted::new(ticks.clone(), index, peers)),
                    Vec::new(),
                ),
            };
            let fail = |error: StateError| {
                let mut failure = worker_state_failure
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                failure.get_or_insert(error);
                config.stop.store(true, Ordering::Relaxed);
            };
            // A durable job: the worker's log, and what it holds from earlier runs.
            let mut durable = None;
            if let Some(durability) = &config.durability {
                let (log, recovered) = logs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .iter_mut()
                    .find(|(worker, _)| *worker == index)
                    .and_then(|(_, slot)| slot.take())
                    .ok_or("the worker's log was not opened")?;
                let mut feed = ProgressFeed::build(worker);
                feed.publish(durability.committed());
                let committed = feed.wait(worker);
                heard_committed.fetch_max(committed, Ordering::AcqRel);
                let replay =
                    resume(&mut *source, index, recovered, committed).unwrap_or_else(|error| {
                        fail(error);
                        Vec::new()
                    });
                durable = Some(Durable {
                    durability,
                    log,
                    feed,
                    heard_committed: heard_committed.clone(),
                    replay,
                    marked: None,
                });
            }
            // Every worker builds the gathering dataflow; worker 0 keeps what it hears.
            let threads = local_workers(&config.timely).len();
            let gathered = (index == 0).then(|| config.gathered.clone()).flatten();
            let mut counters = CountersFeed::build(worker, threads, gathered);
            let sink_cell: Option<Rc<RefCell<S>>> = match (index, make_sink.as_ref()) {
                (0, Some(make)) => Some(Rc::new(RefCell::new(make()))),
                _ => None,
            };
            let collect = make_sink.is_some();

            let mut inputs = Inputs {
                users: InputHandle::new(),
                consumption: InputHandle::new(),
                marks: durable.is_some().then(InputHandle::new),
            };
            let mut errors_input: InputHandle<Time, (RowError, Time, isize)> = InputHandle::new();
            let probe = ProbeHandle::new();
            let retention = config.retention;
            let sink_ods_and_dwd = config.sink_ods_and_dwd;
            let worker_metrics = metrics.clone();
            let operator_sink = sink_cell.clone();
            worker.dataflow::<Time, _, _>(|scope| {
                let errors = scope.input_from(&mut errors_input).as_collection();
                let users = scope.input_from(&mut inputs.users);
                let consumption = scope.input_from(&mut inputs.consumption);
                let marks = inputs.marks.as_mut().map(|marks| scope.input_from(marks));
                let m = &worker_metrics;
                let layers = warehouse(
                    users,
                    consumption,
                    retention,
                    {
                        let metrics = worker_metrics.clone();
                        move |counts: StateCounts| {
                            Metrics::add(&metrics.expired_rows, counts.expired);
                            metrics.add_live_consumption(counts.live_delta);
                        }
                    },
                    sink_ods_and_dwd,
                );
                let arriving_dates = layers.ods.facts.clone().map(|f| f.date);
                count_late_rows(arriving_dates, worker_metrics.clone());
                let users = layers.ods.users.clone();
                let members = layers.dws.members.clone();
                let tables = leaving(layers, retention);
                let region_stats = count_updates(tables.region_stats, m, |m| &m.dws_region_updates);
                let region_stats = count_corrections(region_stats, m).probe_with(&probe);
                let rankings = count_updates(tables.rankings, m, |m| &m.dws_ranking_updates)
                    .probe_with(&probe);
                let dashboards =
                    count_updates(tables.dashboards, m, |m| &m.ads_updates).probe_with(&probe);
                if let Some(monitor) = &monitor {
                    watch(
                        users,
                        members,
                        rankings.clone(),
                        dashboards.clone(),
                        retention.window,
                        monitor.live.clone().filter(|_| index == 0),
                        monitor.corrections.clone().filter(|_| index == 0),
                        worker_metrics.clone(),
                    );
                }
                m.dwd_built
                    .store(tables.ods_and_dwd.is_some(), Ordering::Relaxed);
                let ods_and_dwd = tables.ods_and_dwd.map(|mut tables| {
                    tables.details =
                        count_updates(tables.details, m, |m| &m.dwd_updates).probe_with(&probe);
                    tables
                });
                if collect {
                    let mut rows: Vec<Table<'_, TableRow>> = vec![
                        errors.map(TableRow::Error),
                        region_stats.map(TableRow::RegionStats),
                        rankings.map(TableRow::Ranking),
                        dashboards.map(TableRow::Dashboard),
                    ];
                    if let Some(tables) = ods_and_dwd {
                        rows.push(tables.users.map(TableRow::User));
                        rows.push(tables.consumption.map(TableRow::Consumption));
                        rows.push(tables.details.map(TableRow::Detail));
                    }
                    let rows = differential_dataflow::collection::concatenate(scope, rows);
                    let failure = worker_sink_failure.clone();
                    let stop = config.stop.clone();
                    sink(
                        rows,
                        marks.map(|marks| (marks, peers)),
                        operator_sink,
                        move |error| {
                            *failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
                            stop.store(true, Ordering::Relaxed);
                        },
                    );
                }
            });

            // Malformed rows are reported once, by the worker that found them, at the first time.
            Metrics::add(&metrics.malformed_rows, errors.len() as u64);
            for error in errors {
                eprintln!("malformed row {error}");
                errors_input.send((error, 0, 1));
            }
            drop(errors_input);
            let failed = drive(
                worker,
                &mut *source,
                &mut inputs,
                durable.as_mut(),
                &probe,
                &config,
                Reporter {
                    metrics: &metrics,
                    progress: index == 0,
                    counters: &mut counters,
                    sealed: monitor
                        .as_ref()
                        .and_then(|m| m.corrections.clone())
                        .filter(|_| index == 0),
                },
            );
            if let Err(error) = failed {
                fail(error);
            }
            drop(inputs);
            counters.close(&metrics);
            if let Some(durable) = durable {
                let Durable { mut feed, log, .. } = durable;
                feed.close();
                if let Err(error) = log.close() {
                    fail(error);
                }
            }
            while worker.has_dataflows() {
                worker.step_or_park(None);
            }
            match sink_cell.map(Rc::try_unwrap) {
                None => Ok(None),
                Some(Ok(cell)) => Ok(Some(cell.into_inner())),
                Some(Err(_)) => Err("the sink is still held by a finished dataflow".to_string()),
            }
        });
        std::panic::catch_unwind(body).unwrap_or_else(|payload| {
            let mut first = worker_panic.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| panic_message(payload.as_ref()));
            drop(first);
            std::panic::resume_unwind(payload)
        })
    })
    .map_err(RunError::Start)?;
    let mut sink = None;
    for result in guards.join() {
        match result {
            Ok(Ok(Some(worker_sink))) => sink = Some(worker_sink),
            Ok(Ok(None)) => {}
            Ok(Err(error)) => return Err(RunError::Worker(error)),
            Err(error) => {
                let recorded = first_panic.lock().unwrap_or_else(|e| e.into_inner()).take();
                return Err(RunError::Worker(recorded.unwrap_or(error)));
            }
        }
    }
    if let Some(error) = sink_failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(RunError::Sink(error));
    }
    if let Some(error) = state_failure
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        return Err(RunError::State(error));
    }
    Ok(RunOutcome {
        sink,
        elapsed: started.elapsed(),
    })
}

/// Each local worker's log, opened (and recovered) before the workers start, so a state dir
/// that cannot be used fails the run before any dataflow exists. On process 0, a snapshot the
/// sinks have not caught up with fails it too.
#[allow(clippy::type_complexity)]
fn open_logs(
    config: &RunConfig,
    heard_committed: &Arc<AtomicU64>,
) -> Result<Vec<(usize, Option<(WorkerLog, Recovered)>)>, RunError> {
    let Some(durability) = &config.durability else {
        return Ok(Vec::new());
    };
    let workers = local_workers(&config.timely);
    let committed = durability.committed();
    let mut logs = Vec::new();
    for index in workers.clone() {
        let (log, recovered) = WorkerLog::open(
            &durability.state.worker_dir(index),
            durability.checkpoint_interval,
            durability.fold_min_bytes,
            config.retention,
            // The compactors of the process all follow what worker 0 last published.
            heard_committed.clone(),
        )?;
        if let Some(reason) = &recovered.dropped_tail {
            eprintln!("recovery: {reason}");
        }
        if workers.start == 0 {
            if let Some(snapshot) = &recovered.snapshot {
                if snapshot.time > committed {
                    return Err(StateError::SinkBehindSnapshot {
                        worker: index,
                        snapshot: snapshot.time,
                        committed,
                    }
                    .into());
                }
            }
        }
        logs.push((index, Some((log, recovered))));
    }
    let recovered = logs
        .iter()
        .filter_map(|(_, slot)| slot.as_ref().map(|(_, r)| r));
    let (mut snapshot_rows, mut ticks, mut rows, mut upto) = (0, 0, 0, None);
    for recovered in recovered {
        if let Some(snapshot) = &recovered.snapshot {
            snapshot_rows += snapshot.users.len() + snapshot.consumption.len();
        }
        ticks += recovered.ticks.len();
        rows += recovered.ticks.iter().map(Tick::len).sum::<usize>();
        upto = upto.max(recovered.checkpoint.as_ref().map(|(time, _)| *time));
    }
    if let Some(upto) = upto {
        eprintln!(
            "recovery: {snapshot_rows} rows from snapshots and {rows} logged rows in {ticks} ticks, \
             durable up to logical time {upto}"
        );
    }
    Ok(logs)
}

/// Moves a restarted worker's source to its logged position and returns the ticks to feed
/// before it goes on.
fn resume(
    source: &mut dyn Source,
    worker: usize,
    recovered: Recovered,
    committed: Time,
) -> Result<Vec<Tick>, StateError> {
    if let Some((_, position)) = &recovered.checkpoint {
        source
            .resume(position.clone())
            .map_err(|reason| StateError::Corrupt {
                path: format!("the log of worker {worker}").into(),
                reason: format!("its source position does not fit these options: {reason}"),
            })?;
    }
    replay_ticks(worker, recovered, committed)
}

/// The inputs a worker feeds: the two source tables and, in a durable job, its durability
/// marks for the sink.
struct Inputs {
    users: InputHandle<Time, (UserId, Option<User>, Time)>,
    consumption: InputHandle<Time, (ConsumptionId, Option<Consumption>, Time)>,
    marks: Option<InputHandle<Time, (usize, Time)>>,
}

impl Inputs {
    fn advance_to(&mut self, time: Time) {
        self.users.advance_to(time);
        self.consumption.advance_to(time);
        if let Some(marks) = &mut self.marks {
            marks.advance_to(time);
        }
    }

    fn flush(&mut self) {
        self.users.flush();
        self.consumption.flush();
        if let Some(marks) = &mut self.marks {
            marks.flush();
        }
    }

    /// Tells the sink that this worker's input up to `time` is durable.
    fn mark_durable(&mut self, worker: usize, time: Time) {
        if let Some(marks) = &mut self.marks {
            marks.send((worker, time));
            marks.flush();
        }
    }
}

/// A worker's part of a durable job.
struct Durable<'a> {
    durability: &'a Durability,
    log: WorkerLog,
    feed: ProgressFeed,
    heard_committed: Arc<AtomicU64>,
    /// The ticks to feed before the source goes on (a restart's).
    replay: Vec<Tick>,
    /// The last durable time marked for the sink.
    marked: Option<Time>,
}

impl Durable<'_> {
    /// Tells the sink what the log has made durable since it last heard, and shares the sinks'
    /// progress: worker 0 publishes it, every worker passes on what it heard to the process's
    /// compactors.
    fn keep_up(&mut self, inputs: &mut Inputs, worker: usize) {
        let durable = self.log.durable();
        if durable > self.marked {
            if let Some(time) = durable {
                inputs.mark_durable(worker, time);
            }
            self.marked = durable;
        }
        self.feed.publish(self.durability.committed());
        if let Some(committed) = self.feed.latest() {
            self.heard_committed.fetch_max(committed, Ordering::AcqRel);
        }
    }
}

/// Feeds every tick (a restart's replay, then the source's), paced by the clock, until the
/// source ends or the job stops. In a durable job every tick from the source is logged before
/// it is sent, and the log is checkpointed — and the sink told — as checkpoints fall due.
fn drive(
    worker: &mut timely::worker::Worker,
    source: &mut dyn Source,
    inputs: &mut Inputs,
    mut durable: Option<&mut Durable<'_>>,
    probe: &ProbeHandle<Time>,
    config: &RunConfig,
    mut reporter: Reporter<'_>,
) -> Result<(), StateError> {
    let metrics = reporter.metrics;
    let index = worker.index();
    // Batches sealed but not yet complete: the last time of each, and the instant its latency
    // counts from (when it was sealed; on the wall clock, when its earliest row was due).
    let mut inflight: VecDeque<(Time, Instant)> = VecDeque::new();

    // Rows sent since the input frontier last advanced, and the last time they carry.
    let mut unsealed_rows = 0;
    let mut unsealed_time: Option<Time> = None;
    let mut last_sealed: Option<Time> = None;
    let replay = durable
        .as_mut()
        .map(|durable| std::mem::take(&mut durable.replay))
        .unwrap_or_default();
    // What a restart replays came from the log: it is durable already.
    if let Some(durable) = durable.as_mut() {
        durable.keep_up(inputs, index);
    }
    let mut replay = replay.into_iter();
    // On the wall clock, a worker that lags merges the ticks already due (`src/coalesce.rs`).
    let mut source = Coalescing::new(source, MAX_MERGED_ROWS);
    let wall_clock = || (config.clock == Clock::Wall).then(|| now_millis() as Time);
    // On the wall clock a tick's rows enter when it is due, not when a lagging worker gets to
    // them: its latency counts from then (but not from before the job started).
    let started = (Instant::now(), now_millis() as Time);
    let entered_at = |due: Time| {
        let since_start = Duration::from_millis(due.saturating_sub(started.1));
        (started.0 + since_start).min(Instant::now())
    };
    // The earliest instant a row sent since the last seal entered.
    let mut unsealed_entered: Option<Instant> = None;
    loop {
        if config.stop.load(Ordering::Relaxed) {
            break;
        }
        let (tick, from_source, first_due) = match replay.next() {
            Some(tick) => (tick, false, None),
            None => match source.next_tick(wall_clock()) {
                Some((tick, first)) => (tick, true, Some(first)),
                None => break,
            },
        };
        if let (Some(durable), true, false) = (durable.as_mut(), from_source, tick.is_empty()) {
            durable.log.append(&tick)?;
        }
        if !from_source {
            Metrics::add(&metrics.replayed_rows, tick.len() as u64);
        }
        if config.clock == Clock::Wall {
            wait_for_wall_clock(worker, tick.time, probe, &mut inflight, &mut reporter);
            let entered = first_due.map_or_else(Instant::now, entered_at);
            unsealed_entered = Some(unsealed_entered.map_or(entered, |e| e.min(entered)));
        }
        if unsealed_time.is_none() {
            inputs.advance_to(tick.time);
        }
        Metrics::add(&metrics.ods_user_rows, tick.users.len() as u64);
        Metrics::add(&metrics.ods_consumption_rows, tick.consumption.len() as u64);
        unsealed_rows += tick.consumption.len() + USER_ROW_WEIGHT * tick.users.len();
        unsealed_time = Some(tick.time);
        for (key, row) in tick.users {
            inputs.users.send((key, row, tick.time));
        }
        for (key, row) in tick.consumption {
            inputs.consumption.send((key, row, tick.time));
        }
        // Every row carries its own tick's time; the frontier advances once per batch of rows
        // on the simulated clock and while catching up (each tick on the wall clock once it is
        // live), which only changes how much work the dataflow sees at once, never the times
        // of the results.
        let live =
            config.clock == Clock::Wall && tick.time + CATCHING_UP_MILLIS >= now_millis() as Time;
        if live || unsealed_rows >= config.progress_rows {
            seal(inputs, tick.time, unsealed_entered.take(), &mut inflight);
            reporter.sealed(tick.time);
            last_sealed = Some(tick.time);
            unsealed_rows = 0;
            unsealed_time = None;
            if let Some(durable) = durable.as_mut() {
                if from_source && durable.log.checkpoint_due(tick.time) {
                    durable.log.checkpoint(tick.time, source.position())?;
                    Metrics::add(&metrics.checkpoints, 1);
                }
                durable.keep_up(inputs, index);
            }
            worker.step();
            reporter.retire(probe, &mut inflight);
            // Waiting for the dataflow (or a slow sink on worker 0) parks instead of spinning,
            // which would take a core from the workers that have the work. With the batch just
            // sealed at most `max_inflight` are incomplete; the next rows are read once fewer
            // are (so with 1, each batch goes in only after the one before it is complete).
            while inflight.len() >= config.max_inflight.max(1) {
                worker.step_or_park(None);
                reporter.retire(probe, &mut inflight);
                if let Some(durable) = durable.as_mut() {
                    durable.keep_up(inputs, index);
                }
            }
        }
    }
    if let Some(time) = unsealed_time {
        seal(inputs, time, unsealed_entered.take(), &mut inflight);
        reporter.sealed(time);
        last_sealed = Some(time);
    }
    if let Some(durable) = durable.as_mut() {
        // Everything read is made durable, and the sink may commit all this worker sent.
        if let Some(time) = last_sealed.filter(|&time| durable.log.checkpointed() < Some(time)) {
            durable.log.checkpoint(time, source.position())?;
            Metrics::add(&metrics.checkpoints, 1);
        }
        durable.log.wait_durable()?;
        inputs.mark_durable(index, Time::MAX);
    }
    while !inflight.is_empty() && !probe.done() {
        worker.step_or_park(None);
        reporter.retire(probe, &mut inflight);
        if let Some(durable) = durable.as_mut() {
            durable.keep_up(inputs, index);
        }
    }
    Ok(())
}

/// On the wall clock, how many rows of due ticks a lagging worker merges into one logical time:
/// two seconds of one worker's input at 100k rows/s on 2 workers. At that rate, with 10 ms
/// ticks, merging up to 10,000 rows took 25 s for 10 s of input and up to 100,000 took 15 s;
/// without merging it took 72 s (2026-12-02, `docs/benchmarks.md`).
const MAX_MERGED_ROWS: usize = 100_000;

/// On the wall clock, a tick more than this far behind the clock is caught up with in batches,
/// as on the simulated clock (a restarted job's backlog), instead of one logical time each.
const CATCHING_UP_MILLIS: Time = 1_000;

/// How many consumption rows a user row weighs when a worker decides how much input to send
/// before advancing the frontier. A user row that changes moves one DWS partial in every live
/// window of that user (about a hundred at the default rates and a 3-hour horizon), and the
/// partitions re-rank for each, so
/// its work and the updates it puts in flight are those of a hundred rows. Weighing it so keeps
/// the work in flight — and with it the peak memory — bounded when user rows are frequent,
/// while input without user updates still goes in large batches. It changes only how much the
/// dataflow sees at once, never a logical time or a result.
pub const USER_ROW_WEIGHT: usize = 100;

/// Advances the inputs past `time`, so the dataflow can complete every time up to it. Its
/// latency counts from `entered` (on the wall clock, when its earliest row was due), or now.
fn seal(
    inputs: &mut Inputs,
    time: Time,
    entered: Option<Instant>,
    inflight: &mut VecDeque<(Time, Instant)>,
) {
    inputs.advance_to(time + 1);
    inputs.flush();
    inflight.push_back((time, entered.unwrap_or_else(Instant::now)));
}

/// What a worker reports as it goes: latency and the logical time caught up (worker 0), and its
/// process's counters for the web UI (a process's first worker, [`CountersFeed`]).
struct Reporter<'a> {
    metrics: &'a Metrics,
    progress: bool,
    counters: &'a mut CountersFeed,
    /// On worker 0 with the UI: where seal instants go, to time the corrections.
    sealed: Option<SharedCorrections>,
}

impl Reporter<'_> {
    /// Notes that the worker sealed its input up to `time` just now.
    fn sealed(&self, time: Time) {
        if let Some(log) = &self.sealed {
            log.lock()
                .unwrap_or_else(|e| e.into_inner())
                .sealed(time, Instant::now());
        }
    }

    /// Records latency and progress for every tick the probe has passed, and sends the
    /// process's counters when they are due.
    fn retire(&mut self, probe: &ProbeHandle<Time>, inflight: &mut VecDeque<(Time, Instant)>) {
        while let Some(&(time, sealed)) = inflight.front() {
            if probe.less_equal(&time) {
                break;
            }
            inflight.pop_front();
            if self.progress {
                self.metrics.record_tick_latency(time, sealed.elapsed());
                self.metrics
                    .caught_up_time
                    .store(time, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.counters.publish(self.metrics);
    }
}

/// Steps the worker until the wall clock reaches `time` (epoch milliseconds).
fn wait_for_wall_clock(
    worker: &mut timely::worker::Worker,
    time: Time,
    probe: &ProbeHandle<Time>,
    inflight: &mut VecDeque<(Time, Instant)>,
    reporter: &mut Reporter<'_>,
) {
    loop {
        let now = now_millis() as Time;
        if now >= time {
            return;
        }
        let wait = Duration::from_millis((time - now).min(50));
        worker.step_or_park(Some(wait));
        reporter.retire(probe, inflight);
    }
}

/// The wall clock in epoch milliseconds.
pub fn now_millis() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// Counts every update of `table` into one of the counters.
fn count_updates<'scope, D: differential_dataflow::Data>(
    table: Table<'scope, D>,
    metrics: &Arc<Metrics>,
    counter: fn(&Metrics) -> &std::sync::atomic::AtomicU64,
) -> Table<'scope, D> {
    let metrics = metrics.clone();
    table.inspect_batch(move |_, updates| {
        let count: isize = updates.iter().map(|(_, _, diff)| diff.abs()).sum();
        Metrics::add(counter(&metrics), count as u64);
    })
}

/// Counts retractions of region window rows: versions corrected after they were emitted.
fn count_corrections<'scope, D: differential_dataflow::Data>(
    table: Table<'scope, D>,
    metrics: &Arc<Metrics>,
) -> Table<'scope, D> {
    let metrics = metrics.clone();
    table.inspect_batch(move |_, updates| {
        let retracted: isize = updates
            .iter()
            .filter(|(_, _, diff)| *diff < 0)
            .map(|(_, _, diff)| -diff)
            .sum();
        Metrics::add(&metrics.corrected_window_rows, retracted as u64);
    })
}
