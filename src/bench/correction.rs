//! Scenario (c), the cost of a correction — the headline of incremental view maintenance. After
//! N consumption rows of the default generator (1,000 users inserted once, readings at 5 per
//! source second with dates up to 2.4 h behind the clock) are loaded in one logical time, users
//! 1 to 5 move to another region by late user updates, one logical time each. Measured: the
//! time from each one's seal to every output having caught up (the engine in this process,
//! 2 workers), the output changes it made, and, for the same final input, (i) the batch twin
//! recomputing every layer from scratch and (ii) PostgreSQL recomputing the layers from its ODS
//! tables with `docs/queries/layers.sql`, as `REFRESH MATERIALIZED VIEW` would.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::child::arg;
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;
use crate::check::oracle;
use crate::check::twin;
use crate::metrics::Metrics;
use crate::model::rows::{Consumption, ConsumptionId, Millis, User, UserId};
use crate::model::Time;
use crate::model::{TableRow, Warehouse};
use crate::operators::retention::Retention;
use crate::runtime::{run as run_dataflow, Clock, RunConfig, SourceSpec};
use crate::sinks::ChangeSink;
use crate::sources::generator::{region_name, Generator, GeneratorConfig};
use crate::sources::{Source, Tick};

/// Five-second windows, as the source's.
const WINDOW: Millis = 5_000;

/// How many users make late updates, one logical time each: users 1 to this.
/// `GRIDFLOW_CORRECTION_MOVES` overrides it (more corrections, to profile them).
const MOVED_USERS: UserId = 5;

/// The users whose late updates are the corrections.
fn moved_users() -> anyhow::Result<std::ops::RangeInclusive<UserId>> {
    let moves = match std::env::var("GRIDFLOW_CORRECTION_MOVES") {
        Ok(n) => n
            .trim()
            .parse()
            .with_context(|| format!("GRIDFLOW_CORRECTION_MOVES: {n:?}"))?,
        Err(_) => MOVED_USERS,
    };
    Ok(1..=moves)
}

/// The target of issue 10: at 10M rows, at least this many times faster than the batch twin.
const TARGET_SPEEDUP: f64 = 1_000.0;

/// The input of one size: the ODS state after the load, and the late user rows.
pub struct Input {
    pub users: BTreeMap<UserId, User>,
    pub consumption: BTreeMap<ConsumptionId, Consumption>,
    /// The logical time of the load.
    pub loaded_at: Time,
    /// Each of the moved users ([`moved_users`]) in another region.
    pub moved: Vec<User>,
}

impl Input {
    /// The default generator's first `rows` consumption rows and its 1,000 users (no updates),
    /// gathered into one state; each of the `moved` users goes to the next region.
    pub fn generate(rows: u64, moved: std::ops::RangeInclusive<UserId>) -> Input {
        let config = GeneratorConfig {
            seed: 42,
            consumptions: Some(rows),
            user_updates: false,
            tick: 3_600_000,
            ..GeneratorConfig::default()
        };
        let mut generator = Generator::new(config, 0, 1);
        let (mut users, mut consumption) = (BTreeMap::new(), BTreeMap::new());
        let mut loaded_at = 0;
        while let Some(tick) = generator.next_tick() {
            loaded_at = tick.time;
            for (id, row) in tick.users {
                match row {
                    Some(row) => users.insert(id, row),
                    None => users.remove(&id),
                };
            }
            for (id, row) in tick.consumption {
                match row {
                    Some(row) => consumption.insert(id, row),
                    None => consumption.remove(&id),
                };
            }
        }
        let moved = moved
            .map(|id| {
                let mut user = users.get(&id).cloned().unwrap_or_else(|| {
                    crate::check::testing::user(id, &format!("用户{id:04}"), 1, &region_name(1))
                });
                let region = user.region_id.unwrap_or(0) % 10 + 1;
                user.region_id = Some(region);
                user.region_name = Some(region_name(region));
                user
            })
            .collect();
        Input {
            users,
            consumption,
            loaded_at,
            moved,
        }
    }

    /// The logical times: the load, then one late update each.
    fn ticks(&self) -> Vec<Tick> {
        let mut ticks = vec![Tick {
            time: self.loaded_at,
            users: self
                .users
                .iter()
                .map(|(k, u)| (*k, Some(u.clone())))
                .collect(),
            consumption: self
                .consumption
                .iter()
                .map(|(k, c)| (*k, Some(c.clone())))
                .collect(),
        }];
        for (i, user) in self.moved.iter().enumerate() {
            ticks.push(Tick {
                time: self.corrected_at(i),
                users: vec![(user.user_id, Some(user.clone()))],
                consumption: Vec::new(),
            });
        }
        ticks
    }

    /// The logical time of the `i`-th correction.
    fn corrected_at(&self, i: usize) -> Time {
        self.loaded_at + 1_000 * (i as Time + 1)
    }

    /// The user table after every correction.
    pub fn users_after(&self) -> BTreeMap<UserId, User> {
        let mut users = self.users.clone();
        for user in &self.moved {
            users.insert(user.user_id, user.clone());
        }
        users
    }
}

/// Counts the changes leaving the dataflow, per logical time and table.
#[derive(Debug, Default)]
struct ChangeCounter {
    per_time: BTreeMap<Time, [u64; TABLES.len()]>,
}

/// The tables in [`ChangeCounter`]'s order: those that leave the dataflow of a default job
/// (the DWS and ADS layers; ODS and DWD stay inside unless `--sink-ods-dwd`).
const TABLES: [&str; 3] = [
    "dws_region_daily_stats",
    "dws_user_ranking",
    "ads_power_dashboard",
];

impl ChangeSink for ChangeCounter {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        let counts = self.per_time.entry(time).or_default();
        for (row, _) in &changes {
            let table = match row {
                TableRow::RegionStats(_) => 0,
                TableRow::Ranking(_) => 1,
                TableRow::Dashboard(_) => 2,
                _ => continue,
            };
            counts[table] += 1;
        }
    }
}

/// One correction: its latency, and its output changes per table of [`TABLES`].
type Correction = (Duration, [u64; TABLES.len()]);

/// What the engine did with one input.
struct EngineRun {
    /// The load's latency: its seal to its outputs.
    load: Duration,
    /// Each correction's latency, and its output changes per table of [`TABLES`].
    corrections: Vec<Correction>,
}

impl EngineRun {
    /// The median correction's latency.
    fn median_correction(&self) -> Duration {
        let mut times: Vec<Duration> = self.corrections.iter().map(|c| c.0).collect();
        times.sort();
        times[times.len() / 2]
    }
}

fn engine(input: &Input, workers: usize) -> anyhow::Result<EngineRun> {
    let config = RunConfig {
        timely: timely::Config {
            communication: timely::CommunicationConfig::Process(workers),
            worker: timely::WorkerConfig::default(),
        },
        retention: Retention::unbounded(WINDOW),
        clock: Clock::Simulated,
        // Each time is sealed only once the one before it is complete: its latency is its own.
        max_inflight: 1,
        // Every time sealed on its own on every worker, even one with no rows of that worker's.
        progress_rows: 0,
        // As `gridflow run`: only DWS and ADS leave the dataflow.
        sink_ods_and_dwd: false,
        stop: Default::default(),
        durability: None,
        gathered: None,
        monitor: None,
    };
    let metrics = Arc::new(Metrics::default());
    metrics
        .keep_tick_latencies
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let outcome = run_dataflow(
        config,
        SourceSpec::Scripted(input.ticks()),
        Some(ChangeCounter::default),
        metrics.clone(),
    )
    .context("the engine's run failed")?;
    let counter = outcome.sink.context("worker 0 returned no sink")?;
    let latencies: BTreeMap<Time, Duration> = metrics
        .tick_latencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .copied()
        .collect();
    let latency = |time: Time| {
        latencies
            .get(&time)
            .copied()
            .with_context(|| format!("no latency was recorded for logical time {time}"))
    };
    let mut corrections = Vec::new();
    for i in 0..input.moved.len() {
        let time = input.corrected_at(i);
        let changes = counter.per_time.get(&time).copied().unwrap_or_default();
        corrections.push((latency(time)?, changes));
    }
    Ok(EngineRun {
        load: latency(input.loaded_at)?,
        corrections,
    })
}

/// The batch twin recomputing every layer over the corrected input.
fn twin(input: &Input) -> (Duration, Warehouse) {
    let users = input.users_after();
    let started = Instant::now();
    let warehouse = twin::recompute(&users, &input.consumption, WINDOW);
    (started.elapsed(), warehouse)
}

/// The sizes to load: `GRIDFLOW_CORRECTION_ROWS` (comma-separated) overrides them, to profile
/// or repeat one size.
fn sizes(bench: &Bench) -> anyhow::Result<Vec<u64>> {
    match std::env::var("GRIDFLOW_CORRECTION_ROWS") {
        Ok(list) => list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse()
                    .with_context(|| format!("GRIDFLOW_CORRECTION_ROWS: {n:?}"))
            })
            .collect(),
        Err(_) => Ok(bench.size(vec![100_000, 1_000_000, 10_000_000], vec![2_000])),
    }
}

/// One run's figures.
struct Figures {
    engine: EngineRun,
    twin: Duration,
    postgres: Option<Duration>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let sizes = sizes(bench)?;
    let moves = moved_users()?;
    let progress = bench.progress(Scenario::Correction, sizes.len() * bench.runs);
    let mut csv = Csv {
        header: [
            "rows",
            "run",
            "correction",
            "user_id",
            "load_s",
            "correction_ms",
            "output_changes",
            "dws_region_changes",
            "dws_ranking_changes",
            "ads_changes",
            "twin_s",
            "postgres_s",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| consumption rows | engine: load (s) | engine: one correction (ms) | output changes per correction | batch twin (s) | twin ÷ correction | PostgreSQL (s) | PostgreSQL ÷ correction |\n|---|---|---|---|---|---|---|---|\n",
    );
    let mut by_table = String::from("| consumption rows |");
    for name in TABLES {
        by_table.push_str(&format!(" {name} |"));
    }
    by_table.push_str("\n|---|");
    by_table.push_str(&"---|".repeat(TABLES.len()));
    by_table.push('\n');
    let (mut engine_points, mut twin_points, mut postgres_points) =
        (Vec::new(), Vec::new(), Vec::new());
    let mut headline = String::new();
    for &rows in &sizes {
        progress.set_message(format!("generating {rows} rows"));
        let input = Input::generate(rows, moves.clone());
        let mut postgres = match &bench.database_url {
            Some(url) => {
                progress.set_message(format!("{rows} rows: loading PostgreSQL"));
                Some(PostgresTwin::load(url, &input)?)
            }
            None => None,
        };
        let mut figures: Vec<Figures> = Vec::new();
        for run in 0..bench.runs {
            progress.set_message(format!("{rows} rows: the engine"));
            let engine = engine(&input, 2)?;
            progress.set_message(format!("{rows} rows: the batch twin"));
            let (twin_time, warehouse) = twin(&input);
            drop(warehouse);
            // PostgreSQL's recomputation takes minutes at 10M rows: it is timed in the first
            // run only (its figure says so).
            let postgres_time = match postgres.as_mut().filter(|_| run == 0) {
                Some(postgres) => {
                    progress.set_message(format!("{rows} rows: PostgreSQL"));
                    Some(postgres.recompute()?)
                }
                None => None,
            };
            for (i, (latency, changes)) in engine.corrections.iter().enumerate() {
                let mut row = vec![
                    arg(rows),
                    arg(run),
                    arg(i),
                    arg(input.moved[i].user_id),
                    format!("{:.3}", engine.load.as_secs_f64()),
                    format!("{:.3}", latency.as_secs_f64() * 1e3),
                    arg(changes.iter().sum::<u64>()),
                ];
                row.extend(changes.iter().map(arg));
                row.push(format!("{:.3}", twin_time.as_secs_f64()));
                row.push(
                    postgres_time.map_or(String::new(), |d| format!("{:.3}", d.as_secs_f64())),
                );
                csv.rows.push(row);
            }
            figures.push(Figures {
                engine,
                twin: twin_time,
                postgres: postgres_time,
            });
            progress.inc(1);
        }
        if let Some(postgres) = postgres {
            postgres.drop_schema()?;
        }
        let spread = |values: Vec<f64>| Spread::of(&values);
        let show = |s: Option<Spread>, digits| s.map_or("–".to_string(), |s| s.show(digits));
        let every_correction = |f: &dyn Fn(&Correction) -> f64| {
            spread(
                figures
                    .iter()
                    .flat_map(|run| run.engine.corrections.iter().map(f))
                    .collect(),
            )
        };
        let correction_ms = every_correction(&|c| c.0.as_secs_f64() * 1e3);
        let twin_s = spread(figures.iter().map(|f| f.twin.as_secs_f64()).collect());
        let postgres_s = spread(
            figures
                .iter()
                .filter_map(|f| f.postgres.map(|d| d.as_secs_f64()))
                .collect(),
        );
        // Ratios run by run: that run's recomputation over that run's median correction.
        let ratio = |other: &dyn Fn(&Figures) -> Option<Duration>| {
            spread(
                figures
                    .iter()
                    .filter_map(|f| {
                        let correction = f.engine.median_correction().as_secs_f64().max(1e-9);
                        other(f).map(|d| d.as_secs_f64() / correction)
                    })
                    .collect(),
            )
        };
        let twin_ratio = ratio(&|f| Some(f.twin));
        let postgres_ratio = ratio(&|f| f.postgres);
        let times = |s: Option<Spread>| s.map_or("–".to_string(), |s| format!("{}×", s.show(0)));
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            super::stats::group_thousands(&rows.to_string()),
            show(
                spread(
                    figures
                        .iter()
                        .map(|f| f.engine.load.as_secs_f64())
                        .collect()
                ),
                2
            ),
            show(correction_ms, 2),
            show(every_correction(&|c| c.1.iter().sum::<u64>() as f64), 0),
            show(twin_s, 2),
            times(twin_ratio),
            show(postgres_s, 2),
            times(postgres_ratio),
        ));
        by_table.push_str(&format!(
            "| {} |",
            super::stats::group_thousands(&rows.to_string())
        ));
        for t in 0..TABLES.len() {
            by_table.push_str(&format!(
                " {} |",
                show(every_correction(&|c| c.1[t] as f64), 0)
            ));
        }
        by_table.push('\n');
        if let (Some(c), Some(t)) = (correction_ms, twin_s) {
            engine_points.push((rows as f64, c.median / 1e3));
            twin_points.push((rows as f64, t.median));
        }
        if let Some(p) = postgres_s {
            postgres_points.push((rows as f64, p.median));
        }
        if rows == *sizes.last().expect("sizes") {
            if let Some(ratio) = twin_ratio {
                headline = format!(
                    "Target: at 10M rows one late user update corrected ≥ 1000× faster than the \
                     batch twin's recomputation. Measured at {} rows: {} ({}).\n\n",
                    super::stats::group_thousands(&rows.to_string()),
                    times(Some(ratio)),
                    if rows >= 10_000_000 && ratio.median >= TARGET_SPEEDUP {
                        "met"
                    } else if rows >= 10_000_000 {
                        "**missed**"
                    } else {
                        "not the target's size"
                    }
                );
            }
        }
    }
    progress.finish_and_clear();
    let postgres_note = if bench.database_url.is_some() {
        "PostgreSQL runs `docs/queries/layers.sql` over ODS tables it holds already (loading them \
         is not timed): every layer recreated from the corrected ODS state, in the first run only \
         (its ratio is over that run's median correction)."
    } else {
        "PostgreSQL was not run: no `--against`/`DATABASE_URL`."
    };
    let markdown = format!(
        "### (c) The cost of a correction\n\n\
         In this process: the engine (2 workers; as `gridflow run`, the DWS and ADS tables leave \
         the dataflow) loads N rows of the default generator (1,000 users, no user updates, \
         5-second windows) as one logical time; then users 1 to {moves} move region, one logical \
         time each, each sealed once the one before it is complete. A correction's time runs from its \
         seal to all outputs having caught up; its figures are over every correction of every \
         run. The batch twin (`src/check/twin.rs`) recomputes all six tables from the corrected \
         ODS state. {postgres_note} {} of each; ratios are taken run by run (that run's \
         recomputation over its median correction).\n\n{headline}{table}\n\
         Output changes of one correction, by table (insertions plus retractions):\n\n{by_table}",
        bench.runs_phrase(),
        moves = moves.end(),
    );
    let mut series = vec![
        Series {
            name: "engine: one late user update".into(),
            points: engine_points,
        },
        Series {
            name: "batch twin: recompute".into(),
            points: twin_points,
        },
    ];
    if !postgres_points.is_empty() {
        series.push(Series {
            name: "PostgreSQL: recompute the layers".into(),
            points: postgres_points,
        });
    }
    let chart = Chart {
        title: "Time to a consistent output after one late user update",
        x_label: "consumption rows loaded",
        y_label: "seconds",
        x_axis: Axis::Log,
        y_axis: Axis::Log,
    };
    Ok(Section {
        scenario: Scenario::Correction,
        csvs: vec![("correction".into(), csv)],
        markdown,
        plots: vec![Plot {
            file: "correction.svg".into(),
            title: "Correction time against input size".into(),
            svg: chart.svg(&series)?,
        }],
    })
}

/// PostgreSQL holding the corrected ODS state in a schema of its own, to recompute the layers
/// from it with `docs/queries/layers.sql`.
struct PostgresTwin {
    client: postgres::Client,
}

/// The schema the correction scenario loads into (dropped when it is done).
const POSTGRES_SCHEMA: &str = "gridflow_bench_correction";

impl PostgresTwin {
    fn load(url: &str, input: &Input) -> anyhow::Result<PostgresTwin> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)
            .with_context(|| format!("cannot connect to {}", redact(url)))?;
        oracle::drop_schema(&mut client, POSTGRES_SCHEMA)?;
        let users = input.users_after();
        oracle::load_ods(
            &mut client,
            POSTGRES_SCHEMA,
            users.values(),
            input.consumption.values(),
            std::iter::empty(),
        )?;
        Ok(PostgresTwin { client })
    }

    /// Recomputes every layer; returns how long PostgreSQL took.
    fn recompute(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        oracle::run_layers_sql(&mut self.client, POSTGRES_SCHEMA, WINDOW)?;
        Ok(started.elapsed())
    }

    fn drop_schema(mut self) -> anyhow::Result<()> {
        oracle::drop_schema(&mut self.client, POSTGRES_SCHEMA)?;
        Ok(())
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    crate::sinks::SinkTarget::Postgres(url.to_string()).redacted()
}
