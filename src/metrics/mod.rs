//! Metrics: the counters of a running job, shared by the workers of a process and read by the
//! status line, the web UI and Prometheus — each a plain atomic: workers add, readers load —
//! with the end-to-end latency histograms ([`latency`]) and a run's closing report ([`report`]).
//!
//! May use: the model.

pub mod latency;
pub mod report;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::metrics::latency::LatencyWindow;
use crate::model::values::format_millis;

/// The live counters of one process.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Rows the sources introduced, per ODS table.
    pub ods_user_rows: AtomicU64,
    pub ods_consumption_rows: AtomicU64,
    /// Updates (insertions plus retractions) each later layer emitted.
    pub dwd_updates: AtomicU64,
    /// Whether the DWD detail rows are built at all (only when they leave the dataflow).
    pub dwd_built: AtomicBool,
    pub dws_region_updates: AtomicU64,
    pub dws_ranking_updates: AtomicU64,
    pub ads_updates: AtomicU64,
    /// Consumption rows the maintained ODS state holds now (over the process's workers): under
    /// retention, the rows of live windows.
    pub ods_consumption_live: AtomicU64,
    /// Consumption rows that arrived behind the 5-second watermark (SPEC §4).
    pub late_rows: AtomicU64,
    /// Consumption rows that arrived for a frozen window and were not applied (SPEC §4a).
    pub expired_rows: AtomicU64,
    /// Versions of `dws_region_daily_stats` rows retracted after they were emitted.
    pub corrected_window_rows: AtomicU64,
    /// User rows that corrected output already emitted (late arrivals, moves, updates,
    /// deletes), as the web UI's corrections feed lists them; counted only with the UI on.
    pub corrections: AtomicU64,
    /// Input rows that could not be read.
    pub malformed_rows: AtomicU64,
    /// The latest logical time every worker of this process has completed.
    pub caught_up_time: AtomicU64,
    /// End-to-end latency of the latest completed tick, and the largest seen, in microseconds.
    pub latency_last_micros: AtomicU64,
    pub latency_max_micros: AtomicU64,
    /// Row changes (upserts plus deletes) a database sink has committed, the transactions that
    /// carried them, and the time spent writing them (retries included), in microseconds.
    pub sink_row_changes: AtomicU64,
    pub sink_transactions: AtomicU64,
    pub sink_busy_micros: AtomicU64,
    /// Checkpoints of the workers' input logs, and the logged rows a restart fed again.
    pub checkpoints: AtomicU64,
    pub replayed_rows: AtomicU64,
    /// End-to-end latencies of the last minute, for percentiles.
    pub latency: LatencyWindow,
    /// When set before a run, worker 0 also keeps every completed logical time with its
    /// latency in `tick_latencies` (benchmarks that time single times; off by default, as the
    /// list grows with the run).
    pub keep_tick_latencies: AtomicBool,
    pub tick_latencies: std::sync::Mutex<Vec<(u64, Duration)>>,
}

/// A copy of the counters at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MetricsSnapshot {
    pub ods_user_rows: u64,
    pub ods_consumption_rows: u64,
    pub dwd_updates: u64,
    pub dwd_built: bool,
    pub dws_region_updates: u64,
    pub dws_ranking_updates: u64,
    pub ads_updates: u64,
    pub ods_consumption_live: u64,
    pub late_rows: u64,
    pub expired_rows: u64,
    pub corrected_window_rows: u64,
    pub corrections: u64,
    pub malformed_rows: u64,
    pub caught_up_time: u64,
    pub latency_last_micros: u64,
    pub latency_max_micros: u64,
    pub sink_row_changes: u64,
    pub sink_transactions: u64,
    pub sink_busy_micros: u64,
    pub checkpoints: u64,
    pub replayed_rows: u64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds a worker's change of its held consumption rows to the live count. Each worker's share
    /// never falls below zero, so their two's-complement sum is the process's count.
    pub fn add_live_consumption(&self, delta: i64) {
        self.ods_consumption_live
            .fetch_add(delta as u64, Ordering::Relaxed);
    }

    /// Records the end-to-end latency of the completed logical time `time`.
    pub fn record_tick_latency(&self, time: u64, latency: Duration) {
        self.record_latency(latency);
        if self.keep_tick_latencies.load(Ordering::Relaxed) {
            self.tick_latencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((time, latency));
        }
    }

    /// Records the end-to-end latency of a completed tick.
    pub fn record_latency(&self, latency: Duration) {
        let micros = latency.as_micros() as u64;
        self.latency_last_micros.store(micros, Ordering::Relaxed);
        self.latency_max_micros.fetch_max(micros, Ordering::Relaxed);
        self.latency.record(latency);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            ods_user_rows: load(&self.ods_user_rows),
            ods_consumption_rows: load(&self.ods_consumption_rows),
            dwd_updates: load(&self.dwd_updates),
            dwd_built: self.dwd_built.load(Ordering::Relaxed),
            dws_region_updates: load(&self.dws_region_updates),
            dws_ranking_updates: load(&self.dws_ranking_updates),
            ads_updates: load(&self.ads_updates),
            ods_consumption_live: load(&self.ods_consumption_live),
            late_rows: load(&self.late_rows),
            expired_rows: load(&self.expired_rows),
            corrected_window_rows: load(&self.corrected_window_rows),
            corrections: load(&self.corrections),
            malformed_rows: load(&self.malformed_rows),
            caught_up_time: load(&self.caught_up_time),
            latency_last_micros: load(&self.latency_last_micros),
            latency_max_micros: load(&self.latency_max_micros),
            sink_row_changes: load(&self.sink_row_changes),
            sink_transactions: load(&self.sink_transactions),
            sink_busy_micros: load(&self.sink_busy_micros),
            checkpoints: load(&self.checkpoints),
            replayed_rows: load(&self.replayed_rows),
        }
    }
}

impl MetricsSnapshot {
    /// The one-line status: rows in per layer, consumption rows/s since `previous`, the logical
    /// time caught up, latency, late rows, expired rows, corrected window rows, the database
    /// sink's work, and a durable job's checkpoints and rows replayed on restart.
    pub fn status_line(&self, previous: &MetricsSnapshot, interval: Duration) -> String {
        let rate = (self.ods_consumption_rows - previous.ods_consumption_rows) as f64
            / interval.as_secs_f64().max(1e-9);
        format!(
            "ods users={} consumption={} ({:.0} rows/s) | dwd={} dws regions={} rankings={} | ads={} | \
             caught up to {} | latency {:.1} ms (max {:.1}) | late={} expired={} corrected={} malformed={} | \
             sink changes={} tx={} busy={:.1} s | checkpoints={} replayed={}",
            self.ods_user_rows,
            self.ods_consumption_rows,
            rate,
            if self.dwd_built {
                self.dwd_updates.to_string()
            } else {
                "off".to_string()
            },
            self.dws_region_updates,
            self.dws_ranking_updates,
            self.ads_updates,
            if self.caught_up_time == 0 { "-".to_string() } else { format_millis(self.caught_up_time as i64) },
            self.latency_last_micros as f64 / 1000.0,
            self.latency_max_micros as f64 / 1000.0,
            self.late_rows,
            self.expired_rows,
            self.corrected_window_rows,
            self.malformed_rows,
            self.sink_row_changes,
            self.sink_transactions,
            self.sink_busy_micros as f64 / 1e6,
            self.checkpoints,
            self.replayed_rows,
        )
    }
}

/// The peak resident memory of this process so far (`VmHWM`), where the OS reports it (Linux).
pub fn peak_memory_bytes() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The resident memory of this process now (`VmRSS`), where the OS reports it (Linux).
pub fn resident_memory_bytes() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// A size field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
