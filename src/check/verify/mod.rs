//! `gridflow verify`: runs the dataflow with no sink and holds its tables, at every logical time
//! (or every k-th, and always the last), equal to the batch twin's recomputation over the input
//! seen so far — and, with `--against`, to PostgreSQL's (`docs/verify.md`).
//!
//! The dataflow's change sets leave worker 0 through a channel to a checker thread, which
//! replays the same source as one worker (a source's rows and times do not depend on the worker
//! count) into [`RetainedJob`], the batch twin. Both sides feed a [`Balance`]: gridflow adds
//! each change set, the twin its tables' change between two checks, so a check costs what the
//! twin recomputes (its live state), not what the tables hold.

pub mod against;
pub mod balance;
pub mod case_dir;
pub mod random;
pub mod report;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use thiserror::Error;

use crate::check::oracle::OracleError;
use crate::check::twin::RetainedJob;
use crate::metrics::Metrics;
use crate::model::TableRow;
use crate::model::Time;
use crate::model::Warehouse;
use crate::operators::retention::Retention;
use crate::runtime::{run, RunConfig, RunError, SourceSpec};
use crate::sinks::materialized::ReusedKeys;
use crate::sinks::{ChangeSet, ChangeSink};
use crate::sources::csv_replay::{CsvReplay, ReplayError};
use crate::sources::generator::Generator;
use crate::sources::scripted::Scripted;
use crate::sources::Source;

use against::Postgres;
use balance::Balance;
use report::{differing_rows, Difference, Oracle};

/// How many change sets may wait for the checker before worker 0 waits for it.
const CHANNEL_DEPTH: usize = 16;

/// What to compare, and when.
#[derive(Clone, Debug)]
pub struct Options {
    /// The twin compares every `every`-th logical time of the input, and the last (1: every
    /// time).
    pub every: u64,
    /// Also hold the tables equal to PostgreSQL's, at the last time and at every
    /// `postgres_every`-th time the twin compares (`None`: only at the last).
    pub against: Option<Against>,
    pub postgres_every: Option<u64>,
    /// Draw a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
}

/// The PostgreSQL oracle: where it runs.
#[derive(Clone, Debug)]
pub struct Against {
    pub url: String,
    /// A schema verify owns: created if absent, dropped after a verification that passed.
    pub schema: String,
}

/// What a verification did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Logical times of the input.
    pub times: u64,
    /// Times the twin compared.
    pub checked: u64,
    /// Rows held equal, summed over the checked times.
    pub rows_compared: u64,
    /// Times PostgreSQL compared, the rows it compared, and how long it took loading the ODS
    /// state and recomputing (and reading back) the layers.
    pub postgres_checks: u64,
    pub postgres_rows: u64,
    pub postgres_load: Duration,
    pub postgres_recompute: Duration,
    /// Malformed input rows (reported by the run; no oracle sees them).
    pub malformed: u64,
    pub elapsed: Duration,
}

impl Summary {
    /// The one line a verification that passed prints.
    pub fn line(&self) -> String {
        let mut line = format!(
            "verified: {} of {} logical times checked against the twin, {} rows compared, in {:.3} s",
            self.checked,
            self.times,
            self.rows_compared,
            self.elapsed.as_secs_f64()
        );
        if self.postgres_checks > 0 {
            line.push_str(&format!(
                "; {} against PostgreSQL, {} rows ({:.3} s loading, {:.3} s recomputing)",
                self.postgres_checks,
                self.postgres_rows,
                self.postgres_load.as_secs_f64(),
                self.postgres_recompute.as_secs_f64()
            ));
        }
        if self.malformed > 0 {
            line.push_str(&format!(
                "; {} malformed input rows skipped",
                self.malformed
            ));
        }
        line
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Every compared time was equal.
    Equal(Summary),
    /// The first difference found (the run stopped there).
    Differs(Box<Difference>, Summary),
    /// This process of a multi-process run has no worker 0: process 0 compares.
    NotProcessZero,
}

/// A failure to verify (not a difference).
#[derive(Debug, Error)]
pub enum VerifyError {
    #[error("verify needs bounded input: give --consumptions N or --input DIR")]
    Unbounded,
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Oracle(#[from] OracleError),
    #[error("the checker thread failed: {0}")]
    Checker(String),
}

/// Runs the dataflow of `config` over `source` and compares its tables as `options` say.
pub fn verify(
    mut config: RunConfig,
    source: SourceSpec,
    options: &Options,
) -> Result<Verdict, VerifyError> {
    if let SourceSpec::Generator(generator) = &source {
        if generator.consumptions.is_none() {
            return Err(VerifyError::Unbounded);
        }
    }
    config.sink_ods_and_dwd = true;
    let process_zero = match &config.timely.communication {
        timely::CommunicationConfig::Cluster { process, .. } => *process == 0,
        _ => true,
    };
    let metrics = Arc::new(Metrics::default());
    if !process_zero {
        run(config, source, Some(|| Forward { sender: None }), metrics)?;
        return Ok(Verdict::NotProcessZero);
    }
    let started = Instant::now();
    let (sender, receiver) = sync_channel(CHANNEL_DEPTH);
    let checker = {
        let (source, options, stop) = (source.clone(), options.clone(), config.stop.clone());
        let retention = config.retention;
        std::thread::Builder::new()
            .name("verify-checker".into())
            .spawn(move || {
                let twin = RetainedJob::new(retention.window, retention.horizon);
                Checker::new(twin, receiver, &options, stop)?.check(&source)
            })
            .map_err(|e| VerifyError::Checker(e.to_string()))?
    };
    let outcome = run(
        config,
        source,
        Some(move || Forward {
            sender: Some(sender.clone()),
        }),
        metrics.clone(),
    );
    // The run is over: its sinks (and with them the channel) are gone once `outcome` is.
    let outcome = outcome.map(|outcome| outcome.elapsed);
    let verdict = checker
        .join()
        .map_err(|_| VerifyError::Checker("it panicked".into()))?;
    outcome?;
    let verdict = verdict?;
    let malformed = metrics.snapshot().malformed_rows;
    Ok(match verdict {
        Verdict::Equal(mut summary) => {
            summary.malformed = malformed;
            summary.elapsed = started.elapsed();
            Verdict::Equal(summary)
        }
        Verdict::Differs(difference, mut summary) => {
            summary.malformed = malformed;
            summary.elapsed = started.elapsed();
            Verdict::Differs(difference, summary)
        }
        other => other,
    })
}

/// Worker 0's sink: hands each change set to the checker (and drops it once the checker has
/// stopped listening, after a difference).
struct Forward {
    sender: Option<SyncSender<ChangeSet>>,
}

impl ChangeSink for Forward {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        if let Some(sender) = &self.sender {
            if sender.send((time, changes)).is_err() {
                self.sender = None;
            }
        }
    }
}

/// The source the twin reads: the run's, as one worker of one, and how many logical times it
/// has (when that is known in advance).
fn twin_source(spec: &SourceSpec) -> Result<(Box<dyn Source>, Option<u64>), VerifyError> {
    Ok(match spec {
        SourceSpec::Generator(config) => {
            let times = config.consumptions.map(|n| {
                let last = (n.saturating_sub(1) as f64 * 1000.0 / config.consumption_rate).floor();
                last as u64 / config.tick.max(1) as u64 + 1
            });
            (Box::new(Generator::new(config.clone(), 0, 1)), times)
        }
        SourceSpec::Replay(config) => {
            let replay = CsvReplay::load(config.clone(), 0, 1)?;
            let times = replay.batches() as u64;
            (Box::new(replay), Some(times))
        }
        SourceSpec::Scripted(ticks) => (
            Box::new(Scripted::new(ticks.clone(), 0, 1)),
            Some(ticks.len() as u64),
        ),
    })
}

/// The change sets of the run, applied to the balance in time order up to a time — made the
/// exact differences of the keyed tables outside the dataflow ([`ReusedKeys`]) as the export
/// makes them.
struct Engine {
    receiver: Receiver<ChangeSet>,
    keyed: ReusedKeys,
    /// The next change set, received but later than the last time asked for.
    pending: Option<ChangeSet>,
    /// The run has ended: no more change sets.
    done: bool,
}

impl Engine {
    /// Applies every change set at or before `time`; `wait`: until the run has passed `time`
    /// (a later change set arrived, or the run ended), else only those already received.
    fn apply_through(&mut self, time: Time, wait: bool, balance: &mut Balance) {
        loop {
            if self.pending.is_none() {
                if self.done {
                    return;
                }
                let next = if wait {
                    self.receiver.recv().ok()
                } else {
                    match self.receiver.try_recv() {
                        Ok(set) => Some(set),
                        Err(TryRecvError::Empty) => return,
                        Err(TryRecvError::Disconnected) => None,
                    }
                };
                match next {
                    Some(set) => self.pending = Some(set),
                    None => {
                        self.done = true;
                        return;
                    }
                }
            }
            match self.pending.take() {
                Some((at, mut changes)) if at <= time => {
                    // An unheld retraction shows in the balance as it is; a live row replaced
                    // without its retraction is kept on gridflow's side, as a multiset would.
                    let wrong = self.keyed.complete(at, &mut changes);
                    for row in wrong.live_replaced {
                        balance.add(row, 1);
                    }
                    for (row, diff) in changes {
                        if !matches!(row, TableRow::Error(_)) {
                            balance.add(row, diff);
                        }
                    }
                }
                later => {
                    self.pending = later;
                    return;
                }
            }
        }
    }
}

/// The checker: the twin, the balance, and the schedule of comparisons.
struct Checker {
    twin: RetainedJob,
    engine: Engine,
    balance: Balance,
    every: u64,
    postgres_every: Option<u64>,
    postgres: Option<Postgres>,
    progress: bool,
    stop: Arc<AtomicBool>,
}

impl Checker {
    fn new(
        twin: RetainedJob,
        receiver: Receiver<ChangeSet>,
        options: &Options,
        stop: Arc<AtomicBool>,
    ) -> Result<Checker, VerifyError> {
        let retention = Retention {
            window: twin.window(),
            horizon: twin.horizon(),
        };
        let postgres = options
            .against
            .as_ref()
            .map(|against| Postgres::open(&against.url, &against.schema))
            .transpose()?;
        Ok(Checker {
            twin,
            engine: Engine {
                receiver,
                keyed: ReusedKeys::under(Some(retention)),
                pending: None,
                done: false,
            },
            balance: Balance::default(),
            every: options.every.max(1),
            postgres_every: options.postgres_every,
            postgres,
            progress: options.progress,
            stop,
        })
    }

    /// Replays `spec` into the twin and compares at the scheduled times.
    fn check(mut self, spec: &SourceSpec) -> Result<Verdict, VerifyError> {
        let result = self.compare_all(spec);
        if result.is_err() || matches!(result, Ok(Verdict::Differs(..))) {
            // The run stops reading input and drains; the sink stops listening.
            self.stop.store(true, Ordering::Relaxed);
        }
        if let (Some(postgres), Ok(Verdict::Equal(_))) = (self.postgres.take(), &result) {
            postgres.finish()?;
        }
        result
    }

    fn compare_all(&mut self, spec: &SourceSpec) -> Result<Verdict, VerifyError> {
        let (mut source, times) = twin_source(spec)?;
        let bar = if self.progress {
            let bar = ProgressBar::new(times.unwrap_or(0));
            bar.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} logical times {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::hidden()
        };
        let mut summary = Summary::default();
        let mut previous = Warehouse::default();
        let mut next = source.next_tick();
        let mut index = 0u64;
        let mut last_time = None;
        while let Some(tick) = next.take() {
            next = source.next_tick();
            let last = next.is_none();
            self.twin.advance(tick.time, &tick.users, &tick.consumption);
            last_time = Some(tick.time);
            summary.times += 1;
            let due = last || (index + 1).is_multiple_of(self.every);
            self.engine.apply_through(tick.time, due, &mut self.balance);
            if due {
                let mut live = self.twin.live_tables();
                sort_tables(&mut live);
                self.balance.oracle_changed(&previous, &live);
                self.balance.oracle_frozen(self.twin.take_frozen_changes());
                summary.checked += 1;
                summary.rows_compared += table_rows(&live) + table_rows(self.twin.frozen());
                if !self.balance.is_empty() {
                    return Ok(self.differs(tick.time, index, summary, &bar));
                }
                let postgres_due = last
                    || self
                        .postgres_every
                        .is_some_and(|e| (index + 1).is_multiple_of(e.max(1)));
                if let (Some(postgres), true) = (self.postgres.as_mut(), postgres_due) {
                    let compared = postgres.compare(&self.twin, &live)?;
                    summary.postgres_checks += 1;
                    summary.postgres_rows += compared.rows;
                    summary.postgres_load += compared.load;
                    summary.postgres_recompute += compared.recompute;
                    if !compared.differences.is_empty() {
                        bar.finish_and_clear();
                        let difference = Difference {
                            time: tick.time,
                            tick: index,
                            oracle: Oracle::Postgres,
                            rows: compared.differences,
                        };
                        return Ok(Verdict::Differs(Box::new(difference), summary));
                    }
                }
                previous = live;
                bar.set_message(format!("({} checked equal)", summary.checked));
            }
            bar.inc(1);
            index += 1;
        }
        // Nothing may change after the input's last time.
        if let Some(time) = last_time {
            self.engine
                .apply_through(Time::MAX, true, &mut self.balance);
            if !self.balance.is_empty() {
                return Ok(self.differs(time, index.saturating_sub(1), summary, &bar));
            }
        }
        bar.finish_and_clear();
        Ok(Verdict::Equal(summary))
    }

    fn differs(&self, time: Time, tick: u64, summary: Summary, bar: &ProgressBar) -> Verdict {
        bar.finish_and_clear();
        let difference = Difference {
            time,
            tick,
            oracle: Oracle::Twin,
            rows: differing_rows(self.balance.differences()),
        };
        Verdict::Differs(Box::new(difference), summary)
    }
}

/// Sorts every table (recomputed tables come sorted: then this costs a pass).
fn sort_tables(w: &mut Warehouse) {
    w.users.sort();
    w.consumption.sort();
    w.details.sort();
    w.region_stats.sort();
    w.rankings.sort();
    w.dashboards.sort();
}

/// The rows of all six tables.
fn table_rows(w: &Warehouse) -> u64 {
    (w.users.len()
        + w.consumption.len()
        + w.details.len()
        + w.region_stats.len()
        + w.rankings.len()
        + w.dashboards.len()) as u64
}
