//! The command line's options: one clap configuration, every option documented and settable
//! from the environment, turned into the runtime's configuration.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use thiserror::Error;

use std::collections::BTreeMap;

use crate::durable::log::DEFAULT_FOLD_MIN_BYTES;
use crate::durable::DEFAULT_STATE_DIR;
use crate::model::now_millis;
use crate::model::rows::Millis;
use crate::model::values::{parse_duration_millis, parse_millis, ValueError};
use crate::operators::retention::Retention;
use crate::query::render::Format;
use crate::query::{BusinessQuery, QueryOptions};
use crate::runtime::{Clock, RunConfig, SourceSpec};
use crate::sinks::target::{SinkTarget, TargetError};
use crate::sources::csv_replay::{Interleave, ReplayConfig};
use crate::sources::generator::GeneratorConfig;

/// gridflow: the power-grid real-time warehouse as exact incremental views.
#[derive(Debug, Parser)]
#[command(name = "gridflow", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the warehouse: the generator (default) or a CSV replay, through all four layers.
    Run(Box<RunArgs>),
    /// Run one of the source's business queries (section 7) on the sink's tables.
    Query(QueryArgs),
    /// Run the warehouse with no sink and hold every table, at every logical time, equal to the
    /// batch twin's recomputation (and, with --against, to PostgreSQL's): docs/verify.md.
    Verify(Box<VerifyArgs>),
    /// Run the research benchmarks and regenerate docs/benchmarks.md (tables, CSVs, plots).
    Bench(BenchArgs),
}

/// Options of `gridflow verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The input and dataflow to verify: the options of `gridflow run`.
    #[command(flatten)]
    pub job: JobArgs,

    /// Compare every K-th logical time of the input (and always the last) instead of every
    /// one; with --against, PostgreSQL compares at those times too (else only at the last).
    #[arg(long, env = "GRIDFLOW_VERIFY_EVERY", value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub every: Option<u64>,

    /// Also compare with PostgreSQL recomputing the layers from the ODS state with
    /// docs/queries/layers.sql: `postgresql://…`. Default: DATABASE_URL if set.
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub against: Option<String>,

    /// The schema PostgreSQL computes in: created by verify (an existing schema verify did
    /// not create is refused), dropped after a verification that passed.
    #[arg(
        long,
        env = "GRIDFLOW_VERIFY_SCHEMA",
        default_value = "gridflow_verify"
    )]
    pub against_schema: String,

    /// Verify generated adversarial cases instead (the property tests' generator): --cases of
    /// them, drawn from --seed, each with a random worker count and batch size.
    #[arg(long, env = "GRIDFLOW_VERIFY_RANDOM")]
    pub random: bool,

    /// With --random: how many cases.
    #[arg(long, env = "GRIDFLOW_VERIFY_CASES", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub cases: u32,

    /// With --random: where the shrunk failing case is written, as a replay directory that
    /// `gridflow verify --input DIR` reproduces (with the options its README gives).
    #[arg(
        long,
        env = "GRIDFLOW_VERIFY_FAILURE_DIR",
        value_name = "DIR",
        default_value = "verify-failure"
    )]
    pub failure_dir: PathBuf,

    /// Draw no progress bar.
    #[arg(long, env = "GRIDFLOW_NO_PROGRESS")]
    pub no_progress: bool,

    /// Plant a known bug in this process before verifying, to see that verify catches it
    /// (testing verify itself; docs/verify.md): `partial-count` (dataflow only: the twin
    /// catches it) or `window-boundary` (in a helper the twin shares: only --against does).
    #[arg(long, value_enum, value_name = "BUG")]
    pub plant_bug: Option<crate::check::planted::Bug>,
}

/// Options of `gridflow bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The scenarios to run, in this order (default: all of them).
    #[arg(value_enum)]
    pub scenarios: Vec<crate::bench::Scenario>,

    /// Tiny sizes and one run of each: a check that every scenario works (the test suite runs
    /// it), not a measurement.
    #[arg(long)]
    pub quick: bool,

    /// Runs of each configuration (default: 3; 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub runs: Option<u64>,

    /// Where each scenario's CSV goes (and the runs' reports and logs, under runs/).
    #[arg(long, value_name = "DIR", default_value = "bench-results")]
    pub out: PathBuf,

    /// The document to regenerate; the plots go into a benchmarks/ folder beside it.
    #[arg(long, value_name = "FILE", default_value = "docs/benchmarks.md")]
    pub doc: PathBuf,

    /// PostgreSQL for the correction scenario's recomputation by SQL, `postgresql://…`
    /// (default: DATABASE_URL; without either it is left out).
    #[arg(long, env = "DATABASE_URL", value_name = "URL")]
    pub against: Option<String>,

    /// The gridflow binary the scenarios start (default: this one).
    #[arg(long, value_name = "FILE")]
    pub binary: Option<PathBuf>,
}

/// Options of `gridflow query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The query: load-monitoring (7.1), top-users (7.2), peak-hours (7.3), user-growth (7.4).
    #[arg(value_enum)]
    pub name: BusinessQuery,

    /// The database a run's sink wrote: `sqlite://PATH` or `postgresql://…`. Default: the
    /// DATABASE_URL environment variable if set, else `sqlite://gridflow.db`.
    #[arg(long, env = "GRIDFLOW_SINK", value_name = "URL")]
    pub sink: Option<String>,

    /// The PostgreSQL schema holding the tables.
    #[arg(long, env = "GRIDFLOW_SINK_SCHEMA", default_value = "public")]
    pub sink_schema: String,

    /// load-monitoring: show dashboard windows whose total_consumption exceeds this many kWh.
    #[arg(long, default_value = "50000")]
    pub threshold: rust_decimal::Decimal,

    /// top-users: how many ranks to show per region and window.
    #[arg(long, default_value_t = 10)]
    pub top: i64,

    /// peak-hours: the day of the dashboard updates, YYYY-MM-DD (default: the newest day in the
    /// table, which is today on a live run).
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,

    /// user-growth: the start of the range, `YYYY-MM-DD HH:MM:SS` (default: one hour before the
    /// newest window in the table).
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub since: Option<chrono::NaiveDateTime>,

    /// How to print the result.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// An option's value that is not one, or options that do not go together.
#[derive(Debug, Error)]
pub enum OptionError {
    #[error("{0:?} is not a number")]
    NotANumber(String),
    #[error("{0:?} is not a finite number")]
    NotFinite(String),
    #[error("{0:?} must not be negative")]
    Negative(String),
    #[error("{0:?} must be greater than zero")]
    NotPositive(String),
    #[error("{0:?} is before 1970-01-01 00:00:00")]
    BeforeEpoch(String),
    #[error("{0:?} is out of range")]
    OutOfRange(String),
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("--process {process} must be below --processes {processes}")]
    ProcessIndex { process: u64, processes: u64 },
    #[error("cannot read the host file {}: {source}", path.display())]
    HostFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the host file {} names {found} addresses for {processes} processes", path.display())]
    TooFewHosts {
        path: PathBuf,
        found: usize,
        processes: u64,
    },
    #[error(transparent)]
    Sink(#[from] TargetError),
}

/// A rate of rows per generator-clock second: finite, and positive (or zero where allowed).
fn parse_rate<const ZERO_ALLOWED: bool>(text: &str) -> Result<f64, OptionError> {
    let rate: f64 = text
        .trim()
        .parse()
        .map_err(|_| OptionError::NotANumber(text.to_string()))?;
    match rate {
        rate if !rate.is_finite() => Err(OptionError::NotFinite(text.to_string())),
        rate if rate > 0.0 || (ZERO_ALLOWED && rate == 0.0) => Ok(rate),
        _ if ZERO_ALLOWED => Err(OptionError::Negative(text.to_string())),
        _ => Err(OptionError::NotPositive(text.to_string())),
    }
}

/// The generator clock's first instant: a timestamp not before 1970.
fn parse_start(text: &str) -> Result<Millis, OptionError> {
    let millis = parse_millis(text)?;
    if millis < 0 {
        return Err(OptionError::BeforeEpoch(text.to_string()));
    }
    Ok(millis)
}

fn parse_timestamp(text: &str) -> Result<chrono::NaiveDateTime, OptionError> {
    let millis = parse_millis(text)?;
    chrono::DateTime::from_timestamp_millis(millis)
        .map(|time| time.naive_utc())
        .ok_or_else(|| OptionError::OutOfRange(text.to_string()))
}

impl QueryArgs {
    /// The database these options name.
    pub fn sink_target(&self) -> Result<SinkTarget, TargetError> {
        SinkTarget::resolve(self.sink.as_deref())
    }

    /// The queries' parameters.
    pub fn options(&self) -> QueryOptions {
        QueryOptions {
            threshold: self.threshold,
            top: self.top,
            date: self.date,
            since: self.since,
        }
    }
}

/// Options of `gridflow run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The job's input and dataflow.
    #[command(flatten)]
    pub job: JobArgs,

    /// Write the final state of every table as CSV into DIR (bounded input only).
    #[arg(long, env = "GRIDFLOW_EXPORT", value_name = "DIR")]
    pub export: Option<PathBuf>,

    /// Where the DWS and ADS tables go: `sqlite://PATH`, `postgresql://…` or `none`. Default:
    /// the DATABASE_URL environment variable if set, else `sqlite://gridflow.db`.
    #[arg(long, env = "GRIDFLOW_SINK", value_name = "URL")]
    pub sink: Option<String>,

    /// The PostgreSQL schema of the sink's tables (created if absent).
    #[arg(long, env = "GRIDFLOW_SINK_SCHEMA", default_value = "public")]
    pub sink_schema: String,

    /// Write the ODS and DWD tables to the sink too.
    #[arg(long, env = "GRIDFLOW_SINK_ODS_DWD")]
    pub sink_ods_dwd: bool,

    /// Seconds between status lines (0: none).
    #[arg(long, env = "GRIDFLOW_STATUS_INTERVAL", default_value_t = 5)]
    pub status_interval: u64,

    /// The job's durable state: its input log, snapshots and identity. Running again with the
    /// same state dir resumes the job where it stopped (or was killed). With several processes
    /// each keeps DIR/process-P.
    #[arg(long, env = "GRIDFLOW_STATE_DIR", value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Processing time between checkpoints: each worker makes its input log durable (fsync),
    /// and the sinks commit what is durable. Also every 500,000 logged rows.
    #[arg(long, env = "GRIDFLOW_CHECKPOINT_INTERVAL", default_value = "10s",
          value_parser = parse_duration_millis)]
    pub checkpoint_interval: Millis,

    /// Bytes of committed input log each worker lets pile up before folding them into its
    /// snapshot (and at least the snapshot's size): larger, fewer rewrites of the snapshot;
    /// smaller, a shorter log to replay on restart.
    #[arg(long, env = "GRIDFLOW_FOLD_MIN_BYTES", default_value_t = DEFAULT_FOLD_MIN_BYTES)]
    pub fold_min_bytes: u64,

    /// Where the web UI and its API listen (process 0): the job, its counters, Prometheus'
    /// `/metrics`. Anything but loopback exposes them to the network.
    #[arg(
        long,
        env = "GRIDFLOW_UI_ADDR",
        value_name = "ADDR",
        default_value = "127.0.0.1:8081"
    )]
    pub ui_addr: String,

    /// Serve no web UI (and build none of its exits and loggers).
    #[arg(long, env = "GRIDFLOW_NO_UI")]
    pub no_ui: bool,

    /// After a bounded job ends, keep the web UI serving its final state this long (Ctrl-C
    /// ends the wait), so its pages can still be looked at.
    #[arg(long, env = "GRIDFLOW_UI_LINGER", value_name = "DURATION", value_parser = parse_duration_millis)]
    pub ui_linger: Option<Millis>,

    /// When the run ends, write a JSON report to FILE: elapsed time, peak memory, every counter,
    /// the whole run's latency distribution, and samples of resident memory and row counts taken
    /// every `--report-interval` while it ran (`gridflow bench` reads it; docs/benchmarks.md).
    #[arg(long, env = "GRIDFLOW_REPORT", value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// How often the report samples memory and row counts.
    #[arg(long, env = "GRIDFLOW_REPORT_INTERVAL", default_value = "1s",
          value_parser = parse_duration_millis)]
    pub report_interval: Millis,

    /// Start the job over: clear the state dir and the sink's tables first.
    #[arg(long, env = "GRIDFLOW_RESET")]
    pub reset: bool,

    /// Keep no state dir: nothing is logged, and the job cannot be resumed (benchmarks of the
    /// dataflow alone, throwaway runs). Its sink still holds one job's rows: a second
    /// ephemeral job needs `--reset` (or another sink).
    #[arg(long, env = "GRIDFLOW_EPHEMERAL")]
    pub ephemeral: bool,
}

/// The options that define a job's input and its dataflow: `gridflow run` and `gridflow verify`
/// share them, flag for flag.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// Replay CSV files from DIR/users/*.csv and DIR/consumption/*.csv instead of generating.
    #[arg(long, env = "GRIDFLOW_INPUT", value_name = "DIR")]
    pub input: Option<PathBuf>,

    /// The clock pacing the input: `wall` (real time) or `simulated` (as fast as possible).
    /// A CSV replay always runs simulated.
    #[arg(long, env = "GRIDFLOW_CLOCK", value_enum, default_value_t = Clock::Wall)]
    pub clock: Clock,

    /// Seed of the generator: the same seed and options give the same rows.
    #[arg(long, env = "GRIDFLOW_SEED", default_value_t = 42)]
    pub seed: u64,

    /// Length of the user_id sequence; after it, user rows update existing users.
    #[arg(long, env = "GRIDFLOW_USERS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub users: u64,

    /// Stop after this many consumption rows (default: never stop).
    #[arg(long, env = "GRIDFLOW_CONSUMPTIONS")]
    pub consumptions: Option<u64>,

    /// User rows per generator-clock second.
    #[arg(long, env = "GRIDFLOW_USER_RATE", default_value_t = 1.0, value_parser = parse_rate::<true>)]
    pub user_rate: f64,

    /// Consumption rows per generator-clock second.
    #[arg(long, env = "GRIDFLOW_CONSUMPTION_RATE", default_value_t = 5.0, value_parser = parse_rate::<false>)]
    pub consumption_rate: f64,

    /// End the user stream after inserting users 1..=N (the source's DataGen), instead of going
    /// on with updates to existing users.
    #[arg(long, env = "GRIDFLOW_NO_USER_UPDATES")]
    pub no_user_updates: bool,

    /// Number of supply regions (region ids 1..=N).
    #[arg(long, env = "GRIDFLOW_REGIONS", default_value_t = 10,
          value_parser = clap::value_parser!(i32).range(1..))]
    pub regions: i32,

    /// The generator clock's first instant, `YYYY-MM-DD HH:MM:SS` (UTC). Default: now on the
    /// wall clock, 2024-01-01 00:00:00 on the simulated clock and for replays.
    #[arg(long, env = "GRIDFLOW_START", value_parser = parse_start)]
    pub start: Option<Millis>,

    /// Size of the tumbling windows: 5s, 1h, 1d, ...
    #[arg(long, env = "GRIDFLOW_WINDOW", default_value = "5s", value_parser = parse_duration_millis)]
    pub window: Millis,

    /// Retention horizon (SPEC §4a): a window freezes this long after its end, on the source
    /// clock. Its rows then stay in the sink and the export as they were, leave the engine's
    /// state, and later rows for it are counted as expired. Off by default: state grows with
    /// the input.
    #[arg(long, env = "GRIDFLOW_RETENTION", value_parser = parse_duration_millis)]
    pub retention: Option<Millis>,

    /// Source-clock span of one logical time (default: 100ms on the wall clock; on the simulated
    /// clock the span of about 30,000 consumption rows, between 1s and 1h and at most a sixth
    /// of --retention — 30m with `--retention 3h` at the default rates — so churn such as
    /// ranking reshuffles collapses inside one time instead of being emitted and retracted; 1s
    /// between replay batches).
    #[arg(long, env = "GRIDFLOW_TICK", value_parser = parse_duration_millis)]
    pub tick: Option<Millis>,

    /// Rows of each table per logical time in a CSV replay: large by default, so a replay
    /// catches up in a few cheap steps; smaller batches show more intermediate versions.
    #[arg(long, env = "GRIDFLOW_REPLAY_BATCH", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub replay_batch: u64,

    /// How a CSV replay interleaves the two tables' batches.
    #[arg(long, env = "GRIDFLOW_INTERLEAVE", value_enum, default_value_t = Interleave::Alternate)]
    pub interleave: Interleave,

    /// Worker threads per process.
    #[arg(short = 'w', long, env = "GRIDFLOW_WORKERS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub workers: u64,

    /// Number of processes (timely cluster mode).
    #[arg(short = 'n', long, env = "GRIDFLOW_PROCESSES", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub processes: u64,

    /// Index of this process, 0..processes.
    #[arg(short = 'p', long, env = "GRIDFLOW_PROCESS", default_value_t = 0)]
    pub process: u64,

    /// File with one `host:port` per line, one per process (default: localhost:2101, 2102, ...).
    #[arg(long, env = "GRIDFLOW_HOSTFILE", value_name = "FILE")]
    pub hostfile: Option<PathBuf>,

    /// Serialize data between worker threads too, as between processes (a check, and `-z` of timely).
    #[arg(short = 'z', long, env = "GRIDFLOW_SERIALIZE")]
    pub serialize: bool,

    /// On the simulated clock, how many sealed batches may be in the dataflow at once.
    #[arg(long, env = "GRIDFLOW_MAX_INFLIGHT", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_inflight: u64,

    /// On the simulated clock, rows a worker sends before advancing the input frontier (a user
    /// row counts as 100: it moves about that many partials). Rows keep their own logical times (one
    /// per tick), so results are the same for any value; larger batches amortize the per-time
    /// work of the operators, smaller ones bound the work and memory in flight.
    #[arg(long, env = "GRIDFLOW_PROGRESS_ROWS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_rows: u64,

    /// Arrangement merge work per idle scheduling quantum (differential's idle merge effort);
    /// unset, batches merge only as new batches arrive.
    #[arg(long, env = "GRIDFLOW_MERGE_EFFORT")]
    pub merge_effort: Option<isize>,
}

/// On the simulated clock, the default tick spans about this many consumption rows.
const ROWS_PER_SIMULATED_TICK: f64 = 30_000.0;

/// The longest default tick of the simulated clock, in seconds: an hour, and at most a sixth
/// of the retention horizon, so a tick never spans more than a small part of a window's life.
const MAX_SIMULATED_TICK_SECONDS: f64 = 3_600.0;

/// 2024-01-01 00:00:00 UTC: the fixed start of the simulated clock and of replays.
pub const DEFAULT_SIMULATED_START: Millis = 1_704_067_200_000;

impl RunArgs {
    /// The database sink these options name.
    pub fn sink_target(&self) -> Result<SinkTarget, TargetError> {
        SinkTarget::resolve(self.sink.as_deref())
    }
}

impl JobArgs {
    /// Whether the input ends (a replay, or a generator with `--consumptions`).
    pub fn bounded(&self) -> bool {
        self.input.is_some() || self.consumptions.is_some()
    }

    /// The clock actually used: replays always run simulated.
    pub fn effective_clock(&self) -> Clock {
        if self.input.is_some() {
            Clock::Simulated
        } else {
            self.clock
        }
    }

    /// The span of one logical time.
    pub fn effective_tick(&self) -> Millis {
        self.tick.unwrap_or(match self.effective_clock() {
            Clock::Wall => 100,
            Clock::Simulated if self.input.is_none() => {
                let horizon_seconds = self.retention.map_or(f64::INFINITY, |r| r as f64 / 6_000.0);
                let longest = MAX_SIMULATED_TICK_SECONDS.min(horizon_seconds).floor();
                let seconds = (ROWS_PER_SIMULATED_TICK / self.consumption_rate).round();
                seconds.min(longest).max(1.0) as Millis * 1_000
            }
            Clock::Simulated => 1_000,
        })
    }

    /// The source clock's first instant when `--start` is not given: now on the wall clock
    /// (rounded down to a tick), else [`DEFAULT_SIMULATED_START`].
    pub fn default_start(&self) -> Millis {
        match self.effective_clock() {
            Clock::Wall => now_millis() - now_millis().rem_euclid(self.effective_tick()),
            Clock::Simulated => DEFAULT_SIMULATED_START,
        }
    }

    /// The source these options describe.
    pub fn source(&self) -> SourceSpec {
        let tick = self.effective_tick();
        let start = self.start.unwrap_or_else(|| self.default_start());
        match &self.input {
            Some(dir) => SourceSpec::Replay(ReplayConfig {
                dir: dir.clone(),
                batch_rows: self.replay_batch as usize,
                interleave: self.interleave,
                start,
                tick,
            }),
            None => SourceSpec::Generator(GeneratorConfig {
                seed: self.seed,
                users: self.users,
                consumptions: self.consumptions,
                user_rate: self.user_rate,
                consumption_rate: self.consumption_rate,
                start,
                tick,
                regions: self.regions,
                user_updates: !self.no_user_updates,
                ..GeneratorConfig::default()
            }),
        }
    }

    /// The runtime configuration these options describe.
    pub fn run_config(&self, sink_ods_and_dwd: bool) -> Result<RunConfig, OptionError> {
        Ok(RunConfig {
            timely: self.timely_config()?,
            retention: Retention {
                window: self.window,
                horizon: self.retention,
            },
            clock: self.effective_clock(),
            max_inflight: self.max_inflight as usize,
            progress_rows: self.progress_rows as usize,
            sink_ods_and_dwd,
            stop: Default::default(),
            durability: None,
            gathered: None,
            monitor: None,
        })
    }
}

impl RunArgs {
    /// The options that define the job, by their command-line names: a restart must give the
    /// same ones (`--start` as the job recorded it, when not given). `input_fingerprint`
    /// describes a replay's files, so a changed input is a different job.
    pub fn job_options(&self, input_fingerprint: Option<String>) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        let mut put = |name: &str, value: String| {
            options.insert(name.to_string(), value);
        };
        let millis = |value: Millis| format!("{value}ms");
        match self.job.source() {
            SourceSpec::Replay(replay) => {
                let files = input_fingerprint.unwrap_or_default();
                put("--input", format!("{} ({files})", replay.dir.display()));
                put("--replay-batch", replay.batch_rows.to_string());
                put("--interleave", format!("{:?}", replay.interleave));
                put("--start", crate::model::values::format_millis(replay.start));
                put("--tick", millis(replay.tick));
            }
            SourceSpec::Generator(generator) => {
                put("--seed", generator.seed.to_string());
                put("--users", generator.users.to_string());
                put(
                    "--consumptions",
                    generator
                        .consumptions
                        .map_or(String::new(), |n| n.to_string()),
                );
                put("--user-rate", generator.user_rate.to_string());
                put("--consumption-rate", generator.consumption_rate.to_string());
                put("--no-user-updates", (!generator.user_updates).to_string());
                put("--regions", generator.regions.to_string());
                put(
                    "--start",
                    crate::model::values::format_millis(generator.start),
                );
                put("--tick", millis(generator.tick));
                put(
                    "--clock",
                    format!("{:?}", self.job.effective_clock()).to_lowercase(),
                );
            }
            SourceSpec::Scripted(_) => {}
        }
        put("--window", millis(self.job.window));
        put(
            "--retention",
            self.job.retention.map_or(String::new(), millis),
        );
        put("--workers", self.job.workers.to_string());
        put("--processes", self.job.processes.to_string());
        put("--sink-ods-dwd", self.sink_ods_dwd.to_string());
        put("--export", self.export.is_some().to_string());
        options
    }
}

impl JobArgs {
    /// Threads, processes and serialization as timely's configuration.
    pub fn timely_config(&self) -> Result<timely::Config, OptionError> {
        use timely::CommunicationConfig;
        let workers = self.workers as usize;
        let communication = if self.processes > 1 {
            if self.process >= self.processes {
                return Err(OptionError::ProcessIndex {
                    process: self.process,
                    processes: self.processes,
                });
            }
            let addresses = match &self.hostfile {
                Some(file) => {
                    let text =
                        std::fs::read_to_string(file).map_err(|source| OptionError::HostFile {
                            path: file.clone(),
                            source,
                        })?;
                    let addresses: Vec<String> = text
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| l.trim().to_string())
                        .collect();
                    if (addresses.len() as u64) < self.processes {
                        return Err(OptionError::TooFewHosts {
                            path: file.clone(),
                            found: addresses.len(),
                            processes: self.processes,
                        });
                    }
                    addresses
                        .into_iter()
                        .take(self.processes as usize)
                        .collect()
                }
                None => (0..self.processes)
                    .map(|i| format!("localhost:{}", 2101 + i))
                    .collect(),
            };
            CommunicationConfig::Cluster {
                threads: workers,
                process: self.process as usize,
                addresses,
                report: false,
                zerocopy: self.serialize,
            }
        } else if self.serialize {
            CommunicationConfig::ProcessBinary(workers)
        } else if workers > 1 {
            CommunicationConfig::Process(workers)
        } else {
            CommunicationConfig::Thread
        };
        let mut worker = timely::WorkerConfig::default();
        if let Some(effort) = self.merge_effort {
            // Merge arrangement batches while idle, so retracted history is compacted sooner.
            let options = differential_dataflow::Config::default().idle_merge_effort(Some(effort));
            differential_dataflow::configure(&mut worker, &options);
        }
        Ok(timely::Config {
            communication,
            worker,
        })
    }
}
