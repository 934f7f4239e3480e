//! `gridflow run`: one job from start to end, in phases — the state dir and which job this is
//! ([`identify`]), where its changes go ([`open_sinks`]), the web UI ([`serve_ui`]), the run
//! itself ([`crate::runtime`]), and what is left once it ends ([`finish`]: the database drained
//! and released, the report, the export).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::args::RunArgs;
use super::error::CommandError;
use super::status::{linger, spawn_status_line};
use crate::durable::export_log::DurableExport;
use crate::durable::{JobRecord, StateDir, StateError};
use crate::metrics::report::{RunReport, Sampler};
use crate::metrics::{peak_memory_bytes, Metrics, MetricsSnapshot};
use crate::model::values::parse_millis;
use crate::model::{TableRow, Time};
use crate::operators::retention::Retention;
use crate::runtime::{run as run_job, Durability, RunOutcome};
use crate::sinks::background::Background;
use crate::sinks::database::{connect_retrying, Database, DatabaseSink};
use crate::sinks::export::{write_errors, write_warehouse};
use crate::sinks::materialized::Materialized;
use crate::sinks::postgres::Postgres;
use crate::sinks::sqlite::Sqlite;
use crate::sinks::target::SinkTarget;
use crate::sinks::{ChangeSink, SinkError, Tee};
use crate::sources::csv_replay::fingerprint;
use crate::ui::corrections::SharedCorrections;
use crate::ui::dataflow_log::SharedDataflow;
use crate::ui::gather::JobCounters;
use crate::ui::live::LiveDashboard;
use crate::ui::{JobView, Monitor, Status as UiStatus, Ui, UiState};

/// A database sink written on its own thread.
type DatabaseOnItsThread = Background<Box<dyn Database + Send>>;

/// What worker 0 hands every completed change set to: the export and the database, either
/// or both (or neither, when nothing outside wants the changes).
type JobSink = Option<Tee<Option<Export>, Option<DatabaseOnItsThread>>>;

/// Runs the job `args` describe until its input ends (or Ctrl-C), or it fails.
pub fn run(mut args: RunArgs) -> Result<(), CommandError> {
    if args.export.is_some() && !args.job.bounded() {
        return Err(CommandError::ExportNeedsBoundedInput);
    }
    let (state, replaced) = open_state(&args)?;
    let job = identify(&mut args, state.as_ref())?;
    let mut config = args
        .job
        .run_config(args.export.is_some() || args.sink_ods_dwd)?;
    // Ctrl-C (and SIGTERM, SIGHUP) stops the sources; the run then drains and prints its totals.
    let stop = config.stop.clone();
    ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed))?;
    let metrics = Arc::new(Metrics::default());
    let checkpoint_interval = Duration::from_millis(args.checkpoint_interval as u64);
    let sinks = open_sinks(
        &args,
        &job,
        state.as_ref(),
        replaced,
        &metrics,
        config.retention,
    )?;
    config.durability = state.map(|state| Durability {
        state: Arc::new(state),
        checkpoint_interval,
        fold_min_bytes: args.fold_min_bytes,
        committed: sinks.committed.clone(),
    });

    let finished = Arc::new(AtomicBool::new(false));
    let status = spawn_status_line(&metrics, &finished, args.status_interval);
    let sampler = args
        .report
        .as_ref()
        .map(|_| {
            let interval = Duration::from_millis(args.report_interval as u64);
            Sampler::start(metrics.clone(), interval)
        })
        .transpose()
        .map_err(CommandError::Sampler)?;
    let gathered = JobCounters::default();
    config.gathered = Some(gathered.clone());
    let ui = serve_ui(&args, &job, &metrics, gathered);
    // Only the UI's process keeps what the UI's exits gather; process 0 decides for the job
    // whether they are built at all.
    config.monitor = ui.as_ref().map(|(state, _)| state.monitor.clone());

    // Worker 0 takes the sinks out of this slot when it starts.
    let wants_changes = sinks.export.is_some() || sinks.database.is_some();
    let slot = Mutex::new(Some(Tee(sinks.export, sinks.database)));
    let make_sink = wants_changes.then_some(move || -> JobSink {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    });
    let stopped = config.stop.clone();
    let outcome = run_job(config, args.job.source(), make_sink, metrics.clone());
    finished.store(true, Ordering::Relaxed);
    if let Some(status) = status {
        let _ = status.join();
    }
    let ui_state = ui.as_ref().map(|(state, _)| state);
    let ui = ui.as_ref().map(|(_, ui)| ui);
    if let Some(state) = ui_state {
        state.set_status(match &outcome {
            Ok(_) => UiStatus::Finished,
            Err(error) => UiStatus::Failed {
                error: error.to_string(),
            },
        });
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            linger(ui, args.ui_linger, &stopped);
            return Err(error.into());
        }
    };
    finish(&args, outcome, &metrics, sampler)?;
    linger(ui, args.ui_linger, &stopped);
    Ok(())
}

/// The state dir, locked for this run, unless the job is ephemeral; with `--reset` it is
/// cleared first, and the id of the job it held is returned (the new job takes over that job's
/// sink).
fn open_state(args: &RunArgs) -> Result<(Option<StateDir>, Option<String>), CommandError> {
    if args.ephemeral {
        return Ok((None, None));
    }
    let state = StateDir::open(
        &args.state_dir,
        args.job.process as usize,
        args.job.processes as usize,
    )?;
    let mut replaced = None;
    if args.reset {
        // A corrupt job file is no obstacle to starting over.
        replaced = state.job().ok().flatten().map(|job| job.id);
        state.clear()?;
    }
    Ok((Some(state), replaced))
}

/// Which job this is: the one the state dir recorded (its options must match), or a new one.
/// A job on the wall clock records its start, so a restart resumes the same clock.
fn identify(args: &mut RunArgs, state: Option<&StateDir>) -> Result<JobRecord, CommandError> {
    let recorded = state.map(StateDir::job).transpose()?.flatten();
    if args.job.start.is_none() {
        let recorded_start = recorded
            .as_ref()
            .and_then(|job| job.options.get("--start"))
            .map(|start| parse_millis(start))
            .transpose()
            .map_err(super::args::OptionError::from)?;
        args.job.start = Some(recorded_start.unwrap_or_else(|| args.job.default_start()));
    }
    let fingerprint = args
        .job
        .input
        .as_deref()
        .map(fingerprint)
        .transpose()
        .map_err(CommandError::Input)?;
    let options = args.job_options(fingerprint);
    match (recorded, state) {
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
            tracing::info!(
                "resuming job {} (started {} UTC) from {}",
                job.id,
                job.created,
                state.root().display()
            );
            Ok(job)
        }
        (_, state) => {
            let job = JobRecord::new(options);
            if let Some(state) = state {
                state.write_job(&job)?;
            }
            Ok(job)
        }
    }
}

/// Where a job's changes go, and how far each destination has committed.
struct Sinks {
    export: Option<Export>,
    database: Option<DatabaseOnItsThread>,
    committed: Vec<Arc<AtomicU64>>,
}

/// Opens the database sink (on process 0, which runs worker 0, where changes leave) and the
/// export, each claimed for `job`.
fn open_sinks(
    args: &RunArgs,
    job: &JobRecord,
    state: Option<&StateDir>,
    replaced: Option<String>,
    metrics: &Arc<Metrics>,
    retention: Retention,
) -> Result<Sinks, CommandError> {
    let mut committed = Vec::new();
    let target = args.sink_target()?;
    // Only process 0 runs worker 0, where changes leave: only it opens the sink.
    let target = if args.job.process == 0 {
        target
    } else {
        SinkTarget::None
    };
    let database = open_database(target, &args.sink_schema)?
        .map(|database| {
            let sink_committed = Arc::new(AtomicU64::new(0));
            committed.push(sink_committed.clone());
            // A reset job takes over what the job it replaces held (its processes are gone:
            // this one holds its state dir).
            let takes_over = match &replaced {
                Some(replaced) => Some(replaced.as_str()),
                None => (!args.ephemeral).then_some(job.id.as_str()),
            };
            let mut sink = DatabaseSink::for_job(database, args.sink_ods_dwd, takes_over)
                .map_err(CommandError::SinkProgress)?
                .with_metrics(metrics.clone())
                .with_committed(sink_committed);
            if args.reset {
                sink.reset().map_err(CommandError::SinkReset)?;
            }
            if let Err(error) = sink.adopt(&job.id) {
                // Not this job's sink: give the lease back at once for the job it is.
                let _ = sink.release();
                return Err(CommandError::from(error));
            }
            if let Some(upto) = sink.applied_upto() {
                tracing::info!(
                    "the sink has applied up to logical time {upto}; earlier change sets are skipped"
                );
            }
            // The database writes on its own thread while the dataflow computes on.
            Ok(Background::start(sink))
        })
        .transpose()?;
    let export = match (&args.export, state) {
        (None, _) => None,
        (Some(_), None) => Some(Export::Plain(Materialized::under(retention))),
        (Some(_), Some(state)) => {
            let export_committed = Arc::new(AtomicU64::new(0));
            committed.push(export_committed.clone());
            let interval = Duration::from_millis(args.checkpoint_interval as u64);
            let export =
                DurableExport::open(&state.export_log(), interval, retention, export_committed)?;
            Some(Export::Durable(Box::new(export)))
        }
    };
    Ok(Sinks {
        export,
        database,
        committed,
    })
}

/// Connects to the database `target` names, if it names one.
fn open_database(
    target: SinkTarget,
    schema: &str,
) -> Result<Option<Box<dyn Database + Send>>, CommandError> {
    Ok(match target {
        SinkTarget::Sqlite(path) => match Sqlite::open(&path) {
            Ok(sqlite) => Some(Box::new(sqlite)),
            Err(source) => return Err(CommandError::OpenSqlite { path, source }),
        },
        SinkTarget::Postgres(url) => Some(Box::new(
            connect_retrying(|| Postgres::connect(&url, schema))
                .map_err(CommandError::OpenPostgres)?,
        )),
        SinkTarget::None => None,
    })
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
            .map_or_else(|error| error.to_string(), |target| target.redacted()),
    };
    let monitor = Monitor {
        live: Some(Arc::new(Mutex::new(LiveDashboard::new(args.job.window)))),
        corrections: Some(SharedCorrections::default()),
        dataflow: Some(SharedDataflow::default()),
    };
    let state = UiState::new(view, metrics.clone(), gathered, monitor);
    match Ui::start(&args.ui_addr, state.clone()) {
        Ok(ui) => {
            tracing::info!(
                "web UI on http://{}/ (the job; /dashboard: the control room; /api/…, /metrics)",
                ui.addr()
            );
            Some((state, ui))
        }
        Err(error) => {
            tracing::warn!(
                "the web UI cannot listen on {} ({error}): running without it; give --ui-addr or --no-ui",
                args.ui_addr
            );
            None
        }
    }
}

/// After the run: the database holds its last change set (a sink failure is raised here), the
/// report and the export are written, and the totals logged.
fn finish(
    args: &RunArgs,
    outcome: RunOutcome<JobSink>,
    metrics: &Metrics,
    sampler: Option<Sampler>,
) -> Result<(), CommandError> {
    let (export, database) = match outcome.sink.flatten() {
        Some(Tee(export, database)) => (export, database),
        None => (None, None),
    };
    let draining = Instant::now();
    let database = database.map(Background::finish).transpose()?;
    let export = export.map(Export::finish).transpose()?;
    let elapsed = outcome.elapsed + draining.elapsed();

    if let (Some(path), Some(sampler)) = (&args.report, sampler) {
        RunReport::of(metrics, elapsed, sampler.finish())
            .write(path)
            .map_err(|source| CommandError::Report {
                path: path.clone(),
                source,
            })?;
    }
    let totals = metrics.snapshot();
    let peak = peak_memory_bytes().map_or("unknown".to_string(), |b| {
        format!("{} MiB", b / (1024 * 1024))
    });
    tracing::info!(
        "done in {:.3} s, peak memory {peak}: {}",
        elapsed.as_secs_f64(),
        totals.status_line(&MetricsSnapshot::default(), elapsed)
    );
    if let Some(mut database) = database {
        database.release().map_err(CommandError::SinkRelease)?;
        let upto = database
            .applied_upto()
            .map_or("-".to_string(), |t| t.to_string());
        let busy = totals.sink_busy_micros as f64 / 1e6;
        tracing::info!(
            "sink applied up to logical time {upto} ({} change sets skipped as already applied): \
             {} row changes in {} transactions, {busy:.3} s writing ({:.0} row changes/s)",
            database.skipped,
            totals.sink_row_changes,
            totals.sink_transactions,
            totals.sink_row_changes as f64 / busy.max(1e-9),
        );
    }
    if let (Some(dir), Some(sink)) = (&args.export, export) {
        write_export(dir, &sink)?;
    }
    Ok(())
}

/// Writes the six tables and `errors.csv` into `dir`.
fn write_export(dir: &Path, sink: &Materialized) -> Result<(), CommandError> {
    let (warehouse, errors) = sink.snapshot();
    let failed = |what| {
        move |source| CommandError::Export {
            what,
            dir: dir.to_path_buf(),
            source,
        }
    };
    write_warehouse(dir, &warehouse).map_err(failed("the export"))?;
    write_errors(dir, &errors).map_err(failed("errors.csv"))?;
    if !sink.violations.is_empty() {
        return Err(CommandError::Multiplicity(sink.violations.len()));
    }
    tracing::info!("exported {} tables to {}", 6, dir.display());
    Ok(())
}

/// The export's sink: its tables in memory, and in a durable job its change log.
pub enum Export {
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
