//! What `gridflow run` tells a person while it runs: a status line every few seconds, and,
//! after a bounded job, the web UI kept up for a while (`--ui-linger`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::model::rows::Millis;
use crate::ui::Ui;

/// Logs a status line every `interval_seconds` until `finished` is set; none with 0.
pub fn spawn_status_line(
    metrics: &Arc<Metrics>,
    finished: &Arc<AtomicBool>,
    interval_seconds: u64,
) -> Option<JoinHandle<()>> {
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
                tracing::info!("{}", current.status_line(&previous, last.elapsed()));
                previous = current;
                last = Instant::now();
            }
        }
    }))
}

/// With `--ui-linger`, keeps the web UI serving the ended job's final state for that long, or
/// until Ctrl-C (`stopped`).
pub fn linger(ui: Option<&Ui>, linger: Option<Millis>, stopped: &AtomicBool) {
    let (Some(ui), Some(linger)) = (ui, linger) else {
        return;
    };
    if stopped.load(Ordering::Relaxed) {
        return;
    }
    tracing::info!(
        "the job has ended; the web UI on http://{}/ stays up for {:.0} s (Ctrl-C ends it)",
        ui.addr(),
        linger as f64 / 1000.0
    );
    let until = Instant::now() + Duration::from_millis(linger as u64);
    while Instant::now() < until && !stopped.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
