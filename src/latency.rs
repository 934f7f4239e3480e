//! End-to-end latency over the last minute as a histogram: one HDR histogram per second of the
//! last sixty, merged when read, so percentiles cover a sliding minute and old samples age out
//! without a scan.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Seconds the window covers.
const WINDOW_SECONDS: usize = 60;

/// The largest latency recorded exactly: an hour, in microseconds (longer ones are clamped).
const MAX_MICROS: u64 = 3_600_000_000;

/// Latency percentiles over the window, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many latencies the window holds.
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A sliding minute of latencies.
pub struct LatencyWindow {
    inner: Mutex<Ring>,
}

struct Ring {
    started: Instant,
    /// The histogram of each second, by second since `started` modulo the window.
    seconds: Vec<(u64, Histogram<u64>)>,
}

impl std::fmt::Debug for LatencyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LatencyWindow({:?})", self.percentiles())
    }
}

impl Default for LatencyWindow {
    fn default() -> Self {
        LatencyWindow::new(Instant::now())
    }
}

impl LatencyWindow {
    fn new(started: Instant) -> LatencyWindow {
        let empty = Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        LatencyWindow {
            inner: Mutex::new(Ring {
                started,
                seconds: vec![(u64::MAX, empty); WINDOW_SECONDS],
            }),
        }
    }

    /// Records one latency observed at `now`.
    pub fn record_at(&self, latency: Duration, now: Instant) {
        let micros = (latency.as_micros() as u64).clamp(1, MAX_MICROS);
        let mut ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let second = now.saturating_duration_since(ring.started).as_secs();
        let (slot_second, histogram) = &mut ring.seconds[second as usize % WINDOW_SECONDS];
        if *slot_second != second {
            histogram.reset();
            *slot_second = second;
        }
        histogram.saturating_record(micros);
    }

    /// Records one latency observed now.
    pub fn record(&self, latency: Duration) {
        self.record_at(latency, Instant::now());
    }

    /// The percentiles of the minute up to `now`.
    pub fn percentiles_at(&self, now: Instant) -> Percentiles {
        let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let second = now.saturating_duration_since(ring.started).as_secs();
        let oldest = second.saturating_sub(WINDOW_SECONDS as u64 - 1);
        let mut merged =
            Histogram::<u64>::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds");
        for (slot_second, histogram) in &ring.seconds {
            if *slot_second != u64::MAX && (oldest..=second).contains(slot_second) {
                merged
                    .add(histogram)
                    .expect("histograms of the same bounds");
            }
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        if merged.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: merged.len(),
            p50_ms: ms(merged.value_at_quantile(0.50)),
            p95_ms: ms(merged.value_at_quantile(0.95)),
            p99_ms: ms(merged.value_at_quantile(0.99)),
            max_ms: ms(merged.max()),
        }
    }

    /// The percentiles of the last minute.
    pub fn percentiles(&self) -> Percentiles {
        self.percentiles_at(Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_cover_the_last_minute_and_forget_older_seconds() {
        let start = Instant::now();
        let window = LatencyWindow::new(start);
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        // 100 latencies of 1..=100 ms in second 0
        for ms in 1..=100 {
            window.record_at(Duration::from_millis(ms), at(0));
        }
        let p = window.percentiles_at(at(30));
        assert_eq!(p.count, 100);
        assert!((p.p50_ms - 50.0).abs() < 0.5, "{p:?}");
        assert!((p.p99_ms - 99.0).abs() < 0.5, "{p:?}");
        assert!((p.max_ms - 100.0).abs() < 0.5, "{p:?}");
        // a minute later they have aged out; a new second's slot reuses the old one
        window.record_at(Duration::from_millis(7), at(60));
        let p = window.percentiles_at(at(60));
        assert_eq!(p.count, 1, "{p:?}");
        assert!((p.max_ms - 7.0).abs() < 0.1, "{p:?}");
        assert_eq!(window.percentiles_at(at(200)), Percentiles::default());
    }
}
