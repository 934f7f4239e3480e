//! Every process's counters, gathered at worker 0 (process 0, where the web UI runs): each
//! process's first worker sends its process's counters once a second through a small dataflow
//! of their own, exchanged to worker 0, which keeps the latest of each.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::input::Handle as InputHandle;
use timely::dataflow::operators::vec::Input as _;

use crate::metrics::{Metrics, MetricsSnapshot};

/// The latest counters of each process, by process index, as worker 0 last heard them.
pub type JobCounters = Arc<Mutex<Vec<Option<MetricsSnapshot>>>>;

/// How often a process sends its counters.
const EVERY: Duration = Duration::from_secs(1);

/// One worker's end of the gathering dataflow.
pub struct CountersFeed {
    /// The process's first worker sends; the others do not.
    input: Option<InputHandle<u64, (usize, MetricsSnapshot)>>,
    process: usize,
    epoch: u64,
    last_sent: Option<Instant>,
}

impl CountersFeed {
    /// Builds the dataflow on `worker` (every worker must, in the same order); `threads` is the
    /// number of workers per process. Worker 0 writes what it hears into `gathered`.
    pub fn build(
        worker: &mut timely::worker::Worker,
        threads: usize,
        gathered: Option<JobCounters>,
    ) -> CountersFeed {
        let index = worker.index();
        let mut input = InputHandle::new();
        worker.dataflow::<u64, _, _>(|scope| {
            let to_worker_zero = Exchange::new(|_: &(usize, MetricsSnapshot)| 0);
            scope.input_from(&mut input).sink(
                to_worker_zero,
                "ui.gather_counters",
                move |(input, _)| {
                    input.for_each(|_, data| {
                        if let Some(gathered) = &gathered {
                            let mut gathered =
                                gathered.lock().unwrap_or_else(PoisonError::into_inner);
                            for (process, counters) in data.drain(..) {
                                if gathered.len() <= process {
                                    gathered.resize(process + 1, None);
                                }
                                gathered[process] = Some(counters);
                            }
                        }
                    });
                },
            );
        });
        CountersFeed {
            input: index.is_multiple_of(threads).then_some(input),
            process: index / threads,
            epoch: 0,
            last_sent: None,
        }
    }

    /// On a process's first worker: sends the process's counters if a second has passed.
    pub fn publish(&mut self, metrics: &Metrics) {
        let Some(input) = &mut self.input else {
            return;
        };
        if self.last_sent.is_some_and(|sent| sent.elapsed() < EVERY) {
            return;
        }
        input.send((self.process, metrics.snapshot()));
        self.epoch += 1;
        input.advance_to(self.epoch);
        input.flush();
        self.last_sent = Some(Instant::now());
    }

    /// Sends the final counters and closes the input, so the dataflow can finish.
    pub fn close(&mut self, metrics: &Metrics) {
        self.last_sent = None;
        self.publish(metrics);
        self.input = None;
    }
}

/// The job's totals: every counter summed over the processes heard from; the logical time
/// caught up and the latencies are the slowest process's.
pub fn totals(processes: &[Option<MetricsSnapshot>]) -> MetricsSnapshot {
    let mut total = MetricsSnapshot::default();
    let mut caught_up: Option<u64> = None;
    for counters in processes.iter().flatten() {
        total.ods_user_rows += counters.ods_user_rows;
        total.ods_consumption_rows += counters.ods_consumption_rows;
        total.dwd_updates += counters.dwd_updates;
        total.dwd_built |= counters.dwd_built;
        total.dws_region_updates += counters.dws_region_updates;
        total.dws_ranking_updates += counters.dws_ranking_updates;
        total.ads_updates += counters.ads_updates;
        total.ods_consumption_live += counters.ods_consumption_live;
        total.late_rows += counters.late_rows;
        total.expired_rows += counters.expired_rows;
        total.corrected_window_rows += counters.corrected_window_rows;
        total.corrections += counters.corrections;
        total.malformed_rows += counters.malformed_rows;
        total.sink_row_changes += counters.sink_row_changes;
        total.sink_transactions += counters.sink_transactions;
        total.sink_busy_micros += counters.sink_busy_micros;
        total.checkpoints += counters.checkpoints;
        total.replayed_rows += counters.replayed_rows;
        total.latency_last_micros = total.latency_last_micros.max(counters.latency_last_micros);
        total.latency_max_micros = total.latency_max_micros.max(counters.latency_max_micros);
        if counters.caught_up_time > 0 {
            caught_up =
                Some(caught_up.map_or(counters.caught_up_time, |c| c.min(counters.caught_up_time)));
        }
    }
    total.caught_up_time = caught_up.unwrap_or(0);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_counters_and_take_the_slowest_process() {
        let one = MetricsSnapshot {
            ods_consumption_rows: 10,
            late_rows: 2,
            caught_up_time: 500,
            latency_max_micros: 7,
            ..MetricsSnapshot::default()
        };
        let two = MetricsSnapshot {
            ods_consumption_rows: 5,
            late_rows: 1,
            caught_up_time: 300,
            latency_max_micros: 9,
            ..MetricsSnapshot::default()
        };
        let total = totals(&[Some(one), None, Some(two)]);
        assert_eq!(total.ods_consumption_rows, 15);
        assert_eq!(total.late_rows, 3);
        assert_eq!(total.caught_up_time, 300);
        assert_eq!(total.latency_max_micros, 9);
    }
}
