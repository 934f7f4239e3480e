//! The hot paths of the engine, one at a time (divan): parsing an input row, the whole
//! warehouse dataflow on one worker taking a load of N rows as one logical time, and the batch
//! twin recomputing the same input. End-to-end scenarios are `gridflow bench`'s
//! (docs/benchmarks.md); these time the pieces a change to an operator moves.
//!
//! Run: `cargo bench --bench operators`. Under `cargo test` each runs once.

use std::collections::BTreeMap;
use std::sync::Arc;

use gridflow::check::twin::recompute;
use gridflow::metrics::Metrics;
use gridflow::model::rows::{Consumption, ConsumptionId, User, UserId};
use gridflow::model::values::parse_millis;
use gridflow::model::TableRow;
use gridflow::model::Time;
use gridflow::operators::retention::Retention;
use gridflow::runtime::{run, Clock, RunConfig, SourceSpec};
use gridflow::sinks::ChangeSink;
use gridflow::sources::csv_replay::parse_consumption;
use gridflow::sources::generator::{Generator, GeneratorConfig};
use gridflow::sources::{Source, Tick};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    divan::main();
}

/// The default generator's first `rows` rows (1,000 users, no updates) as one tick.
fn load(rows: u64) -> Tick {
    let config = GeneratorConfig {
        consumptions: Some(rows),
        user_updates: false,
        tick: 3_600_000,
        ..GeneratorConfig::default()
    };
    let mut generator = Generator::new(config, 0, 1);
    let mut whole = Tick {
        time: 0,
        users: Vec::new(),
        consumption: Vec::new(),
    };
    while let Some(tick) = generator.next_tick() {
        whole.time = tick.time;
        whole.users.extend(tick.users);
        whole.consumption.extend(tick.consumption);
    }
    whole
}

#[divan::bench]
fn parse_a_consumption_row(bencher: divan::Bencher) {
    let record = csv::StringRecord::from(vec![
        "1234567",
        "42",
        "123.45",
        "67.90",
        "2024-01-01 12:34:56.789",
        "",
        "",
        "",
    ]);
    bencher.bench(|| parse_consumption(divan::black_box(&record)));
}

#[divan::bench]
fn parse_a_timestamp(bencher: divan::Bencher) {
    bencher.bench(|| parse_millis(divan::black_box("2024-01-01 12:34:56.789")));
}

/// A sink that drops what it is given (the changes still leave the dataflow).
struct Discard;

impl ChangeSink for Discard {
    fn apply(&mut self, _time: Time, changes: Vec<(TableRow, isize)>) {
        divan::black_box(changes);
    }
}

#[divan::bench(args = [10_000, 100_000], sample_count = 5)]
fn warehouse_takes_a_load(bencher: divan::Bencher, rows: u64) {
    let tick = load(rows);
    bencher
        .counter(divan::counter::ItemsCount::new(rows))
        .bench(|| {
            let config = RunConfig {
                timely: timely::Config::thread(),
                retention: Retention::unbounded(5_000),
                clock: Clock::Simulated,
                max_inflight: 4,
                progress_rows: 10_000,
                sink_ods_and_dwd: false,
                stop: Default::default(),
                durability: None,
                gathered: None,
                monitor: None,
            };
            run(
                config,
                SourceSpec::Scripted(vec![tick.clone()]),
                Some(|| Discard),
                Arc::new(Metrics::default()),
            )
            .expect("the run")
        });
}

#[divan::bench(args = [10_000, 100_000], sample_count = 5)]
fn batch_twin_recomputes(bencher: divan::Bencher, rows: u64) {
    let tick = load(rows);
    let users: BTreeMap<UserId, User> = tick
        .users
        .iter()
        .filter_map(|(k, u)| Some((*k, u.clone()?)))
        .collect();
    let consumption: BTreeMap<ConsumptionId, Consumption> = tick
        .consumption
        .iter()
        .filter_map(|(k, c)| Some((*k, c.clone()?)))
        .collect();
    bencher
        .counter(divan::counter::ItemsCount::new(rows))
        .bench(|| recompute(&users, &consumption, 5_000));
}
