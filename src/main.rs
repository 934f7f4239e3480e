//! The `gridflow` binary: parses the command line, runs the warehouse with a status line, and
//! writes the export when the input is bounded.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

use gridflow::cli::{Cli, Command, QueryArgs, RunArgs};
use gridflow::dataflows::sink::Materialized;
use gridflow::export::{write_errors, write_warehouse};
use gridflow::metrics::{peak_memory_bytes, Metrics, MetricsSnapshot};
use gridflow::query::{render, run_query};
use gridflow::runtime::{run, RunError};
use gridflow::sinks::background::Background;
use gridflow::sinks::postgres::Postgres;
use gridflow::sinks::sqlite::Sqlite;
use gridflow::sinks::{Database, DatabaseSink, SinkError, SinkTarget, Tee};

/// mimalloc: the arrangements allocate and free many small batches and strings; glibc's
/// allocator spent a fifth of the run consolidating free lists (measured in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit codes (besides 0, and clap's 2 for bad options): a failure prints one line `error: …`.
mod exit {
    /// Any other failure.
    pub const FAILED: u8 = 1;
    /// The sink is held by another running job.
    pub const SINK_HELD: u8 = 3;
    /// The sink failed after its retries, or was taken over: the job stopped.
    pub const SINK_FAILED: u8 = 4;
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run_warehouse(*args),
        Command::Query(args) => run_business_query(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
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
    let sink_error = error.chain().find_map(|cause| {
        cause
            .downcast_ref::<SinkError>()
            .or_else(|| match cause.downcast_ref::<RunError>() {
                Some(RunError::Sink(error)) => Some(error),
                _ => None,
            })
    });
    match sink_error {
        Some(SinkError::Held { .. }) => exit::SINK_HELD,
        Some(SinkError::GaveUp { .. } | SinkError::Stopped { .. } | SinkError::Fenced) => {
            exit::SINK_FAILED
        }
        _ => exit::FAILED,
    }
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

fn run_warehouse(args: RunArgs) -> anyhow::Result<()> {
    if args.export.is_some() && !args.bounded() {
        bail!("--export needs bounded input: give --consumptions N or --input DIR");
    }
    let config = args
        .run_config(args.export.is_some() || args.sink_ods_dwd || args.multi_process())
        .map_err(anyhow::Error::msg)?;
    // Ctrl-C stops the sources; the run then drains and prints its totals.
    let stop = config.stop.clone();
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))
        .context("cannot install the Ctrl-C handler")?;
    let metrics = Arc::new(Metrics::default());
    let finished = Arc::new(AtomicBool::new(false));
    let status = spawn_status_line(&metrics, &finished, args.status_interval);

    let target = args.sink_target().map_err(anyhow::Error::msg)?;
    // Only process 0 runs worker 0, where changes leave: only it opens the sink.
    let target = if args.process == 0 {
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
    let database = match database {
        Some(database) => {
            let sink = DatabaseSink::new(database, args.sink_ods_dwd)
                .context("cannot read the sink's progress")?
                .with_metrics(metrics.clone());
            if let Some(upto) = sink.applied_upto() {
                eprintln!("the sink has applied up to logical time {upto}; earlier change sets are skipped");
            }
            // The database writes on its own thread while the dataflow computes on.
            Some(Background::start(sink))
        }
        None => None,
    };
    let export = args.export.as_ref().map(|_| Materialized::default());
    // Worker 0 takes the sinks out of this slot when it starts; with neither, no changes leave.
    let slot = Mutex::new(Some(Tee(export, database)));
    let wants_changes = args.export.is_some()
        || args.sink_target().is_ok_and(|t| t != SinkTarget::None)
        || args.multi_process();
    let make_sink = wants_changes.then_some(move || {
        slot.lock()
            .expect("the sink slot")
            .take()
            .expect("one sink per run")
    });
    let outcome = run(config, args.source(), make_sink, metrics.clone());
    finished.store(true, Ordering::Relaxed);
    if let Some(status) = status {
        let _ = status.join();
    }
    let outcome = outcome?;
    let (export, database) = match outcome.sink {
        Some(Tee(export, database)) => (export, database),
        None => (None, None),
    };
    // The run is done when the database holds its last change set; a sink failure is raised here.
    let draining = Instant::now();
    let database = database.map(Background::finish).transpose()?;
    let elapsed = outcome.elapsed + draining.elapsed();

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
    Ok(())
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
