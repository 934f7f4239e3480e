//! Scenario (e), window size: 5 s, 1 h and 1 d windows over the same 1M generated rows (user
//! updates on, no retention): throughput, and the churn of each output table — its updates
//! (insertions plus retractions) per consumption row read. Larger windows hold more rows each,
//! so every row changes a bigger ranking.

use super::child::{self, arg};
use super::plot::{Axis, Chart, Series};
use super::scenario::{Bench, Csv, Plot, Scenario, Section};
use super::stats::Spread;

const WINDOWS: [(&str, f64); 3] = [("5s", 5.0), ("1h", 3_600.0), ("1d", 86_400.0)];

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let rows: u64 = bench.size(1_000_000, 20_000);
    let progress = bench.progress(Scenario::Window, WINDOWS.len() * bench.runs);
    let mut csv = Csv {
        header: [
            "window",
            "run",
            "elapsed_s",
            "rows_per_s",
            "region_updates_per_row",
            "ranking_updates_per_row",
            "dashboard_updates_per_row",
            "peak_memory_bytes",
        ]
        .to_vec(),
        rows: Vec::new(),
    };
    let mut table = String::from(
        "| window | consumption rows/s | dws_region_daily_stats updates per row | dws_user_ranking updates per row | ads_power_dashboard updates per row |\n|---|---|---|---|---|\n",
    );
    let (mut rate_points, mut churn_points) = (Vec::new(), Vec::new());
    for (window, seconds) in WINDOWS {
        let mut figures: Vec<[f64; 4]> = Vec::new();
        for run in 0..bench.runs {
            progress.set_message(format!("{window} windows"));
            let args = vec![
                arg("--clock"),
                arg("simulated"),
                arg("--consumptions"),
                arg(rows),
                arg("--window"),
                arg(window),
                arg("-w"),
                arg(2),
            ];
            let measured = child::run(bench, &format!("window-{window}-{run}"), &args, 1)?;
            let counters = measured.first.counters;
            let per_row = |updates: u64| updates as f64 / measured.consumption_rows.max(1) as f64;
            let figure = [
                measured.rows_per_second(),
                per_row(counters.dws_region_updates),
                per_row(counters.dws_ranking_updates),
                per_row(counters.ads_updates),
            ];
            let mut row = vec![arg(window), arg(run), format!("{:.3}", measured.elapsed_s)];
            row.extend(figure.iter().map(|f| format!("{f:.3}")));
            row.push(arg(measured.peak_memory_bytes));
            csv.rows.push(row);
            figures.push(figure);
            progress.inc(1);
        }
        let spread =
            |i: usize| Spread::of(&figures.iter().map(|f| f[i]).collect::<Vec<_>>()).expect("runs");
        table.push_str(&format!(
            "| {window} | {} | {} | {} | {} |\n",
            spread(0).show(0),
            spread(1).show(2),
            spread(2).show(2),
            spread(3).show(2)
        ));
        rate_points.push((seconds, spread(0).median));
        churn_points.push((seconds, spread(2).median));
    }
    progress.finish_and_clear();
    let markdown = format!(
        "### (e) Window size\n\n\
         `gridflow run --clock simulated --consumptions {rows} --window W -w 2 --sink none \
         --ephemeral --no-ui` (default generator: user updates, consumption dates up to 2.4 h \
         behind the clock; no retention), {} of each. An update is an insertion or a \
         retraction of a row version leaving the dataflow.\n\n{table}",
        bench.runs_phrase()
    );
    let chart = |title, y_label, points: Vec<(f64, f64)>, name: &str| {
        Chart {
            title,
            x_label: "window (s)",
            y_label,
            x_axis: Axis::Log,
            y_axis: Axis::Log,
        }
        .svg(&[Series {
            name: name.to_string(),
            points,
        }])
    };
    Ok(Section {
        scenario: Scenario::Window,
        csvs: vec![("window".into(), csv)],
        markdown,
        plots: vec![
            Plot {
                file: "window-throughput.svg".into(),
                title: "Throughput against window size".into(),
                svg: chart(
                    "Throughput against window size",
                    "rows/s",
                    rate_points,
                    "rows/s",
                )?,
            },
            Plot {
                file: "window-churn.svg".into(),
                title: "Ranking churn against window size".into(),
                svg: chart(
                    "dws_user_ranking updates per consumption row",
                    "updates per row",
                    churn_points,
                    "ranking updates per row",
                )?,
            },
        ],
    })
}
