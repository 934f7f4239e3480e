//! The web UI's server: HTTP on its own thread — a small tokio runtime running axum — serving
//! the job and its counters as JSON (`/api/job`, `/api/metrics`), in Prometheus' format
//! (`/metrics`, [`prometheus`]), the live dashboard ([`live`]), the corrections ([`corrections`])
//! and the dataflow's graph ([`dataflow_log`]), and the two pages that show them ([`pages`]).
//! It only reads: the shared [`Metrics`] and what the dataflow's exits and loggers publish, so a
//! slow client never slows the dataflow.
//!
//! May use: the model, the operators and the metrics.

pub mod corrections;
pub mod dataflow_log;
pub mod exits;
pub mod gather;
pub mod live;
pub mod pages;
pub mod prometheus;

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::metrics::latency::Percentiles;
use crate::metrics::{peak_memory_bytes, Metrics, MetricsSnapshot};
use gather::{totals, JobCounters};

/// What the web UI reads from inside the dataflow: worker 0 keeps the live dashboard and the
/// corrections ([`exits`]); every local worker's loggers sum up the dataflow's work
/// ([`dataflow_log`]). A worker that keeps none of them still builds the exits when the job has
/// a UI (every process builds the same dataflow).
#[derive(Clone, Debug, Default)]
pub struct Monitor {
    pub live: Option<live::SharedLive>,
    pub corrections: Option<corrections::SharedCorrections>,
    pub dataflow: Option<dataflow_log::SharedDataflow>,
}

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
    /// What the dataflow's exits and loggers publish for the UI.
    pub monitor: Monitor,
    started: Instant,
    status: Mutex<Status>,
    /// Counters sampled every second over the last minute, for rates.
    samples: Mutex<VecDeque<(Instant, MetricsSnapshot)>>,
    /// Throughput and latency once a second, for the job page's charts.
    history: Mutex<VecDeque<HistoryPoint>>,
}

/// Seconds of samples kept for rates.
const SAMPLE_SECONDS: usize = 60;

/// Seconds of history kept for the charts.
const HISTORY_SECONDS: usize = 600;

/// One second of the job page's charts.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct HistoryPoint {
    pub uptime_seconds: f64,
    /// Consumption rows per second over the second before.
    pub rows_per_second: f64,
    /// Latency percentiles over the minute before.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl UiState {
    pub fn new(
        job: JobView,
        metrics: Arc<Metrics>,
        gathered: JobCounters,
        monitor: Monitor,
    ) -> Arc<UiState> {
        Arc::new(UiState {
            job,
            metrics,
            gathered,
            monitor,
            started: Instant::now(),
            status: Mutex::new(Status::Running),
            samples: Mutex::default(),
            history: Mutex::default(),
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
        let now = Instant::now();
        let counters = self.job_counters();
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let rows_per_second = samples.back().map_or(0.0, |(at, previous)| {
            rate(
                previous.ods_consumption_rows,
                counters.ods_consumption_rows,
                now - *at,
            )
        });
        samples.push_back((now, counters));
        while samples.len() > SAMPLE_SECONDS + 1 {
            samples.pop_front();
        }
        drop(samples);
        let uptime_seconds = self.started.elapsed().as_secs_f64();
        let latency = self.metrics.latency.percentiles();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.push_back(HistoryPoint {
            uptime_seconds,
            rows_per_second,
            p50_ms: latency.p50_ms,
            p99_ms: latency.p99_ms,
        });
        while history.len() > HISTORY_SECONDS {
            history.pop_front();
        }
    }

    /// Consumption rows per second over the sampled span (up to the last minute).
    fn consumption_rate(&self) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        match (samples.front(), samples.back()) {
            (Some((first_at, first)), Some((last_at, last))) => rate(
                first.ods_consumption_rows,
                last.ods_consumption_rows,
                *last_at - *first_at,
            ),
            _ => 0.0,
        }
    }
}

/// The rate of a counter that went from `from` to `to` over `span` (0 over no time).
pub fn rate(from: u64, to: u64, span: Duration) -> f64 {
    if span.is_zero() {
        0.0
    } else {
        to.saturating_sub(from) as f64 / span.as_secs_f64()
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
                        tracing::warn!("the web UI stopped: {error}");
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
        .route("/api/dashboard", get(dashboard))
        .route("/api/corrections", get(corrections_feed))
        .route("/api/dataflow", get(dataflow))
        .route("/", get(pages::job_page))
        .route("/dashboard", get(pages::dashboard_page))
        .route("/assets/{file}", get(pages::asset))
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
    /// How far the logical time caught up lags behind the wall clock, in ms (`null` before
    /// the first time completes; on the simulated clock it is the distance to the source's
    /// simulated dates).
    caught_up_lag_ms: Option<i64>,
    peak_memory_bytes: Option<u64>,
    uptime_seconds: f64,
    /// Once a second: consumption rows/s and latency, oldest first (the last ten minutes).
    history: Vec<HistoryPoint>,
}

async fn metrics(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    let counters = state.job_counters();
    Json(MetricsResponse {
        caught_up_lag_ms: (counters.caught_up_time > 0)
            .then(|| crate::model::now_millis() - counters.caught_up_time as i64),
        counters,
        processes: state.process_counters(),
        latency: state.metrics.latency.percentiles(),
        consumption_rows_per_second: state.consumption_rate(),
        peak_memory_bytes: peak_memory_bytes(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        history: state
            .history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect(),
    })
}

/// `/api/dashboard`: the control room's view ([`live::DashboardView`]).
async fn dashboard(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    let view = state
        .monitor
        .live
        .as_ref()
        .map(|live| live.lock().unwrap_or_else(PoisonError::into_inner).view());
    Json(serde_json::to_value(view).unwrap_or_default())
}

/// How many corrections `/api/corrections` returns.
#[derive(serde::Deserialize)]
struct Limit {
    limit: Option<usize>,
}

/// `/api/corrections?limit=N`: how many corrections there were, and the newest (50 unless
/// `limit` says otherwise), newest first.
async fn corrections_feed(
    State(state): State<Arc<UiState>>,
    Query(limit): Query<Limit>,
) -> impl IntoResponse {
    let limit = limit.limit.unwrap_or(50);
    let (total, newest) = match &state.monitor.corrections {
        Some(log) => {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            (log.total(), log.newest(limit))
        }
        None => (0, Vec::new()),
    };
    Json(serde_json::json!({ "total": total, "corrections": newest }))
}

/// `/api/dataflow`: the operator graph with each operator's work and state.
async fn dataflow(State(state): State<Arc<UiState>>) -> impl IntoResponse {
    let workers = state
        .monitor
        .dataflow
        .as_ref()
        .map(|shared| {
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
        .unwrap_or_default();
    Json(serde_json::to_value(dataflow_log::view(&workers)).unwrap_or_default())
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
