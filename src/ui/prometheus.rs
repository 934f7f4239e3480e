//! The job's counters in the OpenMetrics text format Prometheus scrapes, every name
//! `gridflow_…` with the usual `_total` and `_seconds` suffixes, encoded by the Prometheus
//! project's own client library from the shared atomics at each scrape.

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

use crate::metrics::latency::Percentiles;
use crate::metrics::{peak_memory_bytes, MetricsSnapshot};

/// The counters (each gets `_total`): name, help, value.
fn counters(m: &MetricsSnapshot) -> [(&'static str, &'static str, u64); 15] {
    [
        (
            "ods_user_rows",
            "User rows the sources introduced",
            m.ods_user_rows,
        ),
        (
            "ods_consumption_rows",
            "Consumption rows the sources introduced",
            m.ods_consumption_rows,
        ),
        (
            "dwd_updates",
            "Updates of dwd_power_consumption_detail",
            m.dwd_updates,
        ),
        (
            "dws_region_updates",
            "Updates of dws_region_daily_stats",
            m.dws_region_updates,
        ),
        (
            "dws_ranking_updates",
            "Updates of dws_user_ranking",
            m.dws_ranking_updates,
        ),
        (
            "ads_updates",
            "Updates of ads_power_dashboard",
            m.ads_updates,
        ),
        (
            "late_rows",
            "Consumption rows behind the 5-second watermark",
            m.late_rows,
        ),
        (
            "expired_rows",
            "Consumption rows for frozen windows, not applied",
            m.expired_rows,
        ),
        (
            "corrected_window_rows",
            "Region window rows retracted after they were emitted",
            m.corrected_window_rows,
        ),
        (
            "corrections",
            "User rows that corrected output already emitted",
            m.corrections,
        ),
        (
            "malformed_rows",
            "Input rows that could not be read",
            m.malformed_rows,
        ),
        (
            "sink_row_changes",
            "Row changes the database sink committed",
            m.sink_row_changes,
        ),
        (
            "sink_transactions",
            "Transactions the database sink committed",
            m.sink_transactions,
        ),
        (
            "checkpoints",
            "Checkpoints of the workers' input logs",
            m.checkpoints,
        ),
        (
            "replayed_rows",
            "Logged rows a restart fed again",
            m.replayed_rows,
        ),
    ]
}

/// The counters of one scrape.
#[derive(Debug)]
struct Counters {
    snapshot: MetricsSnapshot,
    percentiles: Percentiles,
    uptime: Duration,
}

impl Collector for Counters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (snapshot, percentiles) = (&self.snapshot, &self.percentiles);
        for (name, help, value) in counters(snapshot) {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }
        let seconds = [
            (
                "sink_busy",
                "Time the database sink spent writing",
                snapshot.sink_busy_micros as f64 / 1e6,
                true,
            ),
            (
                "uptime",
                "Time since the process started",
                self.uptime.as_secs_f64(),
                false,
            ),
            (
                "latency_p50",
                "End-to-end latency over the last minute, median",
                percentiles.p50_ms / 1e3,
                false,
            ),
            (
                "latency_p95",
                "End-to-end latency over the last minute, 95th percentile",
                percentiles.p95_ms / 1e3,
                false,
            ),
            (
                "latency_p99",
                "End-to-end latency over the last minute, 99th percentile",
                percentiles.p99_ms / 1e3,
                false,
            ),
            (
                "latency_max",
                "End-to-end latency over the last minute, largest",
                percentiles.max_ms / 1e3,
                false,
            ),
            (
                "caught_up_time",
                "The latest logical time every local worker completed, as Unix time",
                snapshot.caught_up_time as f64 / 1e3,
                false,
            ),
        ];
        for (name, help, value, is_counter) in seconds {
            if is_counter {
                let counter = ConstCounter::new(value);
                let metric = encoder.encode_descriptor(
                    name,
                    help,
                    Some(&Unit::Seconds),
                    counter.metric_type(),
                )?;
                counter.encode(metric)?;
            } else {
                let gauge = ConstGauge::new(value);
                let metric = encoder.encode_descriptor(
                    name,
                    help,
                    Some(&Unit::Seconds),
                    gauge.metric_type(),
                )?;
                gauge.encode(metric)?;
            }
        }
        let live = ConstGauge::new(snapshot.ods_consumption_live as i64);
        live.encode(encoder.encode_descriptor(
            "ods_consumption_live_rows",
            "Consumption rows the maintained ODS state holds (under retention, live windows')",
            None,
            live.metric_type(),
        )?)?;
        if let Some(bytes) = peak_memory_bytes() {
            let gauge = ConstGauge::new(bytes as i64);
            let metric = encoder.encode_descriptor(
                "peak_memory",
                "Peak resident memory of this process",
                Some(&Unit::Bytes),
                gauge.metric_type(),
            )?;
            gauge.encode(metric)?;
        }
        Ok(())
    }
}

/// `snapshot` (this process's counters, or the whole job's) and the latency `percentiles` as
/// OpenMetrics text.
pub fn encode(
    snapshot: MetricsSnapshot,
    percentiles: Percentiles,
    uptime: Duration,
) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("gridflow");
    registry.register_collector(Box::new(Counters {
        snapshot,
        percentiles,
        uptime,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_is_named_gridflow_and_total() {
        let snapshot = MetricsSnapshot {
            ods_consumption_rows: 42,
            sink_busy_micros: 1_500_000,
            ..MetricsSnapshot::default()
        };
        let text = encode(snapshot, Percentiles::default(), Duration::from_secs(3)).unwrap();
        assert!(
            text.contains("gridflow_ods_consumption_rows_total 42\n"),
            "{text}"
        );
        assert!(
            text.contains("gridflow_sink_busy_seconds_total 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE gridflow_uptime_seconds gauge"),
            "{text}"
        );
        assert!(text.trim_end().ends_with("# EOF"), "{text}");
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            assert!(line.starts_with("gridflow_"), "{line}");
        }
    }
}
