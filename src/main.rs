//! The `gridflow` binary: parses the command line, runs the warehouse with a status line, and
//! writes the export when the input is bounded.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use gridflow::bench::machine::Machine;
use gridflow::bench::{Bench, Scenario};
use gridflow::cli::{BenchArgs, Cli, Command, QueryArgs, RunArgs, VerifyArgs};
use gridflow::csv_input::fingerprint;
use gridflow::dataflows::sink::{ChangeSink, Materialized, TableRow};
use gridflow::durable::export_log::DurableExport;
use gridflow::durable::{JobRecord, StateDir, StateError};
use gridflow::export::{write_errors, write_warehouse};
use gridflow::metrics::{peak_memory_bytes, Metrics, MetricsSnapshot};
use gridflow::query::{render, run_query};
use gridflow::report::{RunReport, Sampler};
use gridflow::rows::Millis;
use gridflow::runtime::Monitor;
use gridflow::runtime::{run, Durability, RunError};
use gridflow::sinks::background::Background;
use gridflow::sinks::postgres::Postgres;
use gridflow::sinks::sqlite::Sqlite;
use gridflow::sinks::{Database, DatabaseSink, SinkError, SinkTarget, Tee};
use gridflow::source::Time;
use gridflow::ui::corrections::SharedCorrections;
use gridflow::ui::dataflow_log::SharedDataflow;
use gridflow::ui::gather::JobCounters;
use gridflow::ui::live::LiveDashboard;
use gridflow::ui::{JobView, Status as UiStatus, Ui, UiState};
use gridflow::values::parse_millis;
use gridflow::verify::random::{verify_random, RandomVerdict};
use gridflow::verify::{verify, Against, Options as VerifyOptions, Verdict, VerifyError};

/// mimalloc: the arrangements allocate and free many small batches and strings; glibc's
/// allocator spent a fifth of the run consolidating free lists (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (besides 0, and clap's 2 for bad options): a failure prints one line `error: …`.
/// A sink or a state dir held by another running job is 3.
mod exit {
    /// Any other failure.
    pub const FAILED: u8 = 1;
    /// `gridflow verify`: the tables differ from an oracle's (the report is on stdout). Not a
    /// failure of the command, so no `error:` line.
    pub const DIFFERENCE: u8 = 1;
    /// The sink is held by another running job.
    pub const SINK_HELD: u8 = 3;
    /// The sink failed after its retries, or was taken over: the job stopped.
    pub const SINK_FAILED: u8 = 4;
    /// The state dir is corrupt, or cannot be read or written.
    pub const STATE_FAILED: u8 = 5;
    /// The state dir or the sink belongs to another job (other options, other rows).
    pub const OTHER_JOB: u8 = 6;
    /// `gridflow verify` could not verify: the input cannot be read, the run or PostgreSQL
    /// failed (as opposed to a difference, which is 1).
    pub const CANNOT_VERIFY: u8 = 7;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_warehouse(*args).map(|()| ExitCode::SUCCESS),
        Command::Query(args) => run_business_query(args).map(|()| ExitCode::SUCCESS),
        Command::Verify(args) => run_verify(*args),
        Command::Bench(args) => run_bench(args).map(|()| ExitCode::SUCCESS),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line: the whole chain of causes, a server's multi-line message folded.
            let message = format!("{error:#}");
            eprintln!(
                "error: {}",
                message.split_whitespace().collect::<Vec<_>>().join(" ")
            );
            ExitCode::from(exit_code(&error))
        }
    }
}

/// The documented exit code of a failure.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error.chain().any(|cause| cause.is::<VerifyError>()) {
        return exit::CANNOT_VERIFY;
    }
    for cause in error.chain() {
        let state_error =
            cause
                .downcast_ref::<StateError>()
                .or_else(|| match cause.downcast_ref::<RunError>() {
                    Some(RunError::State(error)) => Some(error),
                    _ => None,
                });
        if let Some(error) = state_error {
            return match error {
                StateError::Held { .. } => exit::SINK_HELD,
                StateError::OtherJob { .. } => exit::OTHER_JOB,
                StateError::Io { .. }
                | StateError::Corrupt { .. }
                | StateError::SinkBehindSnapshot { .. } => exit::STATE_FAILED,
            };
        }
        let sink_error =
            cause
                .downcast_ref::<SinkError>()
                .or_else(|| match cause.downcast_ref::<RunError>() {
                    Some(RunError::Sink(error)) => Some(error),
                    _ => None,
                });
        if let Some(error) = sink_error {
            return match error {
                SinkError::Held { .. } => exit::SINK_HELD,
                SinkError::OtherJob { .. } => exit::OTHER_JOB,
                SinkError::GaveUp { .. } | SinkError::Stopped { .. } | SinkError::Fenced => {
                    exit::SINK_FAILED
                }
                _ => exit::FAILED,
            };
        }
    }
    exit::FAILED
}

fn run_business_query(args: QueryArgs) -> anyhow::Result<()> {
    let target = args.sink_target().map_err(anyhow::Error::msg)?;
    let result =
        run_query(&target, &args.sink_schema, args.name, &args.options()).with_context(|| {
            let name = args
                .name
                .to_possible_value()
                .map(|v| v.get_name().to_string());
            format!("query {} failed", name.unwrap_or_default())
        })?;
    let stdout = std::io::stdout();
    match render::write(&result, args.format, &mut stdout.lock()) {
        // A reader that stopped early (`| head`) is not an error.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        printed => printed.context("cannot print the result"),
    }
}

fn run_verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(bug) = args.plant_bug {
        gridflow::planted::plant(bug);
        eprintln!("planted bug {bug:?} (--plant-bug): verify must catch it");
    }
    let progress = !args.no_progress;
    let against = args
        .against
        .clone()
        .filter(|url| !url.is_empty())
        .map(|url| Against {
            url,
            schema: args.against_schema.clone(),
        });
    if args.random {
        let verdict = verify_random(
            args.cases,
            args.job.seed,
            &args.failure_dir,
            against,
            progress,
        )?;
        return Ok(match verdict {
            RandomVerdict::Passed {
                cases,
                times_checked,
                elapsed,
            } => {
                report(&format!(
                    "verified: {cases} random cases (seed {}), {times_checked} logical times \
                     checked, in {:.3} s\n",
                    args.job.seed,
                    elapsed.as_secs_f64()
                ));
                ExitCode::SUCCESS
            }
            RandomVerdict::Failed {
                difference,
                params,
                ticks,
                dir,
                command,
                elapsed,
            } => {
                report(&format!(
                    "{difference}a random case (seed {}) failed; shrunk to {ticks} logical times \
                     under {params:?} in {:.3} s, written to {}. Reproduce with:\n{command}\n",
                    args.job.seed,
                    elapsed.as_secs_f64(),
                    dir.display()
                ));
                ExitCode::from(exit::DIFFERENCE)
            }
        });
    }
    let config = args.job.run_config(true).map_err(anyhow::Error::msg)?;
    let options = VerifyOptions {
        every: args.every.unwrap_or(1),
        against,
        postgres_every: args.every,
        progress,
    };
    Ok(match verify(config, args.job.source(), &options)? {
        Verdict::Equal(summary) => {
            report(&format!("{}\n", summary.line()));
            ExitCode::SUCCESS
        }
        Verdict::Differs(difference, summary) => {
            report(&format!(
                "{difference}({} logical times compared equal before it)\n",
                summary.checked.saturating_sub(1),
            ));
            ExitCode::from(exit::DIFFERENCE)
        }
        Verdict::NotProcessZero => {
            eprintln!(
                "process {} ran its workers; process 0 compares the tables",
                args.job.process
            );
            ExitCode::SUCCESS
        }
    })
}

/// Prints verify's report on stdout; a reader that stopped early (`| head`) is no error.
fn report(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let binary = match args.binary {
        Some(binary) => binary,
        None => std::env::current_exe().context("cannot find this binary's path")?,
    };
    let bench = Bench {
        binary,
        quick: args.quick,
        runs: args.runs.unwrap_or(if args.quick { 1 } else { 3 }) as usize,
        out: args.out,
        database_url: args.against,
        machine: Machine::this(),
    };
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios
    };
    gridflow::bench::run(&bench, &scenarios, &args.doc)
}

fn run_warehouse(mut args: RunArgs) -> anyhow::Result<()> {
    if args.export.is_some() && !args.job.bounded() {
        bail!("--export needs bounded input: give --consumptions N or --input DIR");
    }
    // The state dir: locked for this run; it says which job this is, if it ran before.
    let state = if args.ephemeral {
        None
    } else {
        Some(StateDir::open(
            &args.state_dir,
            args.job.process as usize,
            args.job.processes as usize,
        )?)
    };
    // A job reset takes over what the job it replaces held (its processes are gone: this one
    // holds its state dir); a corrupt job file is no obstacle to starting over.
    let replaced = match (&state, args.reset) {
        (Some(state), true) => {
            let replaced = state.job().ok().flatten().map(|job| job.id);
            state.clear()?;
            replaced
        }
        _ => None,
    };
    let recorded = state.as_ref().map(StateDir::job).transpose()?.flatten();
    // The job's clock: as recorded, or as given, or (a new job on the wall clock) now.
    if args.job.start.is_none() {
        let recorded_start = recorded
            .as_ref()
            .and_then(|job| job.options.get("--start"))
            .map(|start| parse_millis(start))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        args.job.start = Some(recorded_start.unwrap_or_else(|| args.job.default_start()));
    }
    let fingerprint = args
        .job
        .input
        .as_deref()
        .map(fingerprint)
        .transpose()
        .context("cannot read the input")?;
    let options = args.job_options(fingerprint);
    let job = match (recorded, &state) {
        (Some(job), Some(state)) => {
            let differences = job.differences(&options);
            if !differences.is_empty() {
                return Err(StateError::OtherJob {
                    dir: state.root().to_path_buf(),
                    id: job.id,
                    differences: differences.join("; "),
                }
                .into());
            }
            eprintln!(
                "resuming job {} (started {} UTC) from {}",
                job.id,
                job.created,
                state.root().display()
            );
            job
        }
        (_, state) => {
            let job = JobRecord::new(options);
            if let Some(state) = state {
                state.write_job(&job)?;
            }
            job
        }
    };

    let mut config = args
        .job
        .run_config(args.export.is_some() || args.sink_ods_dwd || args.job.multi_process())
        .map_err(anyhow::Error::msg)?;
    // Ctrl-C (and SIGTERM, SIGHUP) stops the sources; the run then drains and prints its totals.
    let stop = config.stop.clone();
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let metrics = Arc::new(Metrics::default());
    let checkpoint_interval = Duration::from_millis(args.checkpoint_interval as u64);

    let target = args.sink_target().map_err(anyhow::Error::msg)?;
    // Only process 0 runs worker 0, where changes leave: only it opens the sink.
    let target = if args.job.process == 0 {
        target
    } else {
        SinkTarget::None
    };
    let database: Option<Box<dyn Database + Send>> = match target {
        SinkTarget::Sqlite(path) => {
            Some(Box::new(Sqlite::open(&path).with_context(|| {
                format!("cannot open the sink {}", path.display())
            })?))
        }
        SinkTarget::Postgres(url) => Some(Box::new(
            Postgres::connect(&url, &args.sink_schema)
                .context("cannot open the PostgreSQL sink")?,
        )),
        SinkTarget::None => None,
    };
    // How far each sink has committed, for the job's checkpoints and restarts.
    let mut committed = Vec::new();
    let database = match database {
        Some(database) => {
            let sink_committed = Arc::new(AtomicU64::new(0));
            committed.push(sink_committed.clone());
            let takes_over = match &replaced {
                Some(replaced) => Some(replaced.as_str()),
                None => (!args.ephemeral).then_some(job.id.as_str()),
            };
            let mut sink = DatabaseSink::for_job(database, args.sink_ods_dwd, takes_over)
                .context("cannot read the sink's progress")?
                .with_metrics(metrics.clone())
                .with_committed(sink_committed);
            if args.reset {
                sink.reset().context("cannot clear the sink's tables")?;
            }
            if let Err(error) = sink.adopt(&job.id) {
                // Not this job's sink: give the lease back at once for the job it is.
                let _ = sink.release();
                return Err(error.into());
            }
            if let Some(upto) = sink.applied_upto() {
                eprintln!("the sink has applied up to logical time {upto}; earlier change sets are skipped");
            }
            // The database writes on its own thread while the dataflow computes on.
            Some(Background::start(sink))
        }
        None => None,
    };
    let export = match (&args.export, &state) {
        (None, _) => None,
        (Some(_), None) => Some(Export::Plain(Materialized::default())),
        (Some(_), Some(state)) => {
            let export_committed = Arc::new(AtomicU64::new(0));
            committed.push(export_committed.clone());
            let export =
                DurableExport::open(&state.export_log(), checkpoint_interval, export_committed)?;
            Some(Export::Durable(Box::new(export)))
        }
    };
    config.durability = state.map(|state| Durability {
        state: Arc::new(state),
        checkpoint_interval,
        fold_min_bytes: args.fold_min_bytes,
        committed,
    });
    let finished = Arc::new(AtomicBool::new(false));
    let status = spawn_status_line(&metrics, &finished, args.status_interval);
    let sampler = args
        .report
        .as_ref()
        .map(|_| {
            Sampler::start(
                metrics.clone(),
                Duration::from_millis(args.report_interval as u64),
            )
        })
        .transpose()
        .context("cannot start the report's sampler")?;
    let gathered = JobCounters::default();
    config.gathered = Some(gathered.clone());
    let ui = serve_ui(&args, &job, &metrics, gathered);
    // The UI's exits are built unless `--no-ui`, and always in a multi-process job: every
    // process must build the same dataflow whatever its own options say (process 1 has no
    // UI of its own). Only the UI's process keeps what they gather.
    config.monitor = (!args.no_ui || args.job.multi_process()).then(|| {
        ui.as_ref()
            .map(|(state, _)| state.monitor.clone())
            .unwrap_or_default()
    });

    // Worker 0 takes the sinks out of this slot when it starts; with neither, no changes leave.
    let slot = Mutex::new(Some(Tee(export, database)));
    let wants_changes = args.export.is_some()
        || args.sink_target().is_ok_and(|t| t != SinkTarget::None)
        || args.job.multi_process();
    let make_sink = wants_changes.then_some(move || {
        slot.lock()
            .expect("the sink slot")
            .take()
            .expect("one sink per run")
    });
    let stopped = config.stop.clone();
    let outcome = run(config, args.job.source(), make_sink, metrics.clone());
    finished.store(true, Ordering::Relaxed);
    if let Some(status) = status {
        let _ = status.join();
    }
    if let Some((state, _)) = &ui {
        state.set_status(match &outcome {
            Ok(_) => UiStatus::Finished,
            Err(error) => UiStatus::Failed {
                error: error.to_string(),
            },
        });
    }
    if outcome.is_err() {
        linger(&ui, args.ui_linger, &stopped);
    }
    let outcome = outcome?;
    let (export, database) = match outcome.sink {
        Some(Tee(export, database)) => (export, database),
        None => (None, None),
    };
    // The run is done when the database holds its last change set; a sink failure is raised here.
    let draining = Instant::now();
    let database = database.map(Background::finish).transpose()?;
    let export = export.map(Export::finish).transpose()?;
    let elapsed = outcome.elapsed + draining.elapsed();

    if let (Some(path), Some(sampler)) = (&args.report, sampler) {
        RunReport::of(&metrics, elapsed, sampler.finish())
            .write(path)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let totals = metrics.snapshot();
    let peak = peak_memory_bytes().map_or("unknown".to_string(), |b| {
        format!("{} MiB", b / (1024 * 1024))
    });
    eprintln!(
        "done in {:.3} s, peak memory {peak}: {}",
        elapsed.as_secs_f64(),
        totals.status_line(&MetricsSnapshot::default(), elapsed)
    );
    if let Some(mut database) = database {
        database
            .release()
            .context("cannot release the sink's lease")?;
        let upto = database
            .applied_upto()
            .map_or("-".to_string(), |t| t.to_string());
        let busy = totals.sink_busy_micros as f64 / 1e6;
        eprintln!(
            "sink applied up to logical time {upto} ({} change sets skipped as already applied): \
             {} row changes in {} transactions, {busy:.3} s writing ({:.0} row changes/s)",
            database.skipped,
            totals.sink_row_changes,
            totals.sink_transactions,
            totals.sink_row_changes as f64 / busy.max(1e-9),
        );
    }
    if let (Some(dir), Some(sink)) = (&args.export, export) {
        let (warehouse, errors) = sink.snapshot();
        write_warehouse(dir, &warehouse)
            .with_context(|| format!("cannot write the export to {}", dir.display()))?;
        write_errors(dir, &errors)
            .with_context(|| format!("cannot write errors.csv to {}", dir.display()))?;
        if !sink.violations.is_empty() {
            bail!(
                "{} rows had a multiplicity other than 0 or 1",
                sink.violations.len()
            );
        }
        eprintln!("exported {} tables to {}", 6, dir.display());
    }
    linger(&ui, args.ui_linger, &stopped);
    Ok(())
}

/// With `--ui-linger`, keeps the web UI serving the ended job's final state for that long, or
/// until Ctrl-C.
fn linger(ui: &Option<(Arc<UiState>, Ui)>, linger: Option<Millis>, stopped: &AtomicBool) {
    let (Some((_, ui)), Some(linger)) = (ui, linger) else {
        return;
    };
    if stopped.load(Ordering::Relaxed) {
        return;
    }
    eprintln!(
        "the job has ended; the web UI on http://{}/ stays up for {:.0} s (Ctrl-C ends it)",
        ui.addr(),
        linger as f64 / 1000.0
    );
    let until = Instant::now() + Duration::from_millis(linger as u64);
    while Instant::now() < until && !stopped.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the web UI on process 0, unless `--no-ui`; a port that cannot be had is a warning,
/// not a failure of the job.
fn serve_ui(
    args: &RunArgs,
    job: &JobRecord,
    metrics: &Arc<Metrics>,
    gathered: JobCounters,
) -> Option<(Arc<UiState>, Ui)> {
    if args.no_ui || args.job.process != 0 {
        return None;
    }
    let view = JobView {
        id: job.id.clone(),
        created: job.created.clone(),
        options: job.options.clone(),
        workers: args.job.workers,
        processes: args.job.processes,
        process: args.job.process,
        state_dir: (!args.ephemeral).then(|| args.state_dir.display().to_string()),
        checkpoint_interval_ms: args.checkpoint_interval as u64,
        sink: args
            .sink_target()
            .map_or_else(|error| error, |target| target.redacted()),
    };
    let monitor = Monitor {
        live: Some(Arc::new(Mutex::new(LiveDashboard::new(args.job.window)))),
        corrections: Some(SharedCorrections::default()),
        dataflow: Some(SharedDataflow::default()),
    };
    let state = UiState::new(view, metrics.clone(), gathered, monitor);
    match Ui::start(&args.ui_addr, state.clone()) {
        Ok(ui) => {
            eprintln!(
                "web UI on http://{}/ (the job; /dashboard: the control room; /api/…, /metrics)",
                ui.addr()
            );
            Some((state, ui))
        }
        Err(error) => {
            eprintln!(
                "the web UI cannot listen on {} ({error}): running without it; give --ui-addr or --no-ui",
                args.ui_addr
            );
            None
        }
    }
}

/// The export's sink: its tables in memory, and in a durable job its change log.
enum Export {
    Plain(Materialized),
    Durable(Box<DurableExport>),
}

impl Export {
    /// The final tables (the change log made durable).
    fn finish(self) -> Result<Materialized, StateError> {
        match self {
            Export::Plain(tables) => Ok(tables),
            Export::Durable(export) => export.finish(),
        }
    }
}

impl ChangeSink for Export {
    fn apply(&mut self, time: Time, changes: Vec<(TableRow, isize)>) {
        match self {
            Export::Plain(tables) => tables.apply(time, changes),
            Export::Durable(export) => export.apply(time, changes),
        }
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Export::Plain(tables) => tables.flush(),
            Export::Durable(export) => export.flush(),
        }
    }
}

/// Prints a status line every `interval_seconds` until `finished` is set.
fn spawn_status_line(
    metrics: &Arc<Metrics>,
    finished: &Arc<AtomicBool>,
    interval_seconds: u64,
) -> Option<std::thread::JoinHandle<()>> {
    if interval_seconds == 0 {
        return None;
    }
    let (metrics, finished) = (metrics.clone(), finished.clone());
    let interval = Duration::from_secs(interval_seconds);
    Some(std::thread::spawn(move || {
        let mut previous = metrics.snapshot();
        let mut last = Instant::now();
        while !finished.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last.elapsed() >= interval {
                let current = metrics.snapshot();
                eprintln!("{}", current.status_line(&previous, last.elapsed()));
                previous = current;
                last = Instant::now();
            }
        }
    }))
}
