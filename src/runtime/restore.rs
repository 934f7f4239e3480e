//! A worker's part of a durable job ([`crate::durable`]): its input log, opened and recovered
//! before the workers start; the source moved to its logged position and the ticks a restart
//! feeds before it goes on; and, while the job runs, telling the sink what is durable and the
//! compactors how far the sinks have committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::durable::feed::ProgressFeed;
use crate::durable::log::{Recovered, WorkerLog};
use crate::durable::restart::replay_ticks;
use crate::durable::StateError;
use crate::model::Time;
use crate::sources::{Source, Tick};

use super::config::{Durability, RunConfig};
use super::error::RunError;
use super::inputs::Inputs;

/// A worker's log, opened, and what it recovered.
type OpenedLog = (WorkerLog, Recovered);

/// Each local worker's log and what it recovered, opened before the workers start so that a
/// state dir that cannot be used fails the run before any dataflow exists; the workers take
/// theirs out when they start.
pub struct Logs {
    slots: Mutex<Vec<(usize, Option<OpenedLog>)>>,
    /// How far the sinks have committed, as this process last heard: the compactors of the
    /// process fold only up to it.
    heard_committed: Arc<AtomicU64>,
}

impl Logs {
    /// The log of worker `index`, taken out (once).
    fn take(&self, index: usize) -> Option<OpenedLog> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter_mut()
            .find(|(worker, _)| *worker == index)
            .and_then(|(_, slot)| slot.take())
    }
}

/// The global indices of this process's workers.
pub fn local_workers(config: &timely::Config) -> std::ops::Range<usize> {
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

/// Opens (and recovers) the log of every local worker of a durable job. On process 0, a
/// snapshot the sinks have not caught up with is an error.
pub fn open_logs(config: &RunConfig) -> Result<Logs, RunError> {
    let heard_committed = Arc::new(AtomicU64::new(0));
    let mut slots = Vec::new();
    let Some(durability) = &config.durability else {
        return Ok(Logs {
            slots: Mutex::new(slots),
            heard_committed,
        });
    };
    let workers = local_workers(&config.timely);
    let committed = durability.committed();
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
            tracing::warn!(worker = index, "recovery: {reason}");
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
        slots.push((index, Some((log, recovered))));
    }
    let recovered = slots
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
        tracing::info!(
            "recovery: {snapshot_rows} rows from snapshots and {rows} logged rows in {ticks} \
             ticks, durable up to logical time {upto}"
        );
    }
    Ok(Logs {
        slots: Mutex::new(slots),
        heard_committed,
    })
}

/// A worker's part of a durable job.
pub struct Durable<'a> {
    durability: &'a Durability,
    pub log: WorkerLog,
    feed: ProgressFeed,
    heard_committed: Arc<AtomicU64>,
    /// The ticks to feed before the source goes on (a restart's).
    pub replay: Vec<Tick>,
    /// The last durable time marked for the sink.
    marked: Option<Time>,
}

impl<'a> Durable<'a> {
    /// Takes worker `index`'s log, builds the progress feed (every worker, in the same order),
    /// waits for the sinks' progress and moves `source` to the logged position. A position that
    /// does not fit the source is a failure of the state dir; the worker then feeds nothing
    /// from its log.
    pub fn restore(
        worker: &mut timely::worker::Worker,
        durability: &'a Durability,
        logs: &Logs,
        source: &mut dyn Source,
    ) -> Result<(Durable<'a>, Result<(), StateError>), RunError> {
        let index = worker.index();
        let (log, recovered) = logs.take(index).ok_or_else(|| {
            StateError::io(
                &durability.state.worker_dir(index),
                std::io::Error::other("the worker's log was not opened"),
            )
        })?;
        let mut feed = ProgressFeed::build(worker);
        feed.publish(durability.committed());
        let committed = feed.wait(worker);
        logs.heard_committed.fetch_max(committed, Ordering::AcqRel);
        let (replay, resumed) = match resume(source, index, recovered, committed) {
            Ok(replay) => (replay, Ok(())),
            Err(error) => (Vec::new(), Err(error)),
        };
        let durable = Durable {
            durability,
            log,
            feed,
            heard_committed: logs.heard_committed.clone(),
            replay,
            marked: None,
        };
        Ok((durable, resumed))
    }

    /// Tells the sink what the log has made durable since it last heard, and shares the sinks'
    /// progress: worker 0 publishes it, every worker passes on what it heard to the process's
    /// compactors.
    pub fn keep_up(&mut self, inputs: &mut Inputs, worker: usize) {
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

    /// Closes the progress feed and the log (its last checkpoint made durable).
    pub fn close(self) -> Result<(), StateError> {
        let Durable { mut feed, log, .. } = self;
        feed.close();
        log.close()
    }
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
            .map_err(|error| StateError::Corrupt {
                path: format!("the log of worker {worker}").into(),
                reason: format!("its source position does not fit these options: {error}"),
            })?;
    }
    replay_ticks(worker, recovered, committed)
}
