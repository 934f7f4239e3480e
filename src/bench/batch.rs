//! Scenario (f), batch size: the same 1M generated rows with logical times of 1 s to 1 h of
//! source time (`--tick`): throughput, and the latency of each logical time (seal to outputs
//! caught up) — the trade-off of a coarser time: fewer, larger steps amortize the operators'
//! per-time work, and each step takes longer.

use super::child::{self, arg};
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let rows: u64 = bench.size(1_000_000, 20_000);
    let ticks: Vec<(&str, f64)> = bench.size(
        vec![
            ("1s", 1.0),
            ("10s", 10.0),
            ("1m", 60.0),
            ("10m", 600.0),
            ("1h", 3_600.0),
        ],
        vec![("10s", 10.0), ("1h", 3_600.0)],
    );
    let progress = bench.progress(Scenario::Batch, ticks.len() * bench.runs);
    let mut csv = Csv {
        header: [
            "tick",
            "run",
            "elapsed_s",
            "rows_per_s",
            "times",
            "p50_ms",
            "p99_ms",
            "max_ms",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| tick (source time per logical time) | rows per logical time | consumption rows/s | latency p50 (ms) | latency p99 (ms) |\n|---|---|---|---|---|\n",
    );
    let (mut rate_points, mut trade_off) = (Vec::new(), Vec::new());
    for &(tick, seconds) in &ticks {
        let mut figures: Vec<[f64; 4]> = Vec::new();
        for run in 0..bench.runs {
            progress.set_message(format!("--tick {tick}"));
            let args = vec![
                arg("--clock"),
                arg("simulated"),
                arg("--consumptions"),
                arg(rows),
                arg("--tick"),
                arg(tick),
                arg("--retention"),
                arg("3h"),
                arg("-w"),
                arg(2),
            ];
            let measured = child::run(bench, &format!("batch-{tick}-{run}"), &args, 1)?;
            let latency = &measured.first.latency;
            let figure = [
                measured.rows_per_second(),
                latency.count as f64,
                latency.p50_ms,
                latency.p99_ms,
            ];
            let row = vec![
                arg(tick),
                arg(run),
                format!("{:.3}", measured.elapsed_s),
                format!("{:.0}", figure[0]),
                arg(latency.count),
                format!("{:.3}", latency.p50_ms),
                format!("{:.3}", latency.p99_ms),
                format!("{:.3}", latency.max_ms),
            ];
            csv.rows.push(row);
            figures.push(figure);
            progress.inc(1);
        }
        let spread =
            |i: usize| Spread::of(&figures.iter().map(|f| f[i]).collect::<Vec<_>>()).expect("runs");
        // At 5 consumption rows per source second.
        let per_time = seconds * 5.0;
        table.push_str(&format!(
            "| {tick} | {} | {} | {} | {} |\n",
            super::stats::group_thousands(&format!("{per_time:.0}")),
            spread(0).show(0),
            spread(2).show(2),
            spread(3).show(2)
        ));
        rate_points.push((seconds, spread(0).median));
        trade_off.push((spread(3).median, spread(0).median));
    }
    progress.finish_and_clear();
    let markdown = format!(
        "### (f) Batch size\n\n\
         `gridflow run --clock simulated --consumptions {rows} --tick T --retention 3h -w 2 \
         --sink none --ephemeral --no-ui`, {} of each; the default generator (5 consumption \
         rows and 1 user row per source second). Up to 4 sealed times are in flight at once \
         (`--max-inflight`), so a time's latency includes waiting behind the ones before \
         it.\n\n{table}",
        bench.runs_phrase()
    );
    let throughput = Chart {
        title: "Throughput against the span of a logical time",
        x_label: "tick (s of source time)",
        y_label: "rows/s",
        x_axis: Axis::Log,
        y_axis: Axis::Log,
    };
    let trade = Chart {
        title: "Latency against throughput, one point per tick",
        x_label: "p99 latency of a logical time (ms)",
        y_label: "rows/s",
        x_axis: Axis::Log,
        y_axis: Axis::Log,
    };
    let one = |name: &str, points| {
        vec![Series {
            name: name.to_string(),
            points,
        }]
    };
    Ok(Section {
        scenario: Scenario::Batch,
        csvs: vec![("batch".into(), csv)],
        markdown,
        plots: vec![
            Plot {
                file: "batch-throughput.svg".into(),
                title: "Throughput against the tick".into(),
                svg: throughput.svg(&one("rows/s", rate_points))?,
            },
            Plot {
                file: "batch-trade-off.svg".into(),
                title: "Latency–throughput trade-off".into(),
                svg: trade.svg(&one("tick 1 s … 1 h", trade_off))?,
            },
        ],
    })
}
