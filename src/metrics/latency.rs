//! End-to-end latency over the last minute as a histogram: one HDR histogram per second of the
//! last sixty, merged when read, so percentiles cover a sliding minute and old samples age out
//! without a scan. Beside them one histogram of the whole run, for a run's closing report and
//! its complementary CDF.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

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

/// The latencies of a whole run, in milliseconds: percentiles, and the complementary CDF as
/// `(latency, fraction of latencies above it)` at every distinct recorded value (thinned to at
/// most [`CCDF_POINTS`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunLatency {
    pub count: u64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub ccdf: Vec<(f64, f64)>,
}

/// The most points a [`RunLatency::ccdf`] keeps.
pub const CCDF_POINTS: usize = 400;

/// A sliding minute of latencies.
pub struct LatencyWindow {
    inner: Mutex<Ring>,
}

struct Ring {
    started: Instant,
    /// The histogram of each second, by second since `started` modulo the window.
    seconds: Vec<(u64, Histogram<u64>)>,
    /// Every latency of the run.
    whole_run: Histogram<u64>,
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
                seconds: vec![(u64::MAX, empty.clone()); WINDOW_SECONDS],
                whole_run: empty,
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
        ring.whole_run.saturating_record(micros);
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

    /// The latencies of the whole run so far.
    pub fn whole_run(&self) -> RunLatency {
        let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let histogram = &ring.whole_run;
        if histogram.is_empty() {
            return RunLatency::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        let total = histogram.len() as f64;
        let mut at_or_below = 0u64;
        let mut ccdf = Vec::new();
        for value in histogram.iter_recorded() {
            at_or_below += value.count_at_value();
            let above = (histogram.len() - at_or_below) as f64 / total;
            ccdf.push((
                ms(histogram.highest_equivalent(value.value_iterated_to())),
                above,
            ));
        }
        if ccdf.len() > CCDF_POINTS {
            // Keep the tail whole (where a CCDF is read) and thin the body evenly.
            let step = ccdf.len().div_ceil(CCDF_POINTS / 2);
            let tail = ccdf.split_off(ccdf.len() - CCDF_POINTS / 2);
            ccdf = ccdf.into_iter().step_by(step).chain(tail).collect();
        }
        RunLatency {
            count: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p95_ms: ms(histogram.value_at_quantile(0.95)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
            ccdf,
        }
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

    #[test]
    fn the_whole_run_keeps_every_latency_and_its_ccdf_falls_to_zero() {
        let start = Instant::now();
        let window = LatencyWindow::new(start);
        for ms in 1..=1000 {
            window.record_at(Duration::from_millis(ms), start + Duration::from_secs(ms));
        }
        let run = window.whole_run();
        assert_eq!(run.count, 1000);
        assert!((run.p99_ms - 990.0).abs() < 1.0, "{run:?}");
        assert!((run.max_ms - 1000.0).abs() < 1.0, "{run:?}");
        assert!(run.ccdf.len() <= CCDF_POINTS, "{}", run.ccdf.len());
        // Decreasing from just below 1 to 0, at increasing latencies.
        assert!(
            run.ccdf[0].1 > 0.99 && run.ccdf[0].1 < 1.0,
            "{:?}",
            run.ccdf[0]
        );
        assert_eq!(run.ccdf.last().map(|p| p.1), Some(0.0));
        for pair in run.ccdf.windows(2) {
            assert!(pair[0].0 < pair[1].0 && pair[0].1 >= pair[1].1, "{pair:?}");
        }
        // Above 900 ms lie 100 of 1000 (within the histogram's precision).
        let at_900 = run.ccdf.iter().find(|p| p.0 >= 900.0).expect("a point");
        assert!((at_900.1 - 0.1).abs() < 0.002, "{at_900:?}");
    }
}
