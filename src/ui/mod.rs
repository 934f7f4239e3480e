//! The web UI's server: HTTP on its own thread — a small tokio runtime running axum — serving
//! the job and its counters as JSON (`/api/job`, `/api/metrics`) and in Prometheus' format
//! (`/metrics`, [`prometheus`]). It only reads: the shared [`Metrics`] and what the job
//! recorded, so a slow client never slows the dataflow.

pub mod gather;
pub mod prometheus;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::latency::Percentiles;
use crate::metrics::{peak_memory_bytes, Metrics, MetricsSnapshot};
use gather::{totals, JobCounters};

/// What the job is, as `/api/job` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// The job's id (the state dir's, or a fresh one for an ephemeral job).
    pub id: String,
    /// When the job first started, UTC.
    pub created: String,
    /// The options that define the job, by their command-line names.
    pub options: BTreeMap<String, String>,
    pub workers: u64,
    pub processes: u64,
    /// This process's index.
    pub process: u64,
    /// The state dir, unless the job is ephemeral.
    pub state_dir: Option<String>,
    pub checkpoint_interval_ms: u64,
    /// The sink's URL with any password left out, or `none`.
    pub sink: String,
}

/// Whether the job runs, and how it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "UPPERCASE")]
pub enum Status {
    Running,
    Finished,
    Failed { error: String },
}

/// What the server reads.
pub struct UiState {
    pub job: JobView,
    pub metrics: Arc<Metrics>,
    /// Every process's latest counters, gathered at worker 0.
    pub gathered: JobCounters,
    started: Instant,
    status: Mutex<Status>,
    /// Counters sampled every second over the last minute, for rates.
    samples: Mutex<VecDeque<(Instant, MetricsSnapshot)>>,
}

/// Seconds of samples kept for rates.
const SAMPLE_SECONDS: usize = 60;

impl UiState {
    pub fn new(job: JobView, metrics: Arc<Metrics>, gathered: JobCounters) -> Arc<UiState> {
        Arc::new(UiState {
            job,
            metrics,
            gathered,
            started: Instant::now(),
            status: Mutex::new(Status::Running),
            samples: Mutex::default(),
        })
    }

    /// Records how the job ended.
    pub fn set_status(&self, status: Status) {
        *self.status.lock().unwrap_or_else(PoisonError::into_inner) = status;
    }

    fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Each process's latest counters, as heard; this process's own are always current.
    fn process_counters(&self) -> Vec<Option<MetricsSnapshot>> {
        let mut gathered = self
            .gathered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        gathered.resize(self.job.processes.max(1) as usize, None);
        gathered[self.job.process as usize] = Some(self.metrics.snapshot());
        gathered
    }

    /// The whole job's counters: summed over every process (the others' at most a second
    /// old).
    fn job_counters(&self) -> MetricsSnapshot {
        totals(&self.process_counters())
    }

    fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        samples.push_back((Instant::now(), self.job_counters()));
        while samples.len() > SAMPLE_SECONDS + 1 {
            samples.pop_front();
        }
    }

    /// Consumption rows per second over the sampled span (up to the last minute).
    fn consumption_rate(&self) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        match (samples.front(), samples.back()) {
            (Some((first_at, first)), Some((last_at, last))) if last_at > first_at => {
                (last.ods_consumption_rows - first.ods_consumption_rows) as f64
                    / (*last_at - *first_at).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// The running server.
pub struct Ui {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ui {
    /// Binds `addr` (here, so a taken port is an error the caller sees) and serves `state`
    /// from a thread of its own.
    pub fn start(addr: &str, state: Arc<UiState>) -> std::io::Result<Ui> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("gridflow-ui".to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let sampled = state.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        loop {
                            tick.tick().await;
                            sampled.sample();
                        }
                    });
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let served = axum::serve(listener, router(state))
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                    if let Err(error) = served {
                        eprintln!("the web UI stopped: {error}");
                    }
                });
            })?;
        Ok(Ui {
            addr,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn router(state: Arc<UiState>) -> Router {
    Router::new()
        .route("/api/job", get(job))
        .route("/api/metrics", get(metrics))
        .route("/metrics", get(prometheus_metrics))
        .with_state(state)
}

/// `/api/job`: the job, its status and how long it has run.
#[derive(Serialize)]
struct JobResponse<'a> {
    #[serde(flatten)]
    status: Status,
    uptime_seconds: f64,
    #[serde(flatten)]
    job: &'a JobView,
    checkpoints: u64,
}

async fn job(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    let response = JobResponse {
        status: state.status(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        job: &state.job,
        checkpoints: state.job_counters().checkpoints,
    };
    Json(serde_json::to_value(&response).unwrap_or_default())
}

/// `/api/metrics`: every counter of the whole job, each process's, the consumption rate over
/// the last minute, latency, memory.
#[derive(Serialize)]
struct MetricsResponse {
    #[serde(flatten)]
    counters: MetricsSnapshot,
    /// Each process's counters (`null` for one not heard from yet).
    processes: Vec<Option<MetricsSnapshot>>,
    /// End-to-end latency over the last minute.
    latency: Percentiles,
    consumption_rows_per_second: f64,
    peak_memory_bytes: Option<u64>,
    uptime_seconds: f64,
}

async fn metrics(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    Json(MetricsResponse {
        counters: state.job_counters(),
        processes: state.process_counters(),
        latency: state.metrics.latency.percentiles(),
        consumption_rows_per_second: state.consumption_rate(),
        peak_memory_bytes: peak_memory_bytes(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
    })
}

/// `/metrics`: the counters in the OpenMetrics text format Prometheus scrapes.
async fn prometheus_metrics(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    let text = prometheus::encode(
        state.job_counters(),
        state.metrics.latency.percentiles(),
        state.started.elapsed(),
    )
    .unwrap_or_else(|error| format!("# encoding failed: {error}\n"));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
