//! Feeding a worker's dataflow: every tick — a restart's replay, then the source's — paced by
//! the clock, until the source ends or the job stops.
//!
//! Pacing: on the simulated clock ticks go in as fast as the dataflow absorbs them, with at most
//! `max_inflight` ticks not yet complete; on the wall clock a tick goes in once the wall clock
//! has reached its end, and a worker that lags merges the ticks already due into one
//! (`src/sources/coalesce.rs`). A tick's end-to-end latency is the time from its input being
//! sealed — on the wall clock, from its earliest row being due, so time spent waiting behind a
//! lagging dataflow counts — to the dataflow's outputs having caught up with it.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use timely::dataflow::ProbeHandle;

use super::clock::Clock;
use super::config::RunConfig;
use super::control::Control;
use super::inputs::Inputs;
use super::restore::Durable;
use crate::durable::StateError;
use crate::metrics::Metrics;
use crate::model::{now_millis, Time};
use crate::sources::coalesce::Coalescing;
use crate::sources::Source;
use crate::ui::corrections::SharedCorrections;
use crate::ui::gather::CountersFeed;

/// Feeds every tick (a restart's replay, then the source's), paced by the clock, until the
/// source ends or the job stops. In a durable job every tick from the source is logged before
/// it is sent, and the log is checkpointed — and the sink told — as checkpoints fall due.
pub fn drive(
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
    // On the wall clock, a worker that lags merges the ticks already due (`src/sources/coalesce.rs`).
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

/// What a worker reports as it goes: latency and the logical time caught up (worker 0), its
/// process's counters for the web UI (a process's first worker, [`CountersFeed`]), and
/// failures, to and from the job's other processes ([`Control`]).
pub struct Reporter<'a> {
    pub metrics: &'a Metrics,
    /// Whether this worker records latency and progress (worker 0 does).
    pub progress: bool,
    pub counters: &'a mut CountersFeed,
    /// On worker 0 with the UI: where seal instants go, to time the corrections.
    pub sealed: Option<SharedCorrections>,
    pub control: &'a mut Control,
}

impl Reporter<'_> {
    /// Notes that the worker sealed its input up to `time` just now.
    fn sealed(&self, time: Time) {
        if let Some(log) = &self.sealed {
            log.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
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
        self.control.poll();
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
