//! The dataflow's graph and per-operator work (`/api/dataflow`), read from timely's and
//! differential's own logging streams and aggregated where they are logged.
//!
//! Each worker of the UI's process registers two loggers before it builds its dataflows:
//! timely's (`"timely"`: operators, channels, schedules, messages) and differential's
//! (`"differential/arrange"`: batches made, merged and dropped). The loggers fold every event
//! into per-operator and per-channel sums on the worker itself — no event is kept — and publish
//! a copy of the sums once a second to a slot the web UI reads, which merges the workers.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use differential_dataflow::logging::{DifferentialEvent, DifferentialEventBuilder};
use serde::Serialize;
use timely::logging::{StartStop, TimelyEvent, TimelyEventBuilder};

/// Every local worker's latest sums, by local worker index.
pub type SharedDataflow = Arc<Mutex<Vec<Option<WorkerGraph>>>>;

/// How often a worker publishes its sums.
const EVERY: Duration = Duration::from_secs(1);

/// One operator's sums on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OperatorSums {
    pub addr: Vec<usize>,
    pub name: String,
    pub scheduled: Duration,
    pub activations: u64,
    /// Updates in the operator's arrangement, and its batches (differential's events).
    pub arranged_records: i64,
    pub arranged_batches: i64,
    /// The most updates the arrangement has held at once.
    pub arranged_peak: i64,
    pub arranged: bool,
}

/// One channel: where it runs, and the records sent into it and received from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelSums {
    pub scope_addr: Vec<usize>,
    pub source: (usize, usize),
    pub target: (usize, usize),
    pub sent: u64,
    pub received: u64,
}

/// What one worker's loggers have summed, by the worker's operator and channel ids.
#[derive(Clone, Debug, Default)]
pub struct WorkerGraph {
    operators: Vec<Option<OperatorSums>>,
    channels: Vec<Option<ChannelSums>>,
    /// Operators scheduled and not yet stopped: id and start (the log's clock).
    running: Vec<(usize, Duration)>,
}

impl WorkerGraph {
    fn operator(&mut self, id: usize) -> &mut OperatorSums {
        if self.operators.len() <= id {
            self.operators.resize(id + 1, None);
        }
        self.operators[id].get_or_insert_with(OperatorSums::default)
    }

    fn channel(&mut self, id: usize) -> &mut ChannelSums {
        if self.channels.len() <= id {
            self.channels.resize(id + 1, None);
        }
        self.channels[id].get_or_insert_with(ChannelSums::default)
    }

    /// Folds one timely event in.
    pub fn timely(&mut self, at: Duration, event: &TimelyEvent) {
        match event {
            TimelyEvent::Operates(operates) => {
                let operator = self.operator(operates.id);
                operator.addr = operates.addr.clone();
                operator.name = operates.name.clone();
            }
            TimelyEvent::Channels(channel) => {
                let sums = self.channel(channel.id);
                sums.scope_addr = channel.scope_addr.clone();
                sums.source = channel.source;
                sums.target = channel.target;
            }
            TimelyEvent::Schedule(schedule) => match schedule.start_stop {
                StartStop::Start => self.running.push((schedule.id, at)),
                StartStop::Stop => {
                    if let Some(position) =
                        self.running.iter().rposition(|(id, _)| *id == schedule.id)
                    {
                        let (_, started) = self.running.remove(position);
                        let operator = self.operator(schedule.id);
                        operator.scheduled += at.saturating_sub(started);
                        operator.activations += 1;
                    }
                }
            },
            TimelyEvent::Messages(message) => {
                let count = message.record_count.max(0) as u64;
                let channel = self.channel(message.channel);
                if message.is_send {
                    channel.sent += count;
                } else {
                    channel.received += count;
                }
            }
            _ => {}
        }
    }

    /// Folds one differential event in.
    pub fn differential(&mut self, event: &DifferentialEvent) {
        let (id, records, batches) = match event {
            DifferentialEvent::Batch(batch) => (batch.operator, batch.length as i64, 1),
            DifferentialEvent::Merge(merge) => match merge.complete {
                Some(length) => (
                    merge.operator,
                    length as i64 - merge.length1 as i64 - merge.length2 as i64,
                    -1,
                ),
                None => return,
            },
            DifferentialEvent::Drop(drop) => (drop.operator, -(drop.length as i64), -1),
            _ => return,
        };
        let operator = self.operator(id);
        operator.arranged = true;
        operator.arranged_records += records;
        operator.arranged_batches += batches;
        operator.arranged_peak = operator.arranged_peak.max(operator.arranged_records);
    }
}

/// Registers the loggers on `worker` (before it builds its dataflows), publishing into `slot`
/// of `shared`.
pub fn register(worker: &mut timely::worker::Worker, shared: SharedDataflow, slot: usize) {
    let Some(mut registry) = worker.log_register() else {
        return;
    };
    let recorder = Rc::new(RefCell::new(Recorder {
        graph: WorkerGraph::default(),
        shared,
        slot,
        published: None,
    }));
    let timely_recorder = recorder.clone();
    registry.insert::<TimelyEventBuilder, _>("timely", move |_, events| {
        let mut recorder = timely_recorder.borrow_mut();
        if let Some(events) = events {
            for (at, event) in events.iter() {
                recorder.graph.timely(*at, event);
            }
        }
        recorder.maybe_publish();
    });
    registry.insert::<DifferentialEventBuilder, _>("differential/arrange", move |_, events| {
        let mut recorder = recorder.borrow_mut();
        if let Some(events) = events {
            for (_, event) in events.iter() {
                recorder.graph.differential(event);
            }
        }
        recorder.maybe_publish();
    });
}

/// A worker's sums, copied to the shared slot once a second and when the loggers are dropped
/// (the worker has finished), so the final sums are what a finished job shows.
struct Recorder {
    graph: WorkerGraph,
    shared: SharedDataflow,
    slot: usize,
    published: Option<Instant>,
}

impl Recorder {
    fn maybe_publish(&mut self) {
        if self.published.is_none_or(|at| at.elapsed() >= EVERY) {
            self.publish();
        }
    }

    fn publish(&mut self) {
        self.published = Some(Instant::now());
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if shared.len() <= self.slot {
            shared.resize(self.slot + 1, None);
        }
        shared[self.slot] = Some(self.graph.clone());
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.publish();
    }
}

/// `/api/dataflow`: the operator graph of each dataflow, summed over the process's workers.
#[derive(Clone, Debug, Serialize)]
pub struct DataflowView {
    /// The workers whose sums are in the view.
    pub workers: usize,
    pub dataflows: Vec<Dataflow>,
}

/// One dataflow: its operators and the channels between them.
#[derive(Clone, Debug, Serialize)]
pub struct Dataflow {
    pub addr: Vec<usize>,
    pub operators: Vec<OperatorView>,
    pub edges: Vec<Edge>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OperatorView {
    /// The operator's address: the dataflow's index, then its index in each nested scope.
    pub addr: Vec<usize>,
    pub name: String,
    pub scheduled_ms: f64,
    pub activations: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// The arrangement it maintains, if any: updates held and batches — for a region (the
    /// warehouse builds each role in one: `dws.join_user`), those of every operator in it.
    pub arrangement: Option<ArrangementView>,
    /// For a region: the names of the arrangements in it (`dws.partials_by_user`).
    pub arrangements: Vec<String>,
}

impl OperatorView {
    /// Adds what an arrangement holds to what the operator holds.
    fn hold(&mut self, more: ArrangementView) {
        let held = self.arrangement.get_or_insert(ArrangementView {
            records: 0,
            batches: 0,
            peak_records: 0,
        });
        held.records += more.records;
        held.batches += more.batches;
        held.peak_records += more.peak_records;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ArrangementView {
    pub records: i64,
    pub batches: i64,
    /// The most records it held at once (summed over the workers' peaks).
    pub peak_records: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edge {
    pub from: Vec<usize>,
    pub to: Vec<usize>,
    pub records: u64,
}

/// Merges the workers' sums (operators by address: every worker builds the same dataflows).
pub fn view(workers: &[Option<WorkerGraph>]) -> DataflowView {
    let mut operators: BTreeMap<Vec<usize>, OperatorView> = BTreeMap::new();
    let mut edges: BTreeMap<(Vec<usize>, Vec<usize>), u64> = BTreeMap::new();
    // Records into and out of each operator, by the channels' ends.
    let mut records_in: BTreeMap<Vec<usize>, u64> = BTreeMap::new();
    let mut records_out: BTreeMap<Vec<usize>, u64> = BTreeMap::new();
    let mut scopes: BTreeSet<Vec<usize>> = BTreeSet::new();
    for graph in workers.iter().flatten() {
        for sums in graph.operators.iter().flatten() {
            if sums.addr.is_empty() {
                continue;
            }
            let operator = operators
                .entry(sums.addr.clone())
                .or_insert_with(|| OperatorView {
                    addr: sums.addr.clone(),
                    name: sums.name.clone(),
                    scheduled_ms: 0.0,
                    activations: 0,
                    records_in: 0,
                    records_out: 0,
                    arrangement: None,
                    arrangements: Vec::new(),
                });
            operator.scheduled_ms += sums.scheduled.as_secs_f64() * 1000.0;
            operator.activations += sums.activations;
            if sums.arranged {
                operator.hold(ArrangementView {
                    records: sums.arranged_records,
                    batches: sums.arranged_batches,
                    peak_records: sums.arranged_peak,
                });
            }
        }
        for channel in graph.channels.iter().flatten() {
            // Index 0 of a scope is its boundary (the scope's own inputs and outputs).
            if channel.source.0 == 0 || channel.target.0 == 0 {
                continue;
            }
            let at = |index: usize| {
                let mut addr = channel.scope_addr.clone();
                addr.push(index);
                addr
            };
            let (from, to) = (at(channel.source.0), at(channel.target.0));
            scopes.insert(channel.scope_addr.clone());
            *records_out.entry(from.clone()).or_default() += channel.sent;
            *records_in.entry(to.clone()).or_default() += channel.received;
            *edges.entry((from, to)).or_default() += channel.sent;
        }
    }
    for (addr, operator) in operators.iter_mut() {
        operator.records_in = records_in.get(addr).copied().unwrap_or(0);
        operator.records_out = records_out.get(addr).copied().unwrap_or(0);
    }
    // The graph shows each dataflow's top-level operators; what the operators nested in a
    // region hold counts as the region's.
    let nested: Vec<(Vec<usize>, String, ArrangementView)> = operators
        .values()
        .filter(|op| op.addr.len() > 2)
        .filter_map(|op| Some((op.addr[..2].to_vec(), op.name.clone(), op.arrangement?)))
        .collect();
    for (region, name, nested) in nested {
        if let Some(region) = operators.get_mut(&region) {
            region.hold(nested);
            if !region.arrangements.contains(&name) {
                region.arrangements.push(name);
            }
        }
    }
    // A dataflow is a top-level scope: every operator whose address has one more index.
    scopes.extend(
        operators
            .keys()
            .filter(|addr| addr.len() >= 2)
            .map(|addr| addr[..1].to_vec()),
    );
    let dataflows = scopes
        .into_iter()
        .filter(|scope| scope.len() == 1)
        .map(|scope| Dataflow {
            operators: operators
                .values()
                .filter(|op| op.addr.len() == 2 && op.addr[0] == scope[0])
                .cloned()
                .collect(),
            edges: edges
                .iter()
                .filter(|((from, _), _)| from.len() == 2 && from[0] == scope[0])
                .map(|((from, to), records)| Edge {
                    from: from.clone(),
                    to: to.clone(),
                    records: *records,
                })
                .collect(),
            addr: scope,
        })
        .collect();
    DataflowView {
        workers: workers.iter().flatten().count(),
        dataflows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use differential_dataflow::logging::{BatchEvent, DropEvent, MergeEvent};
    use timely::logging::{ChannelsEvent, MessagesEvent, OperatesEvent, ScheduleEvent};

    fn operates(id: usize, addr: Vec<usize>, name: &str) -> TimelyEvent {
        TimelyEvent::Operates(OperatesEvent {
            id,
            addr,
            name: name.to_string(),
        })
    }

    fn messages(channel: usize, is_send: bool, record_count: i64) -> TimelyEvent {
        TimelyEvent::Messages(MessagesEvent {
            is_send,
            channel,
            source: 0,
            target: 0,
            seq_no: 0,
            record_count,
        })
    }

    /// A worker's log of a dataflow `[0]` with operators 1 (input) → 2 (arrange).
    fn worker_log(graph: &mut WorkerGraph, scheduled_ms: u64, records: i64) {
        let ms = Duration::from_millis;
        graph.timely(ms(0), &operates(3, vec![0], "Dataflow"));
        graph.timely(ms(0), &operates(4, vec![0, 1], "Input"));
        graph.timely(ms(0), &operates(5, vec![0, 2], "ods.power_user"));
        graph.timely(
            ms(0),
            &TimelyEvent::Channels(ChannelsEvent {
                id: 0,
                scope_addr: vec![0],
                source: (1, 0),
                target: (2, 0),
                typ: String::new(),
            }),
        );
        // the scope's boundary is not an edge
        graph.timely(
            ms(0),
            &TimelyEvent::Channels(ChannelsEvent {
                id: 1,
                scope_addr: vec![0],
                source: (0, 0),
                target: (1, 0),
                typ: String::new(),
            }),
        );
        graph.timely(ms(10), &TimelyEvent::Schedule(ScheduleEvent::start(5)));
        graph.timely(
            ms(10 + scheduled_ms),
            &TimelyEvent::Schedule(ScheduleEvent::stop(5)),
        );
        graph.timely(ms(20), &messages(0, true, records));
        graph.timely(ms(20), &messages(0, false, records));
        graph.differential(&DifferentialEvent::Batch(BatchEvent {
            operator: 5,
            length: records as usize,
        }));
        graph.differential(&DifferentialEvent::Batch(BatchEvent {
            operator: 5,
            length: 10,
        }));
        // the two batches merge into one of records + 10 - 4 (consolidated away)
        graph.differential(&DifferentialEvent::Merge(MergeEvent {
            operator: 5,
            scale: 1,
            length1: records as usize,
            length2: 10,
            complete: Some(records as usize + 6),
        }));
    }

    #[test]
    fn workers_sums_merge_by_operator_address() {
        let mut one = WorkerGraph::default();
        worker_log(&mut one, 3, 100);
        let mut two = WorkerGraph::default();
        worker_log(&mut two, 5, 40);
        let view = view(&[Some(one), None, Some(two)]);
        assert_eq!(view.workers, 2);
        assert_eq!(view.dataflows.len(), 1);
        let dataflow = &view.dataflows[0];
        assert_eq!(dataflow.operators.len(), 2);
        let arrange = &dataflow.operators[1];
        assert_eq!(arrange.name, "ods.power_user");
        assert!((arrange.scheduled_ms - 8.0).abs() < 1e-9);
        assert_eq!(arrange.activations, 2);
        assert_eq!(arrange.records_in, 140);
        assert_eq!(dataflow.operators[0].records_out, 140);
        assert_eq!(
            arrange.arrangement,
            Some(ArrangementView {
                records: 106 + 46,
                batches: 2,
                peak_records: 110 + 50,
            })
        );
        assert_eq!(dataflow.operators[0].arrangement, None);
        assert_eq!(
            dataflow.edges,
            vec![Edge {
                from: vec![0, 1],
                to: vec![0, 2],
                records: 140
            }]
        );
    }

    #[test]
    fn a_regions_nested_arrangements_count_as_the_regions() {
        let ms = Duration::from_millis;
        let mut graph = WorkerGraph::default();
        graph.timely(ms(0), &operates(3, vec![0], "Dataflow"));
        graph.timely(ms(0), &operates(4, vec![0, 1], "dws.join_user"));
        graph.timely(ms(0), &operates(5, vec![0, 1, 1], "Map"));
        graph.timely(ms(0), &operates(6, vec![0, 1, 2], "dws.partials_by_user"));
        graph.timely(ms(0), &operates(7, vec![0, 1, 3], "Join"));
        graph.timely(
            ms(0),
            &TimelyEvent::Channels(ChannelsEvent {
                id: 0,
                scope_addr: vec![0, 1],
                source: (1, 0),
                target: (2, 0),
                typ: String::new(),
            }),
        );
        for length in [30, 12] {
            graph.differential(&DifferentialEvent::Batch(BatchEvent {
                operator: 6,
                length,
            }));
        }
        let view = view(&[Some(graph)]);
        let dataflow = &view.dataflows[0];
        // Only the region is on the graph, holding what its arrangement holds.
        assert_eq!(dataflow.operators.len(), 1);
        let region = &dataflow.operators[0];
        assert_eq!(region.name, "dws.join_user");
        assert_eq!(
            region.arrangements,
            vec!["dws.partials_by_user".to_string()]
        );
        let arrangement = region.arrangement.unwrap();
        assert_eq!((arrangement.records, arrangement.batches), (42, 2));
    }

    #[test]
    fn a_dropped_trace_leaves_nothing_arranged() {
        let mut graph = WorkerGraph::default();
        worker_log(&mut graph, 1, 7);
        graph.differential(&DifferentialEvent::Drop(DropEvent {
            operator: 5,
            length: 13,
        }));
        let view = view(&[Some(graph)]);
        let arrangement = view.dataflows[0].operators[1].arrangement.unwrap();
        assert_eq!((arrangement.records, arrangement.batches), (0, 0));
        assert_eq!(arrangement.peak_records, 17, "what it held before the drop");
    }
}
