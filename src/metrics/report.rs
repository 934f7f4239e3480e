//! A run's closing report as JSON (`gridflow run --report FILE`): elapsed time, peak memory,
//! every counter, the whole run's latency distribution, and samples of memory and rows taken
//! while it ran. The bench command reads it from the runs it starts; anyone may.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::latency::RunLatency;
use crate::metrics::{peak_memory_bytes, resident_memory_bytes, Metrics, MetricsSnapshot};

/// What a finished run reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RunReport {
    /// From the start of the dataflow to the sinks holding the last change set.
    pub elapsed_s: f64,
    /// The process's peak resident memory (`VmHWM`), if the OS reports it.
    pub peak_memory_bytes: Option<u64>,
    pub counters: MetricsSnapshot,
    /// End-to-end latency of every completed logical time (seal to outputs caught up).
    pub latency: RunLatency,
    pub samples: Vec<Sample>,
}

/// One sample taken while the run went on.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Sample {
    /// Since the sampler started.
    pub elapsed_s: f64,
    /// Consumption rows the sources introduced so far.
    pub consumption_rows: u64,
    /// Consumption rows the maintained state holds.
    pub live_rows: u64,
    /// Resident memory (`VmRSS`), 0 where the OS does not report it.
    pub resident_bytes: u64,
}

/// Samples a run's counters and memory on a thread of its own until stopped.
pub struct Sampler {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `metrics` every `interval`.
    pub fn start(metrics: Arc<Metrics>, interval: Duration) -> std::io::Result<Sampler> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("report-sampler".into())
            .spawn({
                let (samples, stop) = (samples.clone(), stop.clone());
                move || {
                    let started = Instant::now();
                    let mut next = started;
                    while !stop.load(Ordering::Relaxed) {
                        let now = Instant::now();
                        if now >= next {
                            let counters = metrics.snapshot();
                            let sample = Sample {
                                elapsed_s: now.duration_since(started).as_secs_f64(),
                                consumption_rows: counters.ods_consumption_rows,
                                live_rows: counters.ods_consumption_live,
                                resident_bytes: resident_memory_bytes().unwrap_or(0),
                            };
                            samples
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(sample);
                            next += interval;
                        }
                        std::thread::sleep(Duration::from_millis(20).min(interval));
                    }
                }
            })?;
        Ok(Sampler {
            samples,
            stop,
            thread,
        })
    }

    /// Stops sampling and returns the samples taken.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl RunReport {
    /// The report of a run that took `elapsed`, from its counters and samples.
    pub fn of(metrics: &Metrics, elapsed: Duration, samples: Vec<Sample>) -> RunReport {
        RunReport {
            elapsed_s: elapsed.as_secs_f64(),
            peak_memory_bytes: peak_memory_bytes(),
            counters: metrics.snapshot(),
            latency: metrics.latency.whole_run(),
            samples,
        }
    }

    /// Writes the report to `path` as JSON (replacing it whole: written beside, then renamed).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let partial = path.with_extension("json.partial");
        std::fs::write(&partial, text)?;
        std::fs::rename(&partial, path)
    }

    /// Reads a report written by [`RunReport::write`].
    pub fn read(path: &Path) -> std::io::Result<RunReport> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}
