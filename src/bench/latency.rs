//! Scenario (b), latency: at fixed wall-clock input rates (the source's 5 rows/s, 10k/s and
//! 100k/s), the end-to-end latency of every logical time — from its earliest row being due to
//! every output of the dataflow having caught up with it — over at least 60 s each, as percentiles
//! and as a complementary CDF (the fraction of times slower than x), the plot of the
//! differential-dataflow papers. Ticks are 10 ms, so a row waits at most 10 ms more for its
//! tick to be sealed; a job that lags merges the ticks already due into one logical time
//! (`src/sources/coalesce.rs`).

use super::child::{self, arg};
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;

/// The targets of issue 10: p99 in ms at a rate.
const TARGETS: [(u64, f64); 2] = [(5, 50.0), (100_000, 1_000.0)];

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let rates: Vec<u64> = bench.size(vec![5, 10_000, 100_000], vec![5, 1_000]);
    let seconds: u64 = bench.size(60, 2);
    let progress = bench.progress(Scenario::Latency, rates.len() * bench.runs);
    let mut csv = Csv {
        header: [
            "rate", "run", "seconds", "rows", "ticks", "p50_ms", "p95_ms", "p99_ms", "p999_ms",
            "max_ms",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut ccdf_csv = Csv {
        header: vec!["rate", "run", "latency_ms", "fraction_above"],
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| input rate (rows/s) | logical times | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | target |\n|---|---|---|---|---|---|---|\n",
    );
    let mut series = Vec::new();
    for &rate in &rates {
        let mut runs = Vec::new();
        for run in 0..bench.runs {
            progress.set_message(format!("{rate} rows/s for {seconds} s"));
            let args = vec![
                arg("--clock"),
                arg("wall"),
                arg("--tick"),
                arg("10ms"),
                arg("--consumption-rate"),
                arg(rate),
                arg("--consumptions"),
                arg(rate * seconds),
                arg("--retention"),
                arg("3h"),
                arg("-w"),
                arg(2),
            ];
            let measured = child::run(bench, &format!("latency-{rate}-{run}"), &args, 1)?;
            let latency = measured.first.latency.clone();
            let row = vec![
                arg(rate),
                arg(run),
                format!("{:.3}", measured.elapsed_s),
                arg(measured.consumption_rows),
                arg(latency.count),
                format!("{:.3}", latency.p50_ms),
                format!("{:.3}", latency.p95_ms),
                format!("{:.3}", latency.p99_ms),
                format!("{:.3}", latency.p999_ms),
                format!("{:.3}", latency.max_ms),
            ];
            csv.rows.push(row);
            for &(ms, above) in &latency.ccdf {
                ccdf_csv.rows.push(vec![
                    arg(rate),
                    arg(run),
                    format!("{ms:.3}"),
                    format!("{above:.6}"),
                ]);
            }
            runs.push(latency);
            progress.inc(1);
        }
        let spread = |f: fn(&crate::metrics::latency::RunLatency) -> f64| {
            Spread::of(&runs.iter().map(f).collect::<Vec<_>>()).expect("at least one run")
        };
        let p99 = spread(|l| l.p99_ms);
        let target =
            TARGETS
                .iter()
                .find(|(r, _)| *r == rate)
                .map_or("–".to_string(), |(_, ms)| {
                    let verdict = if p99.median < *ms {
                        "met"
                    } else {
                        "**missed**"
                    };
                    format!("p99 < {ms} ms: {verdict}")
                });
        table.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {target} |\n",
            super::stats::group_thousands(&rate.to_string()),
            spread(|l| l.count as f64).show(0),
            spread(|l| l.p50_ms).show(2),
            spread(|l| l.p95_ms).show(2),
            p99.show(2),
            spread(|l| l.max_ms).show(2),
        ));
        // The run whose p99 is the median's (or the nearest) stands for the rate in the plot.
        let typical = runs
            .iter()
            .min_by(|a, b| {
                (a.p99_ms - p99.median)
                    .abs()
                    .total_cmp(&(b.p99_ms - p99.median).abs())
            })
            .expect("at least one run");
        series.push(Series {
            name: format!(
                "{} rows/s",
                super::stats::group_thousands(&rate.to_string())
            ),
            // A CCDF on log axes ends where the fraction reaches 0: the last point is the max.
            points: typical.ccdf.clone(),
        });
    }
    progress.finish_and_clear();
    let markdown = format!(
        "### (b) Latency\n\n\
         `gridflow run --clock wall --tick 10ms --consumption-rate R --consumptions R×{seconds} \
         --retention 3h -w 2 --sink none --ephemeral --no-ui`, {} of {seconds} s per rate \
         (user rows at the default 1/s). A logical time's latency runs from its earliest row being \
         due (the end of its tick on the wall clock) to every output having caught up with it \
         (the probe at the dataflow's end on worker 0), so time spent waiting behind a lagging \
         dataflow counts; a row waits up to one tick (10 ms) more before its tick is due. A job \
         that lags merges the ticks already due into one logical time (`src/sources/coalesce.rs`), so \
         behind the clock a logical time holds more than one tick, and there are fewer of them. \
         Percentiles are of every logical time of the run, empty ones included.\n\n{table}",
        bench.runs_phrase()
    );
    let chart = Chart {
        title: "Latency CCDF: fraction of logical times slower than x",
        x_label: "latency (ms)",
        y_label: "fraction slower",
        x_axis: Axis::Log,
        y_axis: Axis::Log,
    };
    Ok(Section {
        scenario: Scenario::Latency,
        csvs: vec![("latency".into(), csv), ("latency-ccdf".into(), ccdf_csv)],
        markdown,
        plots: vec![Plot {
            file: "latency-ccdf.svg".into(),
            title: "Latency CCDF at fixed input rates".into(),
            svg: chart.svg(&series)?,
        }],
    })
}
